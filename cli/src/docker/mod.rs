//! The Docker Engine API on a unix socket (`swarmd --docker-host unix://PATH`): the real `docker`
//! CLI pointed at a Shoal node (`DOCKER_HOST=unix://PATH`) drives the cluster's nodes,
//! services (with their logs), tasks, networks, secrets and configs, and the tasks as
//! containers (`docker ps`, `docker inspect`, `docker exec` through the task relay).
//!
//! An edge, like the Control API: HTTP/1.1 requests are translated into the Control calls
//! `swarmctl` makes, over the node's own control socket; the answers are turned into Docker's
//! JSON shapes (moby's `api/types/swarm`). No logic of its own beyond translation. A node that
//! serves no Control API (a worker) answers swarm calls as a Docker worker does: 503, "This node
//! is not a swarm manager. Worker nodes can't be used…".
//!
//! * [`route`]: API versions (`/v1.41/…` or none) and paths → [`route::Route`];
//! * [`filters`]: Docker's `filters=` JSON;
//! * [`types`]: Control objects → Docker's JSON; [`spec`]: Docker's service spec → Control's;
//! * [`api`]: one request → one [`api::Reply`] (reads, services); `write`: the other writes;
//!   `membership`: `swarm init|join|leave|unlock`, through the control socket's
//!   `NodeLifecycle`, which swarmd serves in a swarm or not;
//! * [`logs`]: `service logs` as Docker's multiplexed stream;
//! * [`events`]: `/events`, the manager's change feed of swarm objects as Docker's events;
//! * [`data_update`]: label-only updates of secrets and configs (`docker stack deploy`);
//! * [`containers`]: `docker ps` and `docker inspect CONTAINER` (a container is a task);
//!   [`exec`]: `docker exec`'s instances over the task relay, the start hijacked;
//! * [`server`]: the socket (0600, a stale one replaced, removed on exit) and HTTP.

pub mod api;
pub mod containers;
pub mod data_update;
pub mod error;
pub mod events;
pub mod exec;
pub mod filters;
pub mod logs;
mod membership;
mod names;
pub mod route;
pub mod server;
pub mod spec;
pub mod types;
mod write;

#[cfg(test)]
mod containers_tests;
#[cfg(test)]
mod spec_tests;
#[cfg(test)]
mod stack_tests;
#[cfg(test)]
mod tests;
#[cfg(test)]
mod write_tests;

pub use api::{Api, LocalNode};
pub use error::ApiError;

/// The Engine API version Shoal speaks (Docker 20.10's), sent in `/_ping`'s `API-Version`
/// header: clients negotiate down to it.
pub const API_VERSION: &str = "1.41";

/// The oldest API version accepted in a path (dockerd 20.10's minimum).
pub const MIN_API_VERSION: &str = "1.12";

/// What `/version` and `node ls` (ENGINE VERSION) show as the engine's version.
pub const ENGINE_VERSION: &str = env!("CARGO_PKG_VERSION");
