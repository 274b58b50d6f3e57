use super::*;
use crate::orchestrator::testkit::{spec, Sim};
use shoal_proto::model::{NodeRole, ServiceSpec, Task, TaskStatus};
use std::collections::BTreeMap;

/// Puts `n` PENDING tasks of `spec` (service `svc-<name>`) into the store.
fn pending(sim: &mut Sim, spec: &ServiceSpec, n: u64) -> Vec<String> {
    let tasks: Vec<Task> = (1..=n)
        .map(|slot| Task {
            id: format!("{}-{slot:05}", spec.name).into(),
            service_id: format!("svc-{}", spec.name).into(),
            service_name: spec.name.clone(),
            slot,
            spec: spec.clone(),
            spec_version: 1,
            desired_state: TaskState::Running,
            status: TaskStatus {
                state: TaskState::Pending,
                message: "allocated".into(),
                ..Default::default()
            },
            ..Default::default()
        })
        .collect();
    let ids = tasks.iter().map(|t| t.id.to_string()).collect();
    sim.apply(&[Command::PutTasks(tasks)]);
    ids
}

/// Plans, checks the plan is one PutTasks, applies it and checks that planning again is quiet.
fn schedule(sim: &mut Sim) -> Vec<Task> {
    let cmds = plan(&sim.state, sim.now);
    let Some(Command::PutTasks(tasks)) = cmds.first().cloned() else {
        panic!("expected PutTasks: {cmds:?}")
    };
    assert_eq!(cmds.len(), 1);
    sim.apply(&cmds);
    assert_eq!(
        plan(&sim.state, sim.now),
        vec![],
        "second pass must be quiet"
    );
    tasks
}

fn per_node(sim: &Sim, service: &str) -> BTreeMap<String, usize> {
    let mut m = BTreeMap::new();
    for t in sim
        .state
        .tasks
        .values()
        .filter(|t| t.service_id == service && t.status.state == TaskState::Assigned)
    {
        *m.entry(t.node_id.to_string()).or_default() += 1;
    }
    m
}

#[test]
fn spread_over_five_nodes_gives_one_each() {
    let mut sim = Sim::new();
    for i in 1..=5 {
        sim.node(&format!("n{i}"), NodeRole::Worker);
    }
    pending(&mut sim, &spec("web", 5), 5);
    let placed = schedule(&mut sim);
    assert_eq!(placed.len(), 5);
    assert!(placed
        .iter()
        .all(|t| t.status.state == TaskState::Assigned && t.status.message == SCHEDULED));
    assert!(placed.iter().all(|t| t.status.timestamp_ms == sim.now));
    let counts = per_node(&sim, "svc-web");
    assert_eq!(counts.len(), 5);
    assert!(counts.values().all(|c| *c == 1), "{counts:?}");
}

#[test]
fn spread_counts_tasks_already_running_then_total_load() {
    let mut sim = Sim::new();
    let a = sim.node("a", NodeRole::Worker);
    let b = sim.node("b", NodeRole::Worker);
    let c = sim.node("c", NodeRole::Worker);
    let running = |id: &str, svc: &str, node: &str| Task {
        id: id.into(),
        service_id: svc.into(),
        node_id: node.into(),
        desired_state: TaskState::Running,
        status: TaskStatus {
            state: TaskState::Running,
            ..Default::default()
        },
        ..Default::default()
    };
    let dead = Task {
        status: TaskStatus {
            state: TaskState::Failed,
            ..Default::default()
        },
        ..running("x", "svc-web", &c)
    };
    sim.apply(&[Command::PutTasks(vec![
        running("w1", "svc-web", &a),
        running("w2", "svc-web", &a),
        running("o1", "svc-other", &c),
        running("o2", "svc-other", &c),
        running("o3", "svc-other", &c),
        dead, // ended tasks do not count
    ])]);
    pending(&mut sim, &spec("web", 5), 3);
    schedule(&mut sim);
    let counts = per_node(&sim, "svc-web");
    // b (0 of web, 0 total), then c (0 of web, 3 total) before a (2 of web), then b again.
    assert_eq!(counts.get(&b), Some(&2), "{counts:?}");
    assert_eq!(counts.get(&c), Some(&1), "{counts:?}");
    assert_eq!(counts.get(&a), None, "{counts:?}");
}

#[test]
fn placements_of_one_pass_are_counted_across_services() {
    let mut sim = Sim::new();
    sim.node("a", NodeRole::Worker);
    sim.node("b", NodeRole::Worker);
    pending(&mut sim, &spec("api", 1), 1);
    pending(&mut sim, &spec("web", 1), 1);
    schedule(&mut sim);
    let nodes: Vec<&str> = sim
        .state
        .tasks
        .values()
        .map(|t| t.node_id.as_str())
        .collect();
    assert_ne!(
        nodes[0], nodes[1],
        "the second service goes to the emptier node"
    );
}

#[test]
fn constraints_filter_nodes() {
    let mut sim = Sim::new();
    sim.node("m1", NodeRole::Manager);
    let east = sim.node("w1", NodeRole::Worker);
    sim.update_node(&east, |n| {
        n.labels.insert("az".into(), "east".into());
    });
    sim.node("w2", NodeRole::Worker);
    let mut s = spec("web", 4);
    s.constraints = vec!["node.role==worker".into(), "node.labels.az==east".into()];
    pending(&mut sim, &s, 4);
    schedule(&mut sim);
    assert_eq!(per_node(&sim, "svc-web"), BTreeMap::from([(east, 4)]));
}

#[test]
fn paused_drained_and_down_nodes_get_nothing() {
    let mut sim = Sim::new();
    let ok = sim.node("ok", NodeRole::Worker);
    let paused = sim.node("paused", NodeRole::Worker);
    let drained = sim.node("drained", NodeRole::Worker);
    let down = sim.node("down", NodeRole::Worker);
    let unknown = sim.node("unknown", NodeRole::Worker);
    sim.update_node(&paused, |n| n.availability = Availability::Pause);
    sim.update_node(&drained, |n| n.availability = Availability::Drain);
    sim.update_node(&down, |n| n.state = NodeState::Down);
    sim.update_node(&unknown, |n| n.state = NodeState::Unknown);
    pending(&mut sim, &spec("web", 6), 6);
    schedule(&mut sim);
    assert_eq!(per_node(&sim, "svc-web"), BTreeMap::from([(ok, 6)]));
}

#[test]
fn unplaceable_tasks_say_why_once() {
    let mut sim = Sim::new();
    for (name, availability, state) in [
        ("p", Availability::Pause, NodeState::Ready),
        ("d", Availability::Drain, NodeState::Ready),
        ("x", Availability::Active, NodeState::Down),
        ("w1", Availability::Active, NodeState::Ready),
        ("w2", Availability::Active, NodeState::Ready),
    ] {
        let id = sim.node(name, NodeRole::Worker);
        sim.update_node(&id, |n| (n.availability, n.state) = (availability, state));
    }
    let mut s = spec("db", 2);
    s.constraints = vec!["node.role==manager".into()];
    let ids = pending(&mut sim, &s, 2);
    let written = schedule(&mut sim); // also checks the second pass writes nothing
    assert_eq!(written.len(), 2);
    let want = "no suitable node (3 nodes not available for new tasks; 2 nodes do not satisfy constraint node.role==manager)";
    for id in &ids {
        let t = &sim.state.tasks[id.as_str()];
        assert_eq!(
            (
                t.status.state,
                t.status.message.as_str(),
                t.node_id.as_str()
            ),
            (TaskState::Pending, want, "")
        );
    }
    // A node that fits arrives: the tasks go there.
    let m = sim.node("m1", NodeRole::Manager);
    schedule(&mut sim);
    assert_eq!(per_node(&sim, "svc-db"), BTreeMap::from([(m, 2)]));
}

#[test]
fn explanations_for_singular_no_nodes_and_bad_constraints() {
    let mut sim = Sim::new();
    let ids = pending(&mut sim, &spec("web", 1), 1);
    schedule(&mut sim);
    assert_eq!(
        sim.state.tasks[ids[0].as_str()].status.message,
        "no suitable node (the cluster has no nodes)"
    );

    sim.node("w1", NodeRole::Worker);
    let mut s = spec("db", 1);
    s.constraints = vec!["node.labels.disk==ssd".into()];
    let ids = pending(&mut sim, &s, 1);
    schedule(&mut sim);
    let msg = &sim.state.tasks[ids[0].as_str()].status.message;
    assert_eq!(
        msg,
        "no suitable node (1 node does not satisfy constraint node.labels.disk==ssd)"
    );

    let mut s = spec("bad", 1);
    s.constraints = vec!["node.ip==10.0.0.1".into()];
    let ids = pending(&mut sim, &s, 1);
    schedule(&mut sim);
    let msg = &sim.state.tasks[ids[0].as_str()].status.message;
    assert!(
        msg.starts_with("no suitable node (invalid constraint \"node.ip==10.0.0.1\""),
        "{msg}"
    );
}

#[test]
fn global_tasks_keep_their_node_or_wait() {
    let mut sim = Sim::new();
    let a = sim.node("a", NodeRole::Worker);
    let b = sim.node("b", NodeRole::Worker);
    sim.update_node(&b, |n| n.availability = Availability::Pause);
    let mut s = spec("mon", 0);
    s.mode = shoal_proto::model::ServiceMode::Global;
    let ids = pending(&mut sim, &s, 2);
    let mut preset = |id: &str, node: &str| {
        let mut t = sim.state.tasks[id].clone();
        t.node_id = node.into();
        t.slot = 0;
        sim.apply(&[Command::PutTasks(vec![t])]);
    };
    preset(&ids[0], &a);
    preset(&ids[1], &b);
    schedule(&mut sim);
    let (ta, tb) = (
        &sim.state.tasks[ids[0].as_str()],
        &sim.state.tasks[ids[1].as_str()],
    );
    assert_eq!(
        (ta.status.state, ta.node_id.as_str()),
        (TaskState::Assigned, a.as_str())
    );
    assert_eq!(
        (tb.status.state, tb.node_id.as_str()),
        (TaskState::Pending, b.as_str())
    );
    assert_eq!(
        tb.status.message,
        "no suitable node (node b not available for new tasks)"
    );
    sim.update_node(&b, |n| n.availability = Availability::Active);
    schedule(&mut sim);
    assert_eq!(
        sim.state.tasks[ids[1].as_str()].status.state,
        TaskState::Assigned
    );
}

#[test]
fn only_pending_tasks_wanted_running_are_touched() {
    let mut sim = Sim::new();
    sim.node("a", NodeRole::Worker);
    let ids = pending(&mut sim, &spec("web", 3), 3);
    let mut new = sim.state.tasks[ids[0].as_str()].clone();
    (new.id, new.version, new.status.state) = ("fresh".into(), 0, TaskState::New);
    let mut stopping = sim.state.tasks[ids[1].as_str()].clone();
    stopping.desired_state = TaskState::Shutdown;
    sim.apply(&[Command::PutTasks(vec![new, stopping])]);
    let placed = schedule(&mut sim);
    let placed: Vec<&str> = placed.iter().map(|t| t.id.as_str()).collect();
    assert_eq!(
        placed,
        vec![ids[0].as_str(), ids[2].as_str()],
        "not the NEW one nor the one stopping"
    );
}

#[test]
fn many_tasks_are_spread_evenly() {
    let mut sim = Sim::new();
    for i in 0..200 {
        sim.node(&format!("n{i:03}"), NodeRole::Worker);
    }
    pending(&mut sim, &spec("web", 2000), 2000);
    schedule(&mut sim);
    let counts = per_node(&sim, "svc-web");
    assert_eq!(counts.len(), 200);
    assert!(counts.values().all(|c| *c == 10), "{counts:?}");
}
