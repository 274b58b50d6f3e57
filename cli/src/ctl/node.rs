//! `swarmctl node ls | inspect | ps | update | promote | demote | rm`.

use super::service::{ps_for, PsArgs};
use super::{json, names, output, parse, Ctx, Failures};
use crate::client::RpcResultExt;
use clap::{Subcommand, ValueEnum};
use serde_json::Value;
use shoal_proto::pb;

/// `node` subcommands.
#[derive(Debug, Subcommand)]
pub enum NodeCmd {
    /// List nodes.
    #[command(alias = "list")]
    Ls {
        /// Print only node ids.
        #[arg(short, long)]
        quiet: bool,
        /// Do not truncate ids.
        #[arg(long)]
        no_trunc: bool,
    },
    /// Show nodes in detail (JSON, or a summary with --pretty or --format table).
    Inspect {
        /// Human-readable summary instead of JSON.
        #[arg(long)]
        pretty: bool,
        /// Node ids, id prefixes or hostnames.
        #[arg(required = true)]
        nodes: Vec<String>,
    },
    /// List the tasks on nodes (default: the node swarmctl talks to), older tasks of a slot
    /// under the current one, as `service ps` does.
    Ps {
        /// --filter, --quiet, --no-trunc.
        #[command(flatten)]
        args: PsArgs,
        /// Node ids, id prefixes or hostnames (default: `self`, the manager of --host).
        nodes: Vec<String>,
    },
    /// Change a node's availability or labels.
    Update {
        /// active: take new tasks; pause: keep tasks, take no new ones; drain: move tasks away.
        #[arg(long, value_enum)]
        availability: Option<AvailabilityArg>,
        /// Add or replace a label (`key=value`, repeatable).
        #[arg(long = "label-add", value_name = "KEY=VALUE", value_parser = parse::label)]
        label_add: Vec<(String, String)>,
        /// Remove a label (repeatable).
        #[arg(long = "label-rm", value_name = "KEY")]
        label_rm: Vec<String>,
        /// Node id, id prefix or hostname.
        node: String,
    },
    /// Make workers managers (raft members).
    Promote {
        /// Node ids, id prefixes or hostnames.
        #[arg(required = true)]
        nodes: Vec<String>,
    },
    /// Make managers workers.
    Demote {
        /// Node ids, id prefixes or hostnames.
        #[arg(required = true)]
        nodes: Vec<String>,
    },
    /// Remove nodes from the cluster.
    #[command(alias = "remove")]
    Rm {
        /// Remove a node even if it still looks up.
        #[arg(short, long)]
        force: bool,
        /// Node ids, id prefixes or hostnames.
        #[arg(required = true)]
        nodes: Vec<String>,
    },
}

/// `--availability` values.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum AvailabilityArg {
    /// Take new tasks.
    Active,
    /// Keep running tasks, take no new ones.
    Pause,
    /// Move tasks elsewhere.
    Drain,
}

/// Runs a `node` subcommand.
pub async fn run(ctx: &mut Ctx, cmd: NodeCmd) -> anyhow::Result<()> {
    match cmd {
        NodeCmd::Ls { quiet, no_trunc } => ls(ctx, quiet, no_trunc).await,
        NodeCmd::Inspect { pretty, nodes } => inspect(ctx, pretty, &nodes).await,
        NodeCmd::Ps { args, nodes } => ps(ctx, &args, nodes).await,
        NodeCmd::Update {
            availability,
            label_add,
            label_rm,
            node,
        } => {
            let req = pb::UpdateNodeRequest {
                id: node.clone(),
                set_availability: availability.is_some(),
                availability: availability
                    .map(pb_availability)
                    .unwrap_or(pb::Availability::Active) as i32,
                add_labels: label_add.into_iter().collect(),
                rm_labels: label_rm,
                ..Default::default()
            };
            if !req.set_availability && req.add_labels.is_empty() && req.rm_labels.is_empty() {
                anyhow::bail!("nothing to update: give --availability, --label-add or --label-rm");
            }
            let n = ctx.client.update_node(req).await.rpc()?;
            if ctx.json() {
                ctx.out.json(&json::node(&n));
            } else {
                ctx.out.line(&node);
            }
            Ok(())
        }
        NodeCmd::Promote { nodes } => set_role(ctx, &nodes, pb::NodeRole::Manager).await,
        NodeCmd::Demote { nodes } => set_role(ctx, &nodes, pb::NodeRole::Worker).await,
        NodeCmd::Rm { force, nodes } => rm(ctx, force, &nodes).await,
    }
}

fn pb_availability(a: AvailabilityArg) -> pb::Availability {
    match a {
        AvailabilityArg::Active => pb::Availability::Active,
        AvailabilityArg::Pause => pb::Availability::Pause,
        AvailabilityArg::Drain => pb::Availability::Drain,
    }
}

async fn ls(ctx: &mut Ctx, quiet: bool, no_trunc: bool) -> anyhow::Result<()> {
    let mut nodes = ctx.client.list_nodes(pb::Empty {}).await.rpc()?.nodes;
    nodes.sort_by(|a, b| {
        output::natural_cmp(&a.hostname, &b.hostname).then_with(|| a.id.cmp(&b.id))
    });
    if ctx.json() {
        ctx.out
            .json(&Value::Array(nodes.iter().map(json::node).collect()));
    } else if quiet {
        for n in &nodes {
            ctx.out.line(&output::id(&n.id, no_trunc));
        }
    } else {
        ctx.out.print(&table(&nodes, no_trunc));
    }
    Ok(())
}

/// The node `node ps` means when given none: the manager swarmctl talks to resolves `self` to
/// itself (Docker's `docker node ps` defaults to the local node the same way).
pub const SELF_NODE: &str = "self";

async fn ps(ctx: &mut Ctx, args: &PsArgs, nodes: Vec<String>) -> anyhow::Result<()> {
    let nodes = if nodes.is_empty() {
        vec![SELF_NODE.to_string()]
    } else {
        nodes
    };
    let requests = nodes
        .into_iter()
        .map(|node| pb::TaskFilter {
            service: String::new(),
            node,
            all: true,
            up_to_date: false,
        })
        .collect();
    ps_for(ctx, args, requests).await
}

/// The `node ls` table.
pub fn table(nodes: &[pb::Node], no_trunc: bool) -> String {
    let mut t = output::Table::new(&["ID", "HOSTNAME", "STATUS", "AVAILABILITY", "MANAGER STATUS"]);
    for n in nodes {
        t.row(vec![
            output::id(&n.id, no_trunc),
            n.hostname.clone(),
            names::node_state(n.state()).to_string(),
            names::availability(n.availability()).to_string(),
            n.manager_status.clone(),
        ]);
    }
    t.render()
}

async fn inspect(ctx: &mut Ctx, pretty: bool, ids: &[String]) -> anyhow::Result<()> {
    let mut failures = Failures::default();
    let mut found = Vec::new();
    for id in ids {
        if let Some(n) = failures.check(
            ctx.client
                .get_node(pb::IdRequest { id: id.clone() })
                .await
                .rpc(),
        ) {
            found.push(n);
        }
    }
    // Like Docker, but without its `[]`: when nothing was found, only the errors are printed.
    if found.is_empty() {
        return failures.finish();
    }
    if ctx.readable(pretty) {
        let text: Vec<String> = found.iter().map(pretty_node).collect();
        ctx.out.print(&text.join("\n"));
    } else {
        ctx.out
            .json(&Value::Array(found.iter().map(json::node).collect()));
    }
    failures.finish()
}

/// `node inspect --pretty`.
pub fn pretty_node(n: &pb::Node) -> String {
    let mut s = format!(
        "ID:                     {}\nHostname:               {}\nAddress:                {}\nRole:                   {}\n",
        n.id,
        n.hostname,
        n.addr,
        names::role(n.role())
    );
    if !n.manager_status.is_empty() {
        s.push_str(&format!("Manager Status:         {}\n", n.manager_status));
    }
    s.push_str(&format!(
        "Status:\n State:                 {}\n",
        names::node_state(n.state())
    ));
    if !n.state_message.is_empty() {
        s.push_str(&format!(" Message:               {}\n", n.state_message));
    }
    s.push_str(&format!(
        " Availability:          {}\n",
        names::availability(n.availability())
    ));
    if !n.labels.is_empty() {
        s.push_str("Labels:\n");
        let mut labels: Vec<_> = n.labels.iter().collect();
        labels.sort();
        for (k, v) in labels {
            s.push_str(&format!(" - {k}={v}\n"));
        }
    }
    s
}

async fn set_role(ctx: &mut Ctx, ids: &[String], role: pb::NodeRole) -> anyhow::Result<()> {
    let mut failures = Failures::default();
    let mut done = Vec::new();
    for id in ids {
        let req = pb::UpdateNodeRequest {
            id: id.clone(),
            set_role: true,
            role: role as i32,
            ..Default::default()
        };
        let Some(n) = failures.check(ctx.client.update_node(req).await.rpc()) else {
            continue;
        };
        if !ctx.json() {
            ctx.out.line(&match role {
                pb::NodeRole::Manager => format!("Node {id} promoted to a manager in the swarm."),
                pb::NodeRole::Worker => format!("Manager {id} demoted in the swarm."),
            });
        }
        done.push(json::node(&n));
    }
    if ctx.json() {
        ctx.out.json(&Value::Array(done));
    }
    failures.finish()
}

async fn rm(ctx: &mut Ctx, force: bool, ids: &[String]) -> anyhow::Result<()> {
    let mut failures = Failures::default();
    let mut removed = Vec::new();
    for id in ids {
        let r = ctx
            .client
            .remove_node(pb::RemoveNodeRequest {
                id: id.clone(),
                force,
            })
            .await
            .rpc();
        if failures.check(r).is_some() {
            if !ctx.json() {
                ctx.out.line(id);
            }
            removed.push(Value::String(id.clone()));
        }
    }
    if ctx.json() {
        ctx.out.json(&Value::Array(removed));
    }
    failures.finish()
}
