//! `swarmd`: the Shoal node daemon (manager and/or worker).
//!
//! Wiring only: flags ([`args`]) → checked settings ([`node`]) → the node's identity (the one in
//! the state dir, or [`join`] a cluster, or [`init`] a new one) → its manager ([`role`]) and its
//! agent → wait for a signal. The cluster bootstrap lives in `shoal_manager::bootstrap`, the join
//! protocol in `shoal_agent::join`.
#![forbid(unsafe_code)]

mod args;
mod dataplane;
mod docker;
mod identity;
mod init;
mod join;
mod node;
mod role;
mod serve;

use args::Args;
use clap::Parser;
use identity::{load_managers, Identity};
use node::Node;
use role::RunningManager;
use shoal_agent::{Agent, AgentConfig};
use std::time::Duration;
use tokio::sync::watch;
use tracing::info;

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
    // `swarmd __console LOG`: holds a `--tty` container's terminal (see the agent's
    // executor::oci::console), not a node daemon.
    if argv.get(1).map(String::as_str) == Some(shoal_agent::executor::oci::console::ARG) {
        std::process::exit(shoal_agent::executor::oci::console::run(&argv[2..]));
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
    rt.shutdown_timeout(Duration::from_millis(100));
    if let Err(e) = result {
        eprintln!("swarmd: {e:#}");
        std::process::exit(1);
    }
}

async fn run(args: Args) -> anyhow::Result<()> {
    let mut node = Node::new(args)?;
    let (stop_tx, stop_rx) = watch::channel(false);

    let mut running: Option<RunningManager> = None;
    let ident = match Identity::load(&node.state_dir)? {
        Some(id) => {
            info!(node.id = %id.node_id, manager = id.manager, "restarting with the identity in the state dir");
            node.transport = id.transport(&node.certs_dir(), node.args.insecure_plaintext)?;
            id
        }
        None => match node.args.join.clone() {
            Some(addr) => {
                let (id, t) = join::join(&node, &addr).await?;
                node.transport = t;
                id
            }
            None => {
                let (id, m) = init::init(&mut node).await?;
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
        // Autolock: a locked manager waits here for `swarmctl swarm unlock`, then goes on
        // with the same start-up, in the same process.
        let unlock = match role::wait_unlocked(&node, shutdown_signal()).await? {
            role::Unlocked::Go(k) => k,
            role::Unlocked::Stopped => {
                info!("stopped while locked");
                return Ok(());
            }
        };
        running = Some(RunningManager::start(&node, &ident, unlock).await?);
    }
    if ident.manager && !managers.contains(&node.advertise) {
        managers.insert(0, node.advertise.clone());
    }
    let agent_managers = managers.clone();
    let mut agent_cfg = AgentConfig::new(
        ident.node_id.clone(),
        node.hostname.clone(),
        managers,
        node.state_dir.clone(),
    );
    agent_cfg.data_plane = dataplane::build(&node).await?;
    agent_cfg.transport = node.transport.clone();
    agent_cfg.oci_runtime = node.args.oci_runtime.clone();
    agent_cfg.init_path = node.args.init_path.clone();
    agent_cfg.registry = node.registry.clone();
    agent_cfg.validate()?;
    let agent = Agent::new(agent_cfg);
    let agent_task = tokio::spawn(agent.clone().run(stop_rx.clone()));
    println!(
        "swarmd: node {} ({}) running as {}",
        ident.node_id,
        node.hostname,
        if ident.manager { "manager" } else { "worker" }
    );

    let docker = docker::start(
        &node,
        &ident,
        &agent_managers,
        agent.clone(),
        stop_rx.clone(),
    )
    .await?;
    let running = role::follow(&node, ident, running, agent.node(), shutdown_signal()).await?;
    info!("shutting down");
    let _ = stop_tx.send(true);
    let _ = tokio::time::timeout(Duration::from_secs(15), agent_task).await;
    if let Some(d) = docker {
        let _ = tokio::time::timeout(Duration::from_secs(5), d).await;
    }
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
