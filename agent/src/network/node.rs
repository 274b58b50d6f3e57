//! The node's own side: a bridge per local network with its gateway address, and the node's
//! nftables table (`shoal`), rebuilt whole from [`NodeState`] whenever it changes: masquerading
//! out of each bridge, no forwarding between bridges, the routing mesh's `traffic=local` ports
//! and `mode=host` published ports to local tasks, and a refusal for published ports nothing
//! DNATed (the mesh's own balancer, [`super::lb`], DNATs the cluster ports before).

use std::collections::{BTreeMap, BTreeSet};
use std::net::Ipv4Addr;

use serde_json::json;
use shoal_netlib::names;
use shoal_netlib::nft::{expr, Batch, Family, Hook};
use shoal_proto::model::{Protocol, PublishMode, Task, TrafficPolicy, VXLAN_PORT};

use super::{DataPlane, Error, Interface, Result};
use shoal_proto::model::Ipv4Net;

/// The nftables table this module owns in the node's namespace.
const NODE_TABLE: &str = "shoal";
/// The node's table at raw priority (before conntrack).
const RAW_TABLE: &str = "shoal_raw";
/// The default `bridge` network's subnet, for tasks attached to no network.
pub(super) const DEFAULT_BRIDGE_SUBNET: &str = "172.17.0.0/16";
/// `shoal_gwbridge`'s subnet: overlay tasks' way out.
pub(super) const GW_BRIDGE_SUBNET: &str = "172.18.0.0/16";

/// A bridge the node has for a local network.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct NodeBridge {
    name: String,
    subnet: Ipv4Net,
}

/// What the node's own nftables table is made from.
#[derive(Debug, Default)]
pub(super) struct NodeState {
    /// Bridge name → bridge.
    pub(super) bridges: BTreeMap<String, NodeBridge>,
    /// Bridge name → the local tasks on it (a user bridge nobody uses is removed).
    pub(super) bridge_users: BTreeMap<String, BTreeSet<String>>,
    /// `(protocol, published port)` → task → (task address, target port): `mode=host` ports.
    pub(super) host_ports: BTreeMap<(Protocol, u16), BTreeMap<String, (Ipv4Addr, u16)>>,
    /// The routing mesh's `traffic=cluster` ports, which its balancer DNATs (see [`super::lb`]);
    /// refused here when it did not (no task serves them).
    pub(super) mesh: BTreeSet<(Protocol, u16)>,
    /// The mesh's `traffic=local` ports (from the ingress table): answered only by this node's
    /// own tasks (`local_tasks`), refused when it has none.
    pub(super) mesh_local: BTreeSet<(Protocol, u16)>,
    /// `(protocol, published port)` → task → (task address on its bridge, target port): this
    /// node's tasks publishing a `traffic=local` ingress port.
    pub(super) local_tasks: BTreeMap<(Protocol, u16), BTreeMap<String, (Ipv4Addr, u16)>>,
}

impl DataPlane {
    /// The node's bridge for a local network, with its gateway address, and the node's NAT and
    /// isolation rules for every bridge.
    pub(super) async fn ensure_bridge(
        &self,
        br: &str,
        subnet: Ipv4Net,
        gateway: Ipv4Addr,
        task: &str,
    ) -> Result<()> {
        // One at a time: two tasks starting together must not both create the bridge.
        let mut node = self.inner.node.lock().await;
        node.bridge_users
            .entry(br.to_string())
            .or_default()
            .insert(task.to_string());
        let host = &self.inner.host;
        host.ensure_bridge(br).await?;
        host.ensure_addr(br, gateway, subnet.prefix()).await?;
        host.ensure_up(br).await?;
        if br == names::GW_BRIDGE {
            // `curl localhost:PORT` on the node to a `traffic=local` port: 127.0.0.1 may leave
            // through the bridge (then masqueraded, see the table).
            host.sysctl(&format!("net.ipv4.conf.{br}.route_localnet"), "1")?;
        }
        let want = NodeBridge {
            name: br.to_string(),
            subnet,
        };
        if node.bridges.get(br) == Some(&want) {
            return Ok(());
        }
        node.bridges.insert(br.to_string(), want);
        host.apply_nft(&node.rules()).await
    }

    /// Opens `task`'s `mode=host` ports on this node, and its `traffic=local` ingress ports, to
    /// its address on the first network the node routes to (a bridge network: for a task on
    /// overlays, `shoal_gwbridge`, whose gateway is the node: the answers go back through it).
    pub(super) async fn publish_host_ports(
        &self,
        task: &Task,
        interfaces: &[Interface],
    ) -> Result<()> {
        let ports: Vec<_> = task
            .spec
            .ports
            .iter()
            .filter(|p| p.published != 0)
            .filter(|p| p.mode == PublishMode::Host || p.traffic == TrafficPolicy::Local)
            .collect();
        if ports.is_empty() {
            return Ok(());
        }
        let Some(addr) = interfaces
            .iter()
            .find(|i| i.gateway.is_some())
            .map(|i| i.addr)
        else {
            return Err(Error::HostPortNeedsBridge);
        };
        let mut node = self.inner.node.lock().await;
        let mut changed = false;
        for p in ports {
            let map = if p.mode == PublishMode::Host {
                &mut node.host_ports
            } else {
                &mut node.local_tasks
            };
            let slot = map.entry((p.protocol, p.published)).or_default();
            changed |= slot.insert(task.id.to_string(), (addr, p.target)) != Some((addr, p.target));
        }
        if changed {
            self.inner.host.apply_nft(&node.rules()).await?;
        }
        Ok(())
    }

    /// The node's side of the mesh: `cluster` ports are balanced by the mesh's own balancer
    /// (refused here when it has no task for them); `local` ones go to this node's own tasks.
    pub(super) async fn set_mesh(
        &self,
        cluster: BTreeSet<(Protocol, u16)>,
        local: BTreeSet<(Protocol, u16)>,
    ) -> Result<()> {
        let mut node = self.inner.node.lock().await;
        if node.mesh == cluster && node.mesh_local == local {
            return Ok(());
        }
        node.mesh = cluster;
        node.mesh_local = local;
        self.inner.host.apply_nft(&node.rules()).await
    }
}

impl NodeState {
    /// The node's table: masquerade what leaves a bridge's subnet through another interface, and
    /// drop forwarding from one Shoal bridge to another (networks are isolated, as Docker's are).
    pub(super) fn rules(&self) -> Batch {
        let node = self;
        let bridges = &node.bridges;
        let t = NODE_TABLE;
        let mut b = Batch::new();
        b.replace_table(Family::Ip, t);
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
                expr::eq(expr::ip("saddr"), json!({"prefix": {"addr": br.subnet.addr().to_string(), "len": br.subnet.prefix()}})),
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
        // The ingress network is the mesh's: the node forwards into it only the connections its
        // balancer DNATed there, not whatever a task or a neighbour routes to an ingress address.
        let leg = json!(names::INGRESS_LEG);
        b.add_rule(
            Family::Ip,
            t,
            "forward",
            vec![
                expr::eq(expr::meta("oifname"), leg.clone()),
                expr::has(expr::ct("status"), json!("dnat")),
                expr::accept(),
            ],
            None,
        );
        b.add_rule(
            Family::Ip,
            t,
            "forward",
            vec![expr::eq(expr::meta("oifname"), leg), json!({"drop": null})],
            None,
        );
        node.local_rules(&mut b);
        if !node.local_tasks.is_empty() {
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
                    b.add_rule(
                        Family::Ip,
                        t,
                        chain,
                        dnat_round_robin(*proto, *port, tasks),
                        None,
                    );
                }
            }
        }
        b
    }
}

/// The table that keeps conntrack off the overlays' VXLAN packets in the node's namespace,
/// whole: nothing NATs them (no port can be published on [`VXLAN_PORT`]/udp), so following them
/// costs a lookup per packet and fills the node's conntrack table with an entry per VXLAN
/// source port (one per inner flow's hash). Written once, when the data plane starts.
pub(super) fn vxlan_notrack() -> Batch {
    let t = RAW_TABLE;
    let mut b = Batch::new();
    b.replace_table(Family::Ip, t);
    for hook in ["prerouting", "output"] {
        // raw priority: before conntrack (-200) sees the packet
        let raw = Hook {
            ty: "filter",
            hook,
            prio: -300,
        };
        b.add_chain(Family::Ip, t, hook, Some(&raw));
        b.add_rule(
            Family::Ip,
            t,
            hook,
            vec![
                expr::eq(expr::meta("l4proto"), json!("udp")),
                expr::eq(expr::th("dport"), json!(VXLAN_PORT)),
                json!({"notrack": null}),
            ],
            None,
        );
    }
    b
}

/// A rule's expressions: `proto` port `port` addressed to this node, DNATed round robin to
/// `tasks` (each task's bridge address and target port).
fn dnat_round_robin(
    proto: Protocol,
    port: u16,
    tasks: &BTreeMap<String, (Ipv4Addr, u16)>,
) -> Vec<serde_json::Value> {
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
    [
        to_local_port(proto.as_str(), port),
        vec![expr::dnat_to(expr::map_lookup(
            expr::numgen_inc(n),
            expr::anon_map(targets),
        ))],
    ]
    .concat()
}

impl NodeState {
    /// The mesh's `traffic=local` ports: to this node's own tasks on their bridge address and
    /// target port, round robin, without SNAT (the client's address reaches the task, whose
    /// default route is the node: the answers come back here and conntrack undoes the DNAT);
    /// refused (TCP reset, ICMP port unreachable) where the node has none: never sent to another
    /// node. The cluster ports are refused too when a new connection reaches the node itself:
    /// the mesh's balancer, before, DNATs every one it has a task for.
    fn local_rules(&self, b: &mut Batch) {
        let t = NODE_TABLE;
        let ports: BTreeSet<(Protocol, u16)> = self
            .mesh_local
            .iter()
            .chain(self.local_tasks.keys())
            .copied()
            .collect();
        let mut refused: Vec<(Protocol, u16)> = self.mesh.iter().copied().collect();
        for (proto, port) in &ports {
            let Some(tasks) = self
                .local_tasks
                .get(&(*proto, *port))
                .filter(|t| !t.is_empty())
            else {
                refused.push((*proto, *port));
                continue;
            };
            for (chain, hook) in [
                ("prerouting", Hook::nat_prerouting()),
                ("output", Hook::nat_output()),
            ] {
                b.add_chain(Family::Ip, t, chain, Some(&hook));
                b.add_rule(
                    Family::Ip,
                    t,
                    chain,
                    dnat_round_robin(*proto, *port, tasks),
                    None,
                );
            }
        }
        if refused.is_empty() {
            return;
        }
        b.add_chain(
            Family::Ip,
            t,
            "input",
            Some(&Hook {
                ty: "filter",
                hook: "input",
                prio: 0,
            }),
        );
        for (proto, port) in refused {
            let reject = match proto {
                Protocol::Tcp => json!({"reject": {"type": "tcp reset"}}),
                Protocol::Udp => json!({"reject": null}),
            };
            b.add_rule(
                Family::Ip,
                t,
                "input",
                [
                    to_local_port(proto.as_str(), port),
                    // Not an answer whose (SNATed) port happens to be a published one.
                    vec![expr::eq(expr::ct("state"), json!("new")), reject],
                ]
                .concat(),
                None,
            );
        }
    }
}

/// The match of a published port on the node's own addresses: `fib daddr type local
/// meta l4proto PROTO th dport PORT`.
fn to_local_port(proto: &str, port: u16) -> Vec<serde_json::Value> {
    vec![
        expr::eq(expr::fib(&["daddr"], "type"), json!("local")),
        expr::eq(expr::meta("l4proto"), json!(proto)),
        expr::eq(expr::th("dport"), json!(port)),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The rules of `state`'s table as `(chain, rule JSON)`.
    fn rules(state: &NodeState) -> Vec<(String, String)> {
        rules_of(&state.rules())
    }

    /// The rules `batch` adds, as `(chain, rule JSON)`.
    fn rules_of(batch: &Batch) -> Vec<(String, String)> {
        batch.to_json()["nftables"]
            .as_array()
            .unwrap()
            .iter()
            .filter_map(|c| c["add"].get("rule"))
            .map(|r| {
                (
                    r["chain"].as_str().unwrap().to_string(),
                    r["expr"].to_string(),
                )
            })
            .collect()
    }

    fn chain<'a>(r: &'a [(String, String)], name: &str) -> Vec<&'a String> {
        r.iter()
            .filter(|(c, _)| c == name)
            .map(|(_, e)| e)
            .collect()
    }

    #[test]
    fn a_local_port_goes_to_the_nodes_own_tasks_without_snat() {
        let mut st = NodeState {
            mesh: [(Protocol::Tcp, 8080)].into(),
            mesh_local: [(Protocol::Tcp, 9090)].into(),
            ..Default::default()
        };
        st.local_tasks.insert(
            (Protocol::Tcp, 9090),
            [
                ("t1".to_string(), ("172.18.0.5".parse().unwrap(), 80)),
                ("t2".to_string(), ("172.18.0.6".parse().unwrap(), 80)),
            ]
            .into(),
        );
        let r = rules(&st);
        for name in ["prerouting", "output"] {
            // Only the local port: the mesh's balancer DNATs the cluster one in its own table.
            let of = chain(&r, name);
            assert_eq!(of.len(), 1, "{name}: {r:?}");
            assert!(of[0].contains("9090"), "{r:?}");
            assert!(
                of[0].contains("172.18.0.5") && of[0].contains("172.18.0.6"),
                "{r:?}"
            );
            assert!(of[0].contains("numgen"), "{r:?}");
        }
        // No SNAT: the only masquerade is the one for 127.0.0.0/8 (the node's own `localhost`).
        let masq = chain(&r, "postrouting");
        let masq: Vec<_> = masq
            .iter()
            .filter(|e| e.contains("shoal_gwbridge"))
            .collect();
        assert_eq!(masq.len(), 1, "{r:?}");
        assert!(masq[0].contains("127.0.0.0"), "{masq:?}");
        // The cluster port is refused only where its balancer did not DNAT it (no task).
        let input = chain(&r, "input");
        assert_eq!(input.len(), 1, "{r:?}");
        assert!(
            input[0].contains("8080") && input[0].contains("\"new\""),
            "{r:?}"
        );
    }

    #[test]
    fn a_local_port_without_a_local_task_is_refused_not_forwarded() {
        let st = NodeState {
            mesh: [(Protocol::Tcp, 8080)].into(),
            mesh_local: [(Protocol::Tcp, 9090), (Protocol::Udp, 9091)].into(),
            ..Default::default()
        };
        let r = rules(&st);
        assert!(
            !r.iter()
                .any(|(c, _)| c != "input" && c != "postrouting" && c != "forward"),
            "no DNAT for a local port with no task here: {r:?}"
        );
        let input = chain(&r, "input");
        assert_eq!(input.len(), 3, "{r:?}");
        assert!(input
            .iter()
            .any(|e| e.contains("8080") && e.contains("tcp reset")));
        assert!(input
            .iter()
            .any(|e| e.contains("9090") && e.contains("tcp reset")));
        assert!(input
            .iter()
            .any(|e| e.contains("9091") && e.contains("\"reject\":null")));
    }

    #[test]
    fn without_local_ports_the_node_only_refuses_what_the_mesh_did_not_take() {
        let st = NodeState {
            mesh: [(Protocol::Tcp, 8080)].into(),
            ..Default::default()
        };
        let r = rules(&st);
        let chains: Vec<&str> = r.iter().map(|(c, _)| c.as_str()).collect();
        assert_eq!(chains, ["forward", "forward", "input"], "{r:?}");
        // Into the ingress network, only what a balancer DNATed.
        let fwd = chain(&r, "forward");
        assert!(
            fwd[0].contains("swingress") && fwd[0].contains("dnat") && fwd[0].contains("accept")
        );
        assert!(fwd[1].contains("swingress") && fwd[1].contains("drop"));
    }

    #[test]
    fn the_overlays_vxlan_packets_are_not_tracked() {
        let r = rules_of(&vxlan_notrack());
        assert_eq!(r.len(), 2, "{r:?}");
        for (_, e) in &r {
            assert!(
                e.contains(r#""right":"udp""#)
                    && e.contains(r#""right":4789"#)
                    && e.contains(r#"{"notrack":null}"#),
                "{e}"
            );
        }
        let doc = vxlan_notrack().to_json().to_string();
        for hook in ["prerouting", "output"] {
            let chain = format!(r#""hook":"{hook}","name":"{hook}","policy":"accept","prio":-300"#);
            assert!(
                doc.contains(&chain),
                "{hook} before conntrack (-200): {doc}"
            );
        }
    }
}
