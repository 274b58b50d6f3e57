//! Raft log entries: every change to the store is one `Command`, applied in order on every manager.

use super::{Cluster, Network, Node, NodeState, Service, Task, TaskStatus};
use serde::{Deserialize, Serialize};

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
        id: String,
    },
    /// Records the certificate the managers issued to a node; no version check.
    NodeCertIssued {
        /// Node id.
        id: String,
        /// Expiry, ms since epoch.
        not_after_ms: i64,
        /// Digest of the issuing root.
        issuer: String,
    },
    /// Sets nodes' load-balancer addresses: (node, network, CIDR); an empty CIDR removes one.
    /// No version check.
    SetNodeLbAddrs(Vec<(String, String, String)>),
    /// Sets nodes' observed state (heartbeats); no version check.
    SetNodeStates(Vec<(String, NodeState, String)>),
    /// Creates a network; an empty subnet is allocated from the default pool, a VNI is
    /// allocated for overlays. Refused if the name is taken or the subnet overlaps.
    CreateNetwork(Network),
    /// Updates networks (each version-checked; the allocator's IPAM cursor).
    PutNetworks(Vec<Network>),
    /// Removes a network; refused while a service uses it.
    RemoveNetwork {
        /// Network id.
        id: String,
    },
    /// Creates a service; allocates its published ports. Refused on a duplicate name or a port
    /// already published.
    CreateService(Service),
    /// Replaces a service's spec (version-checked); re-allocates ports.
    UpdateService(Service),
    /// Removes a service; its tasks are marked for removal.
    RemoveService {
        /// Service id.
        id: String,
    },
    /// Creates or updates tasks (each version-checked separately).
    PutTasks(Vec<Task>),
    /// Deletes tasks (the reaper).
    DeleteTasks(Vec<String>),
    /// Observed task states from agents; a state never moves backwards.
    TaskStatuses(Vec<(String, TaskStatus)>),
    /// Several commands in one log entry, applied in order.
    Batch(Vec<Command>),
    /// Does nothing; used to check that the leader can commit.
    Noop,
}

/// What applying a command produced.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct Response {
    /// Set when the command was refused; nothing was changed.
    pub error: Option<String>,
    /// Id of the object created, if any.
    pub id: String,
    /// Number of version conflicts (skipped puts).
    pub conflicts: u32,
    /// Raft log index of the entry, set by the leader on a forwarded write so the forwarding
    /// follower can wait until it has applied the entry itself (read-your-writes).
    #[serde(default)]
    pub log_index: u64,
}

impl Response {
    /// The error as a `Result`.
    pub fn into_result(self) -> CommandResult {
        match self.error {
            Some(e) => Err(e),
            None => Ok(self),
        }
    }
}

/// The result of a command as seen by the caller.
pub type CommandResult = Result<Response, String>;
