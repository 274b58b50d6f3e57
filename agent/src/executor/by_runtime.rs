//! The node's executor: containers ([`super::OciExecutor`]) and programs on the node
//! ([`super::ProcessExecutor`]) behind one [`Executor`], chosen per task by its service's
//! `runtime` (`--runtime container|process`).
//!
//! Why a composite rather than `controller(&Task)`: the seam hands out a controller before it
//! knows the task only in one case, adoption after a restart, where the agent has nothing but
//! ids left by the previous run. There the composite asks each executor which tasks it can
//! adopt (its [`Executor::adoptable`]) and remembers the answer; for a fresh task the choice
//! is made at [`Controller::prepare`], which has the task. The worker is unchanged and never
//! learns which executor runs a task. Logs, sweeps and adoption lists go to both (they share
//! the tasks directory: a task's logs are in the same place whatever runs it).

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use shoal_proto::model::{Runtime, Task};

use super::controller::{BoxFuture, Controller, ExecOutput, Executor, Exit};
use super::Error;
use crate::network::Sandbox;

/// What a node does with container tasks.
#[derive(Debug, Clone)]
pub enum Containers {
    /// Runs them with this executor.
    Run(Arc<dyn Executor>),
    /// Rejects them: the node has no OCI executor, for this reason (the runtime is missing…).
    Refuse(String),
}

/// Containers or processes, per task.
#[derive(Debug)]
pub struct RuntimeExecutor {
    process: Arc<dyn Executor>,
    oci: Containers,
    /// Which executor listed each task as adoptable.
    adoptable: Mutex<HashMap<String, Runtime>>,
}

impl RuntimeExecutor {
    /// Runs `Process` tasks with `process` and `Container` tasks as `oci` says.
    pub fn new(process: Arc<dyn Executor>, oci: Containers) -> RuntimeExecutor {
        RuntimeExecutor {
            process,
            oci,
            adoptable: Mutex::default(),
        }
    }

    fn executors(&self) -> impl Iterator<Item = (Runtime, &Arc<dyn Executor>)> {
        [(Runtime::Process, Some(&self.process))]
            .into_iter()
            .chain([(Runtime::Container, self.oci.executor())])
            .filter_map(|(r, e)| e.map(|e| (r, e)))
    }
}

impl Executor for RuntimeExecutor {
    fn controller(&self, task_id: &str) -> Box<dyn Controller> {
        let hint = self
            .adoptable
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(task_id);
        Box::new(RoutedController {
            process: self.process.clone(),
            oci: self.oci.clone(),
            task_id: task_id.to_string(),
            hint,
            inner: None,
        })
    }

    fn adoptable(&self) -> Vec<String> {
        let mut out = Vec::new();
        let mut map = self.adoptable.lock().unwrap_or_else(|e| e.into_inner());
        for (runtime, ex) in self.executors() {
            for id in ex.adoptable() {
                if map.insert(id.clone(), runtime).is_none() {
                    out.push(id);
                }
            }
        }
        out
    }

    fn log_dir(&self, task_id: &str) -> std::path::PathBuf {
        // Both keep logs in the same task directory.
        self.process.log_dir(task_id)
    }

    fn sweep(&self, running: &HashSet<String>) {
        for (_, ex) in self.executors() {
            ex.sweep(running);
        }
    }
}

impl Containers {
    fn executor(&self) -> Option<&Arc<dyn Executor>> {
        match self {
            Containers::Run(ex) => Some(ex),
            Containers::Refuse(_) => None,
        }
    }
}

/// A controller that becomes the process or the OCI executor's at `prepare` (or `adopt`).
#[derive(Debug)]
struct RoutedController {
    process: Arc<dyn Executor>,
    oci: Containers,
    task_id: String,
    /// The executor that listed the task as adoptable.
    hint: Option<Runtime>,
    inner: Option<Box<dyn Controller>>,
}

impl RoutedController {
    fn executor(&self, runtime: Runtime) -> Result<&Arc<dyn Executor>, Error> {
        match runtime {
            Runtime::Process => Ok(&self.process),
            Runtime::Container => match &self.oci {
                Containers::Run(ex) => Ok(ex),
                Containers::Refuse(reason) => Err(Error::NoOciRuntime {
                    reason: reason.clone(),
                }),
            },
        }
    }

    fn inner(&mut self) -> Result<&mut Box<dyn Controller>, Error> {
        self.inner.as_mut().ok_or(Error::NotPrepared)
    }
}

impl Controller for RoutedController {
    fn prepare<'a>(
        &'a mut self,
        task: &'a Task,
        sandbox: Option<&'a Sandbox>,
    ) -> BoxFuture<'a, Result<(), Error>> {
        Box::pin(async move {
            let ctl = self.executor(task.spec.runtime)?.controller(&self.task_id);
            self.inner.insert(ctl).prepare(task, sandbox).await
        })
    }

    fn start(&mut self) -> BoxFuture<'_, Result<u32, Error>> {
        Box::pin(async move { self.inner()?.start().await })
    }

    fn adopt(&mut self) -> BoxFuture<'_, Result<Option<u32>, Error>> {
        Box::pin(async move {
            let order = match self.hint {
                Some(r) => vec![r],
                None => vec![Runtime::Container, Runtime::Process],
            };
            for runtime in order {
                let Ok(ex) = self.executor(runtime) else {
                    continue;
                };
                let mut ctl = ex.controller(&self.task_id);
                match ctl.adopt().await {
                    Ok(Some(pid)) => {
                        self.inner = Some(ctl);
                        return Ok(Some(pid));
                    }
                    Ok(None) => {}
                    // Not listed by either: asking each is a guess, its failure no answer.
                    Err(e) if self.hint.is_none() => {
                        tracing::debug!(task.id = %self.task_id, ?runtime, error = %e, "not adoptable here");
                    }
                    Err(e) => return Err(e),
                }
            }
            Ok(None)
        })
    }

    fn wait(&mut self) -> BoxFuture<'_, Result<Exit, Error>> {
        Box::pin(async move { self.inner()?.wait().await })
    }

    fn shutdown(&mut self, grace: Duration) -> BoxFuture<'_, Result<Option<i32>, Error>> {
        Box::pin(async move { self.inner()?.shutdown(grace).await })
    }

    fn terminate(&mut self) -> BoxFuture<'_, Result<Option<i32>, Error>> {
        Box::pin(async move { self.inner()?.terminate().await })
    }

    fn remove(&mut self) -> BoxFuture<'_, ()> {
        Box::pin(async move {
            if let Some(c) = self.inner.as_mut() {
                c.remove().await;
            }
        })
    }

    fn exec(
        &self,
        cmd: &[String],
        timeout: Duration,
    ) -> BoxFuture<'static, Result<ExecOutput, Error>> {
        match &self.inner {
            Some(c) => c.exec(cmd, timeout),
            None => Box::pin(async { Err(Error::NotPrepared) }),
        }
    }

    fn image_health(&self) -> Option<shoal_proto::model::HealthConfig> {
        self.inner.as_ref().and_then(|c| c.image_health())
    }

    fn exec_interactive(
        &self,
        spec: &super::ExecSpec,
    ) -> BoxFuture<'static, Result<super::ExecSession, Error>> {
        match &self.inner {
            Some(c) => c.exec_interactive(spec),
            None => Box::pin(async { Err(Error::NotPrepared) }),
        }
    }
}

#[cfg(test)]
mod tests;
