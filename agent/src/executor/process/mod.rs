//! The `process` executor: a task is a child process of `swarmd`, in its own process group, with
//! stdout and stderr kept in `<state-dir>/tasks/<task-id>/`. [`ProcessExecutor`] does the work;
//! its [`controller`] drives one task through the [`super::Controller`] seam.

mod controller;

pub use controller::ProcessController;

use super::cgroup::{Cgroups, Limits};
use super::Error;
use crate::network::Sandbox;
use shoal_netlib::netns::{CgroupJoin, ChildSetup};
use shoal_proto::model::Task;
use std::collections::HashSet;
use std::io::{BufRead, BufReader, Seek, SeekFrom};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;
use tokio::process::{Child, Command};

/// Most bytes of one log stream returned per request.
pub const MAX_LOG_BYTES: u64 = 4 << 20;

/// The process executor's timings (see the agent's configuration).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timings {
    /// How long removing an ended task's cgroups waits for its last processes to exit.
    pub cgroup_remove_patience: Duration,
    /// How often that removal is retried meanwhile.
    pub cgroup_remove_retry: Duration,
    /// Cgroups younger than this are left alone by [`ProcessExecutor::sweep_cgroups`].
    pub cgroup_sweep_min_age: Duration,
    /// How often an adopted task (not our child: no exit notification) is checked for life.
    pub adopted_poll: Duration,
    /// How often an adopted task being stopped is checked for life.
    pub adopted_stop_poll: Duration,
}

impl Default for Timings {
    fn default() -> Self {
        Timings {
            cgroup_remove_patience: Duration::from_millis(500),
            cgroup_remove_retry: Duration::from_millis(20),
            cgroup_sweep_min_age: Duration::from_secs(5),
            adopted_poll: Duration::from_millis(250),
            adopted_stop_poll: Duration::from_millis(50),
        }
    }
}

/// Runs tasks as processes.
#[derive(Debug, Clone)]
pub struct ProcessExecutor {
    dir: PathBuf,
    search: Vec<PathBuf>,
    node_id: String,
    cgroups: Cgroups,
    init: Option<PathBuf>,
    /// The node's host name, which tasks on the `host` network see (as Docker's do).
    hostname: Option<String>,
    timings: Timings,
}

/// A task ready to start: everything made but the process.
#[derive(Debug)]
pub struct Prepared {
    program: PathBuf,
    dir: PathBuf,
    sandbox: Option<Sandbox>,
    /// Binds the task's `/etc` files and makes its namespaces (sandboxed tasks).
    setup: Option<ChildSetup>,
    /// The cgroup files the child joins.
    procs: Vec<PathBuf>,
}

/// A started task.
#[derive(Debug)]
pub struct Running {
    /// The child.
    pub child: Child,
    /// Its pid (also its process group id).
    pub pid: u32,
}

impl ProcessExecutor {
    /// Tasks' files go under `dir`; programs are looked up next to the running binary first
    /// (so the shipped `whoami` demo is found), then in `PATH`. Tasks with limits get cgroups
    /// as detected now ([`Cgroups::detect`]).
    pub fn new(dir: PathBuf, node_id: String) -> Self {
        let mut search = Vec::new();
        if let Some(d) = std::env::current_exe()
            .ok()
            .and_then(|p| p.parent().map(Path::to_path_buf))
        {
            search.push(d);
        }
        if let Some(path) = std::env::var_os("PATH") {
            search.extend(std::env::split_paths(&path));
        }
        ProcessExecutor {
            dir,
            search,
            node_id,
            cgroups: Cgroups::detect(),
            init: None,
            hostname: None,
            timings: Timings::default(),
        }
    }

    /// Uses `timings` instead of the defaults.
    pub fn with_timings(mut self, timings: Timings) -> Self {
        self.timings = timings;
        self
    }

    /// Runs sandboxed tasks under `init_program` (`swarmd`, which runs [`super::init`] when
    /// called with [`super::init::ARG`]) so that they get signals; without it the task's own
    /// program is PID 1 of its namespace.
    pub fn with_init(mut self, init_program: PathBuf) -> Self {
        self.init = Some(init_program);
        self
    }

    /// Tasks on the `host` network get `hostname` (the node's, `swarmd --hostname`) in a UTS
    /// namespace of their own, so that several nodes on one machine (a lab) each show their
    /// own name; without it they keep the machine's.
    pub fn with_hostname(mut self, hostname: String) -> Self {
        self.hostname = Some(hostname);
        self
    }

    /// Uses `cgroups` instead of the detected ones.
    pub fn with_cgroups(mut self, cgroups: Cgroups) -> Self {
        self.cgroups = cgroups;
        self
    }

    /// The cgroups tasks with limits get.
    pub fn cgroups(&self) -> &Cgroups {
        &self.cgroups
    }

    /// The program an image name refers to.
    pub fn resolve(&self, image: &str) -> Result<PathBuf, Error> {
        if image.contains('/') {
            let p = PathBuf::from(image);
            return if p.is_file() {
                Ok(p)
            } else {
                Err(Error::NoSuchFile {
                    image: image.into(),
                })
            };
        }
        self.search
            .iter()
            .map(|d| d.join(image))
            .find(|p| p.is_file())
            .ok_or_else(|| Error::NotFound {
                image: image.into(),
            })
    }

    /// The directory holding every task's directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The directory holding a task's files.
    pub fn task_dir(&self, task_id: &str) -> PathBuf {
        self.dir.join(task_id)
    }

    /// Starts `task` as a plain process on the node.
    pub fn start(&self, task: &Task) -> Result<Running, Error> {
        self.start_in(task, None)
    }

    /// Starts `task`, inside `sandbox` when given (see [`super::sandbox`]), in its own cgroups
    /// when it has limits (see [`super::cgroup`]; call [`ProcessExecutor::cleanup`] once it
    /// ended).
    pub fn start_in(&self, task: &Task, sandbox: Option<&Sandbox>) -> Result<Running, Error> {
        let prepared = self.prepare(task, sandbox)?;
        self.spawn(task, prepared)
    }

    /// Makes what `task` needs before its process: its directory, its `/etc` files (in a
    /// sandbox), its cgroups (with limits).
    pub fn prepare(&self, task: &Task, sandbox: Option<&Sandbox>) -> Result<Prepared, Error> {
        let program = self.resolve(&task.spec.image)?;
        let dir = self.task_dir(&task.id);
        std::fs::create_dir_all(&dir).map_err(|source| Error::TaskDir {
            path: dir.clone(),
            source,
        })?;
        let setup = match sandbox {
            Some(sb) => Some(
                super::sandbox::etc_files(&dir, &task.id, sb, self.hostname.as_deref())
                    .map_err(Error::EtcFiles)?,
            ),
            None => None,
        };
        let procs = self.cgroups.create(&task.id, &Limits::of(&task.spec))?;
        Ok(Prepared {
            program,
            dir,
            sandbox: sandbox.cloned(),
            setup,
            procs,
        })
    }

    /// Starts the process of a prepared `task`.
    pub fn spawn(&self, task: &Task, prepared: Prepared) -> Result<Running, Error> {
        let Prepared {
            program,
            dir,
            sandbox,
            setup,
            procs,
        } = prepared;
        let open = |name: &'static str| {
            std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(dir.join(name))
                .map_err(|source| Error::LogFile { name, source })
        };
        let mut cmd = match (&self.init, &sandbox) {
            (Some(init), Some(_)) => {
                let mut c = Command::new(init);
                c.arg(super::init::ARG).arg("--").arg(&program);
                c
            }
            _ => Command::new(&program),
        };
        cmd.args(&task.spec.args)
            .current_dir(&dir)
            .stdin(Stdio::null())
            .stdout(open("stdout.log")?)
            .stderr(open("stderr.log")?)
            .env("SHOAL_TASK_ID", task.id.as_str())
            .env("SHOAL_TASK_NAME", task.name())
            .env("SHOAL_SERVICE_NAME", &task.service_name)
            .env("SHOAL_TASK_SLOT", task.slot.to_string())
            .env("SHOAL_NODE_ID", &self.node_id)
            // swarmd's join token is not the task's business.
            .env_remove("SWARM_TOKEN")
            .process_group(0)
            .kill_on_drop(false);
        for kv in &task.spec.env {
            if let Some((k, v)) = kv.split_once('=') {
                cmd.env(k, v);
            }
        }
        // The child's errors come back as a bare errno: say where it may come from.
        let hint = if procs.is_empty() {
            String::new()
        } else {
            let files: Vec<String> = procs.iter().map(|p| p.display().to_string()).collect();
            format!(
                " (from setting up the child, which includes moving it into its cgroup: \
                 writing 0 to {})",
                files.join(", ")
            )
        };
        let spawned = match (&sandbox, setup) {
            (Some(sb), Some(setup)) => super::sandbox::spawn(cmd, sb, setup.join_cgroups(&procs)),
            _ => {
                die_with_parent(&mut cmd);
                if !procs.is_empty() {
                    join_cgroups(&mut cmd, CgroupJoin::new(&procs));
                }
                cmd.spawn()
            }
        };
        let child = match spawned {
            Ok(s) => s,
            Err(source) => {
                for d in self.cgroups.task_dirs(&task.id) {
                    let _ = std::fs::remove_dir(d); // the worker's cleanup retries
                }
                return Err(Error::Spawn {
                    program,
                    sandboxed: sandbox.is_some(),
                    hint,
                    source,
                });
            }
        };
        let pid = child.id().ok_or(Error::Vanished)?;
        if sandbox.is_some() {
            super::adopt::record(&dir, pid);
        }
        Ok(Running { child, pid })
    }

    /// Reads the last `tail` lines (0 = all, within [`MAX_LOG_BYTES`]) of a task's stream.
    pub fn read_log(
        &self,
        task_id: &str,
        stream: &str,
        tail: u32,
    ) -> std::io::Result<Vec<Vec<u8>>> {
        read_log_in(&self.task_dir(task_id), stream, tail)
    }

    /// Removes a task's files.
    pub fn remove(&self, task_id: &str) {
        let _ = std::fs::remove_dir_all(self.task_dir(task_id));
    }

    /// Removes the cgroups of a task that ended (none: nothing to do). A failure is logged,
    /// never returned: the task's final state does not depend on it, and
    /// [`ProcessExecutor::sweep_cgroups`] retries later.
    pub async fn cleanup(&self, task_id: &str) {
        let t = &self.timings;
        let removed = self
            .cgroups
            .remove(task_id, t.cgroup_remove_patience, t.cgroup_remove_retry)
            .await;
        if let Err(e) = removed {
            tracing::warn!(task.id = task_id, error = %e, "could not remove the task's cgroup");
        }
    }

    /// Removes the cgroups of tasks not in `running` (leftovers of a crash, or of a cleanup that
    /// failed), logging what could not be removed.
    pub fn sweep_cgroups(&self, running: &HashSet<String>) {
        for e in self
            .cgroups
            .sweep(running, self.timings.cgroup_sweep_min_age)
        {
            tracing::debug!(error = %e, "leftover cgroup not removed yet");
        }
    }
}

/// Reads the last `tail` lines (0 = all, within [`MAX_LOG_BYTES`]) of the stream `stream`
/// (`stdout`, `stderr`) of the task whose directory is `task_dir` (shared by every executor
/// that keeps its logs there).
pub fn read_log_in(task_dir: &Path, stream: &str, tail: u32) -> std::io::Result<Vec<Vec<u8>>> {
    let path = task_dir.join(format!("{stream}.log"));
    let mut f = match std::fs::File::open(&path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(e),
    };
    let len = f.metadata()?.len();
    if len > MAX_LOG_BYTES {
        f.seek(SeekFrom::Start(len - MAX_LOG_BYTES))?;
    }
    let mut lines: Vec<Vec<u8>> = Vec::new();
    for line in BufReader::new(f).split(b'\n') {
        lines.push(line?);
    }
    if len > MAX_LOG_BYTES && !lines.is_empty() {
        lines.remove(0); // partial first line
    }
    if tail > 0 && lines.len() > tail as usize {
        lines.drain(..lines.len() - tail as usize);
    }
    Ok(lines)
}

/// Sends `signal` to the process group `pgid`.
#[allow(unsafe_code)]
pub fn signal_group(pgid: u32, signal: i32) -> bool {
    let Ok(pgid) = i32::try_from(pgid) else {
        return false;
    };
    if pgid <= 1 {
        return false; // never signal init or every process
    }
    // SAFETY: kill(2) has no memory-safety preconditions; a negative pid targets the group we
    // created with process_group(0) for this task only.
    unsafe { libc::kill(-pgid, signal) == 0 }
}

/// Stops a task: SIGTERM to its group, then SIGKILL after `grace`. Returns the exit code.
pub async fn stop(running: &mut Running, grace: Duration) -> Option<i32> {
    if let Ok(Some(status)) = running.child.try_wait() {
        return status.code();
    }
    signal_group(running.pid, libc::SIGTERM);
    match tokio::time::timeout(grace, running.child.wait()).await {
        Ok(Ok(s)) => {
            signal_group(running.pid, libc::SIGKILL); // children the task left behind
            s.code().or(Some(143))
        }
        _ => {
            signal_group(running.pid, libc::SIGKILL);
            running
                .child
                .wait()
                .await
                .ok()
                .and_then(|s| s.code())
                .or(Some(137))
        }
    }
}

/// Asks the kernel to kill the task if the thread that spawned it dies, so a `kill -9` of
/// `swarmd` does not leave tasks running on a node its managers consider dead.
#[allow(unsafe_code)]
fn die_with_parent(cmd: &mut Command) {
    // SAFETY: the closure runs in the child between fork and exec and only calls prctl(2), which
    // is async-signal-safe. PR_SET_PDEATHSIG is tied to the spawning thread; tokio's worker
    // threads live as long as the runtime, which is the life of swarmd.
    unsafe {
        cmd.pre_exec(|| {
            libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
            Ok(())
        });
    }
}

/// Moves the child into its cgroups before exec (see [`CgroupJoin`]).
#[allow(unsafe_code)]
fn join_cgroups(cmd: &mut Command, join: CgroupJoin) {
    // SAFETY: the closure runs in the child between fork and exec; `CgroupJoin::apply` only
    // calls open(2), write(2) and close(2) on strings made before the fork.
    unsafe {
        cmd.pre_exec(move || join.apply());
    }
}

#[cfg(test)]
mod tests;
