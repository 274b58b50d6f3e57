//! Raft transport, client side: one cached tonic channel per peer; openraft's messages travel
//! inside `RaftBytes` in the compact binary form of [`super::codec`]. A peer running an older
//! Shoal, which reads only JSON, refuses that as malformed: the peer is then spoken to in JSON
//! (servers answer in the form they were asked in).

use super::types::{NodeId, TypeConfig};
use openraft::error::{
    InstallSnapshotError, NetworkError, RPCError, RaftError, RemoteError, Unreachable,
};
use openraft::network::{RPCOption, RaftNetwork, RaftNetworkFactory};
use openraft::raft::{
    AppendEntriesRequest, AppendEntriesResponse, InstallSnapshotRequest, InstallSnapshotResponse,
    VoteRequest, VoteResponse,
};
use openraft::BasicNode;
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
        self.call(Kind::Append, &rpc, &option).await
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
