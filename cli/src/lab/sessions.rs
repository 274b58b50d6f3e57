//! The `lab shell` and `lab exec` sessions of a lab: processes found by the network namespace
//! they run in (one of the lab's), as `ip netns pids` finds them, and ended by pid.

use super::procs::{others, parent_of, signal, ProcInfo};
use std::path::Path;
use std::time::{Duration, Instant};

/// The identity of a namespace file, `(st_dev, st_ino)` as `stat(2)` reports it: for a
/// bind-mounted namespace file and for `/proc/<pid>/ns/net` (`stat` follows the magic link)
/// both are those of the nsfs inode, so equal pairs are the same namespace (this is how
/// `ip netns identify` matches them).
pub fn ns_id(path: &Path) -> Option<(u64, u64)> {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata(path).ok().map(|m| (m.dev(), m.ino()))
}

/// Every live process (but this one and its ancestors) whose network namespace is one of `ids`
/// (see [`ns_id`]).
pub fn in_namespaces(ids: &[(u64, u64)]) -> Vec<ProcInfo> {
    if ids.is_empty() {
        return Vec::new();
    }
    others()
        .into_iter()
        .filter(|p| {
            ns_id(Path::new(&format!("/proc/{}/ns/net", p.pid))).is_some_and(|id| ids.contains(&id))
        })
        .collect()
}

/// What [`end_sessions`] ended.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Ended {
    /// Every process ended, by pid.
    pub pids: Vec<u32>,
    /// How many sessions (trees of processes whose root's parent is outside the namespaces)
    /// they were: one per `lab shell` or `lab exec`.
    pub sessions: usize,
}

/// Ends the `lab shell` / `lab exec` sessions of a lab: every process whose network namespace is
/// one of `ids` and that is neither a swarmd of the lab in `nodes` nor one of its tasks (see
/// [`ProcInfo::belongs_to`]) gets SIGHUP, as when a terminal hangs up, and SIGKILL when it is
/// still there after `grace`. Each is checked again just before it is signalled; this process
/// and its ancestors are never touched (`lab down` run from a lab shell survives).
pub fn end_sessions(ids: &[(u64, u64)], nodes: &Path, grace: Duration) -> Ended {
    let is_target = |p: &ProcInfo| !p.zombie && !p.is_lab_swarmd(nodes) && !p.belongs_to(nodes);
    let still_target = |pid: u32| {
        ProcInfo::read(pid).is_some_and(|p| {
            is_target(&p)
                && ns_id(Path::new(&format!("/proc/{pid}/ns/net")))
                    .is_some_and(|id| ids.contains(&id))
        })
    };
    let mut ended = Ended::default();
    for round in 0..5 {
        let found: Vec<u32> = in_namespaces(ids)
            .into_iter()
            .filter(|p| is_target(p))
            .map(|p| p.pid)
            .collect();
        if found.is_empty() {
            break;
        }
        ended.sessions += found
            .iter()
            .filter(|pid| !ended.pids.contains(pid))
            .filter(|pid| parent_of(**pid).is_none_or(|pp| !found.contains(&pp)))
            .count();
        // After the first round, whatever is left was started meanwhile: no second chance.
        let first = if round == 0 { "HUP" } else { "KILL" };
        for &pid in &found {
            if still_target(pid) {
                signal(pid, first);
            }
        }
        let started = Instant::now();
        while found.iter().any(|p| still_target(*p)) && started.elapsed() < grace {
            std::thread::sleep(Duration::from_millis(50));
        }
        for &pid in &found {
            if still_target(pid) {
                signal(pid, "KILL");
            }
            if !ended.pids.contains(&pid) {
                ended.pids.push(pid);
            }
        }
    }
    ended
}
