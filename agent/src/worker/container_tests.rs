//! The worker running containers from a real registry, as `swarmd` wires it: the node's
//! executor ([`RuntimeExecutor`]: processes and OCI containers), the image store pulling
//! through a registry mirror (`--registry-mirror docker.io=http://127.0.0.1:PORT`), no data
//! plane (containers on the node's network). Needs root, `runc`, `docker-registry` and
//! `skopeo`; marked ignored (`deploy/test.sh` runs it with `--include-ignored`).
//!
//! Everything is removed even when an assertion fails: the registry is killed by its PID
//! ([`Registry`]'s drop), containers are deleted and their roots unmounted ([`Cleanup`]'s drop),
//! directories are temporary.

use super::tests::full;
use super::*;
use crate::executor::oci::runtime::Runtime as OciRuntime;
use crate::executor::{Containers, OciExecutor, ProcessExecutor, RuntimeExecutor, StoreImages};
use crate::test_util::registry::{busybox_layout, tools_or_skip, Registry};
use crate::test_util::root;
use shoal_image::registry::{Client, RegistryConfig};
use shoal_image::Store;
use shoal_proto::model::{new_id, Runtime, ServiceSpec, Task, TaskStatus};

const OS_RELEASE: &str = "NAME=\"Shoal test busybox\"\nID=shoaltest\n";

fn container(id: &str, image: &str) -> pb::Task {
    let t = Task {
        id: id.to_string().into(),
        service_name: "web".into(),
        slot: 1,
        spec: ServiceSpec {
            image: image.into(),
            runtime: Runtime::Container,
            ..Default::default()
        },
        desired_state: TaskState::Running,
        status: TaskStatus {
            state: TaskState::Assigned,
            ..Default::default()
        },
        ..Default::default()
    };
    (&t).into()
}

/// Deletes every container of `runtime` and unmounts what tasks left, on drop.
struct Cleanup {
    runtime: OciRuntime,
    oci: OciExecutor,
    ids: Vec<String>,
}

impl Drop for Cleanup {
    fn drop(&mut self) {
        for s in self.runtime.list_blocking().unwrap_or_default() {
            let _ = self.runtime.delete_blocking(&s.id, true);
        }
        for id in &self.ids {
            let rootfs = self.oci.bundle_dir(id).join("rootfs");
            let _ = crate::executor::oci::overlay::unmount(&rootfs);
        }
    }
}

struct Node {
    worker: Worker,
    reporter: Reporter,
    executor: Arc<RuntimeExecutor>,
    background: Background,
    /// Every preparation message, `task: message`.
    messages: Arc<Mutex<Vec<String>>>,
}

/// The node's executor and a worker on `dir`, as `swarmd` makes them.
fn node(dir: &std::path::Path, registry: &Registry) -> (Node, OciRuntime, OciExecutor) {
    let mut cfg = RegistryConfig::default();
    cfg.add_mirror(&format!("docker.io={}", registry.url()))
        .unwrap();
    cfg.insecure = vec![registry.host()];
    let client = Client::new(cfg).unwrap();
    let store = Store::open(dir.join("images")).unwrap();
    let images = StoreImages::new(store, client)
        .with_pull_timeout(Duration::from_secs(60))
        .with_gc_grace(Duration::ZERO);
    let runtime = OciRuntime::new("runc", dir.join("oci")).unwrap();
    let reporter = Reporter::default();
    let r = reporter.clone();
    let messages = Arc::new(Mutex::new(Vec::new()));
    let m = messages.clone();
    let oci = OciExecutor::new(
        dir.join("tasks"),
        runtime.clone(),
        Arc::new(images),
        "n1".into(),
    )
    .with_status(Arc::new(move |task: &str, msg: &str| {
        m.lock().unwrap().push(format!("{task}: {msg}"));
        r.report(task, TaskState::Preparing, msg, "", None, 0)
    }));
    let process = ProcessExecutor::new(dir.join("tasks"), "n1".into());
    let executor = Arc::new(RuntimeExecutor::new(
        Arc::new(process),
        Containers::Run(Arc::new(oci.clone())),
    ));
    let background = Background::new();
    let timings = Timings {
        sweep_period: Duration::from_secs(3600), // the test sweeps itself
        ..Timings::default()
    };
    let worker = Worker::new(
        executor.clone(),
        reporter.clone(),
        timings,
        background.clone(),
    );
    (
        Node {
            worker,
            reporter,
            executor,
            background,
            messages,
        },
        runtime,
        oci,
    )
}

async fn wait_for(r: &Reporter, id: &str, state: TaskState) -> TaskStatus {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    loop {
        if let Some(s) = r.latest(id).filter(|s| s.state == state) {
            return s;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "task {id} never reported {state:?}: {:?}",
            r.latest(id)
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

async fn until(what: &str, mut f: impl FnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    while !f() {
        assert!(tokio::time::Instant::now() < deadline, "never: {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[ignore = "needs root"]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn containers_from_a_registry_mirror_run_exec_are_adopted_and_collected() {
    if !root() || !tools_or_skip() {
        return;
    }
    let registry = Registry::start();
    let dir = tempfile::Builder::new()
        .prefix("shoal-worker-img-")
        .tempdir_in("/var/tmp")
        .unwrap();
    busybox_layout(&dir.path().join("image"), "1", OS_RELEASE);
    registry.push(&dir.path().join("image/oci"), "1", "shoal/busybox:1");

    let (n, runtime, oci) = node(dir.path(), &registry);
    let (a, b, nope) = (new_id(), new_id(), new_id());
    let _cleanup = Cleanup {
        runtime: runtime.clone(),
        oci,
        ids: vec![a.clone(), b.clone(), nope.clone()],
    };

    // Two tasks of one image at once (one pull), through the docker.io mirror; an image the
    // registry does not have, named on it directly (no fallback to Docker Hub).
    let unknown = format!("{}/shoal/nope:1", registry.host());
    n.worker.apply(&full(vec![
        container(&a, "shoal/busybox:1"),
        container(&b, "shoal/busybox:1"),
        container(&nope, &unknown),
    ]));
    wait_for(&n.reporter, &a, TaskState::Running).await;
    wait_for(&n.reporter, &b, TaskState::Running).await;
    let s = wait_for(&n.reporter, &nope, TaskState::Rejected).await;
    assert_eq!(s.err, format!("No such image: {unknown}"));
    // One pull, its progress in the status of the task that pulled.
    let said = n.messages.lock().unwrap().clone();
    let done: Vec<&String> = said
        .iter()
        .filter(|m| m.ends_with("1 layer done"))
        .collect();
    assert_eq!(done.len(), 1, "one pull: {said:?}");
    assert!(
        done[0].ends_with(": pulling shoal/busybox:1: 1 layer done"),
        "{said:?}"
    );

    let out = n
        .worker
        .exec(
            &a,
            &["cat".into(), "/etc/os-release".into()],
            Duration::from_secs(10),
        )
        .await;
    assert_eq!(out.error, "");
    assert_eq!(String::from_utf8_lossy(&out.stdout), OS_RELEASE);
    assert_eq!(out.exit_code, 0);

    // swarmd goes away (its supervisors with it) and comes back: it adopts the containers.
    n.background.shutdown().await;
    drop(n);
    let (n, ..) = node(dir.path(), &registry);
    let mut adopted = n.worker.adopt().await;
    adopted.sort();
    let mut want = vec![a.clone(), b.clone()];
    want.sort();
    assert_eq!(adopted, want);
    let out = n
        .worker
        .exec(
            &b,
            &["echo".into(), "still here".into()],
            Duration::from_secs(10),
        )
        .await;
    assert_eq!(String::from_utf8_lossy(&out.stdout), "still here\n");

    // Gone from the assignments: stopped, containers deleted; then the image is collected.
    n.worker.apply(&full(vec![]));
    until("containers stopped and deleted", || {
        // `runc list` fails when a container's state vanishes while it reads it (a delete
        // under way): not yet.
        runtime.list_blocking().is_ok_and(|l| l.is_empty())
    })
    .await;
    let tasks = dir.path().join("tasks");
    until("bundles removed", || {
        [&a, &b]
            .iter()
            .all(|id| !tasks.join(id).join("bundle").exists())
    })
    .await;
    let store = Store::open(dir.path().join("images")).unwrap();
    assert_eq!(store.list().unwrap().len(), 1);
    n.executor.sweep(&HashSet::new());
    assert!(
        store.list().unwrap().is_empty(),
        "an image no container uses is collected"
    );
    n.background.shutdown().await;
}
