//! Rolling updates: how a service's tasks are replaced when its spec changes
//! ([`UpdateConfig`], Docker's `--update-*` and `--rollback-*` flags) and where an update stands
//! ([`UpdateStatus`], Docker's `UpdateStatus`).

use serde::{Deserialize, Serialize};

/// What the updater does when too many new tasks fail (`--update-failure-action`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
pub enum FailureAction {
    /// Stop replacing tasks; the next `service update` resumes.
    #[default]
    Pause,
    /// Go on as if nothing failed.
    Continue,
    /// Return to the previous spec (only for updates, not for rollbacks).
    Rollback,
}

impl FailureAction {
    /// `pause`, `continue` or `rollback`, as the flags take it.
    pub fn as_str(self) -> &'static str {
        match self {
            FailureAction::Pause => "pause",
            FailureAction::Continue => "continue",
            FailureAction::Rollback => "rollback",
        }
    }
}

/// Whether a slot's old task stops before or after its replacement starts (`--update-order`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
pub enum UpdateOrder {
    /// Stop the old task, then start the new one.
    #[default]
    StopFirst,
    /// Start the new task; stop the old one once the new one runs (and is healthy).
    StartFirst,
}

impl UpdateOrder {
    /// `stop-first` or `start-first`.
    pub fn as_str(self) -> &'static str {
        match self {
            UpdateOrder::StopFirst => "stop-first",
            UpdateOrder::StartFirst => "start-first",
        }
    }
}

/// How tasks are replaced during an update or a rollback. Defaults are Docker's.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct UpdateConfig {
    /// Slots replaced at the same time; 0 = all at once.
    pub parallelism: u64,
    /// Wait after a slot's new task runs before that worker takes the next slot.
    pub delay_ms: u64,
    /// What to do when the failure ratio is exceeded.
    pub failure_action: FailureAction,
    /// How long after it started a new task's failure counts against the update.
    pub monitor_ms: u64,
    /// Share of the service's tasks that may fail during the update (0–1).
    pub max_failure_ratio: f64,
    /// Stop-first or start-first.
    pub order: UpdateOrder,
}

impl Default for UpdateConfig {
    fn default() -> Self {
        UpdateConfig {
            parallelism: 1,
            delay_ms: 0,
            failure_action: FailureAction::Pause,
            monitor_ms: DEFAULT_MONITOR_MS,
            max_failure_ratio: 0.0,
            order: UpdateOrder::StopFirst,
        }
    }
}

/// Docker's default `--update-monitor` and `--rollback-monitor`: 5 s.
pub const DEFAULT_MONITOR_MS: u64 = 5_000;

/// Where an update stands (Docker's `UpdateStatus.State`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum UpdateState {
    /// Replacing tasks with the new spec.
    Updating,
    /// Stopped after failures; `service update` resumes.
    Paused,
    /// Every task runs the new spec.
    Completed,
    /// Replacing tasks with the previous spec.
    RollbackStarted,
    /// A rollback stopped after failures.
    RollbackPaused,
    /// Every task runs the previous spec again.
    RollbackCompleted,
}

impl UpdateState {
    /// Docker's names: `updating`, `paused`, `completed`, `rollback_started`, `rollback_paused`,
    /// `rollback_completed`.
    pub fn as_str(self) -> &'static str {
        match self {
            UpdateState::Updating => "updating",
            UpdateState::Paused => "paused",
            UpdateState::Completed => "completed",
            UpdateState::RollbackStarted => "rollback_started",
            UpdateState::RollbackPaused => "rollback_paused",
            UpdateState::RollbackCompleted => "rollback_completed",
        }
    }

    /// Whether tasks are being replaced (an update or a rollback under way).
    pub fn in_progress(self) -> bool {
        matches!(self, UpdateState::Updating | UpdateState::RollbackStarted)
    }

    /// Whether a rollback (rather than an update) is meant.
    pub fn is_rollback(self) -> bool {
        matches!(
            self,
            UpdateState::RollbackStarted
                | UpdateState::RollbackPaused
                | UpdateState::RollbackCompleted
        )
    }
}

/// An update's progress, kept in the service.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UpdateStatus {
    /// Where it stands.
    pub state: UpdateState,
    /// When it started (ms since the epoch); failures of tasks created since count.
    pub started_ms: i64,
    /// When it completed; 0 while under way.
    pub completed_ms: i64,
    /// Docker's words for it (`update paused due to failure or early termination of task …`).
    pub message: String,
}

impl UpdateStatus {
    /// An update or rollback that starts at `now_ms`.
    pub fn started(state: UpdateState, now_ms: i64, message: impl Into<String>) -> UpdateStatus {
        UpdateStatus {
            state,
            started_ms: now_ms,
            completed_ms: 0,
            message: message.into(),
        }
    }
}
