use super::addrs::{go_arch, parse_fib_trie, parse_if_inet6};
use super::http::{head_end, parse_request, response};
use super::{whoami_body, MAX_HEAD};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

/// `/proc/net/fib_trie` of a netns with `lo`, 10.0.0.5/24 and 192.0.2.2/24 (both tables shown).
const FIB_TRIE: &str = "\
Main:
  +-- 0.0.0.0/0 3 0 5
     |-- 0.0.0.0
        /0 universe UNICAST
     +-- 10.0.0.0/24 2 0 2
        +-- 10.0.0.0/29 2 0 2
           |-- 10.0.0.0
              /24 link UNICAST
           |-- 10.0.0.5
              /32 host LOCAL
        |-- 10.0.0.255
           /32 link BROADCAST
     +-- 127.0.0.0/8 2 0 2
        +-- 127.0.0.0/31 1 0 0
           |-- 127.0.0.0
              /8 host LOCAL
           |-- 127.0.0.1
              /32 host LOCAL
        |-- 127.255.255.255
           /32 link BROADCAST
Local:
  +-- 0.0.0.0/0 3 0 5
     +-- 127.0.0.0/8 2 0 2
           |-- 127.0.0.1
              /32 host LOCAL
     |-- 192.0.2.2
        /24 link UNICAST
        /32 host LOCAL
";

const IF_INET6: &str = "\
00000000000000000000000000000001 01 80 10 80       lo
fd000000000000000000000000000002 04 40 00 82     eth0
fe8000000000000000fc00fffe000001 04 40 20 80     eth0
not-an-address 01 80 10 80 lo

";

#[test]
fn fib_trie_yields_local_host_routes_only() {
    let got = parse_fib_trie(FIB_TRIE);
    let want: Vec<Ipv4Addr> = ["10.0.0.5", "127.0.0.1", "127.0.0.1", "192.0.2.2"]
        .iter()
        .map(|a| a.parse().unwrap())
        .collect();
    assert_eq!(got, want);
    assert!(parse_fib_trie("").is_empty());
    assert!(parse_fib_trie("garbage\n/32 host LOCAL\n|-- nope\n/32 host LOCAL\n").is_empty());
}

#[test]
fn if_inet6_yields_every_address() {
    let got = parse_if_inet6(IF_INET6);
    let want: Vec<Ipv6Addr> = ["::1", "fd00::2", "fe80::fc:ff:fe00:1"]
        .iter()
        .map(|a| a.parse().unwrap())
        .collect();
    assert_eq!(got, want);
}

#[test]
fn arch_uses_go_names() {
    assert_eq!(go_arch("x86_64"), "amd64");
    assert_eq!(go_arch("aarch64"), "arm64");
    assert_eq!(go_arch("x86"), "386");
    assert_eq!(go_arch("riscv64"), "riscv64");
}

#[test]
fn head_end_finds_blank_line() {
    assert_eq!(head_end(b"GET / HTTP/1.1\r\nA: b\r\n\r\nrest"), Some(24));
    assert_eq!(head_end(b"GET / HTTP/1.1\nA: b\n\n"), Some(21));
    assert_eq!(head_end(b"GET / HTTP/1.1\r\nA: b\r\n"), None);
    assert_eq!(head_end(b""), None);
}

#[test]
fn parses_a_request() {
    let head = b"GET /name?x=1 HTTP/1.1\r\nHost: web\r\nUser-Agent:  curl/8 \r\n\r\n";
    let req = parse_request(head).unwrap();
    assert_eq!(req.method, "GET");
    assert_eq!(req.target, "/name?x=1");
    assert_eq!(req.path(), "/name");
    assert_eq!(req.version, "HTTP/1.1");
    assert_eq!(req.headers, vec![("Host", "web"), ("User-Agent", "curl/8")]);
    assert_eq!(req.header("user-agent"), Some("curl/8"));
    assert!(req.keep_alive());
}

#[test]
fn keep_alive_follows_version_connection_and_body() {
    let ka = |h: &str| parse_request(h.as_bytes()).unwrap().keep_alive();
    assert!(ka("GET / HTTP/1.1\r\n\r\n"));
    assert!(!ka(
        "GET / HTTP/1.1\r\nConnection: keep-alive, Close\r\n\r\n"
    ));
    assert!(!ka("GET / HTTP/1.0\r\n\r\n"));
    assert!(ka("GET / HTTP/1.0\r\nConnection: Keep-Alive\r\n\r\n"));
    assert!(ka("POST / HTTP/1.1\r\nContent-Length: 0\r\n\r\n"));
    assert!(!ka("POST / HTTP/1.1\r\nContent-Length: 5\r\n\r\n"));
    assert!(!ka("POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n"));
}

#[test]
fn rejects_malformed_heads() {
    for bad in [
        &b"\r\n"[..],
        b"hello\r\n\r\n",
        b"GET /\r\n\r\n",
        b"GET / HTTP/1.1 extra\r\n\r\n",
        b"get / HTTP/1.1\r\n\r\n",
        b"GET / HTTP/2.0\r\n\r\n",
        b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n",
        b"GET /\x1b[2J HTTP/1.1\r\n\r\n",
        b"GET / HTTP/1.1\r\nNoColon\r\n\r\n",
        b"GET / HTTP/1.1\r\nA: b\r\n folded\r\n\r\n",
        b"GET / HTTP/1.1\r\n: empty\r\n\r\n",
        b"GET / HTTP/1.1\r\nA: \xff\r\n\r\n",
        b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03\n\n",
    ] {
        assert!(parse_request(bad).is_err(), "accepted {bad:?}");
    }
    // Nothing in the parser may panic on arbitrary bytes.
    let noise: Vec<u8> = (0..MAX_HEAD as u32)
        .map(|i| (i * 7919 % 251) as u8)
        .collect();
    for len in [0, 1, 2, 17, 255, 4096, noise.len()] {
        let _ = head_end(&noise[..len]);
        let _ = parse_request(&noise[..len]);
    }
}

#[test]
fn body_lists_who_and_echoes_the_request() {
    let req = parse_request(b"GET /x HTTP/1.1\r\nHost: web\r\nAccept: */*\r\n\r\n").unwrap();
    let peer: SocketAddr = "10.0.0.9:41000".parse().unwrap();
    let addrs: Vec<IpAddr> = vec!["127.0.0.1".parse().unwrap(), "::1".parse().unwrap()];
    let body = whoami_body(&req, peer, "task1", &addrs);
    let arch = go_arch(std::env::consts::ARCH);
    assert_eq!(
        body,
        format!(
            "I'm task1 running on linux/{arch}\nIP: 127.0.0.1\nIP: ::1\n\
             RemoteAddr: 10.0.0.9:41000\nGET /x HTTP/1.1\nHost: web\nAccept: */*\n"
        )
    );
}

#[test]
fn response_frames_the_body() {
    let r = String::from_utf8(response("200 OK", "ok", true, false)).unwrap();
    assert!(r.starts_with("HTTP/1.1 200 OK\r\n"));
    assert!(r.contains("\r\nContent-Length: 2\r\n"));
    assert!(r.contains("\r\nConnection: keep-alive\r\n"));
    assert!(r.ends_with("\r\n\r\nok"));
    let head = String::from_utf8(response("200 OK", "ok", false, true)).unwrap();
    assert!(head.contains("Content-Length: 2\r\nConnection: close\r\n"));
    assert!(head.ends_with("\r\n\r\n"));
}
