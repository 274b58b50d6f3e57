//! Debian's `dockerd` (the `docker.io` package) as a *reference* server for differential tests:
//! the same `docker` CLI commands are run against it and against Shoal and their answers
//! compared. Shoal never needs dockerd; only these tests do.
//!
//! Isolation (root): dockerd runs in a network namespace of its own (`shoal-dd-<pid>-<n>`) whose
//! only non-loopback link is one end of a veth pair whose other end is in the same namespace,
//! addressed in 198.18.0.0/15 (for `docker swarm init --advertise-addr`): no route or NAT to
//! any real interface. It also runs in a private mount namespace (`unshare --mount
//! --propagation private`), where
//!
//! * a sysfs of its own network namespace is mounted on `/sys` and the host's cgroup tree is
//!   moved back under it (`ip netns exec` mounts such a sysfs but loses `/sys/fs/cgroup`, and
//!   dockerd then dies with "Devices cgroup isn't mounted");
//! * `/etc/docker` and `/run/docker` are private tmpfs (dockerd writes its trust key and plugin
//!   directory there whatever its flags say).
//!
//! Everything else is under one temporary directory: `--data-root`, `--exec-root`,
//! `--pidfile`, `--config-file` (`{}`), the API socket (`-H unix://…/docker.sock`) and the log.
//! No bridge, no iptables (`--bridge=none --iptables=false --ip6tables=false
//! --ip-masq=false`), storage driver `vfs`; dockerd starts its own containerd under the
//! exec-root. Dropping a [`Dockerd`] stops it by pid (SIGTERM, then SIGKILL after a deadline),
//! kills its containerd by pid if it outlived it, removes the directory and deletes the
//! namespace, also when the test failed.

use crate::{run, Output};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

/// Where Debian installs dockerd.
pub const DOCKERD: &str = "/usr/sbin/dockerd";

/// How long dockerd may take to answer `/version` after it was started.
pub const START_TIMEOUT: Duration = Duration::from_secs(60);

/// How long dockerd may take to exit after SIGTERM before it is killed.
pub const STOP_TIMEOUT: Duration = Duration::from_secs(30);

/// The script run in the private mount namespace (`$1` = directory, `$2` = netns name); it
/// ends by exec'ing dockerd, so the pid spawned is dockerd's.
const LAUNCH: &str = r#"
D=$1; NS=$2
mount --rbind /sys/fs/cgroup "$D/cg"
exec nsenter --net="/run/netns/$NS" sh -euc '
D=$1
mount -t sysfs sysfs /sys
mount --move "$D/cg" /sys/fs/cgroup
mount -t tmpfs -o mode=0755 shoal-dd-etc /etc/docker
mount -t tmpfs -o mode=0700 shoal-dd-run /run/docker
exec dockerd --config-file "$D/daemon.json" --data-root "$D/data" --exec-root "$D/exec" \
  --pidfile "$D/dockerd.pid" -H "unix://$D/docker.sock" \
  --bridge=none --iptables=false --ip6tables=false --ip-masq=false \
  --storage-driver vfs --log-level info
' sh "$D"
"#;

/// A running reference dockerd; see the module documentation.
pub struct Dockerd {
    /// Its API socket.
    pub sock: PathBuf,
    /// The address of its only interface (for `swarm init --advertise-addr`).
    pub addr: String,
    /// Its directory (data, exec root, socket, log).
    pub dir: PathBuf,
    netns: String,
    child: Option<Child>,
    created: Vec<PathBuf>,
}

/// `Some(path)` of dockerd when installed. Otherwise `None` after saying why; under `CI` its
/// absence fails the test (deploy/deps.sh installs docker.io).
pub fn dockerd_or_skip() -> Option<PathBuf> {
    let p = std::env::var_os("SHOAL_DOCKERD")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(DOCKERD));
    if p.is_file() {
        return Some(p);
    }
    let msg = format!(
        "no dockerd at {}: install Debian's docker.io (deploy/deps.sh) or set SHOAL_DOCKERD",
        p.display()
    );
    assert!(std::env::var_os("CI").is_none(), "{msg}");
    eprintln!("skipped: {msg}");
    None
}

fn sh(args: &[&str]) -> Output {
    let mut c = Command::new(args[0]);
    c.args(&args[1..]);
    run(&mut c, Duration::from_secs(30))
}

fn must(args: &[&str]) {
    let out = sh(args);
    assert!(out.success(), "{out}");
}

impl Dockerd {
    /// Starts dockerd as described in the module documentation, its interface addressed `cidr`
    /// (e.g. `198.18.236.1/24`), and waits (at most [`START_TIMEOUT`]) until `docker` (`cli`)
    /// gets its `/version`. Panics, after cleaning up, if it does not come up.
    pub fn start(dockerd: &Path, cli: &Path, cidr: &str) -> Dockerd {
        static N: AtomicU32 = AtomicU32::new(0);
        let n = N.fetch_add(1, Ordering::Relaxed);
        let pid = std::process::id();
        let dir = std::env::temp_dir().join(format!("shoal-dd-{pid}-{n}"));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(dir.join("cg")).expect("create dockerd's dir");
        std::fs::write(dir.join("daemon.json"), "{}\n").expect("write daemon.json");
        let addr = cidr.split('/').next().unwrap_or(cidr).to_string();
        let mut d = Dockerd {
            sock: dir.join("docker.sock"),
            addr,
            dir: dir.clone(),
            netns: format!("shoal-dd-{pid}-{n}"),
            child: None,
            created: Vec::new(),
        };
        // Mount points for the private tmpfs; made (and removed again) only if missing.
        for p in ["/etc/docker", "/run/docker"] {
            let p = PathBuf::from(p);
            if !p.exists() {
                std::fs::create_dir_all(&p).expect("create a mount point");
                d.created.push(p);
            }
        }
        let ns = d.netns.clone();
        must(&["ip", "netns", "add", &ns]);
        must(&["ip", "-n", &ns, "link", "set", "lo", "up"]);
        must(&[
            "ip", "link", "add", "dd0", "netns", &ns, "type", "veth", "peer", "name", "dd1",
            "netns", &ns,
        ]);
        must(&["ip", "-n", &ns, "addr", "add", cidr, "dev", "dd0"]);
        must(&["ip", "-n", &ns, "link", "set", "dd0", "up"]);
        must(&["ip", "-n", &ns, "link", "set", "dd1", "up"]);
        let log = std::fs::File::create(dir.join("dockerd.log")).expect("create dockerd.log");
        let bin_dir = dockerd
            .parent()
            .map(|p| p.display().to_string())
            .unwrap_or_default();
        let path = format!(
            "{bin_dir}:{}",
            std::env::var("PATH").unwrap_or_else(|_| "/usr/sbin:/usr/bin:/sbin:/bin".into())
        );
        let child = Command::new("unshare")
            .args([
                "--mount",
                "--propagation",
                "private",
                "sh",
                "-euc",
                LAUNCH,
                "sh",
            ])
            .arg(&dir)
            .arg(&ns)
            .env("PATH", path)
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("dup the log"))
            .stderr(log)
            .spawn()
            .expect("start unshare … dockerd");
        d.child = Some(child);
        d.wait_up(cli);
        d
    }

    fn wait_up(&mut self, cli: &Path) {
        let started = Instant::now();
        loop {
            if let Some(Ok(Some(status))) = self.child.as_mut().map(Child::try_wait) {
                panic!(
                    "dockerd exited ({status}) before answering; its log:\n{}",
                    self.log_tail(40)
                );
            }
            if self.sock.exists() {
                let mut c = Command::new(cli);
                c.args(["version", "--format", "{{.Server.Version}}"])
                    .env("DOCKER_HOST", format!("unix://{}", self.sock.display()))
                    .env("DOCKER_CONFIG", self.dir.join("cli"));
                if run(&mut c, Duration::from_secs(10)).success() {
                    return;
                }
            }
            if started.elapsed() > START_TIMEOUT {
                panic!(
                    "dockerd did not answer within {START_TIMEOUT:?}; its log:\n{}",
                    self.log_tail(40)
                );
            }
            std::thread::sleep(crate::POLL);
        }
    }

    /// The last `n` lines of dockerd's log (grpc chatter left out).
    pub fn log_tail(&self, n: usize) -> String {
        let text = std::fs::read_to_string(self.dir.join("dockerd.log")).unwrap_or_default();
        let lines: Vec<&str> = text
            .lines()
            .filter(|l| !l.contains("module=grpc"))
            .collect();
        lines[lines.len().saturating_sub(n)..].join("\n")
    }

    /// Its pid, while it runs.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    fn stop(&mut self) {
        let Some(mut child) = self.child.take() else {
            return;
        };
        let pid = child.id().to_string();
        let _ = Command::new("kill").args(["-TERM", &pid]).status();
        let started = Instant::now();
        loop {
            match child.try_wait() {
                Ok(Some(_)) | Err(_) => break,
                Ok(None) if started.elapsed() > STOP_TIMEOUT => {
                    eprintln!(
                        "dockerd {pid} still runs {STOP_TIMEOUT:?} after SIGTERM: killing it"
                    );
                    let _ = child.kill();
                    let _ = child.wait();
                    break;
                }
                Ok(None) => std::thread::sleep(Duration::from_millis(50)),
            }
        }
        // Its containerd, had dockerd been killed before it could stop it: by pid, and only
        // if that pid still runs a containerd of this directory.
        let pidfile = self.dir.join("exec/containerd/containerd.pid");
        if let Ok(p) = std::fs::read_to_string(&pidfile) {
            let p = p.trim();
            let cmdline = std::fs::read(format!("/proc/{p}/cmdline")).unwrap_or_default();
            if String::from_utf8_lossy(&cmdline).contains(&self.dir.display().to_string()) {
                let _ = Command::new("kill").args(["-9", p]).status();
            }
        }
    }
}

impl Drop for Dockerd {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!(
                "----- last lines of {} -----\n{}",
                self.dir.join("dockerd.log").display(),
                self.log_tail(30)
            );
        }
        self.stop();
        // Its mounts lived in its own mount namespace and are gone with it.
        if let Err(e) = std::fs::remove_dir_all(&self.dir) {
            eprintln!("removing {}: {e}", self.dir.display());
        }
        let out = sh(&["ip", "netns", "del", &self.netns]);
        if !out.success() {
            eprintln!("{out}");
        }
        for p in self.created.iter().rev() {
            let _ = std::fs::remove_dir(p);
        }
    }
}
