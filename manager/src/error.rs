//! [`ManagerError`], the manager's error at its boundary, and the one place it becomes a gRPC
//! [`Status`] (for the Control and Dispatcher services alike).
//!
//! Each module keeps its own error type ([`Refusal`] from the store, [`LookupError`],
//! [`CaError`], [`RelayError`], …); they fold into `ManagerError` with `#[from]`, and their
//! `From<…> for Status` go through it, so a code is chosen in exactly one `match`.

use crate::ca::CaError;
use crate::config::ConfigError;
use crate::control::ControlError;
use crate::dispatcher::{RelayError, StatusError};
use crate::raft::storage::OpenError;
use crate::store::{LookupError, ObjectKind, Refusal};
use shoal_image::registry::RegistryError;
use std::time::Duration;
use tonic::Status;

/// Any error, boxed: the causes of [`ManagerError::Raft`] are openraft's several generic error
/// types.
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// Errors of manager operations.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ManagerError {
    /// The command was applied and refused by the store's rules; nothing changed.
    #[error(transparent)]
    Refused(#[from] Refusal),
    /// No leader could be reached in time.
    #[error("no raft leader reachable within {0:?}: is a majority of managers up?")]
    NoLeader(Duration),
    /// A forwarded write got no answer (the leader died, or the link broke, maybe after it
    /// committed the write), and its retry was refused the way the first attempt's own effect
    /// would make it refused: whether the write was applied is unknown.
    #[error(
        "the write's outcome is unknown: the leader did not answer it, and the retry was refused \
         ({0}), which the first attempt may have caused; read the object again before retrying"
    )]
    OutcomeUnknown(Refusal),
    /// No leader is known right now (an election is under way), or a call that only the leader
    /// answers reached a manager that is not the leader after it was forwarded once.
    #[error("no raft leader right now; retry shortly")]
    NoLeaderNow,
    /// The cluster object does not exist yet (the first node is still initialising).
    #[error("cluster is not initialised yet")]
    NotInitialised,
    /// Raft failed.
    #[error("raft: {0}")]
    Raft(BoxError),
    /// Storage failed to open.
    #[error("raft storage: {0}")]
    Storage(OpenError),
    /// Bad configuration.
    #[error("invalid manager configuration: {0}")]
    Config(#[from] ConfigError),
    /// What the user named does not exist or is ambiguous.
    #[error(transparent)]
    Lookup(#[from] LookupError),
    /// The Control API refused a request before proposing anything.
    #[error(transparent)]
    Control(#[from] ControlError),
    /// The cluster CA could not sign or rotate.
    #[error(transparent)]
    Ca(#[from] CaError),
    /// A request relayed to an agent failed.
    #[error(transparent)]
    Relay(#[from] RelayError),
    /// Task status updates could not be written.
    #[error(transparent)]
    Status(#[from] StatusError),
    /// A registry could not resolve an image.
    #[error(transparent)]
    Registry(#[from] RegistryError),
    /// Another manager could not be reached.
    #[error("{0}")]
    Transport(#[from] tonic::transport::Error),
    /// A consistent read could not be confirmed.
    #[error(transparent)]
    Consistency(#[from] crate::control::consistent::ConsistencyError),
}

impl ManagerError {
    /// A raft failure.
    pub fn raft(e: impl std::error::Error + Send + Sync + 'static) -> ManagerError {
        ManagerError::Raft(Box::new(e))
    }
}

impl From<ManagerError> for Status {
    fn from(e: ManagerError) -> Status {
        let msg = e.to_string();
        match e {
            // A version conflict is ABORTED (`update out of sequence`: read again and retry);
            // every other refusal is FAILED_PRECONDITION.
            ManagerError::Refused(Refusal::Conflict(_)) => Status::aborted(msg),
            ManagerError::Refused(Refusal::NameTaken {
                kind: ObjectKind::Secret | ObjectKind::Config,
                ..
            }) => Status::already_exists(msg),
            ManagerError::Refused(_) => Status::failed_precondition(msg),
            ManagerError::Lookup(LookupError::NotFound { .. }) => Status::not_found(msg),
            ManagerError::Lookup(_) => Status::invalid_argument(msg),
            ManagerError::Control(
                ControlError::LastManager
                | ControlError::RemoveManager(_)
                | ControlError::NodeUp(_)
                | ControlError::ScaleGlobal(_)
                | ControlError::TaskNotRunning { .. }
                | ControlError::NoPreviousSpec(_)
                | ControlError::NotOverlay(_)
                | ControlError::NoUnlockKey
                | ControlError::NotLocked,
            ) => Status::failed_precondition(msg),
            ManagerError::Control(ControlError::KeptChanging | ControlError::RotationConflict) => {
                Status::aborted(msg)
            }
            ManagerError::Control(ControlError::ServiceExists(_)) => Status::already_exists(msg),
            ManagerError::Control(ControlError::Vanished(_)) => Status::internal(msg),
            ManagerError::Control(
                ControlError::TaskUnreachable | ControlError::ExecNoAnswer { .. },
            ) => Status::unavailable(msg),
            ManagerError::Control(_) => Status::invalid_argument(msg),
            ManagerError::Ca(CaError::NoCsr | CaError::Sign(_)) => Status::invalid_argument(msg),
            ManagerError::Ca(CaError::NoCa) => Status::failed_precondition(msg),
            ManagerError::Ca(CaError::UnknownNode(_)) => Status::permission_denied(msg),
            ManagerError::Ca(_) => Status::internal(msg),
            ManagerError::Registry(RegistryError::NotFound(_)) => Status::not_found(msg),
            ManagerError::Registry(RegistryError::Unauthorized(_)) => {
                Status::permission_denied(msg)
            }
            ManagerError::Registry(RegistryError::Config(_)) => Status::invalid_argument(msg),
            ManagerError::NoLeader(_)
            | ManagerError::OutcomeUnknown(_)
            | ManagerError::Registry(_)
            | ManagerError::NoLeaderNow
            | ManagerError::NotInitialised
            | ManagerError::Raft(_)
            | ManagerError::Storage(_)
            | ManagerError::Config(_)
            | ManagerError::Relay(_)
            | ManagerError::Status(_)
            | ManagerError::Transport(_)
            | ManagerError::Consistency(_) => Status::unavailable(msg),
        }
    }
}

/// `From<E> for Status` through [`ManagerError`], so `?` works on each module's error in a
/// handler that returns a `Status`.
macro_rules! status_via_manager_error {
    ($($t:ty),*) => {$(
        impl From<$t> for Status {
            fn from(e: $t) -> Status {
                ManagerError::from(e).into()
            }
        }
    )*};
}

status_via_manager_error!(
    Refusal,
    LookupError,
    ControlError,
    CaError,
    RelayError,
    StatusError
);

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::{ObjectKind, Versioned};
    use tonic::Code;

    fn status(e: impl Into<ManagerError>) -> (Code, String) {
        let s = Status::from(e.into());
        (s.code(), s.message().to_string())
    }

    #[test]
    fn refusals_keep_their_codes_and_texts() {
        assert_eq!(
            status(Refusal::NameTaken {
                kind: ObjectKind::Network,
                name: "lp".into(),
                holder: None,
            }),
            (
                Code::FailedPrecondition,
                "network with name \"lp\" already exists".into()
            )
        );
        assert_eq!(
            status(Refusal::Conflict(Versioned::Service { name: "web".into() })),
            (
                Code::Aborted,
                "update out of sequence: service web was changed since it was read; read it again and retry".into()
            )
        );
        assert_eq!(
            status(Refusal::Conflict(Versioned::Node { id: "n1".into() })),
            (
                Code::Aborted,
                "update out of sequence: the node was changed since it was read; read it again and retry".into()
            )
        );
        assert_eq!(
            status(Refusal::Conflict(Versioned::Cluster)),
            (
                Code::Aborted,
                "the cluster changed concurrently; retry".into()
            )
        );
    }

    #[test]
    fn lookups_are_not_found_or_invalid() {
        assert_eq!(
            status(LookupError::NotFound {
                kind: ObjectKind::Service,
                query: "web".into(),
            }),
            (Code::NotFound, "service web not found".into())
        );
        assert_eq!(
            status(LookupError::Ambiguous {
                kind: ObjectKind::Task,
                query: "b6h".into(),
                candidates: vec!["web.1.b6h1".into(), "web.2.b6h2".into()],
            }),
            (
                Code::InvalidArgument,
                "task b6h is ambiguous: it matches web.1.b6h1, web.2.b6h2; use more of the id"
                    .into()
            )
        );
    }

    #[test]
    fn control_refusals_keep_their_codes() {
        assert_eq!(
            status(ControlError::NoImage),
            (Code::InvalidArgument, "an image is required".into())
        );
        assert_eq!(
            status(ControlError::RemoveManager("m1".into())),
            (
                Code::FailedPrecondition,
                "node m1 is a manager: demote it first (`swarmctl node demote m1`)".into()
            )
        );
        assert_eq!(status(ControlError::KeptChanging).0, Code::Aborted);
        assert_eq!(status(ControlError::Vanished("service")).0, Code::Internal);
        assert_eq!(
            status(ControlError::SingletonDriver {
                driver: "null",
                network: "none"
            })
            .1,
            "only one instance of the null network is allowed: use the predefined none network"
        );
    }

    #[test]
    fn the_rest_keeps_its_codes() {
        assert_eq!(
            status(ManagerError::NoLeader(Duration::from_secs(8))),
            (
                Code::Unavailable,
                "no raft leader reachable within 8s: is a majority of managers up?".into()
            )
        );
        assert_eq!(
            status(ManagerError::NotInitialised),
            (Code::Unavailable, "cluster is not initialised yet".into())
        );
        assert_eq!(
            status(CaError::NoCa),
            (
                Code::FailedPrecondition,
                "this cluster runs without TLS (--insecure-plaintext): it has no CA to rotate"
                    .into()
            )
        );
        assert_eq!(
            status(CaError::UnknownNode("n1".into())).0,
            Code::PermissionDenied
        );
        assert_eq!(status(CaError::NoCsr).0, Code::InvalidArgument);
        assert_eq!(
            status(RelayError::NotConnected { node: "n1".into() }).0,
            Code::Unavailable
        );
        assert_eq!(
            status(StatusError::NotCommitted),
            (
                Code::Unavailable,
                "status update not committed (leadership changed?); retry".into()
            )
        );
    }
}
