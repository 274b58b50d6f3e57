//! The history of a run: every client operation as invoked, and its return when it has one.
//! An operation without a return is *unknown* (a timeout, a lost connection, a manager that
//! died): it may or may not have been applied. Its client never uses that process id again,
//! so the linearizability checker can leave the operation in flight (possibly applied, at any
//! point after its invocation).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

/// A value written by a client: unique over the run (client number in the high bits).
pub type Tag = u64;

/// An operation on one key (a service): its register is the service's label `v`, and the
/// service's existence.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Op {
    /// `CreateService` of the key's name with label `v` = `tag`.
    Create {
        /// The value of its label.
        tag: Tag,
    },
    /// `UpdateService` at the version the client read with `v` = `from`, setting `v` = `to`.
    Cas {
        /// The value read together with the version sent.
        from: Tag,
        /// The new value.
        to: Tag,
        /// The service's version once written (0: not known, the op did not return ok).
        version: u64,
    },
    /// The final read of one manager's store after the faults healed.
    Read {
        /// The manager read (0-based).
        manager: usize,
        /// The service's version there (0: absent).
        version: u64,
    },
}

/// What an operation returned.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Ret {
    /// Created, or updated.
    Ok,
    /// A create refused: a service with that name exists.
    Exists,
    /// An update refused: `update out of sequence` (the version changed since the read).
    Conflict,
    /// A read: the label's value, `None` when the service does not exist.
    Value(Option<Tag>),
}

/// One entry of the history, in the order things happened.
#[derive(Debug, Clone)]
pub enum Event {
    /// Process `pid` invoked `op` on `key`.
    Invoke {
        /// The logical process.
        pid: u64,
        /// The service name.
        key: String,
        /// The operation.
        op: Op,
    },
    /// Process `pid`'s operation on `key` returned `ret`.
    Return {
        /// The logical process.
        pid: u64,
        /// The service name.
        key: String,
        /// The return value.
        ret: Ret,
        /// The service's version in the response (ok updates), else 0.
        version: u64,
    },
}

/// Operation counts by outcome.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Counts {
    /// Acknowledged writes (create or update returned ok).
    pub ok: u64,
    /// Writes definitely not applied: refused (stale version, name taken).
    pub failed: u64,
    /// Writes never sent (no connection to the manager picked: killed, or paused).
    pub not_sent: u64,
    /// Writes whose outcome is unknown (timeout, connection lost).
    pub unknown: u64,
    /// Mid-run reads that answered.
    pub reads: u64,
    /// Mid-run reads that failed.
    pub read_errors: u64,
}

/// The shared, append-only history of a run.
#[derive(Debug, Default)]
pub struct History {
    events: Mutex<Vec<Event>>,
    counts: Mutex<Counts>,
    next_pid: AtomicU64,
}

impl History {
    /// An empty history.
    pub fn new() -> History {
        History::default()
    }

    /// A process id never used before.
    pub fn fresh_pid(&self) -> u64 {
        self.next_pid.fetch_add(1, Ordering::Relaxed)
    }

    /// Records an invocation (before the request is sent).
    pub fn invoke(&self, pid: u64, key: &str, op: Op) {
        self.lock_events().push(Event::Invoke {
            pid,
            key: key.to_string(),
            op,
        });
    }

    /// Records a return (after the response arrived) and counts it.
    pub fn ret(&self, pid: u64, key: &str, ret: Ret, version: u64) {
        {
            let mut c = self.lock_counts();
            match ret {
                Ret::Ok => c.ok += 1,
                Ret::Exists | Ret::Conflict => c.failed += 1,
                Ret::Value(_) => {}
            }
        }
        self.lock_events().push(Event::Return {
            pid,
            key: key.to_string(),
            ret,
            version,
        });
    }

    /// Counts an operation left without a return.
    pub fn unknown(&self) {
        self.lock_counts().unknown += 1;
    }

    /// Counts a write that was never sent (no connection).
    pub fn not_sent(&self) {
        self.lock_counts().not_sent += 1;
    }

    /// Counts a mid-run read: it answered (its value shows in the update that follows it) or
    /// failed.
    pub fn read(&self, answered: bool) {
        let mut c = self.lock_counts();
        if answered {
            c.reads += 1;
        } else {
            c.read_errors += 1;
        }
    }

    /// The events so far.
    pub fn events(&self) -> Vec<Event> {
        self.lock_events().clone()
    }

    /// The counts so far.
    pub fn counts(&self) -> Counts {
        self.lock_counts().clone()
    }

    fn lock_events(&self) -> std::sync::MutexGuard<'_, Vec<Event>> {
        self.events.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn lock_counts(&self) -> std::sync::MutexGuard<'_, Counts> {
        self.counts.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// One line per event, for a failure's excerpt and the saved history file.
pub fn render(events: &[Event]) -> String {
    let mut s = String::new();
    for e in events {
        match e {
            Event::Invoke { pid, key, op } => s.push_str(&format!("p{pid} {key} invoke {op:?}\n")),
            Event::Return {
                pid,
                key,
                ret,
                version,
            } => s.push_str(&format!("p{pid} {key} return {ret:?} version={version}\n")),
        }
    }
    s
}
