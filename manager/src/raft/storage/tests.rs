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
