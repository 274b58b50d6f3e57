//! The process executor on its own (no sandbox: no root needed).

use super::*;
use shoal_proto::model::ServiceSpec;

fn task(image: &str, args: &[&str]) -> Task {
    Task {
        id: shoal_proto::model::new_id().into(),
        service_name: "t".into(),
        spec: ServiceSpec {
            image: image.into(),
            args: args.iter().map(|s| s.to_string()).collect(),
            env: vec!["GREETING=hi".into()],
            ..Default::default()
        },
        ..Default::default()
    }
}

#[tokio::test]
async fn runs_logs_and_exit_codes() {
    let dir = tempfile::tempdir().unwrap();
    let ex = ProcessExecutor::new(dir.path().to_path_buf(), "n1".into());
    let t = task(
        "sh",
        &[
            "-c",
            "echo $GREETING $SHOAL_TASK_NAME; echo oops >&2; exit 3",
        ],
    );
    let mut r = ex.start(&t).unwrap();
    let status = r.child.wait().await.unwrap();
    assert_eq!(status.code(), Some(3));
    let out = ex.read_log(&t.id, "stdout", 0).unwrap();
    assert_eq!(out, vec![format!("hi {}", t.name()).into_bytes()]);
    assert_eq!(
        ex.read_log(&t.id, "stderr", 0).unwrap(),
        vec![b"oops".to_vec()]
    );
}

#[tokio::test]
async fn stop_terminates_the_group() {
    let dir = tempfile::tempdir().unwrap();
    let ex = ProcessExecutor::new(dir.path().to_path_buf(), "n1".into());
    let mut r = ex.start(&task("sleep", &["100"])).unwrap();
    let code = stop(&mut r, Duration::from_secs(5)).await;
    assert!(code.is_some());
    assert!(!signal_group(r.pid, 0), "group is gone");
}

#[test]
fn unknown_program_is_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let ex = ProcessExecutor::new(dir.path().to_path_buf(), "n1".into());
    let err = ex.start(&task("no-such-program-xyz", &[])).unwrap_err();
    assert!(matches!(err, Error::NotFound { .. }), "{err}");
    assert_eq!(
        err.to_string(),
        "executable \"no-such-program-xyz\" not found on this node (looked next to swarmd and in PATH)"
    );
}

#[test]
fn tail() {
    let dir = tempfile::tempdir().unwrap();
    let ex = ProcessExecutor::new(dir.path().to_path_buf(), "n1".into());
    std::fs::create_dir_all(ex.task_dir("x")).unwrap();
    std::fs::write(ex.task_dir("x").join("stdout.log"), "a\nb\nc\n").unwrap();
    assert_eq!(
        ex.read_log("x", "stdout", 2).unwrap(),
        vec![b"b".to_vec(), b"c".to_vec()]
    );
    assert!(ex.read_log("y", "stdout", 0).unwrap().is_empty());
}

#[tokio::test]
async fn an_adopted_task_is_waited_for_and_stopped_through_its_controller() {
    use crate::executor::{Executor, Exit};
    use std::os::unix::process::CommandExt;
    let dir = tempfile::tempdir().unwrap();
    let ex = ProcessExecutor::new(dir.path().to_path_buf(), "n1".into());
    // A task a previous swarmd left: a process group of its own, recorded in its directory.
    let mut child = std::process::Command::new("sleep")
        .arg("100")
        .process_group(0)
        .spawn()
        .unwrap();
    std::fs::create_dir_all(ex.task_dir("left")).unwrap();
    crate::executor::adopt::record(&ex.task_dir("left"), child.id());
    assert_eq!(ex.adoptable(), ["left"]);
    assert_eq!(ex.controller("other").adopt().await.unwrap(), None);
    let mut ctl = ex.controller("left");
    assert_eq!(ctl.adopt().await.unwrap(), Some(child.id()));
    let waiting = tokio::time::timeout(Duration::from_millis(300), ctl.wait()).await;
    assert!(waiting.is_err(), "it still runs");
    assert_eq!(ctl.shutdown(Duration::from_secs(5)).await.unwrap(), None);
    let _ = child.wait(); // reap it: the controller saw it die (a zombie is dead)
    assert_eq!(ctl.wait().await.unwrap(), Exit::Unknown);
    ctl.remove().await;
    assert!(ex.adoptable().is_empty(), "its record is gone");
}

/// A command that outlives its timeout is killed with everything it started (a health probe
/// `sh -c 'sleep …; …'` leaves no `sleep` behind).
#[tokio::test]
async fn a_timed_out_exec_is_killed_with_its_children() {
    let dir = tempfile::tempdir().unwrap();
    let pid_file = dir.path().join("child.pid");
    let script = format!("sleep 1000 & echo $! > {}; wait", pid_file.display());
    let r = crate::executor::exec::run(
        None,
        &["sh".into(), "-c".into(), script],
        std::time::Duration::from_secs(1),
    )
    .await;
    assert!(
        matches!(r, Err(crate::executor::Error::Timeout { .. })),
        "{r:?}"
    );
    let child: u32 = std::fs::read_to_string(&pid_file)
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    // Killed (a zombie until its parent, the killed shell's, is reaped by init: not running).
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        let stat = std::fs::read_to_string(format!("/proc/{child}/stat")).unwrap_or_default();
        let state = stat
            .rsplit(')')
            .next()
            .unwrap_or("")
            .split_whitespace()
            .next();
        if stat.is_empty() || state == Some("Z") {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the probe's child {child} still runs: {stat}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
}
