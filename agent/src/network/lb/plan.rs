//! What a balancer must hold, from the managers' table: pure functions, no kernel. The
//! programming side ([`super`]) compares this with what it applied last and changes only the
//! difference.

use std::collections::BTreeSet;
use std::net::Ipv4Addr;

use serde_json::json;
use shoal_netlib::lb::{Backend, BackendAddr, DesiredService, Scheduler, VirtualService};
use shoal_netlib::names;
use shoal_netlib::nft::{expr, Batch, Family, Hook};
use shoal_proto::model::{Protocol, PublishMode, Task};
use shoal_proto::pb;

use super::super::overlay::cidr;

/// The nftables table marking packets for the balancer, in each balancer namespace.
pub(super) const MARK_TABLE: &str = "shoal_mark";
/// The task-side table redirecting a published port to the target port.
const TASK_TABLE: &str = "shoal_task";

/// A rule of a balancer's mark table.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub(super) enum MarkRule {
    /// Packets to this VIP.
    Vip(Ipv4Addr, u32),
    /// Packets to this published port (ingress).
    Port(Protocol, u16, u32),
}

/// What the balancer of one network must hold.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Desired {
    /// Its virtual services, one per service with a mark, with their backends.
    pub(super) services: Vec<DesiredService>,
    /// Its mark table's rules, sorted.
    pub(super) marks: Vec<MarkRule>,
    /// The VIPs on its `eth0` (/32 each).
    pub(super) vips: BTreeSet<Ipv4Addr>,
}

pub(super) fn protocol(p: i32) -> Protocol {
    match pb::Protocol::try_from(p) {
        Ok(pb::Protocol::Udp) => Protocol::Udp,
        _ => Protocol::Tcp,
    }
}

/// The namespace of a network's balancer; `None` for ingress, whose balancer is in the node's
/// own namespace.
pub(super) fn ns_name(t: &pb::LbTable) -> Option<String> {
    (!t.ingress).then(|| names::lb_ns(&t.network_id))
}

/// How the overlay user keys of balancers begin (tasks are users by their id).
pub(in crate::network) const LB_USER_PREFIX: &str = "lb:";

/// The overlay user key of a network's balancer.
pub(super) fn lb_user(net: &str) -> String {
    format!("{LB_USER_PREFIX}{net}")
}

/// What the balancer of `t` must hold.
pub(super) fn desired(t: &pb::LbTable) -> Desired {
    let mut services = Vec::new();
    let mut marks = Vec::new();
    let mut vips = BTreeSet::new();
    for s in t.services.iter().filter(|s| s.fwmark > 0) {
        if t.ingress {
            // `traffic=local` ports are the node table's (to local tasks only), not the mesh's.
            for p in s
                .ports
                .iter()
                .filter(|p| p.traffic() != pb::TrafficPolicy::Local)
            {
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
    Desired {
        services,
        marks,
        vips,
    }
}

/// The published ports of the ingress table among `tables`: the routing mesh's.
pub(super) fn mesh_ports(tables: &[pb::LbTable]) -> BTreeSet<(Protocol, u16)> {
    ingress_ports(tables, |_| true)
}

/// The published ports of the ingress table among `tables` with `traffic=local`: each node
/// answers them with its own tasks only (see the node's table), never through `ingress_sbox`.
pub(super) fn local_mesh_ports(tables: &[pb::LbTable]) -> BTreeSet<(Protocol, u16)> {
    ingress_ports(tables, |p| p.traffic() == pb::TrafficPolicy::Local)
}

/// The published ports of the ingress table among `tables` that `keep` keeps.
fn ingress_ports(
    tables: &[pb::LbTable],
    keep: impl Fn(&pb::LbPort) -> bool,
) -> BTreeSet<(Protocol, u16)> {
    tables
        .iter()
        .find(|t| t.ingress)
        .map(|t| {
            t.services
                .iter()
                .flat_map(|s| &s.ports)
                .filter(|p| keep(p))
                .filter_map(|p| Some((protocol(p.protocol), u16::try_from(p.published).ok()?)))
                .collect()
        })
        .unwrap_or_default()
}

/// How a mark chain sees packets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum MarkChain {
    /// Every packet (`type filter`): IPVS in `lb_<netid>` reads the mark.
    EveryPacket,
    /// A connection's first packet only (`type nat`): enough when the mark only picks the
    /// balancer's DNAT, which sees no other packet. The chain then costs nothing per packet of
    /// an established connection — in a task's namespace or the node's, that is every packet the
    /// task or the node sends.
    FirstPacket,
}

impl MarkChain {
    fn hook(self, hook: &'static str) -> Hook {
        let ty = match self {
            MarkChain::EveryPacket => "filter",
            MarkChain::FirstPacket => "nat",
        };
        Hook {
            ty,
            hook,
            prio: -150,
        }
    }
}

/// A batch that replaces table `t` with an empty one whose one chain, named after `hook`, marks
/// packets at mangle priority (before NAT): the start of a whole mark table.
pub(super) fn fresh_mark_table(t: &str, hook: &'static str, kind: MarkChain) -> Batch {
    let mut b = Batch::new();
    b.replace_table(Family::Ip, t);
    b.add_chain(Family::Ip, t, hook, Some(&kind.hook(hook)));
    b
}

/// The mark table of a balancer namespace, whole: one rule per VIP (`lb_<netid>`, every packet:
/// IPVS may read it). Ingress (the node's own namespace): nat chains, so only a connection's
/// first packet crosses them (the mesh's DNAT sees no other), with one rule per chain for every
/// published port: the cheap test first, `meta l4proto . th dport` in the set of published
/// ports; then from outside (prerouting), not an answer coming back through the ingress leg; an
/// address of the node (`localhost` included from output); then the port's mark, from a map.
pub(super) fn mark_rules(rules: &[MarkRule], ingress: bool) -> Batch {
    let t = MARK_TABLE;
    let kind = if ingress {
        MarkChain::FirstPacket
    } else {
        MarkChain::EveryPacket
    };
    let mut b = fresh_mark_table(t, "prerouting", kind);
    let mut ports = Vec::new();
    for r in rules {
        match r {
            MarkRule::Vip(vip, mark) => {
                let m = vec![
                    expr::eq(expr::ip("daddr"), json!(vip.to_string())),
                    expr::set_mark(*mark),
                ];
                b.add_rule(Family::Ip, t, "prerouting", m, None);
            }
            MarkRule::Port(proto, port, mark) => {
                ports.push((
                    expr::concat(vec![json!(proto.as_str()), json!(port)]),
                    json!(mark),
                ));
            }
        }
    }
    if !ingress {
        return b;
    }
    b.add_chain(Family::Ip, t, "output", Some(&kind.hook("output")));
    if ports.is_empty() {
        return b;
    }
    let key = || expr::concat(vec![expr::meta("l4proto"), expr::th("dport")]);
    let published: Vec<serde_json::Value> = ports.iter().map(|(k, _)| k.clone()).collect();
    for chain in ["prerouting", "output"] {
        let mut m = vec![expr::eq(key(), json!({"set": published.clone()}))];
        if chain == "prerouting" {
            m.push(expr::ne(expr::meta("iifname"), json!(names::INGRESS_LEG)));
        }
        m.push(expr::eq(expr::fib(&["daddr"], "type"), json!("local")));
        m.push(json!({"mangle": {
            "key": {"meta": {"key": "mark"}},
            "value": expr::map_lookup(key(), expr::anon_map(ports.clone())),
        }}));
        b.add_rule(Family::Ip, t, chain, m, None);
    }
    b
}

/// The table of `task`'s namespace that redirects its published ports on the ingress network
/// (arriving on `ingress_if`) to their target ports (`--publish 8080:80` arrives as 8080, the
/// program listens on 80); `None` when it has no such port.
pub(in crate::network) fn redirect_published(task: &Task, ingress_if: &str) -> Option<Batch> {
    let ports: Vec<(Protocol, u16, u16)> = task
        .spec
        .ports
        .iter()
        .filter(|p| p.mode == PublishMode::Ingress && p.published != 0 && p.published != p.target)
        .map(|p| (p.protocol, p.published, p.target))
        .collect();
    if ports.is_empty() {
        return None;
    }
    let t = TASK_TABLE;
    let mut b = Batch::new();
    b.replace_table(Family::Ip, t);
    b.add_chain(Family::Ip, t, "prerouting", Some(&Hook::nat_prerouting()));
    for (proto, published, target) in ports {
        b.add_rule(
            Family::Ip,
            t,
            "prerouting",
            vec![
                expr::eq(expr::meta("iifname"), json!(ingress_if)),
                expr::eq(expr::meta("l4proto"), json!(proto.as_str())),
                expr::eq(expr::th("dport"), json!(published)),
                json!({"redirect": {"port": target}}),
            ],
            None,
        );
    }
    Some(b)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn table(backends: &[&str]) -> pb::LbTable {
        pb::LbTable {
            network_id: "n1".into(),
            lb_addr: "10.0.0.250/24".into(),
            services: vec![pb::LbService {
                name: "web".into(),
                fwmark: 7,
                vip: "10.0.0.5/24".into(),
                backends: backends
                    .iter()
                    .map(|ip| pb::LbBackend {
                        ip: ip.to_string(),
                        ..Default::default()
                    })
                    .collect(),
                ..Default::default()
            }],
            ..Default::default()
        }
    }

    #[test]
    fn a_service_is_a_mark_a_vip_and_its_backends() {
        let d = desired(&table(&["10.0.0.2", "not-an-ip", "10.0.0.3"]));
        assert_eq!(d.vips, BTreeSet::from(["10.0.0.5".parse().unwrap()]));
        assert_eq!(d.marks, vec![MarkRule::Vip("10.0.0.5".parse().unwrap(), 7)]);
        assert_eq!(d.services.len(), 1);
        let b: Vec<String> = d.services[0]
            .backends
            .iter()
            .map(|b| b.addr.addr.to_string())
            .collect();
        assert_eq!(b, ["10.0.0.2", "10.0.0.3"], "a bad address is skipped");
    }

    /// The ingress table of `web`: 8080 through the mesh, 9090 `traffic=local`.
    fn ingress_8080_cluster_9090_local() -> pb::LbTable {
        let port = |published, traffic: pb::TrafficPolicy| pb::LbPort {
            protocol: pb::Protocol::Tcp as i32,
            published,
            target: 80,
            traffic: traffic as i32,
        };
        let mut t = table(&["10.0.0.2"]);
        t.ingress = true;
        t.services[0].ports = vec![
            port(8080, pb::TrafficPolicy::Cluster),
            port(9090, pb::TrafficPolicy::Local),
        ];
        t
    }

    #[test]
    fn the_mesh_marks_published_ports_on_the_nodes_own_addresses() {
        let t = ingress_8080_cluster_9090_local();
        let d = desired(&t);
        assert!(d.vips.is_empty(), "no VIP on the node: {d:?}");
        assert_eq!(
            d.marks,
            [MarkRule::Port(Protocol::Tcp, 8080, 7)],
            "a traffic=local port is the node table's, not the mesh's"
        );
        let doc = mark_rules(&d.marks, true).to_json();
        let rules: Vec<(String, String)> = doc["nftables"]
            .as_array()
            .unwrap()
            .iter()
            .filter_map(|c| c["add"].get("rule"))
            .map(|r| (r["chain"].as_str().unwrap().into(), r["expr"].to_string()))
            .collect();
        assert_eq!(rules.len(), 2, "{rules:?}");
        for (chain, e) in &rules {
            // The set test first (every new connection of the node crosses this chain), then
            // the rest.
            let at = |needle: &str| e.find(needle).unwrap_or_else(|| panic!("{needle}: {e}"));
            assert!(
                at(r#"{"set":[{"concat":["tcp",8080]}]}"#) < at("fib"),
                "{e}"
            );
            assert!(at("fib") < at("mangle"), "{e}");
            assert!(e.contains(r#"[{"concat":["tcp",8080]},7]"#), "{e}");
            assert_eq!(e.contains(names::INGRESS_LEG), chain == "prerouting", "{e}");
        }
        // nat chains: a connection's first packet only, never the packets after it.
        let chains: Vec<String> = doc["nftables"]
            .as_array()
            .unwrap()
            .iter()
            .filter_map(|c| c["add"].get("chain"))
            .map(|c| {
                format!(
                    "{}/{}",
                    c["name"].as_str().unwrap(),
                    c["type"].as_str().unwrap()
                )
            })
            .collect();
        assert_eq!(chains, ["prerouting/nat", "output/nat"]);
        let lb = mark_rules(&[MarkRule::Vip("10.0.1.2".parse().unwrap(), 7)], false).to_json();
        assert!(
            lb.to_string().contains(r#""type":"filter""#),
            "lb_: every packet, for IPVS: {lb}"
        );
        // Nothing published: the chains exist, empty.
        let none = mark_rules(&[], true).to_json().to_string();
        assert!(
            none.contains("output") && !none.contains("mangle"),
            "{none}"
        );
    }

    #[test]
    fn local_ports_are_told_apart_from_the_meshs() {
        let t = ingress_8080_cluster_9090_local();
        let tables = [t];
        assert_eq!(
            mesh_ports(&tables),
            BTreeSet::from([(Protocol::Tcp, 8080), (Protocol::Tcp, 9090)])
        );
        assert_eq!(
            local_mesh_ports(&tables),
            BTreeSet::from([(Protocol::Tcp, 9090)])
        );
    }
}
