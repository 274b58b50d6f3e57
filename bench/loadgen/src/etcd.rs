//! The two etcd v3 RPCs the benchmarks need (`KV.Put`, `Maintenance.Status`), as hand-written
//! prost messages: a subset of etcd's `etcdserverpb/rpc.proto` with the same field numbers
//! (prost skips the fields left out when decoding).

use std::time::Duration;
use tonic::codegen::http::uri::PathAndQuery;
use tonic::transport::{Channel, Endpoint};

#[derive(Clone, PartialEq, prost::Message)]
pub struct PutRequest {
    #[prost(bytes = "vec", tag = "1")]
    pub key: Vec<u8>,
    #[prost(bytes = "vec", tag = "2")]
    pub value: Vec<u8>,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct ResponseHeader {
    #[prost(uint64, tag = "1")]
    pub cluster_id: u64,
    #[prost(uint64, tag = "2")]
    pub member_id: u64,
    #[prost(int64, tag = "3")]
    pub revision: i64,
    #[prost(uint64, tag = "4")]
    pub raft_term: u64,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct PutResponse {
    #[prost(message, optional, tag = "1")]
    pub header: Option<ResponseHeader>,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct StatusRequest {}

#[derive(Clone, PartialEq, prost::Message)]
pub struct StatusResponse {
    #[prost(message, optional, tag = "1")]
    pub header: Option<ResponseHeader>,
    #[prost(string, tag = "2")]
    pub version: String,
    #[prost(uint64, tag = "4")]
    pub leader: u64,
    #[prost(uint64, tag = "5")]
    pub raft_index: u64,
}

/// One connection to one etcd member.
#[derive(Clone)]
pub struct Client {
    grpc: tonic::client::Grpc<Channel>,
}

impl Client {
    /// Connects to `url` (`http://127.0.0.1:P`); every call gives up after `timeout`.
    pub async fn connect(url: &str, timeout: Duration) -> anyhow::Result<Client> {
        let ch = Endpoint::from_shared(url.to_string())?
            .connect_timeout(Duration::from_secs(3))
            .timeout(timeout)
            .connect()
            .await
            .map_err(|e| anyhow::anyhow!("cannot reach etcd at {url}: {e}"))?;
        Ok(Client { grpc: tonic::client::Grpc::new(ch) })
    }

    pub async fn put(&mut self, key: Vec<u8>, value: Vec<u8>) -> Result<PutResponse, tonic::Status> {
        self.grpc.ready().await.map_err(|e| tonic::Status::unavailable(e.to_string()))?;
        let codec = tonic_prost::ProstCodec::<PutRequest, PutResponse>::default();
        let path = PathAndQuery::from_static("/etcdserverpb.KV/Put");
        self.grpc.unary(tonic::Request::new(PutRequest { key, value }), path, codec).await.map(|r| r.into_inner())
    }

    pub async fn status(&mut self) -> Result<StatusResponse, tonic::Status> {
        self.grpc.ready().await.map_err(|e| tonic::Status::unavailable(e.to_string()))?;
        let codec = tonic_prost::ProstCodec::<StatusRequest, StatusResponse>::default();
        let path = PathAndQuery::from_static("/etcdserverpb.Maintenance/Status");
        self.grpc.unary(tonic::Request::new(StatusRequest {}), path, codec).await.map(|r| r.into_inner())
    }
}

/// `(member id, leader id)` as seen by the member at `url`.
pub async fn member_and_leader(url: &str, timeout: Duration) -> anyhow::Result<(u64, u64)> {
    let mut c = Client::connect(url, timeout).await?;
    let s = c.status().await.map_err(|s| anyhow::anyhow!("etcd status at {url}: {}", s.message()))?;
    Ok((s.header.map(|h| h.member_id).unwrap_or(0), s.leader))
}
