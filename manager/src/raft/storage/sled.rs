//! [`Engine`] on sled 0.34: one tree for meta values, one for the log keyed by big-endian index.
//! Writes go to sled's in-memory log; [`Engine::flush`] writes it out and fsyncs it.
//!
//! `sled::Db::flush` alone is not durable on Linux: sled 0.34.7 ends it with
//! `sync_file_range(WAIT_BEFORE | WRITE | WAIT_AFTER)` (`src/pagecache/iobuf.rs`), which per
//! sync_file_range(2) flushes neither the file's metadata (its size, as the log grows) nor the
//! disk's write cache: "there are no guarantees that the data will be available after a crash".
//! So `flush` also calls `fdatasync` on sled's log file (`<dir>/db`) through a handle of our own;
//! fsync applies to the file, whichever descriptor it is called on.

use super::engine::{index_key, key_index, Engine, EngineError, RawEntry};
use std::fs::File;
use std::ops::RangeInclusive;
use std::path::{Path, PathBuf};

const ENGINE: &str = "sled";

fn err(op: &'static str) -> impl FnOnce(sled::Error) -> EngineError {
    move |source| EngineError::Sled { op, source }
}

/// A sled database holding the raft log.
pub struct SledEngine {
    db: sled::Db,
    meta: sled::Tree,
    log: sled::Tree,
    /// sled's log file, opened only to fsync it.
    file: File,
    path: PathBuf,
}

impl SledEngine {
    /// Opens (or creates) the database in directory `dir`.
    pub fn open(dir: &Path) -> Result<SledEngine, EngineError> {
        let db = sled::Config::new().path(dir).open().map_err(err("open"))?;
        let meta = db.open_tree("meta").map_err(err("open tree meta"))?;
        let log = db.open_tree("log").map_err(err("open tree log"))?;
        // sled's data file; see the module doc.
        let path = dir.join("db");
        let file = File::open(&path).map_err(|source| EngineError::Sync {
            path: path.clone(),
            source,
        })?;
        Ok(SledEngine {
            db,
            meta,
            log,
            file,
            path,
        })
    }
}

impl Engine for SledEngine {
    fn name(&self) -> &'static str {
        ENGINE
    }

    fn get_meta(&self, key: &str) -> Result<Option<Vec<u8>>, EngineError> {
        Ok(self
            .meta
            .get(key)
            .map_err(err("get meta"))?
            .map(|v| v.to_vec()))
    }

    fn put_meta(&self, key: &str, value: &[u8]) -> Result<(), EngineError> {
        self.meta.insert(key, value).map_err(err("put meta"))?;
        Ok(())
    }

    fn append(&self, entries: &[RawEntry]) -> Result<(), EngineError> {
        let mut batch = sled::Batch::default();
        for (index, value) in entries {
            batch.insert(&index_key(*index), value.as_slice());
        }
        self.log.apply_batch(batch).map_err(err("append"))
    }

    fn range(&self, range: RangeInclusive<u64>) -> Result<Vec<RawEntry>, EngineError> {
        if range.is_empty() {
            return Ok(Vec::new());
        }
        self.log
            .range(index_key(*range.start())..=index_key(*range.end()))
            .map(|kv| {
                let (k, v) = kv.map_err(err("read log range"))?;
                Ok((key_index(ENGINE, &k)?, v.to_vec()))
            })
            .collect()
    }

    fn last(&self) -> Result<Option<RawEntry>, EngineError> {
        match self.log.last().map_err(err("read last log entry"))? {
            Some((k, v)) => Ok(Some((key_index(ENGINE, &k)?, v.to_vec()))),
            None => Ok(None),
        }
    }

    fn delete_range(&self, range: RangeInclusive<u64>) -> Result<(), EngineError> {
        if range.is_empty() {
            return Ok(());
        }
        // sled has no range delete: collect the keys and remove them in one atomic batch.
        let mut batch = sled::Batch::default();
        for k in self
            .log
            .range(index_key(*range.start())..=index_key(*range.end()))
            .keys()
        {
            batch.remove(k.map_err(err("scan log for delete"))?);
        }
        self.log.apply_batch(batch).map_err(err("delete log range"))
    }

    fn flush(&self) -> Result<(), EngineError> {
        self.db.flush().map_err(err("flush"))?;
        self.file.sync_data().map_err(|source| EngineError::Sync {
            path: self.path.clone(),
            source,
        })
    }
}
