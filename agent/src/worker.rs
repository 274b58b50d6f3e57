//! The worker: converges what runs on this node to the assignments. Level-triggered: every
//! assignment message (full or incremental) updates the wanted set, then each task is
//! reconciled on its own.

use crate::executor::process::{stop, ProcessExecutor, Running};
use crate::network::{DataPlane, Peer};
use crate::reporter::Reporter;
use shoal_proto::model::{Task, TaskState};
use shoal_proto::pb;
use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;
use tokio::sync::oneshot;
use tracing::{info, info_span, warn, Instrument};

/// Default time between SIGTERM and SIGKILL (Docker's default).
pub const DEFAULT_STOP_GRACE: Duration = Duration::from_secs(10);
/// Time between two sweeps of leftover task cgroups.
pub const CGROUP_SWEEP_PERIOD: Duration = Duration::from_secs(60);
/// How long a task that the managers stopped keeps running before it is signalled, with a data
/// plane: its balancers on every node let go of it first.
pub const LB_DRAIN: Duration = Duration::from_millis(250);

enum Local {
    /// Started (pid 0 until the process exists); the sender asks the supervisor to stop it.
    Running {
        stop: Option<oneshot::Sender<()>>,
        pid: u32,
        /// Adopted after a restart and its sandbox not yet re-registered with the data plane.
        adopted: bool,
    },
    /// Ended (or never started) on this node, with the final status reported.
    Done(Final),
}

/// A task's last state on this node, re-reported if the managers missed it.
#[derive(Clone)]
struct Final {
    state: TaskState,
    message: &'static str,
    err: String,
    exit_code: Option<i32>,
}

/// Runs the node's tasks.
#[derive(Clone)]
pub struct Worker {
    inner: Arc<Mutex<HashMap<String, Local>>>,
    executor: ProcessExecutor,
    reporter: Reporter,
    data_plane: Option<DataPlane>,
    /// The latest overlay peers from the managers, applied in order by one task.
    peers: Option<tokio::sync::watch::Sender<Vec<Peer>>>,
    /// The latest balancer tables from the managers, applied in order by one task.
    lb: Option<tokio::sync::watch::Sender<Vec<pb::LbTable>>>,
}

impl std::fmt::Debug for Worker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Worker").finish_non_exhaustive()
    }
}

impl Worker {
    /// A worker using `executor` and reporting to `reporter`. Within a tokio runtime it also
    /// starts the cgroup janitor (see [`Worker::sweep_cgroups`]).
    pub fn new(executor: ProcessExecutor, reporter: Reporter) -> Self {
        let w = Worker {
            inner: Arc::new(Mutex::new(HashMap::new())),
            executor,
            reporter,
            data_plane: None,
            peers: None,
            lb: None,
        };
        if let Ok(rt) = tokio::runtime::Handle::try_current() {
            rt.spawn(Self::sweep_cgroups(
                Arc::downgrade(&w.inner),
                w.executor.clone(),
            ));
        }
        w
    }

    /// Removes the cgroups of tasks that do not run here: at start (a crash's leftovers:
    /// tasks do not outlive swarmd), then every [`CGROUP_SWEEP_PERIOD`] (cgroups whose removal
    /// failed at the task's end). Ends with the worker.
    async fn sweep_cgroups(inner: Weak<Mutex<HashMap<String, Local>>>, executor: ProcessExecutor) {
        loop {
            let Some(map) = inner.upgrade() else { return };
            let running: HashSet<String> = map
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .iter()
                .filter(|(_, l)| matches!(l, Local::Running { .. }))
                .map(|(id, _)| id.clone())
                .collect();
            drop(map);
            executor.sweep_cgroups(&running);
            tokio::time::sleep(CGROUP_SWEEP_PERIOD).await;
        }
    }

    /// Runs tasks in sandboxes of `data_plane` (plain processes when `None`).
    /// Must be called within a tokio runtime (it starts the task that programs overlay peers).
    pub fn with_data_plane(mut self, data_plane: Option<DataPlane>) -> Self {
        if let Some(dp) = &data_plane {
            let (tx, mut rx) = tokio::sync::watch::channel(Vec::new());
            let dp2 = dp.clone();
            tokio::spawn(async move {
                while rx.changed().await.is_ok() {
                    let peers = rx.borrow_and_update().clone();
                    dp2.set_peers(peers).await;
                }
            });
            self.peers = Some(tx);
            // Balancers: the latest tables, retried until they apply (a network's overlay may
            // lack its VXLAN id for a moment; a kernel call may fail).
            let (tx, mut rx) = tokio::sync::watch::channel(Vec::<pb::LbTable>::new());
            let dp = dp.clone();
            tokio::spawn(async move {
                while rx.changed().await.is_ok() {
                    loop {
                        let tables = rx.borrow_and_update().clone();
                        match dp.apply_lb(&tables).await {
                            Ok(()) => break,
                            Err(e) => {
                                tracing::warn!("balancers not converged yet, retrying: {e}");
                                tokio::select! {
                                    _ = tokio::time::sleep(Duration::from_secs(1)) => {}
                                    r = rx.changed() => if r.is_err() { return },
                                }
                            }
                        }
                    }
                }
            });
            self.lb = Some(tx);
        }
        self.data_plane = data_plane;
        self
    }

    /// The executor (for logs).
    pub fn executor(&self) -> &ProcessExecutor {
        &self.executor
    }

    /// Runs `cmd` inside the running task `id` (`swarmctl task exec`).
    pub async fn exec(&self, id: &str, cmd: &[String], timeout: Duration) -> pb::ExecResult {
        let pid = match self.lock().get(id) {
            Some(Local::Running { pid, .. }) if *pid != 0 => *pid,
            _ => {
                return pb::ExecResult {
                    error: format!("task {id} is not running on this node"),
                    exit_code: -1,
                    ..Default::default()
                }
            }
        };
        let pid = self.data_plane.is_some().then_some(pid);
        crate::executor::exec::run(pid, cmd, timeout).await
    }

    /// Number of tasks running here.
    pub fn running(&self) -> usize {
        self.lock()
            .values()
            .filter(|l| matches!(l, Local::Running { .. }))
            .count()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Local>> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The balancer of network `net` on this node, as the kernel has it.
    pub async fn lb_report(&self, net: &str) -> pb::LbNodeReport {
        let r = match &self.data_plane {
            Some(dp) => dp.lb_report(net).await.map_err(|e| e.to_string()),
            None => Err("this node runs with --data-plane none: no balancers".to_string()),
        };
        r.unwrap_or_else(|error| pb::LbNodeReport {
            error,
            ..Default::default()
        })
    }

    /// Applies one assignments message.
    pub fn apply(&self, a: &pb::Assignments) {
        if let (true, Some(tx)) = (a.lb_full, &self.lb) {
            tx.send_replace(a.lb.clone());
        }
        if let (true, Some(dp)) = (a.dns_full, &self.data_plane) {
            dp.set_dns(&a.dns);
        }
        if let (true, Some(tx)) = (a.peers_full, &self.peers) {
            let peers: Vec<Peer> = a
                .peers
                .iter()
                .filter_map(|p| {
                    Some((
                        p.network_id.clone(),
                        p.ip.parse().ok()?,
                        p.node_ip.parse().ok()?,
                    ))
                })
                .collect();
            tx.send_replace(peers);
        }
        let tasks: Vec<Task> = a
            .tasks
            .iter()
            .filter_map(|t| Task::try_from(t).ok())
            .collect();
        let mut gone: Vec<String> = a.removed.clone();
        if a.full {
            let keep: HashSet<&str> = tasks.iter().map(|t| t.id.as_str()).collect();
            gone.extend(
                self.lock()
                    .keys()
                    .filter(|id| !keep.contains(id.as_str()))
                    .cloned(),
            );
        }
        for id in gone {
            self.stop_task(&id);
            self.lock().remove(&id);
        }
        for t in tasks {
            self.reconcile(t);
        }
        if let (true, Some(dp)) = (a.full, self.data_plane.clone()) {
            // Overlay sandboxes left by tasks that ended while no agent ran (their ports are
            // gone by now): see DataPlane::sweep_overlays.
            tokio::spawn(async move { dp.sweep_overlays().await });
        }
    }

    fn stop_task(&self, id: &str) {
        if let Some(Local::Running { stop, .. }) = self.lock().get_mut(id) {
            if let Some(tx) = stop.take() {
                if self.data_plane.is_some() {
                    // The managers took the task out of every balancer when they asked for its
                    // stop; the nodes reprogram within milliseconds. Stop it a moment later, so
                    // that no new connection is balanced to a task already gone.
                    tokio::spawn(async move {
                        tokio::time::sleep(LB_DRAIN).await;
                        let _ = tx.send(());
                    });
                } else {
                    let _ = tx.send(());
                }
            }
        }
    }

    /// Records a task's end and reports it.
    fn finish(&self, id: &str, f: Final, insert: bool) {
        {
            let mut map = self.lock();
            match map.get_mut(id) {
                Some(e) => *e = Local::Done(f.clone()),
                // A task dropped from the assignments while it stopped stays dropped.
                None if !insert => {}
                None => {
                    map.insert(id.to_string(), Local::Done(f.clone()));
                }
            }
        }
        self.reporter
            .report(id, f.state, f.message, &f.err, f.exit_code, 0);
    }

    fn reconcile(&self, t: Task) {
        let done = match self.lock().get(&t.id) {
            Some(Local::Done(f)) => Some(f.clone()),
            _ => None,
        };
        if let Some(f) = done {
            // The managers still think it runs: our report was lost (e.g. a leader change).
            if !t.status.state.is_terminal() {
                self.reporter
                    .report(&t.id, f.state, f.message, &f.err, f.exit_code, 0);
            }
            return;
        }
        let known = self.lock().contains_key(&t.id);
        if t.desired_state > TaskState::Running {
            if known {
                self.stop_task(&t.id);
            } else if !t.status.state.is_terminal() {
                // Never started here (or lost in an agent restart): nothing to stop.
                let f = Final {
                    state: TaskState::Shutdown,
                    message: "shutdown",
                    err: String::new(),
                    exit_code: None,
                };
                self.finish(&t.id, f, true);
            }
            return;
        }
        if known {
            // Adopted after a restart: the data plane learns the task's networks again (its
            // namespaces are there; `prepare` only records them).
            let adopted = matches!(
                self.lock().get(&t.id),
                Some(Local::Running { adopted: true, .. })
            );
            if let (true, Some(dp)) = (adopted, self.data_plane.clone()) {
                if let Some(Local::Running { adopted, .. }) = self.lock().get_mut(&t.id) {
                    *adopted = false;
                }
                tokio::spawn(async move {
                    if let Err(e) = dp.prepare(&t).await {
                        warn!(task.id = %t.id, "re-registering an adopted task's networks: {e}");
                    }
                });
            }
            return;
        }
        if t.status.state >= TaskState::Accepted {
            // We accepted it before, but this agent has no record: swarmd restarted and the
            // task's process went with it. Report it so the orchestrator replaces it.
            let f = Final {
                state: TaskState::Failed,
                message: "task lost",
                err: "the task's process ended when swarmd restarted".into(),
                exit_code: None,
            };
            self.finish(&t.id, f, true);
            return;
        }
        if t.desired_state < TaskState::Running {
            return; // waiting for a restart delay
        }
        self.start(t);
    }

    fn start(&self, t: Task) {
        let (tx, rx) = oneshot::channel();
        self.lock().insert(
            t.id.clone(),
            Local::Running {
                stop: Some(tx),
                pid: 0,
                adopted: false,
            },
        );
        let r = &self.reporter;
        r.report(&t.id, TaskState::Accepted, "accepted", "", None, 0);
        let span = info_span!("task", task.id = %t.id, service.id = %t.service_id);
        tokio::spawn(self.clone().prepare_and_run(t, rx).instrument(span));
    }

    async fn prepare_and_run(self, t: Task, stop_rx: oneshot::Receiver<()>) {
        let r = &self.reporter;
        r.report(&t.id, TaskState::Preparing, "preparing", "", None, 0);
        let sandbox = match &self.data_plane {
            Some(dp) => match dp.prepare(&t).await {
                Ok(sb) => Some(sb),
                Err(e) => return self.reject(&t, format!("network: {e}")).await,
            },
            None => None,
        };
        r.report(&t.id, TaskState::Starting, "starting", "", None, 0);
        match self.executor.start_in(&t, sandbox.as_ref()) {
            Ok(running) => {
                info!(pid = running.pid, "task started");
                if let Some(Local::Running { pid, .. }) = self.lock().get_mut(&t.id) {
                    *pid = running.pid;
                }
                let addresses = match &sandbox {
                    Some(crate::network::Sandbox::Netns { interfaces, .. }) => interfaces
                        .iter()
                        .filter(|i| i.gateway.is_some())
                        .map(|i| format!("{}={}/{}", i.network, i.addr, i.prefix))
                        .collect(),
                    _ => Vec::new(),
                };
                r.report_running(&t.id, running.pid, addresses);
                self.supervise(t, running, stop_rx).await;
            }
            Err(e) => self.reject(&t, e).await,
        }
    }

    async fn reject(&self, t: &Task, err: String) {
        warn!(error = %err, "task failed to start");
        self.release(&t.id).await;
        let f = Final {
            state: TaskState::Rejected,
            message: "rejected",
            err,
            exit_code: None,
        };
        self.finish(&t.id, f, true);
    }

    /// Removes a task's sandbox and cgroups, if it had them.
    async fn release(&self, task_id: &str) {
        if let Some(dp) = &self.data_plane {
            dp.release(task_id).await;
        }
        self.executor.cleanup(task_id).await;
    }

    async fn supervise(self, t: Task, mut running: Running, stop_rx: oneshot::Receiver<()>) {
        let grace = if t.spec.stop_grace_ms > 0 {
            Duration::from_millis(t.spec.stop_grace_ms)
        } else {
            DEFAULT_STOP_GRACE
        };
        let (state, msg, err, code) = tokio::select! {
            status = running.child.wait() => {
                let code = status.ok().and_then(|s| s.code());
                match code {
                    Some(0) => (TaskState::Complete, "finished", String::new(), Some(0)),
                    Some(c) => (TaskState::Failed, "failed", format!("task: non-zero exit ({c})"), Some(c)),
                    None => (TaskState::Failed, "failed", "task: killed by a signal".to_string(), None),
                }
            }
            // A dropped sender (the agent going away) is not a stop: the task outlives it.
            Ok(()) = stop_rx => {
                let code = stop(&mut running, grace).await;
                (TaskState::Shutdown, "shutdown", String::new(), code)
            }
        };
        info!(?state, exit = ?code, "task ended");
        drop(running);
        crate::executor::adopt::forget(&self.executor.task_dir(&t.id));
        self.release(&t.id).await;
        self.finish(
            &t.id,
            Final {
                state,
                message: msg,
                err,
                exit_code: code,
            },
            false,
        );
    }

    /// Takes back the sandboxed tasks a previous run of this agent left running (their process
    /// is still the same one): they are supervised again rather than replaced. Returns their ids.
    pub fn adopt(&self) -> Vec<String> {
        if self.data_plane.is_none() {
            return Vec::new();
        }
        let found = crate::executor::adopt::find(self.executor.dir());
        for (id, pid, start) in &found {
            let (tx, rx) = oneshot::channel();
            self.lock().insert(
                id.clone(),
                Local::Running {
                    stop: Some(tx),
                    pid: *pid,
                    adopted: true,
                },
            );
            info!(task.id = %id, pid, "adopted a task left running by the previous swarmd");
            let span = info_span!("task", task.id = %id);
            tokio::spawn(
                self.clone()
                    .supervise_adopted(id.clone(), *pid, *start, rx)
                    .instrument(span),
            );
        }
        found.into_iter().map(|(id, ..)| id).collect()
    }

    /// Supervises an adopted task (not our child: its end is seen by polling, its exit code is
    /// unknown).
    async fn supervise_adopted(
        self,
        id: String,
        pid: u32,
        start: u64,
        mut stop_rx: oneshot::Receiver<()>,
    ) {
        use crate::executor::adopt::alive;
        use crate::executor::process::signal_group;
        let stopped = loop {
            tokio::select! {
                Ok(()) = &mut stop_rx => {
                    signal_group(pid, libc::SIGTERM);
                    let deadline = tokio::time::Instant::now() + DEFAULT_STOP_GRACE;
                    while alive(pid, start) && tokio::time::Instant::now() < deadline {
                        tokio::time::sleep(Duration::from_millis(50)).await;
                    }
                    signal_group(pid, libc::SIGKILL);
                    break true;
                }
                _ = tokio::time::sleep(Duration::from_millis(250)) => {
                    if !alive(pid, start) {
                        break false;
                    }
                }
            }
        };
        crate::executor::adopt::forget(&self.executor.task_dir(&id));
        self.release(&id).await;
        let f = if stopped {
            Final {
                state: TaskState::Shutdown,
                message: "shutdown",
                err: String::new(),
                exit_code: None,
            }
        } else {
            Final {
                state: TaskState::Failed,
                message: "failed",
                err: "task: exited while adopted after a swarmd restart (exit code unknown)".into(),
                exit_code: None,
            }
        };
        info!(?f.state, "adopted task ended");
        self.finish(&id, f, false);
    }

    /// Whether tasks keep running when swarmd stops (sandboxed tasks do; a restarted swarmd
    /// adopts them).
    pub fn tasks_outlive_agent(&self) -> bool {
        self.data_plane.is_some()
    }

    /// Stops every task (swarmd is shutting down).
    pub async fn stop_all(&self) {
        let ids: Vec<String> = self.lock().keys().cloned().collect();
        for id in &ids {
            self.stop_task(id);
        }
        let deadline = tokio::time::Instant::now() + DEFAULT_STOP_GRACE + Duration::from_secs(1);
        while self.running() > 0 && tokio::time::Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use shoal_proto::model::{ServiceSpec, TaskStatus};

    fn task(id: &str, args: &[&str], desired: TaskState, observed: TaskState) -> pb::Task {
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

    fn full(tasks: Vec<pb::Task>) -> pb::Assignments {
        pb::Assignments {
            full: true,
            tasks,
            ..Default::default()
        }
    }

    async fn wait_state(r: &Reporter, id: &str, state: TaskState) {
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
                ProcessExecutor::new(dir.path().to_path_buf(), "n1".into()),
                r.clone(),
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
}
