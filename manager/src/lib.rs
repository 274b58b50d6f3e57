//! `shoal-manager`: the manager half of `swarmd`.
//!
//! * [`raft`]: openraft type config, storage (sled or redb), tonic transport.
//! * [`store`]: the replicated state and its change signal.
//! * Leader-only actors, each a pure planning function over the store plus a loop that proposes
//!   its commands: [`orchestrator`], [`allocator`], [`scheduler`]; and the [`dispatcher`] that
//!   serves agent sessions.
//! * [`control`]: the Control API served to `swarmctl`; [`events`]: the change feed its `Watch`
//!   streams.
//! * [`ca`] and [`authz`]: the cluster CA (node certificates, root rotation) and who may call
//!   what over mutual TLS.
//! * [`autolock`]: keeping the raft key file in step with the cluster's autolock setting; a
//!   locked manager's Control API is `control::locked`.
//! * [`election`]: elections started as soon as the dead leader's lease ends, with a jitter
//!   drawn for each.
//! * [`error`]: [`ManagerError`], which every module's error folds into, and the one mapping
//!   to gRPC statuses; [`route`]: how a call reaches the leader.
//! * [`metrics`]: what `swarmd --metrics-addr` shows of the manager.
#![forbid(unsafe_code)]
#![deny(missing_docs)]

pub mod allocator;
pub mod authz;
pub mod autolock;
pub mod bootstrap;
pub mod ca;
pub mod chunk;
pub mod config;
pub mod control;
pub mod dispatcher;
pub mod election;
pub mod error;
pub mod events;
mod leader;
pub mod manager;
pub mod metrics;
pub mod orchestrator;
pub mod raft;
pub mod route;
pub mod scheduler;
pub mod server;
pub mod store;

pub use bootstrap::{Bootstrap, BootstrapError, BootstrapSpec};
pub use config::ManagerConfig;
pub use error::ManagerError;
pub use manager::Manager;

/// Upper bound on `--replicas`, to refuse absurd requests before they allocate anything.
pub const MAX_REPLICAS: u64 = 100_000;
