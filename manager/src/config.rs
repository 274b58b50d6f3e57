//! Manager configuration: every timing the manager uses, with its default and its bounds.

use crate::raft::storage::EngineKind;
use shoal_image::registry::RegistryConfig;
use shoal_security::Transport;
use std::path::PathBuf;
use std::time::Duration;

/// Default of [`ManagerConfig::restart_grace`]: as long as Docker Swarm takes to replace a
/// dead node's tasks on the same machine (15.5 s), so a planned restart never does worse.
pub const DEFAULT_RESTART_GRACE: Duration = Duration::from_secs(15);

/// Shortest election timeout accepted: below it, ordinary scheduling jitter starts elections.
pub const MIN_ELECTION_TIMEOUT: Duration = Duration::from_millis(50);

/// Shortest agent heartbeat period accepted.
pub const MIN_HEARTBEAT_PERIOD: Duration = Duration::from_millis(50);

/// Shortest period accepted for the loops that poll ([`ManagerConfig::resync_period`],
/// [`ManagerConfig::write_retry`], [`ManagerConfig::leadership_retry`]): shorter ones spin.
pub const MIN_POLL_PERIOD: Duration = Duration::from_millis(1);

/// Shortest timeout accepted: anything under a millisecond is a mistake.
pub const MIN_TIMEOUT: Duration = Duration::from_millis(1);

/// Default of [`ManagerConfig::image_load_max_bytes`]: 8 GiB.
pub const DEFAULT_IMAGE_LOAD_MAX_BYTES: u64 = 8 << 30;

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
    /// Raft election timeout `t`: the leader's lease (a voter refuses other candidates until it
    /// has not heard from its leader for `t`), after which a follower starts an election within
    /// a jitter of `[t / 20, t / 20 + t / 4)`, drawn again for every election
    /// ([`crate::election`]). A dead leader is replaced about `t` (minus up to one raft
    /// heartbeat) plus that jitter after it died. openraft's own timer, `[max(t / 2, heartbeat
    /// + 1 ms), t]` after the lease, is the fallback.
    pub election_timeout: Duration,
    /// Raft heartbeat interval (leader → followers).
    pub raft_heartbeat: Duration,
    /// Shortest time a follower gives a leader to send it a snapshot; raised to four election
    /// timeouts when those are longer.
    pub snapshot_install_timeout: Duration,
    /// Log entries between snapshots.
    pub snapshot_every: u64,
    /// Log entries kept behind the last snapshot when the log is purged: a follower further
    /// behind than that is sent the snapshot (small values make snapshot installs happen, as
    /// the fault harness wants).
    pub snapshot_keep_logs: u64,
    /// Agent heartbeat period; a node that misses `heartbeat_misses` periods is DOWN.
    pub heartbeat_period: Duration,
    /// Missed agent heartbeats before a node is DOWN.
    pub heartbeat_misses: u32,
    /// How long a node whose swarmd stopped cleanly (it said goodbye and left its tasks
    /// running: a restart, an upgrade) may stay away before it is DOWN and its tasks replaced.
    /// A crash or a silent node is still detected after its heartbeats.
    pub restart_grace: Duration,
    /// How long a write waits for a leader (through elections and retries) before it fails
    /// with "no raft leader reachable".
    pub write_timeout: Duration,
    /// Pause between two attempts of a write while no leader is known.
    pub write_retry: Duration,
    /// Deadline of one write forwarded to the leader (the `ForwardWrite` call).
    pub forward_write_timeout: Duration,
    /// Deadline of a read a follower forwards to the leader's Control API (`node ls`,
    /// `node inspect`); when it passes, the follower answers from its own store.
    pub forward_read_timeout: Duration,
    /// A manager that answered none of the leader's raft messages for this long (or four
    /// election timeouts, whichever is longer) is shown as Unreachable.
    pub reachable_window: Duration,
    /// Deadline of a TCP connection to another manager.
    pub peer_connect_timeout: Duration,
    /// HTTP/2 keep-alive ping interval on connections to other managers.
    pub peer_keepalive_interval: Duration,
    /// How long a keep-alive ping may go unanswered before the connection is dropped.
    pub peer_keepalive_timeout: Duration,
    /// Period of the leader actors' level-triggered resync, on top of store-change wakeups.
    pub resync_period: Duration,
    /// Pause before a manager that raft made leader checks again whether it can lead (its
    /// store has not caught up with the commits of earlier terms yet).
    pub leadership_retry: Duration,
    /// Longest a batch of task status updates waits for more before it is written.
    pub status_batch_window: Duration,
    /// How long an agent's status update waits for its batch to commit before it is told to
    /// retry.
    pub status_commit_timeout: Duration,
    /// How long the leader waits for agents to answer a relayed request (logs, balancer
    /// inspection); `exec` waits its own timeout plus this much.
    pub relay_timeout: Duration,
    /// How long `task exec` lets a command run when the request gives no timeout.
    pub exec_default_timeout: Duration,
    /// How connections to and from other nodes are secured: mutual TLS with the node's
    /// certificate, or plain TCP (in-process tests, `--insecure-plaintext`).
    pub transport: Transport,
    /// Registries, mirrors and credentials for resolving image tags to digests (`service
    /// create` pins them); the agents pull with the same settings.
    pub registry: RegistryConfig,
    /// Longest a tag's resolution may take before `service create` goes on without a digest.
    pub image_resolve_timeout: Duration,
    /// How long the leader waits for a node's answer to `image pull|rm|prune|load` (a pull or
    /// a load of a large image takes a while; `image ls` waits `relay_timeout`).
    pub image_op_timeout: Duration,
    /// The largest archive `image load` streams to a node.
    pub image_load_max_bytes: u64,
}

/// A setting out of bounds. The texts say which flag or field to change.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// The raft heartbeat is not shorter than the election timeout.
    #[error(
        "raft heartbeat ({heartbeat:?}) must be shorter than the election timeout ({election:?})"
    )]
    RaftHeartbeat {
        /// The raft heartbeat.
        heartbeat: Duration,
        /// The election timeout.
        election: Duration,
    },
    /// The election timeout is below [`MIN_ELECTION_TIMEOUT`].
    #[error("election timeout below 50 ms would cause constant elections")]
    ElectionTimeout,
    /// The agent heartbeat period is below [`MIN_HEARTBEAT_PERIOD`].
    #[error("heartbeat period must be at least 50 ms")]
    HeartbeatPeriod,
    /// No missed heartbeat would be tolerated.
    #[error("heartbeat misses must be at least 1")]
    HeartbeatMisses,
    /// The restart grace is shorter than a heartbeat period.
    #[error("restart grace ({grace:?}) must be at least one heartbeat period ({period:?})")]
    RestartGrace {
        /// The restart grace.
        grace: Duration,
        /// The heartbeat period.
        period: Duration,
    },
    /// A timing below its lower bound.
    #[error("{name} ({value:?}) must be at least {min:?}")]
    TooShort {
        /// The field.
        name: &'static str,
        /// Its value.
        value: Duration,
        /// The bound.
        min: Duration,
    },
    /// A timing that must be shorter than another is not.
    #[error("{name} ({value:?}) must be shorter than {other} ({bound:?})")]
    NotShorter {
        /// The field.
        name: &'static str,
        /// Its value.
        value: Duration,
        /// The field that bounds it.
        other: &'static str,
        /// That field's value.
        bound: Duration,
    },
    /// openraft refused the raft settings derived from ours.
    #[error("{0}")]
    Raft(#[from] openraft::ConfigError),
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
            raft_heartbeat: Duration::from_millis(40),
            snapshot_install_timeout: Duration::from_secs(2),
            snapshot_every: 5000,
            snapshot_keep_logs: 1000,
            heartbeat_period: Duration::from_millis(500),
            heartbeat_misses: 3,
            restart_grace: DEFAULT_RESTART_GRACE,
            write_timeout: Duration::from_secs(8),
            write_retry: Duration::from_millis(30),
            forward_write_timeout: Duration::from_secs(5),
            forward_read_timeout: Duration::from_secs(2),
            reachable_window: Duration::from_secs(1),
            peer_connect_timeout: Duration::from_millis(500),
            peer_keepalive_interval: Duration::from_secs(10),
            peer_keepalive_timeout: Duration::from_secs(5),
            resync_period: Duration::from_millis(250),
            leadership_retry: Duration::from_millis(50),
            status_batch_window: Duration::from_millis(20),
            status_commit_timeout: Duration::from_secs(10),
            relay_timeout: Duration::from_secs(5),
            exec_default_timeout: Duration::from_secs(60),
            transport: Transport::Plain,
            registry: RegistryConfig::default(),
            image_resolve_timeout: Duration::from_secs(10),
            image_op_timeout: Duration::from_secs(900),
            image_load_max_bytes: DEFAULT_IMAGE_LOAD_MAX_BYTES,
        }
    }

    /// Checks the settings before anything is bound.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.raft_heartbeat >= self.election_timeout {
            return Err(ConfigError::RaftHeartbeat {
                heartbeat: self.raft_heartbeat,
                election: self.election_timeout,
            });
        }
        if self.election_timeout < MIN_ELECTION_TIMEOUT {
            return Err(ConfigError::ElectionTimeout);
        }
        if self.heartbeat_period < MIN_HEARTBEAT_PERIOD {
            return Err(ConfigError::HeartbeatPeriod);
        }
        if self.heartbeat_misses == 0 {
            return Err(ConfigError::HeartbeatMisses);
        }
        if self.restart_grace < self.heartbeat_period {
            return Err(ConfigError::RestartGrace {
                grace: self.restart_grace,
                period: self.heartbeat_period,
            });
        }
        let at_least = |name, value: Duration, min: Duration| {
            if value < min {
                Err(ConfigError::TooShort { name, value, min })
            } else {
                Ok(())
            }
        };
        at_least("resync period", self.resync_period, MIN_POLL_PERIOD)?;
        at_least("write retry", self.write_retry, MIN_POLL_PERIOD)?;
        at_least("leadership retry", self.leadership_retry, MIN_POLL_PERIOD)?;
        for (name, value) in [
            ("snapshot install timeout", self.snapshot_install_timeout),
            ("forward write timeout", self.forward_write_timeout),
            ("forward read timeout", self.forward_read_timeout),
            ("reachable window", self.reachable_window),
            ("peer connect timeout", self.peer_connect_timeout),
            ("peer keep-alive interval", self.peer_keepalive_interval),
            ("peer keep-alive timeout", self.peer_keepalive_timeout),
            ("status commit timeout", self.status_commit_timeout),
            ("relay timeout", self.relay_timeout),
            ("exec default timeout", self.exec_default_timeout),
            ("image operation timeout", self.image_op_timeout),
        ] {
            at_least(name, value, MIN_TIMEOUT)?;
        }
        let shorter = |name, value: Duration, other, bound: Duration| {
            if value >= bound {
                Err(ConfigError::NotShorter {
                    name,
                    value,
                    other,
                    bound,
                })
            } else {
                Ok(())
            }
        };
        shorter(
            "write retry",
            self.write_retry,
            "write timeout",
            self.write_timeout,
        )?;
        shorter(
            "status batch window",
            self.status_batch_window,
            "status commit timeout",
            self.status_commit_timeout,
        )?;
        Ok(())
    }

    /// openraft's config from ours.
    ///
    /// openraft 0.9 takes the voters' lease from `election_timeout_max`, so that is the
    /// election timeout; its own (fallback) timer is drawn from `[election_timeout_min,
    /// election_timeout_max]`.
    pub fn raft_config(&self) -> openraft::Config {
        let lease = self.election_timeout.as_millis() as u64;
        let heartbeat = self.raft_heartbeat.as_millis() as u64;
        openraft::Config {
            cluster_name: "shoal".into(),
            election_timeout_min: (lease / 2).max(heartbeat + 1),
            election_timeout_max: lease,
            heartbeat_interval: heartbeat,
            install_snapshot_timeout: (self.snapshot_install_timeout.as_millis() as u64)
                .max(lease * 4),
            snapshot_policy: openraft::SnapshotPolicy::LogsSinceLast(self.snapshot_every),
            max_in_snapshot_log_to_keep: self.snapshot_keep_logs,
            // Entries read from the log per AppendEntries; the network sends at most
            // `APPEND_BUDGET` bytes of them (`raft/network.rs`), so reading openraft's default
            // 300 (and decoding them) only to send a few would be wasted.
            max_payload_entries: 64,
            ..Default::default()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg() -> ManagerConfig {
        ManagerConfig::new("n".into(), 1, "127.0.0.1:1".into(), "/nonexistent".into())
    }

    #[test]
    fn defaults_are_valid_and_bounds_hold() {
        cfg().validate().unwrap();
        let mut c = cfg();
        c.raft_heartbeat = c.election_timeout;
        assert!(matches!(
            c.validate(),
            Err(ConfigError::RaftHeartbeat { .. })
        ));
        let mut c = cfg();
        c.resync_period = Duration::ZERO;
        assert_eq!(
            c.validate().unwrap_err().to_string(),
            "resync period (0ns) must be at least 1ms"
        );
        let mut c = cfg();
        c.status_batch_window = c.status_commit_timeout;
        assert!(matches!(c.validate(), Err(ConfigError::NotShorter { .. })));
        let mut c = cfg();
        c.relay_timeout = Duration::ZERO;
        assert!(matches!(c.validate(), Err(ConfigError::TooShort { .. })));
    }

    #[test]
    fn raft_timings_follow_ours() {
        let r = cfg().raft_config();
        assert_eq!((r.election_timeout_min, r.election_timeout_max), (100, 200));
        assert_eq!(r.install_snapshot_timeout, 2000);
        assert!(r.validate().is_ok());
        let mut c = cfg();
        c.election_timeout = Duration::from_millis(100);
        c.raft_heartbeat = Duration::from_millis(60);
        let r = c.raft_config();
        assert_eq!((r.election_timeout_min, r.election_timeout_max), (61, 100));
        assert!(r.validate().is_ok());
        let mut c = cfg();
        c.election_timeout = Duration::from_secs(1);
        assert_eq!(c.raft_config().install_snapshot_timeout, 4000);
    }
}
