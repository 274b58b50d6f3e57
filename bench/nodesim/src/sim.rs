//! One simulated node: joins with the token (a real CSR, so its own certificate and mutual TLS),
//! then holds sessions with the leader as the agent does (redirects, jittered backoff,
//! heartbeats at the period the managers give), applies its assignments and reports each task
//! running (or failed, for a fraction of them) without starting anything.

use shoal_agent::join::{join, JoinConfig};
use shoal_agent::session::backoff::{self, Backoff};
use shoal_agent::session::tables::HeldTables;
use shoal_proto::pb::dispatcher_client::DispatcherClient;
use shoal_proto::pb::{self, TaskState};
use shoal_security::Transport;
use std::collections::{HashMap, HashSet};
use std::path::PathBuf;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering::Relaxed};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;
use tonic::transport::{Channel, Endpoint};

/// Same key as the manager's and the agent's.
const LEADER_ADDR_KEY: &str = "shoal-leader-addr";

/// Counters shared by every simulated node (read by the scenario).
#[derive(Debug, Default)]
pub struct Stats {
    /// Nodes that joined.
    pub joined: AtomicU64,
    /// Join failures (each retried).
    pub join_errors: AtomicU64,
    /// Sessions held now.
    pub sessions: AtomicI64,
    /// Bytes (protobuf) received on session streams and in heartbeat/status answers.
    pub bytes_in: AtomicU64,
    /// Bytes (protobuf) sent in heartbeats and status reports.
    pub bytes_out: AtomicU64,
    /// Session messages received.
    pub messages: AtomicU64,
    /// Heartbeats acknowledged.
    pub heartbeats: AtomicU64,
    /// Tasks reported running and acknowledged (committed), minus those that left.
    pub running: AtomicI64,
    /// Tasks reported failed.
    pub failed: AtomicU64,
    /// Tasks a node saw for the first time (new tasks; after a failover: rescheduled ones).
    pub new_tasks: AtomicU64,
    /// Session attempts that failed (not redirects).
    pub session_errors: AtomicU64,
    /// Redirects to the leader followed.
    pub redirects: AtomicU64,
    /// Sessions restarted because a table delta did not apply onto what the node held.
    pub resyncs: AtomicU64,
}

/// What every node shares.
#[derive(Debug, Clone)]
pub struct Shared {
    /// Manager addresses (`ip:port`) to join through and fall back to.
    pub managers: Vec<String>,
    /// The worker join token.
    pub token: String,
    /// Where the nodes' certificates go.
    pub dir: PathBuf,
    /// Fraction of tasks reported failed instead of running.
    pub fail_fraction: f64,
    /// Ask for the network tables as deltas (`SessionRequest.table_deltas`), as the agent
    /// does; false: as an older agent, whole.
    pub table_deltas: bool,
    /// Counters.
    pub stats: Arc<Stats>,
    /// Per node: sessions opened so far.
    pub opens: Arc<Vec<AtomicU64>>,
    /// Turns true to stop.
    pub stop: watch::Receiver<bool>,
}

/// Joins node `i` (retrying until `stop`), returning its id and transport.
pub async fn join_node(sh: &Shared, i: usize) -> Option<(String, Transport)> {
    let mut backoff = Backoff::new(Duration::from_millis(100), Duration::from_secs(2));
    let mut stop = sh.stop.clone();
    loop {
        let mut cfg = JoinConfig::new(
            sh.managers[0].clone(),
            sh.token.clone(),
            sh.dir.join(format!("sim{i:05}")),
        );
        cfg.hostname = format!("sim{i:05}");
        cfg.advertise_addr = format!("127.0.0.1:{}", 10_000 + i % 50_000);
        cfg.timeout = Duration::from_secs(30);
        cfg.call_timeout = Duration::from_secs(30);
        tokio::select! {
            r = join(&cfg) => match r {
                Ok(j) => {
                    sh.stats.joined.fetch_add(1, Relaxed);
                    return Some((j.node_id, j.transport));
                }
                Err(e) => {
                    let n = sh.stats.join_errors.fetch_add(1, Relaxed);
                    if n < 5 {
                        eprintln!("nodesim: sim{i:05}: join failed (retrying): {e}");
                    }
                }
            },
            _ = stop.changed() => return None,
        }
        tokio::time::sleep(backoff.next_pause()).await;
    }
}

enum End {
    Redirect(String),
    Failed,
}

/// Holds sessions for node `i` until `stop`.
pub async fn run_node(sh: Shared, i: usize, node_id: String, transport: Transport) {
    let mut stop = sh.stop.clone();
    let mut backoff = Backoff::new(Duration::from_millis(50), Duration::from_secs(2));
    let mut next: Option<String> = None;
    let mut idx = i;
    // Tasks this node has seen (to count new ones) — across sessions.
    let mut node = SimNode {
        seen: HashSet::new(),
        tasks: HashMap::new(),
        tables: HeldTables::default(),
    };
    loop {
        let addr = match next.take() {
            Some(a) => a,
            None => {
                idx = (idx + 1) % sh.managers.len();
                sh.managers[idx].clone()
            }
        };
        let end = tokio::select! {
            e = node.session(&sh, i, &node_id, &transport, &addr) => e,
            _ = stop.changed() => return,
        };
        let pause = match end {
            End::Redirect(a) => {
                sh.stats.redirects.fetch_add(1, Relaxed);
                next = Some(a);
                backoff.reset();
                let d = Duration::from_millis(20);
                d + backoff::spread(d, rand::random::<f64>())
            }
            End::Failed => {
                sh.stats.session_errors.fetch_add(1, Relaxed);
                backoff.next_pause()
            }
        };
        tokio::select! {
            _ = tokio::time::sleep(pause) => {}
            _ = stop.changed() => return,
        }
    }
}

/// A task as the node holds it: its desired state and what the node reported of it.
struct Held {
    desired: i32,
    reported: i32,
}

struct SimNode {
    seen: HashSet<String>,
    tasks: HashMap<String, Held>,
    /// The network tables, with their versions (deltas apply onto them as in the agent).
    tables: HeldTables,
}

fn channel(transport: &Transport, addr: &str) -> Option<Channel> {
    let ep = Endpoint::from_shared(format!("http://{addr}"))
        .ok()?
        .connect_timeout(Duration::from_secs(2))
        .tcp_nodelay(true)
        .http2_keep_alive_interval(Duration::from_secs(5))
        .keep_alive_timeout(Duration::from_secs(3));
    Some(transport.lazy(ep))
}

fn end_of(s: &tonic::Status) -> End {
    match s
        .metadata()
        .get(LEADER_ADDR_KEY)
        .and_then(|v| v.to_str().ok())
    {
        Some(a) => End::Redirect(a.to_string()),
        None => End::Failed,
    }
}

/// Decrements the session gauge when the session ends, however it ends.
struct Held1(Arc<Stats>);
impl Drop for Held1 {
    fn drop(&mut self) {
        self.0.sessions.fetch_sub(1, Relaxed);
    }
}

impl SimNode {
    async fn session(
        &mut self,
        sh: &Shared,
        i: usize,
        node_id: &str,
        transport: &Transport,
        addr: &str,
    ) -> End {
        use prost::Message;
        let Some(ch) = channel(transport, addr) else {
            return End::Failed;
        };
        let mut client = DispatcherClient::new(ch);
        let req = pb::SessionRequest {
            node_id: node_id.to_string(),
            hostname: String::new(),
            table_deltas: sh.table_deltas,
        };
        let mut stream = match client.session(req).await {
            Ok(s) => s.into_inner(),
            Err(s) => return end_of(&s),
        };
        let first = match stream.message().await {
            Ok(Some(m)) => m,
            Ok(None) => return End::Failed,
            Err(s) => return end_of(&s),
        };
        sh.stats.sessions.fetch_add(1, Relaxed);
        let _gauge = Held1(sh.stats.clone());
        sh.opens[i].fetch_add(1, Relaxed);
        sh.stats
            .bytes_in
            .fetch_add(first.encoded_len() as u64, Relaxed);
        sh.stats.messages.fetch_add(1, Relaxed);
        let session_id = first.session_id.clone();
        let mut period = Duration::from_millis(first.heartbeat_period_ms.max(50));
        if let Some(a) = first.assignments {
            if self.apply(sh, a).is_err() {
                return End::Redirect(addr.to_string());
            }
        }
        if let Err(s) = self.report(sh, &mut client, node_id, &session_id).await {
            return end_of(&s);
        }
        let mut beat = Box::pin(tokio::time::sleep(period));
        loop {
            tokio::select! {
                m = stream.message() => match m {
                    Ok(Some(m)) => {
                        sh.stats.bytes_in.fetch_add(m.encoded_len() as u64, Relaxed);
                        sh.stats.messages.fetch_add(1, Relaxed);
                        if let Some(a) = m.assignments {
                            if self.apply(sh, a).is_err() {
                                return End::Redirect(addr.to_string());
                            }
                        }
                        if let Err(s) = self.report(sh, &mut client, node_id, &session_id).await {
                            return end_of(&s);
                        }
                    }
                    Ok(None) => return End::Failed,
                    Err(s) => return end_of(&s),
                },
                _ = &mut beat => {
                    let hb = pb::HeartbeatRequest {
                        node_id: node_id.to_string(),
                        session_id: session_id.clone(),
                    };
                    sh.stats.bytes_out.fetch_add(hb.encoded_len() as u64, Relaxed);
                    let mut req = tonic::Request::new(hb);
                    req.set_timeout(period * 2);
                    match client.heartbeat(req).await {
                        Ok(r) => {
                            let r = r.into_inner();
                            sh.stats.bytes_in.fetch_add(r.encoded_len() as u64, Relaxed);
                            sh.stats.heartbeats.fetch_add(1, Relaxed);
                            period = Duration::from_millis(r.period_ms.max(50));
                        }
                        Err(s) => return end_of(&s),
                    }
                    beat = Box::pin(tokio::time::sleep(period));
                }
            }
        }
    }

    /// Takes an assignment message: a full one replaces what the node holds. Table updates
    /// apply onto the tables held (a stale one: resync, as the agent does).
    fn apply(&mut self, sh: &Shared, mut a: pb::Assignments) -> Result<(), ()> {
        if let Err(e) = self.tables.apply(&mut a) {
            if sh.stats.resyncs.fetch_add(1, Relaxed) < 5 {
                eprintln!("nodesim: {e}");
            }
            return Err(());
        }
        let running = TaskState::Running as i32;
        let leave = |h: &Held, st: &Stats| {
            if h.reported == running {
                st.running.fetch_sub(1, Relaxed);
            }
        };
        if a.full {
            let keep: HashSet<&str> = a.tasks.iter().map(|t| t.id.as_str()).collect();
            self.tasks.retain(|id, h| {
                let k = keep.contains(id.as_str());
                if !k {
                    leave(h, &sh.stats);
                }
                k
            });
        }
        for id in &a.removed {
            if let Some(h) = self.tasks.remove(id) {
                leave(&h, &sh.stats);
            }
        }
        for t in &a.tasks {
            if self.seen.insert(t.id.clone()) {
                sh.stats.new_tasks.fetch_add(1, Relaxed);
            }
            let known = t.status.as_ref().map_or(0, |s| s.state);
            let h = self.tasks.entry(t.id.clone()).or_insert(Held {
                desired: t.desired_state,
                reported: 0,
            });
            h.desired = t.desired_state;
            // The managers already have it running (a resync after a reconnect).
            if known >= running && h.reported < running {
                if known == running {
                    sh.stats.running.fetch_add(1, Relaxed);
                }
                h.reported = known;
            }
        }
        Ok(())
    }

    /// Reports what changed: tasks to run are running (or failed), tasks to stop are shut down.
    async fn report(
        &mut self,
        sh: &Shared,
        client: &mut DispatcherClient<Channel>,
        node_id: &str,
        session_id: &str,
    ) -> Result<(), tonic::Status> {
        use prost::Message;
        let running = TaskState::Running as i32;
        let mut updates = Vec::new();
        for (id, h) in &self.tasks {
            let to = if h.desired <= running {
                if h.reported >= running {
                    continue;
                }
                if fails(id, sh.fail_fraction) {
                    TaskState::Failed as i32
                } else {
                    running
                }
            } else {
                if h.reported >= TaskState::Complete as i32 {
                    continue;
                }
                TaskState::Shutdown as i32
            };
            updates.push(pb::TaskStatusUpdate {
                task_id: id.clone(),
                status: Some(pb::TaskStatus {
                    state: to,
                    message: if to == running {
                        "started"
                    } else {
                        "simulated"
                    }
                    .into(),
                    timestamp_ms: now_ms(),
                    ..Default::default()
                }),
            });
        }
        if updates.is_empty() {
            return Ok(());
        }
        let req = pb::UpdateTaskStatusRequest {
            node_id: node_id.to_string(),
            session_id: session_id.to_string(),
            updates,
        };
        sh.stats
            .bytes_out
            .fetch_add(req.encoded_len() as u64, Relaxed);
        let sent: Vec<(String, i32)> = req
            .updates
            .iter()
            .map(|u| (u.task_id.clone(), u.status.as_ref().map_or(0, |s| s.state)))
            .collect();
        client.update_task_status(req).await?;
        for (id, state) in sent {
            if let Some(h) = self.tasks.get_mut(&id) {
                if h.reported == running {
                    sh.stats.running.fetch_sub(1, Relaxed);
                }
                h.reported = state;
                if state == running {
                    sh.stats.running.fetch_add(1, Relaxed);
                } else if state == TaskState::Failed as i32 {
                    sh.stats.failed.fetch_add(1, Relaxed);
                }
            }
        }
        Ok(())
    }
}

/// Whether task `id` is one of the fraction reported failed (a stable choice per task).
fn fails(id: &str, fraction: f64) -> bool {
    if fraction <= 0.0 {
        return false;
    }
    // FNV-1a of the id, to [0, 1).
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in id.bytes() {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x100_0000_01b3);
    }
    (h % 10_000) as f64 / 10_000.0 < fraction
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}
