//! Root tests: real tasks with limits, in real cgroups beneath the test process's own (the
//! test process stands in for swarmd). Skipped without root, except under CI (`CI` set),
//! where a missing root is a failure. Each test kills its task and removes its cgroups by exact
//! path when it ends, even on failure.

use super::*;
use crate::executor::process::{signal_group, stop, ProcessExecutor};
use crate::network::Sandbox;
use crate::reporter::Reporter;
use crate::test_util::root;
use crate::worker::Worker;
use shoal_netlib::netns::{self, NetNs};
use shoal_proto::model::{new_id, Task, TaskState, TaskStatus};
use shoal_proto::pb;

/// Kills the task's process group and removes its cgroups when dropped.
struct Guard {
    pgid: u32,
    dirs: Vec<PathBuf>,
}

impl Drop for Guard {
    fn drop(&mut self) {
        if self.pgid > 1 {
            signal_group(self.pgid, libc::SIGKILL);
        }
        for d in &self.dirs {
            for _ in 0..100 {
                match fs::remove_dir(d) {
                    Err(e) if e.kind() != io::ErrorKind::NotFound => {
                        std::thread::sleep(Duration::from_millis(20))
                    }
                    _ => break,
                }
            }
        }
    }
}

/// Where a task's cgroups must be, worked out from `/proc/self/cgroup` here rather than by the
/// code under test: memory then cpu on v1, the one directory on v2.
fn expected_dirs(task_id: &str) -> (Version, Vec<PathBuf>) {
    let text = fs::read_to_string("/proc/self/cgroup").unwrap();
    let root = Path::new(DEFAULT_ROOT);
    let name = format!("shoal-{task_id}");
    let v2 = fs::read_to_string(root.join("cgroup.controllers"))
        .is_ok_and(|c| c.split_whitespace().any(|c| c == "memory"));
    if v2 {
        let own = text.lines().find_map(|l| l.strip_prefix("0::")).unwrap();
        let own = root.join(own.trim_start_matches('/'));
        return (Version::V2, vec![own.join("shoal-tasks").join(name)]);
    }
    let dir_of = |controller: &str| {
        let (list, path) = text
            .lines()
            .find_map(|l| {
                let mut p = l.splitn(3, ':');
                let (_, list, path) = (p.next()?, p.next()?, p.next()?);
                list.split(',')
                    .any(|c| c == controller)
                    .then_some((list, path))
            })
            .unwrap_or_else(|| panic!("no {controller} hierarchy"));
        let mount = [root.join(list), root.join(controller)]
            .into_iter()
            .find(|m| m.is_dir())
            .unwrap();
        mount.join(path.trim_start_matches('/')).join(&name)
    };
    (Version::V1, vec![dir_of("memory"), dir_of("cpu")])
}

fn task(id: &str, desired: TaskState, observed: TaskState) -> Task {
    Task {
        id: id.into(),
        service_name: "cg".into(),
        spec: ServiceSpec {
            image: "sh".into(),
            args: vec!["-c".into(), "cat /proc/self/cgroup; sleep 5".into()],
            limit_memory_bytes: 64 << 20,
            limit_cpus: 0.5,
            ..Default::default()
        },
        desired_state: desired,
        status: TaskStatus {
            state: observed,
            ..Default::default()
        },
        ..Default::default()
    }
}

/// Checks the limits, that `pid` is in every cgroup, and that the task printed its cgroup.
async fn check_task_cgroups(
    ex: &ProcessExecutor,
    task_id: &str,
    version: Version,
    dirs: &[PathBuf],
    pid: u32,
) {
    let value = |d: &PathBuf, f: &str| read(&d.join(f)).trim().to_string();
    match version {
        Version::V1 => {
            assert_eq!(value(&dirs[0], "memory.limit_in_bytes"), "67108864");
            assert_eq!(value(&dirs[1], "cpu.cfs_period_us"), "100000");
            assert_eq!(value(&dirs[1], "cpu.cfs_quota_us"), "50000");
        }
        Version::V2 => {
            assert_eq!(value(&dirs[0], "memory.max"), "67108864");
            assert_eq!(value(&dirs[0], "cpu.max"), "50000 100000");
        }
    }
    for d in dirs {
        let procs = value(d, "cgroup.procs");
        assert!(
            procs.lines().any(|p| p == pid.to_string()),
            "pid {pid} not in {}: {procs:?}",
            d.display()
        );
    }
    // The task's own view: its first cgroup (memory on v1) ends with its name.
    let want = format!("/shoal-{task_id}");
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let out = ex.read_log(task_id, "stdout", 0).unwrap();
        let lines: Vec<String> = out
            .iter()
            .map(|l| String::from_utf8_lossy(l).to_string())
            .collect();
        let line = lines.iter().find(|l| match version {
            Version::V1 => l.split(':').nth(1) == Some("memory"),
            Version::V2 => l.starts_with("0::"),
        });
        if let Some(l) = line {
            assert!(l.ends_with(&want), "{l:?} should end with {want}");
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the task printed no cgroup line: {lines:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

async fn wait_status(r: &Reporter, id: &str, state: TaskState) -> TaskStatus {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
    loop {
        if let Some(s) = r.latest(id).filter(|s| s.state == state) {
            return s;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "task {id} never reported {state:?}: {:?}",
            r.latest(id)
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[ignore = "needs root"]
#[tokio::test]
async fn plain_task_runs_in_its_cgroups_until_it_stops() {
    if !root() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let ex = ProcessExecutor::new(dir.path().join("tasks"), "n1".into());
    let r = Reporter::default();
    let w = Worker::new(
        std::sync::Arc::new(ex.clone()),
        r.clone(),
        crate::worker::Timings::default(),
        crate::background::Background::new(),
    );
    let id = new_id();
    let (version, dirs) = expected_dirs(&id);
    let mut guard = Guard {
        pgid: 0,
        dirs: dirs.clone(),
    };
    let assign = |t: &Task| pb::Assignments {
        full: true,
        tasks: vec![t.into()],
        ..Default::default()
    };
    w.apply(&assign(&task(&id, TaskState::Running, TaskState::Assigned)));
    let s = wait_status(&r, &id, TaskState::Running).await;
    guard.pgid = s.pid;
    check_task_cgroups(&ex, &id, version, &dirs, s.pid).await;

    w.apply(&assign(&task(&id, TaskState::Shutdown, TaskState::Running)));
    wait_status(&r, &id, TaskState::Shutdown).await;
    // The worker removes the cgroups before it reports the final state.
    for d in &dirs {
        assert!(
            !d.exists(),
            "{} is left after the task stopped",
            d.display()
        );
    }
}

/// A network namespace file under a temporary directory, deleted (and the directory's mount
/// released) when dropped.
struct Ns {
    dir: tempfile::TempDir,
    ns: Option<NetNs>,
}

impl Drop for Ns {
    fn drop(&mut self) {
        if let Some(ns) = self.ns.take() {
            let _ = ns.delete();
        }
        let _ = netns::release_dir(self.dir.path());
    }
}

// `Sandbox::Host` would need no namespace, but its child mounts a fresh sysfs, which the
// kernel refuses (EBUSY) in the node's own network namespace: the task gets a namespace of
// its own without interfaces instead.
#[ignore = "needs root"]
#[tokio::test]
async fn sandboxed_task_runs_in_its_cgroups() {
    if !root() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let ex = ProcessExecutor::new(dir.path().join("tasks"), "n1".into());
    let t = task(&new_id(), TaskState::Running, TaskState::Assigned);
    let (version, dirs) = expected_dirs(&t.id);
    let mut guard = Guard {
        pgid: 0,
        dirs: dirs.clone(),
    };
    let ns_dir = tempfile::Builder::new()
        .prefix("shoal-agent-cg-")
        .tempdir()
        .unwrap();
    let mut ns = Ns {
        ns: Some(NetNs::create(ns_dir.path(), "task").unwrap()),
        dir: ns_dir,
    };
    let sandbox = Sandbox::Netns {
        path: ns.ns.as_ref().unwrap().path().to_path_buf(),
        interfaces: vec![],
    };
    let mut running = ex.start_in(&t, Some(&sandbox)).unwrap();
    guard.pgid = running.pid;
    check_task_cgroups(&ex, &t.id, version, &dirs, running.pid).await;

    stop(&mut running, Duration::from_secs(5)).await;
    drop(running);
    ex.cleanup(&t.id).await;
    for d in &dirs {
        assert!(
            !d.exists(),
            "{} is left after the task stopped",
            d.display()
        );
    }
    drop(ns.ns.take());
}
