//! Memory and CPU limits for tasks, through cgroup v1 or v2 (whichever the node runs, detected
//! once at start).
//!
//! A task with a limit gets a cgroup named `shoal-<task id>` beneath the cgroup `swarmd` itself
//! runs in, the way a delegated systemd unit does, so that whatever bounds `swarmd` bounds its
//! tasks too:
//! * v1: in each hierarchy a limit needs (`memory`, `cpu`), `<own>/shoal-<id>`;
//! * v2: `<own>/shoal-tasks/shoal-<id>`. The kernel lets a cgroup enable controllers for its
//!   children only when it holds no processes itself (the root excepted; "no internal process
//!   constraint" in Documentation/admin-guide/cgroup-v2.rst), and `swarmd` is a process in
//!   `<own>`: it first moves itself into `<own>/swarmd`; where enabling still fails (other
//!   processes share the cgroup), the task is rejected with what to do about it.
//!
//! The task's process moves itself in between `fork` and `exec`
//! ([`shoal_netlib::netns::CgroupJoin`]), so its program never runs outside its limits. A task
//! without limits gets no cgroup. [`Cgroups::remove`] deletes a task's cgroups once it ended;
//! [`Cgroups::sweep`] deletes those of tasks that no longer run (a crash's leftovers).

use std::collections::HashSet;
use std::fs;
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

/// Where cgroup file systems are mounted.
pub const DEFAULT_ROOT: &str = "/sys/fs/cgroup";
/// Prefix of a task's cgroup name.
pub const PREFIX: &str = "shoal-";
/// On v2, the cgroup below `swarmd`'s that holds the tasks' cgroups.
pub const V2_PARENT: &str = "shoal-tasks";
/// On v2, the leaf `swarmd` moves itself into when its own cgroup must give up its processes
/// to delegate controllers.
pub const SWARMD_LEAF: &str = "swarmd";

/// Why a limit could not be applied. Messages name the file and keep the kernel's errno.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The controller a limit needs is not usable on this node.
    #[error("cgroup: cannot apply the {controller} limit: {why}")]
    Unavailable {
        /// `memory` or `cpu`.
        controller: &'static str,
        /// What was looked for and not found.
        why: String,
    },
    /// A file operation in a cgroup file system failed.
    #[error("cgroup: {op} {path}: {source}")]
    Io {
        /// What was done (`mkdir`, `writing 67108864 to`…).
        op: String,
        /// The file or directory.
        path: PathBuf,
        /// The kernel's error.
        #[source]
        source: io::Error,
    },
    /// v2: the controllers cannot be enabled below `swarmd`'s cgroup.
    #[error(
        "cgroup v2: cannot delegate memory/cpu below swarmd's cgroup {own}: writing {value:?} to \
         {own}/cgroup.subtree_control: {source} (a cgroup that holds processes, swarmd itself \
         here, cannot enable controllers for its children); run swarmd in its own cgroup, e.g. \
         a systemd unit with Delegate=yes"
    )]
    Delegate {
        /// `swarmd`'s cgroup directory.
        own: PathBuf,
        /// What was written (`+memory`).
        value: String,
        /// The kernel's error (EBUSY for the rule above).
        #[source]
        source: io::Error,
    },
    /// A task id that cannot be a directory name.
    #[error("cgroup: task id {0:?} cannot name a cgroup")]
    BadName(String),
}

mod limits;

pub use limits::{limit_files, Controller, LimitFile, Limits, CFS_PERIOD_US, MIN_CFS_QUOTA_US};

fn io_err(op: impl Into<String>, path: &Path) -> impl FnOnce(io::Error) -> Error + '_ {
    let op = op.into();
    move |source| Error::Io {
        op,
        path: path.to_path_buf(),
        source,
    }
}

/// The cgroup version in use.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Version {
    /// One hierarchy per controller (`/sys/fs/cgroup/memory`, `/sys/fs/cgroup/cpu`…).
    V1,
    /// The unified hierarchy at `/sys/fs/cgroup`.
    V2,
}

/// What `/proc/self/cgroup` says about the calling process.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Membership {
    /// The v2 path (line `0::/path`), if any.
    pub v2: Option<String>,
    /// v1 hierarchies: their controllers (`["cpu", "cpuacct"]`) and the path in each.
    pub v1: Vec<(Vec<String>, String)>,
}

impl Membership {
    /// Parses `/proc/<pid>/cgroup` (`hierarchy-id:controllers:path` per line, see cgroups(7)).
    pub fn parse(text: &str) -> Membership {
        let mut m = Membership::default();
        for line in text.lines() {
            let mut parts = line.splitn(3, ':');
            let (Some(id), Some(ctrl), Some(path)) = (parts.next(), parts.next(), parts.next())
            else {
                continue;
            };
            if id == "0" && ctrl.is_empty() {
                m.v2 = Some(path.to_string());
            } else if !ctrl.is_empty() {
                let list = ctrl.split(',').map(str::to_string).collect();
                m.v1.push((list, path.to_string()));
            }
        }
        m
    }

    /// The v1 hierarchy holding `controller`: its controllers and this process's path in it.
    fn v1_of(&self, controller: &str) -> Option<&(Vec<String>, String)> {
        self.v1
            .iter()
            .find(|(list, _)| list.iter().any(|c| c == controller))
    }
}

/// `root` joined with a cgroup path (`/a/b` → `root/a/b`; `/` → `root`).
fn below(root: &Path, cgroup_path: &str) -> PathBuf {
    let rel = cgroup_path.trim_start_matches('/');
    if rel.is_empty() {
        root.to_path_buf()
    } else {
        root.join(rel)
    }
}

#[derive(Debug, Clone)]
enum Layout {
    /// Per controller: `swarmd`'s own cgroup directory, or why there is none.
    V1 {
        memory: Result<PathBuf, Missing>,
        cpu: Result<PathBuf, Missing>,
    },
    /// `swarmd`'s own cgroup directory.
    V2 { own: PathBuf },
    /// No cgroup support found.
    None(String),
}

/// The node's cgroups: where task cgroups go and how limits are written.
#[derive(Debug, Clone)]
pub struct Cgroups {
    layout: Layout,
    /// Where the cgroup file systems are mounted.
    root: PathBuf,
}

impl Cgroups {
    /// Detects the layout under [`DEFAULT_ROOT`] for the calling process.
    pub fn detect() -> Cgroups {
        Self::detect_at(
            Path::new(DEFAULT_ROOT),
            fs::read_to_string("/proc/self/cgroup"),
        )
    }

    /// Detects the layout under `root` for a process whose `/proc/<pid>/cgroup` is
    /// `self_cgroup`. v2 when `root/cgroup.controllers` lists `memory` or `cpu`; otherwise
    /// v1 (a hybrid host's cgroup2 mount at `root/unified` has no controllers).
    pub fn detect_at(root: &Path, self_cgroup: io::Result<String>) -> Cgroups {
        let text = match self_cgroup {
            Ok(t) => t,
            Err(e) => {
                return Cgroups {
                    layout: Layout::None(format!("reading /proc/self/cgroup: {e}")),
                    root: root.to_path_buf(),
                }
            }
        };
        let m = Membership::parse(&text);
        let v2_controllers = fs::read_to_string(root.join("cgroup.controllers")).ok();
        let is_v2 = v2_controllers
            .as_deref()
            .is_some_and(|c| c.split_whitespace().any(|c| c == "memory" || c == "cpu"));
        let layout = match (is_v2, &m.v2) {
            (true, Some(path)) => Layout::V2 {
                own: below(root, path),
            },
            (true, None) => Layout::None(format!(
                "{} is cgroup v2 but /proc/self/cgroup has no 0:: line",
                root.display()
            )),
            (false, _) if m.v1.is_empty() => Layout::None(format!(
                "no cgroup v1 hierarchy in /proc/self/cgroup and no controllers in {}/cgroup.controllers",
                root.display()
            )),
            (false, _) => Layout::V1 {
                memory: v1_own(root, &m, Controller::Memory),
                cpu: v1_own(root, &m, Controller::Cpu),
            },
        };
        Cgroups {
            layout,
            root: root.to_path_buf(),
        }
    }

    /// The version in use, if cgroups are usable at all.
    pub fn version(&self) -> Option<Version> {
        match self.layout {
            Layout::V1 { .. } => Some(Version::V1),
            Layout::V2 { .. } => Some(Version::V2),
            Layout::None(_) => None,
        }
    }

    /// The directory a task's cgroups go in, for `controller` (on v2 the same for both).
    fn parent_of(&self, controller: Controller) -> Result<PathBuf, Error> {
        let unavailable = |why: &str| Error::Unavailable {
            controller: controller.name(),
            why: why.to_string(),
        };
        match &self.layout {
            Layout::V1 { memory, cpu } => {
                let own = match controller {
                    Controller::Memory => memory,
                    Controller::Cpu => cpu,
                };
                own.clone().map_err(|Missing(why)| unavailable(&why))
            }
            Layout::V2 { own } => Ok(own.join(V2_PARENT)),
            Layout::None(why) => Err(unavailable(why)),
        }
    }

    /// Every directory task cgroups may be in (for removal and the sweep).
    fn parents(&self) -> Vec<PathBuf> {
        let mut v: Vec<PathBuf> = [Controller::Memory, Controller::Cpu]
            .into_iter()
            .filter_map(|c| self.parent_of(c).ok())
            .collect();
        v.dedup();
        v
    }

    /// The cgroup directories a task would have (existing or not).
    pub fn task_dirs(&self, task_id: &str) -> Vec<PathBuf> {
        self.parents()
            .into_iter()
            .map(|p| p.join(format!("{PREFIX}{task_id}")))
            .collect()
    }

    /// Creates `task_id`'s cgroups and writes `limits` into them. Returns the `cgroup.procs`
    /// files the task's process must write itself into before `exec`: none when there is no
    /// limit. On error, whatever was created is removed again.
    ///
    /// On v2 every task gets a cgroup, limits or not: then `swarmd`'s own cgroup holds no task
    /// (a task is not "an internal process" there), and controllers can be delegated later
    /// whatever tasks run already. For a task without limits this is best effort: where it
    /// fails, the task runs in `swarmd`'s cgroup.
    pub fn create(&self, task_id: &str, limits: &Limits) -> Result<Vec<PathBuf>, Error> {
        let v2 = matches!(self.layout, Layout::V2 { .. });
        if limits.is_empty() && !v2 {
            return Ok(Vec::new());
        }
        check_name(task_id)?;
        let made = self.create_inner(task_id, limits);
        if made.is_err() {
            for dir in self.task_dirs(task_id) {
                let _ = fs::remove_dir(dir);
            }
            if limits.is_empty() {
                return Ok(Vec::new());
            }
        }
        made
    }

    fn create_inner(&self, task_id: &str, limits: &Limits) -> Result<Vec<PathBuf>, Error> {
        let name = format!("{PREFIX}{task_id}");
        let mut dirs: Vec<(Controller, PathBuf)> = Vec::new();
        for c in limits.controllers() {
            dirs.push((c, self.parent_of(c)?.join(&name)));
        }
        // On v2 the task's one cgroup, even without a controller to limit.
        let mut make: Vec<PathBuf> = dirs.iter().map(|(_, d)| d.clone()).collect();
        if let Layout::V2 { own } = &self.layout {
            let d = own.join(V2_PARENT).join(&name);
            if !make.contains(&d) {
                make.push(d);
            }
        }
        let version = match &self.layout {
            Layout::V2 { own } => {
                delegate_v2(own, &limits.controllers())?;
                Version::V2
            }
            _ => Version::V1,
        };
        let mut procs: Vec<PathBuf> = Vec::new();
        for dir in &make {
            match fs::create_dir(dir) {
                Ok(()) => {}
                // A cgroup of this same task from an earlier attempt: reuse it.
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
                Err(e) => return Err(io_err("mkdir", dir)(e)),
            }
            let p = dir.join("cgroup.procs");
            if !procs.contains(&p) {
                procs.push(p);
            }
        }
        for lf in limit_files(version, limits) {
            let Some((_, dir)) = dirs.iter().find(|(c, _)| *c == lf.controller) else {
                continue;
            };
            let path = dir.join(lf.file);
            if !lf.required && !path.exists() {
                continue;
            }
            match write_file(&path, &lf.value) {
                Ok(()) => {}
                Err(e) if lf.required => {
                    return Err(io_err(format!("writing {} to", lf.value), &path)(e))
                }
                Err(e) => {
                    tracing::debug!(path = %path.display(), error = %e, "optional cgroup limit not set")
                }
            }
        }
        // The child writes these between fork and exec, where only an errno gets back: fail
        // here, with the file's name, if they cannot even be opened.
        for p in &procs {
            fs::OpenOptions::new()
                .write(true)
                .open(p)
                .map_err(io_err("opening for writing", p))?;
        }
        Ok(procs)
    }

    /// The `linux.cgroupsPath` for an OCI runtime that makes the task's cgroup itself (runc),
    /// beneath `swarmd`'s own cgroup as [`Cgroups::create`] would make it:
    /// * v1: `shoal-<id>`, relative: runc puts a relative path beneath its own cgroup in each
    ///   hierarchy (`subsysPath` in libcontainer/cgroups/fs/paths.go), which is `swarmd`'s;
    /// * v2: `/<own>/shoal-tasks/shoal-<id>`, absolute, once the controllers `limits` need are
    ///   delegated there.
    ///
    /// `None` without cgroups and without limits (the runtime picks its default).
    pub fn runtime_path(&self, task_id: &str, limits: &Limits) -> Result<Option<PathBuf>, Error> {
        check_name(task_id)?;
        let name = format!("{PREFIX}{task_id}");
        for c in limits.controllers() {
            self.parent_of(c)?;
        }
        match &self.layout {
            Layout::V1 { .. } => Ok(Some(PathBuf::from(name))),
            Layout::V2 { own } => {
                delegate_v2(own, &limits.controllers())?;
                let rel = own.strip_prefix(&self.root).unwrap_or(own);
                Ok(Some(Path::new("/").join(rel).join(V2_PARENT).join(name)))
            }
            Layout::None(_) => Ok(None),
        }
    }

    /// Removes `task_id`'s cgroups, retrying every `retry` for up to `patience` while they
    /// still hold processes (the task's last ones are exiting). Missing cgroups are not an
    /// error.
    pub async fn remove(
        &self,
        task_id: &str,
        patience: Duration,
        retry: Duration,
    ) -> Result<(), Error> {
        if check_name(task_id).is_err() {
            return Ok(()); // never created
        }
        let deadline = tokio::time::Instant::now() + patience;
        for dir in self.task_dirs(task_id) {
            loop {
                match fs::remove_dir(&dir) {
                    Ok(()) => break,
                    Err(e) if e.kind() == io::ErrorKind::NotFound => break,
                    Err(e)
                        if e.raw_os_error() == Some(libc::EBUSY)
                            && tokio::time::Instant::now() < deadline =>
                    {
                        tokio::time::sleep(retry).await;
                    }
                    Err(e) => return Err(io_err("rmdir", &dir)(e)),
                }
            }
        }
        Ok(())
    }

    /// Removes every `shoal-*` cgroup beneath `swarmd`'s whose task is not in `keep` and that
    /// is at least `min_age` old (another `swarmd` on this host may be about to move a task
    /// into a new one). Only empty cgroups can be removed, so a task still running, of this
    /// `swarmd` or another, is never touched. Returns what could not be removed, and why.
    pub fn sweep(&self, keep: &HashSet<String>, min_age: Duration) -> Vec<Error> {
        let mut failed = Vec::new();
        let now = SystemTime::now();
        for parent in self.parents() {
            let Ok(entries) = fs::read_dir(&parent) else {
                continue;
            };
            for e in entries.flatten() {
                let name = e.file_name();
                let Some(id) = name.to_str().and_then(|n| n.strip_prefix(PREFIX)) else {
                    continue;
                };
                if keep.contains(id) || !e.file_type().is_ok_and(|t| t.is_dir()) {
                    continue;
                }
                let young = e
                    .metadata()
                    .and_then(|m| m.modified())
                    .ok()
                    .and_then(|t| now.duration_since(t).ok())
                    .is_none_or(|age| age < min_age);
                if young {
                    continue;
                }
                match fs::remove_dir(e.path()) {
                    Ok(()) => {
                        tracing::info!(path = %e.path().display(), "removed a leftover cgroup")
                    }
                    Err(err) if err.kind() == io::ErrorKind::NotFound => {}
                    Err(err) => failed.push(io_err("rmdir", &e.path())(err)),
                }
            }
        }
        failed
    }
}

/// `swarmd`'s own cgroup directory in the v1 hierarchy of `controller`. The hierarchy is
/// mounted at `root/<its controllers>` (`cpu,cpuacct`) or `root/<controller>` (the usual
/// symlink); `swarmd`'s cgroup must be visible there.
fn v1_own(root: &Path, m: &Membership, controller: Controller) -> Result<PathBuf, Missing> {
    let name = controller.name();
    let Some((list, path)) = m.v1_of(name) else {
        return Err(Missing(format!(
            "no cgroup v1 {name} hierarchy (no {name} line in /proc/self/cgroup)"
        )));
    };
    let candidates = [root.join(list.join(",")), root.join(name)];
    candidates
        .iter()
        .map(|mount| below(mount, path))
        .find(|own| own.join(controller.v1_probe()).is_file())
        .ok_or_else(|| {
            Missing(format!(
                "swarmd's {name} cgroup {path} is not under {} (no {})",
                candidates[0].display(),
                controller.v1_probe()
            ))
        })
}

/// Why a v1 controller is not usable, found at detection and told (as
/// [`Error::Unavailable`]) to the first task that needs it.
#[derive(Debug, Clone)]
struct Missing(String);

/// v2: enables `controllers` in `own`'s `cgroup.subtree_control`, creates `own/shoal-tasks`
/// and enables them there too, so its children (the tasks) have the controllers' files.
/// Idempotent; only writes what is not enabled yet.
fn delegate_v2(own: &Path, controllers: &[Controller]) -> Result<(), Error> {
    let available_path = own.join("cgroup.controllers");
    let available =
        fs::read_to_string(&available_path).map_err(io_err("reading", &available_path))?;
    for c in controllers {
        if !available.split_whitespace().any(|a| a == c.name()) {
            return Err(Error::Unavailable {
                controller: c.name(),
                why: format!(
                    "{} lists {:?}: the cgroup above swarmd's does not delegate it to swarmd's \
                     cgroup; run swarmd in its own cgroup, e.g. a systemd unit with Delegate=yes",
                    available_path.display(),
                    available.trim()
                ),
            });
        }
    }
    let own_control = own.join("cgroup.subtree_control");
    let enabled = fs::read_to_string(&own_control).map_err(io_err("reading", &own_control))?;
    let delegate_err = |(value, source): (String, io::Error)| Error::Delegate {
        own: own.to_path_buf(),
        value,
        source,
    };
    match enable(&own_control, &enabled, controllers) {
        Ok(()) => {}
        // EBUSY: `own` holds processes ("no internal process" rule) — swarmd itself when it
        // runs in a cgroup of its own, as under a systemd unit with Delegate=yes. It moves into
        // a leaf below (as container runtimes do), then the controllers can be enabled.
        Err((_, e)) if e.raw_os_error() == Some(libc::EBUSY) => {
            let leaf = own.join(SWARMD_LEAF);
            match fs::create_dir(&leaf) {
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
                Err(e) => return Err(io_err("mkdir", &leaf)(e)),
            }
            let procs = leaf.join("cgroup.procs");
            write_file(&procs, &std::process::id().to_string())
                .map_err(|e| io_err("moving swarmd into", &procs)(e))?;
            let enabled =
                fs::read_to_string(&own_control).map_err(io_err("reading", &own_control))?;
            enable(&own_control, &enabled, controllers).map_err(delegate_err)?;
        }
        Err(e) => return Err(delegate_err(e)),
    }
    let parent = own.join(V2_PARENT);
    match fs::create_dir(&parent) {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
        Err(e) => return Err(io_err("mkdir", &parent)(e)),
    }
    let control = parent.join("cgroup.subtree_control");
    let enabled = fs::read_to_string(&control).map_err(io_err("reading", &control))?;
    enable(&control, &enabled, controllers)
        .map_err(|(value, source)| io_err(format!("writing {value} to"), &control)(source))
}

/// Writes `+<controller>` to the `cgroup.subtree_control` file `path` for each controller not
/// in `enabled` (what the file reads) yet.
fn enable(
    path: &Path,
    enabled: &str,
    controllers: &[Controller],
) -> Result<(), (String, io::Error)> {
    for c in controllers {
        if enabled.split_whitespace().any(|e| e == c.name()) {
            continue;
        }
        let value = format!("+{}", c.name());
        write_file(path, &value).map_err(|e| (value, e))?;
    }
    Ok(())
}

/// One `write(2)` of `value` to an existing file (cgroup files take one value per write).
fn write_file(path: &Path, value: &str) -> io::Result<()> {
    fs::OpenOptions::new()
        .write(true)
        .open(path)?
        .write_all(value.as_bytes())
}

/// Task ids are generated (`[0-9a-z]`); anything that could escape the directory is refused.
fn check_name(task_id: &str) -> Result<(), Error> {
    let ok = !task_id.is_empty()
        && task_id.len() <= 200
        && task_id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_' || b == b'.')
        && !task_id.starts_with('.');
    if ok {
        Ok(())
    } else {
        Err(Error::BadName(task_id.to_string()))
    }
}

#[cfg(test)]
mod tests;
