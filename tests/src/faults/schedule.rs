//! The fault schedule: a pure function of the seed, the number of managers and the run's
//! length, so a failing seed replays the same faults in the same order with the same timings
//! (only which manager is the leader at a leader-targeted step depends on the run).

use super::rng::Rng;
use std::fmt;
use std::time::Duration;

/// Which manager a fault hits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Target {
    /// Manager `i` (0-based: `manager{i+1}`).
    Node(usize),
    /// Whichever manager leads when the fault starts.
    Leader,
}

impl fmt::Display for Target {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Target::Node(i) => write!(f, "manager{}", i + 1),
            Target::Leader => f.write_str("the leader"),
        }
    }
}

/// One fault.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Fault {
    /// `kill -9` the manager's swarmd, and start it again on the same state dir when the
    /// fault heals.
    Kill(Target),
    /// SIGSTOP the manager's swarmd; SIGCONT when the fault heals.
    Pause(Target),
    /// Cut the manager off from every other manager (nftables in the namespaces).
    Isolate(Target),
    /// Split the managers in two groups that cannot reach each other: `minority` (0-based
    /// indices, fewer than half) against the rest.
    Split { minority: Vec<usize> },
}

impl fmt::Display for Fault {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Fault::Kill(t) => write!(f, "kill -9 {t} (restart on heal)"),
            Fault::Pause(t) => write!(f, "SIGSTOP {t} (SIGCONT on heal)"),
            Fault::Isolate(t) => write!(f, "isolate {t}"),
            Fault::Split { minority } => {
                let names: Vec<String> = minority
                    .iter()
                    .map(|i| format!("manager{}", i + 1))
                    .collect();
                write!(f, "partition {{{}}} | rest", names.join(","))
            }
        }
    }
}

impl Fault {
    /// A short name for counting faults by kind.
    pub fn kind(&self) -> &'static str {
        match self {
            Fault::Kill(Target::Leader) => "kill-leader",
            Fault::Kill(_) => "kill",
            Fault::Pause(Target::Leader) => "pause-leader",
            Fault::Pause(_) => "pause",
            Fault::Isolate(Target::Leader) => "isolate-leader",
            Fault::Isolate(_) => "isolate",
            Fault::Split { .. } => "split",
        }
    }
}

/// One step: the cluster runs `quiet` undisturbed, then `fault` holds for `hold`, then heals.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Step {
    /// Undisturbed time before the fault.
    pub quiet: Duration,
    /// The fault.
    pub fault: Fault,
    /// How long it holds before it heals.
    pub hold: Duration,
}

/// The steps of a run of about `length` (their quiet and hold times add up to at most
/// `length`; healing and restarts take extra time) on `managers` managers.
pub fn plan(seed: u64, managers: usize, length: Duration) -> Vec<Step> {
    let mut rng = Rng::fork(seed, 0xFA17);
    let n = managers.max(1);
    let mut steps = Vec::new();
    let mut used = Duration::ZERO;
    loop {
        let quiet = Duration::from_millis(rng.between(500, 2500));
        let hold = Duration::from_millis(rng.between(800, 4000));
        if used + quiet + hold > length {
            break;
        }
        used += quiet + hold;
        let target = if rng.percent(40) {
            Target::Leader
        } else {
            Target::Node(rng.below(n as u64) as usize)
        };
        let fault = match rng.below(4) {
            0 => Fault::Kill(target),
            1 => Fault::Pause(target),
            2 => Fault::Isolate(target),
            _ => {
                let size = 1 + rng.below(((n - 1) / 2).max(1) as u64) as usize;
                let mut all: Vec<usize> = (0..n).collect();
                let mut minority = Vec::new();
                for _ in 0..size.min(n.saturating_sub(1)) {
                    minority.push(all.remove(rng.below(all.len() as u64) as usize));
                }
                minority.sort_unstable();
                Fault::Split { minority }
            }
        };
        steps.push(Step { quiet, fault, hold });
    }
    steps
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_seed_always_gives_the_same_schedule_within_the_length() {
        let a = plan(42, 5, Duration::from_secs(40));
        assert_eq!(a, plan(42, 5, Duration::from_secs(40)));
        assert_ne!(a, plan(43, 5, Duration::from_secs(40)));
        assert!(!a.is_empty());
        let total: Duration = a.iter().map(|s| s.quiet + s.hold).sum();
        assert!(total <= Duration::from_secs(40));
    }

    #[test]
    fn splits_leave_a_majority_and_targets_exist() {
        for seed in 0..200 {
            for n in [3, 5] {
                for s in plan(seed, n, Duration::from_secs(60)) {
                    match s.fault {
                        Fault::Split { minority } => {
                            assert!(!minority.is_empty() && minority.len() <= (n - 1) / 2);
                            assert!(minority.iter().all(|&i| i < n));
                        }
                        Fault::Kill(Target::Node(i))
                        | Fault::Pause(Target::Node(i))
                        | Fault::Isolate(Target::Node(i)) => assert!(i < n),
                        _ => {}
                    }
                }
            }
        }
    }
}
