//! Serving one log request of the leader: the history it asks for, then (following) new lines
//! as the tasks write them, in batches through a [`Publish`] (the session's `PublishLogs`).
//!
//! Every stream read is a file: when the leader holds a batch (its client reads slowly), the
//! next read simply waits, and nothing is dropped or buffered beyond one batch. A follow ends
//! when the leader cancels it, answers that nobody wants the lines any more, or the session
//! ends (the caller drops the request channel); a plain request ends once its history is sent.

use super::book::{log_path, LogBook, STREAMS};
use super::read::{self, History, Line};
use crate::executor::controller::BoxFuture;
use shoal_proto::pb;
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::mpsc;
use tracing::debug;

/// Most bytes of lines in one batch.
pub const BATCH_BYTES: usize = 256 << 10;

/// Why a batch was not taken.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum PublishError {
    /// Nobody wants these lines any more (the client left, the leader changed): stop.
    #[error("nobody follows these logs any more")]
    Gone,
    /// The call failed; it may work again.
    #[error("publishing logs failed: {0}")]
    Failed(String),
}

/// Where batches go (the leader, through the session's channel; a recorder in tests).
pub trait Publish: Send {
    /// Sends one batch; returns once the leader took it.
    fn publish(&mut self, batch: pb::PublishLogsRequest)
        -> BoxFuture<'_, Result<(), PublishError>>;
}

/// Where a task is in its life on this node, as the worker knows it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    /// Starting or running: its log may grow.
    Running,
    /// It ended here: its log is complete.
    Ended,
    /// Not known here: long gone, or not started yet (its assignment may come after the log
    /// request that names it).
    Unknown,
}

/// What a follow needs of the node: where tasks keep their logs and whether they run.
pub trait Tasks: Send + Sync {
    /// The directory holding the task's `stdout.log` and `stderr.log`.
    fn log_dir(&self, task_id: &str) -> PathBuf;
    /// Where the task is in its life.
    fn phase(&self, task_id: &str) -> Phase;
}

/// A follow's timings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timings {
    /// With nothing to send for this long, an empty batch checks that someone still follows.
    pub keepalive: Duration,
    /// After a failed publish, the wait before trying again.
    pub retry: Duration,
    /// How many failed publishes in a row end the follow.
    pub retries: u32,
    /// A task this node does not know (any more) whose log was not written for this long is
    /// complete: it is read to its end and no more.
    pub quiet: Duration,
}

impl Default for Timings {
    fn default() -> Self {
        Timings {
            keepalive: Duration::from_secs(5),
            retry: Duration::from_millis(200),
            retries: 5,
            quiet: Duration::from_secs(30),
        }
    }
}

/// What a follow works with.
#[derive(Clone)]
pub struct Ctx {
    /// The node's log indexes.
    pub book: Arc<LogBook>,
    /// The node's tasks.
    pub tasks: Arc<dyn Tasks>,
    /// This node's id (in every batch).
    pub node_id: String,
    /// Timings.
    pub timings: Timings,
}

impl std::fmt::Debug for Ctx {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Ctx")
            .field("node_id", &self.node_id)
            .finish_non_exhaustive()
    }
}

/// One stream being read.
#[derive(Debug)]
struct Reader {
    log: PathBuf,
    pos: u64,
}

/// What waits to be published, in order.
#[derive(Debug, Default)]
struct Outbox {
    lines: Vec<pb::LogLine>,
    cursors: Vec<pb::LogCursor>,
    errors: Vec<String>,
    bytes: usize,
}

impl Outbox {
    fn is_empty(&self) -> bool {
        self.lines.is_empty() && self.cursors.is_empty() && self.errors.is_empty()
    }

    fn push(&mut self, node: &str, task: &str, stream: &str, l: Line) {
        self.bytes += l.data.len();
        self.lines.push(pb::LogLine {
            task_id: task.to_string(),
            task_name: String::new(),
            node_id: node.to_string(),
            stream: stream.to_string(),
            data: l.data,
            timestamp_ms: l.ms,
            end: l.end,
        });
    }
}

/// A request being served.
struct Follow<P> {
    id: String,
    ctx: Ctx,
    publish: P,
    readers: BTreeMap<(String, String), Reader>,
    out: Outbox,
}

/// Serves `first` and, when it follows, the requests with its id that come on `more` (tasks
/// that started since) until cancelled or `more` closes.
pub async fn serve<P: Publish>(
    ctx: Ctx,
    publish: P,
    first: pb::LogRequest,
    mut more: mpsc::UnboundedReceiver<pb::LogRequest>,
) {
    let follow = first.follow;
    let mut f = Follow {
        id: first.request_id.clone(),
        ctx,
        publish,
        readers: BTreeMap::new(),
        out: Outbox::default(),
    };
    if f.add(&first).await.is_err() {
        return;
    }
    if !follow {
        let _ = f.flush(true).await;
        return;
    }
    if f.flush(false).await.is_err() {
        return;
    }
    let mut ticks = f.ctx.book.ticks();
    let keepalive = f.ctx.timings.keepalive;
    loop {
        let more_to_read = f.read_new();
        if !f.out.is_empty() && f.flush(false).await.is_err() {
            return;
        }
        if more_to_read {
            continue;
        }
        tokio::select! {
            r = ticks.changed() => if r.is_err() { return },
            req = more.recv() => match req {
                Some(r) if r.cancel => return,
                Some(r) => if f.add(&r).await.is_err() { return },
                None => return,
            },
            _ = tokio::time::sleep(keepalive) => {
                // Nobody may be reading any more, and no cancel came: ask.
                if f.flush_empty().await.is_err() {
                    return;
                }
            }
        }
    }
}

impl<P: Publish> Follow<P> {
    /// Takes on the tasks of `r`: each stream resumes at its cursor, or starts with the history
    /// `r` asks for. Histories are published as they fill batches, so that at most one stream's
    /// history is held at a time.
    async fn add(&mut self, r: &pb::LogRequest) -> Result<(), PublishError> {
        let h = History {
            tail: r.tail,
            since_ms: r.since_ms,
            skip: r.skip_history,
        };
        for task in &r.task_ids {
            let dir = self.ctx.tasks.log_dir(task);
            let ended = self.ctx.tasks.phase(task) != Phase::Running;
            for stream in STREAMS {
                let key = (task.clone(), stream.to_string());
                if self.readers.contains_key(&key) {
                    continue;
                }
                let log = log_path(&dir, stream);
                let cursor = r
                    .resume
                    .iter()
                    .find(|c| &c.task_id == task && c.stream == stream)
                    .map(|c| c.offset);
                let pos = match cursor {
                    Some(p) => p,
                    None => match self.history(task, stream, &log, &h, ended) {
                        Ok(p) => p,
                        Err(e) => {
                            self.out
                                .errors
                                .push(format!("reading the {stream} of task {task}: {e}"));
                            continue;
                        }
                    },
                };
                self.out.cursors.push(pb::LogCursor {
                    task_id: task.clone(),
                    stream: stream.to_string(),
                    offset: pos,
                });
                self.readers.insert(key, Reader { log, pos });
                if self.out.bytes >= BATCH_BYTES {
                    self.flush(false).await?;
                }
            }
        }
        Ok(())
    }

    fn history(
        &mut self,
        task: &str,
        stream: &str,
        log: &std::path::Path,
        h: &History,
        ended: bool,
    ) -> std::io::Result<u64> {
        let to = self.ctx.book.stamp(log)?;
        let (lines, pos) = read::history(log, h, to, ended)?;
        for l in lines {
            self.out.push(&self.ctx.node_id, task, stream, l);
        }
        Ok(pos)
    }

    /// Reads what the streams gained, up to a batch; true when some stream has more to read
    /// at once (the batch filled up). Each stream gets a share of the batch, so that a chatty
    /// task does not starve the others. Streams of tasks that ended are read to their end and
    /// dropped.
    fn read_new(&mut self) -> bool {
        let share = (BATCH_BYTES / self.readers.len().max(1)).max(4 * read::MAX_LINE);
        let mut more = false;
        let mut done = Vec::new();
        for ((task, stream), r) in self.readers.iter_mut() {
            let budget = BATCH_BYTES.saturating_sub(self.out.bytes).min(share);
            if budget == 0 {
                more = true;
                break;
            }
            // Phase first, stamp second: a task seen ended wrote all it will before the stamp.
            let ended = match self.ctx.tasks.phase(task) {
                Phase::Running => false,
                Phase::Ended => true,
                // Gone long ago once its log is quiet; not started yet while it has none.
                Phase::Unknown => quiet_since(&r.log, self.ctx.timings.quiet),
            };
            let read = self.ctx.book.stamp(&r.log).and_then(|to| {
                let cut = to.saturating_sub(r.pos) > budget as u64;
                read::range(&r.log, r.pos, to, ended, budget).map(|x| (x, to, cut))
            });
            match read {
                Ok(((lines, pos), to, cut)) => {
                    r.pos = pos;
                    for l in lines {
                        self.out.push(&self.ctx.node_id, task, stream, l);
                    }
                    more |= cut;
                    if ended && !cut && pos >= to {
                        done.push((task.clone(), stream.clone()));
                    }
                }
                Err(e) => {
                    self.out
                        .errors
                        .push(format!("reading the {stream} of task {task}: {e}"));
                    done.push((task.clone(), stream.clone()));
                }
            }
        }
        for k in done {
            self.readers.remove(&k);
        }
        more
    }

    /// Publishes the outbox in batches of at most [`BATCH_BYTES`]; `done` marks the last.
    async fn flush(&mut self, done: bool) -> Result<(), PublishError> {
        let out = std::mem::take(&mut self.out);
        let mut lines = out.lines.into_iter().peekable();
        let mut cursors = Some(out.cursors);
        let mut errors = Some(out.errors);
        loop {
            let mut batch = Vec::new();
            let mut bytes = 0;
            while let Some(l) = lines.peek() {
                if !batch.is_empty() && bytes + l.data.len() > BATCH_BYTES {
                    break;
                }
                bytes += l.data.len();
                batch.extend(lines.next());
            }
            let last = lines.peek().is_none();
            let msg = pb::PublishLogsRequest {
                node_id: self.ctx.node_id.clone(),
                request_id: self.id.clone(),
                lines: batch,
                // Cursors and errors go with the last batch: after every line before them.
                error: if last {
                    errors.take().unwrap_or_default().join("; ")
                } else {
                    String::new()
                },
                done: done && last,
                cursors: if last {
                    cursors.take().unwrap_or_default()
                } else {
                    Vec::new()
                },
            };
            self.send(msg).await?;
            if last {
                return Ok(());
            }
        }
    }

    async fn flush_empty(&mut self) -> Result<(), PublishError> {
        let msg = pb::PublishLogsRequest {
            node_id: self.ctx.node_id.clone(),
            request_id: self.id.clone(),
            ..Default::default()
        };
        self.send(msg).await
    }

    /// Publishes one batch, trying again after a failure a few times.
    async fn send(&mut self, msg: pb::PublishLogsRequest) -> Result<(), PublishError> {
        let t = self.ctx.timings;
        let mut failures = 0;
        loop {
            match self.publish.publish(msg.clone()).await {
                Ok(()) => return Ok(()),
                Err(PublishError::Gone) => return Err(PublishError::Gone),
                Err(e) => {
                    failures += 1;
                    debug!(request = %self.id, error = %e, failures, "publishing logs failed");
                    if failures >= t.retries {
                        return Err(e);
                    }
                    tokio::time::sleep(t.retry).await;
                }
            }
        }
    }
}

/// Whether the log at `log` exists and was not written for `quiet`.
fn quiet_since(log: &std::path::Path, quiet: Duration) -> bool {
    std::fs::metadata(log)
        .and_then(|m| m.modified())
        .ok()
        .and_then(|t| t.elapsed().ok())
        .is_some_and(|age| age >= quiet)
}
