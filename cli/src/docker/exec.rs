//! `docker exec`: Docker's exec instances over Shoal's task relay (Control `ExecStream`, which
//! reaches the task wherever it runs, through the leader and the node's agent).
//!
//! * `POST /containers/{id}/exec` checks the container (a running task, found anywhere in the
//!   cluster) and the config, and keeps an exec instance (not started) under a new id;
//! * `POST /exec/{id}/start` with `Upgrade: tcp` is hijacked ([`hijack`]): `101 Switching
//!   Protocols`, then the raw connection carries stdin in, and out the program's output, raw
//!   with a terminal, in Docker's multiplexed frames without; the connection closes when the
//!   program exits. `{"Detach": true}` starts it with no connection (its output is dropped);
//! * `POST /exec/{id}/resize?h=&w=` resizes its terminal;
//! * `GET /exec/{id}/json` says whether it runs and its exit code (what `docker exec` exits
//!   with).
//!
//! Instances live in this process ([`Execs`]); ended ones are forgotten after
//! [`KEEP_ENDED`]. The sessions are tasks of [`Execs`]' own set, ended with the API.

use super::api::{Api, Body, Reply};
use super::route::query_get;
use super::ApiError;
use bytes::Bytes;
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt as _, Empty};
use hyper::header::{HeaderValue, CONNECTION, CONTENT_TYPE, UPGRADE};
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use serde_json::{json, Value};
use shoal_proto::pb::{self, control_client::ControlClient};
use std::collections::HashMap;
use std::convert::Infallible;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::io::{AsyncRead, AsyncReadExt as _, AsyncWrite, AsyncWriteExt as _};
use tokio::sync::mpsc;
use tokio::task::JoinSet;
use tokio_stream::wrappers::ReceiverStream;
use tonic::transport::Channel;
use tracing::{debug, info_span, Instrument as _};

/// How long an ended exec instance can still be inspected.
pub const KEEP_ENDED: Duration = Duration::from_secs(300);

/// Messages in flight to the relay.
const INPUTS: usize = 16;

/// What `docker exec` asked for (`POST /containers/{id}/exec`).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ExecConfig {
    /// The command.
    pub cmd: Vec<String>,
    /// Stream stdin.
    pub stdin: bool,
    /// Send stdout.
    pub stdout: bool,
    /// Send stderr.
    pub stderr: bool,
    /// A pseudo-terminal.
    pub tty: bool,
}

/// Reads an exec config, refusing what the relay cannot do with a 400 that names the field.
pub fn parse_config(v: &Value) -> Result<ExecConfig, ApiError> {
    let flag = |k: &str| v.get(k).and_then(Value::as_bool).unwrap_or(false);
    let unsupported =
        |k: &str| ApiError::bad_request(format!("{k} is not supported by Shoal's docker exec"));
    if flag("Privileged") {
        return Err(unsupported("Privileged"));
    }
    for k in ["Env", "User", "WorkingDir"] {
        let set = match v.get(k) {
            None | Some(Value::Null) => false,
            Some(Value::String(s)) => !s.is_empty(),
            Some(Value::Array(a)) => !a.is_empty(),
            Some(_) => true,
        };
        if set {
            return Err(unsupported(k));
        }
    }
    let cmd: Vec<String> = match v.get("Cmd") {
        Some(Value::Array(a)) => a
            .iter()
            .map(|x| {
                x.as_str()
                    .map(str::to_string)
                    .ok_or_else(|| ApiError::bad_request("Cmd must be a list of strings"))
            })
            .collect::<Result<_, _>>()?,
        Some(Value::String(s)) if !s.is_empty() => vec![s.clone()],
        _ => Vec::new(),
    };
    if cmd.is_empty() {
        return Err(ApiError::bad_request("No exec command specified"));
    }
    Ok(ExecConfig {
        cmd,
        stdin: flag("AttachStdin"),
        stdout: flag("AttachStdout"),
        stderr: flag("AttachStderr"),
        tty: flag("Tty"),
    })
}

/// One exec instance.
#[derive(Debug)]
struct Exec {
    /// The task (container) id.
    container: String,
    config: ExecConfig,
    started: bool,
    running: bool,
    exit_code: Option<i32>,
    /// Its session's inputs while it runs (for resizes).
    inputs: Option<mpsc::Sender<pb::ExecInput>>,
    /// A size given before it started.
    size: Option<pb::TermSize>,
    ended: Option<Instant>,
}

/// The exec instances of one API, and their sessions.
#[derive(Debug, Default)]
pub struct Execs {
    table: Mutex<HashMap<String, Exec>>,
    sessions: Mutex<JoinSet<()>>,
}

impl Execs {
    fn table(&self) -> std::sync::MutexGuard<'_, HashMap<String, Exec>> {
        self.table.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn spawn(&self, f: impl std::future::Future<Output = ()> + Send + 'static) {
        let mut s = self.sessions.lock().unwrap_or_else(|e| e.into_inner());
        while s.try_join_next().is_some() {}
        s.spawn(f);
    }

    /// Marks `id` started (once), returning what to run.
    fn start(&self, id: &str) -> Result<(String, ExecConfig, Option<pb::TermSize>), ApiError> {
        let mut t = self.table();
        let e = t.get_mut(id).ok_or_else(|| no_such_exec(id))?;
        if e.started {
            return Err(ApiError {
                status: 409,
                message: format!("Error: Exec command {id} is already running"),
            });
        }
        e.started = true;
        e.running = true;
        Ok((e.container.clone(), e.config.clone(), e.size))
    }

    fn set_inputs(&self, id: &str, tx: mpsc::Sender<pb::ExecInput>) {
        if let Some(e) = self.table().get_mut(id) {
            e.inputs = Some(tx);
        }
    }

    fn ended(&self, id: &str, code: i32) {
        if let Some(e) = self.table().get_mut(id) {
            e.running = false;
            e.exit_code = Some(code);
            e.inputs = None;
            e.ended = Some(Instant::now());
        }
    }
}

/// `No such exec instance: ID` (404), dockerd's words.
pub fn no_such_exec(id: &str) -> ApiError {
    ApiError::not_found(format!("No such exec instance: {id}"))
}

/// A new exec id: 64 hex digits, as dockerd's.
fn new_id() -> String {
    rand::random::<[u8; 32]>()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// One frame of Docker's multiplexed stream: `[stream, 0, 0, 0, len (u32 BE)]` + data
/// (stream 1: stdout, 2: stderr).
pub fn mux_frame(stream: u8, data: &[u8]) -> Vec<u8> {
    let mut f = Vec::with_capacity(8 + data.len());
    f.extend_from_slice(&[stream, 0, 0, 0]);
    f.extend_from_slice(&(data.len() as u32).to_be_bytes());
    f.extend_from_slice(data);
    f
}

impl Api {
    /// `POST /containers/{id}/exec`.
    pub(super) async fn exec_create(
        &self,
        container: &str,
        body: &[u8],
    ) -> Result<Reply, ApiError> {
        let v = super::api::json_body(body)?;
        let config = parse_config(&v)?;
        // The relay is the managers': a worker's socket cannot exec.
        drop(self.control().await?);
        let t = self.find_container(container).await?;
        if super::types::container::state(&t) != "running" {
            return Err(ApiError {
                status: 409,
                message: format!("Container {} is not running", t.id),
            });
        }
        let id = new_id();
        let mut table = self.execs.table();
        table.retain(|_, e| e.ended.is_none_or(|at| at.elapsed() < KEEP_ENDED));
        table.insert(
            id.clone(),
            Exec {
                container: t.id,
                config,
                started: false,
                running: false,
                exit_code: None,
                inputs: None,
                size: None,
                ended: None,
            },
        );
        Ok(Reply {
            status: 201,
            body: Body::Json(json!({ "Id": id })),
        })
    }

    /// `GET /exec/{id}/json`.
    pub(super) fn exec_inspect(&self, id: &str) -> Result<Value, ApiError> {
        let t = self.execs.table();
        let e = t.get(id).ok_or_else(|| no_such_exec(id))?;
        let (entry, args) = e
            .config
            .cmd
            .split_first()
            .map(|(a, b)| (a.clone(), b.to_vec()))
            .unwrap_or_default();
        Ok(json!({
            "ID": id,
            "Running": e.running,
            "ExitCode": e.exit_code,
            "ProcessConfig": {
                "tty": e.config.tty,
                "entrypoint": entry,
                "arguments": args,
                "privileged": false,
                "user": "",
            },
            "OpenStdin": e.config.stdin,
            "OpenStderr": e.config.stderr,
            "OpenStdout": e.config.stdout,
            "CanRemove": false,
            "ContainerID": e.container,
            "DetachKeys": "",
            "Pid": 0,
        }))
    }

    /// `POST /exec/{id}/resize?h=&w=`.
    pub(super) fn exec_resize(&self, id: &str, query: &str) -> Result<Reply, ApiError> {
        let dim = |k: &str| {
            query_get(query, k)
                .unwrap_or_default()
                .parse::<u32>()
                .map_err(|_| ApiError::bad_request(format!("invalid value for {k}")))
        };
        let size = pb::TermSize {
            rows: dim("h")?,
            cols: dim("w")?,
        };
        let mut t = self.execs.table();
        let e = t.get_mut(id).ok_or_else(|| no_such_exec(id))?;
        match &e.inputs {
            Some(tx) => {
                let _ = tx.try_send(pb::ExecInput {
                    resize: Some(size),
                    ..Default::default()
                });
            }
            None => e.size = Some(size),
        }
        Ok(Reply {
            status: 200,
            body: Body::Empty,
        })
    }

    /// `POST /exec/{id}/start` without a hijack: `{"Detach": true}` runs it in the background
    /// (output dropped); attaching needs `Upgrade: tcp` (see [`hijack`]).
    pub(super) async fn exec_start(&self, id: &str, body: &[u8]) -> Result<Reply, ApiError> {
        let detach = super::api::json_body(body)
            .ok()
            .and_then(|v| v.get("Detach").and_then(Value::as_bool))
            .unwrap_or(false);
        if !detach {
            return Err(ApiError::bad_request(
                "attaching to an exec needs the connection upgraded (Upgrade: tcp)",
            ));
        }
        let client = self.control().await?;
        let (task, mut config, size) = self.execs.start(id)?;
        config.stdin = false;
        let execs = self.execs.clone();
        let id = id.to_string();
        let span = info_span!("docker exec", exec.id = %id, task.id = %task);
        self.execs.spawn(
            async move {
                let sink = tokio::io::sink();
                let empty = tokio::io::empty();
                run(client, &execs, &id, task, config, size, empty, sink).await;
            }
            .instrument(span),
        );
        Ok(Reply {
            status: 200,
            body: Body::Empty,
        })
    }
}

/// The exec id of a request to hijack: `POST /[vX/]exec/{id}/start` asking `Upgrade: tcp`.
pub fn hijack_id<B>(req: &Request<B>) -> Option<String> {
    let wants = req
        .headers()
        .get(UPGRADE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.eq_ignore_ascii_case("tcp"));
    if !wants {
        return None;
    }
    match super::route::route(req.method(), req.uri().path()) {
        Ok(super::route::Route::ExecStart(id)) => Some(id),
        _ => None,
    }
}

type Resp = Response<BoxBody<Bytes, Infallible>>;

/// Answers an exec start asking `Upgrade: tcp`: checks, `101 Switching Protocols`, then the
/// session on the upgraded connection (a task of [`Execs`]). A refusal is a plain HTTP error
/// (the CLI prints `unable to upgrade to tcp, received …`).
pub async fn hijack(api: Arc<Api>, id: String, mut req: Request<hyper::body::Incoming>) -> Resp {
    let on_upgrade = hyper::upgrade::on(&mut req);
    let method = req.method().clone();
    // The body (`{"Detach":false,"Tty":…}`) says nothing the exec's config does not.
    let _ = req.into_body().collect().await;
    let started = async {
        let client = api.control().await?;
        let (task, config, size) = api.execs.start(&id)?;
        Ok::<_, ApiError>((client, task, config, size))
    };
    let (client, task, config, size) = match started.await {
        Ok(s) => s,
        Err(e) => return super::server::response(&method, Reply::error(&e)),
    };
    let execs = api.execs.clone();
    let span = info_span!("docker exec", exec.id = %id, task.id = %task);
    let exec_id = id.clone();
    api.execs.spawn(
        async move {
            let io = match on_upgrade.await {
                Ok(u) => TokioIo::new(u),
                Err(e) => {
                    debug!(error = %e, "exec: the connection was not upgraded");
                    execs.ended(&exec_id, 126);
                    return;
                }
            };
            let (rd, wr) = tokio::io::split(io);
            run(client, &execs, &exec_id, task, config, size, rd, wr).await;
        }
        .instrument(span),
    );
    let mut resp = Response::new(Empty::new().boxed());
    *resp.status_mut() = StatusCode::SWITCHING_PROTOCOLS;
    let h = resp.headers_mut();
    h.insert(
        CONTENT_TYPE,
        HeaderValue::from_static("application/vnd.docker.raw-stream"),
    );
    h.insert(CONNECTION, HeaderValue::from_static("Upgrade"));
    h.insert(UPGRADE, HeaderValue::from_static("tcp"));
    resp
}

/// Runs one exec over the relay: `rd` as its stdin (when attached), its output to `wr`; the
/// exit code kept in `execs` before `wr` is closed (the CLI asks for it once the stream ends).
#[allow(clippy::too_many_arguments)]
async fn run(
    mut client: ControlClient<Channel>,
    execs: &Execs,
    id: &str,
    task: String,
    config: ExecConfig,
    size: Option<pb::TermSize>,
    mut rd: impl AsyncRead + Unpin + Send + 'static,
    mut wr: impl AsyncWrite + Unpin,
) {
    let (tx, rx) = mpsc::channel(INPUTS);
    let start = pb::ExecStart {
        task,
        cmd: config.cmd.clone(),
        tty: config.tty,
        stdin: config.stdin,
        size,
    };
    let _ = tx
        .send(pb::ExecInput {
            start: Some(start),
            ..Default::default()
        })
        .await;
    execs.set_inputs(id, tx.clone());
    // Stdin: chunks as they come, then its end (the client's half-close). The task ends with
    // the session (aborted on drop).
    let stdin = config.stdin.then(|| {
        let tx = tx.clone();
        tokio::spawn(async move {
            let mut buf = vec![0u8; 8 * 1024];
            loop {
                let msg = match rd.read(&mut buf).await {
                    Ok(0) | Err(_) => pb::ExecInput {
                        close_stdin: true,
                        ..Default::default()
                    },
                    Ok(n) => pb::ExecInput {
                        stdin: buf[..n].to_vec(),
                        ..Default::default()
                    },
                };
                let last = msg.close_stdin;
                if tx.send(msg).await.is_err() || last {
                    return;
                }
            }
        })
    });
    let _stdin = stdin.map(AbortOnDrop);
    // Holding `tx` keeps the request stream open after stdin's end: the stream ending means
    // that the client left.
    let code = match client.exec_stream(ReceiverStream::new(rx)).await {
        Ok(out) => relay_output(out.into_inner(), &config, &mut wr).await,
        Err(s) => Err(s.message().to_string()),
    };
    let code = match code {
        Ok(c) => c,
        Err(msg) => {
            // dockerd writes a failed start into the stream, and the exec's code is 126.
            let line = format!("{msg}\r\n");
            let data = if config.tty {
                line.into_bytes()
            } else {
                mux_frame(1, line.as_bytes())
            };
            let _ = wr.write_all(&data).await;
            126
        }
    };
    drop(tx);
    execs.ended(id, code);
    let _ = wr.flush().await;
    let _ = wr.shutdown().await;
}

/// Copies the relay's output to `wr` until the program's exit code (`Ok`) or an error
/// (`Err(message)`). A client that went away ends it (and so the program).
async fn relay_output(
    mut out: tonic::Streaming<pb::ExecOutput>,
    config: &ExecConfig,
    wr: &mut (impl AsyncWrite + Unpin),
) -> Result<i32, String> {
    loop {
        let o = match out.message().await {
            Ok(Some(o)) => o,
            Ok(None) => return Err("the exec session ended without an exit code".into()),
            Err(s) => return Err(s.message().to_string()),
        };
        for (stream, data, wanted) in [
            (1u8, &o.stdout, config.stdout),
            (2, &o.stderr, config.stderr),
        ] {
            if data.is_empty() || !wanted {
                continue;
            }
            let r = if config.tty {
                wr.write_all(data).await
            } else {
                wr.write_all(&mux_frame(stream, data)).await
            };
            if r.is_err() || wr.flush().await.is_err() {
                return Err("the client went away".into());
            }
        }
        if !o.error.is_empty() {
            return Err(o.error);
        }
        if o.exited {
            return Ok(o.exit_code);
        }
    }
}

struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}
