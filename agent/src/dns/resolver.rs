//! The request handler of the embedded DNS (hickory-server): answers from the [`Index`] for
//! the asking task's networks, forwards other names to the node's upstream resolvers.

use super::index::{normalize, reverse_addr, Index, Target};
use super::metrics::Source;
use hickory_server::net::runtime::Time;
use hickory_server::proto::op::{Header, HeaderCounts, Message, Metadata, OpCode, ResponseCode};
use hickory_server::proto::rr::rdata::{A, PTR};
use hickory_server::proto::rr::{Name, RData, Record, RecordType};
use hickory_server::server::{Request, RequestHandler, ResponseHandler, ResponseInfo};
use hickory_server::zone_handler::MessageResponseBuilder;
use rand::seq::SliceRandom;
use shoal_netlib::netns::NetNs;
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::atomic::AtomicU64;
use std::sync::{Arc, RwLock};
use std::time::Duration;
use tracing::debug;

/// TTL of every answer: 0, so clients never keep a task that is gone (Swarm's is 600 s).
pub const TTL: u32 = 0;
/// Default of how long an upstream resolver has to answer ([`Shared::upstream_timeout`]).
pub const DEFAULT_UPSTREAM_TIMEOUT: Duration = Duration::from_secs(2);

/// What all of a node's task resolvers share.
#[derive(Debug)]
pub struct Shared {
    /// The names, replaced whole on every change.
    pub index: RwLock<Arc<Index>>,
    /// Upstream resolvers (`swarmd --dns-upstream`); none: unknown names are NXDOMAIN.
    pub upstream: RwLock<Vec<SocketAddr>>,
    /// The node's namespace when it is not the caller's (tests): upstream queries leave from it.
    pub node_ns: Option<Arc<NetNs>>,
    /// How long an upstream resolver has to answer.
    pub upstream_timeout: RwLock<Duration>,
    /// Bumped after every change of `index`: the task caches of encoded answers are only
    /// valid for the version they were built at.
    pub version: AtomicU64,
}

impl Default for Shared {
    fn default() -> Self {
        Shared {
            index: Default::default(),
            upstream: Default::default(),
            node_ns: None,
            upstream_timeout: RwLock::new(DEFAULT_UPSTREAM_TIMEOUT),
            version: AtomicU64::new(0),
        }
    }
}

/// What one query gets, before it goes on the wire.
#[derive(Debug, Clone, PartialEq)]
pub enum Reply {
    /// An answer of ours.
    Answer(ResponseCode, Vec<Record>),
    /// Not a name of ours: ask upstream.
    Forward,
}

fn a_records(name: &Name, ips: &[Ipv4Addr]) -> Vec<Record> {
    ips.iter()
        .map(|ip| Record::from_rdata(name.clone(), TTL, RData::A(A(*ip))))
        .collect()
}

/// The reply to a query of `qtype` for `name` from a task on `networks` (the addresses of
/// `tasks.X` and dnsrr names shuffled).
pub fn answer(index: &Index, networks: &[String], name: &Name, qtype: RecordType) -> Reply {
    let (mut reply, shuffled) = answer_ordered(index, networks, name, qtype);
    if shuffled {
        if let Reply::Answer(_, records) = &mut reply {
            records.shuffle(&mut rand::rng());
        }
    }
    reply
}

/// The reply of [`answer`] in table order, and whether its records are to be shuffled.
pub fn answer_ordered(
    index: &Index,
    networks: &[String],
    name: &Name,
    qtype: RecordType,
) -> (Reply, bool) {
    let key = normalize(&name.to_ascii());
    if let Some(ip) = reverse_addr(&key) {
        let reply = match index.reverse(networks, ip) {
            Some(task) if qtype == RecordType::PTR => match Name::from_ascii(task) {
                Ok(target) => Reply::Answer(
                    ResponseCode::NoError,
                    vec![Record::from_rdata(
                        name.clone(),
                        TTL,
                        RData::PTR(PTR(target)),
                    )],
                ),
                Err(_) => Reply::Answer(ResponseCode::ServFail, vec![]),
            },
            Some(_) => Reply::Answer(ResponseCode::NoError, vec![]),
            None => Reply::Forward,
        };
        return (reply, false);
    }
    match index.lookup(networks, &key) {
        None => (Reply::Forward, false),
        // AAAA and every other type of a name we know: no records, no error (clients that ask
        // A and AAAA together get their A at once instead of timing out).
        Some(_) if qtype != RecordType::A => (Reply::Answer(ResponseCode::NoError, vec![]), false),
        Some(Target::Fixed(ips)) => (
            Reply::Answer(ResponseCode::NoError, a_records(name, ips)),
            false,
        ),
        Some(Target::Shuffled(ips)) => (
            Reply::Answer(ResponseCode::NoError, a_records(name, ips)),
            ips.len() > 1,
        ),
    }
}

/// One task's resolver: the shared tables, seen from the task's networks.
#[derive(Debug, Clone)]
pub struct TaskResolver {
    /// Shared state.
    pub shared: Arc<Shared>,
    /// The task's networks, in attach order.
    pub networks: Vec<String>,
}

impl TaskResolver {
    /// Asks the upstream resolvers, in order, with `raw` (the client's own query): their answer,
    /// or `None` (no upstream, or none answered in time).
    async fn forward(&self, raw: &[u8], id: u16) -> Option<Message> {
        let servers = self
            .shared
            .upstream
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        for server in servers {
            let sock = match &self.shared.node_ns {
                Some(ns) => ns
                    .run(|| std::net::UdpSocket::bind("0.0.0.0:0"))
                    .ok()
                    .and_then(Result::ok),
                None => std::net::UdpSocket::bind("0.0.0.0:0").ok(),
            };
            let Some(sock) = sock else { continue };
            if sock.set_nonblocking(true).is_err() {
                continue;
            }
            let Ok(sock) = tokio::net::UdpSocket::from_std(sock) else {
                continue;
            };
            if sock.send_to(raw, server).await.is_err() {
                continue;
            }
            let mut buf = vec![0u8; 4096];
            let timeout = *self
                .shared
                .upstream_timeout
                .read()
                .unwrap_or_else(|e| e.into_inner());
            let got = tokio::time::timeout(timeout, async {
                loop {
                    let (n, from) = sock.recv_from(&mut buf).await?;
                    if from == server {
                        return Ok::<_, std::io::Error>(n);
                    }
                }
            })
            .await;
            match got {
                Ok(Ok(n)) => match Message::from_vec(&buf[..n]) {
                    Ok(m) if m.metadata.id == id => return Some(m),
                    _ => debug!(%server, "upstream answered with a bad message"),
                },
                _ => debug!(%server, "upstream did not answer in time"),
            }
        }
        None
    }

    fn has_upstream(&self) -> bool {
        !self
            .shared
            .upstream
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .is_empty()
    }
}

#[tonic::async_trait]
impl RequestHandler for TaskResolver {
    async fn handle_request<R: ResponseHandler, T: Time>(
        &self,
        request: &Request,
        mut response_handle: R,
    ) -> ResponseInfo {
        let started = std::time::Instant::now();
        let mut meta = Metadata::response_from_request(&request.metadata);
        meta.recursion_available = true;
        let builder = MessageResponseBuilder::from_message_request(request);
        let fallback = |meta: Metadata| {
            ResponseInfo::from(Header {
                metadata: meta,
                counts: HeaderCounts::default(),
            })
        };
        let query = match request.request_info() {
            Ok(info) if request.metadata.op_code == OpCode::Query => info.query.clone(),
            Ok(_) => {
                meta.response_code = ResponseCode::NotImp;
                let r = builder.build_no_records(meta);
                return response_handle
                    .send_response(r)
                    .await
                    .unwrap_or_else(|_| fallback(meta));
            }
            Err(_) => {
                meta.response_code = ResponseCode::FormErr;
                let r = builder.build_no_records(meta);
                return response_handle
                    .send_response(r)
                    .await
                    .unwrap_or_else(|_| fallback(meta));
            }
        };
        let index = self
            .shared
            .index
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        let name: Name = query.name().into();
        let qtype = u16::from(query.query_type());
        match answer(&index, &self.networks, &name, query.query_type()) {
            Reply::Answer(code, records) => {
                super::metrics::query(qtype, Source::Local, code.into(), started);
                meta.authoritative = true;
                meta.response_code = code;
                let r = builder.build(
                    meta,
                    records.iter(),
                    std::iter::empty(),
                    std::iter::empty(),
                    std::iter::empty(),
                );
                response_handle
                    .send_response(r)
                    .await
                    .unwrap_or_else(|_| fallback(meta))
            }
            Reply::Forward => match self.forward(request.as_slice(), request.metadata.id).await {
                Some(m) => {
                    meta.response_code = m.metadata.response_code;
                    let code = meta.response_code.into();
                    super::metrics::query(qtype, Source::Upstream, code, started);
                    let r = builder.build(
                        meta,
                        m.answers.iter(),
                        m.authorities.iter(),
                        std::iter::empty(),
                        m.additionals.iter(),
                    );
                    response_handle
                        .send_response(r)
                        .await
                        .unwrap_or_else(|_| fallback(meta))
                }
                None => {
                    // Unknown here and no upstream to ask: it does not exist. Upstreams that
                    // did not answer: a failure the client may retry.
                    meta.response_code = if self.has_upstream() {
                        ResponseCode::ServFail
                    } else {
                        ResponseCode::NXDomain
                    };
                    let code = meta.response_code.into();
                    super::metrics::query(qtype, Source::Upstream, code, started);
                    let r = builder.build_no_records(meta);
                    response_handle
                        .send_response(r)
                        .await
                        .unwrap_or_else(|_| fallback(meta))
                }
            },
        }
    }
}
