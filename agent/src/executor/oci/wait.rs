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
//! outside it died (a `runc exec` killed before its command). Once the container stops, such a
//! zombie keeps the container's init in the kernel's `zap_pid_ns_processes`, waiting for every
//! process of its namespace to be reaped: the container would never end. [`reap_orphans`]
//! reaps exactly those: zombie children of this process in the PID namespace of one of the
//! executor's containers (`<tasks dir>/*/bundle/init.pid`), other than its init. Nothing the
//! agent waits for itself is ever there (the process executor's `exec` enters a process task's
//! namespaces, never a container's; `runc exec` and `nsenter` are the parents of what they run).

use std::collections::HashSet;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::path::{Path, PathBuf};

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

/// Reaps this process's zombie children that are orphans of a container whose init's pid is
/// in `inits` (see the module's doc); returns their pids.
pub fn reap_orphans(inits: &[u32]) -> Vec<u32> {
    let mut namespaces: HashSet<PathBuf> = inits.iter().filter_map(|p| pid_ns(*p)).collect();
    // A stale pid file whose pid now names a process of ours must not bring our own namespace
    // in: our own children would be reaped behind their waiters' backs.
    if let Some(own) = pid_ns(std::process::id()) {
        namespaces.remove(&own);
    }
    if namespaces.is_empty() {
        return Vec::new();
    }
    let mut reaped = Vec::new();
    for pid in children() {
        if inits.contains(&pid) || !zombie(pid) {
            continue;
        }
        if pid_ns(pid).is_some_and(|ns| namespaces.contains(&ns)) && reap_pid(pid) {
            reaped.push(pid);
        }
    }
    reaped
}

/// The pids of the containers' inits under `tasks_dir` (`*/bundle/init.pid`).
fn container_inits(tasks_dir: &Path) -> Vec<u32> {
    let Ok(entries) = std::fs::read_dir(tasks_dir) else {
        return Vec::new();
    };
    entries
        .flatten()
        .filter_map(|e| std::fs::read_to_string(e.path().join("bundle/init.pid")).ok())
        .filter_map(|p| p.trim().parse().ok())
        .collect()
}

/// The PID namespace of `pid` (`/proc/PID/ns/pid`'s target; a zombie keeps it until reaped).
fn pid_ns(pid: u32) -> Option<PathBuf> {
    std::fs::read_link(format!("/proc/{pid}/ns/pid")).ok()
}

fn zombie(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|s| state_of_stat(&s))
        == Some('Z')
}

/// The state letter of a `/proc/PID/stat` line (after the command name's closing paren, which
/// may itself hold spaces and parens).
fn state_of_stat(stat: &str) -> Option<char> {
    stat.rsplit_once(')')?.1.trim_start().chars().next()
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

/// Reaps the orphans of the containers under `tasks_dir` ([`reap_orphans`]) at every `SIGCHLD`
/// and every few seconds (signals coalesce), for as long as the runtime runs; nothing when
/// called outside a tokio runtime.
pub fn spawn_orphan_reaper(tasks_dir: PathBuf) {
    let Ok(handle) = tokio::runtime::Handle::try_current() else {
        return;
    };
    handle.spawn(async move {
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
            let dir = tasks_dir.clone();
            let reaped = tokio::task::spawn_blocking(move || reap_orphans(&container_inits(&dir)))
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
    use super::{reap_orphans, state_of_stat};

    #[test]
    fn the_state_follows_the_last_paren_of_the_name() {
        assert_eq!(state_of_stat("30762 (sleep) Z 30761 1 2"), Some('Z'));
        assert_eq!(state_of_stat("7 (a) b) (c) S 1 1"), Some('S'));
        assert_eq!(state_of_stat("garbage"), None);
    }

    #[test]
    fn no_containers_no_reaping() {
        assert!(reap_orphans(&[]).is_empty());
        // A pid that cannot exist: no namespace, nothing reaped.
        assert!(reap_orphans(&[u32::MAX]).is_empty());
    }
}
