//! [`StateMachine`]: applies committed entries to the shared [`Store`] and keeps the current
//! snapshot on disk.
//!
//! The applied state itself lives in memory (in the [`Store`]); what is durable is the latest
//! snapshot plus the log. On open the state is restored from the snapshot, and openraft then
//! re-applies the log from the snapshot up to the saved committed id.

use super::engine::Engine;
use crate::raft::{NodeId, TypeConfig};
use crate::store::Applied;
use crate::store::{State, Store};
use openraft::storage::{RaftStateMachine, Snapshot};
use openraft::{
    BasicNode, Entry, EntryPayload, ErrorSubject, ErrorVerb, LogId, OptionalSend,
    RaftSnapshotBuilder, SnapshotMeta, StorageError, StorageIOError, StoredMembership,
};
use serde::{Deserialize, Serialize};
use std::io::Cursor;
use std::sync::{Arc, Mutex};

/// Meta key of the current snapshot (see [`Snapshots`] for its encoding).
pub(super) const SNAPSHOT: &str = "sm/snapshot";

type Result<T> = std::result::Result<T, StorageError<NodeId>>;
type Meta = SnapshotMeta<NodeId, BasicNode>;
type Membership = StoredMembership<NodeId, BasicNode>;

/// What a snapshot's data holds, borrowed for writing.
#[derive(Serialize)]
struct SnapshotView<'a> {
    last_applied: Option<LogId<NodeId>>,
    membership: &'a Membership,
    state: &'a State,
}

/// What a snapshot's data holds, owned for reading.
#[derive(Deserialize)]
struct SnapshotContents {
    last_applied: Option<LogId<NodeId>>,
    membership: Membership,
    state: State,
}

fn snapshot_err<E: std::error::Error + 'static>(
    meta: Option<&Meta>,
    verb: ErrorVerb,
    e: E,
) -> StorageError<NodeId> {
    StorageIOError::new(
        ErrorSubject::Snapshot(meta.map(|m| m.signature())),
        verb,
        &e,
    )
    .into()
}

/// A snapshot's data did not match the metadata it came with.
#[derive(Debug, thiserror::Error)]
#[error(
    "snapshot data is for log id {data:?} but its metadata says {meta:?}; the snapshot is corrupt"
)]
struct Mismatch {
    data: Option<LogId<NodeId>>,
    meta: Option<LogId<NodeId>>,
}

/// The stored snapshot is shorter than its own header says.
#[derive(Debug, thiserror::Error)]
#[error("stored snapshot is truncated; the raft directory is corrupt")]
struct Truncated;

/// The current snapshot on disk, shared by the state machine and its snapshot builders.
///
/// Stored under one meta key so that it is replaced atomically:
/// `[meta length: u32 big-endian][SnapshotMeta as JSON][data]`.
#[derive(Clone)]
struct Snapshots {
    engine: Arc<dyn Engine>,
    /// Last log id covered by the stored snapshot (`None`: no snapshot, or one of an empty
    /// log). Locked around compare-and-save, between a builder task and `install_snapshot`.
    current: Arc<Mutex<Option<LogId<NodeId>>>>,
}

impl Snapshots {
    fn load(&self) -> Result<Option<(Meta, Vec<u8>)>> {
        let read_err = |e| snapshot_err(None, ErrorVerb::Read, e);
        let Some(mut bytes) = self.engine.get_meta(SNAPSHOT).map_err(read_err)? else {
            return Ok(None);
        };
        let len = match bytes.first_chunk::<4>() {
            Some(b) => u32::from_be_bytes(*b) as usize,
            None => return Err(snapshot_err(None, ErrorVerb::Read, Truncated)),
        };
        if bytes.len() < 4 + len {
            return Err(snapshot_err(None, ErrorVerb::Read, Truncated));
        }
        let meta: Meta = serde_json::from_slice(&bytes[4..4 + len])
            .map_err(|e| snapshot_err(None, ErrorVerb::Read, e))?;
        let data = bytes.split_off(4 + len);
        Ok(Some((meta, data)))
    }

    /// Saves `meta` + `data` durably as the current snapshot. With `only_if_newer`, keeps the
    /// stored one instead when it covers more of the log (a builder racing an install).
    fn save(&self, meta: &Meta, data: &[u8], only_if_newer: bool) -> Result<()> {
        let meta_json =
            serde_json::to_vec(meta).map_err(|e| snapshot_err(Some(meta), ErrorVerb::Write, e))?;
        let len = u32::try_from(meta_json.len())
            .map_err(|e| snapshot_err(Some(meta), ErrorVerb::Write, e))?;
        let mut bytes = Vec::with_capacity(4 + meta_json.len() + data.len());
        bytes.extend_from_slice(&len.to_be_bytes());
        bytes.extend_from_slice(&meta_json);
        bytes.extend_from_slice(data);

        let mut current = self.current.lock().unwrap_or_else(|e| e.into_inner());
        if only_if_newer && *current > meta.last_log_id {
            return Ok(());
        }
        let write_err = |e| snapshot_err(Some(meta), ErrorVerb::Write, e);
        self.engine.put_meta(SNAPSHOT, &bytes).map_err(write_err)?;
        self.engine.flush().map_err(write_err)?;
        *current = meta.last_log_id;
        Ok(())
    }
}

/// Decodes snapshot data and checks it against its metadata.
fn decode(meta: &Meta, data: &[u8]) -> Result<State> {
    let contents: SnapshotContents =
        serde_json::from_slice(data).map_err(|e| snapshot_err(Some(meta), ErrorVerb::Read, e))?;
    if contents.last_applied != meta.last_log_id || contents.membership != meta.last_membership {
        let e = Mismatch {
            data: contents.last_applied,
            meta: meta.last_log_id,
        };
        return Err(snapshot_err(Some(meta), ErrorVerb::Read, e));
    }
    Ok(contents.state)
}

/// The raft state machine of one manager: applies entries to the shared [`Store`].
pub struct StateMachine {
    store: Store,
    snapshots: Snapshots,
    last_applied: Option<LogId<NodeId>>,
    last_membership: Membership,
}

impl std::fmt::Debug for StateMachine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StateMachine")
            .field("engine", &self.snapshots.engine.name())
            .field("last_applied", &self.last_applied)
            .finish()
    }
}

impl StateMachine {
    /// A state machine over `engine` that applies to `store`. If the engine holds a snapshot,
    /// the store's contents are replaced by it. Public for `benches/at_rest.rs` (plaintext vs
    /// sealed engine); swarmd opens its state machine with [`super::open`].
    #[doc(hidden)]
    pub fn open(engine: Arc<dyn Engine>, store: Store) -> Result<StateMachine> {
        let snapshots = Snapshots {
            engine,
            current: Arc::new(Mutex::new(None)),
        };
        let mut sm = StateMachine {
            store,
            snapshots,
            last_applied: None,
            last_membership: Membership::default(),
        };
        if let Some((meta, data)) = sm.snapshots.load()? {
            let state = decode(&meta, &data)?;
            sm.restore(&meta, state);
            *sm.snapshots
                .current
                .lock()
                .unwrap_or_else(|e| e.into_inner()) = meta.last_log_id;
        }
        Ok(sm)
    }

    /// The store this state machine applies to.
    pub fn store(&self) -> &Store {
        &self.store
    }

    /// Replaces the store's contents with a snapshot's.
    fn restore(&mut self, meta: &Meta, mut state: State) {
        state.reindex();
        let index = meta.last_log_id.map_or(0, |l| l.index);
        self.store.write(index, |s| *s = state);
        self.last_applied = meta.last_log_id;
        self.last_membership = meta.last_membership.clone();
    }
}

impl RaftStateMachine<TypeConfig> for StateMachine {
    type SnapshotBuilder = SnapshotBuilder;

    async fn applied_state(&mut self) -> Result<(Option<LogId<NodeId>>, Membership)> {
        Ok((self.last_applied, self.last_membership.clone()))
    }

    async fn apply<I>(&mut self, entries: I) -> Result<Vec<Applied>>
    where
        I: IntoIterator<Item = Entry<TypeConfig>> + OptionalSend,
        I::IntoIter: OptionalSend,
    {
        let entries: Vec<Entry<TypeConfig>> = entries.into_iter().collect();
        let Some(last) = entries.last().map(|e| e.log_id) else {
            return Ok(Vec::new());
        };
        // The whole batch under one write lock and one change signal: the leader's planners and
        // the dispatcher's sessions wake once per batch, not once per entry.
        let mut responses = Vec::with_capacity(entries.len());
        let mut membership = None;
        self.store.write(last.index, |s| {
            for entry in entries {
                let response = match entry.payload {
                    EntryPayload::Normal(cmd) => s.apply(entry.log_id.index, &cmd),
                    EntryPayload::Blank => Applied::default(),
                    EntryPayload::Membership(m) => {
                        membership = Some(StoredMembership::new(Some(entry.log_id), m));
                        Applied::default()
                    }
                };
                responses.push(response);
            }
        });
        self.last_applied = Some(last);
        if let Some(m) = membership {
            self.last_membership = m;
        }
        Ok(responses)
    }

    async fn get_snapshot_builder(&mut self) -> SnapshotBuilder {
        SnapshotBuilder {
            snapshots: self.snapshots.clone(),
            state: self.store.read().clone(),
            last_applied: self.last_applied,
            membership: self.last_membership.clone(),
        }
    }

    async fn begin_receiving_snapshot(&mut self) -> Result<Box<Cursor<Vec<u8>>>> {
        Ok(Box::new(Cursor::new(Vec::new())))
    }

    async fn install_snapshot(
        &mut self,
        meta: &Meta,
        snapshot: Box<Cursor<Vec<u8>>>,
    ) -> Result<()> {
        let data = snapshot.into_inner();
        let state = decode(meta, &data)?;
        self.snapshots.save(meta, &data, false)?;
        crate::metrics::RAFT_SNAPSHOT_BYTES.set(data.len() as i64);
        crate::metrics::RAFT_SNAPSHOTS_INSTALLED.inc();
        self.restore(meta, state);
        tracing::info!(
            index = meta.last_log_id.map_or(0, |l| l.index),
            snapshot = %meta.snapshot_id,
            "installed a snapshot sent by the leader"
        );
        Ok(())
    }

    async fn get_current_snapshot(&mut self) -> Result<Option<Snapshot<TypeConfig>>> {
        Ok(self.snapshots.load()?.map(|(meta, data)| Snapshot {
            meta,
            snapshot: Box::new(Cursor::new(data)),
        }))
    }
}

/// Builds a snapshot from a copy of the state taken when the builder was created, so the state
/// machine keeps applying while it runs.
pub struct SnapshotBuilder {
    snapshots: Snapshots,
    state: State,
    last_applied: Option<LogId<NodeId>>,
    membership: Membership,
}

impl RaftSnapshotBuilder<TypeConfig> for SnapshotBuilder {
    async fn build_snapshot(&mut self) -> Result<Snapshot<TypeConfig>> {
        let view = SnapshotView {
            last_applied: self.last_applied,
            membership: &self.membership,
            state: &self.state,
        };
        let data =
            serde_json::to_vec(&view).map_err(|e| snapshot_err(None, ErrorVerb::Write, e))?;
        let meta = Meta {
            last_log_id: self.last_applied,
            last_membership: self.membership.clone(),
            // Unique even for two snapshots at the same index (e.g. after a restart).
            snapshot_id: format!(
                "{}-{:016x}",
                self.last_applied.map_or(0, |l| l.index),
                rand::random::<u64>()
            ),
        };
        self.snapshots.save(&meta, &data, true)?;
        crate::metrics::RAFT_SNAPSHOT_BYTES.set(data.len() as i64);
        crate::metrics::RAFT_SNAPSHOTS_BUILT.inc();
        Ok(Snapshot {
            meta,
            snapshot: Box::new(Cursor::new(data)),
        })
    }
}
