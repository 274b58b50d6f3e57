//! `swarmd` command line.

use clap::Parser;
use shoal_cli::BadInput;
use shoal_image::registry::{RegistryConfig, RegistryError};
use std::path::PathBuf;
use std::time::Duration;

/// Shoal node daemon: a manager (raft member serving the APIs) and/or a worker (runs tasks).
///
/// The first node initialises a cluster; others join with `--join ADDR --token TOKEN`.
/// Restarting with the same `--state-dir` brings the node back with its identity.
#[derive(Debug, Parser)]
#[command(name = "swarmd", version)]
pub struct Args {
    /// Directory for the node's identity, raft data, task files and the control socket.
    #[arg(long, default_value = "/var/lib/shoal")]
    pub state_dir: PathBuf,
    /// Node hostname shown by `swarmctl node ls` (default: the machine's hostname).
    #[arg(long)]
    pub hostname: Option<String>,
    /// Address to listen on for raft, dispatcher and control traffic (managers): `IP`,
    /// `IP:PORT`, an interface name or `NAME:PORT` (port 2377 by default).
    #[arg(long, default_value = "0.0.0.0:2377")]
    pub listen_addr: String,
    /// Address other nodes use to reach this one, in the same forms (default: --listen-addr,
    /// which must then not be 0.0.0.0; a joining node picks the address that reaches the
    /// manager).
    #[arg(long)]
    pub advertise_addr: Option<String>,
    /// With an empty state dir and no `--join`: start in no swarm, as dockerd does, and wait
    /// for `swarmctl swarm init|join` (or the Engine API's `/swarm/init|join`) on the control
    /// socket. Without it such a node makes a new swarm at once.
    #[arg(long, conflicts_with = "join")]
    pub idle: bool,
    /// A manager to join (ip:port).
    #[arg(long, requires = "token")]
    pub join: Option<String>,
    /// Join token (`swarmctl swarm join-token worker|manager`).
    #[arg(long, env = "SWARM_TOKEN", hide_env_values = true)]
    pub token: Option<String>,
    /// Raft storage engine.
    #[arg(long, default_value = "redb", value_parser = ["sled", "redb"])]
    pub storage_engine: String,
    /// How tasks run: `kernel` gives each task its own network, mount, UTS and PID namespaces
    /// and builds its networks (bridge, host, none) with the kernel (root needed); `none` runs
    /// tasks as plain processes on the node.
    #[arg(long, default_value = "none", value_parser = ["none", "kernel"])]
    pub data_plane: String,
    /// Service load balancers (with `--data-plane kernel`): `ipvs` (the kernel's IP Virtual
    /// Server, as Swarm), `nftables`, or `auto` (IPVS where the kernel has it).
    #[arg(long, default_value = "auto", value_parser = ["auto", "ipvs", "nftables"])]
    pub lb_backend: String,
    /// Where tasks' DNS queries for names outside the cluster go: `IP[:PORT],…`, or `none`
    /// (such names are NXDOMAIN). Default: the node's /etc/resolv.conf.
    #[arg(long)]
    pub dns_upstream: Option<String>,
    /// Raft election timeout T: the leader's lease; a follower that has not heard from the
    /// leader for T starts an election after a random jitter in [T/20, T/20 + T/4), drawn
    /// again for every election, so a dead leader is replaced about T after it died.
    #[arg(long, default_value = "200ms", value_parser = parse_duration)]
    pub election_timeout: Duration,
    /// Raft leader heartbeat interval.
    #[arg(long, default_value = "40ms", value_parser = parse_duration)]
    pub raft_heartbeat: Duration,
    /// Agent heartbeat period; a node missing `--heartbeat-misses` periods is marked DOWN.
    #[arg(long, default_value = "500ms", value_parser = parse_duration)]
    pub heartbeat_period: Duration,
    /// Missed heartbeats before a node is DOWN.
    #[arg(long, default_value_t = 3)]
    pub heartbeat_misses: u32,
    /// How long the managers keep the tasks of a node whose swarmd stopped cleanly (a restart
    /// or an upgrade: it says goodbye and leaves its tasks running) before the node is DOWN and
    /// its tasks are replaced elsewhere. Crashes and silent nodes are still found by heartbeats.
    #[arg(long, default_value = "15s", value_parser = parse_duration)]
    pub restart_grace: Duration,
    /// Raft log entries between snapshots.
    #[arg(long, default_value_t = 5000)]
    pub snapshot_every: u64,
    /// Raft log entries kept behind the last snapshot: a manager further behind is sent the
    /// snapshot instead.
    #[arg(long, default_value_t = 1000)]
    pub snapshot_keep_logs: u64,
    /// Address pool for networks without --subnet (at init).
    #[arg(long, default_value = "10.0.0.0/8")]
    pub default_addr_pool: String,
    /// Prefix length of the subnets cut from the pool (at init).
    #[arg(long, default_value_t = 24)]
    pub default_addr_pool_mask_len: u8,
    /// Validity of node certificates (at init; later `swarmctl swarm update --cert-expiry`).
    /// Nodes renew theirs at 50–80 % of it.
    #[arg(long, default_value = "90d", value_parser = parse_duration)]
    pub cert_expiry: Duration,
    /// Run without TLS: no CA, no node certificates, plain gRPC between nodes. Only for
    /// benchmarks that measure what TLS costs; every node of such a cluster needs it.
    #[arg(long)]
    pub insecure_plaintext: bool,
    /// The OCI runtime containers run with: `runc`, `crun`, or a path to either (Debian
    /// packages `runc`, `crun`). Without it the node starts, warns, and refuses container tasks
    /// (`--runtime process` tasks still run).
    #[arg(long, default_value = "runc", value_name = "NAME|PATH")]
    pub oci_runtime: String,
    /// The init `--init` containers run as PID 1, as dockerd's `--init-path`: a statically
    /// linked program taking `-- PROGRAM ARGS…` (tini). Default: `tini-static` or
    /// `docker-init` in PATH, else /usr/bin/tini-static (Debian package `tini`).
    #[arg(long, value_name = "PATH")]
    pub init_path: Option<PathBuf>,
    /// A mirror for a registry, tried before it, as dockerd's `registry-mirrors`:
    /// `docker.io=http://198.18.0.254:5000` (repeatable; several mirrors of one registry are
    /// tried in order). An `http://` mirror is spoken to over plain HTTP.
    #[arg(long = "registry-mirror", value_name = "REGISTRY=URL")]
    pub registry_mirrors: Vec<String>,
    /// A registry spoken to over plain HTTP (repeatable). Every other one is HTTPS only.
    #[arg(long = "insecure-registry", value_name = "HOST:PORT")]
    pub insecure_registries: Vec<String>,
    /// Registry credentials: a Docker `config.json` (`auths`). Default:
    /// `$DOCKER_CONFIG/config.json`, else `~/.docker/config.json`, when present.
    #[arg(long, value_name = "FILE")]
    pub registry_auth: Option<PathBuf>,
    /// Node label `key=value` (repeatable; at join or init).
    #[arg(long = "label")]
    pub labels: Vec<String>,
    /// Serve the Docker Engine API on this unix socket (`unix:///run/shoal/docker.sock`;
    /// 0600), for the `docker` CLI (`DOCKER_HOST=unix://…`). Off by default.
    #[arg(long, value_name = "unix://PATH")]
    pub docker_host: Option<String>,
    /// Serve Prometheus metrics (text format) at `http://IP:PORT/metrics`: raft, dispatcher,
    /// tasks by state, balancers, DNS, image pulls and the process. Off by default; the
    /// endpoint has no TLS nor authentication, so bind it to an address only your monitoring
    /// reaches.
    #[arg(long, value_name = "IP:PORT")]
    pub metrics_addr: Option<std::net::SocketAddr>,
    /// Log filter (tracing EnvFilter syntax).
    #[arg(long, env = "SWARMD_LOG", default_value = "info,openraft=warn")]
    pub log: String,
}

impl Args {
    /// How images are pulled (`--registry-mirror`, `--insecure-registry`, `--registry-auth`),
    /// checked; the agent pulls with it and the managers resolve tags to digests with it.
    pub fn registry_config(&self) -> Result<RegistryConfig, RegistryError> {
        let mut cfg = RegistryConfig::default();
        for m in &self.registry_mirrors {
            cfg.add_mirror(m)?;
        }
        cfg.insecure = self.insecure_registries.clone();
        cfg.auth_file = match &self.registry_auth {
            Some(p) if !p.is_file() => {
                return Err(RegistryError::Config(format!(
                    "--registry-auth {}: no such file",
                    p.display()
                )))
            }
            Some(p) => Some(p.clone()),
            None => default_auth_file(std::env::var_os("DOCKER_CONFIG"), std::env::var_os("HOME")),
        };
        cfg.validate()?;
        Ok(cfg)
    }
}

/// Docker's credentials file: `$DOCKER_CONFIG/config.json`, else `$HOME/.docker/config.json`,
/// when it exists.
fn default_auth_file(
    docker_config: Option<std::ffi::OsString>,
    home: Option<std::ffi::OsString>,
) -> Option<PathBuf> {
    let p = match (docker_config, home) {
        (Some(d), _) => PathBuf::from(d).join("config.json"),
        (None, Some(h)) => PathBuf::from(h).join(".docker/config.json"),
        (None, None) => return None,
    };
    p.is_file().then_some(p)
}

/// Parses `300ms`, `2s`, `1m`, `1h` or plain milliseconds.
pub fn parse_duration(s: &str) -> Result<Duration, BadInput> {
    let s = s.trim();
    let (num, unit) = s
        .find(|c: char| !c.is_ascii_digit() && c != '.')
        .map(|i| s.split_at(i))
        .unwrap_or((s, "ms"));
    let v: f64 = num
        .parse()
        .map_err(|_| format!("invalid duration {s:?}: expected e.g. 300ms, 2s, 1m"))?;
    let ms = match unit {
        "ms" => v,
        "s" => v * 1e3,
        "m" => v * 60e3,
        "h" => v * 3600e3,
        "d" => v * 86400e3,
        _ => return Err(format!("invalid duration {s:?}: unit must be ms, s, m, h or d").into()),
    };
    if !ms.is_finite() || ms < 0.0 {
        return Err(format!("invalid duration {s:?}").into());
    }
    Ok(Duration::from_micros((ms * 1000.0) as u64))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("300ms").unwrap(), Duration::from_millis(300));
        assert_eq!(parse_duration("2s").unwrap(), Duration::from_secs(2));
        assert_eq!(parse_duration("1.5s").unwrap(), Duration::from_millis(1500));
        assert_eq!(parse_duration("250").unwrap(), Duration::from_millis(250));
        assert!(parse_duration("x").is_err());
        assert_eq!(
            parse_duration("90d").unwrap(),
            Duration::from_secs(90 * 86400)
        );
        assert!(parse_duration("3w").is_err());
    }

    #[test]
    fn registry_flags_make_the_registry_config() {
        let a = Args::parse_from([
            "swarmd",
            "--registry-mirror",
            "docker.io=http://198.18.0.254:5000",
            "--registry-mirror",
            "docker.io=https://mirror.example:443/",
            "--insecure-registry",
            "198.18.0.254:5001",
            "--registry-auth",
            "/nonexistent/config.json",
        ]);
        assert_eq!(a.oci_runtime, "runc");
        let e = a.registry_config().unwrap_err();
        assert!(e.to_string().contains("--registry-auth"), "{e}");
        let d = tempfile::tempdir().unwrap();
        let auth = d.path().join("config.json");
        std::fs::write(&auth, "{\"auths\":{}}").unwrap();
        let a = Args::parse_from([
            "swarmd",
            "--oci-runtime",
            "crun",
            "--registry-mirror",
            "docker.io=http://198.18.0.254:5000",
            "--registry-mirror",
            "docker.io=https://mirror.example:443/",
            "--insecure-registry",
            "198.18.0.254:5001",
            "--registry-auth",
            auth.to_str().unwrap(),
        ]);
        assert_eq!(a.oci_runtime, "crun");
        let c = a.registry_config().unwrap();
        assert_eq!(
            c.mirrors["docker.io"],
            ["http://198.18.0.254:5000", "https://mirror.example:443"]
        );
        assert_eq!(c.insecure, ["198.18.0.254:5001"]);
        assert_eq!(c.auth_file.as_deref(), Some(auth.as_path()));
        let bad = Args::parse_from(["swarmd", "--registry-mirror", "docker.io"]);
        assert!(bad.registry_config().is_err());
        let bad = Args::parse_from(["swarmd", "--registry-mirror", "docker.io=ftp://x"]);
        assert!(bad.registry_config().is_err());
    }

    #[test]
    fn the_default_auth_file_is_dockers_when_present() {
        let d = tempfile::tempdir().unwrap();
        let os = |p: &std::path::Path| Some(p.as_os_str().to_owned());
        assert_eq!(default_auth_file(os(d.path()), None), None, "absent");
        std::fs::create_dir_all(d.path().join(".docker")).unwrap();
        std::fs::write(d.path().join(".docker/config.json"), "{}").unwrap();
        assert_eq!(
            default_auth_file(None, os(d.path())),
            Some(d.path().join(".docker/config.json"))
        );
        std::fs::write(d.path().join("config.json"), "{}").unwrap();
        assert_eq!(
            default_auth_file(os(d.path()), os(d.path())),
            Some(d.path().join("config.json")),
            "$DOCKER_CONFIG first"
        );
    }
}
