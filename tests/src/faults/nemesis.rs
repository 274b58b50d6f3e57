//! The nemesis: applies the schedule's faults to a lab's managers and heals them. It touches
//! only what the lab made: the swarmd pids recorded in `lab.json` (checked in `/proc` to still
//! be this lab's swarmd), and an nftables table of its own (`inet shoal_fault`) inside the
//! managers' namespaces (the files under the lab's `netns/` directory). Dropping it heals
//! everything it did (SIGCONT, tables deleted), even when the test is failing.

use super::client::connect;
use super::schedule::{Fault, Target};
use crate::lab::Lab;
use crate::run::{run, Output};
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use shoal_proto::pb;
use std::collections::BTreeSet;
use std::io::Write;
use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

/// The nftables table the nemesis creates in a manager's namespace for a partition.
pub const TABLE: &str = "shoal_fault";

/// How long `lab start` may take to bring a killed manager back (it waits until Ready).
pub const START_TIMEOUT: Duration = Duration::from_secs(90);

/// One manager of the lab.
#[derive(Debug, Clone)]
pub struct Member {
    /// `manager1`, …
    pub name: String,
    /// Its namespace file (under the lab's directory).
    pub netns: PathBuf,
    /// Its underlay address.
    pub address: String,
    /// Its control socket, `unix:///…/swarmd.sock`.
    pub socket: String,
}

/// The managers of `lab`, from its `lab.json`.
pub fn members(lab: &Lab) -> Vec<Member> {
    let file = lab.file();
    let dir = lab.dir();
    file["nodes"]
        .as_array()
        .expect("lab.json lists nodes")
        .iter()
        .filter(|n| n["role"].as_str() == Some("manager"))
        .map(|n| {
            let name = n["name"].as_str().expect("node name").to_string();
            let netns = PathBuf::from(n["netns"].as_str().expect("netns"));
            assert!(
                netns.starts_with(&dir),
                "{name}'s namespace {} is not the lab's",
                netns.display()
            );
            Member {
                socket: format!(
                    "unix://{}",
                    dir.join("nodes").join(&name).join("swarmd.sock").display()
                ),
                address: n["address"].as_str().expect("address").to_string(),
                name,
                netns,
            }
        })
        .collect()
}

/// Applies and heals faults on one lab.
pub struct Nemesis<'a> {
    lab: &'a Lab,
    rt: tokio::runtime::Handle,
    /// The managers, in order (`manager1` first).
    pub members: Vec<Member>,
    killed: BTreeSet<usize>,
    paused: BTreeSet<usize>,
    cut: BTreeSet<usize>,
}

impl<'a> Nemesis<'a> {
    /// The nemesis of `lab`; `rt` runs its Control API calls (finding the leader).
    pub fn new(lab: &'a Lab, rt: tokio::runtime::Handle) -> Nemesis<'a> {
        Nemesis {
            members: members(lab),
            lab,
            rt,
            killed: BTreeSet::new(),
            paused: BTreeSet::new(),
            cut: BTreeSet::new(),
        }
    }

    /// The manager that leads, asked of a manager that is neither killed nor paused.
    pub fn leader(&self) -> Option<usize> {
        for (i, m) in self.members.iter().enumerate() {
            if self.killed.contains(&i) || self.paused.contains(&i) {
                continue;
            }
            let nodes = self.rt.block_on(async {
                let mut c = connect(&m.socket).await?;
                c.list_nodes(pb::Empty {})
                    .await
                    .ok()
                    .map(|r| r.into_inner().nodes)
            });
            let Some(nodes) = nodes else { continue };
            let leader = nodes.iter().find(|n| n.manager_status == "Leader");
            if let Some(l) = leader {
                return self.members.iter().position(|m| {
                    m.name == l.hostname || l.addr.split(':').next() == Some(m.address.as_str())
                });
            }
        }
        None
    }

    fn resolve(&self, t: Target) -> usize {
        match t {
            Target::Node(i) => i.min(self.members.len() - 1),
            // No leader right now (an election): the first manager stands in.
            Target::Leader => self.leader().unwrap_or(0),
        }
    }

    /// Applies `fault`; says what it did (with the manager it hit).
    pub fn apply(&mut self, fault: &Fault) -> Result<String, String> {
        match fault {
            Fault::Kill(t) => {
                let i = self.resolve(*t);
                let name = self.members[i].name.clone();
                let out = self.lab.lab(&["stop", &name], &["--kill"]);
                if !out.success() {
                    return Err(format!("lab stop --kill {name}: {out}"));
                }
                self.killed.insert(i);
                Ok(format!("kill -9 {name}"))
            }
            Fault::Pause(t) => {
                let i = self.resolve(*t);
                let pid = self.pid(i)?;
                signal(pid, Signal::SIGSTOP)?;
                self.paused.insert(i);
                Ok(format!("SIGSTOP {} (pid {pid})", self.members[i].name))
            }
            Fault::Isolate(t) => {
                let i = self.resolve(*t);
                let rest: Vec<usize> = (0..self.members.len()).filter(|&j| j != i).collect();
                self.partition(&[i], &rest)?;
                Ok(format!("isolate {}", self.members[i].name))
            }
            Fault::Split { minority } => {
                let rest: Vec<usize> = (0..self.members.len())
                    .filter(|j| !minority.contains(j))
                    .collect();
                self.partition(minority, &rest)?;
                Ok(fault.to_string())
            }
        }
    }

    /// Heals every fault in place: SIGCONT, partitions removed, killed managers started again
    /// (waiting until each is Ready). Errors say what could not be healed.
    pub fn heal(&mut self) -> Result<(), String> {
        let mut errors = Vec::new();
        for i in std::mem::take(&mut self.paused) {
            if let Err(e) = self.pid(i).and_then(|p| signal(p, Signal::SIGCONT)) {
                errors.push(e);
            }
        }
        for i in std::mem::take(&mut self.cut) {
            let m = &self.members[i];
            let out = nsenter(&m.netns, &["nft", "delete", "table", "inet", TABLE]);
            if !out.success() {
                errors.push(format!("{}: nft delete table: {out}", m.name));
            }
        }
        for i in std::mem::take(&mut self.killed) {
            let name = self.members[i].name.clone();
            let out = self.lab.ctl(
                &["lab", "start", &name, "--name", &self.lab.name],
                START_TIMEOUT,
            );
            if !out.success() {
                errors.push(format!(
                    "lab start {name} (the manager did not come back): {out}"
                ));
            }
        }
        if errors.is_empty() {
            Ok(())
        } else {
            Err(errors.join("\n"))
        }
    }

    /// Cuts `a` off from `b` both ways: in each namespace, drop packets to and from the other
    /// side's addresses.
    fn partition(&mut self, a: &[usize], b: &[usize]) -> Result<(), String> {
        for (side, other) in [(a, b), (b, a)] {
            let addrs: Vec<&str> = other
                .iter()
                .map(|&j| self.members[j].address.as_str())
                .collect();
            if addrs.is_empty() {
                continue;
            }
            let set = addrs.join(", ");
            let script = format!(
                "table inet {TABLE} {{\n\
                 \tchain input {{ type filter hook input priority -200; policy accept; ip saddr {{ {set} }} drop; }}\n\
                 \tchain output {{ type filter hook output priority -200; policy accept; ip daddr {{ {set} }} drop; }}\n\
                 }}\n"
            );
            let mut file = tempfile::NamedTempFile::new()
                .map_err(|e| format!("a temporary file for the nft rules: {e}"))?;
            file.write_all(script.as_bytes())
                .map_err(|e| format!("writing the nft rules: {e}"))?;
            let path = file.path().display().to_string();
            for &i in side {
                let m = &self.members[i];
                self.cut.insert(i);
                let out = nsenter(&m.netns, &["nft", "-f", &path]);
                if !out.success() {
                    return Err(format!("{}: nft -f: {out}", m.name));
                }
            }
        }
        Ok(())
    }

    /// Manager `i`'s swarmd pid from `lab.json`, checked to be this lab's swarmd.
    fn pid(&self, i: usize) -> Result<u32, String> {
        let name = &self.members[i].name;
        let file = self.lab.file();
        let pid = file["nodes"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|n| n["name"].as_str() == Some(name))
            .and_then(|n| n["pid"].as_u64())
            .ok_or_else(|| format!("{name} has no swarmd pid in lab.json"))?
            as u32;
        let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
        let state_dir = self.lab.dir().join("nodes").join(name);
        if !String::from_utf8_lossy(&cmdline).contains(&*state_dir.to_string_lossy()) {
            return Err(format!("pid {pid} is not {name}'s swarmd"));
        }
        Ok(pid)
    }
}

impl Drop for Nemesis<'_> {
    fn drop(&mut self) {
        // Never leave a swarmd stopped (lab down could not stop it) or a table behind.
        self.killed.clear();
        if let Err(e) = self.heal() {
            eprintln!("healing the lab's faults in cleanup: {e}");
        }
    }
}

fn signal(pid: u32, sig: Signal) -> Result<(), String> {
    kill(Pid::from_raw(pid as i32), sig).map_err(|e| format!("kill -{sig} {pid}: {e}"))
}

/// `nsenter --net=NETNS CMD…` (bounded).
fn nsenter(netns: &std::path::Path, cmd: &[&str]) -> Output {
    let mut c = Command::new("nsenter");
    c.arg(format!("--net={}", netns.display())).args(cmd);
    run(&mut c, Duration::from_secs(10))
}
