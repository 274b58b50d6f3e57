//! Picking TCP ports for the nodes' `--listen-addr`.

use std::net::TcpListener;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::OnceLock;

/// Ports are taken from 20000–29999: below the kernel's ephemeral range (32768–60999 by default)
/// and below Shoal's published ports (30000–32767). A port picked by binding `127.0.0.1:0`
/// comes from the ephemeral range, where any outgoing connection (the nodes talk to each other
/// constantly) may take it between the check and swarmd's own bind — or while a killed manager
/// is down, so that it could not come back on its address.
const FIRST: u32 = 20000;
const COUNT: u32 = 10000;

static NEXT: AtomicU32 = AtomicU32::new(0);

fn seed() -> u32 {
    static SEED: OnceLock<u32> = OnceLock::new();
    *SEED.get_or_init(|| {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.subsec_nanos())
            .unwrap_or(0);
        std::process::id().wrapping_mul(2_654_435_761) ^ nanos
    })
}

/// A port on 127.0.0.1 that nothing listens on right now, never the same twice in one test
/// process.
pub fn free_port() -> u16 {
    for _ in 0..COUNT {
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let port = (FIRST + seed().wrapping_add(n.wrapping_mul(7)) % COUNT) as u16;
        if TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
    panic!("no free port on 127.0.0.1 in {FIRST}-{}", FIRST + COUNT - 1);
}

/// A fixed port held for one test at a time across test processes (a state-dir fixture whose
/// raft membership names `127.0.0.1:PORT`): a lock directory under the temp dir holding the
/// holder's pid, taken over when that process is gone. Released when dropped.
#[derive(Debug)]
pub struct FixedPort {
    /// The port.
    pub port: u16,
    lock: std::path::PathBuf,
}

impl FixedPort {
    /// Waits up to `timeout` for the port's lock, then checks nothing else listens on it.
    pub fn take(port: u16, timeout: std::time::Duration) -> FixedPort {
        let lock = std::env::temp_dir().join(format!("shoal-tests-port-{port}.lock"));
        let deadline = std::time::Instant::now() + timeout;
        loop {
            if std::fs::create_dir(&lock).is_ok() {
                let _ = std::fs::write(lock.join("pid"), std::process::id().to_string());
                break;
            }
            let holder = std::fs::read_to_string(lock.join("pid")).unwrap_or_default();
            let gone = holder
                .trim()
                .parse::<u32>()
                .is_ok_and(|pid| !std::path::Path::new(&format!("/proc/{pid}")).exists());
            if gone {
                let _ = std::fs::remove_dir_all(&lock);
                continue;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "port {port} is held by test process {} ({}): wait for it, or remove the lock",
                holder.trim(),
                lock.display()
            );
            std::thread::sleep(std::time::Duration::from_millis(100));
        }
        let port_lock = FixedPort { port, lock };
        let deadline = std::time::Instant::now() + timeout;
        while TcpListener::bind(("127.0.0.1", port)).is_err() {
            assert!(
                std::time::Instant::now() < deadline,
                "127.0.0.1:{port} is in use by another program; this test needs that port \
                 (it is baked into a state-dir fixture): free it and run the test again"
            );
            std::thread::sleep(std::time::Duration::from_millis(100));
        }
        port_lock
    }
}

impl Drop for FixedPort {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.lock);
    }
}
