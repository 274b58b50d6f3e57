//! `swarmctl task exec -i/-t`: a command started by an executor with its stdin streamed, on a
//! pseudo-terminal (`-t`) or pipes, driven until it ends or its caller goes away.
//!
//! The executor builds the command (namespace entry for a process task, `runc exec` for a
//! container) and hands it to [`start`], which gives it its stdio and spawns it through the
//! executor's `spawn` (a process task spawns from a thread that joined the task's PID
//! namespace). With a terminal, the program leads a new session whose controlling terminal is
//! the pty's slave: Ctrl-C arrives as a byte and the slave's line discipline turns it into
//! SIGINT for the foreground job, and a new window size set on the master (`TIOCSWINSZ`) makes
//! the kernel send SIGWINCH to that job (tty_ioctl(4)). `runc exec` with `terminal: true` in
//! the foreground is such a program: it copies between our pty and the container's and
//! forwards SIGWINCH as a resize, so both executors use the same driver. crun 1.8 in the
//! foreground copies but passes no resize on (it blocks SIGWINCH): it gets `--console-socket`
//! instead and hands us the container's terminal ([`start_console`]), which we then drive
//! directly.

use std::fs::File;
use std::io::Read;
use std::os::fd::{AsRawFd, OwnedFd};
use std::process::Stdio;
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::process::{Child, Command};
use tokio::sync::mpsc;

use super::Error;

/// Messages in flight each way between a session and its program.
const CHANNEL: usize = 16;
/// How long output still drains after the program ended (a background job may hold the
/// terminal open forever).
const DRAIN: Duration = Duration::from_secs(1);

/// A terminal's size.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WinSize {
    /// Rows.
    pub rows: u16,
    /// Columns.
    pub cols: u16,
}

/// What an interactive exec asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExecSpec {
    /// The program and its arguments.
    pub cmd: Vec<String>,
    /// Run it on a pseudo-terminal (stdout and stderr are then one stream).
    pub tty: bool,
    /// Stream stdin (otherwise it is empty).
    pub stdin: bool,
    /// The terminal's first size.
    pub size: Option<WinSize>,
}

/// Input for the program.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ExecIn {
    /// Bytes for its stdin.
    Data(Vec<u8>),
    /// The end of its stdin.
    Close,
    /// The terminal's new size.
    Resize(WinSize),
}

/// What the program says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ExecOut {
    /// Bytes of its stdout (or of the terminal).
    Stdout(Vec<u8>),
    /// Bytes of its stderr.
    Stderr(Vec<u8>),
    /// It ended with this code (128 + N: killed by signal N). The last message.
    Exit(i32),
}

/// A running interactive exec. Dropping `input` kills the program.
#[derive(Debug)]
pub struct ExecSession {
    /// Its input.
    pub input: mpsc::Sender<ExecIn>,
    /// Its output, ending with [`ExecOut::Exit`].
    pub output: mpsc::Receiver<ExecOut>,
}

/// What runs once the session ends, told whether the caller went away first (then it must kill
/// what the child's process group does not hold: `runc exec`'s program is not our child, it is
/// killed by its pid file). It also removes what the executor made for the command.
pub type OnEnd = Box<dyn FnOnce(bool) + Send>;

/// Gives `c` its stdio as `spec` asks, spawns it with `spawn` and drives it.
pub fn start(
    mut c: Command,
    spec: &ExecSpec,
    spawn: impl FnOnce(Command) -> Result<Child, Error>,
    on_end: Option<OnEnd>,
) -> Result<ExecSession, Error> {
    let program = spec.cmd.first().cloned().unwrap_or_default();
    let io_err = |source| Error::ExecSpawn {
        program: program.clone(),
        source,
    };
    c.kill_on_drop(true);
    if spec.tty {
        let size = spec.size.unwrap_or(WinSize { rows: 24, cols: 80 });
        let pty = nix::pty::openpty(Some(&winsize(size)), None)
            .map_err(|e| io_err(std::io::Error::from(e)))?;
        let slave = |fd: &OwnedFd| fd.try_clone().map(Stdio::from);
        c.stdin(slave(&pty.slave).map_err(io_err)?)
            .stdout(slave(&pty.slave).map_err(io_err)?)
            .stderr(Stdio::from(pty.slave));
        new_session_on_stdin(&mut c);
        let child = spawn(c)?;
        // The command (and its copies of the slave) is gone: the master reads EIO once the
        // program and its children closed the slave.
        on_master(child, pty.master, spec, on_end)
    } else {
        c.stdin(if spec.stdin {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0);
        let mut child = spawn(c)?;
        let writer = child
            .stdin
            .take()
            .map(|w| Box::new(w) as Box<dyn AsyncWrite + Send + Unpin>);
        let (out_tx, output) = mpsc::channel(CHANNEL);
        let (input, in_rx) = mpsc::channel(CHANNEL);
        let stdout = child
            .stdout
            .take()
            .map(|r| copy(r, out_tx.clone(), ExecOut::Stdout));
        let stderr = child
            .stderr
            .take()
            .map(|r| copy(r, out_tx.clone(), ExecOut::Stderr));
        let reading = async move {
            if let Some(s) = stdout {
                let _ = s.await;
            }
            if let Some(s) = stderr {
                let _ = s.await;
            }
        };
        let stdin = spec.stdin;
        tokio::spawn(drive(
            child,
            in_rx,
            out_tx,
            writer,
            None,
            stdin,
            on_end,
            Box::pin(reading),
        ));
        Ok(ExecSession { input, output })
    }
}

/// Like [`start`] with a terminal, when the program's terminal is not ours to make: `c` runs with
/// null stdio and `master` gives the terminal's master once `c` made it (`crun exec
/// --console-socket`, which, unlike runc in the foreground, passes no resize on).
pub async fn start_console(
    mut c: Command,
    spec: &ExecSpec,
    spawn: impl FnOnce(Command) -> Result<Child, Error>,
    master: impl std::future::Future<Output = std::io::Result<OwnedFd>>,
    on_end: Option<OnEnd>,
) -> Result<ExecSession, Error> {
    let program = spec.cmd.first().cloned().unwrap_or_default();
    let io_err = |source| Error::ExecSpawn {
        program: program.clone(),
        source,
    };
    c.kill_on_drop(true)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .process_group(0);
    let mut child = spawn(c)?;
    let master = tokio::select! {
        m = master => m.map_err(io_err)?,
        _ = child.wait() => return Err(io_err(std::io::Error::other("the runtime ended before it made the terminal"))),
    };
    set_size(&master, spec.size.unwrap_or(WinSize { rows: 24, cols: 80 }));
    on_master(child, master, spec, on_end)
}

/// The session of `child` on the terminal whose master is `master`: a thread reads the master
/// into the output, the input is written to it, and [`drive`] runs it to its end.
fn on_master(
    child: Child,
    master: OwnedFd,
    spec: &ExecSpec,
    on_end: Option<OnEnd>,
) -> Result<ExecSession, Error> {
    let io_err = |source| Error::ExecSpawn {
        program: spec.cmd.first().cloned().unwrap_or_default(),
        source,
    };
    let reader = File::from(master.try_clone().map_err(io_err)?);
    let writer = tokio::fs::File::from_std(File::from(master.try_clone().map_err(io_err)?));
    let (out_tx, output) = mpsc::channel(CHANNEL);
    let (input, in_rx) = mpsc::channel(CHANNEL);
    let read_tx = out_tx.clone();
    let reading = std::thread::Builder::new()
        .name("exec-pty-read".into())
        .spawn(move || read_pty(reader, read_tx))
        .map_err(io_err)?;
    let reading = async move {
        let _ = tokio::task::spawn_blocking(move || reading.join()).await;
    };
    tokio::spawn(drive(
        child,
        in_rx,
        out_tx,
        Some(Box::new(writer)),
        Some(master),
        spec.stdin,
        on_end,
        Box::pin(reading),
    ));
    Ok(ExecSession { input, output })
}

/// Receives one descriptor sent with SCM_RIGHTS on `stream` (a console socket's connection).
pub fn recv_fd(stream: &std::os::unix::net::UnixStream) -> std::io::Result<OwnedFd> {
    use nix::sys::socket::{recvmsg, ControlMessageOwned, MsgFlags};
    use std::os::fd::FromRawFd;
    let mut buf = [0u8; 4096];
    let mut iov = [std::io::IoSliceMut::new(&mut buf)];
    let mut space = nix::cmsg_space!([std::os::fd::RawFd; 1]);
    let msg = recvmsg::<()>(
        stream.as_raw_fd(),
        &mut iov,
        Some(&mut space),
        MsgFlags::MSG_CMSG_CLOEXEC,
    )
    .map_err(std::io::Error::from)?;
    for cmsg in msg.cmsgs().map_err(std::io::Error::from)? {
        if let ControlMessageOwned::ScmRights(fds) = cmsg {
            if let Some(&fd) = fds.first() {
                #[allow(unsafe_code)]
                // SAFETY: SCM_RIGHTS installed this descriptor in this process for us alone;
                // nothing else owns it (the others, if any, are closed below).
                let owned = unsafe { OwnedFd::from_raw_fd(fd) };
                for &extra in &fds[1..] {
                    let _ = nix::unistd::close(extra);
                }
                return Ok(owned);
            }
        }
    }
    Err(std::io::Error::other("no descriptor on the console socket"))
}

fn winsize(s: WinSize) -> nix::pty::Winsize {
    nix::pty::Winsize {
        ws_row: s.rows.max(1),
        ws_col: s.cols.max(1),
        ws_xpixel: 0,
        ws_ypixel: 0,
    }
}

/// Reads the pty's master until EIO (no process holds the slave any more).
fn read_pty(mut reader: File, tx: mpsc::Sender<ExecOut>) {
    let mut buf = vec![0u8; 16 * 1024];
    while let Ok(n) = reader.read(&mut buf) {
        if n == 0
            || tx
                .blocking_send(ExecOut::Stdout(buf[..n].to_vec()))
                .is_err()
        {
            break;
        }
    }
}

/// Copies a pipe into `tx` as `wrap` makes the messages, in a task of its own.
fn copy(
    mut r: impl AsyncRead + Unpin + Send + 'static,
    tx: mpsc::Sender<ExecOut>,
    wrap: fn(Vec<u8>) -> ExecOut,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut buf = vec![0u8; 16 * 1024];
        while let Ok(n) = r.read(&mut buf).await {
            if n == 0 || tx.send(wrap(buf[..n].to_vec())).await.is_err() {
                break;
            }
        }
    })
}

/// Feeds input to the program until it ends, then reports its exit code after its output; kills
/// it when the input's sender goes away first.
#[allow(clippy::too_many_arguments)]
async fn drive(
    mut child: Child,
    mut input: mpsc::Receiver<ExecIn>,
    out: mpsc::Sender<ExecOut>,
    mut writer: Option<Box<dyn AsyncWrite + Send + Unpin>>,
    master: Option<OwnedFd>,
    stdin: bool,
    on_end: Option<OnEnd>,
    reading: std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send>>,
) {
    let mut on_end = on_end;
    let status = loop {
        tokio::select! {
            status = child.wait() => break status,
            msg = input.recv() => match msg {
                None => {
                    // The caller left: the program goes too (its process group: the shell's
                    // children with it).
                    if let Some(f) = on_end.take() {
                        f(true);
                        // `runc exec`'s program, killed by its pid file: the runtime reaps it
                        // and ends. Killed first, the runtime would leave the program to us (a
                        // subreaper) as a zombie nobody reaps, and the container could never
                        // stop: the init of a PID namespace, exiting, waits until every other
                        // process of it is reaped (`zap_pid_ns_processes`, kernel/pid_namespace.c).
                        let _ = tokio::time::timeout(DRAIN, child.wait()).await;
                    }
                    if let Some(pid) = child.id() {
                        kill_group(pid);
                    }
                    let _ = child.kill().await;
                    return;
                }
                Some(ExecIn::Data(d)) if stdin => {
                    if let Some(w) = writer.as_mut() {
                        if w.write_all(&d).await.and(w.flush().await).is_err() {
                            writer = None;
                        }
                    }
                }
                Some(ExecIn::Data(_)) => {}
                Some(ExecIn::Close) => match (&master, writer.as_mut()) {
                    // A terminal has no end of file: its EOF character makes the reader's
                    // `read` return 0 (termios(3), VEOF in canonical mode).
                    (Some(_), Some(w)) => {
                        let _ = w.write_all(&[0x04]).await;
                        let _ = w.flush().await;
                    }
                    _ => writer = None,
                },
                Some(ExecIn::Resize(size)) => {
                    if let Some(m) = &master {
                        set_size(m, size);
                    }
                }
            },
        }
    };
    let code = match status {
        Ok(s) => {
            use std::os::unix::process::ExitStatusExt;
            s.code()
                .or_else(|| s.signal().map(|n| 128 + n))
                .unwrap_or(128 + 9)
        }
        Err(_) => 128 + 9,
    };
    // Output written just before the end is still in the pipe or the pty.
    drop(writer);
    let _ = tokio::time::timeout(DRAIN, reading).await;
    drop(master);
    if let Some(f) = on_end.take() {
        f(false);
    }
    let _ = out.send(ExecOut::Exit(code)).await;
}

fn kill_group(pid: u32) {
    if let Ok(pid) = i32::try_from(pid) {
        let _ = nix::sys::signal::killpg(
            nix::unistd::Pid::from_raw(pid),
            nix::sys::signal::Signal::SIGKILL,
        );
    }
}

/// Sets the terminal's size on the pty's master; the kernel signals the foreground job.
#[allow(unsafe_code)]
fn set_size(master: &OwnedFd, size: WinSize) {
    let ws = winsize(size);
    // SAFETY: TIOCSWINSZ reads one `struct winsize` from the pointer, which points to a live
    // value for the duration of the call; the descriptor is open (borrowed from `master`).
    let r = unsafe { libc::ioctl(master.as_raw_fd(), libc::TIOCSWINSZ, &ws as *const _) };
    if r != 0 {
        tracing::debug!(error = %std::io::Error::last_os_error(), "could not resize the exec's terminal");
    }
}

/// Makes the child lead a new session whose controlling terminal is its stdin (the pty's
/// slave), as `setsid --ctty` does.
#[allow(unsafe_code)]
fn new_session_on_stdin(c: &mut Command) {
    // SAFETY: the closure runs in the child between fork and exec and calls only setsid(2) and
    // ioctl(2), both async-signal-safe, on fd 0, which the stdio setup made the slave.
    unsafe {
        c.pre_exec(|| {
            if libc::setsid() < 0 {
                return Err(std::io::Error::last_os_error());
            }
            if libc::ioctl(0, libc::TIOCSCTTY, 0) < 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
}

#[cfg(test)]
mod tests;
