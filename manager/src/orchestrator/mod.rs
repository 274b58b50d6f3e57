//! Orchestrator: turns services into tasks, one pass at a time.
//!
//! [`plan`] is a pure, level-triggered function over the store (SwarmKit's replicated and global
//! orchestrators, restart supervisor and task reaper in one pass; SK `manager/orchestrator/`).
//! It keeps no memory between passes: a pending restart is a task that ended while its desired
//! state is still RUNNING, and a slot whose task ended for good (restart policy says no) is
//! recognised by that task, kept by the reaper as history. Applying its commands and planning
//! again yields nothing, so the actor can re-run it as often as it likes.
//!
//! * `replicated`: slots 1..=replicas, scale up and down.
//! * `global`: one task per eligible node.
//! * `slot`: what every slot (or global node) goes through: node failure, spec update, restart.
//! * `restart`: the restart policy.
//! * `reaper`: deletes old and removed tasks.
//! * `update`: how far a rolling update may go in this pass, and the updater's own pass
//!   ([`update::plan`], a leader actor of its own) that pauses, rolls back or completes it.

mod global;
mod reaper;
mod replicated;
mod restart;
mod slot;
#[cfg(test)]
pub(crate) mod testkit;
#[cfg(test)]
mod tests;
pub mod update;

use crate::store::State;
use shoal_proto::model::{
    Availability, Command, NodeState, Service, ServiceMode, Task, TaskId, TaskState, TaskStatus,
};
use std::collections::{BTreeMap, BTreeSet};

pub use reaper::TASK_HISTORY_RETENTION;
pub use restart::{allowed as restart_allowed, due as restart_due};
pub(crate) use slot::outdated;
pub use slot::runs_the_same;

/// Status message of a task the orchestrator creates.
pub const CREATED: &str = "created";

/// One orchestrator pass: returns a single `Command::Batch` (task updates and creations in one
/// `PutTasks`, then the reaper's `DeleteTasks`), or nothing when the store already matches the
/// services. `new_id` names the tasks it creates.
pub fn plan(state: &State, now_ms: i64, new_id: &mut dyn FnMut() -> String) -> Vec<Command> {
    let mut by_service: BTreeMap<&str, Vec<&Task>> = BTreeMap::new();
    for t in state.tasks.values() {
        by_service.entry(t.service_id.as_str()).or_default().push(t);
    }
    let mut p = Plan::new(state, now_ms, new_id);
    for svc in state.services.values() {
        let tasks = by_service
            .get(svc.id.as_str())
            .map(Vec::as_slice)
            .unwrap_or_default();
        let mut gate = update::gate(svc, tasks, now_ms);
        match svc.spec.mode {
            ServiceMode::Replicated { replicas } => {
                replicated::reconcile(&mut p, svc, replicas, tasks, &mut gate)
            }
            ServiceMode::Global => global::reconcile(&mut p, svc, tasks, &mut gate),
        }
    }
    reaper::reap(&mut p);
    p.into_commands()
}

/// Whether tasks on `node_id` must be replaced: the node is gone, down or drained
/// (SwarmKit's `InvalidNode`).
pub fn node_invalid(state: &State, node_id: &str) -> bool {
    match state.nodes.get(node_id) {
        None => true,
        Some(n) => n.state == NodeState::Down || n.availability == Availability::Drain,
    }
}

/// Newest first: the order of a slot's history.
pub(crate) fn newest_first(a: &&Task, b: &&Task) -> std::cmp::Ordering {
    (b.created_ms, b.attempt, &b.id).cmp(&(a.created_ms, a.attempt, &a.id))
}

/// What one pass decided so far.
pub(crate) struct Plan<'a, 'f> {
    /// The state read at the start of the pass.
    pub state: &'a State,
    /// The pass's clock.
    pub now_ms: i64,
    new_id: &'f mut dyn FnMut() -> String,
    /// Existing tasks to write back, by id, as read with fields changed.
    updates: BTreeMap<String, Task>,
    created: Vec<Task>,
    deleted: BTreeSet<TaskId>,
}

impl<'a, 'f> Plan<'a, 'f> {
    fn new(state: &'a State, now_ms: i64, new_id: &'f mut dyn FnMut() -> String) -> Plan<'a, 'f> {
        Plan {
            state,
            now_ms,
            new_id,
            updates: BTreeMap::new(),
            created: Vec::new(),
            deleted: BTreeSet::new(),
        }
    }

    /// Raises `t`'s desired state to `desired` (never lowers it).
    pub fn set_desired(&mut self, t: &Task, desired: TaskState) {
        if t.desired_state >= desired {
            return;
        }
        let u = self
            .updates
            .entry(t.id.to_string())
            .or_insert_with(|| t.clone());
        u.desired_state = TaskState::advance(u.desired_state, desired);
    }

    /// Asks for `t` to stop, without replacing it.
    pub fn shut_down(&mut self, t: &Task) {
        self.set_desired(t, TaskState::Shutdown);
    }

    /// Creates a task of `svc` in `slot` (replicated) or on `node_id` (global, slot 0).
    pub fn create(&mut self, svc: &Service, slot: u64, node_id: &str, attempt: u64) {
        let now = self.now_ms;
        self.created.push(Task {
            id: (self.new_id)().into(),
            service_id: svc.id.clone(),
            service_name: svc.spec.name.clone(),
            slot,
            node_id: node_id.to_string().into(),
            spec: svc.spec.clone(),
            spec_version: svc.spec_version,
            desired_state: TaskState::Running,
            status: TaskStatus {
                state: TaskState::New,
                message: CREATED.to_string(),
                timestamp_ms: now,
                ..Default::default()
            },
            networks: Vec::new(),
            attempt,
            created_ms: now,
            version: 0,
        });
    }

    /// Deletes `t` (the reaper).
    pub fn delete(&mut self, t: &Task) {
        self.deleted.insert(t.id.clone());
    }

    /// Whether `node_id` is gone, down or drained.
    pub fn node_invalid(&self, node_id: &str) -> bool {
        node_invalid(self.state, node_id)
    }

    fn into_commands(self) -> Vec<Command> {
        let deleted = self.deleted;
        let mut puts: Vec<Task> = self
            .updates
            .into_values()
            .filter(|t| !deleted.contains(t.id.as_str()))
            .collect();
        puts.extend(self.created);
        let mut cmds = Vec::new();
        if !puts.is_empty() {
            cmds.push(Command::PutTasks(puts));
        }
        if !deleted.is_empty() {
            cmds.push(Command::DeleteTasks(deleted.into_iter().collect()));
        }
        if cmds.is_empty() {
            Vec::new()
        } else {
            vec![Command::Batch(cmds)]
        }
    }
}
