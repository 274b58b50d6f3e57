//! Rolling updates walked pass by pass: the orchestrator (with the updater's gate), allocator,
//! scheduler and updater converge between agent steps, so each table row sees exactly which
//! slots an update touches while the new tasks start, run, fail or wait out delays.

use crate::orchestrator::testkit::{spec, Actor, Sim, CLUSTER};
use shoal_proto::model::*;

/// The leader's planners and the updater, without agents: what the update does before the
/// nodes move.
const PLANNERS: [Actor; 4] = [
    Actor::Orchestrator,
    Actor::Allocator,
    Actor::Scheduler,
    Actor::Updater,
];

/// 4 workers and `web` with `replicas` running tasks of `v1`, updated with `cfg`.
fn running(replicas: u64, cfg: UpdateConfig) -> (Sim, String) {
    let mut sim = Sim::new();
    for i in 1..=4 {
        sim.node(&format!("w{i}"), NodeRole::Worker);
    }
    let mut s = spec("web", replicas);
    s.image = "v1".into();
    s.update = cfg;
    s.rollback = cfg;
    let id = sim.service(s);
    sim.converge(&CLUSTER);
    (sim, id)
}

/// Agents take one step: assigned tasks run, stopped ones end.
fn agents(sim: &mut Sim) {
    let cmds = sim.plan(Actor::Agents);
    sim.apply(&cmds);
}

/// (image, desired state) of the slots' tasks that are still wanted running, by slot.
fn wanted(sim: &Sim, id: &str) -> Vec<(u64, String, TaskState)> {
    sim.tasks(id)
        .into_iter()
        .filter(|t| t.desired_state <= TaskState::Running && !t.status.state.is_terminal())
        .map(|t| (t.slot, t.spec.image.clone(), t.status.state))
        .collect()
}

fn images(sim: &Sim, id: &str, image: &str) -> usize {
    wanted(sim, id)
        .iter()
        .filter(|(_, i, s)| i == image && *s == TaskState::Running)
        .count()
}

fn state(sim: &Sim, id: &str) -> (UpdateState, String) {
    let u = sim.state.services[id]
        .update_status
        .clone()
        .expect("status");
    (u.state, u.message)
}

fn cfg(parallelism: u64, order: UpdateOrder, action: FailureAction) -> UpdateConfig {
    UpdateConfig {
        parallelism,
        delay_ms: 0,
        failure_action: action,
        monitor_ms: 0,
        max_failure_ratio: 0.0,
        order,
    }
}

/// Walks an update to its end, one agent step at a time, and returns how many slots were
/// being replaced at most at once (new tasks not yet running).
fn walk(sim: &mut Sim, id: &str, steps: usize) -> usize {
    let mut widest = 0;
    for _ in 0..steps {
        sim.converge(&PLANNERS);
        let starting = sim
            .tasks(id)
            .iter()
            .filter(|t| t.is_live() && t.spec.image == "v2" && t.status.state != TaskState::Running)
            .count();
        widest = widest.max(starting);
        agents(sim);
        sim.now += 10;
    }
    sim.converge(&PLANNERS);
    widest
}

#[test]
fn batches_follow_parallelism_and_order() {
    // (replicas, parallelism, order) → most slots replaced at once
    let cases = [
        (5, 1, UpdateOrder::StopFirst, 1),
        (5, 2, UpdateOrder::StopFirst, 2),
        (5, 0, UpdateOrder::StopFirst, 5),
        (5, 1, UpdateOrder::StartFirst, 1),
        (4, 3, UpdateOrder::StartFirst, 3),
    ];
    for (replicas, parallelism, order, widest) in cases {
        let (mut sim, id) = running(replicas, cfg(parallelism, order, FailureAction::Pause));
        sim.roll_out(&id, |s| s.image = "v2".into());
        assert_eq!(walk(&mut sim, &id, 12), widest, "{parallelism} {order:?}");
        assert_eq!(images(&sim, &id, "v2"), replicas as usize);
        assert_eq!(images(&sim, &id, "v1"), 0);
        assert_eq!(
            state(&sim, &id),
            (UpdateState::Completed, "update completed".into())
        );
        sim.assert_quiet();
    }
}

#[test]
fn start_first_keeps_the_old_task_until_the_new_one_runs() {
    let (mut sim, id) = running(2, cfg(1, UpdateOrder::StartFirst, FailureAction::Pause));
    sim.roll_out(&id, |s| s.image = "v2".into());
    sim.converge(&PLANNERS);
    // Slot 1 has its old task running and its new one assigned; slot 2 waits.
    let w = wanted(&sim, &id);
    assert_eq!(w.len(), 3, "{w:?}");
    assert_eq!(images(&sim, &id, "v1"), 2);
    agents(&mut sim); // the new task runs
    sim.converge(&PLANNERS);
    // Now the old task of slot 1 is told to stop, and slot 2's new task starts.
    let w = wanted(&sim, &id);
    assert_eq!(
        w.iter().filter(|(_, i, _)| i == "v1").count(),
        1,
        "slot 1's old task stops once its new one runs: {w:?}"
    );
    assert_eq!(w.iter().filter(|(_, i, _)| i == "v2").count(), 2, "{w:?}");
}

#[test]
fn stop_first_stops_before_it_starts() {
    let (mut sim, id) = running(2, cfg(1, UpdateOrder::StopFirst, FailureAction::Pause));
    sim.roll_out(&id, |s| s.image = "v2".into());
    sim.converge(&PLANNERS);
    let w = wanted(&sim, &id);
    assert_eq!(
        w.iter()
            .map(|(s, i, _)| (*s, i.as_str()))
            .collect::<Vec<_>>(),
        vec![(1, "v2"), (2, "v1")],
        "slot 1's old task is no longer wanted; slot 2 waits"
    );
}

#[test]
fn delay_holds_the_next_slot() {
    let mut c = cfg(1, UpdateOrder::StopFirst, FailureAction::Pause);
    c.delay_ms = 1_000;
    let (mut sim, id) = running(2, c);
    sim.roll_out(&id, |s| s.image = "v2".into());
    sim.converge(&PLANNERS);
    agents(&mut sim); // slot 1's new task runs, its old one ends
    sim.converge(&PLANNERS);
    assert_eq!(images(&sim, &id, "v1"), 1, "slot 2 waits for the delay");
    sim.now += 999;
    sim.converge(&PLANNERS);
    assert_eq!(images(&sim, &id, "v1"), 1);
    sim.now += 1;
    sim.converge(&PLANNERS);
    assert_eq!(
        wanted(&sim, &id)
            .iter()
            .filter(|(_, i, _)| i == "v1")
            .count(),
        0,
        "after the delay, slot 2 is replaced"
    );
}

#[test]
fn monitor_holds_completion() {
    let mut c = cfg(0, UpdateOrder::StopFirst, FailureAction::Pause);
    c.monitor_ms = 5_000;
    let (mut sim, id) = running(2, c);
    sim.roll_out(&id, |s| s.image = "v2".into());
    walk(&mut sim, &id, 3);
    assert_eq!(state(&sim, &id).0, UpdateState::Updating);
    sim.now += 5_000;
    sim.converge(&PLANNERS);
    assert_eq!(state(&sim, &id).0, UpdateState::Completed);
}

/// Fails the first new task that exists, as its node would report it.
fn fail_a_new_task(sim: &mut Sim, id: &str) -> String {
    sim.converge(&PLANNERS);
    agents(sim);
    let t = sim
        .tasks(id)
        .into_iter()
        .find(|t| t.is_live() && t.spec.image == "v2")
        .expect("a new task")
        .id
        .to_string();
    sim.report(&t, TaskState::Failed);
    t
}

#[test]
fn failures_pause_roll_back_or_continue() {
    // (action, max failure ratio, failures) → state afterwards
    let cases = [
        (FailureAction::Pause, 0.0, 1, UpdateState::Paused),
        (
            FailureAction::Rollback,
            0.0,
            1,
            UpdateState::RollbackCompleted,
        ),
        (FailureAction::Continue, 0.0, 1, UpdateState::Completed),
        (FailureAction::Pause, 0.5, 1, UpdateState::Completed),
        (FailureAction::Pause, 0.5, 3, UpdateState::Paused),
    ];
    for (action, ratio, failures, end) in cases {
        let mut c = cfg(1, UpdateOrder::StopFirst, action);
        c.max_failure_ratio = ratio;
        let (mut sim, id) = running(4, c);
        sim.roll_out(&id, |s| s.image = "v2".into());
        let mut first = String::new();
        for i in 0..failures {
            let t = fail_a_new_task(&mut sim, &id);
            if i == 0 {
                first = t;
            }
        }
        walk(&mut sim, &id, 20);
        let (got, message) = state(&sim, &id);
        assert_eq!(got, end, "{action:?} {ratio} {failures}: {message}");
        match end {
            UpdateState::Paused => {
                assert_eq!(
                    message,
                    format!("update paused due to failure or early termination of task {first}")
                );
                // Paused: the slots not yet reached keep the old spec.
                assert!(
                    images(&sim, &id, "v1") >= 1,
                    "{action:?} {ratio} {failures} {:?}",
                    wanted(&sim, &id)
                );
            }
            UpdateState::RollbackCompleted => {
                assert_eq!(sim.state.services[id.as_str()].spec.image, "v1");
                assert_eq!(images(&sim, &id, "v1"), 4, "{:?}", wanted(&sim, &id));
            }
            _ => assert_eq!(images(&sim, &id, "v2"), 4, "{:?}", wanted(&sim, &id)),
        }
        sim.assert_quiet();
    }
}

#[test]
fn a_paused_update_resumes_with_the_next_update() {
    let (mut sim, id) = running(3, cfg(1, UpdateOrder::StopFirst, FailureAction::Pause));
    sim.roll_out(&id, |s| s.image = "v2".into());
    fail_a_new_task(&mut sim, &id);
    walk(&mut sim, &id, 6);
    assert_eq!(state(&sim, &id).0, UpdateState::Paused);
    sim.now += 10;
    sim.roll_out(&id, |_| {}); // same spec: resume
    walk(&mut sim, &id, 12);
    assert_eq!(state(&sim, &id).0, UpdateState::Completed);
    assert_eq!(images(&sim, &id, "v2"), 3);
}

#[test]
fn a_rollback_returns_to_the_previous_spec_and_only_touches_updated_slots() {
    let (mut sim, id) = running(3, cfg(1, UpdateOrder::StartFirst, FailureAction::Pause));
    sim.roll_out(&id, |s| s.image = "v2".into());
    // One slot updated, then a manual rollback.
    sim.converge(&PLANNERS);
    agents(&mut sim);
    sim.converge(&PLANNERS);
    let untouched: Vec<String> = sim
        .tasks(&id)
        .into_iter()
        .filter(|t| t.is_live() && t.spec.image == "v1" && t.status.state == TaskState::Running)
        .map(|t| t.id.to_string())
        .collect();
    let cur = sim.state.services[id.as_str()].clone();
    let back = crate::orchestrator::update::start_rollback(&cur, sim.now).expect("previous");
    sim.apply(&[Command::UpdateService(back)]);
    walk(&mut sim, &id, 12);
    assert_eq!(
        state(&sim, &id),
        (UpdateState::RollbackCompleted, "rollback completed".into())
    );
    assert_eq!(images(&sim, &id, "v1"), 3);
    let svc = &sim.state.services[id.as_str()];
    assert_eq!(
        svc.previous_spec.as_ref().map(|s| s.image.as_str()),
        Some("v2")
    );
    // Slots the update had not reached kept their task.
    for t in untouched.iter().skip(1) {
        assert!(sim.state.tasks[t.as_str()].is_live(), "{t} was replaced");
    }
}

#[test]
fn no_previous_spec_no_rollback() {
    let (sim, id) = running(1, UpdateConfig::default());
    let cur = sim.state.services[id.as_str()].clone();
    assert!(crate::orchestrator::update::start_rollback(&cur, 0).is_none());
}

#[test]
fn a_change_that_runs_the_same_starts_no_update() {
    let (mut sim, id) = running(2, UpdateConfig::default());
    sim.roll_out(&id, |s| {
        s.mode = ServiceMode::Replicated { replicas: 3 };
        s.labels.insert("k".into(), "v".into());
    });
    assert_eq!(sim.state.services[id.as_str()].update_status, None);
}

#[test]
fn start_first_keeps_the_old_task_when_the_new_ones_node_fails() {
    let (mut sim, id) = running(2, cfg(1, UpdateOrder::StartFirst, FailureAction::Pause));
    sim.roll_out(&id, |s| s.image = "v2".into());
    sim.converge(&PLANNERS);
    let live = sim.live(&id);
    let new = live
        .iter()
        .find(|t| t.spec.image == "v2")
        .expect("a new task");
    let old = live
        .iter()
        .find(|t| t.spec.image == "v1" && t.slot == new.slot)
        .expect("its old task");
    let (new_node, old_id) = (new.node_id.to_string(), old.id.to_string());
    assert_ne!(new_node, old.node_id.to_string(), "placed on another node");
    sim.update_node(&new_node, |n| n.state = NodeState::Down);
    sim.converge(&PLANNERS);
    assert_eq!(
        sim.state.tasks[old_id.as_str()].desired_state,
        TaskState::Running,
        "the old task keeps serving while the new one is replaced"
    );
    walk(&mut sim, &id, 12);
    assert_eq!(images(&sim, &id, "v2"), 2);
    assert_eq!(state(&sim, &id).0, UpdateState::Completed);
}
