//! The lab's processes: finding `swarmd`, starting it inside a node's namespace, and finding and
//! stopping what a lab left running — always by pid, and only processes whose `/proc` entry
//! proves they belong to the lab (never by name).

use super::config::NodePlan;
use super::state::LabDir;
use anyhow::Context;
use shoal_netlib::netns::NetNs;
use std::fs::OpenOptions;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Env var naming the swarmd binary to run.
pub const SWARMD_ENV: &str = "SHOAL_SWARMD";
/// Env var with extra swarmd flags (space-separated), e.g. faster raft timings in tests.
pub const SWARMD_ARGS_ENV: &str = "SHOAL_LAB_SWARMD_ARGS";

/// Whether this process runs as root (effective uid 0).
pub use shoal_netlib::is_root;

/// The `swarmd` to start: `$SHOAL_SWARMD`, else the one next to this `swarmctl`, else the first
/// on `PATH`.
pub fn find_swarmd() -> anyhow::Result<PathBuf> {
    if let Some(p) = std::env::var_os(SWARMD_ENV).filter(|p| !p.is_empty()) {
        let p = PathBuf::from(p);
        anyhow::ensure!(
            p.is_file(),
            "{SWARMD_ENV}={} is not a file: point it at a swarmd binary",
            p.display()
        );
        return Ok(p);
    }
    if let Some(dir) = std::env::current_exe()
        .ok()
        .and_then(|e| e.parent().map(Path::to_path_buf))
    {
        let p = dir.join("swarmd");
        if p.is_file() {
            return Ok(p);
        }
    }
    find_on_path("swarmd").ok_or_else(|| {
        anyhow::anyhow!(
            "cannot find swarmd: it is neither next to this swarmctl nor on PATH; \
             build it (`cargo build --bins`) or set {SWARMD_ENV}=/path/to/swarmd"
        )
    })
}

/// The first `name` in a `PATH` directory.
pub fn find_on_path(name: &str) -> Option<PathBuf> {
    std::env::var_os("PATH").and_then(|path| {
        std::env::split_paths(&path)
            .map(|d| d.join(name))
            .find(|p| p.is_file())
    })
}

/// Extra swarmd flags from [`SWARMD_ARGS_ENV`].
pub fn extra_args() -> Vec<String> {
    std::env::var(SWARMD_ARGS_ENV)
        .unwrap_or_default()
        .split_whitespace()
        .map(str::to_string)
        .collect()
}

/// Whether `swarmd --help` lists `flag` (a swarmd built before the flag existed exits on it).
pub fn swarmd_has_flag(swarmd: &Path, flag: &str) -> bool {
    Command::new(swarmd)
        .arg("--help")
        .stdin(Stdio::null())
        .stderr(Stdio::null())
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).contains(flag))
}

/// The swarmd command line of `node` (without the namespace: see [`spawn_swarmd`]).
pub fn swarmd_args(
    dir: &LabDir,
    node: &NodePlan,
    join: Option<(&str, &str)>,
    extra: &[String],
) -> Vec<String> {
    let mut args = vec![
        "--state-dir".to_string(),
        dir.node(&node.name).display().to_string(),
        "--hostname".into(),
        node.name.clone(),
        "--listen-addr".into(),
        node.endpoint(),
        "--advertise-addr".into(),
        node.endpoint(),
        // Lab nodes are namespaces of their own: tasks get real sandboxes and networks there.
        "--data-plane".into(),
        "kernel".into(),
    ];
    if let Some((addr, token)) = join {
        args.extend(["--join".into(), addr.into(), "--token".into(), token.into()]);
    }
    // A lab has no way out: names outside the cluster are NXDOMAIN unless the lab's own
    // resolver is named (SHOAL_LAB_SWARMD_ARGS="--dns-upstream IP:PORT").
    if !extra.iter().any(|a| a.starts_with("--dns-upstream")) {
        args.extend(["--dns-upstream".into(), "none".into()]);
    }
    args.extend(extra.iter().cloned());
    args
}

/// The port of every lab node's `--metrics-addr` (Docker's metrics port).
pub const METRICS_PORT: u16 = 9323;

/// Adds `--metrics-addr ADDR:9323` to `args` unless they name a `--metrics-addr` already: each
/// lab node serves metrics on its own underlay address, which the host reaches through the
/// lab's host endpoint (no route beyond the lab) and `lab ui` reads ([`super::ui::rates`]).
pub fn with_metrics(args: &mut Vec<String>, addr: std::net::Ipv4Addr) {
    if !args.iter().any(|a| a.starts_with("--metrics-addr")) {
        args.extend(["--metrics-addr".into(), format!("{addr}:{METRICS_PORT}")]);
    }
}

/// Starts `swarmd ARGS` inside `ns`: spawned from a thread that entered the namespace (the
/// child inherits it), in its own process group (a Ctrl-C at the terminal does not reach it),
/// stdin closed, stdout and stderr appended to the node's `swarmd.log`, working directory its
/// state dir. It outlives this process.
pub fn spawn_swarmd(
    ns: &NetNs,
    swarmd: &Path,
    dir: &LabDir,
    node: &str,
    args: &[String],
) -> anyhow::Result<Child> {
    use std::os::unix::process::CommandExt;
    let state = dir.node(node);
    std::fs::create_dir_all(&state)
        .with_context(|| format!("cannot create {}", state.display()))?;
    let log_path = dir.log(node);
    let log = OpenOptions::new()
        .create(true)
        .append(true)
        .open(&log_path)
        .with_context(|| format!("cannot open {}", log_path.display()))?;
    let log2 = log.try_clone().context("duplicating the log file")?;
    let mut cmd = Command::new(swarmd);
    cmd.args(args)
        .current_dir(&state)
        .env("NO_COLOR", "1")
        .env_remove("SWARM_HOST")
        .env_remove("SWARM_TOKEN")
        .stdin(Stdio::null())
        .stdout(log)
        .stderr(log2)
        .process_group(0);
    ns.run(move || cmd.spawn())
        .with_context(|| format!("entering {}", ns.path().display()))?
        .with_context(|| format!("cannot start {} for {node}", swarmd.display()))
}

/// What `/proc/<pid>` says about a process.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProcInfo {
    /// Its pid.
    pub pid: u32,
    /// Its command line.
    pub argv: Vec<String>,
    /// Its working directory, when readable.
    pub cwd: Option<PathBuf>,
    /// A zombie (exited, not yet reaped): as good as gone.
    pub zombie: bool,
}

impl ProcInfo {
    /// Reads `/proc/<pid>`; `None` when there is no such process.
    pub fn read(pid: u32) -> Option<ProcInfo> {
        let base = PathBuf::from(format!("/proc/{pid}"));
        let stat = std::fs::read_to_string(base.join("stat")).ok()?;
        // The state follows the parenthesised command name, which may itself hold ") ".
        let zombie = stat
            .rsplit_once(") ")
            .is_some_and(|(_, rest)| rest.starts_with('Z') || rest.starts_with('X'));
        let argv = std::fs::read(base.join("cmdline"))
            .map(|b| parse_cmdline(&b))
            .unwrap_or_default();
        let cwd = std::fs::read_link(base.join("cwd")).ok();
        Some(ProcInfo {
            pid,
            argv,
            cwd,
            zombie,
        })
    }

    /// Whether this is a swarmd of the lab whose nodes live in `nodes`: `argv[0]` names swarmd
    /// and its `--state-dir` is inside `nodes`.
    pub fn is_lab_swarmd(&self, nodes: &Path) -> bool {
        is_lab_swarmd(&self.argv, nodes) && !self.zombie
    }

    /// Its `--state-dir`, a relative one resolved against its working directory.
    pub fn state_dir(&self) -> Option<PathBuf> {
        let d = Path::new(state_dir_arg(&self.argv)?);
        if d.is_absolute() {
            Some(d.to_path_buf())
        } else {
            self.cwd.as_ref().map(|c| c.join(d))
        }
    }

    /// Whether this process belongs to the lab whose nodes live in `nodes`: its working
    /// directory or one of its arguments is inside it (swarmds and the tasks they started).
    pub fn belongs_to(&self, nodes: &Path) -> bool {
        !self.zombie
            && (self.cwd.as_deref().is_some_and(|c| c.starts_with(nodes))
                || self
                    .argv
                    .iter()
                    .any(|a| Path::new(a).starts_with(nodes) || arg_value_in(a, nodes)))
    }
}

/// `--state-dir=/x/…` style arguments.
fn arg_value_in(arg: &str, dir: &Path) -> bool {
    arg.split_once('=')
        .is_some_and(|(_, v)| Path::new(v).starts_with(dir))
}

/// Splits `/proc/<pid>/cmdline` (NUL-separated).
pub fn parse_cmdline(b: &[u8]) -> Vec<String> {
    b.split(|c| *c == 0)
        .filter(|a| !a.is_empty())
        .map(|a| String::from_utf8_lossy(a).into_owned())
        .collect()
}

/// The `--state-dir` argument of `argv` (`--state-dir D` or `--state-dir=D`).
pub fn state_dir_arg(argv: &[String]) -> Option<&str> {
    argv.iter().enumerate().find_map(|(i, a)| {
        if a == "--state-dir" {
            argv.get(i + 1).map(String::as_str)
        } else {
            a.strip_prefix("--state-dir=")
        }
    })
}

/// Whether `argv` is a swarmd whose `--state-dir` is inside `nodes`.
pub fn is_lab_swarmd(argv: &[String], nodes: &Path) -> bool {
    let names_swarmd = argv
        .first()
        .and_then(|a| Path::new(a).file_name())
        .is_some_and(|n| n.to_string_lossy().contains("swarmd"));
    names_swarmd && state_dir_arg(argv).is_some_and(|d| Path::new(d).starts_with(nodes))
}

/// The parent of `pid`, from `/proc/<pid>/stat`.
pub fn parent_of(pid: u32) -> Option<u32> {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|s| {
            s.rsplit_once(") ")
                .and_then(|(_, rest)| rest.split_whitespace().nth(1)?.parse::<u32>().ok())
        })
}

/// This process and its ancestors: never signalled, whatever their working directory.
pub fn me_and_ancestors() -> Vec<u32> {
    let mut out = vec![std::process::id()];
    let mut pid = std::process::id();
    for _ in 0..64 {
        match parent_of(pid) {
            Some(p) if p > 1 && !out.contains(&p) => {
                out.push(p);
                pid = p;
            }
            _ => break,
        }
    }
    out
}

/// Every live process but this one and its ancestors, by pid.
pub(super) fn others() -> Vec<ProcInfo> {
    let skip = me_and_ancestors();
    let Ok(rd) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    let mut out: Vec<ProcInfo> = rd
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| !skip.contains(pid))
        .filter_map(ProcInfo::read)
        .collect();
    out.sort_by_key(|p| p.pid);
    out
}

/// Every live process that belongs to the lab whose nodes live in `nodes` (see
/// [`ProcInfo::belongs_to`]), except this process and its ancestors.
pub fn lab_processes(nodes: &Path) -> Vec<ProcInfo> {
    others()
        .into_iter()
        .filter(|p| p.belongs_to(nodes))
        .collect()
}

/// A live swarmd of a lab: its pid and `--state-dir`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LabSwarmd {
    /// Its pid.
    pub pid: u32,
    /// Its `--state-dir`: the node it runs.
    pub state_dir: PathBuf,
}

/// Every live swarmd of the lab whose nodes live in `nodes`, however it was started (by `lab
/// up`, `lab start`, or by hand).
pub fn lab_swarmds(nodes: &Path) -> Vec<LabSwarmd> {
    others()
        .into_iter()
        .filter(|p| p.is_lab_swarmd(nodes))
        .filter_map(|p| {
            Some(LabSwarmd {
                pid: p.pid,
                state_dir: p.state_dir()?,
            })
        })
        .collect()
}

/// The pid of the swarmd running node `state_dir` among the live `swarmds`: the one recorded in
/// `lab.json` (`recorded`) when it is still that node's, else any other whose `--state-dir` is
/// the node's (a swarmd restarted by hand). Paths compare by component, so `a/b/` is `a/b`.
pub fn running_pid(recorded: Option<u32>, state_dir: &Path, swarmds: &[LabSwarmd]) -> Option<u32> {
    let of_node = |s: &&LabSwarmd| s.state_dir == state_dir;
    swarmds
        .iter()
        .filter(of_node)
        .find(|s| Some(s.pid) == recorded)
        .or_else(|| swarmds.iter().find(of_node))
        .map(|s| s.pid)
}

/// Sends `signal` (`TERM`, `KILL`, `HUP`) to `pid` with `kill(1)`: the safe way from a crate
/// that forbids `unsafe`. Errors (the process is gone) are ignored.
pub fn signal(pid: u32, signal: &str) {
    let _ = Command::new("kill")
        .arg(format!("-{signal}"))
        .arg(pid.to_string())
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status();
}

/// Stops the lab's swarmds: `pids` (from `lab.json`) plus any other swarmd whose state dir is
/// in `nodes`, each checked again just before it is signalled. SIGTERM, then SIGKILL for those
/// still alive after `grace`. Returns `(pid, node dir, how)` for each one stopped.
pub fn stop_swarmds(pids: &[u32], nodes: &Path, grace: Duration) -> Vec<(u32, String, String)> {
    let mut targets: Vec<u32> = pids
        .iter()
        .copied()
        .filter(|p| ProcInfo::read(*p).is_some_and(|i| i.is_lab_swarmd(nodes)))
        .collect();
    for p in lab_processes(nodes) {
        if p.is_lab_swarmd(nodes) && !targets.contains(&p.pid) {
            targets.push(p.pid);
        }
    }
    let node_of = |pid: u32| -> String {
        ProcInfo::read(pid)
            .and_then(|i| {
                Path::new(state_dir_arg(&i.argv)?)
                    .file_name()
                    .map(|n| n.to_string_lossy().into_owned())
            })
            .unwrap_or_default()
    };
    let names: Vec<(u32, String)> = targets.iter().map(|p| (*p, node_of(*p))).collect();
    for &pid in &targets {
        if ProcInfo::read(pid).is_some_and(|i| i.is_lab_swarmd(nodes)) {
            signal(pid, "TERM");
        }
    }
    let alive = |pid: u32| ProcInfo::read(pid).is_some_and(|i| i.is_lab_swarmd(nodes));
    let started = Instant::now();
    while targets.iter().any(|p| alive(*p)) && started.elapsed() < grace {
        std::thread::sleep(Duration::from_millis(50));
    }
    let mut out = Vec::new();
    for (pid, node) in names {
        if alive(pid) {
            signal(pid, "KILL");
            out.push((pid, node, "SIGKILL".to_string()));
        } else {
            out.push((pid, node, "SIGTERM".to_string()));
        }
    }
    out
}

/// Kills (SIGKILL, by pid) every process still belonging to the lab (task processes that
/// outlived their swarmd), rechecking each just before; returns the pids killed.
pub fn kill_leftovers(nodes: &Path) -> Vec<u32> {
    let mut killed = Vec::new();
    for _ in 0..20 {
        let found = lab_processes(nodes);
        if found.is_empty() {
            break;
        }
        for p in found {
            if ProcInfo::read(p.pid).is_some_and(|i| i.belongs_to(nodes)) {
                signal(p.pid, "KILL");
                if !killed.contains(&p.pid) {
                    killed.push(p.pid);
                }
            }
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    killed
}

/// The last `n` lines of a log, escape sequences removed.
pub fn tail(path: &Path, n: usize) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(n)..]
        .iter()
        .map(|l| strip_ansi(l))
        .collect::<Vec<_>>()
        .join("\n")
}

fn strip_ansi(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut chars = s.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' && chars.peek() == Some(&'[') {
            chars.next();
            for c in chars.by_ref() {
                if c.is_ascii_alphabetic() {
                    break;
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}
