//! The seam between the worker and whatever runs tasks, after SwarmKit's
//! `agent/exec/{executor,controller}.go`: an [`Executor`] hands out one [`Controller`] per
//! task, and the worker drives each controller through the task's life:
//!
//! ```text
//!  fresh task:  prepare(task, sandbox) ─► start ─► wait ─┬─► (exited)        ─► remove
//!  restart:     adopt ─────────────────────────► wait ─┤
//!                                    stop asked: shutdown(grace) [─► terminate] ─► remove
//!  meanwhile:   exec(cmd) / exec_interactive(spec) into the running task
//! ```
//!
//! The network sandbox is not the controller's: the worker builds it with the data plane and
//! hands it to `prepare`, so every implementation runs its tasks in the namespaces, with the
//! DNS and balancers, that Shoal owns. `process` ([`super::ProcessExecutor`]) is the first
//! implementation; an OCI one plugs in beside it.

use std::collections::HashSet;
use std::fmt;
use std::future::Future;
use std::path::PathBuf;
use std::pin::Pin;
use std::time::Duration;

use shoal_proto::model::{HealthConfig, Task};

use super::interactive::{ExecSession, ExecSpec};
use super::Error;
use crate::network::Sandbox;

/// A boxed future, so that controllers can be trait objects.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// How a task's main process ended by itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exit {
    /// It exited with this status.
    Code(i32),
    /// A signal killed it (or its status could not be read).
    Signal,
    /// It ended; how is unknown (an adopted task is not the agent's child).
    Unknown,
}

/// What `swarmctl task exec` shows.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ExecOutput {
    /// Its standard output (capped).
    pub stdout: Vec<u8>,
    /// Its standard error (capped).
    pub stderr: Vec<u8>,
    /// Its exit status (128 + 9 when it was killed).
    pub exit_code: i32,
}

/// What runs tasks on this node: controllers, and what concerns all tasks.
pub trait Executor: Send + Sync + fmt::Debug {
    /// A controller for task `task_id`. Nothing happens until it is prepared or adopted.
    fn controller(&self, task_id: &str) -> Box<dyn Controller>;

    /// Tasks a previous run of the agent may have left running (to [`Controller::adopt`]).
    fn adoptable(&self) -> Vec<String>;

    /// The directory holding a task's `stdout.log` and `stderr.log` (and their indexes, see
    /// [`crate::logs`]).
    fn log_dir(&self, task_id: &str) -> PathBuf;

    /// The last `tail` lines (0: all, within a cap) of a task's `stdout` or `stderr`.
    fn read_log(&self, task_id: &str, stream: &str, tail: u32) -> std::io::Result<Vec<Vec<u8>>> {
        super::process::read_log_in(&self.log_dir(task_id), stream, tail)
    }

    /// Removes what tasks not in `running` left behind (a crash's cgroups…), logging what
    /// cannot be removed yet.
    fn sweep(&self, running: &HashSet<String>);
}

/// One task's life, driven by its supervisor in the worker: one call at a time. `wait` must be
/// cancel-safe (the supervisor drops it to serve a stop or an exec, then waits again).
pub trait Controller: Send + fmt::Debug {
    /// Makes everything the task needs exist, in `sandbox` (none: a plain process on the
    /// node), so that `start` only starts it. Fails with what the operator must fix.
    fn prepare<'a>(
        &'a mut self,
        task: &'a Task,
        sandbox: Option<&'a Sandbox>,
    ) -> BoxFuture<'a, Result<(), Error>>;

    /// Starts the prepared task; returns its pid once it runs.
    fn start(&mut self) -> BoxFuture<'_, Result<u32, Error>>;

    /// Takes back the task a previous agent left running: its pid, or `None` when there is
    /// nothing (any more) to take back.
    fn adopt(&mut self) -> BoxFuture<'_, Result<Option<u32>, Error>>;

    /// Waits until the task ends by itself.
    fn wait(&mut self) -> BoxFuture<'_, Result<Exit, Error>>;

    /// Stops the task gracefully: asks it to exit, waits at most `grace`, then kills it.
    /// Returns the exit status to report, if known.
    fn shutdown(&mut self, grace: Duration) -> BoxFuture<'_, Result<Option<i32>, Error>>;

    /// Kills the task now; returns the exit status to report, if known.
    fn terminate(&mut self) -> BoxFuture<'_, Result<Option<i32>, Error>>;

    /// Removes what `prepare` made, once the task ended. Failures are logged, never
    /// returned: the task's final state does not depend on them.
    fn remove(&mut self) -> BoxFuture<'_, ()>;

    /// Runs `cmd` inside the running task for at most `timeout`. The future owns what it
    /// needs, so it runs alongside the task's supervision.
    fn exec(
        &self,
        cmd: &[String],
        timeout: Duration,
    ) -> BoxFuture<'static, Result<ExecOutput, Error>>;

    /// The health check the task's image declares (`HEALTHCHECK`), once prepared or adopted;
    /// `None` when it has none or the executor has no images.
    fn image_health(&self) -> Option<HealthConfig> {
        None
    }

    /// Starts `spec` inside the running task with its stdin streamed, on a pseudo-terminal
    /// when it asks (`swarmctl task exec -i/-t`). The session lives apart from the task's
    /// supervision; dropping its input kills the program. Executors that cannot do this
    /// refuse it.
    fn exec_interactive(&self, spec: &ExecSpec) -> BoxFuture<'static, Result<ExecSession, Error>> {
        let _ = spec;
        Box::pin(async { Err(Error::NoInteractiveExec) })
    }
}
