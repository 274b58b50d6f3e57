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
