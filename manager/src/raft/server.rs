//! Raft transport, server side: the `Raft` gRPC service.

use super::batch::Proposer;
use super::codec;
use super::forward::{ForwardResult, WireReply};
use super::network::MALFORMED;
use super::types::{Raft, TypeConfig};
use shoal_proto::model::Command;
use shoal_proto::pb::raft_server;
use shoal_proto::pb::RaftBytes;
use tonic::{Request, Response, Status};

/// Serves openraft's RPCs and forwarded client writes.
pub struct RaftService {
    raft: Raft,
    proposer: Proposer,
}

impl RaftService {
    /// Wraps a raft handle; forwarded writes go through `proposer`, batched with the leader's
    /// own.
    pub fn new(raft: Raft, proposer: Proposer) -> Self {
        RaftService { raft, proposer }
    }

    /// The tonic server for this service.
    pub fn into_server(self) -> raft_server::RaftServer<Self> {
        raft_server::RaftServer::new(self).max_decoding_message_size(64 << 20)
    }
}

fn bad(e: codec::CodecError) -> Status {
    Status::invalid_argument(format!("{MALFORMED}: {e}"))
}

/// The request's message, binary ([`codec`]) or JSON (an older Shoal, or a forwarded write).
fn decode<T: serde::de::DeserializeOwned>(req: &Request<RaftBytes>) -> Result<T, Status> {
    codec::decode(&req.get_ref().data).map_err(bad)
}

/// `v` in the form the request came in: JSON for a peer that sent JSON.
fn reply<T: serde::Serialize>(req: &RaftBytes, v: &T) -> Result<Response<RaftBytes>, Status> {
    let data = if codec::is_binary(&req.data) {
        codec::encode(v).map_err(|e| Status::internal(e.to_string()))?
    } else {
        serde_json::to_vec(v).map_err(|e| Status::internal(e.to_string()))?
    };
    Ok(Response::new(RaftBytes { data }))
}

#[tonic::async_trait]
impl raft_server::Raft for RaftService {
    async fn append_entries(&self, req: Request<RaftBytes>) -> Result<Response<RaftBytes>, Status> {
        let rpc: openraft::raft::AppendEntriesRequest<TypeConfig> = decode(&req)?;
        reply(req.get_ref(), &self.raft.append_entries(rpc).await)
    }

    async fn vote(&self, req: Request<RaftBytes>) -> Result<Response<RaftBytes>, Status> {
        let rpc: openraft::raft::VoteRequest<u64> = decode(&req)?;
        reply(req.get_ref(), &self.raft.vote(rpc).await)
    }

    async fn install_snapshot(
        &self,
        req: Request<RaftBytes>,
    ) -> Result<Response<RaftBytes>, Status> {
        let rpc: openraft::raft::InstallSnapshotRequest<TypeConfig> = decode(&req)?;
        reply(req.get_ref(), &self.raft.install_snapshot(rpc).await)
    }

    async fn forward_write(&self, req: Request<RaftBytes>) -> Result<Response<RaftBytes>, Status> {
        let cmd: Command = decode(&req)?;
        // Err(None): this node is not the leader (the caller looks again); Err(Some): failed.
        let written = self
            .proposer
            .write(cmd)
            .await
            .map_err(|e| Status::unavailable(e.to_string()))?;
        let result: ForwardResult = match written {
            Ok(r) => Ok(WireReply::new(r.data, r.log_id.index)),
            Err(e) if e.forward_to_leader().is_some() => Err(None),
            Err(e) => Err(Some(e.to_string())),
        };
        reply(req.get_ref(), &result)
    }
}
