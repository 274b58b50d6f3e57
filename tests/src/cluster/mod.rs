//! A cluster of real `swarmd` processes on 127.0.0.1, each with its own state directory, and the
//! `swarmctl` calls the tests make against it.

mod ctl;
mod restore;
mod state;
mod teardown;

use crate::bins::bin;
use crate::ports::{free_port, FixedPort};
use crate::run::{describe, run, Output};
use crate::wait::wait_for;
use serde_json::Value;
use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

/// Raft and heartbeat timings given to every node: raft a little slower than swarmd's defaults
/// (200ms / 40ms) for stability on a loaded CI machine, agent heartbeats faster (250ms instead of
/// 500ms) so node-down detection stays quick.
#[derive(Debug, Clone)]
pub struct Timings {
    /// `--election-timeout`.
    pub election_timeout: String,
    /// `--raft-heartbeat`.
    pub raft_heartbeat: String,
    /// `--heartbeat-period` (a node is DOWN after 3 missed periods).
    pub heartbeat_period: String,
}

impl Default for Timings {
    fn default() -> Self {
        Timings {
            // A little slower than swarmd's defaults (200ms / 40ms): a CI machine's 2 cores are
            // busy building and testing, and tighter timings make leadership move under load.
            election_timeout: "300ms".into(),
            raft_heartbeat: "80ms".into(),
            heartbeat_period: "250ms".into(),
        }
    }
}

/// One `swarmd` of the cluster.
#[derive(Debug)]
pub struct NodeProc {
    /// `--hostname` (`manager1`, `worker2`, …).
    pub hostname: String,
    /// `--state-dir`; holds `swarmd.log` (its stderr, across restarts) and `swarmd.out`.
    pub dir: PathBuf,
    /// `--listen-addr` (127.0.0.1:PORT), kept across restarts.
    pub addr: String,
    /// Whether it joined as a manager.
    pub manager: bool,
    child: Mutex<Option<Child>>,
}

impl NodeProc {
    /// The control socket (managers).
    pub fn socket(&self) -> PathBuf {
        self.dir.join("swarmd.sock")
    }

    /// The node's certificates (`--cert-dir` for `swarmctl` over TCP).
    pub fn certs(&self) -> PathBuf {
        self.dir.join("certificates")
    }

    /// `--host` value for `swarmctl`.
    pub fn host(&self) -> String {
        format!("unix://{}", self.socket().display())
    }

    /// swarmd's log (stderr).
    pub fn log_path(&self) -> PathBuf {
        self.dir.join("swarmd.log")
    }

    /// The node id from `node.json`, once the node has initialised or joined.
    pub fn node_id(&self) -> Option<String> {
        let b = std::fs::read(self.dir.join("node.json")).ok()?;
        let v: Value = serde_json::from_slice(&b).ok()?;
        v["node_id"].as_str().map(str::to_string)
    }

    /// Pid of the running swarmd, if this harness started it and it has not been stopped.
    pub fn pid(&self) -> Option<u32> {
        self.lock().as_ref().map(Child::id)
    }

    fn lock(&self) -> MutexGuard<'_, Option<Child>> {
        self.child.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn mark(&self, what: &str) {
        if let Ok(mut f) = OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.log_path())
        {
            let _ = writeln!(f, "===== e2e harness: {what} =====");
        }
    }
}

/// A test cluster: `manager1..M` then `worker1..W`, addressed by index in that order.
///
/// Dropping it kills every swarmd it started (by pid, only those), kills task processes left
/// behind in its directories, prints the tail of every log if the test is failing, and removes
/// its directories (set `SHOAL_E2E_KEEP=1` to keep them after a failure, `SHOAL_E2E_KEEP=always`
/// to keep them in any case).
#[derive(Debug)]
pub struct Cluster {
    root: PathBuf,
    nodes: Vec<NodeProc>,
    timings: Timings,
    swarmd: PathBuf,
    swarmctl: PathBuf,
    started: Instant,
    history: Mutex<Vec<String>>,
    /// More `swarmd` arguments for every node (`--cert-expiry 12s`, `--insecure-plaintext`).
    extra: Vec<String>,
    /// The fixed port of a cluster restored from a fixture, released after its nodes stopped.
    fixed_port: Option<FixedPort>,
}

const START_TIMEOUT: Duration = Duration::from_secs(30);
const CTL_TIMEOUT: Duration = Duration::from_secs(90);
const STOP_TIMEOUT: Duration = Duration::from_secs(30);
/// Default deadline of [`Cluster::wait_running`] and friends.
const CONVERGE: Duration = Duration::from_secs(30);

impl Cluster {
    /// Starts `managers` managers and `workers` workers with the default [`Timings`] and waits
    /// until `node ls` shows all of them Ready with a leader.
    pub fn start(managers: usize, workers: usize) -> Cluster {
        Cluster::start_with(managers, workers, Timings::default())
    }

    /// [`Cluster::start`] with other timings.
    pub fn start_with(managers: usize, workers: usize, timings: Timings) -> Cluster {
        Cluster::start_args(managers, workers, timings, &[])
    }

    /// [`Cluster::start_with`], every swarmd given `extra` arguments too.
    pub fn start_args(
        managers: usize,
        workers: usize,
        timings: Timings,
        extra: &[&str],
    ) -> Cluster {
        assert!(managers >= 1, "a cluster needs a manager");
        let mut c = Cluster::empty(timings);
        c.extra = extra.iter().map(|s| s.to_string()).collect();
        let first = c.add("manager1", true);
        c.spawn(first, None);
        c.wait_member(first, first);
        let manager_token = c
            .ctl_ok(first, &["swarm", "join-token", "manager", "-q"])
            .trim()
            .to_string();
        let worker_token = c
            .ctl_ok(first, &["swarm", "join-token", "worker", "-q"])
            .trim()
            .to_string();
        let join = c.nodes[first].addr.clone();
        for k in 2..=managers {
            // One at a time: each new manager is a raft membership change.
            let i = c.add(&format!("manager{k}"), true);
            c.spawn(i, Some((&join, &manager_token)));
            c.wait_member(first, i);
        }
        for k in 1..=workers {
            let i = c.add(&format!("worker{k}"), false);
            c.spawn(i, Some((&join, &worker_token)));
        }
        c.wait_ready();
        c
    }

    /// Starts a new node that joins through manager 0 with `token`, and waits until it is Ready.
    pub fn join(&mut self, hostname: &str, manager: bool, token: &str) -> usize {
        let i = self.add(hostname, manager);
        let join = self.nodes[0].addr.clone();
        self.spawn(i, Some((&join, token)));
        self.wait_member(0, i);
        i
    }

    /// An empty cluster directory (no nodes yet).
    fn empty(timings: Timings) -> Cluster {
        static N: AtomicU32 = AtomicU32::new(0);
        let name = format!(
            "shoal-e2e-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        );
        let root = std::env::temp_dir().join(name);
        let _ = std::fs::remove_dir_all(&root);
        std::fs::create_dir_all(&root)
            .unwrap_or_else(|e| panic!("cannot create {}: {e}", root.display()));
        // Task processes report their cwd by its real path: compare against the same.
        let root = root.canonicalize().expect("canonical temp dir");
        Cluster {
            root,
            nodes: Vec::new(),
            timings,
            swarmd: bin("swarmd"),
            swarmctl: bin("swarmctl"),
            started: Instant::now(),
            history: Mutex::new(Vec::new()),
            extra: Vec::new(),
            fixed_port: None,
        }
    }

    fn add(&mut self, hostname: &str, manager: bool) -> usize {
        let dir = self.root.join(hostname);
        std::fs::create_dir_all(&dir)
            .unwrap_or_else(|e| panic!("cannot create {}: {e}", dir.display()));
        let addr = format!("127.0.0.1:{}", free_port());
        self.nodes.push(NodeProc {
            hostname: hostname.to_string(),
            dir,
            addr,
            manager,
            child: Mutex::new(None),
        });
        self.nodes.len() - 1
    }

    /// The swarmd command line for node `i` (without --join).
    fn swarmd_cmd(&self, dir: &Path, hostname: &str, addr: &str) -> Command {
        let mut cmd = Command::new(&self.swarmd);
        cmd.arg("--state-dir")
            .arg(dir)
            .args([
                "--hostname",
                hostname,
                "--listen-addr",
                addr,
                "--data-plane",
                "none",
            ])
            .args(["--election-timeout", &self.timings.election_timeout])
            .args(["--raft-heartbeat", &self.timings.raft_heartbeat])
            .args(["--heartbeat-period", &self.timings.heartbeat_period])
            .args(&self.extra)
            .env("NO_COLOR", "1")
            .env_remove("SWARM_TOKEN")
            .env_remove("SWARM_HOST");
        cmd
    }

    fn spawn(&self, i: usize, join: Option<(&str, &str)>) {
        let n = &self.nodes[i];
        let mut guard = n.lock();
        assert!(guard.is_none(), "{} is already running", n.hostname);
        let mut cmd = self.swarmd_cmd(&n.dir, &n.hostname, &n.addr);
        if let Some((addr, token)) = join {
            cmd.args(["--join", addr, "--token", token]);
        }
        n.mark(&format!(
            "starting `{}` at +{:.1}s",
            describe(&cmd),
            self.started.elapsed().as_secs_f64()
        ));
        let open = |p: PathBuf| -> File {
            OpenOptions::new()
                .create(true)
                .append(true)
                .open(&p)
                .unwrap_or_else(|e| panic!("cannot open {}: {e}", p.display()))
        };
        let child = cmd
            .stdin(Stdio::null())
            .stdout(open(n.dir.join("swarmd.out")))
            .stderr(open(n.log_path()))
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start swarmd for {}: {e}", n.hostname));
        *guard = Some(child);
    }

    /// Waits until manager `via` lists node `i` as Ready and, if `i` is a manager, until `i`
    /// serves its socket and knows the leader.
    fn wait_member(&self, via: usize, i: usize) {
        let name = self.nodes[i].hostname.clone();
        wait_for(&format!("{name} to be Ready"), START_TIMEOUT, || {
            self.check_alive();
            let mut views = vec![self.try_nodes(via)?];
            if self.nodes[i].manager {
                views.push(self.try_nodes(i)?);
            }
            for nodes in &views {
                let me = nodes
                    .iter()
                    .find(|n| n.hostname == name)
                    .ok_or_else(|| format!("{name} not listed: {nodes:?}"))?;
                if me.state != "ready" {
                    return Err(format!("{name} is {}", me.state));
                }
                if !nodes.iter().any(|n| n.manager_status == "Leader") {
                    return Err(format!("no leader in {nodes:?}"));
                }
            }
            Ok(())
        })
    }

    /// Waits until every running node is Ready and the running managers agree on a leader.
    pub fn wait_ready(&self) {
        wait_for("every running node to be Ready", START_TIMEOUT, || {
            self.check_alive();
            let leader = self.try_leader()?;
            let nodes = self.try_nodes(leader)?;
            for (i, n) in self.nodes.iter().enumerate() {
                if !self.is_running(i) {
                    continue;
                }
                let v = nodes
                    .iter()
                    .find(|v| v.hostname == n.hostname)
                    .ok_or_else(|| format!("{} not listed", n.hostname))?;
                if v.state != "ready" {
                    return Err(format!("{} is {}: {nodes:?}", n.hostname, v.state));
                }
            }
            Ok(())
        })
    }

    /// Fails the test if a swarmd the harness started has exited on its own.
    pub fn check_alive(&self) {
        for n in &self.nodes {
            let mut g = n.lock();
            if let Some(c) = g.as_mut() {
                if let Ok(Some(status)) = c.try_wait() {
                    *g = None;
                    drop(g);
                    n.mark(&format!("exited on its own: {status}"));
                    panic!(
                        "swarmd {} exited unexpectedly ({status}); see its log below",
                        n.hostname
                    );
                }
            }
        }
    }

    /// The nodes, in order.
    pub fn nodes(&self) -> &[NodeProc] {
        &self.nodes
    }

    /// Node `i`.
    pub fn node(&self, i: usize) -> &NodeProc {
        &self.nodes[i]
    }

    /// Indexes of the nodes started as managers.
    pub fn managers(&self) -> Vec<usize> {
        (0..self.nodes.len())
            .filter(|&i| self.nodes[i].manager)
            .collect()
    }

    /// Indexes of the nodes started as workers.
    pub fn workers(&self) -> Vec<usize> {
        (0..self.nodes.len())
            .filter(|&i| !self.nodes[i].manager)
            .collect()
    }

    /// The directory holding every node's state dir.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Whether node `i`'s swarmd is running (started and not stopped or killed).
    pub fn is_running(&self, i: usize) -> bool {
        let mut g = self.nodes[i].lock();
        match g.as_mut().map(|c| c.try_wait()) {
            Some(Ok(None)) => true,
            Some(_) => false,
            None => false,
        }
    }

    /// Index of the node with this id.
    pub fn index_of(&self, node_id: &str) -> Option<usize> {
        self.nodes
            .iter()
            .position(|n| n.node_id().as_deref() == Some(node_id))
    }

    /// Node `i`'s id.
    pub fn node_id(&self, i: usize) -> String {
        self.nodes[i]
            .node_id()
            .unwrap_or_else(|| panic!("{} has no node.json yet", self.nodes[i].hostname))
    }

    /// Index of the node with this hostname.
    pub fn index_of_hostname(&self, hostname: &str) -> Option<usize> {
        self.nodes.iter().position(|n| n.hostname == hostname)
    }

    // ----- process control -----

    /// `kill -9` node `i`'s swarmd (its tasks die with it).
    pub fn kill9(&self, i: usize) {
        let n = &self.nodes[i];
        let mut g = n.lock();
        let mut c = g
            .take()
            .unwrap_or_else(|| panic!("{} is not running", n.hostname));
        let _ = c.kill();
        let _ = c.wait();
        n.mark(&format!(
            "killed with SIGKILL at +{:.1}s",
            self.started.elapsed().as_secs_f64()
        ));
    }

    /// Freezes node `i`'s swarmd with SIGSTOP (a manager cut off from the others, its sockets
    /// open). [`Cluster::resume`] thaws it; dropping the cluster kills it either way.
    pub fn pause(&self, i: usize) {
        self.signal(i, "STOP");
    }

    /// Thaws node `i`'s swarmd with SIGCONT after [`Cluster::pause`].
    pub fn resume(&self, i: usize) {
        self.signal(i, "CONT");
    }

    fn signal(&self, i: usize, sig: &str) {
        let n = &self.nodes[i];
        let pid = n
            .pid()
            .unwrap_or_else(|| panic!("{} is not running", n.hostname));
        n.mark(&format!(
            "sending SIG{sig} at +{:.1}s",
            self.started.elapsed().as_secs_f64()
        ));
        let out = run(
            Command::new("kill").args([&format!("-{sig}"), &pid.to_string()]),
            Duration::from_secs(5),
        );
        assert!(out.success(), "{out}");
    }

    /// Stops node `i`'s swarmd with SIGTERM and waits for it to exit.
    pub fn stop(&self, i: usize) {
        let n = &self.nodes[i];
        let mut g = n.lock();
        let c = g
            .as_mut()
            .unwrap_or_else(|| panic!("{} is not running", n.hostname));
        n.mark(&format!(
            "sending SIGTERM at +{:.1}s",
            self.started.elapsed().as_secs_f64()
        ));
        let pid = c.id().to_string();
        let out = run(
            Command::new("kill").args(["-TERM", &pid]),
            Duration::from_secs(5),
        );
        assert!(out.success(), "{out}");
        let started = Instant::now();
        loop {
            match c.try_wait() {
                Ok(Some(status)) => {
                    n.mark(&format!("exited after SIGTERM: {status}"));
                    break;
                }
                Ok(None) if started.elapsed() > STOP_TIMEOUT => {
                    let _ = c.kill();
                    let _ = c.wait();
                    *g = None;
                    panic!(
                        "{} did not exit within {STOP_TIMEOUT:?} of SIGTERM; killed it",
                        n.hostname
                    );
                }
                _ => std::thread::sleep(Duration::from_millis(20)),
            }
        }
        *g = None;
    }

    /// Starts node `i` again with the same state dir, address and name (no --join: it comes
    /// back with the identity in its state dir). Does not wait for anything.
    pub fn restart(&self, i: usize) {
        self.spawn(i, None);
    }

    /// Runs `swarmd` in a fresh state dir `<root>/<name>` with the cluster's timings plus
    /// `args`, expecting it to exit on its own (a refused join, a bad flag) within `timeout`.
    /// Returns its output and the state dir.
    pub fn swarmd_once(&self, name: &str, args: &[&str], timeout: Duration) -> (Output, PathBuf) {
        let dir = self.root.join(name);
        let addr = format!("127.0.0.1:{}", free_port());
        let mut cmd = self.swarmd_cmd(&dir, name, &addr);
        cmd.args(args);
        (run(&mut cmd, timeout), dir)
    }
}
