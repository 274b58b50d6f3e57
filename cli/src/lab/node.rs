//! `swarmctl lab restart | stop | start NODE`: one node's swarmd, for maintenance and failure
//! drills. The swarmd is found by the pid in `lab.json` or by its `--state-dir` (one restarted
//! by hand counts), checked in `/proc` before it is signalled, and started again in the node's
//! namespace with the arguments `lab up` recorded (its state dir holds its identity, so no join
//! token is needed). `start` and `restart` wait until a live manager sees the node Ready again.

use super::exec::{load, no_such_node};
use super::procs::{self, ProcInfo};
use super::ready;
use super::registry;
use super::state::{LabDir, LabFile, NodeRecord};
use super::{name_flag, require_root, Printer};
use anyhow::{bail, Context};
use serde_json::json;
use shoal_netlib::netns::NetNs;
use std::time::{Duration, Instant};

/// How long a swarmd gets to exit after SIGTERM before it is killed.
pub const STOP_TIMEOUT: Duration = Duration::from_secs(20);
/// How long a SIGKILLed swarmd may take to be gone.
pub const KILL_TIMEOUT: Duration = Duration::from_secs(5);
/// How long `start` and `restart` wait for the node to be Ready again.
pub const READY_TIMEOUT: Duration = Duration::from_secs(60);
/// Lines of the node's log shown when its swarmd fails to come back.
const LOG_LINES: usize = 20;

/// One node of an existing lab, and its swarmd if one runs.
struct Target {
    dir: LabDir,
    file: LabFile,
    index: usize,
    running: Option<u32>,
}

impl Target {
    /// Node `node` of lab `name`, for `verb` (which needs root).
    fn open(name: &str, node: &str, verb: &str) -> anyhow::Result<Target> {
        let dir = super::existing(name)?;
        require_root(verb)?;
        let file = load(&dir)?;
        let Some(index) = file.nodes.iter().position(|n| n.name == node) else {
            return Err(no_such_node(&file, node));
        };
        let rec = &file.nodes[index];
        let running =
            procs::running_pid(rec.pid, &rec.state_dir, &procs::lab_swarmds(&dir.nodes()));
        Ok(Target {
            dir,
            file,
            index,
            running,
        })
    }

    fn rec(&self) -> &NodeRecord {
        &self.file.nodes[self.index]
    }

    fn name(&self) -> &str {
        &self.rec().name
    }

    /// Whether `pid` is still this node's swarmd.
    fn is_ours(&self, pid: u32) -> bool {
        ProcInfo::read(pid).is_some_and(|p| {
            p.is_lab_swarmd(&self.dir.nodes())
                && p.state_dir().as_deref() == Some(self.rec().state_dir.as_path())
        })
    }

    /// Waits up to `limit` for `pid` to be gone (or a zombie, or no longer this node's swarmd).
    async fn gone_within(&self, pid: u32, limit: Duration) -> bool {
        let started = Instant::now();
        while self.is_ours(pid) {
            if started.elapsed() >= limit {
                return false;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        true
    }

    /// Stops swarmd `pid` of this node: SIGTERM and a bounded wait, then SIGKILL (said on `p`);
    /// or SIGKILL at once with `kill`. Records that it no longer runs. Returns the signal that
    /// ended it.
    async fn stop(
        &mut self,
        p: &mut Printer,
        pid: u32,
        kill: bool,
    ) -> anyhow::Result<&'static str> {
        // Checked again just before the signal: the pid must still be this node's swarmd.
        anyhow::ensure!(
            self.is_ours(pid),
            "pid {pid} is no longer {}'s swarmd; run the command again",
            self.name()
        );
        let how = if kill {
            procs::signal(pid, "KILL");
            "SIGKILL"
        } else {
            procs::signal(pid, "TERM");
            if self.gone_within(pid, STOP_TIMEOUT).await {
                "SIGTERM"
            } else {
                p.say(&format!(
                    "{}: swarmd (pid {pid}) still runs {}s after SIGTERM: killing it (SIGKILL)",
                    self.name(),
                    STOP_TIMEOUT.as_secs()
                ));
                if self.is_ours(pid) {
                    procs::signal(pid, "KILL");
                }
                "SIGKILL"
            }
        };
        if !self.gone_within(pid, KILL_TIMEOUT).await {
            bail!(
                "{}'s swarmd (pid {pid}) survived SIGKILL for {}s (stuck in the kernel?)",
                self.name(),
                KILL_TIMEOUT.as_secs()
            );
        }
        self.running = None;
        self.file.nodes[self.index].pid = None;
        self.dir.save(&self.file)?;
        Ok(how)
    }

    /// Starts the node's swarmd in its namespace, records its pid, and waits until a live
    /// manager sees the node Ready again. Returns the new pid and the manager that saw it
    /// (`None`: the node is a locked manager, see [`ready::wait_ready`]).
    async fn start(&mut self, p: &mut Printer) -> anyhow::Result<(u32, Option<String>)> {
        let rec = self.rec().clone();
        let flag = name_flag(&self.dir.name);
        let ns = NetNs::open(&rec.netns).with_context(|| {
            format!(
                "the namespace of {} is gone: run `swarmctl lab down{flag}` and `swarmctl lab up{flag}` again",
                rec.name
            )
        })?;
        let swarmd = procs::find_swarmd()?;
        // The nodes pull images through the lab's registry: bring it back if it is gone (a
        // reboot of the host, a crash). A failure is said but does not keep the node down.
        if let Some(mut reg) = self.file.registry.clone() {
            match registry::ensure(&self.dir, &mut reg).await {
                Ok(Some(pid)) => p.say(&format!(
                    "registry: was not running; started again on http://{}/ (pid {pid})",
                    reg.address
                )),
                Ok(None) => {}
                Err(e) => eprintln!("warning: the lab's registry did not start again: {e:#}"),
            }
            self.file.registry = Some(reg);
            self.dir.save(&self.file)?;
        }
        let args = rec.swarmd_args(&self.dir, &procs::extra_args());
        let log = self.dir.log(&rec.name);
        let log_from = std::fs::metadata(&log).map(|m| m.len()).unwrap_or(0);
        let deadline = Instant::now() + READY_TIMEOUT;
        let mut child = procs::spawn_swarmd(&ns, &swarmd, &self.dir, &rec.name, &args)?;
        let pid = child.id();
        self.running = Some(pid);
        self.file.nodes[self.index].pid = Some(pid);
        self.dir.save(&self.file)?;
        match ready::wait_ready(&self.dir, &self.file, &rec, &mut child, log_from, deadline).await {
            Ok(manager) => Ok((pid, manager)),
            Err(e) => {
                if let Ok(Some(_)) = child.try_wait() {
                    self.file.nodes[self.index].pid = None;
                    self.dir.save(&self.file)?;
                }
                let tail = procs::tail(&log, LOG_LINES);
                Err(e.context(format!(
                    "{}'s swarmd (pid {pid}) did not come back; last lines of {}:\n{tail}",
                    rec.name,
                    log.display()
                )))
            }
        }
    }
}

/// What `start` / `restart` say of a manager that came up locked (autolock).
fn locked_text(name: &str, node: &str, pid: u32) -> String {
    format!(
        "{node}: swarmd started (pid {pid}) and is LOCKED (autolock): unlock it with \
         `swarmctl lab exec{} {node} -- swarmctl swarm unlock`",
        name_flag(name)
    )
}

fn secs(d: Duration) -> f64 {
    (d.as_secs_f64() * 10.0).round() / 10.0
}

/// `lab restart NODE`: stops the node's swarmd (SIGTERM, bounded) and starts it again, then
/// waits until it is Ready. A node that was not running is started, as `systemctl restart`
/// does.
pub async fn restart(name: &str, node: &str, p: &mut Printer) -> anyhow::Result<()> {
    let mut t = Target::open(name, node, "restart")?;
    let began = Instant::now();
    let old = t.running;
    let (how, stopped_after) = match old {
        Some(pid) => (Some(t.stop(p, pid, false).await?), Some(began.elapsed())),
        None => (None, None),
    };
    let (pid, manager) = t.start(p).await?;
    let after = began.elapsed();
    if p.json {
        p.out.json(&json!({
            "lab": name,
            "node": node,
            "old_pid": old,
            "pid": pid,
            "stopped_with": how,
            "stopped_after_s": stopped_after.map(secs),
            "ready_after_s": manager.as_ref().map(|_| secs(after)),
            "seen_by": manager,
            "locked": manager.is_none(),
        }));
        return Ok(());
    }
    if manager.is_none() {
        p.say(&locked_text(name, node, pid));
        return Ok(());
    }
    let killed = if how == Some("SIGKILL") {
        " (killed: it ignored SIGTERM)"
    } else {
        ""
    };
    match old {
        Some(old) => p.say(&format!(
            "{node}: swarmd restarted (pid {old} -> {pid}){killed}, Ready again after {:.1}s",
            after.as_secs_f64()
        )),
        None => p.say(&format!(
            "{node}: swarmd was not running; started (pid {pid}), Ready after {:.1}s",
            after.as_secs_f64()
        )),
    }
    Ok(())
}

/// `lab stop NODE [--kill]`: SIGTERM and wait (a clean stop), or SIGKILL (a crash). Stopping a
/// node that is not running succeeds and says so.
pub async fn stop(name: &str, node: &str, kill: bool, p: &mut Printer) -> anyhow::Result<()> {
    let mut t = Target::open(name, node, "stop")?;
    let Some(pid) = t.running else {
        if p.json {
            p.out.json(&json!({
                "lab": name, "node": node, "pid": null, "stopped_with": null,
            }));
        } else {
            p.say(&format!("{node}: swarmd is not running (nothing to stop)"));
        }
        return Ok(());
    };
    let began = Instant::now();
    let how = t.stop(p, pid, kill).await?;
    let after = began.elapsed();
    if p.json {
        p.out.json(&json!({
            "lab": name,
            "node": node,
            "pid": pid,
            "stopped_with": how,
            "stopped_after_s": secs(after),
        }));
    } else if kill {
        p.say(&format!(
            "{node}: swarmd killed (pid {pid}, SIGKILL: a crash, no goodbye to the managers)"
        ));
    } else {
        p.say(&format!(
            "{node}: swarmd stopped (pid {pid}, {how} after {:.1}s); start it with `swarmctl lab start{} {node}`",
            after.as_secs_f64(),
            name_flag(name)
        ));
    }
    Ok(())
}

/// `lab start NODE`: starts a stopped node's swarmd and waits until it is Ready. Refuses when
/// it runs already.
pub async fn start(name: &str, node: &str, p: &mut Printer) -> anyhow::Result<()> {
    let mut t = Target::open(name, node, "start")?;
    if let Some(pid) = t.running {
        bail!(
            "{node}'s swarmd already runs (pid {pid}): use `swarmctl lab restart{} {node}` to restart it",
            name_flag(name)
        );
    }
    let began = Instant::now();
    let (pid, manager) = t.start(p).await?;
    let after = began.elapsed();
    if p.json {
        p.out.json(&json!({
            "lab": name,
            "node": node,
            "pid": pid,
            "ready_after_s": manager.as_ref().map(|_| secs(after)),
            "seen_by": manager,
            "locked": manager.is_none(),
        }));
    } else if manager.is_none() {
        p.say(&locked_text(name, node, pid));
    } else {
        p.say(&format!(
            "{node}: swarmd started (pid {pid}), Ready after {:.1}s",
            after.as_secs_f64()
        ));
    }
    Ok(())
}
