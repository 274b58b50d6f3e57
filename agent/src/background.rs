//! The agent's own tasks: every loop and request handler it spawns lives in one [`JoinSet`]
//! and stops at one [`CancellationToken`], so that stopping the agent stops them all (as
//! `manager/src/leader.rs` does for the leader's actors, and hickory's server for its own).

use std::future::Future;
use std::sync::{Arc, Mutex};

use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

/// Spawned work, owned. Clones share it.
#[derive(Clone, Default)]
pub struct Background {
    set: Arc<Mutex<JoinSet<()>>>,
    cancel: CancellationToken,
}

impl std::fmt::Debug for Background {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Background")
            .field("cancelled", &self.cancel.is_cancelled())
            .finish_non_exhaustive()
    }
}

impl Background {
    /// Nothing running yet.
    pub fn new() -> Background {
        Background::default()
    }

    /// Runs `work` until it ends or [`Background::shutdown`] (it is then dropped at its next
    /// `.await`). After a shutdown nothing new starts. Must be called within a tokio runtime.
    pub fn spawn<F>(&self, work: F)
    where
        F: Future<Output = ()> + Send + 'static,
    {
        let cancel = self.cancel.clone();
        let mut set = self.set.lock().unwrap_or_else(|e| e.into_inner());
        // Reap what ended, so that a long-lived agent does not keep every finished task.
        while set.try_join_next().is_some() {}
        if cancel.is_cancelled() {
            return;
        }
        set.spawn(async move {
            tokio::select! {
                _ = cancel.cancelled() => {}
                _ = work => {}
            }
        });
    }

    /// Resolves once [`Background::shutdown`] was called.
    pub async fn cancelled(&self) {
        self.cancel.cancelled().await
    }

    /// Stops everything spawned and waits until it has stopped.
    pub async fn shutdown(&self) {
        self.cancel.cancel();
        let mut set = std::mem::take(&mut *self.set.lock().unwrap_or_else(|e| e.into_inner()));
        while set.join_next().await.is_some() {}
    }

    /// Number of tasks not yet reaped (finished ones included until the next spawn).
    pub fn len(&self) -> usize {
        self.set.lock().unwrap_or_else(|e| e.into_inner()).len()
    }

    /// True when nothing is held.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[tokio::test]
    async fn shutdown_stops_every_loop_and_nothing_starts_after() {
        let bg = Background::new();
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<()>();
        for _ in 0..3 {
            let tx = tx.clone();
            bg.spawn(async move {
                let _held = tx; // dropped when the loop is
                loop {
                    tokio::time::sleep(Duration::from_secs(3600)).await;
                }
            });
        }
        drop(tx);
        assert_eq!(bg.len(), 3);
        bg.shutdown().await;
        assert!(bg.is_empty());
        assert!(rx.recv().await.is_none(), "every loop was dropped");
        bg.spawn(async { panic!("must not run") });
        assert!(bg.is_empty());
    }
}
