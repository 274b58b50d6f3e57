//! The restart policy (SwarmKit's restart supervisor, SK `orchestrator/restart/restart.go`), as
//! two pure predicates: nothing is remembered between passes. The attempt count lives in the task
//! (`Task::attempt`) and the delay is measured from the ended task's status timestamp.

use shoal_proto::model::{RestartCondition, RestartPolicy, Task, TaskState};

/// Whether `policy` replaces `ended`, a task that stopped while it was wanted running.
///
/// `any` always does; `none` never; `on-failure` unless the task completed (exit 0). Like
/// SwarmKit, `on-failure` also restarts a task that was stopped without the orchestrator asking
/// (observed SHUTDOWN while desired RUNNING): it did not finish its work. `max_attempts` counts
/// replacements per slot: a task with `attempt >= max_attempts` is the last one (0 = unlimited).
pub fn allowed(policy: &RestartPolicy, ended: &Task) -> bool {
    let by_condition = match policy.condition {
        RestartCondition::Any => true,
        RestartCondition::OnFailure => ended.status.state != TaskState::Complete,
        RestartCondition::None => false,
    };
    by_condition && (policy.max_attempts == 0 || ended.attempt < policy.max_attempts)
}

/// Whether the restart delay since `ended` stopped has passed at `now_ms`.
pub fn due(policy: &RestartPolicy, ended: &Task, now_ms: i64) -> bool {
    let delay = i64::try_from(policy.delay_ms).unwrap_or(i64::MAX);
    now_ms >= ended.status.timestamp_ms.saturating_add(delay)
}
