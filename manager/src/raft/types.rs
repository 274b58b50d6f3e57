//! openraft type configuration: log entries are [`Command`]s, responses are [`Response`]s.

use shoal_proto::model::{Command, Response};
use std::io::Cursor;

/// Raft member id (random u64, distinct from the node id string).
pub type NodeId = u64;

openraft::declare_raft_types!(
    /// Shoal's raft types.
    pub TypeConfig:
        D = Command,
        R = Response,
        NodeId = NodeId,
        Node = openraft::BasicNode,
        Entry = openraft::Entry<TypeConfig>,
        SnapshotData = Cursor<Vec<u8>>,
        AsyncRuntime = openraft::TokioRuntime,
);

/// The raft handle.
pub type Raft = openraft::Raft<TypeConfig>;
