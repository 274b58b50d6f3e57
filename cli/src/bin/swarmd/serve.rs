//! Serving a manager's gRPC APIs: TCP (raft, dispatcher, control) and the local unix socket
//! (control only, 0600); and, while the manager is locked (autolock), only the locked Control
//! service on the unix socket ([`serve_locked`]).

use anyhow::Context;
use shoal_manager::control::locked::LockedControl;
use shoal_manager::control::ControlService;
use shoal_manager::raft::storage::unlock::UnlockKey;
use shoal_manager::Manager;
use std::future::Future;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::sync::Arc;
use tokio::net::{TcpListener, UnixListener};
use tokio::sync::watch;
use tokio_stream::wrappers::UnixListenerStream;
use tonic::transport::Server;
use tracing::{error, info};

/// Binds both listeners, then serves until `stop` turns true.
pub async fn serve(
    m: Arc<Manager>,
    listen: &str,
    socket: &Path,
    stop: watch::Receiver<bool>,
) -> anyhow::Result<()> {
    let tcp = TcpListener::bind(listen).await.with_context(|| {
        format!("cannot listen on {listen}: is another swarmd using it? (use --listen-addr)")
    })?;
    let _ = std::fs::remove_file(socket);
    let unix = UnixListener::bind(socket)
        .with_context(|| format!("cannot create control socket {}", socket.display()))?;
    std::fs::set_permissions(socket, std::fs::Permissions::from_mode(0o600))?;
    info!(addr = listen, socket = %socket.display(), "serving manager APIs");
    let wait = |mut rx: watch::Receiver<bool>| async move {
        let _ = rx.wait_for(|s| *s).await;
    };
    let tcp_server = shoal_manager::server::serve_tcp(m.clone(), tcp, wait(stop.clone()));
    let unix_server = Server::builder()
        .add_service(ControlService::new(m.clone()).into_server())
        .serve_with_incoming_shutdown(UnixListenerStream::new(unix), wait(stop));
    let socket = socket.to_path_buf();
    tokio::spawn(async move {
        if let Err(e) = unix_server.await {
            error!(error = %e, "control socket server failed");
        }
        let _ = std::fs::remove_file(socket);
    });
    tokio::spawn(async move {
        if let Err(e) = tcp_server.await {
            error!(error = %e, "manager API server failed");
        }
    });
    Ok(())
}

/// Serves the locked Control service (only `Unlock` answered) on the control socket until an
/// operator supplies the right unlock key (returned) or `shutdown` completes (`None`). The
/// socket is removed before returning, for the unlocked manager to bind it again.
pub async fn serve_locked(
    raft_dir: &Path,
    socket: &Path,
    shutdown: impl Future<Output = ()>,
) -> anyhow::Result<Option<UnlockKey>> {
    let _ = std::fs::remove_file(socket);
    let unix = UnixListener::bind(socket)
        .with_context(|| format!("cannot create control socket {}", socket.display()))?;
    std::fs::set_permissions(socket, std::fs::Permissions::from_mode(0o600))?;
    let (svc, unlocked) = LockedControl::new(raft_dir.to_path_buf());
    let (stop_tx, mut stop_rx) = watch::channel(false);
    let server = tokio::spawn(
        Server::builder()
            .add_service(svc)
            .serve_with_incoming_shutdown(UnixListenerStream::new(unix), async move {
                let _ = stop_rx.wait_for(|s| *s).await;
            }),
    );
    let key = tokio::select! {
        k = unlocked => k.ok(),
        _ = shutdown => None,
    };
    // Graceful: the Unlock call that sent the key gets its answer before the socket closes.
    let _ = stop_tx.send(true);
    match server.await {
        Ok(Err(e)) => error!(error = %e, "locked control socket server failed"),
        Err(e) => error!(error = %e, "locked control socket server panicked"),
        Ok(Ok(())) => {}
    }
    let _ = std::fs::remove_file(socket);
    Ok(key)
}
