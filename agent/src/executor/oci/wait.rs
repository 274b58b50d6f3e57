//! Waiting for a detached container's init, which is not a child the agent spawned: `runc
//! create` forks it and exits.
//!
//! The choice: `swarmd` is a child subreaper (`PR_SET_CHILD_SUBREAPER`, prctl(2)), so an init
//! whose `create` process exited is reparented to `swarmd` instead of the node's init, and its
//! exit status can be read, as containerd's shim does for its containers. The init is watched
//! through a pidfd (`pidfd_open(2)`, Linux 5.3): readable once the process exits, whoever its
//! parent is, without polling `/proc` and without a pid that could be reused meanwhile; then
//! `waitid(P_PIDFD, …)` reaps it and gives its status. A container a previous `swarmd` left
//! (adopted) is not our child: the pidfd still says when it ends, `waitid` fails with `ECHILD`,
//! and the status is unknown, as for the process executor's adopted tasks.
//!
//! Why not only `--pid-file` and polling: no exit code, and a poll interval of latency. Why
//! not keeping `runc run` in the foreground as the parent: one runtime process (runc: a Go
//! program of ~10 MB) per container for its whole life. The cost of the subreaper: orphans of
//! `swarmd`'s other descendants come to it too; the process executor's sandboxed tasks are PID
//! 1 of their own namespace (their orphans go to them), plain tasks' orphans are the rare
//! case left as zombies until `swarmd` exits.
//!
//! One kind of orphan must be reaped: a process of a container's PID namespace whose parent
//! outside it died (a `runc exec` or `nsenter` killed at an exec's timeout). Once the container
//! stops, such a zombie keeps the container's init in the kernel's `zap_pid_ns_processes`,
//! waiting for every process of its namespace to be reaped: the container would never end.
//! [`reap_orphans`] reaps exactly those (zombies of a deeper PID namespace that are not its PID
//! 1), never a process the agent waits for itself (its own children live in its namespace, or
//! are PID 1 of theirs: container and sandbox inits).

use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};

use tokio::io::unix::AsyncFd;

use crate::executor::Exit;

/// Makes the calling process a child subreaper (for every thread: it is a process attribute).
#[allow(unsafe_code)]
pub fn become_subreaper() -> io::Result<()> {
    // SAFETY: prctl(2) with PR_SET_CHILD_SUBREAPER takes an integer and touches no memory.
    let r = unsafe { libc::prctl(libc::PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) };
    if r == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// Reaps this process's zombie children that are orphans from a container's PID namespace
/// (see the module's doc); returns their pids.
pub fn reap_orphans() -> Vec<u32> {
    let Some(own_depth) = ns_pids("self").map(|p| p.len()) else {
        return Vec::new();
    };
    let mut reaped = Vec::new();
    for pid in children() {
        let Ok(status) = std::fs::read_to_string(format!("/proc/{pid}/status")) else {
            continue;
        };
        if is_orphan_zombie(&status, own_depth) && reap_pid(pid) {
            reaped.push(pid);
        }
    }
    reaped
}

/// Whether a `/proc/PID/status` text is a zombie of a PID namespace deeper than ours
/// (`own_depth` levels) that is not that namespace's PID 1.
fn is_orphan_zombie(status: &str, own_depth: usize) -> bool {
    let zombie = field(status, "State:").is_some_and(|s| s.starts_with('Z'));
    let pids: Vec<&str> = field(status, "NSpid:")
        .map(|v| v.split_whitespace().collect())
        .unwrap_or_default();
    zombie && pids.len() > own_depth && pids.last() != Some(&"1")
}

fn field<'a>(status: &'a str, name: &str) -> Option<&'a str> {
    status
        .lines()
        .find_map(|l| l.strip_prefix(name))
        .map(str::trim)
}

fn ns_pids(pid: &str) -> Option<Vec<String>> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    Some(
        field(&status, "NSpid:")?
            .split_whitespace()
            .map(String::from)
            .collect(),
    )
}

/// This process's children, from every thread's `/proc/self/task/TID/children`.
fn children() -> Vec<u32> {
    let Ok(tasks) = std::fs::read_dir("/proc/self/task") else {
        return Vec::new();
    };
    let mut pids: Vec<u32> = tasks
        .flatten()
        .filter_map(|t| std::fs::read_to_string(t.path().join("children")).ok())
        .flat_map(|c| {
            c.split_whitespace()
                .filter_map(|p| p.parse().ok())
                .collect::<Vec<u32>>()
        })
        .collect();
    pids.sort_unstable();
    pids.dedup();
    pids
}

#[allow(unsafe_code)]
fn reap_pid(pid: u32) -> bool {
    let Ok(pid) = libc::pid_t::try_from(pid) else {
        return false;
    };
    let mut status = 0;
    // SAFETY: waitpid(2) writes only into `status`, which lives for the call.
    unsafe { libc::waitpid(pid, &mut status, libc::WNOHANG) == pid }
}

/// Reaps container orphans ([`reap_orphans`]) at every `SIGCHLD` and every few seconds (signals
/// coalesce), for as long as the runtime runs; nothing when called outside a tokio runtime.
pub fn spawn_orphan_reaper() {
    let Ok(handle) = tokio::runtime::Handle::try_current() else {
        return;
    };
    handle.spawn(async {
        let mut sigchld =
            tokio::signal::unix::signal(tokio::signal::unix::SignalKind::child()).ok();
        let mut tick = tokio::time::interval(std::time::Duration::from_secs(5));
        loop {
            match &mut sigchld {
                Some(s) => {
                    tokio::select! {
                        _ = s.recv() => {}
                        _ = tick.tick() => {}
                    }
                }
                None => {
                    tick.tick().await;
                }
            }
            let reaped = tokio::task::spawn_blocking(reap_orphans)
                .await
                .unwrap_or_default();
            if !reaped.is_empty() {
                tracing::debug!(?reaped, "reaped orphans of containers");
            }
        }
    });
}

/// A process being watched, through its pidfd.
#[derive(Debug)]
pub struct Pidfd {
    fd: AsyncFd<OwnedFd>,
    pid: u32,
    /// How it ended, once seen.
    exit: Option<Exit>,
}

impl Pidfd {
    /// Opens a pidfd for `pid` (which may already have exited, if it is our zombie).
    #[allow(unsafe_code)]
    pub fn open(pid: u32) -> io::Result<Pidfd> {
        let raw_pid = libc::pid_t::try_from(pid)
            .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "pid out of range"))?;
        // SAFETY: pidfd_open(2) takes a pid and flags and returns a new descriptor or -1; no
        // memory is passed.
        let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, raw_pid, 0) };
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        let fd = i32::try_from(fd).map_err(io::Error::other)?;
        // SAFETY: `fd` was just returned by pidfd_open and is owned by nothing else.
        let owned = unsafe { OwnedFd::from_raw_fd(fd) };
        // SAFETY: an OwnedFd stays open and returns the same descriptor until it is dropped,
        // which only the AsyncFd that owns it does.
        let fd = unsafe { AsyncFd::register_with_interest(owned, tokio::io::Interest::READABLE) }?;
        Ok(Pidfd {
            fd,
            pid,
            exit: None,
        })
    }

    /// The pid.
    pub fn pid(&self) -> u32 {
        self.pid
    }

    /// How it ended, if it was seen to end.
    pub fn exited(&self) -> Option<Exit> {
        self.exit
    }

    /// Waits until the process ends; reaps it when it is our child. Cancel-safe: dropping the
    /// future loses nothing, and once ended every call returns the same [`Exit`] at once.
    pub async fn wait(&mut self) -> io::Result<Exit> {
        if let Some(e) = self.exit {
            return Ok(e);
        }
        loop {
            let mut guard = self.fd.readable().await?;
            if let Some(e) = self.reap()? {
                self.exit = Some(e);
                return Ok(e);
            }
            guard.clear_ready();
        }
    }

    /// `waitid(P_PIDFD, fd, WEXITED | WNOHANG)`: `Some` once the process has ended.
    #[allow(unsafe_code)]
    fn reap(&self) -> io::Result<Option<Exit>> {
        // SAFETY: siginfo_t is plain data, valid when zeroed.
        let mut info: libc::siginfo_t = unsafe { std::mem::zeroed() };
        // P_PIDFD (3) is not in every libc crate version.
        const P_PIDFD: libc::idtype_t = 3;
        // SAFETY: waitid(2) writes only into `info`, which lives for the call.
        let r = unsafe {
            libc::waitid(
                P_PIDFD,
                self.fd.get_ref().as_raw_fd() as libc::id_t,
                &mut info,
                libc::WEXITED | libc::WNOHANG,
            )
        };
        if r != 0 {
            let e = io::Error::last_os_error();
            return match e.raw_os_error() {
                // Not our child (adopted): it ended (the pidfd is readable), how is unknown.
                Some(libc::ECHILD) => Ok(Some(Exit::Unknown)),
                _ => Err(e),
            };
        }
        // SAFETY: after a successful waitid, si_pid and si_status are valid fields of `info`.
        let (pid, status) = unsafe { (info.si_pid(), info.si_status()) };
        if pid == 0 {
            return Ok(None); // WNOHANG: not yet
        }
        Ok(Some(match info.si_code {
            libc::CLD_EXITED => Exit::Code(status),
            _ => Exit::Signal,
        }))
    }

    /// Sends `signal` to the process (`pidfd_send_signal(2)`: never to a reused pid).
    #[allow(unsafe_code)]
    pub fn signal(&self, signal: i32) -> io::Result<()> {
        // SAFETY: pidfd_send_signal(2) with a null siginfo reads no memory of ours.
        let r = unsafe {
            libc::syscall(
                libc::SYS_pidfd_send_signal,
                self.fd.get_ref().as_raw_fd(),
                signal,
                std::ptr::null::<libc::siginfo_t>(),
                0,
            )
        };
        if r == 0 {
            Ok(())
        } else {
            Err(io::Error::last_os_error())
        }
    }
}

#[cfg(test)]
mod orphan_tests {
    use super::is_orphan_zombie;

    #[test]
    fn only_zombies_of_deeper_namespaces_that_are_not_their_init() {
        let st = |state: &str, nspid: &str| format!("Name:\tx\nState:\t{state}\nNSpid:\t{nspid}\n");
        let cases = [
            (st("Z (zombie)", "3225\t21018\t9"), 2, true),
            (st("Z (zombie)", "3225\t9"), 1, true),
            (st("Z (zombie)", "3210\t21003\t1"), 2, false), // a container's init
            (st("S (sleeping)", "3225\t21018\t9"), 2, false), // alive
            (st("Z (zombie)", "3225\t21018"), 2, false),    // our own namespace
            ("State:\tZ (zombie)\n".to_string(), 1, false), // no NSpid: unknown
        ];
        for (status, depth, want) in cases {
            assert_eq!(
                is_orphan_zombie(&status, depth),
                want,
                "{status:?} at depth {depth}"
            );
        }
    }
}
