//! The OCI executor behind the [`Controller`] seam: `prepare` makes the bundle (image, overlay,
//! spec), `start` is `create` then `start`, the init is watched through a pidfd
//! ([`super::wait`]), a stop is `kill` with the image's stop signal then `KILL`, `remove` is
//! `delete` and the bundle's removal, `exec` is the runtime's `exec` with the container's own
//! process settings. After a restart the runtime's `state` tells which containers still run.
//! `--init` binds the node's init program ([`super::init_program`]) as the container's PID 1;
//! `--tty` gives the container a terminal held by a helper process ([`super::console`]).
//!
//! [`Executor::adoptable`] and [`Executor::sweep`] are synchronous in the seam: they run
//! `runtime list` (and `delete` for leftovers) as blocking commands, a few milliseconds each.

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use shoal_netlib::netns::CgroupJoin;
use shoal_proto::model::{HealthConfig, Task};

use super::console::{Console, Starting};
use super::exec::{exec, exec_interactive};
use super::overlay::Overlay;
use super::runtime::{ContainerStdio, Status};
use super::spec::{
    self, ContainerConfig, ProcessConfig, HEALTH_ANNOTATION, STOP_SIGNAL_ANNOTATION,
};
use super::wait::Pidfd;
use super::{process_of, OciExecutor};
use crate::executor::cgroup::Limits;
use crate::executor::controller::{BoxFuture, Controller, ExecOutput, Executor, Exit};
use crate::executor::files;
use crate::executor::sandbox::{write_etc_files, ETC_FILES};
use crate::executor::{Error, ExecSession, ExecSpec};
use crate::network::Sandbox;
use shoal_image::merge::resolve_user_in_root;

/// The file in a bundle naming the image's lower directory the container's root is made of.
const LOWER_FILE: &str = "image-lower";

/// Where one task is in its life.
#[derive(Debug)]
enum State {
    /// Nothing yet.
    New,
    /// Bundle made, container not created.
    Prepared {
        /// The cgroup files `create` joins (crun; empty for runc).
        procs: Vec<PathBuf>,
        /// Whether its process has a terminal (`--tty`).
        tty: bool,
    },
    /// Its init runs (or ran: the pidfd keeps how it ended).
    Running(Pidfd),
}

/// One task of the OCI executor.
#[derive(Debug)]
pub struct OciController {
    executor: OciExecutor,
    task_id: String,
    state: State,
    /// The signal that asks it to stop (the image's `StopSignal`, else `SIGTERM`).
    stop_signal: String,
    /// `--tty`: the process holding its terminal.
    console: Option<Console>,
    /// The image's `HEALTHCHECK`, once prepared or adopted.
    health: Option<HealthConfig>,
}

impl Executor for OciExecutor {
    fn controller(&self, task_id: &str) -> Box<dyn Controller> {
        Box::new(OciController {
            executor: self.clone(),
            task_id: task_id.to_string(),
            state: State::New,
            stop_signal: "SIGTERM".into(),
            console: None,
            health: None,
        })
    }

    fn adoptable(&self) -> Vec<String> {
        match self.inner.runtime.list_blocking() {
            Ok(list) => list
                .into_iter()
                .filter(|s| matches!(s.status, Status::Running | Status::Paused))
                .map(|s| s.id)
                .collect(),
            Err(e) => {
                tracing::warn!(error = %e, "cannot list containers to adopt");
                Vec::new()
            }
        }
    }

    fn log_dir(&self, task_id: &str) -> std::path::PathBuf {
        self.task_dir(task_id)
    }

    fn sweep(&self, running: &HashSet<String>) {
        let rt = &self.inner.runtime;
        let mut containers = HashSet::new();
        match rt.list_blocking() {
            Ok(list) => {
                for s in list {
                    if running.contains(&s.id)
                        || matches!(s.status, Status::Running | Status::Paused)
                    {
                        containers.insert(s.id);
                        continue;
                    }
                    match rt.delete_blocking(&s.id, true) {
                        Ok(()) => tracing::info!(task.id = %s.id, "removed a leftover container"),
                        Err(e) => {
                            tracing::debug!(error = %e, "leftover container not removed yet");
                            containers.insert(s.id);
                        }
                    }
                }
            }
            Err(e) => {
                tracing::debug!(error = %e, "cannot list containers to sweep");
                return;
            }
        }
        // Bundles without a container: a crash between the overlay's mount and `create`, or a
        // removal that failed.
        let now = SystemTime::now();
        for e in std::fs::read_dir(&self.inner.dir)
            .into_iter()
            .flatten()
            .flatten()
        {
            let id = e.file_name().to_string_lossy().to_string();
            if running.contains(&id) || containers.contains(&id) {
                continue;
            }
            let bundle = e.path().join("bundle");
            let old = std::fs::metadata(&bundle)
                .and_then(|m| m.modified())
                .ok()
                .and_then(|t| now.duration_since(t).ok())
                .is_some_and(|age| age >= self.inner.timings.sweep_min_age);
            if old {
                tracing::info!(task.id = %id, "removing a leftover container bundle");
                self.cleanup_dirs(&id);
            }
        }
        if self.agent_cgroups() {
            for e in self
                .inner
                .cgroups
                .sweep(running, self.inner.timings.sweep_min_age)
            {
                tracing::debug!(error = %e, "leftover cgroup not removed yet");
            }
        }
        // Images: those the bundles left (running, being prepared, or not removable yet) use.
        let in_use = std::fs::read_dir(&self.inner.dir)
            .into_iter()
            .flatten()
            .flatten()
            .filter_map(|e| std::fs::read(e.path().join("bundle").join(LOWER_FILE)).ok())
            .map(|b| PathBuf::from(String::from_utf8_lossy(&b).into_owned()))
            .collect();
        self.inner.images.collect(&in_use);
    }
}

/// The status to report for an init that ended as `exit`, `killed_with` being what a kill
/// by signal reports (143 after SIGTERM, 137 after SIGKILL).
fn status(exit: Exit, killed_with: i32) -> Option<i32> {
    match exit {
        Exit::Code(c) => Some(c),
        Exit::Signal => Some(killed_with),
        Exit::Unknown => None,
    }
}

impl OciController {
    fn pidfd(&mut self) -> Option<&mut Pidfd> {
        match &mut self.state {
            State::Running(p) => Some(p),
            _ => None,
        }
    }

    /// The container ended: its last words on its terminal (`--tty`) reach the log before its
    /// end is reported.
    async fn drain_console(&mut self) {
        if let Some(c) = &mut self.console {
            if !c.drain(self.executor.inner.timings.console_drain).await {
                tracing::debug!(task.id = %self.task_id, "the terminal's output still drains");
            }
        }
    }

    /// Makes the bundle: image, `/etc` files, cgroups, overlay, `config.json`.
    async fn make_bundle(&mut self, task: &Task, sandbox: Option<&Sandbox>) -> Result<(), Error> {
        let ex = self.executor.clone();
        let inner = &ex.inner;
        if task.spec.init && inner.init.is_none() {
            return Err(Error::NoInit);
        }
        if task.spec.tty && inner.console.is_none() {
            return Err(Error::NoConsoleProgram);
        }
        let id = &task.id;
        let dir = ex.task_dir(id);
        let bundle = ex.bundle_dir(id);
        for d in [&dir, &bundle] {
            std::fs::create_dir_all(d).map_err(|source| Error::TaskDir {
                path: d.clone(),
                source,
            })?;
        }
        let progress = |msg: &str| {
            if let Some(s) = &inner.status {
                (s.0)(id, msg)
            }
        };
        let (lower, image) = inner
            .images
            .lower_dir(&task.spec.image, &task.spec.image_digest, &progress)
            .await?;
        // What the sweep reads to know which images containers use (the image collection).
        let lower_file = bundle.join(LOWER_FILE);
        std::fs::write(&lower_file, lower.as_os_str().as_encoded_bytes()).map_err(|source| {
            Error::Bundle {
                path: lower_file.clone(),
                source,
            }
        })?;
        let process = process_of(&image, task, &inner.node_id)?;
        let user = resolve_user_in_root(&lower, &process.user)?;
        let mut env = process.env;
        if !env.iter().any(|e| e.starts_with("HOME=")) {
            env.push(format!("HOME={}", user.home));
        }
        // As Docker does for `-t` (moby `container.CreateDaemonEnvironment`).
        if task.spec.tty && !env.iter().any(|e| e.starts_with("TERM=")) {
            env.push("TERM=xterm".into());
        }
        if !image.stop_signal.is_empty() {
            self.stop_signal = image.stop_signal.clone();
        }
        self.health = image.healthcheck.as_ref().and_then(super::image_health);

        let (netns, binds, hostname) = match sandbox {
            Some(sb @ Sandbox::Netns { path, .. }) => {
                write_etc_files(&dir, id, sb).map_err(Error::EtcFiles)?;
                let binds = ETC_FILES
                    .iter()
                    .map(|f| (dir.join(f), format!("/etc/{f}")))
                    .collect();
                (Some(path.clone()), binds, id.to_string())
            }
            // The node's network: the node's resolver and hosts, as Docker's `--network host`.
            Some(Sandbox::Host) | None => {
                let binds = ["hosts", "resolv.conf"]
                    .iter()
                    .map(|f| (Path::new("/etc").join(f), format!("/etc/{f}")))
                    .filter(|(p, _)| p.exists())
                    .collect();
                let hostname = inner.hostname.clone().unwrap_or_else(|| {
                    std::fs::read_to_string("/proc/sys/kernel/hostname")
                        .map(|h| h.trim().to_string())
                        .unwrap_or_else(|_| id.to_string())
                });
                (None, binds, hostname)
            }
        };

        let files = files::files_of(task, &inner.data)?;
        let file_binds = files::mount(&ex.files_dir(id), &files)?;
        drop(files);

        let limits = Limits::of(&task.spec);
        let (cgroups_path, procs) = if ex.agent_cgroups() {
            (None, inner.cgroups.create(id, &limits)?)
        } else {
            (inner.cgroups.runtime_path(id, &limits)?, Vec::new())
        };

        let rootfs = bundle.join("rootfs");
        Overlay {
            lower,
            upper: dir.join("upper"),
            work: dir.join("work"),
            target: rootfs.clone(),
        }
        .mount()?;

        let config = ContainerConfig {
            process: ProcessConfig {
                args: process.args,
                env,
                cwd: process.cwd,
                uid: user.uid,
                gid: user.gid,
                additional_gids: user.additional_gids,
                terminal: task.spec.tty,
            },
            rootfs,
            hostname,
            netns,
            binds,
            file_binds,
            cgroups_path,
            limits,
            cgroup_ns: inner.cgroups.version() == Some(crate::executor::cgroup::Version::V2),
            stop_signal: Some(image.stop_signal.clone()).filter(|s| !s.is_empty()),
            health: self
                .health
                .as_ref()
                .and_then(|h| serde_json::to_string(h).ok()),
            init: inner.init.clone().filter(|_| task.spec.init),
        };
        let path = bundle.join("config.json");
        spec::build(&config)
            .map_err(Error::Spec)?
            .save(&path)
            .map_err(Error::Spec)?;
        self.state = State::Prepared {
            procs,
            tty: task.spec.tty,
        };
        Ok(())
    }
}

impl Controller for OciController {
    fn prepare<'a>(
        &'a mut self,
        task: &'a Task,
        sandbox: Option<&'a Sandbox>,
    ) -> BoxFuture<'a, Result<(), Error>> {
        Box::pin(async move {
            let made = self.make_bundle(task, sandbox).await;
            if made.is_err() {
                let ex = &self.executor;
                ex.cleanup_dirs(&self.task_id);
                if ex.agent_cgroups() {
                    for d in ex.inner.cgroups.task_dirs(&self.task_id) {
                        let _ = std::fs::remove_dir(d); // `remove` and the sweep retry
                    }
                }
            }
            made
        })
    }

    fn start(&mut self) -> BoxFuture<'_, Result<u32, Error>> {
        Box::pin(async move {
            let State::Prepared { procs, tty } = std::mem::replace(&mut self.state, State::New)
            else {
                return Err(Error::NotPrepared);
            };
            let ex = &self.executor;
            let id = &self.task_id;
            let dir = ex.task_dir(id);
            let bundle = ex.bundle_dir(id);
            let open = |name: &'static str| {
                std::fs::OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(dir.join(name))
                    .map_err(|source| Error::LogFile { name, source })
            };
            let stdio = ContainerStdio {
                stdout: open("stdout.log")?,
                stderr: open("stderr.log")?,
            };
            let join = (!procs.is_empty()).then(|| CgroupJoin::new(&procs));
            let console = match (tty, &ex.inner.console) {
                (false, _) => None,
                (true, None) => return Err(Error::NoConsoleProgram),
                (true, Some(program)) => Some(Starting::spawn(
                    program,
                    &bundle,
                    &dir.join("stdout.log"),
                    open("stderr.log")?,
                )?),
            };
            let rt = &ex.inner.runtime;
            let created = rt
                .create(
                    id,
                    &bundle,
                    &bundle.join("init.pid"),
                    &bundle.join("runtime.log"),
                    stdio,
                    join,
                    console.as_ref().map(Starting::socket),
                )
                .await;
            // The container holds its secrets and configs now (bound in its own mount
            // namespace): the node lets go of them, so they go when the container does.
            if let Err(e) = files::unmount(&ex.files_dir(id)) {
                tracing::warn!(task.id = %id, error = %e, "could not unmount the task's secrets");
            }
            let pid = match (created, console) {
                (Ok(pid), None) => pid,
                (Ok(pid), Some(c)) => match c.ready().await {
                    Ok(c) => {
                        self.console = Some(c);
                        pid
                    }
                    Err(e) => {
                        // The init is our child (its `create` exited): reap it once the
                        // runtime has killed it, or it stays a zombie.
                        let init = Pidfd::open(pid).ok();
                        let _ = rt.delete(id, true).await;
                        if let Some(mut init) = init {
                            let _ = tokio::time::timeout(Duration::from_secs(5), init.wait()).await;
                        }
                        return Err(e);
                    }
                },
                (Err(e), console) => {
                    if let Some(c) = console {
                        c.abort().await;
                    }
                    return Err(e.into());
                }
            };
            // Watched before it runs: its end cannot be missed (it is our zombie till then).
            let pidfd = Pidfd::open(pid).map_err(Error::Pidfd)?;
            if let Err(e) = rt.start(id).await {
                let _ = rt.delete(id, true).await;
                return Err(e.into());
            }
            self.state = State::Running(pidfd);
            Ok(pid)
        })
    }

    fn adopt(&mut self) -> BoxFuture<'_, Result<Option<u32>, Error>> {
        Box::pin(async move {
            let rt = &self.executor.inner.runtime;
            let Some(state) = rt.state(&self.task_id).await? else {
                return Ok(None);
            };
            if !matches!(state.status, Status::Running | Status::Paused) || state.pid == 0 {
                return Ok(None);
            }
            // A crash between `create` and the unmount leaves the task's secrets mounted on
            // the node: the container holds its own binds; the node lets go.
            if let Err(e) = files::unmount(&self.executor.files_dir(&self.task_id)) {
                tracing::warn!(task.id = %self.task_id, error = %e, "could not unmount the task's secrets");
            }
            let pidfd = match Pidfd::open(state.pid) {
                Ok(p) => p,
                // It ended meanwhile.
                Err(e) if e.raw_os_error() == Some(libc::ESRCH) => return Ok(None),
                Err(e) => return Err(Error::Pidfd(e)),
            };
            let config = self.executor.bundle_dir(&self.task_id).join("config.json");
            let annotations = oci_spec::runtime::Spec::load(&config)
                .ok()
                .and_then(|s| s.annotations().clone())
                .unwrap_or_default();
            if let Some(sig) = annotations.get(STOP_SIGNAL_ANNOTATION) {
                self.stop_signal = sig.clone();
            }
            self.health = annotations
                .get(HEALTH_ANNOTATION)
                .and_then(|h| serde_json::from_str(h).ok());
            self.console = Console::adopt(&self.executor.bundle_dir(&self.task_id));
            self.state = State::Running(pidfd);
            Ok(Some(state.pid))
        })
    }

    fn wait(&mut self) -> BoxFuture<'_, Result<Exit, Error>> {
        Box::pin(async move {
            let exit = match &mut self.state {
                State::Running(p) => p.wait().await.map_err(Error::Pidfd)?,
                State::New | State::Prepared { .. } => std::future::pending().await,
            };
            self.drain_console().await;
            Ok(exit)
        })
    }

    fn shutdown(&mut self, grace: Duration) -> BoxFuture<'_, Result<Option<i32>, Error>> {
        Box::pin(async move {
            let rt = self.executor.inner.runtime.clone();
            let id = self.task_id.clone();
            let signal = self.stop_signal.clone();
            let Some(p) = self.pidfd() else {
                return Ok(None);
            };
            if let Some(e) = p.exited() {
                return Ok(status(e, 143));
            }
            if let Err(e) = rt.kill(&id, &signal).await {
                // It may have ended meanwhile; the wait below tells.
                tracing::debug!(task.id = %id, error = %e, "stop signal not sent");
            }
            let code = match tokio::time::timeout(grace, p.wait()).await {
                Ok(r) => status(r.map_err(Error::Pidfd)?, 143),
                Err(_) => {
                    if rt.kill(&id, "KILL").await.is_err() {
                        let _ = p.signal(libc::SIGKILL);
                    }
                    status(p.wait().await.map_err(Error::Pidfd)?, 137)
                }
            };
            self.drain_console().await;
            Ok(code)
        })
    }

    fn terminate(&mut self) -> BoxFuture<'_, Result<Option<i32>, Error>> {
        Box::pin(async move {
            let rt = self.executor.inner.runtime.clone();
            let id = self.task_id.clone();
            let Some(p) = self.pidfd() else {
                return Ok(None);
            };
            if p.exited().is_none() && rt.kill(&id, "KILL").await.is_err() {
                let _ = p.signal(libc::SIGKILL);
            }
            let code = status(p.wait().await.map_err(Error::Pidfd)?, 137);
            self.drain_console().await;
            Ok(code)
        })
    }

    fn remove(&mut self) -> BoxFuture<'_, ()> {
        Box::pin(async move {
            let ex = &self.executor;
            let id = &self.task_id;
            let rt = &ex.inner.runtime;
            if rt.exists(id) {
                if let Err(e) = rt.delete(id, true).await {
                    tracing::warn!(task.id = %id, error = %e, "could not delete the container");
                }
            }
            if let State::Running(p) = &mut self.state {
                // Reap it if it is still our zombie (delete --force killed it).
                let _ = tokio::time::timeout(Duration::from_secs(1), p.wait()).await;
            }
            self.state = State::New;
            if let Some(c) = self.console.take() {
                c.stop(ex.inner.timings.console_drain).await;
            }
            if ex.agent_cgroups() {
                let t = &ex.inner.timings;
                let removed = ex
                    .inner
                    .cgroups
                    .remove(id, t.cgroup_remove_patience, t.cgroup_remove_retry)
                    .await;
                if let Err(e) = removed {
                    tracing::warn!(task.id = %id, error = %e, "could not remove the task's cgroup");
                }
            }
            ex.cleanup_dirs(id);
        })
    }

    fn exec(
        &self,
        cmd: &[String],
        timeout: Duration,
    ) -> BoxFuture<'static, Result<ExecOutput, Error>> {
        let rt = self.executor.inner.runtime.clone();
        let id = self.task_id.clone();
        let bundle = self.executor.bundle_dir(&self.task_id);
        let cmd = cmd.to_vec();
        Box::pin(async move { exec(rt, id, bundle, cmd, timeout).await })
    }

    fn image_health(&self) -> Option<HealthConfig> {
        self.health.clone()
    }

    fn exec_interactive(&self, spec: &ExecSpec) -> BoxFuture<'static, Result<ExecSession, Error>> {
        let rt = self.executor.inner.runtime.clone();
        let id = self.task_id.clone();
        let bundle = self.executor.bundle_dir(&self.task_id);
        let spec = spec.clone();
        Box::pin(async move { exec_interactive(rt, id, bundle, spec).await })
    }
}
