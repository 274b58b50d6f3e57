//! `swarmctl task ls | inspect | exec`.

use super::service::{display_name, ps_table_for};
use super::{json, names, output, Ctx, Failures};
use crate::client::RpcResultExt;
use clap::Subcommand;
use serde_json::Value;
use shoal_proto::model::now_ms;
use shoal_proto::pb;
use std::collections::HashMap;

/// `task` subcommands.
#[derive(Debug, Subcommand)]
pub enum TaskCmd {
    /// List tasks (by default those running or about to).
    #[command(alias = "list")]
    Ls {
        /// Only tasks of this service (name, id or id prefix).
        #[arg(long)]
        service: Option<String>,
        /// Only tasks on this node (hostname, id or id prefix).
        #[arg(long)]
        node: Option<String>,
        /// Include tasks that ended (history).
        #[arg(short, long)]
        all: bool,
        /// Print only task ids.
        #[arg(short, long)]
        quiet: bool,
        /// Do not truncate ids, names and errors.
        #[arg(long)]
        no_trunc: bool,
    },
    /// Show tasks in detail (JSON, or a summary with --pretty or --format table).
    Inspect {
        /// Human-readable summary instead of JSON.
        #[arg(long)]
        pretty: bool,
        /// Task ids, id prefixes or names (`web.1.<id>`).
        #[arg(required = true)]
        tasks: Vec<String>,
    },
    /// Run a command inside a running task, on whichever node runs it; its output and exit
    /// code are passed through (`swarmctl task exec web.1.<id> -- cat /etc/hosts`). With
    /// `-it`, an interactive terminal, as `docker exec -it` (`swarmctl task exec -it web.1 sh`).
    Exec {
        /// Keep stdin open and stream it to the command.
        #[arg(short, long)]
        interactive: bool,
        /// Give the command a terminal (raw mode here while it runs; Ctrl-C goes to it).
        #[arg(short, long)]
        tty: bool,
        /// Seconds before the command is killed (without -i/-t).
        #[arg(long, default_value_t = 60)]
        timeout: u32,
        /// Task id, id prefix or name.
        task: String,
        /// The command and its arguments (after `--`, or after the task).
        #[arg(required = true, trailing_var_arg = true, allow_hyphen_values = true)]
        cmd: Vec<String>,
    },
}

/// Runs a `task` subcommand.
pub async fn run(ctx: &mut Ctx, cmd: TaskCmd) -> anyhow::Result<()> {
    match cmd {
        TaskCmd::Ls {
            service,
            node,
            all,
            quiet,
            no_trunc,
        } => {
            let filter = pb::TaskFilter {
                service: service.unwrap_or_default(),
                node: node.unwrap_or_default(),
                all,
                up_to_date: false,
            };
            let tasks = ctx.client.list_tasks(filter).await.rpc()?.tasks;
            ps_table_for(ctx, tasks, quiet, no_trunc).await
        }
        TaskCmd::Exec {
            interactive,
            tty,
            task,
            cmd,
            ..
        } if interactive || tty => {
            let code = super::exec::run(&mut ctx.client, task, cmd, interactive, tty).await?;
            if code != 0 {
                let code = u8::try_from(code.clamp(1, 255)).unwrap_or(1);
                return Err(super::lab::ExitWith(code).into());
            }
            Ok(())
        }
        TaskCmd::Exec {
            task, timeout, cmd, ..
        } => {
            use std::io::Write;
            let req = pb::ExecTaskRequest {
                task,
                cmd,
                timeout_ms: timeout.saturating_mul(1000),
            };
            let r = ctx.client.exec_task(req).await.rpc()?;
            if !r.error.is_empty() {
                anyhow::bail!("{}", r.error);
            }
            std::io::stdout().write_all(&r.stdout)?;
            std::io::stderr().write_all(&r.stderr)?;
            std::io::stdout().flush()?;
            if r.exit_code != 0 {
                let code = u8::try_from(r.exit_code.clamp(1, 255)).unwrap_or(1);
                return Err(super::lab::ExitWith(code).into());
            }
            Ok(())
        }
        TaskCmd::Inspect { pretty, tasks } => inspect(ctx, pretty, tasks).await,
    }
}

async fn inspect(ctx: &mut Ctx, pretty: bool, ids: Vec<String>) -> anyhow::Result<()> {
    let mut failures = Failures::default();
    let mut found = Vec::new();
    for id in ids {
        if let Some(t) = failures.check(ctx.client.get_task(pb::IdRequest { id }).await.rpc()) {
            found.push(t);
        }
    }
    // Like Docker, but without its `[]`: when nothing was found, only the errors are printed.
    if found.is_empty() {
        return failures.finish();
    }
    if ctx.readable(pretty) {
        // Hostnames only make the view nicer: without them it shows node ids.
        let hostnames = ctx.hostnames().await.unwrap_or_default();
        let now = now_ms();
        let text: Vec<String> = found
            .iter()
            .map(|t| pretty_task(t, &hostnames, now))
            .collect();
        ctx.out.print(&text.join("\n"));
    } else {
        ctx.out
            .json(&Value::Array(found.iter().map(json::task).collect()));
    }
    failures.finish()
}

/// `task inspect --pretty` (or `--format table`): node ids shown with their hostnames where
/// `hostnames` knows them, times relative to `now_ms`.
pub fn pretty_task(t: &pb::Task, hostnames: &HashMap<String, String>, now_ms: i64) -> String {
    let spec = t.spec.clone().unwrap_or_default();
    let st = t.status.clone().unwrap_or_default();
    let mut o = output::KeyValues::new(16);
    o.kv("ID", &t.id);
    o.kv("Name", &display_name(t, true));
    o.kv("Service", &format!("{} ({})", t.service_name, t.service_id));
    if !spec.global {
        o.kv("Slot", &t.slot.to_string());
    }
    let node = match (t.node_id.as_str(), hostnames.get(&t.node_id)) {
        ("", _) => "(not assigned yet)".to_string(),
        (id, Some(h)) => format!("{h} ({id})"),
        (id, None) => id.to_string(),
    };
    o.kv("Node", &node);
    o.kv("Image", &spec.image);
    if !spec.args.is_empty() {
        o.kv(" Args", &spec.args.join(" "));
    }
    o.kv("Desired State", names::task_state(t.desired_state));
    o.kv("Status", "");
    let ago = output::ago(now_ms, st.timestamp_ms);
    o.kv(
        " State",
        format!("{} {ago}", names::task_state(st.state)).trim_end(),
    );
    if !st.message.is_empty() {
        o.kv(" Message", &st.message);
    }
    if !st.err.is_empty() {
        o.kv(" Error", &st.err);
    }
    if st.has_exit_code {
        o.kv(" Exit Code", &st.exit_code.to_string());
    }
    if st.pid != 0 {
        o.kv(" PID", &st.pid.to_string());
    }
    let health = shoal_proto::model::TaskHealth::from(st.health()).as_str();
    if !health.is_empty() {
        o.kv(" Health", health);
    }
    // The addresses of an attachment come from the managers (overlays) or from the node's
    // status (local networks); `json::task` is the one place that merges them.
    let v = json::task(t);
    let nets = v["networks"].as_array().cloned().unwrap_or_default();
    if !nets.is_empty() {
        o.kv("Networks", "");
        for n in &nets {
            let words = |k: &str| -> Vec<String> {
                n[k].as_array()
                    .map(|a| {
                        a.iter()
                            .filter_map(|x| x.as_str().map(String::from))
                            .collect()
                    })
                    .unwrap_or_default()
            };
            let mut line = words("addresses").join(", ");
            let aliases = words("aliases");
            if !aliases.is_empty() {
                line.push_str(&format!(" (aliases: {})", aliases.join(", ")));
            }
            o.kv(&format!(" {}", n["network"].as_str().unwrap_or("")), &line);
        }
    }
    if t.attempt > 0 {
        o.kv("Attempt", &t.attempt.to_string());
    }
    let created = output::ago(now_ms, t.created_ms);
    if !created.is_empty() {
        o.kv("Created", &created);
    }
    o.into_string()
}
