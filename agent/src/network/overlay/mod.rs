//! Overlay networks (DESIGN §4): per node and network a sandbox namespace `ov_<netid>` with a
//! bridge `br0` (the network's gateway address, MTU 1450) and a VXLAN device (the network's VNI,
//! UDP 4789, no learning, proxy ARP, no multicast) created in the node's namespace — so its UDP
//! socket lives on the underlay — and moved into the sandbox. Tasks plug into `br0` with a veth.
//! Remote endpoints come from the managers' allocations, never from gossip (see [`peers`]).

mod peers;

pub use peers::Peer;

use std::collections::{BTreeMap, BTreeSet};
use std::net::Ipv4Addr;
use std::sync::Arc;

use shoal_netlib::names;
use shoal_netlib::rt::{mac_of_ipv4, Vxlan};
use shoal_proto::model::{Ipv4Net, NetworkAttachment, Task};
use tracing::{debug, info};

use super::kernel::Namespace;
use super::lb::plan::LB_USER_PREFIX;
use super::{parse_subnet, DataPlane, Error, Interface, Result};

/// The overlay MTU: the underlay's 1500 less the 50 bytes of VXLAN encapsulation.
pub const OVERLAY_MTU: u32 = 1450;
/// The sandbox's bridge.
const BR: &str = names::SANDBOX_BRIDGE;

/// One overlay network's sandbox on this node.
#[derive(Debug)]
pub(super) struct Overlay {
    ns: Arc<dyn Namespace>,
    vxlan: String,
    /// Local tasks on the network (and balancers, as `lb:<netid>`).
    users: BTreeSet<String>,
}

/// An address with its prefix length, `a.b.c.d/len` (as the managers allocate them).
pub(super) fn cidr(s: &str) -> Result<(Ipv4Addr, u8)> {
    let net: Ipv4Net = s
        .parse()
        .map_err(|_| Error::BadAddress { addr: s.into() })?;
    Ok((net.addr(), net.prefix()))
}

impl DataPlane {
    /// The sandbox of `att`'s overlay network, built if missing, with `user` registered on it.
    pub(super) async fn ensure_overlay(
        &self,
        att: &NetworkAttachment,
        user: &str,
    ) -> Result<Arc<dyn Namespace>> {
        let mut overlays = self.inner.overlays.lock().await;
        if let Some(o) = overlays.get_mut(att.network_id.as_str()) {
            o.users.insert(user.to_string());
            return Ok(Arc::clone(&o.ns));
        }
        let subnet = parse_subnet(&att.network.subnet)?;
        let gateway: Ipv4Addr = att
            .network
            .gateway
            .parse()
            .map_err(|_| Error::OverlayGateway)?;
        if att.network.vni == 0 {
            return Err(Error::NoVni {
                network: att.network.name.clone(),
            });
        }
        let ov = self
            .inner
            .kernel
            .ensure_ns(&names::overlay_ns(&att.network_id))?;
        ov.ensure_up("lo").await?;
        // br0 filters nothing: no detour through the sandbox's (empty) netfilter hooks.
        for key in shoal_netlib::sysctl::BR_NETFILTER {
            // Best effort: a kernel without br_netfilter has no such keys (and no detour).
            if let Err(error) = ov.sysctl(key, "0") {
                debug!(net.id = %att.network_id, key, %error, "sandbox sysctl not set");
            }
        }
        ov.ensure_bridge(BR).await?;
        ov.ensure_mtu(BR, OVERLAY_MTU).await?;
        ov.ensure_addr(BR, gateway, subnet.prefix()).await?;
        ov.ensure_up(BR).await?;
        let vx = names::vxlan(att.network.vni);
        if !ov.link_exists(&vx).await? {
            // Made in the node's namespace so that its UDP socket is on the underlay.
            let host = &self.inner.host;
            host.del_link(&vx).await?;
            let mut v = Vxlan::new(&vx, att.network.vni);
            v.mtu = OVERLAY_MTU;
            // The port the managers keep any published UDP port off.
            v.port = shoal_proto::model::VXLAN_PORT;
            host.ensure_vxlan(&v).await?;
            host.move_link(&vx, ov.name()).await?;
        }
        ov.ensure_master(&vx, BR).await?;
        ov.ensure_up(&vx).await?;
        info!(net.id = %att.network_id, vni = att.network.vni, "overlay sandbox ready");
        overlays.insert(
            att.network_id.to_string(),
            Overlay {
                ns: Arc::clone(&ov),
                vxlan: vx,
                users: BTreeSet::from([user.to_string()]),
            },
        );
        drop(overlays);
        self.reconcile_peers(&att.network_id).await;
        Ok(ov)
    }

    /// Plugs `task` into its overlay network `att` as interface `eth<n>`.
    pub(super) async fn attach_overlay(
        &self,
        task: &Task,
        att: &NetworkAttachment,
        n: u8,
        inside: &dyn Namespace,
    ) -> Result<Interface> {
        let first = att.addresses.first().ok_or_else(|| Error::NoAddress {
            network: att.network.name.clone(),
        })?;
        let (addr, prefix) = cidr(first)?;
        let ov = self.ensure_overlay(att, &task.id).await?;
        let outer = names::task_veth(&task.id, n);
        let name = names::task_ifname(n);
        if !inside.link_exists(&name).await? {
            ov.del_link(&outer).await?;
            ov.ensure_veth(&outer, &name, inside.name()).await?;
        }
        ov.ensure_mtu(&outer, OVERLAY_MTU).await?;
        ov.ensure_master(&outer, BR).await?;
        ov.ensure_up(&outer).await?;
        let mac = mac_of_ipv4(addr);
        inside.ensure_mac(&name, mac).await?;
        inside.ensure_mtu(&name, OVERLAY_MTU).await?;
        inside.ensure_addr(&name, addr, prefix).await?;
        inside.ensure_up(&name).await?;
        // No default route through an overlay: outbound traffic is the gateway bridge's job.
        Ok(Interface {
            name,
            network: att.network.name.clone(),
            addr,
            prefix,
            gateway: None,
            mac,
        })
    }

    /// The overlay networks of each local task (the sandboxes' users that are not balancers).
    pub(super) async fn overlay_tasks(&self) -> BTreeMap<String, Vec<String>> {
        let overlays = self.inner.overlays.lock().await;
        let mut out: BTreeMap<String, Vec<String>> = BTreeMap::new();
        for (net, o) in overlays.iter() {
            for user in o.users.iter().filter(|u| !u.starts_with(LB_USER_PREFIX)) {
                out.entry(user.clone()).or_default().push(net.clone());
            }
        }
        out
    }

    /// Drops `user` from the overlays it used; a sandbox no local task uses is removed.
    pub(super) async fn leave_overlays(&self, user: &str) {
        let mut overlays = self.inner.overlays.lock().await;
        let empty: Vec<String> = overlays
            .iter_mut()
            .filter_map(|(id, o)| (o.users.remove(user) && o.users.is_empty()).then(|| id.clone()))
            .collect();
        for id in empty {
            if let Some(o) = overlays.remove(&id) {
                let name = o.ns.name().to_string();
                drop(o); // its handle, which would keep the namespace alive
                info!(net.id = %id, "removing the overlay sandbox: no task uses it here");
                let _ = self.inner.kernel.delete_ns(&name);
            }
        }
    }
}
