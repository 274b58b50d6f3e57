//! Raft storage: the log ([`LogStore`]) and the state machine ([`StateMachine`]) over a small
//! disk-engine interface ([`Engine`]) with two implementations, sled and redb. Both pass
//! openraft's storage test suite; `benches/storage.rs` compares them.
//!
//! Layout: one directory per engine under the raft directory (`<dir>/sled/`, `<dir>/redb/`),
//! so switching engines never misreads the other's files, and the key file `<dir>/keys.json`.
//!
//! Encryption at rest: every record goes through [`crypt::CryptEngine`], sealed under this
//! manager's data key ([`keys`]). A store written in plaintext by an older Shoal is copied,
//! sealed, into a new engine directory the first time it is opened ([`migrate`]); from then on
//! plaintext is refused.

pub mod crypt;
#[cfg(test)]
mod crypt_tests;
pub mod engine;
pub mod keys;
#[cfg(test)]
mod keys_tests;
mod log_store;
mod migrate;
pub mod redb;
pub mod sled;
mod state_machine;
#[cfg(test)]
mod tests;
pub mod unlock;

pub use engine::{Engine, EngineError};
pub use log_store::LogStore;
pub use state_machine::{SnapshotBuilder, StateMachine};

use crate::raft::NodeId;
use crate::store::Store;
use std::fmt;
use std::fs::File;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::sync::Arc;

/// Which disk engine holds the raft log and snapshot.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
#[non_exhaustive]
pub enum EngineKind {
    /// sled 0.34.
    Sled,
    /// redb 4, the default: in `benches/storage.rs` its durable appends are as fast as sled's
    /// (faster once sled is made really durable, see `sled.rs`), its file does not grow when
    /// the log is purged (sled's grows by half), and it reopens in under a millisecond (sled:
    /// ~100 ms).
    #[default]
    Redb,
}

impl EngineKind {
    /// Every engine, in a stable order.
    pub const ALL: [EngineKind; 2] = [EngineKind::Sled, EngineKind::Redb];

    /// The name used on the command line and as the directory name.
    pub fn as_str(self) -> &'static str {
        match self {
            EngineKind::Sled => "sled",
            EngineKind::Redb => "redb",
        }
    }

    /// The engine's directory under the raft directory `dir`.
    pub fn dir(self, dir: &Path) -> PathBuf {
        dir.join(self.as_str())
    }
}

impl fmt::Display for EngineKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A storage engine name that is neither `sled` nor `redb`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown raft storage engine {0:?}: use \"sled\" or \"redb\"")]
pub struct UnknownEngine(pub String);

impl FromStr for EngineKind {
    type Err = UnknownEngine;

    fn from_str(s: &str) -> Result<EngineKind, UnknownEngine> {
        match s {
            "sled" => Ok(EngineKind::Sled),
            "redb" => Ok(EngineKind::Redb),
            other => Err(UnknownEngine(other.to_string())),
        }
    }
}

/// Opening the raft storage failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum OpenError {
    /// The engine could not open its files.
    #[error("opening the {kind} raft storage in {dir}: {source}")]
    Engine {
        /// The engine.
        kind: EngineKind,
        /// The engine's directory.
        dir: PathBuf,
        /// What failed.
        source: EngineError,
    },
    /// The raft key file could not be read or written.
    #[error(transparent)]
    Keys(#[from] keys::KeyError),
    /// Migrating a plaintext store into a sealed copy failed on a file operation.
    #[error("migrating the raft storage to encryption at rest: {path}: {source}")]
    Migrate {
        /// The file or directory.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
    /// The stored snapshot could not be restored.
    #[error("restoring the raft snapshot from {dir}: {source}")]
    Snapshot {
        /// The engine's directory.
        dir: PathBuf,
        /// What failed.
        source: openraft::StorageError<NodeId>,
    },
}

/// Opens the engine `kind` in its own directory under `dir`, creating it if needed.
pub fn open_engine(kind: EngineKind, dir: &Path) -> Result<Arc<dyn Engine>, OpenError> {
    open_engine_at(kind, &kind.dir(dir))
}

/// Opens the engine `kind` in the directory `dir` itself, creating it if needed.
fn open_engine_at(kind: EngineKind, dir: &Path) -> Result<Arc<dyn Engine>, OpenError> {
    let dir = dir.to_path_buf();
    let engine_err = |source| OpenError::Engine {
        kind,
        dir: dir.clone(),
        source,
    };
    std::fs::create_dir_all(&dir).map_err(|source| {
        engine_err(EngineError::CreateDir {
            path: dir.clone(),
            source,
        })
    })?;
    let engine: Arc<dyn Engine> = match kind {
        EngineKind::Sled => Arc::new(sled::SledEngine::open(&dir).map_err(engine_err)?),
        EngineKind::Redb => {
            Arc::new(redb::RedbEngine::open(&dir.join("raft.redb")).map_err(engine_err)?)
        }
    };
    // Make the new files' and directory's names durable too (fsync(2): syncing a file does not
    // sync its directory entry).
    for d in [dir.as_path(), dir.parent().unwrap_or(&dir)] {
        File::open(d).and_then(|f| f.sync_all()).map_err(|source| {
            engine_err(EngineError::Sync {
                path: d.to_path_buf(),
                source,
            })
        })?;
    }
    Ok(engine)
}

/// Opens the raft log and state machine stored under `dir` with engine `kind`. If a snapshot is
/// stored, `store`'s contents are replaced by it; openraft then re-applies the committed log
/// entries that follow it.
pub async fn open(
    kind: EngineKind,
    dir: &Path,
    store: Store,
) -> Result<(LogStore, StateMachine), OpenError> {
    let (log, sm, _) = open_with(kind, dir, store, None).await?;
    Ok((log, sm))
}

/// [`open`] for a manager that may be autolocked: `unlock` opens a key file whose KEK is an
/// unlock key's. Also returns the keys, for keeping the key file in step with the cluster's
/// autolock setting.
pub async fn open_with(
    kind: EngineKind,
    dir: &Path,
    store: Store,
    unlock: Option<&unlock::UnlockKey>,
) -> Result<(LogStore, StateMachine, keys::RaftKeys), OpenError> {
    let (engine, raft_keys) = open_encrypted_with(kind, dir, unlock)?;
    let sm = StateMachine::open(engine.clone(), store).map_err(|source| OpenError::Snapshot {
        dir: kind.dir(dir),
        source,
    })?;
    Ok((LogStore::new(engine), sm, raft_keys))
}

/// Every meta key the log and the state machine write, for migration.
const META_KEYS: [&str; 4] = [
    log_store::VOTE,
    log_store::COMMITTED,
    log_store::LAST_PURGED,
    state_machine::SNAPSHOT,
];

/// Opens the engine `kind` under `dir` behind encryption at rest: loads the key file (creating
/// it, with new keys, for a new store or one written before encryption) and, once per engine,
/// seals the plaintext records an older Shoal wrote.
pub fn open_encrypted(kind: EngineKind, dir: &Path) -> Result<Arc<dyn Engine>, OpenError> {
    Ok(open_encrypted_with(kind, dir, None)?.0)
}

/// [`open_encrypted`] with an unlock key for an autolocked key file; also returns the keys.
/// A locked key file is checked before anything under `dir` is touched.
pub fn open_encrypted_with(
    kind: EngineKind,
    dir: &Path,
    unlock: Option<&unlock::UnlockKey>,
) -> Result<(Arc<dyn Engine>, keys::RaftKeys), OpenError> {
    let key_path = dir.join(keys::FILE);
    let loaded = keys::RaftKeys::load_with(&key_path, unlock)?;
    migrate::recover(kind, dir)?;
    let mut raw = open_engine(kind, dir)?;
    let engine_err = |source| OpenError::Engine {
        kind,
        dir: kind.dir(dir),
        source,
    };
    let mut raft_keys = match loaded {
        Some(k) => k,
        None => {
            // New keys cannot open data sealed under lost ones: say so instead of failing
            // authentication on every record.
            if crypt::any_sealed(&*raw, &META_KEYS).map_err(engine_err)? {
                return Err(engine_err(EngineError::KeyLost { engine: raw.name() }));
            }
            let k = keys::RaftKeys::generate();
            k.save(&key_path)?;
            k
        }
    };
    if !raft_keys.migrated.iter().any(|m| m == kind.as_str()) {
        if crypt::any_plain(&*raw, &META_KEYS).map_err(engine_err)? {
            let sealed = migrate::copy_sealed(kind, dir, raw, raft_keys.data_cipher(), &META_KEYS)?;
            tracing::info!(
                engine = %kind,
                records = sealed,
                "sealed the raft records written before encryption at rest"
            );
            raw = migrate::reopen(kind, dir)?;
        }
        raft_keys.migrated.push(kind.as_str().to_string());
        raft_keys.save(&key_path)?;
    }
    migrate::remove_plaintext(kind, dir)?;
    let cipher = raft_keys.data_cipher();
    Ok((Arc::new(crypt::CryptEngine::new(raw, cipher)), raft_keys))
}
