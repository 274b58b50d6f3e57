//! The agent's half of an interactive exec (`swarmctl task exec -i/-t`): the leader asks for it
//! on the session stream with a session id; the agent opens `Dispatcher.ExecAttach` on its own
//! channel to the leader, names the session in its first frame, starts the command and copies
//! frames both ways until the program ends (its exit code is the last frame) or the leader's
//! stream ends (the client left: the program is killed).

use crate::executor::{ExecIn, ExecOut, ExecSession, ExecSpec, WinSize};
use crate::worker::Worker;
use shoal_proto::pb;
use shoal_proto::pb::dispatcher_client::DispatcherClient;
use std::time::Duration;
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tokio_stream::{Stream, StreamExt};
use tonic::transport::Channel;
use tonic::Status;
use tracing::{info, warn};

/// Frames in flight to the leader.
const FRAMES: usize = 16;

/// Serves the exec session `req` asked of node `node`.
pub(super) async fn serve(
    mut client: DispatcherClient<Channel>,
    worker: Worker,
    node: String,
    req: pb::ExecSessionRequest,
) {
    let (tx, rx) = mpsc::channel(FRAMES);
    let hello = pb::ExecFrame {
        session_id: req.session_id.clone(),
        node_id: node,
        ..Default::default()
    };
    if tx.send(hello).await.is_err() {
        return;
    }
    let from_leader = match client.exec_attach(ReceiverStream::new(rx)).await {
        Ok(r) => r.into_inner(),
        Err(e) => {
            warn!(task.id = %req.task_id, error = %e, "could not attach an exec session");
            return;
        }
    };
    let spec = spec_of(&req);
    info!(task.id = %req.task_id, tty = spec.tty, "interactive exec");
    let session = match worker.exec_interactive(&req.task_id, spec).await {
        Some(Ok(s)) => s,
        Some(Err(e)) => return fail(from_leader, tx, e.to_string()).await,
        None => {
            let msg = format!("task {} is not running on this node", req.task_id);
            return fail(from_leader, tx, msg).await;
        }
    };
    pump(from_leader, tx, session).await;
}

async fn fail(
    from_leader: impl Stream<Item = Result<pb::ExecFrame, Status>> + Unpin,
    tx: mpsc::Sender<pb::ExecFrame>,
    error: String,
) {
    let last = out_frame(pb::ExecOutput {
        error,
        ..Default::default()
    });
    if tx.send(last).await.is_ok() {
        finish(from_leader, tx).await;
    }
}

/// How long the leader has to take the last frame and end its side.
const LINGER: Duration = Duration::from_secs(5);

/// Ends the session after the last frame: ends our side, and keeps the leader's open until it
/// ends it (dropping the response first would reset the HTTP/2 stream and could lose the last
/// frame still on its way out).
async fn finish(
    mut from_leader: impl Stream<Item = Result<pb::ExecFrame, Status>> + Unpin,
    tx: mpsc::Sender<pb::ExecFrame>,
) {
    drop(tx);
    let _ = tokio::time::timeout(LINGER, async {
        while let Some(Ok(_)) = from_leader.next().await {}
    })
    .await;
}

/// What the request asks the executor for.
pub(crate) fn spec_of(req: &pb::ExecSessionRequest) -> ExecSpec {
    ExecSpec {
        cmd: req.cmd.clone(),
        tty: req.tty,
        stdin: req.stdin,
        size: req.size.as_ref().map(size_of),
    }
}

fn size_of(s: &pb::TermSize) -> WinSize {
    let clamp = |v: u32| u16::try_from(v).unwrap_or(u16::MAX);
    WinSize {
        rows: clamp(s.rows),
        cols: clamp(s.cols),
    }
}

fn out_frame(out: pb::ExecOutput) -> pb::ExecFrame {
    pb::ExecFrame {
        output: Some(out),
        ..Default::default()
    }
}

/// The program's inputs a frame from the leader carries, in order: stdin, a new size, the end
/// of stdin.
pub(crate) fn inputs_of(frame: pb::ExecFrame) -> Vec<ExecIn> {
    let Some(input) = frame.input else {
        return Vec::new();
    };
    let mut v = Vec::new();
    if !input.stdin.is_empty() {
        v.push(ExecIn::Data(input.stdin));
    }
    if let Some(s) = &input.resize {
        v.push(ExecIn::Resize(size_of(s)));
    }
    if input.close_stdin {
        v.push(ExecIn::Close);
    }
    v
}

/// Copies frames between the leader and the program until the program's exit code is sent
/// or the leader's stream ends (then `session` is dropped, which kills the program).
pub(crate) async fn pump(
    mut from_leader: impl Stream<Item = Result<pb::ExecFrame, Status>> + Unpin,
    to_leader: mpsc::Sender<pb::ExecFrame>,
    session: ExecSession,
) {
    let ExecSession { input, mut output } = session;
    loop {
        tokio::select! {
            frame = from_leader.next() => {
                let Some(Ok(frame)) = frame else { return };
                for i in inputs_of(frame) {
                    if input.send(i).await.is_err() {
                        break;
                    }
                }
            }
            out = output.recv() => {
                let (frame, last) = match out {
                    Some(ExecOut::Stdout(b)) => (pb::ExecOutput { stdout: b, ..Default::default() }, false),
                    Some(ExecOut::Stderr(b)) => (pb::ExecOutput { stderr: b, ..Default::default() }, false),
                    Some(ExecOut::Exit(code)) => (pb::ExecOutput { exited: true, exit_code: code, ..Default::default() }, true),
                    None => (pb::ExecOutput { error: "the command's output ended without an exit code".into(), ..Default::default() }, true),
                };
                if to_leader.send(out_frame(frame)).await.is_err() {
                    return;
                }
                if last {
                    drop(input);
                    return finish(from_leader, to_leader).await;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests;
