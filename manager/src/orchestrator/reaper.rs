//! Task reaper (SK `orchestrator/taskreaper/task_reaper.go`): deletes tasks nobody needs.
//!
//! * Tasks of removed services and tasks marked REMOVE (scale-down), once they have stopped, or
//!   at once when they never reached a node or their node is down, drained or gone (the agent
//!   converges to its assignments, so a task deleted under it is stopped there).
//! * Retired tasks (desired SHUTDOWN) that never reached a node: they never ran; and retired
//!   tasks of a global service on a node that was removed: that history has no slot to show in.
//! * History: of the retired tasks that have stopped (or whose node is gone), the
//!   [`TASK_HISTORY_RETENTION`] newest per slot (global services: per node) are kept.

use super::{newest_first, node_invalid, Plan};
use shoal_proto::model::{ServiceMode, Task, TaskState};
use std::collections::BTreeMap;

/// Stopped tasks kept per slot (global: per node), like SwarmKit's default
/// `TaskHistoryRetentionLimit`.
pub const TASK_HISTORY_RETENTION: usize = 5;

/// Adds the reaper's deletions (and REMOVE marks for tasks of removed services) to `p`.
pub(crate) fn reap(p: &mut Plan<'_, '_>) {
    let state = p.state;
    let mut history: BTreeMap<(&str, u64, &str), Vec<&Task>> = BTreeMap::new();
    for t in state.tasks.values() {
        let service = state.services.get(&t.service_id);
        let never_assigned = t.status.state < TaskState::Assigned;
        let terminal = t.status.state.is_terminal();
        let node_bad = !t.node_id.is_empty() && node_invalid(state, &t.node_id);
        if service.is_none() || t.desired_state >= TaskState::Remove {
            if terminal || never_assigned || node_bad {
                p.delete(t);
            } else {
                p.set_desired(t, TaskState::Remove); // service gone: stop it first
            }
            continue;
        }
        if t.desired_state <= TaskState::Running {
            continue;
        }
        let node_gone = !state.nodes.contains_key(&t.node_id);
        let global = service.is_some_and(|s| s.spec.mode == ServiceMode::Global);
        if never_assigned || (global && node_gone) {
            // Never ran; or a global task's history for a node that no longer exists.
            p.delete(t);
        } else if terminal || node_gone {
            let key = if global {
                (t.service_id.as_str(), 0, t.node_id.as_str())
            } else {
                (t.service_id.as_str(), t.slot, "")
            };
            history.entry(key).or_default().push(t);
        }
    }
    for mut old in history.into_values() {
        if old.len() > TASK_HISTORY_RETENTION {
            old.sort_by(newest_first);
            for t in &old[TASK_HISTORY_RETENTION..] {
                p.delete(t);
            }
        }
    }
}
