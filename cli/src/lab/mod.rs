//! `swarmctl lab`: a Play-with-Docker-style cluster on one machine. Every node is a network
//! namespace running a real `swarmd`, plugged into an underlay bridge in a namespace of its
//! own; the host reaches the nodes through one veth, `swlab-<name>`.
//!
//! ```text
//!   host namespace                 lab namespace "ul"                  node namespaces
//!   swlab-lab 198.18.0.254/24 ── nhost ┐
//!                                      ├ ulbr0 ── nm1 ────────── eth0 198.18.0.1  manager1
//!                                      │       ── nm2 ────────── eth0 198.18.0.2  manager2
//!                                      │       ── nw1 ────────── eth0 198.18.0.4  worker1 …
//! ```
//!
//! Labs use only 198.18.0.0/15 (a project-wide network-safety rule), and never add routes,
//! NAT or forwarding toward the host's real interfaces. Everything a lab makes carries its name
//! (`--name`, default `lab`) and lives under `<root>/<name>/` (see [`state`]), so several labs
//! run side by side and `lab down` removes exactly what one made, even after a crash.

pub mod config;
pub mod containers;
pub mod down;
pub mod exec;
pub mod ls;
pub mod net;
pub mod node;
pub mod procs;
pub mod ready;
pub mod registry;
pub mod sessions;
pub mod state;
pub mod ui;
pub mod up;

#[cfg(test)]
mod registry_tests;
#[cfg(test)]
mod tests;

use crate::ctl::Out;
use state::{LabDir, LabFile};
use std::path::Path;

/// Where a verb's messages go: progress and results to stdout for humans; with `--format json`
/// stdout carries only the JSON document and progress goes to stderr.
pub struct Printer {
    /// Standard output.
    pub out: Out,
    /// `--format json`.
    pub json: bool,
}

impl Printer {
    /// A printer on stdout.
    pub fn stdout(json: bool) -> Printer {
        Printer {
            out: Out::stdout(),
            json,
        }
    }

    /// A progress or status line.
    pub fn say(&mut self, line: &str) {
        if self.json {
            eprintln!("{line}");
        } else {
            self.out.line(line);
        }
    }
}

/// Whether a lab's processes and namespaces are all there.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Health {
    /// Every node's swarmd is alive and every namespace file is present.
    Running,
    /// Some of it is: `up` of `total` swarmds alive.
    Degraded {
        /// swarmds alive.
        up: usize,
        /// Nodes.
        total: usize,
    },
    /// Nothing runs (namespaces may be left: `lab down` removes them).
    Stopped,
    /// There is a lab directory but no readable `lab.json` (a crash early in `lab up`).
    Incomplete,
}

impl std::fmt::Display for Health {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Health::Running => f.write_str("running"),
            Health::Degraded { up, total } => write!(f, "degraded ({up}/{total} swarmd running)"),
            Health::Stopped => f.write_str("stopped"),
            Health::Incomplete => f.write_str("incomplete: no lab.json"),
        }
    }
}

/// The health of the lab in `dir` described by `file`.
pub fn health(dir: &LabDir, file: Option<&LabFile>) -> Health {
    let Some(file) = file else {
        return Health::Incomplete;
    };
    let swarmds = procs::lab_swarmds(&dir.nodes());
    let netns_ok = file.underlay.netns.exists() && file.nodes.iter().all(|n| n.netns.exists());
    health_of(file, &swarmds, netns_ok)
}

/// [`health`] from what was found: the lab's live swarmds and whether every namespace file is
/// there. A node runs when a live swarmd serves its state dir, whether it is the pid `lab.json`
/// recorded or one restarted by hand.
pub fn health_of(file: &LabFile, swarmds: &[procs::LabSwarmd], netns_ok: bool) -> Health {
    let up = file
        .nodes
        .iter()
        .filter(|n| procs::running_pid(n.pid, &n.state_dir, swarmds).is_some())
        .count();
    match up {
        0 => Health::Stopped,
        n if n == file.nodes.len() && netns_ok => Health::Running,
        n => Health::Degraded {
            up: n,
            total: file.nodes.len(),
        },
    }
}

/// The labs under `root` and their health, for messages that name them.
pub fn labs_here(root: &Path) -> Vec<(String, Health)> {
    state::list(root)
        .into_iter()
        .map(|name| {
            let dir = LabDir::new(root, &name);
            let file = dir.load().ok().flatten();
            let h = health(&dir, file.as_ref());
            (name, h)
        })
        .collect()
}

/// `labs here: demo (running), t1 (stopped)`, or how to make one when there are none.
pub fn describe_labs(labs: &[(String, Health)]) -> String {
    if labs.is_empty() {
        return "there are no labs: create one with `swarmctl lab up`".into();
    }
    let list: Vec<String> = labs.iter().map(|(n, h)| format!("{n} ({h})")).collect();
    format!("labs here: {}", list.join(", "))
}

/// The message for a lab name that names nothing: `there is no lab "foo"; labs here: …`.
pub fn no_such_lab(name: &str, labs: &[(String, Health)]) -> String {
    format!("there is no lab {name:?}; {}", describe_labs(labs))
}

/// Lab `name` under the lab root, when its directory exists; otherwise an error that says so
/// and names the labs that do exist. Every verb that works on an existing lab (`shell`, `exec`,
/// `restart`, `stop`, `start`, `ui`) asks this first.
pub fn existing(name: &str) -> anyhow::Result<LabDir> {
    config::check_name(name).map_err(anyhow::Error::msg)?;
    let root = state::root();
    let dir = LabDir::new(&root, name);
    if dir.dir.is_dir() {
        return Ok(dir);
    }
    anyhow::bail!("{}", no_such_lab(name, &labs_here(&root)))
}

/// ` --name NAME` for the hints printed to users, empty for the default lab.
pub fn name_flag(name: &str) -> String {
    if name == config::DEFAULT_NAME {
        String::new()
    } else {
        format!(" --name {name}")
    }
}

/// Fails with a clear message unless this process is root.
pub fn require_root(verb: &str) -> anyhow::Result<()> {
    anyhow::ensure!(
        procs::is_root(),
        "`swarmctl lab {verb}` must run as root: it creates network namespaces and links \
         (try `sudo swarmctl lab {verb} …`)"
    );
    Ok(())
}
