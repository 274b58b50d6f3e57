//! A task's health check as its supervisor runs it: the [`Monitor`] fed by probes run through the
//! task's controller (`exec`, the path of `swarmctl task exec`), one at a time, each bounded by
//! the check's timeout (the executor kills a probe that outlives it: a failure).

use std::time::Duration;

use shoal_proto::model::{Probe, TaskHealth};
use tokio::time::Instant;
use tracing::{debug, info};

use super::health::{Monitor, Outcome};
use crate::executor::controller::BoxFuture;
use crate::executor::{Controller, Error, ExecOutput};

/// What the supervisor is to do next for the check.
pub(super) enum Step {
    /// Time for the next probe: start it ([`Checker::launch`]).
    Due,
    /// The running probe ended.
    Ended(Result<ExecOutput, Error>),
}

/// The probe that runs, if any, with how long after the task's start it began.
struct Running {
    since_start: Duration,
    run: BoxFuture<'static, Result<ExecOutput, Error>>,
}

/// One task's health check in its supervisor.
pub(super) struct Checker {
    monitor: Monitor,
    /// When the task started (adopted: when it was taken back).
    started: Instant,
    next_at: Instant,
    running: Option<Running>,
}

impl Checker {
    /// A check for a task that started at `started`, with the health last reported for it
    /// (`starting` for a fresh task).
    pub(super) fn new(probe: Probe, started: Instant, health: TaskHealth) -> Checker {
        let monitor = Monitor::resume(probe, health);
        let next_at = started + monitor.interval();
        Checker {
            monitor,
            started,
            next_at,
            running: None,
        }
    }

    /// The health found so far.
    pub(super) fn health(&self) -> TaskHealth {
        self.monitor.health()
    }

    /// Waits for what comes next: the end of the running probe, or the time of the next one.
    /// Cancel-safe: the running probe stays here when this is dropped.
    pub(super) async fn step(&mut self) -> Step {
        match &mut self.running {
            Some(r) => Step::Ended((&mut r.run).await),
            None => {
                tokio::time::sleep_until(self.next_at).await;
                Step::Due
            }
        }
    }

    /// Starts a probe in the task through `ctl`.
    pub(super) fn launch(&mut self, ctl: &dyn Controller) {
        let p = self.monitor.probe();
        let run = ctl.exec(&p.argv, p.timeout);
        self.running = Some(Running {
            since_start: Instant::now().saturating_duration_since(self.started),
            run,
        });
    }

    /// Records how the running probe ended; the next one is due an interval from now. Returns
    /// the new health when it changed.
    pub(super) fn ended(&mut self, r: Result<ExecOutput, Error>) -> Option<TaskHealth> {
        let since_start = self
            .running
            .take()
            .map(|r| r.since_start)
            .unwrap_or_default();
        self.next_at = Instant::now() + self.monitor.interval();
        let outcome = match &r {
            Ok(out) if out.exit_code == 0 => Outcome::Pass,
            Ok(out) => {
                debug!(exit = out.exit_code, "health probe failed");
                Outcome::Fail
            }
            Err(e) => {
                debug!(error = %e, "health probe did not complete");
                Outcome::Fail
            }
        };
        let changed = self.monitor.record(since_start, outcome);
        if let Some(h) = changed {
            let last = match &r {
                Ok(out) => String::from_utf8_lossy(&out.stdout).trim().to_string(),
                Err(e) => e.to_string(),
            };
            info!(health = h.as_str(), streak = self.monitor.streak(), last = %cut(&last), "task health changed");
        }
        changed
    }
}

/// At most 200 characters of a probe's output, for the log.
fn cut(s: &str) -> String {
    s.chars().take(200).collect()
}
