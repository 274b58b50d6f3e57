//! `shoal-agent`: the half of `swarmd` that runs on every node.
//!
//! * [`config`]: the agent's settings, every timing among them.
//! * [`background`]: the loops and request handlers the agent spawns, owned and stopped together.
//! * [`certs`]: keeps the node's certificate renewed (expiry, role change, root rotation).
//! * [`session`]: holds one session with the leader's dispatcher (reconnecting to another
//!   manager when one dies), sends heartbeats, receives assignments and log requests.
//! * [`worker`]: reconciles the assigned tasks with what runs on this node.
//! * [`reporter`]: sends task status changes in batches, resending after a reconnect.
//! * [`logs`]: the tasks' logs with their times, and the follows `service logs -f` asks for.
//! * [`images`]: the node's images for `swarmctl image …`, locked with the tasks' pulls.
//! * [`executor`]: runs tasks: containers from images (`oci`, with the node's image store) or
//!   programs on the node (`process`), in their sandbox or not, each task routed by its runtime.
//! * [`dns`]: the embedded DNS at 127.0.0.11 in every task.
//! * [`network`]: the data plane: task sandboxes and the local network drivers.
//! * [`metrics`]: what `swarmd --metrics-addr` shows of the agent.
#![deny(unsafe_code)]
#![deny(missing_docs)]
#![deny(clippy::undocumented_unsafe_blocks)]

pub mod background;
pub mod certs;
pub mod config;
pub mod dns;
pub mod executor;
pub mod images;
pub mod join;
pub mod logs;
pub mod metrics;
pub mod network;
pub mod reporter;
pub mod session;
pub mod worker;

#[cfg(test)]
mod test_util;

pub use config::{AgentConfig, ConfigError};
pub use session::Agent;
