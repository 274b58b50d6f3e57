//! Overlay networks (DESIGN §4): per node and network a sandbox namespace `ov_<netid>` with a
//! bridge `br0` (the network's gateway address, MTU 1450) and a VXLAN device (the network's VNI,
//! UDP 4789, no learning, proxy ARP, no multicast) created in the node's namespace — so its UDP
//! socket lives on the underlay — and moved into the sandbox. Tasks plug into `br0` with a veth.
//! Remote endpoints come from the managers' allocations, never from gossip: one FDB entry per
//! remote MAC, one flood entry per remote node, one permanent neighbour per remote address.

use std::collections::{BTreeMap, BTreeSet};
use std::net::Ipv4Addr;
use std::sync::Arc;

use shoal_netlib::names;
use shoal_netlib::netns::NetNs;
use shoal_netlib::rt::{mac_of_ipv4, Handle, Vxlan};
use shoal_proto::model::{NetworkAttachment, Task};
use tracing::{info, warn};

use super::{DataPlane, Interface, Subnet};

/// The overlay MTU: the underlay's 1500 less the 50 bytes of VXLAN encapsulation.
pub const OVERLAY_MTU: u32 = 1450;
/// The sandbox's bridge.
const BR: &str = names::SANDBOX_BRIDGE;

/// One overlay network's sandbox on this node.
#[derive(Debug)]
pub(super) struct Overlay {
    ns: Arc<NetNs>,
    handle: Handle,
    vxlan: String,
    /// Local tasks on the network.
    users: BTreeSet<String>,
}

/// A remote endpoint: network, address, the underlay address of its node.
pub type Peer = (String, Ipv4Addr, Ipv4Addr);

fn e(err: impl std::fmt::Display) -> String {
    err.to_string()
}

impl DataPlane {
    /// The sandbox of `att`'s overlay network, built if missing.
    pub(super) async fn ensure_overlay(
        &self,
        att: &NetworkAttachment,
        task: &str,
    ) -> Result<(Arc<NetNs>, Handle), String> {
        let mut overlays = self.inner.overlays.lock().await;
        if let Some(o) = overlays.get_mut(&att.network_id) {
            o.users.insert(task.to_string());
            return Ok((Arc::clone(&o.ns), o.handle.clone()));
        }
        let subnet = Subnet::parse(&att.network.subnet)?;
        let gateway: Ipv4Addr = att
            .network
            .gateway
            .parse()
            .map_err(|_| "overlay without a gateway".to_string())?;
        if att.network.vni == 0 {
            return Err(format!("network {} has no VXLAN id yet", att.network.name));
        }
        let ns = Arc::new(
            NetNs::ensure(&self.inner.netns_dir, &names::overlay_ns(&att.network_id)).map_err(e)?,
        );
        let ov = Handle::in_ns(&ns).map_err(e)?;
        ov.ensure_up("lo").await.map_err(e)?;
        ov.ensure_bridge(BR).await.map_err(e)?;
        ov.ensure_mtu(BR, OVERLAY_MTU).await.map_err(e)?;
        ov.ensure_addr(BR, gateway, subnet.prefix)
            .await
            .map_err(e)?;
        ov.ensure_up(BR).await.map_err(e)?;
        let vx = names::vxlan(att.network.vni);
        if ov.link(&vx).await.map_err(e)?.is_none() {
            // Made in the node's namespace so that its UDP socket is on the underlay.
            let host = &self.inner.host;
            host.del_link(&vx).await.map_err(e)?;
            let mut v = Vxlan::new(&vx, att.network.vni);
            v.mtu = OVERLAY_MTU;
            host.ensure_vxlan(&v).await.map_err(e)?;
            host.move_to(&vx, &ns).await.map_err(e)?;
        }
        ov.ensure_master(&vx, BR).await.map_err(e)?;
        ov.ensure_up(&vx).await.map_err(e)?;
        info!(net.id = %att.network_id, vni = att.network.vni, "overlay sandbox ready");
        overlays.insert(
            att.network_id.clone(),
            Overlay {
                ns: Arc::clone(&ns),
                handle: ov.clone(),
                vxlan: vx,
                users: BTreeSet::from([task.to_string()]),
            },
        );
        drop(overlays);
        self.reconcile_peers(&att.network_id).await;
        Ok((ns, ov))
    }

    /// Plugs `task` into its overlay network `att` as interface `eth<n>`.
    pub(super) async fn attach_overlay(
        &self,
        task: &Task,
        att: &NetworkAttachment,
        n: u8,
        task_ns: &NetNs,
        inside: &Handle,
    ) -> Result<Interface, String> {
        let first = att
            .addresses
            .first()
            .ok_or_else(|| format!("no address on {} yet", att.network.name))?;
        let (ip, prefix) = first
            .split_once('/')
            .ok_or_else(|| format!("bad address {first:?}"))?;
        let addr: Ipv4Addr = ip.parse().map_err(|_| format!("bad address {first:?}"))?;
        let prefix: u8 = prefix
            .parse()
            .map_err(|_| format!("bad address {first:?}"))?;
        let (_, ov) = self.ensure_overlay(att, &task.id).await?;
        let outer = names::task_veth(&task.id, n);
        let name = names::task_ifname(n);
        if inside.link(&name).await.map_err(e)?.is_none() {
            ov.del_link(&outer).await.map_err(e)?;
            ov.ensure_veth(&outer, &name, Some(task_ns))
                .await
                .map_err(e)?;
        }
        ov.ensure_mtu(&outer, OVERLAY_MTU).await.map_err(e)?;
        ov.ensure_master(&outer, BR).await.map_err(e)?;
        ov.ensure_up(&outer).await.map_err(e)?;
        let mac = mac_of_ipv4(addr);
        inside.ensure_mac(&name, mac).await.map_err(e)?;
        inside.ensure_mtu(&name, OVERLAY_MTU).await.map_err(e)?;
        inside.ensure_addr(&name, addr, prefix).await.map_err(e)?;
        inside.ensure_up(&name).await.map_err(e)?;
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

    /// Takes the complete list of remote endpoints (from the managers) and programs every
    /// overlay sandbox of this node to match it.
    pub async fn set_peers(&self, peers: Vec<Peer>) {
        *self.inner.peers.lock().await = peers.into_iter().collect();
        let nets: Vec<String> = self.inner.overlays.lock().await.keys().cloned().collect();
        for net in nets {
            self.reconcile_peers(&net).await;
        }
    }

    /// Makes `net`'s VXLAN FDB and neighbour table hold exactly the known remote endpoints.
    async fn reconcile_peers(&self, net: &str) {
        let want: Vec<(Ipv4Addr, Ipv4Addr)> = self
            .inner
            .peers
            .lock()
            .await
            .iter()
            .filter(|(n, ..)| n == net)
            .map(|(_, ip, node)| (*ip, *node))
            .collect();
        let overlays = self.inner.overlays.lock().await;
        let Some(o) = overlays.get(net) else { return };
        if let Err(err) = program(&o.handle, &o.vxlan, &want).await {
            warn!(net.id = net, "programming overlay peers: {err}");
        }
    }

    /// Drops `task` from the overlays it used; a sandbox no local task uses is removed.
    pub(super) async fn leave_overlays(&self, task: &str) {
        let mut overlays = self.inner.overlays.lock().await;
        let empty: Vec<String> = overlays
            .iter_mut()
            .filter_map(|(id, o)| (o.users.remove(task) && o.users.is_empty()).then(|| id.clone()))
            .collect();
        for id in empty {
            if let Some(o) = overlays.remove(&id) {
                let path = o.ns.path().to_path_buf();
                drop(o);
                info!(net.id = %id, "removing the overlay sandbox: no task uses it here");
                let _ = shoal_netlib::netns::delete_path(&path);
            }
        }
    }
}

/// Converges one VXLAN device's static entries to `want` (address → node).
async fn program(ov: &Handle, vx: &str, want: &[(Ipv4Addr, Ipv4Addr)]) -> Result<(), String> {
    let link = ov.link_required(vx).await.map_err(e)?;
    let nodes: BTreeSet<Ipv4Addr> = want.iter().map(|(_, n)| *n).collect();
    let macs: BTreeMap<[u8; 6], Ipv4Addr> =
        want.iter().map(|(ip, n)| (mac_of_ipv4(*ip), *n)).collect();
    for node in &nodes {
        ov.ensure_flood(vx, *node).await.map_err(e)?;
    }
    for (ip, node) in want {
        ov.ensure_fdb(vx, mac_of_ipv4(*ip), *node)
            .await
            .map_err(e)?;
        ov.ensure_neighbour(vx, *ip, mac_of_ipv4(*ip))
            .await
            .map_err(e)?;
    }
    for f in ov
        .fdb()
        .await
        .map_err(e)?
        .into_iter()
        .filter(|f| f.index == link.index)
    {
        let stale = if f.mac == [0; 6] {
            !nodes.contains(&f.dst)
        } else {
            macs.get(&f.mac) != Some(&f.dst)
        };
        if stale {
            ov.del_fdb(vx, f.mac, f.dst).await.map_err(e)?;
        }
    }
    let ips: BTreeSet<Ipv4Addr> = want.iter().map(|(ip, _)| *ip).collect();
    for nb in ov
        .neighbours()
        .await
        .map_err(e)?
        .into_iter()
        .filter(|nb| nb.index == link.index)
    {
        if !ips.contains(&nb.ip) {
            ov.del_neighbour(vx, nb.ip).await.map_err(e)?;
        }
    }
    Ok(())
}
