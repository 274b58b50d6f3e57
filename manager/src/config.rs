//! Manager configuration.

use crate::raft::storage::EngineKind;
use shoal_security::Transport;
use std::path::PathBuf;
use std::time::Duration;

/// Default of [`ManagerConfig::restart_grace`]: as long as Docker Swarm takes to replace a
/// dead node's tasks on the same machine (15.5 s), so a planned restart never does worse.
pub const DEFAULT_RESTART_GRACE: Duration = Duration::from_secs(15);

/// Everything a manager needs to start.
#[derive(Debug, Clone)]
pub struct ManagerConfig {
    /// This node's id.
    pub node_id: String,
    /// This node's raft member id.
    pub raft_id: u64,
    /// Address other managers and agents reach this manager at (`ip:port`).
    pub advertise_addr: String,
    /// Directory for raft data.
    pub state_dir: PathBuf,
    /// Raft storage engine.
    pub engine: EngineKind,
    /// Raft election timeout, lower bound; each timer is drawn from `[t, 1.5 t]`. A follower
    /// that heard from a leader also waits out the leader's lease (openraft 0.9: the upper
    /// bound) first, so a dead leader is replaced after about `2.5 t` to `3 t`.
    pub election_timeout: Duration,
    /// Raft heartbeat interval (leader → followers).
    pub raft_heartbeat: Duration,
    /// Log entries between snapshots.
    pub snapshot_every: u64,
    /// Agent heartbeat period; a node that misses `heartbeat_misses` periods is DOWN.
    pub heartbeat_period: Duration,
    /// Missed agent heartbeats before a node is DOWN.
    pub heartbeat_misses: u32,
    /// How long a node whose swarmd stopped cleanly (it said goodbye and left its tasks
    /// running: a restart, an upgrade) may stay away before it is DOWN and its tasks replaced.
    /// A crash or a silent node is still detected after its heartbeats.
    pub restart_grace: Duration,
    /// How connections to and from other nodes are secured: mutual TLS with the node's
    /// certificate, or plain TCP (in-process tests, `--insecure-plaintext`).
    pub transport: Transport,
}

impl ManagerConfig {
    /// Defaults for `node_id`, `raft_id`, `advertise_addr` and `state_dir`.
    pub fn new(node_id: String, raft_id: u64, advertise_addr: String, state_dir: PathBuf) -> Self {
        ManagerConfig {
            node_id,
            raft_id,
            advertise_addr,
            state_dir,
            engine: EngineKind::Redb,
            election_timeout: Duration::from_millis(200),
            raft_heartbeat: Duration::from_millis(60),
            snapshot_every: 5000,
            heartbeat_period: Duration::from_millis(500),
            heartbeat_misses: 3,
            restart_grace: DEFAULT_RESTART_GRACE,
            transport: Transport::Plain,
        }
    }

    /// Checks the settings before anything is bound.
    pub fn validate(&self) -> Result<(), String> {
        if self.raft_heartbeat >= self.election_timeout {
            return Err(format!(
                "raft heartbeat ({:?}) must be shorter than the election timeout ({:?})",
                self.raft_heartbeat, self.election_timeout
            ));
        }
        if self.election_timeout < Duration::from_millis(50) {
            return Err("election timeout below 50 ms would cause constant elections".into());
        }
        if self.heartbeat_period < Duration::from_millis(50) {
            return Err("heartbeat period must be at least 50 ms".into());
        }
        if self.heartbeat_misses == 0 {
            return Err("heartbeat misses must be at least 1".into());
        }
        if self.restart_grace < self.heartbeat_period {
            return Err(format!(
                "restart grace ({:?}) must be at least one heartbeat period ({:?})",
                self.restart_grace, self.heartbeat_period
            ));
        }
        Ok(())
    }

    /// openraft's config from ours.
    pub fn raft_config(&self) -> openraft::Config {
        let min = self.election_timeout.as_millis() as u64;
        openraft::Config {
            cluster_name: "shoal".into(),
            election_timeout_min: min,
            election_timeout_max: min + min / 2,
            heartbeat_interval: self.raft_heartbeat.as_millis() as u64,
            install_snapshot_timeout: 2000.max(min * 4),
            snapshot_policy: openraft::SnapshotPolicy::LogsSinceLast(self.snapshot_every),
            max_in_snapshot_log_to_keep: 1000,
            ..Default::default()
        }
    }
}
