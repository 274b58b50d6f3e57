//! The worker against a scripted executor: what it asks of a task's controller, in which order,
//! and what it reports. Any executor that implements the seam runs under the same worker.

use super::tests::{full, task, wait_state};
use super::*;
use crate::executor::{Controller, Error, ExecOutput, Executor, Exit};
use crate::network::Sandbox;
use shoal_proto::model::{Task, TaskStatus};

/// Controllers that record each call and end when the test says so.
#[derive(Debug, Clone, Default)]
struct Script {
    log: Arc<Mutex<Vec<String>>>,
    exits: Arc<Mutex<HashMap<String, watch::Sender<Option<Exit>>>>>,
    refuse: bool,
    /// `prepare` never ends (an image pull that takes forever).
    hang: bool,
    /// What health probes (`/bin/sh -c …`) exit with; `None`: they hang until their timeout.
    probe_exit: Arc<Mutex<Option<i32>>>,
    /// A task left running by a previous agent, to adopt (its pid).
    leftover: Option<(String, u32)>,
}

impl Script {
    fn log(&self) -> Vec<String> {
        self.log.lock().unwrap().clone()
    }

    fn exit(&self, id: &str, exit: Exit) {
        self.channel(id).send_replace(Some(exit));
    }

    fn channel(&self, id: &str) -> watch::Sender<Option<Exit>> {
        let mut m = self.exits.lock().unwrap();
        m.entry(id.to_string())
            .or_insert_with(|| watch::channel(None).0)
            .clone()
    }
}

#[derive(Debug)]
struct Scripted {
    id: String,
    script: Script,
}

impl Scripted {
    fn record(&self, what: String) {
        self.script
            .log
            .lock()
            .unwrap()
            .push(format!("{} {what}", self.id));
    }
}

impl Executor for Script {
    fn controller(&self, task_id: &str) -> Box<dyn Controller> {
        Box::new(Scripted {
            id: task_id.into(),
            script: self.clone(),
        })
    }
    fn adoptable(&self) -> Vec<String> {
        self.leftover.iter().map(|(id, _)| id.clone()).collect()
    }
    fn log_dir(&self, task_id: &str) -> std::path::PathBuf {
        std::path::PathBuf::from("/nonexistent").join(task_id)
    }
    fn sweep(&self, _: &HashSet<String>) {}
}

impl Controller for Scripted {
    fn prepare<'a>(
        &'a mut self,
        task: &'a Task,
        sandbox: Option<&'a Sandbox>,
    ) -> BoxFuture<'a, Result<(), Error>> {
        self.record(format!(
            "prepare {} sandbox={}",
            task.spec.image,
            sandbox.is_some()
        ));
        let (refuse, hang) = (self.script.refuse, self.script.hang);
        Box::pin(async move {
            if hang {
                std::future::pending::<()>().await;
            }
            match refuse {
                true => Err(Error::NotFound {
                    image: "nope".into(),
                }),
                false => Ok(()),
            }
        })
    }
    fn start(&mut self) -> BoxFuture<'_, Result<u32, Error>> {
        self.record("start".into());
        Box::pin(async { Ok(4242) })
    }
    fn adopt(&mut self) -> BoxFuture<'_, Result<Option<u32>, Error>> {
        let pid = self
            .script
            .leftover
            .as_ref()
            .filter(|(id, _)| *id == self.id)
            .map(|(_, pid)| *pid);
        Box::pin(async move { Ok(pid) })
    }
    fn wait(&mut self) -> BoxFuture<'_, Result<Exit, Error>> {
        let mut rx = self.script.channel(&self.id).subscribe();
        Box::pin(async move {
            let exit = rx.wait_for(Option::is_some).await.unwrap();
            Ok(exit.unwrap())
        })
    }
    fn shutdown(&mut self, grace: Duration) -> BoxFuture<'_, Result<Option<i32>, Error>> {
        self.record(format!("shutdown {grace:?}"));
        Box::pin(async { Ok(Some(143)) })
    }
    fn terminate(&mut self) -> BoxFuture<'_, Result<Option<i32>, Error>> {
        self.record("terminate".into());
        Box::pin(async { Ok(Some(137)) })
    }
    fn remove(&mut self) -> BoxFuture<'_, ()> {
        self.record("remove".into());
        Box::pin(async {})
    }
    fn exec(
        &self,
        cmd: &[String],
        timeout: Duration,
    ) -> BoxFuture<'static, Result<ExecOutput, Error>> {
        if cmd.first().is_some_and(|p| p == "/bin/sh") {
            // A health probe: as the executors do, one that outlives its timeout is killed.
            let exit = *self.script.probe_exit.lock().unwrap();
            return Box::pin(async move {
                match exit {
                    Some(exit_code) => Ok(ExecOutput {
                        exit_code,
                        ..Default::default()
                    }),
                    None => {
                        tokio::time::sleep(timeout).await;
                        Err(Error::Timeout {
                            secs: timeout.as_secs(),
                        })
                    }
                }
            });
        }
        self.record(format!("exec {}", cmd.join(" ")));
        let stdout = cmd.join(" ").into_bytes();
        Box::pin(async move {
            Ok(ExecOutput {
                stdout,
                stderr: Vec::new(),
                exit_code: 0,
            })
        })
    }
}

fn scripted(script: &Script) -> (Worker, Reporter) {
    let r = Reporter::default();
    let w = Worker::new(
        Arc::new(script.clone()),
        r.clone(),
        Timings::default(),
        Background::new(),
    );
    (w, r)
}

#[tokio::test]
async fn a_task_is_prepared_started_waited_for_and_removed() {
    let script = Script::default();
    let (w, r) = scripted(&script);
    w.apply(&full(vec![task(
        "t1",
        &[],
        TaskState::Running,
        TaskState::Assigned,
    )]));
    wait_state(&r, "t1", TaskState::Running).await;
    assert_eq!(r.latest("t1").unwrap().pid, 4242);
    // Exec goes to the running task's controller, alongside its supervision.
    let out = w
        .exec("t1", &["echo".into(), "hi".into()], Duration::from_secs(1))
        .await;
    assert_eq!((out.stdout, out.exit_code), (b"echo hi".to_vec(), 0));
    let none = w.exec("t9", &["x".into()], Duration::from_secs(1)).await;
    assert_eq!(none.error, "task t9 is not running on this node");
    script.exit("t1", Exit::Code(3));
    wait_state(&r, "t1", TaskState::Failed).await;
    let s = r.latest("t1").unwrap();
    assert_eq!(
        (s.err.as_str(), s.exit_code),
        ("task: non-zero exit (3)", Some(3))
    );
    assert_eq!(
        script.log(),
        [
            "t1 prepare sh sandbox=false",
            "t1 start",
            "t1 exec echo hi",
            "t1 remove"
        ]
    );
}

#[tokio::test]
async fn a_stop_is_a_shutdown_with_the_service_grace_then_a_remove() {
    let script = Script::default();
    let (w, r) = scripted(&script);
    let mut t = task("t1", &[], TaskState::Running, TaskState::Assigned);
    t.spec.as_mut().unwrap().stop_grace_ms = 1234;
    w.apply(&full(vec![t.clone()]));
    wait_state(&r, "t1", TaskState::Running).await;
    t.desired_state = pb::TaskState::Shutdown as i32;
    w.apply(&full(vec![t]));
    wait_state(&r, "t1", TaskState::Shutdown).await;
    assert_eq!(r.latest("t1").unwrap().exit_code, Some(143));
    assert_eq!(script.log()[2..], ["t1 shutdown 1.234s", "t1 remove"]);
    assert_eq!(w.running(), 0);
}

#[tokio::test]
async fn a_task_the_controller_cannot_prepare_is_rejected_with_its_text() {
    let script = Script {
        refuse: true,
        ..Default::default()
    };
    let (w, r) = scripted(&script);
    w.apply(&full(vec![task(
        "t1",
        &[],
        TaskState::Running,
        TaskState::Assigned,
    )]));
    wait_state(&r, "t1", TaskState::Rejected).await;
    assert_eq!(
        r.latest("t1").unwrap().err,
        "executable \"nope\" not found on this node (looked next to swarmd and in PATH)"
    );
    assert_eq!(script.log(), ["t1 prepare sh sandbox=false", "t1 remove"]);
}

#[tokio::test]
async fn a_stop_ends_a_preparation_that_takes_long() {
    let script = Script {
        hang: true,
        ..Default::default()
    };
    let (w, r) = scripted(&script);
    let mut t = task("t1", &[], TaskState::Running, TaskState::Assigned);
    w.apply(&full(vec![t.clone()]));
    wait_state(&r, "t1", TaskState::Preparing).await;
    t.desired_state = pb::TaskState::Shutdown as i32;
    w.apply(&full(vec![t]));
    wait_state(&r, "t1", TaskState::Shutdown).await;
    assert_eq!(script.log(), ["t1 prepare sh sandbox=false", "t1 remove"]);
    assert_eq!(w.running(), 0);
}

/// Waits until `task`'s latest status passes `ok`.
async fn wait_status(r: &Reporter, id: &str, ok: impl Fn(&TaskStatus) -> bool) -> TaskStatus {
    for _ in 0..2000 {
        if let Some(s) = r.latest(id).filter(|s| ok(s)) {
            return s;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("task {id} never reached the status: {:?}", r.latest(id));
}

/// A task with a health check `test -e /ok`: probes every second, each for at most a second;
/// failures in the first `start_period_s` do not count.
fn checked_task(id: &str, retries: u32, start_period_s: u64) -> pb::Task {
    use shoal_proto::model::{HealthConfig, HealthTest};
    let mut t = Task::try_from(&task(id, &[], TaskState::Running, TaskState::Assigned)).unwrap();
    t.spec.healthcheck = Some(HealthConfig {
        test: HealthTest::Shell("test -e /ok".into()),
        interval_ms: 1000,
        timeout_ms: 1000,
        start_period_ms: start_period_s * 1000,
        retries,
    });
    (&t).into()
}

#[tokio::test(start_paused = true)]
async fn a_task_with_a_health_check_runs_once_a_probe_passes_and_fails_when_unhealthy() {
    use shoal_proto::model::TaskHealth;
    let script = Script::default();
    *script.probe_exit.lock().unwrap() = Some(1);
    let (w, r) = scripted(&script);
    w.apply(&full(vec![checked_task("t1", 2, 3600)]));
    // Failing probes within the start period: STARTING, health starting, for as long as they
    // fail.
    let s = wait_status(&r, "t1", |s| s.health == TaskHealth::Starting).await;
    assert_eq!((s.state, s.pid), (TaskState::Starting, 4242));
    tokio::time::sleep(Duration::from_secs(10)).await;
    let s = r.latest("t1").unwrap();
    assert_eq!(
        (s.state, s.health),
        (TaskState::Starting, TaskHealth::Starting)
    );
    // The first pass: RUNNING, healthy.
    *script.probe_exit.lock().unwrap() = Some(0);
    let s = wait_status(&r, "t1", |s| s.state == TaskState::Running).await;
    assert_eq!((s.health, s.pid), (TaskHealth::Healthy, 4242));
    // Two failures in a row (the start period is over once healthy): reported unhealthy,
    // stopped with its grace, FAILED with Docker's error.
    *script.probe_exit.lock().unwrap() = Some(1);
    let s = wait_status(&r, "t1", |s| s.state == TaskState::Failed).await;
    assert_eq!(
        (s.err.as_str(), s.health, s.exit_code),
        ("unhealthy container", TaskHealth::Unhealthy, Some(143))
    );
    assert_eq!(script.log()[2..], ["t1 shutdown 10s", "t1 remove"]);
    assert_eq!(w.running(), 0);
}

#[tokio::test(start_paused = true)]
async fn a_probe_that_hangs_is_killed_at_its_timeout_and_counts_as_a_failure() {
    use shoal_proto::model::TaskHealth;
    let script = Script::default();
    *script.probe_exit.lock().unwrap() = None;
    let (w, r) = scripted(&script);
    w.apply(&full(vec![checked_task("t1", 2, 0)]));
    let s = wait_status(&r, "t1", |s| s.state.is_terminal()).await;
    assert_eq!(
        (s.state, s.err.as_str(), s.health),
        (
            TaskState::Failed,
            "unhealthy container",
            TaskHealth::Unhealthy
        )
    );
    // It never ran: never RUNNING, never in a balancer.
    assert!(!script.log().iter().any(|l| l.contains("exec")));
}

#[tokio::test(start_paused = true)]
async fn an_adopted_task_keeps_being_probed() {
    use shoal_proto::model::TaskHealth;
    let script = Script {
        leftover: Some(("t1".into(), 777)),
        ..Default::default()
    };
    *script.probe_exit.lock().unwrap() = Some(0);
    let (w, r) = scripted(&script);
    assert_eq!(w.adopt().await, vec!["t1".to_string()]);
    // Its assignment says what the managers last heard: running, healthy.
    let mut t = Task::try_from(&checked_task("t1", 1, 0)).unwrap();
    t.status.state = TaskState::Running;
    t.status.health = TaskHealth::Healthy;
    t.status.timestamp_ms = 1234;
    w.apply(&full(vec![(&t).into()]));
    // Probes run again: still healthy, nothing to report.
    tokio::time::sleep(Duration::from_secs(5)).await;
    assert_eq!(r.latest("t1"), None);
    *script.probe_exit.lock().unwrap() = Some(1);
    let s = wait_status(&r, "t1", |s| s.state == TaskState::Failed).await;
    assert_eq!(s.err, "unhealthy container");
    assert_eq!(script.log(), ["t1 shutdown 10s", "t1 remove"]);
}
