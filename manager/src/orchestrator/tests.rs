use super::testkit::{spec, Actor, Sim, CLUSTER, LEADER};
use super::*;
use shoal_proto::model::{NodeRole, RestartCondition, RestartPolicy, ServiceSpec};
use std::collections::BTreeSet;

mod churn;
mod update;

/// A cluster of `n` ready workers (`w1`…) and the service `spec`, converged with running agents.
fn cluster(n: usize, s: ServiceSpec) -> (Sim, String) {
    let mut sim = Sim::new();
    for i in 1..=n {
        sim.node(&format!("w{i}"), NodeRole::Worker);
    }
    let svc = sim.service(s);
    sim.converge(&CLUSTER);
    (sim, svc)
}

fn orchestrate(sim: &mut Sim) -> Vec<Command> {
    sim.plan(Actor::Orchestrator)
}

fn slots(tasks: &[&Task]) -> Vec<u64> {
    tasks.iter().map(|t| t.slot).collect()
}

fn nodes_of(tasks: &[&Task]) -> BTreeSet<String> {
    tasks.iter().map(|t| t.node_id.to_string()).collect()
}

#[test]
fn creates_missing_slots_once() {
    let mut sim = Sim::new();
    let svc = sim.service(spec("web", 3));
    let cmds = orchestrate(&mut sim);
    let [Command::Batch(inner)] = cmds.as_slice() else {
        panic!("one batch: {cmds:?}")
    };
    let [Command::PutTasks(created)] = inner.as_slice() else {
        panic!("{inner:?}")
    };
    assert_eq!(created.len(), 3);
    let s = &sim.state.services[svc.as_str()];
    for (t, slot) in created.iter().zip(1..) {
        assert_eq!(
            (t.slot, t.attempt, t.version, t.node_id.as_str()),
            (slot, 0, 0, "")
        );
        assert_eq!(
            (t.desired_state, t.status.state),
            (TaskState::Running, TaskState::New)
        );
        assert_eq!((t.created_ms, t.status.timestamp_ms), (sim.now, sim.now));
        assert_eq!(
            (&t.spec, t.spec_version, t.service_name.as_str()),
            (&s.spec, s.spec_version, "web")
        );
        assert_eq!(t.service_id, svc);
    }
    sim.apply(&cmds);
    assert_eq!(orchestrate(&mut sim), vec![], "idempotent");
}

#[test]
fn replicas_five_on_five_nodes_end_assigned_on_distinct_nodes() {
    let mut sim = Sim::new();
    for i in 1..=5 {
        sim.node(&format!("w{i}"), NodeRole::Worker);
    }
    let svc = sim.service(spec("web", 5));
    sim.converge(&LEADER);
    sim.assert_quiet();
    let tasks = sim.tasks(&svc);
    assert_eq!(tasks.len(), 5);
    assert!(tasks
        .iter()
        .all(|t| t.status.state == TaskState::Assigned && t.status.message == "scheduled"));
    assert_eq!(nodes_of(&tasks).len(), 5);
    assert_eq!(slots(&tasks), vec![1, 2, 3, 4, 5]);
}

#[test]
fn scale_up_and_down_keeps_the_spread() {
    let (mut sim, svc) = cluster(3, spec("web", 6));
    assert_eq!(sim.live(&svc).len(), 6);
    sim.update_service(&svc, |s| s.mode = ServiceMode::Replicated { replicas: 3 });
    sim.converge(&CLUSTER);
    sim.assert_quiet();
    let live = sim.live(&svc);
    assert_eq!(live.len(), 3);
    assert_eq!(nodes_of(&live).len(), 3, "one per node survives");
    assert_eq!(
        sim.tasks(&svc).len(),
        3,
        "removed tasks are deleted once stopped"
    );
    sim.update_service(&svc, |s| s.mode = ServiceMode::Replicated { replicas: 4 });
    sim.converge(&CLUSTER);
    let mut slots = slots(&sim.live(&svc));
    slots.sort();
    assert_eq!(slots.len(), 4);
    assert_eq!(
        slots.iter().collect::<BTreeSet<_>>().len(),
        4,
        "distinct slots: {slots:?}"
    );
}

#[test]
fn scale_down_removes_tasks_not_running_first() {
    let (mut sim, svc) = cluster(3, spec("web", 3));
    // Slot 1's task ended and is waiting for its restart: it goes first.
    sim.update_service(&svc, |s| s.restart.delay_ms = 60_000);
    let slot1 = sim.tasks(&svc)[0].id.clone();
    sim.report(&slot1, TaskState::Failed);
    sim.update_service(&svc, |s| s.mode = ServiceMode::Replicated { replicas: 2 });
    sim.converge(&CLUSTER);
    assert_eq!(slots(&sim.live(&svc)), vec![2, 3]);
    assert!(!sim.state.tasks.contains_key(&slot1));
}

#[test]
fn scale_down_takes_from_the_node_with_most_copies() {
    let mut sim = Sim::new();
    let a = sim.node("a", NodeRole::Worker);
    let svc = sim.service(spec("web", 3));
    sim.converge(&CLUSTER); // all three on a
    let b = sim.node("b", NodeRole::Worker);
    sim.update_service(&svc, |s| s.mode = ServiceMode::Replicated { replicas: 4 });
    sim.converge(&CLUSTER); // slot 4 on b
    sim.update_service(&svc, |s| s.mode = ServiceMode::Replicated { replicas: 2 });
    sim.converge(&CLUSTER);
    let live = sim.live(&svc);
    assert_eq!(nodes_of(&live), BTreeSet::from([a, b]));
    assert_eq!(slots(&live), vec![1, 4]);
}

#[test]
fn restart_waits_for_the_delay() {
    let mut s = spec("web", 1);
    s.restart = RestartPolicy {
        condition: RestartCondition::Any,
        delay_ms: 1000,
        max_attempts: 0,
    };
    let (mut sim, svc) = cluster(1, s);
    let first = sim.tasks(&svc)[0].id.clone();
    sim.report(&first, TaskState::Failed);
    assert_eq!(
        orchestrate(&mut sim),
        vec![],
        "delay not passed: nothing yet"
    );
    sim.now += 999;
    assert_eq!(orchestrate(&mut sim), vec![]);
    sim.now += 1;
    sim.converge(&CLUSTER);
    let tasks = sim.tasks(&svc);
    assert_eq!(tasks.len(), 2);
    assert_eq!(
        (tasks[0].id.as_str(), tasks[0].desired_state),
        (first.as_str(), TaskState::Shutdown)
    );
    assert_eq!(
        (tasks[1].slot, tasks[1].attempt, tasks[1].status.state),
        (1, 1, TaskState::Running)
    );
}

#[test]
fn on_failure_restarts_failures_but_not_completions() {
    let mut s = spec("job", 2);
    s.restart.condition = RestartCondition::OnFailure;
    let (mut sim, svc) = cluster(2, s);
    let (t1, t2) = (sim.tasks(&svc)[0].id.clone(), sim.tasks(&svc)[1].id.clone());
    sim.report(&t1, TaskState::Complete);
    sim.report(&t2, TaskState::Failed);
    sim.converge(&CLUSTER);
    sim.assert_quiet();
    assert_eq!(
        slots(&sim.live(&svc)),
        vec![2],
        "slot 1 completed and stays empty"
    );
    assert_eq!(sim.state.tasks[&t1].desired_state, TaskState::Shutdown);
    assert_eq!(sim.live(&svc)[0].attempt, 1);
}

#[test]
fn condition_none_never_restarts_and_does_not_refill_the_slot() {
    let mut s = spec("once", 2);
    s.restart.condition = RestartCondition::None;
    let (mut sim, svc) = cluster(2, s);
    for t in sim
        .tasks(&svc)
        .iter()
        .map(|t| t.id.clone())
        .collect::<Vec<_>>()
    {
        sim.report(&t, TaskState::Failed);
    }
    sim.converge(&CLUSTER);
    sim.assert_quiet();
    assert!(sim.live(&svc).is_empty());
    assert_eq!(sim.tasks(&svc).len(), 2, "kept as history");
    // Scaling down and up again starts fresh slots; an update restarts finished ones.
    sim.update_service(&svc, |s| s.mode = ServiceMode::Replicated { replicas: 1 });
    sim.converge(&CLUSTER);
    assert_eq!(sim.tasks(&svc).len(), 1);
    sim.update_service(&svc, |s| s.mode = ServiceMode::Replicated { replicas: 2 });
    sim.converge(&CLUSTER);
    assert_eq!(
        sim.live(&svc).len(),
        1,
        "one new slot, the finished one stays"
    );
    sim.update_service(&svc, |s| s.env.push("V=2".into()));
    sim.converge(&CLUSTER);
    assert_eq!(sim.live(&svc).len(), 2);
}

#[test]
fn max_attempts_limits_replacements() {
    let mut s = spec("flaky", 1);
    s.restart.max_attempts = 2;
    let (mut sim, svc) = cluster(1, s);
    for _ in 0..5 {
        if let Some(t) = sim.live(&svc).first().map(|t| t.id.clone()) {
            sim.report(&t, TaskState::Failed);
        }
        sim.converge(&CLUSTER);
    }
    sim.assert_quiet();
    let attempts: Vec<u64> = sim.tasks(&svc).iter().map(|t| t.attempt).collect();
    assert_eq!(attempts, vec![0, 1, 2], "one task and two replacements");
    assert!(sim.live(&svc).is_empty());
}

#[test]
fn tasks_on_a_down_or_drained_node_are_replaced_at_once() {
    let mut s = spec("web", 2);
    s.restart.delay_ms = 60_000; // not used for node failures
    let (mut sim, svc) = cluster(3, s);
    let victim = sim.live(&svc)[0].clone();
    sim.update_node(&victim.node_id, |n| n.state = NodeState::Down);
    sim.converge(&CLUSTER);
    let live = sim.live(&svc);
    assert_eq!(live.len(), 2);
    assert!(!nodes_of(&live).contains(victim.node_id.as_str()));
    let replacement = live.iter().find(|t| t.slot == victim.slot).unwrap();
    assert_eq!(
        replacement.attempt, victim.attempt,
        "not a failure of the task"
    );
    assert_eq!(
        sim.state.tasks[&victim.id].desired_state,
        TaskState::Shutdown
    );

    let other: Task = (*live.iter().find(|t| t.slot != victim.slot).unwrap()).clone();
    sim.update_node(&other.node_id, |n| n.availability = Availability::Drain);
    sim.converge(&CLUSTER);
    let live = sim.live(&svc);
    assert_eq!(live.len(), 2);
    assert!(!nodes_of(&live).contains(other.node_id.as_str()));
    assert!(
        !sim.state.tasks.contains_key(&other.id)
            || sim.state.tasks[&other.id].status.state == TaskState::Shutdown
    );
    sim.assert_quiet();
}

#[test]
fn spec_update_replaces_every_task() {
    let (mut sim, svc) = cluster(2, spec("web", 3));
    let old: Vec<String> = sim.live(&svc).iter().map(|t| t.id.to_string()).collect();
    sim.update_service(&svc, |s| s.image = "whoami".into());
    sim.converge(&CLUSTER);
    sim.assert_quiet();
    let live = sim.live(&svc);
    assert_eq!(slots(&live), vec![1, 2, 3]);
    assert!(live.iter().all(|t| t.spec.image == "whoami"
        && t.spec_version == 2
        && !old.contains(&t.id.to_string())));
    assert!(old
        .iter()
        .all(|id| sim.state.tasks[id.as_str()].status.state == TaskState::Shutdown));
}

pub(super) fn global(name: &str) -> ServiceSpec {
    ServiceSpec {
        mode: ServiceMode::Global,
        ..spec(name, 0)
    }
}

#[test]
fn global_runs_one_task_per_eligible_node() {
    let (mut sim, svc) = cluster(3, global("mon"));
    let live = sim.live(&svc);
    assert_eq!(live.len(), 3);
    assert_eq!(nodes_of(&live).len(), 3);
    assert!(live
        .iter()
        .all(|t| t.slot == 0 && t.status.state == TaskState::Running));
    sim.assert_quiet();

    // Drain w1: its task stops and is not moved. Pause w2: its task stays.
    sim.update_node("node-w1", |n| n.availability = Availability::Drain);
    sim.update_node("node-w2", |n| n.availability = Availability::Pause);
    sim.converge(&CLUSTER);
    sim.assert_quiet();
    let nodes = nodes_of(&sim.live(&svc));
    assert_eq!(
        nodes,
        BTreeSet::from(["node-w2".to_string(), "node-w3".to_string()])
    );

    // A new node gets one; a node back to active gets one again.
    sim.node("w4", NodeRole::Worker);
    sim.update_node("node-w1", |n| n.availability = Availability::Active);
    sim.converge(&CLUSTER);
    assert_eq!(nodes_of(&sim.live(&svc)).len(), 4);
    assert_eq!(sim.live(&svc).len(), 4);
}

#[test]
fn global_follows_constraints_and_restarts_in_place() {
    let mut s = global("mon");
    s.constraints = vec!["node.role==manager".into()];
    let mut sim = Sim::new();
    let m = sim.node("m1", NodeRole::Manager);
    sim.node("w1", NodeRole::Worker);
    let svc = sim.service(s);
    sim.converge(&CLUSTER);
    assert_eq!(nodes_of(&sim.live(&svc)), BTreeSet::from([m.clone()]));
    let first = sim.live(&svc)[0].id.clone();
    sim.report(&first, TaskState::Failed);
    sim.converge(&CLUSTER);
    let live = sim.live(&svc);
    assert_eq!((live[0].node_id.as_str(), live[0].attempt), (m.as_str(), 1));
    // The node stops satisfying the constraint: its task is shut down.
    sim.update_node(&m, |n| n.role = NodeRole::Worker);
    sim.converge(&CLUSTER);
    assert!(sim.live(&svc).is_empty());
    sim.assert_quiet();
}

#[test]
fn reaper_keeps_five_old_tasks_per_slot() {
    let (mut sim, svc) = cluster(1, spec("crash", 1));
    for _ in 0..8 {
        let t = sim.live(&svc)[0].id.clone();
        sim.report(&t, TaskState::Failed);
        sim.converge(&CLUSTER);
    }
    let tasks = sim.tasks(&svc);
    assert_eq!(tasks.len(), 1 + TASK_HISTORY_RETENTION);
    let attempts: Vec<u64> = tasks.iter().map(|t| t.attempt).collect();
    assert_eq!(attempts, vec![3, 4, 5, 6, 7, 8], "the oldest are deleted");
    sim.assert_quiet();
}

#[test]
fn reaper_removes_the_tasks_of_removed_services() {
    let (mut sim, svc) = cluster(2, spec("web", 3));
    let down = sim.live(&svc)[0].node_id.clone();
    sim.update_node(&down, |n| n.state = NodeState::Down);
    // A never-scheduled task too: make the service unplaceable first.
    sim.apply(&[Command::RemoveService {
        id: svc.clone().into(),
    }]);
    // Tasks on the down node go at once; the others once their agent has stopped them.
    let cmds = orchestrate(&mut sim);
    sim.apply(&cmds);
    assert!(sim.state.tasks.values().all(|t| t.node_id != down));
    assert!(!sim.state.tasks.is_empty());
    sim.converge(&CLUSTER);
    assert!(sim.state.tasks.is_empty());
}

#[test]
fn tasks_that_never_ran_are_deleted_when_retired() {
    let mut sim = Sim::new();
    let svc = sim.service(spec("web", 2)); // no nodes: tasks stay PENDING
    sim.converge(&LEADER);
    assert_eq!(sim.tasks(&svc).len(), 2);
    sim.update_service(&svc, |s| s.image = "v2".into());
    sim.converge(&LEADER);
    let tasks = sim.tasks(&svc);
    assert_eq!(
        tasks.len(),
        2,
        "the outdated pending tasks are gone: {tasks:?}"
    );
    assert!(tasks.iter().all(|t| t.spec_version == 2));
    sim.apply(&[Command::RemoveService {
        id: svc.clone().into(),
    }]);
    sim.converge(&LEADER);
    assert!(sim.state.tasks.is_empty());
}

#[test]
fn scaling_or_relabelling_does_not_replace_tasks() {
    let (mut sim, svc) = cluster(2, spec("web", 2));
    let before: BTreeSet<String> = sim.live(&svc).iter().map(|t| t.id.to_string()).collect();
    sim.update_service(&svc, |s| s.mode = ServiceMode::Replicated { replicas: 3 });
    sim.update_service(&svc, |s| _ = s.labels.insert("team".into(), "a".into()));
    assert_eq!(sim.state.services[svc.as_str()].spec_version, 3);
    sim.converge(&CLUSTER);
    let after: BTreeSet<String> = sim.live(&svc).iter().map(|t| t.id.to_string()).collect();
    assert_eq!(after.len(), 3);
    assert!(before.is_subset(&after), "the first two tasks keep running");
}

#[test]
fn global_task_leaves_a_down_node_and_returns_with_it() {
    let mut s = global("mon");
    s.restart.condition = RestartCondition::None; // leaving a node is not an ending
    let (mut sim, svc) = cluster(2, s);
    let old = sim
        .live(&svc)
        .into_iter()
        .find(|t| t.node_id == "node-w2")
        .unwrap()
        .id
        .clone();
    sim.update_node("node-w2", |n| n.state = NodeState::Down);
    sim.converge(&CLUSTER);
    assert_eq!(
        nodes_of(&sim.tasks(&svc)),
        BTreeSet::from(["node-w1".to_string()])
    );
    assert!(
        !sim.state.tasks.contains_key(&old),
        "removed, not kept as the node's history"
    );
    sim.update_node("node-w2", |n| n.state = NodeState::Ready);
    sim.converge(&CLUSTER);
    assert_eq!(nodes_of(&sim.live(&svc)).len(), 2);
    sim.assert_quiet();
}

/// Runs the leader's planners and the agents with every command cut by
/// [`crate::chunk::split`] into parts of at most `max` tasks, writing only the first part of
/// each pass when `first_only` (a leader lost after its first entry), until quiet.
fn converge_in_parts(sim: &mut Sim, max: usize, first_only: bool) {
    for _ in 0..200 {
        let mut wrote = false;
        for a in CLUSTER {
            let parts: Vec<Command> = sim
                .plan(a)
                .into_iter()
                .flat_map(|c| crate::chunk::split(c, max))
                .collect();
            for p in &parts {
                if let Command::Batch(v) = p {
                    let tasks: usize = v
                        .iter()
                        .map(|c| match c {
                            Command::PutTasks(t) => t.len(),
                            _ => 0,
                        })
                        .sum();
                    assert!(tasks <= max, "{tasks} tasks in one entry");
                } else if let Command::PutTasks(t) = p {
                    assert!(t.len() <= max, "{} tasks in one entry", t.len());
                }
            }
            wrote |= !parts.is_empty();
            let n = if first_only { 1 } else { parts.len() };
            sim.apply(&parts[..n.min(parts.len())]);
        }
        if !wrote {
            return;
        }
    }
    panic!("planners did not converge in parts");
}

#[test]
fn a_service_written_in_parts_is_completed_by_later_passes() {
    for first_only in [false, true] {
        let mut sim = Sim::new();
        for i in 1..=4 {
            sim.node(&format!("w{i}"), NodeRole::Worker);
        }
        let svc = sim.service(spec("web", 23));
        converge_in_parts(&mut sim, 5, first_only);
        let live = sim.live(&svc);
        assert_eq!(
            slots(&live),
            (1..=23).collect::<Vec<_>>(),
            "first only: {first_only}"
        );
        assert!(live.iter().all(|t| t.status.state == TaskState::Running));
        assert_eq!(nodes_of(&live).len(), 4);
        sim.assert_quiet();
        // Scaling down in parts removes exactly the extra slots.
        sim.update_service(&svc, |s| s.mode = ServiceMode::Replicated { replicas: 7 });
        converge_in_parts(&mut sim, 2, first_only);
        assert_eq!(sim.live(&svc).len(), 7);
        sim.assert_quiet();
    }
}
