//! The OCI executor: a task is a container made from its image by an OCI runtime (`runc` or
//! `crun`), behind the same [`super::Controller`] seam as the process executor, in the same
//! task directory (`<tasks dir>/<task id>/`: `stdout.log`, `stderr.log` and the `/etc` files,
//! so `swarmctl service logs` reads containers as it reads processes) plus:
//!
//! ```text
//! <task dir>/bundle/config.json    the OCI spec (spec.rs)
//! <task dir>/bundle/rootfs/        the overlay: image dir (lower) + upper/ + work/ (overlay.rs)
//! <task dir>/upper/, work/         the task's writes, removed with it
//! <task dir>/bundle/init.pid       the container init's pid (runtime `--pid-file`)
//! <state>/…/<runtime root>/<id>/   the runtime's own state (runtime.rs, `--root`)
//! ```
//!
//! * [`runtime`]: the runtime binary, typed;
//! * [`spec`]: `config.json` with Docker's defaults and Shoal's namespaces;
//! * [`overlay`]: the root file system;
//! * [`wait`]: waiting for a detached init (subreaper + pidfd);
//! * [`controller`]: the [`super::Controller`] and [`super::Executor`] implementations.
//!
//! Cgroups: `runc` makes the task's cgroup itself at `linux.cgroupsPath`, which
//! [`Cgroups::runtime_path`] puts beneath `swarmd`'s own (v1: a relative path, beneath runc's
//! own cgroup in each hierarchy; v2: `<own>/shoal-tasks/shoal-<id>`). `crun` 1.8 puts a v1
//! relative path at each hierarchy's root and refuses hybrid hosts, so with crun the agent
//! makes the cgroups with the process executor's code ([`Cgroups::create`]), starts
//! `crun create` inside them, and runs crun with `--cgroup-manager=disabled`: the container
//! inherits them.

mod controller;
pub mod overlay;
pub mod runtime;
pub mod spec;
pub mod wait;

use std::collections::HashMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use shoal_proto::model::Task;

pub use controller::OciController;

use super::cgroup::Cgroups;
use super::controller::BoxFuture;
use super::Error;
use runtime::{Flavor, Runtime};

/// Where a container's root file system and image defaults come from (the image store, in
/// production).
pub trait ImageSource: Send + Sync + fmt::Debug {
    /// Makes the read-only lower directory of `image` available (pulling if needed) and
    /// returns it with the image's defaults.
    fn lower_dir(&self, image: &str) -> BoxFuture<'_, Result<(PathBuf, ImageDefaults), Error>>;
}

/// What an image's config says about how to run it (the OCI image config's `config` object).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ImageDefaults {
    /// `Entrypoint`.
    pub entrypoint: Vec<String>,
    /// `Cmd`.
    pub cmd: Vec<String>,
    /// `Env` (`KEY=value`).
    pub env: Vec<String>,
    /// `WorkingDir` (empty: `/`).
    pub working_dir: String,
    /// `User` (`name`, `uid`, `name:group`, `uid:gid`; empty: root).
    pub user: String,
    /// `StopSignal` (`SIGQUIT`, `15`…; `None`: SIGTERM).
    pub stop_signal: Option<String>,
}

/// The OCI executor's timings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timings {
    /// How long removing the cgroups the agent made (crun) waits for their last processes.
    pub cgroup_remove_patience: Duration,
    /// How often that removal is retried meanwhile.
    pub cgroup_remove_retry: Duration,
    /// Leftover bundles younger than this are left alone by the sweep (a task being prepared).
    pub sweep_min_age: Duration,
}

impl Default for Timings {
    fn default() -> Self {
        Timings {
            cgroup_remove_patience: Duration::from_millis(500),
            cgroup_remove_retry: Duration::from_millis(20),
            sweep_min_age: Duration::from_secs(5),
        }
    }
}

/// Runs tasks as OCI containers.
#[derive(Debug, Clone)]
pub struct OciExecutor {
    inner: Arc<Inner>,
}

#[derive(Debug, Clone)]
struct Inner {
    dir: PathBuf,
    runtime: Runtime,
    images: Arc<dyn ImageSource>,
    cgroups: Cgroups,
    node_id: String,
    hostname: Option<String>,
    init: Option<PathBuf>,
    timings: Timings,
}

impl OciExecutor {
    /// Tasks' files go under `dir` (the process executor's layout); containers are run by
    /// `runtime` from images of `images`. Makes this process a child subreaper (see [`wait`]):
    /// detached containers' inits become its children, so their exit statuses are known.
    pub fn new(
        dir: PathBuf,
        runtime: Runtime,
        images: Arc<dyn ImageSource>,
        node_id: String,
    ) -> OciExecutor {
        if let Err(e) = wait::become_subreaper() {
            tracing::warn!(error = %e, "not a child subreaper: containers' exit codes will be unknown");
        }
        let runtime = match runtime.flavor() {
            Flavor::Crun => runtime
                .without_cgroups(true)
                .with_hybrid_workaround(runtime::hybrid_with_controllers()),
            Flavor::Runc => runtime,
        };
        OciExecutor {
            inner: Arc::new(Inner {
                dir,
                runtime,
                images,
                cgroups: Cgroups::detect(),
                node_id,
                hostname: None,
                init: None,
                timings: Timings::default(),
            }),
        }
    }

    fn with(self, f: impl FnOnce(&mut Inner)) -> Self {
        let mut inner = Arc::unwrap_or_clone(self.inner);
        f(&mut inner);
        OciExecutor {
            inner: Arc::new(inner),
        }
    }

    /// Uses `timings` instead of the defaults.
    pub fn with_timings(self, timings: Timings) -> Self {
        self.with(|i| i.timings = timings)
    }

    /// Uses `cgroups` instead of the detected ones.
    pub fn with_cgroups(self, cgroups: Cgroups) -> Self {
        self.with(|i| i.cgroups = cgroups)
    }

    /// Containers on the `host` network get `hostname` (the node's, `swarmd --hostname`);
    /// without it, the machine's.
    pub fn with_hostname(self, hostname: String) -> Self {
        self.with(|i| i.hostname = Some(hostname))
    }

    /// Runs every container under `init_program` as PID 1 (Docker's `--init`): `swarmd`, which
    /// runs [`super::init`] when called with [`super::init::ARG`], bound into the container, so
    /// it must run there: linked statically.
    pub fn with_init(self, init_program: PathBuf) -> Self {
        self.with(|i| i.init = Some(init_program))
    }

    /// The runtime.
    pub fn runtime(&self) -> &Runtime {
        &self.inner.runtime
    }

    /// The directory holding a task's files.
    pub fn task_dir(&self, task_id: &str) -> PathBuf {
        self.inner.dir.join(task_id)
    }

    /// A task's bundle directory (`config.json`, `rootfs/`).
    pub fn bundle_dir(&self, task_id: &str) -> PathBuf {
        self.task_dir(task_id).join("bundle")
    }

    /// Whether the agent makes the containers' cgroups (crun) rather than the runtime (runc).
    fn agent_cgroups(&self) -> bool {
        self.inner.runtime.flavor() == Flavor::Crun
    }

    /// Removes a task's container files: unmounts its root, removes its bundle, upper and
    /// work directories (its logs and `/etc` files stay, for `service logs`). Failures are
    /// logged.
    fn cleanup_dirs(&self, task_id: &str) {
        let dir = self.task_dir(task_id);
        let rootfs = self.bundle_dir(task_id).join("rootfs");
        if let Err(e) = overlay::unmount(&rootfs) {
            tracing::warn!(task.id = task_id, error = %e, "could not unmount the container's root");
            return; // never remove_dir_all through a mounted image
        }
        for d in [
            self.bundle_dir(task_id),
            dir.join("upper"),
            dir.join("work"),
        ] {
            match std::fs::remove_dir_all(&d) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => {
                    tracing::warn!(task.id = task_id, path = %d.display(), error = %e, "could not remove")
                }
            }
        }
    }
}

/// The program, environment, working directory and user of a container: the image's defaults
/// merged with the service's by Docker's rules (args replace `Cmd`; env merged by key, the
/// service's winning; `PATH` by default; `/` as the default working directory). Kept small:
/// the image crate's canonical merge replaces it.
fn merge(image: &ImageDefaults, task: &Task, node_id: &str) -> (Vec<String>, Vec<String>, String) {
    let mut args = image.entrypoint.clone();
    if task.spec.args.is_empty() {
        args.extend(image.cmd.iter().cloned());
    } else {
        args.extend(task.spec.args.iter().cloned());
    }
    let mut env: Vec<String> = Vec::new();
    let mut index: HashMap<String, usize> = HashMap::new();
    let mut set = |kv: String| {
        let key = kv
            .split_once('=')
            .map_or(kv.as_str(), |(k, _)| k)
            .to_string();
        match index.get(&key) {
            Some(&i) => env[i] = kv,
            None => {
                index.insert(key, env.len());
                env.push(kv);
            }
        }
    };
    set("PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin".into());
    for kv in &image.env {
        set(kv.clone());
    }
    for (k, v) in [
        ("SHOAL_TASK_ID", task.id.to_string()),
        ("SHOAL_TASK_NAME", task.name()),
        ("SHOAL_SERVICE_NAME", task.service_name.clone()),
        ("SHOAL_TASK_SLOT", task.slot.to_string()),
        ("SHOAL_NODE_ID", node_id.to_string()),
    ] {
        set(format!("{k}={v}"));
    }
    for kv in &task.spec.env {
        set(kv.clone());
    }
    let cwd = if image.working_dir.is_empty() {
        "/".to_string()
    } else {
        image.working_dir.clone()
    };
    (args, env, cwd)
}

/// The uid, gid and supplementary groups of `user` (`name`, `uid`, `name:group`, `uid:gid`;
/// empty: root) in the image whose root is `root`, as Docker resolves them with the image's
/// `/etc/passwd` and `/etc/group` (which must be plain files: a symlink could point outside).
fn resolve_user(root: &Path, user: &str) -> Result<(u32, u32, Vec<u32>), Error> {
    let unknown = || Error::UnknownUser {
        user: user.to_string(),
    };
    if user.is_empty() {
        return Ok((0, 0, Vec::new()));
    }
    let read = |name: &str| -> Vec<Vec<String>> {
        let p = root.join("etc").join(name);
        if !std::fs::symlink_metadata(&p).is_ok_and(|m| m.is_file()) {
            return Vec::new();
        }
        std::fs::read_to_string(p)
            .unwrap_or_default()
            .lines()
            .map(|l| l.split(':').map(str::to_string).collect())
            .collect()
    };
    let (u, g) = match user.split_once(':') {
        Some((u, g)) => (u, Some(g)),
        None => (user, None),
    };
    let passwd = read("passwd");
    let entry = passwd
        .iter()
        .find(|f| f.len() > 3 && (f[0] == u || f[2] == u));
    let (uid, mut gid) = match (u.parse::<u32>(), entry) {
        (_, Some(f)) => (
            f[2].parse().map_err(|_| unknown())?,
            f[3].parse().map_err(|_| unknown())?,
        ),
        (Ok(uid), None) => (uid, 0),
        (Err(_), None) => return Err(unknown()),
    };
    let groups = read("group");
    if let Some(g) = g {
        gid = match (
            g.parse::<u32>(),
            groups.iter().find(|f| f.len() > 2 && f[0] == g),
        ) {
            (Ok(n), _) => n,
            (_, Some(f)) => f[2].parse().map_err(|_| unknown())?,
            (Err(_), None) => return Err(unknown()),
        };
    }
    let name = entry.map(|f| f[0].clone());
    let additional = groups
        .iter()
        .filter(|f| f.len() > 3)
        .filter(|f| {
            name.as_ref()
                .is_some_and(|n| f[3].split(',').any(|m| m == n))
        })
        .filter_map(|f| f[2].parse().ok())
        .filter(|g| *g != gid)
        .collect();
    Ok((uid, gid, additional))
}

#[cfg(test)]
mod root_tests;
#[cfg(test)]
mod tests;
