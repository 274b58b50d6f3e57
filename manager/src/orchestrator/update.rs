//! Rolling updates and rollbacks (SwarmKit's updater, SK `orchestrator/update/updater.go`), as
//! two pure functions over the store, like the rest of the orchestrator:
//!
//! * [`gate`]: how many of a service's outdated slots the orchestrator may start replacing in
//!   this pass, and in which order (stop-first or start-first). A slot counts as busy from the
//!   moment its new task is created until it has run for `delay`; `parallelism` bounds the busy
//!   slots (SwarmKit's workers, each waiting `delay` after its slot's task runs).
//! * [`plan`]: the update's state in the service: failures of new tasks beyond the allowed ratio
//!   pause it, roll it back or are ignored (`failure_action`); once every task runs the new spec
//!   and the last one has run for `monitor`, it is completed.
//!
//! Nothing is remembered between passes: a task belongs to the update when it runs the
//! service's current spec and was created after the update started. A task "runs" once it is
//! RUNNING, which a task with a health check reaches only when its probe passed.

use super::slot::{outdated, runs_the_same};
use crate::store::State;
use shoal_proto::model::{
    Command, FailureAction, Service, ServiceMode, ServiceSpec, Task, TaskState, UpdateConfig,
    UpdateOrder, UpdateState, UpdateStatus,
};

/// `current` with `spec` as its new spec (`service update`): the old spec kept for `service
/// rollback`, and an update started when what the tasks run changes, or resumed when one was
/// paused (Docker resumes a paused update with the next `service update`).
pub fn start(current: &Service, spec: ServiceSpec, now_ms: i64) -> Service {
    let mut next = current.clone();
    let paused = current
        .update_status
        .as_ref()
        .is_some_and(|u| matches!(u.state, UpdateState::Paused | UpdateState::RollbackPaused));
    let rollout = !runs_the_same(&current.spec, &spec);
    if spec != current.spec {
        next.previous_spec = Some(std::mem::replace(&mut next.spec, spec));
    }
    if rollout || paused {
        next.update_status = Some(UpdateStatus::started(
            UpdateState::Updating,
            now_ms,
            "update in progress",
        ));
    }
    next.updated_ms = now_ms;
    next
}

/// `current` back on its previous spec (`service rollback`, `service update --rollback`), the
/// spec it leaves becoming the previous one as Docker swaps them; `None` without a previous spec.
pub fn start_rollback(current: &Service, now_ms: i64) -> Option<Service> {
    let mut next = current.clone();
    let previous = next.previous_spec.take()?;
    next.previous_spec = Some(std::mem::replace(&mut next.spec, previous));
    next.update_status = Some(UpdateStatus::started(
        UpdateState::RollbackStarted,
        now_ms,
        "manually requested rollback",
    ));
    next.updated_ms = now_ms;
    Some(next)
}

/// What the update under way lets the orchestrator do with one service's outdated tasks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Gate {
    /// Slots that may start being replaced in this pass; `None` = all.
    budget: Option<u64>,
    /// Whether a slot's new task starts before its old one stops.
    pub order: UpdateOrder,
}

impl Gate {
    /// No update under way (or a service from before rolling updates): every outdated slot is
    /// replaced at once, stop-first.
    pub fn open() -> Gate {
        Gate {
            budget: None,
            order: UpdateOrder::StopFirst,
        }
    }

    /// Takes one slot from the budget; false when this pass may replace no more.
    pub fn take(&mut self) -> bool {
        match &mut self.budget {
            None => true,
            Some(0) => false,
            Some(n) => {
                *n -= 1;
                true
            }
        }
    }
}

/// The policy an update state walks by: the rollback's while rolling back.
fn config(svc: &Service, state: UpdateState) -> &UpdateConfig {
    if state.is_rollback() {
        &svc.spec.rollback
    } else {
        &svc.spec.update
    }
}

/// Whether `t` is a task the update under `status` created (it runs the current spec and was
/// created since the update started).
fn of_update(svc: &Service, status: &UpdateStatus, t: &Task) -> bool {
    t.created_ms >= status.started_ms && !outdated(svc, t)
}

/// Alive: wanted running and not ended.
fn live(t: &Task) -> bool {
    t.desired_state <= TaskState::Running && !t.status.state.is_terminal()
}

/// When `t` started running (its status time once RUNNING).
fn running_since(t: &Task) -> Option<i64> {
    (t.status.state == TaskState::Running).then_some(t.status.timestamp_ms)
}

/// How far the orchestrator may go with `svc`'s outdated tasks at `now_ms`; `tasks` are all the
/// service's tasks.
pub(crate) fn gate(svc: &Service, tasks: &[&Task], now_ms: i64) -> Gate {
    let Some(status) = &svc.update_status else {
        return Gate::open();
    };
    let c = config(svc, status.state);
    let order = c.order;
    let budget = match status.state {
        UpdateState::Paused | UpdateState::RollbackPaused => Some(0),
        UpdateState::Completed | UpdateState::RollbackCompleted => None,
        UpdateState::Updating | UpdateState::RollbackStarted if c.parallelism == 0 => None,
        UpdateState::Updating | UpdateState::RollbackStarted => {
            let delay = i64::try_from(c.delay_ms).unwrap_or(i64::MAX);
            // Busy: a new task wanted running (ended ones wait for their restart) that has
            // not yet run for `delay`.
            let busy = tasks
                .iter()
                .filter(|t| t.desired_state <= TaskState::Running && of_update(svc, status, t))
                .filter(|t| match running_since(t) {
                    None => true,
                    Some(since) => now_ms < since.saturating_add(delay),
                })
                .count() as u64;
            Some(c.parallelism.saturating_sub(busy))
        }
    };
    Gate { budget, order }
}

/// The first of the update's tasks that failed or ended early, and how many did.
fn failures<'t>(
    svc: &Service,
    status: &UpdateStatus,
    tasks: &[&'t Task],
) -> (u64, Option<&'t Task>) {
    let mut failed: Vec<&Task> = tasks
        .iter()
        .copied()
        .filter(|t| of_update(svc, status, t))
        .filter(|t| {
            matches!(
                t.status.state,
                TaskState::Failed | TaskState::Rejected | TaskState::Complete
            )
        })
        .collect();
    failed.sort_by_key(|t| (t.status.timestamp_ms, t.id.clone()));
    (failed.len() as u64, failed.first().copied())
}

/// How many tasks the service wants: its replicas, or (global) the nodes it runs on.
fn wanted(svc: &Service, tasks: &[&Task]) -> u64 {
    match svc.spec.mode {
        ServiceMode::Replicated { replicas } => replicas,
        ServiceMode::Global => tasks.iter().filter(|t| live(t)).count() as u64,
    }
}

/// The updater's pass: one `UpdateService` per service whose update changes state (paused,
/// rolled back, completed), written at the version read.
pub fn plan(state: &State, now_ms: i64) -> Vec<Command> {
    let mut by_service: std::collections::BTreeMap<&str, Vec<&Task>> = Default::default();
    for t in state.tasks.values() {
        by_service.entry(t.service_id.as_str()).or_default().push(t);
    }
    state
        .services
        .values()
        .filter_map(|svc| {
            let tasks = by_service
                .get(svc.id.as_str())
                .map(Vec::as_slice)
                .unwrap_or_default();
            next(svc, tasks, now_ms).map(Command::UpdateService)
        })
        .collect()
}

/// `svc` with its update moved on, or `None` when it stays where it is.
pub(crate) fn next(svc: &Service, tasks: &[&Task], now_ms: i64) -> Option<Service> {
    let status = svc.update_status.as_ref()?;
    if !status.state.in_progress() {
        return None;
    }
    let rollback = status.state.is_rollback();
    let c = config(svc, status.state);
    let (failed, first) = failures(svc, status, tasks);
    if let Some(first) = first.filter(|_| c.failure_action != FailureAction::Continue) {
        let total = wanted(svc, tasks).max(1);
        if failed as f64 > c.max_failure_ratio * total as f64 {
            return Some(on_failure(
                svc,
                c.failure_action,
                rollback,
                &first.id,
                now_ms,
            ));
        }
    }
    let mut last_ready = status.started_ms;
    for t in tasks.iter().filter(|t| live(t)) {
        if outdated(svc, t) {
            return None; // slots left to replace
        }
        match running_since(t) {
            None => return None, // a new task still starting
            Some(since) if of_update(svc, status, t) => last_ready = last_ready.max(since),
            Some(_) => {}
        }
    }
    let monitor = i64::try_from(c.monitor_ms).unwrap_or(i64::MAX);
    if now_ms < last_ready.saturating_add(monitor) {
        return None;
    }
    let mut done = svc.clone();
    done.update_status = Some(UpdateStatus {
        state: if rollback {
            UpdateState::RollbackCompleted
        } else {
            UpdateState::Completed
        },
        started_ms: status.started_ms,
        completed_ms: now_ms,
        message: if rollback {
            "rollback completed"
        } else {
            "update completed"
        }
        .to_string(),
    });
    Some(done)
}

/// `svc` after too many of its update's tasks failed, `task` the first of them.
fn on_failure(
    svc: &Service,
    action: FailureAction,
    rollback: bool,
    task: &str,
    now_ms: i64,
) -> Service {
    let mut next = svc.clone();
    let started = svc
        .update_status
        .as_ref()
        .map(|s| s.started_ms)
        .unwrap_or(now_ms);
    let paused = |state, what: &str| UpdateStatus {
        state,
        started_ms: started,
        completed_ms: 0,
        message: format!("{what} paused due to failure or early termination of task {task}"),
    };
    next.update_status = Some(match (action, rollback, next.previous_spec.take()) {
        (_, true, prev) => {
            next.previous_spec = prev;
            paused(UpdateState::RollbackPaused, "rollback")
        }
        (FailureAction::Rollback, false, Some(prev)) => {
            next.previous_spec = Some(std::mem::replace(&mut next.spec, prev));
            UpdateStatus::started(
                UpdateState::RollbackStarted,
                now_ms,
                format!("update rolled back due to failure or early termination of task {task}"),
            )
        }
        (_, false, prev) => {
            next.previous_spec = prev;
            paused(UpdateState::Paused, "update")
        }
    });
    next
}
