//! The per-network tables every session needs (balancers, DNS, overlay endpoints), computed once
//! per applied index and shared by all sessions, each table with a version: the index at which
//! its content last changed. A session then compares versions, not tables, and builds its
//! node's view only when one of its networks' tables changed.

use crate::allocator::ipam::{self, Subnet};
use crate::store::State;
use shoal_proto::model::{NetworkDriver, NodeState, PublishMode, Task, TaskState};
use shoal_proto::pb;
use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};

/// A table and the applied index at which its content last changed.
#[derive(Debug, Clone, PartialEq)]
pub struct Versioned<T> {
    /// When the content last changed.
    pub version: u64,
    /// The content.
    pub value: T,
}

/// One endpoint of an overlay network: an address there, the underlay address of the node
/// holding it, and that node's id (a node is not its own peer).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Endpoint {
    /// The overlay address.
    pub ip: String,
    /// The underlay address of its node.
    pub node_ip: String,
    /// Its node.
    pub node_id: String,
}

/// Every network's tables at one applied index.
#[derive(Debug, Default)]
pub struct Tables {
    /// The applied index they were computed at (the state may be newer, never older).
    pub index: u64,
    /// Per overlay network (ingress included): its balancer table, `lb_addr` left empty (each
    /// node has its own).
    pub lb: BTreeMap<String, Versioned<pb::LbTable>>,
    /// Per overlay network other than ingress: the names its tasks resolve.
    pub dns: BTreeMap<String, Versioned<pb::DnsNetwork>>,
    /// Per overlay network: its endpoints on every node, sorted.
    pub peers: BTreeMap<String, Versioned<Vec<Endpoint>>>,
}

/// The firewall mark of a VIP: 256 + its offset in the network's subnet, unique per network
/// (each balancer namespace holds one network) and the same on every node.
pub fn fwmark(subnet: &str, vip: &str) -> Option<u32> {
    let net = Subnet::parse(subnet).ok()?;
    let vip = ipam::addr_of(vip)?;
    net.contains(vip)
        .then(|| 0x100 + (u32::from(vip) - u32::from(net.addr)))
}

/// Tasks that balancers and DNS answers include, by service: running and healthy (or without a
/// health check: see [`Task::serves`]), meant to run, on a node that is not down. A task with a
/// health check joins once its first probe passes and leaves as soon as it is unhealthy.
fn running_by_service(state: &State) -> BTreeMap<&str, Vec<&Task>> {
    let mut running: BTreeMap<&str, Vec<&Task>> = BTreeMap::new();
    for t in state.tasks.values() {
        let up = state
            .nodes
            .get(&t.node_id)
            .is_some_and(|n| n.state != NodeState::Down);
        if up && t.serves() && t.desired_state <= TaskState::Running {
            running.entry(t.service_id.as_str()).or_default().push(t);
        }
    }
    running
}

/// The address of `t` on `net_id`, if it has one.
fn addr_on(t: &Task, net_id: &str) -> Option<std::net::Ipv4Addr> {
    let a = t.networks.iter().find(|a| a.network_id == net_id)?;
    ipam::addr_of(a.addresses.first()?)
}

fn lb_table(
    state: &State,
    net: &shoal_proto::model::Network,
    running: &BTreeMap<&str, Vec<&Task>>,
) -> pb::LbTable {
    let net_id = net.id.as_str();
    let mut services: Vec<pb::LbService> = Vec::new();
    for svc in state.services.values() {
        let Some(vip) = svc.vips.iter().find(|v| v.network_id == net_id) else {
            continue;
        };
        let ports: Vec<pb::LbPort> = if net.ingress {
            svc.ports
                .iter()
                .filter(|p| p.mode == PublishMode::Ingress && p.published > 0)
                .map(|p| {
                    let pc = pb::PortConfig::from(p);
                    pb::LbPort {
                        protocol: pc.protocol,
                        published: pc.published,
                        target: pc.target,
                        traffic: pc.traffic,
                    }
                })
                .collect()
        } else {
            Vec::new()
        };
        if net.ingress && ports.is_empty() {
            continue;
        }
        let mut backends: Vec<pb::LbBackend> = running
            .get(svc.id.as_str())
            .into_iter()
            .flatten()
            .filter_map(|t| {
                Some(pb::LbBackend {
                    task_id: t.id.to_string(),
                    name: t.name(),
                    ip: addr_on(t, net_id)?.to_string(),
                })
            })
            .collect();
        backends.sort_by(|a, b| a.name.cmp(&b.name));
        services.push(pb::LbService {
            service_id: svc.id.to_string(),
            name: svc.spec.name.clone(),
            vip: vip.addr.clone(),
            fwmark: fwmark(&net.subnet, &vip.addr).unwrap_or(0),
            ports,
            backends,
        });
    }
    services.sort_by(|a, b| a.name.cmp(&b.name));
    pb::LbTable {
        network_id: net_id.to_string(),
        ingress: net.ingress,
        lb_addr: String::new(),
        services,
        name: net.name.clone(),
        subnet: net.subnet.clone(),
        gateway: net.gateway.clone(),
        vni: net.vni,
    }
}

fn dns_table(
    state: &State,
    net: &shoal_proto::model::Network,
    running: &BTreeMap<&str, Vec<&Task>>,
) -> pb::DnsNetwork {
    let net_id = net.id.as_str();
    let mut services = Vec::new();
    for svc in state.services.values() {
        let Some(att) = svc.spec.networks.iter().find(|a| a.target == net_id) else {
            continue;
        };
        let vip = svc
            .vips
            .iter()
            .find(|v| v.network_id == net_id)
            .and_then(|v| ipam::addr_of(&v.addr))
            .map(|a| a.to_string())
            .unwrap_or_default();
        let mut tasks: Vec<pb::DnsTask> = running
            .get(svc.id.as_str())
            .into_iter()
            .flatten()
            .filter_map(|t| {
                Some(pb::DnsTask {
                    name: t.name(),
                    ip: addr_on(t, net_id)?.to_string(),
                })
            })
            .collect();
        tasks.sort_by(|a, b| a.name.cmp(&b.name));
        services.push(pb::DnsService {
            name: svc.spec.name.clone(),
            vip: if svc.spec.endpoint_mode == shoal_proto::model::EndpointMode::Vip {
                vip
            } else {
                String::new()
            },
            aliases: att.aliases.clone(),
            tasks,
        });
    }
    services.sort_by(|a, b| a.name.cmp(&b.name));
    pb::DnsNetwork {
        network_id: net_id.to_string(),
        name: net.name.clone(),
        services,
    }
}

/// Every endpoint of the overlay networks: the nodes' balancer addresses and the live tasks'
/// addresses, each with its node.
fn endpoints(state: &State) -> BTreeMap<String, Vec<Endpoint>> {
    let overlay = |id: &str| {
        state
            .networks
            .get(id)
            .is_some_and(|n| n.driver == NetworkDriver::Overlay)
    };
    let node_ip = |addr: &str| addr.rsplit_once(':').map_or(addr, |(h, _)| h).to_string();
    let mut out: BTreeMap<String, BTreeSet<Endpoint>> = BTreeMap::new();
    // The nodes' balancer endpoints: backends answer them.
    for n in state.nodes.values() {
        for (net, cidr) in &n.lb_addrs {
            if let (true, Some(ip)) = (overlay(net.as_str()), ipam::addr_of(cidr)) {
                out.entry(net.to_string()).or_default().insert(Endpoint {
                    ip: ip.to_string(),
                    node_ip: node_ip(&n.addr),
                    node_id: n.id.to_string(),
                });
            }
        }
    }
    for t in state.tasks.values() {
        if t.node_id.is_empty() || t.status.state.is_terminal() || t.networks.is_empty() {
            continue;
        }
        let Some(node) = state.nodes.get(&t.node_id) else {
            continue;
        };
        for a in t.networks.iter().filter(|a| overlay(a.network_id.as_str())) {
            for ip in a.addresses.iter().filter_map(|c| ipam::addr_of(c)) {
                out.entry(a.network_id.to_string())
                    .or_default()
                    .insert(Endpoint {
                        ip: ip.to_string(),
                        node_ip: node_ip(&node.addr),
                        node_id: node.id.to_string(),
                    });
            }
        }
    }
    out.into_iter()
        .map(|(k, v)| (k, v.into_iter().collect()))
        .collect()
}

/// `value` versioned against `prev`: its version stays while its content does.
fn versioned<T: PartialEq>(prev: Option<&Versioned<T>>, value: T, index: u64) -> Versioned<T> {
    match prev {
        Some(p) if p.value == value => Versioned {
            version: p.version,
            value,
        },
        _ => Versioned {
            version: index,
            value,
        },
    }
}

impl Tables {
    /// The tables of `state` at applied index `index`, versioned against `prev` (the tables of
    /// an earlier index, if any).
    pub fn build(state: &State, index: u64, prev: Option<&Tables>) -> Tables {
        let running = running_by_service(state);
        let mut t = Tables {
            index,
            ..Default::default()
        };
        for net in state
            .networks
            .values()
            .filter(|n| n.driver == NetworkDriver::Overlay)
        {
            let id = net.id.to_string();
            let lb = lb_table(state, net, &running);
            t.lb.insert(
                id.clone(),
                versioned(prev.and_then(|p| p.lb.get(&id)), lb, index),
            );
            if !net.ingress {
                let dns = dns_table(state, net, &running);
                t.dns.insert(
                    id.clone(),
                    versioned(prev.and_then(|p| p.dns.get(&id)), dns, index),
                );
            }
        }
        for (id, eps) in endpoints(state) {
            let v = versioned(prev.and_then(|p| p.peers.get(&id)), eps, index);
            t.peers.insert(id, v);
        }
        t
    }
}

/// The latest [`Tables`], built by the first session that needs them at a new index and shared
/// by the others.
#[derive(Debug, Default)]
pub struct TableCache {
    latest: Mutex<Option<Arc<Tables>>>,
}

impl TableCache {
    /// The tables of `state`, whose applied index is `index`: the cached ones if they are of
    /// that index or a later one (a reader may see an index that lags the state it reads; the
    /// next index wakes it again), else built now (once, whoever asks meanwhile waits).
    pub fn get(&self, state: &State, index: u64) -> Arc<Tables> {
        let mut latest = self.latest.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(t) = latest.as_ref().filter(|t| t.index >= index) {
            return t.clone();
        }
        let t = Arc::new(Tables::build(state, index, latest.as_deref()));
        *latest = Some(t.clone());
        t
    }

    /// Forgets the tables (leadership lost: the next leader term starts afresh).
    pub fn clear(&self) {
        *self.latest.lock().unwrap_or_else(|e| e.into_inner()) = None;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use shoal_proto::model::{Command, Network, Node, TaskStatus, TaskStatusUpdate};

    fn state() -> State {
        let mut s = State::default();
        s.networks.insert(
            "net1".into(),
            Network {
                id: "net1".into(),
                name: "front".into(),
                driver: NetworkDriver::Overlay,
                subnet: "10.0.1.0/24".into(),
                ..Default::default()
            },
        );
        for (id, lb) in [("n1", "10.0.1.250/24"), ("n2", "10.0.1.251/24")] {
            s.nodes.insert(
                id.into(),
                Node {
                    id: id.into(),
                    addr: format!("192.0.2.{}:2377", &id[1..]),
                    state: NodeState::Ready,
                    lb_addrs: [("net1".into(), lb.to_string())].into_iter().collect(),
                    ..Default::default()
                },
            );
        }
        s
    }

    /// A table keeps its version while its content stays, whatever else commits; the cache
    /// builds once per index.
    #[test]
    fn versions_move_only_when_a_table_changes() {
        let mut s = state();
        let t1 = Tables::build(&s, 1, None);
        assert_eq!(t1.peers["net1"].version, 1);
        assert_eq!(t1.peers["net1"].value.len(), 2, "both balancer endpoints");
        // An unrelated commit (a task without networks): same versions.
        s.apply(
            2,
            &Command::PutTasks(vec![Task {
                id: "a".into(),
                node_id: "n1".into(),
                ..Default::default()
            }]),
        );
        let t2 = Tables::build(&s, 2, Some(&t1));
        assert_eq!(t2.peers["net1"].version, 1);
        assert_eq!(t2.lb["net1"].version, 1);
        assert_eq!(t2.dns["net1"].version, 1);
        // A node leaves the network: its endpoint goes, the version moves.
        s.nodes.get_mut("n2").unwrap().lb_addrs.clear();
        let t3 = Tables::build(&s, 3, Some(&t2));
        assert_eq!(t3.peers["net1"].version, 3);
        assert_eq!(t3.peers["net1"].value.len(), 1);

        let cache = TableCache::default();
        let a = cache.get(&s, 3);
        let b = cache.get(&s, 3);
        assert!(Arc::ptr_eq(&a, &b), "built once per index");
        s.apply(
            4,
            &Command::TaskStatuses(vec![TaskStatusUpdate {
                task_id: "a".into(),
                status: TaskStatus {
                    state: TaskState::Running,
                    ..Default::default()
                },
            }]),
        );
        let c = cache.get(&s, 4);
        assert!(!Arc::ptr_eq(&b, &c));
        assert!(
            Arc::ptr_eq(&c, &cache.get(&s, 3)),
            "a lagging index takes the newer tables"
        );
        assert_eq!(
            c.peers["net1"].version, 3,
            "versioned against the previous build"
        );
        cache.clear();
        assert_eq!(cache.get(&s, 4).peers["net1"].version, 4, "afresh");
    }
}
