//! The UDP side of a task's resolver: one reader per core on the task's socket. A plain query
//! for a cluster name is answered from the task's [`Cache`] (filled on a miss by the slow path
//! itself, so both give the same bytes); anything else goes to hickory's request handler
//! ([`TaskResolver`]), in a task of its own (forwarding may wait on an upstream).

use super::fast::{self, Cache, Entry, Found, Plain};
use super::metrics::Source;
use super::resolver::{answer_ordered, Reply, TaskResolver};
use hickory_server::net::runtime::TokioTime;
use hickory_server::net::xfer::Protocol;
use hickory_server::net::NetError;
use hickory_server::proto::op::{
    Header, HeaderCounts, MessageType, Metadata, OpCode, ResponseCode,
};
use hickory_server::proto::rr::{Name, Record, RecordType};
use hickory_server::proto::serialize::binary::{
    BinDecodable, BinDecoder, BinEncodable, BinEncoder,
};
use hickory_server::server::{Request, RequestHandler, ResponseHandler, ResponseInfo};
use hickory_server::zone_handler::{MessageResponse, MessageResponseBuilder, Queries};
use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::Instant;
use tokio::net::UdpSocket;
use tokio::task::JoinHandle;
use tracing::debug;

/// Largest datagram read (a longer one is cut, and answered FORMERR or not at all).
const RECV_MAX: usize = 4096;

/// How many readers a task's socket gets: one per core.
pub fn readers() -> usize {
    std::thread::available_parallelism()
        .map_or(1, |n| n.get())
        .clamp(1, 8)
}

/// The readers of one task's UDP socket; dropping it stops them (the socket closes).
#[derive(Debug)]
pub struct UdpServer {
    readers: Vec<JoinHandle<()>>,
    cache: Arc<Cache>,
}

impl UdpServer {
    /// Serves `sock` (bound, non-blocking) for `resolver` with `n` readers.
    pub fn spawn(
        sock: std::net::UdpSocket,
        resolver: TaskResolver,
        n: usize,
    ) -> std::io::Result<UdpServer> {
        let sock = Arc::new(UdpSocket::from_std(sock)?);
        let resolver = Arc::new(resolver);
        let cache = Arc::new(Cache::default());
        let readers = (0..n.max(1))
            .map(|_| {
                tokio::spawn(read_loop(
                    Arc::clone(&sock),
                    Arc::clone(&resolver),
                    Arc::clone(&cache),
                ))
            })
            .collect();
        Ok(UdpServer { readers, cache })
    }

    /// Cached answers (tests).
    pub fn cached(&self) -> usize {
        self.cache.len()
    }
}

impl Drop for UdpServer {
    fn drop(&mut self) {
        for r in &self.readers {
            r.abort();
        }
    }
}

async fn read_loop(sock: Arc<UdpSocket>, resolver: Arc<TaskResolver>, cache: Arc<Cache>) {
    let mut buf = vec![0u8; RECV_MAX];
    let mut out = Vec::with_capacity(512);
    // The slow queries in flight: aborted with the reader (as hickory's server did), so the
    // socket closes when the task's resolver stops.
    let mut slow = tokio::task::JoinSet::new();
    loop {
        let (n, src) = match sock.recv_from(&mut buf).await {
            Ok(r) => r,
            Err(error) => {
                debug!(%error, "embedded DNS: receive failed");
                if matches!(
                    error.kind(),
                    std::io::ErrorKind::NotConnected | std::io::ErrorKind::BrokenPipe
                ) {
                    return;
                }
                continue;
            }
        };
        if src.port() == 0 || src.ip().is_unspecified() {
            continue;
        }
        let query = &buf[..n];
        if respond(&resolver, &cache, query, &mut out).await {
            if let Err(error) = sock.send_to(&out, src).await {
                debug!(%error, %src, "embedded DNS: send failed");
            }
        } else {
            let (resolver, sock, query) =
                (Arc::clone(&resolver), Arc::clone(&sock), query.to_vec());
            slow.spawn(async move { slow_path(&resolver, sock, query, src).await });
            while slow.try_join_next().is_some() {}
        }
    }
}

/// The single place where a UDP query is answered from the cache: `true` with the reply in
/// `out`, or `false` (the slow path answers it).
pub async fn respond(
    resolver: &TaskResolver,
    cache: &Cache,
    query: &[u8],
    out: &mut Vec<u8>,
) -> bool {
    let started = Instant::now();
    let Some(plain) = fast::parse(query) else {
        return false;
    };
    let version = resolver.shared.version.load(Ordering::Acquire);
    let answered = match cache.answer_into(version, query, &plain, out) {
        Found::Hit => true,
        Found::Slow => false,
        Found::Miss => {
            let entry = build_entry(resolver, &plain).await;
            cache.insert(version, plain.key(), entry);
            cache.answer_into(version, query, &plain, out) == Found::Hit
        }
    };
    if answered {
        // The response code is the low four bits of the header's fourth byte.
        let rcode = out.get(3).map_or(0, |b| u16::from(b & 0x0f));
        super::metrics::query(plain.qtype, Source::Local, rcode, started);
    }
    answered
}

/// The cache entry for `plain`: the slow path's reply to its canonical query when the name is
/// ours.
async fn build_entry(resolver: &TaskResolver, plain: &Plain) -> Entry {
    let canon = fast::canonical_query(plain.lower_qname(), plain.qtype);
    let src = SocketAddr::from(([127, 0, 0, 1], 53));
    let Ok(request) = Request::from_bytes(canon, src, Protocol::Udp) else {
        return Entry::Slow;
    };
    let Ok(info) = request.request_info() else {
        return Entry::Slow;
    };
    let name: Name = info.query.name().into();
    let qtype = RecordType::from(plain.qtype);
    let index = resolver
        .shared
        .index
        .read()
        .unwrap_or_else(|e| e.into_inner())
        .clone();
    let (reply, shuffled) = answer_ordered(&index, &resolver.networks, &name, qtype);
    if reply == Reply::Forward {
        return Entry::Slow;
    }
    let captured = Arc::new(Mutex::new(None));
    resolver
        .handle_request::<_, TokioTime>(&request, Responder::Capture(Arc::clone(&captured)))
        .await;
    let wire = captured.lock().unwrap_or_else(|e| e.into_inner()).take();
    match wire {
        Some(wire) => Entry::local(wire, plain.qname_len, shuffled),
        None => Entry::Slow,
    }
}

/// hickory's handling of one datagram: parse, FORMERR when only the header parses, drop
/// responses, then the [`TaskResolver`].
pub async fn slow_path(
    resolver: &TaskResolver,
    sock: Arc<UdpSocket>,
    raw: Vec<u8>,
    src: SocketAddr,
) {
    let Ok(header) = Header::read(&mut BinDecoder::new(&raw)) else {
        return; // shorter than a header: not a query
    };
    let responder = Responder::Socket(sock, src);
    match Request::from_bytes(raw, src, Protocol::Udp) {
        Ok(request) => {
            if request.metadata.message_type == MessageType::Response {
                return; // no reflection
            }
            resolver
                .handle_request::<_, TokioTime>(&request, responder)
                .await;
        }
        Err(error) => {
            debug!(%error, %src, "embedded DNS: malformed query");
            let Ok(queries) = Queries::read(&mut BinDecoder::new(&[]), 0) else {
                return;
            };
            let mut responder = responder;
            let r = MessageResponseBuilder::new(&queries, None)
                .error_msg(&header.metadata, ResponseCode::FormErr);
            let _ = responder.send_response(r).await;
        }
    }
}

/// Where a response goes: a client over UDP, or a buffer (the cache).
#[derive(Clone)]
pub enum Responder {
    /// Sent to this address from the task's socket.
    Socket(Arc<UdpSocket>, SocketAddr),
    /// Kept here.
    Capture(Arc<Mutex<Option<Vec<u8>>>>),
}

/// A response as hickory's UDP server encodes it: at most 512 bytes without EDNS, the
/// client's payload size with it, SERVFAIL when it cannot be encoded.
pub fn encode_udp<'a>(
    response: MessageResponse<
        '_,
        'a,
        impl Iterator<Item = &'a Record> + Send + 'a,
        impl Iterator<Item = &'a Record> + Send + 'a,
        impl Iterator<Item = &'a Record> + Send + 'a,
        impl Iterator<Item = &'a Record> + Send + 'a,
    >,
) -> Result<(ResponseInfo, Vec<u8>), NetError> {
    let id = response.metadata().id;
    let max = response.edns().map_or(512, |e| e.max_payload());
    let mut bytes = Vec::with_capacity(512);
    let mut encoder = BinEncoder::new(&mut bytes);
    encoder.set_max_size(max);
    match response.destructive_emit(&mut encoder) {
        Ok(info) => Ok((info, bytes)),
        Err(error) => {
            debug!(%error, "embedded DNS: cannot encode a response");
            bytes.clear();
            let mut encoder = BinEncoder::new(&mut bytes);
            encoder.set_max_size(512);
            let mut metadata = Metadata::new(id, MessageType::Response, OpCode::Query);
            metadata.response_code = ResponseCode::ServFail;
            let header = Header {
                metadata,
                counts: HeaderCounts::default(),
            };
            header
                .emit(&mut encoder)
                .map_err(|e| NetError::from(e.to_string()))?;
            Ok((ResponseInfo::from(header), bytes))
        }
    }
}

#[tonic::async_trait]
impl ResponseHandler for Responder {
    async fn send_response<'a>(
        &mut self,
        response: MessageResponse<
            '_,
            'a,
            impl Iterator<Item = &'a Record> + Send + 'a,
            impl Iterator<Item = &'a Record> + Send + 'a,
            impl Iterator<Item = &'a Record> + Send + 'a,
            impl Iterator<Item = &'a Record> + Send + 'a,
        >,
    ) -> Result<ResponseInfo, NetError> {
        let (info, bytes) = encode_udp(response)?;
        match self {
            Responder::Socket(sock, dst) => {
                sock.send_to(&bytes, *dst).await?;
            }
            Responder::Capture(slot) => {
                *slot.lock().unwrap_or_else(|e| e.into_inner()) = Some(bytes);
            }
        }
        Ok(info)
    }
}
