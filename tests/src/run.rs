//! Running a command to completion with a deadline.

use std::fmt;
use std::io::Read;
use std::os::unix::process::ExitStatusExt;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// What a finished command left behind.
#[derive(Debug, Clone)]
pub struct Output {
    /// The command line, for messages.
    pub cmd: String,
    /// Exit code; 128 + signal number if it was killed by a signal.
    pub code: i32,
    /// Standard output.
    pub stdout: String,
    /// Standard error.
    pub stderr: String,
    /// How long it ran.
    pub elapsed: Duration,
}

impl Output {
    /// Whether it exited 0.
    pub fn success(&self) -> bool {
        self.code == 0
    }
}

impl fmt::Display for Output {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "`{}` exited {} after {:?}\n--- stdout ---\n{}\n--- stderr ---\n{}",
            self.cmd,
            self.code,
            self.elapsed,
            self.stdout.trim_end(),
            self.stderr.trim_end()
        )
    }
}

/// Runs `cmd` (stdin closed, output captured) and waits for it. If it is still running after
/// `timeout` it is killed (by its pid) and the test fails: every command a test runs is
/// expected to finish.
pub fn run(cmd: &mut Command, timeout: Duration) -> Output {
    let line = describe(cmd);
    let started = Instant::now();
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start `{line}`: {e}"));
    let reader = |mut r: Box<dyn Read + Send>| {
        std::thread::spawn(move || {
            let mut buf = Vec::new();
            let _ = r.read_to_end(&mut buf);
            String::from_utf8_lossy(&buf).into_owned()
        })
    };
    let out = reader(Box::new(child.stdout.take().expect("piped stdout")));
    let err = reader(Box::new(child.stderr.take().expect("piped stderr")));
    let status = loop {
        match child.try_wait() {
            Ok(Some(s)) => break s,
            Ok(None) if started.elapsed() > timeout => {
                let _ = child.kill();
                let _ = child.wait();
                let (stdout, stderr) = (
                    out.join().unwrap_or_default(),
                    err.join().unwrap_or_default(),
                );
                panic!("`{line}` did not finish within {timeout:?}; killed it\n--- stdout ---\n{stdout}\n--- stderr ---\n{stderr}");
            }
            Ok(None) => std::thread::sleep(Duration::from_millis(5)),
            Err(e) => panic!("waiting for `{line}`: {e}"),
        }
    };
    let code = status
        .code()
        .unwrap_or_else(|| 128 + status.signal().unwrap_or(0));
    Output {
        cmd: line,
        code,
        stdout: out.join().unwrap_or_default(),
        stderr: err.join().unwrap_or_default(),
        elapsed: started.elapsed(),
    }
}

/// `prog arg arg …` with the program's file name only, quoting arguments with spaces.
pub(crate) fn describe(cmd: &Command) -> String {
    let prog = std::path::Path::new(cmd.get_program());
    let mut s = prog
        .file_name()
        .unwrap_or(prog.as_os_str())
        .to_string_lossy()
        .into_owned();
    for a in cmd.get_args() {
        let a = a.to_string_lossy();
        if a.is_empty() || a.contains(char::is_whitespace) || a.contains('\'') {
            s.push_str(&format!(" '{}'", a.replace('\'', "'\\''")));
        } else {
            s.push(' ');
            s.push_str(&a);
        }
    }
    s
}

/// A guard that kills process `pid` (one the test started, by its pid) if the test panics
/// before the process exits; nothing otherwise.
pub fn kill_on_fail(pid: u32) -> impl Drop {
    struct Guard(u32);
    impl Drop for Guard {
        fn drop(&mut self) {
            if std::thread::panicking() {
                let _ = std::process::Command::new("kill")
                    .args(["-9", &self.0.to_string()])
                    .status();
            }
        }
    }
    Guard(pid)
}
