//! Commands run inside a container for `task exec`: `runc exec` (or `crun exec`) with the
//! container's own process settings, bounded in time ([`exec`]) or interactive on a pty or
//! pipes ([`exec_interactive`]). When `swarmd` itself runs in a chroot, `runc exec` would land
//! at the mount namespace's top (the host's root), so the container init's namespaces and root
//! are entered with `nsenter` instead.

use std::io;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use super::wait::Pidfd;
use crate::executor::controller::ExecOutput;
use crate::executor::exec::{kill_group, MAX_OUTPUT};
use crate::executor::{Error, ExecSession, ExecSpec};

/// Writes the process `runc exec` runs for `cmd`: the container's own (env, cwd, user,
/// capabilities, from its `config.json`) with `cmd` as its arguments. Returns the process file
/// and the pid file the runtime is to write.
fn exec_process(
    bundle: &Path,
    cmd: Vec<String>,
    tty: bool,
) -> Result<(oci_spec::runtime::Process, PathBuf, PathBuf), Error> {
    if cmd.is_empty() {
        return Err(Error::NoCommand);
    }
    let spec = oci_spec::runtime::Spec::load(bundle.join("config.json")).map_err(Error::Spec)?;
    let mut process = spec.process().clone().unwrap_or_default();
    process.set_args(Some(cmd));
    process.set_terminal(Some(tty));
    if tty {
        let mut env = process.env().clone().unwrap_or_default();
        if !env.iter().any(|e| e.starts_with("TERM=")) {
            env.push("TERM=xterm".into());
        }
        process.set_env(Some(env));
    }
    let nonce: u64 = rand::random();
    let process_file = bundle.join(format!("exec-{nonce:016x}.json"));
    let pid_file = bundle.join(format!("exec-{nonce:016x}.pid"));
    let json = serde_json::to_vec(&process).map_err(|e| Error::Bundle {
        path: process_file.clone(),
        source: io::Error::other(e),
    })?;
    std::fs::write(&process_file, json).map_err(|source| Error::Bundle {
        path: process_file.clone(),
        source,
    })?;
    Ok((process, process_file, pid_file))
}

/// Kills the command `runc exec` started, by the pid it wrote (killing the runtime would leave
/// the command running in the container).
fn kill_by_pid_file(pid_file: &Path) {
    let pid = std::fs::read_to_string(pid_file)
        .ok()
        .and_then(|s| s.trim().parse::<u32>().ok());
    if let Some(pid) = pid {
        if let Ok(p) = Pidfd::open(pid) {
            let _ = p.signal(libc::SIGKILL);
        }
    }
}

/// Starts `spec` in container `id` with `runc exec` in the foreground: with a terminal, the
/// process has `terminal: true` and the runtime, on our pty, copies to and from the container's
/// and passes SIGWINCH on as a resize (see [`crate::executor::interactive`]).
pub(super) async fn exec_interactive(
    rt: super::runtime::Runtime,
    id: String,
    bundle: PathBuf,
    spec: ExecSpec,
) -> Result<ExecSession, Error> {
    use crate::executor::interactive;
    let (process, process_file, pid_file) = exec_process(&bundle, spec.cmd.clone(), spec.tty)?;
    let chrooted_init = chrooted()
        .then(|| std::fs::read_to_string(bundle.join("init.pid")).ok())
        .flatten();
    // crun in the foreground copies its terminal but passes no resize on: it gets a console
    // socket instead, and the terminal's master is ours.
    let console =
        (spec.tty && chrooted_init.is_none() && rt.flavor() == super::runtime::Flavor::Crun)
            .then(|| process_file.with_extension("sock"));
    let c = match &chrooted_init {
        // As in [`exec`]: from a chrooted swarmd, enter the init's namespaces and root; the
        // program then has our pty (or pipes) itself.
        Some(pid) => nsenter(pid.trim(), &process),
        None => rt.exec_command_with(&id, &process_file, &pid_file, console.as_deref()),
    };
    let program = rt.program().display().to_string();
    let (pf, pidf, sock) = (process_file.clone(), pid_file.clone(), console.clone());
    let on_end: interactive::OnEnd = Box::new(move |abandoned| {
        if abandoned {
            kill_by_pid_file(&pidf);
        }
        let _ = std::fs::remove_file(&pf);
        let _ = std::fs::remove_file(&pidf);
        if let Some(s) = sock {
            let _ = std::fs::remove_file(s);
        }
    });
    let entered = chrooted_init.is_some();
    let forked_pid_file = pid_file.clone();
    let spawn = move |mut c: tokio::process::Command| {
        let child = c
            .spawn()
            .map_err(|source| Error::ExecSpawn { program, source })?;
        if let (true, Some(pid)) = (entered, child.id()) {
            record_forked_pid(pid, forked_pid_file);
        }
        Ok(child)
    };
    let spawned = match &console {
        None => interactive::start(c, &spec, spawn, Some(on_end)),
        Some(sock) => {
            let listener =
                tokio::net::UnixListener::bind(sock).map_err(|source| Error::Bundle {
                    path: sock.clone(),
                    source,
                })?;
            let master = async move {
                let (conn, _) = listener.accept().await?;
                let conn = conn.into_std()?;
                conn.set_nonblocking(false)?;
                tokio::task::spawn_blocking(move || interactive::recv_fd(&conn))
                    .await
                    .map_err(io::Error::other)?
            };
            let master = async move {
                tokio::time::timeout(Duration::from_secs(10), master)
                    .await
                    .map_err(|_| io::Error::other("the runtime sent no terminal within 10 s"))?
            };
            interactive::start_console(c, &spec, spawn, master, Some(on_end)).await
        }
    };
    if spawned.is_err() {
        let _ = std::fs::remove_file(&process_file);
        if let Some(s) = &console {
            let _ = std::fs::remove_file(s);
        }
    }
    spawned
}

/// Writes the pid of the program `nsenter` (pid `nsenter`) forks into the container's PID
/// namespace to `pid_file`, as `runc exec --pid-file` does, so that an abandoned session kills
/// the program and not only nsenter. Polls nsenter's children for at most 5 s, in the
/// background; the file appears whole (written aside, then renamed).
fn record_forked_pid(nsenter: u32, pid_file: PathBuf) {
    tokio::spawn(async move {
        let children = format!("/proc/{nsenter}/task/{nsenter}/children");
        let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
        while tokio::time::Instant::now() < deadline {
            let Ok(list) = std::fs::read_to_string(&children) else {
                return; // nsenter is gone
            };
            if let Some(pid) = list.split_whitespace().next() {
                let aside = pid_file.with_extension("pid.tmp");
                if std::fs::write(&aside, pid).is_ok() {
                    let _ = std::fs::rename(&aside, &pid_file);
                }
                return;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    });
}

/// Runs `cmd` in container `id` with its own process settings (env, cwd, user, capabilities)
/// read from its `config.json`, for at most `timeout` (then the command is killed).
pub(super) async fn exec(
    rt: super::runtime::Runtime,
    id: String,
    bundle: PathBuf,
    cmd: Vec<String>,
    timeout: Duration,
) -> Result<ExecOutput, Error> {
    let (process, process_file, pid_file) = exec_process(&bundle, cmd, false)?;
    let entered = chrooted()
        .then(|| std::fs::read_to_string(bundle.join("init.pid")).ok())
        .flatten();
    let mut c = match &entered {
        // `runc exec` joins the container's mount namespace at that namespace's top: when
        // swarmd itself runs in a chroot, that is the host's root, not the container's. Enter
        // the container init's namespaces and root with nsenter instead (its user, env and
        // working directory; capabilities and cgroup stay swarmd's: a chrooted node only).
        Some(pid) => {
            let mut c = nsenter(pid.trim(), &process);
            // A process group of its own: nsenter forks the command, a timeout kills both.
            c.process_group(0);
            c
        }
        None => rt.exec_command(&id, &process_file, &pid_file),
    };
    c.stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    let result = match c.spawn() {
        Err(source) => Err(Error::ExecSpawn {
            program: rt.program().display().to_string(),
            source,
        }),
        Ok(child) => {
            let group = child.id().filter(|_| entered.is_some());
            let out = child.wait_with_output();
            tokio::pin!(out);
            match tokio::time::timeout(timeout, &mut out).await {
                Ok(r) => r.map_err(Error::ExecWait).map(|o| ExecOutput {
                    stdout: cut(o.stdout),
                    stderr: cut(o.stderr),
                    exit_code: o.status.code().unwrap_or(128 + 9),
                }),
                Err(_) => {
                    match group {
                        // nsenter's child is the command: kill both, by their group.
                        Some(pgid) => kill_group(pgid),
                        None => kill_by_pid_file(&pid_file),
                    }
                    let _ = tokio::time::timeout(Duration::from_secs(2), &mut out).await;
                    Err(Error::Timeout {
                        secs: timeout.as_secs(),
                    })
                }
            }
        }
    };
    let _ = std::fs::remove_file(&process_file);
    let _ = std::fs::remove_file(&pid_file);
    result
}

/// Whether this process runs in a chroot: its root is not the root of its mount namespace,
/// which is where `setns` into that namespace puts a process (and so where `runc exec` would
/// land). Asked once, by entering our own mount namespace with `nsenter` and comparing the `/`
/// found there with ours (device and inode); a host whose root is a subvolume or a bind mount is
/// not taken for a chroot. When `nsenter` cannot tell, not a chroot (`runc exec`, the default).
/// Test builds: `SHOAL_TEST_EXEC_NSENTER=1` takes the chroot's path outside a chroot too, to
/// run the root tests through it.
fn chrooted() -> bool {
    use std::os::unix::fs::MetadataExt;
    static CHROOTED: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *CHROOTED.get_or_init(|| {
        if cfg!(test) && std::env::var_os("SHOAL_TEST_EXEC_NSENTER").is_some_and(|v| v == "1") {
            return true;
        }
        let Ok(ours) = std::fs::metadata("/").map(|m| format!("{}:{}", m.dev(), m.ino())) else {
            return false;
        };
        let top = std::process::Command::new("nsenter")
            .args(["-t", &std::process::id().to_string(), "-m", "--"])
            .args(["stat", "-c", "%d:%i", "/"])
            .stdin(Stdio::null())
            .stderr(Stdio::null())
            .output();
        match top {
            Ok(o) if o.status.success() => {
                let top = String::from_utf8_lossy(&o.stdout).trim().to_string();
                let chrooted = !top.is_empty() && top != ours;
                if chrooted {
                    tracing::info!(
                        "swarmd runs in a chroot: task exec enters containers with nsenter"
                    );
                }
                chrooted
            }
            _ => false,
        }
    })
}

/// `nsenter` into container init `pid`'s namespaces, root and working directory, as `process`
/// says (user, env).
fn nsenter(pid: &str, process: &oci_spec::runtime::Process) -> tokio::process::Command {
    let mut c = tokio::process::Command::new("nsenter");
    c.args(["-t", pid, "-m", "-u", "-i", "-n", "-p", "-r"]);
    // `-w` alone: the init's working directory, inside its root (nsenter opens a path given
    // to `--wd` before entering the root).
    c.arg("-w");
    let user = process.user();
    c.arg(format!("--setuid={}", user.uid()))
        .arg(format!("--setgid={}", user.gid()));
    c.arg("--");
    c.args(process.args().clone().unwrap_or_default());
    c.env_clear();
    c.env("PWD", process.cwd());
    for kv in process.env().clone().unwrap_or_default() {
        if let Some((k, v)) = kv.split_once('=') {
            c.env(k, v);
        }
    }
    c
}

fn cut(mut v: Vec<u8>) -> Vec<u8> {
    v.truncate(MAX_OUTPUT);
    v
}
