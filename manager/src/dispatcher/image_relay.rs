//! `swarmctl image …` on a node: the leader asks the node's agent over its session
//! (`image_op`), the agent answers with `PublishImage`. A load also streams the archive:
//!
//! ```text
//! client ──LoadImage(chunks)──► leader ──session msg {image_op: load, id}──► agent
//!                                 │                                           │
//!                                 └──── ImageUpload(id) stream of chunks ─────┘
//!                                 ◄──────────── PublishImage(id) ─────────────┘
//! ```
//!
//! The leader registers the upload under the request's id and asks the agent; the agent opens
//! `ImageUpload` on its own channel naming the id, and only the node asked can take it
//! ([`Uploads::attach`]). The client's chunks are then copied to the agent through a bounded
//! channel (a slow disk slows the client), counted against the size limit: past it, or when the
//! client breaks off, the agent's stream ends with an error and the agent discards what it got.
//! The agent's answer comes back through the relay like any other.

use super::relay::{FromAgent, RelayError};
use super::{lock, Dispatcher, ToAgent};
use shoal_proto::pb;
use std::collections::HashMap;
use std::pin::Pin;
use std::sync::Mutex;
use std::time::Duration;
use tokio::sync::{mpsc, oneshot};
use tokio::time::Instant;
use tokio_stream::{Stream, StreamExt};
use tonic::Status;

/// Chunks in flight between the leader and the agent.
pub const UPLOAD_CHUNKS: usize = 8;

/// The client's archive chunks, as the leader reads them.
pub type ChunkStream = Pin<Box<dyn Stream<Item = Result<pb::ImageLoadChunk, Status>> + Send>>;

/// Where the leader sends an upload's chunks: the agent's `ImageUpload` answer.
pub type UploadLeg = mpsc::Sender<Result<pb::ImageLoadChunk, Status>>;

/// Why an `image load` failed before the node could answer.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum LoadError {
    /// The node could not be asked or did not answer.
    #[error(transparent)]
    Relay(#[from] RelayError),
    /// The archive is larger than the leader takes.
    #[error("the archive is larger than {max} bytes (the managers' image load limit); nothing was loaded")]
    TooLarge {
        /// The limit.
        max: u64,
    },
    /// The client's stream broke before its end.
    #[error("the upload broke off: {0}; nothing was loaded")]
    Client(String),
    /// The node closed the upload before the archive's end without an answer.
    #[error("the node stopped reading the archive")]
    AgentLeft,
}

/// Why an agent could not take an upload.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum UploadError {
    /// No upload waits under this id (it timed out, its client left, or it never existed).
    #[error("no image upload {0} waits for a node")]
    Unknown(String),
    /// The upload was meant for another node.
    #[error("image upload {0} belongs to another node")]
    OtherNode(String),
}

impl From<UploadError> for Status {
    fn from(e: UploadError) -> Status {
        match e {
            UploadError::Unknown(_) => Status::not_found(e.to_string()),
            UploadError::OtherNode(_) => Status::permission_denied(e.to_string()),
        }
    }
}

struct Waiter {
    node: String,
    tx: oneshot::Sender<UploadLeg>,
}

/// Uploads waiting for their agent, by request id.
#[derive(Default)]
pub(crate) struct Uploads {
    waiting: Mutex<HashMap<String, Waiter>>,
}

impl Uploads {
    /// Registers upload `id` for node `node`; the guard forgets it when dropped.
    fn open(&self, id: &str, node: &str) -> (Waiting<'_>, oneshot::Receiver<UploadLeg>) {
        let (tx, rx) = oneshot::channel();
        let waiter = Waiter {
            node: node.to_string(),
            tx,
        };
        lock(&self.waiting).insert(id.to_string(), waiter);
        (
            Waiting {
                uploads: self,
                id: id.to_string(),
            },
            rx,
        )
    }

    /// Hands `leg` to upload `id`, if node `node` is the one it was meant for.
    pub(crate) fn attach(&self, id: &str, node: &str, leg: UploadLeg) -> Result<(), UploadError> {
        let mut waiting = lock(&self.waiting);
        match waiting.get(id) {
            None => return Err(UploadError::Unknown(id.to_string())),
            Some(w) if w.node != node => return Err(UploadError::OtherNode(id.to_string())),
            Some(_) => {}
        }
        let w = waiting
            .remove(id)
            .ok_or_else(|| UploadError::Unknown(id.to_string()))?;
        let _ = w.tx.send(leg);
        Ok(())
    }

    #[cfg(test)]
    pub(crate) fn waiting(&self) -> usize {
        lock(&self.waiting).len()
    }
}

struct Waiting<'a> {
    uploads: &'a Uploads,
    id: String,
}

impl Drop for Waiting<'_> {
    fn drop(&mut self) {
        lock(&self.uploads.waiting).remove(&self.id);
    }
}

impl Dispatcher {
    /// Asks the agent of `node` to do `op` (its request id is filled in here) and waits up to
    /// `waited` for the answer.
    pub async fn image_op(
        &self,
        node: &str,
        mut op: pb::ImageOp,
        waited: Duration,
    ) -> Result<pb::ImageNodeReport, RelayError> {
        let mut pending = self.relay.open(1);
        op.request_id = pending.id().to_string();
        self.send_to_node(node, ToAgent::Image(op)).await?;
        let deadline = Instant::now() + waited;
        loop {
            if let FromAgent::Image(r) = pending.next(deadline, waited).await? {
                return Ok(r);
            }
        }
    }

    /// Streams `chunks` to the agent of `node` as the archive of a load `op`, at most
    /// `max_bytes` of it, and waits up to `waited` after the archive's end for the answer.
    pub async fn image_load(
        &self,
        node: &str,
        mut op: pb::ImageOp,
        mut chunks: ChunkStream,
        waited: Duration,
    ) -> Result<pb::ImageNodeReport, LoadError> {
        let mut pending = self.relay.open(1);
        let id = pending.id().to_string();
        op.request_id = id.clone();
        let max = op.max_bytes;
        let (_waiting, leg) = self.uploads.open(&id, node);
        self.send_to_node(node, ToAgent::Image(op)).await?;
        let attach = self.t.relay_timeout;
        let to_agent = match tokio::time::timeout(attach, leg).await {
            Ok(Ok(leg)) => leg,
            _ => return Err(RelayError::Timeout { after: attach }.into()),
        };
        let mut total = 0u64;
        let mut agent_left = false;
        while let Some(chunk) = chunks.next().await {
            let chunk = match chunk {
                Ok(c) => c,
                Err(s) => {
                    let why = s.message().to_string();
                    let _ = to_agent.send(Err(Status::cancelled(why.clone()))).await;
                    return Err(LoadError::Client(why));
                }
            };
            total += chunk.data.len() as u64;
            if total > max {
                let e = LoadError::TooLarge { max };
                let _ = to_agent
                    .send(Err(Status::resource_exhausted(e.to_string())))
                    .await;
                return Err(e);
            }
            if to_agent.send(Ok(chunk)).await.is_err() {
                // The agent gave up (a bad archive, its disk): its answer says why.
                agent_left = true;
                break;
            }
        }
        drop(to_agent);
        let deadline = Instant::now() + waited;
        loop {
            match pending.next(deadline, waited).await {
                Ok(FromAgent::Image(r)) => return Ok(r),
                Ok(_) => {}
                Err(_) if agent_left => return Err(LoadError::AgentLeft),
                Err(e) => return Err(e.into()),
            }
        }
    }

    /// Pairs an agent's `ImageUpload` (from node `node`) with the upload `id` it names.
    pub fn image_upload(&self, id: &str, node: &str, leg: UploadLeg) -> Result<(), UploadError> {
        self.uploads.attach(id, node, leg)
    }
}

#[cfg(test)]
mod tests;
