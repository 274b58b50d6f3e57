//! The data plane of one node: a network namespace per task (`tk_<id>` under
//! `<state-dir>/netns/`) and the local network drivers (DESIGN §4):
//!
//! * `host`: the task shares the node's namespace;
//! * `none`: loopback only;
//! * `bridge` networks: a Linux bridge on the node (`shoal0` for the default `bridge` network,
//!   `shoal_gwbridge`, `swb<netid>` for user ones) holding the gateway address, a veth per task
//!   (`swt<id><n>` on the node, `eth<n>` inside) with an address from the node's own IPAM,
//!   masquerading out of the bridge, and no forwarding between two different bridges.
//!
//! Everything is level-triggered: [`DataPlane::prepare`] converges a task's sandbox whatever
//! part of it exists, [`DataPlane::release`] removes it, [`DataPlane::janitor`] removes
//! sandboxes no task owns (a crash's leftovers).

mod ipam;
mod lb;
mod overlay;

pub use ipam::{LocalIpam, Subnet};
pub use overlay::{Peer, OVERLAY_MTU};

use std::collections::{BTreeMap, HashSet};
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use serde_json::json;
use shoal_netlib::names;
use shoal_netlib::netns::{self, NetNs};
use shoal_netlib::nft::{expr, Batch, Family, Hook, Nft};
use shoal_netlib::rt::{mac_of_ipv4, Handle};
use shoal_proto::model::{NetworkAttachment, NetworkDriver, Protocol, PublishMode, Task};
use tracing::{debug, info, warn};

/// The nftables table this module owns in the node's namespace.
const NODE_TABLE: &str = "shoal";
/// The default `bridge` network's subnet, for tasks attached to no network.
const DEFAULT_BRIDGE_SUBNET: &str = "172.17.0.0/16";
/// `shoal_gwbridge`'s subnet: overlay tasks' way out.
const GW_BRIDGE_SUBNET: &str = "172.18.0.0/16";

/// Where a task runs, network-wise.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Sandbox {
    /// The node's own namespace (`--network host`).
    Host,
    /// Its own namespace.
    Netns {
        /// The namespace file.
        path: PathBuf,
        /// Its interfaces in attach order: name, address/prefix, gateway (None on `none`).
        interfaces: Vec<Interface>,
    },
}

/// One interface of a task.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Interface {
    /// `eth0`, `eth1`…
    pub name: String,
    /// The network's name.
    pub network: String,
    /// Address.
    pub addr: Ipv4Addr,
    /// Prefix length.
    pub prefix: u8,
    /// Gateway.
    pub gateway: Option<Ipv4Addr>,
    /// MAC (`02:42` + the address).
    pub mac: [u8; 6],
}

impl Sandbox {
    /// The task's first address, if it has one of its own.
    pub fn first_addr(&self) -> Option<Ipv4Addr> {
        match self {
            Sandbox::Netns { interfaces, .. } => interfaces.first().map(|i| i.addr),
            Sandbox::Host => None,
        }
    }
}

/// A bridge the node has for a local network.
#[derive(Debug, Clone, PartialEq, Eq)]
struct NodeBridge {
    name: String,
    subnet: Subnet,
}

/// What the node's own nftables table is made from.
#[derive(Debug, Default)]
struct NodeState {
    /// Bridge name → bridge.
    bridges: BTreeMap<String, NodeBridge>,
    /// Bridge name → the local tasks on it (a user bridge nobody uses is removed).
    bridge_users: BTreeMap<String, std::collections::BTreeSet<String>>,
    /// `(protocol, published port)` → task → (task address, target port): `mode=host` ports.
    host_ports: BTreeMap<(Protocol, u16), BTreeMap<String, (Ipv4Addr, u16)>>,
    /// The routing mesh: `ingress_sbox`'s address on `shoal_gwbridge` and the published ports.
    mesh: Option<(Ipv4Addr, std::collections::BTreeSet<(Protocol, u16)>)>,
}

/// The node's data plane.
#[derive(Debug, Clone)]
pub struct DataPlane {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    netns_dir: PathBuf,
    host: Handle,
    nft: Nft,
    ipam: Mutex<LocalIpam>,
    node: tokio::sync::Mutex<NodeState>,
    overlays: tokio::sync::Mutex<BTreeMap<String, overlay::Overlay>>,
    peers: tokio::sync::Mutex<std::collections::BTreeSet<Peer>>,
    lb: tokio::sync::Mutex<lb::LbPlane>,
    /// The node's namespace when it is not the caller's (tests).
    node_ns: Option<Arc<NetNs>>,
    /// The embedded DNS of the node's tasks.
    dns: crate::dns::Dns,
}

/// The attachments a task gets: its own, or the default `bridge` network when it has none.
/// A task on overlay networks only also gets `shoal_gwbridge`, last, for its traffic out of
/// the cluster (Docker's `docker_gwbridge`).
fn attachments(task: &Task) -> Vec<NetworkAttachment> {
    let local = |name: &str, subnet: &str, gateway: &str| {
        let mut a = NetworkAttachment {
            network_id: name.into(),
            ..Default::default()
        };
        a.network.name = name.into();
        a.network.driver = NetworkDriver::Bridge;
        a.network.subnet = subnet.into();
        a.network.gateway = gateway.into();
        a
    };
    if task.networks.is_empty() {
        return vec![local("bridge", DEFAULT_BRIDGE_SUBNET, "172.17.0.1")];
    }
    let mut atts = task.networks.clone();
    if atts
        .iter()
        .all(|a| a.network.driver == NetworkDriver::Overlay)
    {
        atts.push(local("shoal_gwbridge", GW_BRIDGE_SUBNET, "172.18.0.1"));
    }
    atts
}

/// The node bridge of a local network.
fn bridge_name(att: &NetworkAttachment) -> String {
    match att.network.name.as_str() {
        "bridge" => names::DEFAULT_BRIDGE.to_string(),
        "shoal_gwbridge" => names::GW_BRIDGE.to_string(),
        _ => names::bridge(&att.network_id),
    }
}

impl DataPlane {
    /// The data plane of the node whose state is in `state_dir`, programming the namespace the
    /// calling thread is in (the node's).
    pub async fn new(state_dir: &Path) -> anyhow::Result<DataPlane> {
        Self::with_node(state_dir, None).await
    }

    /// The same, programming the node namespace `node` (the caller's when `None`): what a test
    /// uses to stand a namespace in for a node.
    pub async fn with_node(
        state_dir: &Path,
        node: Option<Arc<NetNs>>,
    ) -> anyhow::Result<DataPlane> {
        let netns_dir = state_dir.join("netns");
        netns::prepare_dir(&netns_dir)?;
        let host = match &node {
            Some(ns) => Handle::in_ns(ns)?,
            None => Handle::new()?,
        };
        shoal_netlib::sysctl::set(node.as_deref(), "net.ipv4.ip_forward", "1")?;
        let ipam = LocalIpam::load(state_dir.join("network").join("ipam.json"));
        Ok(DataPlane {
            inner: Arc::new(Inner {
                netns_dir,
                host,
                nft: Nft::new(node.clone()),
                ipam: Mutex::new(ipam),
                node: Default::default(),
                overlays: Default::default(),
                peers: Default::default(),
                lb: Default::default(),
                dns: crate::dns::Dns::new(node.clone()),
                node_ns: node,
            }),
        })
    }

    /// The directory of the namespace files.
    pub fn netns_dir(&self) -> &Path {
        &self.inner.netns_dir
    }

    /// Builds (or finishes building) `task`'s sandbox.
    pub async fn prepare(&self, task: &Task) -> Result<Sandbox, String> {
        let atts = attachments(task);
        if atts.iter().any(|a| a.network.driver == NetworkDriver::Host) {
            return Ok(Sandbox::Host);
        }
        let ns_name = names::task_ns(&task.id);
        let ns =
            Arc::new(NetNs::ensure(&self.inner.netns_dir, &ns_name).map_err(|e| e.to_string())?);
        let inside = Handle::in_ns(&ns).map_err(|e| e.to_string())?;
        inside.ensure_up("lo").await.map_err(|e| e.to_string())?;
        let mut interfaces = Vec::new();
        for (n, att) in atts.iter().enumerate() {
            let n = u8::try_from(n).map_err(|_| "too many networks")?;
            match att.network.driver {
                NetworkDriver::Null | NetworkDriver::Host => {}
                NetworkDriver::Bridge => {
                    let i = self.attach_bridge(task, att, n, &ns, &inside).await?;
                    interfaces.push(i);
                }
                NetworkDriver::Overlay => {
                    let i = self.attach_overlay(task, att, n, &ns, &inside).await?;
                    interfaces.push(i);
                }
            }
        }
        if let Some(gw) = interfaces.iter().find_map(|i| i.gateway) {
            inside
                .ensure_default_route(gw)
                .await
                .map_err(|e| e.to_string())?;
        }
        self.publish_host_ports(task, &interfaces).await?;
        let ingress_if = atts
            .iter()
            .zip(&interfaces)
            .find(|(a, _)| {
                a.network.name == "ingress" && a.network.driver == NetworkDriver::Overlay
            })
            .map(|(_, i)| i.name.as_str());
        self.redirect_published(task, &ns, ingress_if).await?;
        // Service discovery on the task's overlay networks (ingress has none, as in Swarm).
        let dns_nets: Vec<String> = atts
            .iter()
            .filter(|a| a.network.driver == NetworkDriver::Overlay && a.network.name != "ingress")
            .map(|a| a.network_id.clone())
            .collect();
        self.inner.dns.serve(&task.id, &ns, dns_nets)?;
        Ok(Sandbox::Netns {
            path: ns.path().to_path_buf(),
            interfaces,
        })
    }

    async fn attach_bridge(
        &self,
        task: &Task,
        att: &NetworkAttachment,
        n: u8,
        ns: &NetNs,
        inside: &Handle,
    ) -> Result<Interface, String> {
        let subnet = Subnet::parse(&att.network.subnet)?;
        let gateway: Ipv4Addr = att.network.gateway.parse().map_err(|_| {
            format!(
                "network {}: bad gateway {:?}",
                att.network.name, att.network.gateway
            )
        })?;
        let br = bridge_name(att);
        self.ensure_bridge(&br, subnet, gateway, &task.id).await?;
        let addr = self
            .inner
            .ipam
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .assign(&att.network_id, subnet, gateway, &task.id)?;
        let outer = names::task_veth(&task.id, n);
        let name = names::task_ifname(n);
        let host = &self.inner.host;
        let err = |e: shoal_netlib::rt::Error| e.to_string();
        if inside.link(&name).await.map_err(err)?.is_none() {
            // A half-made pair from a crash: its outer end may still be on the node.
            host.del_link(&outer).await.map_err(err)?;
            host.ensure_veth(&outer, &name, Some(ns))
                .await
                .map_err(err)?;
        }
        host.ensure_master(&outer, &br).await.map_err(err)?;
        host.ensure_up(&outer).await.map_err(err)?;
        let mac = mac_of_ipv4(addr);
        inside.ensure_mac(&name, mac).await.map_err(err)?;
        inside
            .ensure_addr(&name, addr, subnet.prefix)
            .await
            .map_err(err)?;
        inside.ensure_up(&name).await.map_err(err)?;
        Ok(Interface {
            name,
            network: att.network.name.clone(),
            addr,
            prefix: subnet.prefix,
            gateway: Some(gateway),
            mac,
        })
    }

    /// The node's bridge for a local network, with its gateway address, and the node's NAT and
    /// isolation rules for every bridge.
    async fn ensure_bridge(
        &self,
        br: &str,
        subnet: Subnet,
        gateway: Ipv4Addr,
        task: &str,
    ) -> Result<(), String> {
        // One at a time: two tasks starting together must not both create the bridge.
        let mut node = self.inner.node.lock().await;
        node.bridge_users
            .entry(br.to_string())
            .or_default()
            .insert(task.to_string());
        let host = &self.inner.host;
        let err = |e: shoal_netlib::rt::Error| e.to_string();
        host.ensure_bridge(br).await.map_err(err)?;
        host.ensure_addr(br, gateway, subnet.prefix)
            .await
            .map_err(err)?;
        host.ensure_up(br).await.map_err(err)?;
        let want = NodeBridge {
            name: br.to_string(),
            subnet,
        };
        if node.bridges.get(br) == Some(&want) {
            return Ok(());
        }
        node.bridges.insert(br.to_string(), want);
        self.inner
            .nft
            .apply(&node_rules(&node))
            .await
            .map_err(|e| e.to_string())
    }

    /// Opens `task`'s `mode=host` ports on this node, to its address on the first network the
    /// node routes to (a bridge network).
    async fn publish_host_ports(
        &self,
        task: &Task,
        interfaces: &[Interface],
    ) -> Result<(), String> {
        let ports: Vec<_> = task
            .spec
            .ports
            .iter()
            .filter(|p| p.mode == PublishMode::Host && p.published != 0)
            .collect();
        if ports.is_empty() {
            return Ok(());
        }
        let Some(addr) = interfaces
            .iter()
            .find(|i| i.gateway.is_some())
            .map(|i| i.addr)
        else {
            return Err(
                "--publish mode=host needs the task on a bridge network (or the host network)"
                    .into(),
            );
        };
        let mut node = self.inner.node.lock().await;
        let mut changed = false;
        for p in ports {
            let slot = node
                .host_ports
                .entry((p.protocol, p.published))
                .or_default();
            changed |= slot.insert(task.id.clone(), (addr, p.target)) != Some((addr, p.target));
        }
        if changed {
            self.inner
                .nft
                .apply(&node_rules(&node))
                .await
                .map_err(|e| e.to_string())?;
        }
        Ok(())
    }

    /// Replaces the names the node's tasks resolve (the managers' tables).
    pub fn set_dns(&self, tables: &[shoal_proto::pb::DnsNetwork]) {
        self.inner.dns.set_tables(tables);
    }

    /// Where the embedded DNS sends names that are not the cluster's (`[]`: nowhere).
    pub fn set_dns_upstream(&self, servers: Vec<std::net::SocketAddr>) {
        self.inner.dns.set_upstream(servers);
    }

    /// Removes `task`'s sandbox and frees its addresses. Absent parts are not an error.
    pub async fn release(&self, task_id: &str) {
        self.inner.dns.stop(task_id);
        {
            let mut node = self.inner.node.lock().await;
            let count = |n: &NodeState| n.host_ports.values().map(BTreeMap::len).sum::<usize>();
            let before = count(&node);
            for tasks in node.host_ports.values_mut() {
                tasks.remove(task_id);
            }
            node.host_ports.retain(|_, t| !t.is_empty());
            // A user bridge network's bridge goes with its last local task.
            let mut unused = Vec::new();
            for (br, users) in node.bridge_users.iter_mut() {
                if users.remove(task_id) && users.is_empty() && br.starts_with(names::BRIDGE) {
                    unused.push(br.clone());
                }
            }
            for br in &unused {
                node.bridge_users.remove(br);
                node.bridges.remove(br);
                if let Err(e) = self.inner.host.del_link(br).await {
                    warn!("removing the unused bridge {br}: {e}");
                }
            }
            if count(&node) != before || !unused.is_empty() {
                if let Err(e) = self.inner.nft.apply(&node_rules(&node)).await {
                    warn!(task.id = task_id, "closing its host ports: {e}");
                }
            }
        }
        let path = self.inner.netns_dir.join(names::task_ns(task_id));
        // The task's veths die with its namespace.
        if let Err(e) = netns::delete_path(&path) {
            warn!(task.id = task_id, "removing {}: {e}", path.display());
        }
        self.inner
            .ipam
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .release(task_id);
        self.leave_overlays(task_id).await;
    }

    /// Removes the sandboxes and addresses of tasks not in `keep` (what a crash left).
    pub async fn janitor(&self, keep: &HashSet<String>) {
        let keep_ns: HashSet<String> = keep.iter().map(|t| names::task_ns(t)).collect();
        let present = netns::list(&self.inner.netns_dir).unwrap_or_default();
        for name in names::leftovers(
            present.iter().map(String::as_str),
            &[names::TASK_NS],
            &keep_ns,
        ) {
            info!("removing the leftover sandbox {name}");
            let _ = netns::delete_path(&self.inner.netns_dir.join(&name));
        }
        self.sweep_overlays().await;
        let holders = self
            .inner
            .ipam
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .tasks();
        for t in holders.iter().filter(|t| !keep.contains(*t)) {
            self.inner
                .ipam
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .release(t);
        }
    }

    /// Removes the overlay sandboxes nobody uses: not registered by a task or balancer of this
    /// agent, and without a port (a veth) of anyone else's. A restarted agent finds its adopted
    /// tasks' overlays still plugged in and keeps them: removing one would cut those tasks (and
    /// connections through the mesh) off their networks, and its VXLAN device, whose socket
    /// lives in the node's namespace, would hold its VNI until the kernel frees it.
    pub async fn sweep_overlays(&self) {
        let overlays = self.inner.overlays.lock().await;
        let present = netns::list(&self.inner.netns_dir).unwrap_or_default();
        let registered: HashSet<String> = overlays.keys().map(|n| names::overlay_ns(n)).collect();
        for name in names::leftovers(
            present.iter().map(String::as_str),
            &[names::OVERLAY_NS],
            &registered,
        ) {
            let path = self.inner.netns_dir.join(&name);
            let plugged = match NetNs::open(&path) {
                Ok(ns) => match Handle::in_ns(&ns) {
                    Ok(h) => h
                        .links()
                        .await
                        .map_or(true, |links| links.iter().any(|l| l.kind == "veth")),
                    // Cannot look inside: keep it rather than cut someone off.
                    Err(_) => true,
                },
                Err(_) => false,
            };
            if plugged {
                debug!("keeping the overlay sandbox {name}: it still has ports");
                continue;
            }
            info!("removing the leftover sandbox {name}");
            let _ = netns::delete_path(&path);
        }
    }
}

/// The node's table: masquerade what leaves a bridge's subnet through another interface, and
/// drop forwarding from one Shoal bridge to another (networks are isolated, as Docker's are).
fn node_rules(node: &NodeState) -> Batch {
    let bridges = &node.bridges;
    let t = NODE_TABLE;
    let mut b = Batch::new();
    b.add_table(Family::Ip, t)
        .delete_table(Family::Ip, t)
        .add_table(Family::Ip, t);
    b.add_chain(Family::Ip, t, "postrouting", Some(&Hook::nat_postrouting()));
    b.add_chain(
        Family::Ip,
        t,
        "forward",
        Some(&Hook {
            ty: "filter",
            hook: "forward",
            prio: 0,
        }),
    );
    let all: Vec<serde_json::Value> = bridges.keys().map(|n| json!(n)).collect();
    for br in bridges.values() {
        b.add_rule(
            Family::Ip,
            t,
            "postrouting",
            vec![
                expr::eq(expr::ip("saddr"), json!({"prefix": {"addr": br.subnet.addr.to_string(), "len": br.subnet.prefix}})),
                expr::ne(expr::meta("oifname"), json!(br.name)),
                expr::masquerade(),
            ],
            None,
        );
        b.add_rule(
            Family::Ip,
            t,
            "forward",
            vec![
                expr::eq(expr::meta("iifname"), json!(br.name)),
                expr::ne(expr::meta("oifname"), json!(br.name)),
                expr::eq(expr::meta("oifname"), json!({"set": all.clone()})),
                json!({"drop": null}),
            ],
            None,
        );
    }
    // The routing mesh: every published port on the node's own addresses (from outside and from
    // the node itself, `localhost` included) to `ingress_sbox`, which balances it.
    if let Some((sbox, ports)) = &node.mesh {
        for (chain, hook) in [
            ("prerouting", Hook::nat_prerouting()),
            ("output", Hook::nat_output()),
        ] {
            b.add_chain(Family::Ip, t, chain, Some(&hook));
            for (proto, port) in ports {
                b.add_rule(
                    Family::Ip,
                    t,
                    chain,
                    vec![
                        expr::eq(expr::fib(&["daddr"], "type"), json!("local")),
                        expr::eq(expr::meta("l4proto"), json!(proto.as_str())),
                        expr::eq(expr::th("dport"), json!(port)),
                        expr::dnat(*sbox, *port),
                    ],
                    None,
                );
            }
        }
        // From the node itself: 127.0.0.1 cannot be a source on the bridge.
        b.add_rule(
            Family::Ip,
            t,
            "postrouting",
            vec![
                expr::eq(expr::meta("oifname"), json!(names::GW_BRIDGE)),
                expr::eq(
                    expr::ip("saddr"),
                    json!({"prefix": {"addr": "127.0.0.0", "len": 8}}),
                ),
                expr::masquerade(),
            ],
            None,
        );
    }
    // `--publish P:T,mode=host`: the node's own addresses, port P, to the local tasks' T
    // (round robin when several tasks of the service run here), from outside and from the node.
    if !node.host_ports.is_empty() {
        for (chain, hook) in [
            ("prerouting", Hook::nat_prerouting()),
            ("output", Hook::nat_output()),
        ] {
            b.add_chain(Family::Ip, t, chain, Some(&hook));
            for ((proto, port), tasks) in &node.host_ports {
                let targets: Vec<(serde_json::Value, serde_json::Value)> = tasks
                    .values()
                    .enumerate()
                    .map(|(i, (ip, target))| {
                        (
                            json!(i),
                            expr::concat(vec![json!(ip.to_string()), json!(target)]),
                        )
                    })
                    .collect();
                let n = targets.len() as u32;
                b.add_rule(
                    Family::Ip,
                    t,
                    chain,
                    vec![
                        expr::eq(expr::fib(&["daddr"], "type"), json!("local")),
                        expr::eq(expr::meta("l4proto"), json!(proto.as_str())),
                        expr::eq(expr::th("dport"), json!(port)),
                        expr::dnat_to(expr::map_lookup(
                            expr::numgen_inc(n),
                            expr::anon_map(targets),
                        )),
                    ],
                    None,
                );
            }
        }
    }
    b
}

#[cfg(test)]
mod lb_tests;
#[cfg(test)]
mod tests;
