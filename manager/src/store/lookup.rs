//! Finding an object the way users name one. Every lookup of the Control API goes through here,
//! and none ever picks one of several matches: it says which ones matched instead.
//!
//! Nodes, networks, services, secrets and configs: the id, the name (a node's hostname), or a unique id prefix of
//! at least [`MIN_PREFIX`] characters, tried in that order.
//!
//! Tasks, every form `swarmctl` prints:
//! * its id, or a unique prefix of it (`service ps` shows 12 characters);
//! * its full name `service.slot.taskid` (`service.nodeid.taskid` for global services);
//! * that name with the id shortened to a unique prefix (`web.5.b6h6wsx87u1p`);
//! * `service.slot` (`web.5`, the NAME column of `service ps`), or `service.node` for a global
//!   service (node id, id prefix or hostname): the slot's current task.

use super::{ObjectKind, State};
use shoal_proto::model::{
    ConfigObject, Network, Node, SecretObject, Service, ServiceMode, Task, TaskState,
};
use std::collections::BTreeMap;

/// Shortest id prefix accepted on its own (shorter ones would match by accident).
pub const MIN_PREFIX: usize = 3;

/// Most candidates an ambiguity error lists.
const MAX_CANDIDATES: usize = 5;

/// Why an object could not be resolved.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum LookupError {
    /// Nothing matches.
    #[error("{kind} {query} not found")]
    NotFound {
        /// What was looked for.
        kind: ObjectKind,
        /// What the user typed.
        query: String,
    },
    /// Several objects match.
    #[error("{kind} {query} is ambiguous: it matches {}; use more of the id", .candidates.join(", "))]
    Ambiguous {
        /// What was looked for.
        kind: ObjectKind,
        /// What the user typed.
        query: String,
        /// Some of the matches (task names, service and network names, node ids), sorted.
        candidates: Vec<String>,
    },
}

impl LookupError {
    fn not_found(kind: ObjectKind, query: &str) -> LookupError {
        LookupError::NotFound {
            kind,
            query: query.to_string(),
        }
    }
}

/// The one resolver: by id, then by name, then by unique id prefix. `label` names a match in
/// an ambiguity error.
fn resolve<'a, K, T>(
    kind: ObjectKind,
    query: &str,
    by_id: &'a BTreeMap<K, T>,
    name: impl Fn(&T) -> &str,
    label: impl Fn(&T) -> String,
) -> Result<&'a T, LookupError>
where
    K: Ord + std::borrow::Borrow<str>,
{
    if query.is_empty() {
        return Err(LookupError::not_found(kind, query));
    }
    if let Some(t) = by_id.get(query) {
        return Ok(t);
    }
    let named = by_id.values().filter(|t| name(t) == query);
    if let Some(t) = unique(kind, query, named, &label)? {
        return Ok(t);
    }
    if query.len() >= MIN_PREFIX {
        let prefixed = by_id
            .range::<str, _>((std::ops::Bound::Included(query), std::ops::Bound::Unbounded))
            .take_while(|(id, _)| (*id).borrow().starts_with(query))
            .map(|(_, t)| t);
        if let Some(t) = unique(kind, query, prefixed, &label)? {
            return Ok(t);
        }
    }
    Err(LookupError::not_found(kind, query))
}

/// The one item of `m`, `None` when there is none, an error when there are several.
fn unique<'a, T: 'a>(
    kind: ObjectKind,
    query: &str,
    mut m: impl Iterator<Item = &'a T>,
    label: impl Fn(&T) -> String,
) -> Result<Option<&'a T>, LookupError> {
    let Some(first) = m.next() else {
        return Ok(None);
    };
    let rest: Vec<&T> = m.collect();
    if rest.is_empty() {
        return Ok(Some(first));
    }
    let mut candidates: Vec<String> = std::iter::once(first).chain(rest).map(label).collect();
    candidates.sort();
    candidates.truncate(MAX_CANDIDATES);
    Err(LookupError::Ambiguous {
        kind,
        query: query.to_string(),
        candidates,
    })
}

impl State {
    /// The service a user means by `query`: id, name or unique id prefix.
    pub fn service(&self, query: &str) -> Result<&Service, LookupError> {
        resolve(
            ObjectKind::Service,
            query,
            &self.services,
            |s| &s.spec.name,
            |s| s.spec.name.clone(),
        )
    }

    /// The network a user means by `query`: id, name or unique id prefix.
    pub fn network(&self, query: &str) -> Result<&Network, LookupError> {
        resolve(
            ObjectKind::Network,
            query,
            &self.networks,
            |n| &n.name,
            |n| n.name.clone(),
        )
    }

    /// The secret a user means by `query`: id, name or unique id prefix.
    pub fn secret(&self, query: &str) -> Result<&SecretObject, LookupError> {
        resolve(
            ObjectKind::Secret,
            query,
            &self.secrets,
            |o| &o.name,
            |o| o.name.clone(),
        )
    }

    /// The config a user means by `query`: id, name or unique id prefix.
    pub fn config(&self, query: &str) -> Result<&ConfigObject, LookupError> {
        resolve(
            ObjectKind::Config,
            query,
            &self.configs,
            |o| &o.name,
            |o| o.name.clone(),
        )
    }

    /// The node a user means by `query`: id, hostname or unique id prefix. Two nodes may share
    /// a hostname: then the hostname is ambiguous and the error lists their ids.
    pub fn node(&self, query: &str) -> Result<&Node, LookupError> {
        resolve(
            ObjectKind::Node,
            query,
            &self.nodes,
            |n| &n.hostname,
            |n| n.id.to_string(),
        )
    }

    /// The task a user means by `query` (see the module's doc for the forms accepted).
    pub fn task(&self, query: &str) -> Result<&Task, LookupError> {
        let kind = ObjectKind::Task;
        let not_found = || LookupError::not_found(kind, query);
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
                if let Some(t) = unique(kind, query, m, Task::name)? {
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
            if let Some(t) = unique(kind, query, m, Task::name)? {
                return Ok(t);
            }
        }
        Err(not_found())
    }

    /// The current task of slot `slot` of service `service` (name or id): the one the managers
    /// want running, else the newest. For global services `slot` names the node.
    fn slot_task(&self, service: &str, slot: &str) -> Option<&Task> {
        let svc = self.service(service).ok()?;
        let in_slot = |t: &&Task| match svc.spec.mode {
            ServiceMode::Replicated { .. } => slot.parse::<u64>().is_ok_and(|s| s == t.slot),
            ServiceMode::Global => {
                t.node_id == slot || self.node(slot).is_ok_and(|n| n.id == t.node_id)
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
