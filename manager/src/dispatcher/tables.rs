//! The per-network tables every session needs (balancers, DNS, overlay endpoints), computed once
//! per applied index and shared by all sessions, each table with a version: the index at which
//! its content last changed. A session then compares versions, not tables, and builds its
//! node's view only when one of its networks' tables changed.
//!
//! Each table also keeps its last [`HISTORY`] changes as deltas ([`Step`]s, computed once when the
//! table changes, shared by all sessions), so a session whose agent holds an older version can
//! send it the steps from there instead of the whole table (see [`Versioned::steps_from`]).

use crate::allocator::ipam::{self, Subnet};
use crate::store::State;
use prost::Message;
use shoal_proto::model::{NetworkDriver, NodeState, PublishMode, Task, TaskState};
use shoal_proto::pb;
use shoal_proto::tables::{dns_diff, lb_diff, sorted_diff};
use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};

/// How many changes of each table are kept as deltas.
pub const HISTORY: usize = 8;

/// What turned version `from` of a table into version `to`.
#[derive(Debug)]
pub struct Step<D> {
    /// The version it applies to.
    pub from: u64,
    /// The version it gives.
    pub to: u64,
    /// The change.
    pub delta: D,
    /// Its encoded size (bytes, roughly what it costs on the wire).
    pub size: usize,
}

/// A table, the applied index at which its content last changed, and its last changes.
#[derive(Debug)]
pub struct Versioned<T, D> {
    /// When the content last changed.
    pub version: u64,
    /// The content.
    pub value: Arc<T>,
    /// Its encoded size (bytes).
    pub size: usize,
    /// The last changes, oldest first, each `to` the next one's `from`, the last one's `to`
    /// this `version` (empty when the last change could not be a delta).
    pub steps: Vec<Arc<Step<D>>>,
}

impl<T, D> Clone for Versioned<T, D> {
    fn clone(&self) -> Self {
        Versioned {
            version: self.version,
            value: self.value.clone(),
            size: self.size,
            steps: self.steps.clone(),
        }
    }
}

impl<T, D> Versioned<T, D> {
    /// The changes from version `v` to this one, when they are kept and together smaller than
    /// the whole table (else the table goes whole). Empty when `v` is this version.
    pub fn steps_from(&self, v: u64) -> Option<&[Arc<Step<D>>]> {
        if v == self.version {
            return Some(&[]);
        }
        let i = self.steps.iter().position(|s| s.from == v)?;
        let chain = &self.steps[i..];
        let size: usize = chain.iter().map(|s| s.size).sum();
        (size < self.size).then_some(chain)
    }
}

/// A change of an overlay network's endpoints: those that came and those that went.
#[derive(Debug, Default, PartialEq)]
pub struct PeersDelta {
    /// Endpoints that came.
    pub added: Vec<Endpoint>,
    /// Endpoints that went.
    pub removed: Vec<Endpoint>,
}

/// A balancer table with its history.
pub type LbVersioned = Versioned<pb::LbTable, pb::LbDelta>;
/// A network's names with their history.
pub type DnsVersioned = Versioned<pb::DnsNetwork, pb::DnsDelta>;
/// A network's endpoints with their history.
pub type PeersVersioned = Versioned<Vec<Endpoint>, PeersDelta>;

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
    /// The [`TableCache`] generation they belong to: versions compare only within one (a
    /// version is a label given by one cache, see [`TableCache::get`]).
    pub epoch: u64,
    /// Per overlay network (ingress included): its balancer table, `lb_addr` left empty (each
    /// node has its own).
    pub lb: BTreeMap<String, LbVersioned>,
    /// Per overlay network other than ingress: the names its tasks resolve.
    pub dns: BTreeMap<String, DnsVersioned>,
    /// Per overlay network: its endpoints on every node, sorted.
    pub peers: BTreeMap<String, PeersVersioned>,
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

/// `value` versioned against `prev`: its version stays while its content does; a change is
/// kept as a step when `diff` can express it (else the history restarts here).
fn versioned<T: PartialEq, D>(
    prev: Option<&Versioned<T, D>>,
    value: T,
    index: u64,
    diff: impl Fn(&T, &T) -> Option<D>,
    size: impl Fn(&T) -> usize,
    delta_size: impl Fn(&D) -> usize,
) -> Versioned<T, D> {
    if let Some(p) = prev.filter(|p| *p.value == value) {
        return p.clone();
    }
    let mut steps = Vec::new();
    if let Some(p) = prev {
        if let Some(delta) = diff(&p.value, &value) {
            steps.extend(
                p.steps
                    .iter()
                    .skip((p.steps.len() + 1).saturating_sub(HISTORY))
                    .cloned(),
            );
            steps.push(Arc::new(Step {
                from: p.version,
                to: index,
                size: delta_size(&delta),
                delta,
            }));
        }
    }
    Versioned {
        version: index,
        size: size(&value),
        value: Arc::new(value),
        steps,
    }
}

/// Whether no two endpoints share an address and node address: an agent holds only those two
/// (its own node's endpoints left out), so only then is a change of endpoints one of its view.
fn injective(eps: &[Endpoint]) -> bool {
    eps.windows(2)
        .all(|w| (&w[0].ip, &w[0].node_ip) != (&w[1].ip, &w[1].node_ip))
}

/// The bytes an agent is sent for `eps` (an estimate: each as a `PeerEntry`).
fn peers_size(eps: &[Endpoint]) -> usize {
    eps.iter().map(|e| e.ip.len() + e.node_ip.len() + 6).sum()
}

fn peers_diff(old: &[Endpoint], new: &[Endpoint]) -> Option<PeersDelta> {
    if !injective(old) || !injective(new) {
        return None;
    }
    let (added, removed) = sorted_diff(old, new);
    Some(PeersDelta { added, removed })
}

impl Tables {
    /// The tables of `state` at applied index `index`, versioned against `prev` (the tables of
    /// an earlier index, if any).
    pub fn build(state: &State, index: u64, prev: Option<&Tables>) -> Tables {
        let running = running_by_service(state);
        let mut t = Tables {
            index,
            epoch: prev.map_or(0, |p| p.epoch),
            ..Default::default()
        };
        for net in state
            .networks
            .values()
            .filter(|n| n.driver == NetworkDriver::Overlay)
        {
            let id = net.id.to_string();
            let lb = lb_table(state, net, &running);
            let prev_lb = prev.and_then(|p| p.lb.get(&id));
            let lb = versioned(
                prev_lb,
                lb,
                index,
                lb_diff,
                |t| t.encoded_len(),
                |d| d.encoded_len(),
            );
            t.lb.insert(id.clone(), lb);
            if !net.ingress {
                let dns = dns_table(state, net, &running);
                let prev_dns = prev.and_then(|p| p.dns.get(&id));
                let dns = versioned(
                    prev_dns,
                    dns,
                    index,
                    dns_diff,
                    |t| t.encoded_len(),
                    |d| d.encoded_len(),
                );
                t.dns.insert(id.clone(), dns);
            }
        }
        for (id, eps) in endpoints(state) {
            let v = versioned(
                prev.and_then(|p| p.peers.get(&id)),
                eps,
                index,
                |a, b| peers_diff(a, b),
                |e| peers_size(e),
                |d| peers_size(&d.added) + peers_size(&d.removed),
            );
            t.peers.insert(id, v);
        }
        t
    }
}

/// The latest [`Tables`], built by the first session that needs them at a new index and shared
/// by the others.
#[derive(Debug, Default)]
pub struct TableCache {
    latest: Mutex<Cached>,
}

#[derive(Debug, Default)]
struct Cached {
    tables: Option<Arc<Tables>>,
    /// Bumped by [`TableCache::clear`]: the tables built after are another generation.
    epoch: u64,
}

impl TableCache {
    /// The tables of `state`, whose applied index is `index`: the cached ones if they are of
    /// that index or a later one (a reader may see an index that lags the state it reads; the
    /// next index wakes it again), else built now (once, whoever asks meanwhile waits).
    pub fn get(&self, state: &State, index: u64) -> Arc<Tables> {
        let mut latest = self.latest.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(t) = latest.tables.as_ref().filter(|t| t.index >= index) {
            return t.clone();
        }
        let mut t = Tables::build(state, index, latest.tables.as_deref());
        t.epoch = latest.epoch;
        let t = Arc::new(t);
        latest.tables = Some(t.clone());
        t
    }

    /// Forgets the tables (leadership lost: the next leader term starts afresh, and the
    /// versions it gives compare with none given before).
    pub fn clear(&self) {
        let mut latest = self.latest.lock().unwrap_or_else(|e| e.into_inner());
        latest.tables = None;
        latest.epoch += 1;
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
