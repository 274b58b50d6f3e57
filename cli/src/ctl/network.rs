//! `swarmctl network create | ls | inspect | rm`.

use super::{json, names, output, parse, Ctx, Failures};
use crate::client::RpcResultExt;
use clap::{Subcommand, ValueEnum};
use serde_json::Value;
use shoal_proto::model::{validate_name, Ipv4Net, NameKind};
use shoal_proto::pb;

/// `network` subcommands.
#[derive(Debug, Subcommand)]
pub enum NetworkCmd {
    /// Create a network.
    Create {
        /// overlay spans the cluster (VXLAN); bridge is local to each node.
        #[arg(short = 'd', long, value_enum, default_value_t = DriverArg::Overlay)]
        driver: DriverArg,
        /// Subnet in CIDR form (default: the next free one from the cluster's address pool).
        #[arg(long)]
        subnet: Option<String>,
        /// Let standalone tasks attach.
        #[arg(long)]
        attachable: bool,
        /// Label `key=value` (repeatable).
        #[arg(long = "label", value_name = "KEY=VALUE", value_parser = parse::label)]
        labels: Vec<(String, String)>,
        /// Network name.
        name: String,
    },
    /// List networks.
    #[command(alias = "list")]
    Ls {
        /// Print only network ids.
        #[arg(short, long)]
        quiet: bool,
        /// Do not truncate ids.
        #[arg(long)]
        no_trunc: bool,
    },
    /// Show networks in detail (JSON, or a summary with --pretty or --format table), or with
    /// --lb each node's load balancer for the network as `ipvsadm -Ln` shows it.
    Inspect {
        /// Human-readable summary instead of JSON.
        #[arg(long, conflicts_with = "lb")]
        pretty: bool,
        /// Network names, ids or id prefixes.
        #[arg(required = true)]
        networks: Vec<String>,
        /// Show the nodes' balancers (virtual services by firewall mark, scheduler, backends by
        /// task name, forwarding, weight, connections).
        #[arg(long)]
        lb: bool,
        /// With --lb: only this node's.
        #[arg(long, requires = "lb")]
        node: Option<String>,
    },
    /// Remove networks.
    #[command(alias = "remove")]
    Rm {
        /// Network names, ids or id prefixes.
        #[arg(required = true)]
        networks: Vec<String>,
    },
}

/// `--driver` values.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum DriverArg {
    /// VXLAN overlay across nodes (swarm scope).
    Overlay,
    /// A Linux bridge on each node (local scope).
    Bridge,
}

/// Runs a `network` subcommand.
pub async fn run(ctx: &mut Ctx, cmd: NetworkCmd) -> anyhow::Result<()> {
    match cmd {
        NetworkCmd::Create {
            driver,
            subnet,
            attachable,
            labels,
            name,
        } => {
            validate_name(NameKind::Network, &name)?;
            if let Some(s) = &subnet {
                check_cidr(s)?;
            }
            let req = pb::CreateNetworkRequest {
                name,
                driver: match driver {
                    DriverArg::Overlay => pb::NetworkDriver::Overlay,
                    DriverArg::Bridge => pb::NetworkDriver::Bridge,
                } as i32,
                subnet: subnet.unwrap_or_default(),
                attachable,
                labels: labels.into_iter().collect(),
            };
            let n = ctx.client.create_network(req).await.rpc()?;
            if ctx.json() {
                ctx.out.json(&json::network(&n));
            } else {
                ctx.out.line(&n.id);
            }
            Ok(())
        }
        NetworkCmd::Ls { quiet, no_trunc } => {
            let mut nets = ctx.client.list_networks(pb::Empty {}).await.rpc()?.networks;
            nets.sort_by(|a, b| output::natural_cmp(&a.name, &b.name));
            if ctx.json() {
                ctx.out
                    .json(&Value::Array(nets.iter().map(json::network).collect()));
            } else if quiet {
                for n in &nets {
                    ctx.out.line(&output::id(&n.id, no_trunc));
                }
            } else {
                ctx.out.print(&table(&nets, no_trunc));
            }
            Ok(())
        }
        NetworkCmd::Inspect {
            networks,
            lb: true,
            node,
            ..
        } => {
            let mut failures = Failures::default();
            let mut reports = Vec::new();
            for network in networks {
                let req = pb::InspectLbRequest {
                    network,
                    node: node.clone().unwrap_or_default(),
                };
                if let Some(r) = failures.check(ctx.client.inspect_lb(req).await.rpc()) {
                    reports.push(r);
                }
            }
            if ctx.json() && !reports.is_empty() {
                ctx.out
                    .json(&Value::Array(reports.iter().map(json::lb_report).collect()));
            } else if !ctx.json() {
                for r in &reports {
                    ctx.out.print(&lb_text(r));
                }
            }
            failures.finish()
        }
        NetworkCmd::Inspect {
            networks, pretty, ..
        } => {
            let mut failures = Failures::default();
            let mut found = Vec::new();
            for id in networks {
                if let Some(n) =
                    failures.check(ctx.client.get_network(pb::IdRequest { id }).await.rpc())
                {
                    found.push(n);
                }
            }
            // Like Docker, but without its `[]`: when nothing was found, only the errors.
            if found.is_empty() {
                return failures.finish();
            }
            if ctx.readable(pretty) {
                let now = shoal_proto::model::now_ms();
                let text: Vec<String> = found.iter().map(|n| pretty_network(n, now)).collect();
                ctx.out.print(&text.join("\n"));
            } else {
                ctx.out
                    .json(&Value::Array(found.iter().map(json::network).collect()));
            }
            failures.finish()
        }
        NetworkCmd::Rm { networks } => {
            let mut failures = Failures::default();
            let mut removed = Vec::new();
            for id in networks {
                if failures
                    .check(
                        ctx.client
                            .remove_network(pb::IdRequest { id: id.clone() })
                            .await
                            .rpc(),
                    )
                    .is_some()
                {
                    if !ctx.json() {
                        ctx.out.line(&id);
                    }
                    removed.push(Value::String(id));
                }
            }
            if ctx.json() {
                ctx.out.json(&Value::Array(removed));
            }
            failures.finish()
        }
    }
}

/// A quick shape check of `--subnet` (IPv4 CIDR); the managers check the rest (overlaps, size).
/// Host bits are the managers' to refuse (they suggest the network address).
fn check_cidr(s: &str) -> anyhow::Result<()> {
    if s.parse::<Ipv4Net>().is_err() {
        anyhow::bail!("invalid --subnet {s:?}: expected an IPv4 CIDR such as 10.20.0.0/24");
    }
    Ok(())
}

/// The `network ls` table.
pub fn table(nets: &[pb::Network], no_trunc: bool) -> String {
    let mut t = output::Table::new(&["NETWORK ID", "NAME", "DRIVER", "SCOPE"]);
    for n in nets {
        t.row(vec![
            output::id(&n.id, no_trunc),
            n.name.clone(),
            names::driver(n.driver()).to_string(),
            names::scope(n.driver()).to_string(),
        ]);
    }
    t.render()
}

/// `network inspect --pretty` (or `--format table`), `Created` relative to `now_ms`.
pub fn pretty_network(n: &pb::Network, now_ms: i64) -> String {
    let mut o = output::KeyValues::new(16);
    o.kv("ID", &n.id);
    o.kv("Name", &n.name);
    o.kv("Driver", names::driver(n.driver()));
    o.kv("Scope", names::scope(n.driver()));
    // Empty until the managers allocated them (an empty value would read as a heading).
    if !n.subnet.is_empty() {
        o.kv("Subnet", &n.subnet);
    }
    if !n.gateway.is_empty() {
        o.kv("Gateway", &n.gateway);
    }
    if n.vni != 0 {
        o.kv("VNI", &n.vni.to_string());
    }
    o.kv("Attachable", &n.attachable.to_string());
    if n.ingress {
        o.kv("Ingress", "true");
    }
    if !n.labels.is_empty() {
        let mut l: Vec<String> = n.labels.iter().map(|(k, v)| format!("{k}={v}")).collect();
        l.sort();
        o.kv("Labels", &l.join(", "));
    }
    let created = output::ago(now_ms, n.created_ms);
    if !created.is_empty() {
        o.kv("Created", &created);
    }
    o.into_string()
}

/// `network inspect --lb`, one block per node in the form of `ipvsadm -Ln`: a virtual service per
/// firewall mark with its scheduler, then its backends named `service.slot.taskid`.
pub fn lb_text(r: &pb::LbReport) -> String {
    let mut out = String::new();
    for n in &r.nodes {
        if !n.error.is_empty() {
            out.push_str(&format!("{} ({}): {}\n\n", n.hostname, r.network, n.error));
            continue;
        }
        out.push_str(&format!(
            "{}: {} ({}), balancer address {}\n",
            n.hostname, n.namespace, n.kind, n.lb_addr
        ));
        out.push_str("Prot LocalAddress:Port Scheduler Flags\n");
        out.push_str(&format!(
            "  -> {:<40} {:<7} {:<6} {:<10} {:<9} {}\n",
            "RemoteAddress:Port", "Forward", "Weight", "ActiveConn", "InActConn", "Conns"
        ));
        for s in &n.services {
            let what = if s.ports.is_empty() {
                format!("{} VIP {}", s.name, s.vip)
            } else {
                let ports: Vec<String> = s
                    .ports
                    .iter()
                    .map(|p| {
                        let proto = if p.protocol == pb::Protocol::Udp as i32 {
                            "udp"
                        } else {
                            "tcp"
                        };
                        format!("*:{}->{}/{proto}", p.published, p.target)
                    })
                    .collect();
                format!("{} {}", s.name, ports.join(", "))
            };
            out.push_str(&format!("FWM  {} {}  ({what})\n", s.fwmark, s.scheduler));
            for b in &s.backends {
                let who = if b.name.is_empty() {
                    format!("{}:0", b.addr)
                } else {
                    format!("{} ({})", b.name, b.addr)
                };
                let n = |v: Option<u64>| v.map_or("-".to_string(), |v| v.to_string());
                out.push_str(&format!(
                    "  -> {:<40} {:<7} {:<6} {:<10} {:<9} {}\n",
                    who,
                    b.forward,
                    b.weight,
                    n(b.active),
                    n(b.inactive),
                    b.connections
                ));
            }
        }
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn network_table() {
        let nets = [
            pb::Network {
                id: "a".repeat(25),
                name: "ingress".into(),
                ..Default::default()
            },
            pb::Network {
                id: "b".repeat(25),
                name: "local".into(),
                driver: pb::NetworkDriver::Bridge as i32,
                ..Default::default()
            },
        ];
        let want = "\
NETWORK ID     NAME      DRIVER    SCOPE
aaaaaaaaaaaa   ingress   overlay   swarm
bbbbbbbbbbbb   local     bridge    local
";
        assert_eq!(table(&nets, false), want);
    }

    #[test]
    fn subnets() {
        assert!(check_cidr("10.20.0.0/24").is_ok());
        assert!(check_cidr("10.20.0.0").is_err());
        assert!(check_cidr("10.20.0.0/33").is_err());
        assert!(check_cidr("fd00::/64").is_err());
        assert!(
            check_cidr("10.20.0.5/24").is_ok(),
            "the managers refuse host bits"
        );
        assert!(check_cidr("10.20.0.0/x").is_err());
        assert_eq!(
            check_cidr(" 10.20.0.0/24").unwrap_err().to_string(),
            "invalid --subnet \" 10.20.0.0/24\": expected an IPv4 CIDR such as 10.20.0.0/24"
        );
    }
}
