//! Routing by runtime, against two recording fakes.

use std::sync::Arc;

use super::*;
use shoal_proto::model::ServiceSpec;

/// An executor that records calls as `NAME op task` and can have tasks to adopt.
#[derive(Debug, Clone)]
struct Fake {
    name: &'static str,
    log: Arc<Mutex<Vec<String>>>,
    adoptable: Vec<String>,
}

impl Fake {
    fn new(name: &'static str, log: &Arc<Mutex<Vec<String>>>, adoptable: &[&str]) -> Arc<Fake> {
        Arc::new(Fake {
            name,
            log: log.clone(),
            adoptable: adoptable.iter().map(|s| s.to_string()).collect(),
        })
    }
}

#[derive(Debug)]
struct FakeCtl {
    fake: Fake,
    id: String,
}

impl FakeCtl {
    fn rec(&self, op: &str) {
        let line = format!("{} {op} {}", self.fake.name, self.id);
        self.fake.log.lock().unwrap().push(line);
    }
}

impl Executor for Fake {
    fn controller(&self, task_id: &str) -> Box<dyn Controller> {
        Box::new(FakeCtl {
            fake: self.clone(),
            id: task_id.into(),
        })
    }
    fn adoptable(&self) -> Vec<String> {
        self.adoptable.clone()
    }
    fn log_dir(&self, task_id: &str) -> std::path::PathBuf {
        std::path::Path::new("/").join(self.name).join(task_id)
    }
    fn sweep(&self, _: &HashSet<String>) {
        self.log
            .lock()
            .unwrap()
            .push(format!("{} sweep", self.name));
    }
}

impl Controller for FakeCtl {
    fn prepare<'a>(
        &'a mut self,
        _: &'a Task,
        _: Option<&'a Sandbox>,
    ) -> BoxFuture<'a, Result<(), Error>> {
        self.rec("prepare");
        Box::pin(async { Ok(()) })
    }
    fn start(&mut self) -> BoxFuture<'_, Result<u32, Error>> {
        self.rec("start");
        Box::pin(async { Ok(7) })
    }
    fn adopt(&mut self) -> BoxFuture<'_, Result<Option<u32>, Error>> {
        self.rec("adopt");
        let has = self.fake.adoptable.contains(&self.id);
        Box::pin(async move { Ok(has.then_some(9)) })
    }
    fn wait(&mut self) -> BoxFuture<'_, Result<Exit, Error>> {
        self.rec("wait");
        Box::pin(async { Ok(Exit::Code(0)) })
    }
    fn shutdown(&mut self, _: Duration) -> BoxFuture<'_, Result<Option<i32>, Error>> {
        self.rec("shutdown");
        Box::pin(async { Ok(Some(0)) })
    }
    fn terminate(&mut self) -> BoxFuture<'_, Result<Option<i32>, Error>> {
        self.rec("terminate");
        Box::pin(async { Ok(None) })
    }
    fn remove(&mut self) -> BoxFuture<'_, ()> {
        self.rec("remove");
        Box::pin(async {})
    }
    fn exec(&self, _: &[String], _: Duration) -> BoxFuture<'static, Result<ExecOutput, Error>> {
        self.rec("exec");
        Box::pin(async { Ok(ExecOutput::default()) })
    }
}

fn task(id: &str, runtime: Runtime) -> Task {
    Task {
        id: id.to_string().into(),
        spec: ServiceSpec {
            image: "busybox".into(),
            runtime,
            ..Default::default()
        },
        ..Default::default()
    }
}

fn both(adopt_p: &[&str], adopt_c: &[&str]) -> (RuntimeExecutor, Arc<Mutex<Vec<String>>>) {
    let log = Arc::new(Mutex::new(Vec::new()));
    let ex = RuntimeExecutor::new(
        Fake::new("process", &log, adopt_p),
        Containers::Run(Fake::new("oci", &log, adopt_c)),
    );
    (ex, log)
}

fn take(log: &Mutex<Vec<String>>) -> Vec<String> {
    std::mem::take(&mut *log.lock().unwrap())
}

#[tokio::test]
async fn each_task_goes_to_its_runtimes_executor() {
    let (ex, log) = both(&[], &[]);
    for (id, rt, name) in [
        ("c1", Runtime::Container, "oci"),
        ("p1", Runtime::Process, "process"),
    ] {
        let mut ctl = ex.controller(id);
        ctl.prepare(&task(id, rt), None).await.unwrap();
        assert_eq!(ctl.start().await.unwrap(), 7);
        ctl.exec(&["true".into()], Duration::from_secs(1))
            .await
            .unwrap();
        ctl.wait().await.unwrap();
        ctl.shutdown(Duration::from_secs(1)).await.unwrap();
        ctl.remove().await;
        let want: Vec<String> = ["prepare", "start", "exec", "wait", "shutdown", "remove"]
            .iter()
            .map(|op| format!("{name} {op} {id}"))
            .collect();
        assert_eq!(take(&log), want);
    }
    ex.sweep(&HashSet::new());
    assert_eq!(take(&log), ["process sweep", "oci sweep"]);
}

#[tokio::test]
async fn a_controller_used_before_prepare_says_so() {
    let (ex, _log) = both(&[], &[]);
    let mut ctl = ex.controller("x");
    assert!(matches!(ctl.start().await, Err(Error::NotPrepared)));
    assert!(matches!(
        ctl.exec(&[], Duration::from_secs(1)).await,
        Err(Error::NotPrepared)
    ));
    ctl.remove().await; // nothing to remove, no panic
}

#[tokio::test]
async fn adoption_goes_to_the_executor_that_listed_the_task() {
    let (ex, log) = both(&["p9"], &["c9"]);
    let mut ids = ex.adoptable();
    ids.sort();
    assert_eq!(ids, ["c9", "p9"]);
    for (id, name) in [("c9", "oci"), ("p9", "process")] {
        let mut ctl = ex.controller(id);
        assert_eq!(ctl.adopt().await.unwrap(), Some(9));
        ctl.wait().await.unwrap();
        assert_eq!(
            take(&log),
            [format!("{name} adopt {id}"), format!("{name} wait {id}")]
        );
    }
    // Not listed: each is asked, containers first; nothing to adopt is `None`.
    let mut ctl = ex.controller("gone");
    assert_eq!(ctl.adopt().await.unwrap(), None);
    assert_eq!(take(&log), ["oci adopt gone", "process adopt gone"]);
}

#[tokio::test]
async fn without_a_runtime_containers_are_refused_and_processes_still_run() {
    let log = Arc::new(Mutex::new(Vec::new()));
    let ex = RuntimeExecutor::new(
        Fake::new("process", &log, &[]),
        Containers::Refuse("OCI runtime \"runc\" not found".into()),
    );
    let mut ctl = ex.controller("c1");
    let e = ctl
        .prepare(&task("c1", Runtime::Container), None)
        .await
        .unwrap_err();
    assert!(matches!(e, Error::NoOciRuntime { .. }));
    assert!(
        e.to_string().contains("install the runc or crun package"),
        "{e}"
    );
    let mut ctl = ex.controller("p1");
    ctl.prepare(&task("p1", Runtime::Process), None)
        .await
        .unwrap();
    assert_eq!(take(&log), ["process prepare p1"]);
}
