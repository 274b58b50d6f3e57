//! The node's own side: a bridge per local network with its gateway address, and the node's
//! nftables table (`shoal`), rebuilt whole from [`NodeState`] whenever it changes: masquerading
//! out of each bridge, no forwarding between bridges, the routing mesh's published ports to
//! `ingress_sbox`, and `mode=host` published ports to local tasks.

use std::collections::{BTreeMap, BTreeSet};
use std::net::Ipv4Addr;

use serde_json::json;
use shoal_netlib::names;
use shoal_netlib::nft::{expr, Batch, Family, Hook};
use shoal_proto::model::{Protocol, PublishMode, Task};

use super::{DataPlane, Error, Interface, Result};
use shoal_proto::model::Ipv4Net;

/// The nftables table this module owns in the node's namespace.
const NODE_TABLE: &str = "shoal";
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
    /// The routing mesh: `ingress_sbox`'s address on `shoal_gwbridge` and the published ports.
    pub(super) mesh: Option<(Ipv4Addr, BTreeSet<(Protocol, u16)>)>,
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

    /// Opens `task`'s `mode=host` ports on this node, to its address on the first network the
    /// node routes to (a bridge network).
    pub(super) async fn publish_host_ports(
        &self,
        task: &Task,
        interfaces: &[Interface],
    ) -> Result<()> {
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
            return Err(Error::HostPortNeedsBridge);
        };
        let mut node = self.inner.node.lock().await;
        let mut changed = false;
        for p in ports {
            let slot = node
                .host_ports
                .entry((p.protocol, p.published))
                .or_default();
            changed |= slot.insert(task.id.to_string(), (addr, p.target)) != Some((addr, p.target));
        }
        if changed {
            self.inner.host.apply_nft(&node.rules()).await?;
        }
        Ok(())
    }

    /// The node's side of the mesh: published ports to `ingress_sbox`.
    pub(super) async fn set_mesh(
        &self,
        sbox: Option<Ipv4Addr>,
        ports: BTreeSet<(Protocol, u16)>,
    ) -> Result<()> {
        let mut node = self.inner.node.lock().await;
        let want = match sbox {
            Some(addr) if !ports.is_empty() => Some((addr, ports)),
            _ => None,
        };
        if node.mesh == want {
            return Ok(());
        }
        node.mesh = want;
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
                        [
                            to_local_port(proto.as_str(), *port),
                            vec![expr::dnat(*sbox, *port)],
                        ]
                        .concat(),
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
                        [
                            to_local_port(proto.as_str(), *port),
                            vec![expr::dnat_to(expr::map_lookup(
                                expr::numgen_inc(n),
                                expr::anon_map(targets),
                            ))],
                        ]
                        .concat(),
                        None,
                    );
                }
            }
        }
        b
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
