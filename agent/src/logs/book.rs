//! [`LogBook`]: keeps the indexes of the node's task logs up to date (see [`super::index`]).
//!
//! Every period it stamps the logs of the tasks that run here (`stat` each log; when it grew,
//! append one record), then ticks, which wakes the follows (see [`super::follow`]). A reader
//! stamps before it reads, so what it returns is always timed, also for tasks that ended while
//! no `swarmd` ran. A stamp takes the log's modification time (the time of its last write,
//! clamped between the previous record's time and now): bytes written while `swarmd` was down
//! get the time of the last write before it saw them.

use super::index::{self, Index, Stamp};
use std::collections::HashMap;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use tokio::sync::watch;

/// The streams of a task's log.
pub const STREAMS: [&str; 2] = ["stdout", "stderr"];

/// The log file of stream `stream` in task directory `dir`.
pub fn log_path(dir: &Path, stream: &str) -> PathBuf {
    dir.join(format!("{stream}.log"))
}

/// The node's task logs and their indexes.
#[derive(Debug)]
pub struct LogBook {
    /// The last record of each log being stamped, by log path: only live tasks' (the others are
    /// read from their index when stamped). The lock also orders appends to one index.
    last: Mutex<HashMap<PathBuf, Stamp>>,
    /// The tasks that run here, with their directories.
    live: Mutex<HashMap<String, PathBuf>>,
    tick: watch::Sender<u64>,
}

impl Default for LogBook {
    fn default() -> Self {
        LogBook {
            last: Mutex::default(),
            live: Mutex::default(),
            tick: watch::channel(0).0,
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

fn ms_of(t: SystemTime) -> i64 {
    t.duration_since(UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

impl LogBook {
    /// Stamps the log at `log`: records that everything it holds now was written by now. Returns
    /// how far its index covers (0 when there is no log yet).
    pub fn stamp(&self, log: &Path) -> io::Result<u64> {
        self.stamp_at(log, SystemTime::now())
    }

    /// [`LogBook::stamp`] as if it were `now`.
    pub fn stamp_at(&self, log: &Path, now: SystemTime) -> io::Result<u64> {
        let idx = index::path_of(log);
        let mut last = lock(&self.last);
        let cached = last.get(log).copied();
        let prev = match cached {
            Some(s) => Some(s),
            None => match Index::open(&idx)? {
                Some(ix) => ix.last()?,
                None => None,
            },
        };
        let covered = prev.map_or(0, |s| s.end);
        let meta = match std::fs::metadata(log) {
            Ok(m) => m,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(covered),
            Err(e) => return Err(e),
        };
        let len = meta.len();
        if len <= covered {
            return Ok(covered);
        }
        let now = ms_of(now);
        let written = meta.modified().map(ms_of).unwrap_or(now).min(now);
        let s = Stamp {
            end: len,
            ms: written.max(prev.map_or(i64::MIN, |s| s.ms)),
        };
        index::append(&idx, s)?;
        if cached.is_some() || self.is_live_log(log) {
            last.insert(log.to_path_buf(), s);
        }
        Ok(len)
    }

    fn is_live_log(&self, log: &Path) -> bool {
        let dir = log.parent();
        lock(&self.live).values().any(|d| Some(d.as_path()) == dir)
    }

    /// Task `task_id` runs here, its logs in `dir`: stamp them every period.
    pub fn live(&self, task_id: &str, dir: PathBuf) {
        lock(&self.live).insert(task_id.to_string(), dir);
    }

    /// Task `task_id` ended: its logs are stamped one last time and no more.
    pub fn ended(&self, task_id: &str) {
        let Some(dir) = lock(&self.live).remove(task_id) else {
            return;
        };
        for s in STREAMS {
            let log = log_path(&dir, s);
            if let Err(e) = self.stamp(&log) {
                tracing::debug!(task.id = task_id, error = %e, "could not stamp the log");
            }
            lock(&self.last).remove(&log);
        }
        self.tick.send_modify(|n| *n = n.wrapping_add(1));
    }

    /// Whether task `task_id` runs here (as far as the book knows).
    pub fn is_live(&self, task_id: &str) -> bool {
        lock(&self.live).contains_key(task_id)
    }

    /// Stamps every live task's logs, then ticks.
    pub fn stamp_live(&self) {
        let dirs: Vec<(String, PathBuf)> = lock(&self.live)
            .iter()
            .map(|(id, d)| (id.clone(), d.clone()))
            .collect();
        for (id, dir) in dirs {
            for s in STREAMS {
                if let Err(e) = self.stamp(&log_path(&dir, s)) {
                    tracing::debug!(task.id = %id, error = %e, "could not stamp the log");
                }
            }
        }
        self.tick.send_modify(|n| *n = n.wrapping_add(1));
    }

    /// Ticks after each round of stamps (and when a task ended).
    pub fn ticks(&self) -> watch::Receiver<u64> {
        self.tick.subscribe()
    }

    /// Stamps the live tasks' logs every `period`, for ever.
    pub async fn run(&self, period: Duration) {
        loop {
            tokio::time::sleep(period).await;
            self.stamp_live();
        }
    }
}
