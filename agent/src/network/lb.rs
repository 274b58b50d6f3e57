//! Service load balancing on a node (DESIGN §5).
//!
//! Per overlay network the node has tasks on, a namespace `lb_<netid>` whose `eth0` sits on the
//! network's bridge (in `ov_<netid>`) with the node's balancer address; each service's VIP on
//! the network is a /32 on it, packets to a VIP get the VIP's firewall mark, and a
//! [`LoadBalancer`] (IPVS or nftables) sends each marked connection round robin to the
//! service's running tasks on that network, anywhere in the cluster, SNATed to the balancer's
//! address so the answers come back through it.
//!
//! The routing mesh is the same for the `ingress` network in `ingress_sbox`, which also has a leg
//! on `shoal_gwbridge`: the node's own table DNATs every published port (from outside, from
//! PREROUTING; from the node itself, `localhost` included, from OUTPUT) to that leg, where the
//! port's mark picks the service. A task whose published port differs from its target port
//! redirects one to the other in its own namespace (as Docker does). Published ports are held
//! open on the node so nothing else can bind them.
//!
//! [`DataPlane::apply_lb`] converges all of it to the managers' tables: level-triggered, from
//! whatever exists (a restarted agent finds its namespaces and balancers and corrects them), one
//! network at a time, touching only what changed.

use std::collections::{BTreeMap, BTreeSet};
use std::net::Ipv4Addr;
use std::sync::Arc;

use serde_json::json;
use shoal_netlib::lb::{
    self, Backend, BackendAddr, DesiredService, LbChoice, LbConfig, LoadBalancer, Scheduler,
    ServiceStats, Snat, VirtualService,
};
use shoal_netlib::names;
use shoal_netlib::netns::{self, NetNs};
use shoal_netlib::nft::{expr, Batch, Family, Hook, Nft};
use shoal_netlib::rt::{mac_of_ipv4, Handle};
use shoal_proto::model::{AttachedNetwork, NetworkAttachment, NetworkDriver, Protocol, Task};
use shoal_proto::pb;
use tracing::{info, warn};

use super::{DataPlane, Subnet, GW_BRIDGE_SUBNET, OVERLAY_MTU};

/// The nftables table marking packets for the balancer, in each balancer namespace.
const MARK_TABLE: &str = "shoal_mark";
/// The balancer's own nftables table (nftables DNAT and, for both kinds, SNAT).
const LB_TABLE: &str = "shoal_lb";
/// The task-side table redirecting a published port to the target port.
const TASK_TABLE: &str = "shoal_task";
/// `ingress_sbox`'s leg on `shoal_gwbridge`, and the key of its address in the node's IPAM.
const SBOX_GW_IF: &str = "eth1";
const SBOX_KEY: &str = "ingress_sbox";
/// TCP connections through an IPVS balancer stay in its table this long without traffic
/// (the kernel's default, which Swarm keeps, is 900 s: idle connections were cut).
const IPVS_TCP_IDLE: std::time::Duration = std::time::Duration::from_secs(24 * 3600);

/// One network's balancer on this node.
struct Balancer {
    ns: Arc<NetNs>,
    inside: Handle,
    lb: Box<dyn LoadBalancer>,
    addr: (Ipv4Addr, u8),
    ingress: bool,
    /// The address on `shoal_gwbridge` (ingress only).
    gw_addr: Option<Ipv4Addr>,
    /// Mark rules last applied, to skip an unchanged table.
    marks: Vec<MarkRule>,
    /// VIPs last put on `eth0`.
    vips: BTreeSet<Ipv4Addr>,
}

impl std::fmt::Debug for Balancer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Balancer")
            .field("ns", &self.ns.name())
            .field("addr", &self.addr)
            .finish_non_exhaustive()
    }
}

#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
enum MarkRule {
    /// Packets to this VIP.
    Vip(Ipv4Addr, u32),
    /// Packets to this published port (ingress).
    Port(Protocol, u16, u32),
}

/// A published port held open on the node.
#[derive(Debug)]
#[allow(dead_code)] // held for its side effect only
enum Reservation {
    Tcp(std::net::TcpListener),
    Udp(std::net::UdpSocket),
}

/// The balancers of the node.
#[derive(Debug, Default)]
pub(super) struct LbPlane {
    choice: Option<LbChoice>,
    balancers: BTreeMap<String, Balancer>,
    reserved: BTreeMap<(Protocol, u16), Reservation>,
    /// The last tables applied (for `network inspect --lb` names).
    tables: Vec<pb::LbTable>,
}

fn e(err: impl std::fmt::Display) -> String {
    err.to_string()
}

fn cidr(s: &str) -> Result<(Ipv4Addr, u8), String> {
    let (a, p) = s
        .split_once('/')
        .ok_or_else(|| format!("bad address {s:?}"))?;
    Ok((
        a.parse().map_err(|_| format!("bad address {s:?}"))?,
        p.parse().map_err(|_| format!("bad address {s:?}"))?,
    ))
}

fn protocol(p: i32) -> Protocol {
    match pb::Protocol::try_from(p) {
        Ok(pb::Protocol::Udp) => Protocol::Udp,
        _ => Protocol::Tcp,
    }
}

/// The namespace of a network's balancer.
fn ns_name(t: &pb::LbTable) -> String {
    if t.ingress {
        names::INGRESS_SBOX.to_string()
    } else {
        names::lb_ns(&t.network_id)
    }
}

/// What the balancer of `t` must hold.
fn desired(t: &pb::LbTable) -> (Vec<DesiredService>, Vec<MarkRule>, BTreeSet<Ipv4Addr>) {
    let mut services = Vec::new();
    let mut marks = Vec::new();
    let mut vips = BTreeSet::new();
    for s in t.services.iter().filter(|s| s.fwmark > 0) {
        if t.ingress {
            for p in &s.ports {
                if let Ok(port) = u16::try_from(p.published) {
                    marks.push(MarkRule::Port(protocol(p.protocol), port, s.fwmark));
                }
            }
        } else if let Ok((vip, _)) = cidr(&s.vip) {
            vips.insert(vip);
            marks.push(MarkRule::Vip(vip, s.fwmark));
        }
        services.push(DesiredService {
            service: VirtualService::Fwmark(s.fwmark),
            scheduler: Scheduler::RoundRobin,
            backends: s
                .backends
                .iter()
                .filter_map(|b| {
                    Some(Backend {
                        addr: BackendAddr {
                            addr: b.ip.parse().ok()?,
                            port: 0,
                        },
                        weight: 1,
                    })
                })
                .collect(),
        });
    }
    marks.sort();
    (services, marks, vips)
}

/// The mark table of a balancer namespace, whole.
fn mark_rules(rules: &[MarkRule], ingress: bool) -> Batch {
    let t = MARK_TABLE;
    let mut b = Batch::new();
    b.add_table(Family::Ip, t)
        .delete_table(Family::Ip, t)
        .add_table(Family::Ip, t);
    b.add_chain(
        Family::Ip,
        t,
        "prerouting",
        Some(&Hook {
            ty: "filter",
            hook: "prerouting",
            prio: -150,
        }),
    );
    for r in rules {
        let mut m = Vec::new();
        match r {
            MarkRule::Vip(vip, mark) => {
                m.push(expr::eq(expr::ip("daddr"), json!(vip.to_string())));
                m.push(expr::set_mark(*mark));
            }
            MarkRule::Port(proto, port, mark) => {
                if ingress {
                    // Only what the node DNATed here, not the backends' answers.
                    m.push(expr::eq(expr::meta("iifname"), json!(SBOX_GW_IF)));
                }
                m.push(expr::eq(expr::meta("l4proto"), json!(proto.as_str())));
                m.push(expr::eq(expr::th("dport"), json!(port)));
                m.push(expr::set_mark(*mark));
            }
        }
        b.add_rule(Family::Ip, t, "prerouting", m, None);
    }
    b
}

impl DataPlane {
    /// Which balancer to build (`swarmd --lb-backend`); `auto` until set.
    pub async fn set_lb_backend(&self, choice: LbChoice) {
        self.inner.lb.lock().await.choice = Some(choice);
    }

    /// Converges the node's balancers to `tables` (every balancer the node must hold), and the
    /// routing mesh's published ports to those of the ingress table.
    pub async fn apply_lb(&self, tables: &[pb::LbTable]) -> Result<(), String> {
        let mut st = self.inner.lb.lock().await;
        let wanted: BTreeMap<&str, &pb::LbTable> =
            tables.iter().map(|t| (t.network_id.as_str(), t)).collect();
        // Balancers no longer wanted, then namespaces nobody holds (a crash's, a past network's).
        let gone: Vec<String> = st
            .balancers
            .keys()
            .filter(|k| !wanted.contains_key(k.as_str()))
            .cloned()
            .collect();
        for net in gone {
            if let Some(b) = st.balancers.remove(&net) {
                self.drop_balancer(&net, b).await;
            }
        }
        let keep: BTreeSet<String> = tables.iter().map(ns_name).collect();
        for name in netns::list(&self.inner.netns_dir).unwrap_or_default() {
            let ours = name.starts_with(names::LB_NS) || name == names::INGRESS_SBOX;
            if ours && !keep.contains(&name) {
                info!(ns = %name, "removing a balancer namespace no network needs here");
                let _ = netns::delete_path(&self.inner.netns_dir.join(&name));
            }
        }
        let mut first_err = None;
        for t in tables {
            if let Err(err) = self.apply_table(&mut st, t).await {
                warn!(net.id = %t.network_id, "programming the balancer: {err}");
                first_err.get_or_insert(err);
            }
        }
        let ingress = tables.iter().find(|t| t.ingress);
        let sbox = ingress.and_then(|t| st.balancers.get(&t.network_id)?.gw_addr);
        let ports: BTreeSet<(Protocol, u16)> = ingress
            .map(|t| {
                t.services
                    .iter()
                    .flat_map(|s| &s.ports)
                    .filter_map(|p| Some((protocol(p.protocol), u16::try_from(p.published).ok()?)))
                    .collect()
            })
            .unwrap_or_default();
        self.reserve_ports(&mut st, &ports);
        self.set_mesh(sbox, ports).await?;
        st.tables = tables.to_vec();
        match first_err {
            Some(err) => Err(err),
            None => Ok(()),
        }
    }

    async fn apply_table(&self, st: &mut LbPlane, t: &pb::LbTable) -> Result<(), String> {
        let addr = cidr(&t.lb_addr)?;
        let stale = st
            .balancers
            .get(&t.network_id)
            .is_some_and(|b| b.addr != addr || b.ingress != t.ingress);
        if stale {
            if let Some(b) = st.balancers.remove(&t.network_id) {
                self.drop_balancer(&t.network_id, b).await;
            }
        }
        if !st.balancers.contains_key(&t.network_id) {
            let choice = st.choice.unwrap_or(LbChoice::Auto);
            let b = self.make_balancer(t, addr, choice).await?;
            info!(net.id = %t.network_id, ns = %b.ns.name(), kind = ?b.lb.kind(), "balancer ready");
            st.balancers.insert(t.network_id.clone(), b);
        }
        let b = st
            .balancers
            .get_mut(&t.network_id)
            .ok_or("balancer vanished")?;
        let (services, marks, vips) = desired(t);
        // VIPs first (IPVS balances only to local addresses), then marks, then backends; each
        // only when it changed (one backend more among 1,000 services touches one service).
        if b.vips != vips {
            let link = b.inside.link_required("eth0").await.map_err(e)?;
            let have: BTreeSet<Ipv4Addr> = b
                .inside
                .addrs()
                .await
                .map_err(e)?
                .into_iter()
                .filter(|a| a.index == link.index && a.prefix == 32)
                .map(|a| a.addr)
                .collect();
            for vip in vips.difference(&have) {
                b.inside.ensure_addr("eth0", *vip, 32).await.map_err(e)?;
            }
            for gone in have.difference(&vips) {
                b.inside.del_addr("eth0", *gone, 32).await.map_err(e)?;
            }
            b.vips = vips;
        }
        if b.marks != marks {
            Nft::new(Some(Arc::clone(&b.ns)))
                .apply(&mark_rules(&marks, b.ingress))
                .await
                .map_err(e)?;
            b.marks = marks;
        }
        b.lb.sync(&services).await.map_err(e)?;
        Ok(())
    }

    /// The namespace, its legs, and the balancer of one network.
    async fn make_balancer(
        &self,
        t: &pb::LbTable,
        addr: (Ipv4Addr, u8),
        choice: LbChoice,
    ) -> Result<Balancer, String> {
        let att = NetworkAttachment {
            network_id: t.network_id.clone(),
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
        let (_, ov) = self.ensure_overlay(&att, &lb_user(&t.network_id)).await?;
        let ns = Arc::new(NetNs::ensure(&self.inner.netns_dir, &ns_name(t)).map_err(e)?);
        let inside = Handle::in_ns(&ns).map_err(e)?;
        inside.ensure_up("lo").await.map_err(e)?;
        let outer = names::lb_veth(&t.network_id);
        if inside.link("eth0").await.map_err(e)?.is_none() {
            ov.del_link(&outer).await.map_err(e)?;
            ov.ensure_veth(&outer, "eth0", Some(&ns)).await.map_err(e)?;
        }
        ov.ensure_mtu(&outer, OVERLAY_MTU).await.map_err(e)?;
        ov.ensure_master(&outer, names::SANDBOX_BRIDGE)
            .await
            .map_err(e)?;
        ov.ensure_up(&outer).await.map_err(e)?;
        inside
            .ensure_mac("eth0", mac_of_ipv4(addr.0))
            .await
            .map_err(e)?;
        inside.ensure_mtu("eth0", OVERLAY_MTU).await.map_err(e)?;
        inside
            .ensure_addr("eth0", addr.0, addr.1)
            .await
            .map_err(e)?;
        inside.ensure_up("eth0").await.map_err(e)?;
        shoal_netlib::sysctl::set(Some(&ns), "net.ipv4.ip_forward", "1").map_err(e)?;
        let gw_addr = if t.ingress {
            Some(self.sbox_gateway_leg(&ns, &inside).await?)
        } else {
            None
        };
        let lb = lb::open(
            choice,
            Some(Arc::clone(&ns)),
            LbConfig {
                table: LB_TABLE.into(),
                snat: Some(Snat::To(addr.0)),
            },
        )
        .await
        .map_err(e)?;
        if lb.kind() == lb::LbKind::Ipvs {
            // IPVS needs conntrack for the SNAT rule to see its connections, and forgets idle
            // TCP connections after 900 s unless told otherwise.
            for (k, v) in [
                ("net.ipv4.vs.conntrack", "1"),
                ("net.ipv4.vs.expire_nodest_conn", "1"),
            ] {
                if let Err(err) = shoal_netlib::sysctl::set(Some(&ns), k, v) {
                    warn!(ns = %ns.name(), "{k}: {err}");
                }
            }
            let ns2 = Arc::clone(&ns);
            let r = ns2.run(|| {
                let mut s = shoal_netlib::ipvs::Ipvs::open()?;
                let mut t = s.timeouts()?;
                t.tcp = IPVS_TCP_IDLE;
                s.set_timeouts(&t)
            });
            if let Err(err) = r.map_err(e).and_then(|r| r.map_err(e)) {
                warn!(ns = %ns.name(), "setting IPVS timeouts: {err}");
            }
        }
        Ok(Balancer {
            ns,
            inside,
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
    async fn sbox_gateway_leg(&self, ns: &NetNs, inside: &Handle) -> Result<Ipv4Addr, String> {
        let subnet = Subnet::parse(GW_BRIDGE_SUBNET)?;
        let gateway = subnet
            .host(1)
            .ok_or("shoal_gwbridge's subnet has no gateway")?;
        self.ensure_bridge(names::GW_BRIDGE, subnet, gateway, SBOX_KEY)
            .await?;
        let addr = self
            .inner
            .ipam
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .assign("shoal_gwbridge", subnet, gateway, SBOX_KEY)?;
        let outer = names::gw_veth(SBOX_KEY);
        let host = &self.inner.host;
        if inside.link(SBOX_GW_IF).await.map_err(e)?.is_none() {
            host.del_link(&outer).await.map_err(e)?;
            host.ensure_veth(&outer, SBOX_GW_IF, Some(ns))
                .await
                .map_err(e)?;
        }
        host.ensure_master(&outer, names::GW_BRIDGE)
            .await
            .map_err(e)?;
        host.ensure_up(&outer).await.map_err(e)?;
        inside
            .ensure_mac(SBOX_GW_IF, mac_of_ipv4(addr))
            .await
            .map_err(e)?;
        inside
            .ensure_addr(SBOX_GW_IF, addr, subnet.prefix)
            .await
            .map_err(e)?;
        inside.ensure_up(SBOX_GW_IF).await.map_err(e)?;
        inside.ensure_default_route(gateway).await.map_err(e)?;
        // `curl localhost:PORT` on the node: 127.0.0.1 may leave through the bridge (then
        // masqueraded, see the node's table).
        shoal_netlib::sysctl::set(
            self.inner.node_ns.as_deref(),
            &format!("net.ipv4.conf.{}.route_localnet", names::GW_BRIDGE),
            "1",
        )
        .map_err(e)?;
        Ok(addr)
    }

    async fn drop_balancer(&self, net: &str, b: Balancer) {
        info!(net.id = net, ns = %b.ns.name(), "removing the balancer: no task of the network here");
        let path = b.ns.path().to_path_buf();
        let ingress = b.ingress;
        drop(b);
        if let Err(err) = netns::delete_path(&path) {
            warn!("removing {}: {err}", path.display());
        }
        if ingress {
            self.inner
                .ipam
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .release(SBOX_KEY);
        }
        self.leave_overlays(&lb_user(net)).await;
    }

    /// Holds every published port open on the node (nothing else may bind it) and lets go of
    /// the others.
    fn reserve_ports(&self, st: &mut LbPlane, ports: &BTreeSet<(Protocol, u16)>) {
        st.reserved.retain(|k, _| ports.contains(k));
        for &(proto, port) in ports {
            if st.reserved.contains_key(&(proto, port)) {
                continue;
            }
            let r = match proto {
                Protocol::Tcp => {
                    std::net::TcpListener::bind(("0.0.0.0", port)).map(Reservation::Tcp)
                }
                Protocol::Udp => std::net::UdpSocket::bind(("0.0.0.0", port)).map(Reservation::Udp),
            };
            match r {
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

    /// The node's side of the mesh: published ports to `ingress_sbox`.
    async fn set_mesh(
        &self,
        sbox: Option<Ipv4Addr>,
        ports: BTreeSet<(Protocol, u16)>,
    ) -> Result<(), String> {
        let mut node = self.inner.node.lock().await;
        let want = match sbox {
            Some(addr) if !ports.is_empty() => Some((addr, ports)),
            _ => None,
        };
        if node.mesh == want {
            return Ok(());
        }
        node.mesh = want;
        self.inner
            .nft
            .apply(&super::node_rules(&node))
            .await
            .map_err(e)
    }

    /// `ipvsadm -Ln --stats` of the balancer of network `net` on this node, with the names of
    /// the services and tasks it balances to.
    pub async fn lb_report(&self, net: &str) -> Result<pb::LbNodeReport, String> {
        let st = self.inner.lb.lock().await;
        let b = st.balancers.get(net).ok_or_else(|| {
            "no balancer for this network on this node (no task of it here)".to_string()
        })?;
        let table = st.tables.iter().find(|t| t.network_id == net);
        let stats: Vec<ServiceStats> = b.lb.list().await.map_err(e)?;
        let mut out = pb::LbNodeReport {
            namespace: b.ns.name().to_string(),
            kind: format!("{:?}", b.lb.kind()).to_lowercase(),
            lb_addr: format!("{}/{}", b.addr.0, b.addr.1),
            ..Default::default()
        };
        for s in stats {
            let VirtualService::Fwmark(mark) = s.service else {
                continue;
            };
            let svc = table.and_then(|t| t.services.iter().find(|x| x.fwmark == mark));
            out.services.push(pb::LbServiceReport {
                fwmark: mark,
                scheduler: s.scheduler.clone(),
                name: svc.map(|x| x.name.clone()).unwrap_or_default(),
                vip: svc.map(|x| x.vip.clone()).unwrap_or_default(),
                ports: svc.map(|x| x.ports.clone()).unwrap_or_default(),
                backends: s
                    .backends
                    .iter()
                    .map(|bk| {
                        let name = svc
                            .and_then(|x| {
                                x.backends.iter().find(|y| y.ip == bk.addr.addr.to_string())
                            })
                            .map(|y| y.name.clone())
                            .unwrap_or_default();
                        pb::LbBackendReport {
                            name,
                            addr: bk.addr.addr.to_string(),
                            forward: "Masq".into(),
                            weight: bk.weight,
                            active: bk.active_conns.map(u64::from),
                            inactive: bk.inactive_conns.map(u64::from),
                            connections: bk.connections,
                        }
                    })
                    .collect(),
            });
        }
        Ok(out)
    }

    /// In `task`'s namespace: its published ports on the ingress network redirected to their
    /// target ports (`--publish 8080:80` arrives as 8080, the program listens on 80).
    pub(super) async fn redirect_published(
        &self,
        task: &Task,
        ns: &Arc<NetNs>,
        ingress_if: Option<&str>,
    ) -> Result<(), String> {
        let ports: Vec<(Protocol, u16, u16)> = task
            .spec
            .ports
            .iter()
            .filter(|p| {
                p.mode == shoal_proto::model::PublishMode::Ingress
                    && p.published != 0
                    && p.published != p.target
            })
            .map(|p| (p.protocol, p.published, p.target))
            .collect();
        let Some(ifname) = ingress_if.filter(|_| !ports.is_empty()) else {
            return Ok(());
        };
        let t = TASK_TABLE;
        let mut b = Batch::new();
        b.add_table(Family::Ip, t)
            .delete_table(Family::Ip, t)
            .add_table(Family::Ip, t);
        b.add_chain(Family::Ip, t, "prerouting", Some(&Hook::nat_prerouting()));
        for (proto, published, target) in ports {
            b.add_rule(
                Family::Ip,
                t,
                "prerouting",
                vec![
                    expr::eq(expr::meta("iifname"), json!(ifname)),
                    expr::eq(expr::meta("l4proto"), json!(proto.as_str())),
                    expr::eq(expr::th("dport"), json!(published)),
                    json!({"redirect": {"port": target}}),
                ],
                None,
            );
        }
        Nft::new(Some(Arc::clone(ns))).apply(&b).await.map_err(e)
    }
}

/// The overlay user key of a network's balancer.
fn lb_user(net: &str) -> String {
    format!("lb:{net}")
}
