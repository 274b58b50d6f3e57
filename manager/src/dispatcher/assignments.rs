//! What a node must run: its tasks that have not ended. Sent in full once per session, then as
//! increments (changed tasks by version, removed ids). The network tables (balancers, DNS,
//! overlay peers) come from the [`Tables`] shared by all sessions; a node's are resent when the
//! version of one of its networks' tables moved: whole to agents that did not ask for deltas,
//! else as versioned updates (see [`super::table_updates`]).

use super::table_updates;
use super::tables::Tables;
use crate::store::State;
use shoal_proto::model::NetworkDriver;
use shoal_proto::pb;
use std::collections::{BTreeMap, BTreeSet};

/// The versions last sent to one agent.
#[derive(Debug, Default)]
pub struct AssignmentSet {
    sent: BTreeMap<String, u64>,
    networks: BTreeMap<String, u64>,
    /// Per overlay network: the version of its endpoints sent.
    peers: BTreeMap<String, u64>,
    /// Per balancer: the version of its table and the node's address in it.
    lb: BTreeMap<String, (u64, String)>,
    /// Per network resolved: the version of its names.
    dns: BTreeMap<String, u64>,
    /// The secrets and configs sent (they are immutable: the ids say it all).
    data: BTreeSet<(i32, String)>,
    /// The agent takes table deltas (`SessionRequest.table_deltas`).
    deltas: bool,
    /// The generation of the tables whose versions were sent (see [`Tables::epoch`]).
    epoch: Option<u64>,
}

#[cfg(test)]
/// The overlay networks (ingress excluded, as in Swarm) the live tasks of `node_id` are on.
fn task_networks<'a>(state: &'a State, node_id: &str) -> BTreeSet<&'a str> {
    state
        .node_tasks(node_id)
        .filter(|t| !t.status.state.is_terminal())
        .flat_map(|t| t.networks.iter().map(|a| a.network_id.as_str()))
        .collect()
}

/// The balancer tables (network id → version, the node's address there) node `node_id` must
/// hold: one per overlay network its live tasks are on, plus ingress, where it has an address.
fn lb_keys(
    state: &State,
    tables: &Tables,
    node_id: &str,
    nets: &BTreeSet<&str>,
) -> BTreeMap<String, (u64, String)> {
    let Some(node) = state.nodes.get(node_id) else {
        return BTreeMap::new();
    };
    nets.iter()
        .filter_map(|id| {
            let t = tables.lb.get(*id)?;
            let addr = node.lb_addrs.get(*id)?;
            Some((id.to_string(), (t.version, addr.clone())))
        })
        .collect()
}

/// The node's balancers from their keys (see [`lb_keys`]).
fn lb_of(tables: &Tables, keys: &BTreeMap<String, (u64, String)>) -> Vec<pb::LbTable> {
    keys.iter()
        .filter_map(|(id, (_, addr))| {
            let mut t = pb::LbTable::clone(&tables.lb.get(id)?.value);
            t.lb_addr = addr.clone();
            Some(t)
        })
        .collect()
}

#[cfg(test)]
/// What the tasks of node `node_id` can resolve: per overlay network they are on (ingress
/// excluded, as in Swarm), every service attached to it with its VIP (none with dnsrr), aliases
/// and running tasks there.
pub fn dns_tables(state: &State, node_id: &str) -> Vec<pb::DnsNetwork> {
    let tables = Tables::build(state, 0, None);
    task_networks(state, node_id)
        .iter()
        .filter_map(|id| Some(pb::DnsNetwork::clone(&tables.dns.get(*id)?.value)))
        .collect()
}

#[cfg(test)]
/// The balancers node `node_id` must hold: one per overlay network it has live tasks on, plus
/// ingress, each listing the services with a VIP there and their running tasks on that network
/// on nodes that are not down — in the order of the network ids and service names.
pub fn lb_tables(state: &State, node_id: &str) -> Vec<pb::LbTable> {
    let tables = Tables::build(state, 0, None);
    let mut nets = task_networks(state, node_id);
    nets.extend(
        state
            .networks
            .values()
            .filter(|n| n.ingress)
            .map(|n| n.id.as_str()),
    );
    lb_of(&tables, &lb_keys(state, &tables, node_id, &nets))
}

/// The secrets and configs (kind, id) that `tasks` use and the store holds.
pub fn data_ids<'a>(
    state: &State,
    tasks: impl IntoIterator<Item = &'a shoal_proto::model::Task>,
) -> BTreeSet<(i32, String)> {
    let (secret, config) = (
        pb::task_data::Kind::Secret as i32,
        pb::task_data::Kind::Config as i32,
    );
    let mut ids = BTreeSet::new();
    for t in tasks {
        let secrets = t.spec.secrets.iter().map(|r| r.id.as_str());
        ids.extend(
            secrets
                .filter(|id| state.secrets.contains_key(*id))
                .map(|id| (secret, id.to_string())),
        );
        let configs = t.spec.configs.iter().map(|r| r.id.as_str());
        ids.extend(
            configs
                .filter(|id| state.configs.contains_key(*id))
                .map(|id| (config, id.to_string())),
        );
    }
    ids
}

/// The data of the secrets and configs `ids` (from [`data_ids`]): what a node must hold, and
/// nothing else (a node learns a secret only while it runs a task that needs it).
pub fn task_data(state: &State, ids: &BTreeSet<(i32, String)>) -> Vec<pb::TaskData> {
    ids.iter()
        .filter_map(|(kind, id)| {
            let data = if *kind == pb::task_data::Kind::Secret as i32 {
                &state.secrets.get(id.as_str())?.data
            } else {
                &state.configs.get(id.as_str())?.data
            };
            Some(pb::TaskData {
                kind: *kind,
                id: id.clone(),
                data: data.0.clone(),
            })
        })
        .collect()
}

impl AssignmentSet {
    /// The set of a session whose agent takes table deltas (`deltas`) or only whole tables.
    pub fn new(deltas: bool) -> Self {
        AssignmentSet {
            deltas,
            ..Default::default()
        }
    }

    /// The next message for `node_id`: everything on the first call (`full`), then only what
    /// changed. `None` when nothing changed. `tables` are those of `state` (or of an index it
    /// has not passed yet: see [`super::tables::TableCache`]).
    pub fn next(
        &mut self,
        state: &State,
        tables: &Tables,
        node_id: &str,
        full: bool,
    ) -> Option<pb::Assignments> {
        let current: BTreeMap<&str, &shoal_proto::model::Task> = state
            .node_tasks(node_id)
            .filter(|t| !t.status.state.is_terminal())
            .map(|t| (t.id.as_str(), t))
            .collect();
        let task_nets: BTreeSet<&str> = current
            .values()
            .flat_map(|t| t.networks.iter().map(|n| n.network_id.as_str()))
            .collect();
        // Every node holds the ingress network (its `ingress_sbox` publishes the mesh's ports).
        let net_ids: BTreeSet<&str> = task_nets
            .iter()
            .copied()
            .chain(
                state
                    .networks
                    .values()
                    .filter(|n| n.ingress)
                    .map(|n| n.id.as_str()),
            )
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
            if full || self.networks.get(n.id.as_str()) != Some(&n.version) {
                msg.networks.push((*n).into());
            }
        }
        self.sent = current
            .iter()
            .map(|(id, t)| (id.to_string(), t.version))
            .collect();
        self.networks = nets.iter().map(|n| (n.id.to_string(), n.version)).collect();
        let overlays: BTreeSet<&str> = nets
            .iter()
            .filter(|n| n.driver == NetworkDriver::Overlay)
            .map(|n| n.id.as_str())
            .collect();
        let peer_keys: BTreeMap<String, u64> = overlays
            .iter()
            .filter_map(|id| Some((id.to_string(), tables.peers.get(*id)?.version)))
            .collect();
        let lb = lb_keys(state, tables, node_id, &net_ids);
        let dns: BTreeMap<String, u64> = task_nets
            .iter()
            .filter_map(|id| Some((id.to_string(), tables.dns.get(*id)?.version)))
            .collect();
        if self.deltas {
            if full {
                // A new session: the agent drops whatever it held (`reset`).
                (self.lb, self.dns, self.peers) = Default::default();
            }
            let trusted = !full && self.epoch == Some(tables.epoch);
            let up = pb::TableUpdates {
                reset: full,
                lb: table_updates::lb(tables, &self.lb, &lb, trusted),
                dns: table_updates::dns(tables, &self.dns, &dns, trusted),
                peers: table_updates::peers(tables, node_id, &self.peers, &peer_keys, trusted),
            };
            self.epoch = Some(tables.epoch);
            (self.lb, self.dns, self.peers) = (lb, dns, peer_keys);
            if full || !up.lb.is_empty() || !up.dns.is_empty() || !up.peers.is_empty() {
                msg.tables = Some(up);
            }
        } else {
            self.whole_tables(&mut msg, tables, node_id, full, lb, dns, peer_keys);
        }
        // The ids first: the data is copied only into a message that carries it.
        let ids = data_ids(state, current.values().copied());
        if full || ids != self.data {
            msg.data_full = true;
            msg.data = task_data(state, &ids);
            self.data = ids;
        }
        if !full
            && msg.tasks.is_empty()
            && msg.removed.is_empty()
            && msg.networks.is_empty()
            && !msg.peers_full
            && !msg.lb_full
            && !msg.dns_full
            && !msg.data_full
            && msg.tables.is_none()
        {
            return None;
        }
        Some(msg)
    }

    /// The tables of `node_id` whole into `msg`, those that changed (all when `full`): for
    /// agents that take no deltas.
    #[allow(clippy::too_many_arguments)]
    fn whole_tables(
        &mut self,
        msg: &mut pb::Assignments,
        tables: &Tables,
        node_id: &str,
        full: bool,
        lb: BTreeMap<String, (u64, String)>,
        dns: BTreeMap<String, u64>,
        peer_keys: BTreeMap<String, u64>,
    ) {
        if full || peer_keys != self.peers {
            msg.peers_full = true;
            let mut peers = BTreeSet::new();
            for id in peer_keys.keys() {
                let eps = tables.peers.get(id).map(|v| v.value.as_slice());
                for e in eps
                    .unwrap_or_default()
                    .iter()
                    .filter(|e| e.node_id != node_id)
                {
                    peers.insert((id.as_str(), e.ip.as_str(), e.node_ip.as_str()));
                }
            }
            msg.peers = peers
                .into_iter()
                .map(|(n, ip, node)| pb::OverlayPeer {
                    network_id: n.to_string(),
                    ip: ip.to_string(),
                    node_ip: node.to_string(),
                })
                .collect();
            self.peers = peer_keys;
        }
        if full || lb != self.lb {
            msg.lb_full = true;
            msg.lb = lb_of(tables, &lb);
            self.lb = lb;
        }
        if full || dns != self.dns {
            msg.dns_full = true;
            msg.dns = dns
                .keys()
                .filter_map(|id| Some(pb::DnsNetwork::clone(&tables.dns.get(id)?.value)))
                .collect();
            self.dns = dns;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use shoal_proto::model::{Command, NodeState, Task, TaskState, TaskStatus, TaskStatusUpdate};

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
        let full = set
            .next(&s, &Tables::build(&s, 0, None), "n1", true)
            .unwrap();
        assert!(full.full);
        assert_eq!(full.tasks.len(), 2);
        assert!(
            set.next(&s, &Tables::build(&s, 0, None), "n1", false)
                .is_none(),
            "nothing changed"
        );
        s.apply(
            2,
            &Command::TaskStatuses(vec![TaskStatusUpdate {
                task_id: "a".into(),
                status: TaskStatus {
                    state: TaskState::Running,
                    ..Default::default()
                },
            }]),
        );
        let inc = set
            .next(&s, &Tables::build(&s, 0, None), "n1", false)
            .unwrap();
        assert_eq!(
            inc.tasks.iter().map(|t| t.id.as_str()).collect::<Vec<_>>(),
            vec!["a"]
        );
        s.apply(
            3,
            &Command::TaskStatuses(vec![TaskStatusUpdate {
                task_id: "b".into(),
                status: TaskStatus {
                    state: TaskState::Complete,
                    ..Default::default()
                },
            }]),
        );
        let inc = set
            .next(&s, &Tables::build(&s, 0, None), "n1", false)
            .unwrap();
        assert_eq!(inc.removed, vec!["b".to_string()]);
        assert!(set
            .next(&s, &Tables::build(&s, 0, None), "n2", true)
            .unwrap()
            .tasks
            .is_empty());
    }

    /// A node gets a secret's or config's data only while a live task of its own uses it, in
    /// the message that brings the task, and is told to forget it when the last such task ends.
    #[test]
    fn secrets_go_only_to_nodes_whose_tasks_use_them() {
        use shoal_proto::model::{
            ConfigObject, ConfigReference, Opaque, SecretObject, SecretReference, ServiceSpec,
        };
        let mut s = State::default();
        s.secrets.insert(
            "sec1".into(),
            SecretObject {
                id: "sec1".into(),
                name: "db_pass".into(),
                data: Opaque(b"pw".to_vec()),
                ..Default::default()
            },
        );
        s.configs.insert(
            "cfg1".into(),
            ConfigObject {
                id: "cfg1".into(),
                name: "conf".into(),
                data: Opaque(b"c".to_vec()),
                ..Default::default()
            },
        );
        let t = |id: &str, node: &str| Task {
            id: id.into(),
            node_id: node.into(),
            spec: ServiceSpec {
                secrets: vec![SecretReference {
                    id: "sec1".into(),
                    ..Default::default()
                }],
                configs: vec![ConfigReference {
                    id: "cfg1".into(),
                    ..Default::default()
                }],
                ..Default::default()
            },
            ..Default::default()
        };
        let mut n1 = AssignmentSet::default();
        let mut n2 = AssignmentSet::default();
        let first = n1
            .next(&s, &Tables::build(&s, 0, None), "n1", true)
            .unwrap();
        assert!(first.data_full && first.data.is_empty());
        n2.next(&s, &Tables::build(&s, 0, None), "n2", true)
            .unwrap();

        s.apply(1, &Command::PutTasks(vec![t("a", "n1"), t("b", "n1")]));
        let inc = n1
            .next(&s, &Tables::build(&s, 0, None), "n1", false)
            .unwrap();
        assert!(inc.data_full);
        let got: Vec<(i32, &str, &[u8])> = inc
            .data
            .iter()
            .map(|d| (d.kind, d.id.as_str(), d.data.as_slice()))
            .collect();
        assert_eq!(
            got,
            vec![
                (pb::task_data::Kind::Secret as i32, "sec1", &b"pw"[..]),
                (pb::task_data::Kind::Config as i32, "cfg1", &b"c"[..]),
            ]
        );
        assert!(
            n2.next(&s, &Tables::build(&s, 0, None), "n2", false)
                .is_none(),
            "n2 runs none of them"
        );
        let debug = format!("{inc:?}");
        assert!(
            debug.contains("<2 bytes redacted>") && !debug.contains("[112, 119]"),
            "Debug shows no data: {debug}"
        );

        let done = |id: &str| TaskStatusUpdate {
            task_id: id.into(),
            status: TaskStatus {
                state: TaskState::Complete,
                ..Default::default()
            },
        };
        s.apply(2, &Command::TaskStatuses(vec![done("a")]));
        let inc = n1
            .next(&s, &Tables::build(&s, 0, None), "n1", false)
            .unwrap();
        assert!(!inc.data_full, "b still uses them");
        s.apply(3, &Command::TaskStatuses(vec![done("b")]));
        let inc = n1
            .next(&s, &Tables::build(&s, 0, None), "n1", false)
            .unwrap();
        assert!(inc.data_full && inc.data.is_empty(), "{inc:?}");
    }

    /// Balancers and DNS take a task with a health check only once it is healthy, and drop it
    /// as soon as it is unhealthy; a task without a check counts once running.
    #[test]
    fn balancers_and_dns_take_running_tasks_that_are_healthy_or_unchecked() {
        use shoal_proto::model::{
            AttachedNetwork, Network, NetworkAttachment, NetworkAttachmentSpec, Node, Service,
            ServiceSpec, TaskHealth, VirtualIp,
        };
        let mut s = State::default();
        s.nodes.insert(
            "n1".into(),
            Node {
                id: "n1".into(),
                state: NodeState::Ready,
                lb_addrs: [("net1".into(), "10.0.1.250/24".to_string())]
                    .into_iter()
                    .collect(),
                ..Default::default()
            },
        );
        s.networks.insert(
            "net1".into(),
            Network {
                id: "net1".into(),
                name: "front".into(),
                driver: NetworkDriver::Overlay,
                subnet: "10.0.1.0/24".into(),
                gateway: "10.0.1.1".into(),
                ..Default::default()
            },
        );
        s.services.insert(
            "s1".into(),
            Service {
                id: "s1".into(),
                spec: ServiceSpec {
                    name: "web".into(),
                    networks: vec![NetworkAttachmentSpec {
                        target: "net1".into(),
                        aliases: vec![],
                    }],
                    ..Default::default()
                },
                vips: vec![VirtualIp {
                    network_id: "net1".into(),
                    addr: "10.0.1.2/24".into(),
                }],
                ..Default::default()
            },
        );
        // (task, state, health) → in the balancer and DNS answers?
        let cases = [
            ("a", TaskState::Running, TaskHealth::None, true),
            ("b", TaskState::Running, TaskHealth::Healthy, true),
            ("c", TaskState::Running, TaskHealth::Unhealthy, false),
            ("d", TaskState::Starting, TaskHealth::Starting, false),
            ("e", TaskState::Starting, TaskHealth::Unhealthy, false),
            ("f", TaskState::Starting, TaskHealth::None, false),
        ];
        let mut tasks = Vec::new();
        for (i, (id, state, health, _)) in cases.iter().enumerate() {
            tasks.push(Task {
                id: (*id).into(),
                service_id: "s1".into(),
                service_name: "web".into(),
                slot: i as u64 + 1,
                node_id: "n1".into(),
                desired_state: TaskState::Running,
                status: TaskStatus {
                    state: *state,
                    health: *health,
                    ..Default::default()
                },
                networks: vec![NetworkAttachment {
                    network_id: "net1".into(),
                    addresses: vec![format!("10.0.1.{}/24", 10 + i)],
                    aliases: vec![],
                    network: AttachedNetwork::default(),
                }],
                ..Default::default()
            });
        }
        s.apply(1, &Command::PutTasks(tasks));
        let want: Vec<&str> = cases.iter().filter(|c| c.3).map(|c| c.0).collect();
        let lb = lb_tables(&s, "n1");
        let table = lb.iter().find(|t| t.network_id == "net1").unwrap();
        let backends: Vec<&str> = table.services[0]
            .backends
            .iter()
            .map(|b| b.task_id.as_str())
            .collect();
        assert_eq!(backends, want);
        let dns = dns_tables(&s, "n1");
        let names: Vec<String> = dns[0].services[0]
            .tasks
            .iter()
            .map(|t| t.name.clone())
            .collect();
        assert_eq!(names, vec!["web.1.a".to_string(), "web.2.b".to_string()]);
        // The healthy task turns unhealthy: it leaves both at once.
        s.apply(
            2,
            &Command::TaskStatuses(vec![TaskStatusUpdate {
                task_id: "b".into(),
                status: TaskStatus {
                    state: TaskState::Running,
                    health: TaskHealth::Unhealthy,
                    ..Default::default()
                },
            }]),
        );
        assert_eq!(s.tasks["b"].status.health, TaskHealth::Unhealthy);
        let lb = lb_tables(&s, "n1");
        let table = lb.iter().find(|t| t.network_id == "net1").unwrap();
        assert_eq!(table.services[0].backends.len(), 1);
        assert_eq!(dns_tables(&s, "n1")[0].services[0].tasks.len(), 1);
    }
}
