//! Raft storage benchmark: sled vs redb, in one process, on the same disk.
//!
//! For each engine:
//! * durable append latency: one entry per `append`, timed until the flush callback fired;
//! * disk growth: 100k small entries appended (in batches of 100, as openraft batches under
//!   load), then the first 90k purged; disk usage (allocated blocks, like `du`) of the engine's
//!   directory after each step;
//! * restart: drop everything, then time `open` plus the log state openraft reads at startup.
//!
//! Run: `cargo bench -p shoal-manager --bench storage`. `SHOAL_BENCH_DIR` picks the directory
//! (default: the system temp dir); it must be on a real disk for the fsync numbers to mean
//! anything.

use openraft::storage::{RaftLogStorage, RaftLogStorageExt};
use openraft::{CommittedLeaderId, Entry, EntryPayload, LogId, Vote};
use shoal_manager::raft::storage::{open, EngineKind};
use shoal_manager::raft::TypeConfig;
use shoal_manager::store::Store;
use shoal_proto::model::{Command, NodeState, NodeStateChange};
use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::time::{Duration, Instant};

const LATENCY_APPENDS: u64 = 2_000;
const GROWTH_ENTRIES: u64 = 100_000;
/// Entries per append in the growth phase; `SHOAL_BENCH_BATCH` overrides it.
const GROWTH_BATCH: u64 = 100;
const PURGE_UPTO: u64 = 90_000;

type BoxError = Box<dyn std::error::Error>;

/// A small entry, like a heartbeat batch of one node (~100 bytes of JSON).
fn entry(index: u64) -> Entry<TypeConfig> {
    let cmd = Command::SetNodeStates(vec![NodeStateChange {
        node_id: format!("node-{:08}", index % 7).into(),
        state: NodeState::Ready,
        message: String::new(),
    }]);
    Entry {
        log_id: LogId::new(CommittedLeaderId::new(1, 1), index),
        payload: EntryPayload::Normal(cmd),
    }
}

/// Allocated bytes under `path`, as `du` counts them.
fn disk_usage(path: &Path) -> std::io::Result<u64> {
    let meta = std::fs::symlink_metadata(path)?;
    let mut total = meta.blocks() * 512;
    if meta.is_dir() {
        for child in std::fs::read_dir(path)? {
            total += disk_usage(&child?.path())?;
        }
    }
    Ok(total)
}

#[derive(Debug, Default)]
struct Results {
    p50: Duration,
    p99: Duration,
    max: Duration,
    disk_full: u64,
    disk_purged: u64,
    disk_reopened: u64,
    reopen: Duration,
    total: Duration,
}

async fn run(kind: EngineKind, root: &Path, batch: u64) -> Result<Results, BoxError> {
    let started = Instant::now();
    let dir = tempfile::Builder::new()
        .prefix(&format!("shoal-bench-{kind}-"))
        .tempdir_in(root)?;
    let engine_dir = kind.dir(dir.path());
    let mut r = Results::default();
    {
        let (mut log, _sm) = open(kind, dir.path(), Store::default()).await?;
        log.save_vote(&Vote::new_committed(1, 1)).await?;

        let mut lat = Vec::with_capacity(LATENCY_APPENDS as usize);
        for i in 1..=LATENCY_APPENDS {
            let t = Instant::now();
            log.blocking_append([entry(i)]).await?;
            lat.push(t.elapsed());
        }
        lat.sort();
        r.p50 = lat[lat.len() / 2];
        r.p99 = lat[lat.len() * 99 / 100];
        r.max = lat[lat.len() - 1];

        let mut next = LATENCY_APPENDS + 1;
        while next <= GROWTH_ENTRIES {
            let end = (next + batch - 1).min(GROWTH_ENTRIES);
            log.blocking_append((next..=end).map(entry)).await?;
            next = end + 1;
        }
        r.disk_full = disk_usage(&engine_dir)?;
        log.purge(LogId::new(CommittedLeaderId::new(1, 1), PURGE_UPTO))
            .await?;
        r.disk_purged = disk_usage(&engine_dir)?;
    }

    let t = Instant::now();
    let (mut log, _sm) = open(kind, dir.path(), Store::default()).await?;
    let state = log.get_log_state().await?;
    log.read_vote().await?;
    r.reopen = t.elapsed();
    let last = state.last_log_id.map(|l| l.index);
    if last != Some(GROWTH_ENTRIES) || state.last_purged_log_id.map(|l| l.index) != Some(PURGE_UPTO)
    {
        return Err(format!("{kind}: wrong log state after reopen: {state:?}").into());
    }
    r.disk_reopened = disk_usage(&engine_dir)?;
    r.total = started.elapsed();
    Ok(r)
}

fn ms(d: Duration) -> String {
    format!("{:.3} ms", d.as_secs_f64() * 1e3)
}

fn mib(bytes: u64) -> String {
    format!("{:.1} MiB", bytes as f64 / (1024.0 * 1024.0))
}

fn ratio(redb: f64, sled: f64) -> String {
    match redb / sled {
        x if !x.is_finite() => "n/a".into(),
        x if x < 0.1 => format!("{x:.4}"),
        x => format!("{x:.2}"),
    }
}

fn main() -> Result<(), BoxError> {
    // `cargo bench` passes `--bench`; with harness = false the flags are ours to ignore.
    let root = std::env::var_os("SHOAL_BENCH_DIR")
        .map(Into::into)
        .unwrap_or_else(std::env::temp_dir);
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let batch = match std::env::var("SHOAL_BENCH_BATCH") {
        Ok(b) => b
            .parse::<u64>()
            .ok()
            .filter(|b| *b > 0)
            .ok_or("SHOAL_BENCH_BATCH must be a positive integer")?,
        Err(_) => GROWTH_BATCH,
    };
    let sled = rt.block_on(run(EngineKind::Sled, &root, batch))?;
    let redb = rt.block_on(run(EngineKind::Redb, &root, batch))?;

    let secs = |d: Duration| d.as_secs_f64();
    let rows: [(&str, String, String, String); 8] = [
        (
            "durable append p50 (1 entry)",
            ms(sled.p50),
            ms(redb.p50),
            ratio(secs(redb.p50), secs(sled.p50)),
        ),
        (
            "durable append p99 (1 entry)",
            ms(sled.p99),
            ms(redb.p99),
            ratio(secs(redb.p99), secs(sled.p99)),
        ),
        (
            "durable append max (1 entry)",
            ms(sled.max),
            ms(redb.max),
            ratio(secs(redb.max), secs(sled.max)),
        ),
        (
            "disk after 100k appends",
            mib(sled.disk_full),
            mib(redb.disk_full),
            ratio(redb.disk_full as f64, sled.disk_full as f64),
        ),
        (
            "disk after purging first 90k",
            mib(sled.disk_purged),
            mib(redb.disk_purged),
            ratio(redb.disk_purged as f64, sled.disk_purged as f64),
        ),
        (
            "disk after reopen",
            mib(sled.disk_reopened),
            mib(redb.disk_reopened),
            ratio(redb.disk_reopened as f64, sled.disk_reopened as f64),
        ),
        (
            "reopen (open + log state)",
            ms(sled.reopen),
            ms(redb.reopen),
            ratio(secs(redb.reopen), secs(sled.reopen)),
        ),
        (
            "whole run for the engine",
            format!("{:.1} s", secs(sled.total)),
            format!("{:.1} s", secs(redb.total)),
            ratio(secs(redb.total), secs(sled.total)),
        ),
    ];
    println!(
        "raft storage: {LATENCY_APPENDS} single-entry durable appends; {GROWTH_ENTRIES} entries \
         (batches of {batch}), purge up to {PURGE_UPTO}; dir {}\n",
        root.display()
    );
    println!("| metric | sled | redb | redb/sled |");
    println!("|---|---:|---:|---:|");
    for (metric, s, r, x) in rows {
        println!("| {metric} | {s} | {r} | {x} |");
    }
    Ok(())
}
