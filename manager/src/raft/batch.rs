//! [`Proposer`]: client writes proposed in batches, so that concurrent writes share one raft
//! entry, one fsync per manager and one round of replication.
//!
//! openraft 0.9 waits for each `append` to be flushed before it takes the next client write
//! (`RaftCore::append_to_log`), so group commit has to happen above it: while a proposal is in
//! flight, the writes that arrive queue up, and the next proposal carries all of them as one
//! [`Command::Batch`]. The store applies a batch's commands in order, each on its own (a refused
//! command changes nothing and does not stop the others), and reports each one's outcome in
//! [`Applied::parts`](crate::store::Applied::parts), which goes back to each writer. A lone write is proposed as it is, so an
//! idle cluster's log looks as before and a single client pays only a channel hop.
//!
//! At most [`IN_FLIGHT`] proposals are in flight, so that a batch forms while the previous one
//! commits without stopping openraft from pipelining two of them.

use super::types::{Raft, TypeConfig, WriteError};
use openraft::raft::ClientWriteResponse;
use shoal_proto::model::Command;
use std::sync::Arc;
use tokio::sync::{mpsc, oneshot, Semaphore};

/// Most commands in one proposal.
pub const MAX_BATCH: usize = 256;
/// Most proposals in flight at once.
pub const IN_FLIGHT: usize = 2;

type Reply = Result<ClientWriteResponse<TypeConfig>, WriteError>;

struct Job {
    cmd: Command,
    reply: oneshot::Sender<Reply>,
}

/// The proposer stopped (raft was shut down).
#[derive(Debug, Clone, thiserror::Error)]
#[error("the raft proposer has stopped")]
pub struct Stopped;

/// Hands client writes to raft in batches. Cloning is cheap; the batching task ends when the
/// last clone is dropped.
#[derive(Clone)]
pub struct Proposer {
    tx: mpsc::UnboundedSender<Job>,
}

impl std::fmt::Debug for Proposer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Proposer").finish_non_exhaustive()
    }
}

impl Proposer {
    /// A proposer writing through `raft`; spawns its task on the current runtime.
    pub fn start(raft: Raft) -> Proposer {
        let (tx, rx) = mpsc::unbounded_channel();
        tokio::spawn(run(raft, rx));
        Proposer { tx }
    }

    /// Proposes `cmd`, possibly in one entry with other concurrent writes, and returns what
    /// `Raft::client_write` would: the entry's log id and this command's own outcome.
    pub async fn write(&self, cmd: Command) -> Result<Reply, Stopped> {
        let started = std::time::Instant::now();
        let (reply, rx) = oneshot::channel();
        self.tx.send(Job { cmd, reply }).map_err(|_| Stopped)?;
        let r = rx.await.map_err(|_| Stopped)?;
        if r.is_ok() {
            crate::metrics::RAFT_WRITE_SECONDS.observe_duration(started.elapsed());
        }
        Ok(r)
    }
}

async fn run(raft: Raft, mut rx: mpsc::UnboundedReceiver<Job>) {
    let slots = Arc::new(Semaphore::new(IN_FLIGHT));
    loop {
        let Ok(permit) = slots.clone().acquire_owned().await else {
            return;
        };
        let Some(first) = rx.recv().await else {
            return;
        };
        let mut jobs = vec![first];
        while jobs.len() < MAX_BATCH {
            match rx.try_recv() {
                Ok(j) => jobs.push(j),
                Err(_) => break,
            }
        }
        let raft = raft.clone();
        tokio::spawn(async move {
            propose(&raft, jobs).await;
            drop(permit);
        });
    }
}

/// Proposes `jobs` as one entry and answers each.
async fn propose(raft: &Raft, mut jobs: Vec<Job>) {
    if jobs.len() == 1 {
        let job = jobs.pop().expect("one job");
        let _ = job.reply.send(raft.client_write(job.cmd).await);
        return;
    }
    let (cmds, replies): (Vec<Command>, Vec<_>) =
        jobs.into_iter().map(|j| (j.cmd, j.reply)).unzip();
    let n = cmds.len();
    match raft.client_write(Command::Batch(cmds)).await {
        Ok(mut resp) => {
            let mut parts = std::mem::take(&mut resp.data.parts);
            if parts.len() != n {
                // Only an older leader's state machine could answer without parts; this one is
                // the leader that applied it, so this does not happen. Answer each with the
                // merged outcome rather than guess.
                parts = vec![resp.data.clone(); n];
            }
            for (reply, data) in replies.into_iter().zip(parts) {
                let _ = reply.send(Ok(ClientWriteResponse {
                    log_id: resp.log_id,
                    data,
                    membership: None,
                }));
            }
        }
        Err(e) => {
            for reply in replies {
                let _ = reply.send(Err(e.clone()));
            }
        }
    }
}
