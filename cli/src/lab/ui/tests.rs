//! The UI server without a browser: the token, `Host` and `Origin` checks, a terminal over the
//! websocket (resize reaches the PTY, exit is reported), and no PTY process outlives its socket.

use super::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio_tungstenite::tungstenite::client::IntoClientRequest;

struct Fake;

impl Lab for Fake {
    fn snapshot(&self) -> futures_util::future::BoxFuture<'_, anyhow::Result<Value>> {
        Box::pin(async { Ok(serde_json::json!({"lab": "t", "nodes": [{"name": "n1"}]})) })
    }
    fn shell(&self, node: &str) -> Option<Vec<String>> {
        (node == "n1").then(|| vec!["sh".to_string()])
    }
}

const TOKEN: &str = "0123456789abcdef0123456789abcdef";

async fn server() -> SocketAddr {
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    let ui = Ui::new(Arc::new(Fake), TOKEN.into(), vec![addr.to_string()]);
    tokio::spawn(ui.serve(l));
    addr
}

/// One HTTP/1.1 GET with `headers`: status code and the whole response.
async fn get(addr: SocketAddr, path: &str, headers: &[(&str, &str)]) -> (u16, String) {
    let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
    let mut req = format!("GET {path} HTTP/1.1\r\nConnection: close\r\n");
    if !headers.iter().any(|(k, _)| k.eq_ignore_ascii_case("host")) {
        req.push_str(&format!("Host: {addr}\r\n"));
    }
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    req.push_str("\r\n");
    s.write_all(req.as_bytes()).await.unwrap();
    let mut out = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(5), s.read_to_end(&mut out)).await;
    let text = String::from_utf8_lossy(&out).to_string();
    let code = text
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    (code, text)
}

fn cookie() -> String {
    format!("{COOKIE}={TOKEN}")
}

#[tokio::test]
async fn the_token_is_required_and_traded_for_a_cookie() {
    let addr = server().await;
    assert_eq!(get(addr, "/api/lab", &[]).await.0, 401);
    assert_eq!(get(addr, "/", &[]).await.0, 401);
    assert_eq!(get(addr, "/?token=nope", &[]).await.0, 401);
    let (code, text) = get(addr, &format!("/?token={TOKEN}"), &[]).await;
    assert_eq!(code, 303, "{text}");
    let lower = text.to_ascii_lowercase();
    assert!(lower.contains("set-cookie: shoal_lab="), "{text}");
    assert!(
        lower.contains("httponly") && lower.contains("samesite=strict"),
        "{text}"
    );
    assert!(lower.contains("location: /"), "{text}");
    let (code, text) = get(addr, "/api/lab", &[("Cookie", &cookie())]).await;
    assert_eq!(code, 200, "{text}");
    assert!(text.contains("\"lab\":\"t\""), "{text}");
    let lower = text.to_ascii_lowercase();
    assert!(
        lower.contains("content-security-policy: default-src 'self'"),
        "{text}"
    );
    assert!(!lower.contains("access-control-allow-origin"), "{text}");
    assert_eq!(get(addr, "/", &[("Cookie", &cookie())]).await.0, 200);
    assert_eq!(get(addr, "/nope", &[("Cookie", &cookie())]).await.0, 404);
}

#[tokio::test]
async fn the_static_view_survives_the_token_trade() {
    let addr = server().await;
    let (code, text) = get(addr, &format!("/?token={TOKEN}&static=1"), &[]).await;
    assert_eq!(code, 303, "{text}");
    let lower = text.to_ascii_lowercase();
    assert!(lower.contains("location: /?static=1\r\n"), "{text}");
    assert!(lower.contains("set-cookie: shoal_lab="), "{text}");
    // Only `static=1` goes along: nothing else of the query reaches `Location`.
    let (code, text) = get(addr, &format!("/?static=1&token={TOKEN}&x=//evil"), &[]).await;
    assert_eq!(code, 303, "{text}");
    assert!(
        text.to_ascii_lowercase()
            .contains("location: /?static=1\r\n"),
        "{text}"
    );
    let (_, text) = get(addr, &format!("/?token={TOKEN}&static=0"), &[]).await;
    assert!(
        text.to_ascii_lowercase().contains("location: /\r\n"),
        "{text}"
    );
    // Without the cookie the static view is refused like the live one.
    assert_eq!(get(addr, "/?static=1", &[]).await.0, 401);
    assert_eq!(
        get(addr, "/?static=1", &[("Cookie", &cookie())]).await.0,
        200
    );
}

#[test]
fn the_screenshot_help_names_the_static_view() {
    let help = screenshot_help("http://127.0.0.1:1/?token=T");
    assert!(
        help.contains("--screenshot=lab.png 'http://127.0.0.1:1/?token=T&static=1'"),
        "{help}"
    );
    assert!(help.contains("--virtual-time-budget="), "{help}");
}

#[tokio::test]
async fn foreign_host_and_origin_are_refused() {
    let addr = server().await;
    // DNS rebinding: evil.example resolving to 127.0.0.1.
    let (code, _) = get(
        addr,
        "/api/lab",
        &[("Host", "evil.example:80"), ("Cookie", &cookie())],
    )
    .await;
    assert_eq!(code, 403);
    let (code, _) = get(
        addr,
        "/ws/term/n1",
        &[
            ("Cookie", &cookie()),
            ("Origin", "http://evil.example"),
            ("Upgrade", "websocket"),
            ("Connection", "Upgrade"),
            ("Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25jZQ=="),
            ("Sec-WebSocket-Version", "13"),
        ],
    )
    .await;
    assert_eq!(code, 403);
}

type Ws = WebSocketStream<tokio::net::TcpStream>;

async fn terminal(addr: SocketAddr) -> Ws {
    let mut req = format!("ws://{addr}/ws/term/n1?cols=80&rows=24")
        .into_client_request()
        .unwrap();
    let h = req.headers_mut();
    h.insert("origin", format!("http://{addr}").parse().unwrap());
    h.insert("cookie", cookie().parse().unwrap());
    let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
    let (ws, resp) = tokio_tungstenite::client_async(req, tcp).await.unwrap();
    assert_eq!(resp.status(), 101);
    ws
}

/// Reads the terminal until `pred` holds on everything read so far (at most 10 s).
async fn read_until(ws: &mut Ws, pred: impl Fn(&str) -> bool) -> String {
    let mut seen = String::new();
    let end = tokio::time::Instant::now() + Duration::from_secs(10);
    while !pred(&seen) {
        let m = tokio::time::timeout_at(end, ws.next())
            .await
            .unwrap_or_else(|_| panic!("no match in {seen:?}"));
        match m {
            Some(Ok(Message::Binary(b))) => seen.push_str(&String::from_utf8_lossy(&b)),
            Some(Ok(Message::Text(t))) => seen.push_str(&format!("\n@@{t}\n")),
            Some(Ok(_)) => {}
            _ => break,
        }
    }
    seen
}

#[tokio::test]
async fn a_terminal_resizes_and_reports_its_exit() {
    let addr = server().await;
    let mut ws = terminal(addr).await;
    ws.send(Message::Binary(
        b"stty size; echo mark-$((40+2))\n".to_vec().into(),
    ))
    .await
    .unwrap();
    let out = read_until(&mut ws, |s| s.contains("mark-42")).await;
    assert!(out.contains("24 80"), "{out}");
    ws.send(Message::Text(
        r#"{"type":"resize","cols":100,"rows":30}"#.into(),
    ))
    .await
    .unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    ws.send(Message::Binary(
        b"stty size; echo mark-$((40+3))\n".to_vec().into(),
    ))
    .await
    .unwrap();
    let out = read_until(&mut ws, |s| s.contains("mark-43")).await;
    assert!(out.contains("30 100"), "{out}");
    ws.send(Message::Binary(b"exit 3\n".to_vec().into()))
        .await
        .unwrap();
    let out = read_until(&mut ws, |s| s.contains("@@{")).await;
    assert!(
        out.contains(r#""type":"exit""#) && out.contains(r#""code":3"#),
        "{out}"
    );
}

#[tokio::test]
async fn no_shell_outlives_its_socket() {
    let addr = server().await;
    let mut ws = terminal(addr).await;
    // A child of the shell too: both must go.
    // `$((1+1))`: the echo of the typed line does not match, only the shell's output does.
    ws.send(Message::Binary(
        b"sleep 1000 & echo pids-$$-$!-$((1+1))end\n"
            .to_vec()
            .into(),
    ))
    .await
    .unwrap();
    let out = read_until(&mut ws, |s| s.contains("-2end")).await;
    let line = out
        .lines()
        .map(str::trim)
        .filter(|l| l.ends_with("-2end"))
        .find_map(|l| l.find("pids-").map(|i| &l[i..]))
        .unwrap_or_else(|| panic!("{out}"));
    let pids: Vec<i32> = line
        .trim_start_matches("pids-")
        .trim_end_matches("-2end")
        .split('-')
        .filter_map(|p| p.trim().parse().ok())
        .collect();
    assert_eq!(pids.len(), 2, "{line}");
    drop(ws);
    let alive = |p: i32| {
        std::fs::read_to_string(format!("/proc/{p}/stat"))
            .map(|s| !s.contains(") Z "))
            .unwrap_or(false)
    };
    let end = std::time::Instant::now() + Duration::from_secs(5);
    while pids.iter().any(|p| alive(*p)) && std::time::Instant::now() < end {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    for p in &pids {
        assert!(!alive(*p), "process {p} outlived its terminal");
    }
}
