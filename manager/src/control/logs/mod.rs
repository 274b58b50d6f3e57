//! `service logs [-f]`: the leader asks the nodes that run the target's tasks for their logs and
//! relays the batches to the client as they come (`StreamLogs`; `ServiceLogs` gathers them into
//! one answer). A follower forwards the call once, like every call the leader answers.
//!
//! Following, the relay watches the store and the nodes' sessions: tasks that start later (a
//! restart, a scale, a node that joins) are asked for as they are assigned, and a node whose
//! session changed is asked again from where its lines stopped (see [`plan`]). It ends when the
//! client goes away (cancelling the nodes' follows), when the target is removed, or with
//! UNAVAILABLE when this manager stops leading: the client then asks the next leader, naming the
//! cursors it has, and misses nothing.

pub mod plan;

use super::relay::leader;
use super::{ControlService, R};
use crate::dispatcher::LogTap;
use crate::manager::Manager;
use crate::route::forwarded;
use plan::{History, LogPlan, Placed};
use shoal_proto::pb;
use std::collections::HashMap;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::mpsc;
use tokio::time::Instant;
use tokio_stream::wrappers::ReceiverStream;
use tokio_stream::Stream;
use tonic::{Request, Response, Status};
use tracing::{debug, info_span, Instrument};

/// What `StreamLogs` answers: batches of lines, notices among them.
pub type LogStream = Pin<Box<dyn Stream<Item = Result<pb::LogsResponse, Status>> + Send>>;

/// Batches in flight from the relay to the client.
const TO_CLIENT: usize = 4;

/// How long a cancel may wait for a node's session queue when the relay ends.
const CANCEL_WAIT: Duration = Duration::from_secs(1);

/// A following node that sent nothing for this long is asked again (an idle agent sends an
/// empty batch every 5 s: three missed in a row).
const SILENCE: Duration = Duration::from_secs(15);

/// What the logs are asked of.
#[derive(Debug, Clone)]
enum Target {
    Service(String),
    Task(String),
}

/// The target `r` names (a service, else a task), as the store has it now.
fn resolve(m: &Manager, r: &pb::LogsRequest) -> Result<Target, crate::ManagerError> {
    let s = m.store.read();
    Ok(if !r.task.is_empty() {
        Target::Task(s.task(&r.task)?.id.to_string())
    } else {
        Target::Service(s.service(&r.service)?.id.to_string())
    })
}

pub(super) async fn stream(svc: &ControlService, req: Request<pb::LogsRequest>) -> R<LogStream> {
    if let Some(mut leader) = leader(svc, &req)? {
        let s = leader
            .stream_logs(forwarded(req.into_inner(), None))
            .await?
            .into_inner();
        return Ok(Response::new(Box::pin(s)));
    }
    let r = req.into_inner();
    let target = resolve(&svc.m, &r)?;
    let (tx, rx) = mpsc::channel(TO_CLIENT);
    let span = info_span!("logs", target = ?target, follow = r.follow);
    // Owned by its streams: it ends when the client goes away, or the target does.
    tokio::spawn(relay(svc.m.clone(), target, r, tx).instrument(span));
    Ok(Response::new(Box::pin(ReceiverStream::new(rx))))
}

pub(super) async fn unary(
    svc: &ControlService,
    req: Request<pb::LogsRequest>,
) -> R<pb::LogsResponse> {
    if let Some(mut leader) = leader(svc, &req)? {
        return leader.service_logs(forwarded(req.into_inner(), None)).await;
    }
    let mut r = req.into_inner();
    r.follow = false;
    let target = resolve(&svc.m, &r)?;
    let (tx, mut rx) = mpsc::channel::<Result<pb::LogsResponse, Status>>(TO_CLIENT);
    let gather = async move {
        let mut all = pb::LogsResponse::default();
        while let Some(b) = rx.recv().await {
            let b = b?;
            all.lines.extend(b.lines);
            all.errors.extend(b.errors);
        }
        Ok::<_, Status>(all)
    };
    let ((), all) = tokio::join!(relay(svc.m.clone(), target, r, tx), gather);
    Ok(Response::new(all?))
}

/// The target's tasks with a node, their names, the nodes' host names; `None` once the target
/// is gone.
struct Snapshot {
    placed: Vec<Placed>,
    names: HashMap<String, String>,
    hosts: HashMap<String, String>,
}

fn snapshot(m: &Manager, target: &Target) -> Option<Snapshot> {
    let s = m.store.read();
    let tasks: Vec<_> = match target {
        Target::Service(id) => {
            s.services.get(id.as_str())?;
            s.tasks
                .values()
                .filter(|t| t.service_id.as_str() == id)
                .collect()
        }
        Target::Task(id) => vec![s.tasks.get(id.as_str())?],
    };
    Some(Snapshot {
        placed: tasks
            .iter()
            .map(|t| Placed {
                task: t.id.to_string(),
                node: t.node_id.to_string(),
            })
            .collect(),
        names: tasks.iter().map(|t| (t.id.to_string(), t.name())).collect(),
        hosts: s
            .nodes
            .values()
            .map(|n| (n.id.to_string(), n.hostname.clone()))
            .collect(),
    })
}

/// Relays the logs of `target` to `tx` (see the module's documentation).
async fn relay(
    m: Arc<Manager>,
    target: Target,
    r: pb::LogsRequest,
    tx: mpsc::Sender<Result<pb::LogsResponse, Status>>,
) {
    let mut tap = m.dispatcher.open_logs();
    let history = History {
        tail: r.tail,
        since_ms: r.since_ms,
        skip: r.skip_history,
    };
    let waited = m.cfg.relay_timeout;
    let mut plan = LogPlan::new(tap.id(), r.follow, history, &r.resume, (waited, SILENCE));
    let end = run(&m, &target, &r, &mut plan, &mut tap, &tx).await;
    if let Err(s) = end {
        let _ = tx.send(Err(s)).await;
    }
    for (node, cancel) in plan.cancels() {
        let _ = tokio::time::timeout(CANCEL_WAIT, m.dispatcher.ask_logs(&node, cancel)).await;
    }
}

async fn run(
    m: &Manager,
    target: &Target,
    r: &pb::LogsRequest,
    plan: &mut LogPlan,
    tap: &mut LogTap,
    tx: &mpsc::Sender<Result<pb::LogsResponse, Status>>,
) -> Result<(), Status> {
    let waited = m.cfg.relay_timeout;
    let mut changes = m.store.subscribe();
    let mut tick = tokio::time::interval(m.dispatcher.period());
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    let mut quiet_until = Instant::now() + waited;
    let mut snap = None;
    let mut replan = true;
    loop {
        if replan {
            replan = false;
            if !m.dispatcher.leading() {
                return Err(Status::unavailable(
                    "this manager does not lead (any more); ask the leader",
                ));
            }
            let Some(now) = snapshot(m, target) else {
                return Ok(()); // removed: nothing more will come
            };
            let asks = plan.plan(
                &now.placed,
                |n| m.dispatcher.session_of(n),
                std::time::Instant::now(),
            );
            for (node, req) in asks.send {
                tap.allow(&node);
                if let Err(e) = m.dispatcher.ask_logs(&node, req).await {
                    // Its session just closed: the next plan sees that.
                    debug!(node.id = %node, error = %e, "could not ask a node for logs");
                }
            }
            if !asks.unreachable.is_empty() {
                let errors = asks
                    .unreachable
                    .iter()
                    .map(|n| away(host(&now.hosts, n), r.follow))
                    .collect();
                let notice = pb::LogsResponse {
                    errors,
                    ..Default::default()
                };
                if tx.send(Ok(notice)).await.is_err() {
                    return Ok(());
                }
            }
            snap = Some(now);
            if !r.follow && !plan.waiting() {
                return Ok(());
            }
        }
        let Some(now) = &snap else { continue };
        tokio::select! {
            b = tap.recv() => {
                let Some(b) = b else { return Ok(()) };
                quiet_until = Instant::now() + waited;
                plan.took(&b, std::time::Instant::now());
                let out = response(b, now);
                if (!out.lines.is_empty() || !out.errors.is_empty() || !out.cursors.is_empty())
                    && tx.send(Ok(out)).await.is_err()
                {
                    return Ok(());
                }
                if !r.follow && !plan.waiting() {
                    return Ok(());
                }
            }
            c = changes.changed(), if r.follow => {
                if c.is_err() {
                    return Ok(());
                }
                replan = true;
            }
            _ = tick.tick() => {
                if r.follow {
                    replan = true; // sessions come and go without a write
                } else if Instant::now() >= quiet_until {
                    let silent = plan.silent().len();
                    let notice = pb::LogsResponse {
                        errors: vec![format!(
                            "{silent} node(s) did not send logs within {} s",
                            waited.as_secs()
                        )],
                        ..Default::default()
                    };
                    let _ = tx.send(Ok(notice)).await;
                    return Ok(());
                }
            }
            _ = tx.closed() => return Ok(()),
        }
    }
}

fn host<'a>(hosts: &'a HashMap<String, String>, node: &'a str) -> &'a str {
    hosts.get(node).map(String::as_str).unwrap_or(node)
}

fn away(host: &str, follow: bool) -> String {
    if follow {
        format!("node {host} is not connected; its tasks' lines will follow once it is back")
    } else {
        format!("node {host} is not connected; logs of its tasks are unavailable")
    }
}

/// A batch as the client gets it: lines named after their tasks, the node's error as a notice.
fn response(b: pb::PublishLogsRequest, snap: &Snapshot) -> pb::LogsResponse {
    let mut lines = b.lines;
    for l in &mut lines {
        if let Some(n) = snap.names.get(&l.task_id) {
            l.task_name = n.clone();
        }
    }
    let errors = if b.error.is_empty() {
        Vec::new()
    } else {
        vec![format!(
            "node {}: {}",
            host(&snap.hosts, &b.node_id),
            b.error
        )]
    };
    pb::LogsResponse {
        lines,
        errors,
        cursors: b.cursors,
    }
}
