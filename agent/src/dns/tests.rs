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
async fn server(
    networks: Vec<String>,
    upstream: Vec<SocketAddr>,
) -> (SocketAddr, Server<TaskResolver>) {
    let shared = Arc::new(Shared::default());
    *shared.index.write().unwrap() = Arc::new(Index::build(&tables()));
    *shared.upstream.write().unwrap() = upstream;
    let udp = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let addr = udp.local_addr().unwrap();
    let tcp = tokio::net::TcpListener::bind(addr).await.unwrap();
    let mut s = Server::new(TaskResolver { shared, networks });
    s.register_socket(udp);
    s.register_listener(tcp, Duration::from_secs(2), 16);
    (addr, s)
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
