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
use shoal_security::{Credentials, NodeIdentity, NodeKeyPair, Role, Transport};
use std::collections::BTreeMap;
use std::os::unix::fs::PermissionsExt;
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
    /// Mutual TLS with the node's certificate (plain TCP with `--insecure-plaintext`).
    transport: Transport,
}

impl Node_ {
    /// Where the node's key, certificate and trusted roots are kept.
    fn certs_dir(&self) -> PathBuf {
        self.state_dir.join("certificates")
    }
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
    if args.cert_expiry < shoal_manager::ca::MIN_CERT_EXPIRY {
        bail!(
            "--cert-expiry must be at least {:?}",
            shoal_manager::ca::MIN_CERT_EXPIRY
        );
    }
    let state_dir = args.state_dir.clone();
    std::fs::create_dir_all(&state_dir)
        .with_context(|| format!("cannot create --state-dir {}", state_dir.display()))?;
    // Raft data holds the CA key: the state dir is for root only.
    std::fs::set_permissions(&state_dir, std::fs::Permissions::from_mode(0o700))
        .with_context(|| format!("cannot restrict --state-dir {}", state_dir.display()))?;
    let hostname = args.hostname.clone().unwrap_or_else(machine_hostname);
    let mut node = Node_ {
        args,
        state_dir,
        advertise,
        hostname,
        engine,
        transport: Transport::Plain,
    };
    let (stop_tx, stop_rx) = watch::channel(false);

    let mut running: Option<RunningManager> = None;
    let ident = match Identity::load(&node.state_dir)? {
        Some(id) => {
            info!(node.id = %id.node_id, manager = id.manager, "restarting with the identity in the state dir");
            node.transport = load_transport(&node, &id)?;
            id
        }
        None => match node.args.join.clone() {
            Some(addr) => {
                let (id, t) = join(&node, &addr).await?;
                node.transport = t;
                id
            }
            None => {
                let (id, m, t) = init(&mut node).await?;
                node.transport = t;
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
            let choice = node
                .args
                .lb_backend
                .parse()
                .map_err(|e| anyhow::anyhow!("--lb-backend: {e}"))?;
            dp.set_lb_backend(choice).await;
            dp.set_dns_upstream(dns_upstream(node.args.dns_upstream.as_deref())?);
            Some(dp)
        }
        _ => None,
    };
    let mut agent_cfg = AgentConfig::new(
        ident.node_id.clone(),
        node.hostname.clone(),
        managers,
        node.state_dir.clone(),
    );
    agent_cfg.data_plane = data_plane;
    agent_cfg.transport = node.transport.clone();
    agent_cfg.validate()?;
    let agent = Agent::new(agent_cfg);
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
                    wait_for_manager_certificate(&node.transport).await;
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
    cfg.restart_grace = node.args.restart_grace;
    cfg.snapshot_every = node.args.snapshot_every;
    cfg.transport = node.transport.clone();
    cfg
}

/// `--dns-upstream`: `none`, `IP[:PORT],…` (port 53 by default), or the node's resolv.conf.
fn dns_upstream(arg: Option<&str>) -> anyhow::Result<Vec<std::net::SocketAddr>> {
    let Some(arg) = arg else {
        return Ok(shoal_agent::dns::system_upstream());
    };
    if arg.trim() == "none" {
        return Ok(Vec::new());
    }
    arg.split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|s| {
            s.parse::<std::net::SocketAddr>()
                .or_else(|_| s.parse::<std::net::IpAddr>().map(|ip| (ip, 53).into()))
                .map_err(|_| {
                    anyhow::anyhow!("--dns-upstream {s:?}: expected IP or IP:PORT (or none)")
                })
        })
        .collect()
}

/// The transport of a node restarting with its identity: its saved certificates.
fn load_transport(node: &Node_, ident: &Identity) -> anyhow::Result<Transport> {
    if ident.plaintext {
        if !node.args.insecure_plaintext {
            warn!("this node belongs to a cluster without TLS (--insecure-plaintext)");
        }
        return Ok(Transport::Plain);
    }
    let dir = node.certs_dir();
    let creds = Credentials::load(&dir)
        .with_context(|| format!("cannot read the node's certificates in {}", dir.display()))?
        .ok_or_else(|| anyhow::anyhow!("no certificates in {}: this state dir's node cannot prove who it is; clear the state dir and join again with a token", dir.display()))?;
    let id = creds.identity();
    if id.node_id != ident.node_id || id.cluster_id != ident.cluster_id {
        bail!(
            "the certificate in {} is for node {} of cluster {}, not this node ({} of {})",
            dir.display(),
            id.node_id,
            id.cluster_id,
            ident.node_id,
            ident.cluster_id
        );
    }
    Ok(Transport::Node(creds))
}

/// A promoted node needs a manager certificate before its manager talks Raft: the agent asks
/// for one as soon as it hears of the promotion.
async fn wait_for_manager_certificate(t: &Transport) {
    let Some(creds) = t.credentials() else { return };
    let mut rx = creds.subscribe();
    let ok = tokio::time::timeout(Duration::from_secs(10), async {
        while creds.identity().role != Role::Manager {
            if rx.changed().await.is_err() {
                break;
            }
        }
    })
    .await;
    if ok.is_err() {
        warn!("no manager certificate 10 s after the promotion; starting the manager anyway");
    }
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
async fn init(node: &mut Node_) -> anyhow::Result<(Identity, RunningManager, Transport)> {
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
        plaintext: node.args.insecure_plaintext,
    };
    let now = now_ms();
    let mut cluster = Cluster {
        id: ident.cluster_id.clone(),
        worker_secret: model::new_id(),
        manager_secret: model::new_id(),
        digest: String::new(),
        default_addr_pool: pool.to_string(),
        subnet_size: size,
        created_ms: now,
        ..Default::default()
    };
    let mut me = Node {
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
    if node.args.insecure_plaintext {
        warn!("--insecure-plaintext: this cluster has no CA; nodes talk plain gRPC and anyone who can reach a manager can join with a token or call its APIs");
        cluster.digest = shoal_manager::dispatcher::cluster_digest(ident.cluster_id.as_bytes());
    } else {
        // The root CA, and this node's own certificate from it, before anything listens.
        let root = shoal_manager::ca::init_cluster_ca(&mut cluster, node.args.cert_expiry)?;
        let key = NodeKeyPair::generate()?;
        let who = NodeIdentity {
            node_id: ident.node_id.clone(),
            role: Role::Manager,
            cluster_id: ident.cluster_id.clone(),
        };
        let cert = root.issue(&key.csr()?, &who, node.args.cert_expiry)?;
        let info = shoal_security::ca::cert_info(&cert)?;
        me.cert_not_after_ms = info.not_after * 1000;
        me.cert_issuer = cluster.digest.clone();
        let creds = Credentials::new(cert, key.pem(), root.cert_pem, Some(node.certs_dir()))?;
        node.transport = Transport::Node(creds);
    }
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
    Ok((ident, running, node.transport.clone()))
}

/// Joins an existing cluster through `addr` with the token.
///
/// With TLS (the default): first fetch the cluster's root CA without trusting the manager, and
/// accept it only if its digest is the one in the token; then register over TLS checked against
/// that root, sending a certificate signing request for a key made here. The node's certificate
/// comes back with the node id.
async fn join(node: &Node_, addr: &str) -> anyhow::Result<(Identity, Transport)> {
    let token = node.args.token.clone().unwrap_or_default();
    let (digest, _) =
        shoal_manager::dispatcher::parse_token(&token).map_err(|e| anyhow::anyhow!("{e}"))?;
    let deadline = Instant::now() + Duration::from_secs(15);
    let plaintext = node.args.insecure_plaintext;
    let (transport, key) = if plaintext {
        (Transport::Plain, None)
    } else {
        let probe = Transport::unverified()?;
        let roots = retry(
            addr,
            deadline,
            |ch| async move {
                DispatcherClient::new(ch)
                    .get_root_ca(pb::Empty {})
                    .await
                    .map(|r| r.into_inner().roots_pem)
            },
            &probe,
        )
        .await?;
        let trusted = Transport::trusting_digest(&roots, digest).map_err(|_| {
            anyhow::anyhow!(
                "joining {addr} refused: the manager there does not hold the root CA named by the token (digest {digest}): it belongs to another cluster, or something in between is impersonating it; check --join and --token"
            )
        })?;
        (trusted, Some(NodeKeyPair::generate()?))
    };
    let req = RegisterRequest {
        token,
        hostname: node.hostname.clone(),
        addr: node.advertise.clone(),
        node_id: String::new(),
        labels: labels(node).into_iter().collect(),
        raft_id: rand::random::<u64>() | 1,
        csr: match &key {
            Some(k) => k.csr()?,
            None => String::new(),
        },
    };
    let resp = retry(
        addr,
        deadline,
        |ch| {
            let req = req.clone();
            async move {
                DispatcherClient::new(ch)
                    .register(req)
                    .await
                    .map(|r| r.into_inner())
            }
        },
        &transport,
    )
    .await?;
    let transport = match key {
        None => Transport::Plain,
        Some(key) => {
            if resp.certificate.is_empty() {
                bail!("joining {addr}: the managers issued no certificate (is the cluster running with --insecure-plaintext? then pass it here too)");
            }
            let creds = Credentials::new(
                resp.certificate.clone(),
                key.pem(),
                resp.roots_pem.clone(),
                Some(node.certs_dir()),
            )
            .context("the certificate the managers issued does not check out")?;
            if creds.identity().node_id != resp.node_id {
                bail!("joining {addr}: the certificate issued is for another node");
            }
            Transport::Node(creds)
        }
    };
    let manager = resp.role() == pb::NodeRole::Manager;
    let ident = Identity {
        node_id: resp.node_id,
        manager,
        raft_id: resp.raft_id,
        cluster_id: resp.cluster_id,
        plaintext,
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
    Ok((ident, transport))
}

/// Calls `f` on a channel to `addr` until it answers, is refused for good (permission, bad
/// argument) or `deadline` passes.
async fn retry<T, F, Fut>(
    addr: &str,
    deadline: Instant,
    f: F,
    transport: &Transport,
) -> anyhow::Result<T>
where
    F: Fn(tonic::transport::Channel) -> Fut,
    Fut: std::future::Future<Output = Result<T, tonic::Status>>,
{
    loop {
        let ep = tonic::transport::Endpoint::from_shared(format!("http://{addr}"))?
            .connect_timeout(Duration::from_secs(1))
            .timeout(Duration::from_secs(10));
        match f(transport.lazy(ep)).await {
            Ok(r) => return Ok(r),
            Err(s)
                if matches!(
                    s.code(),
                    tonic::Code::PermissionDenied
                        | tonic::Code::InvalidArgument
                        | tonic::Code::Unauthenticated
                ) =>
            {
                bail!("joining {addr} refused: {}", s.message())
            }
            Err(s) if Instant::now() > deadline => {
                let cause = match std::error::Error::source(&s) {
                    Some(src) => shoal_cli::client::error_chain(src),
                    None => s.message().to_string(),
                };
                bail!("cannot join through {addr}: {cause}")
            }
            Err(_) => tokio::time::sleep(Duration::from_millis(200)).await,
        }
    }
}
