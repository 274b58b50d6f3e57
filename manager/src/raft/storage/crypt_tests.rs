//! Encryption at rest: the record cipher, the key file, migration of plaintext stores, and what
//! reaches the disk.

use super::crypt::{is_sealed, Cipher, CryptError, Key};
use super::keys::{KeyError, RaftKeys};
use super::*;
use crate::raft::TypeConfig;
use openraft::storage::{RaftLogStorage, RaftLogStorageExt, RaftStateMachine};
use openraft::{
    CommittedLeaderId, Entry, EntryPayload, LogId, RaftLogReader, RaftSnapshotBuilder, Vote,
};
use shoal_proto::model::{Command, Node};
use std::os::unix::fs::PermissionsExt;
use std::time::{Duration, Instant};
use tempfile::TempDir;

const MARKER: &str = "MARKER-d41f9c-not-on-disk";

fn cipher() -> Cipher {
    Cipher::new(&Key::generate())
}

#[test]
fn seal_then_open_round_trips_with_a_fresh_nonce_each_time() {
    let c = cipher();
    let a = c.seal(b"aad", b"hello").unwrap();
    let b = c.seal(b"aad", b"hello").unwrap();
    assert!(is_sealed(&a));
    assert_ne!(
        a, b,
        "two seals of the same plaintext must differ (random nonce)"
    );
    assert_eq!(c.open(b"aad", &a).unwrap(), b"hello");
    assert_eq!(c.open(b"aad", &b).unwrap(), b"hello");
    assert_eq!(c.open(b"", &c.seal(b"", b"").unwrap()).unwrap(), b"");
}

#[test]
fn any_change_to_a_record_is_a_typed_error_never_a_panic() {
    let c = cipher();
    let rec = c.seal(b"log/1", b"some raft entry").unwrap();
    // Every bit flipped after the marker: nonce, ciphertext, tag.
    for i in 4..rec.len() {
        let mut bad = rec.clone();
        bad[i] ^= 0x01;
        assert_eq!(
            c.open(b"log/1", &bad),
            Err(CryptError::Tampered),
            "byte {i}"
        );
    }
    // Moved to another index, or another key.
    assert_eq!(c.open(b"log/2", &rec), Err(CryptError::Tampered));
    assert_eq!(cipher().open(b"log/1", &rec), Err(CryptError::Tampered));
    // Every truncation.
    for len in 0..rec.len() {
        assert!(c.open(b"log/1", &rec[..len]).is_err(), "length {len}");
    }
    assert_eq!(
        c.open(b"log/1", &rec[..20]),
        Err(CryptError::Truncated { len: 20 })
    );
    let mut newer = rec.clone();
    newer[3] = 9;
    assert_eq!(c.open(b"log/1", &newer), Err(CryptError::UnknownFormat(9)));
    assert_eq!(c.open(b"log/1", b"{\"json\":1}"), Err(CryptError::Unsealed));
    assert!(CryptError::Tampered.to_string().contains("corrupt"));
}

#[test]
fn plaintext_records_are_told_apart_from_sealed_ones() {
    // Plaintext log entries and meta values are JSON; a plaintext snapshot starts with a u32
    // big-endian length.
    for plain in [&b"{\"log_id\":1}"[..], b"null", b"[1]", &[0, 0, 1, 2, b'{']] {
        assert!(!is_sealed(plain));
    }
    assert!(!is_sealed(b""));
}

#[test]
fn key_material_never_appears_in_debug_output() {
    let keys = RaftKeys::generate();
    let dbg = format!("{keys:?} {:?}", keys.data_cipher());
    assert!(dbg.contains("redacted"), "{dbg}");
    let dir = TempDir::new().unwrap();
    let path = dir.path().join(keys::FILE);
    keys.save(&path).unwrap();
    let file: serde_json::Value = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
    let kek = file["kek"]["key"].as_str().unwrap();
    assert!(!dbg.contains(kek));
}

#[test]
fn key_file_is_owner_only_and_round_trips() {
    let dir = TempDir::new().unwrap();
    let path = dir.path().join(keys::FILE);
    assert!(RaftKeys::load(&path).unwrap().is_none());
    let mut keys = RaftKeys::generate();
    keys.migrated.push("redb".into());
    keys.save(&path).unwrap();
    let mode = std::fs::metadata(&path).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o600, "{mode:o}");
    let loaded = RaftKeys::load(&path).unwrap().unwrap();
    assert_eq!(loaded.migrated, ["redb"]);
    // Same data key: what one seals, the other opens.
    let rec = keys.data_cipher().seal(b"x", b"y").unwrap();
    assert_eq!(loaded.data_cipher().open(b"x", &rec).unwrap(), b"y");
}

#[test]
fn garbled_key_files_are_clear_errors() {
    let dir = TempDir::new().unwrap();
    let path = dir.path().join(keys::FILE);
    RaftKeys::generate().save(&path).unwrap();
    let good: serde_json::Value = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();

    std::fs::write(&path, b"not json").unwrap();
    let e = RaftKeys::load(&path).unwrap_err();
    assert!(matches!(e, KeyError::Garbled { .. }), "{e:?}");
    assert!(e.to_string().contains("garbled"), "{e}");

    let mut v = good.clone();
    v["kek"]["key"] = "!!!".into();
    std::fs::write(&path, v.to_string()).unwrap();
    let e = RaftKeys::load(&path).unwrap_err();
    assert!(e.to_string().contains("kek.key"), "{e}");

    let mut v = good.clone();
    v["kek"]["key"] = serde_json::Value::from(base64::Engine::encode(
        &base64::engine::general_purpose::STANDARD,
        [7u8; 32],
    ));
    std::fs::write(&path, v.to_string()).unwrap();
    let e = RaftKeys::load(&path).unwrap_err();
    assert!(matches!(e, KeyError::Unwrap { .. }), "{e:?}");

    let mut v = good.clone();
    v["format"] = 2.into();
    std::fs::write(&path, v.to_string()).unwrap();
    let e = RaftKeys::load(&path).unwrap_err();
    assert!(
        matches!(e, KeyError::UnknownFormat { found: 2, .. }),
        "{e:?}"
    );

    let mut v = good;
    v["kek"] = serde_json::json!({"location": "unlock_key"});
    std::fs::write(&path, v.to_string()).unwrap();
    let e = RaftKeys::load(&path).unwrap_err();
    assert!(matches!(e, KeyError::Locked { .. }), "{e:?}");
}

/// Retries `f` while sled still holds the lock of a handle this process just dropped (see
/// `tests::reopen`), for at most 5 s.
async fn retry<T, E: std::fmt::Debug>(mut f: impl FnMut() -> Result<T, E>) -> Result<T, E> {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        match f() {
            Err(e) if format!("{e:?}").contains("acquire lock") && Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            r => return r,
        }
    }
}

fn log_id(index: u64) -> LogId<NodeId> {
    LogId::new(CommittedLeaderId::new(1, 1), index)
}

/// Entries 1..=n creating nodes whose hostname is [`MARKER`].
fn marked_entries(n: u64) -> Vec<Entry<TypeConfig>> {
    (1..=n)
        .map(|i| Entry {
            log_id: log_id(i),
            payload: EntryPayload::Normal(Command::PutNode(Node {
                id: format!("node-{i}").into(),
                hostname: format!("{MARKER}-{i}"),
                ..Default::default()
            })),
        })
        .collect()
}

/// Writes marked entries, applies them, snapshots at 5 and keeps 6..=8 in the log.
async fn write_marked(engine: Arc<dyn Engine>) {
    let mut log = LogStore::new(engine.clone());
    let mut sm = StateMachine::open(engine, Store::default()).unwrap();
    log.save_vote(&Vote::new_committed(1, 1)).await.unwrap();
    log.blocking_append(marked_entries(8)).await.unwrap();
    sm.apply(marked_entries(5)).await.unwrap();
    sm.get_snapshot_builder()
        .await
        .build_snapshot()
        .await
        .unwrap();
    log.purge(log_id(3)).await.unwrap();
    log.save_committed(Some(log_id(5))).await.unwrap();
}

/// Whether any file under `dir` contains `needle`.
fn found_on_disk(dir: &Path, needle: &[u8]) -> bool {
    std::fs::read_dir(dir).unwrap().any(|e| {
        let p = e.unwrap().path();
        if p.is_dir() {
            found_on_disk(&p, needle)
        } else {
            let bytes = std::fs::read(&p).unwrap();
            bytes.windows(needle.len()).any(|w| w == needle)
        }
    })
}

async fn marker_is_on_disk_only_without_encryption(kind: EngineKind) {
    // Without encryption (the raw engine): the marker is in the files, so the search works.
    let plain = TempDir::new().unwrap();
    write_marked(open_engine(kind, plain.path()).unwrap()).await;
    assert!(
        found_on_disk(plain.path(), MARKER.as_bytes()),
        "{kind}: the search must find the marker in a plaintext store"
    );

    let sealed = TempDir::new().unwrap();
    write_marked(open_encrypted(kind, sealed.path()).unwrap()).await;
    assert!(
        !found_on_disk(sealed.path(), MARKER.as_bytes()),
        "{kind}: the marker is on disk in an encrypted store"
    );
    // And it all reads back after a restart.
    let store = Store::default();
    let (mut log, _sm) = retry(|| {
        futures_util::FutureExt::now_or_never(open(kind, sealed.path(), store.clone()))
            .expect("open does not wait")
    })
    .await
    .unwrap();
    assert_eq!(store.read().nodes.len(), 5);
    assert_eq!(log.try_get_log_entries(..).await.unwrap().len(), 5);
    assert_eq!(
        log.read_vote().await.unwrap(),
        Some(Vote::new_committed(1, 1))
    );
}

#[tokio::test]
async fn sled_marker_is_on_disk_only_without_encryption() {
    marker_is_on_disk_only_without_encryption(EngineKind::Sled).await;
}

#[tokio::test]
async fn redb_marker_is_on_disk_only_without_encryption() {
    marker_is_on_disk_only_without_encryption(EngineKind::Redb).await;
}

/// A store written in plaintext (by a Shoal without encryption) opens, every record is sealed
/// and the plaintext is gone from the disk, and a plaintext record planted afterwards is
/// refused.
async fn plaintext_store_is_migrated(kind: EngineKind) {
    let dir = TempDir::new().unwrap();
    write_marked(open_engine(kind, dir.path()).unwrap()).await;
    assert!(!dir.path().join(keys::FILE).exists());

    let store = Store::default();
    let (mut log, sm) = retry(|| {
        futures_util::FutureExt::now_or_never(open(kind, dir.path(), store.clone())).unwrap()
    })
    .await
    .unwrap();
    assert_eq!(store.read().nodes.len(), 5, "snapshot restored");
    assert_eq!(log.try_get_log_entries(..).await.unwrap().len(), 5);
    assert_eq!(log.read_committed().await.unwrap(), Some(log_id(5)));
    drop((log, sm));

    let keys = RaftKeys::load(&dir.path().join(keys::FILE))
        .unwrap()
        .unwrap();
    assert_eq!(keys.migrated, [kind.as_str()]);
    assert!(
        !found_on_disk(dir.path(), MARKER.as_bytes()),
        "{kind}: plaintext left on disk after migration"
    );
    let raw = retry(|| open_engine(kind, dir.path())).await.unwrap();
    for key in META_KEYS {
        assert!(is_sealed(&raw.get_meta(key).unwrap().unwrap()), "{key}");
    }
    let entries = raw.range(0..=u64::MAX).unwrap();
    assert_eq!(entries.len(), 5);
    assert!(entries.iter().all(|(_, v)| is_sealed(v)));

    // Plant a plaintext entry: refused with a clear error, not read.
    let plain = serde_json::to_vec(&marked_entries(9)[8]).unwrap();
    raw.append(&[(9, plain)]).unwrap();
    raw.flush().unwrap();
    drop(raw);
    let (mut log, _sm) = retry(|| {
        futures_util::FutureExt::now_or_never(open(kind, dir.path(), Store::default())).unwrap()
    })
    .await
    .unwrap();
    let err = log.get_log_state().await.unwrap_err().to_string();
    assert!(err.contains("unencrypted record"), "{err}");
}

#[tokio::test]
async fn sled_plaintext_store_is_migrated() {
    plaintext_store_is_migrated(EngineKind::Sled).await;
}

#[tokio::test]
async fn redb_plaintext_store_is_migrated() {
    plaintext_store_is_migrated(EngineKind::Redb).await;
}

#[tokio::test]
async fn lost_or_garbled_key_file_is_a_clear_open_error() {
    let dir = TempDir::new().unwrap();
    write_marked(open_encrypted(EngineKind::Redb, dir.path()).unwrap()).await;
    let key_path = dir.path().join(keys::FILE);
    let saved = std::fs::read(&key_path).unwrap();

    std::fs::remove_file(&key_path).unwrap();
    let err = open(EngineKind::Redb, dir.path(), Store::default())
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains("key file was missing"), "{err}");
    assert!(
        !key_path.exists(),
        "no new key file over data it cannot open"
    );

    std::fs::write(&key_path, &saved[..saved.len() / 2]).unwrap();
    let err = open(EngineKind::Redb, dir.path(), Store::default())
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains("garbled"), "{err}");

    std::fs::write(&key_path, &saved).unwrap();
    open(EngineKind::Redb, dir.path(), Store::default())
        .await
        .unwrap();
}

/// Another manager's key file: the records fail authentication, reported as such.
#[tokio::test]
async fn a_foreign_key_file_fails_authentication() {
    let dir = TempDir::new().unwrap();
    write_marked(open_encrypted(EngineKind::Redb, dir.path()).unwrap()).await;
    let mut other = RaftKeys::generate();
    other.migrated.push("redb".into());
    other.save(&dir.path().join(keys::FILE)).unwrap();
    let err = open(EngineKind::Redb, dir.path(), Store::default())
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains("failed authentication"), "{err}");
}

/// A crash between the two renames of a migration: the sealed copy is put in place on open.
#[tokio::test]
async fn a_migration_interrupted_between_renames_is_finished_on_open() {
    let kind = EngineKind::Redb;
    let dir = TempDir::new().unwrap();
    write_marked(open_engine(kind, dir.path()).unwrap()).await;
    drop(open(kind, dir.path(), Store::default()).await.unwrap());
    // As if the crash came after `redb` → `redb.plaintext` and before `redb.sealing` → `redb`,
    // with the key file not yet saying migrated.
    std::fs::rename(kind.dir(dir.path()), dir.path().join("redb.sealing")).unwrap();
    std::fs::create_dir(dir.path().join("redb.plaintext")).unwrap();
    let path = dir.path().join(keys::FILE);
    let mut keys = RaftKeys::load(&path).unwrap().unwrap();
    keys.migrated.clear();
    keys.save(&path).unwrap();

    let store = Store::default();
    let _pair = open(kind, dir.path(), store.clone()).await.unwrap();
    assert_eq!(store.read().nodes.len(), 5);
    assert!(!dir.path().join("redb.sealing").exists());
    assert!(!dir.path().join("redb.plaintext").exists());
}

/// An unfinished copy (crash during step 1) is discarded; the plaintext store is migrated again.
#[tokio::test]
async fn an_unfinished_sealed_copy_is_discarded() {
    let kind = EngineKind::Redb;
    let dir = TempDir::new().unwrap();
    write_marked(open_engine(kind, dir.path()).unwrap()).await;
    std::fs::create_dir(dir.path().join("redb.sealing")).unwrap();
    std::fs::write(dir.path().join("redb.sealing").join("raft.redb"), b"half").unwrap();
    let store = Store::default();
    let _pair = open(kind, dir.path(), store.clone()).await.unwrap();
    assert_eq!(store.read().nodes.len(), 5);
    assert!(!dir.path().join("redb.sealing").exists());
    assert!(!found_on_disk(dir.path(), MARKER.as_bytes()));
}
