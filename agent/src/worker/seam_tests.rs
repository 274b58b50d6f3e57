//! The worker against a scripted executor: what it asks of a task's controller, in which order,
//! and what it reports. Any executor that implements the seam runs under the same worker.

use super::tests::{full, task, wait_state};
use super::*;
use crate::executor::{Controller, Error, ExecOutput, Executor, Exit};
use crate::network::Sandbox;
use shoal_proto::model::Task;

/// Controllers that record each call and end when the test says so.
#[derive(Debug, Clone, Default)]
struct Script {
    log: Arc<Mutex<Vec<String>>>,
    exits: Arc<Mutex<HashMap<String, watch::Sender<Option<Exit>>>>>,
    refuse: bool,
    /// `prepare` never ends (an image pull that takes forever).
    hang: bool,
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
        Vec::new()
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
        Box::pin(async { Ok(None) })
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
        _timeout: Duration,
    ) -> BoxFuture<'static, Result<ExecOutput, Error>> {
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
