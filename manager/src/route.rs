//! The one way a gRPC call reaches the leader from another manager.
//!
//! Some calls only the leader can answer well: it holds the agents' sessions (logs, exec,
//! balancer inspection), it sees which managers answer raft (`node ls`), it signs certificates
//! at join. A follower forwards those, once: the forwarded call carries [`FORWARDED`], and a
//! manager that receives a forwarded call answers it itself or fails, never forwards it again,
//! so two managers that each think the other leads cannot bounce a call between them.
//! Writes take another path: raft's own forwarding in [`Manager::write`].

use crate::error::ManagerError;
use crate::manager::Manager;
use std::time::Duration;
use tonic::metadata::MetadataValue;
use tonic::transport::Channel;
use tonic::Request;

/// Metadata marking a call a manager forwarded to the leader (never forwarded again).
pub const FORWARDED: &str = "shoal-forwarded";

/// Where a call goes.
#[derive(Debug)]
pub enum Route {
    /// This manager leads: answer here.
    Here,
    /// Forward to the leader over this channel, as [`forwarded`] makes the request.
    Leader(Channel),
}

impl Manager {
    /// Where `req`, a call the leader answers, goes from this manager.
    ///
    /// Errors: [`ManagerError::NoLeaderNow`] when no leader is known, or when `req` was already
    /// forwarded once and this manager does not lead either (leadership is moving: the caller
    /// retries); [`ManagerError::Transport`] when the leader's address is unusable. Calls that
    /// can do with this manager's own view (`node ls`) answer locally on any error.
    pub fn route<T>(&self, req: &Request<T>) -> Result<Route, ManagerError> {
        if self.is_leader() {
            return Ok(Route::Here);
        }
        if was_forwarded(req) {
            return Err(ManagerError::NoLeaderNow);
        }
        let (_, addr) = self.leader().ok_or(ManagerError::NoLeaderNow)?;
        Ok(Route::Leader(self.channel(&addr)?))
    }
}

/// Whether `req` was forwarded by another manager.
pub fn was_forwarded<T>(req: &Request<T>) -> bool {
    req.metadata().contains_key(FORWARDED)
}

/// `msg` as a call forwarded to the leader, with deadline `timeout` if any.
pub fn forwarded<T>(msg: T, timeout: Option<Duration>) -> Request<T> {
    let mut r = Request::new(msg);
    r.metadata_mut()
        .insert(FORWARDED, MetadataValue::from_static("1"));
    if let Some(t) = timeout {
        r.set_timeout(t);
    }
    r
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn forwarded_calls_are_marked() {
        let r = forwarded((), Some(Duration::from_secs(2)));
        assert!(was_forwarded(&r));
        assert!(r.metadata().contains_key("grpc-timeout"));
        assert!(!was_forwarded(&Request::new(())));
        assert!(!forwarded((), None).metadata().contains_key("grpc-timeout"));
    }
}
