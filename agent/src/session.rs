//! The agent's session with the managers: find the leader, hold a session stream, heartbeat,
//! and fail over to another manager when the one in use dies.

use crate::certs;
use crate::executor::ProcessExecutor;
use crate::reporter::Reporter;
use crate::worker::Worker;
use shoal_proto::pb::dispatcher_client::DispatcherClient;
use shoal_proto::pb::{self, LogLine};
use shoal_security::Transport;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::watch;
use tonic::transport::{Channel, Endpoint};
use tracing::{debug, info, warn};

/// Longest a clean stop waits for the managers to take its goodbye.
pub const GOODBYE_TIMEOUT: Duration = Duration::from_secs(1);

/// Metadata key a follower uses to name the leader (same as the manager's).
pub const LEADER_ADDR_KEY: &str = "shoal-leader-addr";

/// Agent settings.
#[derive(Debug, Clone)]
pub struct AgentConfig {
    /// This node's id.
    pub node_id: String,
    /// This node's host name (`swarmd --hostname`): tasks on the `host` network see it.
    pub hostname: String,
    /// Managers to try, in order (updated from session messages).
    pub managers: Vec<String>,
    /// Directory for task files and the managers list.
    pub state_dir: PathBuf,
    /// The data plane tasks run in (`--data-plane kernel`); `None` runs them as plain processes.
    pub data_plane: Option<crate::network::DataPlane>,
    /// How connections to managers are secured (mutual TLS with the node's certificate, which
    /// the agent keeps renewed).
    pub transport: Transport,
}

/// A running agent.
pub struct Agent {
    cfg: AgentConfig,
    managers: Mutex<Vec<String>>,
    worker: Worker,
    reporter: Reporter,
    node: watch::Sender<Option<pb::Node>>,
    connected: watch::Sender<Option<String>>,
    /// Role and signing root as the managers last said.
    cluster: watch::Sender<certs::Cluster>,
    /// Digest of the root that signed the node's certificate, as far as the node knows.
    issuer: Mutex<String>,
    /// The last session held (its manager and id): where a clean stop says goodbye.
    last_session: Mutex<Option<(DispatcherClient<Channel>, String)>>,
}

impl std::fmt::Debug for Agent {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Agent")
            .field("node_id", &self.cfg.node_id)
            .finish()
    }
}

fn channel(transport: &Transport, addr: &str) -> Result<Channel, tonic::transport::Error> {
    let ep = Endpoint::from_shared(format!("http://{addr}"))?
        .connect_timeout(Duration::from_millis(500))
        .tcp_nodelay(true)
        .http2_keep_alive_interval(Duration::from_secs(5))
        .keep_alive_timeout(Duration::from_secs(3));
    Ok(transport.lazy(ep))
}

enum SessionEnd {
    /// Go to this address next.
    Redirect(String),
    /// Try the next manager.
    Failed(String),
    /// Shut down.
    Stop,
}

impl Agent {
    /// A new agent; call [`Agent::run`].
    pub fn new(cfg: AgentConfig) -> Arc<Agent> {
        let reporter = Reporter::default();
        let mut executor = ProcessExecutor::new(cfg.state_dir.join("tasks"), cfg.node_id.clone())
            .with_hostname(cfg.hostname.clone());
        if cfg.data_plane.is_some() {
            // Sandboxed tasks run under `swarmd __task-init` (this very binary) as their PID 1.
            if let Ok(me) = std::env::current_exe() {
                executor = executor.with_init(me);
            }
        }
        let worker =
            Worker::new(executor, reporter.clone()).with_data_plane(cfg.data_plane.clone());
        let adopted: std::collections::HashSet<String> = worker.adopt().into_iter().collect();
        if let Some(dp) = cfg.data_plane.clone() {
            // Sandboxes of tasks that did not survive are leftovers.
            tokio::spawn(async move { dp.janitor(&adopted).await });
        }
        Arc::new(Agent {
            managers: Mutex::new(cfg.managers.clone()),
            cfg,
            worker,
            reporter,
            node: watch::channel(None).0,
            connected: watch::channel(None).0,
            cluster: watch::channel(certs::Cluster::default()).0,
            issuer: Mutex::new(String::new()),
            last_session: Mutex::new(None),
        })
    }

    /// The node as last seen in a session message (role changes arrive here).
    pub fn node(&self) -> watch::Receiver<Option<pb::Node>> {
        self.node.subscribe()
    }

    /// The manager this agent holds a session with, if any.
    pub fn connected(&self) -> watch::Receiver<Option<String>> {
        self.connected.subscribe()
    }

    /// Known manager addresses.
    pub fn managers(&self) -> Vec<String> {
        self.managers
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Holds sessions until `stop` turns true, then stops all tasks.
    pub async fn run(self: Arc<Self>, mut stop: watch::Receiver<bool>) {
        let mut next: Option<String> = None;
        let mut idx = 0usize;
        let mut backoff = Duration::from_millis(50);
        let mut refused = String::new();
        loop {
            if *stop.borrow() {
                break;
            }
            let managers = self.managers();
            let addr = match next.take() {
                Some(a) => a,
                None if managers.is_empty() => {
                    warn!("no manager address known");
                    String::new()
                }
                None => {
                    idx = (idx + 1) % managers.len();
                    managers[idx].clone()
                }
            };
            let end = tokio::select! {
                end = self.session(&addr) => end,
                _ = stop.changed() => SessionEnd::Stop,
            };
            self.connected.send_replace(None);
            match end {
                SessionEnd::Stop => break,
                SessionEnd::Redirect(a) => {
                    debug!(leader = %a, "redirected to the leader");
                    next = Some(a);
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
                SessionEnd::Failed(why) => {
                    debug!(manager = %addr, why, "session ended");
                    // A refusal says something the operator must act on: say it (once).
                    if why.starts_with("Permission") || why.starts_with("Unauthenticated") {
                        if why != refused {
                            warn!(manager = %addr, why, "the managers refuse this node");
                            refused = why.clone();
                        }
                    } else {
                        refused.clear();
                    }
                    tokio::select! {
                        _ = tokio::time::sleep(backoff) => {}
                        _ = stop.changed() => break,
                    }
                    backoff = (backoff * 2).min(Duration::from_millis(500));
                    continue;
                }
            }
            backoff = Duration::from_millis(50);
        }
        if self.worker.tasks_outlive_agent() {
            info!(
                tasks = self.worker.running(),
                "agent stopping; leaving the tasks running: a restarted swarmd adopts them"
            );
            self.goodbye().await;
        } else {
            info!("agent stopping; stopping tasks");
            self.worker.stop_all().await;
        }
    }

    /// Tells the managers this node stops cleanly and comes back (bounded: a manager that does
    /// not answer at once is no reason to delay the stop). They then keep its tasks for their
    /// restart grace instead of replacing them at the next heartbeat check.
    async fn goodbye(&self) {
        let last = self
            .last_session
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take();
        let Some((mut client, session_id)) = last else {
            return;
        };
        let mut req = tonic::Request::new(pb::GoodbyeRequest {
            node_id: self.cfg.node_id.clone(),
            session_id,
        });
        req.set_timeout(GOODBYE_TIMEOUT);
        match tokio::time::timeout(GOODBYE_TIMEOUT, client.goodbye(req)).await {
            Ok(Ok(r)) => info!(
                restart_grace_ms = r.into_inner().restart_grace_ms,
                "said goodbye to the managers: they keep this node's tasks while it restarts"
            ),
            Ok(Err(s)) => warn!(error = %s.message(), "the managers did not take the goodbye"),
            Err(_) => warn!("no answer to the goodbye within {GOODBYE_TIMEOUT:?}"),
        }
    }

    async fn session(&self, addr: &str) -> SessionEnd {
        let ch = match channel(&self.cfg.transport, addr) {
            Ok(c) => c,
            Err(e) => return SessionEnd::Failed(e.to_string()),
        };
        let mut client = DispatcherClient::new(ch);
        let req = pb::SessionRequest {
            node_id: self.cfg.node_id.clone(),
            hostname: String::new(),
        };
        let mut stream = match client.session(req).await {
            Ok(s) => s.into_inner(),
            Err(s) => return end_of(&s),
        };
        let first = match stream.message().await {
            Ok(Some(m)) => m,
            Ok(None) => return SessionEnd::Failed("stream closed".into()),
            Err(s) => return end_of(&s),
        };
        let session_id = first.session_id.clone();
        info!(manager = addr, session = %session_id, "session established");
        self.connected.send_replace(Some(addr.to_string()));
        *self.last_session.lock().unwrap_or_else(|e| e.into_inner()) =
            Some((client.clone(), session_id.clone()));
        let period = Duration::from_millis(first.heartbeat_period_ms.max(50));
        self.handle(first);
        let heartbeat = heartbeat_loop(
            client.clone(),
            self.cfg.node_id.clone(),
            session_id.clone(),
            period,
        );
        let report =
            self.reporter
                .run(client.clone(), self.cfg.node_id.clone(), session_id.clone());
        let messages = async {
            loop {
                match stream.message().await {
                    Ok(Some(m)) => {
                        if let Some(lr) = m.log_request.clone() {
                            tokio::spawn(publish_logs(
                                client.clone(),
                                self.worker.clone(),
                                self.cfg.node_id.clone(),
                                lr,
                            ));
                        }
                        if let Some(lr) = m.lb_request.clone() {
                            let (mut client, worker, node) = (
                                client.clone(),
                                self.worker.clone(),
                                self.cfg.node_id.clone(),
                            );
                            tokio::spawn(async move {
                                let mut r = worker.lb_report(&lr.network_id).await;
                                r.request_id = lr.request_id;
                                r.node_id = node;
                                if let Err(e) = client.publish_lb(r).await {
                                    warn!(error = %e, "could not publish a balancer report");
                                }
                            });
                        }
                        if let Some(er) = m.exec_request.clone() {
                            let (mut client, worker, node) = (
                                client.clone(),
                                self.worker.clone(),
                                self.cfg.node_id.clone(),
                            );
                            tokio::spawn(async move {
                                let timeout =
                                    Duration::from_millis(u64::from(er.timeout_ms.max(1000)));
                                let mut r = worker.exec(&er.task_id, &er.cmd, timeout).await;
                                r.request_id = er.request_id;
                                r.node_id = node;
                                if let Err(e) = client.publish_exec(r).await {
                                    warn!(error = %e, "could not publish an exec result");
                                }
                            });
                        }
                        self.handle(m);
                    }
                    Ok(None) => return SessionEnd::Failed("stream closed".into()),
                    Err(s) => return end_of(&s),
                }
            }
        };
        let renewals = self.renew_loop(client.clone());
        tokio::select! {
            end = messages => end,
            end = renewals => end,
            s = heartbeat => end_of(&s),
            r = report => match r { Err(s) => end_of(&s), Ok(()) => SessionEnd::Failed("reporter stopped".into()) },
        }
    }

    /// Renews the node's certificate whenever [`certs::due`] says so, through the session's
    /// manager. Failures are retried; they never end the session.
    async fn renew_loop(&self, mut client: DispatcherClient<Channel>) -> SessionEnd {
        let Some(creds) = self.cfg.transport.credentials().cloned() else {
            return std::future::pending().await;
        };
        let mut sched = certs::Schedule::default();
        let mut view = self.cluster.subscribe();
        let mut failures = 0u32;
        loop {
            let cluster = view.borrow_and_update().clone();
            let issuer = self
                .issuer
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .clone();
            if let Some(why) = certs::due(&creds, &mut sched, &cluster, &issuer) {
                info!(why, "renewing the node certificate");
                match certs::renew(&mut client, &creds, &self.cfg.node_id).await {
                    Ok(issuer) => {
                        failures = 0;
                        let info = creds.current().info.clone();
                        info!(role = %info.identity.role, not_after = info.not_after, "node certificate renewed");
                        *self.issuer.lock().unwrap_or_else(|e| e.into_inner()) = issuer;
                    }
                    Err(e) => {
                        failures += 1;
                        warn!(error = %e, "certificate renewal failed; retrying");
                        tokio::time::sleep(Duration::from_secs(u64::from(failures.min(10)))).await;
                    }
                }
                continue;
            }
            let wait = certs::wait(&creds, &mut sched);
            tokio::select! {
                _ = tokio::time::sleep(wait) => {}
                r = view.changed() => if r.is_err() { return std::future::pending().await },
            }
        }
    }

    fn handle(&self, m: pb::SessionMessage) {
        if let Some(creds) = self.cfg.transport.credentials() {
            if !m.roots_pem.is_empty() {
                match creds.set_roots(&m.roots_pem) {
                    Ok(true) => info!("the cluster's trusted roots changed"),
                    Ok(false) => {}
                    Err(e) => warn!(error = %e, "could not install the cluster's roots"),
                }
            }
            let mut issuer = self.issuer.lock().unwrap_or_else(|e| e.into_inner());
            if issuer.is_empty() {
                if let Some(n) = &m.node {
                    *issuer = n.cert_issuer.clone();
                }
            }
        }
        let view = certs::Cluster {
            role: m.node.as_ref().map(|n| n.role()),
            ca_digest: m.ca_digest.clone(),
        };
        self.cluster.send_if_modified(|v| {
            let changed = *v != view;
            *v = view;
            changed
        });
        if !m.managers.is_empty() {
            let mut cur = self.managers.lock().unwrap_or_else(|e| e.into_inner());
            if *cur != m.managers {
                *cur = m.managers.clone();
                let path = self.cfg.state_dir.join("managers.json");
                if let Ok(json) = serde_json::to_vec(&m.managers) {
                    let _ = std::fs::write(path, json);
                }
            }
        }
        if let Some(n) = m.node {
            self.node.send_replace(Some(n));
        }
        if let Some(a) = m.assignments {
            self.worker.apply(&a);
        }
    }
}

fn end_of(s: &tonic::Status) -> SessionEnd {
    if let Some(addr) = s
        .metadata()
        .get(LEADER_ADDR_KEY)
        .and_then(|v| v.to_str().ok())
    {
        return SessionEnd::Redirect(addr.to_string());
    }
    SessionEnd::Failed(format!("{:?}: {}", s.code(), s.message()))
}

async fn heartbeat_loop(
    mut client: DispatcherClient<Channel>,
    node_id: String,
    session_id: String,
    mut period: Duration,
) -> tonic::Status {
    loop {
        tokio::time::sleep(period).await;
        let mut req = tonic::Request::new(pb::HeartbeatRequest {
            node_id: node_id.clone(),
            session_id: session_id.clone(),
        });
        req.set_timeout(period * 2);
        match client.heartbeat(req).await {
            Ok(r) => period = Duration::from_millis(r.into_inner().period_ms.max(50)),
            Err(s) => return s,
        }
    }
}

async fn publish_logs(
    mut client: DispatcherClient<Channel>,
    worker: Worker,
    node_id: String,
    lr: pb::LogRequest,
) {
    let mut lines = Vec::new();
    let mut error = String::new();
    for id in &lr.task_ids {
        for stream in ["stdout", "stderr"] {
            match worker.executor().read_log(id, stream, lr.tail) {
                Ok(ls) => lines.extend(ls.into_iter().map(|data| LogLine {
                    task_id: id.clone(),
                    task_name: String::new(),
                    node_id: node_id.clone(),
                    stream: stream.to_string(),
                    data,
                })),
                Err(e) => error = format!("reading logs of task {id}: {e}"),
            }
        }
    }
    let req = pb::PublishLogsRequest {
        node_id,
        request_id: lr.request_id,
        lines,
        error,
    };
    if let Err(e) = client.publish_logs(req).await {
        warn!(error = %e, "could not publish logs");
    }
}
