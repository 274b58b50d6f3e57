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
//! <task dir>/bundle/console.pid    `--tty`: the pid of the process holding its terminal
//! <state>/…/<runtime root>/<id>/   the runtime's own state (runtime.rs, `--root`)
//! ```
//!
//! * [`runtime`]: the runtime binary, typed;
//! * [`spec`]: `config.json` with Docker's defaults and Shoal's namespaces;
//! * [`overlay`]: the root file system;
//! * [`wait`]: waiting for a detached init (subreaper + pidfd);
//! * [`init_program`]: `--init`'s PID 1 (tini, as Docker's `docker-init`);
//! * [`console`]: `--tty`, the helper process that holds a container's terminal;
//! * [`controller`]: the [`super::Controller`] and [`super::Executor`] implementations;
//! * [`images`]: the [`ImageSource`] of production, the node's image store ([`StoreImages`]).
//!
//! Cgroups: `runc` makes the task's cgroup itself at `linux.cgroupsPath`, which
//! [`Cgroups::runtime_path`] puts beneath `swarmd`'s own (v1: a relative path, beneath runc's
//! own cgroup in each hierarchy; v2: `<own>/shoal-tasks/shoal-<id>`). `crun` 1.8 puts a v1
//! relative path at each hierarchy's root and refuses hybrid hosts, so with crun the agent
//! makes the cgroups with the process executor's code ([`Cgroups::create`]), starts
//! `crun create` inside them, and runs crun with `--cgroup-manager=disabled`: the container
//! inherits them.

pub mod console;
mod controller;
mod exec;
pub mod images;
pub mod init_program;
pub mod overlay;
pub mod runtime;
pub mod spec;
pub mod wait;

use std::collections::HashSet;
use std::fmt;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use shoal_image::merge::{merge, MergeError, Overrides, Process};
use shoal_image::ImageConfig;
use shoal_proto::model::{HealthConfig, HealthTest, Task};

pub use controller::OciController;
pub use images::StoreImages;

use super::cgroup::Cgroups;
use super::controller::BoxFuture;
use super::files::{self, DataBook};
use super::Error;
use runtime::{Flavor, Runtime};

/// A message about a task's preparation (image pull progress), for its status while it is
/// `Preparing`: `(task id, message)`.
pub type StatusSink = Arc<dyn Fn(&str, &str) + Send + Sync>;

/// Where a container's root file system and image defaults come from ([`StoreImages`]: the
/// node's image store and registries, in production).
pub trait ImageSource: Send + Sync + fmt::Debug {
    /// Makes the read-only lower directory of `image` (as the service names it; pinned to
    /// `digest`, the service's resolved `sha256:…`, when not empty) available, pulling it if
    /// needed, and returns it with the image's config. `progress` gets a status message now
    /// and then while a pull runs.
    fn lower_dir<'a>(
        &'a self,
        image: &'a str,
        digest: &'a str,
        progress: &'a (dyn Fn(&str) + Send + Sync),
    ) -> BoxFuture<'a, Result<(PathBuf, ImageConfig), Error>>;

    /// Removes images whose lower directory is not in `in_use` (the containers this node
    /// has), when the source has a notion of that; called by the executor's sweep.
    fn collect(&self, in_use: &HashSet<PathBuf>) {
        let _ = in_use;
    }
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
    /// `--tty`: how long a container's end waits for its terminal's last output to reach the
    /// log, and a removal for the process holding the terminal to end (then it is killed).
    pub console_drain: Duration,
}

impl Default for Timings {
    fn default() -> Self {
        Timings {
            cgroup_remove_patience: Duration::from_millis(500),
            cgroup_remove_retry: Duration::from_millis(20),
            sweep_min_age: Duration::from_secs(5),
            console_drain: Duration::from_secs(2),
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
    console: Option<PathBuf>,
    timings: Timings,
    status: Option<Status>,
    data: DataBook,
}

/// The [`StatusSink`], debug-printable.
#[derive(Clone)]
struct Status(StatusSink);

impl fmt::Debug for Status {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("StatusSink")
    }
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
        match wait::become_subreaper() {
            Ok(()) => wait::spawn_orphan_reaper(dir.clone()),
            Err(e) => tracing::warn!(
                error = %e,
                "not a child subreaper: containers' exit codes will be unknown"
            ),
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
                console: None,
                timings: Timings::default(),
                status: None,
                data: DataBook::default(),
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

    /// Runs containers whose service asks for it (`--init`) under `init_program` as PID 1
    /// (Docker's `--init`, see [`init_program`]): bound into the container, so it must run
    /// there: linked statically (`tini-static`). Without it, such tasks fail ([`Error::NoInit`]).
    pub fn with_init(self, init_program: PathBuf) -> Self {
        self.with(|i| i.init = Some(init_program))
    }

    /// Gives containers whose service asks for it (`--tty`) a terminal held by `program
    /// __console LOG` (`swarmd`, which runs [`console::run`] when called with [`console::ARG`]).
    /// Without it, such tasks fail ([`Error::NoConsoleProgram`]).
    pub fn with_console_program(self, program: PathBuf) -> Self {
        self.with(|i| i.console = Some(program))
    }

    /// Sends what a task's preparation is doing (the image's pull progress) to `sink`: the
    /// agent makes it the task's `Preparing` status message.
    pub fn with_status(self, sink: StatusSink) -> Self {
        self.with(|i| i.status = Some(Status(sink)))
    }

    /// Takes the data of tasks' secrets and configs from `book` (the worker fills it from the
    /// managers' assignments).
    pub fn with_data(self, book: DataBook) -> Self {
        self.with(|i| i.data = book)
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

    /// Where a task's secrets and configs are mounted (a tmpfs) until its container exists.
    pub fn files_dir(&self, task_id: &str) -> PathBuf {
        self.task_dir(task_id).join("files")
    }

    /// Whether the agent makes the containers' cgroups (crun) rather than the runtime (runc).
    fn agent_cgroups(&self) -> bool {
        self.inner.runtime.flavor() == Flavor::Crun
    }

    /// Removes a task's container files: unmounts its root, removes its bundle, upper and
    /// work directories (its logs and `/etc` files stay, for `service logs`). Failures are
    /// logged.
    fn cleanup_dirs(&self, task_id: &str) {
        if let Err(e) = files::unmount(&self.files_dir(task_id)) {
            tracing::warn!(task.id = task_id, error = %e, "could not remove the task's secrets");
        }
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

/// An image's `HEALTHCHECK` as the model states health checks; `None` when its test is in no
/// form Docker knows (logged). Durations are nanoseconds in the image (rounded up to whole
/// milliseconds; negative ones are taken as unset).
pub(crate) fn image_health(h: &shoal_image::Healthcheck) -> Option<HealthConfig> {
    let test = match HealthTest::from_docker(h.test.as_deref().unwrap_or_default()) {
        Ok(t) => t,
        Err(e) => {
            tracing::warn!(error = %e, "ignoring the image's HEALTHCHECK");
            return None;
        }
    };
    let ms = |ns: Option<i64>| {
        u64::try_from(ns.unwrap_or(0))
            .unwrap_or(0)
            .div_ceil(1_000_000)
    };
    Some(HealthConfig {
        test,
        interval_ms: ms(h.interval),
        timeout_ms: ms(h.timeout),
        start_period_ms: ms(h.start_period),
        retries: u32::try_from(h.retries.unwrap_or(0).max(0)).unwrap_or(u32::MAX),
    })
}

/// The process of a container: the image's config merged with the service's (entrypoint,
/// args, env, user, working directory) by Docker's rules ([`shoal_image::merge`]), plus the
/// `SHOAL_*` variables every task gets (the service's env wins over them).
fn process_of(image: &ImageConfig, task: &Task, node_id: &str) -> Result<Process, Error> {
    let some = |s: &str| Some(s.to_string()).filter(|s| !s.is_empty());
    let env = [
        ("SHOAL_TASK_ID", task.id.to_string()),
        ("SHOAL_TASK_NAME", task.name()),
        ("SHOAL_SERVICE_NAME", task.service_name.clone()),
        ("SHOAL_TASK_SLOT", task.slot.to_string()),
        ("SHOAL_NODE_ID", node_id.to_string()),
    ]
    .into_iter()
    .map(|(k, v)| format!("{k}={v}"))
    .chain(task.spec.env.iter().cloned())
    .collect();
    let over = Overrides {
        entrypoint: Some(task.spec.entrypoint.clone()).filter(|e| !e.is_empty()),
        args: task.spec.args.clone(),
        env,
        user: some(&task.spec.user),
        workdir: some(&task.spec.workdir),
    };
    merge(image, &over).map_err(|source| match source {
        MergeError::NoCommand => Error::NoImageCommand {
            image: task.spec.image.clone(),
        },
        source => Error::Process {
            image: task.spec.image.clone(),
            source,
        },
    })
}

#[cfg(test)]
mod root_tests;
#[cfg(test)]
mod tests;
