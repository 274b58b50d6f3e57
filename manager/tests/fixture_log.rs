//! The raft log of the upgrade fixture (`tests/fixtures/state-0df639a`, written by commit
//! 0df639a's binary) decodes entry by entry with today's `Command`, including the commands
//! whose payloads were tuples then and are named structs now.

use openraft::storage::RaftLogStorage;
use openraft::{EntryPayload, RaftLogReader};
use shoal_manager::raft::storage::{open, EngineKind};
use shoal_manager::store::Store;
use shoal_proto::model::Command;
use std::path::{Path, PathBuf};

/// The fixture's raft directory (the engine opens its files read-write, so tests use a copy).
fn fixture_raft_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/fixtures/state-0df639a/manager1/raft")
}

fn copy_dir(from: &Path, to: &Path) {
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

/// Every command in `c`, batches flattened.
fn flatten(c: Command, out: &mut Vec<Command>) {
    match c {
        Command::Batch(cs) => cs.into_iter().for_each(|c| flatten(c, out)),
        c => out.push(c),
    }
}

#[tokio::test]
async fn the_previous_binarys_log_entries_decode() {
    let dir = tempfile::tempdir().unwrap();
    copy_dir(&fixture_raft_dir(), dir.path());
    let (mut log, _sm) = open(EngineKind::Redb, dir.path(), Store::default())
        .await
        .unwrap();
    let state = log.get_log_state().await.unwrap();
    let first = state.last_purged_log_id.map_or(0, |l| l.index + 1);
    let last = state
        .last_log_id
        .expect("the fixture has log entries")
        .index;
    let entries = log.try_get_log_entries(first..=last).await.unwrap();
    assert_eq!(entries.len() as u64, last - first + 1, "no gaps");

    let mut cmds = Vec::new();
    for e in entries {
        if let EntryPayload::Normal(c) = e.payload {
            flatten(c, &mut cmds);
        }
    }
    let lb = cmds.iter().find_map(|c| match c {
        Command::SetNodeLbAddrs(v) => v.first(),
        _ => None,
    });
    let lb = lb.expect("the fixture's log has a SetNodeLbAddrs");
    assert!(!lb.node_id.is_empty() && !lb.network_id.is_empty());
    assert!(lb.addr.contains('/'), "a CIDR: {lb:?}");
    let st = cmds.iter().find_map(|c| match c {
        Command::TaskStatuses(v) => v.first(),
        _ => None,
    });
    let st = st.expect("the fixture's log has a TaskStatuses");
    assert!(
        !st.task_id.is_empty() && st.status.timestamp_ms > 0,
        "{st:?}"
    );
}
