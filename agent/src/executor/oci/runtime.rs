//! A typed driver for an OCI runtime binary (`runc`, `crun`), as `runc --root ROOT VERB …`
//! reads. Every container of Shoal lives under a `--root` of its own, beneath the agent's state
//! directory, so `list` only ever shows Shoal's containers and `delete` never touches another
//! tool's.
//!
//! Both runtimes take the same verbs and flags here: `create --bundle B --pid-file P ID`,
//! `start`, `state` (JSON), `kill ID SIGNAL`, `delete [--force]`, `exec --process P.json
//! --pid-file P ID`, `list --format json`. Failures keep the runtime's own words (its stderr,
//! or for `create` the tail of its `--log` file, since its stderr is the container's).

use std::fs::File;
use std::io;
use std::path::{Path, PathBuf};
use std::process::{Output, Stdio};

use serde::Deserialize;
use shoal_netlib::netns::CgroupJoin;

/// Why the runtime could not do what was asked. Messages name the runtime, the verb and the
/// container, and carry what the runtime said.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The runtime named on the command line is nowhere to be found.
    #[error("OCI runtime {name:?} not found (looked in PATH, /usr/sbin and /sbin); install runc or crun")]
    NotFound {
        /// The name given.
        name: String,
    },
    /// The runtime binary could not be run.
    #[error("running {} {op}: {source}", program.display())]
    Spawn {
        /// The binary.
        program: PathBuf,
        /// The verb (`create`, `state`…).
        op: &'static str,
        /// The cause.
        #[source]
        source: io::Error,
    },
    /// The runtime ran and failed.
    #[error("{runtime} {op} {id}: exit status {status}: {stderr}")]
    Failed {
        /// `runc` or `crun`.
        runtime: String,
        /// The verb.
        op: &'static str,
        /// The container.
        id: String,
        /// Its exit status (-1: killed by a signal).
        status: i32,
        /// What it printed (trimmed), or the tail of its log.
        stderr: String,
    },
    /// The runtime printed something that is not the JSON it documents.
    #[error("{runtime} {op}: unexpected output: {source}")]
    Output {
        /// `runc` or `crun`.
        runtime: String,
        /// The verb.
        op: &'static str,
        /// The parse error.
        #[source]
        source: serde_json::Error,
    },
    /// `create` succeeded but its pid file could not be read.
    #[error("reading the container's pid file {}: {source}", path.display())]
    PidFile {
        /// The file.
        path: PathBuf,
        /// The cause.
        #[source]
        source: io::Error,
    },
}

/// Which runtime a binary is: they differ in how they make cgroups.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Flavor {
    /// runc (also the flavor of an unknown binary).
    Runc,
    /// crun.
    Crun,
}

/// A container's status, as `state` and `list` print it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    /// Made, its process waits for `start`.
    Created,
    /// Its process runs.
    Running,
    /// Frozen.
    Paused,
    /// Its process ended.
    Stopped,
    /// Anything else (`creating`…).
    #[serde(other)]
    Unknown,
}

/// What `state ID` and `list` print about a container.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct State {
    /// The container id (a task id, for Shoal's).
    pub id: String,
    /// Its init's pid in the node's PID namespace (0 once stopped).
    #[serde(default)]
    pub pid: u32,
    /// Its status.
    pub status: Status,
    /// Its bundle directory.
    #[serde(default)]
    pub bundle: PathBuf,
}

/// The container's standard output and error (its init inherits them from `create`).
#[derive(Debug)]
pub struct ContainerStdio {
    /// Standard output.
    pub stdout: File,
    /// Standard error.
    pub stderr: File,
}

/// An OCI runtime binary with Shoal's `--root`.
#[derive(Debug, Clone)]
pub struct Runtime {
    program: PathBuf,
    name: String,
    root: PathBuf,
    flavor: Flavor,
    /// crun on a hybrid cgroup host: run it where the controller-holding cgroup2 mount at
    /// `/sys/fs/cgroup/unified` is not mounted (see [`Runtime::with_hybrid_workaround`]).
    hide_unified: bool,
    /// crun: `--cgroup-manager=disabled` (the agent makes the cgroups).
    no_cgroups: bool,
}

const SEARCH: [&str; 2] = ["/usr/sbin", "/sbin"];

impl Runtime {
    /// The runtime `name_or_path` (`runc`, `crun`, or a path), keeping its containers' state
    /// under `root` (made when missing).
    pub fn new(name_or_path: &str, root: PathBuf) -> Result<Runtime, Error> {
        let not_found = || Error::NotFound {
            name: name_or_path.to_string(),
        };
        let program = if name_or_path.contains('/') {
            Some(PathBuf::from(name_or_path)).filter(|p| p.is_file())
        } else {
            let path = std::env::var_os("PATH").unwrap_or_default();
            std::env::split_paths(&path)
                .chain(SEARCH.iter().map(PathBuf::from))
                .map(|d| d.join(name_or_path))
                .find(|p| p.is_file())
        }
        .ok_or_else(not_found)?;
        let name = program
            .file_name()
            .map(|n| n.to_string_lossy().to_string())
            .unwrap_or_default();
        let flavor = if name.starts_with("crun") {
            Flavor::Crun
        } else {
            Flavor::Runc
        };
        Ok(Runtime {
            program,
            name,
            root,
            flavor,
            hide_unified: false,
            no_cgroups: false,
        })
    }

    /// crun (1.8) refuses to run on a "hybrid" host, v1 hierarchies plus a cgroup2 mount at
    /// `/sys/fs/cgroup/unified` that holds a controller ("cgroups in hybrid mode not supported,
    /// drop all controllers from cgroupv2"), as this project's build machines are. With this,
    /// each crun command runs in a mount namespace of its own where that mount is detached,
    /// so crun sees a plain v1 host; the node's mounts are untouched.
    pub fn with_hybrid_workaround(mut self, on: bool) -> Self {
        self.hide_unified = on;
        self
    }

    /// `--cgroup-manager=disabled` (crun): the runtime makes no cgroup; the container stays in
    /// the cgroups its `create` process was started in (see [`Runtime::create`]'s `join`).
    pub fn without_cgroups(mut self, on: bool) -> Self {
        self.no_cgroups = on;
        self
    }

    /// Which runtime this is.
    pub fn flavor(&self) -> Flavor {
        self.flavor
    }

    /// Its binary's file name (`runc`).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Its binary.
    pub fn program(&self) -> &Path {
        &self.program
    }

    /// Where it keeps its containers' state.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// `runtime --root ROOT [--log LOG] VERB`, with its standard streams closed.
    fn command(&self, verb: &str, log: Option<&Path>) -> std::process::Command {
        let mut c = std::process::Command::new(&self.program);
        c.arg("--root").arg(&self.root);
        if let Some(log) = log {
            c.arg("--log").arg(log);
        }
        if self.no_cgroups && self.flavor == Flavor::Crun {
            c.arg("--cgroup-manager=disabled");
        }
        c.arg(verb)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        if self.hide_unified {
            hide_unified(&mut c);
        }
        c
    }

    fn spawn_err(&self, op: &'static str) -> impl FnOnce(io::Error) -> Error + '_ {
        move |source| Error::Spawn {
            program: self.program.clone(),
            op,
            source,
        }
    }

    fn check(&self, op: &'static str, id: &str, out: Output) -> Result<Output, Error> {
        if out.status.success() {
            return Ok(out);
        }
        Err(Error::Failed {
            runtime: self.name.clone(),
            op,
            id: id.to_string(),
            status: out.status.code().unwrap_or(-1),
            stderr: String::from_utf8_lossy(&out.stderr).trim().to_string(),
        })
    }

    /// Runs `c` to its end, capturing its output.
    async fn run(
        &self,
        op: &'static str,
        id: &str,
        mut c: std::process::Command,
    ) -> Result<Output, Error> {
        c.stdout(Stdio::piped()).stderr(Stdio::piped());
        let out = tokio::process::Command::from(c)
            .output()
            .await
            .map_err(self.spawn_err(op))?;
        self.check(op, id, out)
    }

    /// Same as [`Runtime::run`], blocking (for the executor's synchronous entry points).
    fn run_blocking(
        &self,
        op: &'static str,
        id: &str,
        mut c: std::process::Command,
    ) -> Result<Output, Error> {
        c.stdout(Stdio::piped()).stderr(Stdio::piped());
        let out = c.output().map_err(self.spawn_err(op))?;
        self.check(op, id, out)
    }

    /// `create --bundle BUNDLE --pid-file PID_FILE ID`: makes the container, its init waiting
    /// for `start`; returns the init's pid. The init keeps `stdio` as its standard output and
    /// error (the runtime is given them as its own), and starts in the cgroups of `join` when
    /// given (the runtime process moves itself there between `fork` and `exec`). The runtime's
    /// own messages go to `log` too, whose tail is the error's text. A container whose process
    /// has a terminal needs `console_socket` (`--console-socket`): the runtime sends the
    /// terminal's master there (see [`super::console`]).
    #[allow(clippy::too_many_arguments)]
    pub async fn create(
        &self,
        id: &str,
        bundle: &Path,
        pid_file: &Path,
        log: &Path,
        stdio: ContainerStdio,
        join: Option<CgroupJoin>,
        console_socket: Option<&Path>,
    ) -> Result<u32, Error> {
        let _ = std::fs::remove_file(pid_file);
        let mut c = self.command("create", Some(log));
        c.arg("--bundle")
            .arg(bundle)
            .arg("--pid-file")
            .arg(pid_file);
        if let Some(s) = console_socket {
            c.arg("--console-socket").arg(s);
        }
        c.arg(id).stdout(stdio.stdout).stderr(stdio.stderr);
        if let Some(join) = join {
            join_cgroups(&mut c, join);
        }
        let status = tokio::process::Command::from(c)
            .status()
            .await
            .map_err(self.spawn_err("create"))?;
        if !status.success() {
            return Err(Error::Failed {
                runtime: self.name.clone(),
                op: "create",
                id: id.to_string(),
                status: status.code().unwrap_or(-1),
                stderr: log_tail(log),
            });
        }
        let text = std::fs::read_to_string(pid_file).map_err(|source| Error::PidFile {
            path: pid_file.to_path_buf(),
            source,
        })?;
        text.trim().parse().map_err(|_| Error::PidFile {
            path: pid_file.to_path_buf(),
            source: io::Error::new(io::ErrorKind::InvalidData, format!("{text:?} is no pid")),
        })
    }

    /// `start ID`: runs the created container's process.
    pub async fn start(&self, id: &str) -> Result<(), Error> {
        let mut c = self.command("start", None);
        c.arg(id);
        self.run("start", id, c).await.map(drop)
    }

    /// Whether the runtime keeps state for container `id` (its directory under `--root`).
    pub fn exists(&self, id: &str) -> bool {
        !id.is_empty() && !id.contains('/') && self.root.join(id).is_dir()
    }

    /// `state ID`; `None` when there is no such container.
    pub async fn state(&self, id: &str) -> Result<Option<State>, Error> {
        if !self.exists(id) {
            return Ok(None);
        }
        let mut c = self.command("state", None);
        c.arg(id);
        let out = self.run("state", id, c).await?;
        serde_json::from_slice(&out.stdout)
            .map(Some)
            .map_err(|source| Error::Output {
                runtime: self.name.clone(),
                op: "state",
                source,
            })
    }

    /// `kill ID SIGNAL` (`TERM`, `SIGQUIT`, `9`…): signals the container's init.
    pub async fn kill(&self, id: &str, signal: &str) -> Result<(), Error> {
        let mut c = self.command("kill", None);
        c.arg(id).arg(signal);
        self.run("kill", id, c).await.map(drop)
    }

    /// `delete [--force] ID`: forgets a stopped container (`force`: kills it first).
    pub async fn delete(&self, id: &str, force: bool) -> Result<(), Error> {
        let c = self.delete_command(id, force);
        self.run("delete", id, c).await.map(drop)
    }

    /// [`Runtime::delete`], blocking.
    pub fn delete_blocking(&self, id: &str, force: bool) -> Result<(), Error> {
        let c = self.delete_command(id, force);
        self.run_blocking("delete", id, c).map(drop)
    }

    fn delete_command(&self, id: &str, force: bool) -> std::process::Command {
        let mut c = self.command("delete", None);
        if force {
            c.arg("--force");
        }
        c.arg(id);
        c
    }

    /// `list --format json` (blocking: the executor's adoption list and sweep are synchronous).
    pub fn list_blocking(&self) -> Result<Vec<State>, Error> {
        if !self.root.is_dir() {
            return Ok(Vec::new()); // nothing was ever created
        }
        let mut c = self.command("list", None);
        c.arg("--format").arg("json");
        let out = self.run_blocking("list", "", c)?;
        // runc prints `null` when there is no container.
        let list: Option<Vec<State>> =
            serde_json::from_slice(&out.stdout).map_err(|source| Error::Output {
                runtime: self.name.clone(),
                op: "list",
                source,
            })?;
        Ok(list.unwrap_or_default())
    }

    /// `exec --process PROCESS --pid-file PID_FILE ID`, ready to spawn: runs the process
    /// described by the JSON file `process` in container `id`, waiting for it; the runtime exits
    /// with its status. Its pid goes to `pid_file` (to kill it on a timeout: killing the runtime
    /// would leave it running in the container).
    pub fn exec_command(
        &self,
        id: &str,
        process: &Path,
        pid_file: &Path,
    ) -> tokio::process::Command {
        self.exec_command_with(id, process, pid_file, None)
    }

    /// [`Runtime::exec_command`], with `--console-socket SOCKET` when given: the runtime sends
    /// the terminal's master there (SCM_RIGHTS) and still waits for the process.
    pub fn exec_command_with(
        &self,
        id: &str,
        process: &Path,
        pid_file: &Path,
        console_socket: Option<&Path>,
    ) -> tokio::process::Command {
        let mut c = self.command("exec", None);
        c.arg("--process")
            .arg(process)
            .arg("--pid-file")
            .arg(pid_file);
        if let Some(s) = console_socket {
            c.arg("--console-socket").arg(s);
        }
        c.arg(id);
        tokio::process::Command::from(c)
    }
}

/// The last lines of the runtime's log, for an error message.
fn log_tail(log: &Path) -> String {
    let text = std::fs::read_to_string(log).unwrap_or_default();
    let lines: Vec<&str> = text.lines().filter(|l| !l.trim().is_empty()).collect();
    let tail = &lines[lines.len().saturating_sub(3)..];
    if tail.is_empty() {
        format!("(nothing in {})", log.display())
    } else {
        tail.join(" | ")
    }
}

/// Moves the runtime into the task's cgroups before `exec` (see [`CgroupJoin`]).
#[allow(unsafe_code)]
fn join_cgroups(c: &mut std::process::Command, join: CgroupJoin) {
    use std::os::unix::process::CommandExt;
    // SAFETY: the closure runs in the child between fork and exec; `CgroupJoin::apply` only
    // calls open(2), write(2) and close(2) on strings made before the fork.
    unsafe {
        c.pre_exec(move || join.apply());
    }
}

/// The controller-holding cgroup2 mount of a hybrid host.
pub const UNIFIED: &str = "/sys/fs/cgroup/unified";

/// Whether this is a hybrid host whose `/sys/fs/cgroup/unified` holds controllers (which crun
/// refuses).
pub fn hybrid_with_controllers() -> bool {
    std::fs::read_to_string(Path::new(UNIFIED).join("cgroup.controllers"))
        .is_ok_and(|c| !c.trim().is_empty())
}

/// In the child: a mount namespace of its own (`unshare(CLONE_NEWNS)`), made a slave of the
/// node's so that nothing propagates back, where [`UNIFIED`] is detached.
#[allow(unsafe_code)]
fn hide_unified(c: &mut std::process::Command) {
    use std::os::unix::process::CommandExt;
    // SAFETY: the closure runs in the child between fork and exec and only makes the system
    // calls unshare(2), mount(2) and umount2(2) on C string literals (no allocation).
    unsafe {
        c.pre_exec(|| {
            if libc::unshare(libc::CLONE_NEWNS) != 0 {
                return Err(io::Error::last_os_error());
            }
            let root = c"/";
            if libc::mount(
                std::ptr::null(),
                root.as_ptr(),
                std::ptr::null(),
                libc::MS_REC | libc::MS_SLAVE,
                std::ptr::null(),
            ) != 0
            {
                return Err(io::Error::last_os_error());
            }
            let unified = c"/sys/fs/cgroup/unified";
            // Not mounted (EINVAL) is fine: there is nothing to hide.
            libc::umount2(unified.as_ptr(), libc::MNT_DETACH);
            Ok(())
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_what_runc_and_crun_print() {
        // `runc state ID`
        let runc: State = serde_json::from_str(
            r#"{"ociVersion":"1.0.2-dev","id":"t1","pid":4242,"status":"running",
                "bundle":"/s/t1/bundle","rootfs":"/s/t1/bundle/rootfs",
                "created":"2026-12-06T04:40:20Z","owner":""}"#,
        )
        .unwrap();
        assert_eq!(
            runc,
            State {
                id: "t1".into(),
                pid: 4242,
                status: Status::Running,
                bundle: "/s/t1/bundle".into(),
            }
        );
        // `crun list --format json`, and a status this driver does not know.
        let crun: Vec<State> = serde_json::from_str(
            r#"[{"id":"t2","pid":0,"status":"stopped","bundle":"/b","created":"x","owner":"root"},
                {"id":"t3","pid":7,"status":"creating","bundle":"/b"}]"#,
        )
        .unwrap();
        assert_eq!(crun[0].status, Status::Stopped);
        assert_eq!(crun[1].status, Status::Unknown);
        // `runc list --format json` with no container.
        let none: Option<Vec<State>> = serde_json::from_str("null").unwrap();
        assert!(none.is_none());
    }

    #[test]
    fn flavor_comes_from_the_binary_name() {
        let dir = tempfile::tempdir().unwrap();
        for (name, flavor) in [
            ("crun", Flavor::Crun),
            ("runc", Flavor::Runc),
            ("my-rt", Flavor::Runc),
        ] {
            let p = dir.path().join(name);
            std::fs::write(&p, "").unwrap();
            let rt = Runtime::new(p.to_str().unwrap(), dir.path().join("root")).unwrap();
            assert_eq!(rt.flavor(), flavor, "{name}");
            assert_eq!(rt.name(), name);
        }
        assert!(!Runtime::new("/bin/sh", dir.path().join("root"))
            .unwrap()
            .exists("x"));
    }

    #[test]
    fn a_failed_create_shows_the_tail_of_the_runtimes_log() {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("runtime.log");
        assert!(log_tail(&log).starts_with("(nothing in "));
        std::fs::write(&log, "a\nb\n\nc\nd\n").unwrap();
        assert_eq!(log_tail(&log), "b | c | d");
    }
}
