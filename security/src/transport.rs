//! gRPC over mutual TLS: client channels and server listeners for tonic.
//!
//! TLS is done here with tokio-rustls rather than by tonic, so that a node's certificate can be
//! renewed in place (each new connection or handshake uses the credentials of the moment) and so
//! that a server hands its services the peer's [`NodeIdentity`] as a request extension
//! ([`PeerInfo`]).

use crate::creds::Credentials;
use crate::identity::{CertInfo, NodeIdentity};
use crate::tls;
use hyper_util::rt::TokioIo;
use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tonic::codegen::http::Uri;
use tonic::transport::server::Connected;
use tonic::transport::{Channel, Endpoint};
use tracing::{debug, warn};

/// How long a server waits for a client's TLS handshake.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// How a node's gRPC connections are secured.
#[derive(Clone)]
pub enum Transport {
    /// Plain TCP: in-process tests and `--insecure-plaintext` clusters only.
    Plain,
    /// Mutual TLS with this node's credentials.
    Node(Arc<Credentials>),
    /// TLS as a client without a certificate (a joining node).
    Anonymous(Arc<rustls::ClientConfig>),
}

impl std::fmt::Debug for Transport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Transport::Plain => f.write_str("Plain"),
            Transport::Node(c) => f.debug_tuple("Node").field(&c.identity()).finish(),
            Transport::Anonymous(_) => f.write_str("Anonymous"),
        }
    }
}

impl Transport {
    /// A client that does not verify the server at all: only for fetching the root CA, whose
    /// digest the caller then checks against its join token.
    pub fn unverified() -> crate::Result<Transport> {
        Ok(Transport::Anonymous(Arc::new(
            tls::unverified_client_config()?,
        )))
    }

    /// A client without a certificate that trusts the roots in `roots_pem`.
    pub fn trusting(roots_pem: &str) -> crate::Result<Transport> {
        let roots = crate::pem::certs(roots_pem, "trusted roots")?;
        Ok(Transport::Anonymous(Arc::new(tls::client_config(
            &roots, None,
        )?)))
    }

    /// A client without a certificate that trusts only the root in `roots_pem` whose digest is
    /// `digest` (the one in a join token); an error if none has it.
    pub fn trusting_digest(roots_pem: &str, digest: &str) -> crate::Result<Transport> {
        let roots = crate::pem::certs(roots_pem, "root CA")?;
        let Some(root) = roots.into_iter().find(|r| crate::ca_digest(r) == digest) else {
            return Err(crate::Error::Parse(format!(
                "no root CA with digest {digest}"
            )));
        };
        Ok(Transport::Anonymous(Arc::new(tls::client_config(
            &[root],
            None,
        )?)))
    }

    /// Whether connections are encrypted.
    pub fn is_tls(&self) -> bool {
        !matches!(self, Transport::Plain)
    }

    /// The node's credentials, when it has them.
    pub fn credentials(&self) -> Option<&Arc<Credentials>> {
        match self {
            Transport::Node(c) => Some(c),
            _ => None,
        }
    }

    /// A channel over `ep` (built from `http://IP:PORT` with the caller's timeouts), connected
    /// on first use.
    pub fn lazy(&self, ep: Endpoint) -> Channel {
        match self {
            Transport::Plain => ep.connect_lazy(),
            _ => ep.connect_with_connector_lazy(Connector(self.clone())),
        }
    }

    /// A channel over `ep`, connected now.
    pub async fn connect(&self, ep: Endpoint) -> Result<Channel, tonic::transport::Error> {
        match self {
            Transport::Plain => ep.connect().await,
            _ => ep.connect_with_connector(Connector(self.clone())).await,
        }
    }

    fn client_config(&self) -> io::Result<Arc<rustls::ClientConfig>> {
        match self {
            Transport::Node(c) => c.client_config().map_err(io::Error::other),
            Transport::Anonymous(cfg) => Ok(cfg.clone()),
            Transport::Plain => Err(io::Error::other("plain transport has no TLS client")),
        }
    }

    /// The connections accepted on `listener`, TLS handshakes done (each in its own task, so a
    /// slow client holds up no one), for `Server::serve_with_incoming*`. Stops accepting when
    /// the server drops the stream.
    pub fn incoming(&self, listener: TcpListener) -> ReceiverStream<io::Result<PeerStream>> {
        let (tx, rx) = mpsc::channel(64);
        let t = self.clone();
        tokio::spawn(async move {
            loop {
                let (tcp, addr) = tokio::select! {
                    _ = tx.closed() => break,
                    r = listener.accept() => match r {
                        Ok(x) => x,
                        Err(e) => {
                            warn!(error = %e, "accept failed");
                            tokio::time::sleep(Duration::from_millis(50)).await;
                            continue;
                        }
                    },
                };
                let _ = tcp.set_nodelay(true);
                let creds = match &t {
                    Transport::Node(c) => c.clone(),
                    _ => {
                        let s = PeerStream {
                            inner: Inner::Plain(tcp),
                            info: PeerInfo {
                                remote: Some(addr),
                                identity: None,
                                tls: false,
                            },
                        };
                        if tx.send(Ok(s)).await.is_err() {
                            break;
                        }
                        continue;
                    }
                };
                let tx = tx.clone();
                tokio::spawn(async move {
                    let cfg = match creds.server_config() {
                        Ok(c) => c,
                        Err(e) => {
                            warn!(error = %e, "no TLS server configuration");
                            return;
                        }
                    };
                    let acceptor = tokio_rustls::TlsAcceptor::from(cfg);
                    match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(tcp)).await {
                        Ok(Ok(s)) => {
                            let identity = s
                                .get_ref()
                                .1
                                .peer_certificates()
                                .and_then(|c| c.first())
                                .and_then(|c| CertInfo::parse(c).ok())
                                .map(|i| i.identity);
                            let s = PeerStream {
                                inner: Inner::Tls(Box::new(s)),
                                info: PeerInfo {
                                    remote: Some(addr),
                                    identity,
                                    tls: true,
                                },
                            };
                            let _ = tx.send(Ok(s)).await;
                        }
                        Ok(Err(e)) => debug!(peer = %addr, error = %e, "TLS handshake failed"),
                        Err(_) => debug!(peer = %addr, "TLS handshake timed out"),
                    }
                });
            }
        });
        ReceiverStream::new(rx)
    }
}

/// What a server knows about the other end of a connection; a request extension.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PeerInfo {
    /// Its address.
    pub remote: Option<SocketAddr>,
    /// Who its certificate says it is (TLS with a client certificate only).
    pub identity: Option<NodeIdentity>,
    /// Whether the connection is TLS.
    pub tls: bool,
}

enum Inner {
    Plain(TcpStream),
    Tls(Box<tokio_rustls::server::TlsStream<TcpStream>>),
}

/// An accepted connection and what is known of its peer.
pub struct PeerStream {
    inner: Inner,
    info: PeerInfo,
}

impl Connected for PeerStream {
    type ConnectInfo = PeerInfo;
    fn connect_info(&self) -> PeerInfo {
        self.info.clone()
    }
}

macro_rules! delegate {
    ($self:ident, $s:ident => $e:expr) => {
        match &mut $self.get_mut().inner {
            Inner::Plain($s) => {
                let $s = Pin::new($s);
                $e
            }
            Inner::Tls($s) => {
                let $s = Pin::new($s.as_mut());
                $e
            }
        }
    };
}

impl AsyncRead for PeerStream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        delegate!(self, s => s.poll_read(cx, buf))
    }
}

impl AsyncWrite for PeerStream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        delegate!(self, s => s.poll_write(cx, buf))
    }
    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        delegate!(self, s => s.poll_flush(cx))
    }
    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        delegate!(self, s => s.poll_shutdown(cx))
    }
    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        delegate!(self, s => s.poll_write_vectored(cx, bufs))
    }
    fn is_write_vectored(&self) -> bool {
        match &self.inner {
            Inner::Plain(s) => s.is_write_vectored(),
            Inner::Tls(s) => s.is_write_vectored(),
        }
    }
}

/// Connects TCP, then TLS as a client checking the server is a manager of the cluster.
#[derive(Clone)]
struct Connector(Transport);

type ConnectFuture = Pin<
    Box<
        dyn Future<Output = io::Result<TokioIo<tokio_rustls::client::TlsStream<TcpStream>>>> + Send,
    >,
>;

impl tower::Service<Uri> for Connector {
    type Response = TokioIo<tokio_rustls::client::TlsStream<TcpStream>>;
    type Error = io::Error;
    type Future = ConnectFuture;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), io::Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, uri: Uri) -> ConnectFuture {
        let cfg = self.0.client_config();
        Box::pin(async move {
            let cfg = cfg?;
            let authority = uri
                .authority()
                .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "no address in URI"))?
                .to_string();
            let tcp = TcpStream::connect(authority.as_str()).await?;
            tcp.set_nodelay(true)?;
            let tls = tokio_rustls::TlsConnector::from(cfg)
                .connect(tls::manager_name(), tcp)
                .await
                .map_err(|e| io::Error::new(e.kind(), format!("TLS with {authority}: {e}")))?;
            Ok(TokioIo::new(tls))
        })
    }
}

/// The messages of an error and its sources, joined with `: `, skipping wrappers that add nothing
/// ("transport error") and repeats: what a failed connection says to an operator (`tcp connect
/// error: Connection refused (os error 111)` rather than tonic's bare `transport error`).
pub fn error_chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut parts: Vec<String> = Vec::new();
    let mut cur: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(err) = cur {
        let msg = err.to_string();
        let useless =
            msg.is_empty() || msg == "transport error" || parts.iter().any(|p| p.contains(&msg));
        if !useless {
            parts.push(msg);
        }
        cur = err.source();
    }
    if parts.is_empty() {
        e.to_string()
    } else {
        parts.join(": ")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ca::{NodeKeyPair, RootCa};
    use crate::identity::Role;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio_stream::StreamExt;

    fn creds(ca: &RootCa, id: &str, role: Role) -> Arc<Credentials> {
        let (cert, key) = crate::creds::tests::node(ca, id, role);
        Credentials::new(cert, key, ca.cert_pem.clone(), None).unwrap()
    }

    /// Serves one connection at a time: echoes one byte back and reports the peer.
    async fn server(t: Transport) -> (SocketAddr, mpsc::Receiver<PeerInfo>) {
        let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = l.local_addr().unwrap();
        let mut inc = t.incoming(l);
        let (tx, rx) = mpsc::channel(8);
        tokio::spawn(async move {
            while let Some(Ok(mut s)) = inc.next().await {
                let _ = tx.send(s.connect_info()).await;
                let mut b = [0u8; 1];
                if s.read_exact(&mut b).await.is_ok() {
                    let _ = s.write_all(&b).await;
                }
            }
        });
        (addr, rx)
    }

    async fn talk(t: &Transport, addr: SocketAddr) -> io::Result<()> {
        let uri: Uri = format!("http://{addr}").parse().unwrap();
        let mut c = Connector(t.clone());
        let s = tower::Service::call(&mut c, uri).await?;
        let mut s = s.into_inner();
        s.write_all(b"x").await?;
        let mut b = [0u8; 1];
        s.read_exact(&mut b).await?;
        Ok(())
    }

    #[tokio::test]
    async fn mutual_tls_names_the_peer() {
        let ca = RootCa::generate("c1").unwrap();
        let manager = creds(&ca, "m1", Role::Manager);
        let (addr, mut peers) = server(Transport::Node(manager.clone())).await;

        let worker = creds(&ca, "w1", Role::Worker);
        talk(&Transport::Node(worker), addr).await.unwrap();
        let p = peers.recv().await.unwrap();
        assert!(p.tls);
        assert_eq!(p.identity.unwrap().node_id, "w1");

        // No certificate: the handshake is allowed (joining nodes), the peer has no identity.
        talk(&Transport::trusting(&ca.cert_pem).unwrap(), addr)
            .await
            .unwrap();
        assert_eq!(peers.recv().await.unwrap().identity, None);

        // A certificate from another CA is refused by the server.
        let other = RootCa::generate("c2").unwrap();
        let stranger = creds(&other, "x1", Role::Manager);
        let stranger = Credentials::new(
            stranger.current().chain_pem.clone(),
            stranger.current().key_pem.clone(),
            ca.cert_pem.clone(),
            None,
        )
        .unwrap();
        assert!(talk(&Transport::Node(stranger), addr).await.is_err());

        // A client trusting another CA refuses the server.
        let err = talk(&Transport::trusting(&other.cert_pem).unwrap(), addr)
            .await
            .unwrap_err();
        assert!(err.to_string().contains("TLS"), "{err}");
    }

    #[tokio::test]
    async fn a_worker_cannot_serve_as_a_manager() {
        let ca = RootCa::generate("c1").unwrap();
        let (addr, _peers) = server(Transport::Node(creds(&ca, "w1", Role::Worker))).await;
        let m = Transport::Node(creds(&ca, "m1", Role::Manager));
        let err = talk(&m, addr).await.unwrap_err();
        assert!(err.to_string().contains("TLS"), "{err}");
    }

    #[tokio::test]
    async fn renewal_keeps_open_connections() {
        let ca = RootCa::generate("c1").unwrap();
        let (addr, mut peers) = server(Transport::Node(creds(&ca, "m1", Role::Manager))).await;
        let w = creds(&ca, "w1", Role::Worker);
        let uri: Uri = format!("http://{addr}").parse().unwrap();
        let mut c = Connector(Transport::Node(w.clone()));
        let mut open = tower::Service::call(&mut c, uri)
            .await
            .unwrap()
            .into_inner();
        peers.recv().await.unwrap();
        // Renew: same key, new certificate.
        let key = NodeKeyPair::generate().unwrap();
        let who = w.identity();
        let cert = ca
            .issue(&key.csr().unwrap(), &who, Duration::from_secs(900))
            .unwrap();
        w.replace(cert, Some(key.pem()), None).unwrap();
        assert_eq!(w.version(), 2);
        open.write_all(b"y").await.unwrap();
        let mut b = [0u8; 1];
        open.read_exact(&mut b).await.unwrap();
        assert_eq!(&b, b"y");
        talk(&Transport::Node(w), addr).await.unwrap();
    }
}
