//! One membership of the node in a swarm, from its start (a restart with the identity in the
//! state dir, a join, or a new swarm) to its end (swarmd stops, or `swarm leave`): the node's
//! identity, its manager (unlocked first when autolocked), its agent, and the role changes in
//! between. The node's main loop (`main.rs`) runs one after the other, idle in between.

use crate::identity::{load_managers, Identity};
use crate::init::{self, InitOptions};
use crate::lifecycle::{self, Request};
use crate::node::Node;
use crate::role::{self, Followed, RunningManager, Unlocked};
use crate::serve::{ControlFront, Front};
use anyhow::Context;
use shoal_agent::{Agent, AgentConfig};
use shoal_proto::pb;
use std::time::Duration;
use tokio::sync::{mpsc, oneshot, watch};
use tonic::Status;
use tracing::{info, warn};

/// Where the answer of the `swarm init|join` that started a membership goes.
type Reply<T> = Option<oneshot::Sender<Result<T, Status>>>;

/// How a membership starts.
pub enum Start {
    /// The identity in the state dir: a restart.
    Restart(Identity),
    /// `--join`, or `swarm join` (answered once the node runs).
    Join {
        /// Managers to try, in order.
        addrs: Vec<String>,
        /// The join token.
        token: String,
        /// The request's answer.
        reply: Reply<pb::LocalNodeState>,
    },
    /// A new swarm: no `--join` nor `--idle`, or `swarm init` (answered once the node runs).
    Init {
        /// `swarm init`'s settings.
        opts: InitOptions,
        /// The request's answer.
        reply: Reply<pb::SwarmInitResponse>,
    },
}

/// How a membership ended.
#[derive(Debug, PartialEq, Eq)]
pub enum Ended {
    /// swarmd stops.
    Stopped,
    /// The node left its swarm, or a `swarm init|join` failed: it is in no swarm now.
    Idle,
}

/// What a membership shares with the node's main loop.
pub struct Shared<'a> {
    /// Where the Engine API finds the agent (a worker's `docker ps`).
    pub agent: &'a crate::docker::AgentSlot,
    /// The control socket's Control front.
    pub front: &'a ControlFront,
    /// The node's state as `NodeLifecycle.State` tells it.
    pub state: &'a watch::Sender<pb::LocalNodeState>,
    /// `swarm init|join|leave` requests.
    pub requests: &'a mut mpsc::Receiver<Request>,
    /// Turns true when swarmd must stop.
    pub shutdown: watch::Receiver<bool>,
}

impl Shared<'_> {
    /// Resolves when swarmd must stop.
    pub fn stopping(&self) -> impl std::future::Future<Output = ()> + 'static {
        let mut rx = self.shutdown.clone();
        async move {
            let _ = rx.wait_for(|s| *s).await;
        }
    }

    /// Publishes the node's state.
    fn publish(&self, state: &str, ident: Option<&Identity>, addr: &str) {
        let (id, manager) = ident
            .map(|i| (i.node_id.as_str(), i.manager))
            .unwrap_or(("", false));
        self.state
            .send_replace(lifecycle::state(state, id, manager, addr));
    }
}

/// The marker a `swarm leave` leaves in the state dir: restarted, the node stays in no swarm
/// (as dockerd does) rather than make a new one from its flags.
const LEFT: &str = "left-swarm";

/// Whether this state dir's node left its swarm (and made or joined none since).
pub fn left_before(node: &Node) -> bool {
    node.state_dir.join(LEFT).exists()
}

/// Forgets the node's swarm: identity, managers, certificates and raft data (the CA key and
/// the cluster's state with it). Images and the state dir itself stay; the marker says the node
/// left.
pub fn forget(node: &Node) -> anyhow::Result<()> {
    shoal_security::durable::write(&node.state_dir.join(LEFT), b"", 0o600)
        .with_context(|| format!("cannot write {LEFT}"))?;
    for f in [
        "node.json",
        ".node.json.tmp",
        "node.json.tmp",
        "managers.json",
    ] {
        match std::fs::remove_file(node.state_dir.join(f)) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                return Err(e).with_context(|| format!("cannot remove {f}"))
            }
            _ => {}
        }
    }
    for d in [node.certs_dir(), node.state_dir.join("raft")] {
        match std::fs::remove_dir_all(&d) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                return Err(e).with_context(|| format!("cannot remove {}", d.display()))
            }
            _ => {}
        }
    }
    shoal_security::durable::sync_dir(&node.state_dir)
        .with_context(|| format!("cannot sync {}", node.state_dir.display()))
}

/// Answers a failed `swarm init|join` (the node stays in no swarm), or fails swarmd when the
/// start came from its flags.
fn failed<T>(
    node: &Node,
    shared: &Shared<'_>,
    reply: Reply<T>,
    e: anyhow::Error,
) -> anyhow::Result<Ended> {
    let Some(tx) = reply else { return Err(e) };
    warn!(error = %format!("{e:#}"), "swarm init/join failed; this node stays in no swarm");
    if let Err(f) = forget(node) {
        warn!(error = %f, "cannot clear what the failed attempt left");
    }
    shared.publish("inactive", None, "");
    let _ = tx.send(Err(Status::failed_precondition(format!("{e:#}"))));
    Ok(Ended::Idle)
}

/// Joins through the first of `addrs` that takes the node.
async fn join_any(
    node: &Node,
    addrs: &[String],
    token: &str,
) -> anyhow::Result<(Identity, shoal_security::Transport, String)> {
    let mut last = anyhow::anyhow!("no manager address to join through");
    for a in addrs {
        match crate::join::join(node, a, token).await {
            Ok((id, t)) => return Ok((id, t, a.clone())),
            Err(e) => last = e,
        }
    }
    Err(last)
}

/// Runs one membership of `node` (see the module doc).
pub async fn run(node: &mut Node, start: Start, shared: &mut Shared<'_>) -> anyhow::Result<Ended> {
    let mut running: Option<RunningManager> = None;
    let mut join_reply: Reply<pb::LocalNodeState> = None;
    let mut init_reply: Reply<pb::SwarmInitResponse> = None;
    let mut joined_through = None;
    let ident = match start {
        Start::Restart(id) => {
            info!(node.id = %id.node_id, manager = id.manager, "restarting with the identity in the state dir");
            node.restore_addresses(&id)?;
            node.transport = id.transport(&node.certs_dir(), node.args.insecure_plaintext)?;
            id
        }
        Start::Join {
            addrs,
            token,
            reply,
        } => {
            if node.advertise.is_empty() {
                // `--join` without `--advertise-addr`: the address that reaches the manager.
                let toward = addrs.first().map(|a| shoal_cli::addr::with_port(a));
                if let Err(e) = node.take_addresses("", "", toward.as_deref()) {
                    return failed(
                        node,
                        shared,
                        reply,
                        anyhow::anyhow!("--advertise-addr: {e}"),
                    );
                }
            }
            shared.publish("pending", None, &node.advertise);
            match join_any(node, &addrs, &token).await {
                Ok((id, t, through)) => {
                    node.transport = t;
                    join_reply = reply;
                    joined_through = Some(through);
                    id
                }
                Err(e) => return failed(node, shared, reply, e),
            }
        }
        Start::Init { opts, reply } => match init::init(node, opts, shared.front).await {
            Ok((id, m)) => {
                running = Some(m);
                init_reply = reply;
                id
            }
            Err(e) => return failed(node, shared, reply, e),
        },
    };
    // In a swarm again: a restart comes back to it.
    if std::fs::remove_file(node.state_dir.join(LEFT)).is_ok() {
        let _ = shoal_security::durable::sync_dir(&node.state_dir);
    }
    let mut managers = load_managers(&node.state_dir);
    if let Some(j) = joined_through {
        if !managers.contains(&j) {
            managers.push(j);
        }
    }
    if !ident.manager {
        shared.front.set(Front::Worker);
    }
    if ident.manager && running.is_none() {
        // Autolock: a locked manager waits here for `swarm unlock`, then goes on with the same
        // start-up, in the same process.
        shared.publish("locked", Some(&ident), &node.advertise);
        let stopping = shared.stopping();
        match role::wait_unlocked(node, shared.front, shared.requests, stopping).await? {
            Unlocked::Go(unlock) => {
                let (key, started) = match unlock {
                    Some((k, s)) => (Some(k), Some(s)),
                    None => (None, None),
                };
                match RunningManager::start(node, &ident, key, shared.front).await {
                    Ok(m) => running = Some(m),
                    Err(e) => {
                        // The join's caller hears why, not that swarmd went away.
                        if let Some(tx) = join_reply.take() {
                            let _ = tx.send(Err(Status::unavailable(format!("{e:#}"))));
                        }
                        return Err(e);
                    }
                }
                if let Some(s) = started {
                    let _ = s.send(());
                }
            }
            Unlocked::Stopped => {
                info!("stopped while locked");
                return Ok(Ended::Stopped);
            }
            Unlocked::Left(tx) => {
                shared.front.set(Front::Idle);
                forget(node)?;
                shared.publish("inactive", None, "");
                let _ = tx.send(Ok(()));
                info!("left the swarm while locked");
                return Ok(Ended::Idle);
            }
        }
    }
    if ident.manager && !managers.contains(&node.advertise) {
        managers.insert(0, node.advertise.clone());
    }
    let mut agent_cfg = AgentConfig::new(
        ident.node_id.clone(),
        node.hostname.clone(),
        managers,
        node.state_dir.clone(),
    );
    agent_cfg.data_plane = crate::dataplane::build(node).await?;
    agent_cfg.transport = node.transport.clone();
    agent_cfg.oci_runtime = node.args.oci_runtime.clone();
    agent_cfg.init_path = node.args.init_path.clone();
    agent_cfg.registry = node.registry.clone();
    agent_cfg.validate()?;
    let agent = Agent::new(agent_cfg);
    let (stop_tx, stop_rx) = watch::channel(false);
    let agent_task = tokio::spawn(agent.clone().run(stop_rx));
    shared.agent.set(Some(agent.clone()));
    println!(
        "swarmd: node {} ({}) running as {}",
        ident.node_id,
        node.hostname,
        if ident.manager { "manager" } else { "worker" }
    );
    shared.publish("active", Some(&ident), &node.advertise);
    if let Some(tx) = init_reply {
        let _ = tx.send(Ok(pb::SwarmInitResponse {
            node_id: ident.node_id.clone(),
        }));
    }
    if let Some(tx) = join_reply {
        let _ = tx.send(Ok(shared.state.borrow().clone()));
    }

    let node_id = ident.node_id.clone();
    let stopping = shared.stopping();
    let followed = role::follow(
        node,
        ident,
        running,
        agent.node(),
        shared.front,
        shared.requests,
        stopping,
    )
    .await?;
    let (running, left) = match followed {
        Followed::Stopped(r) => (r, None),
        Followed::Left(r, tx) => {
            info!(node.id = %node_id, "leaving the swarm");
            agent.leave_on_stop();
            (r, Some(tx))
        }
    };
    info!("shutting down");
    shared.agent.set(None);
    let _ = stop_tx.send(true);
    let _ = tokio::time::timeout(Duration::from_secs(15), agent_task).await;
    if left.is_some() {
        shared.front.set(Front::Idle);
    }
    if let Some(r) = running {
        r.stop().await;
    }
    let Some(tx) = left else {
        return Ok(Ended::Stopped);
    };
    forget(node)?;
    shared.publish("inactive", None, "");
    let _ = tx.send(Ok(()));
    println!("swarmd: node {node_id} left the swarm");
    Ok(Ended::Idle)
}
