//! Building and removing one network's balancer: its namespace with a leg on the overlay
//! (and, for ingress, one on `shoal_gwbridge`), its load balancer; and the published ports the
//! node holds open.

use std::collections::BTreeSet;
use std::net::Ipv4Addr;

use shoal_netlib::lb::{self, LbChoice, LbConfig, Snat};
use shoal_netlib::names;
use shoal_netlib::rt::mac_of_ipv4;
use shoal_proto::model::{AttachedNetwork, NetworkAttachment, NetworkDriver, Protocol};
use shoal_proto::pb;
use tracing::{info, warn};

use super::super::kernel::Namespace;
use super::super::node::GW_BRIDGE_SUBNET;
use super::super::{parse_subnet, DataPlane, Error, Result, OVERLAY_MTU};
use super::plan::{lb_user, ns_name, SBOX_GW_IF};
use super::{Balancer, LbPlane};

/// The balancer's own nftables table (nftables DNAT and, for both kinds, SNAT).
const LB_TABLE: &str = "shoal_lb";
/// The key of `ingress_sbox`'s address in the node's IPAM.
const SBOX_KEY: &str = "ingress_sbox";

impl DataPlane {
    /// The namespace, its legs, and the balancer of one network.
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
        let inside = self.inner.kernel.ensure_ns(&ns_name(t))?;
        inside.ensure_up("lo").await?;
        let outer = names::lb_veth(&t.network_id);
        if !inside.link_exists("eth0").await? {
            ov.del_link(&outer).await?;
            ov.ensure_veth(&outer, "eth0", inside.name()).await?;
        }
        ov.ensure_mtu(&outer, OVERLAY_MTU).await?;
        ov.ensure_master(&outer, names::SANDBOX_BRIDGE).await?;
        ov.ensure_up(&outer).await?;
        inside.ensure_mac("eth0", mac_of_ipv4(addr.0)).await?;
        inside.ensure_mtu("eth0", OVERLAY_MTU).await?;
        inside.ensure_addr("eth0", addr.0, addr.1).await?;
        inside.ensure_up("eth0").await?;
        inside.sysctl("net.ipv4.ip_forward", "1")?;
        let gw_addr = if t.ingress {
            Some(self.sbox_gateway_leg(&*inside).await?)
        } else {
            None
        };
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
            ingress: t.ingress,
            gw_addr,
            marks: Vec::new(),
            vips: BTreeSet::new(),
        })
    }

    /// `ingress_sbox`'s leg on `shoal_gwbridge`: where the node sends published ports. Its
    /// default route goes back through the node, to answer clients from anywhere.
    async fn sbox_gateway_leg(&self, inside: &dyn Namespace) -> Result<Ipv4Addr> {
        let subnet = parse_subnet(GW_BRIDGE_SUBNET)?;
        let gateway = subnet.checked_host(1).ok_or(Error::GwBridgeGateway)?;
        self.ensure_bridge(names::GW_BRIDGE, subnet, gateway, SBOX_KEY)
            .await?;
        let addr = self
            .ipam()
            .assign("shoal_gwbridge", subnet, gateway, SBOX_KEY)?;
        let outer = names::gw_veth(SBOX_KEY);
        let host = &self.inner.host;
        if !inside.link_exists(SBOX_GW_IF).await? {
            host.del_link(&outer).await?;
            host.ensure_veth(&outer, SBOX_GW_IF, inside.name()).await?;
        }
        host.ensure_master(&outer, names::GW_BRIDGE).await?;
        host.ensure_up(&outer).await?;
        inside.ensure_mac(SBOX_GW_IF, mac_of_ipv4(addr)).await?;
        inside
            .ensure_addr(SBOX_GW_IF, addr, subnet.prefix())
            .await?;
        inside.ensure_up(SBOX_GW_IF).await?;
        inside.ensure_default_route(gateway).await?;
        // `curl localhost:PORT` on the node: 127.0.0.1 may leave through the bridge (then
        // masqueraded, see the node's table).
        host.sysctl(
            &format!("net.ipv4.conf.{}.route_localnet", names::GW_BRIDGE),
            "1",
        )?;
        Ok(addr)
    }

    pub(super) async fn drop_balancer(&self, net: &str, b: Balancer) {
        info!(net.id = net, ns = %b.ns.name(), "removing the balancer: no task of the network here");
        let name = b.ns.name().to_string();
        let ingress = b.ingress;
        drop(b); // its handles, which would keep the namespace alive
        if let Err(err) = self.inner.kernel.delete_ns(&name) {
            let path = self.inner.kernel.ns_path(&name);
            warn!("removing {}: {err}", path.display());
        }
        if ingress {
            self.ipam().release(SBOX_KEY);
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
