//! What a node certificate says about its holder.
//!
//! As in SwarmKit: the subject's CN is the node id, its OU the role (`swarm-manager` or
//! `swarm-worker`) and its O the cluster id. A manager's certificate also names
//! [`MANAGER_SAN`] as a DNS name, which is what every client checks a manager's server
//! certificate against (managers are reached by IP address, which certificates do not carry).

use crate::{Error, Result};
use std::fmt;
use x509_parser::prelude::{FromDer, X509Certificate};

/// The DNS name in every manager certificate; clients verify managers against it.
pub const MANAGER_SAN: &str = "swarm-manager";
/// The DNS name in every worker certificate.
pub const WORKER_SAN: &str = "swarm-worker";

/// A node's role as its certificate states it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Role {
    /// May use Raft, Control and the dispatcher.
    Manager,
    /// May use the dispatcher only.
    Worker,
}

impl Role {
    /// The certificate's OU for this role.
    pub fn ou(self) -> &'static str {
        match self {
            Role::Manager => "swarm-manager",
            Role::Worker => "swarm-worker",
        }
    }

    /// The DNS SAN for this role.
    pub fn san(self) -> &'static str {
        match self {
            Role::Manager => MANAGER_SAN,
            Role::Worker => WORKER_SAN,
        }
    }

    fn from_ou(ou: &str) -> Option<Role> {
        match ou {
            "swarm-manager" => Some(Role::Manager),
            "swarm-worker" => Some(Role::Worker),
            _ => None,
        }
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Role::Manager => "manager",
            Role::Worker => "worker",
        })
    }
}

/// Who holds a node certificate.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct NodeIdentity {
    /// Node id.
    pub node_id: String,
    /// Role.
    pub role: Role,
    /// Cluster id.
    pub cluster_id: String,
}

/// A node certificate read back: its holder and validity (Unix seconds).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CertInfo {
    /// Holder.
    pub identity: NodeIdentity,
    /// Not valid before.
    pub not_before: i64,
    /// Not valid after.
    pub not_after: i64,
}

impl CertInfo {
    /// Reads a node certificate (DER).
    pub fn parse(der: &[u8]) -> Result<CertInfo> {
        let (_, cert) = X509Certificate::from_der(der)
            .map_err(|e| Error::Parse(format!("node certificate: {e}")))?;
        let subject = cert.subject();
        let first = |it: &mut dyn Iterator<Item = &x509_parser::x509::AttributeTypeAndValue>| {
            it.next().and_then(|a| a.as_str().ok()).map(str::to_string)
        };
        let node_id = first(&mut subject.iter_common_name());
        let ou = first(&mut subject.iter_organizational_unit());
        let cluster_id = first(&mut subject.iter_organization());
        let (Some(node_id), Some(role), Some(cluster_id)) =
            (node_id, ou.as_deref().and_then(Role::from_ou), cluster_id)
        else {
            return Err(Error::Parse(
                "not a Shoal node certificate (subject lacks CN=node id, OU=role, O=cluster id)"
                    .into(),
            ));
        };
        let v = cert.validity();
        Ok(CertInfo {
            identity: NodeIdentity {
                node_id,
                role,
                cluster_id,
            },
            not_before: v.not_before.timestamp(),
            not_after: v.not_after.timestamp(),
        })
    }
}
