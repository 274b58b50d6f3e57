//! The leader's half of `service logs`: the batches agents publish (`PublishLogs`) reach the
//! relay that asked for them (see `control::logs`) through a [`LogTap`].
//!
//! Several nodes answer one request id, each in as many batches as it takes. A batch is handed
//! over with back-pressure: the agent's `PublishLogs` call returns only once the relay took the
//! batch, so a client that reads slowly slows the agents' reading of their files, and nothing
//! piles up in memory. A batch for a request nobody waits for any more (the client left, the
//! request ended) is refused, which tells the agent to stop.

use super::{Dispatcher, RelayError, ToAgent};
use shoal_proto::pb;
use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use tokio::sync::mpsc;

/// Batches in flight from the agents to one relay.
pub const LOG_BATCHES: usize = 8;

/// Why a batch was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum LogsGone {
    /// No relay waits for this request id (any more), or not from this node.
    #[error("nobody follows these logs any more (request {0})")]
    Unknown(String),
}

impl From<LogsGone> for tonic::Status {
    fn from(e: LogsGone) -> tonic::Status {
        tonic::Status::not_found(e.to_string())
    }
}

struct Waiter {
    nodes: HashSet<String>,
    tx: mpsc::Sender<pb::PublishLogsRequest>,
}

/// The relays waiting for batches, by request id.
#[derive(Clone, Default)]
pub(crate) struct LogWaiters(Arc<Mutex<HashMap<String, Waiter>>>);

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// One relay's end: the batches of its request, from the nodes it allowed. Dropping it forgets
/// the request (later batches are refused).
pub struct LogTap {
    id: String,
    waiters: LogWaiters,
    rx: mpsc::Receiver<pb::PublishLogsRequest>,
}

impl std::fmt::Debug for LogTap {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LogTap").field("id", &self.id).finish()
    }
}

impl LogTap {
    /// The request id.
    pub fn id(&self) -> &str {
        &self.id
    }

    /// Takes batches from node `node` from now on.
    pub fn allow(&self, node: &str) {
        if let Some(w) = lock(&self.waiters.0).get_mut(&self.id) {
            w.nodes.insert(node.to_string());
        }
    }

    /// The next batch (never `None` while the tap lives).
    pub async fn recv(&mut self) -> Option<pb::PublishLogsRequest> {
        self.rx.recv().await
    }
}

impl Drop for LogTap {
    fn drop(&mut self) {
        lock(&self.waiters.0).remove(&self.id);
    }
}

impl Dispatcher {
    /// Opens a tap for a new log request.
    pub fn open_logs(&self) -> LogTap {
        let id = shoal_proto::model::new_id();
        let (tx, rx) = mpsc::channel(LOG_BATCHES);
        lock(&self.log_waiters.0).insert(
            id.clone(),
            Waiter {
                nodes: HashSet::new(),
                tx,
            },
        );
        LogTap {
            id,
            waiters: self.log_waiters.clone(),
            rx,
        }
    }

    /// Hands an agent's batch to the relay of its request; returns once the relay took it.
    pub async fn publish_logs(&self, b: pb::PublishLogsRequest) -> Result<(), LogsGone> {
        let tx = lock(&self.log_waiters.0)
            .get(&b.request_id)
            .filter(|w| w.nodes.contains(&b.node_id))
            .map(|w| w.tx.clone());
        let gone = LogsGone::Unknown(b.request_id.clone());
        match tx {
            Some(tx) => tx.send(b).await.map_err(|_| gone),
            None => Err(gone),
        }
    }

    /// Sends node `node` a log request (or a cancel) over its session.
    pub async fn ask_logs(&self, node: &str, req: pb::LogRequest) -> Result<(), RelayError> {
        self.send_to_node(node, ToAgent::Logs(req)).await
    }

    /// The id of node `node`'s session, if it holds one with this manager.
    pub fn session_of(&self, node: &str) -> Option<String> {
        lock(&self.sessions).get(node).map(|s| s.id.clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ManagerConfig;

    fn dispatcher() -> Dispatcher {
        let cfg = ManagerConfig::new("n".into(), 1, "127.0.0.1:1".into(), "/x".into());
        Dispatcher::new(&cfg)
    }

    fn batch(id: &str, node: &str, line: &str) -> pb::PublishLogsRequest {
        pb::PublishLogsRequest {
            request_id: id.into(),
            node_id: node.into(),
            lines: vec![pb::LogLine {
                data: line.as_bytes().to_vec(),
                ..Default::default()
            }],
            ..Default::default()
        }
    }

    #[tokio::test]
    async fn batches_reach_their_tap_from_allowed_nodes_only() {
        let d = dispatcher();
        let mut tap = d.open_logs();
        let id = tap.id().to_string();
        assert_eq!(
            d.publish_logs(batch(&id, "n1", "x")).await,
            Err(LogsGone::Unknown(id.clone())),
            "n1 was not asked"
        );
        tap.allow("n1");
        d.publish_logs(batch(&id, "n1", "hello")).await.unwrap();
        assert_eq!(tap.recv().await.unwrap().lines[0].data, b"hello");
        assert!(d.publish_logs(batch("other", "n1", "x")).await.is_err());
        drop(tap);
        let e = d.publish_logs(batch(&id, "n1", "late")).await.unwrap_err();
        assert_eq!(tonic::Status::from(e).code(), tonic::Code::NotFound);
    }

    #[tokio::test]
    async fn a_full_tap_holds_the_agent_until_it_is_read() {
        let d = Arc::new(dispatcher());
        let mut tap = d.open_logs();
        tap.allow("n1");
        let id = tap.id().to_string();
        for i in 0..LOG_BATCHES {
            d.publish_logs(batch(&id, "n1", &i.to_string()))
                .await
                .unwrap();
        }
        let held = {
            let (d, id) = (d.clone(), id.clone());
            tokio::spawn(async move { d.publish_logs(batch(&id, "n1", "more")).await })
        };
        for _ in 0..20 {
            tokio::task::yield_now().await;
        }
        assert!(!held.is_finished(), "back-pressure: the call waits");
        assert_eq!(tap.recv().await.unwrap().lines[0].data, b"0");
        held.await.unwrap().unwrap();
        // A tap dropped while an agent waits refuses it.
        let stuck = {
            let (d, id) = (d.clone(), id.clone());
            tokio::spawn(async move { d.publish_logs(batch(&id, "n1", "x")).await })
        };
        drop(tap);
        assert!(stuck.await.unwrap().is_err());
    }
}
