//! Raft transport, server side: the `Raft` gRPC service.

use super::forward::{ForwardResult, WireReply};
use super::network::{decode, encode};
use super::types::{Raft, TypeConfig};
use shoal_proto::model::Command;
use shoal_proto::pb::raft_server;
use shoal_proto::pb::RaftBytes;
use tonic::{Request, Response, Status};

/// Serves openraft's RPCs and forwarded client writes.
pub struct RaftService {
    raft: Raft,
}

impl RaftService {
    /// Wraps a raft handle.
    pub fn new(raft: Raft) -> Self {
        RaftService { raft }
    }

    /// The tonic server for this service.
    pub fn into_server(self) -> raft_server::RaftServer<Self> {
        raft_server::RaftServer::new(self).max_decoding_message_size(64 << 20)
    }
}

fn bad(e: serde_json::Error) -> Status {
    Status::invalid_argument(format!("malformed raft message: {e}"))
}

fn reply<T: serde::Serialize>(v: &T) -> Result<Response<RaftBytes>, Status> {
    Ok(Response::new(RaftBytes {
        data: encode(v).map_err(|e| Status::internal(e.to_string()))?,
    }))
}

#[tonic::async_trait]
impl raft_server::Raft for RaftService {
    async fn append_entries(&self, req: Request<RaftBytes>) -> Result<Response<RaftBytes>, Status> {
        let rpc: openraft::raft::AppendEntriesRequest<TypeConfig> =
            decode(&req.get_ref().data).map_err(bad)?;
        reply(&self.raft.append_entries(rpc).await)
    }

    async fn vote(&self, req: Request<RaftBytes>) -> Result<Response<RaftBytes>, Status> {
        let rpc: openraft::raft::VoteRequest<u64> = decode(&req.get_ref().data).map_err(bad)?;
        reply(&self.raft.vote(rpc).await)
    }

    async fn install_snapshot(
        &self,
        req: Request<RaftBytes>,
    ) -> Result<Response<RaftBytes>, Status> {
        let rpc: openraft::raft::InstallSnapshotRequest<TypeConfig> =
            decode(&req.get_ref().data).map_err(bad)?;
        reply(&self.raft.install_snapshot(rpc).await)
    }

    async fn forward_write(&self, req: Request<RaftBytes>) -> Result<Response<RaftBytes>, Status> {
        let cmd: Command = decode(&req.get_ref().data).map_err(bad)?;
        // Err(None): this node is not the leader (the caller looks again); Err(Some): failed.
        let result: ForwardResult = match self.raft.client_write(cmd).await {
            Ok(r) => Ok(WireReply::new(r.data, r.log_id.index)),
            Err(e) if e.forward_to_leader().is_some() => Err(None),
            Err(e) => Err(Some(e.to_string())),
        };
        reply(&result)
    }
}
