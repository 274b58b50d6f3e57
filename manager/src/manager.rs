//! The manager: raft, the store, and the leader-only actors, behind one handle.

use crate::config::ManagerConfig;
use crate::dispatcher::Dispatcher;
use crate::raft::network::{decode, encode, Network};
use crate::raft::storage;
use crate::raft::{NodeId, Raft};
use crate::store::Store;
use openraft::{BasicNode, ServerState};
use shoal_proto::model::{Command, Response};
use shoal_proto::pb::raft_client::RaftClient;
use shoal_proto::pb::RaftBytes;
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::task::JoinSet;
use tracing::{info, warn};

/// Errors of manager operations.
#[derive(Debug, thiserror::Error)]
pub enum ManagerError {
    /// The command was applied and refused by the store's rules; nothing changed.
    #[error("{0}")]
    Refused(String),
    /// No leader could be reached in time.
    #[error("no raft leader reachable within {0:?}: is a majority of managers up?")]
    NoLeader(Duration),
    /// Raft failed.
    #[error("raft: {0}")]
    Raft(String),
    /// Storage failed to open.
    #[error("raft storage: {0}")]
    Storage(String),
    /// Bad configuration.
    #[error("invalid manager configuration: {0}")]
    Config(String),
}

/// How long a write waits for a leader before failing.
pub const WRITE_TIMEOUT: Duration = Duration::from_secs(8);

/// A running manager.
pub struct Manager {
    /// Configuration.
    pub cfg: ManagerConfig,
    /// The raft handle.
    pub raft: Raft,
    /// The applied state.
    pub store: Store,
    /// Agent sessions (meaningful on the leader).
    pub dispatcher: Arc<Dispatcher>,
    net: Network,
    leader_tasks: Mutex<Option<JoinSet<()>>>,
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
    pub async fn start(cfg: ManagerConfig) -> Result<Arc<Manager>, ManagerError> {
        cfg.validate().map_err(ManagerError::Config)?;
        let store = Store::default();
        let dir = cfg.state_dir.join("raft");
        let (log, sm) = storage::open(cfg.engine, &dir, store.clone())
            .await
            .map_err(|e| ManagerError::Storage(e.to_string()))?;
        let net = Network::new(cfg.transport.clone());
        let raft_cfg = Arc::new(
            cfg.raft_config()
                .validate()
                .map_err(|e| ManagerError::Config(e.to_string()))?,
        );
        let raft = Raft::new(cfg.raft_id, raft_cfg, net.clone(), log, sm)
            .await
            .map_err(|e| ManagerError::Raft(e.to_string()))?;
        let dispatcher = Arc::new(Dispatcher::new(
            cfg.heartbeat_period,
            cfg.heartbeat_misses,
            cfg.restart_grace,
        ));
        let m = Arc::new(Manager {
            cfg,
            raft,
            store,
            dispatcher,
            net,
            leader_tasks: Mutex::new(None),
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
            Err(e) => Err(ManagerError::Raft(e.to_string())),
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
        let window = (self.cfg.election_timeout * 4).max(Duration::from_secs(1));
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
    /// are forwarded to the leader). A command the store refuses returns [`ManagerError::Refused`].
    pub async fn write(&self, cmd: Command) -> Result<Response, ManagerError> {
        let start = Instant::now();
        loop {
            match self.raft.client_write(cmd.clone()).await {
                Ok(r) => return r.data.into_result().map_err(ManagerError::Refused),
                Err(e) => {
                    let Some(fwd) = e.forward_to_leader() else {
                        return Err(ManagerError::Raft(e.to_string()));
                    };
                    if let Some(node) = fwd.leader_node.clone() {
                        match self.forward(&node.addr, &cmd).await {
                            Ok(Some(resp)) => {
                                // Callers read the store right after a write: let this
                                // follower apply the entry first (it learns of the commit with
                                // the leader's next message, within a raft heartbeat).
                                let wait = self.raft.wait(Some(WRITE_TIMEOUT));
                                if let Err(e) = wait
                                    .applied_index_at_least(Some(resp.log_index), "forwarded write")
                                    .await
                                {
                                    warn!(index = resp.log_index, error = %e, "a forwarded write is not applied here yet");
                                }
                                return resp.into_result().map_err(ManagerError::Refused);
                            }
                            Ok(None) => {}
                            Err(e) => {
                                warn!(leader = %node.addr, error = %e, "forwarding a write failed; retrying")
                            }
                        }
                    }
                }
            }
            if start.elapsed() > WRITE_TIMEOUT {
                return Err(ManagerError::NoLeader(WRITE_TIMEOUT));
            }
            tokio::time::sleep(Duration::from_millis(30)).await;
        }
    }

    /// Sends `cmd` to the leader at `addr`. `Ok(None)`: that node is no longer the leader.
    async fn forward(&self, addr: &str, cmd: &Command) -> Result<Option<Response>, String> {
        let channel = self.net.channel(addr).map_err(|e| e.to_string())?;
        let mut client = RaftClient::new(channel);
        let data = encode(cmd).map_err(|e| e.to_string())?;
        let mut req = tonic::Request::new(RaftBytes { data });
        req.set_timeout(Duration::from_secs(5));
        let resp = client
            .forward_write(req)
            .await
            .map_err(|s| s.message().to_string())?;
        let result: Result<Response, Option<String>> =
            decode(&resp.into_inner().data).map_err(|e| e.to_string())?;
        match result {
            Ok(r) => Ok(Some(r)),
            Err(None) => Ok(None),
            Err(Some(e)) => Err(e),
        }
    }

    /// A channel to the leader when this manager is a follower; `None` on the leader. For the
    /// calls only the leader answers (it holds the agents' sessions and issues certificates).
    pub fn channel_to_leader(&self) -> Result<Option<tonic::transport::Channel>, tonic::Status> {
        if self.is_leader() {
            return Ok(None);
        }
        let (_, addr) = self
            .leader()
            .ok_or_else(|| tonic::Status::unavailable("no raft leader right now; retry shortly"))?;
        self.channel(&addr)
            .map(Some)
            .map_err(|e| tonic::Status::unavailable(e.to_string()))
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
        if let Err(e) = self.raft.shutdown().await {
            warn!(error = %e, "raft shutdown");
        }
        info!(node.id = %self.cfg.node_id, "manager stopped");
    }
}
