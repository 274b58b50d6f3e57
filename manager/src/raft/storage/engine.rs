//! The one interface the raft storage needs from a disk engine: a durable, ordered key-value store
//! with two namespaces, small named "meta" values (vote, committed, last purged, snapshot) and
//! log entries keyed by index.
//!
//! Contract shared by every implementation:
//! * a write is visible to reads as soon as its method returns;
//! * it is durable (survives a crash) once a later [`Engine::flush`] returns;
//! * each method is atomic: a crash never leaves half of an `append` or `delete_range`;
//! * writes reach the disk in the order they were made (a crash keeps a prefix of them).

use std::ops::RangeInclusive;
use std::path::PathBuf;

/// One log entry as the engine sees it: its index and its encoded bytes.
pub type RawEntry = (u64, Vec<u8>);

/// A durable ordered key-value store holding one raft log and its metadata.
pub trait Engine: Send + Sync + 'static {
    /// The engine's name, as accepted by [`super::EngineKind`]'s `FromStr`.
    fn name(&self) -> &'static str;

    /// The meta value stored under `key`, if any.
    fn get_meta(&self, key: &str) -> Result<Option<Vec<u8>>, EngineError>;

    /// Stores `value` under the meta key `key`, replacing any previous value.
    fn put_meta(&self, key: &str, value: &[u8]) -> Result<(), EngineError>;

    /// Writes log entries, replacing entries at the same indexes.
    fn append(&self, entries: &[RawEntry]) -> Result<(), EngineError>;

    /// The log entries whose index lies in `range`, in index order.
    fn range(&self, range: RangeInclusive<u64>) -> Result<Vec<RawEntry>, EngineError>;

    /// The log entry with the highest index, if the log is not empty.
    fn last(&self) -> Result<Option<RawEntry>, EngineError>;

    /// Deletes the log entries whose index lies in `range` (truncate: `i..=u64::MAX`; purge:
    /// `0..=i`).
    fn delete_range(&self, range: RangeInclusive<u64>) -> Result<(), EngineError>;

    /// Returns once every write made before the call is on disk.
    fn flush(&self) -> Result<(), EngineError>;

    /// [`Engine::put_meta`] then [`Engine::flush`]; an engine may do both in one disk commit.
    fn put_meta_and_flush(&self, key: &str, value: &[u8]) -> Result<(), EngineError> {
        self.put_meta(key, value)?;
        self.flush()
    }
}

/// A failure of the disk engine. Every variant names the operation that failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum EngineError {
    /// The storage directory could not be created.
    #[error(
        "cannot create storage directory {path}: {source}; check that the manager may write there"
    )]
    CreateDir {
        /// The directory.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
    /// A file or directory of the engine could not be opened or synced to disk.
    #[error("cannot sync {path} to disk: {source}; check the disk and free space")]
    Sync {
        /// The file or directory.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
    /// sled failed.
    #[error("sled {op}: {source}")]
    Sled {
        /// What was being done.
        op: &'static str,
        /// sled's error.
        source: sled::Error,
    },
    /// redb failed.
    #[error("redb {op}: {source}")]
    Redb {
        /// What was being done.
        op: &'static str,
        /// redb's error.
        source: redb::Error,
    },
    /// A record could not be sealed or opened (see [`super::crypt`]).
    #[error("{at}: {source}")]
    Crypt {
        /// Which record: `log entry N` or `meta value "key"`.
        at: String,
        /// What failed.
        source: super::crypt::CryptError,
    },
    /// The raft data is encrypted but its key file was missing, so a new key was made that
    /// cannot open it.
    #[error(
        "{engine}: the raft data is encrypted but its key file was missing; restore the key \
         file (raft/keys.json) from a backup of this manager's state dir, or remove the raft \
         directory and rejoin the cluster"
    )]
    KeyLost {
        /// The engine's name.
        engine: &'static str,
    },
    /// A log key was not an 8-byte big-endian index: the database was not written by Shoal.
    #[error("{engine}: log key of {len} bytes, expected 8; the raft directory is corrupt")]
    BadKey {
        /// The engine's name.
        engine: &'static str,
        /// Length of the key found.
        len: usize,
    },
}

/// Encodes a log index so that byte order is index order.
pub(crate) fn index_key(index: u64) -> [u8; 8] {
    index.to_be_bytes()
}

/// Decodes a key written by [`index_key`].
pub(crate) fn key_index(engine: &'static str, key: &[u8]) -> Result<u64, EngineError> {
    let bytes: [u8; 8] = key.try_into().map_err(|_| EngineError::BadKey {
        engine,
        len: key.len(),
    })?;
    Ok(u64::from_be_bytes(bytes))
}
