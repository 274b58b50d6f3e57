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
