//! The manager's gRPC surface on one TCP listener: Raft, Dispatcher and Control, over the
//! node's transport (mutual TLS), with the checks of [`crate::authz`].

use crate::authz::ManagersOnly;
use crate::control::ControlService;
use crate::dispatcher::DispatcherService;
use crate::manager::Manager;
use crate::raft::server::RaftService;
use std::future::Future;
use std::sync::Arc;
use tokio::net::TcpListener;
use tonic::service::interceptor::InterceptedService;
use tonic::transport::Server;

/// Serves Raft, Dispatcher and Control on `listener` until `shutdown` completes.
pub async fn serve_tcp(
    m: Arc<Manager>,
    listener: TcpListener,
    shutdown: impl Future<Output = ()>,
) -> Result<(), tonic::transport::Error> {
    let guard = ManagersOnly(m.clone());
    // The transport sets TCP_NODELAY on every accepted socket: without it Nagle + delayed ACK
    // stall small replies (raft, forwarded writes, control calls) for ~40 ms.
    let incoming = m.cfg.transport.incoming(listener);
    Server::builder()
        .add_service(InterceptedService::new(
            RaftService::new(m.raft.clone(), m.proposer.clone()).into_server(),
            guard.clone(),
        ))
        .add_service(DispatcherService::new(m.clone()).into_server())
        .add_service(InterceptedService::new(ControlService::served(m), guard))
        .serve_with_incoming_shutdown(incoming, shutdown)
        .await
}
