//! `swarmd`: the Shoal node daemon (manager and/or worker).
//!
//! Wiring only: flags ([`args`]) → checked settings ([`node`]) → the control socket ([`serve`]:
//! the node's membership API, [`lifecycle`], and the Control API of whatever it is now) → one
//! membership after another ([`member`]: the identity in the state dir, or [`join`] a swarm, or
//! [`init`] a new one; its manager ([`role`]) and agent), in no swarm in between ([`idle`]) →
//! until a signal. [`metrics`] serves `--metrics-addr` alongside. The cluster bootstrap lives in `shoal_manager::bootstrap`, the join protocol
//! in `shoal_agent::join`.
#![forbid(unsafe_code)]

mod args;
mod dataplane;
mod docker;
mod identity;
mod idle;
mod init;
mod join;
mod lifecycle;
mod member;
mod metrics;
mod node;
mod role;
mod serve;

use args::Args;
use identity::Identity;
use init::InitOptions;
use lifecycle::LifecycleService;
use member::{Ended, Shared, Start};
use node::Node;
use serve::ControlFront;
use std::time::Duration;
use tokio::sync::watch;

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
    let matches = <Args as clap::CommandFactory>::command().get_matches();
    let listen_given =
        matches.value_source("listen_addr") == Some(clap::parser::ValueSource::CommandLine);
    let args = match <Args as clap::FromArgMatches>::from_arg_matches(&matches) {
        Ok(a) => a,
        Err(e) => e.exit(),
    };
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
    let result = rt.block_on(run(args, listen_given));
    // Everything that must finish has finished inside `run`; do not wait for idle blocking-pool
    // threads (up to seconds): a restart must be quicker than node-down detection for the
    // node's tasks to be adopted rather than replaced.
    rt.shutdown_timeout(Duration::from_millis(100));
    if let Err(e) = result {
        eprintln!("swarmd: {e:#}");
        std::process::exit(1);
    }
}

async fn run(args: Args, listen_given: bool) -> anyhow::Result<()> {
    let mut node = Node::new(args, listen_given)?;
    let (stop_tx, stop_rx) = watch::channel(false);
    tokio::spawn(async move {
        shutdown_signal().await;
        let _ = stop_tx.send(true);
    });
    let (lifecycle, mut requests, state) = LifecycleService::new();
    let front = ControlFront::new();
    let socket = serve::control_socket(
        &node.state_dir.join("swarmd.sock"),
        lifecycle,
        front.clone(),
        stop_rx.clone(),
    )?;
    let agent = docker::AgentSlot::default();
    let docker = docker::start(&node, agent.clone(), stop_rx.clone()).await?;
    let metrics = match node.args.metrics_addr {
        Some(addr) => {
            let sources = metrics::Sources {
                front: front.clone(),
                agent: agent.clone(),
            };
            Some(metrics::start(addr, sources, stop_rx.clone()).await?)
        }
        None => None,
    };
    let mut shared = Shared {
        agent: &agent,
        front: &front,
        state: &state,
        requests: &mut requests,
        shutdown: stop_rx,
    };
    // The flags say how the first membership starts; after a `swarm leave` the node waits in
    // no swarm, whatever they said.
    let mut first = true;
    loop {
        let start = match Identity::load(&node.state_dir)? {
            Some(id) => Start::Restart(id),
            None if first && member::left_before(&node) => {
                match idle::wait(&mut node, &mut shared).await {
                    Some(s) => s,
                    None => break,
                }
            }
            None if first && node.args.join.is_some() => Start::Join {
                addrs: node.args.join.clone().into_iter().collect(),
                token: node.args.token.clone().unwrap_or_default(),
                reply: None,
            },
            None if first && !node.args.idle => Start::Init {
                opts: InitOptions::default(),
                reply: None,
            },
            None => match idle::wait(&mut node, &mut shared).await {
                Some(s) => s,
                None => break,
            },
        };
        first = false;
        if member::run(&mut node, start, &mut shared).await? == Ended::Stopped {
            break;
        }
    }
    drop(shared);
    let _ = tokio::time::timeout(Duration::from_secs(5), socket).await;
    if let Some(d) = docker {
        let _ = tokio::time::timeout(Duration::from_secs(5), d).await;
    }
    if let Some(m) = metrics {
        let _ = tokio::time::timeout(Duration::from_secs(5), m).await;
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
