//! Task status updates from agents, batched into raft writes (one entry per batch).
//!
//! Agents' calls queue their updates and wait; one leader actor, [`write_statuses`], drains the
//! queue. The actor takes the queue's receiver for as long as it runs and puts it back when it
//! stops (also when it is aborted at a leadership change), so the next leader term's actor
//! picks up where it left off, and no lock is held while it waits on raft.

use super::{lock, Dispatcher};
use crate::config::ManagerConfig;
use crate::manager::Manager;
use crate::raft::WriteError;
use shoal_proto::model::{Command, TaskStatusUpdate};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::{mpsc, oneshot, Notify};
use tracing::debug;

/// Most status updates in one raft entry.
pub const STATUS_BATCH_MAX: usize = 10_000;

/// Why status updates were not recorded.
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum StatusError {
    /// The dispatcher is gone (the manager is stopping).
    #[error("dispatcher stopped")]
    Stopped,
    /// The batch did not commit in time (no leader actor ran, or raft was slow).
    #[error("status update not committed (leadership changed?); retry")]
    NotCommitted,
    /// Raft refused the batch's write.
    #[error("{0}")]
    Raft(Arc<WriteError>),
}

type Waiter = oneshot::Sender<Result<(), StatusError>>;
type Batch = (Vec<TaskStatusUpdate>, Waiter);

/// The queue between agents' calls and the writer actor.
pub(super) struct Queue {
    tx: mpsc::UnboundedSender<Batch>,
    /// The receiving end while no writer holds it.
    rx: Mutex<Option<mpsc::UnboundedReceiver<Batch>>>,
    /// Signalled when a writer puts the receiver back.
    returned: Notify,
    window: Duration,
    commit_timeout: Duration,
}

impl Queue {
    pub(super) fn new(cfg: &ManagerConfig) -> Queue {
        let (tx, rx) = mpsc::unbounded_channel();
        Queue {
            tx,
            rx: Mutex::new(Some(rx)),
            returned: Notify::new(),
            window: cfg.status_batch_window,
            commit_timeout: cfg.status_commit_timeout,
        }
    }

    /// The receiver, waiting for the previous writer to return it.
    async fn lease(&self) -> Lease<'_> {
        loop {
            let returned = self.returned.notified();
            if let Some(rx) = lock(&self.rx).take() {
                return Lease {
                    queue: self,
                    rx: Some(rx),
                };
            }
            returned.await;
        }
    }
}

/// The queue's receiver, held by one writer; given back on drop.
struct Lease<'a> {
    queue: &'a Queue,
    rx: Option<mpsc::UnboundedReceiver<Batch>>,
}

impl Lease<'_> {
    fn rx(&mut self) -> &mut mpsc::UnboundedReceiver<Batch> {
        self.rx
            .as_mut()
            .expect("a lease holds the receiver until dropped")
    }
}

impl Drop for Lease<'_> {
    fn drop(&mut self) {
        *lock(&self.queue.rx) = self.rx.take();
        self.queue.returned.notify_one();
    }
}

impl Dispatcher {
    /// Queues status updates for the next batch and waits until it is committed.
    pub async fn submit_statuses(&self, updates: Vec<TaskStatusUpdate>) -> Result<(), StatusError> {
        let q = &self.statuses;
        let (tx, rx) = oneshot::channel();
        q.tx.send((updates, tx)).map_err(|_| StatusError::Stopped)?;
        match tokio::time::timeout(q.commit_timeout, rx).await {
            Ok(Ok(r)) => r,
            _ => Err(StatusError::NotCommitted),
        }
    }
}

/// Leader actor: writes queued task status updates in batches (one raft entry per batch).
pub async fn write_statuses(m: Arc<Manager>) {
    let q = &m.dispatcher.statuses;
    let mut lease = q.lease().await;
    loop {
        let Some((updates, waiters)) = next_batch(lease.rx(), q.window).await else {
            return;
        };
        debug!(updates = updates.len(), "writing task statuses");
        let result = m
            .raft
            .client_write(Command::TaskStatuses(updates))
            .await
            .map(|_| ())
            .map_err(|e| StatusError::Raft(Arc::new(e)));
        for w in waiters {
            let _ = w.send(result.clone());
        }
    }
}

/// The next batch: the first queued updates, then whatever arrives within `window`, up to
/// [`STATUS_BATCH_MAX`] updates. `None` when the queue is closed.
async fn next_batch(
    rx: &mut mpsc::UnboundedReceiver<Batch>,
    window: Duration,
) -> Option<(Vec<TaskStatusUpdate>, Vec<Waiter>)> {
    let (mut updates, first) = rx.recv().await?;
    let mut waiters = vec![first];
    let deadline = tokio::time::Instant::now() + window;
    while updates.len() < STATUS_BATCH_MAX {
        match tokio::time::timeout_at(deadline, rx.recv()).await {
            Ok(Some((u, w))) => {
                updates.extend(u);
                waiters.push(w);
            }
            _ => break,
        }
    }
    Some((updates, waiters))
}

#[cfg(test)]
mod tests {
    use super::*;
    use shoal_proto::model::TaskStatus;

    fn update(task_id: &str) -> TaskStatusUpdate {
        TaskStatusUpdate {
            task_id: task_id.into(),
            status: TaskStatus::default(),
        }
    }

    fn queue() -> Queue {
        Queue::new(&ManagerConfig::new(
            "n".into(),
            1,
            "127.0.0.1:1".into(),
            "/nonexistent".into(),
        ))
    }

    #[tokio::test]
    async fn an_aborted_writer_gives_the_queue_back() {
        let q = Arc::new(queue());
        let (held_tx, held_rx) = oneshot::channel();
        let writer = {
            let q = q.clone();
            tokio::spawn(async move {
                let _lease = q.lease().await;
                let _ = held_tx.send(());
                std::future::pending::<()>().await;
            })
        };
        held_rx.await.unwrap();
        assert!(lock(&q.rx).is_none(), "the writer holds the receiver");
        // The next term's writer waits for it…
        let next = {
            let q = q.clone();
            tokio::spawn(async move {
                let mut lease = q.lease().await;
                next_batch(lease.rx(), Duration::from_millis(1))
                    .await
                    .map(|(u, _)| u.len())
            })
        };
        // …and gets it once the first one is aborted (a leadership change).
        writer.abort();
        let (tx, _rx) = oneshot::channel();
        q.tx.send((vec![update("t1")], tx)).unwrap();
        assert_eq!(next.await.unwrap(), Some(1));
        assert!(lock(&q.rx).is_some(), "given back again");
    }

    #[tokio::test(start_paused = true)]
    async fn updates_arriving_within_the_window_share_a_batch() {
        let q = queue();
        for id in ["t1", "t2"] {
            let (tx, _rx) = oneshot::channel();
            q.tx.send((vec![update(id)], tx)).unwrap();
        }
        let mut lease = q.lease().await;
        let (updates, waiters) = next_batch(lease.rx(), q.window).await.unwrap();
        assert_eq!((updates.len(), waiters.len()), (2, 2));
    }
}
