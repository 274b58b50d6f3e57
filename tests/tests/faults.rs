//! The fault-injection harness in its CI form: a few seeded runs of `shoal_tests::faults` on a
//! lab of 3 managers (kill -9 and restart, SIGSTOP/SIGCONT, nftables partitions, faults aimed
//! at the leader) with clients doing compare-and-set updates and creates; each history checked
//! for linearizability, acknowledged writes on every manager, equal store digests.
//!
//! Knobs (environment):
//! * `SHOAL_FAULTS_SEEDS=1,2,3`: the seeds to run (replay a failure with its seed); or
//!   `SHOAL_FAULTS_SEED=S` with `SHOAL_FAULTS_RUNS=N` for seeds S..S+N (default: 3 fixed seeds);
//! * `SHOAL_FAULTS_SECS` (40): seconds of faults per run; `SHOAL_FAULTS_MANAGERS` (3 or 5);
//!   `SHOAL_FAULTS_CLIENTS` (4); `SHOAL_FAULTS_SUBNET` (198.19.X.0/24; default: the lab's pick);
//! * `SHOAL_FAULTS_RESULTS=FILE`: append one summary line per run (bench/faults.sh);
//! * `SHOAL_FAULTS_KEEP_GOING=1`: run every seed even after a failure (the long form).

use shoal_netlib::root::root_or_skip;
use shoal_tests::faults::{run, FaultConfig};
use std::io::Write;
use std::time::Duration;

/// The CI seeds: fixed, so CI runs the same schedules every time.
const CI_SEEDS: [u64; 3] = [1, 2, 3];

fn env_u64(name: &str) -> Option<u64> {
    std::env::var(name).ok().and_then(|v| v.trim().parse().ok())
}

fn seeds() -> Vec<u64> {
    if let Ok(list) = std::env::var("SHOAL_FAULTS_SEEDS") {
        let seeds: Vec<u64> = list
            .split(',')
            .filter_map(|s| s.trim().parse().ok())
            .collect();
        assert!(
            !seeds.is_empty(),
            "SHOAL_FAULTS_SEEDS={list:?} names no seed"
        );
        return seeds;
    }
    match env_u64("SHOAL_FAULTS_SEED") {
        Some(first) => {
            let n = env_u64("SHOAL_FAULTS_RUNS").unwrap_or(1);
            (first..first + n).collect()
        }
        None => CI_SEEDS.to_vec(),
    }
}

#[ignore = "needs root"]
#[test]
fn seeded_faults_keep_every_acknowledged_write_linearizable() {
    if !root_or_skip() {
        return;
    }
    let keep_going = std::env::var_os("SHOAL_FAULTS_KEEP_GOING").is_some();
    let mut failed = Vec::new();
    for seed in seeds() {
        let mut cfg = FaultConfig::new(seed);
        if let Some(s) = env_u64("SHOAL_FAULTS_SECS") {
            cfg.length = Duration::from_secs(s);
        }
        if let Some(m) = env_u64("SHOAL_FAULTS_MANAGERS") {
            cfg.managers = m as usize;
        }
        if let Some(c) = env_u64("SHOAL_FAULTS_CLIENTS") {
            cfg.clients = c as usize;
        }
        cfg.subnet = std::env::var("SHOAL_FAULTS_SUBNET").ok();
        eprintln!(
            "fault run: seed {seed} ({} managers, {:?} of faults)",
            cfg.managers, cfg.length
        );
        let report = run(&cfg);
        for f in &report.faults {
            eprintln!("  fault: {f}");
        }
        let line = report.summary();
        eprintln!("{} {line}", if report.passed() { "PASS" } else { "FAIL" });
        if let Ok(path) = std::env::var("SHOAL_FAULTS_RESULTS") {
            if let Ok(mut f) = std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(path)
            {
                let _ = writeln!(
                    f,
                    "{} {line}",
                    if report.passed() { "PASS" } else { "FAIL" }
                );
            }
        }
        assert!(
            report.verdict.acked > 0,
            "seed {seed}: no write was acknowledged, nothing was checked\n{line}"
        );
        if !report.passed() {
            let msg = format!(
                "seed {seed} FAILED (replay: SHOAL_FAULTS_SEEDS={seed} SHOAL_FAULTS_MANAGERS={} \
                 SHOAL_FAULTS_SECS={} cargo test -p shoal-tests --test faults -- --ignored \
                 --nocapture)\n{line}\n{}",
                cfg.managers,
                cfg.length.as_secs(),
                report.problems()
            );
            eprintln!("{msg}");
            failed.push(msg);
            if !keep_going {
                break;
            }
        }
    }
    assert!(
        failed.is_empty(),
        "{} failing seed(s):\n{}",
        failed.len(),
        failed.join("\n")
    );
}
