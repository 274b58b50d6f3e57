//! Raft transport, client side: one cached tonic channel per peer; openraft's messages travel
//! inside `RaftBytes` in the compact binary form of [`super::codec`]. A peer running an older
//! Shoal, which reads only JSON, refuses that as malformed: the peer is then spoken to in JSON
//! (servers answer in the form they were asked in).
//!
//! openraft 0.9 gives every AppendEntries the heartbeat interval as its deadline, however much it
//! carries; a follower that fell behind would be sent more than it can take in that time, time
//! out, and be sent the same again. So one AppendEntries carries at most [`APPEND_BUDGET`] bytes
//! of entries (always at least one entry): the rest is left out and the follower's success is
//! reported as `PartialSuccess` up to the last entry sent, after which openraft sends the next
//! part at once.

use super::types::{NodeId, TypeConfig};
use openraft::error::{
    InstallSnapshotError, NetworkError, RPCError, RaftError, RemoteError, Unreachable,
};
use openraft::network::{RPCOption, RaftNetwork, RaftNetworkFactory};
use openraft::raft::{
    AppendEntriesRequest, AppendEntriesResponse, InstallSnapshotRequest, InstallSnapshotResponse,
    VoteRequest, VoteResponse,
};
use openraft::{BasicNode, LogId};
use serde::de::DeserializeOwned;
use serde::Serialize;
use shoal_proto::pb::raft_client::RaftClient;
use shoal_proto::pb::RaftBytes;
use shoal_security::Transport;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tonic::transport::{Channel, Endpoint};

/// Timings of the connections between managers (see the `peer_*` fields of
/// [`ManagerConfig`](crate::ManagerConfig)).
#[derive(Debug, Clone, Copy)]
pub struct PeerTimings {
    /// TCP connect deadline.
    pub connect_timeout: Duration,
    /// HTTP/2 keep-alive ping interval.
    pub keepalive_interval: Duration,
    /// How long a ping may go unanswered.
    pub keepalive_timeout: Duration,
    /// Pause before the leader retries a manager it could not reach (openraft's default is
    /// 500 ms): a restarted manager must hear from the leader well within an election
    /// timeout, or it starts an election and deposes a healthy leader.
    pub unreachable_backoff: Duration,
}

impl PeerTimings {
    /// The timings of `cfg`.
    pub fn of(cfg: &crate::ManagerConfig) -> PeerTimings {
        PeerTimings {
            connect_timeout: cfg.peer_connect_timeout,
            keepalive_interval: cfg.peer_keepalive_interval,
            keepalive_timeout: cfg.peer_keepalive_timeout,
            unreachable_backoff: cfg.election_timeout / 4,
        }
    }
}

/// A lazily connected channel to `addr` (`ip:port`) over `transport`.
pub fn channel(
    transport: &Transport,
    timings: PeerTimings,
    addr: &str,
) -> Result<Channel, tonic::transport::Error> {
    let ep = Endpoint::from_shared(format!("http://{addr}"))?
        .connect_timeout(timings.connect_timeout)
        .tcp_nodelay(true)
        .http2_keep_alive_interval(timings.keepalive_interval)
        .keep_alive_timeout(timings.keepalive_timeout);
    Ok(transport.lazy(ep))
}

/// Creates one connection per peer and caches the channels.
#[derive(Clone)]
pub struct Network {
    transport: Transport,
    timings: PeerTimings,
    channels: Arc<Mutex<HashMap<String, Channel>>>,
    contact: Arc<Mutex<HashMap<NodeId, Instant>>>,
}

impl Network {
    /// Connections to peers over `transport`.
    pub fn new(transport: Transport, timings: PeerTimings) -> Network {
        Network {
            transport,
            timings,
            channels: Arc::default(),
            contact: Arc::default(),
        }
    }

    /// A cached channel to `addr`.
    pub fn channel(&self, addr: &str) -> Result<Channel, tonic::transport::Error> {
        let mut map = self.channels.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(c) = map.get(addr) {
            return Ok(c.clone());
        }
        let c = channel(&self.transport, self.timings, addr)?;
        map.insert(addr.to_string(), c.clone());
        Ok(c)
    }

    /// When a raft RPC to `id` last succeeded (on the leader: at least every heartbeat).
    pub fn last_contact(&self, id: NodeId) -> Option<Instant> {
        self.contact
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(&id)
            .copied()
    }
}

impl RaftNetworkFactory<TypeConfig> for Network {
    type Network = Peer;

    async fn new_client(&mut self, target: NodeId, node: &BasicNode) -> Peer {
        Peer {
            target,
            node: node.clone(),
            client: self.channel(&node.addr).ok().map(RaftClient::new),
            contact: self.contact.clone(),
            json: false,
            backoff: self.timings.unreachable_backoff,
        }
    }
}

/// One peer.
pub struct Peer {
    target: NodeId,
    node: BasicNode,
    client: Option<RaftClient<Channel>>,
    contact: Arc<Mutex<HashMap<NodeId, Instant>>>,
    /// The peer refused the binary form (an older Shoal): speak JSON to it.
    json: bool,
    /// How long openraft waits before retrying this peer when it is unreachable.
    backoff: Duration,
}

/// What an older Shoal's raft server says of a message it cannot decode (see `server.rs`).
pub(crate) const MALFORMED: &str = "malformed raft message";

/// JSON serialization of forwarded writes (`forward.rs`); raft's own messages use
/// [`super::codec`].
pub fn encode<T: Serialize>(v: &T) -> Result<Vec<u8>, serde_json::Error> {
    serde_json::to_vec(v)
}

/// Inverse of [`encode`].
pub fn decode<T: DeserializeOwned>(b: &[u8]) -> Result<T, serde_json::Error> {
    serde_json::from_slice(b)
}

/// A raft message in the binary form, or in JSON for a peer that reads only JSON.
fn encode_for<T: Serialize>(v: &T, json: bool) -> Result<Vec<u8>, super::codec::CodecError> {
    if json {
        Ok(serde_json::to_vec(v)?)
    } else {
        super::codec::encode(v)
    }
}

#[derive(Debug, thiserror::Error)]
#[error("{0}")]
struct TransportError(String);

/// Most bytes of entries (in the binary form) one AppendEntries carries, unless its first entry
/// alone is larger. On loopback TLS a part this size reaches a follower, is written and flushed
/// there and answered well within openraft's heartbeat interval (the RPC's deadline).
pub const APPEND_BUDGET: usize = 256 * 1024;

/// How many entries of encoded sizes `sizes` one AppendEntries carries: the longest prefix whose
/// total is at most `budget`, and at least one (none only if there are none). Stops reading
/// `sizes` past the prefix.
pub fn prefix_len(sizes: impl IntoIterator<Item = usize>, budget: usize) -> usize {
    let mut total = 0usize;
    let mut n = 0;
    for size in sizes {
        total = total.saturating_add(size);
        if n > 0 && total > budget {
            break;
        }
        n += 1;
    }
    n
}

/// `rpc` with only the entries that fit `budget` ([`prefix_len`]), and the log id of the last
/// entry kept if any were left out.
pub fn limit_append(
    mut rpc: AppendEntriesRequest<TypeConfig>,
    budget: usize,
) -> (AppendEntriesRequest<TypeConfig>, Option<LogId<NodeId>>) {
    if rpc.entries.len() <= 1 {
        return (rpc, None);
    }
    let n = prefix_len(
        rpc.entries
            .iter()
            .map(|e| super::codec::encoded_len(e).unwrap_or(usize::MAX)),
        budget,
    );
    if n >= rpc.entries.len() {
        return (rpc, None);
    }
    rpc.entries.truncate(n);
    let last = rpc.entries.last().map(|e| e.log_id);
    (rpc, last)
}

/// The answer openraft is given for an AppendEntries that was cut after `cut`: the follower's
/// success covers only what was sent; a conflict or a higher vote is passed on as it is.
pub fn answer_for_part(
    resp: AppendEntriesResponse<NodeId>,
    cut: Option<LogId<NodeId>>,
) -> AppendEntriesResponse<NodeId> {
    match (resp, cut) {
        (AppendEntriesResponse::Success, Some(last)) => {
            AppendEntriesResponse::PartialSuccess(Some(last))
        }
        (resp, _) => resp,
    }
}

impl Peer {
    async fn call<Req, Resp, E>(
        &mut self,
        kind: Kind,
        req: &Req,
        option: &RPCOption,
    ) -> Result<Resp, RPCError<NodeId, BasicNode, RaftError<NodeId, E>>>
    where
        Req: Serialize,
        Resp: DeserializeOwned,
        E: std::error::Error + DeserializeOwned,
    {
        let client = self.client.as_mut().ok_or_else(|| {
            RPCError::Unreachable(Unreachable::new(&TransportError(format!(
                "bad address {}",
                self.node.addr
            ))))
        })?;
        let mut resp = Self::send(client, &kind, req, option, self.json).await;
        if !self.json
            && matches!(&resp, Err(s) if s.code() == tonic::Code::InvalidArgument
                && s.message().starts_with(MALFORMED))
        {
            tracing::info!(
                peer = self.target,
                "raft peer reads only JSON; speaking JSON to it"
            );
            self.json = true;
            resp = Self::send(client, &kind, req, option, true).await;
        }
        let resp = resp.map_err(|s| match s.code() {
            tonic::Code::Unavailable | tonic::Code::DeadlineExceeded | tonic::Code::Cancelled => {
                RPCError::Unreachable(Unreachable::new(&TransportError(s.message().to_string())))
            }
            _ => RPCError::Network(NetworkError::new(&TransportError(s.message().to_string()))),
        })?;
        let result: Result<Resp, RaftError<NodeId, E>> =
            super::codec::decode(&resp.into_inner().data)
                .map_err(|e| RPCError::Network(NetworkError::new(&e)))?;
        self.contact
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(self.target, Instant::now());
        result.map_err(|e| {
            RPCError::RemoteError(RemoteError::new_with_node(
                self.target,
                self.node.clone(),
                e,
            ))
        })
    }

    /// One RPC of `kind` carrying `req` (JSON if `json`).
    async fn send<Req: Serialize>(
        client: &mut RaftClient<Channel>,
        kind: &Kind,
        req: &Req,
        option: &RPCOption,
        json: bool,
    ) -> Result<tonic::Response<RaftBytes>, tonic::Status> {
        let data = encode_for(req, json).map_err(|e| tonic::Status::internal(e.to_string()))?;
        let mut request = tonic::Request::new(RaftBytes { data });
        request.set_timeout(option.hard_ttl());
        match kind {
            Kind::Append => client.append_entries(request).await,
            Kind::Vote => client.vote(request).await,
            Kind::Snapshot => client.install_snapshot(request).await,
        }
    }
}

enum Kind {
    Append,
    Vote,
    Snapshot,
}

impl RaftNetwork<TypeConfig> for Peer {
    async fn append_entries(
        &mut self,
        rpc: AppendEntriesRequest<TypeConfig>,
        option: RPCOption,
    ) -> Result<AppendEntriesResponse<NodeId>, RPCError<NodeId, BasicNode, RaftError<NodeId>>> {
        let (rpc, cut) = limit_append(rpc, APPEND_BUDGET);
        let started = Instant::now();
        let resp = self.call(Kind::Append, &rpc, &option).await?;
        if let Some(last) = cut {
            tracing::debug!(
                peer = self.target,
                entries = rpc.entries.len(),
                last = %last,
                elapsed_ms = started.elapsed().as_millis() as u64,
                resp = %resp,
                "sent part of the entries"
            );
        }
        Ok(answer_for_part(resp, cut))
    }

    async fn install_snapshot(
        &mut self,
        rpc: InstallSnapshotRequest<TypeConfig>,
        option: RPCOption,
    ) -> Result<
        InstallSnapshotResponse<NodeId>,
        RPCError<NodeId, BasicNode, RaftError<NodeId, InstallSnapshotError>>,
    > {
        self.call(Kind::Snapshot, &rpc, &option).await
    }

    async fn vote(
        &mut self,
        rpc: VoteRequest<NodeId>,
        option: RPCOption,
    ) -> Result<VoteResponse<NodeId>, RPCError<NodeId, BasicNode, RaftError<NodeId>>> {
        self.call(Kind::Vote, &rpc, &option).await
    }

    fn backoff(&self) -> openraft::network::Backoff {
        openraft::network::Backoff::new(std::iter::repeat(self.backoff))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use openraft::{CommittedLeaderId, Entry, EntryPayload, Vote};
    use shoal_proto::model::Command;

    fn log_id(i: u64) -> LogId<NodeId> {
        LogId::new(CommittedLeaderId::new(2, 1), i)
    }

    /// Entries 1..=n, each a command of about `bytes` bytes.
    fn request(n: u64, bytes: usize) -> AppendEntriesRequest<TypeConfig> {
        AppendEntriesRequest {
            vote: Vote::new_committed(2, 1),
            prev_log_id: Some(log_id(0)),
            leader_commit: Some(log_id(0)),
            entries: (1..=n)
                .map(|i| Entry {
                    log_id: log_id(i),
                    payload: EntryPayload::Normal(Command::DeleteTasks(vec![
                        "x".repeat(bytes)
                            .into();
                        1
                    ])),
                })
                .collect(),
        }
    }

    #[test]
    fn prefix_is_the_longest_within_budget_and_never_empty() {
        assert_eq!(prefix_len([], 10), 0);
        assert_eq!(prefix_len([100], 10), 1);
        assert_eq!(prefix_len([100, 1], 10), 1);
        assert_eq!(prefix_len([3, 3, 3, 3], 10), 3);
        assert_eq!(prefix_len([5, 5, 1], 10), 2);
        assert_eq!(prefix_len([1, 2, 3], 100), 3);
        assert_eq!(prefix_len([usize::MAX, 1], 10), 1);
    }

    #[test]
    fn small_requests_and_heartbeats_pass_untouched() {
        for n in [0, 1, 10] {
            let (rpc, cut) = limit_append(request(n, 100), APPEND_BUDGET);
            assert_eq!(rpc.entries.len() as u64, n);
            assert_eq!(cut, None);
        }
        // One entry larger than the budget still goes, whole.
        let (rpc, cut) = limit_append(request(1, 1000), 10);
        assert_eq!((rpc.entries.len(), cut), (1, None));
    }

    #[test]
    fn large_requests_are_cut_and_success_becomes_partial() {
        let (rpc, cut) = limit_append(request(100, 1000), 10 * 1024);
        let sent = rpc.entries.len();
        assert!((5..100).contains(&sent), "{sent} entries sent");
        assert_eq!(cut, Some(log_id(sent as u64)));
        assert_eq!(rpc.prev_log_id, Some(log_id(0)));
        let bytes: usize = rpc
            .entries
            .iter()
            .map(|e| super::super::codec::encoded_len(e).unwrap())
            .sum();
        assert!(bytes <= 10 * 1024, "{bytes} bytes");
        assert_eq!(
            answer_for_part(AppendEntriesResponse::Success, cut),
            AppendEntriesResponse::PartialSuccess(cut)
        );
        assert_eq!(
            answer_for_part(AppendEntriesResponse::Success, None),
            AppendEntriesResponse::Success
        );
        assert_eq!(
            answer_for_part(AppendEntriesResponse::Conflict, cut),
            AppendEntriesResponse::Conflict
        );
        let higher = AppendEntriesResponse::HigherVote(Vote::new(3, 2));
        assert_eq!(
            answer_for_part(AppendEntriesResponse::HigherVote(Vote::new(3, 2)), cut),
            higher
        );
    }
}
