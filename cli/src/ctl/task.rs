//! `swarmctl task ls | inspect | exec`.

use super::service::ps_table_for;
use super::{json, Ctx, Failures};
use crate::client::RpcResultExt;
use clap::Subcommand;
use serde_json::Value;
use shoal_proto::pb;

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
    /// Show tasks in detail (JSON).
    Inspect {
        /// Task ids, id prefixes or names (`web.1.<id>`).
        #[arg(required = true)]
        tasks: Vec<String>,
    },
    /// Run a command inside a running task, on whichever node runs it; its output and exit
    /// code are passed through (`swarmctl task exec web.1.<id> -- cat /etc/hosts`).
    Exec {
        /// Task id, id prefix or name.
        task: String,
        /// Seconds before the command is killed.
        #[arg(long, default_value_t = 60)]
        timeout: u32,
        /// The command and its arguments.
        #[arg(last = true, required = true)]
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
            };
            let tasks = ctx.client.list_tasks(filter).await.rpc()?.tasks;
            ps_table_for(ctx, tasks, quiet, no_trunc).await
        }
        TaskCmd::Exec { task, timeout, cmd } => {
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
        TaskCmd::Inspect { tasks } => {
            let mut failures = Failures::default();
            let mut found = Vec::new();
            for id in tasks {
                if let Some(t) =
                    failures.check(ctx.client.get_task(pb::IdRequest { id }).await.rpc())
                {
                    found.push(json::task(&t));
                }
            }
            ctx.out.json(&Value::Array(found));
            failures.finish()
        }
    }
}
