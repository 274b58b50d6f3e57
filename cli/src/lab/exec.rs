//! `swarmctl lab shell NODE` and `swarmctl lab exec NODE -- CMD`: run a program inside a node's
//! network namespace, with `swarmctl` pointed at that node.

use super::config::{Role, PORT};
use super::state::{LabDir, LabFile, NodeRecord};
use super::{name_flag, require_root};
use anyhow::{bail, Context};
use shoal_netlib::netns::NetNs;
use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus};

/// Exit code when the command does not exist (as a shell reports it).
pub const NOT_FOUND: i32 = 127;
/// Exit code when the command exists but cannot be run.
pub const NOT_EXECUTABLE: i32 = 126;

/// What to run in the node.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum What {
    /// An interactive shell: `$SHELL`, else /bin/bash, else /bin/sh.
    Shell,
    /// A command and its arguments.
    Command(Vec<String>),
}

/// Runs `what` in node `node` of lab `name`; returns its exit code (128 + signal when killed).
pub async fn exec(name: &str, node: &str, what: What) -> anyhow::Result<i32> {
    let verb = match what {
        What::Shell => "shell",
        What::Command(_) => "exec",
    };
    let dir = super::existing(name)?;
    require_root(verb)?;
    let file = load(&dir)?;
    let rec = find_node(&file, node)?;
    let ns = NetNs::open(&rec.netns).with_context(|| {
        format!(
            "the namespace of {node} is gone: run `swarmctl lab down{f}` and `swarmctl lab up{f}` again",
            f = name_flag(name)
        )
    })?;
    let (program, args) = match what {
        What::Command(argv) => {
            let mut it = argv.into_iter();
            let Some(p) = it.next() else {
                bail!("lab exec: no command given (usage: swarmctl lab exec NODE -- CMD [ARG...])");
            };
            (p, it.collect::<Vec<_>>())
        }
        What::Shell => shell(&dir)?,
    };
    let mut cmd = Command::new(&program);
    cmd.args(&args);
    for (k, v) in env(&dir, &file, rec) {
        cmd.env(k, v);
    }
    // A UTS namespace of its own named after the node, as a Play-with-Docker terminal is: the
    // prompt and `hostname` say manager1, not this machine's name.
    let host = node.to_string();
    let child = ns
        .run(move || {
            shoal_netlib::netns::unshare(&[shoal_netlib::netns::Kind::Uts])?;
            shoal_netlib::netns::set_hostname(&host)?;
            cmd.spawn()
        })
        .with_context(|| format!("entering {}", rec.netns.display()))?;
    let child = match child {
        Ok(c) => c,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            eprintln!("swarmctl lab {verb}: {program}: command not found (on {node})");
            return Ok(NOT_FOUND);
        }
        Err(e) if e.kind() == std::io::ErrorKind::PermissionDenied => {
            eprintln!("swarmctl lab {verb}: {program}: {e} (on {node})");
            return Ok(NOT_EXECUTABLE);
        }
        Err(e) => return Err(e).with_context(|| format!("cannot run {program} on {node}")),
    };
    let status = wait(child).await?;
    Ok(code(status))
}

/// The `lab.json` of an existing lab (see [`super::existing`]).
pub fn load(dir: &LabDir) -> anyhow::Result<LabFile> {
    match dir.load()? {
        Some(f) => Ok(f),
        None if dir.dir.exists() => bail!(
            "lab {} is incomplete (no lab.json in {}): run `swarmctl lab down{f}` and `swarmctl lab up{f}`",
            dir.name,
            dir.dir.display(),
            f = name_flag(&dir.name)
        ),
        None => bail!(
            "{}",
            super::no_such_lab(&dir.name, &super::labs_here(dir.dir.parent().unwrap_or(&dir.dir)))
        ),
    }
}

/// Node `node` of the lab, or an error listing its nodes.
pub fn find_node<'a>(file: &'a LabFile, node: &str) -> anyhow::Result<&'a NodeRecord> {
    file.node(node).ok_or_else(|| no_such_node(file, node))
}

/// The error for a node the lab does not have, listing those it has.
pub fn no_such_node(file: &LabFile, node: &str) -> anyhow::Error {
    anyhow::anyhow!(
        "lab {} has no node {node:?}; its nodes: {}",
        file.name,
        file.nodes
            .iter()
            .map(|n| n.name.as_str())
            .collect::<Vec<_>>()
            .join(", ")
    )
}

/// The program and arguments of `lab shell`. bash reads an rc file that sources the user's
/// `~/.bashrc` and then sets the lab's prompt (which `~/.bashrc` would otherwise replace).
fn shell(dir: &LabDir) -> anyhow::Result<(String, Vec<String>)> {
    let program = std::env::var("SHELL")
        .ok()
        .filter(|s| !s.is_empty() && Path::new(s).is_file())
        .or_else(|| {
            ["/bin/bash", "/bin/sh"]
                .into_iter()
                .find(|s| Path::new(s).is_file())
                .map(str::to_string)
        })
        .ok_or_else(|| anyhow::anyhow!("no shell found: set SHELL"))?;
    let is_bash = Path::new(&program).file_name().is_some_and(|n| n == "bash");
    if !is_bash {
        return Ok((program, Vec::new()));
    }
    let rc = dir.dir.join("bashrc");
    std::fs::write(
        &rc,
        "# written by `swarmctl lab shell`\n\
         [ -r ~/.bashrc ] && . ~/.bashrc\n\
         PS1=\"$SHOAL_LAB_PS1\"\n",
    )
    .with_context(|| format!("cannot write {}", rc.display()))?;
    Ok((program, vec!["--rcfile".into(), rc.display().to_string()]))
}

/// The environment of a program run in a node: `SWARM_HOST` pointing at the node (a manager's
/// own control socket; a worker, which serves none, gets the first manager's address),
/// `SWARM_CERT_DIR` at the node's certificates, the
/// prompt, the lab and node names, and this swarmctl's directory first on `PATH` so that a plain
/// `swarmctl` (and `swarmd`) there are the lab's.
pub fn env(dir: &LabDir, file: &LabFile, node: &NodeRecord) -> Vec<(String, OsString)> {
    let host = swarm_host(dir, file, node);
    let ps1 = format!("{}/{} \\w# ", file.name, node.name);
    let mut out: Vec<(String, OsString)> = vec![
        ("SWARM_HOST".into(), host.into()),
        // Over TCP swarmctl shows the node's own certificate: a worker's is refused by the
        // Control API, as on a real cluster.
        ("SWARM_CERT_DIR".into(), dir.certs(&node.name).into()),
        ("PS1".into(), ps1.clone().into()),
        ("SHOAL_LAB_PS1".into(), ps1.into()),
        ("SHOAL_LAB".into(), file.name.clone().into()),
        ("SHOAL_LAB_NODE".into(), node.name.clone().into()),
    ];
    if let Some(path) = path_with_own_dir() {
        out.push(("PATH".into(), path));
    }
    out
}

/// The `--host` that reaches the cluster from `node`: its own control socket (every swarmd
/// serves one; a worker's refuses manager calls in Docker's words); for a node whose swarmd
/// does not run, the first manager's address on the underlay.
pub fn swarm_host(dir: &LabDir, file: &LabFile, node: &NodeRecord) -> String {
    if node.role == Role::Manager || dir.socket(&node.name).exists() {
        return dir.host(&node.name);
    }
    file.nodes
        .iter()
        .find(|n| n.role == Role::Manager)
        .map(|m| format!("tcp://{}:{PORT}", m.address))
        .unwrap_or_else(|| dir.host(&node.name))
}

/// `PATH` with the directory of the running swarmctl first (unchanged if it is there already).
fn path_with_own_dir() -> Option<OsString> {
    let own: PathBuf = std::env::current_exe().ok()?.parent()?.to_path_buf();
    let path = std::env::var_os("PATH").unwrap_or_default();
    let mut dirs: Vec<PathBuf> = std::env::split_paths(&path).collect();
    if dirs.first() == Some(&own) {
        return None;
    }
    dirs.retain(|d| d != &own);
    dirs.insert(0, own);
    std::env::join_paths(dirs).ok()
}

/// Waits for the child. Meanwhile SIGINT and SIGQUIT are for the child alone (a Ctrl-C in the
/// shell must not end swarmctl and orphan it, as `system(3)` does); SIGTERM and SIGHUP are passed
/// on to it.
async fn wait(child: std::process::Child) -> anyhow::Result<ExitStatus> {
    use tokio::signal::unix::{signal, SignalKind};
    let pid = child.id();
    let mut child = child;
    let waiting = tokio::task::spawn_blocking(move || child.wait());
    tokio::pin!(waiting);
    let mut int = signal(SignalKind::interrupt())?;
    let mut quit = signal(SignalKind::quit())?;
    let mut term = signal(SignalKind::terminate())?;
    let mut hup = signal(SignalKind::hangup())?;
    loop {
        tokio::select! {
            r = &mut waiting => return Ok(r.context("waiting for the command")??),
            _ = int.recv() => {}
            _ = quit.recv() => {}
            _ = term.recv() => forward(pid, "TERM"),
            _ = hup.recv() => forward(pid, "HUP"),
        }
    }
}

fn forward(pid: u32, sig: &str) {
    // Our own child, still unreaped (the waiting thread holds it): the pid cannot be reused.
    let _ = Command::new("kill")
        .arg(format!("-{sig}"))
        .arg(pid.to_string())
        .status();
}

/// The shell's convention: the exit code, or 128 + the signal that killed it.
pub fn code(status: ExitStatus) -> i32 {
    use std::os::unix::process::ExitStatusExt;
    status
        .code()
        .unwrap_or_else(|| 128 + status.signal().unwrap_or(0))
}
