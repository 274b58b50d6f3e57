//! The manager's gRPC surface on one TCP listener: Raft, Dispatcher and Control.

use crate::control::ControlService;
use crate::dispatcher::DispatcherService;
use crate::manager::Manager;
use crate::raft::server::RaftService;
use std::future::Future;
use std::sync::Arc;
use tokio::net::TcpListener;
use tonic::transport::server::TcpIncoming;
use tonic::transport::Server;

/// Serves Raft, Dispatcher and Control on `listener` until `shutdown` completes.
pub async fn serve_tcp(
    m: Arc<Manager>,
    listener: TcpListener,
    shutdown: impl Future<Output = ()>,
) -> Result<(), tonic::transport::Error> {
    Server::builder()
        .tcp_nodelay(true)
        .add_service(RaftService::new(m.raft.clone()).into_server())
        .add_service(DispatcherService::new(m.clone()).into_server())
        .add_service(ControlService::new(m).into_server())
        // `tcp_nodelay` above only applies to listeners tonic binds itself; sockets accepted
        // from our own listener need it set here, or Nagle + delayed ACK stall small replies
        // (raft, forwarded writes, control calls) for ~40 ms.
        .serve_with_incoming_shutdown(
            TcpIncoming::from(listener).with_nodelay(Some(true)),
            shutdown,
        )
        .await
}
