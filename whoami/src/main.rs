//! `whoami`: the demo server Shoal's tasks run, like the image the Docker networking article uses.
//!
//! HTTP/1.1 on TCP and a one-line answer on UDP, both on the same port:
//! - `GET /health` → `ok`; `GET /name` → the name alone (handy for round-robin tests);
//! - any other path → who answered (name, arch, interface addresses) and an echo of the request;
//! - any UDP datagram → `I'm <name>\n`.
//!
//! One log line per request on stdout (`<peer> <method> <path>`); SIGTERM/SIGINT exit 0.
#![forbid(unsafe_code)]

use anyhow::Context;
use clap::Parser;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;
use tokio::io::AsyncWriteExt;
use tokio::net::{TcpListener, TcpStream, UdpSocket};
use tokio::signal::unix::{signal, SignalKind};
use tokio::time::timeout;

mod addrs;
mod http;
#[cfg(test)]
mod tests;

use addrs::{go_arch, hostname, local_addrs};
use http::{parse_request, read_head, response, Request};

/// Largest request head (request line and headers) accepted; a bigger one gets a 400.
const MAX_HEAD: usize = 16 * 1024;
/// Time a client has to send a request head (also the keep-alive idle limit) or to take a response.
const IO_TIMEOUT: Duration = Duration::from_secs(10);
/// How long a closing connection drains what the client still sends.
const LINGER: Duration = Duration::from_secs(1);

#[derive(Parser, Debug)]
#[command(
    name = "whoami",
    about = "Demo server that says who answered, over HTTP and UDP"
)]
struct Args {
    /// TCP and UDP port; 0 picks a free one. The first stdout line reports the address.
    #[arg(long, env = "PORT", default_value_t = 8080)]
    port: u16,
    /// IP address to bind; the port comes from --port.
    #[arg(long, default_value = "0.0.0.0")]
    listen: IpAddr,
    /// Name to report instead of the hostname.
    #[arg(long)]
    name: Option<String>,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    // Handlers first: whoever saw the "listening" line may signal us right away.
    let mut term = signal(SignalKind::terminate()).context("cannot handle SIGTERM")?;
    let mut int = signal(SignalKind::interrupt()).context("cannot handle SIGINT")?;
    let name: Arc<str> = args.name.unwrap_or_else(hostname).into();
    let (tcp, udp) = bind(args.listen, args.port).await?;
    println!("listening on {} (tcp+udp) as {name}", tcp.local_addr()?);
    tokio::select! {
        _ = term.recv() => {}
        _ = int.recv() => {}
        _ = serve_tcp(tcp, name.clone()) => {}
        _ = serve_udp(udp, &name) => {}
    }
    // Open connections are dropped with the runtime.
    println!("shutting down");
    Ok(())
}

/// Binds TCP then UDP on the same port; with port 0, retries if UDP finds the TCP pick taken.
async fn bind(ip: IpAddr, port: u16) -> anyhow::Result<(TcpListener, UdpSocket)> {
    let mut attempts = if port == 0 { 20 } else { 1 };
    loop {
        let tcp = TcpListener::bind((ip, port))
            .await
            .with_context(|| format!("cannot listen on TCP {ip}:{port}; is the port taken?"))?;
        let addr = tcp.local_addr()?;
        match UdpSocket::bind(addr).await {
            Ok(udp) => return Ok((tcp, udp)),
            Err(_) if attempts > 1 => attempts -= 1,
            Err(e) => return Err(e).with_context(|| format!("cannot bind UDP {addr}")),
        }
    }
}

/// Accepts forever; every connection is bounded by [`IO_TIMEOUT`] per request.
async fn serve_tcp(listener: TcpListener, name: Arc<str>) {
    loop {
        let (stream, peer) = match listener.accept().await {
            Ok(conn) => conn,
            Err(e) => {
                // EMFILE and the like: back off instead of spinning.
                eprintln!("accept: {e}");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let name = name.clone();
        tokio::spawn(async move { serve_conn(stream, peer, &name).await });
    }
}

async fn serve_udp(socket: UdpSocket, name: &str) {
    let reply = format!("I'm {name}\n");
    let mut buf = [0u8; 2048];
    loop {
        match socket.recv_from(&mut buf).await {
            Ok((_, peer)) => {
                println!("{peer} UDP -");
                if let Err(e) = socket.send_to(reply.as_bytes(), peer).await {
                    eprintln!("udp reply to {peer}: {e}");
                }
            }
            Err(e) => {
                eprintln!("udp receive: {e}");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }
}

async fn serve_conn(mut stream: TcpStream, peer: SocketAddr, name: &str) {
    let mut buf = Vec::new();
    loop {
        let end = match timeout(IO_TIMEOUT, read_head(&mut stream, &mut buf)).await {
            Ok(Ok(end)) => end,
            Ok(Err(None)) => return,
            Ok(Err(Some(why))) => return reject(stream, peer, why).await,
            Err(_) if buf.is_empty() => return, // idle keep-alive connection
            Err(_) => return reject(stream, peer, "slow client").await,
        };
        let (resp, keep_alive) = match parse_request(&buf[..end]) {
            Ok(req) => {
                println!("{peer} {} {}", req.method, req.target);
                (answer(&req, peer, name), req.keep_alive())
            }
            Err(why) => return reject(stream, peer, why).await,
        };
        buf.drain(..end); // keep pipelined bytes for the next round
        if !matches!(
            timeout(IO_TIMEOUT, stream.write_all(&resp)).await,
            Ok(Ok(()))
        ) {
            return;
        }
        if !keep_alive {
            return linger_close(stream).await;
        }
    }
}

async fn reject(mut stream: TcpStream, peer: SocketAddr, why: &str) {
    println!("{peer} BAD {why}");
    let resp = response("400 Bad Request", "bad request\n", false, false);
    if let Ok(Ok(())) = timeout(IO_TIMEOUT, stream.write_all(&resp)).await {
        linger_close(stream).await;
    }
}

/// Closes after a last response: FIN first, then briefly drain what the client still sends (an
/// unread body, the rest of an oversized head), else the kernel answers that data with a RST
/// that can destroy the response before the client reads it (RFC 9112 §9.6).
async fn linger_close(mut stream: TcpStream) {
    let _ = timeout(LINGER, async {
        stream.shutdown().await?;
        tokio::io::copy(&mut stream, &mut tokio::io::sink()).await
    })
    .await;
}

/// The whole HTTP response to a well-formed request.
fn answer(req: &Request<'_>, peer: SocketAddr, name: &str) -> Vec<u8> {
    let body = match req.path() {
        "/health" => "ok".to_owned(),
        "/name" => name.to_owned(),
        _ => whoami_body(req, peer, name, &local_addrs()),
    };
    response("200 OK", &body, req.keep_alive(), req.method == "HEAD")
}

fn whoami_body(req: &Request<'_>, peer: SocketAddr, name: &str, addrs: &[IpAddr]) -> String {
    let mut out = format!(
        "I'm {name} running on linux/{}\n",
        go_arch(std::env::consts::ARCH)
    );
    for addr in addrs {
        out += &format!("IP: {addr}\n");
    }
    out += &format!(
        "RemoteAddr: {peer}\n{} {} {}\n",
        req.method, req.target, req.version
    );
    for (n, v) in &req.headers {
        out += &format!("{n}: {v}\n");
    }
    out
}
