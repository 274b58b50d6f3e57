//! `swarmctl service create | ls | ps | inspect | scale | update | rm | logs`.

mod create;
mod health;
mod image;
mod logs;
mod policy;
mod ps;
mod update;

pub use create::CreateArgs;
pub use logs::LogsArgs;
pub use ps::{
    display_name, print_tasks as ps_table_for, ps_table, run as ps_for, sort_tasks, PsArgs,
    TaskMatch,
};
pub use update::{out_of_sequence, Backoff, UpdateArgs};

use super::progress::{self, WaitArgs, Watch};
use super::{json, names, output, parse, Ctx, Failures};
use crate::client::RpcResultExt;
use clap::Subcommand;
use serde_json::Value;
use shoal_proto::pb;

/// `service` subcommands.
#[derive(Debug, Subcommand)]
pub enum ServiceCmd {
    /// Create a service and, unless -d, show its tasks starting until it converges.
    ///
    /// With --format json nothing is shown while waiting; the service is printed once it
    /// converged (at once with -d).
    Create(Box<CreateArgs>),
    /// List services.
    #[command(alias = "list")]
    Ls {
        /// Print only service ids.
        #[arg(short, long)]
        quiet: bool,
        /// Do not truncate ids.
        #[arg(long)]
        no_trunc: bool,
    },
    /// List the tasks of services, older tasks of a slot under the current one (`\_ web.1`).
    Ps {
        /// --filter, --quiet, --no-trunc.
        #[command(flatten)]
        args: PsArgs,
        /// Service names, ids or id prefixes.
        #[arg(required = true)]
        services: Vec<String>,
    },
    /// Show services in detail (JSON, or a summary with --pretty or --format table).
    Inspect {
        /// Human-readable summary instead of JSON.
        #[arg(long)]
        pretty: bool,
        /// Service names, ids or id prefixes.
        #[arg(required = true)]
        services: Vec<String>,
    },
    /// Set the replica count of replicated services: `scale web=5 api=2`.
    Scale {
        /// --detach / --timeout.
        #[command(flatten)]
        wait: WaitArgs,
        /// SERVICE=REPLICAS pairs.
        #[arg(required = true, value_name = "SERVICE=REPLICAS", value_parser = parse::scale)]
        targets: Vec<(String, u64)>,
    },
    /// Change a service's spec; where what the tasks run changes, they are replaced as
    /// --update-parallelism, --update-order, --update-delay and the health checks allow.
    Update(Box<UpdateArgs>),
    /// Return a service to its spec before the last update.
    Rollback {
        /// --detach / --timeout.
        #[command(flatten)]
        wait: WaitArgs,
        /// Service name, id or id prefix.
        service: String,
    },
    /// Remove services (their tasks are stopped).
    #[command(alias = "remove")]
    Rm {
        /// Service names, ids or id prefixes.
        #[arg(required = true)]
        services: Vec<String>,
    },
    /// Print the output of a service's tasks, or of one task (`-f`: and keep printing).
    Logs(Box<LogsArgs>),
}

/// Runs a `service` subcommand.
pub async fn run(ctx: &mut Ctx, cmd: ServiceCmd) -> anyhow::Result<()> {
    match cmd {
        ServiceCmd::Create(args) => create::run(ctx, *args).await,
        ServiceCmd::Ls { quiet, no_trunc } => ls(ctx, quiet, no_trunc).await,
        ServiceCmd::Ps { args, services } => {
            let requests = services
                .into_iter()
                .map(|service| pb::TaskFilter {
                    service,
                    node: String::new(),
                    all: true,
                    up_to_date: false,
                })
                .collect();
            ps::run(ctx, &args, requests).await
        }
        ServiceCmd::Inspect { pretty, services } => inspect(ctx, pretty, &services).await,
        ServiceCmd::Scale { wait, targets } => scale(ctx, &wait, &targets).await,
        ServiceCmd::Update(args) => update::run(ctx, *args).await,
        ServiceCmd::Rollback { wait, service } => update::rollback(ctx, &service, &wait).await,
        ServiceCmd::Rm { services } => rm(ctx, &services).await,
        ServiceCmd::Logs(args) => logs::run(ctx, *args).await,
    }
}

async fn ls(ctx: &mut Ctx, quiet: bool, no_trunc: bool) -> anyhow::Result<()> {
    let mut services = ctx.client.list_services(pb::Empty {}).await.rpc()?.services;
    services.sort_by(|a, b| output::natural_cmp(spec_name(a), spec_name(b)));
    if ctx.json() {
        ctx.out
            .json(&Value::Array(services.iter().map(json::service).collect()));
    } else if quiet {
        for s in &services {
            ctx.out.line(&output::id(&s.id, no_trunc));
        }
    } else {
        ctx.out.print(&table(&services, no_trunc));
    }
    Ok(())
}

fn spec_name(s: &pb::Service) -> &str {
    s.spec.as_ref().map(|s| s.name.as_str()).unwrap_or("")
}

/// The `service ls` table.
pub fn table(services: &[pb::Service], no_trunc: bool) -> String {
    let mut t = output::Table::new(&["ID", "NAME", "MODE", "REPLICAS", "IMAGE", "PORTS"]);
    for s in services {
        let spec = s.spec.clone().unwrap_or_default();
        t.row(vec![
            output::id(&s.id, no_trunc),
            spec.name.clone(),
            if spec.global { "global" } else { "replicated" }.to_string(),
            format!("{}/{}", s.running, s.desired),
            spec.image.clone(),
            s.ports
                .iter()
                .map(names::port)
                .collect::<Vec<_>>()
                .join(", "),
        ]);
    }
    t.render()
}

async fn inspect(ctx: &mut Ctx, pretty: bool, ids: &[String]) -> anyhow::Result<()> {
    let mut failures = Failures::default();
    let mut found = Vec::new();
    for id in ids {
        if let Some(s) = failures.check(
            ctx.client
                .get_service(pb::IdRequest { id: id.clone() })
                .await
                .rpc(),
        ) {
            found.push(s);
        }
    }
    // Like Docker, but without its `[]`: when nothing was found, only the errors are printed.
    if found.is_empty() {
        return failures.finish();
    }
    if ctx.readable(pretty) {
        let mut nets = std::collections::HashMap::new();
        if let Ok(r) = ctx.client.list_networks(pb::Empty {}).await {
            nets = r
                .into_inner()
                .networks
                .into_iter()
                .map(|n| (n.id, n.name))
                .collect();
        }
        let text: Vec<String> = found.iter().map(|s| pretty_service(s, &nets)).collect();
        ctx.out.print(&text.join("\n"));
    } else {
        ctx.out
            .json(&Value::Array(found.iter().map(json::service).collect()));
    }
    failures.finish()
}

/// `service inspect --pretty` (network ids are shown by name where `nets` knows them).
pub fn pretty_service(s: &pb::Service, nets: &std::collections::HashMap<String, String>) -> String {
    let spec = s.spec.clone().unwrap_or_default();
    let net_name = |id: &str| nets.get(id).cloned().unwrap_or_else(|| id.to_string());
    let mut o = output::KeyValues::new(16);
    let mut kv = |k: &str, v: &str| o.kv(k, v);
    kv("ID", &s.id);
    kv("Name", &spec.name);
    if spec.global {
        kv("Service Mode", "Global");
    } else {
        kv("Service Mode", "Replicated");
        kv(" Replicas", &spec.replicas.to_string());
    }
    kv(
        "Tasks",
        &format!("{} running / {} desired", s.running, s.desired),
    );
    if !spec.labels.is_empty() {
        let mut l: Vec<_> = spec
            .labels
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect();
        l.sort();
        kv("Labels", &l.join(", "));
    }
    if !spec.constraints.is_empty() {
        kv("Placement", "");
        kv(" Constraints", &format!("[{}]", spec.constraints.join(" ")));
    }
    let restart = spec.restart.unwrap_or_default();
    kv("RestartPolicy", "");
    kv(" Condition", names::restart_condition(restart.condition()));
    kv(" Delay", &output::millis(restart.delay_ms));
    kv(" MaxAttempts", &restart.max_attempts.to_string());
    // Docker's form: the image as typed, with the digest it was pinned to.
    match spec.image_digest.as_str() {
        d if d.is_empty() || spec.image.contains('@') => kv("Image", &spec.image),
        d => kv("Image", &format!("{}@{d}", spec.image)),
    }
    if spec.runtime() == pb::Runtime::Process {
        kv(" Runtime", "process");
    }
    if !spec.entrypoint.is_empty() {
        kv(" Entrypoint", &spec.entrypoint.join(" "));
    }
    if !spec.args.is_empty() {
        kv(" Args", &spec.args.join(" "));
    }
    if !spec.user.is_empty() {
        kv(" User", &spec.user);
    }
    if !spec.workdir.is_empty() {
        kv(" Dir", &spec.workdir);
    }
    if spec.tty {
        kv(" TTY", "true");
    }
    if spec.init {
        kv(" Init", "true");
    }
    if !spec.env.is_empty() {
        kv(" Env", &spec.env.join(" "));
    }
    if spec.stop_grace_ms > 0 {
        kv(" StopGracePeriod", &output::millis(spec.stop_grace_ms));
    }
    // Shoal's: the time a stopping task stays up out of the balancers and DNS.
    match spec.stop_drain_ms {
        Some(ms) => kv(" StopDrain", &output::millis(ms)),
        None => kv(" StopDrain", "1s (default)"),
    }
    if let Some(h) = &spec.healthcheck {
        for (k, v) in health::pretty(h) {
            kv(k, &v);
        }
    }
    if spec.limit_cpus > 0.0 || spec.limit_memory_bytes > 0 {
        kv("Resources", "");
        kv(" Limits", "");
        if spec.limit_cpus > 0.0 {
            kv("  CPU", &spec.limit_cpus.to_string());
        }
        if spec.limit_memory_bytes > 0 {
            kv("  Memory", &output::bytes(spec.limit_memory_bytes));
        }
    }
    if !spec.networks.is_empty() {
        let n: Vec<String> = spec
            .networks
            .iter()
            .map(|a| {
                let name = net_name(&a.target);
                if a.aliases.is_empty() {
                    name
                } else {
                    format!("{name} (aliases: {})", a.aliases.join(", "))
                }
            })
            .collect();
        kv("Networks", &n.join(", "));
    }
    // Docker's `Secrets:` / `Configs:` lines: name -> target.
    if !spec.secrets.is_empty() {
        let l: Vec<String> = spec
            .secrets
            .iter()
            .map(|r| format!("{} -> /run/secrets/{}", r.name, r.target))
            .collect();
        kv("Secrets", &l.join(", "));
    }
    if !spec.configs.is_empty() {
        let l: Vec<String> = spec
            .configs
            .iter()
            .map(|r| format!("{} -> {}", r.name, r.target))
            .collect();
        kv("Configs", &l.join(", "));
    }
    kv("Endpoint Mode", names::endpoint_mode(spec.endpoint_mode()));
    for v in &s.vips {
        kv(
            " VIP",
            &format!("{} on {}", v.addr, net_name(&v.network_id)),
        );
    }
    if let Some(u) = s.update_status.as_ref().filter(|u| u.state != 0) {
        kv("UpdateStatus", "");
        kv(" State", names::update_state(u.state()));
        let now = shoal_proto::model::now_ms();
        kv(" Started", &output::ago(now, u.started_ms));
        if u.completed_ms > 0 {
            kv(" Completed", &output::ago(now, u.completed_ms));
        }
        kv(" Message", &u.message);
    }
    for (what, title, c) in [
        ("Update", "UpdateConfig", &spec.update_config),
        ("Rollback", "RollbackConfig", &spec.rollback_config),
    ] {
        let c = c.as_ref().map(Into::into).unwrap_or_default();
        kv(title, "");
        for (k, v) in policy::pretty(&c, what) {
            kv(&k, &v);
        }
    }
    if !s.ports.is_empty() {
        kv(
            "Ports",
            &s.ports
                .iter()
                .map(names::port)
                .collect::<Vec<_>>()
                .join(", "),
        );
    }
    o.into_string()
}

async fn scale(ctx: &mut Ctx, wait: &WaitArgs, targets: &[(String, u64)]) -> anyhow::Result<()> {
    let mut failures = Failures::default();
    let mut scaled = Vec::new();
    for (name, replicas) in targets {
        let r = ctx
            .client
            .scale_service(pb::ScaleRequest {
                id: name.clone(),
                replicas: *replicas,
            })
            .await
            .rpc();
        if let Some(svc) = failures.check(r) {
            if !ctx.json() {
                ctx.out.line(&format!("{name} scaled to {replicas}"));
            }
            scaled.push((name.clone(), svc));
        }
    }
    if !wait.detach {
        for (name, svc) in &scaled {
            failures.check(
                progress::wait(
                    ctx,
                    &svc.id,
                    name,
                    wait.limit(Watch::Converge),
                    Watch::Converge,
                )
                .await,
            );
        }
    }
    if ctx.json() {
        let mut out = Vec::new();
        for (_, svc) in &scaled {
            // After waiting, the counts are the interesting part: fetch them again.
            let fresh = if wait.detach {
                None
            } else {
                ctx.client
                    .get_service(pb::IdRequest { id: svc.id.clone() })
                    .await
                    .ok()
            };
            out.push(json::service(
                &fresh.map(|r| r.into_inner()).unwrap_or_else(|| svc.clone()),
            ));
        }
        ctx.out.json(&Value::Array(out));
    }
    failures.finish()
}

async fn rm(ctx: &mut Ctx, ids: &[String]) -> anyhow::Result<()> {
    let mut failures = Failures::default();
    let mut removed = Vec::new();
    for id in ids {
        if failures
            .check(
                ctx.client
                    .remove_service(pb::IdRequest { id: id.clone() })
                    .await
                    .rpc(),
            )
            .is_some()
        {
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

/// Waits for `svc` unless detached, then prints it as JSON in `--format json`.
async fn finish(
    ctx: &mut Ctx,
    svc: &pb::Service,
    wait: &WaitArgs,
    watch: Watch,
) -> anyhow::Result<()> {
    let name = spec_name(svc).to_string();
    let waited = if wait.detach {
        Ok(())
    } else {
        progress::wait(ctx, &svc.id, &name, wait.limit(watch), watch).await
    };
    if ctx.json() {
        let fresh = match wait.detach {
            true => svc.clone(),
            false => ctx
                .client
                .get_service(pb::IdRequest { id: svc.id.clone() })
                .await
                .rpc()
                .unwrap_or_else(|_| svc.clone()),
        };
        ctx.out.json(&json::service(&fresh));
    }
    waited
}

#[cfg(test)]
mod tests;
