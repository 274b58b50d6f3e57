//! The Control API of a locked manager: one restarted while autolock is on, whose raft key file
//! (`kek.location: unlock_key`) cannot be opened without the cluster's unlock key. It has not
//! opened raft nor joined the cluster's raft group; it answers `Unlock` and refuses every other
//! call with FAILED_PRECONDITION and [`LOCKED_MESSAGE`].
//!
//! `swarmd` serves it on the node's control socket only (0600, root): unlocking is local, as
//! `docker swarm unlock` is. The node's TLS key is not encrypted by autolock; the TCP listener
//! is not bound until the manager is unlocked, so its raft peers see it unreachable.

use crate::autolock::LOCKED_MESSAGE;
use crate::raft::storage::keys::{KekLocation, KeyError, RaftKeys, FILE};
use crate::raft::storage::unlock::UnlockKey;
use shoal_proto::pb;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use tokio::sync::oneshot;
use tonic::codegen::{http, Body, BoxFuture, Context, Poll, Service, StdError};
use tonic::Status;
use tracing::{info, warn};

/// The gRPC path of `Unlock`, the one call a locked manager serves.
pub const UNLOCK_PATH: &str = "/shoal.v1.Control/Unlock";

/// Whether the manager whose raft directory is `raft_dir` is locked (its key file's KEK is an
/// unlock key's). A missing key file is not locked.
pub fn is_locked(raft_dir: &Path) -> Result<bool, KeyError> {
    Ok(RaftKeys::location_of(&raft_dir.join(FILE))? == Some(KekLocation::UnlockKey))
}

/// Checks `text` against the key file in `raft_dir` without writing anything: the unlock key
/// if it opens the data key, else [`KeyError::WrongUnlockKey`] (malformed keys included).
pub fn check_unlock_key(raft_dir: &Path, text: &str) -> Result<UnlockKey, KeyError> {
    let key = UnlockKey::parse(text).map_err(|_| KeyError::WrongUnlockKey)?;
    RaftKeys::load_with(&raft_dir.join(FILE), Some(&key))?;
    Ok(key)
}

/// The status of every call but `Unlock` on a locked manager.
pub fn locked_status() -> Status {
    Status::failed_precondition(LOCKED_MESSAGE)
}

/// An accepted unlock key, and where the start-up says the manager runs: the `Unlock` call
/// is answered then (or when `started` is dropped), so that the next call finds the manager
/// unlocked, as dockerd's unlock does.
#[derive(Debug)]
pub struct Unlocking {
    /// The key that opens the raft key file.
    pub key: UnlockKey,
    /// Send (or drop) once the manager runs.
    pub started: oneshot::Sender<()>,
}

struct Inner {
    raft_dir: PathBuf,
    unlocked: Mutex<Option<oneshot::Sender<Unlocking>>>,
}

/// The locked manager's Control service (a tonic service for `Server::add_service`). Built
/// with [`LockedControl::new`], which also returns the receiver of the accepted unlock key
/// ([`Unlocking`]).
#[derive(Clone)]
pub struct LockedControl(Arc<Inner>);

impl std::fmt::Debug for LockedControl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LockedControl")
            .field("raft_dir", &self.0.raft_dir)
            .finish()
    }
}

impl LockedControl {
    /// The service for the locked raft directory `raft_dir`, and the receiver that gets the
    /// unlock key once an `Unlock` call supplied the right one.
    pub fn new(raft_dir: PathBuf) -> (LockedControl, oneshot::Receiver<Unlocking>) {
        let (tx, rx) = oneshot::channel();
        let inner = Inner {
            raft_dir,
            unlocked: Mutex::new(Some(tx)),
        };
        (LockedControl(Arc::new(inner)), rx)
    }

    /// `Unlock`: a wrong or malformed key is INVALID_ARGUMENT `invalid unlock key` and changes
    /// nothing; the right one is handed to the waiting start-up.
    pub async fn unlock(&self, req: pb::UnlockRequest) -> Result<pb::Empty, Status> {
        let inner = self.0.clone();
        let text = zeroize::Zeroizing::new(req.key);
        let checked = tokio::task::spawn_blocking(move || check_unlock_key(&inner.raft_dir, &text))
            .await
            .map_err(|_| Status::internal("the unlock check failed"))?;
        match checked {
            Ok(key) => {
                let tx = self
                    .0
                    .unlocked
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .take();
                match tx {
                    Some(tx) => {
                        info!("unlock key accepted; opening raft");
                        let (started, running) = oneshot::channel();
                        let _ = tx.send(Unlocking { key, started });
                        // Bounded: a start-up that hangs must not hold the caller forever.
                        let _ =
                            tokio::time::timeout(std::time::Duration::from_secs(60), running).await;
                        Ok(pb::Empty {})
                    }
                    None => Err(Status::failed_precondition(
                        "this manager is already being unlocked",
                    )),
                }
            }
            Err(KeyError::WrongUnlockKey) => {
                warn!("an unlock attempt was refused: invalid unlock key");
                Err(Status::invalid_argument("invalid unlock key"))
            }
            Err(e) => Err(Status::internal(e.to_string())),
        }
    }
}

struct UnlockSvc(LockedControl);

impl tonic::server::UnaryService<pb::UnlockRequest> for UnlockSvc {
    type Response = pb::Empty;
    type Future = BoxFuture<tonic::Response<pb::Empty>, Status>;

    fn call(&mut self, req: tonic::Request<pb::UnlockRequest>) -> Self::Future {
        let svc = self.0.clone();
        Box::pin(async move { svc.unlock(req.into_inner()).await.map(tonic::Response::new) })
    }
}

impl tonic::server::NamedService for LockedControl {
    const NAME: &'static str = pb::control_server::SERVICE_NAME;
}

impl<B> Service<http::Request<B>> for LockedControl
where
    B: Body + Send + 'static,
    B::Error: Into<StdError> + Send + 'static,
{
    type Response = http::Response<tonic::body::Body>;
    type Error = std::convert::Infallible;
    type Future = BoxFuture<Self::Response, Self::Error>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: http::Request<B>) -> Self::Future {
        if req.uri().path() != UNLOCK_PATH {
            return Box::pin(async { Ok(locked_status().into_http()) });
        }
        let method = UnlockSvc(self.clone());
        Box::pin(async move {
            let mut grpc = tonic::server::Grpc::new(tonic_prost::ProstCodec::default());
            Ok(grpc.unary(method, req).await)
        })
    }
}

#[cfg(test)]
mod tests;
