//! `shoal-manager`: the manager half of `swarmd`.
//!
//! * [`raft`]: openraft type config, storage (sled or redb), tonic transport.
//! * [`store`]: the replicated state and its change signal.
//! * Leader-only actors, each a pure planning function over the store plus a loop that proposes
//!   its commands: [`orchestrator`], [`allocator`], [`scheduler`]; and the [`dispatcher`] that
//!   serves agent sessions.
//! * [`control`]: the Control API served to `swarmctl`.
#![forbid(unsafe_code)]

pub mod allocator;
pub mod raft;
pub mod store;

/// Upper bound on `--replicas`, to refuse absurd requests before they allocate anything.
pub const MAX_REPLICAS: u64 = 100_000;
