//! What a node must run: its tasks that have not ended. Sent in full once per session, then as
//! increments (changed tasks by version, removed ids).

use crate::store::State;
use shoal_proto::pb;
use std::collections::{BTreeMap, BTreeSet};

/// The versions last sent to one agent.
#[derive(Debug, Default)]
pub struct AssignmentSet {
    sent: BTreeMap<String, u64>,
    networks: BTreeMap<String, u64>,
    peers: BTreeSet<(String, String, String)>,
}

/// The remote endpoints of the overlay networks in `nets` as seen from `node_id`: every address
/// of a live task on another node, with that node's underlay address.
fn overlay_peers(
    state: &State,
    node_id: &str,
    nets: &BTreeSet<&str>,
) -> BTreeSet<(String, String, String)> {
    let mut out = BTreeSet::new();
    for t in state.tasks.values() {
        if t.node_id.is_empty() || t.node_id == node_id || t.status.state.is_terminal() {
            continue;
        }
        let Some(node) = state.nodes.get(&t.node_id) else {
            continue;
        };
        let node_ip = node
            .addr
            .rsplit_once(':')
            .map_or(node.addr.as_str(), |(h, _)| h)
            .to_string();
        for a in &t.networks {
            if !nets.contains(a.network_id.as_str()) {
                continue;
            }
            for addr in &a.addresses {
                let ip = addr.split('/').next().unwrap_or_default().to_string();
                out.insert((a.network_id.clone(), ip, node_ip.clone()));
            }
        }
    }
    out
}

impl AssignmentSet {
    /// The next message for `node_id`: everything on the first call (`full`), then only what
    /// changed. `None` when nothing changed.
    pub fn next(&mut self, state: &State, node_id: &str, full: bool) -> Option<pb::Assignments> {
        let current: BTreeMap<&str, &shoal_proto::model::Task> = state
            .node_tasks(node_id)
            .filter(|t| !t.status.state.is_terminal())
            .map(|t| (t.id.as_str(), t))
            .collect();
        let net_ids: BTreeSet<&str> = current
            .values()
            .flat_map(|t| t.networks.iter().map(|n| n.network_id.as_str()))
            .collect();
        let nets: Vec<&shoal_proto::model::Network> = net_ids
            .iter()
            .filter_map(|id| state.networks.get(*id))
            .collect();
        let mut msg = pb::Assignments {
            full,
            ..Default::default()
        };
        for (id, t) in &current {
            if full || self.sent.get(*id) != Some(&t.version) {
                msg.tasks.push((*t).into());
            }
        }
        if !full {
            msg.removed = self
                .sent
                .keys()
                .filter(|id| !current.contains_key(id.as_str()))
                .cloned()
                .collect();
        }
        for n in &nets {
            if full || self.networks.get(&n.id) != Some(&n.version) {
                msg.networks.push((*n).into());
            }
        }
        self.sent = current
            .iter()
            .map(|(id, t)| (id.to_string(), t.version))
            .collect();
        self.networks = nets.iter().map(|n| (n.id.clone(), n.version)).collect();
        let overlays: BTreeSet<&str> = nets
            .iter()
            .filter(|n| n.driver == shoal_proto::model::NetworkDriver::Overlay)
            .map(|n| n.id.as_str())
            .collect();
        let peers = overlay_peers(state, node_id, &overlays);
        if full || peers != self.peers {
            msg.peers_full = true;
            msg.peers = peers
                .iter()
                .map(|(n, ip, node)| pb::OverlayPeer {
                    network_id: n.clone(),
                    ip: ip.clone(),
                    node_ip: node.clone(),
                })
                .collect();
            self.peers = peers;
        }
        if !full
            && msg.tasks.is_empty()
            && msg.removed.is_empty()
            && msg.networks.is_empty()
            && !msg.peers_full
        {
            return None;
        }
        Some(msg)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use shoal_proto::model::{Command, Task, TaskState, TaskStatus};

    #[test]
    fn full_then_incremental() {
        let mut s = State::default();
        let t = |id: &str| Task {
            id: id.into(),
            node_id: "n1".into(),
            ..Default::default()
        };
        s.apply(1, &Command::PutTasks(vec![t("a"), t("b")]));
        let mut set = AssignmentSet::default();
        let full = set.next(&s, "n1", true).unwrap();
        assert!(full.full);
        assert_eq!(full.tasks.len(), 2);
        assert!(set.next(&s, "n1", false).is_none(), "nothing changed");
        s.apply(
            2,
            &Command::TaskStatuses(vec![(
                "a".into(),
                TaskStatus {
                    state: TaskState::Running,
                    ..Default::default()
                },
            )]),
        );
        let inc = set.next(&s, "n1", false).unwrap();
        assert_eq!(
            inc.tasks.iter().map(|t| t.id.as_str()).collect::<Vec<_>>(),
            vec!["a"]
        );
        s.apply(
            3,
            &Command::TaskStatuses(vec![(
                "b".into(),
                TaskStatus {
                    state: TaskState::Complete,
                    ..Default::default()
                },
            )]),
        );
        let inc = set.next(&s, "n1", false).unwrap();
        assert_eq!(inc.removed, vec!["b".to_string()]);
        assert!(set.next(&s, "n2", true).unwrap().tasks.is_empty());
    }
}
