//! `--metrics-addr`: Prometheus' text format at `/metrics`, served from the start until swarmd
//! stops. Each scrape reads the node as it is then: the process, its manager (while it runs
//! one) and its agent (while in a swarm).

use crate::docker::AgentSlot;
use crate::serve::ControlFront;
use anyhow::Context;
use bytes::Bytes;
use http_body_util::Full;
use hyper::header::{HeaderValue, CONTENT_TYPE};
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use shoal_proto::metrics::{self, Exposition};
use std::convert::Infallible;
use std::net::SocketAddr;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::{JoinHandle, JoinSet};
use tracing::{debug, info, warn};

/// What a scrape reads.
#[derive(Clone)]
pub struct Sources {
    /// The manager, through the control socket's front.
    pub front: ControlFront,
    /// The agent.
    pub agent: AgentSlot,
}

/// Binds `addr` and serves `/metrics` until `stop` turns true.
pub async fn start(
    addr: SocketAddr,
    sources: Sources,
    mut stop: watch::Receiver<bool>,
) -> anyhow::Result<JoinHandle<()>> {
    let listener = TcpListener::bind(addr)
        .await
        .with_context(|| format!("cannot listen on --metrics-addr {addr}"))?;
    info!(%addr, "serving metrics at /metrics");
    Ok(tokio::spawn(async move {
        let mut conns = JoinSet::new();
        loop {
            let accepted = tokio::select! {
                _ = stop.wait_for(|s| *s) => break,
                Some(_) = conns.join_next(), if !conns.is_empty() => continue,
                r = listener.accept() => r,
            };
            match accepted {
                Ok((stream, _)) => {
                    let sources = sources.clone();
                    conns.spawn(async move {
                        let svc =
                            hyper::service::service_fn(move |req| handle(sources.clone(), req));
                        if let Err(e) = hyper::server::conn::http1::Builder::new()
                            .serve_connection(TokioIo::new(stream), svc)
                            .await
                        {
                            debug!(error = %e, "metrics connection ended");
                        }
                    });
                }
                Err(e) => {
                    warn!(error = %e, "metrics: accept failed");
                    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                }
            }
        }
        conns.shutdown().await;
    }))
}

async fn handle(
    sources: Sources,
    req: Request<hyper::body::Incoming>,
) -> Result<Response<Full<Bytes>>, Infallible> {
    let reply = |status: StatusCode, body: String, ctype: &'static str| {
        let mut r = Response::new(Full::new(Bytes::from(body)));
        *r.status_mut() = status;
        r.headers_mut()
            .insert(CONTENT_TYPE, HeaderValue::from_static(ctype));
        r
    };
    if req.uri().path() != "/metrics" {
        return Ok(reply(
            StatusCode::NOT_FOUND,
            "metrics are at /metrics\n".into(),
            "text/plain",
        ));
    }
    if req.method() != Method::GET && req.method() != Method::HEAD {
        return Ok(reply(
            StatusCode::METHOD_NOT_ALLOWED,
            "GET /metrics\n".into(),
            "text/plain",
        ));
    }
    Ok(reply(
        StatusCode::OK,
        render(&sources).await,
        metrics::CONTENT_TYPE,
    ))
}

/// One page of every family this node has now.
pub async fn render(sources: &Sources) -> String {
    let mut e = Exposition::new();
    e.header(
        "shoal_build_info",
        "Always 1; the labels say which swarmd this is.",
        metrics::Kind::Gauge,
    );
    e.sample(
        "shoal_build_info",
        &[("version", env!("CARGO_PKG_VERSION"))],
        1.0,
    );
    let manager = sources.front.running_manager();
    e.gauge(
        "shoal_manager_running",
        "1 while this node runs a manager, else 0.",
        if manager.is_some() { 1.0 } else { 0.0 },
    );
    if let Some(m) = manager {
        shoal_manager::metrics::write(&m, &mut e);
    }
    if let Some(a) = sources.agent.get() {
        shoal_agent::metrics::write(&a, &mut e).await;
    }
    metrics::process::write(&mut e);
    e.finish()
}
