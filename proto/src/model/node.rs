//! Nodes, networks and the cluster object.

use super::{NetworkId, NodeId};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// A node's role in the cluster.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
pub enum NodeRole {
    /// Runs tasks only.
    #[default]
    Worker,
    /// Runs tasks and is a raft member.
    Manager,
}

/// Whether the scheduler may place tasks on a node.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
pub enum Availability {
    /// New tasks may be placed.
    #[default]
    Active,
    /// Existing tasks keep running; no new tasks.
    Pause,
    /// Tasks are moved away.
    Drain,
}

/// A node's observed state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
pub enum NodeState {
    /// Not heard from since the last leader change.
    #[default]
    Unknown,
    /// Missed its heartbeats.
    Down,
    /// Holding a session and heartbeating.
    Ready,
    /// Left its session on purpose.
    Disconnected,
}

/// A cluster member.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
pub struct Node {
    /// Node id (25 base-36 chars).
    pub id: NodeId,
    /// Hostname as reported at join.
    pub hostname: String,
    /// Manager or worker.
    pub role: NodeRole,
    /// Scheduling availability.
    pub availability: Availability,
    /// Observed state.
    pub state: NodeState,
    /// Why the node is in its state ("heartbeat failure", …).
    pub state_message: String,
    /// Advertised address (`ip:port`).
    pub addr: String,
    /// User labels (`node.labels.X` constraints).
    pub labels: BTreeMap<String, String>,
    /// Raft member id for managers, 0 for workers.
    pub raft_id: u64,
    /// Creation time, ms since epoch.
    pub created_ms: i64,
    /// Last change, ms since epoch.
    pub updated_ms: i64,
    /// Raft index of the last write (optimistic concurrency).
    pub version: u64,
    /// Expiry of the last certificate the managers issued to the node, ms since epoch.
    #[serde(default)]
    pub cert_not_after_ms: i64,
    /// Digest of the root CA that issued it.
    #[serde(default)]
    pub cert_issuer: String,
    /// The node's load-balancer endpoint per overlay network (network id → CIDR): the address
    /// of its `lb_<netid>` namespace (or `ingress_sbox`), which balanced connections come from.
    #[serde(default)]
    pub lb_addrs: BTreeMap<NetworkId, String>,
}

/// Network driver.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
pub enum NetworkDriver {
    /// VXLAN across nodes (swarm scope).
    #[default]
    Overlay,
    /// A Linux bridge on each node (local scope).
    Bridge,
    /// The node's own network namespace (the predefined `host` network).
    Host,
    /// Loopback only (the predefined `none` network).
    Null,
}

impl NetworkDriver {
    /// Whether networks of this driver exist on each node separately (Docker's "local" scope)
    /// rather than across the cluster.
    pub fn is_local(self) -> bool {
        !matches!(self, NetworkDriver::Overlay)
    }
}

/// The networks every cluster has from `init` on, as Docker shows them: name, driver, subnet.
/// They cannot be removed.
pub const PREDEFINED_NETWORKS: [(&str, NetworkDriver, &str); 4] = [
    ("bridge", NetworkDriver::Bridge, "172.17.0.0/16"),
    ("host", NetworkDriver::Host, ""),
    ("none", NetworkDriver::Null, ""),
    ("shoal_gwbridge", NetworkDriver::Bridge, "172.18.0.0/16"),
];

/// A network.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
pub struct Network {
    /// Network id.
    pub id: NetworkId,
    /// Unique name.
    pub name: String,
    /// Driver.
    pub driver: NetworkDriver,
    /// Subnet (CIDR).
    pub subnet: String,
    /// Gateway address (first host of the subnet).
    pub gateway: String,
    /// VXLAN id for overlays (4096 and up), 0 otherwise.
    pub vni: u32,
    /// Whether standalone tasks may attach.
    pub attachable: bool,
    /// The routing-mesh network.
    pub ingress: bool,
    /// User labels.
    pub labels: BTreeMap<String, String>,
    /// Serial IPAM cursor: the last host offset handed out, so freed addresses are not reused at
    /// once (SwarmKit's serial allocation).
    pub ipam_cursor: u32,
    /// Creation time.
    pub created_ms: i64,
    /// Raft index of the last write.
    pub version: u64,
}

/// Cluster-wide settings and secrets.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
pub struct Cluster {
    /// Cluster id.
    pub id: String,
    /// Secret half of the worker join token.
    pub worker_secret: String,
    /// Secret half of the manager join token.
    pub manager_secret: String,
    /// Digest half of both tokens (identifies the cluster).
    pub digest: String,
    /// Default address pool for networks without `--subnet`.
    pub default_addr_pool: String,
    /// Prefix length of subnets cut from the pool.
    pub subnet_size: u8,
    /// Creation time.
    pub created_ms: i64,
    /// Raft index of the last write.
    pub version: u64,
    /// The root CA that signs node certificates: its certificate (PEM)…
    #[serde(default)]
    pub ca_cert_pem: String,
    /// …and its private key (PEM; replicated to managers only, never sent to a client).
    #[serde(default)]
    pub ca_key_pem: Secret,
    /// During a root rotation: the new root cross-signed by the old one, sent after each node
    /// certificate so that nodes still trusting only the old root accept it. Empty otherwise.
    #[serde(default)]
    pub ca_cross_pem: String,
    /// Every root nodes must trust: the signing root, plus the old one during a rotation.
    #[serde(default)]
    pub ca_roots_pem: String,
    /// Validity of node certificates, ms.
    #[serde(default)]
    pub cert_expiry_ms: u64,
    /// Autolock: managers keep their raft key-encryption key only in [`Cluster::unlock_key`],
    /// so a restarted manager must be unlocked by an operator.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub autolock: bool,
    /// The unlock key (`SWMKEY-1-…`) while autolock is on, empty otherwise (replicated to
    /// managers only, shown only by `GetUnlockKey`).
    #[serde(default, skip_serializing_if = "Secret::is_empty")]
    pub unlock_key: Secret,
}

/// A string that `Debug` does not print (private keys).
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(transparent)]
pub struct Secret(pub String);

impl Secret {
    /// Whether the secret is empty (not set).
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(if self.0.is_empty() {
            "\"\""
        } else {
            "<redacted>"
        })
    }
}

impl Cluster {
    /// The join token for `role`.
    pub fn token(&self, role: NodeRole) -> String {
        let secret = match role {
            NodeRole::Worker => &self.worker_secret,
            NodeRole::Manager => &self.manager_secret,
        };
        format!("SWMTKN-1-{}-{}", self.digest, secret)
    }
}
