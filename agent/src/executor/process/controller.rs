//! The process executor behind the [`Controller`] seam. A task started here is our child: its
//! end is `waitpid`'s. A task adopted after a restart is not: its end is seen by polling
//! `/proc` (same pid, same start time), and its exit status is unknown.

use std::collections::HashSet;
use std::time::Duration;

use shoal_proto::model::Task;

use super::{signal_group, stop, Prepared, ProcessExecutor, Running};
use crate::executor::controller::{BoxFuture, Controller, ExecOutput, Executor, Exit};
use crate::executor::{adopt, exec, Error, ExecSession, ExecSpec};
use crate::network::Sandbox;

/// Where one task is in its life.
#[derive(Debug)]
enum State {
    /// Nothing yet.
    New,
    /// Prepared, not started.
    Prepared(Box<(Task, Prepared)>),
    /// Our child.
    Child(Running),
    /// Left running by a previous `swarmd`.
    Adopted {
        /// Its pid (also its process group).
        pid: u32,
        /// Its start time, which tells it from a later process with the same pid.
        start: u64,
    },
}

/// One task of the process executor.
#[derive(Debug)]
pub struct ProcessController {
    executor: ProcessExecutor,
    task_id: String,
    state: State,
    /// Whether it runs in a sandbox (then `exec` enters its namespaces).
    sandboxed: bool,
}

impl Executor for ProcessExecutor {
    fn controller(&self, task_id: &str) -> Box<dyn Controller> {
        Box::new(ProcessController {
            executor: self.clone(),
            task_id: task_id.to_string(),
            state: State::New,
            sandboxed: false,
        })
    }

    fn adoptable(&self) -> Vec<String> {
        adopt::find(self.dir())
            .into_iter()
            .map(|(id, ..)| id)
            .collect()
    }

    fn log_dir(&self, task_id: &str) -> std::path::PathBuf {
        self.task_dir(task_id)
    }

    fn sweep(&self, running: &HashSet<String>) {
        self.sweep_cgroups(running);
    }
}

impl ProcessController {
    fn pid(&self) -> Option<u32> {
        match &self.state {
            State::Child(r) => Some(r.pid),
            State::Adopted { pid, .. } => Some(*pid),
            _ => None,
        }
    }
}

/// Polls until the adopted process `pid` (started at `start`) is gone.
async fn gone(pid: u32, start: u64, every: Duration) {
    while adopt::alive(pid, start) {
        tokio::time::sleep(every).await;
    }
}

impl Controller for ProcessController {
    fn prepare<'a>(
        &'a mut self,
        task: &'a Task,
        sandbox: Option<&'a Sandbox>,
    ) -> BoxFuture<'a, Result<(), Error>> {
        Box::pin(async move {
            // The managers refuse such a service; one created by an older manager fails here.
            if task.spec.tty {
                return Err(Error::TtyProcess);
            }
            if !task.spec.secrets.is_empty() || !task.spec.configs.is_empty() {
                return Err(crate::executor::files::FilesError::NeedsContainer.into());
            }
            let prepared = self.executor.prepare(task, sandbox)?;
            self.sandboxed = sandbox.is_some();
            self.state = State::Prepared(Box::new((task.clone(), prepared)));
            Ok(())
        })
    }

    fn start(&mut self) -> BoxFuture<'_, Result<u32, Error>> {
        Box::pin(async move {
            let State::Prepared(p) = std::mem::replace(&mut self.state, State::New) else {
                return Err(Error::NotPrepared);
            };
            let (task, prepared) = *p;
            let running = self.executor.spawn(&task, prepared)?;
            let pid = running.pid;
            self.state = State::Child(running);
            Ok(pid)
        })
    }

    fn adopt(&mut self) -> BoxFuture<'_, Result<Option<u32>, Error>> {
        Box::pin(async move {
            let Some((pid, start)) = adopt::load(&self.executor.task_dir(&self.task_id)) else {
                return Ok(None);
            };
            // Only sandboxed tasks outlive swarmd, so only they are ever adopted.
            self.sandboxed = true;
            self.state = State::Adopted { pid, start };
            Ok(Some(pid))
        })
    }

    fn wait(&mut self) -> BoxFuture<'_, Result<Exit, Error>> {
        let every = self.executor.timings.adopted_poll;
        Box::pin(async move {
            match &mut self.state {
                // A status that cannot be read is reported as a kill, as it always was.
                State::Child(r) => Ok(match r.child.wait().await.ok().and_then(|s| s.code()) {
                    Some(code) => Exit::Code(code),
                    None => Exit::Signal,
                }),
                State::Adopted { pid, start } => {
                    gone(*pid, *start, every).await;
                    Ok(Exit::Unknown)
                }
                State::New | State::Prepared(_) => std::future::pending().await,
            }
        })
    }

    fn shutdown(&mut self, grace: Duration) -> BoxFuture<'_, Result<Option<i32>, Error>> {
        let every = self.executor.timings.adopted_stop_poll;
        Box::pin(async move {
            match &mut self.state {
                State::Child(r) => Ok(stop(r, grace).await),
                State::Adopted { pid, start } => {
                    signal_group(*pid, libc::SIGTERM);
                    let _ = tokio::time::timeout(grace, gone(*pid, *start, every)).await;
                    signal_group(*pid, libc::SIGKILL);
                    Ok(None)
                }
                State::New | State::Prepared(_) => Ok(None),
            }
        })
    }

    fn terminate(&mut self) -> BoxFuture<'_, Result<Option<i32>, Error>> {
        Box::pin(async move {
            match &mut self.state {
                State::Child(r) => {
                    signal_group(r.pid, libc::SIGKILL);
                    let status = r.child.wait().await.ok().and_then(|s| s.code());
                    Ok(status.or(Some(137)))
                }
                State::Adopted { pid, .. } => {
                    signal_group(*pid, libc::SIGKILL);
                    Ok(None)
                }
                State::New | State::Prepared(_) => Ok(None),
            }
        })
    }

    fn remove(&mut self) -> BoxFuture<'_, ()> {
        Box::pin(async move {
            adopt::forget(&self.executor.task_dir(&self.task_id));
            self.executor.cleanup(&self.task_id).await;
        })
    }

    fn exec(
        &self,
        cmd: &[String],
        timeout: Duration,
    ) -> BoxFuture<'static, Result<ExecOutput, Error>> {
        let pid = self.pid();
        let sandboxed = self.sandboxed;
        let cmd = cmd.to_vec();
        Box::pin(async move {
            // A plain process shares the node's namespaces: so does the command.
            let pid = pid.filter(|_| sandboxed);
            exec::run(pid, &cmd, timeout).await
        })
    }

    fn exec_interactive(&self, spec: &ExecSpec) -> BoxFuture<'static, Result<ExecSession, Error>> {
        let pid = self.pid().filter(|_| self.sandboxed);
        let spec = spec.clone();
        Box::pin(async move { exec::interactive(pid, &spec) })
    }
}
