//! Connecting to a manager's Control API, the only thing `swarmctl` talks to.
//!
//! Used by `swarmctl` and reused by the end-to-end tests and benchmarks, so that every client of
//! the Control API reaches a manager (and reports failing to) the same way.

use crate::BadInput;
use shoal_proto::pb::control_client::ControlClient;
use shoal_security::{Credentials, Transport};
use std::error::Error as StdError;
use std::path::PathBuf;
use std::time::Duration;
use tonic::metadata::MetadataValue;
use tonic::service::interceptor::InterceptedService;
use tonic::transport::{Channel, Endpoint};

pub use shoal_manager::control::consistent::CONSISTENT;

/// The Control API client `swarmctl`'s commands use: its calls carry [`CONSISTENT`] when
/// [`ClientConfig::consistent`] is set.
pub type Control = ControlClient<InterceptedService<Channel, Consistency>>;

/// Adds [`CONSISTENT`] to every call when `.0` is true.
#[derive(Debug, Clone, Copy, Default)]
pub struct Consistency(pub bool);

impl tonic::service::Interceptor for Consistency {
    fn call(&mut self, mut req: tonic::Request<()>) -> Result<tonic::Request<()>, tonic::Status> {
        if self.0 {
            req.metadata_mut()
                .insert(CONSISTENT, MetadataValue::from_static("1"));
        }
        Ok(req)
    }
}

/// A [`Control`] client over `channel`.
pub fn control(channel: Channel, consistent: bool) -> Control {
    ControlClient::with_interceptor(channel, Consistency(consistent))
}

/// Connects to the Control API at `host` as [`connect_with`] does, for `swarmctl`'s commands
/// (with [`ClientConfig::consistent`]).
pub async fn connect_control(host: &str, cfg: &ClientConfig) -> anyhow::Result<Control> {
    Ok(control(channel(host, cfg).await?, cfg.consistent))
}

/// Where `swarmctl` looks for a manager when neither `--host` nor `SWARM_HOST` is set.
pub const DEFAULT_HOST: &str = "unix:///var/lib/shoal/swarmd.sock";

/// Port assumed for `tcp://IP` without one (the managers' `--listen-addr` default).
pub const DEFAULT_PORT: u16 = 2377;

/// How a client connects.
#[derive(Debug, Clone)]
pub struct ClientConfig {
    /// Give up connecting after this long, so a dead node fails fast instead of hanging.
    pub connect_timeout: Duration,
    /// Upper bound for any single call, so a manager that lost its quorum cannot hang the
    /// client forever. `None` = no limit.
    pub request_timeout: Option<Duration>,
    /// Over TCP: the directory with the node certificate to present (a manager's
    /// `<state-dir>/certificates`). `None`: [`DEFAULT_CERT_DIR`] if it exists, else plain TCP
    /// (only `--insecure-plaintext` clusters accept that).
    pub cert_dir: Option<PathBuf>,
    /// Over TCP: talk plain gRPC (clusters made with `--insecure-plaintext`).
    pub plaintext: bool,
    /// Ask for linearizable answers (`--consistent`): every call of a [`Control`] client
    /// carries [`CONSISTENT`], and the manager passes a read barrier before answering.
    pub consistent: bool,
}

/// Where `swarmctl` looks for certificates for a TCP connection when none is named.
pub const DEFAULT_CERT_DIR: &str = "/var/lib/shoal/certificates";

impl Default for ClientConfig {
    fn default() -> Self {
        ClientConfig {
            connect_timeout: Duration::from_secs(3),
            request_timeout: Some(Duration::from_secs(60)),
            cert_dir: None,
            plaintext: false,
            consistent: false,
        }
    }
}

/// A parsed `--host` value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    /// A unix socket path (`unix:///var/lib/shoal/swarmd.sock`, or a bare absolute path).
    Unix(PathBuf),
    /// `host:port` over TCP (`tcp://10.0.0.1:2377`, or a bare `10.0.0.1:2377`).
    Tcp(String),
}

impl Target {
    /// Parses `unix:///path`, `tcp://IP[:PORT]`, `http://IP[:PORT]`, a bare `IP[:PORT]` or a bare
    /// absolute socket path. A missing TCP port means [`DEFAULT_PORT`].
    pub fn parse(host: &str) -> Result<Target, BadInput> {
        let host = host.trim();
        let bad = |why: &str| {
            format!(
                "invalid host {host:?}: {why} (expected unix:///path/swarmd.sock or tcp://IP:PORT)"
            )
        };
        if let Some(path) = host.strip_prefix("unix://") {
            if path.is_empty() {
                return Err(bad("the socket path is empty").into());
            }
            return Ok(Target::Unix(PathBuf::from(path)));
        }
        if host.starts_with('/') {
            return Ok(Target::Unix(PathBuf::from(host)));
        }
        let addr = host
            .strip_prefix("tcp://")
            .or_else(|| host.strip_prefix("http://"))
            .unwrap_or(host);
        let addr = addr.trim_end_matches('/');
        if addr.is_empty() {
            return Err(bad("the address is empty").into());
        }
        if addr.contains("://") {
            return Err(bad("unsupported scheme").into());
        }
        let uri: tonic::codegen::http::Uri = format!("http://{addr}")
            .parse()
            .map_err(|_| bad("not a valid address"))?;
        if uri.path() != "/" || uri.host().is_none_or(str::is_empty) {
            return Err(bad("not a valid address").into());
        }
        Ok(match uri.port_u16() {
            Some(_) => Target::Tcp(addr.to_string()),
            None => Target::Tcp(format!("{addr}:{DEFAULT_PORT}")),
        })
    }
}

/// Connects to the Control API at `host` (see [`Target::parse`]) with the default
/// [`ClientConfig`].
pub async fn connect(host: &str) -> anyhow::Result<ControlClient<Channel>> {
    connect_with(host, &ClientConfig::default()).await
}

/// Connects to the Control API at `host`. Failing to connect gives
/// `cannot reach swarmd at <host>: <cause>; is swarmd running there? (set --host or SWARM_HOST)`.
pub async fn connect_with(
    host: &str,
    cfg: &ClientConfig,
) -> anyhow::Result<ControlClient<Channel>> {
    Ok(ControlClient::new(channel(host, cfg).await?))
}

/// Connects to the node's membership API (`swarm init|join|leave`) at `host`, its control
/// socket; the errors are [`connect_with`]'s.
pub async fn connect_lifecycle(
    host: &str,
    cfg: &ClientConfig,
) -> anyhow::Result<shoal_proto::pb::node_lifecycle_client::NodeLifecycleClient<Channel>> {
    Ok(shoal_proto::pb::node_lifecycle_client::NodeLifecycleClient::new(channel(host, cfg).await?))
}

async fn channel(host: &str, cfg: &ClientConfig) -> anyhow::Result<Channel> {
    let target = Target::parse(host).map_err(anyhow::Error::msg)?;
    let unreachable = |cause: String| {
        anyhow::anyhow!("cannot reach swarmd at {host}: {cause}; is swarmd running there? (set --host or SWARM_HOST)")
    };
    let t = match &target {
        Target::Tcp(_) => transport(cfg)?,
        Target::Unix(_) => Transport::Plain,
    };
    let channel = match tokio::time::timeout(cfg.connect_timeout, open(&target, cfg, &t)).await {
        Ok(Ok(channel)) => channel,
        Ok(Err(e)) => return Err(unreachable(error_chain(&e))),
        Err(_) => {
            return Err(unreachable(format!(
                "no answer within {:?}",
                cfg.connect_timeout
            )))
        }
    };
    Ok(channel)
}

async fn open(
    target: &Target,
    cfg: &ClientConfig,
    t: &Transport,
) -> Result<Channel, tonic::transport::Error> {
    match target {
        Target::Tcp(addr) => {
            let mut ep = Endpoint::from_shared(format!("http://{addr}"))?
                .connect_timeout(cfg.connect_timeout);
            if let Some(t) = cfg.request_timeout {
                ep = ep.timeout(t);
            }
            t.connect(ep).await
        }
        Target::Unix(path) => {
            // The URI is required by tonic but unused: the connector below ignores it.
            let mut ep =
                Endpoint::from_static("http://[::]:50051").connect_timeout(cfg.connect_timeout);
            if let Some(t) = cfg.request_timeout {
                ep = ep.timeout(t);
            }
            let path = path.clone();
            ep.connect_with_connector(tower::service_fn(move |_| {
                let path = path.clone();
                async move {
                    let stream = tokio::net::UnixStream::connect(&path).await.map_err(|e| {
                        std::io::Error::new(
                            e.kind(),
                            format!("cannot connect to socket {}: {e}", path.display()),
                        )
                    })?;
                    Ok::<_, std::io::Error>(hyper_util::rt::TokioIo::new(stream))
                }
            }))
            .await
        }
    }
}

/// The transport for a TCP connection: mutual TLS with the certificates in the configured (or
/// default) directory; plain only when asked for.
fn transport(cfg: &ClientConfig) -> anyhow::Result<Transport> {
    if cfg.plaintext {
        return Ok(Transport::Plain);
    }
    let dir = cfg
        .cert_dir
        .clone()
        .unwrap_or_else(|| PathBuf::from(DEFAULT_CERT_DIR));
    match Credentials::load(&dir) {
        Ok(Some(c)) => Ok(Transport::Node(c)),
        Ok(None) => anyhow::bail!(
            "managers speak mutual TLS over TCP, and there is no node certificate in {}: pass --cert-dir DIR (a manager's <state-dir>/certificates; env SWARM_CERT_DIR), or use the manager's unix socket",
            dir.display()
        ),
        Err(e) => anyhow::bail!("cannot read the certificates in {}: {e}", dir.display()),
    }
}

/// The messages of an error and its sources, joined with `: ` (one implementation, shared
/// with the join protocol).
pub use shoal_security::transport::error_chain;

/// Turns a failed call into an error carrying just the server's message: managers put the
/// user-facing text there ("service web not found"). Failures of the connection itself say so.
pub fn status_error(s: tonic::Status) -> anyhow::Error {
    let msg = s.message().trim();
    // Errors made by tonic on this side (a timeout, a broken connection) carry the cause as their
    // source rather than a message meant for users; statuses sent by a server never have one.
    if s.code() == tonic::Code::Cancelled && msg == "Timeout expired" {
        return anyhow::anyhow!("swarmd did not answer in time; the cluster may have lost its quorum (see `swarmctl node ls` on another manager)");
    }
    if let Some(src) = StdError::source(&s) {
        let cause = error_chain(src);
        let cause = if msg.is_empty() || cause.contains(msg) {
            cause
        } else {
            format!("{msg}: {cause}")
        };
        return anyhow::anyhow!("lost the connection to swarmd: {cause}");
    }
    match s.code() {
        tonic::Code::Unimplemented if msg.is_empty() => {
            anyhow::anyhow!("this swarmd does not support that call; run matching versions of swarmd and swarmctl")
        }
        _ if msg.is_empty() => anyhow::anyhow!("swarmd refused the request ({:?})", s.code()),
        _ => anyhow::anyhow!("{msg}"),
    }
}

/// `.rpc()` on a call's result: the response body, or [`status_error`].
pub trait RpcResultExt<T> {
    /// Unwraps the response or converts the status.
    fn rpc(self) -> anyhow::Result<T>;
}

impl<T> RpcResultExt<T> for Result<tonic::Response<T>, tonic::Status> {
    fn rpc(self) -> anyhow::Result<T> {
        self.map(tonic::Response::into_inner).map_err(status_error)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ctl::fake::Fake;

    /// The fake serves plain gRPC, as an `--insecure-plaintext` cluster does.
    async fn connect(host: &str) -> anyhow::Result<ControlClient<Channel>> {
        let cfg = ClientConfig {
            plaintext: true,
            ..Default::default()
        };
        connect_with(host, &cfg).await
    }

    use shoal_proto::pb;
    use std::time::Instant;

    #[test]
    fn consistent_calls_carry_their_metadata_and_others_do_not() {
        use tonic::service::Interceptor;
        let asked = Consistency(true).call(tonic::Request::new(())).unwrap();
        assert_eq!(asked.metadata().get(CONSISTENT).unwrap(), "1");
        let plain = Consistency(false).call(tonic::Request::new(())).unwrap();
        assert!(!plain.metadata().contains_key(CONSISTENT));
    }

    #[test]
    fn hosts() {
        assert_eq!(
            Target::parse("unix:///var/lib/shoal/swarmd.sock"),
            Ok(Target::Unix("/var/lib/shoal/swarmd.sock".into()))
        );
        assert_eq!(
            Target::parse("/tmp/s.sock"),
            Ok(Target::Unix("/tmp/s.sock".into()))
        );
        assert_eq!(
            Target::parse("tcp://10.0.0.1:2377"),
            Ok(Target::Tcp("10.0.0.1:2377".into()))
        );
        assert_eq!(
            Target::parse("10.0.0.1:4000"),
            Ok(Target::Tcp("10.0.0.1:4000".into()))
        );
        assert_eq!(
            Target::parse("tcp://10.0.0.1"),
            Ok(Target::Tcp("10.0.0.1:2377".into()))
        );
        assert_eq!(
            Target::parse("tcp://[::1]:2377"),
            Ok(Target::Tcp("[::1]:2377".into()))
        );
        assert_eq!(
            Target::parse("http://manager1:2377/"),
            Ok(Target::Tcp("manager1:2377".into()))
        );
        for bad in ["", "unix://", "tcp://", "ftp://x:1", "tcp://a:b:c/x"] {
            let e = Target::parse(bad).unwrap_err();
            assert!(
                e.contains("expected unix:///path/swarmd.sock or tcp://IP:PORT"),
                "{bad}: {e}"
            );
        }
    }

    #[tokio::test]
    async fn tcp_without_a_certificate_says_what_to_do() {
        let cfg = ClientConfig {
            cert_dir: Some("/nonexistent/certificates".into()),
            ..Default::default()
        };
        let e = connect_with("tcp://127.0.0.1:1", &cfg)
            .await
            .unwrap_err()
            .to_string();
        assert!(e.contains("--cert-dir") && e.contains("mutual TLS"), "{e}");
    }

    #[tokio::test]
    async fn connects_over_tcp() {
        let host = Fake::with_nodes().serve_tcp().await;
        let mut c = connect(&host).await.expect("connect");
        let cluster = c
            .get_cluster(pb::Empty {})
            .await
            .rpc()
            .expect("get_cluster");
        assert_eq!(cluster.id, "fakecluster");
        // A bare IP:PORT works too.
        let mut c = connect(host.trim_start_matches("tcp://"))
            .await
            .expect("connect bare");
        assert_eq!(
            c.list_nodes(pb::Empty {})
                .await
                .rpc()
                .expect("list")
                .nodes
                .len(),
            2
        );
    }

    #[tokio::test]
    async fn connects_over_a_unix_socket() {
        let dir = tempfile::tempdir().expect("tempdir");
        let host = Fake::with_nodes()
            .serve_unix(&dir.path().join("swarmd.sock"))
            .await;
        let mut c = connect(&host).await.expect("connect");
        assert_eq!(
            c.get_cluster(pb::Empty {})
                .await
                .rpc()
                .expect("get_cluster")
                .raft_leader,
            "manager1"
        );
    }

    #[tokio::test]
    async fn a_dead_address_fails_fast_and_clearly() {
        let dir = tempfile::tempdir().expect("tempdir");
        let sock = format!("unix://{}/nobody.sock", dir.path().display());
        // A port that was just free: nothing listens there.
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        for host in [sock, format!("tcp://127.0.0.1:{port}")] {
            let started = Instant::now();
            let e = connect(&host)
                .await
                .expect_err("nothing listens there")
                .to_string();
            assert!(
                started.elapsed() < Duration::from_secs(4),
                "took {:?}",
                started.elapsed()
            );
            assert!(
                e.starts_with(&format!("cannot reach swarmd at {host}: ")),
                "{e}"
            );
            assert!(
                e.ends_with("; is swarmd running there? (set --host or SWARM_HOST)"),
                "{e}"
            );
            assert!(!e.contains("transport error"), "{e}");
        }
    }

    #[tokio::test]
    async fn a_silent_peer_times_out() {
        // Accepts TCP but never speaks HTTP/2; with a short request timeout the call gives up.
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = l.local_addr().unwrap();
        tokio::spawn(async move {
            let mut held = Vec::new();
            while let Ok((s, _)) = l.accept().await {
                held.push(s);
            }
        });
        let cfg = ClientConfig {
            connect_timeout: Duration::from_millis(500),
            request_timeout: Some(Duration::from_millis(300)),
            cert_dir: None,
            plaintext: true,
            consistent: false,
        };
        let started = Instant::now();
        let r = match connect_with(&addr.to_string(), &cfg).await {
            Ok(mut c) => c.get_cluster(pb::Empty {}).await.rpc().map(|_| ()),
            Err(e) => Err(e),
        };
        let e = r.expect_err("silent peer").to_string();
        assert!(
            started.elapsed() < Duration::from_secs(3),
            "took {:?}",
            started.elapsed()
        );
        assert!(
            e.contains("swarmd did not answer in time") || e.contains("cannot reach swarmd"),
            "{e}"
        );
    }

    #[test]
    fn server_messages_pass_through() {
        let e = status_error(tonic::Status::not_found("service web not found"));
        assert_eq!(e.to_string(), "service web not found");
        let e = status_error(tonic::Status::unimplemented(""));
        assert!(e.to_string().contains("matching versions"), "{e}");
        let e = status_error(tonic::Status::cancelled("Timeout expired"));
        assert!(
            e.to_string().starts_with("swarmd did not answer in time"),
            "{e}"
        );
    }
}
