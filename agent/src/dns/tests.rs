//! The resolver without namespaces: answers from the tables, forwarding, and a bounded fuzz of
//! the server with malformed, truncated and oversized queries over UDP and TCP.

use super::index::tests::tables;
use super::*;
use hickory_server::proto::op::{Message, MessageType, Metadata, OpCode, Query, ResponseCode};
use hickory_server::proto::rr::{Name, RData, RecordType};
use std::net::Ipv4Addr;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

fn n1() -> Vec<String> {
    vec!["n1".to_string()]
}

fn name(s: &str) -> Name {
    Name::from_ascii(s).unwrap()
}

fn ips(r: &Reply) -> Vec<Ipv4Addr> {
    match r {
        Reply::Answer(_, recs) => recs
            .iter()
            .filter_map(|r| match &r.data {
                RData::A(a) => Some(a.0),
                _ => None,
            })
            .collect(),
        Reply::Forward => vec![],
    }
}

#[test]
fn answers_from_the_tables() {
    let ix = Index::build(&tables());
    let ip = |s: &str| s.parse::<Ipv4Addr>().unwrap();
    assert_eq!(
        ips(&answer(&ix, &n1(), &name("web."), RecordType::A)),
        [ip("10.0.1.2")]
    );
    assert_eq!(
        ips(&answer(&ix, &n1(), &name("WEB"), RecordType::A)),
        [ip("10.0.1.2")]
    );
    let mut all = ips(&answer(&ix, &n1(), &name("tasks.web"), RecordType::A));
    all.sort();
    assert_eq!(all, [ip("10.0.1.3"), ip("10.0.1.4")]);
    assert_eq!(
        ips(&answer(
            &ix,
            &n1(),
            &name("web.1.aaa.lp_net"),
            RecordType::A
        )),
        [ip("10.0.1.3")]
    );
    // AAAA of a known name: empty, no error.
    assert_eq!(
        answer(&ix, &n1(), &name("web"), RecordType::AAAA),
        Reply::Answer(ResponseCode::NoError, vec![])
    );
    // PTR of a task address.
    match answer(&ix, &n1(), &name("3.1.0.10.in-addr.arpa."), RecordType::PTR) {
        Reply::Answer(ResponseCode::NoError, recs) => match &recs[0].data {
            RData::PTR(p) => assert_eq!(p.0.to_ascii(), "web.1.aaa.lp_net."),
            other => panic!("{other:?}"),
        },
        other => panic!("{other:?}"),
    }
    // Not ours, or not on this task's networks: upstream.
    assert_eq!(
        answer(&ix, &n1(), &name("db"), RecordType::A),
        Reply::Forward
    );
    assert_eq!(
        answer(&ix, &n1(), &name("example.org"), RecordType::A),
        Reply::Forward
    );
    assert_eq!(
        answer(&ix, &n1(), &name("9.9.9.9.in-addr.arpa"), RecordType::PTR),
        Reply::Forward
    );
}

/// A resolver for the tables on 127.0.0.1 (UDP and TCP on one port), for `networks`.
/// UDP: the fast path with two readers in front of the handler, as in a task; TCP: hickory.
async fn server(
    networks: Vec<String>,
    upstream: Vec<SocketAddr>,
) -> (SocketAddr, (Server<TaskResolver>, udp::UdpServer)) {
    let shared = Arc::new(Shared::default());
    *shared.index.write().unwrap() = Arc::new(Index::build(&tables()));
    *shared.upstream.write().unwrap() = upstream;
    let sock = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    sock.set_nonblocking(true).unwrap();
    let addr = sock.local_addr().unwrap();
    let tcp = tokio::net::TcpListener::bind(addr).await.unwrap();
    let resolver = TaskResolver { shared, networks };
    let u = udp::UdpServer::spawn(sock, resolver.clone(), 2).unwrap();
    let mut s = Server::new(resolver);
    s.register_listener(tcp, Duration::from_secs(2), 16);
    (addr, (s, u))
}

fn query(id: u16, qname: &str, qtype: RecordType) -> Vec<u8> {
    let mut m = Message::new(id, MessageType::Query, OpCode::Query);
    m.metadata.recursion_desired = true;
    m.queries.push(Query::query(name(qname), qtype));
    m.to_vec().unwrap()
}

async fn ask(addr: SocketAddr, raw: &[u8]) -> Option<Message> {
    let sock = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
    sock.send_to(raw, addr).await.unwrap();
    let mut buf = vec![0u8; 65535];
    let n = tokio::time::timeout(Duration::from_millis(500), sock.recv(&mut buf))
        .await
        .ok()?
        .ok()?;
    Some(Message::from_vec(&buf[..n]).expect("a reply must decode"))
}

#[tokio::test]
async fn serves_and_forwards_over_udp() {
    // A fake upstream that knows example.org.
    let up = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let up_addr = up.local_addr().unwrap();
    tokio::spawn(async move {
        let mut buf = vec![0u8; 4096];
        for _ in 0..16 {
            let Ok((n, from)) = up.recv_from(&mut buf).await else {
                return;
            };
            let q = Message::from_vec(&buf[..n]).unwrap();
            let mut r = Message::new(q.metadata.id, MessageType::Response, OpCode::Query);
            r.queries = q.queries.clone();
            if q.queries[0].name().to_ascii() == "example.org." {
                r.answers
                    .push(hickory_server::proto::rr::Record::from_rdata(
                        q.queries[0].name().clone(),
                        60,
                        RData::A(hickory_server::proto::rr::rdata::A(Ipv4Addr::new(
                            192, 0, 2, 7,
                        ))),
                    ));
            } else {
                r.metadata.response_code = ResponseCode::NXDomain;
            }
            let _ = up.send_to(&r.to_vec().unwrap(), from).await;
        }
    });
    let (addr, _s) = server(n1(), vec![up_addr]).await;
    let r = ask(addr, &query(7, "web", RecordType::A)).await.unwrap();
    assert_eq!(r.metadata.id, 7);
    assert_eq!(r.metadata.response_code, ResponseCode::NoError);
    assert_eq!(r.answers.len(), 1);
    assert_eq!(r.answers[0].ttl, TTL);
    let r = ask(addr, &query(8, "example.org.", RecordType::A))
        .await
        .unwrap();
    assert_eq!(r.answers.len(), 1, "{r:?}");
    let r = ask(addr, &query(9, "nowhere.invalid.", RecordType::A))
        .await
        .unwrap();
    assert_eq!(r.metadata.response_code, ResponseCode::NXDomain);

    // Without an upstream, an unknown name is NXDOMAIN at once.
    let (addr, _s2) = server(n1(), vec![]).await;
    let t = std::time::Instant::now();
    let r = ask(addr, &query(10, "nowhere.invalid.", RecordType::A))
        .await
        .unwrap();
    assert_eq!(r.metadata.response_code, ResponseCode::NXDomain);
    assert!(t.elapsed() < Duration::from_millis(400));
}

/// A small deterministic generator (xorshift), so a failure can be replayed.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
}

/// Garbage, truncations and mutations of valid queries, oversized datagrams and TCP frames that
/// lie about their length: every reply decodes, and the server still answers afterwards. Runs
/// for a bounded time (SHOAL_DNS_FUZZ_SECS, default 3 s).
#[tokio::test]
async fn fuzzed_queries_do_no_harm() {
    let secs: u64 = std::env::var("SHOAL_DNS_FUZZ_SECS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(3);
    let seed: u64 = std::env::var("SHOAL_DNS_FUZZ_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(0x0005_eed0_fd45);
    eprintln!("fuzz seed {seed}, {secs} s");
    let (addr, _s) = server(n1(), vec![]).await;
    let sock = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let mut rng = Rng(seed);
    let valid = [
        query(1, "web", RecordType::A),
        query(2, "tasks.web", RecordType::A),
        query(3, "3.1.0.10.in-addr.arpa", RecordType::PTR),
        query(4, "web", RecordType::AAAA),
    ];
    let end = std::time::Instant::now() + Duration::from_secs(secs);
    let mut sent = 0u64;
    let mut buf = vec![0u8; 65535];
    while std::time::Instant::now() < end && sent < 200_000 {
        let mut pkt = match rng.below(4) {
            0 => (0..rng.below(600))
                .map(|_| rng.next() as u8)
                .collect::<Vec<u8>>(),
            1 => {
                let v = &valid[rng.below(valid.len())];
                v[..rng.below(v.len())].to_vec()
            }
            2 => {
                let mut v = valid[rng.below(valid.len())].clone();
                for _ in 0..=rng.below(4) {
                    let i = rng.below(v.len());
                    v[i] = rng.next() as u8;
                }
                v
            }
            _ => {
                // Header claiming many records, with a long tail.
                let mut v = valid[rng.below(valid.len())].clone();
                v[4..12].copy_from_slice(&[0xff; 8]);
                v.extend((0..rng.below(60_000)).map(|_| rng.next() as u8));
                v
            }
        };
        pkt.truncate(65_000);
        let _ = sock.send_to(&pkt, addr).await;
        sent += 1;
        // Read whatever came back, without waiting: replies must decode.
        while let Ok(Ok(n)) =
            tokio::time::timeout(Duration::from_micros(200), sock.recv(&mut buf)).await
        {
            Message::from_vec(&buf[..n]).expect("every reply decodes");
        }
    }
    // TCP: a frame whose length prefix lies, a truncated frame, then a good one on a new
    // connection.
    for bad in [vec![0xff, 0xff, 1, 2, 3], vec![0, 40, 1, 2], vec![0, 0]] {
        if let Ok(mut c) = tokio::net::TcpStream::connect(addr).await {
            let _ = c.write_all(&bad).await;
            let _ = c.shutdown().await;
        }
    }
    let mut c = tokio::net::TcpStream::connect(addr).await.unwrap();
    let q = query(77, "web", RecordType::A);
    c.write_all(&(q.len() as u16).to_be_bytes()).await.unwrap();
    c.write_all(&q).await.unwrap();
    let mut len = [0u8; 2];
    tokio::time::timeout(Duration::from_secs(2), c.read_exact(&mut len))
        .await
        .unwrap()
        .unwrap();
    let mut body = vec![0u8; u16::from_be_bytes(len) as usize];
    c.read_exact(&mut body).await.unwrap();
    assert_eq!(Message::from_vec(&body).unwrap().metadata.id, 77);
    // And UDP still answers.
    let r = ask(addr, &query(78, "web", RecordType::A))
        .await
        .expect("still answering");
    assert_eq!(r.answers.len(), 1);
    eprintln!("fuzz: {sent} datagrams");
    let _ = Metadata::new(0, MessageType::Query, OpCode::Query);
}

/// A resolver on the test tables for network n1, without sockets.
fn resolver() -> TaskResolver {
    let shared = Arc::new(Shared::default());
    *shared.index.write().unwrap() = Arc::new(Index::build(&tables()));
    TaskResolver {
        shared,
        networks: n1(),
    }
}

/// The slow path's reply (hickory's handler, encoded as for UDP) to `raw`.
async fn slow_reply(r: &TaskResolver, raw: &[u8]) -> Vec<u8> {
    use hickory_server::server::RequestHandler;
    let req = hickory_server::server::Request::from_bytes(
        raw.to_vec(),
        "127.0.0.1:5353".parse().unwrap(),
        hickory_server::net::xfer::Protocol::Udp,
    )
    .unwrap();
    let slot = Arc::new(std::sync::Mutex::new(None));
    r.handle_request::<_, hickory_server::net::runtime::TokioTime>(
        &req,
        udp::Responder::Capture(Arc::clone(&slot)),
    )
    .await;
    let got = slot.lock().unwrap().take();
    got.expect("the slow path answers")
}

/// A query with a given id, RD and CD flags, for a name spelled as given (its case kept).
fn raw_query(id: u16, qname: &str, qtype: u16, rd: bool, cd: bool) -> Vec<u8> {
    let mut q = id.to_be_bytes().to_vec();
    q.push(if rd { 1 } else { 0 });
    q.push(if cd { 0x10 } else { 0 });
    q.extend_from_slice(&[0, 1, 0, 0, 0, 0, 0, 0]);
    for l in qname.trim_end_matches('.').split('.') {
        q.push(l.len() as u8);
        q.extend_from_slice(l.as_bytes());
    }
    q.push(0);
    q.extend_from_slice(&qtype.to_be_bytes());
    q.extend_from_slice(&[0, 1]);
    q
}

/// Header and question bytes, the answers' data sorted and the length (the order of
/// shuffled names varies).
fn canonical(wire: &[u8], qname_len: usize) -> (Vec<u8>, Vec<String>, usize) {
    let mut data: Vec<String> = Message::from_vec(wire)
        .unwrap()
        .answers
        .iter()
        .map(|a| format!("{} {:?}", a.name, a.data))
        .collect();
    data.sort();
    (wire[..12 + qname_len + 4].to_vec(), data, wire.len())
}

#[tokio::test]
async fn fast_path_bytes_equal_the_slow_path() {
    let r = resolver();
    let cache = fast::Cache::default();
    let cases: &[(&str, u16, bool)] = &[
        ("web", 1, false),
        ("WeB.", 1, false),
        ("API", 1, false),
        ("Web.1.AAA", 1, false),
        ("web.2.bbb.LP_NET", 1, false),
        ("3.1.0.10.IN-ADDR.arpa", 12, false),
        ("3.1.0.10.in-addr.arpa", 1, false),
        ("web", 28, false),
        ("web", 15, false),
        ("rr", 1, false),
        ("Tasks.Web", 1, true),
    ];
    let mut out = Vec::new();
    let mut id = 0x1200u16;
    for &(qname, qtype, shuffled) in cases {
        for (rd, cd) in [(true, false), (false, true), (true, true)] {
            id += 1;
            let q = raw_query(id, qname, qtype, rd, cd);
            let slow = slow_reply(&r, &q).await;
            assert!(
                udp::respond(&r, &cache, &q, &mut out).await,
                "{qname} {qtype}: fast path"
            );
            let plain = fast::parse(&q).unwrap();
            if shuffled {
                assert_eq!(
                    canonical(&out, plain.qname_len),
                    canonical(&slow, plain.qname_len),
                    "{qname} {qtype}"
                );
            } else {
                assert_eq!(out, slow, "{qname} {qtype} rd={rd} cd={cd}");
            }
            // The question keeps the client's spelling.
            assert_eq!(&out[12..12 + plain.qname_len], &q[12..12 + plain.qname_len]);
        }
    }
    // One entry per (name, type), whatever the case of the queries.
    assert_eq!(cache.len(), cases.len() - 1);
}

#[tokio::test]
async fn fast_path_leaves_the_rest_to_the_slow_path() {
    let r = resolver();
    let cache = fast::Cache::default();
    let mut out = Vec::new();
    // Not ours (forwarded or NXDOMAIN), not on this task's networks.
    for name in ["example.org", "db", "9.9.9.9.in-addr.arpa"] {
        assert!(!udp::respond(&r, &cache, &raw_query(1, name, 1, true, false), &mut out).await);
    }
    // A second query for an unknown name does not rebuild anything.
    assert!(!udp::respond(&r, &cache, &raw_query(2, "db", 1, true, false), &mut out).await);
    assert_eq!(cache.len(), 3);
    // Not plain: EDNS (an additional record), class CH, a compressed name, trailing bytes, a
    // response, another opcode, truncated.
    let good = raw_query(3, "web", 1, true, false);
    let mut edns = good.clone();
    edns[11] = 1;
    edns.extend_from_slice(&[0, 0, 41, 4, 0, 0, 0, 0, 0, 0, 0]);
    let mut ch = good.clone();
    let l = ch.len();
    ch[l - 1] = 3;
    let mut ptr = good[..12].to_vec();
    ptr.extend_from_slice(&[0xc0, 12, 0, 1, 0, 1]);
    let mut trailing = good.clone();
    trailing.push(0);
    let mut response = good.clone();
    response[2] |= 0x80;
    let mut notify = good.clone();
    notify[2] |= 4 << 3;
    for bad in [
        edns,
        ch,
        ptr,
        trailing,
        response,
        notify,
        good[..good.len() - 1].to_vec(),
    ] {
        assert!(fast::parse(&bad).is_none(), "{bad:?}");
    }
    assert!(fast::parse(&good).is_some());
}

#[tokio::test]
async fn cached_answers_follow_the_tables() {
    let r = resolver();
    let cache = fast::Cache::default();
    let mut out = Vec::new();
    let q = raw_query(5, "web", 1, true, false);
    assert!(udp::respond(&r, &cache, &q, &mut out).await);
    let m = Message::from_vec(&out).unwrap();
    assert_eq!(
        m.answers[0].data,
        RData::A(hickory_server::proto::rr::rdata::A(Ipv4Addr::new(
            10, 0, 1, 2
        )))
    );
    // New tables: web's VIP moves, a new name appears; the version bump drops the cache.
    let mut t = tables();
    t[0].services[0].vip = "10.0.1.99".into();
    t[0].services[1].name = "fresh".into();
    *r.shared.index.write().unwrap() = Arc::new(Index::build(&t));
    r.shared
        .version
        .fetch_add(1, std::sync::atomic::Ordering::AcqRel);
    assert!(udp::respond(&r, &cache, &q, &mut out).await);
    let m = Message::from_vec(&out).unwrap();
    assert_eq!(m.metadata.id, 5);
    assert_eq!(
        m.answers[0].data,
        RData::A(hickory_server::proto::rr::rdata::A(Ipv4Addr::new(
            10, 0, 1, 99
        )))
    );
    assert!(udp::respond(&r, &cache, &raw_query(6, "fresh", 1, true, false), &mut out).await);
    assert_eq!(cache.len(), 2);
}

#[tokio::test]
async fn tasks_names_are_shuffled_per_answer() {
    let r = resolver();
    let cache = fast::Cache::default();
    let mut out = Vec::new();
    let mut orders = std::collections::HashSet::new();
    for id in 0..64u16 {
        assert!(
            udp::respond(
                &r,
                &cache,
                &raw_query(id, "tasks.web", 1, true, false),
                &mut out
            )
            .await
        );
        let m = Message::from_vec(&out).unwrap();
        assert_eq!(m.metadata.id, id);
        let got: Vec<_> = m.answers.iter().map(|a| a.data.clone()).collect();
        assert_eq!(got.len(), 2);
        orders.insert(format!("{got:?}"));
    }
    assert_eq!(orders.len(), 2, "both orders of the two tasks are served");
}
