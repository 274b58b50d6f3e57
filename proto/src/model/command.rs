//! Raft log entries: every change to the store is one `Command`, applied in order on every manager.
//!
//! Commands are stored in the raft log and sent between managers as JSON (`serde_json`, in
//! `manager/src/raft/storage/log_store.rs` and `raft/network.rs`), so their encoding is the log
//! format: a manager must read entries written by an older one, and during a rolling upgrade an
//! older one must read entries written by a newer one. `tests.rs` pins the encoding.

use super::{
    Cluster, ConfigId, ConfigObject, Network, NetworkId, Node, NodeId, NodeState, SecretId,
    SecretObject, Service, ServiceId, Task, TaskId, TaskStatus,
};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

#[cfg(test)]
mod tests;

/// A change to the replicated store.
///
/// Objects carry the `version` they were read at; a `Put*` whose version no longer matches the
/// stored one is a conflict and is skipped (optimistic concurrency, as SwarmKit's `Meta.version`).
/// Version 0 means "create".
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum Command {
    /// Creates the cluster object; only the first write of a new cluster.
    InitCluster(Cluster),
    /// Replaces the cluster object (token rotation).
    PutCluster(Cluster),
    /// Creates or updates a node.
    PutNode(Node),
    /// Removes a node.
    RemoveNode {
        /// Node id.
        id: NodeId,
    },
    /// Records the certificate the managers issued to a node; no version check.
    NodeCertIssued {
        /// Node id.
        id: NodeId,
        /// Expiry, ms since epoch.
        not_after_ms: i64,
        /// Digest of the issuing root.
        issuer: String,
    },
    /// Sets nodes' load-balancer addresses; an empty address removes one. No version check.
    SetNodeLbAddrs(Vec<NodeLbAddr>),
    /// Sets nodes' observed state (heartbeats); no version check.
    SetNodeStates(Vec<NodeStateChange>),
    /// Creates a network; an empty subnet is allocated from the default pool, a VNI is
    /// allocated for overlays. Refused if the name is taken or the subnet overlaps.
    CreateNetwork(Network),
    /// Updates networks (each version-checked; the allocator's IPAM cursor).
    PutNetworks(Vec<Network>),
    /// Removes a network; refused while a service uses it.
    RemoveNetwork {
        /// Network id.
        id: NetworkId,
    },
    /// Creates a service; allocates its published ports. Refused on a duplicate name or a port
    /// already published.
    CreateService(Service),
    /// Replaces a service's spec (version-checked); re-allocates ports.
    UpdateService(Service),
    /// Removes a service; its tasks are marked for removal.
    RemoveService {
        /// Service id.
        id: ServiceId,
    },
    /// Creates or updates tasks (each version-checked separately).
    PutTasks(Vec<Task>),
    /// Deletes tasks (the reaper).
    DeleteTasks(Vec<TaskId>),
    /// Observed task states from agents; a state never moves backwards.
    TaskStatuses(Vec<TaskStatusUpdate>),
    /// Several commands in one log entry, applied in order.
    Batch(Vec<Command>),
    /// Does nothing; used to check that the leader can commit.
    Noop,
    /// Creates a secret; refused if the name is taken. Secrets are immutable.
    CreateSecret(SecretObject),
    /// Removes a secret; refused while a service uses it.
    RemoveSecret {
        /// Secret id.
        id: SecretId,
    },
    /// Creates a config; refused if the name is taken. Configs are immutable.
    CreateConfig(ConfigObject),
    /// Removes a config; refused while a service uses it.
    RemoveConfig {
        /// Config id.
        id: ConfigId,
    },
    /// Replaces a secret's labels (version-checked); its data never changes.
    SetSecretLabels {
        /// Secret id.
        id: SecretId,
        /// The version it was read at.
        version: u64,
        /// All its labels.
        labels: std::collections::BTreeMap<String, String>,
        /// When, ms since epoch (the proposer's clock).
        updated_ms: i64,
    },
    /// Replaces a config's labels (version-checked); its data never changes.
    SetConfigLabels {
        /// Config id.
        id: ConfigId,
        /// The version it was read at.
        version: u64,
        /// All its labels.
        labels: std::collections::BTreeMap<String, String>,
        /// When, ms since epoch (the proposer's clock).
        updated_ms: i64,
    },
}

// The payloads below were tuples before they had names, and JSON encodes a tuple as an array:
// each keeps that array (`[node_id, network_id, addr]` rather than `{"node_id": …}`) so the log
// format is unchanged in both directions. Written by hand rather than with `#[serde(into)]` so
// that serializing borrows instead of cloning.

/// A node's load-balancer address on one network, in [`Command::SetNodeLbAddrs`].
///
/// Encoded as the array `[node_id, network_id, addr]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeLbAddr {
    /// Node id.
    pub node_id: NodeId,
    /// Network id.
    pub network_id: NetworkId,
    /// The node's address on the network in CIDR form; empty removes it.
    pub addr: String,
}

impl Serialize for NodeLbAddr {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        (&self.node_id, &self.network_id, &self.addr).serialize(s)
    }
}

impl<'de> Deserialize<'de> for NodeLbAddr {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let (node_id, network_id, addr) = Deserialize::deserialize(d)?;
        Ok(Self {
            node_id,
            network_id,
            addr,
        })
    }
}

/// A node's observed state, in [`Command::SetNodeStates`].
///
/// Encoded as the array `[node_id, state, message]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeStateChange {
    /// Node id.
    pub node_id: NodeId,
    /// The state observed.
    pub state: NodeState,
    /// Why ("heartbeat failure", …); empty when there is nothing to say.
    pub message: String,
}

impl Serialize for NodeStateChange {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        (&self.node_id, &self.state, &self.message).serialize(s)
    }
}

impl<'de> Deserialize<'de> for NodeStateChange {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let (node_id, state, message) = Deserialize::deserialize(d)?;
        Ok(Self {
            node_id,
            state,
            message,
        })
    }
}

/// A task's observed status, in [`Command::TaskStatuses`].
///
/// Encoded as the array `[task_id, status]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TaskStatusUpdate {
    /// Task id.
    pub task_id: TaskId,
    /// What the agent (or the manager) observed.
    pub status: TaskStatus,
}

impl Serialize for TaskStatusUpdate {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        (&self.task_id, &self.status).serialize(s)
    }
}

impl<'de> Deserialize<'de> for TaskStatusUpdate {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let (task_id, status) = Deserialize::deserialize(d)?;
        Ok(Self { task_id, status })
    }
}
