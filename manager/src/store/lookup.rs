//! Finding a task the way users name one: every form `swarmctl` prints.
//!
//! * its id, or a unique prefix of it (`service ps` shows 12 characters);
//! * its full name `service.slot.taskid` (`service.nodeid.taskid` for global services);
//! * that name with the id shortened to a unique prefix (`web.5.b6h6wsx87u1p`);
//! * `service.slot` (`web.5`, the NAME column of `service ps`), or `service.node` for a global
//!   service (node id, id prefix or hostname): the slot's current task.

use super::State;
use shoal_proto::model::{ServiceMode, Task, TaskState};

/// Shortest id prefix accepted on its own (shorter ones would match by accident).
pub const MIN_PREFIX: usize = 3;

/// Why a task could not be resolved.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TaskLookupError {
    /// Nothing matches.
    #[error("task {0} not found")]
    NotFound(String),
    /// Several tasks match; the names of some of them.
    #[error("task {query} is ambiguous: it matches {}; use more of the id", candidates.join(", "))]
    Ambiguous {
        /// What the user typed.
        query: String,
        /// Full names of the matching tasks.
        candidates: Vec<String>,
    },
}

impl State {
    /// The task a user means by `query` (see the module's doc for the forms accepted).
    pub fn task(&self, query: &str) -> Result<&Task, TaskLookupError> {
        let not_found = || TaskLookupError::NotFound(query.to_string());
        if query.is_empty() {
            return Err(not_found());
        }
        if let Some(t) = self.tasks.get(query) {
            return Ok(t);
        }
        if let Some(t) = self.tasks.values().find(|t| t.name() == query) {
            return Ok(t);
        }
        // `service.slot.<id prefix>`: the name as printed with a shortened id.
        if let Some((head, id_prefix)) = query.rsplit_once('.') {
            if !id_prefix.is_empty() {
                let m = self
                    .tasks
                    .values()
                    .filter(|t| t.id.starts_with(id_prefix) && slot_name(t) == head);
                if let Some(t) = unique(query, m)? {
                    return Ok(t);
                }
            }
        }
        // `service.slot` / `service.node`: the slot's current task.
        if let Some((service, slot)) = query.rsplit_once('.') {
            if let Some(t) = self.slot_task(service, slot) {
                return Ok(t);
            }
        }
        if query.len() >= MIN_PREFIX && !query.contains('.') {
            let m = self.tasks.values().filter(|t| t.id.starts_with(query));
            if let Some(t) = unique(query, m)? {
                return Ok(t);
            }
        }
        Err(not_found())
    }

    /// The current task of slot `slot` of service `service` (name or id): the one the managers
    /// want running, else the newest. For global services `slot` names the node.
    fn slot_task(&self, service: &str, slot: &str) -> Option<&Task> {
        let svc = self.service(service)?;
        let in_slot = |t: &&Task| match svc.spec.mode {
            ServiceMode::Replicated { .. } => slot.parse::<u64>().is_ok_and(|s| s == t.slot),
            ServiceMode::Global => {
                t.node_id == slot || self.node(slot).is_some_and(|n| n.id == t.node_id)
            }
        };
        let tasks: Vec<&Task> = self
            .tasks
            .values()
            .filter(|t| t.service_id == svc.id)
            .filter(in_slot)
            .collect();
        tasks
            .iter()
            .copied()
            .filter(|t| t.desired_state <= TaskState::Running)
            .max_by_key(|t| (t.status.state == TaskState::Running, t.created_ms))
            .or_else(|| tasks.iter().copied().max_by_key(|t| t.created_ms))
    }
}

/// `service.slot` (or `service.nodeid`) of a task: its name without the id.
fn slot_name(t: &Task) -> String {
    match t.spec.mode {
        ServiceMode::Global => format!("{}.{}", t.service_name, t.node_id),
        ServiceMode::Replicated { .. } => format!("{}.{}", t.service_name, t.slot),
    }
}

/// The one task of `m`, `None` when there is none, an error when there are several.
fn unique<'a>(
    query: &str,
    mut m: impl Iterator<Item = &'a Task>,
) -> Result<Option<&'a Task>, TaskLookupError> {
    let Some(first) = m.next() else {
        return Ok(None);
    };
    let rest: Vec<&Task> = m.collect();
    if rest.is_empty() {
        return Ok(Some(first));
    }
    let mut candidates: Vec<String> = std::iter::once(first).chain(rest).map(Task::name).collect();
    candidates.sort();
    candidates.truncate(5);
    Err(TaskLookupError::Ambiguous {
        query: query.to_string(),
        candidates,
    })
}
