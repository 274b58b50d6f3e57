//! The node's manager half: starting and stopping it, and following promotions and demotions,
//! which arrive through the agent's session as the node's role.

use crate::identity::Identity;
use crate::lifecycle::{Request, LEAVE_LOCKED, SWARM_EXISTS};
use crate::node::Node;
use crate::serve::{ControlFront, Front};
use shoal_manager::autolock::LOCKED_MESSAGE;
use shoal_manager::control::locked::{is_locked, LockedControl};
use shoal_manager::raft::storage::unlock::UnlockKey;
use shoal_manager::{Manager, ManagerConfig};
use shoal_proto::pb;
use shoal_security::{Role, Transport};
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{mpsc, oneshot, watch};
use tonic::Status;
use tracing::{info, warn};

/// A manager and the switch that stops its servers.
pub struct RunningManager {
    /// The manager.
    pub m: Arc<Manager>,
    stop: watch::Sender<bool>,
}

impl RunningManager {
    /// Starts the manager of `ident`, serves its APIs on the node's listen address and makes
    /// it answer Control calls on the control socket (`front`). `unlock`: the unlock key of an
    /// autolocked state dir (see [`wait_unlocked`]).
    pub async fn start(
        node: &Node,
        ident: &Identity,
        unlock: Option<UnlockKey>,
        front: &ControlFront,
    ) -> anyhow::Result<RunningManager> {
        let m = Manager::start_unlocked(manager_config(node, ident), unlock).await?;
        let (stop, rx) = watch::channel(false);
        if let Err(e) = crate::serve::serve_tcp(m.clone(), &node.listen, rx).await {
            m.shutdown().await;
            return Err(e);
        }
        front.manager(m.clone());
        Ok(RunningManager { m, stop })
    }

    /// Stops the servers, then raft and the leader actors.
    pub async fn stop(self) {
        let _ = self.stop.send(true);
        self.m.shutdown().await;
    }

    /// dockerd's refusal of `swarm leave` without `--force` on this manager, from the
    /// managers' reachability as the store has it.
    pub async fn leave_refusal(&self, node_id: &str) -> String {
        use shoal_proto::pb::control_server::Control;
        let nodes = shoal_manager::control::ControlService::new(self.m.clone())
            .list_nodes(tonic::Request::new(pb::Empty {}))
            .await
            .map(|r| r.into_inner().nodes)
            .unwrap_or_default();
        leave_refusal(&nodes, node_id)
    }
}

/// dockerd's words for leaving as a manager without `--force`: the last manager erases the
/// swarm; one whose leaving loses quorum says how many are left.
pub fn leave_refusal(nodes: &[pb::Node], node_id: &str) -> String {
    let mut msg = String::from(
        "You are attempting to leave the swarm on a node that is participating as a manager. ",
    );
    let up = |n: &&pb::Node| matches!(n.manager_status.as_str(), "Leader" | "Reachable");
    let reachable = nodes.iter().filter(up).count();
    let unreachable = nodes
        .iter()
        .filter(|n| n.manager_status == "Unreachable")
        .count();
    let active = nodes.iter().any(|n| n.id == node_id && up(&n));
    // dockerd's test: quorum is lost once two reachable managers are no more than the
    // unreachable ones.
    let loses_quorum = reachable as i64 - 2 <= unreachable as i64;
    if active && loses_quorum {
        if reachable == 1 && unreachable == 0 {
            msg.push_str("Removing the last manager erases all current state of the swarm. Use `--force` to ignore this message. ");
            return msg;
        }
        msg.push_str(&format!(
            "Removing this node leaves {} managers out of {}. Without a Raft quorum your swarm will be inaccessible. ",
            reachable - 1,
            reachable + unreachable
        ));
    }
    msg.push_str("The only way to restore a swarm that has lost consensus is to reinitialize it with `--force-new-cluster`. Use `--force` to suppress this message.");
    msg
}

/// How a locked manager's wait ended.
pub enum Unlocked {
    /// Not locked, or unlocked with this key (`Some`); send on (or drop) the sender once the
    /// manager runs: the `Unlock` call is answered then.
    Go(Option<(UnlockKey, oneshot::Sender<()>)>),
    /// `shutdown` came first.
    Stopped,
    /// `swarm leave --force`: answer the sender once the node has left.
    Left(oneshot::Sender<Result<(), Status>>),
}

/// If this manager's raft key file is autolocked, says so once, makes the control socket
/// answer as a locked manager and waits for `swarmctl swarm unlock`, `swarm leave --force` or
/// `shutdown`. Raft is not opened and the TCP listener not bound meanwhile.
pub async fn wait_unlocked(
    node: &Node,
    front: &ControlFront,
    requests: &mut mpsc::Receiver<Request>,
    shutdown: impl Future<Output = ()>,
) -> anyhow::Result<Unlocked> {
    let raft_dir = node.state_dir.join("raft");
    if !is_locked(&raft_dir)? {
        return Ok(Unlocked::Go(None));
    }
    warn!("{LOCKED_MESSAGE}");
    let (svc, mut unlocked) = LockedControl::new(raft_dir);
    front.set(Front::Locked(svc));
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            k = &mut unlocked => {
                return Ok(match k {
                    Ok(u) => {
                        info!("manager unlocked; starting it");
                        Unlocked::Go(Some((u.key, u.started)))
                    }
                    Err(_) => Unlocked::Stopped,
                });
            }
            _ = &mut shutdown => return Ok(Unlocked::Stopped),
            Some(r) = requests.recv() => match r {
                Request::Leave(true, tx) => return Ok(Unlocked::Left(tx)),
                Request::Leave(false, tx) => {
                    let _ = tx.send(Err(Status::unavailable(LEAVE_LOCKED)));
                }
                r => r.refuse(Status::unavailable(SWARM_EXISTS)),
            },
        }
    }
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
    cfg.snapshot_keep_logs = node.args.snapshot_keep_logs;
    cfg.transport = node.transport.clone();
    cfg.registry = node.registry.clone();
    cfg
}

/// How following the node's role ended.
pub enum Followed {
    /// `shutdown` completed or the session ended.
    Stopped(Option<RunningManager>),
    /// `swarm leave` accepted: answer the sender once the node has left.
    Left(Option<RunningManager>, oneshot::Sender<Result<(), Status>>),
}

/// Follows the node's role until `shutdown` completes, the session ends or the node is asked
/// to leave: a promotion starts the manager, a demotion stops it. Init and join are refused
/// (the node is in a swarm); leave without `--force` on a manager too, with dockerd's words.
pub async fn follow(
    node: &Node,
    mut ident: Identity,
    mut running: Option<RunningManager>,
    mut node_rx: watch::Receiver<Option<pb::Node>>,
    front: &ControlFront,
    requests: &mut mpsc::Receiver<Request>,
    shutdown: impl Future<Output = ()>,
) -> anyhow::Result<Followed> {
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            _ = &mut shutdown => break,
            Some(r) = requests.recv() => match r {
                Request::Leave(force, tx) => {
                    if ident.manager && !force {
                        let msg = match &running {
                            Some(r) => r.leave_refusal(&ident.node_id).await,
                            None => leave_refusal(&[], &ident.node_id),
                        };
                        let _ = tx.send(Err(Status::unavailable(msg)));
                        continue;
                    }
                    return Ok(Followed::Left(running, tx));
                }
                r => r.refuse(Status::unavailable(SWARM_EXISTS)),
            },
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
                    match RunningManager::start(node, &ident, None, front).await {
                        Ok(m) => running = Some(m),
                        Err(e) => warn!(error = %e, "could not start the manager after promotion"),
                    }
                } else if !want_manager && ident.manager {
                    info!("this node was demoted: stopping its manager");
                    ident.manager = false;
                    ident.save(&node.state_dir)?;
                    front.set(Front::Worker);
                    if let Some(r) = running.take() {
                        r.stop().await;
                    }
                }
            }
        }
    }
    Ok(Followed::Stopped(running))
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
