//! The worker: converges what runs on this node to the assignments. Level-triggered: every
//! assignment message (full or incremental) updates the wanted set, then each task is
//! reconciled on its own.

use crate::executor::process::{stop, ProcessExecutor, Running};
use crate::reporter::Reporter;
use shoal_proto::model::{Task, TaskState};
use shoal_proto::pb;
use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::oneshot;
use tracing::{info, info_span, warn, Instrument};

/// Default time between SIGTERM and SIGKILL (Docker's default).
pub const DEFAULT_STOP_GRACE: Duration = Duration::from_secs(10);

enum Local {
    /// Started; the sender asks the supervisor to stop it.
    Running { stop: Option<oneshot::Sender<()>> },
    /// Ended (or never started) on this node.
    Done,
}

/// Runs the node's tasks.
#[derive(Clone)]
pub struct Worker {
    inner: Arc<Mutex<HashMap<String, Local>>>,
    executor: ProcessExecutor,
    reporter: Reporter,
}

impl std::fmt::Debug for Worker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Worker").finish_non_exhaustive()
    }
}

impl Worker {
    /// A worker using `executor` and reporting to `reporter`.
    pub fn new(executor: ProcessExecutor, reporter: Reporter) -> Self {
        Worker { inner: Arc::new(Mutex::new(HashMap::new())), executor, reporter }
    }

    /// The executor (for logs).
    pub fn executor(&self) -> &ProcessExecutor {
        &self.executor
    }

    /// Number of tasks running here.
    pub fn running(&self) -> usize {
        self.lock().values().filter(|l| matches!(l, Local::Running { .. })).count()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Local>> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Applies one assignments message.
    pub fn apply(&self, a: &pb::Assignments) {
        let tasks: Vec<Task> = a.tasks.iter().filter_map(|t| Task::try_from(t).ok()).collect();
        let mut gone: Vec<String> = a.removed.clone();
        if a.full {
            let keep: HashSet<&str> = tasks.iter().map(|t| t.id.as_str()).collect();
            gone.extend(self.lock().keys().filter(|id| !keep.contains(id.as_str())).cloned());
        }
        for id in gone {
            self.stop_task(&id);
            self.lock().remove(&id);
        }
        for t in tasks {
            self.reconcile(t);
        }
    }

    fn stop_task(&self, id: &str) {
        if let Some(Local::Running { stop }) = self.lock().get_mut(id) {
            if let Some(tx) = stop.take() {
                let _ = tx.send(());
            }
        }
    }

    fn reconcile(&self, t: Task) {
        let known = self.lock().contains_key(&t.id);
        if t.desired_state > TaskState::Running {
            if known {
                self.stop_task(&t.id);
            } else if !t.status.state.is_terminal() {
                // Never started here (or lost in an agent restart): nothing to stop.
                self.reporter.report(&t.id, TaskState::Shutdown, "shutdown", "", None, 0);
                self.lock().insert(t.id.clone(), Local::Done);
            }
            return;
        }
        if known {
            return;
        }
        if t.status.state >= TaskState::Accepted {
            // We accepted it before, but this agent has no record: swarmd restarted and the
            // task's process went with it. Report it so the orchestrator replaces it.
            self.lock().insert(t.id.clone(), Local::Done);
            self.reporter.report(&t.id, TaskState::Failed, "task lost", "the task's process ended when swarmd restarted", None, 0);
            return;
        }
        if t.desired_state < TaskState::Running {
            return; // waiting for a restart delay
        }
        self.start(t);
    }

    fn start(&self, t: Task) {
        let (tx, rx) = oneshot::channel();
        self.lock().insert(t.id.clone(), Local::Running { stop: Some(tx) });
        let r = &self.reporter;
        r.report(&t.id, TaskState::Accepted, "accepted", "", None, 0);
        r.report(&t.id, TaskState::Preparing, "preparing", "", None, 0);
        r.report(&t.id, TaskState::Starting, "starting", "", None, 0);
        match self.executor.start(&t) {
            Ok(running) => {
                info!(task.id = %t.id, pid = running.pid, "task started");
                r.report(&t.id, TaskState::Running, "started", "", None, running.pid);
                let span = info_span!("task", task.id = %t.id, service.id = %t.service_id);
                tokio::spawn(self.clone().supervise(t, running, rx).instrument(span));
            }
            Err(e) => {
                warn!(task.id = %t.id, error = %e, "task failed to start");
                self.lock().insert(t.id.clone(), Local::Done);
                r.report(&t.id, TaskState::Rejected, "rejected", &e, None, 0);
            }
        }
    }

    async fn supervise(self, t: Task, mut running: Running, stop_rx: oneshot::Receiver<()>) {
        let grace = if t.spec.stop_grace_ms > 0 { Duration::from_millis(t.spec.stop_grace_ms) } else { DEFAULT_STOP_GRACE };
        let (state, msg, err, code) = tokio::select! {
            status = running.child.wait() => {
                let code = status.ok().and_then(|s| s.code());
                match code {
                    Some(0) => (TaskState::Complete, "finished", String::new(), Some(0)),
                    Some(c) => (TaskState::Failed, "failed", format!("task: non-zero exit ({c})"), Some(c)),
                    None => (TaskState::Failed, "failed", "task: killed by a signal".to_string(), None),
                }
            }
            _ = stop_rx => {
                let code = stop(&mut running, grace).await;
                (TaskState::Shutdown, "shutdown", String::new(), code)
            }
        };
        info!(?state, exit = ?code, "task ended");
        self.lock().insert(t.id.clone(), Local::Done);
        self.reporter.report(&t.id, state, msg, &err, code, 0);
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
