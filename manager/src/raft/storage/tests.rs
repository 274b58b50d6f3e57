use super::*;
use crate::raft::TypeConfig;
use openraft::storage::{RaftLogStorage, RaftLogStorageExt, RaftStateMachine};
use openraft::testing::{StoreBuilder, Suite};
use openraft::{
    BasicNode, CommittedLeaderId, Entry, EntryPayload, LogId, Membership, RaftLogReader,
    RaftSnapshotBuilder, StorageError, StorageHelper, StorageIOError, Vote,
};
use shoal_proto::model::{Cluster, Command, Node, Task};
use std::collections::{BTreeMap, BTreeSet};
use tempfile::TempDir;

/// Builds a fresh store in its own temporary directory; the directory lives as long as the
/// returned guard.
struct Builder(EngineKind);

impl StoreBuilder<TypeConfig, LogStore, StateMachine, TempDir> for Builder {
    async fn build(&self) -> Result<(TempDir, LogStore, StateMachine), StorageError<NodeId>> {
        let dir = TempDir::new().map_err(|e| StorageIOError::write(&e))?;
        let (log, sm) = open(self.0, dir.path(), Store::default())
            .await
            .map_err(|e| StorageIOError::write(&e))?;
        Ok((dir, log, sm))
    }
}

#[test]
fn openraft_suite_sled() {
    Suite::test_all(Builder(EngineKind::Sled)).expect("openraft storage suite on sled");
}

#[test]
fn openraft_suite_redb() {
    Suite::test_all(Builder(EngineKind::Redb)).expect("openraft storage suite on redb");
}

#[test]
fn engine_kind_parses_and_prints() {
    for kind in EngineKind::ALL {
        assert_eq!(kind.to_string().parse::<EngineKind>(), Ok(kind));
    }
    let err = "rocksdb".parse::<EngineKind>().unwrap_err();
    assert!(err.to_string().contains("\"sled\" or \"redb\""), "{err}");
}

fn log_id(term: u64, index: u64) -> LogId<NodeId> {
    LogId::new(CommittedLeaderId::new(term, 1), index)
}

fn entry(term: u64, index: u64, payload: EntryPayload<TypeConfig>) -> Entry<TypeConfig> {
    Entry {
        log_id: log_id(term, index),
        payload,
    }
}

fn membership() -> Membership<NodeId, BasicNode> {
    let nodes = BTreeMap::from([
        (1, BasicNode::new("10.0.0.1:4242")),
        (2, BasicNode::new("10.0.0.2:4242")),
    ]);
    Membership::new(vec![BTreeSet::from([1, 2])], nodes)
}

/// Entries `1..=n`: a blank, a membership change, then commands that create nodes.
fn entries(n: u64) -> Vec<Entry<TypeConfig>> {
    (1..=n)
        .map(|i| match i {
            1 => entry(1, i, EntryPayload::Blank),
            2 => entry(1, i, EntryPayload::Membership(membership())),
            3 => entry(
                1,
                i,
                EntryPayload::Normal(Command::InitCluster(Cluster {
                    id: "c1".into(),
                    ..Default::default()
                })),
            ),
            _ => entry(
                2,
                i,
                EntryPayload::Normal(Command::PutNode(Node {
                    id: format!("node-{i}").into(),
                    hostname: format!("host-{i}"),
                    ..Default::default()
                })),
            ),
        })
        .collect()
}

fn ids(entries: &[Entry<TypeConfig>]) -> Vec<LogId<NodeId>> {
    entries.iter().map(|e| e.log_id).collect()
}

/// Opens an engine that this process just closed. sled releases its file lock from a
/// background thread shortly after the handle is dropped (a restarted process never meets
/// this), so the lock error is retried for at most 5 s.
async fn reopen(kind: EngineKind, dir: &std::path::Path, store: Store) -> (LogStore, StateMachine) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    loop {
        match open(kind, dir, store.clone()).await {
            Ok(pair) => return pair,
            Err(e)
                if format!("{e:?}").contains("acquire lock")
                    && std::time::Instant::now() < deadline =>
            {
                tokio::time::sleep(std::time::Duration::from_millis(20)).await;
            }
            Err(e) => panic!("reopening {kind:?}: {e}"),
        }
    }
}

async fn restart_keeps_log_vote_and_committed(kind: EngineKind) {
    let dir = TempDir::new().unwrap();
    let written = entries(20);
    {
        let (mut log, _sm) = open(kind, dir.path(), Store::default()).await.unwrap();
        log.save_vote(&Vote::new_committed(2, 1)).await.unwrap();
        log.blocking_append(written.clone()).await.unwrap();
        log.purge(log_id(1, 3)).await.unwrap();
        // Truncation must survive too: entries 19 and 20 are gone.
        log.truncate(log_id(2, 19)).await.unwrap();
        // Last and never flushed explicitly: a clean close must keep it.
        log.save_committed(Some(log_id(2, 15))).await.unwrap();
    }

    let (mut log, _sm) = reopen(kind, dir.path(), Store::default()).await;
    assert_eq!(
        log.read_vote().await.unwrap(),
        Some(Vote::new_committed(2, 1))
    );
    assert_eq!(log.read_committed().await.unwrap(), Some(log_id(2, 15)));
    let state = log.get_log_state().await.unwrap();
    assert_eq!(state.last_purged_log_id, Some(log_id(1, 3)));
    assert_eq!(state.last_log_id, Some(log_id(2, 18)));
    let read = log.try_get_log_entries(..).await.unwrap();
    assert_eq!(ids(&read), ids(&written[3..18]));
    assert_eq!(
        format!("{:?}", read[0].payload),
        format!("{:?}", written[3].payload)
    );
    let mut reader = log.get_log_reader().await;
    assert_eq!(
        ids(&reader.try_get_log_entries(10..=12).await.unwrap()),
        ids(&written[9..12])
    );
}

#[tokio::test]
async fn sled_restart_keeps_log_vote_and_committed() {
    restart_keeps_log_vote_and_committed(EngineKind::Sled).await;
}

#[tokio::test]
async fn redb_restart_keeps_log_vote_and_committed() {
    restart_keeps_log_vote_and_committed(EngineKind::Redb).await;
}

/// Snapshot at 10, entries up to 14 applied and committed, then a restart into an empty store:
/// the snapshot restores the state at 10 and openraft's startup re-applies 11..=14.
async fn snapshot_and_committed_log_survive_restart(kind: EngineKind) {
    let dir = TempDir::new().unwrap();
    let all = entries(14);
    let (before, snapshot_meta) = {
        let (mut log, mut sm) = open(kind, dir.path(), Store::default()).await.unwrap();
        log.save_vote(&Vote::new_committed(2, 1)).await.unwrap();
        log.blocking_append(all.clone()).await.unwrap();
        let responses = sm.apply(all[..10].to_vec()).await.unwrap();
        assert_eq!(responses.len(), 10);
        assert!(
            responses.iter().all(|r| r.refusal.is_none()),
            "{responses:?}"
        );
        let snap = sm
            .get_snapshot_builder()
            .await
            .build_snapshot()
            .await
            .unwrap();
        assert_eq!(snap.meta.last_log_id, Some(log_id(2, 10)));
        log.purge(log_id(2, 10)).await.unwrap();
        sm.apply(all[10..].to_vec()).await.unwrap();
        log.save_committed(Some(log_id(2, 14))).await.unwrap();
        assert_eq!(sm.store().applied_index(), 14);
        let state = sm.store().read().clone();
        (state, snap.meta)
    };
    assert_eq!(before.nodes.len(), 11);

    // Reopen: the store holds the snapshot's state (index 10).
    let store = Store::default();
    let (mut log, mut sm) = reopen(kind, dir.path(), store.clone()).await;
    assert_eq!(store.applied_index(), 10);
    assert_eq!(store.read().nodes.len(), 7);
    assert!(store.read().cluster.is_some());
    let (applied, mem) = sm.applied_state().await.unwrap();
    assert_eq!(applied, Some(log_id(2, 10)));
    assert_eq!(mem.membership(), &membership());
    let current = sm
        .get_current_snapshot()
        .await
        .unwrap()
        .expect("a current snapshot");
    assert_eq!(current.meta, snapshot_meta);

    // openraft's startup re-applies the committed entries after the snapshot.
    StorageHelper::new(&mut log, &mut sm)
        .get_initial_state()
        .await
        .unwrap();
    assert_eq!(store.applied_index(), 14);
    assert_eq!(*store.read(), before);
    assert_eq!(sm.applied_state().await.unwrap().0, Some(log_id(2, 14)));
}

#[tokio::test]
async fn sled_snapshot_and_committed_log_survive_restart() {
    snapshot_and_committed_log_survive_restart(EngineKind::Sled).await;
}

#[tokio::test]
async fn redb_snapshot_and_committed_log_survive_restart() {
    snapshot_and_committed_log_survive_restart(EngineKind::Redb).await;
}

/// A snapshot installed from another manager replaces the store, rebuilds its indexes, becomes
/// the current snapshot, and is what a restart restores.
#[tokio::test]
async fn install_snapshot_replaces_store_and_reindexes() {
    let leader_dir = TempDir::new().unwrap();
    let (_, mut leader) = open(EngineKind::Redb, leader_dir.path(), Store::default())
        .await
        .unwrap();
    leader.apply(entries(5)).await.unwrap();
    leader.store().write(5, |s| {
        let task = Task {
            id: "t1".into(),
            node_id: "node-4".into(),
            ..Default::default()
        };
        s.tasks.insert(task.id.clone(), task);
        s.reindex();
    });
    let snap = leader
        .get_snapshot_builder()
        .await
        .build_snapshot()
        .await
        .unwrap();

    let follower_dir = TempDir::new().unwrap();
    let store = Store::default();
    let (_, mut follower) = open(EngineKind::Sled, follower_dir.path(), store.clone())
        .await
        .unwrap();
    follower
        .apply(vec![entry(1, 1, EntryPayload::Normal(Command::Noop))])
        .await
        .unwrap();
    let mut data = follower.begin_receiving_snapshot().await.unwrap();
    *data = *snap.snapshot;
    follower.install_snapshot(&snap.meta, data).await.unwrap();

    assert_eq!(*store.read(), *leader.store().read());
    assert_eq!(
        store
            .read()
            .node_tasks("node-4")
            .map(|t| t.id.as_str())
            .collect::<Vec<_>>(),
        ["t1"]
    );
    assert_eq!(store.applied_index(), 5);
    assert_eq!(
        follower.applied_state().await.unwrap(),
        leader.applied_state().await.unwrap()
    );
    assert_eq!(
        follower.get_current_snapshot().await.unwrap().unwrap().meta,
        snap.meta
    );
    drop(follower);

    let restarted = Store::default();
    let (_, _sm) = reopen(EngineKind::Sled, follower_dir.path(), restarted.clone()).await;
    assert_eq!(*restarted.read(), *leader.store().read());
    assert_eq!(restarted.read().node_tasks("node-4").count(), 1);
}

/// An older snapshot finishing after a newer one was installed does not replace it.
#[tokio::test]
async fn stale_build_does_not_replace_newer_snapshot() {
    let dir = TempDir::new().unwrap();
    let (_, mut sm) = open(EngineKind::Sled, dir.path(), Store::default())
        .await
        .unwrap();
    sm.apply(entries(4)).await.unwrap();
    let mut stale = sm.get_snapshot_builder().await;
    sm.apply(entries(8)[4..].to_vec()).await.unwrap();
    let newer = sm
        .get_snapshot_builder()
        .await
        .build_snapshot()
        .await
        .unwrap();
    stale.build_snapshot().await.unwrap();
    assert_eq!(
        sm.get_current_snapshot().await.unwrap().unwrap().meta,
        newer.meta
    );
}

/// An engine that can hold its flushes at a gate and records how far the log was durable:
/// `durable` is the highest index appended before a flush that has returned.
struct Gated {
    inner: Arc<dyn Engine>,
    state: std::sync::Mutex<GateState>,
    cv: std::sync::Condvar,
}

#[derive(Default)]
struct GateState {
    closed: bool,
    /// A flush is waiting at the closed gate.
    waiting: bool,
    appended: u64,
    durable: u64,
}

impl Gated {
    fn state(&self) -> std::sync::MutexGuard<'_, GateState> {
        self.state.lock().unwrap()
    }

    fn set_closed(&self, closed: bool) {
        self.state().closed = closed;
        self.cv.notify_all();
    }

    fn around_flush(
        &self,
        flush: impl FnOnce() -> Result<(), EngineError>,
    ) -> Result<(), EngineError> {
        let upto = {
            let mut s = self.state();
            s.waiting = true;
            while s.closed {
                s = self.cv.wait(s).unwrap();
            }
            s.waiting = false;
            s.appended
        };
        flush()?;
        let mut s = self.state();
        s.durable = s.durable.max(upto);
        Ok(())
    }
}

impl Engine for Gated {
    fn name(&self) -> &'static str {
        self.inner.name()
    }
    fn get_meta(&self, key: &str) -> Result<Option<Vec<u8>>, EngineError> {
        self.inner.get_meta(key)
    }
    fn put_meta(&self, key: &str, value: &[u8]) -> Result<(), EngineError> {
        self.inner.put_meta(key, value)
    }
    fn append(&self, entries: &[engine::RawEntry]) -> Result<(), EngineError> {
        self.inner.append(entries)?;
        let last = entries.iter().map(|(i, _)| *i).max().unwrap_or(0);
        let mut s = self.state();
        s.appended = s.appended.max(last);
        Ok(())
    }
    fn range(
        &self,
        range: std::ops::RangeInclusive<u64>,
    ) -> Result<Vec<engine::RawEntry>, EngineError> {
        self.inner.range(range)
    }
    fn last(&self) -> Result<Option<engine::RawEntry>, EngineError> {
        self.inner.last()
    }
    fn delete_range(&self, range: std::ops::RangeInclusive<u64>) -> Result<(), EngineError> {
        self.inner.delete_range(range)
    }
    fn flush(&self) -> Result<(), EngineError> {
        self.around_flush(|| self.inner.flush())
    }
    fn put_meta_and_flush(&self, key: &str, value: &[u8]) -> Result<(), EngineError> {
        self.around_flush(|| self.inner.put_meta_and_flush(key, value))
    }
}

/// Waits (with a deadline) until `cond` holds.
async fn until(what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while !cond() {
        assert!(
            std::time::Instant::now() < deadline,
            "timed out waiting: {what}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(2)).await;
    }
}

async fn appends_are_visible_at_once_and_acknowledged_only_once_durable(kind: EngineKind) {
    let dir = TempDir::new().unwrap();
    let gated = Arc::new(Gated {
        inner: open_encrypted(kind, dir.path()).unwrap(),
        state: Default::default(),
        cv: Default::default(),
    });
    let mut log = LogStore::new(gated.clone());
    let written = entries(5);
    log.blocking_append(written[..2].to_vec()).await.unwrap();
    assert!(gated.state().durable >= 2, "acknowledged after a flush");

    gated.set_closed(true);
    let mut appender = log.clone();
    let batch = written[2..].to_vec();
    let task = tokio::spawn(async move { appender.blocking_append(batch).await });
    until("the flusher waits at the gate with entry 5 written", || {
        let s = gated.state();
        s.waiting && s.appended >= 5
    })
    .await;
    // Written: readers see the entries already.
    let seen = log.try_get_log_entries(1..=5).await.unwrap();
    assert_eq!(ids(&seen), ids(&written));
    // Not durable: openraft has not been told.
    assert!(!task.is_finished(), "callback before the flush covering it");
    assert!(gated.state().durable < 5);

    gated.set_closed(false);
    task.await.unwrap().unwrap();
    assert!(
        gated.state().durable >= 5,
        "acknowledged after a flush covering it"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redb_appends_are_visible_at_once_and_acknowledged_only_once_durable() {
    appends_are_visible_at_once_and_acknowledged_only_once_durable(EngineKind::Redb).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sled_appends_are_visible_at_once_and_acknowledged_only_once_durable() {
    appends_are_visible_at_once_and_acknowledged_only_once_durable(EngineKind::Sled).await;
}

fn copy_dir(from: &std::path::Path, to: &std::path::Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        let dest = to.join(e.file_name());
        if e.file_type().unwrap().is_dir() {
            copy_dir(&e.path(), &dest);
        } else {
            std::fs::copy(e.path(), dest).unwrap();
        }
    }
}

/// A crash right after openraft was told entries were flushed: the files as they are at that
/// moment (copied while the store is still open, so nothing is closed cleanly) hold every
/// acknowledged entry and the vote.
async fn acknowledged_entries_survive_a_crash(kind: EngineKind) {
    let dir = TempDir::new().unwrap();
    let crashed = TempDir::new().unwrap();
    let written = entries(40);
    let (mut log, _sm) = open(kind, dir.path(), Store::default()).await.unwrap();
    log.save_vote(&Vote::new_committed(2, 1)).await.unwrap();
    for chunk in written.chunks(7) {
        log.blocking_append(chunk.to_vec()).await.unwrap();
    }
    log.save_committed(Some(log_id(2, 30))).await.unwrap();
    copy_dir(dir.path(), crashed.path());

    let (mut after, _sm2) = open(kind, crashed.path(), Store::default()).await.unwrap();
    let seen = after.try_get_log_entries(0..).await.unwrap();
    assert_eq!(ids(&seen), ids(&written));
    assert_eq!(
        after.read_vote().await.unwrap(),
        Some(Vote::new_committed(2, 1))
    );
    drop((log, after));
}

#[tokio::test]
async fn redb_acknowledged_entries_survive_a_crash() {
    acknowledged_entries_survive_a_crash(EngineKind::Redb).await;
}

#[tokio::test]
async fn sled_acknowledged_entries_survive_a_crash() {
    acknowledged_entries_survive_a_crash(EngineKind::Sled).await;
}

/// Logs written before the binary encoding (JSON entries) still read, next to new entries.
async fn json_entries_of_older_shoal_still_read(kind: EngineKind) {
    let dir = TempDir::new().unwrap();
    let engine = open_encrypted(kind, dir.path()).unwrap();
    let written = entries(6);
    let old: Vec<engine::RawEntry> = written[..3]
        .iter()
        .map(|e| (e.log_id.index, serde_json::to_vec(e).unwrap()))
        .collect();
    engine.append(&old).unwrap();
    engine.flush().unwrap();
    let mut log = LogStore::new(engine.clone());
    log.blocking_append(written[3..].to_vec()).await.unwrap();
    let raw = engine.range(4..=6).unwrap();
    assert!(raw.iter().all(|(_, b)| crate::raft::codec::is_binary(b)));
    let seen = log.try_get_log_entries(1..=6).await.unwrap();
    assert_eq!(ids(&seen), ids(&written));
}

#[tokio::test]
async fn redb_json_entries_of_older_shoal_still_read() {
    json_entries_of_older_shoal_still_read(EngineKind::Redb).await;
}

#[tokio::test]
async fn sled_json_entries_of_older_shoal_still_read() {
    json_entries_of_older_shoal_still_read(EngineKind::Sled).await;
}
