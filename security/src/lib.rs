//! Shoal's security layer: the cluster's root CA, node certificates and mutual TLS for gRPC.
//!
//! - [`ca`]: the root CA (made at `init`, kept in the raft store), signing nodes' certificate
//!   requests, cross-signing a new root during a rotation, and the digest that join tokens carry.
//! - [`identity`]: what a node certificate says — node id (CN), role (OU `swarm-manager` /
//!   `swarm-worker`) and cluster id (O), as SwarmKit puts them.
//! - [`creds`]: a node's key, certificate chain and trusted roots, on disk (`0600`) and in memory,
//!   swapped in place when they are renewed so that open connections are kept.
//! - [`transport`]: tonic channels and listeners over rustls (or plain TCP, for benchmarks and
//!   in-process tests); a server learns each peer's [`identity::NodeIdentity`] from the
//!   connection ([`transport::PeerInfo`]).
//! - [`authz`]: the checks the gRPC services make with it.
//! - [`token`]: the join tokens' format (`SWMTKN-1-<digest>-<secret>`), parsed by joining nodes
//!   and by the managers that check them.
#![deny(missing_docs)]

pub mod authz;
pub mod ca;
pub mod creds;
pub mod durable;
pub mod identity;
mod pem;
mod tls;
pub mod token;
pub mod transport;

pub use ca::NodeKeyPair;
pub use ca::{ca_digest, RootCa};
pub use creds::Credentials;
pub use identity::{NodeIdentity, Role};
pub use transport::{PeerInfo, Transport};

/// What can go wrong in this crate.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Generating or signing a certificate failed.
    #[error("certificate: {0}")]
    Cert(#[from] rcgen::Error),
    /// A certificate or key could not be read.
    #[error("{0}")]
    Parse(String),
    /// A TLS configuration could not be built.
    #[error("tls: {0}")]
    Tls(#[from] rustls::Error),
    /// Reading or writing the certificate files failed.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: String,
        /// The cause.
        source: std::io::Error,
    },
}

/// Result with this crate's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;
