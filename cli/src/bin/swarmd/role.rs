//! The node's manager half: starting and stopping it, and following promotions and demotions,
//! which arrive through the agent's session as the node's role.

use crate::identity::Identity;
use crate::node::Node;
use shoal_manager::autolock::LOCKED_MESSAGE;
use shoal_manager::control::locked::is_locked;
use shoal_manager::raft::storage::unlock::UnlockKey;
use shoal_manager::{Manager, ManagerConfig};
use shoal_proto::pb;
use shoal_security::{Role, Transport};
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;
use tracing::{info, warn};

/// A manager and the switch that stops its servers.
pub struct RunningManager {
    /// The manager.
    pub m: Arc<Manager>,
    stop: watch::Sender<bool>,
}

impl RunningManager {
    /// Starts the manager of `ident` and serves its APIs on `--listen-addr` and the control
    /// socket. `unlock`: the unlock key of an autolocked state dir (see [`wait_unlocked`]).
    pub async fn start(
        node: &Node,
        ident: &Identity,
        unlock: Option<UnlockKey>,
    ) -> anyhow::Result<RunningManager> {
        let m = Manager::start_unlocked(manager_config(node, ident), unlock).await?;
        let (stop, rx) = watch::channel(false);
        crate::serve::serve(
            m.clone(),
            &node.args.listen_addr,
            &node.state_dir.join("swarmd.sock"),
            rx,
        )
        .await?;
        Ok(RunningManager { m, stop })
    }

    /// Stops the servers, then raft and the leader actors.
    pub async fn stop(self) {
        let _ = self.stop.send(true);
        self.m.shutdown().await;
    }
}

/// How a locked manager's wait ended.
pub enum Unlocked {
    /// Not locked, or unlocked with this key (`Some`).
    Go(Option<UnlockKey>),
    /// `shutdown` came first.
    Stopped,
}

/// If this manager's raft key file is autolocked, says so once, serves the locked Control API on
/// the control socket and waits for `swarmctl swarm unlock` (or `shutdown`). Raft is not
/// opened and the TCP listener not bound meanwhile.
pub async fn wait_unlocked(
    node: &Node,
    shutdown: impl Future<Output = ()>,
) -> anyhow::Result<Unlocked> {
    let raft_dir = node.state_dir.join("raft");
    if !is_locked(&raft_dir)? {
        return Ok(Unlocked::Go(None));
    }
    warn!("{LOCKED_MESSAGE}");
    let socket = node.state_dir.join("swarmd.sock");
    Ok(
        match crate::serve::serve_locked(&raft_dir, &socket, shutdown).await? {
            Some(k) => {
                info!("manager unlocked; starting it");
                Unlocked::Go(Some(k))
            }
            None => Unlocked::Stopped,
        },
    )
}

fn manager_config(node: &Node, ident: &Identity) -> ManagerConfig {
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
    cfg.registry = node.registry.clone();
    cfg
}

/// Follows the node's role until `shutdown` completes or the session ends: a promotion starts
/// the manager, a demotion stops it. Returns the manager running at the end.
pub async fn follow(
    node: &Node,
    mut ident: Identity,
    mut running: Option<RunningManager>,
    mut node_rx: watch::Receiver<Option<pb::Node>>,
    shutdown: impl Future<Output = ()>,
) -> anyhow::Result<Option<RunningManager>> {
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
                    match RunningManager::start(node, &ident, None).await {
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
    Ok(running)
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
