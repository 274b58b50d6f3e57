//! The manager's metrics for `swarmd --metrics-addr`: raft (from openraft's metrics channel and
//! the write path), the dispatcher's sessions and messages, and tasks by state per service
//! (counted from the store at scrape time, so its labels are bounded by the store).
//!
//! The hot paths bump the statics below (one atomic add); [`write`] reads everything else when
//! scraped.

use crate::Manager;
use openraft::ServerState;
use shoal_proto::metrics::{
    Counter, Exposition, Gauge, Histogram, Kind, LATENCY_BUCKETS, SIZE_BUCKETS,
};
use std::collections::BTreeMap;
use std::sync::LazyLock;

/// How long a proposal took from [`crate::raft::batch::Proposer::write`] until it was committed
/// and applied (or refused) on this manager.
pub static RAFT_WRITE_SECONDS: LazyLock<Histogram> =
    LazyLock::new(|| Histogram::new(LATENCY_BUCKETS));
/// Size of the last snapshot this manager built or installed.
pub static RAFT_SNAPSHOT_BYTES: Gauge = Gauge::new();
/// Snapshots built here.
pub static RAFT_SNAPSHOTS_BUILT: Counter = Counter::new();
/// Snapshots installed from the leader.
pub static RAFT_SNAPSHOTS_INSTALLED: Counter = Counter::new();
/// Heartbeats received from agents.
pub static HEARTBEATS: Counter = Counter::new();
/// Encoded size of the session messages carrying assignments sent to agents.
pub static ASSIGNMENT_BYTES: LazyLock<Histogram> = LazyLock::new(|| Histogram::new(SIZE_BUCKETS));

/// Counts one session message with assignments (`bytes` encoded).
pub fn assignment_sent(bytes: usize) {
    ASSIGNMENT_BYTES.observe(bytes as f64);
}

/// Writes the manager's families (see the module doc).
pub fn write(m: &Manager, e: &mut Exposition) {
    raft(m, e);
    e.gauge(
        "shoal_dispatcher_sessions",
        "Agent sessions open on this manager (only the leader serves them).",
        m.dispatcher.session_count() as f64,
    );
    e.counter(
        "shoal_dispatcher_heartbeats_total",
        "Agent heartbeats received.",
        HEARTBEATS.get(),
    );
    e.header(
        "shoal_dispatcher_assignment_message_bytes",
        "Encoded size of the session messages carrying assignments sent to agents.",
        Kind::Histogram,
    );
    e.histogram(
        "shoal_dispatcher_assignment_message_bytes",
        &[],
        &ASSIGNMENT_BYTES.snapshot(),
    );
    tasks(m, e);
}

fn raft(m: &Manager, e: &mut Exposition) {
    let r = m.raft.metrics().borrow().clone();
    let leader = r.state == ServerState::Leader;
    e.gauge(
        "shoal_raft_term",
        "The raft term this manager is in.",
        r.current_term as f64,
    );
    e.gauge(
        "shoal_raft_is_leader",
        "1 when this manager is the raft leader, else 0.",
        if leader { 1.0 } else { 0.0 },
    );
    // Raft ids are random 64-bit numbers, which a float sample would round: labels.
    e.header(
        "shoal_raft_info",
        "Always 1; this manager's raft id and the leader's it knows (empty: none).",
        Kind::Gauge,
    );
    let leader_id = r.current_leader.map(|l| l.to_string()).unwrap_or_default();
    e.sample(
        "shoal_raft_info",
        &[
            ("raft_id", &r.id.to_string()),
            ("leader_raft_id", &leader_id),
        ],
        1.0,
    );
    let last_log = r.last_log_index.unwrap_or(0);
    let applied = r.last_applied.map_or(0, |l| l.index);
    e.gauge(
        "shoal_raft_last_log_index",
        "Index of the last raft entry in this manager's log.",
        last_log as f64,
    );
    if let Some(commit) = leader.then(|| commit_index(&r)).flatten() {
        e.gauge(
            "shoal_raft_commit_index",
            "Index of the last entry a quorum holds (reported by the leader only).",
            commit as f64,
        );
    }
    e.gauge(
        "shoal_raft_applied_index",
        "Index of the last raft entry applied to this manager's store.",
        applied as f64,
    );
    e.gauge(
        "shoal_raft_apply_lag",
        "Entries in this manager's log not applied yet.",
        last_log.saturating_sub(applied) as f64,
    );
    e.gauge(
        "shoal_raft_snapshot_index",
        "Last entry included in this manager's latest snapshot.",
        r.snapshot.map_or(0, |l| l.index) as f64,
    );
    e.gauge(
        "shoal_raft_snapshot_size_bytes",
        "Size of the last snapshot this manager built or installed.",
        RAFT_SNAPSHOT_BYTES.get() as f64,
    );
    e.header(
        "shoal_raft_snapshots_total",
        "Snapshots built here or installed from the leader.",
        Kind::Counter,
    );
    e.sample(
        "shoal_raft_snapshots_total",
        &[("origin", "built")],
        RAFT_SNAPSHOTS_BUILT.get() as f64,
    );
    e.sample(
        "shoal_raft_snapshots_total",
        &[("origin", "installed")],
        RAFT_SNAPSHOTS_INSTALLED.get() as f64,
    );
    e.header(
        "shoal_raft_write_duration_seconds",
        "Time from proposing a write on this manager until it was applied.",
        Kind::Histogram,
    );
    e.histogram(
        "shoal_raft_write_duration_seconds",
        &[],
        &RAFT_WRITE_SECONDS.snapshot(),
    );
}

/// On the leader: the highest index a quorum of voters has (openraft 0.9 reports each
/// member's matched log id to the leader, itself included).
fn commit_index(
    r: &openraft::RaftMetrics<crate::raft::NodeId, openraft::BasicNode>,
) -> Option<u64> {
    let repl = r.replication.as_ref()?;
    let mut matched: Vec<u64> = r
        .membership_config
        .membership()
        .voter_ids()
        .map(|id| {
            if id == r.id {
                r.last_log_index.unwrap_or(0)
            } else {
                repl.get(&id).copied().flatten().map_or(0, |l| l.index)
            }
        })
        .collect();
    if matched.is_empty() {
        return None;
    }
    matched.sort_unstable_by(|a, b| b.cmp(a));
    Some(matched[matched.len() / 2])
}

fn tasks(m: &Manager, e: &mut Exposition) {
    let mut counts: BTreeMap<(String, &'static str), u64> = BTreeMap::new();
    {
        let s = m.store.read();
        for t in s.tasks.values() {
            *counts
                .entry((t.service_name.clone(), t.status.state.display()))
                .or_default() += 1;
        }
    }
    e.header(
        "shoal_tasks",
        "Tasks in the store by service and current state (every manager reports the same).",
        Kind::Gauge,
    );
    for ((service, state), n) in counts {
        e.sample(
            "shoal_tasks",
            &[("service", &service), ("state", state)],
            n as f64,
        );
    }
}
