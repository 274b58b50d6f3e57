//! `swarmctl task exec`: runs a command inside a running task's namespaces (network, UTS,
//! mount and PID, found through the task's pid), captures its output and exit code. The PID
//! namespace is joined by a thread made for this one command (it applies to the children of the
//! thread that joins it); the others by the child itself between `fork` and `exec`.

use std::os::fd::AsFd;
use std::process::Stdio;
use std::time::Duration;

use shoal_netlib::netns::{self, Kind, NsJoin};
use tokio::process::{Child, Command};

use super::interactive::{self, ExecSession, ExecSpec};
use super::{Error, ExecOutput};

/// Most bytes of each output stream returned.
pub const MAX_OUTPUT: usize = 4 << 20;

/// Runs `cmd` in the task whose main process is `pid` (`None`: the task runs as a plain process
/// on the node, so the command does too), for at most `timeout`.
pub async fn run(pid: Option<u32>, cmd: &[String], timeout: Duration) -> Result<ExecOutput, Error> {
    let (program, args) = cmd.split_first().ok_or(Error::NoCommand)?;
    let mut c = Command::new(program);
    c.args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        // A group of its own: a timeout kills what it started too (`sh -c 'sleep 1d'`).
        .process_group(0)
        .kill_on_drop(true);
    let child = spawn_in(pid, c, program)?;
    let group = child.id();
    let out = match tokio::time::timeout(timeout, child.wait_with_output()).await {
        Ok(r) => r.map_err(Error::ExecWait)?,
        Err(_) => {
            if let Some(pgid) = group {
                kill_group(pgid);
            }
            return Err(Error::Timeout {
                secs: timeout.as_secs(),
            });
        }
    };
    let cut = |mut v: Vec<u8>| {
        v.truncate(MAX_OUTPUT);
        v
    };
    Ok(ExecOutput {
        stdout: cut(out.stdout),
        stderr: cut(out.stderr),
        exit_code: out.status.code().unwrap_or(128 + 9),
    })
}

/// Runs `spec` in the task whose main process is `pid` (`None`: on the node) with its stdin
/// streamed, on a pseudo-terminal when it asks for one (`swarmctl task exec -i/-t`).
pub fn interactive(pid: Option<u32>, spec: &ExecSpec) -> Result<ExecSession, Error> {
    let (program, args) = spec.cmd.split_first().ok_or(Error::NoCommand)?;
    let mut c = Command::new(program);
    c.args(args);
    if spec.tty && std::env::var_os("TERM").is_none() {
        c.env("TERM", "xterm");
    }
    interactive::start(c, spec, |c| spawn_in(pid, c, program), None)
}

/// Spawns `c` in the namespaces of the task whose main process is `pid` (`None`: on the node).
fn spawn_in(pid: Option<u32>, mut c: Command, program: &str) -> Result<Child, Error> {
    let spawn_err = |source| Error::ExecSpawn {
        program: program.to_string(),
        source,
    };
    let Some(pid) = pid else {
        return c.spawn().map_err(spawn_err);
    };
    let open = |k| netns::open_of_pid(pid, k).map_err(Error::Namespaces);
    let pid_ns = open(Kind::Pid)?;
    let root = std::fs::File::open(format!("/proc/{pid}/root")).map_err(Error::Root)?;
    let join = NsJoin::new()
        .join(open(Kind::Net)?, Kind::Net)
        .join(open(Kind::Uts)?, Kind::Uts)
        .join(open(Kind::Mount)?, Kind::Mount)
        .root(root.into());
    set_join(&mut c, join);
    let rt = tokio::runtime::Handle::current();
    let program = program.to_string();
    std::thread::spawn(move || {
        let _rt = rt.enter();
        netns::enter(pid_ns.as_fd(), Kind::Pid).map_err(Error::JoinPid)?;
        c.spawn()
            .map_err(|source| Error::ExecSpawn { program, source })
    })
    .join()
    .map_err(|_| Error::ExecPanicked)?
}

/// SIGKILL to process group `pgid` (one this agent made, for one exec).
#[allow(unsafe_code)]
pub(crate) fn kill_group(pgid: u32) {
    if let Ok(pgid) = libc::pid_t::try_from(pgid) {
        // SAFETY: kill(2) takes integers and touches no memory.
        unsafe { libc::kill(-pgid, libc::SIGKILL) };
    }
}

#[allow(unsafe_code)]
fn set_join(c: &mut Command, join: NsJoin) {
    // SAFETY: the closure runs in the child between fork and exec and only calls setns(2) and
    // chdir(2) on descriptors opened before the fork.
    unsafe {
        c.pre_exec(move || join.apply());
    }
}
