//! Joining a cluster with a token (`swarmd --join ADDR --token TOKEN` on an empty state dir).
//!
//! With TLS (the default) the manager is not trusted until it proves it holds the cluster's
//! root CA: first fetch the roots over a connection that verifies nothing, and accept them only
//! if one has the digest the token carries (CA pinning, as Docker Swarm's join); then register
//! over TLS checked against that root, sending a certificate signing request for a key made
//! here. The node's certificate comes back with its id. Unreachable managers are retried until
//! [`JoinConfig::timeout`]; a refusal (bad token, wrong cluster) ends the join at once.

use shoal_proto::pb::dispatcher_client::DispatcherClient;
use shoal_proto::pb::{self, RegisterRequest};
use shoal_security::token::{parse_token, TokenError};
use shoal_security::{Credentials, NodeKeyPair, Transport};
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::{Duration, Instant};

/// How to join.
#[derive(Debug, Clone)]
pub struct JoinConfig {
    /// The manager to join through (`ip:port`).
    pub manager: String,
    /// The join token.
    pub token: String,
    /// This node's hostname.
    pub hostname: String,
    /// Address other nodes reach this one at (`ip:port`).
    pub advertise_addr: String,
    /// This node's labels.
    pub labels: BTreeMap<String, String>,
    /// The cluster runs without TLS (`--insecure-plaintext`): no CA to pin, no certificate.
    pub plaintext: bool,
    /// Where the node's key, certificate and trusted roots are saved.
    pub certs_dir: PathBuf,
    /// How long unreachable managers are retried.
    pub timeout: Duration,
    /// Connect timeout of each attempt.
    pub connect_timeout: Duration,
    /// Timeout of each call.
    pub call_timeout: Duration,
    /// Pause between attempts.
    pub retry_interval: Duration,
}

impl JoinConfig {
    /// Joining through `manager` with `token`, with the default timings.
    pub fn new(manager: String, token: String, certs_dir: PathBuf) -> JoinConfig {
        JoinConfig {
            manager,
            token,
            hostname: String::new(),
            advertise_addr: String::new(),
            labels: BTreeMap::new(),
            plaintext: false,
            certs_dir,
            timeout: Duration::from_secs(15),
            connect_timeout: Duration::from_secs(1),
            call_timeout: Duration::from_secs(10),
            retry_interval: Duration::from_millis(200),
        }
    }
}

/// What the managers made of the joining node.
#[derive(Debug, Clone)]
pub struct Joined {
    /// The node's id.
    pub node_id: String,
    /// Joined as a manager (a manager token).
    pub manager: bool,
    /// The node's raft member id (managers).
    pub raft_id: u64,
    /// The cluster's id.
    pub cluster_id: String,
    /// Mutual TLS with the node's new certificate (saved in `certs_dir`), or plain.
    pub transport: Transport,
    /// The cluster's managers, as the one joined through lists them.
    pub managers: Vec<String>,
}

/// Why a join failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum JoinError {
    /// The token is missing or malformed.
    #[error(transparent)]
    Token(#[from] TokenError),
    /// The manager's root CA is not the one the token names.
    #[error("joining {addr} refused: the manager there does not hold the root CA named by the token (digest {digest}): it belongs to another cluster, or something in between is impersonating it; check --join and --token")]
    WrongRoot {
        /// The manager.
        addr: String,
        /// The digest in the token.
        digest: String,
    },
    /// The managers refused the node (token rotated, node removed, …).
    #[error("joining {addr} refused: {message}")]
    Refused {
        /// The manager.
        addr: String,
        /// The managers' reason.
        message: String,
    },
    /// No manager answered in time.
    #[error("cannot join through {addr}: {cause}")]
    Unreachable {
        /// The manager.
        addr: String,
        /// The last failure, with its causes.
        cause: String,
    },
    /// `--join` is not an address.
    #[error(transparent)]
    Address(#[from] tonic::transport::Error),
    /// The cluster issued no certificate: it runs without TLS.
    #[error("joining {addr}: the managers issued no certificate (is the cluster running with --insecure-plaintext? then pass it here too)")]
    NoCertificate {
        /// The manager.
        addr: String,
    },
    /// The certificate issued does not go with the key or the roots.
    #[error("the certificate the managers issued does not check out")]
    BadCertificate(#[source] shoal_security::Error),
    /// The certificate issued names another node.
    #[error("joining {addr}: the certificate issued is for another node")]
    OtherNode {
        /// The manager.
        addr: String,
    },
    /// Making the key or the request failed.
    #[error(transparent)]
    Security(#[from] shoal_security::Error),
}

/// Joins the cluster as `cfg` says; the caller keeps the returned identity.
pub async fn join(cfg: &JoinConfig) -> Result<Joined, JoinError> {
    let addr = cfg.manager.as_str();
    let (digest, _) = parse_token(&cfg.token)?;
    let deadline = Instant::now() + cfg.timeout;
    let (transport, key) = if cfg.plaintext {
        (Transport::Plain, None)
    } else {
        let probe = Transport::unverified()?;
        let roots = retry(cfg, deadline, &probe, |ch| async move {
            DispatcherClient::new(ch)
                .get_root_ca(pb::Empty {})
                .await
                .map(|r| r.into_inner().roots_pem)
        })
        .await?;
        let trusted =
            Transport::trusting_digest(&roots, digest).map_err(|_| JoinError::WrongRoot {
                addr: addr.to_string(),
                digest: digest.to_string(),
            })?;
        (trusted, Some(NodeKeyPair::generate()?))
    };
    let req = RegisterRequest {
        token: cfg.token.clone(),
        hostname: cfg.hostname.clone(),
        addr: cfg.advertise_addr.clone(),
        node_id: String::new(),
        labels: cfg.labels.clone().into_iter().collect(),
        raft_id: rand::random::<u64>() | 1,
        csr: match &key {
            Some(k) => k.csr()?,
            None => String::new(),
        },
    };
    let resp = retry(cfg, deadline, &transport, |ch| {
        let req = req.clone();
        async move {
            DispatcherClient::new(ch)
                .register(req)
                .await
                .map(|r| r.into_inner())
        }
    })
    .await?;
    let transport = match key {
        None => Transport::Plain,
        Some(key) => {
            if resp.certificate.is_empty() {
                return Err(JoinError::NoCertificate {
                    addr: addr.to_string(),
                });
            }
            let creds = Credentials::new(
                resp.certificate.clone(),
                key.pem(),
                resp.roots_pem.clone(),
                Some(cfg.certs_dir.clone()),
            )
            .map_err(JoinError::BadCertificate)?;
            if creds.identity().node_id != resp.node_id {
                return Err(JoinError::OtherNode {
                    addr: addr.to_string(),
                });
            }
            Transport::Node(creds)
        }
    };
    Ok(Joined {
        manager: resp.role() == pb::NodeRole::Manager,
        node_id: resp.node_id,
        raft_id: resp.raft_id,
        cluster_id: resp.cluster_id,
        transport,
        managers: resp.managers,
    })
}

/// Calls `f` on a channel to the manager until it answers, is refused for good (permission,
/// bad argument) or `deadline` passes.
async fn retry<T, F, Fut>(
    cfg: &JoinConfig,
    deadline: Instant,
    transport: &Transport,
    f: F,
) -> Result<T, JoinError>
where
    F: Fn(tonic::transport::Channel) -> Fut,
    Fut: std::future::Future<Output = Result<T, tonic::Status>>,
{
    let addr = &cfg.manager;
    loop {
        let ep = tonic::transport::Endpoint::from_shared(format!("http://{addr}"))?
            .connect_timeout(cfg.connect_timeout)
            .timeout(cfg.call_timeout);
        match f(transport.lazy(ep)).await {
            Ok(r) => return Ok(r),
            Err(s)
                if matches!(
                    s.code(),
                    tonic::Code::PermissionDenied
                        | tonic::Code::InvalidArgument
                        | tonic::Code::Unauthenticated
                ) =>
            {
                return Err(JoinError::Refused {
                    addr: addr.clone(),
                    message: s.message().to_string(),
                })
            }
            Err(s) if Instant::now() > deadline => {
                let cause = match std::error::Error::source(&s) {
                    Some(src) => shoal_security::transport::error_chain(src),
                    None => s.message().to_string(),
                };
                return Err(JoinError::Unreachable {
                    addr: addr.clone(),
                    cause,
                });
            }
            Err(_) => tokio::time::sleep(cfg.retry_interval).await,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg(token: &str) -> JoinConfig {
        let mut c = JoinConfig::new(
            "127.0.0.1:1".into(),
            token.into(),
            PathBuf::from("/nonexistent"),
        );
        c.timeout = Duration::from_millis(300);
        c.retry_interval = Duration::from_millis(50);
        c
    }

    #[tokio::test]
    async fn a_bad_token_fails_before_any_connection() {
        let e = join(&cfg("")).await.unwrap_err();
        assert!(matches!(e, JoinError::Token(TokenError::Missing)), "{e}");
        let e = join(&cfg("SWMTKN-1-x")).await.unwrap_err();
        assert!(matches!(e, JoinError::Token(TokenError::Malformed)), "{e}");
    }

    #[tokio::test]
    async fn an_unreachable_manager_is_retried_then_named() {
        let started = Instant::now();
        let e = join(&cfg("SWMTKN-1-d-s")).await.unwrap_err();
        assert!(started.elapsed() >= Duration::from_millis(300));
        let JoinError::Unreachable { addr, cause } = &e else {
            panic!("{e}")
        };
        assert_eq!(addr, "127.0.0.1:1");
        assert!(!cause.contains("transport error"), "{e}");
        assert!(
            e.to_string()
                .starts_with("cannot join through 127.0.0.1:1: "),
            "{e}"
        );
    }
}
