//! `--tty` for a detached container: who holds the terminal's master.
//!
//! A container whose process has `terminal: true` gets a pseudo-terminal the runtime makes
//! inside it; `create --console-socket SOCK` sends the master end over that Unix socket
//! (SCM_RIGHTS) and exits. Whoever holds the master must read it for the container's life:
//! unread, the program blocks once the terminal's buffer is full; closed, the program gets a
//! hangup (SIGHUP, then EIO on its writes). Docker's containerd shim holds it.
//!
//! Here a small helper process holds it, `swarmd __console LOG` ([`run`]): in a session of its
//! own (`setsid`, so a signal to `swarmd`'s process group or terminal does not reach it), it
//! accepts the runtime's connection on the listening socket it got as stdin, takes the master,
//! says `ready` on stdout (a pipe the agent reads before it starts the container, so a helper
//! that failed is a task error, not a silent hang), then copies the terminal into the task's
//! `stdout.log` (the file a container without `--tty` writes its stdout to, so `service logs`
//! reads both alike), turning the terminal's `\r\n` back into `\n`, until the master reads EIO:
//! every process holding the terminal is gone, the container ended. Its errors go to the task's
//! `stderr.log`.
//!
//! Why not `swarmd` itself: containers outlive `swarmd` (a restarted agent adopts them), and a
//! master `swarmd` held would close with it and hang the terminal up. The helper is not part of
//! `swarmd`'s life: it keeps running across a restart, and the agent finds it again by the pid
//! file it wrote in the bundle (`console.pid`: pid and start time, so a reused pid is never
//! taken for it). The agent only waits for it (a container's last output is in the log before
//! the task is reported ended) and, when the task is removed, kills it if it outlived its
//! container.

use std::fs::File;
use std::io::{self, BufRead, Read, Write};
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::net::UnixListener;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{ChildStdout, Command, Stdio};
use std::time::Duration;

use super::wait::Pidfd;
use crate::executor::interactive::recv_fd;
use crate::executor::Error;

/// The `argv[1]` that makes `swarmd` the holder of a container's terminal.
pub const ARG: &str = "__console";

/// The console socket, in the bundle (removed once the runtime connected).
const SOCKET: &str = "console.sock";
/// The helper's pid file, in the bundle.
const PID_FILE: &str = "console.pid";
/// What the helper says once it holds the master.
const READY: &str = "ready";
/// How long the agent waits for `ready` after `create`.
const READY_TIMEOUT: Duration = Duration::from_secs(10);
/// How long the helper waits for the runtime's connection (then it gives up: `create` failed
/// and the agent that would have killed it is gone).
const ACCEPT_TIMEOUT: Duration = Duration::from_secs(60);
/// The terminal's size when nobody set one (a 0x0 terminal confuses full-screen programs).
const SIZE: (u16, u16) = (24, 80);

/// A helper started for a container not created yet.
#[derive(Debug)]
pub struct Starting {
    helper: Pidfd,
    ack: ChildStdout,
    socket: PathBuf,
    pid_file: PathBuf,
}

/// The helper holding a container's terminal.
#[derive(Debug)]
pub struct Console {
    helper: Pidfd,
}

impl Starting {
    /// Binds the console socket in `bundle` and starts `program __console LOG` on it, `LOG`
    /// being the task's stdout log; the helper's errors go to `stderr`.
    pub fn spawn(
        program: &Path,
        bundle: &Path,
        log: &Path,
        stderr: File,
    ) -> Result<Starting, Error> {
        let socket = bundle.join(SOCKET);
        let _ = std::fs::remove_file(&socket);
        let listener = UnixListener::bind(&socket).map_err(Error::Console)?;
        let mut c = Command::new(program);
        c.arg(ARG)
            .arg(log)
            .stdin(Stdio::from(OwnedFd::from(listener)))
            .stdout(Stdio::piped())
            .stderr(Stdio::from(stderr));
        new_session(&mut c);
        let mut child = c.spawn().map_err(|e| {
            let _ = std::fs::remove_file(&socket);
            Error::Console(io::Error::new(
                e.kind(),
                format!("starting {} {ARG}: {e}", program.display()),
            ))
        })?;
        let ack = child.stdout.take().expect("piped");
        let pid = child.id();
        // Our child: the pidfd reaps it (the `Child` is dropped without waiting).
        let helper = Pidfd::open(pid).map_err(Error::Console)?;
        let pid_file = bundle.join(PID_FILE);
        let written = start_time(pid)
            .and_then(|t| std::fs::write(&pid_file, format!("{pid} {t}\n")))
            .map_err(Error::Console);
        let starting = Starting {
            helper,
            ack,
            socket,
            pid_file,
        };
        if let Err(e) = written {
            let _ = starting.helper.signal(libc::SIGKILL);
            let _ = std::fs::remove_file(&starting.socket);
            return Err(e);
        }
        Ok(starting)
    }

    /// The socket to give the runtime (`--console-socket`).
    pub fn socket(&self) -> &Path {
        &self.socket
    }

    /// Once `create` succeeded: waits until the helper holds the master.
    pub async fn ready(mut self) -> Result<Console, Error> {
        let _ = std::fs::remove_file(&self.socket);
        let ack = self.ack;
        let said = tokio::task::spawn_blocking(move || {
            let mut line = String::new();
            io::BufReader::new(ack).read_line(&mut line).map(|_| line)
        });
        let said = match tokio::time::timeout(READY_TIMEOUT, said).await {
            Ok(Ok(Ok(line))) if line.trim() == READY => {
                return Ok(Console {
                    helper: self.helper,
                })
            }
            Ok(Ok(Ok(line))) if line.trim().is_empty() => "it ended".to_string(),
            Ok(Ok(Ok(line))) => line.trim().to_string(),
            Ok(Ok(Err(e))) => e.to_string(),
            Ok(Err(e)) => e.to_string(),
            Err(_) => format!("no answer within {READY_TIMEOUT:?}"),
        };
        kill(&mut self.helper).await;
        let _ = std::fs::remove_file(&self.pid_file);
        Err(Error::Console(io::Error::other(format!(
            "the process holding the terminal failed: {said}"
        ))))
    }

    /// `create` failed: the helper goes.
    pub async fn abort(mut self) {
        kill(&mut self.helper).await;
        let _ = std::fs::remove_file(&self.socket);
        let _ = std::fs::remove_file(&self.pid_file);
    }
}

impl Console {
    /// The helper of the container whose bundle is `bundle`, left by a previous agent, if it
    /// still runs.
    pub fn adopt(bundle: &Path) -> Option<Console> {
        let text = std::fs::read_to_string(bundle.join(PID_FILE)).ok()?;
        let mut words = text.split_whitespace();
        let pid: u32 = words.next()?.parse().ok()?;
        let started: u64 = words.next()?.parse().ok()?;
        let helper = Pidfd::open(pid).ok()?;
        // Opened first, checked second: if the start time matches, the pidfd is the helper's.
        (start_time(pid).ok()? == started).then_some(Console { helper })
    }

    /// The helper's pid.
    pub fn pid(&self) -> u32 {
        self.helper.pid()
    }

    /// Waits at most `patience` for the helper to copy the terminal's last output and end
    /// (the container ended); true if it did.
    pub async fn drain(&mut self, patience: Duration) -> bool {
        tokio::time::timeout(patience, self.helper.wait())
            .await
            .is_ok()
    }

    /// The task is removed: waits at most `patience` for the helper to end, then kills it.
    pub async fn stop(mut self, patience: Duration) {
        if !self.drain(patience).await {
            tracing::warn!(
                pid = self.helper.pid(),
                "the process holding a container's terminal outlived it: killed"
            );
            kill(&mut self.helper).await;
        }
    }
}

async fn kill(helper: &mut Pidfd) {
    let _ = helper.signal(libc::SIGKILL);
    let _ = tokio::time::timeout(Duration::from_secs(5), helper.wait()).await;
}

/// A process's start time (`/proc/PID/stat` field 22, clock ticks since boot).
fn start_time(pid: u32) -> io::Result<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))?;
    // The command name (field 2) may hold spaces and parentheses: count after the last ')'.
    stat.rsplit_once(')')
        .and_then(|(_, rest)| rest.split_whitespace().nth(19))
        .and_then(|t| t.parse().ok())
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidData, "unexpected /proc stat"))
}

/// Makes the child lead a session of its own.
#[allow(unsafe_code)]
fn new_session(c: &mut Command) {
    // SAFETY: the closure runs in the child between fork and exec and calls only setsid(2),
    // which is async-signal-safe.
    unsafe {
        c.pre_exec(|| {
            if libc::setsid() < 0 {
                return Err(io::Error::last_os_error());
            }
            Ok(())
        });
    }
}

/// `swarmd __console LOG`: the helper. Its stdin is the listening console socket, its stdout
/// the agent's pipe (`ready` or why not), its stderr the task's `stderr.log`. Returns the exit
/// status.
pub fn run(args: &[String]) -> i32 {
    let [log] = args else {
        eprintln!("usage: swarmd {ARG} LOG (stdin: a listening console socket)");
        return 2;
    };
    serve(Path::new(log), io::stdout())
}

/// The helper's work, its answer going to `ack` (stdout, in `swarmd`): takes the master from
/// the runtime's connection on stdin, says [`READY`], copies the terminal into `log`. Returns
/// the exit status.
pub fn serve(log: &Path, mut ack: impl Write) -> i32 {
    let (master, log) = match take_master(log) {
        Ok(m) => m,
        Err(e) => {
            let _ = writeln!(ack, "{e}");
            return 1;
        }
    };
    if writeln!(ack, "{READY}").and_then(|()| ack.flush()).is_err() {
        // The agent is gone: still copy, the container runs.
        eprintln!("swarmd {ARG}: the agent did not take the answer");
    }
    match copy_terminal(File::from(master), log) {
        Ok(()) => 0,
        Err(e) => {
            eprintln!("swarmd {ARG}: copying the container's terminal: {e}");
            1
        }
    }
}

/// Accepts the runtime's connection on stdin, receives the master, opens the log.
fn take_master(log: &Path) -> io::Result<(OwnedFd, File)> {
    let listener = UnixListener::from(io::stdin().as_fd().try_clone_to_owned()?);
    if !readable(&listener, ACCEPT_TIMEOUT)? {
        return Err(io::Error::other(format!(
            "the runtime did not connect within {ACCEPT_TIMEOUT:?}"
        )));
    }
    let (conn, _) = listener.accept()?;
    drop(listener);
    conn.set_read_timeout(Some(READY_TIMEOUT))?;
    let master = recv_fd(&conn)?;
    set_size_if_none(&master);
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(log)
        .map_err(|e| io::Error::new(e.kind(), format!("opening {}: {e}", log.display())))?;
    Ok((master, log))
}

/// Waits at most `timeout` for `fd` to be readable (a connection to accept).
#[allow(unsafe_code)]
fn readable(fd: &impl std::os::fd::AsRawFd, timeout: Duration) -> io::Result<bool> {
    let mut p = libc::pollfd {
        fd: fd.as_raw_fd(),
        events: libc::POLLIN,
        revents: 0,
    };
    let ms = libc::c_int::try_from(timeout.as_millis()).unwrap_or(libc::c_int::MAX);
    loop {
        // SAFETY: poll(2) reads and writes one pollfd that lives for the call.
        let r = unsafe { libc::poll(&mut p, 1, ms) };
        if r >= 0 {
            return Ok(r > 0);
        }
        let e = io::Error::last_os_error();
        if e.kind() != io::ErrorKind::Interrupted {
            return Err(e);
        }
    }
}

/// Gives the terminal [`SIZE`] unless it has a size.
#[allow(unsafe_code)]
fn set_size_if_none(master: &OwnedFd) {
    use std::os::fd::AsRawFd;
    let mut ws = libc::winsize {
        ws_row: 0,
        ws_col: 0,
        ws_xpixel: 0,
        ws_ypixel: 0,
    };
    // SAFETY: TIOCGWINSZ writes one `struct winsize` to a pointer to a live local.
    let r = unsafe { libc::ioctl(master.as_raw_fd(), libc::TIOCGWINSZ, &mut ws as *mut _) };
    if r == 0 && ws.ws_row == 0 && ws.ws_col == 0 {
        ws.ws_row = SIZE.0;
        ws.ws_col = SIZE.1;
        // SAFETY: TIOCSWINSZ reads one `struct winsize` from a pointer to a live local.
        unsafe { libc::ioctl(master.as_raw_fd(), libc::TIOCSWINSZ, &ws as *const _) };
    }
}

/// Copies the terminal's master into `log` until no process holds the terminal (EIO).
fn copy_terminal(mut master: File, mut log: File) -> io::Result<()> {
    let mut buf = vec![0u8; 16 * 1024];
    let mut out = Vec::with_capacity(buf.len());
    let mut cr = false;
    loop {
        let n = match master.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            // Every slave closed: pty(7)'s hangup, read on the master fails with EIO.
            Err(e) if e.raw_os_error() == Some(libc::EIO) => break,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        out.clear();
        crlf_to_lf(&buf[..n], &mut cr, &mut out);
        log.write_all(&out)?;
    }
    if cr {
        log.write_all(b"\r")?;
    }
    Ok(())
}

/// Appends `chunk` to `out` with each `\r\n` made `\n` (the terminal's `onlcr` undone); `cr`
/// carries a `\r` that ended the previous chunk.
fn crlf_to_lf(chunk: &[u8], cr: &mut bool, out: &mut Vec<u8>) {
    for &b in chunk {
        if std::mem::take(cr) && b != b'\n' {
            out.push(b'\r');
        }
        if b == b'\r' {
            *cr = true;
        } else {
            out.push(b);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_terminals_line_ends_become_newlines() {
        // chunks as read → what the log gets
        let cases: [(&[&str], &str); 6] = [
            (&["tty\r\n"], "tty\n"),
            (&["a\r", "\nb\r\n"], "a\nb\n"),
            (&["50%\r75%\r\n"], "50%\r75%\n"),
            (&["x\r"], "x"), // held until the next chunk (or the end)
            (&["x\r", "y"], "x\ry"),
            (&["\r\r\n"], "\r\n"),
        ];
        for (chunks, want) in cases {
            let (mut cr, mut out) = (false, Vec::new());
            for c in chunks {
                crlf_to_lf(c.as_bytes(), &mut cr, &mut out);
            }
            assert_eq!(out, want.as_bytes(), "{chunks:?}");
        }
    }

    #[test]
    fn start_time_reads_this_process() {
        let t = start_time(std::process::id()).unwrap();
        assert_eq!(start_time(std::process::id()).unwrap(), t);
        assert!(start_time(u32::MAX).is_err());
    }
}
