//! [`Engine`] on redb 4: two tables in one file, every write its own transaction.
//!
//! Appends and meta writes commit with [`Durability::None`] (no fsync): the log store's flusher
//! makes a whole batch of them durable with one durable commit, which [`Engine::flush`] issues
//! if none has happened since (group commit, see `log_store.rs`). `delete_range` commits with
//! [`Durability::Immediate`] (truncate and purge are rare and flushed at once anyway). redb
//! persists commits in order, so a durable commit also persists every non-durable one before
//! it.
//!
//! Log keys use redb's native `u64` key type, which redb orders numerically (the big-endian
//! trick the sled engine needs is built in).

use super::engine::{Engine, EngineError, RawEntry};
use redb::{Durability, ReadableDatabase, ReadableTable, TableDefinition};
use std::ops::RangeInclusive;
use std::path::Path;
use std::sync::{Mutex, MutexGuard};

const META: TableDefinition<&str, &[u8]> = TableDefinition::new("meta");
const LOG: TableDefinition<u64, &[u8]> = TableDefinition::new("log");

fn err<E: Into<redb::Error>>(op: &'static str) -> impl FnOnce(E) -> EngineError {
    move |e| EngineError::Redb {
        op,
        source: e.into(),
    }
}

/// A redb database file holding the raft log.
pub struct RedbEngine {
    db: redb::Database,
    /// Whether a non-durable commit has happened since the last durable one. Held across each
    /// write transaction so that the flag and the commit order agree.
    unflushed: Mutex<bool>,
}

impl RedbEngine {
    /// Opens (or creates) the database file `path` and its tables.
    pub fn open(path: &Path) -> Result<RedbEngine, EngineError> {
        let db = redb::Database::create(path).map_err(err("open"))?;
        let engine = RedbEngine {
            db,
            unflushed: Mutex::new(false),
        };
        // Create both tables up front so that readers never meet a missing table.
        engine.write("create tables", Durability::Immediate, |txn| {
            txn.open_table(META)?;
            txn.open_table(LOG)?;
            Ok(())
        })?;
        Ok(engine)
    }

    fn unflushed(&self) -> MutexGuard<'_, bool> {
        self.unflushed.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Runs `f` in a write transaction and commits it with `durability`.
    fn write(
        &self,
        op: &'static str,
        durability: Durability,
        f: impl FnOnce(&redb::WriteTransaction) -> Result<(), redb::Error>,
    ) -> Result<(), EngineError> {
        let mut unflushed = self.unflushed();
        let mut txn = self.db.begin_write().map_err(err(op))?;
        let durable = matches!(durability, Durability::Immediate);
        txn.set_durability(durability).map_err(err(op))?;
        f(&txn).map_err(err(op))?;
        txn.commit().map_err(err(op))?;
        *unflushed = !durable;
        Ok(())
    }
}

impl Engine for RedbEngine {
    fn name(&self) -> &'static str {
        "redb"
    }

    fn get_meta(&self, key: &str) -> Result<Option<Vec<u8>>, EngineError> {
        const OP: &str = "get meta";
        let txn = self.db.begin_read().map_err(err(OP))?;
        let table = txn.open_table(META).map_err(err(OP))?;
        let value = table.get(key).map_err(err(OP))?;
        Ok(value.map(|v| v.value().to_vec()))
    }

    fn put_meta(&self, key: &str, value: &[u8]) -> Result<(), EngineError> {
        self.write("put meta", Durability::None, |txn| {
            txn.open_table(META)?.insert(key, value)?;
            Ok(())
        })
    }

    fn append(&self, entries: &[RawEntry]) -> Result<(), EngineError> {
        self.write("append", Durability::None, |txn| {
            let mut table = txn.open_table(LOG)?;
            for (index, value) in entries {
                table.insert(*index, value.as_slice())?;
            }
            Ok(())
        })
    }

    fn range(&self, range: RangeInclusive<u64>) -> Result<Vec<RawEntry>, EngineError> {
        const OP: &str = "read log range";
        if range.is_empty() {
            return Ok(Vec::new());
        }
        let txn = self.db.begin_read().map_err(err(OP))?;
        let table = txn.open_table(LOG).map_err(err(OP))?;
        let iter = table.range(range).map_err(err(OP))?;
        iter.map(|kv| {
            let (k, v) = kv.map_err(err(OP))?;
            Ok((k.value(), v.value().to_vec()))
        })
        .collect()
    }

    fn last(&self) -> Result<Option<RawEntry>, EngineError> {
        const OP: &str = "read last log entry";
        let txn = self.db.begin_read().map_err(err(OP))?;
        let table = txn.open_table(LOG).map_err(err(OP))?;
        let last = table.last().map_err(err(OP))?;
        Ok(last.map(|(k, v)| (k.value(), v.value().to_vec())))
    }

    fn delete_range(&self, range: RangeInclusive<u64>) -> Result<(), EngineError> {
        if range.is_empty() {
            return Ok(());
        }
        self.write("delete log range", Durability::Immediate, |txn| {
            txn.open_table(LOG)?.retain_in(range, |_, _| false)?;
            Ok(())
        })
    }

    fn flush(&self) -> Result<(), EngineError> {
        if *self.unflushed() {
            self.write("flush", Durability::Immediate, |_| Ok(()))?;
        }
        Ok(())
    }

    fn put_meta_and_flush(&self, key: &str, value: &[u8]) -> Result<(), EngineError> {
        self.write("put meta and flush", Durability::Immediate, |txn| {
            txn.open_table(META)?.insert(key, value)?;
            Ok(())
        })
    }
}
