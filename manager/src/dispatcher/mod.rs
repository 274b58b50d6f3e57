//! Dispatcher: agent sessions, heartbeats, assignments and batched status writes. Sessions are
//! served by the leader only; a follower tells the agent where the leader is.
//!
//! * `relay`: requests the leader sends agents over their sessions and the replies.
//! * `exec_session`: interactive execs, a client's stream paired with the agent's.
//! * `image_relay`: `swarmctl image …` on a node, and `image load`'s upload paired likewise.
//! * `log_relay`: the batches of `service logs [-f]` from the agents to the relay that asked.
//! * `status`: task status updates, batched into raft writes by a leader actor.

mod assignments;
mod exec_session;
mod image_relay;
mod log_relay;
mod relay;
mod service;
mod status;
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
    to_agent: mpsc::Sender<ToAgent>,
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
            statuses: status::Queue::new(cfg),
            relay: relay::Relay::default(),
            exec_sessions: exec_session::ExecSessions::default(),
            uploads: image_relay::Uploads::default(),
            log_waiters: log_relay::LogWaiters::default(),
        }
    }

    /// Heartbeat period agents are told to use.
    pub fn period(&self) -> Duration {
        self.t.period
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
    }

    fn open_session(&self, node_id: &str, to_agent: mpsc::Sender<ToAgent>) -> String {
        let id = shoal_proto::model::new_id();
        lock(&self.goodbyes).remove(node_id);
        lock(&self.sessions).insert(
            node_id.to_string(),
            Session {
                id: id.clone(),
                last_seen: Instant::now(),
                to_agent,
            },
        );
        id
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

    /// Records a heartbeat; false if the session is unknown (the agent must open a new one).
    fn heartbeat(&self, node_id: &str, session_id: &str) -> bool {
        match lock(&self.sessions).get_mut(node_id) {
            Some(s) if s.id == session_id => {
                s.last_seen = Instant::now();
                true
            }
            _ => false,
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
    let (period, restart_grace) = (d.t.period, d.t.restart_grace);
    let expiry = period * d.t.misses;
    let mut tick = tokio::time::interval(period / 2);
    loop {
        tick.tick().await;
        let since = lock(&d.leader_since).unwrap_or_else(Instant::now);
        let changes: Vec<NodeStateChange> = {
            let state = m.store.read();
            let sessions = lock(&d.sessions);
            let mut closed = lock(&d.closed);
            closed.retain(|_, at| at.elapsed() <= period);
            let goodbyes = lock(&d.goodbyes);
            state
                .nodes
                .values()
                .filter_map(|n| match sessions.get(n.id.as_str()) {
                    Some(s) if s.last_seen.elapsed() <= expiry => (n.state != NodeState::Ready)
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
                        < (expiry * 2).as_millis() as i64 =>
                    {
                        None
                    }
                    None if since.elapsed() > expiry * 2 => Some(change(
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
    fn a_goodbye_ends_the_session_and_starts_the_restart_grace() {
        let d = dispatcher();
        let (tx, _rx) = mpsc::channel(1);
        let s1 = d.open_session("n1", tx.clone());
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
    fn a_goodbye_after_the_stream_closed_still_counts() {
        let d = dispatcher();
        let (tx, _rx) = mpsc::channel(1);
        let s1 = d.open_session("n1", tx);
        d.close_session("n1", &s1);
        assert!(d.goodbye("n1", &s1));
        assert!(!lock(&d.closed).contains_key("n1"), "no longer a crash");
        // A node that never had a session cannot say goodbye.
        assert!(!d.goodbye("n2", "x"));
    }
}
