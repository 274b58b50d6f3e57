//! Dispatcher: agent sessions, heartbeats, assignments and batched status writes. Sessions are
//! served by the leader only; a follower tells the agent where the leader is.
//!
//! * `relay`: requests the leader sends agents over their sessions and the replies.
//! * `exec_session`: interactive execs, a client's stream paired with the agent's.
//! * `image_relay`: `swarmctl image …` on a node, and `image load`'s upload paired likewise.
//! * `log_relay`: the batches of `service logs [-f]` from the agents to the relay that asked.
//! * `status`: task status updates, batched into raft writes by a leader actor.
//! * `tables`: the network tables every session shares, built once per applied index.
//!
//! At scale: every session reads the shared tables (versions, not contents, are compared per
//! node), coalesces bursts of commits into one message per [`coalesce_window`], and the
//! heartbeat period grows with the number of sessions so that all of them together stay under
//! [`MAX_HEARTBEATS_PER_SECOND`] (Nomad's `max_heartbeats_per_second` model).

mod assignments;
mod exec_session;
mod image_relay;
mod log_relay;
mod relay;
mod service;
mod status;
mod table_updates;
mod tables;
mod tokens;

pub use assignments::AssignmentSet;
pub use exec_session::{relay_exec, AgentLeg, AttachError, FrameStream, EXEC_FRAMES};
pub use image_relay::{ChunkStream, LoadError, UploadError, UploadLeg, UPLOAD_CHUNKS};
pub use log_relay::{LogTap, LogsGone, LOG_BATCHES};
pub use relay::{FromAgent, RelayError, ToAgent};
pub use service::{DispatcherService, LEADER_ADDR_KEY};
pub use status::{write_statuses, StatusError, STATUS_BATCH_MAX};
pub use tokens::{check_token, cluster_digest, parse_token, TokenError};

use crate::config::ManagerConfig;
use crate::manager::Manager;
use shoal_proto::model::{now_ms, Command, Node, NodeState, NodeStateChange};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::mpsc;
use tracing::{info, warn};

struct Session {
    id: String,
    last_seen: Instant,
    /// The heartbeat period this node was last told.
    period: Duration,
    to_agent: mpsc::Sender<ToAgent>,
}

/// Most heartbeats per second the leader takes from all nodes together: past
/// `MAX_HEARTBEATS_PER_SECOND × --heartbeat-period` nodes, the period grows with the number of
/// sessions (so does the time to find a dead node: `--heartbeat-misses` periods).
pub const MAX_HEARTBEATS_PER_SECOND: u32 = 250;

/// The heartbeat period for `sessions` nodes: `base`, or longer so that `sessions` heartbeats
/// spread over it stay under `max_rate` per second.
pub fn heartbeat_period(base: Duration, sessions: usize, max_rate: u32) -> Duration {
    let spread = Duration::from_secs_f64(sessions as f64 / f64::from(max_rate.max(1)));
    // Whole milliseconds: the agents are told a period in ms.
    base.max(Duration::from_millis(spread.as_millis() as u64))
}

/// How long a node without a session may stay so before it is judged down: `misses` periods of
/// a cluster of `nodes` sessions ([`heartbeat_period`]), whatever the number of sessions open
/// now. After a leader change the new leader has few sessions while thousands of nodes queue
/// to reconnect; the period those few give would judge the others down (and reschedule their
/// tasks) before their turn.
pub fn absent_expiry(base: Duration, nodes: usize, misses: u32, max_rate: u32) -> Duration {
    heartbeat_period(base, nodes, max_rate) * misses
}

/// How long a session waits after a commit before reading the store, so that a burst of commits
/// becomes one message: short with few sessions (assignments reach a small cluster at once),
/// longer with many (each wake-up of every session costs the leader).
pub fn coalesce_window(sessions: usize) -> Duration {
    const MIN: Duration = Duration::from_millis(5);
    const MAX: Duration = Duration::from_millis(200);
    // 10 µs per session: 1,000 sessions wait 15 ms, 5,000 wait 55 ms.
    (MIN + Duration::from_micros(10 * sessions as u64)).min(MAX)
}

/// The dispatcher's timings, from [`ManagerConfig`].
#[derive(Debug, Clone, Copy)]
struct Timings {
    period: Duration,
    misses: u32,
    restart_grace: Duration,
    relay_timeout: Duration,
    exec_default_timeout: Duration,
}

/// In-memory dispatcher state. Lives on every manager; used on the leader.
pub struct Dispatcher {
    t: Timings,
    sessions: Mutex<HashMap<String, Session>>,
    /// When each node's last session closed: a node whose `swarmd` restarts reconnects within
    /// a heartbeat period, and is not marked down (and its tasks replaced) meanwhile.
    closed: Mutex<HashMap<String, Instant>>,
    /// When each node said goodbye (its swarmd stopped cleanly, leaving its tasks running): it
    /// gets `restart_grace` to come back before it is Down.
    goodbyes: Mutex<HashMap<String, Instant>>,
    leader_since: Mutex<Option<Instant>>,
    tables: tables::TableCache,
    statuses: status::Queue,
    relay: relay::Relay,
    exec_sessions: exec_session::ExecSessions,
    uploads: image_relay::Uploads,
    log_waiters: log_relay::LogWaiters,
}

impl Dispatcher {
    /// A dispatcher with the timings of `cfg`: agents heartbeat every `heartbeat_period`,
    /// `heartbeat_misses` missed periods mark a node DOWN, and a node that said goodbye is DOWN
    /// after `restart_grace` without a session.
    pub fn new(cfg: &ManagerConfig) -> Dispatcher {
        Dispatcher {
            t: Timings {
                period: cfg.heartbeat_period,
                misses: cfg.heartbeat_misses,
                restart_grace: cfg.restart_grace,
                relay_timeout: cfg.relay_timeout,
                exec_default_timeout: cfg.exec_default_timeout,
            },
            sessions: Mutex::new(HashMap::new()),
            closed: Mutex::new(HashMap::new()),
            goodbyes: Mutex::new(HashMap::new()),
            leader_since: Mutex::new(None),
            tables: tables::TableCache::default(),
            statuses: status::Queue::new(cfg),
            relay: relay::Relay::default(),
            exec_sessions: exec_session::ExecSessions::default(),
            uploads: image_relay::Uploads::default(),
            log_waiters: log_relay::LogWaiters::default(),
        }
    }

    /// Heartbeat period agents are told to use now: the configured one, or longer with many
    /// sessions (see [`heartbeat_period`]).
    pub fn period(&self) -> Duration {
        let sessions = lock(&self.sessions).len();
        heartbeat_period(self.t.period, sessions, MAX_HEARTBEATS_PER_SECOND)
    }

    /// The configured heartbeat period (the shortest [`Dispatcher::period`] gives).
    pub fn base_period(&self) -> Duration {
        self.t.period
    }

    /// The network tables of `state`, at applied index `index` (see [`tables::TableCache`]).
    fn tables(&self, state: &crate::store::State, index: u64) -> std::sync::Arc<tables::Tables> {
        self.tables.get(state, index)
    }

    /// The number of sessions held.
    pub(crate) fn session_count(&self) -> usize {
        lock(&self.sessions).len()
    }

    /// How long a node that said goodbye may stay away before it is Down.
    pub fn restart_grace(&self) -> Duration {
        self.t.restart_grace
    }

    /// How long `exec` lets a command run when the request gives no timeout.
    pub fn exec_default_timeout(&self) -> Duration {
        self.t.exec_default_timeout
    }

    pub(crate) fn on_leader_start(&self) {
        *lock(&self.leader_since) = Some(Instant::now());
    }

    /// Whether this manager's leadership is confirmed (the leader actors run): set once raft
    /// confirmed it with a quorum and the store applied everything committed before.
    pub(crate) fn leading(&self) -> bool {
        lock(&self.leader_since).is_some()
    }

    pub(crate) fn on_leader_stop(&self) {
        *lock(&self.leader_since) = None;
        lock(&self.sessions).clear();
        self.tables.clear();
    }

    /// Opens a session for `node_id`: its id and the heartbeat period to tell the node.
    fn open_session(&self, node_id: &str, to_agent: mpsc::Sender<ToAgent>) -> (String, Duration) {
        let id = shoal_proto::model::new_id();
        lock(&self.goodbyes).remove(node_id);
        let mut sessions = lock(&self.sessions);
        let period = heartbeat_period(self.t.period, sessions.len() + 1, MAX_HEARTBEATS_PER_SECOND);
        sessions.insert(
            node_id.to_string(),
            Session {
                id: id.clone(),
                last_seen: Instant::now(),
                period,
                to_agent,
            },
        );
        (id, period)
    }

    fn close_session(&self, node_id: &str, session_id: &str) {
        let mut s = lock(&self.sessions);
        if s.get(node_id).is_some_and(|x| x.id == session_id) {
            s.remove(node_id);
            lock(&self.closed).insert(node_id.to_string(), Instant::now());
        }
    }

    /// Records a node's goodbye: its session (`session_id`, or the one that just closed) ends
    /// and the node has `restart_grace` to return. False when the node holds another session
    /// or none it could be leaving.
    fn goodbye(&self, node_id: &str, session_id: &str) -> bool {
        let mut sessions = lock(&self.sessions);
        let mut closed = lock(&self.closed);
        let leaving = match sessions.get(node_id) {
            Some(s) => s.id == session_id,
            // Its stream may close before the goodbye arrives.
            None => closed.contains_key(node_id),
        };
        if leaving {
            sessions.remove(node_id);
            closed.remove(node_id);
            lock(&self.goodbyes).insert(node_id.to_string(), Instant::now());
        }
        leaving
    }

    fn session_valid(&self, node_id: &str, session_id: &str) -> bool {
        lock(&self.sessions)
            .get(node_id)
            .is_some_and(|s| s.id == session_id)
    }

    /// Records a heartbeat: the period to tell the node, or `None` if the session is unknown
    /// (the agent must open a new one).
    fn heartbeat(&self, node_id: &str, session_id: &str) -> Option<Duration> {
        let mut sessions = lock(&self.sessions);
        let period = heartbeat_period(self.t.period, sessions.len(), MAX_HEARTBEATS_PER_SECOND);
        match sessions.get_mut(node_id) {
            Some(s) if s.id == session_id => {
                s.last_seen = Instant::now();
                // Until its next heartbeat the node keeps the period it had: it is judged by
                // the longer of the two.
                s.period = period;
                Some(period)
            }
            _ => None,
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// `n` is now in `state`, because of `message`.
fn change(n: &Node, state: NodeState, message: String) -> NodeStateChange {
    NodeStateChange {
        node_id: n.id.clone(),
        state,
        message,
    }
}

/// Leader actor: marks nodes DOWN when they miss their heartbeats, READY when they hold a
/// session. After a leader change nodes get twice the usual grace to reconnect. A node whose
/// session closed without a goodbye (a crash) gets one heartbeat period to reconnect; one that
/// said goodbye (a clean restart) is DISCONNECTED and gets the restart grace.
pub async fn monitor_heartbeats(m: Arc<Manager>) {
    let d = &m.dispatcher;
    let restart_grace = d.t.restart_grace;
    let misses = d.t.misses;
    loop {
        // The period grows with the number of sessions: so do the checks' interval and the
        // grace of a node without a session.
        let period = d.period();
        let expiry = period * misses;
        tokio::time::sleep(period / 2).await;
        let since = lock(&d.leader_since).unwrap_or_else(Instant::now);
        let changes: Vec<NodeStateChange> = {
            let state = m.store.read();
            let sessions = lock(&d.sessions);
            let mut closed = lock(&d.closed);
            closed.retain(|_, at| at.elapsed() <= period);
            let goodbyes = lock(&d.goodbyes);
            let absent = absent_expiry(
                d.t.period,
                state.nodes.len(),
                misses,
                MAX_HEARTBEATS_PER_SECOND,
            )
            .max(expiry);
            state
                .nodes
                .values()
                .filter_map(|n| match sessions.get(n.id.as_str()) {
                    Some(s) if s.last_seen.elapsed() <= s.period.max(period) * misses => (n.state != NodeState::Ready)
                        .then(|| change(n, NodeState::Ready, String::new())),
                    Some(_) => Some(change(n, NodeState::Down, "heartbeat failure".to_string())),
                    None if n.state == NodeState::Down => None,
                    // It said goodbye (to this leader, or to one before it: then the grace
                    // counts from this leader's start).
                    None if n.state == NodeState::Disconnected => {
                        let gone = goodbyes.get(n.id.as_str()).copied().unwrap_or(since);
                        (gone.elapsed() > restart_grace).then(|| {
                            change(
                                n,
                                NodeState::Down,
                                format!(
                                    "stopped cleanly and did not come back within {restart_grace:?}",
                                ),
                            )
                        })
                    }
                    None if goodbyes.contains_key(n.id.as_str()) => None,
                    // Its session just closed: a restarting swarmd gets one period to return.
                    None if closed.contains_key(n.id.as_str()) => None,
                    // A node that just joined has not opened its session yet.
                    None if now_ms().saturating_sub(n.created_ms)
                        < (absent * 2).as_millis() as i64 =>
                    {
                        None
                    }
                    None if since.elapsed() > absent * 2 => Some(change(
                        n,
                        NodeState::Down,
                        if n.state == NodeState::Ready {
                            "heartbeat failure"
                        } else {
                            "node never connected"
                        }
                        .to_string(),
                    )),
                    None => None,
                })
                .collect()
        };
        if changes.is_empty() {
            continue;
        }
        for c in &changes {
            info!(node.id = %c.node_id, state = ?c.state, why = c.message, "node state change");
        }
        if let Err(e) = m.raft.client_write(Command::SetNodeStates(changes)).await {
            warn!(error = %e, "could not write node states");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dispatcher() -> Dispatcher {
        Dispatcher::new(&ManagerConfig::new(
            "n".into(),
            1,
            "127.0.0.1:1".into(),
            "/nonexistent".into(),
        ))
    }

    #[test]
    fn a_node_without_a_session_is_judged_by_the_clusters_size() {
        let base = Duration::from_millis(500);
        // 5,000 nodes at 250 heartbeats/s: a 20 s period, 60 s with 3 misses, however few
        // sessions the new leader holds yet.
        assert_eq!(absent_expiry(base, 5_000, 3, 250), Duration::from_secs(60));
        assert_eq!(
            absent_expiry(base, 10, 3, 250),
            Duration::from_millis(1_500)
        );
    }

    #[test]
    fn a_goodbye_ends_the_session_and_starts_the_restart_grace() {
        let d = dispatcher();
        let (tx, _rx) = mpsc::channel(1);
        let (s1, _) = d.open_session("n1", tx.clone());
        assert!(
            !d.goodbye("n1", "another-session"),
            "not this node's session"
        );
        assert!(d.goodbye("n1", &s1));
        assert!(!d.session_valid("n1", &s1), "the session is over");
        assert!(lock(&d.goodbyes).contains_key("n1"));
        // Coming back clears it.
        let _s2 = d.open_session("n1", tx);
        assert!(!lock(&d.goodbyes).contains_key("n1"));
    }

    #[test]
    fn the_heartbeat_period_grows_past_the_rate_cap() {
        let ms = Duration::from_millis;
        assert_eq!(heartbeat_period(ms(500), 5, 250), ms(500));
        assert_eq!(heartbeat_period(ms(500), 125, 250), ms(500), "at the cap");
        assert_eq!(heartbeat_period(ms(500), 1_000, 250), ms(4_000));
        assert_eq!(heartbeat_period(ms(500), 5_000, 250), ms(20_000));
        // The total rate stays bounded whatever the count.
        for n in [1usize, 10, 100, 1_000, 10_000, 100_000] {
            let p = heartbeat_period(ms(500), n, 250);
            assert!(
                n as f64 / p.as_secs_f64() <= 250.0 + 1e-6,
                "{n} nodes: {p:?}"
            );
        }
    }

    #[test]
    fn the_coalescing_window_grows_with_the_sessions_up_to_a_cap() {
        let ms = Duration::from_millis;
        assert_eq!(coalesce_window(0), ms(5));
        assert_eq!(coalesce_window(1_000), ms(15));
        assert_eq!(coalesce_window(5_000), ms(55));
        assert_eq!(coalesce_window(1_000_000), ms(200));
    }

    #[test]
    fn a_node_is_told_the_period_for_the_sessions_held() {
        let d = dispatcher();
        let (tx, _rx) = mpsc::channel(1);
        let base = d.base_period();
        let (s1, p) = d.open_session("n1", tx.clone());
        assert_eq!(p, base);
        assert_eq!(d.heartbeat("n1", &s1), Some(base));
        assert_eq!(d.heartbeat("n1", "other"), None);
        for i in 0..1_000 {
            d.open_session(&format!("m{i}"), tx.clone());
        }
        let grown = d.heartbeat("n1", &s1).unwrap();
        assert!(grown > base, "{grown:?}");
        assert_eq!(d.period(), grown);
        assert_eq!(d.session_count(), 1_001);
    }

    #[test]
    fn a_goodbye_after_the_stream_closed_still_counts() {
        let d = dispatcher();
        let (tx, _rx) = mpsc::channel(1);
        let (s1, _) = d.open_session("n1", tx);
        d.close_session("n1", &s1);
        assert!(d.goodbye("n1", &s1));
        assert!(!lock(&d.closed).contains_key("n1"), "no longer a crash");
        // A node that never had a session cannot say goodbye.
        assert!(!d.goodbye("n2", "x"));
    }
}
