//! Health checks, after Docker's `HEALTHCHECK` and `--health-*` flags: what a service asks
//! ([`HealthConfig`]), merged with its image's into what a node probes ([`Probe`]), and what a
//! task's probes found ([`TaskHealth`]).

use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::Invalid;

/// Docker's default time between two probes.
pub const DEFAULT_INTERVAL: Duration = Duration::from_secs(30);
/// Docker's default time a probe may take before it is killed and counted as failed.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30);
/// Docker's default number of failures in a row that make a task unhealthy.
pub const DEFAULT_RETRIES: u32 = 3;
/// Docker's smallest non-zero interval, timeout and start period (moby
/// `container.MinimumDuration`).
pub const MIN_DURATION: Duration = Duration::from_millis(1);
/// Our bound on intervals, timeouts and start periods: a day. Docker has none; a longer one is
/// a typo (`--health-interval 30000` read as seconds), not a health check.
pub const MAX_DURATION: Duration = Duration::from_secs(24 * 3600);
/// Our bound on `--health-retries`.
pub const MAX_RETRIES: u32 = 1000;

/// The program a health check runs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub enum HealthTest {
    /// The image's check, if it has one (Docker's empty test: `--health-interval` alone only
    /// changes the image's timings).
    #[default]
    Inherit,
    /// No check, not even the image's (`--no-healthcheck`, `["NONE"]`).
    None,
    /// A program and its arguments, run as they are (`["CMD", …]`).
    Cmd(Vec<String>),
    /// A command line for `/bin/sh -c` (`--health-cmd`, `["CMD-SHELL", …]`).
    Shell(String),
}

impl HealthTest {
    /// From Docker's list form: `[]`, `["NONE"]`, `["CMD", program, args…]`,
    /// `["CMD-SHELL", command]`.
    pub fn from_docker(test: &[String]) -> Result<HealthTest, Invalid> {
        let bad = |why: &str| Invalid::Health(format!("test {test:?}: {why}"));
        match test.split_first() {
            None => Ok(HealthTest::Inherit),
            Some((k, rest)) => match k.as_str() {
                "NONE" if rest.is_empty() => Ok(HealthTest::None),
                "NONE" => Err(bad("NONE takes no arguments")),
                "CMD" if rest.is_empty() || rest[0].trim().is_empty() => {
                    Err(bad("CMD needs a program"))
                }
                "CMD" => Ok(HealthTest::Cmd(rest.to_vec())),
                "CMD-SHELL" => match rest {
                    [cmd] if !cmd.trim().is_empty() => Ok(HealthTest::Shell(cmd.clone())),
                    _ => Err(bad("CMD-SHELL takes one non-empty command line")),
                },
                _ => Err(bad("the first word must be NONE, CMD or CMD-SHELL")),
            },
        }
    }

    /// Docker's list form (the inverse of [`HealthTest::from_docker`]).
    pub fn to_docker(&self) -> Vec<String> {
        match self {
            HealthTest::Inherit => Vec::new(),
            HealthTest::None => vec!["NONE".into()],
            HealthTest::Cmd(argv) => std::iter::once("CMD".to_string())
                .chain(argv.iter().cloned())
                .collect(),
            HealthTest::Shell(cmd) => vec!["CMD-SHELL".into(), cmd.clone()],
        }
    }
}

/// A health check as a service (or an image) states it. Zero durations and retries mean "the
/// image's, else Docker's default", as in Docker's `HealthConfig`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct HealthConfig {
    /// What runs.
    pub test: HealthTest,
    /// Time between two probes (0: the image's, else 30 s).
    pub interval_ms: u64,
    /// Time a probe may take before it is killed and counted as failed (0: the image's, else
    /// 30 s).
    pub timeout_ms: u64,
    /// Time after the start during which failures do not count (a success ends it); 0: the
    /// image's, else none.
    pub start_period_ms: u64,
    /// Failures in a row that make the task unhealthy (0: the image's, else 3).
    pub retries: u32,
}

impl HealthConfig {
    /// Checks the bounds: durations 0 or within [`MIN_DURATION`]..=[`MAX_DURATION`], retries
    /// at most [`MAX_RETRIES`], a test that is not empty. The error names the flag.
    pub fn validate(&self) -> Result<(), Invalid> {
        let check = |flag: &str, ms: u64| {
            let d = Duration::from_millis(ms);
            if ms != 0 && (d < MIN_DURATION || d > MAX_DURATION) {
                return Err(Invalid::Health(format!(
                    "--{flag} {}: must be 0 (the default) or between 1ms and 24h",
                    fmt_ms(ms)
                )));
            }
            Ok(())
        };
        check("health-interval", self.interval_ms)?;
        check("health-timeout", self.timeout_ms)?;
        check("health-start-period", self.start_period_ms)?;
        if self.retries > MAX_RETRIES {
            return Err(Invalid::Health(format!(
                "--health-retries {}: must be at most {MAX_RETRIES}",
                self.retries
            )));
        }
        match &self.test {
            HealthTest::Cmd(argv) if argv.first().is_none_or(|p| p.trim().is_empty()) => {
                Err(Invalid::Health("the health check names no program".into()))
            }
            HealthTest::Shell(cmd) if cmd.trim().is_empty() => {
                Err(Invalid::Health("--health-cmd must not be empty".into()))
            }
            _ => Ok(()),
        }
    }

    /// What a node probes for a task whose service says `service` and whose image says
    /// `image`, by Docker's merge (moby `daemon/commit.go` `merge`): the service's test unless
    /// it inherits, each zero field from the image, then Docker's defaults. `None`: no check.
    pub fn probe(service: Option<&HealthConfig>, image: Option<&HealthConfig>) -> Option<Probe> {
        let pick = |f: fn(&HealthConfig) -> u64| {
            service
                .map(f)
                .filter(|v| *v != 0)
                .or_else(|| image.map(f).filter(|v| *v != 0))
        };
        let test = match service.map(|s| &s.test) {
            Some(HealthTest::Inherit) | None => image.map(|i| &i.test)?,
            Some(t) => t,
        };
        let argv = match test {
            HealthTest::Inherit | HealthTest::None => return None,
            HealthTest::Cmd(argv) => argv.clone(),
            HealthTest::Shell(cmd) => vec!["/bin/sh".into(), "-c".into(), cmd.clone()],
        };
        let retries = service
            .map(|s| s.retries)
            .filter(|r| *r != 0)
            .or_else(|| image.map(|i| i.retries).filter(|r| *r != 0))
            .unwrap_or(DEFAULT_RETRIES);
        Some(Probe {
            argv,
            interval: pick(|c| c.interval_ms)
                .map(Duration::from_millis)
                .unwrap_or(DEFAULT_INTERVAL),
            timeout: pick(|c| c.timeout_ms)
                .map(Duration::from_millis)
                .unwrap_or(DEFAULT_TIMEOUT),
            start_period: pick(|c| c.start_period_ms)
                .map(Duration::from_millis)
                .unwrap_or_default(),
            retries,
        })
    }
}

/// A health check as a node runs it: every field resolved.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Probe {
    /// The program and its arguments (a shell command is `/bin/sh -c CMD`).
    pub argv: Vec<String>,
    /// Time between the end of one probe and the start of the next (and from the task's start
    /// to the first probe).
    pub interval: Duration,
    /// Time a probe may take; then it is killed and counts as a failure.
    pub timeout: Duration,
    /// Failures before this much time since the start do not count.
    pub start_period: Duration,
    /// Failures in a row that make the task unhealthy.
    pub retries: u32,
}

/// What a task's health check found, reported with its status.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, Default)]
pub enum TaskHealth {
    /// The task has no health check.
    #[default]
    None,
    /// No probe has passed yet.
    Starting,
    /// The last probe passed.
    Healthy,
    /// `retries` probes failed in a row.
    Unhealthy,
}

impl TaskHealth {
    /// `starting`, `healthy`, `unhealthy` (empty for none), as Docker prints it.
    pub fn as_str(self) -> &'static str {
        match self {
            TaskHealth::None => "",
            TaskHealth::Starting => "starting",
            TaskHealth::Healthy => "healthy",
            TaskHealth::Unhealthy => "unhealthy",
        }
    }

    /// Whether the task has no health check.
    pub fn is_none(&self) -> bool {
        *self == TaskHealth::None
    }

    /// Whether a task with this health may take traffic (once running): no check, or a
    /// passing one.
    pub fn serves(self) -> bool {
        matches!(self, TaskHealth::None | TaskHealth::Healthy)
    }
}

/// Milliseconds as Docker prints durations (`1m30s`, `500ms`).
pub fn fmt_ms(ms: u64) -> String {
    if ms == 0 {
        return "0s".into();
    }
    if !ms.is_multiple_of(1000) {
        if ms < 1000 {
            return format!("{ms}ms");
        }
        return format!("{}s", ms as f64 / 1000.0);
    }
    let s = ms / 1000;
    let (h, m, s) = (s / 3600, (s / 60) % 60, s % 60);
    let mut out = String::new();
    if h > 0 {
        out.push_str(&format!("{h}h"));
    }
    if m > 0 {
        out.push_str(&format!("{m}m"));
    }
    if s > 0 || out.is_empty() {
        out.push_str(&format!("{s}s"));
    }
    out
}

#[cfg(test)]
mod tests;
