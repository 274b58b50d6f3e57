//! The registry's typed errors, and the one place `oci-client`'s errors are folded into them.

use std::time::Duration;

use oci_client::errors::{OciDistributionError, OciErrorCode};

/// Why a registry operation failed.
#[derive(Debug, thiserror::Error)]
pub enum RegistryError {
    /// The node has no CA certificates to verify registries with.
    #[error("this node has no CA certificates to verify registries with: install the ca-certificates package (or set SSL_CERT_FILE)")]
    NoRoots,
    /// A bad flag or credentials file.
    #[error("registry configuration: {0}")]
    Config(String),
    /// Connection refused, DNS, TLS: nothing answered.
    #[error("registry {registry} unreachable: {detail}")]
    Unreachable {
        /// Host.
        registry: String,
        /// Why.
        detail: String,
    },
    /// No answer within the deadline.
    #[error("registry {registry} did not answer within {after:?}")]
    Timeout {
        /// Host.
        registry: String,
        /// The deadline.
        after: Duration,
    },
    /// The manifest (tag or digest) does not exist (Docker's wording).
    #[error("manifest for {0} not found: manifest unknown")]
    NotFound(String),
    /// Credentials refused or missing.
    #[error("pull access denied for {0}: the repository does not exist or needs `docker login` credentials in the auth file")]
    Unauthorized(String),
    /// The registry answered something that is not the protocol.
    #[error("registry {registry} answered garbage for {what}: {detail}")]
    Protocol {
        /// Host.
        registry: String,
        /// What was asked.
        what: String,
        /// What was wrong.
        detail: String,
    },
    /// Content did not hash to its digest.
    #[error("digest mismatch for {what}: expected {expected}, got {actual}")]
    DigestMismatch {
        /// What was fetched.
        what: String,
        /// Expected digest.
        expected: String,
        /// Computed digest.
        actual: String,
    },
    /// An index without a linux/amd64 manifest, or a manifest for another platform.
    #[error("no matching manifest for linux/amd64 in the manifest list entries of {reference} (found {found})")]
    Platform {
        /// The reference.
        reference: String,
        /// Platforms offered.
        found: String,
    },
}

/// A blob download failed on the registry's side or the store's.
#[derive(Debug, thiserror::Error)]
pub enum BlobError {
    /// The registry.
    #[error(transparent)]
    Registry(RegistryError),
    /// Writing it.
    #[error(transparent)]
    Store(crate::store::StoreError),
}

pub(super) fn protocol(host: &str, what: &str, detail: impl std::fmt::Display) -> RegistryError {
    RegistryError::Protocol {
        registry: host.into(),
        what: what.into(),
        detail: detail.to_string(),
    }
}

/// Folds the library's errors into ours.
pub(super) fn classify(host: &str, e: OciDistributionError) -> RegistryError {
    use OciDistributionError as E;
    match e {
        E::ImageManifestNotFoundError(m) => RegistryError::NotFound(m),
        E::RegistryError { ref envelope, .. }
            if envelope.errors.iter().any(|c| {
                matches!(
                    c.code,
                    OciErrorCode::ManifestUnknown
                        | OciErrorCode::NameUnknown
                        | OciErrorCode::NotFound
                        | OciErrorCode::BlobUnknown
                )
            }) =>
        {
            RegistryError::NotFound(host.into())
        }
        E::RegistryError { ref envelope, .. }
            if envelope
                .errors
                .iter()
                .any(|c| matches!(c.code, OciErrorCode::Unauthorized | OciErrorCode::Denied)) =>
        {
            RegistryError::Unauthorized(host.into())
        }
        E::UnauthorizedError { .. } | E::AuthenticationFailure(_) => {
            RegistryError::Unauthorized(host.into())
        }
        E::ServerError { code: 404, .. } => RegistryError::NotFound(host.into()),
        E::DigestError(d) => RegistryError::DigestMismatch {
            what: "content".into(),
            expected: String::new(),
            actual: d.to_string(),
        },
        E::RequestError(re) if re.is_timeout() => RegistryError::Timeout {
            registry: host.into(),
            after: Duration::ZERO,
        },
        E::RequestError(re) if re.is_connect() || re.is_request() => RegistryError::Unreachable {
            registry: host.into(),
            detail: error_chain(&re),
        },
        other => protocol(host, "request", error_chain(&other)),
    }
}

fn error_chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    while let Some(c) = cur {
        s.push_str(": ");
        s.push_str(&c.to_string());
        cur = c.source();
    }
    s
}
