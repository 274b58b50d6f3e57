//! Tasks that outlive `swarmd`. A sandboxed task's pid and the kernel's start time of that
//! process are kept in `<task dir>/run.json`; a restarted agent finds the tasks whose process is
//! still the same one (same pid, same start time: a reused pid is not mistaken for the task) and
//! supervises them again instead of replacing them.

use std::path::Path;

use serde::{Deserialize, Serialize};

const FILE: &str = "run.json";

#[derive(Debug, Serialize, Deserialize, PartialEq, Eq)]
struct Record {
    pid: u32,
    start: u64,
}

/// The start time of `pid` (field 22 of `/proc/<pid>/stat`, in clock ticks since boot).
pub fn start_time(pid: u32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name (field 2) is in parentheses and may hold spaces: split after it.
    let rest = &stat[stat.rfind(')')? + 2..];
    rest.split_whitespace().nth(19)?.parse().ok()
}

/// Whether `pid` is still the process that started at `start` (and not a zombie).
pub fn alive(pid: u32, start: u64) -> bool {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let zombie = stat
        .rfind(')')
        .and_then(|i| stat[i + 2..].split_whitespace().next().map(|s| s == "Z"))
        .unwrap_or(true);
    !zombie && start_time(pid) == Some(start)
}

/// Remembers that the task in `dir` runs as `pid`.
pub fn record(dir: &Path, pid: u32) {
    if let Some(start) = start_time(pid) {
        if let Ok(b) = serde_json::to_vec(&Record { pid, start }) {
            let _ = std::fs::write(dir.join(FILE), b);
        }
    }
}

/// Forgets the task in `dir` (it ended).
pub fn forget(dir: &Path) {
    let _ = std::fs::remove_file(dir.join(FILE));
}

/// The process of the task in `dir`, if it still runs: (pid, start time). A record of a
/// process that is gone is forgotten.
pub fn load(dir: &Path) -> Option<(u32, u64)> {
    let r: Record = serde_json::from_slice(&std::fs::read(dir.join(FILE)).ok()?).ok()?;
    if alive(r.pid, r.start) {
        Some((r.pid, r.start))
    } else {
        forget(dir);
        None
    }
}

/// Tasks under `tasks_dir` whose process still runs: (task id, pid, start time).
pub fn find(tasks_dir: &Path) -> Vec<(String, u32, u64)> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(tasks_dir).into_iter().flatten().flatten() {
        let Ok(b) = std::fs::read(e.path().join(FILE)) else {
            continue;
        };
        let Ok(r) = serde_json::from_slice::<Record>(&b) else {
            continue;
        };
        if alive(r.pid, r.start) {
            out.push((e.file_name().to_string_lossy().to_string(), r.pid, r.start));
        } else {
            forget(&e.path());
        }
    }
    out.sort();
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_a_live_process_and_forgets_a_dead_one() {
        let dir = tempfile::tempdir().unwrap();
        let me = std::process::id();
        std::fs::create_dir_all(dir.path().join("live")).unwrap();
        record(&dir.path().join("live"), me);
        std::fs::create_dir_all(dir.path().join("gone")).unwrap();
        let stale = serde_json::to_vec(&Record { pid: me, start: 1 }).unwrap();
        std::fs::write(dir.path().join("gone").join(FILE), stale).unwrap();
        let found = find(dir.path());
        assert_eq!(found.len(), 1);
        assert_eq!(found[0].0, "live");
        assert_eq!(found[0].1, me);
        assert!(
            !dir.path().join("gone").join(FILE).exists(),
            "a dead record is removed"
        );
        forget(&dir.path().join("live"));
        assert!(find(dir.path()).is_empty());
    }

    #[test]
    fn start_time_parses_names_with_spaces() {
        assert!(start_time(std::process::id()).is_some());
        assert!(start_time(u32::MAX).is_none());
    }
}
