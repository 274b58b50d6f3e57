//! Helpers of the root tests: throwaway namespaces under a per-run directory, removed by exact
//! name even when the test fails, and tiny TCP servers and clients inside them. Every address
//! is in 198.18.0.0/15 and lives only in namespaces the test made.
#![allow(dead_code)]

use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddrV4, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use shoal_netlib::netns::{self, NetNs};
use shoal_netlib::rt::Handle;

/// True when the test may run: root. Without root the test is skipped with a message, except
/// under CI (`CI` set), where a missing root is a failure: CI must run these.
pub fn root() -> bool {
    shoal_netlib::root::root_or_skip()
}

/// A directory of namespaces made by one test; dropping it deletes every namespace in it and
/// the directory (so a failed assertion still cleans up).
pub struct Scratch {
    pub dir: PathBuf,
    nses: Vec<Arc<NetNs>>,
    stop: Arc<AtomicBool>,
    threads: Vec<std::thread::JoinHandle<()>>,
}

impl Scratch {
    /// A fresh directory named after the test and this process.
    pub fn new(test: &str) -> Scratch {
        let dir = PathBuf::from(format!("/tmp/shoal-netlib-{}-{test}", std::process::id()));
        // What crashed earlier runs left: their directories name a pid that is gone.
        reap_stale_runs();
        cleanup_dir(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        Scratch {
            dir,
            nses: Vec::new(),
            stop: Arc::new(AtomicBool::new(false)),
            threads: Vec::new(),
        }
    }

    /// A new namespace `name` with `lo` up.
    pub async fn ns(&mut self, name: &str) -> Arc<NetNs> {
        let ns = Arc::new(NetNs::create(&self.dir, name).unwrap());
        let h = Handle::in_ns(&ns).unwrap();
        h.ensure_up("lo").await.unwrap();
        self.nses.push(Arc::clone(&ns));
        ns
    }

    /// Serves `reply` on `port` inside `ns` until the scratch is dropped (at most 120 s).
    pub fn serve(&mut self, ns: &NetNs, port: u16, reply: &str) {
        let listener = ns
            .run(|| TcpListener::bind(SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, port)))
            .unwrap()
            .unwrap();
        listener.set_nonblocking(true).unwrap();
        let stop = Arc::clone(&self.stop);
        let reply = format!("{reply}\n");
        self.threads.push(std::thread::spawn(move || {
            let deadline = Instant::now() + Duration::from_secs(120);
            while !stop.load(Ordering::Relaxed) && Instant::now() < deadline {
                match listener.accept() {
                    Ok((mut s, _)) => {
                        let _ = s.write_all(reply.as_bytes());
                    }
                    Err(_) => std::thread::sleep(Duration::from_millis(2)),
                }
            }
        }));
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
        self.nses.clear();
        cleanup_dir(&self.dir);
    }
}

/// Removes `/tmp/shoal-netlib-<pid>-*` directories of processes that no longer exist.
fn reap_stale_runs() {
    let Ok(entries) = std::fs::read_dir("/tmp") else {
        return;
    };
    for e in entries.flatten() {
        let name = e.file_name().to_string_lossy().to_string();
        let Some(rest) = name.strip_prefix("shoal-netlib-") else {
            continue;
        };
        let Some(pid) = rest.split('-').next().and_then(|p| p.parse::<u32>().ok()) else {
            continue;
        };
        if !Path::new(&format!("/proc/{pid}")).exists() {
            cleanup_dir(&e.path());
        }
    }
}

/// Deletes every namespace file in `dir`, then the directory.
pub fn cleanup_dir(dir: &Path) {
    for name in netns::list(dir).unwrap_or_default() {
        let _ = netns::delete_path(&dir.join(name));
    }
    let _ = netns::release_dir(dir);
    let _ = std::fs::remove_dir_all(dir);
}

/// Connects from inside `ns` to `addr:port` and returns the first line the server sends
/// (`None` on refusal or a 2 s timeout).
pub fn fetch(ns: &NetNs, addr: Ipv4Addr, port: u16) -> Option<String> {
    ns.run(move || {
        let mut s = TcpStream::connect_timeout(
            &SocketAddrV4::new(addr, port).into(),
            Duration::from_secs(2),
        )
        .ok()?;
        s.set_read_timeout(Some(Duration::from_secs(2))).ok()?;
        let mut out = String::new();
        s.read_to_string(&mut out).ok()?;
        Some(out.trim().to_string())
    })
    .unwrap()
}

/// Polls `f` every 50 ms until it returns `Some`, for at most `secs`.
pub async fn wait_for<T>(secs: u64, mut f: impl AsyncFnMut() -> Option<T>) -> Option<T> {
    let deadline = Instant::now() + Duration::from_secs(secs);
    loop {
        if let Some(v) = f().await {
            return Some(v);
        }
        if Instant::now() > deadline {
            return None;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Joins `ns` to the bridge `br` in `switch` through a veth: `eth0` inside `ns` with `addr/24`.
pub async fn plug(switch: &NetNs, br: &str, ns: &NetNs, port_name: &str, addr: Ipv4Addr) {
    let sw = Handle::in_ns(switch).unwrap();
    sw.ensure_veth(port_name, "eth0", Some(ns)).await.unwrap();
    sw.ensure_master(port_name, br).await.unwrap();
    sw.ensure_up(port_name).await.unwrap();
    let h = Handle::in_ns(ns).unwrap();
    h.ensure_addr("eth0", addr, 24).await.unwrap();
    h.ensure_up("eth0").await.unwrap();
}
pub mod lb_suite;
