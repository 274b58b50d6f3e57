//! A `swarmctl lab` under test: a real lab of network namespaces, each node a real swarmd,
//! driven only through `swarmctl`. Each lab has its own name, subnet (inside 198.19.0.0/16) and
//! temporary `SHOAL_LAB_DIR`; dropping it runs `lab down` even when the test failed.
//!
//! Labs need root: a lab test is marked `#[ignore = "needs root"]` and starts with
//! `if !shoal_netlib::root::root_or_skip() { return; }`.

use crate::{bin, run, wait_for, Output, TaskView, Timings};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

pub const UP_TIMEOUT: Duration = Duration::from_secs(120);
pub const CMD_TIMEOUT: Duration = Duration::from_secs(60);

/// A lab under test: its name, subnet and private lab directory. Dropping it runs `lab down`
/// (after printing the end of every node's log if the test is failing) and removes the
/// directory.
pub struct Lab {
    /// The lab's name.
    pub name: String,
    /// Its subnet.
    pub subnet: String,
    /// The lab directory's parent (`SHOAL_LAB_DIR`).
    pub root: PathBuf,
    /// Extra swarmd flags (`SHOAL_LAB_SWARMD_ARGS`); fast timings by default.
    pub swarmd_args: String,
    swarmctl: PathBuf,
}

impl Default for Lab {
    fn default() -> Self {
        Lab::new()
    }
}

impl Lab {
    /// A fresh lab name, subnet and directory (nothing is started).
    pub fn new() -> Lab {
        static N: AtomicU32 = AtomicU32::new(0);
        let n = N.fetch_add(1, Ordering::Relaxed);
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.subsec_nanos())
            .unwrap_or(0);
        let seed = std::process::id().wrapping_mul(2_654_435_761) ^ nanos;
        let name = format!("t{:06x}", (seed.wrapping_add(n)) & 0xff_ffff);
        // A /24 of 198.19.0.0/16 per test (198.18.0.0/24, the default, is left to users).
        let subnet = format!("198.19.{}.0/24", (seed % 100) * 2 + n % 2 + 10);
        let root = std::env::temp_dir().join(format!("shoal-lab-{}-{n}", std::process::id()));
        let _ = std::fs::remove_dir_all(&root);
        std::fs::create_dir_all(&root).expect("create the lab dir");
        let root = root.canonicalize().expect("canonical lab dir");
        Lab {
            name,
            subnet,
            root,
            swarmd_args: {
                let t = Timings::default();
                format!(
                    "--election-timeout {} --raft-heartbeat {} --heartbeat-period {}",
                    t.election_timeout, t.raft_heartbeat, t.heartbeat_period
                )
            },
            swarmctl: bin("swarmctl"),
        }
    }

    pub fn dir(&self) -> PathBuf {
        self.root.join(&self.name)
    }

    /// Makes every node serve the Docker Engine API on `docker.sock` in its state dir (call
    /// before `lab up`).
    pub fn serve_docker(&mut self) {
        self.swarmd_args
            .push_str(" --docker-host unix://docker.sock");
    }

    /// `node`'s Docker Engine API socket (see [`Lab::serve_docker`]).
    pub fn docker_sock(&self, node: &str) -> PathBuf {
        self.dir().join(format!("nodes/{node}/docker.sock"))
    }

    /// `swarmctl ARGS` with this lab's directory and fast timings.
    pub fn ctl(&self, args: &[&str], timeout: Duration) -> Output {
        let mut cmd = Command::new(&self.swarmctl);
        cmd.args(args)
            .env("SHOAL_LAB_DIR", &self.root)
            .env("SHOAL_LAB_SWARMD_ARGS", &self.swarmd_args)
            .env("NO_COLOR", "1")
            .env_remove("SWARM_HOST");
        run(&mut cmd, timeout)
    }

    /// `swarmctl lab VERB … --name NAME REST…` (the name goes before a `--`).
    pub fn lab(&self, verb: &[&str], rest: &[&str]) -> Output {
        let mut args = vec!["lab"];
        args.extend(verb);
        args.extend(["--name", &self.name]);
        args.extend(rest);
        let timeout = if verb.first() == Some(&"up") {
            UP_TIMEOUT
        } else {
            CMD_TIMEOUT
        };
        self.ctl(&args, timeout)
    }

    /// `swarmctl ARGS` run inside manager1 (against its control socket).
    pub fn swarmctl(&self, args: &[&str]) -> Output {
        let mut rest = vec!["--", "swarmctl"];
        rest.extend(args);
        self.lab(&["exec", "manager1"], &rest)
    }

    /// [`Lab::swarmctl`], which must succeed; its stdout.
    pub fn swarmctl_ok(&self, args: &[&str]) -> String {
        let out = self.swarmctl(args);
        assert!(out.success(), "swarmctl {args:?}: {out}");
        out.stdout
    }

    /// A command in `node`'s namespace (bounded by the command's own timeouts and the lab's).
    pub fn on_node(&self, node: &str, cmd: &[&str]) -> Output {
        let mut rest = vec!["--"];
        rest.extend(cmd);
        self.lab(&["exec", node], &rest)
    }

    /// The reference article's section 3 set-up: the overlay network `lp_net` and the service
    /// `web` (`whoami`, 5 replicas, publishing 8080) on it, created without waiting.
    pub fn create_article_web(&self) {
        self.swarmctl_ok(&["network", "create", "-d", "overlay", "lp_net"]);
        self.swarmctl_ok(&[
            "service",
            "create",
            "--runtime",
            "process",
            "--name",
            "web",
            "--replicas",
            "5",
            "--publish",
            "8080",
            "--network",
            "lp_net",
            "-d",
            "whoami",
        ]);
    }

    /// A second service on `lp_net`, `client` (`whoami --port 9000`), created without waiting:
    /// where the article's VIP and DNS checks are made from.
    pub fn create_client(&self) {
        self.swarmctl_ok(&[
            "service",
            "create",
            "--runtime",
            "process",
            "--name",
            "client",
            "--network",
            "lp_net",
            "-d",
            "whoami",
            "--port",
            "9000",
        ]);
    }

    /// The service's running tasks, once there are exactly `n` (at most 60 s).
    pub fn running(&self, service: &str, n: usize) -> Vec<TaskView> {
        wait_for(
            &format!("{n} running tasks of {service}"),
            Duration::from_secs(60),
            || {
                let out = self.swarmctl(&["service", "ps", service, "--format", "json"]);
                if !out.success() {
                    return Err(out.to_string());
                }
                let v: serde_json::Value =
                    serde_json::from_str(&out.stdout).map_err(|e| e.to_string())?;
                let live: Vec<TaskView> = TaskView::list(&v)
                    .into_iter()
                    .filter(|t| t.state == "running")
                    .collect();
                if live.len() == n {
                    Ok(live)
                } else {
                    Err(format!("{:?}", TaskView::list(&v)))
                }
            },
        )
    }

    pub fn lab_ok(&self, verb: &[&str], rest: &[&str]) -> String {
        let out = self.lab(verb, rest);
        assert!(out.success(), "{out}");
        out.stdout
    }

    /// `lab up` with `managers` and `workers` on this lab's subnet, its registry loaded with
    /// the demo images at `images` ([`demo_images`]); `lab up`'s output.
    pub fn up_with_images(&self, managers: u32, workers: u32, images: &Path) -> String {
        let (m, w) = (managers.to_string(), workers.to_string());
        let images = images.display().to_string();
        self.lab_ok(
            &["up"],
            &[
                "--managers",
                &m,
                "--workers",
                &w,
                "--subnet",
                &self.subnet,
                "--images",
                &images,
            ],
        )
    }

    /// `lab.json`.
    pub fn file(&self) -> serde_json::Value {
        let p = self.dir().join("lab.json");
        let b = std::fs::read(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
        serde_json::from_slice(&b).expect("lab.json is JSON")
    }

    pub fn pids(&self) -> Vec<u32> {
        self.file()["nodes"]
            .as_array()
            .expect("nodes")
            .iter()
            .filter_map(|n| n["pid"].as_u64().map(|p| p as u32))
            .collect()
    }

    /// Checks that nothing of the lab is left: swarmds, directory, namespaces, host link,
    /// mounts.
    pub fn assert_gone(&self, pids: &[u32]) {
        for pid in pids {
            let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
            let cmdline = String::from_utf8_lossy(&cmdline);
            assert!(
                !cmdline.contains(&self.dir().display().to_string()),
                "swarmd {pid} of the lab is still alive: {cmdline}"
            );
        }
        assert!(
            !self.dir().exists(),
            "{} is still there",
            self.dir().display()
        );
        let link = format!("swlab-{}", self.name);
        assert!(
            !Path::new("/sys/class/net").join(&link).exists(),
            "link {link} is still there"
        );
        let mounts = std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
        let dir = self.dir().display().to_string();
        assert!(
            !mounts.lines().any(|l| l.contains(&dir)),
            "mounts left under {dir}:\n{mounts}"
        );
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        if std::thread::panicking() {
            let nodes = self.dir().join("nodes");
            if let Ok(rd) = std::fs::read_dir(&nodes) {
                for e in rd.flatten() {
                    let log = e.path().join("swarmd.log");
                    let text = std::fs::read_to_string(&log).unwrap_or_default();
                    let lines: Vec<&str> = text.lines().collect();
                    eprintln!("----- last lines of {} -----", log.display());
                    for l in &lines[lines.len().saturating_sub(30)..] {
                        eprintln!("{l}");
                    }
                }
            }
        }
        let out = self.lab(&["down"], &[]);
        if !out.success() {
            eprintln!("lab down in the test's cleanup failed:\n{out}");
        }
        let _ = std::fs::remove_dir_all(&self.root);
    }
}

/// The interface names in a `/proc/net/dev`.
pub fn interfaces(proc_net_dev: &str) -> Vec<String> {
    let mut v: Vec<String> = proc_net_dev
        .lines()
        .skip(2)
        .filter_map(|l| l.split_once(':').map(|(n, _)| n.trim().to_string()))
        .collect();
    v.sort();
    v
}

/// The demo images' OCI layout (`deploy/images.sh`): `$SHOAL_IMAGE_CACHE/oci`, by default
/// `/var/tmp/shoal-images/oci`.
pub fn demo_images() -> PathBuf {
    std::env::var_os("SHOAL_IMAGE_CACHE")
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/var/tmp/shoal-images"))
        .join("oci")
}

/// [`demo_images`] when they are built; otherwise `None` after saying why (a failure under CI,
/// which builds them first).
pub fn demo_images_or_skip() -> Option<PathBuf> {
    let layout = demo_images();
    if layout.join("index.json").is_file() {
        return Some(layout);
    }
    let msg = format!(
        "no demo images in {}: run deploy/images.sh (as root) first",
        layout.display()
    );
    assert!(std::env::var_os("CI").is_none(), "{msg}");
    eprintln!("skipped: {msg}");
    None
}
