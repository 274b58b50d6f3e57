//! Who may call what, checked on the peer's certificate (see `shoal_security::authz`).
//!
//! - Raft and Control: a manager's certificate (or the root-only local socket).
//! - Dispatcher: `GetRootCa` and `Register` need none (a joining node has no certificate yet; the
//!   token authorises it); every other call needs the certificate of the node it speaks for.
//! - Certificates of removed nodes are refused everywhere.

use crate::manager::Manager;
use shoal_security::authz;
use std::sync::Arc;
use tonic::service::Interceptor;
use tonic::{Request, Status};

impl Manager {
    /// Refuses a removed node.
    pub fn check_not_removed(&self, node_id: &str) -> Result<(), Status> {
        if self.store.read().removed_nodes.contains(node_id) {
            return Err(Status::permission_denied(format!(
                "node {node_id} was removed from the swarm: its certificate is no longer accepted; clear its state dir and join again with a token"
            )));
        }
        Ok(())
    }

    /// Requires the certificate of node `node_id`, not removed (over TLS).
    pub fn check_node<T>(&self, req: &Request<T>, node_id: &str) -> Result<(), Status> {
        authz::node(req, node_id)?;
        if let Some(id) = authz::caller(req)? {
            self.check_not_removed(&id.node_id)?;
        }
        Ok(())
    }
}

/// An interceptor admitting managers only.
#[derive(Clone)]
pub struct ManagersOnly(pub Arc<Manager>);

impl Interceptor for ManagersOnly {
    fn call(&mut self, req: Request<()>) -> Result<Request<()>, Status> {
        if let Some(id) = authz::manager(&req)? {
            self.0.check_not_removed(&id.node_id)?;
        }
        Ok(req)
    }
}
