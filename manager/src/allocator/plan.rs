//! The allocator's pass: service VIPs and task addresses, as raft commands.
//!
//! Like SwarmKit's network allocator (SK `allocator/network.go`, MB `cnmallocator`), but without a
//! private mirror: every pass rebuilds the used addresses from the store, so it cannot drift.

use super::ipam::{self, Subnet};
use crate::store::State;
use shoal_proto::model::{
    Command, EndpointMode, Network, NetworkAttachment, NetworkDriver, NodeLbAddr, PublishMode,
    ServiceSpec, Task, TaskState, VirtualIp,
};
use std::collections::{BTreeMap, BTreeSet};
use std::net::Ipv4Addr;

/// Status message of a task whose networks are allocated.
pub const ALLOCATED: &str = "allocated";

/// One allocator pass. Returns a single `Command::Batch` holding the services whose VIPs change
/// (`UpdateService` at their read version), the NEW tasks that got their addresses (now PENDING,
/// "allocated"), tasks that cannot be allocated yet with a new message, and the networks whose
/// IPAM cursor moved (`PutNetworks`); or nothing when everything is allocated.
pub fn plan(state: &State, now_ms: i64) -> Vec<Command> {
    let mut pools = Pools::new(state);
    let ingress = state.networks.values().find(|n| n.ingress);
    let mut cmds = Vec::new();

    // (a) Service VIPs first, so a service's VIP precedes its tasks' addresses.
    for svc in state.services.values() {
        let mut wanted: Vec<&str> = Vec::new();
        if svc.spec.endpoint_mode == EndpointMode::Vip {
            for net in attached_networks(state, &svc.spec, ingress) {
                if net.driver == NetworkDriver::Overlay {
                    wanted.push(&net.id);
                }
            }
        }
        let mut vips = Vec::with_capacity(wanted.len());
        for net_id in wanted {
            let kept = svc.vips.iter().find(|v| {
                v.network_id == net_id
                    && ipam::addr_of(&v.addr)
                        .is_some_and(|a| pools.get(net_id).is_some_and(|p| p.subnet.contains(a)))
            });
            match kept {
                Some(v) => vips.push(v.clone()),
                // An exhausted network is retried next pass; the VIP list stays as it is, so
                // this does not write in a loop.
                None => {
                    if let Some(addr) = pools.alloc(net_id) {
                        vips.push(VirtualIp {
                            network_id: net_id.to_string().into(),
                            addr,
                        });
                    }
                }
            }
        }
        if vips != svc.vips {
            let mut svc = svc.clone();
            svc.vips = vips;
            cmds.push(Command::UpdateService(svc));
        }
    }

    // (b) NEW tasks: one attachment per network, in attach order (ingress first, as Docker).
    let mut new_tasks: Vec<&Task> = state
        .tasks
        .values()
        .filter(|t| t.status.state == TaskState::New && t.desired_state <= TaskState::Running)
        .collect();
    new_tasks.sort_by(|a, b| {
        (a.created_ms, &a.service_id, a.slot, &a.id).cmp(&(
            b.created_ms,
            &b.service_id,
            b.slot,
            &b.id,
        ))
    });
    let mut tasks = Vec::new();
    for t in new_tasks {
        match allocate_task(state, &mut pools, t, ingress) {
            Ok(networks) => {
                let mut t = t.clone();
                t.networks = networks;
                // The published ports as allocated (dynamic ones filled in): the agent opens
                // `mode=host` ports from the task alone.
                if let Some(svc) = state.services.get(&t.service_id) {
                    if svc.ports.len() == t.spec.ports.len() {
                        t.spec.ports = svc.ports.clone();
                    }
                }
                t.status.state = TaskState::Pending;
                t.status.message = ALLOCATED.to_string();
                t.status.timestamp_ms = now_ms;
                tasks.push(t);
            }
            Err(why) if why.to_string() != t.status.message => {
                let mut t = t.clone();
                t.status.message = why.to_string();
                tasks.push(t);
            }
            Err(_) => {}
        }
    }

    // (c) Each node's load-balancer endpoint on ingress and on every overlay network it has
    // live tasks on (DESIGN §5: `lb_<netid>`, `ingress_sbox`). Kept until the network or node
    // goes.
    let mut lb = Vec::new();
    for node in state.nodes.values() {
        let mut nets: BTreeSet<&str> = ingress.map(|n| n.id.as_str()).into_iter().collect();
        for t in state
            .node_tasks(&node.id)
            .filter(|t| !t.status.state.is_terminal())
        {
            for a in &t.networks {
                if pools.get(&a.network_id).is_some() {
                    nets.insert(a.network_id.as_str());
                }
            }
        }
        for net in nets {
            if node.lb_addrs.contains_key(net) {
                continue;
            }
            if let Some(addr) = pools.alloc(net) {
                lb.push(NodeLbAddr {
                    node_id: node.id.clone(),
                    network_id: net.to_string().into(),
                    addr,
                });
            }
        }
    }
    if !lb.is_empty() {
        cmds.push(Command::SetNodeLbAddrs(lb));
    }

    let nets = pools.moved_cursors();
    if !nets.is_empty() {
        cmds.insert(0, Command::PutNetworks(nets));
    }
    if !tasks.is_empty() {
        cmds.push(Command::PutTasks(tasks));
    }
    if cmds.is_empty() {
        Vec::new()
    } else {
        vec![Command::Batch(cmds)]
    }
}

/// The networks a spec attaches to, in attach order: ingress first when it publishes ports in
/// ingress mode, then its own networks; duplicates and unknown ids skipped.
fn attached_networks<'a>(
    state: &'a State,
    spec: &ServiceSpec,
    ingress: Option<&'a Network>,
) -> Vec<&'a Network> {
    let mut out: Vec<&Network> = Vec::new();
    if let Some(ing) = ingress.filter(|_| spec.ports.iter().any(|p| p.mode == PublishMode::Ingress))
    {
        out.push(ing);
    }
    for a in &spec.networks {
        if let Some(n) = state.networks.get(a.target.as_str()) {
            if !out.iter().any(|o| o.id == n.id) {
                out.push(n);
            }
        }
    }
    out
}

/// Why a task's networks cannot be allocated yet; the text becomes the task's status message.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
enum Unallocatable {
    /// A network of its spec is gone.
    #[error("network {0} not found")]
    NetworkMissing(String),
    /// A network has no free address.
    #[error("no free address in network {name} ({subnet}); use a larger --subnet or remove unused tasks")]
    Exhausted { name: String, subnet: String },
}

/// A task's attachments, or why they cannot be made yet (nothing taken).
fn allocate_task(
    state: &State,
    pools: &mut Pools,
    t: &Task,
    ingress: Option<&Network>,
) -> Result<Vec<NetworkAttachment>, Unallocatable> {
    if let Some(missing) = t
        .spec
        .networks
        .iter()
        .find(|a| !state.networks.contains_key(a.target.as_str()))
    {
        return Err(Unallocatable::NetworkMissing(missing.target.clone()));
    }
    let mut out: Vec<NetworkAttachment> = Vec::new();
    for net in attached_networks(state, &t.spec, ingress) {
        let aliases = t
            .spec
            .networks
            .iter()
            .find(|a| a.target == net.id)
            .map(|a| a.aliases.clone())
            .unwrap_or_default();
        let addresses = if net.driver.is_local() {
            // Local scope: the agent addresses bridge networks itself; the attachment only keeps
            // the network's place in the attach order.
            Vec::new()
        } else {
            match pools.alloc(&net.id) {
                Some(a) => vec![a],
                None => {
                    pools.release(&out);
                    return Err(Unallocatable::Exhausted {
                        name: net.name.clone(),
                        subnet: net.subnet.clone(),
                    });
                }
            }
        };
        out.push(NetworkAttachment {
            network_id: net.id.clone(),
            addresses,
            aliases,
            network: net.into(),
        });
    }
    Ok(out)
}

/// Address pools of the overlay networks, as the store holds them plus this pass's allocations.
struct Pools<'a> {
    pools: BTreeMap<&'a str, Pool<'a>>,
}

struct Pool<'a> {
    net: &'a Network,
    subnet: Subnet,
    cursor: u32,
    used: BTreeSet<Ipv4Addr>,
}

impl<'a> Pools<'a> {
    fn new(state: &'a State) -> Pools<'a> {
        let mut pools: BTreeMap<&str, Pool> = BTreeMap::new();
        for n in state
            .networks
            .values()
            .filter(|n| n.driver == NetworkDriver::Overlay)
        {
            let Ok(subnet) = Subnet::parse(&n.subnet) else {
                continue;
            };
            let mut used = BTreeSet::from([subnet.gateway()]);
            used.extend(n.gateway.parse::<Ipv4Addr>().ok());
            pools.insert(
                &n.id,
                Pool {
                    net: n,
                    subnet,
                    cursor: n.ipam_cursor,
                    used,
                },
            );
        }
        let mut mark = |net_id: &str, cidr: &str| {
            if let (Some(p), Some(a)) = (pools.get_mut(net_id), ipam::addr_of(cidr)) {
                p.used.insert(a);
            }
        };
        for s in state.services.values() {
            for v in &s.vips {
                mark(&v.network_id, &v.addr);
            }
        }
        for n in state.nodes.values() {
            for (net, addr) in &n.lb_addrs {
                mark(net, addr);
            }
        }
        // A task's address is free again once the task has ended (SwarmKit deallocates on a
        // terminal state): ended tasks are kept for history (up to 5 per slot), and counting
        // them would exhaust a /24 after a few crash loops. The serial cursor keeps such an
        // address from being reused until the subnet wraps around.
        for t in state
            .tasks
            .values()
            .filter(|t| !t.status.state.is_terminal())
        {
            for a in &t.networks {
                for cidr in &a.addresses {
                    mark(&a.network_id, cidr);
                }
            }
        }
        Pools { pools }
    }

    fn get(&self, net_id: &str) -> Option<&Pool<'a>> {
        self.pools.get(net_id)
    }

    /// The next free address in CIDR form (`10.0.1.5/24`).
    fn alloc(&mut self, net_id: &str) -> Option<String> {
        let p = self.pools.get_mut(net_id)?;
        let (ip, cursor) = ipam::next_host(p.subnet, p.cursor, &p.used)?;
        p.used.insert(ip);
        p.cursor = cursor;
        Some(format!("{ip}/{}", p.subnet.prefix))
    }

    /// Gives back addresses taken for a task that could not be completed.
    fn release(&mut self, attachments: &[NetworkAttachment]) {
        for a in attachments {
            if let Some(p) = self.pools.get_mut(a.network_id.as_str()) {
                for ip in a.addresses.iter().filter_map(|c| ipam::addr_of(c)) {
                    p.used.remove(&ip);
                }
            }
        }
    }

    /// Networks whose cursor moved, at their read version.
    fn moved_cursors(&self) -> Vec<Network> {
        self.pools
            .values()
            .filter(|p| p.cursor != p.net.ipam_cursor)
            .map(|p| Network {
                ipam_cursor: p.cursor,
                ..p.net.clone()
            })
            .collect()
    }
}
