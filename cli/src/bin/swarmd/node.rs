//! The node's settings, made from the flags and checked before anything is bound.

use crate::args::Args;
use anyhow::{bail, Context};
use shoal_image::registry::{RegistryConfig, RegistryError};
use shoal_manager::raft::storage::EngineKind;
use shoal_security::Transport;
use std::collections::BTreeMap;
use std::os::unix::fs::PermissionsExt;
use std::path::PathBuf;

/// This node: its flags, what was derived from them, and how it talks to other nodes.
pub struct Node {
    /// The flags as given.
    pub args: Args,
    /// `--state-dir`, created and restricted to root.
    pub state_dir: PathBuf,
    /// `--advertise-addr`, or `--listen-addr` when that is not a wildcard.
    pub advertise: String,
    /// `--hostname`, or the machine's.
    pub hostname: String,
    /// `--storage-engine`.
    pub engine: EngineKind,
    /// `--label key=value`s.
    pub labels: BTreeMap<String, String>,
    /// How images are pulled (`--registry-mirror`, `--insecure-registry`, `--registry-auth`).
    pub registry: RegistryConfig,
    /// `--docker-host`: the Engine API socket's path, absolute.
    pub docker_host: Option<PathBuf>,
    /// Mutual TLS with the node's certificate (plain TCP with `--insecure-plaintext`); set
    /// once the node has its identity.
    pub transport: Transport,
}

impl Node {
    /// Checks the flags and prepares the state dir.
    pub fn new(args: Args) -> anyhow::Result<Node> {
        let engine: EngineKind = args
            .storage_engine
            .parse()
            .map_err(|e| anyhow::anyhow!("{e}"))?;
        let advertise = match &args.advertise_addr {
            Some(a) => a.clone(),
            None if args.listen_addr.starts_with("0.0.0.0")
                || args.listen_addr.starts_with("[::]") =>
            {
                bail!("--listen-addr {} is a wildcard: pass --advertise-addr IP:PORT so other nodes can reach this one", args.listen_addr)
            }
            None => args.listen_addr.clone(),
        };
        advertise
            .parse::<std::net::SocketAddr>()
            .with_context(|| format!("--advertise-addr {advertise:?} must be IP:PORT"))?;
        let mut labels = BTreeMap::new();
        for l in &args.labels {
            let Some((k, v)) = l.split_once('=') else {
                bail!("invalid --label {l:?}: expected key=value");
            };
            labels.insert(k.to_string(), v.to_string());
        }
        if args.cert_expiry < shoal_manager::ca::MIN_CERT_EXPIRY {
            bail!(
                "--cert-expiry must be at least {:?}",
                shoal_manager::ca::MIN_CERT_EXPIRY
            );
        }
        let registry = args.registry_config()?;
        let docker_host = match &args.docker_host {
            Some(h) => {
                let p = shoal_cli::docker::server::parse_host(h).map_err(anyhow::Error::msg)?;
                Some(std::env::current_dir()?.join(p))
            }
            None => None,
        };
        // Reads the credentials file: a bad one stops swarmd here rather than every pull. A node
        // that cannot run containers (no CA certificates, no OCI runtime) still starts: it runs
        // `--runtime process` tasks and refuses container tasks, saying why.
        match shoal_image::registry::Client::new(registry.clone()) {
            Err(RegistryError::NoRoots) => tracing::warn!("{}", RegistryError::NoRoots),
            r => {
                r?;
            }
        }
        if let Err(e) =
            shoal_agent::executor::oci::runtime::Runtime::new(&args.oci_runtime, PathBuf::new())
        {
            tracing::warn!(error = %e, "--oci-runtime: this node will refuse container tasks");
        }
        let state_dir = args.state_dir.clone();
        std::fs::create_dir_all(&state_dir)
            .with_context(|| format!("cannot create --state-dir {}", state_dir.display()))?;
        // Raft data holds the CA key: the state dir is for root only.
        std::fs::set_permissions(&state_dir, std::fs::Permissions::from_mode(0o700))
            .with_context(|| format!("cannot restrict --state-dir {}", state_dir.display()))?;
        let hostname = args.hostname.clone().unwrap_or_else(machine_hostname);
        Ok(Node {
            args,
            state_dir,
            advertise,
            hostname,
            engine,
            labels,
            registry,
            docker_host,
            transport: Transport::Plain,
        })
    }

    /// Where the node's key, certificate and trusted roots are kept.
    pub fn certs_dir(&self) -> PathBuf {
        self.state_dir.join("certificates")
    }
}

fn machine_hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|s| s.trim().to_string())
        .unwrap_or_else(|_| "localhost".into())
}
