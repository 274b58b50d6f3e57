//! What can go wrong running a task. A task that cannot start is rejected with this error's
//! text, and `swarmctl task exec` shows it: every message is one an operator reads.

use std::io;
use std::path::PathBuf;

/// An error of the executor.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// An image given as a path names no file.
    #[error("executable {image} not found on this node")]
    NoSuchFile {
        /// The image (a path).
        image: String,
    },
    /// An image given as a name is found neither next to `swarmd` nor in `PATH`.
    #[error("executable {image:?} not found on this node (looked next to swarmd and in PATH)")]
    NotFound {
        /// The image (a program name).
        image: String,
    },
    /// The task's directory could not be made.
    #[error("creating {}: {source}", path.display())]
    TaskDir {
        /// The directory.
        path: PathBuf,
        /// The cause.
        #[source]
        source: io::Error,
    },
    /// A log file could not be opened.
    #[error("opening {name}: {source}")]
    LogFile {
        /// `stdout.log` or `stderr.log`.
        name: &'static str,
        /// The cause.
        #[source]
        source: io::Error,
    },
    /// The task's `/etc/hosts`, `/etc/hostname` or `/etc/resolv.conf` could not be written.
    #[error("writing the task's /etc files: {0}")]
    EtcFiles(#[source] io::Error),
    /// The task's cgroups could not be made (see [`super::cgroup::Error`]).
    #[error(transparent)]
    Cgroup(#[from] super::cgroup::Error),
    /// The task's secrets and configs could not be given to it.
    #[error(transparent)]
    Files(#[from] super::files::FilesError),
    /// The task's process could not be started.
    #[error(
        "starting {}{}: {source}{hint}",
        program.display(),
        if *sandboxed { " in its sandbox" } else { "" }
    )]
    Spawn {
        /// The program.
        program: PathBuf,
        /// Whether it was started in a sandbox.
        sandboxed: bool,
        /// Where a bare errno may come from (empty, or ` (from setting up the child…)`).
        hint: String,
        /// The cause.
        #[source]
        source: io::Error,
    },
    /// The process ended before its pid was read.
    #[error("the task exited before it could be tracked")]
    Vanished,
    /// `start` without a successful `prepare` (a bug of the caller).
    #[error("the task was not prepared")]
    NotPrepared,
    /// `swarmctl task exec` with no command.
    #[error("no command")]
    NoCommand,
    /// The command of `swarmctl task exec` could not be started.
    #[error("{program}: {source}")]
    ExecSpawn {
        /// The program.
        program: String,
        /// The cause.
        #[source]
        source: io::Error,
    },
    /// The running task's namespaces could not be opened.
    #[error("the task's namespaces: {0}")]
    Namespaces(#[source] io::Error),
    /// The running task's root could not be opened.
    #[error("the task's root: {0}")]
    Root(#[source] io::Error),
    /// The running task's PID namespace could not be joined.
    #[error("joining the task's PID namespace: {0}")]
    JoinPid(#[source] io::Error),
    /// This executor cannot run interactive commands.
    #[error("this executor cannot run interactive commands (exec -i/-t)")]
    NoInteractiveExec,
    /// The thread that starts the command in the task panicked.
    #[error("the exec thread panicked")]
    ExecPanicked,
    /// Waiting for the command failed.
    #[error("{0}")]
    ExecWait(#[source] io::Error),
    /// The command ran past its time.
    #[error("timed out after {secs}s (killed)")]
    Timeout {
        /// Its time, in seconds.
        secs: u64,
    },
    /// The image of a container task could not be made available (the image store's error).
    #[error("image {image}: {source}")]
    Image {
        /// The image reference.
        image: String,
        /// The cause.
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    /// The image and the service together name no program to run.
    #[error("image {image} has no command: give one after the image (service create IMAGE CMD…)")]
    NoImageCommand {
        /// The image reference.
        image: String,
    },
    /// The process to run could not be made from the image and the service (a relative
    /// working directory…).
    #[error("image {image}: {source}")]
    Process {
        /// The image reference.
        image: String,
        /// Why.
        #[source]
        source: shoal_image::merge::MergeError,
    },
    /// The user to run a container as is not in the image's `/etc/passwd` or `/etc/group`
    /// (Docker's words).
    #[error(transparent)]
    User(#[from] shoal_image::merge::UserError),
    /// The image is in no registry the node can reach under that name or tag (Docker's words).
    #[error("No such image: {image}")]
    NoSuchImage {
        /// The image as the service names it.
        image: String,
    },
    /// The image's reference is not one Docker accepts.
    #[error("invalid reference format: {image}: {source}")]
    BadReference {
        /// The image as the service names it.
        image: String,
        /// Why.
        #[source]
        source: shoal_image::ReferenceError,
    },
    /// Pulling the image failed: the registry's (or the store's) error.
    #[error("pulling {image}: {source}")]
    Pull {
        /// The image as the service names it.
        image: String,
        /// The cause.
        #[source]
        source: shoal_image::StoreError,
    },
    /// Pulling the image took longer than the agent allows (`AgentConfig::image_pull_timeout`).
    #[error("pulling {image}: not done after {after:?} (is the registry reachable?)")]
    PullTimeout {
        /// The image as the service names it.
        image: String,
        /// The deadline.
        after: std::time::Duration,
    },
    /// A container task on a node without an OCI runtime.
    #[error("this node has no OCI runtime for containers ({reason}): install the runc or crun package, or run the service with --runtime process")]
    NoOciRuntime {
        /// Why.
        reason: String,
    },
    /// The OCI runtime failed (see [`super::oci::runtime::Error`]).
    #[error(transparent)]
    Runtime(#[from] super::oci::runtime::Error),
    /// The container's root file system could not be mounted (see [`super::oci::overlay::Error`]).
    #[error(transparent)]
    Overlay(#[from] super::oci::overlay::Error),
    /// The container's `config.json` could not be built or read.
    #[error("the container's config.json: {0}")]
    Spec(#[source] oci_spec::OciSpecError),
    /// The container's bundle directory or an exec's files could not be written.
    #[error("writing {}: {source}", path.display())]
    Bundle {
        /// The file or directory.
        path: PathBuf,
        /// The cause.
        #[source]
        source: io::Error,
    },
    /// The container's init could not be watched (`pidfd_open`, `waitid`).
    #[error("watching the container's init process: {0}")]
    Pidfd(#[source] io::Error),
    /// `--init` on a node that has no init program to bind into containers.
    #[error("the service asks for --init but this node has no init program: install the tini package (its /usr/bin/tini-static) or start swarmd with --init-path")]
    NoInit,
    /// `--tty` where the executor has no program to hold the terminal (a bug of the caller:
    /// `swarmd` always gives itself).
    #[error("the service asks for --tty but this node cannot hold a container's terminal")]
    NoConsoleProgram,
    /// `--tty`: the process holding the container's terminal could not be set up.
    #[error("the container's terminal (--tty): {0}")]
    Console(#[source] io::Error),
    /// `--tty` for `--runtime process`.
    #[error(
        "--tty is for containers: a process task gets no terminal (remove --tty or run an image)"
    )]
    TtyProcess,
}
