//! Waiting on conditions with deadlines.

use std::time::{Duration, Instant};

/// Time between two checks of a condition.
pub const POLL: Duration = Duration::from_millis(100);

/// Checks `f` every [`POLL`] until it returns `Ok`, and returns that value. `Err` carries what
/// was seen instead; after `timeout` the test fails with `desc` and the last thing seen.
pub fn wait_for<T>(desc: &str, timeout: Duration, mut f: impl FnMut() -> Result<T, String>) -> T {
    let started = Instant::now();
    loop {
        let last = match f() {
            Ok(v) => return v,
            Err(e) => e,
        };
        if started.elapsed() > timeout {
            panic!("timed out after {timeout:?} waiting for {desc}\nlast seen: {last}");
        }
        std::thread::sleep(POLL);
    }
}

/// Checks `f` every [`POLL`] until it holds; fails the test after `timeout`.
pub fn wait_until(desc: &str, timeout: Duration, mut f: impl FnMut() -> bool) {
    wait_for(desc, timeout, || {
        if f() {
            Ok(())
        } else {
            Err("condition false".into())
        }
    })
}
