//! The worker with the process executor, no data plane (no root needed).

use super::*;
use crate::executor::ProcessExecutor;
use shoal_proto::model::{ServiceSpec, Task, TaskStatus};

pub(super) fn task(id: &str, args: &[&str], desired: TaskState, observed: TaskState) -> pb::Task {
    let t = Task {
        id: id.into(),
        service_name: "svc".into(),
        slot: 1,
        spec: ServiceSpec {
            image: "sh".into(),
            args: args.iter().map(|s| s.to_string()).collect(),
            ..Default::default()
        },
        desired_state: desired,
        status: TaskStatus {
            state: observed,
            ..Default::default()
        },
        ..Default::default()
    };
    (&t).into()
}

pub(super) fn full(tasks: Vec<pb::Task>) -> pb::Assignments {
    pb::Assignments {
        full: true,
        tasks,
        ..Default::default()
    }
}

pub(super) async fn wait_state(r: &Reporter, id: &str, state: TaskState) {
    for _ in 0..500 {
        if r.latest(id).is_some_and(|s| s.state == state) {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("task {id} never reported {state:?}: {:?}", r.latest(id));
}

fn worker() -> (Worker, Reporter, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let r = Reporter::default();
    (
        Worker::new(
            Arc::new(ProcessExecutor::new(dir.path().to_path_buf(), "n1".into())),
            r.clone(),
            Timings::default(),
            Background::new(),
        ),
        r,
        dir,
    )
}

#[tokio::test]
async fn runs_reports_exit_and_re_reports_a_lost_status() {
    let (w, r, _dir) = worker();
    w.apply(&full(vec![task(
        "t1",
        &["-c", "exit 3"],
        TaskState::Running,
        TaskState::Assigned,
    )]));
    wait_state(&r, "t1", TaskState::Failed).await;
    assert_eq!(r.latest("t1").unwrap().exit_code, Some(3));
    r.clear(); // the dispatcher took it...
               // ...but a new leader's store still says it runs: the final state is sent again.
    w.apply(&full(vec![task(
        "t1",
        &["-c", "exit 3"],
        TaskState::Running,
        TaskState::Running,
    )]));
    assert_eq!(r.latest("t1").unwrap().state, TaskState::Failed);
}

#[tokio::test]
async fn stops_on_desired_shutdown_and_on_removal() {
    let (w, r, _dir) = worker();
    w.apply(&full(vec![
        task(
            "a",
            &["-c", "sleep 100"],
            TaskState::Running,
            TaskState::Assigned,
        ),
        task(
            "b",
            &["-c", "sleep 100"],
            TaskState::Running,
            TaskState::Assigned,
        ),
    ]));
    wait_state(&r, "a", TaskState::Running).await;
    wait_state(&r, "b", TaskState::Running).await;
    assert_eq!(w.running(), 2);
    w.apply(&pb::Assignments {
        tasks: vec![task(
            "a",
            &["-c", "sleep 100"],
            TaskState::Shutdown,
            TaskState::Running,
        )],
        ..Default::default()
    });
    wait_state(&r, "a", TaskState::Shutdown).await;
    w.apply(&full(vec![]));
    for _ in 0..500 {
        if w.running() == 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(
        w.running(),
        0,
        "a task dropped from a full assignment is stopped"
    );
}

#[tokio::test]
async fn lost_and_never_started_tasks() {
    let (w, r, _dir) = worker();
    // Accepted by an earlier run of this agent, unknown now: reported failed.
    w.apply(&full(vec![task(
        "lost",
        &["-c", "sleep 100"],
        TaskState::Running,
        TaskState::Running,
    )]));
    assert_eq!(r.latest("lost").unwrap().state, TaskState::Failed);
    // Told to stop before it ever started here: reported shut down, nothing runs.
    w.apply(&full(vec![task(
        "never",
        &["-c", "sleep 100"],
        TaskState::Shutdown,
        TaskState::Assigned,
    )]));
    assert_eq!(r.latest("never").unwrap().state, TaskState::Shutdown);
    assert_eq!(w.running(), 0);
    // A program that does not exist is rejected with the reason.
    w.apply(&full(vec![{
        let mut t = task("bad", &[], TaskState::Running, TaskState::Assigned);
        t.spec.as_mut().unwrap().image = "no-such-program-xyz".into();
        t
    }]));
    wait_state(&r, "bad", TaskState::Rejected).await;
    let s = r.latest("bad").unwrap();
    assert!(s.err.contains("not found"), "{}", s.err);
}
