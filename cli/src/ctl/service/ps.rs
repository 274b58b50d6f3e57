//! `swarmctl service ps` (the task table and flags are shared with `node ps` and `task ls`).

use super::{json, names, output, Ctx, Failures};
use crate::client::RpcResultExt;
use crate::BadInput;
use serde_json::Value;
use shoal_proto::model::{now_ms, TaskState};
use shoal_proto::pb;
use std::collections::HashMap;

const MAX_ERROR: usize = 30;

/// The flags `service ps` and `node ps` share.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct PsArgs {
    /// Only tasks that match: id=ID, name=NAME, node=NODE or desired-state=running|shutdown|…
    /// (repeatable: values of one key are alternatives, different keys must all match).
    #[arg(short, long = "filter", value_name = "KEY=VALUE", value_parser = parse_filter)]
    pub filter: Vec<TaskMatch>,
    /// Print only task ids.
    #[arg(short, long)]
    pub quiet: bool,
    /// Do not truncate ids, names and errors.
    #[arg(long)]
    pub no_trunc: bool,
}

/// One `--filter` of the ps commands (applied here, to what the managers sent).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TaskMatch {
    /// `id=`: the task id starts with this.
    Id(String),
    /// `name=`: the task's full name (`web.1.<id>`) starts with this, as in Docker.
    Name(String),
    /// `node=`: the node's hostname, or the start of its id.
    Node(String),
    /// `desired-state=`: a task state, as a wire value.
    DesiredState(i32),
}

/// Parses `KEY=VALUE` for `--filter`.
pub fn parse_filter(s: &str) -> Result<TaskMatch, BadInput> {
    let (k, v) = s
        .split_once('=')
        .ok_or_else(|| format!("invalid filter {s:?}: expected KEY=VALUE"))?;
    match k {
        "id" => Ok(TaskMatch::Id(v.to_string())),
        "name" => Ok(TaskMatch::Name(v.to_string())),
        "node" => Ok(TaskMatch::Node(v.to_string())),
        "desired-state" => TaskState::ALL
            .iter()
            .find(|st| st.display().eq_ignore_ascii_case(v))
            .map(|st| TaskMatch::DesiredState(*st as i32))
            .ok_or_else(|| {
                format!("invalid desired-state {v:?}: expected running, shutdown, accepted, …")
                    .into()
            }),
        _ => Err(
            format!("invalid filter key {k:?}: expected id, name, node or desired-state").into(),
        ),
    }
}

impl TaskMatch {
    fn matches(&self, t: &pb::Task, hostnames: &HashMap<String, String>) -> bool {
        match self {
            TaskMatch::Id(p) => t.id.starts_with(p.as_str()),
            TaskMatch::Name(p) => display_name(t, true).starts_with(p.as_str()),
            TaskMatch::Node(n) => {
                (!t.node_id.is_empty() && t.node_id.starts_with(n.as_str()))
                    || hostnames.get(&t.node_id) == Some(n)
            }
            TaskMatch::DesiredState(s) => t.desired_state == *s,
        }
    }
}

/// Whether `t` passes `filters`: for each key given, one of its values matches.
pub fn keep(filters: &[TaskMatch], t: &pb::Task, hostnames: &HashMap<String, String>) -> bool {
    let same_key =
        |a: &TaskMatch, b: &TaskMatch| std::mem::discriminant(a) == std::mem::discriminant(b);
    filters.iter().all(|f| {
        filters
            .iter()
            .filter(|g| same_key(f, g))
            .any(|g| g.matches(t, hostnames))
    })
}

/// Lists the tasks (history included) each of `requests` selects, as one table: `service ps`
/// asks once per service, `node ps` once per node. A failed request prints its `Error:` line;
/// when all failed, that is all that is printed, as Docker does.
pub async fn run(
    ctx: &mut Ctx,
    args: &PsArgs,
    requests: Vec<pb::TaskFilter>,
) -> anyhow::Result<()> {
    let mut failures = Failures::default();
    let asked = requests.len();
    let mut tasks = Vec::new();
    for filter in requests {
        if let Some(r) = failures.check(ctx.client.list_tasks(filter).await.rpc()) {
            tasks.extend(r.tasks);
        }
    }
    // The same service (node) given twice, by name and id, shows once.
    let mut seen = std::collections::HashSet::new();
    tasks.retain(|t| seen.insert(t.id.clone()));
    if !args.filter.is_empty() {
        let hostnames = if args.filter.iter().any(|f| matches!(f, TaskMatch::Node(_))) {
            ctx.hostnames().await.map_err(crate::client::status_error)?
        } else {
            HashMap::new()
        };
        tasks.retain(|t| keep(&args.filter, t, &hostnames));
    }
    if failures.count() < asked {
        print_tasks(ctx, tasks, args.quiet, args.no_trunc).await?;
    }
    failures.finish()
}

/// Prints tasks as the ps table, ids (`quiet`) or JSON; looks node hostnames up for the table.
pub async fn print_tasks(
    ctx: &mut Ctx,
    mut tasks: Vec<pb::Task>,
    quiet: bool,
    no_trunc: bool,
) -> anyhow::Result<()> {
    sort_tasks(&mut tasks);
    if ctx.json() {
        ctx.out
            .json(&Value::Array(tasks.iter().map(json::task).collect()));
        return Ok(());
    }
    if quiet {
        for t in &tasks {
            ctx.out.line(&output::id(&t.id, no_trunc));
        }
        return Ok(());
    }
    let hostnames: HashMap<String, String> =
        ctx.hostnames().await.map_err(crate::client::status_error)?;
    ctx.out
        .print(&ps_table(&tasks, &hostnames, now_ms(), no_trunc));
    Ok(())
}

fn group_key(t: &pb::Task) -> (String, bool, u64, String) {
    let global = t.spec.as_ref().is_some_and(|s| s.global);
    (
        t.service_name.clone(),
        global,
        t.slot,
        if global {
            t.node_id.clone()
        } else {
            String::new()
        },
    )
}

/// Orders tasks by service, then slot (node for global services), newest first within a slot.
pub fn sort_tasks(tasks: &mut [pb::Task]) {
    tasks.sort_by(|a, b| {
        let (ka, kb) = (group_key(a), group_key(b));
        output::natural_cmp(&ka.0, &kb.0)
            .then(ka.1.cmp(&kb.1))
            .then(ka.2.cmp(&kb.2))
            .then(ka.3.cmp(&kb.3))
            .then(b.created_ms.cmp(&a.created_ms))
            .then(a.id.cmp(&b.id))
    });
}

/// NAME as `docker service ps` shows it: `web.1` (global: `web.<node id>`); the full
/// `web.1.<task id>` with `no_trunc`.
pub fn display_name(t: &pb::Task, no_trunc: bool) -> String {
    let global = t.spec.as_ref().is_some_and(|s| s.global);
    let full = if t.name.is_empty() {
        let place = if global {
            t.node_id.clone()
        } else {
            t.slot.to_string()
        };
        format!("{}.{}.{}", t.service_name, place, t.id)
    } else {
        t.name.clone()
    };
    if no_trunc {
        return full;
    }
    full.strip_suffix(&format!(".{}", t.id))
        .map(str::to_string)
        .unwrap_or(full)
}

/// The ERROR column: the task's error, or why it can't be scheduled, quoted as Docker does.
fn error_cell(t: &pb::Task, no_trunc: bool) -> String {
    let st = t.status.clone().unwrap_or_default();
    let mut err = if !st.err.is_empty() {
        st.err
    } else if st.state == TaskState::Pending as i32 && st.message.starts_with("no suitable node") {
        st.message
    } else {
        return String::new();
    };
    err = err.split_whitespace().collect::<Vec<_>>().join(" ");
    if !no_trunc && err.chars().count() > MAX_ERROR {
        err = format!(
            "{}…",
            err.chars()
                .take(MAX_ERROR - 1)
                .collect::<String>()
                .trim_end()
        );
    }
    format!("\"{err}\"")
}

/// The PORTS column: the ports the task publishes on its node (`mode=host`), as Docker shows
/// them; ports published through the ingress belong to the service (`service ls`).
fn ports_cell(t: &pb::Task) -> String {
    let Some(spec) = &t.spec else {
        return String::new();
    };
    spec.ports
        .iter()
        .filter(|p| p.mode() == pb::PublishMode::Host && p.published != 0)
        .map(|p| {
            format!(
                "*:{}->{}/{}",
                p.published,
                p.target,
                names::protocol(p.protocol())
            )
        })
        .collect::<Vec<_>>()
        .join(", ")
}

/// What CURRENT STATE adds for a live task's health, as `docker ps` does: ` (healthy)` or
/// ` (unhealthy)`. A task whose first check has not passed yet shows `Starting` alone (Docker's
/// swarm tasks stay STARTING until then); an ended task shows its error instead.
fn health_suffix(st: &pb::TaskStatus) -> &'static str {
    if st.state > TaskState::Running as i32 {
        return "";
    }
    match st.health() {
        pb::TaskHealth::Healthy => " (healthy)",
        pb::TaskHealth::Unhealthy => " (unhealthy)",
        pb::TaskHealth::None | pb::TaskHealth::Starting => "",
    }
}

/// The `service ps` table for tasks sorted by [`sort_tasks`]: older tasks of a slot are shown
/// as `\_ web.1` under the newest one.
pub fn ps_table(
    tasks: &[pb::Task],
    hostnames: &HashMap<String, String>,
    now_ms: i64,
    no_trunc: bool,
) -> String {
    let mut t = output::Table::new(&[
        "ID",
        "NAME",
        "IMAGE",
        "NODE",
        "DESIRED STATE",
        "CURRENT STATE",
        "ERROR",
        "PORTS",
    ]);
    let mut prev: Option<(String, bool, u64, String)> = None;
    for task in tasks {
        let key = group_key(task);
        let older = prev.as_ref() == Some(&key);
        prev = Some(key);
        let name = display_name(task, no_trunc);
        let st = task.status.clone().unwrap_or_default();
        let node = match hostnames.get(&task.node_id) {
            Some(h) => h.clone(),
            None => output::id(&task.node_id, no_trunc),
        };
        let ago = output::ago(now_ms, st.timestamp_ms);
        let mut current = if ago.is_empty() {
            names::task_state(st.state).to_string()
        } else {
            format!("{} {ago}", names::task_state(st.state))
        };
        current.push_str(health_suffix(&st));
        t.row(vec![
            output::id(&task.id, no_trunc),
            if older { format!(" \\_ {name}") } else { name },
            task.spec
                .as_ref()
                .map(|s| s.image.clone())
                .unwrap_or_default(),
            node,
            names::task_state(task.desired_state).to_string(),
            current,
            error_cell(task, no_trunc),
            ports_cell(task),
        ]);
    }
    t.render()
}
