//! Task status reporting: the latest status per task is kept until the dispatcher accepted it,
//! so nothing is lost across reconnects; updates are sent in batches.

use shoal_proto::model::{now_ms, TaskState, TaskStatus};
use shoal_proto::pb::dispatcher_client::DispatcherClient;
use shoal_proto::pb::{self, TaskStatusUpdate};
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::Notify;
use tonic::transport::Channel;

/// Default of how often pending updates are sent again when nothing new happens.
pub const DEFAULT_RESEND: Duration = Duration::from_millis(500);

/// Pending status updates.
#[derive(Clone)]
pub struct Reporter {
    pending: Arc<Mutex<BTreeMap<String, TaskStatus>>>,
    notify: Arc<Notify>,
    /// Signalled whenever the dispatcher accepted a batch.
    delivered: Arc<Notify>,
    resend: Duration,
}

impl Default for Reporter {
    fn default() -> Self {
        Reporter::new(DEFAULT_RESEND)
    }
}

impl std::fmt::Debug for Reporter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Reporter").finish_non_exhaustive()
    }
}

impl Reporter {
    /// A reporter that sends pending updates again every `resend` when nothing new happens.
    pub fn new(resend: Duration) -> Reporter {
        Reporter {
            pending: Default::default(),
            notify: Default::default(),
            delivered: Default::default(),
            resend,
        }
    }

    /// Records that `task_id` reached `state`.
    pub fn report(
        &self,
        task_id: &str,
        state: TaskState,
        message: &str,
        err: &str,
        exit_code: Option<i32>,
        pid: u32,
    ) {
        self.report_status(
            task_id,
            TaskStatus {
                state,
                message: message.to_string(),
                err: err.to_string(),
                timestamp_ms: now_ms(),
                exit_code,
                pid,
                ..Default::default()
            },
        );
    }

    /// Records `status` for `task_id`, unless a later state waits to be sent (a task's state
    /// only moves forward; within one state the latest status wins: a health change).
    pub fn report_status(&self, task_id: &str, status: TaskStatus) {
        let mut p = self.pending.lock().unwrap_or_else(|e| e.into_inner());
        match p.get(task_id) {
            Some(cur) if cur.state > status.state => {}
            _ => {
                p.insert(task_id.to_string(), status);
            }
        }
        drop(p);
        self.notify.notify_one();
    }

    /// Waits until `status` is no longer waiting to be sent for `task_id` (the dispatcher
    /// accepted it, or a later status replaced it), at most `cap`. Whether it was.
    pub async fn delivered(&self, task_id: &str, status: &TaskStatus, cap: Duration) -> bool {
        let deadline = tokio::time::Instant::now() + cap;
        loop {
            let sent = self.delivered.notified();
            if self.latest(task_id).as_ref() != Some(status) {
                return true;
            }
            if tokio::time::timeout_at(deadline, sent).await.is_err() {
                return false;
            }
        }
    }

    /// Reports `task_id` RUNNING as `pid`, with the addresses the node gave it.
    pub fn report_running(&self, task_id: &str, pid: u32, addresses: Vec<String>) {
        self.report(task_id, TaskState::Running, "started", "", None, pid);
        let mut p = self.pending.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(s) = p.get_mut(task_id).filter(|s| s.state == TaskState::Running) {
            s.addresses = addresses;
        }
    }

    /// The update waiting to be sent for `task_id`, if any.
    pub fn latest(&self, task_id: &str) -> Option<TaskStatus> {
        self.pending
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(task_id)
            .cloned()
    }

    /// Forgets every pending update (as if the dispatcher had accepted them).
    pub fn clear(&self) {
        self.pending
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clear();
    }

    /// Number of updates not yet accepted.
    pub fn pending(&self) -> usize {
        self.pending.lock().unwrap_or_else(|e| e.into_inner()).len()
    }

    /// Sends pending updates over one session until sending fails (the session is then over).
    pub async fn run(
        &self,
        mut client: DispatcherClient<Channel>,
        node_id: String,
        session_id: String,
    ) -> Result<(), tonic::Status> {
        loop {
            let batch: Vec<(String, TaskStatus)> = {
                let p = self.pending.lock().unwrap_or_else(|e| e.into_inner());
                p.iter().map(|(k, v)| (k.clone(), v.clone())).collect()
            };
            if batch.is_empty() {
                tokio::select! {
                    _ = self.notify.notified() => {}
                    _ = tokio::time::sleep(self.resend) => {}
                }
                continue;
            }
            let req = pb::UpdateTaskStatusRequest {
                node_id: node_id.clone(),
                session_id: session_id.clone(),
                updates: batch
                    .iter()
                    .map(|(id, s)| TaskStatusUpdate {
                        task_id: id.clone(),
                        status: Some(s.into()),
                    })
                    .collect(),
            };
            client.update_task_status(req).await?;
            let mut p = self.pending.lock().unwrap_or_else(|e| e.into_inner());
            for (id, sent) in batch {
                if p.get(&id) == Some(&sent) {
                    p.remove(&id);
                }
            }
            drop(p);
            self.delivered.notify_waiters();
        }
    }
}
