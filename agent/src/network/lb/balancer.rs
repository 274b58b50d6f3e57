//! Building and removing one network's balancer: for an overlay network, its namespace with a
//! leg on the overlay and its load balancer; for ingress (the routing mesh), a leg of the node's
//! own namespace on the ingress overlay and an nftables balancer there; and the published ports
//! the node holds open.

use std::collections::BTreeSet;
use std::net::Ipv4Addr;

use shoal_netlib::lb::{self, LbChoice, LbConfig, Snat};
use shoal_netlib::names;
use shoal_netlib::nft::{Batch, Family};
use shoal_netlib::rt::mac_of_ipv4;
use shoal_proto::model::{AttachedNetwork, NetworkAttachment, NetworkDriver, Protocol};
use shoal_proto::pb;
use tracing::{info, warn};

use super::super::kernel::Namespace;
use super::super::{DataPlane, Result, OVERLAY_MTU};
use super::plan::{lb_user, MARK_TABLE};
use super::{Balancer, LbPlane};

/// The balancer's own nftables table (nftables DNAT and, for both kinds, SNAT).
const LB_TABLE: &str = "shoal_lb";
/// The routing mesh's balancer table in the node's namespace.
const MESH_TABLE: &str = "shoal_mesh";

impl DataPlane {
    /// The namespace, its leg, and the balancer of one network.
    pub(super) async fn make_balancer(
        &self,
        t: &pb::LbTable,
        addr: (Ipv4Addr, u8),
        choice: LbChoice,
    ) -> Result<Balancer> {
        let att = NetworkAttachment {
            network_id: t.network_id.clone().into(),
            network: AttachedNetwork {
                name: t.name.clone(),
                driver: NetworkDriver::Overlay,
                subnet: t.subnet.clone(),
                gateway: t.gateway.clone(),
                vni: t.vni,
            },
            addresses: vec![t.lb_addr.clone()],
            ..Default::default()
        };
        let ov = self.ensure_overlay(&att, &lb_user(&t.network_id)).await?;
        let outer = names::lb_veth(&t.network_id);
        if t.ingress {
            return self.make_mesh(&*ov, &outer, addr).await;
        }
        let inside = self.inner.kernel.ensure_ns(&names::lb_ns(&t.network_id))?;
        inside.ensure_up("lo").await?;
        if !inside.link_exists("eth0").await? {
            ov.del_link(&outer).await?;
            ov.ensure_veth(&outer, "eth0", inside.name()).await?;
        }
        self.plug_leg(&*ov, &outer, &*inside, "eth0", addr).await?;
        inside.sysctl("net.ipv4.ip_forward", "1")?;
        let config = LbConfig {
            table: LB_TABLE.into(),
            snat: Some(Snat::To(addr.0)),
        };
        let lb = inside.open_lb(choice, config).await?;
        if lb.kind() == lb::LbKind::Ipvs {
            // IPVS needs conntrack for the SNAT rule to see its connections, and forgets idle
            // TCP connections after 900 s unless told otherwise.
            for (k, v) in [
                ("net.ipv4.vs.conntrack", "1"),
                ("net.ipv4.vs.expire_nodest_conn", "1"),
            ] {
                if let Err(err) = inside.sysctl(k, v) {
                    warn!(ns = %inside.name(), "{k}: {err}");
                }
            }
            if let Err(err) = inside.set_ipvs_tcp_idle(self.timings().ipvs_tcp_idle) {
                warn!(ns = %inside.name(), "setting IPVS timeouts: {err}");
            }
        }
        Ok(Balancer {
            ns: inside,
            lb,
            addr,
            ingress: false,
            marks: Vec::new(),
            vips: BTreeSet::new(),
        })
    }

    /// The routing mesh: the node's own namespace gets a leg (`swingress`) on the ingress
    /// overlay's bridge with the node's ingress balancer address, and an nftables balancer
    /// (whatever `--lb-backend` says: IPVS cannot balance the node's own `localhost`
    /// connections) that DNATs each published port's connections round robin to the service's
    /// tasks and SNATs them to that address, so the answers come back through the leg. No
    /// namespace between the node and the overlay: one conntrack entry and one NAT per
    /// connection, where Docker's `ingress_sbox` adds a second namespace, hop and NAT.
    async fn make_mesh(
        &self,
        ov: &dyn Namespace,
        outer: &str,
        addr: (Ipv4Addr, u8),
    ) -> Result<Balancer> {
        let host = &self.inner.host;
        let leg = names::INGRESS_LEG;
        if !host.link_exists(leg).await? {
            ov.del_link(outer).await?;
            host.ensure_veth(leg, outer, ov.name()).await?;
        }
        self.plug_leg(ov, outer, &**host, leg, addr).await?;
        // `curl localhost:PORT` on the node: 127.0.0.1 may leave through the leg (then SNATed).
        host.sysctl(&format!("net.ipv4.conf.{leg}.route_localnet"), "1")?;
        let config = LbConfig {
            table: MESH_TABLE.into(),
            snat: Some(Snat::To(addr.0)),
        };
        let lb = host.open_lb(LbChoice::Nftables, config).await?;
        Ok(Balancer {
            ns: host.clone(),
            lb,
            addr,
            ingress: true,
            marks: Vec::new(),
            vips: BTreeSet::new(),
        })
    }

    /// Plugs a balancer's leg: `outer` into the overlay sandbox's bridge, `dev` in `inside`
    /// with the balancer's address (and the MAC the other nodes' FDB entries expect).
    async fn plug_leg(
        &self,
        ov: &dyn Namespace,
        outer: &str,
        inside: &dyn Namespace,
        dev: &str,
        addr: (Ipv4Addr, u8),
    ) -> Result<()> {
        ov.ensure_mtu(outer, OVERLAY_MTU).await?;
        ov.ensure_master(outer, names::SANDBOX_BRIDGE).await?;
        ov.ensure_up(outer).await?;
        inside.ensure_mac(dev, mac_of_ipv4(addr.0)).await?;
        inside.ensure_mtu(dev, OVERLAY_MTU).await?;
        inside.ensure_addr(dev, addr.0, addr.1).await?;
        inside.ensure_up(dev).await
    }

    pub(super) async fn drop_balancer(&self, net: &str, b: Balancer) {
        if b.ingress {
            info!(
                net.id = net,
                "removing the routing mesh's balancer: no ingress table"
            );
            let mut batch = Batch::new();
            for t in [MESH_TABLE, MARK_TABLE] {
                batch.add_table(Family::Ip, t).delete_table(Family::Ip, t);
            }
            drop(b.lb);
            if let Err(err) = b.ns.apply_nft(&batch).await {
                warn!("removing the mesh's tables: {err}");
            }
            if let Err(err) = b.ns.del_link(names::INGRESS_LEG).await {
                warn!("removing {}: {err}", names::INGRESS_LEG);
            }
        } else {
            info!(net.id = net, ns = %b.ns.name(), "removing the balancer: no task of the network here");
            let name = b.ns.name().to_string();
            drop(b); // its handles, which would keep the namespace alive
            if let Err(err) = self.inner.kernel.delete_ns(&name) {
                let path = self.inner.kernel.ns_path(&name);
                warn!("removing {}: {err}", path.display());
            }
        }
        self.leave_overlays(&lb_user(net)).await;
    }

    /// Holds every published port open on the node (nothing else may bind it) and lets go of
    /// the others.
    pub(super) fn reserve_ports(&self, st: &mut LbPlane, ports: &BTreeSet<(Protocol, u16)>) {
        st.reserved.retain(|k, _| ports.contains(k));
        for &(proto, port) in ports {
            if st.reserved.contains_key(&(proto, port)) {
                continue;
            }
            match self.inner.kernel.reserve_port(proto, port) {
                Ok(r) => {
                    st.reserved.insert((proto, port), r);
                }
                Err(err) => warn!(
                    port,
                    proto = proto.as_str(),
                    "cannot reserve the published port on this node (another program has it?): {err}"
                ),
            }
        }
    }
}
