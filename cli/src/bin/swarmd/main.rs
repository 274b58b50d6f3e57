//! `swarmd`: the Shoal node daemon (manager and/or worker).
#![forbid(unsafe_code)]

mod args;
mod identity;
mod serve;

use anyhow::{bail, Context};
use args::Args;
use clap::Parser;
use identity::{load_managers, Identity};
use shoal_agent::{Agent, AgentConfig};
use shoal_manager::raft::storage::EngineKind;
use shoal_manager::{Manager, ManagerConfig};
use shoal_proto::model::{
    self, now_ms, Cluster, Command, Network, NetworkDriver, Node, NodeRole, NodeState,
};
use shoal_proto::pb::dispatcher_client::DispatcherClient;
use shoal_proto::pb::{self, RegisterRequest};
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::watch;
use tracing::{info, warn};

fn main() {
    // `swarmd __task-init -- PROGRAM ARGS…`: the init of a sandboxed task (see the agent's
    // executor::init), not a node daemon.
    let argv: Vec<String> = std::env::args().collect();
    if argv.get(1).map(String::as_str) == Some(shoal_agent::executor::init::ARG) {
        let rest = match argv.get(2).map(String::as_str) {
            Some("--") => &argv[3..],
            _ => &argv[2..],
        };
        std::process::exit(shoal_agent::executor::init::run(rest));
    }
    let args = Args::parse();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_new(&args.log).unwrap_or_else(|_| "info".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    let result = rt.block_on(run(args));
    // Everything that must finish has finished inside `run`; do not wait for idle blocking-pool
    // threads (up to seconds): a restart must be quicker than node-down detection for the
    // node's tasks to be adopted rather than replaced.
    rt.shutdown_timeout(std::time::Duration::from_millis(100));
    if let Err(e) = result {
        eprintln!("swarmd: {e:#}");
        std::process::exit(1);
    }
}

struct Node_ {
    args: Args,
    state_dir: PathBuf,
    advertise: String,
    hostname: String,
    engine: EngineKind,
}

async fn run(args: Args) -> anyhow::Result<()> {
    let engine: EngineKind = args
        .storage_engine
        .parse()
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    let advertise = match &args.advertise_addr {
        Some(a) => a.clone(),
        None if args.listen_addr.starts_with("0.0.0.0") || args.listen_addr.starts_with("[::]") => {
            bail!("--listen-addr {} is a wildcard: pass --advertise-addr IP:PORT so other nodes can reach this one", args.listen_addr)
        }
        None => args.listen_addr.clone(),
    };
    advertise
        .parse::<std::net::SocketAddr>()
        .with_context(|| format!("--advertise-addr {advertise:?} must be IP:PORT"))?;
    for l in &args.labels {
        if !l.contains('=') {
            bail!("invalid --label {l:?}: expected key=value");
        }
    }
    let state_dir = args.state_dir.clone();
    std::fs::create_dir_all(&state_dir)
        .with_context(|| format!("cannot create --state-dir {}", state_dir.display()))?;
    let hostname = args.hostname.clone().unwrap_or_else(machine_hostname);
    let node = Node_ {
        args,
        state_dir,
        advertise,
        hostname,
        engine,
    };
    let (stop_tx, stop_rx) = watch::channel(false);

    let mut running: Option<RunningManager> = None;
    let ident = match Identity::load(&node.state_dir)? {
        Some(id) => {
            info!(node.id = %id.node_id, manager = id.manager, "restarting with the identity in the state dir");
            id
        }
        None => match node.args.join.clone() {
            Some(addr) => join(&node, &addr).await?,
            None => {
                let (id, m) = init(&node).await?;
                running = Some(m);
                id
            }
        },
    };
    let mut managers = load_managers(&node.state_dir);
    if let Some(j) = &node.args.join {
        if !managers.contains(j) {
            managers.push(j.clone());
        }
    }
    if ident.manager && running.is_none() {
        running = Some(start_manager(&node, &ident).await?);
    }
    if ident.manager && !managers.contains(&node.advertise) {
        managers.insert(0, node.advertise.clone());
    }
    let data_plane = match node.args.data_plane.as_str() {
        "kernel" => {
            let dp = shoal_agent::network::DataPlane::new(&node.state_dir)
                .await
                .context(
                    "--data-plane kernel needs root (network namespaces, bridges, nftables)",
                )?;
            Some(dp)
        }
        _ => None,
    };
    let agent = Agent::new(AgentConfig {
        node_id: ident.node_id.clone(),
        managers,
        state_dir: node.state_dir.clone(),
        data_plane,
    });
    let agent_task = tokio::spawn(agent.clone().run(stop_rx.clone()));
    println!(
        "swarmd: node {} ({}) running as {}",
        ident.node_id,
        node.hostname,
        if ident.manager { "manager" } else { "worker" }
    );

    // Promotion and demotion arrive through the session as the node's role.
    let mut node_rx = agent.node();
    let mut ident = ident;
    let shutdown = shutdown_signal();
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            _ = &mut shutdown => break,
            r = node_rx.changed() => {
                if r.is_err() { break }
                let Some(n) = node_rx.borrow_and_update().clone() else { continue };
                let want_manager = n.role() == pb::NodeRole::Manager;
                if want_manager && running.is_none() {
                    info!("this node was promoted: starting its manager");
                    ident.manager = true;
                    ident.raft_id = n.raft_id;
                    ident.save(&node.state_dir)?;
                    match start_manager(&node, &ident).await {
                        Ok(m) => running = Some(m),
                        Err(e) => warn!(error = %e, "could not start the manager after promotion"),
                    }
                } else if !want_manager && ident.manager {
                    info!("this node was demoted: stopping its manager");
                    ident.manager = false;
                    ident.save(&node.state_dir)?;
                    if let Some(r) = running.take() {
                        r.stop().await;
                    }
                }
            }
        }
    }
    info!("shutting down");
    let _ = stop_tx.send(true);
    let _ = tokio::time::timeout(Duration::from_secs(15), agent_task).await;
    if let Some(r) = running {
        r.stop().await;
    }
    Ok(())
}

async fn shutdown_signal() {
    use tokio::signal::unix::{signal, SignalKind};
    let mut term = signal(SignalKind::terminate()).expect("signal handler");
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
}

fn machine_hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|s| s.trim().to_string())
        .unwrap_or_else(|_| "localhost".into())
}

fn manager_config(node: &Node_, ident: &Identity) -> ManagerConfig {
    let mut cfg = ManagerConfig::new(
        ident.node_id.clone(),
        ident.raft_id,
        node.advertise.clone(),
        node.state_dir.clone(),
    );
    cfg.engine = node.engine;
    cfg.election_timeout = node.args.election_timeout;
    cfg.raft_heartbeat = node.args.raft_heartbeat;
    cfg.heartbeat_period = node.args.heartbeat_period;
    cfg.heartbeat_misses = node.args.heartbeat_misses;
    cfg.snapshot_every = node.args.snapshot_every;
    cfg
}

/// A manager and the switch that stops its servers.
struct RunningManager {
    m: Arc<Manager>,
    stop: watch::Sender<bool>,
}

impl RunningManager {
    async fn stop(self) {
        let _ = self.stop.send(true);
        self.m.shutdown().await;
    }
}

async fn start_manager(node: &Node_, ident: &Identity) -> anyhow::Result<RunningManager> {
    let m = Manager::start(manager_config(node, ident)).await?;
    let (stop, rx) = watch::channel(false);
    serve::serve(
        m.clone(),
        &node.args.listen_addr,
        &node.state_dir.join("swarmd.sock"),
        rx,
    )
    .await?;
    Ok(RunningManager { m, stop })
}

fn labels(node: &Node_) -> BTreeMap<String, String> {
    node.args
        .labels
        .iter()
        .filter_map(|l| {
            l.split_once('=')
                .map(|(k, v)| (k.to_string(), v.to_string()))
        })
        .collect()
}

/// First node: a new cluster with this node as its only manager.
async fn init(node: &Node_) -> anyhow::Result<(Identity, RunningManager)> {
    let pool = shoal_manager::allocator::ipam::Subnet::parse(&node.args.default_addr_pool)
        .map_err(|e| anyhow::anyhow!("--default-addr-pool: {e}"))?;
    let size = node.args.default_addr_pool_mask_len;
    if size < pool.prefix || size > 29 {
        bail!(
            "--default-addr-pool-mask-len {size} must be between the pool's prefix ({}) and 29",
            pool.prefix
        );
    }
    let ident = Identity {
        node_id: model::new_id(),
        manager: true,
        raft_id: rand::random::<u64>() | 1,
        cluster_id: model::new_id(),
    };
    let running = start_manager(node, &ident).await?;
    let m = running.m.clone();
    m.initialize().await?;
    let deadline = Instant::now() + Duration::from_secs(10);
    while !m.is_leader() {
        if Instant::now() > deadline {
            bail!("this node did not become leader of its new cluster within 10 s");
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let now = now_ms();
    let digest = shoal_manager::dispatcher::cluster_digest(ident.cluster_id.as_bytes());
    let cluster = Cluster {
        id: ident.cluster_id.clone(),
        worker_secret: model::new_id(),
        manager_secret: model::new_id(),
        digest,
        default_addr_pool: pool.to_string(),
        subnet_size: size,
        created_ms: now,
        version: 0,
    };
    let me = Node {
        id: ident.node_id.clone(),
        hostname: node.hostname.clone(),
        role: NodeRole::Manager,
        state: NodeState::Ready,
        addr: node.advertise.clone(),
        labels: labels(node),
        raft_id: ident.raft_id,
        created_ms: now,
        updated_ms: now,
        ..Default::default()
    };
    let ingress = Network {
        id: model::new_id(),
        name: "ingress".into(),
        driver: NetworkDriver::Overlay,
        ingress: true,
        created_ms: now,
        ..Default::default()
    };
    m.write(Command::InitCluster(cluster.clone())).await?;
    m.write(Command::PutNode(me)).await?;
    m.write(Command::CreateNetwork(ingress)).await?;
    for (name, driver, subnet) in model::PREDEFINED_NETWORKS {
        let net = Network {
            id: model::new_id(),
            name: name.into(),
            driver,
            subnet: subnet.into(),
            created_ms: now,
            ..Default::default()
        };
        m.write(Command::CreateNetwork(net)).await?;
    }
    ident.save(&node.state_dir)?;
    println!(
        "Swarm initialized: current node ({}) is now a manager.\n\nTo add a worker to this swarm, run:\n\n    swarmd --join {} --token {} --state-dir DIR --listen-addr IP:PORT\n\nTo add a manager, use `swarmctl swarm join-token manager`.",
        ident.node_id,
        node.advertise,
        cluster.token(NodeRole::Worker)
    );
    Ok((ident, running))
}

/// Joins an existing cluster through `addr` with the token.
async fn join(node: &Node_, addr: &str) -> anyhow::Result<Identity> {
    let token = node.args.token.clone().unwrap_or_default();
    shoal_manager::dispatcher::parse_token(&token).map_err(|e| anyhow::anyhow!("{e}"))?;
    let raft_id = rand::random::<u64>() | 1;
    let req = RegisterRequest {
        token,
        hostname: node.hostname.clone(),
        addr: node.advertise.clone(),
        node_id: String::new(),
        labels: labels(node).into_iter().collect(),
        raft_id,
    };
    let deadline = Instant::now() + Duration::from_secs(15);
    let resp = loop {
        let ch = tonic::transport::Endpoint::from_shared(format!("http://{addr}"))?
            .connect_timeout(Duration::from_secs(1))
            .connect_lazy();
        match DispatcherClient::new(ch).register(req.clone()).await {
            Ok(r) => break r.into_inner(),
            Err(s)
                if matches!(
                    s.code(),
                    tonic::Code::PermissionDenied | tonic::Code::InvalidArgument
                ) =>
            {
                bail!("joining {addr} refused: {}", s.message())
            }
            Err(s) if Instant::now() > deadline => {
                bail!("cannot join through {addr}: {}", s.message())
            }
            Err(_) => tokio::time::sleep(Duration::from_millis(200)).await,
        }
    };
    let manager = resp.role() == pb::NodeRole::Manager;
    let ident = Identity {
        node_id: resp.node_id,
        manager,
        raft_id: resp.raft_id,
        cluster_id: resp.cluster_id,
    };
    ident.save(&node.state_dir)?;
    if !resp.managers.is_empty() {
        std::fs::write(
            node.state_dir.join("managers.json"),
            serde_json::to_vec(&resp.managers)?,
        )?;
    }
    println!(
        "This node joined a swarm as a {}.",
        if manager { "manager" } else { "worker" }
    );
    Ok(ident)
}
