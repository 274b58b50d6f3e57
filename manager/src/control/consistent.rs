//! Linearizable reads on request (`swarmctl --consistent`).
//!
//! Reads are answered from this manager's store by default: a follower's store may lag the
//! leader by a raft round trip, or by a lot on a manager cut off from the others. A call that
//! carries the [`CONSISTENT`] metadata first passes a read barrier, in one place for every
//! Control method ([`Consistent`], a layer around the Control service):
//!
//! * on the leader, openraft's read index ([`openraft::Raft::ensure_linearizable`]): a
//!   heartbeat round confirms that a quorum still follows this leader, then the leader waits
//!   until it has applied everything committed when the call arrived;
//! * on a follower, the same on the leader, asked through the leader's Control API (a
//!   forwarded `GetCluster` carrying [`CONSISTENT`]; the leader answers with the read index in
//!   [`READ_INDEX`]), then this manager waits until it has applied up to that index.
//!
//! Then the call runs as usual and reads the local store, which holds every write acknowledged
//! before the call arrived. When no quorum confirms within
//! [`ManagerConfig::forward_read_timeout`](crate::ManagerConfig::forward_read_timeout), the call
//! fails ([`ConsistencyError`], UNAVAILABLE) instead of answering possibly stale data.

use crate::manager::Manager;
use crate::route::{forwarded, FORWARDED};
use crate::ManagerError;
use shoal_proto::pb;
use shoal_proto::pb::control_client::ControlClient;
use std::convert::Infallible;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;
use tonic::body::Body;
use tonic::codegen::{http, BoxFuture, Service};
use tonic::metadata::MetadataValue;
use tonic::server::NamedService;
use tonic::Status;
use tracing::debug;

/// Metadata asking for a linearizable answer (`swarmctl --consistent`).
pub const CONSISTENT: &str = "shoal-consistent";

/// Response metadata: the raft log index a consistent call's barrier waited for.
pub const READ_INDEX: &str = "shoal-read-index";

/// Why a consistent read was refused.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConsistencyError {
    /// No leader confirmed by a quorum within the deadline.
    #[error("consistent read refused: no quorum of managers confirmed the raft leader within {0:?} (without --consistent, reads answer from this manager's store, which may be stale)")]
    NotConfirmed(Duration),
    /// No leader is known, or a forwarded barrier reached a manager that does not lead.
    #[error("consistent read refused: no raft leader right now (is a majority of managers up?)")]
    NoLeader,
    /// The leader could not confirm its leadership.
    #[error("consistent read refused: the leader could not confirm it still leads: {0}")]
    Leader(String),
    /// The leader's answer had no read index (a manager without `--consistent` support).
    #[error("consistent read refused: the leader did not return a read index")]
    NoReadIndex,
}

/// Whether `headers` ask for a consistent read.
pub fn wants_consistent(headers: &http::HeaderMap) -> bool {
    headers.contains_key(CONSISTENT)
}

/// The read index a leader returned in `metadata`, if any.
pub fn read_index(metadata: &tonic::metadata::MetadataMap) -> Option<u64> {
    metadata.get(READ_INDEX)?.to_str().ok()?.parse().ok()
}

/// The read barrier: returns once this manager's store holds every write committed before the
/// call, with the raft log index it waited for. `forwarded`: the call came from another
/// manager, so only a leader answers it (no second hop).
pub async fn barrier(m: &Manager, forwarded: bool) -> Result<u64, ConsistencyError> {
    let deadline = m.cfg.forward_read_timeout;
    match tokio::time::timeout(deadline, barrier_now(m, forwarded, deadline)).await {
        Ok(r) => r,
        Err(_) => Err(ConsistencyError::NotConfirmed(deadline)),
    }
}

async fn barrier_now(
    m: &Manager,
    forwarded: bool,
    deadline: Duration,
) -> Result<u64, ConsistencyError> {
    if m.is_leader() {
        match m.raft.ensure_linearizable().await {
            Ok(log_id) => return Ok(log_id.map_or(0, |l| l.index)),
            Err(e) if e.forward_to_leader().is_some() => {} // no longer leads: ask the new one
            Err(e) => return Err(ConsistencyError::Leader(e.to_string())),
        }
    }
    if forwarded {
        return Err(ConsistencyError::NoLeader);
    }
    let (_, addr) = m.leader().ok_or(ConsistencyError::NoLeader)?;
    let channel = m
        .channel(&addr)
        .map_err(|e| ConsistencyError::Leader(e.to_string()))?;
    let mut req = forwarded_barrier(deadline);
    req.metadata_mut()
        .insert(CONSISTENT, MetadataValue::from_static("1"));
    let resp = ControlClient::new(channel)
        .get_cluster(req)
        .await
        .map_err(|s| ConsistencyError::Leader(s.message().to_string()))?;
    let index = read_index(resp.metadata()).ok_or(ConsistencyError::NoReadIndex)?;
    if index > 0 {
        m.raft
            .wait(Some(deadline))
            .applied_index_at_least(Some(index), "consistent read")
            .await
            .map_err(|_| ConsistencyError::NotConfirmed(deadline))?;
    }
    debug!(index, leader = %addr, "consistent read: applied up to the leader's read index");
    Ok(index)
}

fn forwarded_barrier(deadline: Duration) -> tonic::Request<pb::Empty> {
    forwarded(pb::Empty {}, Some(deadline))
}

/// The Control service behind a read barrier for the calls that carry [`CONSISTENT`].
#[derive(Clone)]
pub struct Consistent<S> {
    inner: S,
    m: Arc<Manager>,
}

impl<S> Consistent<S> {
    /// `inner` (the Control server) behind the barrier of manager `m`.
    pub fn new(inner: S, m: Arc<Manager>) -> Self {
        Consistent { inner, m }
    }
}

impl<S: NamedService> NamedService for Consistent<S> {
    const NAME: &'static str = S::NAME;
}

impl<S, B> Service<http::Request<B>> for Consistent<S>
where
    S: Service<http::Request<B>, Response = http::Response<Body>, Error = Infallible>
        + Clone
        + Send
        + 'static,
    S::Future: Send + 'static,
    B: Send + 'static,
{
    type Response = http::Response<Body>;
    type Error = Infallible;
    type Future = BoxFuture<Self::Response, Self::Error>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: http::Request<B>) -> Self::Future {
        if !wants_consistent(req.headers()) {
            return Box::pin(self.inner.call(req));
        }
        // The service polled ready is the one that must take the call.
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        let m = self.m.clone();
        let was_forwarded = req.headers().contains_key(FORWARDED);
        Box::pin(async move {
            match barrier(&m, was_forwarded).await {
                Ok(index) => {
                    let mut resp = inner.call(req).await?;
                    resp.headers_mut()
                        .insert(READ_INDEX, http::HeaderValue::from(index));
                    Ok(resp)
                }
                Err(e) => Ok(Status::from(ManagerError::from(e)).into_http()),
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_read_index_travels_in_metadata() {
        let mut md = tonic::metadata::MetadataMap::new();
        assert_eq!(read_index(&md), None);
        md.insert(READ_INDEX, MetadataValue::from(42u64));
        assert_eq!(read_index(&md), Some(42));
        md.insert(READ_INDEX, MetadataValue::from_static("x"));
        assert_eq!(read_index(&md), None);
    }

    #[test]
    fn the_barrier_request_is_forwarded_once_with_a_deadline() {
        let r = forwarded_barrier(Duration::from_secs(2));
        assert!(crate::route::was_forwarded(&r));
        assert!(r.metadata().contains_key("grpc-timeout"));
        let mut h = http::HeaderMap::new();
        assert!(!wants_consistent(&h));
        h.insert(CONSISTENT, http::HeaderValue::from_static("1"));
        assert!(wants_consistent(&h));
    }

    #[test]
    fn refusals_are_unavailable_and_say_why() {
        let s = Status::from(ManagerError::from(ConsistencyError::NotConfirmed(
            Duration::from_secs(2),
        )));
        assert_eq!(s.code(), tonic::Code::Unavailable);
        assert!(s.message().contains("no quorum"), "{}", s.message());
    }
}
