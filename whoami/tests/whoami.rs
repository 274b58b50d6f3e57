//! Runs the built `whoami` binary on 127.0.0.1 and talks HTTP and UDP to it. No root needed.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream, UdpSocket};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

const STEP: Duration = Duration::from_secs(5);

/// The server process; killed on drop if a test failed before it exited.
struct Server {
    child: Child,
    addr: SocketAddr,
    /// Lines the server printed after its "listening" line.
    log: mpsc::Receiver<String>,
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

fn start() -> Server {
    let mut child = Command::new(env!("CARGO_BIN_EXE_whoami"))
        .args(["--listen", "127.0.0.1", "--port", "0"])
        .env_remove("PORT")
        .stdout(Stdio::piped())
        .spawn()
        .expect("spawn whoami");
    let stdout = child.stdout.take().expect("piped stdout");
    let (tx, rx) = mpsc::channel();
    // Reads until the server exits, so the pipe never fills.
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let mut server = Server {
        child,
        addr: "0.0.0.0:0".parse().unwrap(),
        log: rx,
    };
    let first = server.log.recv_timeout(STEP).expect("no listening line");
    let addr = first
        .strip_prefix("listening on ")
        .and_then(|rest| rest.split(' ').next())
        .unwrap_or_else(|| panic!("unexpected first line {first:?}"));
    server.addr = addr.parse().expect("listening address");
    server
}

fn connect(addr: SocketAddr) -> TcpStream {
    let s = TcpStream::connect_timeout(&addr, STEP).expect("connect");
    s.set_read_timeout(Some(STEP)).unwrap();
    s.set_write_timeout(Some(STEP)).unwrap();
    s
}

/// Sends `raw` and reads until the server closes: every response on the connection.
fn exchange(addr: SocketAddr, raw: &[u8]) -> std::io::Result<String> {
    let mut s = connect(addr);
    s.write_all(raw)?;
    let mut out = Vec::new();
    s.read_to_end(&mut out)?;
    Ok(String::from_utf8_lossy(&out).into_owned())
}

fn get(addr: SocketAddr, path: &str) -> (String, String) {
    let req = format!("GET {path} HTTP/1.1\r\nHost: test\r\nConnection: close\r\n\r\n");
    let resp = exchange(addr, req.as_bytes()).expect("GET");
    let (head, body) = resp.split_once("\r\n\r\n").expect("response head");
    (head.to_owned(), body.to_owned())
}

fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .expect("hostname")
        .trim()
        .to_owned()
}

#[test]
fn serves_http_udp_survives_garbage_and_stops_on_sigterm() {
    let mut server = start();
    let addr = server.addr;

    let (head, body) = get(addr, "/");
    assert!(head.starts_with("HTTP/1.1 200 OK\r\n"), "{head}");
    assert!(head.contains("Content-Type: text/plain"), "{head}");
    let first = body.lines().next().unwrap_or_default();
    assert!(first.starts_with("I'm "), "{body}");
    assert!(first.contains("running on linux/"), "{body}");
    assert!(body.contains("\nIP: 127.0.0.1\n"), "{body}");
    assert!(body.contains("\nRemoteAddr: 127.0.0.1:"), "{body}");
    assert!(body.contains("\nGET / HTTP/1.1\nHost: test\n"), "{body}");

    assert_eq!(get(addr, "/name").1, hostname());
    assert_eq!(get(addr, "/health").1, "ok");

    // Keep-alive and pipelining: two requests, two responses, one connection.
    let two = exchange(
        addr,
        b"GET /health HTTP/1.1\r\n\r\nGET /health HTTP/1.1\r\nConnection: close\r\n\r\n",
    )
    .expect("pipelined");
    assert_eq!(two.matches("HTTP/1.1 200 OK\r\n").count(), 2, "{two}");

    // UDP: any datagram gets "I'm <name>".
    let udp = UdpSocket::bind("127.0.0.1:0").unwrap();
    udp.set_read_timeout(Some(Duration::from_secs(1))).unwrap();
    let mut buf = [0u8; 512];
    let mut reply = None;
    for _ in 0..5 {
        udp.send_to(b"ping", addr).unwrap();
        if let Ok((n, from)) = udp.recv_from(&mut buf) {
            assert_eq!(from, addr);
            reply = Some(String::from_utf8_lossy(&buf[..n]).into_owned());
            break;
        }
    }
    assert_eq!(
        reply.expect("no UDP reply"),
        format!("I'm {}\n", hostname())
    );

    // Garbage gets a 400 or a close; never a 200, and the server keeps answering.
    let big = format!("GET / HTTP/1.1\r\nX: {}\r\n\r\n", "a".repeat(20 * 1024));
    for raw in [
        &b"\x16\x03\x01\x00\xa5\x01\x00\x00\xa1\x03\x03garbage\r\n\r\n"[..],
        b"hello there\n\n",
        b"GET / HTTP/1.1\r\nno colon here\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost: x\r\n", // truncated: the client half-closes below
        big.as_bytes(),
    ] {
        let mut s = connect(addr);
        let _ = s.write_all(raw);
        let _ = s.shutdown(std::net::Shutdown::Write);
        let mut out = Vec::new();
        let _ = s.read_to_end(&mut out); // a reset is an acceptable close
        assert!(
            out.is_empty() || out.starts_with(b"HTTP/1.1 400 "),
            "{:?} got {:?}",
            String::from_utf8_lossy(&raw[..raw.len().min(40)]),
            String::from_utf8_lossy(&out)
        );
    }
    assert_eq!(get(addr, "/health").1, "ok");

    // One log line per request: "<peer> <method> <path>".
    let logged: Vec<String> = server.log.try_iter().collect();
    assert!(
        logged
            .iter()
            .any(|l| l.starts_with("127.0.0.1:") && l.ends_with(" GET /name")),
        "{logged:?}"
    );

    let pid = server.child.id().to_string();
    let status = Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .expect("kill");
    assert!(status.success());
    let deadline = Instant::now() + STEP;
    let exit = loop {
        if let Some(exit) = server.child.try_wait().expect("try_wait") {
            break exit;
        }
        assert!(
            Instant::now() < deadline,
            "whoami did not exit within 5 s of SIGTERM"
        );
        std::thread::sleep(Duration::from_millis(20));
    };
    assert!(exit.success(), "exit status {exit}");
}

#[test]
fn port_comes_from_env() {
    // Bind-then-release picks a port that is very likely still free.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut child = Command::new(env!("CARGO_BIN_EXE_whoami"))
        .args(["--listen", "127.0.0.1", "--name", "envtest"])
        .env("PORT", port.to_string())
        .stdout(Stdio::piped())
        .spawn()
        .expect("spawn whoami");
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let _ = child.kill();
    let _ = child.wait();
    assert_eq!(
        line.trim(),
        format!("listening on 127.0.0.1:{port} (tcp+udp) as envtest")
    );
}
