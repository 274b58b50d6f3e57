//! The fault-injection harness: a lab of 3 or 5 managers (small snapshot intervals, so
//! snapshots are taken and sent), seeded random faults (`kill -9` and restart on the same state
//! dir, SIGSTOP/SIGCONT, partitions made with nftables in the managers' namespaces, faults
//! aimed at the leader), seeded clients doing compare-and-set updates and creates, then after
//! healing: the history checked for linearizability (`stateright`), every acknowledged create
//! present on every manager, and every manager's store digest equal.
//!
//! ```text
//! seed ──> schedule::plan ──> nemesis (faults, heal)        lab: manager1..N in namespaces
//!      └─> client::run × C ──> history (invoke/ok/failed/unknown) ──> check (per key)
//! ```
//!
//! A run is reproducible from its seed: the schedule, the timings and the clients' choices all
//! come from it (what the cluster does under them, such as who leads, does not).

pub mod check;
pub mod client;
pub mod digest;
pub mod history;
pub mod nemesis;
pub mod rng;
pub mod schedule;

use crate::lab::Lab;
use check::Verdict;
use history::{Counts, History, Op, Ret};
use nemesis::Nemesis;
use shoal_proto::pb;
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// How long the managers get to agree on one store after the faults healed.
pub const CONVERGE_TIMEOUT: Duration = Duration::from_secs(60);

/// One run's parameters.
#[derive(Debug, Clone)]
pub struct FaultConfig {
    /// The seed everything random is drawn from.
    pub seed: u64,
    /// Managers in the lab (3 or 5).
    pub managers: usize,
    /// How long faults are injected (quiet and hold times of the schedule's steps).
    pub length: Duration,
    /// Concurrent clients.
    pub clients: usize,
    /// Keys updated with compare-and-set.
    pub registers: usize,
    /// Names the creates race for.
    pub creates: usize,
    /// `--snapshot-every` of every swarmd.
    pub snapshot_every: u64,
    /// `--snapshot-keep-logs` of every swarmd.
    pub snapshot_keep_logs: u64,
    /// The lab's subnet (`None`: the lab's own pick).
    pub subnet: Option<String>,
}

impl FaultConfig {
    /// The CI defaults for `seed`: 3 managers, 40 s of faults, 4 clients.
    pub fn new(seed: u64) -> FaultConfig {
        FaultConfig {
            seed,
            managers: 3,
            length: Duration::from_secs(40),
            clients: 4,
            registers: 4,
            creates: 16,
            snapshot_every: 40,
            snapshot_keep_logs: 20,
            subnet: None,
        }
    }
}

/// What a run did and found.
#[derive(Debug, Clone)]
pub struct Report {
    /// The seed.
    pub seed: u64,
    /// Managers.
    pub managers: usize,
    /// The faults as applied (with the manager each hit).
    pub faults: Vec<String>,
    /// Faults by kind.
    pub fault_kinds: BTreeMap<&'static str, u64>,
    /// Client operations by outcome.
    pub counts: Counts,
    /// The linearizability check's findings.
    pub verdict: Verdict,
    /// Acknowledged creates missing on some manager, or keys whose final state differs.
    pub lost: Vec<String>,
    /// Problems of the run itself: a fault not healed, a manager that did not come back, stores
    /// that never converged.
    pub errors: Vec<String>,
    /// Snapshots installed on managers (from their logs).
    pub snapshot_installs: usize,
    /// Every manager's final store digest.
    pub digests: Vec<String>,
    /// Wall time of the run.
    pub elapsed: Duration,
    /// Where the history was saved (when the run failed).
    pub history_file: Option<std::path::PathBuf>,
}

impl Report {
    /// No violation, nothing lost, no error.
    pub fn passed(&self) -> bool {
        self.verdict.violations.is_empty() && self.lost.is_empty() && self.errors.is_empty()
    }

    /// One line for logs and the benchmark table.
    pub fn summary(&self) -> String {
        let c = &self.counts;
        let kinds: Vec<String> = self
            .fault_kinds
            .iter()
            .map(|(k, n)| format!("{k}={n}"))
            .collect();
        format!(
            "seed={} managers={} faults={} [{}] ops: ok={} failed={} not_sent={} unknown={} reads={} \
             read_errors={} | checked: completed={} acked={} unknown_applied={} unknown_dropped={} pieces={} \
             | snapshot_installs={} lost={} violations={} errors={} digests_equal={} elapsed={:.0}s",
            self.seed,
            self.managers,
            self.faults.len(),
            kinds.join(" "),
            c.ok,
            c.failed,
            c.not_sent,
            c.unknown,
            c.reads,
            c.read_errors,
            self.verdict.completed,
            self.verdict.acked,
            self.verdict.unknown_applied,
            self.verdict.unknown_dropped,
            self.verdict.pieces,
            self.snapshot_installs,
            self.lost.len(),
            self.verdict.violations.len(),
            self.errors.len(),
            self.digests.windows(2).all(|w| w[0] == w[1]),
            self.elapsed.as_secs_f64(),
        )
    }

    /// Everything wrong, for a failing test's message.
    pub fn problems(&self) -> String {
        let mut s = String::new();
        for v in &self.verdict.violations {
            s.push_str(&format!("VIOLATION {v}\n"));
        }
        for l in &self.lost {
            s.push_str(&format!("LOST {l}\n"));
        }
        for e in &self.errors {
            s.push_str(&format!("ERROR {e}\n"));
        }
        if let Some(f) = &self.history_file {
            s.push_str(&format!("history: {}\n", f.display()));
        }
        s
    }
}

/// Runs one seeded fault run on a fresh lab (root needed) and reports; the lab is removed
/// whatever happens.
pub fn run(cfg: &FaultConfig) -> Report {
    let started = Instant::now();
    let mut lab = Lab::new();
    if let Some(s) = &cfg.subnet {
        lab.subnet = s.clone();
    }
    lab.swarmd_args.push_str(&format!(
        " --snapshot-every {} --snapshot-keep-logs {}",
        cfg.snapshot_every, cfg.snapshot_keep_logs
    ));
    let managers = cfg.managers.to_string();
    lab.lab_ok(
        &["up"],
        &[
            "--managers",
            &managers,
            "--workers",
            "0",
            "--subnet",
            &lab.subnet,
        ],
    );
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("a tokio runtime");
    let mut nemesis = Nemesis::new(&lab, rt.handle().clone());
    let sockets: Vec<String> = nemesis.members.iter().map(|m| m.socket.clone()).collect();
    let registers: Vec<String> = (0..cfg.registers).map(|i| format!("r{i}")).collect();
    let creates: Vec<String> = (0..cfg.creates).map(|i| format!("c{i}")).collect();
    rt.block_on(setup(&sockets, &registers));
    let mut initial: BTreeMap<String, Option<u64>> = BTreeMap::new();
    for r in &registers {
        initial.insert(r.clone(), Some(0));
    }

    let history = Arc::new(History::new());
    let stop = Arc::new(AtomicBool::new(false));
    let clients: Vec<_> = (0..cfg.clients as u64)
        .map(|index| {
            let plan = client::ClientPlan {
                index,
                seed: cfg.seed,
                managers: sockets.clone(),
                registers: registers.clone(),
                creates: creates.clone(),
            };
            rt.spawn(client::run(plan, history.clone(), stop.clone()))
        })
        .collect();

    let mut report = Report {
        seed: cfg.seed,
        managers: cfg.managers,
        faults: Vec::new(),
        fault_kinds: BTreeMap::new(),
        counts: Counts::default(),
        verdict: Verdict::default(),
        lost: Vec::new(),
        errors: Vec::new(),
        snapshot_installs: 0,
        digests: Vec::new(),
        elapsed: Duration::ZERO,
        history_file: None,
    };
    // The schedule's quiet and hold times are the faults' shape, not waits for a condition.
    for step in schedule::plan(cfg.seed, cfg.managers, cfg.length) {
        std::thread::sleep(step.quiet);
        match nemesis.apply(&step.fault) {
            Ok(did) => {
                *report.fault_kinds.entry(step.fault.kind()).or_default() += 1;
                report.faults.push(did);
            }
            Err(e) => report.errors.push(format!("applying {}: {e}", step.fault)),
        }
        std::thread::sleep(step.hold);
        if let Err(e) = nemesis.heal() {
            report.errors.push(format!("healing {}: {e}", step.fault));
        }
    }
    // A last stretch without faults, so the clients write to the healed cluster too.
    std::thread::sleep(Duration::from_secs(2));
    stop.store(true, Ordering::Relaxed);
    rt.block_on(async {
        for c in clients {
            let _ = c.await;
        }
    });

    let digests = rt.block_on(converge(&sockets));
    match digests {
        Ok(listings) => {
            report.digests = listings.iter().map(|l| l.digest.clone()).collect();
            final_reads(&history, &listings, &registers, &creates, &mut report);
        }
        Err(e) => report.errors.push(e),
    }
    report.counts = history.counts();
    let events = history.events();
    report.verdict = check::check(&events, &initial);
    report.snapshot_installs = snapshot_installs(&lab, &nemesis);
    if !report.passed() {
        let dir = std::env::temp_dir().join("shoal-faults");
        let _ = std::fs::create_dir_all(&dir);
        let file = dir.join(format!("seed-{}.history", cfg.seed));
        if std::fs::write(&file, history::render(&events)).is_ok() {
            report.history_file = Some(file);
        }
    }
    drop(nemesis);
    drop(lab);
    report.elapsed = started.elapsed();
    report
}

/// Creates the keys (label `v` = 0) and waits until every manager has them.
async fn setup(sockets: &[String], registers: &[String]) {
    let deadline = Instant::now() + Duration::from_secs(60);
    for r in registers {
        loop {
            assert!(Instant::now() < deadline, "could not create key {r}");
            if let Some(mut c) = client::connect(&sockets[0]).await {
                let req = pb::CreateServiceRequest {
                    spec: Some(client::key_spec(r, 0)),
                };
                match c.create_service(req).await {
                    Ok(_) => break,
                    Err(s) if client::name_taken(&s) => break,
                    Err(_) => {}
                }
            }
            tokio::time::sleep(crate::POLL).await;
        }
    }
    for s in sockets {
        loop {
            assert!(Instant::now() < deadline, "{s} never saw the keys");
            if let Some(l) = digest::listing(s).await {
                if registers.iter().all(|r| l.services.contains_key(r)) {
                    break;
                }
            }
            tokio::time::sleep(crate::POLL).await;
        }
    }
}

/// Every manager's listing, once all digests are equal (twice in a row, so the cluster is
/// quiet); an error naming the digests when they stay different.
async fn converge(sockets: &[String]) -> Result<Vec<digest::Listing>, String> {
    let deadline = Instant::now() + CONVERGE_TIMEOUT;
    let mut previous: Option<Vec<String>> = None;
    let mut last_seen = String::new();
    while Instant::now() < deadline {
        let mut all = Vec::new();
        for s in sockets {
            match digest::listing(s).await {
                Some(l) => all.push(l),
                None => break,
            }
        }
        if all.len() == sockets.len() {
            let ds: Vec<String> = all.iter().map(|l| l.digest.clone()).collect();
            if ds.windows(2).all(|w| w[0] == w[1]) && previous.as_ref() == Some(&ds) {
                return Ok(all);
            }
            last_seen = format!("{ds:?}");
            previous = Some(ds);
        } else {
            last_seen = format!("{} of {} managers answered", all.len(), sockets.len());
            previous = None;
        }
        tokio::time::sleep(crate::POLL * 5).await;
    }
    Err(format!(
        "DIVERGENCE: the managers' stores did not become equal within {CONVERGE_TIMEOUT:?}: {last_seen}"
    ))
}

/// Adds each manager's final value of every key to the history (as reads after everything
/// else), and lists acknowledged creates missing on a manager.
fn final_reads(
    history: &History,
    listings: &[digest::Listing],
    registers: &[String],
    creates: &[String],
    report: &mut Report,
) {
    let events = history.events();
    let mut acked_creates: BTreeMap<String, u64> = BTreeMap::new();
    let mut open: BTreeMap<u64, (String, u64)> = BTreeMap::new();
    for e in &events {
        match e {
            history::Event::Invoke {
                pid,
                key,
                op: Op::Create { tag },
            } => {
                open.insert(*pid, (key.clone(), *tag));
            }
            history::Event::Return { pid, ret, .. } => {
                if let Some((key, tag)) = open.remove(pid) {
                    if *ret == Ret::Ok {
                        acked_creates.insert(key, tag);
                    }
                }
            }
            _ => {}
        }
    }
    for (m, l) in listings.iter().enumerate() {
        for key in registers.iter().chain(creates) {
            let (version, value) = l.services.get(key).copied().unwrap_or((0, None));
            let pid = history.fresh_pid();
            history.invoke(
                pid,
                key,
                Op::Read {
                    manager: m,
                    version,
                },
            );
            history.ret(pid, key, Ret::Value(value), version);
        }
        for (key, tag) in &acked_creates {
            if !l.services.contains_key(key) {
                report.lost.push(format!(
                    "service {key} (created with v={tag}, acknowledged) is missing on manager{}",
                    m + 1
                ));
            }
        }
    }
}

/// Snapshots the managers' logs say they installed.
fn snapshot_installs(lab: &Lab, nemesis: &Nemesis<'_>) -> usize {
    nemesis
        .members
        .iter()
        .map(|m| {
            let log = lab.dir().join("nodes").join(&m.name).join("swarmd.log");
            std::fs::read_to_string(log)
                .unwrap_or_default()
                .matches("installed a snapshot")
                .count()
        })
        .sum()
}
