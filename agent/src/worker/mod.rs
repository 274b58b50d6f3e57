//! The worker: converges what runs on this node to the assignments. Level-triggered: every
//! assignment message (full or incremental) updates the wanted set, then each task is
//! reconciled on its own.
//!
//! * [`assign`](self): assignments in, tasks started, stopped, or their last status re-sent;
//! * `lifecycle`: one supervisor per task drives its [`Controller`] (prepare, start, wait,
//!   shutdown, remove) and reports each step;
//! * `adopt`: tasks a previous `swarmd` left running, supervised again;
//! * [`health`], `probe`: a task's health check, run by its supervisor;
//! * `reports`: what the managers ask of a node: logs, exec, balancer reports.
//!
//! The worker knows tasks only through the [`Executor`] seam; the data plane (sandboxes,
//! overlay peers, balancers) is its other half.

mod adopt;
mod assign;
pub mod health;
mod lifecycle;
mod probe;
mod reports;

use crate::background::Background;
use crate::executor::files::DataBook;
use crate::executor::{controller::BoxFuture, ExecOutput, Executor};
use crate::logs::LogBook;
use crate::network::{DataPlane, Peer};
use crate::reporter::Reporter;
use shoal_proto::model::{TaskHealth, TaskState, TaskStatus};
use shoal_proto::pb;
use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::{mpsc, oneshot, watch};

/// Default of [`Timings::stop_grace`]: time between SIGTERM and SIGKILL (Docker's default).
pub const DEFAULT_STOP_GRACE: Duration = Duration::from_secs(10);

/// The worker's timings (see the agent's configuration).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timings {
    /// Time between asking a task to stop and killing it, for tasks whose service sets none
    /// (and adopted tasks, whose service is not known when they are adopted).
    pub stop_grace: Duration,
    /// Time between two sweeps of what ended tasks left behind (cgroups).
    pub sweep_period: Duration,
    /// How long a task that the managers stopped keeps running before it is signalled, with a
    /// data plane, when its service sets no `--stop-drain` (and for an adopted task until its
    /// service is known): its balancers on every node let go of it first.
    pub lb_drain: Duration,
    /// How long the worker waits before programming balancers again after a failure.
    pub lb_retry: Duration,
    /// How much longer than `stop_grace` a stopping agent waits for its tasks to end.
    pub stop_all_slack: Duration,
    /// How often a stopping agent checks whether its tasks have ended.
    pub stop_all_poll: Duration,
    /// How often the logs of running tasks are stamped (the resolution of their lines' times)
    /// and follows read what they gained.
    pub log_poll: Duration,
    /// How long an idle log follow waits before checking that someone still reads it.
    pub log_keepalive: Duration,
}

impl Default for Timings {
    fn default() -> Self {
        Timings {
            stop_grace: DEFAULT_STOP_GRACE,
            sweep_period: Duration::from_secs(60),
            lb_drain: shoal_proto::model::DEFAULT_STOP_DRAIN,
            lb_retry: Duration::from_secs(1),
            stop_all_slack: Duration::from_secs(1),
            stop_all_poll: Duration::from_millis(20),
            log_poll: Duration::from_millis(100),
            log_keepalive: Duration::from_secs(5),
        }
    }
}

/// What a task's supervisor is asked to do.
enum Command {
    /// Stop the task, `drain` from now.
    Stop { drain: Duration },
    /// Run a command in the task; the reply is the command's run, to await elsewhere.
    Exec {
        cmd: Vec<String>,
        timeout: Duration,
        reply: oneshot::Sender<BoxFuture<'static, Result<ExecOutput, crate::executor::Error>>>,
    },
    /// The task's assignment, for a task adopted after a restart: its stop grace, drain and
    /// health check are known from now on.
    Adopted(Box<shoal_proto::model::Task>),
    /// Start an interactive command in the task; the reply is its start, to await elsewhere.
    ExecInteractive {
        spec: crate::executor::ExecSpec,
        reply: oneshot::Sender<
            BoxFuture<'static, Result<crate::executor::ExecSession, crate::executor::Error>>,
        >,
    },
}

enum Local {
    /// Supervised (pid 0 until its process exists).
    Running {
        /// Its supervisor.
        cmd: mpsc::UnboundedSender<Command>,
        pid: u32,
        /// Adopted after a restart and its sandbox not yet re-registered with the data plane.
        adopted: bool,
        /// How long a stop waits, with a data plane, before signalling the task (its service's
        /// `--stop-drain`).
        drain: Duration,
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
    /// What its health check found last (none: it had none, or it does not matter).
    health: TaskHealth,
}

impl Final {
    fn shutdown(exit_code: Option<i32>) -> Final {
        Final {
            state: TaskState::Shutdown,
            message: "shutdown",
            err: String::new(),
            exit_code,
            health: TaskHealth::None,
        }
    }

    /// The status to report.
    fn status(&self) -> TaskStatus {
        TaskStatus {
            state: self.state,
            message: self.message.to_string(),
            err: self.err.clone(),
            timestamp_ms: shoal_proto::model::now_ms(),
            exit_code: self.exit_code,
            health: self.health,
            ..Default::default()
        }
    }
}

/// Runs the node's tasks.
#[derive(Clone)]
pub struct Worker {
    inner: Arc<Mutex<HashMap<String, Local>>>,
    executor: Arc<dyn Executor>,
    reporter: Reporter,
    data_plane: Option<DataPlane>,
    /// The latest overlay peers from the managers, applied in order by one task.
    peers: Option<watch::Sender<Vec<Peer>>>,
    /// The latest balancer tables from the managers, applied in order by one task.
    lb: Option<watch::Sender<Vec<pb::LbTable>>>,
    timings: Timings,
    /// Where the worker's loops and supervisors run.
    background: Background,
    /// The image each container task of the assignments names (pinned), by task id: what
    /// `image rm|prune` must not take away from a task.
    images: Arc<Mutex<HashMap<String, TaskImage>>>,
    /// The tasks' log indexes (see [`crate::logs`]).
    logs: Arc<LogBook>,
    /// The secrets and configs the node's tasks use, as the managers last listed them.
    data: DataBook,
    /// The tasks of the assignments as the managers sent them, by id (see
    /// [`Worker::local_tasks`]).
    assigned: Arc<Mutex<HashMap<String, pb::Task>>>,
}

/// The image a container task uses, as its service names it pinned to its digest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TaskImage {
    /// The task's name (`service.slot.id`).
    pub task: String,
    /// `name:tag@sha256:…` (or as typed when the service is not pinned).
    pub image: String,
}

impl std::fmt::Debug for Worker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Worker").finish_non_exhaustive()
    }
}

impl Worker {
    /// A worker running tasks with `executor`, reporting to `reporter`, its loops and
    /// supervisors in `background`. Must be called within a tokio runtime: it starts the sweep
    /// of what ended tasks left (see [`Executor::sweep`]).
    pub fn new(
        executor: Arc<dyn Executor>,
        reporter: Reporter,
        timings: Timings,
        background: Background,
    ) -> Self {
        let w = Worker {
            inner: Arc::new(Mutex::new(HashMap::new())),
            executor,
            reporter,
            data_plane: None,
            peers: None,
            lb: None,
            timings,
            background,
            images: Arc::default(),
            logs: Arc::default(),
            data: DataBook::default(),
            assigned: Arc::default(),
        };
        w.background.spawn(w.clone().sweep());
        let (book, period) = (w.logs.clone(), w.timings.log_poll);
        w.background.spawn(async move { book.run(period).await });
        w
    }

    /// Removes what tasks that do not run here left: at start (a crash's leftovers), then
    /// every [`Timings::sweep_period`] (what a task's removal could not remove yet).
    async fn sweep(self) {
        loop {
            let running: HashSet<String> = self
                .lock()
                .iter()
                .filter(|(_, l)| matches!(l, Local::Running { .. }))
                .map(|(id, _)| id.clone())
                .collect();
            self.executor.sweep(&running);
            tokio::time::sleep(self.timings.sweep_period).await;
        }
    }

    /// Runs tasks in sandboxes of `data_plane` (plain processes when `None`), and starts the
    /// loops that program its overlay peers and balancers.
    pub fn with_data_plane(mut self, data_plane: Option<DataPlane>) -> Self {
        if let Some(dp) = &data_plane {
            let (tx, mut rx) = watch::channel(Vec::new());
            let dp2 = dp.clone();
            self.background.spawn(async move {
                while rx.changed().await.is_ok() {
                    let peers = rx.borrow_and_update().clone();
                    dp2.set_peers(peers).await;
                }
            });
            self.peers = Some(tx);
            // Balancers: the latest tables, retried until they apply (a network's overlay may
            // lack its VXLAN id for a moment; a kernel call may fail).
            let (tx, mut rx) = watch::channel(Vec::<pb::LbTable>::new());
            let (dp, retry) = (dp.clone(), self.timings.lb_retry);
            self.background.spawn(async move {
                while rx.changed().await.is_ok() {
                    loop {
                        let tables = rx.borrow_and_update().clone();
                        match dp.apply_lb(&tables).await {
                            Ok(()) => break,
                            Err(e) => {
                                tracing::warn!("balancers not converged yet, retrying: {e}");
                                tokio::select! {
                                    _ = tokio::time::sleep(retry) => {}
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

    /// Keeps the secrets and configs the managers send in `book` (which the executor reads).
    pub fn with_data(mut self, book: DataBook) -> Self {
        self.data = book;
        self
    }

    /// Number of tasks running here.
    pub fn running(&self) -> usize {
        self.lock()
            .values()
            .filter(|l| matches!(l, Local::Running { .. }))
            .count()
    }

    /// The images of the container tasks supervised here (preparing, starting or running).
    pub fn task_images(&self) -> Vec<TaskImage> {
        let supervised: HashSet<String> = self
            .lock()
            .iter()
            .filter(|(_, l)| matches!(l, Local::Running { .. }))
            .map(|(id, _)| id.clone())
            .collect();
        let images = self.images.lock().unwrap_or_else(|e| e.into_inner());
        let mut out: Vec<TaskImage> = images
            .iter()
            .filter(|(id, _)| supervised.contains(*id))
            .map(|(_, i)| i.clone())
            .collect();
        out.sort_by(|a, b| a.task.cmp(&b.task));
        out
    }

    /// The tasks assigned to this node, each with the status this node knows (running with its
    /// pid, or how it ended): what the node's `docker ps` shows without a manager.
    pub fn local_tasks(&self) -> Vec<pb::Task> {
        let local = self.lock();
        let assigned = self.assigned.lock().unwrap_or_else(|e| e.into_inner());
        let mut out: Vec<pb::Task> = assigned
            .values()
            .map(|t| {
                let mut t = t.clone();
                match local.get(&t.id) {
                    Some(Local::Running { pid, .. }) if *pid > 0 => {
                        let st = t.status.get_or_insert_with(Default::default);
                        if st.state != TaskState::Running as i32 {
                            st.state = TaskState::Running as i32;
                            st.timestamp_ms = shoal_proto::model::now_ms();
                        }
                        st.pid = *pid;
                    }
                    Some(Local::Done(f)) => t.status = Some((&f.status()).into()),
                    _ => {}
                }
                t
            })
            .collect();
        out.sort_by(|a, b| a.id.cmp(&b.id));
        out
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Local>> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
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
        let t = &self.timings;
        let deadline = tokio::time::Instant::now() + t.stop_grace + t.stop_all_slack;
        while self.running() > 0 && tokio::time::Instant::now() < deadline {
            tokio::time::sleep(t.stop_all_poll).await;
        }
    }
}

#[cfg(test)]
mod container_tests;
#[cfg(test)]
mod seam_tests;
#[cfg(test)]
mod tests;
