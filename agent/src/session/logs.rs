//! Log requests of the leader, served in the background: one follow per request id, to which
//! later requests with that id add tasks (or which they cancel). Every follow of a session ends
//! with it: a new leader knows nothing of them, and its client asks again.

use crate::background::Background;
use crate::executor::controller::BoxFuture;
use crate::logs::follow::{self, Publish, PublishError};
use shoal_proto::pb;
use shoal_proto::pb::dispatcher_client::DispatcherClient;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use tokio::sync::mpsc;
use tonic::transport::Channel;

/// A follow: its number (telling it from a later one under the same id) and its requests.
/// Unbounded on purpose: a follow held back by a slow client must not lose the tasks that start
/// meanwhile, and there is one small request per task the managers start on this node, never
/// one per line.
type Open = (u64, mpsc::UnboundedSender<pb::LogRequest>);

/// The follows of the current session, by request id.
#[derive(Debug, Default, Clone)]
pub(super) struct Follows {
    open: Arc<Mutex<HashMap<String, Open>>>,
    next: Arc<std::sync::atomic::AtomicU64>,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl Follows {
    /// Serves `req`: a new request starts in `background`; one with a known id goes to its
    /// follow (a cancel ends it).
    pub(super) fn handle<P: Publish + 'static>(
        &self,
        req: pb::LogRequest,
        ctx: follow::Ctx,
        publish: P,
        background: &Background,
    ) {
        let id = req.request_id.clone();
        let known = lock(&self.open).get(&id).map(|(_, tx)| tx.clone());
        if req.cancel {
            lock(&self.open).remove(&id);
            if let Some(tx) = known {
                let _ = tx.send(req);
            }
            return;
        }
        if let Some(tx) = known {
            match tx.send(req) {
                Ok(()) => return,
                Err(mpsc::error::SendError(r)) => {
                    // It ended meanwhile: a new one.
                    lock(&self.open).remove(&id);
                    return self.handle(r, ctx, publish, background);
                }
            }
        }
        let (tx, rx) = mpsc::unbounded_channel();
        let n = self.next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        if req.follow {
            lock(&self.open).insert(id.clone(), (n, tx));
        }
        let open = self.open.clone();
        background.spawn(async move {
            follow::serve(ctx, publish, req, rx).await;
            let mut open = lock(&open);
            if open.get(&id).is_some_and(|(m, _)| *m == n) {
                open.remove(&id);
            }
        });
    }

    /// The session ended: every follow ends.
    pub(super) fn clear(&self) {
        lock(&self.open).clear();
    }
}

/// Batches to the leader through the session's channel.
#[derive(Debug, Clone)]
pub(super) struct ToLeader(pub DispatcherClient<Channel>);

impl Publish for ToLeader {
    fn publish(
        &mut self,
        batch: pb::PublishLogsRequest,
    ) -> BoxFuture<'_, Result<(), PublishError>> {
        Box::pin(async move {
            match self.0.publish_logs(batch).await {
                Ok(_) => Ok(()),
                Err(s) if s.code() == tonic::Code::NotFound => Err(PublishError::Gone),
                Err(s) => Err(PublishError::Failed(s.message().to_string())),
            }
        })
    }
}
