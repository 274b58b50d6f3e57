//! An overlay's remote endpoints, as static entries of its VXLAN device: one FDB entry per
//! remote MAC, one flood entry per remote node, one permanent neighbour per remote address.
//! [`plan`] compares what the device holds with the managers' list; only the difference is
//! programmed, so converging again changes nothing.

use std::collections::{BTreeMap, BTreeSet};
use std::net::Ipv4Addr;

use shoal_netlib::rt::mac_of_ipv4;
use tracing::warn;

use super::super::kernel::{Fdb, Namespace};
use super::super::{DataPlane, Result};

/// A remote endpoint: network, address, the underlay address of its node.
pub type Peer = (String, Ipv4Addr, Ipv4Addr);

/// One change to a VXLAN device's static entries.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub(in crate::network) enum PeerOp {
    /// `bridge fdb append 00:00:00:00:00:00 dev VX dst NODE`.
    AddFlood(Ipv4Addr),
    /// `bridge fdb replace MAC dev VX dst NODE`.
    AddFdb([u8; 6], Ipv4Addr),
    /// `ip neigh replace IP lladdr MAC dev VX nud permanent`.
    AddNeighbour(Ipv4Addr, [u8; 6]),
    /// `bridge fdb del MAC dev VX dst NODE` (the flood list's MAC is all zeros).
    DelFdb([u8; 6], Ipv4Addr),
    /// `ip neigh del IP dev VX`.
    DelNeighbour(Ipv4Addr),
}

/// What turns `fdb` and `neigh` (a VXLAN device's entries) into `want` (address → node):
/// additions first, then removals.
pub(in crate::network) fn plan(
    want: &[(Ipv4Addr, Ipv4Addr)],
    fdb: &[Fdb],
    neigh: &[Ipv4Addr],
) -> Vec<PeerOp> {
    let have_fdb: BTreeSet<Fdb> = fdb.iter().copied().collect();
    let have_neigh: BTreeSet<Ipv4Addr> = neigh.iter().copied().collect();
    let nodes: BTreeSet<Ipv4Addr> = want.iter().map(|(_, n)| *n).collect();
    let macs: BTreeMap<[u8; 6], Ipv4Addr> =
        want.iter().map(|(ip, n)| (mac_of_ipv4(*ip), *n)).collect();
    let mut ops = Vec::new();
    for node in &nodes {
        if !have_fdb.contains(&([0; 6], *node)) {
            ops.push(PeerOp::AddFlood(*node));
        }
    }
    for (ip, node) in want {
        let mac = mac_of_ipv4(*ip);
        if !have_fdb.contains(&(mac, *node)) {
            ops.push(PeerOp::AddFdb(mac, *node));
        }
        if !have_neigh.contains(ip) {
            ops.push(PeerOp::AddNeighbour(*ip, mac));
        }
    }
    for (mac, dst) in &have_fdb {
        let stale = if *mac == [0; 6] {
            !nodes.contains(dst)
        } else {
            // A MAC now behind another node was replaced above; one no longer wanted goes.
            !macs.contains_key(mac)
        };
        if stale {
            ops.push(PeerOp::DelFdb(*mac, *dst));
        }
    }
    let ips: BTreeSet<Ipv4Addr> = want.iter().map(|(ip, _)| *ip).collect();
    for ip in have_neigh.difference(&ips) {
        ops.push(PeerOp::DelNeighbour(*ip));
    }
    ops
}

/// Converges one VXLAN device's static entries to `want` (address → node).
async fn program(ov: &dyn Namespace, vx: &str, want: &[(Ipv4Addr, Ipv4Addr)]) -> Result<()> {
    let fdb = ov.fdb(vx).await?;
    let neigh = ov.neighbours(vx).await?;
    for op in plan(want, &fdb, &neigh) {
        match op {
            PeerOp::AddFlood(node) => ov.ensure_flood(vx, node).await?,
            PeerOp::AddFdb(mac, node) => ov.ensure_fdb(vx, mac, node).await?,
            PeerOp::AddNeighbour(ip, mac) => ov.ensure_neighbour(vx, ip, mac).await?,
            PeerOp::DelFdb(mac, node) => ov.del_fdb(vx, mac, node).await?,
            PeerOp::DelNeighbour(ip) => ov.del_neighbour(vx, ip).await?,
        }
    }
    Ok(())
}

impl DataPlane {
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
    pub(in crate::network) async fn reconcile_peers(&self, net: &str) {
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
        if let Err(err) = program(&*o.ns, &o.vxlan, &want).await {
            warn!(net.id = net, "programming overlay peers: {err}");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> Ipv4Addr {
        s.parse().unwrap()
    }

    #[test]
    fn a_moved_address_is_replaced_and_a_gone_node_loses_its_flood_entry() {
        let (a, n1, n2) = (ip("10.0.0.2"), ip("192.168.0.1"), ip("192.168.0.2"));
        let have = [([0; 6], n1), (mac_of_ipv4(a), n1)];
        let ops = plan(&[(a, n2)], &have, &[a]);
        assert_eq!(
            ops,
            vec![
                PeerOp::AddFlood(n2),
                PeerOp::AddFdb(mac_of_ipv4(a), n2),
                PeerOp::DelFdb([0; 6], n1),
            ]
        );
    }
}
