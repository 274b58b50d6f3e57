//! The agent's session with the managers: find the leader, hold a session stream, heartbeat,
//! and fail over to another manager when the one in use dies.

pub mod backoff;
mod exec_attach;
mod image_op;
mod logs;
pub mod tables;

use crate::background::Background;
use crate::certs;
use crate::config::AgentConfig;
use crate::executor::files::DataBook;
use crate::executor::{Containers, OciExecutor, ProcessExecutor, RuntimeExecutor, StoreImages};
use crate::images::NodeImages;
use crate::reporter::Reporter;
use crate::worker::Worker;
use shoal_proto::model::TaskState;
use shoal_proto::pb;
use shoal_proto::pb::dispatcher_client::DispatcherClient;
use shoal_security::Transport;
use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::watch;
use tonic::transport::{Channel, Endpoint};
use tracing::{debug, info, warn};

/// Default of [`AgentConfig::goodbye_timeout`].
pub const DEFAULT_GOODBYE_TIMEOUT: Duration = Duration::from_secs(1);

/// Metadata key a follower uses to name the leader (same as the manager's).
pub const LEADER_ADDR_KEY: &str = "shoal-leader-addr";

/// Why a session ended (other than a redirect or a stop). Its text is what the agent logs.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// No connection to the manager could be made.
    #[error(transparent)]
    Connect(#[from] tonic::transport::Error),
    /// The manager answered with an error status (a refusal among them: see
    /// [`Error::is_refusal`]).
    #[error("{:?}: {}", .0.code(), .0.message())]
    Status(tonic::Status),
    /// The manager closed the session stream.
    #[error("stream closed")]
    StreamClosed,
    /// The status reporter ended without an error (it never does).
    #[error("reporter stopped")]
    ReporterStopped,
}

impl Error {
    /// Whether the managers refuse this node (a revoked, removed or unknown node): something
    /// the operator must act on, as opposed to a manager that is down.
    pub fn is_refusal(&self) -> bool {
        matches!(self, Error::Status(s) if matches!(
            s.code(),
            tonic::Code::PermissionDenied | tonic::Code::Unauthenticated
        ))
    }
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
    /// Everything the agent spawns; stopped when [`Agent::run`] returns.
    background: Background,
    /// The node's image store for `swarmctl image …`, or why there is none.
    images: image_op::Images,
    /// The log follows of the current session.
    follows: logs::Follows,
    /// The node leaves its swarm (`swarm leave`): stopping ends its tasks, without a goodbye.
    leaving: std::sync::atomic::AtomicBool,
    /// The network tables as the managers last sent them, with their versions (deltas apply
    /// onto them).
    tables: Mutex<tables::HeldTables>,
}

impl std::fmt::Debug for Agent {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Agent")
            .field("node_id", &self.cfg.node_id)
            .finish()
    }
}

fn channel(
    cfg: &AgentConfig,
    transport: &Transport,
    addr: &str,
) -> Result<Channel, tonic::transport::Error> {
    let ep = Endpoint::from_shared(format!("http://{addr}"))?
        .connect_timeout(cfg.connect_timeout)
        .tcp_nodelay(true)
        .http2_keep_alive_interval(cfg.keepalive_interval)
        .keep_alive_timeout(cfg.keepalive_timeout);
    Ok(transport.lazy(ep))
}

enum SessionEnd {
    /// Go to this address next.
    Redirect(String),
    /// Try the next manager.
    Failed(Error),
    /// Shut down.
    Stop,
}

/// Why the node cannot run containers.
#[derive(Debug, thiserror::Error)]
enum NoContainers {
    #[error(transparent)]
    Config(#[from] crate::config::ConfigError),
    #[error(transparent)]
    Store(#[from] shoal_image::StoreError),
    #[error(transparent)]
    Registry(#[from] shoal_image::registry::RegistryError),
}

/// The OCI executor of `cfg`: its runtime, the node's image store and registries; pull
/// progress goes to the tasks' `Preparing` status. The store comes back too, for `swarmctl
/// image …`, sharing one lock with the executor's pulls and collection.
fn oci_executor(
    cfg: &AgentConfig,
    reporter: &Reporter,
    me: Option<std::path::PathBuf>,
) -> Result<(OciExecutor, Arc<NodeImages>), NoContainers> {
    let runtime = cfg.check_oci_runtime()?;
    let store = shoal_image::Store::open(cfg.image_dir())?;
    let client = shoal_image::registry::Client::new(cfg.registry.clone())?;
    let images = StoreImages::new(store, client.clone())
        .with_pull_timeout(cfg.image_pull_timeout)
        .with_gc_grace(cfg.image_gc_grace);
    let images =
        Arc::new(NodeImages::new(images, client).with_pull_timeout(cfg.image_pull_timeout));
    let r = reporter.clone();
    let mut ex = OciExecutor::new(
        cfg.state_dir.join("tasks"),
        runtime,
        images.clone(),
        cfg.node_id.clone(),
    )
    .with_hostname(cfg.hostname.clone())
    .with_status(Arc::new(move |task: &str, msg: &str| {
        r.report(task, TaskState::Preparing, msg, "", None, 0)
    }));
    match cfg.init_program() {
        Some(init) => {
            if let Ok(true) = crate::executor::oci::init_program::is_dynamic(&init) {
                warn!(
                    "the init program {} is dynamically linked: containers with --init run \
                     only from images that have its C library (use tini-static)",
                    init.display()
                );
            }
            ex = ex.with_init(init);
        }
        None => warn!(
            "no init program (install the tini package, or --init-path): containers with \
             --init will fail"
        ),
    }
    // `swarmd __console`: this very binary holds `--tty` containers' terminals.
    if let Some(me) = me {
        ex = ex.with_console_program(me);
    }
    Ok((ex, images))
}

impl Agent {
    /// A new agent; call [`Agent::run`]. Must be called within a tokio runtime.
    pub fn new(cfg: AgentConfig) -> Arc<Agent> {
        let background = Background::new();
        let reporter = Reporter::new(cfg.report_resend);
        let mut executor = ProcessExecutor::new(cfg.state_dir.join("tasks"), cfg.node_id.clone())
            .with_hostname(cfg.hostname.clone())
            .with_timings(cfg.process);
        // Sandboxed tasks run under `swarmd __task-init` (this very binary) as their PID 1.
        let me = std::env::current_exe().ok();
        if let Some(dp) = &cfg.data_plane {
            dp.set_timings(cfg.network);
            if let Some(me) = &me {
                executor = executor.with_init(me.clone());
            }
        }
        let data = DataBook::default();
        let (containers, images) = match oci_executor(&cfg, &reporter, me) {
            Ok((oci, images)) => (
                Containers::Run(Arc::new(oci.with_data(data.clone()))),
                Ok(images),
            ),
            Err(e) => {
                warn!("container tasks will be rejected: {e}");
                (Containers::Refuse(e.to_string()), Err(e.to_string()))
            }
        };
        let executor = RuntimeExecutor::new(Arc::new(executor), containers);
        let worker = Worker::new(
            Arc::new(executor),
            reporter.clone(),
            cfg.worker,
            background.clone(),
        )
        .with_data_plane(cfg.data_plane.clone())
        .with_data(data);
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
            background,
            images,
            follows: logs::Follows::default(),
            leaving: Default::default(),
            tables: Mutex::default(),
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

    /// The tasks assigned to this node, with the status this node knows (see
    /// [`Worker::local_tasks`]).
    pub fn local_tasks(&self) -> Vec<pb::Task> {
        self.worker.local_tasks()
    }

    /// Connection counters of this node's balancers (`swarmd --metrics-addr`).
    pub async fn lb_connections(&self) -> Vec<crate::network::BackendConnections> {
        self.worker.lb_connections().await
    }

    /// Known manager addresses.
    pub fn managers(&self) -> Vec<String> {
        self.managers
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Takes back the tasks a previous run left, then holds sessions until `stop` turns true;
    /// then stops all tasks (or leaves them to the next run) and everything it spawned.
    pub async fn run(self: Arc<Self>, mut stop: watch::Receiver<bool>) {
        let adopted: HashSet<String> = self.worker.adopt().await.into_iter().collect();
        if let Some(dp) = self.cfg.data_plane.clone() {
            // Sandboxes of tasks that did not survive are leftovers.
            self.background
                .spawn(async move { dp.janitor(&adopted).await });
        }
        let cfg = &self.cfg;
        let mut next: Option<String> = None;
        let mut idx = 0usize;
        let mut backoff =
            backoff::Backoff::new(cfg.reconnect_backoff_min, cfg.reconnect_backoff_max);
        // The last refusal warned about, so that it is said once.
        let mut refused: Option<String> = None;
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
            // The leader of that session followed logs for clients that now ask the next one.
            self.follows.clear();
            match end {
                SessionEnd::Stop => break,
                SessionEnd::Redirect(a) => {
                    debug!(leader = %a, "redirected to the leader");
                    next = Some(a);
                    // Spread over [delay, 2 delay): after a leader change every node is
                    // redirected at once.
                    let pause = cfg.redirect_delay
                        + backoff::spread(cfg.redirect_delay, rand::random::<f64>());
                    tokio::time::sleep(pause).await;
                }
                SessionEnd::Failed(e) => {
                    let why = e.to_string();
                    debug!(manager = %addr, why, "session ended");
                    // A refusal says something the operator must act on: say it (once).
                    if e.is_refusal() {
                        if refused.as_deref() != Some(why.as_str()) {
                            warn!(manager = %addr, why, "the managers refuse this node");
                            refused = Some(why);
                        }
                    } else {
                        refused = None;
                    }
                    // Jittered: thousands of nodes that lost the same leader do not retry in
                    // step.
                    tokio::select! {
                        _ = tokio::time::sleep(backoff.next_pause()) => {}
                        _ = stop.changed() => break,
                    }
                    continue;
                }
            }
            backoff.reset();
        }
        if self.leaving.load(std::sync::atomic::Ordering::SeqCst) {
            info!(
                tasks = self.worker.running(),
                "agent stopping: the node leaves its swarm; stopping tasks"
            );
            self.worker.stop_all().await;
            if let Some(dp) = &self.cfg.data_plane {
                // Nothing of the old swarm stays: balancers and published ports, overlay peers,
                // sandboxes and addresses.
                if let Err(e) = dp.apply_lb(&[]).await {
                    warn!(error = %e, "leaving: cannot remove the balancers");
                }
                dp.set_peers(Vec::new()).await;
                dp.janitor(&HashSet::new()).await;
            }
        } else if self.worker.tasks_outlive_agent() {
            info!(
                tasks = self.worker.running(),
                "agent stopping; leaving the tasks running: a restarted swarmd adopts them"
            );
            self.goodbye().await;
        } else {
            info!("agent stopping; stopping tasks");
            self.worker.stop_all().await;
        }
        self.background.shutdown().await;
    }

    /// Makes the coming stop a departure from the swarm (`swarm leave`): the tasks are
    /// stopped rather than left for a restart, and the managers are not told to wait for the
    /// node (it is Down at their next heartbeat check).
    pub fn leave_on_stop(&self) {
        self.leaving
            .store(true, std::sync::atomic::Ordering::SeqCst);
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
        let timeout = self.cfg.goodbye_timeout;
        req.set_timeout(timeout);
        match tokio::time::timeout(timeout, client.goodbye(req)).await {
            Ok(Ok(r)) => info!(
                restart_grace_ms = r.into_inner().restart_grace_ms,
                "said goodbye to the managers: they keep this node's tasks while it restarts"
            ),
            Ok(Err(s)) => warn!(error = %s.message(), "the managers did not take the goodbye"),
            Err(_) => warn!("no answer to the goodbye within {timeout:?}"),
        }
    }

    async fn session(&self, addr: &str) -> SessionEnd {
        let cfg = &self.cfg;
        let ch = match channel(cfg, &cfg.transport, addr) {
            Ok(c) => c,
            Err(e) => return SessionEnd::Failed(e.into()),
        };
        let mut client = DispatcherClient::new(ch);
        let req = pb::SessionRequest {
            node_id: self.cfg.node_id.clone(),
            hostname: String::new(),
            table_deltas: true,
        };
        let mut stream = match client.session(req).await {
            Ok(s) => s.into_inner(),
            Err(s) => return end_of(&s),
        };
        let first = match stream.message().await {
            Ok(Some(m)) => m,
            Ok(None) => return SessionEnd::Failed(Error::StreamClosed),
            Err(s) => return end_of(&s),
        };
        let session_id = first.session_id.clone();
        info!(manager = addr, session = %session_id, "session established");
        self.connected.send_replace(Some(addr.to_string()));
        *self.last_session.lock().unwrap_or_else(|e| e.into_inner()) =
            Some((client.clone(), session_id.clone()));
        let floor = cfg.min_heartbeat_period;
        let period = Duration::from_millis(first.heartbeat_period_ms).max(floor);
        if let Err(e) = self.handle(first) {
            return resync(addr, &e);
        }
        let heartbeat = heartbeat_loop(
            client.clone(),
            self.cfg.node_id.clone(),
            session_id.clone(),
            period,
            floor,
        );
        let report =
            self.reporter
                .run(client.clone(), self.cfg.node_id.clone(), session_id.clone());
        let messages = async {
            loop {
                match stream.message().await {
                    Ok(Some(m)) => {
                        self.serve_requests(&client, &m);
                        if let Err(e) = self.handle(m) {
                            return resync(addr, &e);
                        }
                    }
                    Ok(None) => return SessionEnd::Failed(Error::StreamClosed),
                    Err(s) => return end_of(&s),
                }
            }
        };
        let renewals = self.renew_loop(client.clone());
        tokio::select! {
            end = messages => end,
            end = renewals => end,
            s = heartbeat => end_of(&s),
            r = report => match r { Err(s) => end_of(&s), Ok(()) => SessionEnd::Failed(Error::ReporterStopped) },
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
                let (node, timeout) = (&self.cfg.node_id, self.cfg.renew_timeout);
                match certs::renew(&mut client, &creds, node, timeout).await {
                    Ok(issuer) => {
                        failures = 0;
                        let info = creds.current().info.clone();
                        info!(role = %info.identity.role, not_after = info.not_after, "node certificate renewed");
                        *self.issuer.lock().unwrap_or_else(|e| e.into_inner()) = issuer;
                    }
                    Err(e) => {
                        failures += 1;
                        warn!(error = %e, "certificate renewal failed; retrying");
                        let pause =
                            (self.cfg.renew_retry_step * failures).min(self.cfg.renew_retry_max);
                        tokio::time::sleep(pause).await;
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

    /// Serves the requests a session message carries (logs, balancer report, exec, interactive
    /// exec, images), each in
    /// the background: their answers go back over `client`.
    fn serve_requests(&self, client: &DispatcherClient<Channel>, m: &pb::SessionMessage) {
        let node = &self.cfg.node_id;
        if let Some(lr) = m.log_request.clone() {
            let ctx = self.worker.log_ctx(node);
            let publish = logs::ToLeader(client.clone());
            self.follows.handle(lr, ctx, publish, &self.background);
        }
        if let Some(lr) = m.lb_request.clone() {
            let (mut client, worker, node) = (client.clone(), self.worker.clone(), node.clone());
            self.background.spawn(async move {
                let mut r = worker.lb_report(&lr.network_id).await;
                r.request_id = lr.request_id;
                r.node_id = node;
                if let Err(e) = client.publish_lb(r).await {
                    warn!(error = %e, "could not publish a balancer report");
                }
            });
        }
        if let Some(es) = m.exec_session.clone() {
            let (client, worker, node) = (client.clone(), self.worker.clone(), node.clone());
            self.background
                .spawn(exec_attach::serve(client, worker, node, es));
        }
        if let Some(op) = m.image_op.clone() {
            let (client, worker, node) = (client.clone(), self.worker.clone(), node.clone());
            let images = self.images.clone();
            self.background
                .spawn(image_op::serve(client, images, worker, node, op));
        }
        if let Some(er) = m.exec_request.clone() {
            let (mut client, worker, node) = (client.clone(), self.worker.clone(), node.clone());
            let timeout =
                Duration::from_millis(u64::from(er.timeout_ms)).max(self.cfg.min_exec_timeout);
            self.background.spawn(async move {
                let mut r = worker.exec(&er.task_id, &er.cmd, timeout).await;
                r.request_id = er.request_id;
                r.node_id = node;
                if let Err(e) = client.publish_exec(r).await {
                    warn!(error = %e, "could not publish an exec result");
                }
            });
        }
    }

    /// Takes one session message; [`tables::Stale`] when its table updates do not apply onto
    /// what this node holds (nothing of them is applied then).
    fn handle(&self, m: pb::SessionMessage) -> Result<(), tables::Stale> {
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
                    if let Err(e) = shoal_security::durable::write(&path, &json, 0o600) {
                        warn!(error = %e, "cannot save the managers' addresses");
                    }
                }
            }
        }
        if let Some(n) = m.node {
            self.node.send_replace(Some(n));
        }
        if let Some(mut a) = m.assignments {
            self.tables
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .apply(&mut a)?;
            self.worker.apply(&a);
        }
        Ok(())
    }
}

/// Ends a session whose table updates did not apply: a new session with the same manager
/// starts with every table whole.
fn resync(addr: &str, e: &tables::Stale) -> SessionEnd {
    warn!(manager = addr, error = %e, "network tables out of step with the managers");
    SessionEnd::Redirect(addr.to_string())
}

fn end_of(s: &tonic::Status) -> SessionEnd {
    if let Some(addr) = s
        .metadata()
        .get(LEADER_ADDR_KEY)
        .and_then(|v| v.to_str().ok())
    {
        return SessionEnd::Redirect(addr.to_string());
    }
    SessionEnd::Failed(Error::Status(s.clone()))
}

async fn heartbeat_loop(
    mut client: DispatcherClient<Channel>,
    node_id: String,
    session_id: String,
    mut period: Duration,
    floor: Duration,
) -> tonic::Status {
    loop {
        tokio::time::sleep(period).await;
        let mut req = tonic::Request::new(pb::HeartbeatRequest {
            node_id: node_id.clone(),
            session_id: session_id.clone(),
        });
        req.set_timeout(period * 2);
        match client.heartbeat(req).await {
            Ok(r) => period = Duration::from_millis(r.into_inner().period_ms).max(floor),
            Err(s) => return s,
        }
    }
}
