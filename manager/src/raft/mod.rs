//! Raft: openraft's type configuration, storage engines and gRPC transport.

pub mod batch;
pub mod codec;
pub mod forward;
pub mod network;
pub mod server;
pub mod storage;
pub mod types;

pub use types::{NodeId, Raft, TypeConfig, WriteError};
