//! `service logs -f`: batches printed as they come, carried on through a broken stream.
//!
//! The client keeps, per task stream, the offset just past the last line it printed
//! ([`Cursors`]). When the stream breaks (the manager it talks to died, or the leader changed)
//! it asks again, first of the same manager (which forwards to the new leader), then of the
//! other managers it knows, with backoff and for a bounded time, naming those offsets: each
//! stream continues where it stopped, streams it never saw are read whole (within `--since`),
//! and a line that comes twice anyway is skipped.

use super::print::{self, Printer};
use super::Ctx;
use crate::client::{self, status_error};
use shoal_proto::pb;
use std::collections::HashMap;
use std::io::Write;
use std::time::Duration;
use tokio::time::Instant;
use tonic::Streaming;

/// How long a broken follow tries to find a manager before it gives up.
pub const RECONNECT_FOR: Duration = Duration::from_secs(60);
const BACKOFF_MIN: Duration = Duration::from_millis(200);
const BACKOFF_MAX: Duration = Duration::from_secs(2);

/// Where the client is in each task stream: the offset just past the last line it printed.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Cursors(HashMap<(String, String), u64>);

impl Cursors {
    /// Whether `l` was not printed yet; it is recorded as printed.
    pub fn take(&mut self, l: &pb::LogLine) -> bool {
        let at = self
            .0
            .entry((l.task_id.clone(), l.stream.clone()))
            .or_insert(0);
        if l.end != 0 && l.end <= *at {
            return false;
        }
        *at = (*at).max(l.end);
        true
    }

    /// Records that a stream was read up to `c` (with no line to print).
    pub fn note(&mut self, c: &pb::LogCursor) {
        let at = self
            .0
            .entry((c.task_id.clone(), c.stream.clone()))
            .or_insert(0);
        *at = (*at).max(c.offset);
    }

    /// The request that carries on `first` from here: every line since its `--since`, each
    /// stream known resuming after its cursor. With no cursor yet, `first` itself.
    pub fn resume(&self, first: &pb::LogsRequest) -> pb::LogsRequest {
        if self.0.is_empty() {
            return first.clone();
        }
        let mut resume: Vec<pb::LogCursor> = self
            .0
            .iter()
            .map(|((t, s), o)| pb::LogCursor {
                task_id: t.clone(),
                stream: s.clone(),
                offset: *o,
            })
            .collect();
        resume.sort_by(|a, b| (&a.task_id, &a.stream).cmp(&(&b.task_id, &b.stream)));
        pb::LogsRequest {
            tail: 0,
            skip_history: false,
            resume,
            ..first.clone()
        }
    }
}

/// Whether a broken stream is worth asking again for (a manager that died or stopped leading),
/// as opposed to an answer (the target is gone, the request is wrong).
fn retryable(s: &tonic::Status) -> bool {
    use tonic::Code::*;
    !matches!(
        s.code(),
        NotFound
            | InvalidArgument
            | PermissionDenied
            | Unauthenticated
            | Unimplemented
            | AlreadyExists
            | OutOfRange
    )
}

/// Follows `stream` (opened with `req`) until it ends (the target was removed), stdout closes,
/// or no manager answers for [`RECONNECT_FOR`].
pub(super) async fn run(
    ctx: &mut Ctx,
    req: pb::LogsRequest,
    mut stream: Streaming<pb::LogsResponse>,
    printer: &mut Printer,
) -> anyhow::Result<()> {
    let mut cursors = Cursors::default();
    let mut managers = manager_addrs(ctx).await;
    loop {
        match stream.message().await {
            Ok(Some(b)) => {
                if !show(ctx, printer, &mut cursors, b).await {
                    return Ok(()); // stdout closed: nobody reads
                }
            }
            Ok(None) => return Ok(()),
            Err(s) if !retryable(&s) => return Err(status_error(s)),
            Err(s) => {
                let why = status_error(s);
                let _ = writeln!(
                    std::io::stderr(),
                    "lost the log stream ({why}); asking again"
                );
                let again = cursors.resume(&req);
                match reconnect(ctx, &again, &mut managers).await? {
                    Some(s) => stream = s,
                    None => return Ok(()), // the target went away meanwhile
                }
            }
        }
    }
}

/// Prints a batch; false when stdout is closed.
async fn show(
    ctx: &mut Ctx,
    printer: &mut Printer,
    cursors: &mut Cursors,
    b: pb::LogsResponse,
) -> bool {
    // Lines before cursors: a batch's cursors say where its own lines end.
    let lines: Vec<pb::LogLine> = b.lines.into_iter().filter(|l| cursors.take(l)).collect();
    for c in &b.cursors {
        cursors.note(c);
    }
    if lines
        .iter()
        .any(|l| !printer.hosts.contains_key(&l.node_id))
    {
        // A node that joined since: learn its name (once; an unknown id stays an id).
        if let Ok(h) = ctx.hostnames().await {
            printer.hosts = h;
        }
        for l in &lines {
            printer
                .hosts
                .entry(l.node_id.clone())
                .or_insert_with(|| l.node_id.clone());
        }
    }
    for l in &lines {
        if ctx.json() {
            let v = print::json(l, &printer.hosts);
            if ctx.out.try_line(&v.to_string()).is_err() {
                return false;
            }
            continue;
        }
        for text in printer.text(l) {
            if l.stream == "stderr" {
                let _ = writeln!(std::io::stderr(), "{text}");
            } else if ctx.out.try_line(&text).is_err() {
                return false;
            }
        }
    }
    for e in &b.errors {
        let _ = writeln!(std::io::stderr(), "error: {e}");
    }
    true
}

/// The managers' addresses, for asking another when the one in use dies.
async fn manager_addrs(ctx: &mut Ctx) -> Vec<String> {
    match ctx.client.list_nodes(pb::Empty {}).await {
        Ok(r) => r
            .into_inner()
            .nodes
            .into_iter()
            .filter(|n| n.role == pb::NodeRole::Manager as i32 && !n.addr.is_empty())
            .map(|n| n.addr)
            .collect(),
        Err(_) => Vec::new(),
    }
}

/// Asks for `req` again: of the manager in use, then of the others, until one answers or
/// [`RECONNECT_FOR`] passed. `None`: the target is gone.
async fn reconnect(
    ctx: &mut Ctx,
    req: &pb::LogsRequest,
    managers: &mut Vec<String>,
) -> anyhow::Result<Option<Streaming<pb::LogsResponse>>> {
    let deadline = Instant::now() + RECONNECT_FOR;
    let mut backoff = BACKOFF_MIN;
    loop {
        let last = match ctx.client.stream_logs(req.clone()).await {
            Ok(s) => return Ok(Some(s.into_inner())),
            Err(s) if s.code() == tonic::Code::NotFound => return Ok(None),
            Err(s) if !retryable(&s) => return Err(status_error(s)),
            Err(s) => status_error(s),
        };
        let mut last = last.to_string();
        if let Some(cfg) = ctx.dial.clone() {
            for addr in managers.clone() {
                let host = format!("tcp://{addr}");
                let mut c = match client::connect_control(&host, &cfg).await {
                    Ok(c) => c,
                    Err(e) => {
                        last = e.to_string();
                        continue;
                    }
                };
                match c.stream_logs(req.clone()).await {
                    Ok(s) => {
                        let _ = writeln!(std::io::stderr(), "following again through {addr}");
                        ctx.client = c;
                        let now = manager_addrs(ctx).await;
                        if !now.is_empty() {
                            *managers = now;
                        }
                        return Ok(Some(s.into_inner()));
                    }
                    Err(s) if s.code() == tonic::Code::NotFound => return Ok(None),
                    Err(s) if !retryable(&s) => return Err(status_error(s)),
                    Err(s) => last = status_error(s).to_string(),
                }
            }
        }
        if Instant::now() + backoff > deadline {
            anyhow::bail!(
                "gave up following the logs: no manager took the request for {} s (last: {last})",
                RECONNECT_FOR.as_secs()
            );
        }
        tokio::time::sleep(backoff).await;
        backoff = (backoff * 2).min(BACKOFF_MAX);
    }
}
