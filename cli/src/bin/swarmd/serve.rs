//! Serving a node's APIs. The control socket (unix, 0600) lives as long as the process: it
//! answers the node's membership (`NodeLifecycle`: `swarm init|join|leave`) and the Control API
//! of whatever the node is now ([`Front`]): its manager's, a locked manager's (only `Unlock`),
//! or a refusal in Docker's words. While the node's manager runs, its TCP listener serves raft,
//! the dispatcher and Control to other nodes ([`serve_tcp`]).

use crate::lifecycle::LifecycleService;
use anyhow::Context;
use shoal_manager::control::consistent::Consistent;
use shoal_manager::control::locked::LockedControl;
use shoal_manager::control::ControlService;
use shoal_manager::Manager;
use shoal_proto::pb;
use shoal_proto::pb::control_server::ControlServer;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::sync::{Arc, RwLock, Weak};
use tokio::net::{TcpListener, UnixListener};
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio_stream::wrappers::UnixListenerStream;
use tonic::codegen::{http, Body, BoxFuture, Context as TaskContext, Poll, Service, StdError};
use tonic::transport::Server;
use tonic::Status;
use tracing::{error, info};

/// dockerd's words for a manager call on a node in no swarm.
pub const NOT_IN_SWARM: &str = "This node is not a swarm manager. Use \"docker swarm init\" or \"docker swarm join\" to connect this node to swarm and try again.";
/// dockerd's words for a manager call on a worker.
pub const WORKER: &str = "This node is not a swarm manager. Worker nodes can't be used to view or modify cluster state. Please run this command on a manager node or promote the current node to a manager.";

/// Who answers Control calls on the control socket now.
#[derive(Clone)]
pub enum Front {
    /// In no swarm: every call refused with [`NOT_IN_SWARM`].
    Idle,
    /// A worker (or a manager not started yet): refused with [`WORKER`].
    Worker,
    /// A locked manager: `Unlock` only.
    Locked(LockedControl),
    /// The running manager (behind its consistent-read barrier).
    Manager(Consistent<ControlServer<ControlService>>),
}

/// The switchable Control service of the control socket (and the manager behind it).
#[derive(Clone)]
pub struct ControlFront(Arc<RwLock<Front>>, Arc<RwLock<Weak<Manager>>>);

impl ControlFront {
    /// A front refusing calls as a node in no swarm.
    pub fn new() -> ControlFront {
        ControlFront(
            Arc::new(RwLock::new(Front::Idle)),
            Arc::new(RwLock::new(Weak::new())),
        )
    }

    /// From now on, `front` answers.
    pub fn set(&self, front: Front) {
        *self.0.write().unwrap_or_else(|e| e.into_inner()) = front;
    }

    /// The running manager answers.
    pub fn manager(&self, m: Arc<Manager>) {
        self.set(Front::Manager(ControlService::served(m.clone())));
        *self.1.write().unwrap_or_else(|e| e.into_inner()) = Arc::downgrade(&m);
    }

    /// The running manager, while the front is its (for `--metrics-addr`).
    pub fn running_manager(&self) -> Option<Arc<Manager>> {
        match self.current() {
            Front::Manager(_) => self.1.read().unwrap_or_else(|e| e.into_inner()).upgrade(),
            _ => None,
        }
    }

    fn current(&self) -> Front {
        self.0.read().unwrap_or_else(|e| e.into_inner()).clone()
    }
}

impl tonic::server::NamedService for ControlFront {
    const NAME: &'static str = pb::control_server::SERVICE_NAME;
}

impl<B> Service<http::Request<B>> for ControlFront
where
    B: Body + Send + 'static,
    B::Error: Into<StdError> + Send + 'static,
{
    type Response = http::Response<tonic::body::Body>;
    type Error = std::convert::Infallible;
    type Future = BoxFuture<Self::Response, Self::Error>;

    fn poll_ready(&mut self, _: &mut TaskContext<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: http::Request<B>) -> Self::Future {
        match self.current() {
            Front::Idle => Box::pin(async { Ok(Status::unavailable(NOT_IN_SWARM).into_http()) }),
            Front::Worker => Box::pin(async { Ok(Status::unavailable(WORKER).into_http()) }),
            Front::Locked(mut s) => s.call(req),
            Front::Manager(mut s) => s.call(req),
        }
    }
}

/// Binds the control socket (a stale one replaced; 0600) and serves `lifecycle` and `front` on
/// it until `stop` turns true; the socket is removed then.
pub fn control_socket(
    socket: &Path,
    lifecycle: LifecycleService,
    front: ControlFront,
    mut stop: watch::Receiver<bool>,
) -> anyhow::Result<JoinHandle<()>> {
    let _ = std::fs::remove_file(socket);
    let unix = UnixListener::bind(socket)
        .with_context(|| format!("cannot create control socket {}", socket.display()))?;
    std::fs::set_permissions(socket, std::fs::Permissions::from_mode(0o600))?;
    let server = Server::builder()
        .add_service(front)
        .add_service(pb::node_lifecycle_server::NodeLifecycleServer::new(
            lifecycle,
        ))
        .serve_with_incoming_shutdown(UnixListenerStream::new(unix), async move {
            let _ = stop.wait_for(|s| *s).await;
        });
    let socket = socket.to_path_buf();
    Ok(tokio::spawn(async move {
        if let Err(e) = server.await {
            error!(error = %e, "control socket server failed");
        }
        let _ = std::fs::remove_file(socket);
    }))
}

/// Binds the manager's TCP listener, then serves raft, the dispatcher and Control on it until
/// `stop` turns true.
pub async fn serve_tcp(
    m: Arc<Manager>,
    listen: &str,
    mut stop: watch::Receiver<bool>,
) -> anyhow::Result<()> {
    let tcp = TcpListener::bind(listen).await.with_context(|| {
        format!("cannot listen on {listen}: is another swarmd using it? (use --listen-addr)")
    })?;
    info!(addr = listen, "serving manager APIs");
    let server = shoal_manager::server::serve_tcp(m, tcp, async move {
        let _ = stop.wait_for(|s| *s).await;
    });
    tokio::spawn(async move {
        if let Err(e) = server.await {
            error!(error = %e, "manager API server failed");
        }
    });
    Ok(())
}
