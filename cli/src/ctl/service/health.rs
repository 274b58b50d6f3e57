//! The health check and drain flags of `service create` and `service update` (Docker's
//! `--health-*` and `--no-healthcheck`, and Shoal's `--stop-drain`).

use super::parse;
use shoal_proto::model::{fmt_ms, HealthConfig, HealthTest, ServiceSpec, MIN_DURATION};
use std::time::Duration;

/// `--health-*`, `--no-healthcheck`, `--stop-drain`.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct HealthArgs {
    /// Command that checks the task's health, run with `/bin/sh -c` inside the task (exit 0:
    /// healthy). A task with a check takes traffic only once a check passed.
    #[arg(long, value_name = "CMD", allow_hyphen_values = true)]
    pub health_cmd: Option<String>,
    /// Time between two checks (e.g. 5s; default 30s, or the image's).
    #[arg(long, value_parser = parse::duration, value_name = "DURATION", allow_hyphen_values = true)]
    pub health_interval: Option<Duration>,
    /// Time a check may take before it is killed and counts as failed (default 30s).
    #[arg(long, value_parser = parse::duration, value_name = "DURATION", allow_hyphen_values = true)]
    pub health_timeout: Option<Duration>,
    /// Failures in a row that make a task unhealthy (default 3).
    #[arg(long, value_parser = retries, value_name = "N", allow_negative_numbers = true)]
    pub health_retries: Option<u32>,
    /// Time after the start during which failed checks do not count (default 0s).
    #[arg(long, value_parser = parse::duration, value_name = "DURATION", allow_hyphen_values = true)]
    pub health_start_period: Option<Duration>,
    /// Disable any health check, the image's too.
    #[arg(long)]
    pub no_healthcheck: bool,
    /// How long a stopping task keeps running after it left every balancer and DNS answer,
    /// before its stop signal, so established connections finish (e.g. 5s, 0s; default 1s).
    #[arg(long, value_parser = parse::duration, value_name = "DURATION", allow_hyphen_values = true)]
    pub stop_drain: Option<Duration>,
}

/// `--health-retries`: 0 (the default) or more.
fn retries(s: &str) -> Result<u32, crate::BadInput> {
    let bad = || "the retry count must be a non-negative integer (e.g. 3)".to_string();
    let n: i64 = s.trim().parse().map_err(|_| bad())?;
    u32::try_from(n).map_err(|_| bad().into())
}

/// Whole milliseconds of a flag's duration; a non-zero one under 1ms is refused (Docker's
/// minimum), not read as 0 (the default).
fn millis(flag: &str, d: Duration) -> anyhow::Result<u64> {
    if !d.is_zero() && d < MIN_DURATION {
        anyhow::bail!("--{flag} {d:?}: must be 0 (the default) or at least 1ms");
    }
    u64::try_from(d.as_millis()).map_err(|_| anyhow::anyhow!("--{flag} {d:?} is too long"))
}

impl HealthArgs {
    /// Whether a `--health-*` flag was given (not `--no-healthcheck`).
    fn any_health(&self) -> bool {
        self.health_cmd.is_some()
            || self.health_interval.is_some()
            || self.health_timeout.is_some()
            || self.health_retries.is_some()
            || self.health_start_period.is_some()
    }

    /// Applies the flags that were given to `spec` (Docker's `updateHealthcheck`: the flags
    /// change the spec's check field by field; `--health-cmd ""` goes back to the image's
    /// command), then checks the result's bounds. On error `spec` is left as it was.
    pub fn apply(&self, spec: &mut ServiceSpec) -> anyhow::Result<()> {
        let mut out = spec.clone();
        if self.no_healthcheck {
            if self.any_health() {
                anyhow::bail!("--no-healthcheck conflicts with --health-* options");
            }
            out.healthcheck = Some(HealthConfig {
                test: HealthTest::None,
                ..Default::default()
            });
        } else if self.any_health() {
            let mut h = out.healthcheck.take().unwrap_or_default();
            if h.test == HealthTest::None {
                // Timings on a disabled check: the image's command again, with them.
                h.test = HealthTest::Inherit;
            }
            if let Some(cmd) = &self.health_cmd {
                h.test = if cmd.trim().is_empty() {
                    HealthTest::Inherit
                } else {
                    HealthTest::Shell(cmd.clone())
                };
            }
            if let Some(d) = self.health_interval {
                h.interval_ms = millis("health-interval", d)?;
            }
            if let Some(d) = self.health_timeout {
                h.timeout_ms = millis("health-timeout", d)?;
            }
            if let Some(d) = self.health_start_period {
                h.start_period_ms = millis("health-start-period", d)?;
            }
            if let Some(n) = self.health_retries {
                h.retries = n;
            }
            out.healthcheck = Some(h);
        }
        if let Some(d) = self.stop_drain {
            out.stop_drain_ms = Some(millis("stop-drain", d)?);
        }
        out.validate_health_and_drain()?;
        *spec = out;
        Ok(())
    }
}

/// The health check as `service inspect --pretty` shows it: `(test, interval, timeout, start
/// period, retries)` lines, Docker's defaults shown for unset fields.
pub fn pretty(h: &shoal_proto::pb::HealthCheck) -> Vec<(&'static str, String)> {
    let test = match HealthTest::from_docker(&h.test) {
        Ok(HealthTest::None) => return vec![("Healthcheck", "none (--no-healthcheck)".into())],
        Ok(HealthTest::Inherit) => "the image's".to_string(),
        Ok(HealthTest::Shell(cmd)) => format!("CMD-SHELL {cmd}"),
        Ok(HealthTest::Cmd(argv)) => format!("CMD {}", argv.join(" ")),
        Err(_) => h.test.join(" "),
    };
    let or = |ms: u64, default: &str| {
        if ms == 0 {
            format!("{default} (default)")
        } else {
            fmt_ms(ms)
        }
    };
    vec![
        ("Healthcheck", String::new()),
        (" Test", test),
        (" Interval", or(h.interval_ms, "30s")),
        (" Timeout", or(h.timeout_ms, "30s")),
        (" StartPeriod", or(h.start_period_ms, "0s")),
        (
            " Retries",
            if h.retries == 0 {
                "3 (default)".into()
            } else {
                h.retries.to_string()
            },
        ),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(f: impl FnOnce(&mut HealthArgs)) -> HealthArgs {
        let mut a = HealthArgs::default();
        f(&mut a);
        a
    }

    #[test]
    fn flags_build_and_edit_the_check_field_by_field() {
        let mut spec = ServiceSpec::default();
        args(|a| {
            a.health_cmd = Some("test -e /ok".into());
            a.health_interval = Some(Duration::from_millis(500));
            a.health_retries = Some(2);
        })
        .apply(&mut spec)
        .unwrap();
        let want = HealthConfig {
            test: HealthTest::Shell("test -e /ok".into()),
            interval_ms: 500,
            retries: 2,
            ..Default::default()
        };
        assert_eq!(spec.healthcheck.as_ref(), Some(&want));
        // An update of one field keeps the others.
        args(|a| a.health_timeout = Some(Duration::from_secs(2)))
            .apply(&mut spec)
            .unwrap();
        assert_eq!(
            spec.healthcheck,
            Some(HealthConfig {
                timeout_ms: 2000,
                ..want.clone()
            })
        );
        // --no-healthcheck disables it; timings alone then go back to the image's command.
        args(|a| a.no_healthcheck = true).apply(&mut spec).unwrap();
        assert_eq!(spec.healthcheck.as_ref().unwrap().test, HealthTest::None);
        args(|a| a.health_retries = Some(5))
            .apply(&mut spec)
            .unwrap();
        assert_eq!(spec.healthcheck.as_ref().unwrap().test, HealthTest::Inherit);
        // No flag: nothing changes.
        let before = spec.clone();
        HealthArgs::default().apply(&mut spec).unwrap();
        assert_eq!(spec, before);
    }

    #[test]
    fn the_drain_is_set_and_bounded() {
        let mut spec = ServiceSpec::default();
        args(|a| a.stop_drain = Some(Duration::ZERO))
            .apply(&mut spec)
            .unwrap();
        assert_eq!(spec.stop_drain_ms, Some(0));
        args(|a| a.stop_drain = Some(Duration::from_secs(5)))
            .apply(&mut spec)
            .unwrap();
        assert_eq!(spec.stop_drain_ms, Some(5000));
        let e = args(|a| a.stop_drain = Some(Duration::from_secs(3600)))
            .apply(&mut spec)
            .unwrap_err();
        assert!(e.to_string().contains("--stop-drain 1h"), "{e}");
        assert_eq!(spec.stop_drain_ms, Some(5000), "nothing half-applied");
    }

    #[test]
    fn bad_values_are_refused_and_change_nothing() {
        let mut spec = ServiceSpec::default();
        let cases: Vec<(HealthArgs, &str)> = vec![
            (
                args(|a| {
                    a.no_healthcheck = true;
                    a.health_cmd = Some("true".into());
                }),
                "conflicts",
            ),
            (
                args(|a| a.health_interval = Some(Duration::from_micros(500))),
                "at least 1ms",
            ),
            (
                args(|a| a.health_timeout = Some(Duration::from_secs(100 * 3600))),
                "--health-timeout",
            ),
            (
                args(|a| a.health_retries = Some(1_000_000)),
                "--health-retries",
            ),
            (
                args(|a| {
                    a.health_cmd = Some("true".into());
                    a.stop_drain = Some(Duration::from_secs(601));
                }),
                "--stop-drain",
            ),
        ];
        for (a, needle) in cases {
            let e = a.apply(&mut spec).unwrap_err().to_string();
            assert!(e.contains(needle), "{a:?}: {e}");
            assert_eq!(spec, ServiceSpec::default(), "{a:?} half-applied");
        }
        assert!(retries("-1").is_err());
        assert!(retries("x").is_err());
        assert_eq!(retries("3").unwrap(), 3);
    }
}
