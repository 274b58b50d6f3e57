//! [`ApiError`]: an HTTP status and Docker's `{"message": …}` body.

use std::error::Error as _;

/// What a worker (a node without the Control API) answers to swarm calls, as dockerd does.
pub const NOT_MANAGER: &str = "This node is not a swarm manager. Worker nodes can't be used to view or modify cluster state. Please run this command on a manager node or promote the current node to a manager.";

/// What a locked manager answers (dockerd's words, naming dockerd's command).
pub const LOCKED: &str = "Swarm is encrypted and needs to be unlocked before it can be used. Please use \"docker swarm unlock\" to unlock it.";

/// A refused request: the status code and the message the CLI prints after
/// `Error response from daemon: `.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct ApiError {
    /// HTTP status code.
    pub status: u16,
    /// The message.
    pub message: String,
}

impl ApiError {
    /// 400.
    pub fn bad_request(message: impl Into<String>) -> ApiError {
        ApiError {
            status: 400,
            message: message.into(),
        }
    }

    /// 404.
    pub fn not_found(message: impl Into<String>) -> ApiError {
        ApiError {
            status: 404,
            message: message.into(),
        }
    }

    /// 404 `page not found`, dockerd's answer to a path it has no route for.
    pub fn no_route() -> ApiError {
        ApiError::not_found("page not found")
    }

    /// 503 [`NOT_MANAGER`].
    pub fn not_manager() -> ApiError {
        ApiError {
            status: 503,
            message: NOT_MANAGER.into(),
        }
    }

    /// A Control call's failure, with the status dockerd gives the same gRPC code (moby's
    /// `statusCodeFromGRPCError`). A broken connection to the manager is 503.
    pub fn from_status(s: &tonic::Status) -> ApiError {
        use tonic::Code;
        if s.source().is_some() {
            return ApiError {
                status: 503,
                message: format!("lost the connection to the manager: {}", s.message()),
            };
        }
        if s.message() == shoal_manager::autolock::LOCKED_MESSAGE {
            return ApiError {
                status: 503,
                message: LOCKED.into(),
            };
        }
        let status = match s.code() {
            Code::InvalidArgument | Code::FailedPrecondition | Code::OutOfRange => 400,
            Code::NotFound => 404,
            Code::AlreadyExists | Code::Aborted => 409,
            Code::PermissionDenied => 403,
            Code::Unauthenticated => 401,
            Code::Unimplemented => 501,
            Code::Unavailable => 503,
            _ => 500,
        };
        ApiError {
            status,
            message: s.message().to_string(),
        }
    }
}

impl From<tonic::Status> for ApiError {
    fn from(s: tonic::Status) -> ApiError {
        ApiError::from_status(&s)
    }
}
