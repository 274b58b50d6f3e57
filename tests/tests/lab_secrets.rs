//! Secrets and configs in containers on a `swarmctl lab` (root), driven as a user drives it:
//! * a `db` service on the worker reads its password from `/run/secrets/db_pass` with the mode,
//!   uid and gid asked for, on an in-memory file system, read-only; its config is at its target;
//! * `secret rm` of the secret it uses is refused; rotation with `--secret-rm/--secret-add`
//!   gives the new task the new value at the same path;
//! * the secret values are found nowhere on the nodes' disks (a bounded `grep -r` over the
//!   lab's directory: every node's state dir, raft data, image store, logs, the registry), in
//!   no answer of the API and in no log, while the tasks run and after they end; once the
//!   service is gone no tmpfs of a task is left on the node.

use shoal_netlib::root::root_or_skip;
use shoal_tests::lab::{demo_images_or_skip, Lab};
use shoal_tests::{wait_for, Output};
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

const MARKER: &str = "lab-secret-marker-93be27";
const MARKER2: &str = "lab-secret-marker-rotated-51aa0c";

fn sha256(data: &str) -> String {
    let out = Command::new("sha256sum")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .and_then(|mut c| {
            use std::io::Write;
            c.stdin.take().unwrap().write_all(data.as_bytes())?;
            c.wait_with_output()
        })
        .unwrap();
    String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .next()
        .unwrap()
        .to_string()
}

/// Every file under `dir` that holds `marker` (`grep -r -l -F`, at most 120 s).
fn files_with(dir: &Path, marker: &str) -> String {
    let out = Command::new("timeout")
        .args(["120", "grep", "-r", "-l", "-F", "-s", marker])
        .arg(dir)
        .output()
        .unwrap();
    // 0: found, 1: not found, 2: an unreadable file (sockets, vanished files): still answered.
    assert!(
        matches!(out.status.code(), Some(0..=2)),
        "grep over {}: {:?}",
        dir.display(),
        out.status
    );
    String::from_utf8_lossy(&out.stdout).to_string()
}

/// The tasks' secrets mounts (`…/tasks/<id>/files`) under `dir` in this (the nodes') mount
/// namespace. (Other mounts there may be tmpfs too: the namespaces' directories when the
/// lab's directory is on a tmpfs.)
fn secrets_mounts_under(dir: &Path) -> Vec<String> {
    let info = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    let dir = dir.display().to_string();
    info.lines()
        .filter(|l| {
            let point = l.split(' ').nth(4).unwrap_or_default();
            point.starts_with(&dir) && point.ends_with("/files") && point.contains("/tasks/")
        })
        .map(String::from)
        .collect()
}

/// The running task of `service` (one replica) and its pid.
fn task_of(lab: &Lab, service: &str) -> (String, u64) {
    let t = lab.running(service, 1).remove(0);
    (t.id, t.pid)
}

/// A private directory for the files `secret create` reads, removed when dropped.
struct SrcDir(std::path::PathBuf);

impl SrcDir {
    fn new() -> SrcDir {
        let d = std::env::temp_dir().join(format!("shoal-secret-src-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).unwrap();
        SrcDir(d)
    }
}

impl Drop for SrcDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// `swarmctl ARGS`, which must succeed; what it said is added to `answers`.
fn ok(lab: &Lab, answers: &mut String, args: &[&str]) -> String {
    let out = lab.swarmctl(args);
    *answers += &out.stdout;
    *answers += &out.stderr;
    assert!(out.success(), "swarmctl {args:?}: {out}");
    out.stdout
}

fn exec(lab: &Lab, task: &str, script: &str) -> Output {
    wait_for("task exec", Duration::from_secs(30), || {
        let out = lab.swarmctl(&["task", "exec", task, "--", "sh", "-c", script]);
        if out.success() {
            Ok(out)
        } else {
            Err(out.to_string())
        }
    })
}

#[ignore = "needs root"]
#[test]
fn secrets_reach_their_tasks_in_memory_only() {
    if !root_or_skip() {
        return;
    }
    let Some(images) = demo_images_or_skip() else {
        return;
    };
    let t0 = Instant::now();
    let at = || t0.elapsed().as_secs_f64();
    let mut lab = Lab::new();
    lab.subnet = "198.19.77.0/24".into();
    lab.up_with_images(1, 1, &images);
    let mut answers = String::new();

    // The secret's file lives outside the lab (so that the grep below does not find it) and
    // only until `secret create` read it.
    let src = SrcDir::new();
    let pass = src.0.join("db_pass");
    std::fs::write(&pass, MARKER).unwrap();
    let conf = src.0.join("app.conf");
    std::fs::write(&conf, "max_connections = 7\n").unwrap();
    ok(
        &lab,
        &mut answers,
        &["secret", "create", "db_pass", pass.to_str().unwrap()],
    );
    ok(
        &lab,
        &mut answers,
        &["config", "create", "db_conf", conf.to_str().unwrap()],
    );
    std::fs::remove_file(&pass).unwrap();

    ok(
        &lab,
        &mut answers,
        &[
            "service",
            "create",
            "--name",
            "db",
            "--constraint",
            "node.role==worker",
            "--secret",
            "src=db_pass,target=db_pass,uid=70,gid=71,mode=0400",
            "--config",
            "src=db_conf,target=/etc/db/app.conf,mode=0440",
            "shoal/busybox",
            "sleep",
            "100000",
        ],
    );
    let (task, pid) = task_of(&lab, "db");
    eprintln!("[{:>5.1}s] db runs with its secret", at());
    let out = exec(
        &lab,
        &task,
        "busybox stat -c '%a %u %g %n' /run/secrets/db_pass /etc/db/app.conf; \
         busybox sha256sum < /run/secrets/db_pass; cat /etc/db/app.conf; \
         (echo x > /run/secrets/db_pass) 2>/dev/null && echo WROTE; \
         grep ' /run/secrets/db_pass ' /proc/self/mountinfo",
    );
    answers += &out.stdout;
    let text = &out.stdout;
    assert!(text.contains("400 70 71 /run/secrets/db_pass"), "{out}");
    assert!(text.contains("440 0 0 /etc/db/app.conf"), "{out}");
    assert!(text.contains(&sha256(MARKER)), "the password: {out}");
    assert!(text.contains("max_connections = 7"), "the config: {out}");
    assert!(!text.contains("WROTE"), "read-only: {out}");
    let mount = text
        .lines()
        .find(|l| l.contains(" /run/secrets/db_pass "))
        .unwrap_or_else(|| panic!("no mount: {out}"));
    assert!(mount.contains(" - tmpfs "), "in memory: {mount}");
    // The container's own mount namespace holds it; the node's does not.
    let inside = std::fs::read_to_string(format!("/proc/{pid}/mountinfo")).unwrap();
    assert!(inside.contains(" /run/secrets/db_pass "), "{inside}");
    assert!(
        secrets_mounts_under(&lab.dir()).is_empty(),
        "{:?}",
        secrets_mounts_under(&lab.dir())
    );

    // In use: refused.
    let rm = lab.swarmctl(&["secret", "rm", "db_pass"]);
    assert!(!rm.success(), "{rm}");
    assert!(
        rm.stderr
            .contains("secret 'db_pass' is in use by the following service: db"),
        "{rm}"
    );

    // Rotation: a new secret at the same target; then the old one can go.
    std::fs::write(&pass, MARKER2).unwrap();
    ok(
        &lab,
        &mut answers,
        &["secret", "create", "db_pass_v2", pass.to_str().unwrap()],
    );
    std::fs::remove_file(&pass).unwrap();
    ok(
        &lab,
        &mut answers,
        &[
            "service",
            "update",
            "--secret-rm",
            "db_pass",
            "--secret-add",
            "src=db_pass_v2,target=db_pass,uid=70,gid=71,mode=0400",
            "db",
        ],
    );
    let (task2, _) = task_of(&lab, "db");
    assert_ne!(task2, task, "a new task");
    let out = exec(&lab, &task2, "busybox sha256sum < /run/secrets/db_pass");
    answers += &out.stdout;
    assert!(out.stdout.contains(&sha256(MARKER2)), "rotated: {out}");
    ok(&lab, &mut answers, &["secret", "rm", "db_pass"]);
    eprintln!("[{:>5.1}s] rotated", at());

    // Nowhere on the nodes' disks while the task runs (raft data, logs and all). The grep
    // does find what is there (a line of every node's log).
    let control = files_with(&lab.dir(), "session established");
    assert!(
        control.contains("swarmd.log"),
        "grep finds nothing? {control}"
    );
    for m in [MARKER, MARKER2] {
        let found = files_with(&lab.dir(), m);
        assert!(found.is_empty(), "{m} on disk in:\n{found}");
    }

    // After the task: nothing of it on the node.
    ok(&lab, &mut answers, &["service", "rm", "db"]);
    wait_for("db's task ends", Duration::from_secs(60), || {
        let alive = Path::new(&format!("/proc/{pid}")).exists();
        let ps = lab.swarmctl(&["service", "ls", "-q"]);
        (!alive && ps.success() && ps.stdout.trim().is_empty())
            .then_some(())
            .ok_or_else(|| format!("pid {pid} alive: {alive}; {ps}"))
    });
    assert!(
        secrets_mounts_under(&lab.dir()).is_empty(),
        "{:?}",
        secrets_mounts_under(&lab.dir())
    );
    ok(&lab, &mut answers, &["secret", "rm", "db_pass_v2"]);
    ok(&lab, &mut answers, &["config", "rm", "db_conf"]);
    for m in [MARKER, MARKER2] {
        let found = files_with(&lab.dir(), m);
        assert!(found.is_empty(), "{m} on disk in:\n{found}");
        assert!(!answers.contains(m), "an answer showed {m}:\n{answers}");
    }
    eprintln!("[{:>5.1}s] nothing left", at());
}
