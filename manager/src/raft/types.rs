//! openraft type configuration: log entries are [`Command`]s, responses are [`Applied`]s.

use crate::store::Applied;
use shoal_proto::model::Command;
use std::io::Cursor;

/// Raft member id (random u64, distinct from the node id string).
pub type NodeId = u64;

openraft::declare_raft_types!(
    /// Shoal's raft types.
    pub TypeConfig:
        D = Command,
        R = Applied,
        NodeId = NodeId,
        Node = openraft::BasicNode,
        Entry = openraft::Entry<TypeConfig>,
        SnapshotData = Cursor<Vec<u8>>,
        AsyncRuntime = openraft::TokioRuntime,
);

/// The raft handle.
pub type Raft = openraft::Raft<TypeConfig>;

/// Why a proposal failed (as opposed to being applied and refused by the store).
pub type WriteError = openraft::error::RaftError<
    NodeId,
    openraft::error::ClientWriteError<NodeId, openraft::BasicNode>,
>;
