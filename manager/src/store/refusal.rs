//! What applying a command produced: [`Applied`], and [`Refusal`], why the store's rules turned a
//! command down.
//!
//! Neither is ever written to the raft log or a snapshot: `Applied` is openraft's response type,
//! handed back to whoever proposed the command. It does cross the network once, in the reply to
//! a write a follower forwarded to the leader (see `raft::forward`), so `Refusal`'s serde form is
//! part of the manager-to-manager protocol: add variants, never rename or reshape one.

use crate::allocator::ipam::SubnetError;
use crate::allocator::ports::PortError;
use serde::{Deserialize, Serialize};
use std::fmt;

/// The kinds of object a refusal or a lookup names, as users read them ("service web not
/// found").
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub enum ObjectKind {
    /// A node.
    Node,
    /// A network.
    Network,
    /// A service.
    Service,
    /// A task.
    Task,
    /// A secret.
    Secret,
    /// A config.
    Config,
}

impl fmt::Display for ObjectKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ObjectKind::Node => "node",
            ObjectKind::Network => "network",
            ObjectKind::Service => "service",
            ObjectKind::Task => "task",
            ObjectKind::Secret => "secret",
            ObjectKind::Config => "config",
        })
    }
}

/// The object whose version no longer matched when a single-object write was applied.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub enum Versioned {
    /// The cluster object.
    Cluster,
    /// A node.
    Node {
        /// Its id.
        id: String,
    },
    /// A service.
    Service {
        /// Its name.
        name: String,
    },
    /// A secret or a config.
    Data {
        /// Which.
        kind: ObjectKind,
        /// Its name.
        name: String,
    },
}

/// Why the store refused a command. Nothing the refused command would have changed was changed
/// (inside a [`Command::Batch`](shoal_proto::model::Command::Batch) the other commands still
/// apply). The text of each variant is what users see.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
#[non_exhaustive]
pub enum Refusal {
    /// The object was written by someone else since it was read (optimistic concurrency, as
    /// SwarmKit's `Meta.version`): read it again and retry.
    #[error("{}", conflict_text(.0))]
    Conflict(Versioned),
    /// `InitCluster` on a cluster that exists.
    #[error("cluster is already initialised")]
    AlreadyInitialised,
    /// A command that needs the cluster object before `InitCluster`.
    #[error("cluster is not initialised")]
    NotInitialised,
    /// The object named does not exist.
    #[error("{kind} {id} not found")]
    NotFound {
        /// What was looked for.
        kind: ObjectKind,
        /// The id (or reference) given.
        id: String,
    },
    /// An object with this id exists already.
    #[error("{kind} id {id} already exists")]
    IdTaken {
        /// What was created.
        kind: ObjectKind,
        /// The id.
        id: String,
    },
    /// An object of this kind already has this name.
    #[error("{kind} with name {name:?} already exists{}", .holder.as_ref().map(|id| format!(" (id {id})")).unwrap_or_default())]
    NameTaken {
        /// What was created or renamed.
        kind: ObjectKind,
        /// The name.
        name: String,
        /// The id of the object holding the name, when the message names it.
        holder: Option<String>,
    },
    /// The node was removed from the swarm and may not come back as itself.
    #[error("node {0} was removed from the swarm")]
    NodeRemoved(String),
    /// The network is attached to services.
    #[error("network {network} is in use by service(s) {}; remove them or detach them first", .services.join(", "))]
    NetworkInUse {
        /// The network's name.
        network: String,
        /// Names of the services using it.
        services: Vec<String>,
    },
    /// A secret or config a service uses (Docker's wording).
    #[error("{kind} '{name}' is in use by the following service{}: {}", if .services.len() == 1 { "" } else { "s" }, .services.join(", "))]
    InUse {
        /// Secret or config.
        kind: ObjectKind,
        /// Its name.
        name: String,
        /// Names of the services using it.
        services: Vec<String>,
    },
    /// `ingress` is made at `init` and lives as long as the cluster.
    #[error("the ingress network cannot be removed")]
    IngressNetwork,
    /// One of the networks every node has (`bridge`, `host`, `none`, …).
    #[error("{0} is a pre-defined network and cannot be removed")]
    PredefinedNetwork(String),
    /// A subnet that does not parse.
    #[error(transparent)]
    Subnet(#[from] SubnetError),
    /// No subnet of the cluster's size is left in the default address pool.
    #[error("address pool {pool} is exhausted; pass --subnet or remove unused networks")]
    PoolExhausted {
        /// The pool, as a CIDR.
        pool: String,
    },
    /// A subnet with too few addresses for a gateway and tasks.
    #[error("subnet {0} is too small: use a prefix of /29 or shorter")]
    SubnetTooSmall(String),
    /// The subnet overlaps another network's.
    #[error("subnet {subnet} overlaps network {network} ({network_subnet})")]
    SubnetOverlap {
        /// The subnet asked for.
        subnet: String,
        /// The network already using addresses of it.
        network: String,
        /// That network's subnet.
        network_subnet: String,
    },
    /// Every VXLAN id is taken.
    #[error("no free VXLAN id")]
    NoFreeVni,
    /// More replicas than [`crate::MAX_REPLICAS`].
    #[error("replicas {replicas} is too large (at most {max})")]
    TooManyReplicas {
        /// Replicas asked for.
        replicas: u64,
        /// The limit.
        max: u64,
    },
    /// A published port is taken, or none is left.
    #[error(transparent)]
    Port(#[from] PortError),
    /// A refusal from a manager of another version that this one cannot read as a variant
    /// (during a rolling upgrade): only its text is known.
    #[error("{0}")]
    Other(String),
}

fn conflict_text(v: &Versioned) -> String {
    match v {
        Versioned::Cluster => "the cluster changed concurrently; retry".to_string(),
        Versioned::Node { .. } => {
            "update out of sequence: the node was changed since it was read; read it again and retry"
                .to_string()
        }
        Versioned::Service { name } => format!(
            "update out of sequence: service {name} was changed since it was read; read it again and retry"
        ),
        Versioned::Data { kind, name } => format!(
            "update out of sequence: {kind} {name} was changed since it was read; read it again and retry"
        ),
    }
}

/// What applying a command did: openraft's response type, returned to the proposer.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Applied {
    /// Id of the object created, if any.
    pub id: String,
    /// Objects a multi-object put (`PutTasks`, `PutNetworks`) skipped because their version was
    /// stale; the others were written. Planners simply re-plan on the next pass.
    pub skipped: u32,
    /// Set when the command was refused.
    pub refusal: Option<Refusal>,
    /// For a [`Command::Batch`](shoal_proto::model::Command::Batch): each command's own
    /// outcome, in order (the fields above merge them). Lets one entry carry the writes of
    /// several clients ([`crate::raft::batch`]).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub parts: Vec<Applied>,
}

impl Applied {
    /// An outcome that created or touched object `id`.
    pub fn with_id(id: impl Into<String>) -> Applied {
        Applied {
            id: id.into(),
            ..Default::default()
        }
    }

    /// The refusal as an error.
    pub fn into_result(self) -> Result<Applied, Refusal> {
        match self.refusal {
            Some(r) => Err(r),
            None => Ok(self),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn texts_are_the_ones_users_know() {
        let cases = [
            (
                Refusal::Conflict(Versioned::Service { name: "web".into() }),
                "update out of sequence: service web was changed since it was read; read it again and retry",
            ),
            (
                Refusal::Conflict(Versioned::Cluster),
                "the cluster changed concurrently; retry",
            ),
            (
                Refusal::NotFound {
                    kind: ObjectKind::Network,
                    id: "n1".into(),
                },
                "network n1 not found",
            ),
            (
                Refusal::IdTaken {
                    kind: ObjectKind::Service,
                    id: "s1".into(),
                },
                "service id s1 already exists",
            ),
            (
                Refusal::NameTaken {
                    kind: ObjectKind::Network,
                    name: "lp".into(),
                    holder: None,
                },
                "network with name \"lp\" already exists",
            ),
            (
                Refusal::NameTaken {
                    kind: ObjectKind::Service,
                    name: "web".into(),
                    holder: Some("s1".into()),
                },
                "service with name \"web\" already exists (id s1)",
            ),
            (
                Refusal::NetworkInUse {
                    network: "lp".into(),
                    services: vec!["web".into(), "api".into()],
                },
                "network lp is in use by service(s) web, api; remove them or detach them first",
            ),
        ];
        for (r, text) in cases {
            assert_eq!(r.to_string(), text);
        }
    }

    #[test]
    fn refusals_survive_the_wire() {
        let r = Refusal::Port(PortError::InUse {
            port: 8080,
            protocol: "tcp".into(),
            owner: "api".into(),
            target: 80,
        });
        let json = serde_json::to_vec(&r).unwrap();
        assert_eq!(serde_json::from_slice::<Refusal>(&json).unwrap(), r);
    }
}
