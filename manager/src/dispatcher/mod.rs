//! Dispatcher: agent sessions, heartbeats, assignments and batched status writes. Sessions are
//! served by the leader only; a follower tells the agent where the leader is.

mod assignments;
mod service;
mod tokens;

pub use assignments::AssignmentSet;
pub use service::{by_node, DispatcherService, LEADER_ADDR_KEY};
pub use tokens::{check_token, cluster_digest, parse_token, TokenError};

use crate::manager::Manager;
use shoal_proto::model::{now_ms, Command, NodeState, TaskStatus};
use shoal_proto::pb;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::{mpsc, oneshot};
use tracing::{info, warn};

/// Longest a status batch waits for more updates before it is written.
pub const STATUS_BATCH_WINDOW: Duration = Duration::from_millis(20);
/// Most status updates in one raft entry.
pub const STATUS_BATCH_MAX: usize = 10_000;

struct Session {
    id: String,
    last_seen: Instant,
    to_agent: mpsc::Sender<ToAgent>,
}

/// A request the leader sends an agent over its session stream.
#[derive(Debug)]
pub enum ToAgent {
    /// Send these tasks' logs.
    Logs(pb::LogRequest),
    /// Run a command in a task.
    Exec(pb::ExecRequest),
    /// Report a network's balancer.
    Lb(pb::LbRequest),
}

type StatusBatch = (
    Vec<(String, TaskStatus)>,
    oneshot::Sender<Result<(), String>>,
);

/// In-memory dispatcher state. Lives on every manager; used on the leader.
pub struct Dispatcher {
    period: Duration,
    misses: u32,
    restart_grace: Duration,
    sessions: Mutex<HashMap<String, Session>>,
    /// When each node's last session closed: a node whose `swarmd` restarts reconnects within
    /// a heartbeat period, and is not marked down (and its tasks replaced) meanwhile.
    closed: Mutex<HashMap<String, Instant>>,
    /// When each node said goodbye (its swarmd stopped cleanly, leaving its tasks running): it
    /// gets `restart_grace` to come back before it is Down.
    goodbyes: Mutex<HashMap<String, Instant>>,
    leader_since: Mutex<Option<Instant>>,
    status_tx: mpsc::UnboundedSender<StatusBatch>,
    status_rx: tokio::sync::Mutex<mpsc::UnboundedReceiver<StatusBatch>>,
    log_waiters: Mutex<HashMap<String, mpsc::Sender<pb::PublishLogsRequest>>>,
    exec_waiters: Mutex<HashMap<String, oneshot::Sender<pb::ExecResult>>>,
    lb_waiters: Mutex<HashMap<String, oneshot::Sender<pb::LbNodeReport>>>,
}

impl Dispatcher {
    /// A dispatcher expecting heartbeats every `period`; `misses` missed periods mark a node
    /// DOWN, and a node that said goodbye is DOWN after `restart_grace` without a session.
    pub fn new(period: Duration, misses: u32, restart_grace: Duration) -> Dispatcher {
        let (status_tx, status_rx) = mpsc::unbounded_channel();
        Dispatcher {
            period,
            misses,
            restart_grace,
            sessions: Mutex::new(HashMap::new()),
            closed: Mutex::new(HashMap::new()),
            goodbyes: Mutex::new(HashMap::new()),
            leader_since: Mutex::new(None),
            status_tx,
            status_rx: tokio::sync::Mutex::new(status_rx),
            log_waiters: Mutex::new(HashMap::new()),
            exec_waiters: Mutex::new(HashMap::new()),
            lb_waiters: Mutex::new(HashMap::new()),
        }
    }

    /// Heartbeat period agents are told to use.
    pub fn period(&self) -> Duration {
        self.period
    }

    /// How long a node that said goodbye may stay away before it is Down.
    pub fn restart_grace(&self) -> Duration {
        self.restart_grace
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

    /// Queues status updates for the next batch and waits until it is committed.
    pub async fn submit_statuses(&self, updates: Vec<(String, TaskStatus)>) -> Result<(), String> {
        let (tx, rx) = oneshot::channel();
        self.status_tx
            .send((updates, tx))
            .map_err(|_| "dispatcher stopped".to_string())?;
        match tokio::time::timeout(Duration::from_secs(10), rx).await {
            Ok(Ok(r)) => r,
            _ => Err("status update not committed (leadership changed?); retry".into()),
        }
    }

    /// Asks the agents running `tasks` (node id → task ids) for their logs and gathers the
    /// replies. Nodes without a session are reported in the errors.
    pub async fn collect_logs(
        &self,
        by_node: HashMap<String, Vec<String>>,
        tail: u32,
        node_name: impl Fn(&str) -> String,
    ) -> (Vec<pb::LogLine>, Vec<String>) {
        let request_id = shoal_proto::model::new_id();
        let (tx, mut rx) = mpsc::channel(64);
        lock(&self.log_waiters).insert(request_id.clone(), tx);
        let mut errors = Vec::new();
        let mut waiting = 0;
        for (node, task_ids) in by_node {
            let sender = lock(&self.sessions).get(&node).map(|s| s.to_agent.clone());
            let req = pb::LogRequest {
                request_id: request_id.clone(),
                task_ids,
                tail,
            };
            match sender {
                Some(s) if s.send(ToAgent::Logs(req)).await.is_ok() => waiting += 1,
                _ => errors.push(format!(
                    "node {} is not connected; logs of its tasks are unavailable",
                    node_name(&node)
                )),
            }
        }
        let mut lines = Vec::new();
        let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
        while waiting > 0 {
            match tokio::time::timeout_at(deadline, rx.recv()).await {
                Ok(Some(reply)) => {
                    waiting -= 1;
                    if !reply.error.is_empty() {
                        errors.push(format!(
                            "node {}: {}",
                            node_name(&reply.node_id),
                            reply.error
                        ));
                    }
                    lines.extend(reply.lines);
                }
                _ => {
                    errors.push(format!("{waiting} node(s) did not send logs within 5 s"));
                    break;
                }
            }
        }
        lock(&self.log_waiters).remove(&request_id);
        (lines, errors)
    }

    /// Asks the agent of `node` to run `cmd` in `task_id` and waits for the result (at most
    /// `timeout` plus a few seconds for the round trip).
    pub async fn exec(
        &self,
        node: &str,
        task_id: &str,
        cmd: Vec<String>,
        timeout: Duration,
    ) -> Result<pb::ExecResult, String> {
        let request_id = shoal_proto::model::new_id();
        let (tx, rx) = oneshot::channel();
        lock(&self.exec_waiters).insert(request_id.clone(), tx);
        let sender = lock(&self.sessions).get(node).map(|s| s.to_agent.clone());
        let req = pb::ExecRequest {
            request_id: request_id.clone(),
            task_id: task_id.to_string(),
            cmd,
            timeout_ms: timeout.as_millis().min(u32::MAX as u128) as u32,
        };
        let sent = match sender {
            Some(s) => s.send(ToAgent::Exec(req)).await.is_ok(),
            None => false,
        };
        let out = if !sent {
            Err("the task's node is not connected to the managers; retry when it is Ready".into())
        } else {
            match tokio::time::timeout(timeout + Duration::from_secs(5), rx).await {
                Ok(Ok(r)) => Ok(r),
                _ => Err(format!(
                    "no answer from the task's node within {}s",
                    timeout.as_secs() + 5
                )),
            }
        };
        lock(&self.exec_waiters).remove(&request_id);
        out
    }

    /// Asks the agent of `node` for its balancer of `network_id` (at most 5 s).
    pub async fn lb_report(
        &self,
        node: &str,
        network_id: &str,
    ) -> Result<pb::LbNodeReport, String> {
        let request_id = shoal_proto::model::new_id();
        let (tx, rx) = oneshot::channel();
        lock(&self.lb_waiters).insert(request_id.clone(), tx);
        let sender = lock(&self.sessions).get(node).map(|s| s.to_agent.clone());
        let req = pb::LbRequest {
            request_id: request_id.clone(),
            network_id: network_id.to_string(),
        };
        let sent = match sender {
            Some(s) => s.send(ToAgent::Lb(req)).await.is_ok(),
            None => false,
        };
        let out = if !sent {
            Err("not connected to the managers".into())
        } else {
            match tokio::time::timeout(Duration::from_secs(5), rx).await {
                Ok(Ok(r)) => Ok(r),
                _ => Err("no answer within 5 s".into()),
            }
        };
        lock(&self.lb_waiters).remove(&request_id);
        out
    }

    fn deliver_lb(&self, report: pb::LbNodeReport) {
        if let Some(tx) = lock(&self.lb_waiters).remove(&report.request_id) {
            let _ = tx.send(report);
        }
    }

    fn deliver_exec(&self, result: pb::ExecResult) {
        if let Some(tx) = lock(&self.exec_waiters).remove(&result.request_id) {
            let _ = tx.send(result);
        }
    }

    fn deliver_logs(&self, reply: pb::PublishLogsRequest) {
        let tx = lock(&self.log_waiters).get(&reply.request_id).cloned();
        if let Some(tx) = tx {
            let _ = tx.try_send(reply);
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// Leader actor: marks nodes DOWN when they miss their heartbeats, READY when they hold a
/// session. After a leader change nodes get twice the usual grace to reconnect. A node whose
/// session closed without a goodbye (a crash) gets one heartbeat period to reconnect; one that
/// said goodbye (a clean restart) is DISCONNECTED and gets the restart grace.
pub async fn monitor_heartbeats(m: Arc<Manager>) {
    let d = &m.dispatcher;
    let expiry = d.period * d.misses;
    let mut tick = tokio::time::interval(d.period / 2);
    loop {
        tick.tick().await;
        let since = lock(&d.leader_since).unwrap_or_else(Instant::now);
        let changes: Vec<(String, NodeState, String)> = {
            let state = m.store.read();
            let sessions = lock(&d.sessions);
            let mut closed = lock(&d.closed);
            closed.retain(|_, at| at.elapsed() <= d.period);
            let goodbyes = lock(&d.goodbyes);
            state
                .nodes
                .values()
                .filter_map(|n| match sessions.get(&n.id) {
                    Some(s) if s.last_seen.elapsed() <= expiry => (n.state != NodeState::Ready)
                        .then(|| (n.id.clone(), NodeState::Ready, String::new())),
                    Some(_) => Some((
                        n.id.clone(),
                        NodeState::Down,
                        "heartbeat failure".to_string(),
                    )),
                    None if n.state == NodeState::Down => None,
                    // It said goodbye (to this leader, or to one before it: then the grace
                    // counts from this leader's start).
                    None if n.state == NodeState::Disconnected => {
                        let gone = goodbyes.get(&n.id).copied().unwrap_or(since);
                        (gone.elapsed() > d.restart_grace).then(|| {
                            (
                                n.id.clone(),
                                NodeState::Down,
                                format!(
                                    "stopped cleanly and did not come back within {:?}",
                                    d.restart_grace
                                ),
                            )
                        })
                    }
                    None if goodbyes.contains_key(&n.id) => None,
                    // Its session just closed: a restarting swarmd gets one period to return.
                    None if closed.contains_key(&n.id) => None,
                    // A node that just joined has not opened its session yet.
                    None if now_ms().saturating_sub(n.created_ms)
                        < (expiry * 2).as_millis() as i64 =>
                    {
                        None
                    }
                    None if since.elapsed() > expiry * 2 => Some((
                        n.id.clone(),
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
        for (id, state, why) in &changes {
            info!(node.id = %id, ?state, why, "node state change");
        }
        if let Err(e) = m.raft.client_write(Command::SetNodeStates(changes)).await {
            warn!(error = %e, "could not write node states");
        }
    }
}

/// Leader actor: writes queued task status updates in batches (one raft entry per batch).
pub async fn write_statuses(m: Arc<Manager>) {
    let mut rx = m.dispatcher.status_rx.lock().await;
    loop {
        let Some(first) = rx.recv().await else { return };
        let mut updates = first.0;
        let mut waiters = vec![first.1];
        let deadline = tokio::time::Instant::now() + STATUS_BATCH_WINDOW;
        while updates.len() < STATUS_BATCH_MAX {
            match tokio::time::timeout_at(deadline, rx.recv()).await {
                Ok(Some((u, w))) => {
                    updates.extend(u);
                    waiters.push(w);
                }
                _ => break,
            }
        }
        let result = m
            .raft
            .client_write(Command::TaskStatuses(updates))
            .await
            .map(|_| ())
            .map_err(|e| e.to_string());
        for w in waiters {
            let _ = w.send(result.clone());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dispatcher() -> Dispatcher {
        Dispatcher::new(Duration::from_millis(500), 3, Duration::from_secs(15))
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
