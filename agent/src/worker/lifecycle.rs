//! One task's life on this node: a supervisor per task, the only caller of the task's
//! [`Controller`]. It reports each step (accepted, preparing, starting, running, then the end),
//! serves stops and execs while it waits (a stop also ends a preparation, such as an image
//! pull, at once), runs the task's health check (a task with one is reported RUNNING only once
//! a probe passed, and is stopped when it turns unhealthy), and removes what the task left.

use std::time::Duration;

use shoal_proto::model::{now_ms, HealthConfig, Task, TaskHealth, TaskState, TaskStatus};
use tokio::sync::{mpsc, oneshot};
use tokio::time::Instant;
use tracing::{info, info_span, warn, Instrument};

use super::probe::{Checker, Step};
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
    /// Stopped because its health check found it unhealthy, with the exit status.
    Unhealthy(Option<i32>),
}

/// Docker's error for a task whose health check failed (swarmkit's
/// `ErrContainerUnhealthy`).
pub(super) const UNHEALTHY: &str = "unhealthy container";

/// How long a supervisor waits for the managers to accept that its task is unhealthy before it
/// drains and stops the task anyway.
const UNHEALTHY_REPORT_CAP: Duration = Duration::from_secs(5);

impl End {
    fn status(self) -> Final {
        let failed = |err: String, exit_code| Final {
            state: TaskState::Failed,
            message: "failed",
            err,
            exit_code,
            health: TaskHealth::None,
        };
        match self {
            End::Exited(Ok(Exit::Code(0))) => Final {
                state: TaskState::Complete,
                message: "finished",
                err: String::new(),
                exit_code: Some(0),
                health: TaskHealth::None,
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
            End::Unhealthy(code) => Final {
                health: TaskHealth::Unhealthy,
                ..failed(UNHEALTHY.to_string(), code)
            },
        }
    }
}

/// A running task as its supervisor holds it.
struct Supervised {
    id: String,
    ctl: Box<dyn Controller>,
    /// Time between the stop signal and the kill.
    grace: Duration,
    /// The service's drain (used when the task turns unhealthy; a stop from the managers
    /// carries its own).
    drain: Duration,
    /// Its health check, if it has one.
    checker: Option<Checker>,
    pid: u32,
    /// The addresses the node gave it, reported with RUNNING.
    addresses: Vec<String>,
    /// Whether it was reported RUNNING (with a health check: once its first probe passed).
    running: bool,
    /// When its current state was reached (health changes keep it).
    since_ms: i64,
    adopted: bool,
}

impl Supervised {
    /// The status to report: RUNNING once reported so (or without a check), else STARTING.
    fn status(&self, health: TaskHealth) -> TaskStatus {
        let (state, message, addresses) = if self.running {
            (TaskState::Running, "started", self.addresses.clone())
        } else {
            (TaskState::Starting, "starting", Vec::new())
        };
        TaskStatus {
            state,
            message: message.into(),
            timestamp_ms: self.since_ms,
            pid: self.pid,
            addresses,
            health,
            ..Default::default()
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
                drain: self.drain_of(&t.spec),
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
        // With a health check the task stays STARTING until its first probe passes (as a
        // swarm task in Docker), out of every balancer and DNS answer.
        let probe = HealthConfig::probe(t.spec.healthcheck.as_ref(), ctl.image_health().as_ref());
        let checker = probe.map(|p| Checker::new(p, Instant::now(), TaskHealth::Starting));
        let sup = Supervised {
            id: t.id.to_string(),
            ctl,
            grace: self.grace_of(&t),
            drain: self.drain_of(&t.spec),
            running: checker.is_none(),
            checker,
            pid,
            addresses: sandbox.as_ref().map(|s| s.addresses()).unwrap_or_default(),
            since_ms: now_ms(),
            adopted: false,
        };
        let health = sup
            .checker
            .as_ref()
            .map_or(TaskHealth::None, Checker::health);
        r.report_status(&t.id, sup.status(health));
        self.supervise(sup, rx).await;
    }

    /// The stop grace of a task of `t`'s service.
    fn grace_of(&self, t: &Task) -> Duration {
        if t.spec.stop_grace_ms > 0 {
            Duration::from_millis(t.spec.stop_grace_ms)
        } else {
            self.timings.stop_grace
        }
    }

    async fn reject(&self, t: &Task, ctl: Option<Box<dyn Controller>>, err: StartError) {
        warn!(error = %err, "task failed to start");
        self.release(&t.id, ctl).await;
        let f = Final {
            state: TaskState::Rejected,
            message: "rejected",
            err: err.to_string(),
            exit_code: None,
            health: TaskHealth::None,
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

    /// Watches a running task until it ends, serving stops and execs and running its health
    /// check meanwhile; then removes what it left and reports its end.
    async fn supervise(&self, mut sup: Supervised, mut rx: mpsc::UnboundedReceiver<Command>) {
        let end = loop {
            tokio::select! {
                exit = sup.ctl.wait() => break End::Exited(exit),
                // All senders gone (the task was dropped from the map, the agent goes away)
                // is not a stop: the task outlives it.
                Some(cmd) = rx.recv() => match cmd {
                    Command::Exec { cmd, timeout, reply } => {
                        let _ = reply.send(sup.ctl.exec(&cmd, timeout));
                    }
                    Command::ExecInteractive { spec, reply } => {
                        let _ = reply.send(sup.ctl.exec_interactive(&spec));
                    }
                    Command::Adopted(t) => self.take_over(&mut sup, &t),
                    Command::Stop { drain } => {
                        // A task whose check never passed was in no balancer: nothing to drain.
                        if !drain.is_zero() && sup.running {
                            tokio::select! {
                                exit = sup.ctl.wait() => break End::Exited(exit),
                                _ = tokio::time::sleep(drain) => {}
                            }
                        }
                        break End::Stopped(stop(&mut *sup.ctl, sup.grace).await);
                    }
                },
                step = next_step(&mut sup.checker) => match step {
                    Step::Due => {
                        if let Some(c) = sup.checker.as_mut() {
                            c.launch(&*sup.ctl);
                        }
                    }
                    Step::Ended(out) => {
                        let changed = sup.checker.as_mut().and_then(|c| c.ended(out));
                        match changed {
                            Some(TaskHealth::Healthy) => {
                                if !sup.running {
                                    sup.running = true;
                                    sup.since_ms = now_ms();
                                }
                                self.reporter.report_status(&sup.id, sup.status(TaskHealth::Healthy));
                            }
                            Some(TaskHealth::Unhealthy) => break self.unhealthy(&mut sup).await,
                            _ => {}
                        }
                    }
                },
            }
        };
        // Its logs are complete: stamped one last time before its end is known.
        self.logs.ended(&sup.id);
        let f = end.status();
        if sup.adopted {
            info!(?f.state, "adopted task ended");
        } else {
            info!(state = ?f.state, exit = ?f.exit_code, "task ended");
        }
        self.release(&sup.id, Some(sup.ctl)).await;
        self.finish(&sup.id, f, false);
    }

    /// The task turned unhealthy: the managers hear it at once (they take it out of every
    /// balancer and DNS answer), it keeps running for its drain (if it was in them), then it is
    /// stopped with its grace and ends FAILED.
    async fn unhealthy(&self, sup: &mut Supervised) -> End {
        warn!("task is unhealthy: stopping it");
        let status = sup.status(TaskHealth::Unhealthy);
        self.reporter.report_status(&sup.id, status.clone());
        sup.checker = None;
        if sup.running && self.data_plane.is_some() && !sup.drain.is_zero() {
            let (id, drain) = (sup.id.clone(), sup.drain);
            let drained = async {
                self.reporter
                    .delivered(&id, &status, UNHEALTHY_REPORT_CAP)
                    .await;
                tokio::time::sleep(drain).await;
            };
            tokio::select! {
                exit = sup.ctl.wait() => return End::Exited(exit),
                _ = drained => {}
            }
        }
        End::Unhealthy(stop(&mut *sup.ctl, sup.grace).await)
    }

    /// An adopted task's assignment arrived: its stop grace and drain are its service's, and
    /// its health check (if any) runs again, from the health last reported.
    fn take_over(&self, sup: &mut Supervised, t: &Task) {
        sup.grace = self.grace_of(t);
        sup.drain = self.drain_of(&t.spec);
        if sup.checker.is_some() {
            return;
        }
        let probe =
            HealthConfig::probe(t.spec.healthcheck.as_ref(), sup.ctl.image_health().as_ref());
        if let Some(p) = probe {
            info!("the adopted task's health check runs again");
            sup.running = t.status.state == TaskState::Running;
            sup.addresses = t.status.addresses.clone();
            sup.since_ms = t.status.timestamp_ms;
            sup.checker = Some(Checker::new(p, Instant::now(), t.status.health));
        }
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
                drain: self.timings.lb_drain,
            },
        );
        let span = info_span!("task", task.id = %id);
        let sup = Supervised {
            id,
            ctl,
            grace: self.timings.stop_grace,
            drain: self.timings.lb_drain,
            checker: None,
            pid,
            addresses: Vec::new(),
            running: true,
            since_ms: now_ms(),
            adopted: true,
        };
        let w = self.clone();
        self.background
            .spawn(async move { w.supervise(sup, rx).await }.instrument(span));
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

/// What the task's health check does next; never, for a task without one.
async fn next_step(checker: &mut Option<Checker>) -> Step {
    match checker {
        Some(c) => c.step().await,
        None => std::future::pending().await,
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
