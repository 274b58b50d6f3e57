//! `swarmctl lab ui`: a Play-with-Docker-style page for one lab — a terminal into every node and
//! a live picture of nodes, overlay networks, balancers and tasks — served on loopback.
//!
//! Routes: `/` (the page) and `/assets/…` (compiled into the binary); `GET /api/lab` (a
//! snapshot, JSON; each service with `rate`, its balancers' new connections per second over
//! every node, from the nodes' `--metrics-addr`: see [`rates`]); `GET /api/events` (server-sent events: a new snapshot on every change);
//! `GET /ws/term/{node}` (a websocket: binary frames are PTY bytes both ways, text frames JSON
//! `{"type":"resize","cols","rows"}` in and `{"type":"exit","code"}` out). Each terminal runs
//! `swarmctl lab shell NODE` in a PTY: what users run there is what the tests run.
//!
//! `/?static=1` is the same page drawn once from `/api/lab`, without the event stream and
//! without terminals: an open `/api/events` keeps headless Chromium's virtual time from
//! advancing, so `--screenshot --virtual-time-budget=…` of the live page never ends (see
//! [`screenshot_help`]).
//!
//! The shell is root on the host, so the URL's token is a root credential: it is traded for an
//! HttpOnly, SameSite=Strict cookie at once; every request needs it; the `Host` header must name
//! the address served (DNS rebinding) and a websocket's `Origin` must be the page's own
//! (cross-site hijacking); no CORS; a strict Content-Security-Policy; caps on terminals and
//! message size. The token is kept in the lab directory (0600) so a restarted `lab ui` accepts
//! the open page's cookie.

pub mod pty;
pub mod rates;
pub mod snapshot;

#[cfg(test)]
mod tests;

use bytes::Bytes;
use futures_util::{SinkExt, StreamExt};
use http_body_util::{combinators::BoxBody, BodyExt, Full, StreamBody};
use hyper::body::{Frame, Incoming};
use hyper::header::{self, HeaderValue};
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use serde_json::Value;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::sync::{mpsc, watch};
use tokio_tungstenite::tungstenite::handshake::derive_accept_key;
use tokio_tungstenite::tungstenite::protocol::{Role, WebSocketConfig};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::WebSocketStream;
use tracing::{debug, warn};

/// The cookie that carries the token.
pub const COOKIE: &str = "shoal_lab";
/// At most this many terminals at once.
pub const MAX_TERMINALS: usize = 32;
/// Largest websocket message accepted.
pub const MAX_MESSAGE: usize = 64 * 1024;
/// How often the snapshot is taken for `/api/events`.
const POLL: Duration = Duration::from_millis(500);
const CSP: &str = "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
                   connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'";

type Body = BoxBody<Bytes, Infallible>;

/// Where snapshots come from, and what a terminal runs (the tests put fakes here).
pub trait Lab: Send + Sync + 'static {
    /// The current snapshot.
    fn snapshot(&self) -> futures_util::future::BoxFuture<'_, anyhow::Result<Value>>;
    /// The command line of a shell on `node`, or `None` when there is no such node.
    fn shell(&self, node: &str) -> Option<Vec<String>>;
}

/// The server's state.
pub struct Ui {
    lab: Arc<dyn Lab>,
    token: String,
    /// `Host` values accepted (the served address, and loopback names for it).
    hosts: Vec<String>,
    terminals: AtomicUsize,
    snapshots: watch::Receiver<Option<Value>>,
}

fn body(b: impl Into<Bytes>) -> Body {
    Full::new(b.into()).boxed()
}

fn plain(code: StatusCode, msg: &str) -> Response<Body> {
    let mut r = Response::new(body(format!("{msg}\n")));
    *r.status_mut() = code;
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    r
}

fn secure(mut r: Response<Body>) -> Response<Body> {
    let h = r.headers_mut();
    h.insert("content-security-policy", HeaderValue::from_static(CSP));
    h.insert(
        "x-content-type-options",
        HeaderValue::from_static("nosniff"),
    );
    h.insert("referrer-policy", HeaderValue::from_static("no-referrer"));
    h.insert("x-frame-options", HeaderValue::from_static("DENY"));
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    r
}

/// The page's files, compiled in.
fn asset(path: &str) -> Option<(&'static [u8], &'static str)> {
    Some(match path {
        "/" | "/index.html" => (
            include_bytes!("assets/index.html"),
            "text/html; charset=utf-8",
        ),
        "/assets/app.js" => (
            include_bytes!("assets/app.js"),
            "text/javascript; charset=utf-8",
        ),
        "/assets/app.css" => (include_bytes!("assets/app.css"), "text/css; charset=utf-8"),
        "/assets/vendor/xterm.js" => (
            include_bytes!("assets/vendor/xterm.js"),
            "text/javascript; charset=utf-8",
        ),
        "/assets/vendor/xterm.css" => (
            include_bytes!("assets/vendor/xterm.css"),
            "text/css; charset=utf-8",
        ),
        "/assets/vendor/addon-fit.js" => (
            include_bytes!("assets/vendor/addon-fit.js"),
            "text/javascript; charset=utf-8",
        ),
        _ => return None,
    })
}

/// The token in the request's cookie, if any.
fn cookie_token(req: &Request<Incoming>) -> Option<String> {
    req.headers()
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|kv| kv.trim().split_once('='))
        .find(|(k, _)| *k == COOKIE)
        .map(|(_, v)| v.to_string())
}

fn query_param(req: &Request<Incoming>, key: &str) -> Option<String> {
    req.uri()
        .query()?
        .split('&')
        .filter_map(|kv| kv.split_once('='))
        .find(|(k, _)| *k == key)
        .map(|(_, v)| v.to_string())
}

/// Compares without stopping at the first difference.
fn same(a: &str, b: &str) -> bool {
    a.len() == b.len()
        && a.bytes()
            .zip(b.bytes())
            .fold(0u8, |acc, (x, y)| acc | (x ^ y))
            == 0
}

impl Ui {
    /// A server for `lab` with `token`, answering `Host` values in `hosts`.
    pub fn new(lab: Arc<dyn Lab>, token: String, hosts: Vec<String>) -> Arc<Ui> {
        let (tx, rx) = watch::channel(None);
        let l = Arc::clone(&lab);
        tokio::spawn(async move {
            loop {
                match l.snapshot().await {
                    Ok(v) => {
                        tx.send_if_modified(|cur| {
                            let changed = cur.as_ref() != Some(&v);
                            *cur = Some(v);
                            changed
                        });
                    }
                    Err(e) => debug!("snapshot: {e:#}"),
                }
                if tx.is_closed() {
                    return;
                }
                tokio::time::sleep(POLL).await;
            }
        });
        Arc::new(Ui {
            lab,
            token,
            hosts,
            terminals: AtomicUsize::new(0),
            snapshots: rx,
        })
    }

    /// Serves `listener` until the process ends.
    pub async fn serve(self: Arc<Self>, listener: TcpListener) {
        loop {
            let Ok((tcp, _)) = listener.accept().await else {
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            };
            let ui = Arc::clone(&self);
            tokio::spawn(async move {
                let svc = hyper::service::service_fn(move |req| {
                    let ui = Arc::clone(&ui);
                    async move { Ok::<_, Infallible>(secure(ui.handle(req).await)) }
                });
                let conn = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(tcp), svc)
                    .with_upgrades();
                if let Err(e) = conn.await {
                    debug!("connection: {e}");
                }
            });
        }
    }

    async fn handle(self: Arc<Self>, req: Request<Incoming>) -> Response<Body> {
        // DNS rebinding: the Host must be the address served.
        let host = req
            .headers()
            .get(header::HOST)
            .and_then(|h| h.to_str().ok())
            .unwrap_or("")
            .to_string();
        if !self.hosts.contains(&host) {
            return plain(StatusCode::FORBIDDEN, "unexpected Host header");
        }
        if req.method() != Method::GET {
            return plain(StatusCode::METHOD_NOT_ALLOWED, "only GET");
        }
        let path = req.uri().path().to_string();
        // The URL's token: traded for the cookie, and out of the address bar at once. The
        // static view (`&static=1`, for screenshots) survives the trade; nothing else from
        // the query goes into `Location`.
        if path == "/" {
            if let Some(t) = query_param(&req, "token") {
                if !same(&t, &self.token) {
                    return plain(StatusCode::UNAUTHORIZED, "wrong token");
                }
                let to = if query_param(&req, "static").as_deref() == Some("1") {
                    "/?static=1"
                } else {
                    "/"
                };
                let mut r = plain(StatusCode::SEE_OTHER, "");
                let h = r.headers_mut();
                h.insert(header::LOCATION, HeaderValue::from_static(to));
                if let Ok(v) = HeaderValue::from_str(&format!(
                    "{COOKIE}={}; HttpOnly; SameSite=Strict; Path=/",
                    self.token
                )) {
                    h.insert(header::SET_COOKIE, v);
                }
                return r;
            }
        }
        if !cookie_token(&req).is_some_and(|t| same(&t, &self.token)) {
            return plain(
                StatusCode::UNAUTHORIZED,
                "open the address `swarmctl lab ui` printed (it carries the token)",
            );
        }
        if let Some(node) = path.strip_prefix("/ws/term/") {
            return self.terminal(req, &host, node.to_string());
        }
        match path.as_str() {
            "/api/lab" => match self.lab.snapshot().await {
                Ok(v) => json_response(&v),
                Err(e) => plain(StatusCode::SERVICE_UNAVAILABLE, &format!("{e:#}")),
            },
            "/api/events" => self.events(),
            p => match asset(p) {
                Some((bytes, ty)) => {
                    let mut r = Response::new(body(Bytes::from_static(bytes)));
                    r.headers_mut()
                        .insert(header::CONTENT_TYPE, HeaderValue::from_static(ty));
                    r
                }
                None => plain(StatusCode::NOT_FOUND, "not found"),
            },
        }
    }

    /// Server-sent events: the snapshot now, then each change.
    fn events(&self) -> Response<Body> {
        let mut rx = self.snapshots.clone();
        let (tx, out) = mpsc::channel::<Result<Frame<Bytes>, Infallible>>(4);
        tokio::spawn(async move {
            loop {
                let v = rx.borrow_and_update().clone();
                if let Some(v) = v {
                    let msg = format!("event: snapshot\ndata: {v}\n\n");
                    if tx.send(Ok(Frame::data(Bytes::from(msg)))).await.is_err() {
                        return;
                    }
                }
                tokio::select! {
                    r = rx.changed() => if r.is_err() { return },
                    // A comment now and then: proxies and the browser keep the stream open.
                    _ = tokio::time::sleep(Duration::from_secs(15)) => {
                        if tx.send(Ok(Frame::data(Bytes::from_static(b": keep-alive\n\n")))).await.is_err() {
                            return;
                        }
                    }
                }
            }
        });
        let mut r = Response::new(BodyExt::boxed(StreamBody::new(
            tokio_stream::wrappers::ReceiverStream::new(out),
        )));
        r.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("text/event-stream"),
        );
        r
    }

    /// `GET /ws/term/{node}`: a shell on `node` in a PTY, over a websocket.
    fn terminal(
        self: Arc<Self>,
        req: Request<Incoming>,
        host: &str,
        node: String,
    ) -> Response<Body> {
        let origin = req
            .headers()
            .get(header::ORIGIN)
            .and_then(|o| o.to_str().ok());
        if origin != Some(format!("http://{host}").as_str()) {
            return plain(StatusCode::FORBIDDEN, "cross-origin websocket refused");
        }
        let is_ws = req
            .headers()
            .get(header::UPGRADE)
            .and_then(|u| u.to_str().ok())
            .is_some_and(|u| u.eq_ignore_ascii_case("websocket"));
        let Some(key) = req.headers().get("sec-websocket-key").cloned() else {
            return plain(StatusCode::BAD_REQUEST, "a websocket is expected");
        };
        if !is_ws {
            return plain(StatusCode::BAD_REQUEST, "a websocket is expected");
        }
        let Some(argv) = self.lab.shell(&node) else {
            return plain(StatusCode::NOT_FOUND, "no such node in this lab");
        };
        if self.terminals.fetch_add(1, Ordering::SeqCst) >= MAX_TERMINALS {
            self.terminals.fetch_sub(1, Ordering::SeqCst);
            return plain(StatusCode::TOO_MANY_REQUESTS, "too many terminals open");
        }
        let cols = query_param(&req, "cols")
            .and_then(|c| c.parse().ok())
            .unwrap_or(80);
        let rows = query_param(&req, "rows")
            .and_then(|c| c.parse().ok())
            .unwrap_or(24);
        let ui = Arc::clone(&self);
        tokio::spawn(async move {
            match hyper::upgrade::on(req).await {
                Ok(up) => {
                    let mut cfg = WebSocketConfig::default();
                    cfg.max_message_size = Some(MAX_MESSAGE);
                    cfg.max_frame_size = Some(MAX_MESSAGE);
                    let ws =
                        WebSocketStream::from_raw_socket(TokioIo::new(up), Role::Server, Some(cfg))
                            .await;
                    if let Err(e) = session(ws, &argv, cols, rows).await {
                        debug!(node, "terminal: {e:#}");
                    }
                }
                Err(e) => warn!("websocket upgrade: {e}"),
            }
            ui.terminals.fetch_sub(1, Ordering::SeqCst);
        });
        let mut r = plain(StatusCode::SWITCHING_PROTOCOLS, "");
        *r.body_mut() = body(Bytes::new());
        let h = r.headers_mut();
        h.remove(header::CONTENT_TYPE);
        h.insert(header::UPGRADE, HeaderValue::from_static("websocket"));
        h.insert(header::CONNECTION, HeaderValue::from_static("Upgrade"));
        if let Ok(v) = HeaderValue::from_str(&derive_accept_key(key.as_bytes())) {
            h.insert("sec-websocket-accept", v);
        }
        r
    }
}

fn json_response(v: &Value) -> Response<Body> {
    let mut r = Response::new(body(v.to_string()));
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    r
}

/// Bytes both ways between the websocket and a new PTY running `argv`, until either ends; the
/// PTY's processes end with it (see [`pty::Pty`]'s drop).
async fn session<S>(
    ws: WebSocketStream<S>,
    argv: &[String],
    cols: u16,
    rows: u16,
) -> anyhow::Result<()>
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    let (mut pty, mut out) = pty::Pty::spawn(argv, cols, rows)?;
    let (mut sink, mut stream) = ws.split();
    loop {
        tokio::select! {
            o = out.recv() => match o {
                Some(pty::Out::Data(d)) => sink.send(Message::Binary(d.into())).await?,
                Some(pty::Out::Exit(code)) => {
                    let msg = serde_json::json!({"type": "exit", "code": code}).to_string();
                    let _ = sink.send(Message::Text(msg.into())).await;
                    let _ = sink.close().await;
                    return Ok(());
                }
                None => return Ok(()),
            },
            m = stream.next() => match m {
                Some(Ok(Message::Binary(b))) => pty.write(&b)?,
                Some(Ok(Message::Text(t))) => {
                    let v: Value = serde_json::from_str(&t).unwrap_or_default();
                    if v["type"] == "resize" {
                        let c = v["cols"].as_u64().unwrap_or(80).min(1000) as u16;
                        let r = v["rows"].as_u64().unwrap_or(24).min(1000) as u16;
                        if let Err(e) = pty.resize(c, r) {
                            debug!("resize: {e}");
                        }
                    }
                }
                Some(Ok(Message::Close(_))) | None | Some(Err(_)) => return Ok(()),
                Some(Ok(_)) => {}
            },
        }
    }
}

/// The lab behind a running `lab ui`: snapshots from its managers with request rates from its
/// nodes' metrics ([`rates`]), shells by `swarmctl lab shell`.
pub struct RealLab {
    dir: crate::lab::state::LabDir,
    swarmctl: PathBuf,
    rates: tokio::sync::Mutex<rates::Tracker>,
}

impl Lab for RealLab {
    fn snapshot(&self) -> futures_util::future::BoxFuture<'_, anyhow::Result<Value>> {
        Box::pin(async move {
            let file = self
                .dir
                .load()?
                .ok_or_else(|| anyhow::anyhow!("the lab is gone"))?;
            let mut v = snapshot::take(&self.dir, &file).await?;
            rates::sample(&file, &self.rates).await;
            rates::attach(&mut v, self.rates.lock().await.shown());
            Ok(v)
        })
    }

    fn shell(&self, node: &str) -> Option<Vec<String>> {
        let file = self.dir.load().ok()??;
        file.node(node)?;
        Some(vec![
            self.swarmctl.display().to_string(),
            "lab".into(),
            "shell".into(),
            node.into(),
            "--name".into(),
            file.name.clone(),
        ])
    }
}

/// The lab's UI token, made on first use and kept (0600) so a restarted `lab ui` accepts the
/// cookie of an open page.
pub fn token(dir: &crate::lab::state::LabDir) -> anyhow::Result<String> {
    use std::os::unix::fs::OpenOptionsExt;
    let path = dir.dir.join("ui-token");
    if let Ok(t) = std::fs::read_to_string(&path) {
        let t = t.trim().to_string();
        if t.len() >= 32 {
            return Ok(t);
        }
    }
    let t: String = (0..32)
        .map(|_| format!("{:x}", rand::random::<u8>() & 15))
        .collect();
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&path)?;
    std::io::Write::write_all(&mut f, t.as_bytes())?;
    Ok(t)
}

/// Where a running `lab ui` of lab `name` keeps its pid (outside the lab directory, which `lab
/// down` removes).
pub fn pid_path(name: &str) -> PathBuf {
    crate::lab::state::root().join(format!(".ui-{name}.pid"))
}

/// Stops the `lab ui` of lab `name`, if one runs: by the pid it recorded, once its command line
/// says it is that lab's `swarmctl lab ui`. Its terminals go with it.
pub fn stop(name: &str) {
    let path = pid_path(name);
    let Some(pid) = std::fs::read_to_string(&path)
        .ok()
        .and_then(|s| s.trim().parse::<i32>().ok())
    else {
        return;
    };
    let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
    let args: Vec<&[u8]> = cmdline.split(|b| *b == 0).collect();
    let ours = args
        .windows(2)
        .any(|w| w == [b"lab".as_slice(), b"ui".as_slice()])
        && args
            .windows(2)
            .any(|w| w == [b"--name".as_slice(), name.as_bytes()]);
    if ours {
        let _ = nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(pid),
            nix::sys::signal::Signal::SIGTERM,
        );
    }
    let _ = std::fs::remove_file(&path);
}

/// What `lab ui` prints under the page's address `url` (the one with the token): how to take a
/// picture of the lab with headless Chromium. The static view draws one snapshot and opens no
/// event stream, so the capture ends once `--virtual-time-budget` has run out.
pub fn screenshot_help(url: &str) -> String {
    format!(
        "A picture of the lab (one snapshot, no terminals; --no-sandbox as root):\n  \
         chromium --headless --no-sandbox --disable-gpu --window-size=1400,900 \
         --virtual-time-budget=5000 --screenshot=lab.png '{url}&static=1'"
    )
}

/// `swarmctl lab ui`: serves `dir`'s lab on `listen` until Ctrl-C (or the lab goes).
pub async fn run(
    dir: crate::lab::state::LabDir,
    listen: SocketAddr,
    allow_remote: bool,
) -> anyhow::Result<()> {
    if !listen.ip().is_loopback() && !allow_remote {
        anyhow::bail!(
            "--listen {listen} is not a loopback address: the terminals are root shells on this host; \
             pass --allow-remote to serve it anyway"
        );
    }
    let file = dir
        .load()?
        .ok_or_else(|| anyhow::anyhow!("no lab {:?}: run `swarmctl lab up` first", dir.name))?;
    let listener = TcpListener::bind(listen)
        .await
        .map_err(|e| anyhow::anyhow!("cannot listen on {listen}: {e}"))?;
    let addr = listener.local_addr()?;
    let token = token(&dir)?;
    let mut hosts = vec![addr.to_string()];
    if addr.ip().is_loopback() {
        hosts.push(format!("localhost:{}", addr.port()));
    }
    let swarmctl = std::env::current_exe()?;
    let lab: Arc<dyn Lab> = Arc::new(RealLab {
        dir,
        swarmctl,
        rates: Default::default(),
    });
    let ui = Ui::new(lab, token.clone(), hosts);
    // `lab down` stops this process (by this pid, after checking its command line).
    let pid_file = pid_path(&file.name);
    std::fs::write(&pid_file, std::process::id().to_string())?;
    let url = format!("http://{addr}/?token={token}");
    println!("Lab {:?}: {url}", file.name);
    println!("(the page's terminals are root shells on this host: keep the address to yourself)");
    println!("{}", screenshot_help(&url));
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    tokio::select! {
        _ = ui.serve(listener) => {}
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
    let _ = std::fs::remove_file(&pid_file);
    Ok(())
}
