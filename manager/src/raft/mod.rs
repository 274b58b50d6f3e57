//! Raft: openraft's type configuration, storage engines and gRPC transport.

pub mod types;

pub use types::{NodeId, TypeConfig};
