//! `swarmctl task exec -i/-t`: the client's `ExecStream`, relayed to the leader when this
//! manager does not lead, then paired by the leader with the task's agent (see
//! [`crate::dispatcher`]'s `exec_session`).

use super::relay::{exec_relay_error, leader, running_task};
use super::{ControlError, ControlService, R};
use crate::dispatcher::{relay_exec, EXEC_FRAMES};
use crate::route::forwarded;
use shoal_proto::pb;
use std::pin::Pin;
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tokio_stream::{Stream, StreamExt};
use tonic::{Request, Response, Status};
use tracing::instrument;

/// What `ExecStream` answers: output chunks, then the exit code.
pub type OutputStream = Pin<Box<dyn Stream<Item = Result<pb::ExecOutput, Status>> + Send>>;

#[instrument(skip_all)]
pub(super) async fn run(
    svc: &ControlService,
    req: Request<tonic::Streaming<pb::ExecInput>>,
) -> R<OutputStream> {
    if let Some(mut leader) = leader(svc, &req)? {
        // The client's inputs go on as they come; its leaving ends this stream, so the
        // leader's, so the agent's.
        let inputs = req.into_inner().map_while(Result::ok);
        let out = leader.exec_stream(forwarded(inputs, None)).await?;
        return Ok(Response::new(Box::pin(out.into_inner())));
    }
    let mut inputs = req.into_inner();
    let waited = svc.m.cfg.relay_timeout;
    let first = tokio::time::timeout(waited, inputs.message())
        .await
        .map_err(|_| Status::deadline_exceeded("the exec stream sent nothing"))??;
    let start = first
        .and_then(|f| f.start)
        .ok_or(ControlError::ExecNoStart)?;
    if start.cmd.is_empty() {
        return Err(ControlError::NoCommand.into());
    }
    let (task_id, node) = running_task(svc, &start.task)?;
    let ask = pb::ExecSessionRequest {
        session_id: String::new(),
        task_id,
        cmd: start.cmd,
        tty: start.tty,
        stdin: start.stdin,
        size: start.size,
    };
    let leg = svc
        .m
        .dispatcher
        .exec_session(&node, ask)
        .await
        .map_err(exec_relay_error)?;
    let (tx, rx) = mpsc::channel(EXEC_FRAMES);
    // Owned by its two streams: it ends when the program does or either side goes away.
    tokio::spawn(relay_exec(Box::pin(inputs), tx, leg));
    Ok(Response::new(Box::pin(ReceiverStream::new(rx))))
}
