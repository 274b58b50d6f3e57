//! One shell in a pseudo-terminal per browser tab: `setsid --ctty PROGRAM…` with the PTY's
//! slave as its controlling terminal, the master read and written by threads, resized with
//! `stty` on the slave (the kernel then signals the shell), and ended — hang-up to its session,
//! then SIGKILL — when the tab goes.

use nix::pty::{openpty, Winsize};
use nix::sys::signal::{kill, killpg, Signal};
use nix::unistd::Pid;
use std::fs::File;
use std::io::{self, Read, Write};
use std::os::fd::AsRawFd;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::mpsc;

/// A running shell on a PTY.
pub struct Pty {
    child: Arc<Mutex<Child>>,
    pid: i32,
    writer: File,
    slave: PathBuf,
}

/// What the shell says: output bytes, then its exit code once.
#[derive(Debug)]
pub enum Out {
    /// Bytes from the terminal.
    Data(Vec<u8>),
    /// The shell ended with this code (-1: killed by a signal).
    Exit(i32),
}

impl Pty {
    /// Starts `argv` on a new PTY of `cols`×`rows`; its output comes on the returned channel.
    pub fn spawn(argv: &[String], cols: u16, rows: u16) -> io::Result<(Pty, mpsc::Receiver<Out>)> {
        let size = Winsize {
            ws_row: rows.max(1),
            ws_col: cols.max(1),
            ws_xpixel: 0,
            ws_ypixel: 0,
        };
        let p = openpty(Some(&size), None).map_err(io::Error::from)?;
        let slave = std::fs::read_link(format!("/proc/self/fd/{}", p.slave.as_raw_fd()))?;
        let mut cmd = Command::new("setsid");
        cmd.arg("--ctty")
            .args(argv)
            .stdin(Stdio::from(p.slave.try_clone()?))
            .stdout(Stdio::from(p.slave.try_clone()?))
            .stderr(Stdio::from(p.slave))
            .env("TERM", "xterm-256color");
        let child = cmd.spawn()?;
        let pid = child.id() as i32;
        let reader = File::from(p.master);
        let writer = reader.try_clone()?;
        let child = Arc::new(Mutex::new(child));
        let (tx, rx) = mpsc::channel(64);
        let waiter = Arc::clone(&child);
        std::thread::Builder::new()
            .name("pty-read".into())
            .spawn(move || {
                let mut reader = reader;
                let mut buf = vec![0u8; 16 * 1024];
                // EIO once the last process holding the slave is gone.
                while let Ok(n) = reader.read(&mut buf) {
                    if n == 0 || tx.blocking_send(Out::Data(buf[..n].to_vec())).is_err() {
                        break;
                    }
                }
                let code = wait_bounded(&waiter, Duration::from_secs(5));
                let _ = tx.blocking_send(Out::Exit(code));
            })?;
        Ok((
            Pty {
                child,
                pid,
                writer,
                slave,
            },
            rx,
        ))
    }

    /// Sends keystrokes.
    pub fn write(&mut self, data: &[u8]) -> io::Result<()> {
        self.writer.write_all(data)
    }

    /// The terminal's new size (`stty` on the slave: the kernel sends SIGWINCH).
    pub fn resize(&self, cols: u16, rows: u16) -> io::Result<()> {
        let out = Command::new("stty")
            .arg("-F")
            .arg(&self.slave)
            .args([
                "cols",
                &cols.max(1).to_string(),
                "rows",
                &rows.max(1).to_string(),
            ])
            .output()?;
        if out.status.success() {
            Ok(())
        } else {
            Err(io::Error::other(
                String::from_utf8_lossy(&out.stderr).trim().to_string(),
            ))
        }
    }

    /// The shell's pid (a session leader: its process group is the session's first one).
    pub fn pid(&self) -> i32 {
        self.pid
    }
}

/// The exit code of `child`, waiting at most `patience` (then -1).
fn wait_bounded(child: &Mutex<Child>, patience: Duration) -> i32 {
    let end = Instant::now() + patience;
    loop {
        if let Ok(Some(st)) = child.lock().unwrap_or_else(|e| e.into_inner()).try_wait() {
            return st.code().unwrap_or(-1);
        }
        if Instant::now() > end {
            return -1;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Every process of session `sid` (field 6 of `/proc/<pid>/stat`): the shell and whatever it
/// started, background jobs in other process groups included.
fn session_members(sid: i32) -> Vec<i32> {
    let Ok(rd) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    rd.flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<i32>().ok())
        .filter(|pid| {
            std::fs::read_to_string(format!("/proc/{pid}/stat"))
                .ok()
                .and_then(|s| {
                    // after "(comm)": state ppid pgrp session …
                    let rest = &s[s.rfind(')')? + 1..];
                    rest.split_whitespace().nth(3)?.parse::<i32>().ok()
                })
                == Some(sid)
        })
        .collect()
}

impl Drop for Pty {
    /// The tab is gone: hang up the shell's session, then kill every process left in it (jobs
    /// in the background too), and reap the shell.
    fn drop(&mut self) {
        // At once, not from a thread: `lab ui` may be exiting (Ctrl-C, `lab down`).
        let sid = self.pid;
        let _ = killpg(Pid::from_raw(sid), Signal::SIGHUP);
        for pid in session_members(sid) {
            let _ = kill(Pid::from_raw(pid), Signal::SIGKILL);
        }
        let child = Arc::clone(&self.child);
        std::thread::spawn(move || {
            let _ = child.lock().unwrap_or_else(|e| e.into_inner()).wait();
        });
    }
}
