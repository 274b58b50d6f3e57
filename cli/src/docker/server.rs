//! The socket: `--docker-host unix://PATH` parsed, bound (0600; a stale socket left by a crash
//! replaced, a live one or any other file refused), served over HTTP/1.1 until stopped, then
//! removed.

use super::api::{Api, Body, Reply};
use crate::BadInput;
use bytes::Bytes;
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt as _, Full, StreamBody};
use hyper::header::{HeaderValue, CONTENT_TYPE};
use hyper::{Method, Request, Response};
use hyper_util::rt::TokioIo;
use std::convert::Infallible;
use std::os::unix::fs::{FileTypeExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use tokio::net::UnixListener;
use tokio::sync::watch;
use tokio::task::JoinSet;
use tracing::{debug, info, warn};

/// The socket path of a `--docker-host` value: `unix://PATH` (a relative PATH is taken from
/// swarmd's working directory, as a lab's nodes run in their state dirs).
pub fn parse_host(s: &str) -> Result<PathBuf, BadInput> {
    match s.strip_prefix("unix://") {
        Some(p) if !p.is_empty() => Ok(PathBuf::from(p)),
        _ => Err(format!(
            "invalid --docker-host {s:?}: expected unix:///path/docker.sock (only unix sockets are served)"
        )
        .into()),
    }
}

/// Binds `path` (0600). A socket file nobody answers on (left by a crash) is replaced; a socket
/// something answers on, or a file of another kind, is refused.
pub async fn bind(path: &Path) -> anyhow::Result<UnixListener> {
    if let Ok(md) = std::fs::symlink_metadata(path) {
        if !md.file_type().is_socket() {
            anyhow::bail!(
                "--docker-host {}: a file that is not a socket is in the way",
                path.display()
            );
        }
        if tokio::net::UnixStream::connect(path).await.is_ok() {
            anyhow::bail!(
                "--docker-host {}: another process serves this socket (a dockerd?)",
                path.display()
            );
        }
        std::fs::remove_file(path)?;
    }
    let l = UnixListener::bind(path)
        .map_err(|e| anyhow::anyhow!("cannot create --docker-host {}: {e}", path.display()))?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))?;
    Ok(l)
}

/// The HTTP response of a [`Reply`], with the headers dockerd puts on every answer.
pub fn response(method: &Method, r: Reply) -> Response<BoxBody<Bytes, Infallible>> {
    let stream_type = if matches!(r.body, Body::Stream(_)) {
        "application/vnd.docker.raw-stream"
    } else {
        "application/json"
    };
    let (ctype, body) = match r.body {
        Body::Stream(s) | Body::JsonStream(s) => {
            use tokio_stream::StreamExt as _;
            let ctype = stream_type;
            let frames = tokio_stream::wrappers::ReceiverStream::new(s.0)
                .map(|b| Ok::<_, Infallible>(hyper::body::Frame::data(b)));
            let mut resp = Response::new(StreamBody::new(frames).boxed());
            headers(&mut resp, ctype);
            return resp;
        }
        Body::Json(v) => {
            let mut b = serde_json::to_vec(&v).unwrap_or_default();
            b.push(b'\n');
            ("application/json", Bytes::from(b))
        }
        Body::Ok => ("text/plain; charset=utf-8", Bytes::from_static(b"OK")),
        Body::Empty => ("text/plain; charset=utf-8", Bytes::new()),
    };
    let body = if method == Method::HEAD {
        Bytes::new()
    } else {
        body
    };
    let mut resp = Response::new(Full::new(body).boxed());
    *resp.status_mut() =
        hyper::StatusCode::from_u16(r.status).unwrap_or(hyper::StatusCode::INTERNAL_SERVER_ERROR);
    headers(&mut resp, ctype);
    resp
}

/// The headers dockerd puts on every answer.
fn headers<B>(resp: &mut Response<B>, ctype: &'static str) {
    let h = resp.headers_mut();
    h.insert(CONTENT_TYPE, HeaderValue::from_static(ctype));
    h.insert("api-version", HeaderValue::from_static(super::API_VERSION));
    h.insert("docker-experimental", HeaderValue::from_static("false"));
    h.insert("ostype", HeaderValue::from_static("linux"));
    if let Ok(v) = HeaderValue::from_str(&format!("Shoal/{} (linux)", super::ENGINE_VERSION)) {
        h.insert("server", v);
    }
    h.insert(
        "cache-control",
        HeaderValue::from_static("no-cache, no-store, must-revalidate"),
    );
}

/// The largest request body read (a service spec is a few kilobytes).
const MAX_BODY: usize = 4 << 20;

async fn handle(
    api: Arc<Api>,
    req: Request<hyper::body::Incoming>,
) -> Result<Response<BoxBody<Bytes, Infallible>>, Infallible> {
    if let Some(id) = super::exec::hijack_id(&req) {
        return Ok(super::exec::hijack(api, id, req).await);
    }
    let method = req.method().clone();
    let path = req.uri().path().to_string();
    let query = req.uri().query().unwrap_or("").to_string();
    let body = http_body_util::Limited::new(req.into_body(), MAX_BODY)
        .collect()
        .await;
    let reply = match body {
        Ok(b) => api.answer_with(&method, &path, &query, &b.to_bytes()).await,
        Err(e) => Reply::error(&super::ApiError::bad_request(format!(
            "cannot read the request body (at most {MAX_BODY} bytes): {e}"
        ))),
    };
    debug!(%method, %path, %query, status = reply.status, "docker api");
    Ok(response(&method, reply))
}

/// Resolves once `stop` is true (or its sender is gone).
async fn stopped(stop: &mut watch::Receiver<bool>) {
    let _ = stop.wait_for(|s| *s).await;
}

/// Serves `api` on `listener` until `stop` turns true, then removes the socket at `path`.
/// Each connection is a task of this loop's own, ended with it.
pub async fn serve(
    listener: UnixListener,
    path: PathBuf,
    api: Arc<Api>,
    mut stop: watch::Receiver<bool>,
) {
    info!(socket = %path.display(), "serving the Docker Engine API");
    let mut conns = JoinSet::new();
    loop {
        tokio::select! {
            _ = stopped(&mut stop) => break,
            Some(_) = conns.join_next(), if !conns.is_empty() => {}
            r = listener.accept() => match r {
                Ok((stream, _)) => {
                    let api = api.clone();
                    conns.spawn(async move {
                        let svc = hyper::service::service_fn(move |req| handle(api.clone(), req));
                        if let Err(e) = hyper::server::conn::http1::Builder::new()
                            .serve_connection(TokioIo::new(stream), svc)
                            .with_upgrades()
                            .await
                        {
                            debug!(error = %e, "docker api connection ended");
                        }
                    });
                }
                Err(e) => {
                    warn!(error = %e, "docker api: accept failed");
                    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                }
            },
        }
    }
    conns.shutdown().await;
    let _ = std::fs::remove_file(&path);
}
