//! How many pulls this process finished and how many failed (`swarmd --metrics-addr`).

use std::sync::atomic::{AtomicU64, Ordering};

static SUCCEEDED: AtomicU64 = AtomicU64::new(0);
static FAILED: AtomicU64 = AtomicU64::new(0);

/// Pulls from a registry finished in this process: `(succeeded, failed)`. A pull given up
/// (its caller's timeout) counts as failed.
pub fn pull_counts() -> (u64, u64) {
    (
        SUCCEEDED.load(Ordering::Relaxed),
        FAILED.load(Ordering::Relaxed),
    )
}

/// Counts one pull: a failure unless [`Outcome::succeeded`] is called before it is dropped.
pub(super) struct Outcome(bool);

impl Outcome {
    pub(super) fn start() -> Outcome {
        Outcome(false)
    }

    pub(super) fn succeeded(mut self) {
        self.0 = true;
    }
}

impl Drop for Outcome {
    fn drop(&mut self) {
        let c = if self.0 { &SUCCEEDED } else { &FAILED };
        c.fetch_add(1, Ordering::Relaxed);
    }
}
