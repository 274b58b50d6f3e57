//! [`LogStore`]: openraft's log storage (entries, vote, committed id, purge point) over an
//! [`Engine`].
//!
//! Engine calls are synchronous and are made on the calling task: openraft drives all log IO
//! from one task and needs each write finished before the next one, so a thread hop would add
//! latency without adding concurrency.

use super::engine::{Engine, RawEntry};
use crate::raft::{NodeId, TypeConfig};
use openraft::storage::{LogFlushed, LogState, RaftLogStorage};
use openraft::{
    Entry, ErrorSubject, ErrorVerb, LogId, OptionalSend, RaftLogId, RaftLogReader, StorageError,
    StorageIOError, Vote,
};
use serde::de::DeserializeOwned;
use serde::Serialize;
use std::fmt::Debug;
use std::ops::{Bound, RangeBounds, RangeInclusive};
use std::sync::Arc;

/// Meta key of the last saved vote.
pub(super) const VOTE: &str = "vote";
/// Meta key of the last saved committed log id.
pub(super) const COMMITTED: &str = "committed";
/// Meta key of the id of the last purged log entry.
pub(super) const LAST_PURGED: &str = "last_purged";

/// The raft log of one manager. Cloning is cheap: clones share the engine (a clone is the
/// [`RaftLogStorage::LogReader`]).
#[derive(Clone)]
pub struct LogStore {
    engine: Arc<dyn Engine>,
}

impl std::fmt::Debug for LogStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LogStore")
            .field("engine", &self.engine.name())
            .finish()
    }
}

type Result<T> = std::result::Result<T, StorageError<NodeId>>;

/// Converts an engine or codec error into openraft's error for `subject`/`verb`.
fn io_err<E: std::error::Error + 'static>(
    subject: ErrorSubject<NodeId>,
    verb: ErrorVerb,
) -> impl FnOnce(E) -> StorageError<NodeId> {
    move |e| StorageIOError::new(subject, verb, &e).into()
}

impl LogStore {
    /// A log store over `engine`. Public for `benches/at_rest.rs`, which runs the same log over
    /// the raw engine ([`super::open_engine`]) and the sealed one ([`super::open_encrypted`]);
    /// swarmd opens its log with [`super::open`].
    #[doc(hidden)]
    pub fn new(engine: Arc<dyn Engine>) -> LogStore {
        LogStore { engine }
    }

    fn read_meta<T: DeserializeOwned>(
        &self,
        key: &str,
        subject: ErrorSubject<NodeId>,
    ) -> Result<Option<T>> {
        let Some(bytes) = self
            .engine
            .get_meta(key)
            .map_err(io_err(subject.clone(), ErrorVerb::Read))?
        else {
            return Ok(None);
        };
        serde_json::from_slice(&bytes)
            .map(Some)
            .map_err(io_err(subject, ErrorVerb::Read))
    }

    /// Writes a meta value; durable only after a flush.
    fn write_meta<T: Serialize>(
        &self,
        key: &str,
        value: &T,
        subject: ErrorSubject<NodeId>,
    ) -> Result<()> {
        let bytes = serde_json::to_vec(value).map_err(io_err(subject.clone(), ErrorVerb::Write))?;
        self.engine
            .put_meta(key, &bytes)
            .map_err(io_err(subject, ErrorVerb::Write))
    }

    fn flush(&self, subject: ErrorSubject<NodeId>) -> Result<()> {
        self.engine
            .flush()
            .map_err(io_err(subject, ErrorVerb::Write))
    }

    fn decode(raw: RawEntry) -> Result<Entry<TypeConfig>> {
        let (index, bytes) = raw;
        serde_json::from_slice(&bytes)
            .map_err(io_err(ErrorSubject::LogIndex(index), ErrorVerb::Read))
    }

    fn last_purged(&self) -> Result<Option<LogId<NodeId>>> {
        self.read_meta(LAST_PURGED, ErrorSubject::Logs)
    }
}

/// `range` as an inclusive range of indexes (empty when it selects nothing).
#[allow(clippy::reversed_empty_ranges)]
fn inclusive(range: &impl RangeBounds<u64>) -> RangeInclusive<u64> {
    let start = match range.start_bound() {
        Bound::Included(&s) => s,
        Bound::Excluded(&s) => match s.checked_add(1) {
            Some(s) => s,
            None => return 1..=0,
        },
        Bound::Unbounded => 0,
    };
    let end = match range.end_bound() {
        Bound::Included(&e) => e,
        Bound::Excluded(&e) => match e.checked_sub(1) {
            Some(e) => e,
            None => return 1..=0,
        },
        Bound::Unbounded => u64::MAX,
    };
    start..=end
}

impl RaftLogReader<TypeConfig> for LogStore {
    async fn try_get_log_entries<RB: RangeBounds<u64> + Clone + Debug + OptionalSend>(
        &mut self,
        range: RB,
    ) -> Result<Vec<Entry<TypeConfig>>> {
        let raw = self
            .engine
            .range(inclusive(&range))
            .map_err(io_err(ErrorSubject::Logs, ErrorVerb::Read))?;
        raw.into_iter().map(LogStore::decode).collect()
    }
}

impl RaftLogStorage<TypeConfig> for LogStore {
    type LogReader = LogStore;

    async fn get_log_state(&mut self) -> Result<LogState<TypeConfig>> {
        let last_purged_log_id = self.last_purged()?;
        let last = self
            .engine
            .last()
            .map_err(io_err(ErrorSubject::Logs, ErrorVerb::Read))?;
        let last_log_id = match last {
            Some(raw) => Some(*LogStore::decode(raw)?.get_log_id()),
            None => last_purged_log_id,
        };
        Ok(LogState {
            last_purged_log_id,
            last_log_id,
        })
    }

    async fn get_log_reader(&mut self) -> Self::LogReader {
        self.clone()
    }

    async fn save_vote(&mut self, vote: &Vote<NodeId>) -> Result<()> {
        self.write_meta(VOTE, vote, ErrorSubject::Vote)?;
        self.flush(ErrorSubject::Vote)
    }

    async fn read_vote(&mut self) -> Result<Option<Vote<NodeId>>> {
        self.read_meta(VOTE, ErrorSubject::Vote)
    }

    /// Saved so that a restarted manager re-applies the committed entries at startup. Not
    /// flushed: losing the latest value on a crash only means re-applying a little less, and the
    /// next append's flush persists it.
    async fn save_committed(&mut self, committed: Option<LogId<NodeId>>) -> Result<()> {
        self.write_meta(COMMITTED, &committed, ErrorSubject::Store)
    }

    async fn read_committed(&mut self) -> Result<Option<LogId<NodeId>>> {
        Ok(self
            .read_meta::<Option<LogId<NodeId>>>(COMMITTED, ErrorSubject::Store)?
            .flatten())
    }

    async fn append<I>(&mut self, entries: I, callback: LogFlushed<TypeConfig>) -> Result<()>
    where
        I: IntoIterator<Item = Entry<TypeConfig>> + OptionalSend,
        I::IntoIter: OptionalSend,
    {
        let raw = entries
            .into_iter()
            .map(|e| {
                let id = *e.get_log_id();
                let bytes = serde_json::to_vec(&e)
                    .map_err(io_err(ErrorSubject::Log(id), ErrorVerb::Write))?;
                Ok((id.index, bytes))
            })
            .collect::<Result<Vec<RawEntry>>>()?;
        self.engine
            .append(&raw)
            .map_err(io_err(ErrorSubject::Logs, ErrorVerb::Write))?;
        self.flush(ErrorSubject::Logs)?;
        callback.log_io_completed(Ok(()));
        Ok(())
    }

    async fn truncate(&mut self, log_id: LogId<NodeId>) -> Result<()> {
        self.engine
            .delete_range(log_id.index..=u64::MAX)
            .map_err(io_err(ErrorSubject::Log(log_id), ErrorVerb::Delete))?;
        self.flush(ErrorSubject::Log(log_id))
    }

    async fn purge(&mut self, log_id: LogId<NodeId>) -> Result<()> {
        // The purge point goes first: a crash between the two writes leaves entries that are
        // already marked purged (harmless), never a hole below the first entry.
        self.write_meta(LAST_PURGED, &log_id, ErrorSubject::Logs)?;
        self.engine
            .delete_range(0..=log_id.index)
            .map_err(io_err(ErrorSubject::Log(log_id), ErrorVerb::Delete))?;
        self.flush(ErrorSubject::Log(log_id))
    }
}
