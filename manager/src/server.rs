//! The manager's gRPC surface on one TCP listener: Raft, Dispatcher and Control.

use crate::control::ControlService;
use crate::dispatcher::DispatcherService;
use crate::manager::Manager;
use crate::raft::server::RaftService;
use std::future::Future;
use std::sync::Arc;
use tokio::net::TcpListener;
use tokio_stream::wrappers::TcpListenerStream;
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
        .serve_with_incoming_shutdown(TcpListenerStream::new(listener), shutdown)
        .await
}
