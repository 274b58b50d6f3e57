//! The real `docker` CLI (Debian's `docker.io`, 20.10, API 1.41) pointed at a node's Engine API
//! socket (`swarmd --docker-host`), as the Docker CLI tests run it: a private, empty client
//! configuration, no context, the output as the CLI prints it.

use crate::{run, Output};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

/// How long one CLI command may take (a `service create` waits for convergence).
pub const CLI_TIMEOUT: Duration = Duration::from_secs(120);

/// The docker CLI to test with: `$SHOAL_DOCKER_CLI`, else Debian's `/usr/bin/docker`. `None`
/// (after saying why) when there is none, outside CI; under CI its absence fails the test.
pub fn docker_cli() -> Option<PathBuf> {
    let p = std::env::var_os("SHOAL_DOCKER_CLI")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/usr/bin/docker"));
    if p.is_file() {
        return Some(p);
    }
    let msg = format!(
        "no docker CLI at {}: install Debian's docker.io (deploy/deps.sh) or set SHOAL_DOCKER_CLI",
        p.display()
    );
    assert!(std::env::var_os("CI").is_none(), "{msg}");
    eprintln!("skipped: {msg}");
    None
}

/// Runs the CLI against one socket at a time, with a private, empty client configuration.
pub struct Docker {
    /// The CLI binary.
    pub cli: PathBuf,
    /// Its `DOCKER_CONFIG`.
    pub config: tempfile::TempDir,
}

impl Docker {
    /// The CLI of [`docker_cli`], or `None` when the test is to be skipped.
    pub fn new() -> Option<Docker> {
        Some(Docker {
            cli: docker_cli()?,
            config: tempfile::tempdir().expect("a temporary DOCKER_CONFIG"),
        })
    }

    /// `docker ARGS` against `sock`, not run yet.
    pub fn command(&self, sock: &Path, args: &[&str]) -> Command {
        let mut cmd = Command::new(&self.cli);
        cmd.args(args)
            .env("DOCKER_HOST", format!("unix://{}", sock.display()))
            .env("DOCKER_CONFIG", self.config.path())
            .env_remove("DOCKER_API_VERSION")
            .env_remove("DOCKER_CONTEXT")
            .env("NO_COLOR", "1");
        cmd
    }

    /// `docker ARGS` against `sock`.
    pub fn run(&self, sock: &Path, args: &[&str]) -> Output {
        run(&mut self.command(sock, args), CLI_TIMEOUT)
    }

    /// `docker ARGS` against `sock` with `input` on its standard input.
    pub fn run_with_input(&self, sock: &Path, args: &[&str], input: &[u8]) -> Output {
        use std::io::Write;
        let started = std::time::Instant::now();
        let mut child = self
            .command(sock, args)
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .expect("spawn the docker CLI");
        let mut stdin = child.stdin.take().expect("stdin");
        stdin.write_all(input).expect("write the CLI's stdin");
        drop(stdin);
        let pid = child.id();
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let _ = tx.send(child.wait_with_output());
        });
        let out = match rx.recv_timeout(CLI_TIMEOUT) {
            Ok(r) => r.expect("the docker CLI's output"),
            Err(_) => {
                // Ours, by pid: the CLI hung.
                let _ = Command::new("kill").args(["-9", &pid.to_string()]).status();
                panic!("docker {args:?} did not finish within {CLI_TIMEOUT:?}");
            }
        };
        Output {
            cmd: format!("docker {}", args.join(" ")),
            code: out.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
            elapsed: started.elapsed(),
        }
    }

    /// [`Docker::run`], which must succeed; its stdout.
    pub fn ok(&self, sock: &Path, args: &[&str]) -> String {
        let out = self.run(sock, args);
        assert!(out.success(), "{out}");
        out.stdout
    }

    /// [`Docker::run`], which must fail with `Error response from daemon: {message}`.
    pub fn refused(&self, sock: &Path, args: &[&str], message: &str) {
        let out = self.run(sock, args);
        assert!(!out.success(), "{out}");
        assert_eq!(
            out.stderr.trim_end(),
            format!("Error response from daemon: {message}"),
            "{out}"
        );
    }
}

/// What Go's `text/tabwriter` makes of `rows` with the CLI's settings (minimum width 10,
/// padding 3, the last column unpadded).
pub fn tabwriter(rows: &[Vec<String>]) -> String {
    let cols = rows[0].len();
    let widths: Vec<usize> = (0..cols - 1)
        .map(|c| {
            rows.iter()
                .map(|r| r[c].chars().count() + 3)
                .max()
                .unwrap_or(0)
                .max(10)
        })
        .collect();
    let mut out = String::new();
    for r in rows {
        for (c, cell) in r.iter().enumerate() {
            if c + 1 < cols {
                out.push_str(&format!("{cell:<w$}", w = widths[c]));
            } else {
                out.push_str(cell);
            }
        }
        out.push('\n');
    }
    out
}

/// A table row.
pub fn row(cells: &[&str]) -> Vec<String> {
    cells.iter().map(|s| s.to_string()).collect()
}
