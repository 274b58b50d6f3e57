//! The init of a sandboxed task. A task is PID 1 of its own PID namespace, and the kernel
//! drops every signal to a PID 1 that has no handler for it: a `SIGTERM` from `swarmd` would
//! do nothing and every stop would wait for the `SIGKILL` at the end of the grace period. So
//! `swarmd` runs itself as the task's PID 1 (`swarmd __task-init -- PROGRAM ARGS…`, like
//! Docker's `--init`): it starts the program, forwards the usual signals to it, reaps every
//! orphan of the namespace, and exits with the program's status.

use std::os::unix::process::CommandExt;
use std::process::Command;

/// The `argv[1]` that makes `swarmd` the task's init.
pub const ARG: &str = "__task-init";

/// Signals passed on to the program.
const FORWARDED: [libc::c_int; 6] = [
    libc::SIGTERM,
    libc::SIGINT,
    libc::SIGHUP,
    libc::SIGQUIT,
    libc::SIGUSR1,
    libc::SIGUSR2,
];

/// Runs `argv` (program and arguments) as the init's only child; returns the exit status to
/// exit with (the program's code, or 128 + the signal that killed it).
#[allow(unsafe_code)]
pub fn run(argv: &[String]) -> i32 {
    let Some((program, args)) = argv.split_first() else {
        eprintln!("swarmd {ARG}: no program");
        return 127;
    };
    // SAFETY: plain libc calls on a sigset_t owned by this frame; signals are blocked before
    // the child exists so that none is lost, and the child unblocks them before exec.
    let set = unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        for s in FORWARDED.iter().chain([&libc::SIGCHLD]) {
            libc::sigaddset(&mut set, *s);
        }
        libc::sigprocmask(libc::SIG_BLOCK, &set, std::ptr::null_mut());
        set
    };
    let mut cmd = Command::new(program);
    cmd.args(args);
    // SAFETY: runs in the child between fork and exec; sigprocmask is async-signal-safe.
    unsafe {
        cmd.pre_exec(|| {
            let mut empty: libc::sigset_t = std::mem::zeroed();
            libc::sigemptyset(&mut empty);
            libc::sigprocmask(libc::SIG_SETMASK, &empty, std::ptr::null_mut());
            Ok(())
        });
    }
    let child = match cmd.spawn() {
        Ok(c) => c.id() as libc::pid_t,
        Err(e) => {
            eprintln!("{program}: {e}");
            return if e.kind() == std::io::ErrorKind::NotFound {
                127
            } else {
                126
            };
        }
    };
    loop {
        let mut sig: libc::c_int = 0;
        // SAFETY: `set` and `sig` live in this frame.
        if unsafe { libc::sigwait(&set, &mut sig) } != 0 {
            continue;
        }
        if sig != libc::SIGCHLD {
            // SAFETY: kill(2) on our own child's pid.
            unsafe { libc::kill(child, sig) };
            continue;
        }
        // Reap every child that ended (orphans of the namespace are ours too).
        loop {
            let mut status: libc::c_int = 0;
            // SAFETY: waitpid(2) with a pointer to a local.
            let pid = unsafe { libc::waitpid(-1, &mut status, libc::WNOHANG) };
            if pid <= 0 {
                break;
            }
            if pid == child {
                return if libc::WIFEXITED(status) {
                    libc::WEXITSTATUS(status)
                } else {
                    128 + libc::WTERMSIG(status)
                };
            }
        }
    }
}
