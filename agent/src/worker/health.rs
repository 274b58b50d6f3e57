//! A task's health, as Docker's daemon judges it (moby `daemon/health.go`, `handleProbeResult`):
//! a pure state machine fed with the outcome of each probe and the time since the task started.
//!
//! * every task with a check starts `starting`;
//! * a passing probe makes it `healthy` and resets the failure streak;
//! * a failing probe (a non-zero exit, a timeout, a probe that could not run) adds to the
//!   streak, except while the task is still `starting` within its start period;
//! * `retries` failures in a row make it `unhealthy`.
//!
//! Probes run one at a time, `interval` after the previous one ended (and after the start).
//! What an unhealthy task becomes is the supervisor's business (in a swarm: it is stopped and
//! fails, and its restart policy replaces it).

use std::time::Duration;

use shoal_proto::model::{Probe, TaskHealth};

/// How one probe ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Exit status 0.
    Pass,
    /// Any other exit status, killed at its timeout, or it could not run.
    Fail,
}

/// One task's health check.
#[derive(Debug, Clone)]
pub struct Monitor {
    probe: Probe,
    health: TaskHealth,
    streak: u32,
}

impl Monitor {
    /// A check for a task that just started: `starting`.
    pub fn new(probe: Probe) -> Monitor {
        Monitor::resume(probe, TaskHealth::Starting)
    }

    /// A check taken over with the health last reported (an adopted task): a task that was not
    /// known healthy or unhealthy starts again as `starting`.
    pub fn resume(probe: Probe, health: TaskHealth) -> Monitor {
        let health = match health {
            TaskHealth::Healthy | TaskHealth::Unhealthy => health,
            TaskHealth::None | TaskHealth::Starting => TaskHealth::Starting,
        };
        Monitor {
            probe,
            health,
            streak: 0,
        }
    }

    /// What the probes found so far.
    pub fn health(&self) -> TaskHealth {
        self.health
    }

    /// Failures in a row so far.
    pub fn streak(&self) -> u32 {
        self.streak
    }

    /// The check's settings.
    pub fn probe(&self) -> &Probe {
        &self.probe
    }

    /// Time from the end of a probe (or the start of the task) to the next probe.
    pub fn interval(&self) -> Duration {
        self.probe.interval
    }

    /// Records a probe that started `since_start` after the task started and ended as
    /// `outcome`. Returns the new health when it changed.
    pub fn record(&mut self, since_start: Duration, outcome: Outcome) -> Option<TaskHealth> {
        let before = self.health;
        match outcome {
            Outcome::Pass => {
                self.streak = 0;
                self.health = TaskHealth::Healthy;
            }
            Outcome::Fail => {
                let grace =
                    self.health == TaskHealth::Starting && since_start < self.probe.start_period;
                if !grace {
                    self.streak = self.streak.saturating_add(1);
                    if self.streak >= self.probe.retries.max(1) {
                        self.health = TaskHealth::Unhealthy;
                    }
                }
            }
        }
        (self.health != before).then_some(self.health)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use Outcome::{Fail, Pass};

    fn probe(retries: u32, start_period_s: u64) -> Probe {
        Probe {
            argv: vec!["true".into()],
            interval: Duration::from_secs(1),
            timeout: Duration::from_secs(1),
            start_period: Duration::from_secs(start_period_s),
            retries,
        }
    }

    /// Runs `probes` (seconds since start, outcome) and returns the health after each.
    fn run(m: &mut Monitor, probes: &[(u64, Outcome)]) -> Vec<TaskHealth> {
        probes
            .iter()
            .map(|(t, o)| {
                m.record(Duration::from_secs(*t), *o);
                m.health()
            })
            .collect()
    }

    use TaskHealth::{Healthy, Starting, Unhealthy};

    #[test]
    fn first_pass_makes_it_healthy() {
        let mut m = Monitor::new(probe(3, 0));
        assert_eq!(m.health(), Starting);
        assert_eq!(m.record(Duration::from_secs(1), Pass), Some(Healthy));
        assert_eq!(m.record(Duration::from_secs(2), Pass), None, "no change");
    }

    #[test]
    fn retries_failures_in_a_row_make_it_unhealthy() {
        let mut m = Monitor::new(probe(3, 0));
        assert_eq!(
            run(
                &mut m,
                &[
                    (1, Pass),
                    (2, Fail),
                    (3, Fail),
                    (4, Pass),
                    (5, Fail),
                    (6, Fail)
                ]
            ),
            vec![Healthy, Healthy, Healthy, Healthy, Healthy, Healthy],
            "a pass resets the streak"
        );
        assert_eq!(m.streak(), 2);
        assert_eq!(m.record(Duration::from_secs(7), Fail), Some(Unhealthy));
    }

    #[test]
    fn a_task_that_never_passes_turns_unhealthy_from_starting() {
        let mut m = Monitor::new(probe(2, 0));
        assert_eq!(
            run(&mut m, &[(1, Fail), (2, Fail)]),
            vec![Starting, Unhealthy]
        );
    }

    #[test]
    fn failures_in_the_start_period_do_not_count() {
        let mut m = Monitor::new(probe(1, 10));
        assert_eq!(
            run(&mut m, &[(1, Fail), (5, Fail), (9, Fail)]),
            vec![Starting; 3]
        );
        assert_eq!(m.streak(), 0);
        // After the start period they do.
        assert_eq!(m.record(Duration::from_secs(10), Fail), Some(Unhealthy));
    }

    #[test]
    fn a_pass_ends_the_start_period() {
        let mut m = Monitor::new(probe(1, 10));
        assert_eq!(
            run(&mut m, &[(1, Pass), (2, Fail)]),
            vec![Healthy, Unhealthy]
        );
    }

    #[test]
    fn zero_retries_count_as_one() {
        let mut m = Monitor::new(probe(0, 0));
        assert_eq!(m.record(Duration::from_secs(1), Fail), Some(Unhealthy));
    }

    #[test]
    fn an_unhealthy_task_that_passes_again_is_healthy() {
        // Docker's rule; in a swarm the supervisor stops the task before it could.
        let mut m = Monitor::new(probe(1, 0));
        m.record(Duration::from_secs(1), Fail);
        assert_eq!(m.record(Duration::from_secs(2), Pass), Some(Healthy));
    }

    #[test]
    fn resumed_checks_keep_a_known_health() {
        for (last, now) in [
            (TaskHealth::None, Starting),
            (Starting, Starting),
            (Healthy, Healthy),
            (Unhealthy, Unhealthy),
        ] {
            assert_eq!(Monitor::resume(probe(3, 0), last).health(), now);
        }
    }
}
