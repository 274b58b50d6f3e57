//! The manager: raft, the store, and the leader-only actors, behind one handle.

pub use crate::error::ManagerError;

use crate::config::ManagerConfig;
use crate::dispatcher::Dispatcher;
use crate::raft::batch::Proposer;
use crate::raft::network::{Network, PeerTimings};
use crate::raft::{forward, storage};
use crate::raft::{NodeId, Raft};
use crate::store::{Applied, Refusal, Store};
use openraft::{BasicNode, ServerState};
use shoal_proto::model::Command;
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Instant;
use tokio::task::JoinSet;
use tracing::{info, warn};

/// A running manager.
pub struct Manager {
    /// Configuration.
    pub cfg: ManagerConfig,
    /// The raft handle.
    pub raft: Raft,
    /// Client writes, batched into raft entries ([`crate::raft::batch`]).
    pub proposer: Proposer,
    /// The applied state.
    pub store: Store,
    /// Agent sessions (meaningful on the leader).
    pub dispatcher: Arc<Dispatcher>,
    net: Network,
    leader_tasks: Mutex<Option<JoinSet<()>>>,
    /// The loop keeping the raft key file in step with autolock ([`crate::autolock`]).
    key_keeper: tokio::task::AbortHandle,
    /// The swarm objects' changes ([`crate::events`]), for the Control API's `Watch`.
    pub events: Arc<crate::events::Journal>,
    /// The loop feeding [`Manager::events`] from the store.
    event_feed: tokio::task::AbortHandle,
    /// The loop starting elections when the leader's lease ran out ([`crate::election`]).
    elections: tokio::task::AbortHandle,
}

impl std::fmt::Debug for Manager {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Manager")
            .field("node_id", &self.cfg.node_id)
            .finish()
    }
}

impl Manager {
    /// Opens storage, starts raft and the leadership watcher. Does not initialise a cluster.
    /// An autolocked state dir is refused ([`storage::keys::KeyError::Locked`]): see
    /// [`Manager::start_unlocked`].
    pub async fn start(cfg: ManagerConfig) -> Result<Arc<Manager>, ManagerError> {
        Self::start_unlocked(cfg, None).await
    }

    /// [`Manager::start`] with the unlock key of an autolocked state dir (checked with
    /// [`crate::control::locked::check_unlock_key`]; dropped once the data key is open).
    pub async fn start_unlocked(
        cfg: ManagerConfig,
        unlock: Option<storage::unlock::UnlockKey>,
    ) -> Result<Arc<Manager>, ManagerError> {
        cfg.validate()?;
        let store = Store::default();
        let dir = cfg.state_dir.join("raft");
        let (log, sm, keys) = storage::open_with(cfg.engine, &dir, store.clone(), unlock.as_ref())
            .await
            .map_err(ManagerError::Storage)?;
        drop(unlock);

        let net = Network::new(cfg.transport.clone(), PeerTimings::of(&cfg));
        let raft_cfg = Arc::new(
            cfg.raft_config()
                .validate()
                .map_err(crate::config::ConfigError::from)?,
        );
        let raft = Raft::new(cfg.raft_id, raft_cfg, net.clone(), log, sm)
            .await
            .map_err(ManagerError::raft)?;
        let proposer = Proposer::start(raft.clone());
        let dispatcher = Arc::new(Dispatcher::new(&cfg));
        let key_keeper = tokio::spawn(crate::autolock::keep_key_file(
            store.clone(),
            dir.join(storage::keys::FILE),
            keys,
        ))
        .abort_handle();
        let events = Arc::new(crate::events::Journal::default());
        let event_feed =
            tokio::spawn(crate::events::run(store.clone(), events.clone())).abort_handle();
        let elections = tokio::spawn(crate::election::run(
            raft.clone(),
            crate::election::Timings::new(cfg.election_timeout, cfg.raft_heartbeat),
            cfg.node_id.clone(),
        ))
        .abort_handle();
        let m = Arc::new(Manager {
            cfg,
            raft,
            proposer,
            store,
            dispatcher,
            net,
            leader_tasks: Mutex::new(None),
            key_keeper,
            events,
            event_feed,
            elections,
        });
        tokio::spawn(crate::leader::watch_leadership(m.clone()));
        Ok(m)
    }

    /// Makes this manager the single member of a new raft group (first node of a cluster).
    /// Harmless if the group already exists.
    pub async fn initialize(&self) -> Result<(), ManagerError> {
        let members =
            BTreeMap::from([(self.cfg.raft_id, BasicNode::new(&self.cfg.advertise_addr))]);
        match self.raft.initialize(members).await {
            Ok(()) => Ok(()),
            Err(openraft::error::RaftError::APIError(
                openraft::error::InitializeError::NotAllowed(_),
            )) => Ok(()),
            Err(e) => Err(ManagerError::raft(e)),
        }
    }

    /// The current leader's raft id and address, if known.
    pub fn leader(&self) -> Option<(NodeId, String)> {
        let m = self.raft.metrics().borrow().clone();
        let id = m.current_leader?;
        let addr = m
            .membership_config
            .membership()
            .get_node(&id)
            .map(|n| n.addr.clone())?;
        Some((id, addr))
    }

    /// Whether this manager is the raft leader now.
    pub fn is_leader(&self) -> bool {
        let m = self.raft.metrics().borrow().clone();
        m.state == ServerState::Leader && m.current_leader == Some(self.cfg.raft_id)
    }

    /// Whether raft member `raft_id` answered this manager recently. Meaningful on the leader,
    /// which contacts every member at each raft heartbeat.
    pub fn raft_reachable(&self, raft_id: NodeId) -> bool {
        if raft_id == self.cfg.raft_id {
            return true;
        }
        let window = (self.cfg.election_timeout * 4).max(self.cfg.reachable_window);
        self.net
            .last_contact(raft_id)
            .is_some_and(|t| t.elapsed() < window)
    }

    /// Addresses of all raft members.
    pub fn manager_addrs(&self) -> Vec<String> {
        let m = self.raft.metrics().borrow().clone();
        m.membership_config
            .membership()
            .nodes()
            .map(|(_, n)| n.addr.clone())
            .collect()
    }

    /// Proposes `cmd` and waits until it is applied here or on the leader (writes on a follower
    /// are forwarded to the leader). A command the store refuses returns
    /// [`ManagerError::Refused`]; no leader within [`ManagerConfig::write_timeout`] returns
    /// [`ManagerError::NoLeader`].
    pub async fn write(&self, cmd: Command) -> Result<Applied, ManagerError> {
        let start = Instant::now();
        let timeout = self.cfg.write_timeout;
        // Whether an earlier attempt may have been applied: a forward that got no answer may
        // have been committed by the leader all the same. A retry of a versioned or
        // id-carrying command is then refused by that very effect (`update out of sequence`,
        // id taken), and such a refusal must not reach the client as if nothing had been
        // written (the fault harness found exactly that: tests/src/faults).
        let mut maybe_applied = false;
        loop {
            let tried;
            // A leader that loses its leadership with this entry in flight answers "forward to
            // the leader", yet the entry may still be committed by the next one.
            let leading = self.raft.metrics().borrow().state == openraft::ServerState::Leader;
            let written = match self.proposer.write(cmd.clone()).await {
                Ok(w) => w,
                Err(stopped) => return Err(ManagerError::raft(stopped)),
            };
            match written {
                Ok(r) => return settle(r.data.into_result(), maybe_applied),
                Err(e) => {
                    let Some(fwd) = e.forward_to_leader() else {
                        return Err(ManagerError::raft(e));
                    };
                    tried = fwd.leader_id;
                    maybe_applied |= leading;
                    if let Some(node) = fwd.leader_node.clone() {
                        let deadline = self.cfg.forward_write_timeout;
                        match forward::forward(&self.net, &node.addr, &cmd, deadline).await {
                            Ok(Some((applied, index))) => {
                                // Callers read the store right after a write: let this
                                // follower apply the entry first (it learns of the commit with
                                // the leader's next message, within a raft heartbeat).
                                let wait = self.raft.wait(Some(timeout));
                                if let Err(e) = wait
                                    .applied_index_at_least(Some(index), "forwarded write")
                                    .await
                                {
                                    warn!(index, error = %e, "a forwarded write is not applied here yet");
                                }
                                return settle(applied.into_result(), maybe_applied);
                            }
                            // The leader stepped down: it may have proposed it first.
                            Ok(None) => maybe_applied = true,
                            Err(e) => {
                                maybe_applied = true;
                                warn!(leader = %node.addr, error = %e, "forwarding a write failed; retrying")
                            }
                        }
                    }
                }
            }
            if start.elapsed() > timeout {
                return Err(ManagerError::NoLeader(timeout));
            }
            self.leader_other_than(tried, self.cfg.write_retry).await;
        }
    }

    /// Waits until raft knows a leader other than `tried` (a new one was elected: try it at
    /// once), or `wait` passed.
    async fn leader_other_than(&self, tried: Option<NodeId>, wait: std::time::Duration) {
        let mut rx = self.raft.metrics();
        let elected = rx.wait_for(|m| m.current_leader.is_some() && m.current_leader != tried);
        let _ = tokio::time::timeout(wait, elected).await;
    }

    /// A cached gRPC channel to another manager.
    pub fn channel(
        &self,
        addr: &str,
    ) -> Result<tonic::transport::Channel, tonic::transport::Error> {
        self.net.channel(addr)
    }

    pub(crate) fn set_leader_tasks(&self, tasks: Option<JoinSet<()>>) {
        let old = std::mem::replace(
            &mut *self.leader_tasks.lock().unwrap_or_else(|e| e.into_inner()),
            tasks,
        );
        if let Some(mut old) = old {
            old.abort_all();
        }
    }

    /// Stops raft and the leader actors.
    pub async fn shutdown(&self) {
        self.set_leader_tasks(None);
        self.key_keeper.abort();
        self.event_feed.abort();
        self.elections.abort();
        if let Err(e) = self.raft.shutdown().await {
            warn!(error = %e, "raft shutdown");
        }
        info!(node.id = %self.cfg.node_id, "manager stopped");
    }
}

/// A write's result, except that a refusal an earlier, unanswered attempt of the same command
/// could have caused (the version it wrote, the id or name it took, the object it removed) is
/// [`ManagerError::OutcomeUnknown`] when such an attempt may have been applied.
fn settle(r: Result<Applied, Refusal>, maybe_applied: bool) -> Result<Applied, ManagerError> {
    match r {
        Ok(a) => Ok(a),
        Err(
            refusal @ (Refusal::Conflict(_)
            | Refusal::IdTaken { .. }
            | Refusal::NameTaken { .. }
            | Refusal::NotFound { .. }),
        ) if maybe_applied => Err(ManagerError::OutcomeUnknown(refusal)),
        Err(refusal) => Err(refusal.into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::Versioned;

    #[test]
    fn a_refusal_after_an_unanswered_attempt_is_an_unknown_outcome() {
        let conflict = || Refusal::Conflict(Versioned::Service { name: "web".into() });
        assert!(matches!(
            settle(Err(conflict()), false),
            Err(ManagerError::Refused(Refusal::Conflict(_)))
        ));
        let e = settle(Err(conflict()), true).unwrap_err();
        assert!(matches!(e, ManagerError::OutcomeUnknown(_)), "{e:?}");
        assert_eq!(tonic::Status::from(e).code(), tonic::Code::Unavailable);
        // A refusal the first attempt cannot have caused stays what it is.
        let other = Refusal::IngressNetwork;
        assert!(matches!(
            settle(Err(other), true),
            Err(ManagerError::Refused(Refusal::IngressNetwork))
        ));
        assert!(settle(Ok(Applied::default()), true).is_ok());
    }
}
