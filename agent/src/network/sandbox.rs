//! A task's sandbox: its network namespace, one interface per network it is attached to, its
//! published ports, its embedded DNS; and its removal.

use std::collections::BTreeMap;
use std::net::Ipv4Addr;
use std::path::PathBuf;

use shoal_netlib::names;
use shoal_netlib::netns::NetNs;
use shoal_netlib::rt::mac_of_ipv4;
use shoal_proto::model::{NetworkAttachment, NetworkDriver, Task};
use tracing::warn;

use super::kernel::Namespace;
use super::node::{DEFAULT_BRIDGE_SUBNET, GW_BRIDGE_SUBNET};
use super::{lb, parse_subnet, DataPlane, Error, Result};

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

    /// `network=address/prefix` of each interface that has a gateway (what the managers
    /// show as the task's addresses).
    pub fn addresses(&self) -> Vec<String> {
        match self {
            Sandbox::Netns { interfaces, .. } => interfaces
                .iter()
                .filter(|i| i.gateway.is_some())
                .map(|i| format!("{}={}/{}", i.network, i.addr, i.prefix))
                .collect(),
            Sandbox::Host => Vec::new(),
        }
    }
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
    /// Builds (or finishes building) `task`'s sandbox.
    pub async fn prepare(&self, task: &Task) -> Result<Sandbox> {
        let atts = attachments(task);
        if atts.iter().any(|a| a.network.driver == NetworkDriver::Host) {
            return Ok(Sandbox::Host);
        }
        let ns_name = names::task_ns(&task.id);
        let inside = self.inner.kernel.ensure_ns(&ns_name)?;
        inside.ensure_up("lo").await?;
        let mut interfaces = Vec::new();
        for (n, att) in atts.iter().enumerate() {
            let n = u8::try_from(n).map_err(|_| Error::TooManyNetworks)?;
            match att.network.driver {
                NetworkDriver::Null | NetworkDriver::Host => {}
                NetworkDriver::Bridge => {
                    let i = self.attach_bridge(task, att, n, &*inside).await?;
                    interfaces.push(i);
                }
                NetworkDriver::Overlay => {
                    let i = self.attach_overlay(task, att, n, &*inside).await?;
                    interfaces.push(i);
                }
            }
        }
        if let Some(gw) = interfaces.iter().find_map(|i| i.gateway) {
            inside.ensure_default_route(gw).await?;
        }
        self.publish_host_ports(task, &interfaces).await?;
        let ingress_if = atts
            .iter()
            .zip(&interfaces)
            .find(|(a, _)| {
                a.network.name == "ingress" && a.network.driver == NetworkDriver::Overlay
            })
            .map(|(_, i)| i.name.as_str());
        if let Some(batch) = ingress_if.and_then(|i| lb::plan::redirect_published(task, i)) {
            inside.apply_nft(&batch).await?;
        }
        drop(inside);
        self.sync_task_vips(&task.id).await;
        // Service discovery on the task's overlay networks (ingress has none, as in Swarm).
        let dns_nets: Vec<String> = atts
            .iter()
            .filter(|a| a.network.driver == NetworkDriver::Overlay && a.network.name != "ingress")
            .map(|a| a.network_id.to_string())
            .collect();
        let path = self.inner.kernel.ns_path(&ns_name);
        let ns = NetNs::open(&path)?;
        self.inner
            .dns
            .serve(&task.id, &ns, dns_nets, self.timings().dns_tcp_idle)?;
        Ok(Sandbox::Netns { path, interfaces })
    }

    async fn attach_bridge(
        &self,
        task: &Task,
        att: &NetworkAttachment,
        n: u8,
        inside: &dyn Namespace,
    ) -> Result<Interface> {
        let subnet = parse_subnet(&att.network.subnet)?;
        let gateway: Ipv4Addr = att.network.gateway.parse().map_err(|_| Error::BadGateway {
            network: att.network.name.clone(),
            gateway: att.network.gateway.clone(),
        })?;
        let br = bridge_name(att);
        self.ensure_bridge(&br, subnet, gateway, &task.id).await?;
        let addr = self
            .ipam()
            .assign(&att.network_id, subnet, gateway, &task.id)?;
        let outer = names::task_veth(&task.id, n);
        let name = names::task_ifname(n);
        let host = &self.inner.host;
        if !inside.link_exists(&name).await? {
            // A half-made pair from a crash: its outer end may still be on the node.
            host.del_link(&outer).await?;
            host.ensure_veth(&outer, &name, inside.name()).await?;
        }
        host.ensure_master(&outer, &br).await?;
        host.ensure_up(&outer).await?;
        let mac = mac_of_ipv4(addr);
        inside.ensure_mac(&name, mac).await?;
        inside.ensure_addr(&name, addr, subnet.prefix()).await?;
        inside.ensure_up(&name).await?;
        Ok(Interface {
            name,
            network: att.network.name.clone(),
            addr,
            prefix: subnet.prefix(),
            gateway: Some(gateway),
            mac,
        })
    }

    /// Removes `task`'s sandbox and frees its addresses. Absent parts are not an error.
    pub async fn release(&self, task_id: &str) {
        self.inner.dns.stop(task_id);
        {
            let mut node = self.inner.node.lock().await;
            let count = |n: &super::node::NodeState| {
                n.host_ports.values().map(BTreeMap::len).sum::<usize>()
                    + n.local_tasks.values().map(BTreeMap::len).sum::<usize>()
            };
            let before = count(&node);
            let n = &mut *node;
            for tasks in n.host_ports.values_mut().chain(n.local_tasks.values_mut()) {
                tasks.remove(task_id);
            }
            node.host_ports.retain(|_, t| !t.is_empty());
            node.local_tasks.retain(|_, t| !t.is_empty());
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
                if let Err(e) = self.inner.host.apply_nft(&node.rules()).await {
                    warn!(task.id = task_id, "closing its host ports: {e}");
                }
            }
        }
        self.drop_task_vips(task_id).await;
        let name = names::task_ns(task_id);
        // The task's veths die with its namespace.
        if let Err(e) = self.inner.kernel.delete_ns(&name) {
            let path = self.inner.kernel.ns_path(&name);
            warn!(task.id = task_id, "removing {}: {e}", path.display());
        }
        self.ipam().release(task_id);
        self.leave_overlays(task_id).await;
    }
}
