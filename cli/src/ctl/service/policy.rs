//! `--update-*` and `--rollback-*`: how `service update` and `service rollback` replace tasks
//! (Docker's flags and defaults), shared by `service create` and `service update`.

use super::parse;
use clap::ValueEnum;
use shoal_proto::model::{FailureAction, ServiceSpec, UpdateConfig, UpdateOrder};
use std::time::Duration;

/// `--update-order` / `--rollback-order` values.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum OrderArg {
    /// Stop a slot's old task, then start the new one.
    StopFirst,
    /// Start the new task; stop the old one once the new one runs (and is healthy).
    StartFirst,
}

impl From<OrderArg> for UpdateOrder {
    fn from(o: OrderArg) -> Self {
        match o {
            OrderArg::StopFirst => UpdateOrder::StopFirst,
            OrderArg::StartFirst => UpdateOrder::StartFirst,
        }
    }
}

/// `--update-failure-action` values.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum UpdateFailureArg {
    /// Stop; the next `service update` resumes.
    Pause,
    /// Go on.
    Continue,
    /// Return to the previous spec.
    Rollback,
}

/// `--rollback-failure-action` values (a rollback cannot roll back).
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum RollbackFailureArg {
    /// Stop the rollback.
    Pause,
    /// Go on.
    Continue,
}

/// The update and rollback policy flags; each applies only when given.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct PolicyArgs {
    /// Tasks replaced at the same time during an update (default 1; 0 = all at once).
    #[arg(long, value_name = "N", value_parser = count, allow_negative_numbers = true)]
    pub update_parallelism: Option<u64>,
    /// Wait between a slot's new task running and the next slot's update (default 0s).
    #[arg(long, value_name = "DURATION", value_parser = parse::duration)]
    pub update_delay: Option<Duration>,
    /// stop-first (default) or start-first.
    #[arg(long, value_enum, value_name = "ORDER")]
    pub update_order: Option<OrderArg>,
    /// What to do when too many new tasks fail: pause (default), continue or rollback.
    #[arg(long, value_enum, value_name = "ACTION")]
    pub update_failure_action: Option<UpdateFailureArg>,
    /// How long after it starts a new task's failure counts against the update (default 5s).
    #[arg(long, value_name = "DURATION", value_parser = parse::duration)]
    pub update_monitor: Option<Duration>,
    /// Share of the tasks that may fail during an update, 0 to 1 (default 0).
    #[arg(long, value_name = "RATIO", value_parser = ratio, allow_negative_numbers = true)]
    pub update_max_failure_ratio: Option<f64>,
    /// Tasks replaced at the same time during a rollback (default 1; 0 = all at once).
    #[arg(long, value_name = "N", value_parser = count, allow_negative_numbers = true)]
    pub rollback_parallelism: Option<u64>,
    /// Wait between a slot's rolled-back task running and the next slot's (default 0s).
    #[arg(long, value_name = "DURATION", value_parser = parse::duration)]
    pub rollback_delay: Option<Duration>,
    /// stop-first (default) or start-first.
    #[arg(long, value_enum, value_name = "ORDER")]
    pub rollback_order: Option<OrderArg>,
    /// What to do when too many tasks fail during a rollback: pause (default) or continue.
    #[arg(long, value_enum, value_name = "ACTION")]
    pub rollback_failure_action: Option<RollbackFailureArg>,
    /// How long after it starts a task's failure counts against the rollback (default 5s).
    #[arg(long, value_name = "DURATION", value_parser = parse::duration)]
    pub rollback_monitor: Option<Duration>,
    /// Share of the tasks that may fail during a rollback, 0 to 1 (default 0).
    #[arg(long, value_name = "RATIO", value_parser = ratio, allow_negative_numbers = true)]
    pub rollback_max_failure_ratio: Option<f64>,
}

impl PolicyArgs {
    /// Applies the flags that were given to `spec`.
    pub fn apply(&self, spec: &mut ServiceSpec) {
        let ms = |d: Duration| u64::try_from(d.as_millis()).unwrap_or(u64::MAX);
        let u = &mut spec.update;
        set(&mut u.parallelism, self.update_parallelism);
        set(&mut u.delay_ms, self.update_delay.map(ms));
        set(&mut u.order, self.update_order.map(Into::into));
        set(
            &mut u.failure_action,
            self.update_failure_action.map(|a| match a {
                UpdateFailureArg::Pause => FailureAction::Pause,
                UpdateFailureArg::Continue => FailureAction::Continue,
                UpdateFailureArg::Rollback => FailureAction::Rollback,
            }),
        );
        set(&mut u.monitor_ms, self.update_monitor.map(ms));
        set(&mut u.max_failure_ratio, self.update_max_failure_ratio);
        let r = &mut spec.rollback;
        set(&mut r.parallelism, self.rollback_parallelism);
        set(&mut r.delay_ms, self.rollback_delay.map(ms));
        set(&mut r.order, self.rollback_order.map(Into::into));
        set(
            &mut r.failure_action,
            self.rollback_failure_action.map(|a| match a {
                RollbackFailureArg::Pause => FailureAction::Pause,
                RollbackFailureArg::Continue => FailureAction::Continue,
            }),
        );
        set(&mut r.monitor_ms, self.rollback_monitor.map(ms));
        set(&mut r.max_failure_ratio, self.rollback_max_failure_ratio);
    }
}

fn set<T>(field: &mut T, v: Option<T>) {
    if let Some(v) = v {
        *field = v;
    }
}

/// A task count: a whole number, 0 or more.
fn count(s: &str) -> Result<u64, String> {
    s.trim()
        .parse::<u64>()
        .map_err(|_| format!("{s:?} is not a number of tasks (0 or more; 0 = all at once)"))
}

/// A failure ratio: a number from 0 to 1.
fn ratio(s: &str) -> Result<f64, String> {
    match s.trim().parse::<f64>() {
        Ok(v) if (0.0..=1.0).contains(&v) => Ok(v),
        _ => Err(format!(
            "{s:?} is not a ratio between 0 and 1 (a share of the tasks, e.g. 0.2)"
        )),
    }
}

/// Docker's `UpdateConfig` lines of `service inspect --pretty`; `what` is `Update` or
/// `Rollback`.
pub fn pretty(c: &UpdateConfig, what: &str) -> Vec<(String, String)> {
    let mut v = vec![(" Parallelism".to_string(), c.parallelism.to_string())];
    if c.delay_ms > 0 {
        v.push((" Delay".into(), crate::ctl::output::millis(c.delay_ms)));
    }
    v.push((" On failure".into(), c.failure_action.as_str().into()));
    v.push((
        " Monitoring Period".into(),
        crate::ctl::output::millis(c.monitor_ms),
    ));
    v.push((" Max failure ratio".into(), c.max_failure_ratio.to_string()));
    v.push((format!(" {what} order"), c.order.as_str().into()));
    v
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_and_ratios() {
        assert_eq!(count("0"), Ok(0));
        assert_eq!(count("3"), Ok(3));
        assert!(count("-1").is_err());
        assert!(count("two").is_err());
        assert_eq!(ratio("0.25"), Ok(0.25));
        assert_eq!(ratio("1"), Ok(1.0));
        for bad in ["-0.1", "1.5", "NaN", "inf", "x"] {
            assert!(ratio(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn only_given_flags_change_the_spec() {
        let mut spec = ServiceSpec::default();
        PolicyArgs {
            update_parallelism: Some(2),
            update_order: Some(OrderArg::StartFirst),
            rollback_failure_action: Some(RollbackFailureArg::Continue),
            ..Default::default()
        }
        .apply(&mut spec);
        assert_eq!(spec.update.parallelism, 2);
        assert_eq!(spec.update.order, UpdateOrder::StartFirst);
        assert_eq!(spec.update.monitor_ms, 5_000, "the default stays");
        assert_eq!(spec.rollback.failure_action, FailureAction::Continue);
        assert_eq!(spec.rollback.parallelism, 1);
    }
}
