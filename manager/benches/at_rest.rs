//! What encryption at rest costs the raft storage: the same [`LogStore`] and [`StateMachine`]
//! over the raw engine ([`open_engine`], plaintext) and over the sealed one ([`open_encrypted`],
//! every record XChaCha20-Poly1305), for redb and sled, in one process on the same disk.
//!
//! Measured, in rounds (plaintext and sealed interleaved, order alternating), medians reported:
//! * 1 client: one `UpdateService` entry per durable `append` (timed until openraft's flush
//!   callback fired), the entry a `service update --label-add` writes (full spec + previous
//!   spec, ~2.3 KB of JSON);
//! * 64 clients: 64 such entries per `append`, what the leader's log gets when 64 clients'
//!   proposals are pending together;
//! * snapshot: a store of 10,000 objects (2,000 services × 4 replicas = 8,000 tasks, realistic
//!   specs) built into a snapshot by openraft's builder (JSON, sealed, saved, synced), installed
//!   into a fresh state machine, and restored by opening the engine again (a restart);
//! * the AEAD alone, on one entry and on the snapshot, to tell the cipher from the disk.
//!
//! Run: `cargo bench -p shoal-manager --bench at_rest`. `SHOAL_BENCH_DIR` picks the directory
//! (default: the system temp dir; it must be on a real disk for the fsync numbers to mean
//! anything), `SHOAL_BENCH_ROUNDS` the rounds (default 11).

use openraft::storage::{RaftLogStorage, RaftLogStorageExt, RaftStateMachine};
use openraft::{CommittedLeaderId, Entry, EntryPayload, LogId, RaftSnapshotBuilder, Vote};
use shoal_manager::raft::storage::crypt::{Cipher, Key};
use shoal_manager::raft::storage::{
    open_encrypted, open_engine, Engine, EngineKind, LogStore, StateMachine,
};
use shoal_manager::raft::TypeConfig;
use shoal_manager::store::Store;
use shoal_proto::model::{
    AttachedNetwork, Command, EndpointMode, Network, NetworkAttachment, NetworkAttachmentSpec,
    NetworkDriver, RestartPolicy, Runtime, Service, ServiceMode, ServiceSpec, Task, TaskState,
    TaskStatus, UpdateConfig, VirtualIp,
};
use std::collections::BTreeMap;
use std::io::Cursor;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Single-entry appends per variant per round.
const SINGLE_APPENDS: u64 = 1_000;
/// Appends of [`BATCH`] entries per variant per round.
const BATCHES: u64 = 150;
/// Entries per append in the 64-client case.
const BATCH: u64 = 64;
const SERVICES: usize = 2_000;
const REPLICAS: usize = 4;
/// The overlay every service is attached to.
const NET: &str = "k3v9x0q2m8w1e5r7t4y6u2i0o";

type BoxError = Box<dyn std::error::Error>;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Variant {
    Plain,
    Sealed,
}

impl Variant {
    fn open(self, kind: EngineKind, dir: &Path) -> Result<Arc<dyn Engine>, BoxError> {
        Ok(match self {
            Variant::Plain => open_engine(kind, dir)?,
            Variant::Sealed => open_encrypted(kind, dir)?,
        })
    }
}

/// A realistic spec: a container service of a few replicas on an overlay, with env, labels, a
/// constraint and limits, as `swarmctl service create` stores it.
fn spec(i: usize, extra_label: Option<u64>) -> ServiceSpec {
    let mut labels: BTreeMap<String, String> = [
        ("com.example.team", "payments"),
        ("com.example.tier", "frontend"),
        ("com.example.owner", "oncall-payments@example.com"),
        ("com.example.cost-center", "cc-4711"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();
    if let Some(n) = extra_label {
        labels.insert("bench".into(), n.to_string());
    }
    ServiceSpec {
        name: format!("web-{i:05}"),
        mode: ServiceMode::Replicated {
            replicas: REPLICAS as u64,
        },
        image: "registry.example.com/payments/web:1.14.2".into(),
        image_digest: format!("sha256:{:064x}", i as u128 * 0x9e37_79b9_7f4a_7c15),
        args: vec!["--listen=:8080".into(), "--log-format=json".into()],
        env: vec![
            "RUST_LOG=info".into(),
            "DATABASE_URL=postgres://payments@db.internal:5432/payments".into(),
            "CACHE_TTL_SECONDS=300".into(),
            format!("INSTANCE_GROUP=web-{i:05}"),
            "FEATURE_FLAGS=checkout-v2,fast-refunds".into(),
        ],
        ports: vec![],
        networks: vec![NetworkAttachmentSpec {
            target: NET.into(),
            aliases: vec![format!("web-{i:05}.payments")],
        }],
        endpoint_mode: EndpointMode::Vip,
        restart: RestartPolicy::default(),
        constraints: vec!["node.labels.zone==eu-west-1a".into()],
        labels,
        stop_grace_ms: 10_000,
        limit_memory_bytes: 512 << 20,
        limit_cpus: 0.5,
        force_update: 0,
        runtime: Runtime::Container,
        entrypoint: vec![],
        user: "1000:1000".into(),
        workdir: "/srv".into(),
        tty: false,
        init: true,
        update: UpdateConfig::default(),
        rollback: UpdateConfig::default(),
        healthcheck: None,
        stop_drain_ms: None,
        secrets: vec![],
        configs: vec![],
        container_labels: Default::default(),
    }
}

fn service_id(i: usize) -> String {
    format!("svc{i:022}")
}

/// Service `i` as the store holds it after creation and allocation.
fn service(i: usize) -> Service {
    Service {
        id: service_id(i).into(),
        spec: spec(i, None),
        spec_version: 1,
        ports: vec![],
        vips: vec![VirtualIp {
            network_id: NET.into(),
            addr: format!("10.0.{}.{}/16", 8 + i / 250, 2 + i % 250),
        }],
        created_ms: 1_764_000_000_000,
        updated_ms: 1_764_000_000_000,
        version: 0,
        update_status: None,
        previous_spec: None,
    }
}

/// What `swarmctl service update --label-add bench=<n>` proposes: the whole service, its spec
/// changed, the old spec kept as the previous one.
fn update_command(n: u64) -> Command {
    let i = (n % SERVICES as u64) as usize;
    let mut s = service(i);
    s.previous_spec = Some(s.spec.clone());
    s.spec = spec(i, Some(n));
    s.version = n;
    s.updated_ms += n as i64;
    Command::UpdateService(s)
}

/// Task `r` of service `i`, running.
fn task(i: usize, r: usize) -> Task {
    Task {
        id: format!("t{i:012}{r:012}").into(),
        service_id: service_id(i).into(),
        service_name: format!("web-{i:05}"),
        slot: r as u64 + 1,
        node_id: format!("node{:021}", (i * REPLICAS + r) % 50).into(),
        spec: spec(i, None),
        spec_version: 1,
        desired_state: TaskState::Running,
        status: TaskStatus {
            state: TaskState::Running,
            message: "started".into(),
            timestamp_ms: 1_764_000_000_500,
            pid: 40_000 + r as u32,
            ..Default::default()
        },
        networks: vec![NetworkAttachment {
            network_id: NET.into(),
            addresses: vec![format!(
                "10.0.{}.{}/16",
                40 + (i * REPLICAS + r) / 250,
                2 + (i * REPLICAS + r) % 250
            )],
            aliases: vec![format!("web-{i:05}.payments")],
            network: AttachedNetwork {
                name: "payments".into(),
                subnet: "10.0.0.0/16".into(),
                gateway: "10.0.0.1".into(),
                vni: 4097,
                ..Default::default()
            },
        }],
        attempt: 0,
        created_ms: 1_764_000_000_100,
        version: 0,
    }
}

fn entry(index: u64, cmd: Command) -> Entry<TypeConfig> {
    Entry {
        log_id: LogId::new(CommittedLeaderId::new(1, 1), index),
        payload: EntryPayload::Normal(cmd),
    }
}

/// One variant's figures from one round.
#[derive(Debug, Default, Clone)]
struct Sample {
    single_rate: f64,
    single_p50: Duration,
    single_p99: Duration,
    batch_rate: f64,
    batch_p50: Duration,
    build: Duration,
    install: Duration,
    reopen: Duration,
    snapshot_bytes: usize,
}

fn percentile(sorted: &[Duration], pct: usize) -> Duration {
    sorted[(sorted.len() * pct / 100).min(sorted.len() - 1)]
}

async fn appends(
    kind: EngineKind,
    v: Variant,
    root: &Path,
    s: &mut Sample,
) -> Result<(), BoxError> {
    let dir = tempfile::Builder::new()
        .prefix(&format!("atrest-log-{kind}-"))
        .tempdir_in(root)?;
    let mut log = LogStore::new(v.open(kind, dir.path())?);
    log.save_vote(&Vote::new_committed(1, 1)).await?;
    // Entries built before the clock starts: only the storage is timed.
    let singles: Vec<_> = (1..=SINGLE_APPENDS)
        .map(|n| entry(n, update_command(n)))
        .collect();
    let mut lat = Vec::with_capacity(singles.len());
    let t0 = Instant::now();
    for e in singles {
        let t = Instant::now();
        log.blocking_append([e]).await?;
        lat.push(t.elapsed());
    }
    s.single_rate = SINGLE_APPENDS as f64 / t0.elapsed().as_secs_f64();
    lat.sort();
    s.single_p50 = percentile(&lat, 50);
    s.single_p99 = percentile(&lat, 99);

    let first = SINGLE_APPENDS + 1;
    let batches: Vec<Vec<_>> = (0..BATCHES)
        .map(|b| {
            let start = first + b * BATCH;
            (start..start + BATCH)
                .map(|n| entry(n, update_command(n)))
                .collect()
        })
        .collect();
    let mut lat = Vec::with_capacity(batches.len());
    let t0 = Instant::now();
    for b in batches {
        let t = Instant::now();
        log.blocking_append(b).await?;
        lat.push(t.elapsed());
    }
    s.batch_rate = (BATCHES * BATCH) as f64 / t0.elapsed().as_secs_f64();
    lat.sort();
    s.batch_p50 = percentile(&lat, 50);

    let last = log.get_log_state().await?.last_log_id.map(|l| l.index);
    if last != Some(SINGLE_APPENDS + BATCHES * BATCH) {
        return Err(format!("{kind} {v:?}: last log index {last:?}").into());
    }
    Ok(())
}

/// The entries that fill a store with an overlay, 2,000 services on it and their 8,000 running
/// tasks.
fn fill_entries() -> Vec<Entry<TypeConfig>> {
    let net = Network {
        id: NET.into(),
        name: "payments".into(),
        driver: NetworkDriver::Overlay,
        subnet: "10.0.0.0/16".into(),
        gateway: "10.0.0.1".into(),
        ..Default::default()
    };
    let mut entries = vec![entry(1, Command::CreateNetwork(net))];
    let mut index = 1;
    for i in 0..SERVICES {
        index += 1;
        entries.push(entry(index, Command::CreateService(service(i))));
    }
    let tasks: Vec<Task> = (0..SERVICES)
        .flat_map(|i| (0..REPLICAS).map(move |r| task(i, r)))
        .collect();
    for chunk in tasks.chunks(100) {
        index += 1;
        entries.push(entry(index, Command::PutTasks(chunk.to_vec())));
    }
    entries
}

fn check_full(store: &Store, what: &str) -> Result<(), BoxError> {
    let s = store.read();
    if s.services.len() != SERVICES || s.tasks.len() != SERVICES * REPLICAS {
        return Err(format!(
            "{what}: {} services, {} tasks after restore",
            s.services.len(),
            s.tasks.len()
        )
        .into());
    }
    Ok(())
}

async fn snapshot(
    kind: EngineKind,
    v: Variant,
    root: &Path,
    s: &mut Sample,
) -> Result<(), BoxError> {
    let src = tempfile::Builder::new()
        .prefix(&format!("atrest-snap-{kind}-"))
        .tempdir_in(root)?;
    let mut sm = StateMachine::open(v.open(kind, src.path())?, Store::default())?;
    sm.apply(fill_entries()).await?;
    check_full(sm.store(), "filled store")?;

    let mut builder = sm.get_snapshot_builder().await;
    let t = Instant::now();
    let snap = builder.build_snapshot().await?;
    s.build = t.elapsed();
    let data = snap.snapshot.into_inner();
    s.snapshot_bytes = data.len();

    let dst = tempfile::Builder::new()
        .prefix(&format!("atrest-install-{kind}-"))
        .tempdir_in(root)?;
    {
        let mut fresh = StateMachine::open(v.open(kind, dst.path())?, Store::default())?;
        let t = Instant::now();
        fresh
            .install_snapshot(&snap.meta, Box::new(Cursor::new(data)))
            .await?;
        s.install = t.elapsed();
        check_full(fresh.store(), "installed snapshot")?;
    }

    // A restart: the engine and the state machine opened again, the snapshot read, opened,
    // decoded and restored into the store.
    let t = Instant::now();
    let reopened = StateMachine::open(v.open(kind, dst.path())?, Store::default())?;
    s.reopen = t.elapsed();
    check_full(reopened.store(), "reopened store")?;
    Ok(())
}

/// Median of `f` over the samples.
fn median<T: PartialOrd + Copy>(samples: &[Sample], f: impl Fn(&Sample) -> T) -> T {
    let mut v: Vec<T> = samples.iter().map(f).collect();
    v.sort_by(|a, b| a.partial_cmp(b).unwrap_or(std::cmp::Ordering::Equal));
    v[v.len() / 2]
}

fn ms(d: Duration) -> String {
    match d.as_secs_f64() * 1e3 {
        x if x >= 10.0 => format!("{x:.1} ms"),
        x => format!("{x:.3} ms"),
    }
}

fn ratio(sealed: f64, plain: f64) -> String {
    match sealed / plain {
        x if !x.is_finite() => "n/a".into(),
        x => format!("{x:.2}"),
    }
}

/// Time per call of `f`, the median of 5 runs of `n` calls.
fn per_call(n: u32, mut f: impl FnMut()) -> Duration {
    let mut runs: Vec<Duration> = (0..5)
        .map(|_| {
            let t = Instant::now();
            for _ in 0..n {
                f();
            }
            t.elapsed() / n
        })
        .collect();
    runs.sort();
    runs[2]
}

fn aead_costs(entry_json: &[u8], snapshot_json: &[u8]) -> Result<[Duration; 4], BoxError> {
    let cipher = Cipher::new(&Key::generate());
    let aad = b"shoal/raft/log/bench";
    let sealed_entry = cipher.seal(aad, entry_json)?;
    let sealed_snap = cipher.seal(aad, snapshot_json)?;
    let black_hole = |v: Vec<u8>| assert!(!v.is_empty());
    Ok([
        per_call(10_000, || {
            black_hole(cipher.seal(aad, entry_json).expect("seal"))
        }),
        per_call(10_000, || {
            black_hole(cipher.open(aad, &sealed_entry).expect("open"))
        }),
        per_call(5, || {
            black_hole(cipher.seal(aad, snapshot_json).expect("seal"))
        }),
        per_call(5, || {
            black_hole(cipher.open(aad, &sealed_snap).expect("open"))
        }),
    ])
}

fn main() -> Result<(), BoxError> {
    // `cargo bench` passes `--bench`; with harness = false the flags are ours to ignore.
    let root: std::path::PathBuf = std::env::var_os("SHOAL_BENCH_DIR")
        .map(Into::into)
        .unwrap_or_else(std::env::temp_dir);
    let rounds = match std::env::var("SHOAL_BENCH_ROUNDS") {
        Ok(r) => r
            .parse::<usize>()
            .ok()
            .filter(|r| *r > 0)
            .ok_or("SHOAL_BENCH_ROUNDS must be a positive integer")?,
        Err(_) => 11,
    };
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let engines = [EngineKind::Redb, EngineKind::Sled];
    let mut samples: BTreeMap<(&str, &str), Vec<Sample>> = BTreeMap::new();
    for round in 0..rounds {
        for kind in engines {
            let order = if round % 2 == 0 {
                [Variant::Plain, Variant::Sealed]
            } else {
                [Variant::Sealed, Variant::Plain]
            };
            for v in order {
                let mut s = Sample::default();
                rt.block_on(appends(kind, v, &root, &mut s))?;
                rt.block_on(snapshot(kind, v, &root, &mut s))?;
                eprintln!("round {round} {kind} {v:?}: {s:?}");
                let name = if v == Variant::Plain {
                    "plain"
                } else {
                    "sealed"
                };
                samples.entry((kind.as_str(), name)).or_default().push(s);
            }
        }
    }

    let entry_json = serde_json::to_vec(&entry(1, update_command(1)))?;
    let snapshot_bytes = samples.values().next().map_or(0, |s| s[0].snapshot_bytes);
    // The snapshot's data again, for the cipher alone.
    let snapshot_json = rt.block_on(async {
        let dir = tempfile::Builder::new()
            .prefix("atrest-aead-")
            .tempdir_in(&root)?;
        let engine = open_engine(EngineKind::Redb, dir.path())?;
        let mut sm = StateMachine::open(engine, Store::default())?;
        sm.apply(fill_entries()).await?;
        let mut b = sm.get_snapshot_builder().await;
        Ok::<_, BoxError>(b.build_snapshot().await?.snapshot.into_inner())
    })?;
    let aead = aead_costs(&entry_json, &snapshot_json)?;
    let sealed_overhead =
        Cipher::new(&Key::generate()).seal(b"", &entry_json)?.len() - entry_json.len();

    println!(
        "raft storage, plaintext vs sealed (XChaCha20-Poly1305): {rounds} rounds, medians; \
         entry {} bytes of JSON (UpdateService, full spec + previous spec); {SINGLE_APPENDS} \
         single-entry appends, {BATCHES} appends of {BATCH}; snapshot of {SERVICES} services + \
         {} tasks = {:.1} MiB of JSON; a sealed record is {} bytes longer than its plaintext; \
         dir {}\n",
        entry_json.len(),
        SERVICES * REPLICAS,
        snapshot_bytes as f64 / (1024.0 * 1024.0),
        sealed_overhead,
        root.display()
    );
    println!("| engine | metric | plaintext | sealed | sealed / plaintext | per-round ratios |");
    println!("|---|---|---:|---:|---:|---:|");
    for kind in engines {
        let (Some(p), Some(s)) = (
            samples.get(&(kind.as_str(), "plain")),
            samples.get(&(kind.as_str(), "sealed")),
        ) else {
            continue;
        };
        // (metric, value of a sample, is a time)
        type Metric = (&'static str, fn(&Sample) -> f64, bool);
        let rows: [Metric; 8] = [
            (
                "1 client: appends/s (1 entry each)",
                |x| x.single_rate,
                false,
            ),
            ("1 client: append p50", |x| x.single_p50.as_secs_f64(), true),
            ("1 client: append p99", |x| x.single_p99.as_secs_f64(), true),
            (
                "64 clients: entries/s (64 per append)",
                |x| x.batch_rate,
                false,
            ),
            (
                "64 clients: append p50 (64 entries)",
                |x| x.batch_p50.as_secs_f64(),
                true,
            ),
            (
                "snapshot build (10k objects)",
                |x| x.build.as_secs_f64(),
                true,
            ),
            (
                "snapshot install (fresh state machine)",
                |x| x.install.as_secs_f64(),
                true,
            ),
            (
                "restart: open + restore the snapshot",
                |x| x.reopen.as_secs_f64(),
                true,
            ),
        ];
        for (metric, f, is_time) in rows {
            let show = |x: f64| {
                if is_time {
                    ms(Duration::from_secs_f64(x))
                } else {
                    format!("{x:.0}")
                }
            };
            let (pv, sv) = (median(p, f), median(s, f));
            // Plaintext and sealed ran back to back in each round: the spread of their ratio
            // over the rounds says how far to trust the median's.
            let mut per_round: Vec<f64> = p.iter().zip(s).map(|(a, b)| f(b) / f(a)).collect();
            per_round.sort_by(|a, b| a.partial_cmp(b).unwrap_or(std::cmp::Ordering::Equal));
            println!(
                "| {kind} | {metric} | {} | {} | {} | {:.2}–{:.2} |",
                show(pv),
                show(sv),
                ratio(sv, pv),
                per_round[0],
                per_round[per_round.len() - 1]
            );
        }
    }
    println!();
    println!("| AEAD alone (XChaCha20-Poly1305, this CPU) | time |");
    println!("|---|---:|");
    println!(
        "| seal one entry ({} B) | {:.1} µs |",
        entry_json.len(),
        aead[0].as_secs_f64() * 1e6
    );
    println!("| open one entry | {:.1} µs |", aead[1].as_secs_f64() * 1e6);
    println!(
        "| seal the snapshot ({} B) | {} |",
        snapshot_json.len(),
        ms(aead[2])
    );
    println!("| open the snapshot | {} |", ms(aead[3]));
    Ok(())
}
