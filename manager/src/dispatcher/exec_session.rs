//! Interactive exec sessions (`swarmctl task exec -it`): the leader pairs a client's
//! `Control.ExecStream` with the `Dispatcher.ExecAttach` stream the task's agent opens.
//!
//! ```text
//! client ──ExecStream──► leader ──session msg {exec_session: id}──► agent
//!                          ▲                                          │
//!                          └──────────── ExecAttach(id) ◄─────────────┘
//! ```
//!
//! The leader registers a waiter under a fresh session id and asks the agent over its session
//! stream; the agent opens `ExecAttach` on its own mutual-TLS channel, naming the id in its first
//! frame. Only the node the request went to can take the id ([`ExecSessions::attach`]); an agent
//! that does not attach within the relay timeout fails the client's call. Once paired,
//! [`relay_exec`] copies frames both ways through bounded channels (a slow reader slows the
//! writer) until the program's exit code passes, or either side goes away: the client leaving
//! ends the agent's stream, and the agent kills the program.

use super::relay::RelayError;
use super::{Dispatcher, ToAgent};
use shoal_proto::pb;
use std::collections::HashMap;
use std::pin::Pin;
use std::sync::Mutex;
use tokio::sync::{mpsc, oneshot};
use tokio_stream::{Stream, StreamExt};
use tonic::Status;

/// Frames in flight each way between the leader and an agent.
pub const EXEC_FRAMES: usize = 16;

/// A stream of frames from an agent (or of inputs from a client).
pub type FrameStream<T> = Pin<Box<dyn Stream<Item = Result<T, Status>> + Send>>;

/// The agent's half of a paired session, as the leader holds it.
pub struct AgentLeg {
    /// Frames to the agent (inputs); dropping it ends the agent's stream.
    pub to_agent: mpsc::Sender<Result<pb::ExecFrame, Status>>,
    /// Frames from the agent (outputs).
    pub from_agent: FrameStream<pb::ExecFrame>,
}

impl std::fmt::Debug for AgentLeg {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AgentLeg").finish_non_exhaustive()
    }
}

/// Why an agent could not attach to a session.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum AttachError {
    /// No session waits under this id (it timed out, its client left, or it never existed).
    #[error("no exec session {0} waits for an agent")]
    Unknown(String),
    /// The session was asked of another node.
    #[error("exec session {0} belongs to another node")]
    OtherNode(String),
}

impl From<AttachError> for Status {
    fn from(e: AttachError) -> Status {
        match e {
            AttachError::Unknown(_) => Status::not_found(e.to_string()),
            AttachError::OtherNode(_) => Status::permission_denied(e.to_string()),
        }
    }
}

struct Waiter {
    node: String,
    tx: oneshot::Sender<AgentLeg>,
}

/// Sessions waiting for their agent, by session id.
#[derive(Default)]
pub(crate) struct ExecSessions {
    waiting: Mutex<HashMap<String, Waiter>>,
}

impl ExecSessions {
    /// Registers a session for node `node`; the guard forgets it when dropped.
    fn open(&self, node: &str) -> (Waiting<'_>, oneshot::Receiver<AgentLeg>) {
        let id = shoal_proto::model::new_id();
        let (tx, rx) = oneshot::channel();
        let waiter = Waiter {
            node: node.to_string(),
            tx,
        };
        lock(&self.waiting).insert(id.clone(), waiter);
        (Waiting { sessions: self, id }, rx)
    }

    /// Hands `leg` to session `id`, if node `node` is the one it was asked of.
    pub(crate) fn attach(&self, id: &str, node: &str, leg: AgentLeg) -> Result<(), AttachError> {
        let mut waiting = lock(&self.waiting);
        match waiting.get(id) {
            None => return Err(AttachError::Unknown(id.to_string())),
            Some(w) if w.node != node => return Err(AttachError::OtherNode(id.to_string())),
            Some(_) => {}
        }
        let w = waiting
            .remove(id)
            .ok_or_else(|| AttachError::Unknown(id.to_string()))?;
        // The client may have left a moment ago: the leg is dropped, which ends the agent's call.
        let _ = w.tx.send(leg);
        Ok(())
    }

    #[cfg(test)]
    fn waiting(&self) -> usize {
        lock(&self.waiting).len()
    }
}

/// A registered session; dropping it forgets the id.
struct Waiting<'a> {
    sessions: &'a ExecSessions,
    id: String,
}

impl Drop for Waiting<'_> {
    fn drop(&mut self) {
        lock(&self.sessions.waiting).remove(&self.id);
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl Dispatcher {
    /// Asks the agent of `node` to start `req` (its `session_id` is filled in here) and waits
    /// at most [`ManagerConfig::relay_timeout`](crate::ManagerConfig) for it to attach.
    pub async fn exec_session(
        &self,
        node: &str,
        mut req: pb::ExecSessionRequest,
    ) -> Result<AgentLeg, RelayError> {
        let (waiting, rx) = self.exec_sessions.open(node);
        req.session_id = waiting.id.clone();
        self.send_to_node(node, ToAgent::ExecSession(req)).await?;
        let waited = self.t.relay_timeout;
        match tokio::time::timeout(waited, rx).await {
            Ok(Ok(leg)) => Ok(leg),
            _ => Err(RelayError::Timeout { after: waited }),
        }
    }

    /// Pairs an agent's `ExecAttach` (from node `node`) with the session `id` it names.
    pub fn exec_attach(&self, id: &str, node: &str, leg: AgentLeg) -> Result<(), AttachError> {
        self.exec_sessions.attach(id, node, leg)
    }
}

/// Copies a paired session both ways until the agent reports the end (passed on as the last
/// message) or either side goes away. The client's input stream ending means the client left
/// (it says `close_stdin` to end stdin): the agent's stream is then ended, and the agent kills
/// the program. An agent that goes away without an exit code leaves the client an error.
pub async fn relay_exec(
    mut from_client: FrameStream<pb::ExecInput>,
    to_client: mpsc::Sender<Result<pb::ExecOutput, Status>>,
    agent: AgentLeg,
) {
    let AgentLeg {
        to_agent,
        mut from_agent,
    } = agent;
    loop {
        tokio::select! {
            input = from_client.next() => {
                let Some(Ok(input)) = input else { return };
                let frame = pb::ExecFrame { input: Some(input), ..Default::default() };
                if to_agent.send(Ok(frame)).await.is_err() {
                    let _ = to_client.send(Ok(broken("the task's node closed the session"))).await;
                    return;
                }
            }
            frame = from_agent.next() => {
                let out = match frame {
                    Some(Ok(pb::ExecFrame { output: Some(out), .. })) => out,
                    Some(Ok(_)) => continue,
                    Some(Err(s)) => broken(&format!("the task's node broke the session: {}", s.message())),
                    None => broken("the task's node ended the session without an exit code"),
                };
                let last = out.exited || !out.error.is_empty();
                if to_client.send(Ok(out)).await.is_err() || last {
                    return;
                }
            }
            _ = to_client.closed() => return,
        }
    }
}

fn broken(msg: &str) -> pb::ExecOutput {
    pb::ExecOutput {
        error: msg.to_string(),
        ..Default::default()
    }
}

#[cfg(test)]
mod tests;
