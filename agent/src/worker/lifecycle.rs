//! One task's life on this node: a supervisor per task, the only caller of the task's
//! [`Controller`]. It reports each step (accepted, preparing, starting, running, then the end),
//! serves stops and execs while it waits (a stop also ends a preparation, such as an image
//! pull, at once), and removes what the task left.

use std::time::Duration;

use shoal_proto::model::{Task, TaskState};
use tokio::sync::{mpsc, oneshot};
use tracing::{info, info_span, warn, Instrument};

use super::{Command, Final, Local, Worker};
use crate::executor::{Controller, Exit};
use crate::network;

/// Why a task could not start; its text is the task's error as the managers show it.
#[derive(Debug, thiserror::Error)]
enum StartError {
    #[error("network: {0}")]
    Network(#[from] network::Error),
    #[error(transparent)]
    Executor(#[from] crate::executor::Error),
}

/// How a supervised task ended.
enum End {
    /// By itself.
    Exited(Result<Exit, crate::executor::Error>),
    /// Stopped on request, with the exit status to report.
    Stopped(Option<i32>),
}

impl End {
    fn status(self) -> Final {
        let failed = |err: String, exit_code| Final {
            state: TaskState::Failed,
            message: "failed",
            err,
            exit_code,
        };
        match self {
            End::Exited(Ok(Exit::Code(0))) => Final {
                state: TaskState::Complete,
                message: "finished",
                err: String::new(),
                exit_code: Some(0),
            },
            End::Exited(Ok(Exit::Code(c))) => failed(format!("task: non-zero exit ({c})"), Some(c)),
            End::Exited(Ok(Exit::Signal) | Err(_)) => {
                failed("task: killed by a signal".to_string(), None)
            }
            End::Exited(Ok(Exit::Unknown)) => failed(
                "task: exited while adopted after a swarmd restart (exit code unknown)".into(),
                None,
            ),
            End::Stopped(code) => Final::shutdown(code),
        }
    }
}

impl Worker {
    /// Takes `t` on: its supervisor prepares, starts and watches it.
    pub(super) fn start(&self, t: Task) {
        let (tx, rx) = mpsc::unbounded_channel();
        self.lock().insert(
            t.id.to_string(),
            Local::Running {
                cmd: tx,
                pid: 0,
                adopted: false,
            },
        );
        let r = &self.reporter;
        r.report(&t.id, TaskState::Accepted, "accepted", "", None, 0);
        let span = info_span!("task", task.id = %t.id, service.id = %t.service_id);
        self.background
            .spawn(self.clone().prepare_and_run(t, rx).instrument(span));
    }

    async fn prepare_and_run(self, t: Task, mut rx: mpsc::UnboundedReceiver<Command>) {
        let r = &self.reporter;
        r.report(&t.id, TaskState::Preparing, "preparing", "", None, 0);
        let sandbox = match &self.data_plane {
            Some(dp) => match dp.prepare(&t).await {
                Ok(sb) => Some(sb),
                Err(e) => return self.reject(&t, None, e.into()).await,
            },
            None => None,
        };
        let mut ctl = self.executor.controller(&t.id);
        // A stop while the task is prepared (its image pulled) ends the preparation at once.
        let prepared = tokio::select! {
            r = ctl.prepare(&t, sandbox.as_ref()) => Some(r),
            Some(Command::Stop { .. }) = rx.recv() => None,
        };
        match prepared {
            Some(Ok(())) => {}
            Some(Err(e)) => return self.reject(&t, Some(ctl), e.into()).await,
            None => {
                info!("task stopped while it was prepared");
                self.release(&t.id, Some(ctl)).await;
                return self.finish(&t.id, Final::shutdown(None), false);
            }
        }
        r.report(&t.id, TaskState::Starting, "starting", "", None, 0);
        let pid = match ctl.start().await {
            Ok(pid) => pid,
            Err(e) => return self.reject(&t, Some(ctl), e.into()).await,
        };
        info!(pid, "task started");
        self.logs.live(&t.id, self.executor.log_dir(&t.id));
        if let Some(Local::Running { pid: p, .. }) = self.lock().get_mut(t.id.as_str()) {
            *p = pid;
        }
        let addresses = sandbox.as_ref().map(|s| s.addresses()).unwrap_or_default();
        r.report_running(&t.id, pid, addresses);
        let grace = if t.spec.stop_grace_ms > 0 {
            Duration::from_millis(t.spec.stop_grace_ms)
        } else {
            self.timings.stop_grace
        };
        self.supervise(&t.id, ctl, rx, grace, false).await;
    }

    async fn reject(&self, t: &Task, ctl: Option<Box<dyn Controller>>, err: StartError) {
        warn!(error = %err, "task failed to start");
        self.release(&t.id, ctl).await;
        let f = Final {
            state: TaskState::Rejected,
            message: "rejected",
            err: err.to_string(),
            exit_code: None,
        };
        self.finish(&t.id, f, true);
    }

    /// Removes a task's sandbox and what its controller made.
    async fn release(&self, task_id: &str, ctl: Option<Box<dyn Controller>>) {
        if let Some(dp) = &self.data_plane {
            dp.release(task_id).await;
        }
        if let Some(mut ctl) = ctl {
            ctl.remove().await;
        }
    }

    /// Watches a running task until it ends, serving stops and execs meanwhile; then removes
    /// what it left and reports its end. `adopted`: taken back after a restart.
    pub(super) async fn supervise(
        &self,
        id: &str,
        mut ctl: Box<dyn Controller>,
        mut rx: mpsc::UnboundedReceiver<Command>,
        grace: Duration,
        adopted: bool,
    ) {
        let end = loop {
            tokio::select! {
                exit = ctl.wait() => break End::Exited(exit),
                // All senders gone (the task was dropped from the map, the agent goes away)
                // is not a stop: the task outlives it.
                Some(cmd) = rx.recv() => match cmd {
                    Command::Exec { cmd, timeout, reply } => {
                        let _ = reply.send(ctl.exec(&cmd, timeout));
                    }
                    Command::ExecInteractive { spec, reply } => {
                        let _ = reply.send(ctl.exec_interactive(&spec));
                    }
                    Command::Stop { drain } => {
                        if !drain.is_zero() {
                            tokio::select! {
                                exit = ctl.wait() => break End::Exited(exit),
                                _ = tokio::time::sleep(drain) => {}
                            }
                        }
                        break End::Stopped(stop(&mut *ctl, grace).await);
                    }
                },
            }
        };
        // Its logs are complete: stamped one last time before its end is known.
        self.logs.ended(id);
        let f = end.status();
        if adopted {
            info!(?f.state, "adopted task ended");
        } else {
            info!(state = ?f.state, exit = ?f.exit_code, "task ended");
        }
        self.release(id, Some(ctl)).await;
        self.finish(id, f, false);
    }

    /// Registers an adopted task's supervisor (see [`super::adopt`]).
    pub(super) fn supervise_adopted(&self, id: String, pid: u32, ctl: Box<dyn Controller>) {
        // What it wrote while no swarmd ran is timed by its log's last write (see
        // crate::logs::book).
        self.logs.live(&id, self.executor.log_dir(&id));
        let (tx, rx) = mpsc::unbounded_channel();
        self.lock().insert(
            id.clone(),
            Local::Running {
                cmd: tx,
                pid,
                adopted: true,
            },
        );
        let span = info_span!("task", task.id = %id);
        let (w, grace) = (self.clone(), self.timings.stop_grace);
        self.background
            .spawn(async move { w.supervise(&id, ctl, rx, grace, true).await }.instrument(span));
    }

    /// Runs `cmd` in task `id` through its supervisor: the run, or `None` when the task does
    /// not run here.
    pub(super) async fn exec_in(
        &self,
        id: &str,
        cmd: &[String],
        timeout: Duration,
    ) -> Option<Result<crate::executor::ExecOutput, crate::executor::Error>> {
        let tx = match self.lock().get(id) {
            Some(Local::Running { cmd, pid, .. }) if *pid != 0 => cmd.clone(),
            _ => return None,
        };
        let (reply, run) = oneshot::channel();
        let cmd = cmd.to_vec();
        tx.send(Command::Exec {
            cmd,
            timeout,
            reply,
        })
        .ok()?;
        Some(run.await.ok()?.await)
    }

    /// Starts an interactive command in task `id` through its supervisor: the session, or
    /// `None` when the task does not run here.
    pub async fn exec_interactive(
        &self,
        id: &str,
        spec: crate::executor::ExecSpec,
    ) -> Option<Result<crate::executor::ExecSession, crate::executor::Error>> {
        let tx = match self.lock().get(id) {
            Some(Local::Running { cmd, pid, .. }) if *pid != 0 => cmd.clone(),
            _ => return None,
        };
        let (reply, run) = oneshot::channel();
        tx.send(Command::ExecInteractive { spec, reply }).ok()?;
        Some(run.await.ok()?.await)
    }
}

/// Stops a task gracefully, killing it when that fails.
async fn stop(ctl: &mut dyn Controller, grace: Duration) -> Option<i32> {
    match ctl.shutdown(grace).await {
        Ok(code) => code,
        Err(e) => {
            warn!(error = %e, "stopping the task failed; killing it");
            ctl.terminate().await.ok().flatten()
        }
    }
}
