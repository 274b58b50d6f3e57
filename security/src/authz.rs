//! The checks services make on a request's peer.
//!
//! A request with no [`PeerInfo`] came through a local unix socket (root only), and one over
//! plain TCP from an `--insecure-plaintext` cluster: both are let through. Over TLS, a call
//! needs a node certificate, and some calls a manager's.

use crate::identity::{NodeIdentity, Role};
use crate::transport::PeerInfo;
use tonic::{Request, Status};

/// The peer of `req`, if it came over TCP through a [`crate::Transport`] listener.
pub fn peer<T>(req: &Request<T>) -> Option<&PeerInfo> {
    req.extensions().get::<PeerInfo>()
}

/// The caller's certificate identity: `Ok(None)` where no TLS is in use (local socket, plain
/// clusters), an error over TLS without a node certificate.
pub fn caller<T>(req: &Request<T>) -> Result<Option<&NodeIdentity>, Status> {
    match peer(req) {
        Some(p) if p.tls => match &p.identity {
            Some(id) => Ok(Some(id)),
            None => Err(Status::unauthenticated(
                "this call needs a node certificate of this cluster (mutual TLS): join with a token first",
            )),
        },
        _ => Ok(None),
    }
}

/// Requires a manager's certificate (over TLS).
pub fn manager<T>(req: &Request<T>) -> Result<Option<&NodeIdentity>, Status> {
    let id = caller(req)?;
    if let Some(id) = id {
        if id.role != Role::Manager {
            return Err(Status::permission_denied(format!(
                "node {} holds a worker certificate: workers can only use the dispatcher, not the Control API or Raft; run this on a manager (or promote the node with `swarmctl node promote`)",
                id.node_id
            )));
        }
    }
    Ok(id)
}

/// Requires the certificate of node `node_id` itself (over TLS): a node speaks only for itself.
/// A manager may speak for any node (a follower forwards agents' calls to the leader).
pub fn node<T>(req: &Request<T>, node_id: &str) -> Result<(), Status> {
    if let Some(id) = caller(req)? {
        if id.node_id != node_id && id.role != Role::Manager {
            return Err(Status::permission_denied(format!(
                "the certificate of node {} cannot act for node {node_id}",
                id.node_id
            )));
        }
    }
    Ok(())
}
