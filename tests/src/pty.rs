//! What a program on a pseudo-terminal writes, collected for a test to look at.

use std::io::Read;
use std::os::fd::OwnedFd;
use std::sync::{Arc, Mutex};

/// Everything read from `master` (a pty's master side, duplicated here) so far, appended by a
/// thread of its own until the pty closes.
pub fn capture(master: &OwnedFd) -> Arc<Mutex<String>> {
    let seen = Arc::new(Mutex::new(String::new()));
    let mut reader = std::fs::File::from(master.try_clone().expect("dup the pty's master"));
    let sink = seen.clone();
    std::thread::spawn(move || {
        let mut buf = [0u8; 4096];
        while let Ok(n) = reader.read(&mut buf) {
            if n == 0 {
                break;
            }
            sink.lock()
                .unwrap_or_else(|e| e.into_inner())
                .push_str(&String::from_utf8_lossy(&buf[..n]));
        }
    });
    seen
}
