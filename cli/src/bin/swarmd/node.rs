//! The node's settings, made from the flags and checked before anything is bound.

use crate::args::Args;
use anyhow::{bail, Context};
use shoal_cli::addr::{is_wildcard, local_toward, resolve, BAD_LISTEN, DEFAULT_PORT};
use shoal_cli::BadInput;
use std::net::SocketAddr;

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
    /// The address the manager listens on (`IP:PORT`): `--listen-addr`, or what `swarm
    /// init|join` or the identity in the state dir say.
    pub listen: String,
    /// The address other nodes reach this one at (`IP:PORT`): `--advertise-addr`, or
    /// `--listen-addr` when that is not a wildcard; empty until known (a node started with
    /// `--idle` learns it at `swarm init|join`).
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
    /// Whether `--listen-addr` was given (not its default).
    pub listen_given: bool,
    /// The listen and advertise addresses the flags gave (advertise: `--advertise-addr`, or
    /// empty), which every `swarm init|join` starts from.
    pub flag_addresses: (String, String),
    /// Mutual TLS with the node's certificate (plain TCP with `--insecure-plaintext`); set
    /// once the node has its identity.
    pub transport: Transport,
}

impl Node {
    /// Checks the flags and prepares the state dir.
    pub fn new(args: Args, listen_given: bool) -> anyhow::Result<Node> {
        let engine: EngineKind = args
            .storage_engine
            .parse()
            .map_err(|e| anyhow::anyhow!("{e}"))?;
        let args_advertise_given = args.advertise_addr.is_some();
        let (listen, advertise) = addresses(
            &args.listen_addr,
            args.advertise_addr.as_deref(),
            args.idle || args.join.is_some() || args.state_dir.join("node.json").exists(),
        )?;
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
            listen_given,
            flag_addresses: (
                listen.clone(),
                if args_advertise_given {
                    advertise.clone()
                } else {
                    String::new()
                },
            ),
            listen,
            advertise,
            hostname,
            engine,
            labels,
            registry,
            docker_host,
            transport: Transport::Plain,
        })
    }

    /// Takes the addresses of `swarm init|join` (`listen`, `advertise`: Docker's forms, empty
    /// for the node's own); without an advertised address, `toward` (a manager to join) picks
    /// the local address that reaches it, as dockerd does.
    pub fn take_addresses(
        &mut self,
        listen: &str,
        advertise: &str,
        toward: Option<&str>,
    ) -> Result<(), BadInput> {
        // From the flags' addresses each time: never what an earlier attempt or membership chose.
        let (flag_listen, flag_advertise) = self.flag_addresses.clone();
        let listen = if listen.is_empty() {
            flag_listen
        } else {
            resolve(listen, DEFAULT_PORT, false)?.to_string()
        };
        let l: SocketAddr = listen.parse().map_err(|_| BadInput::from(BAD_LISTEN))?;
        let advertise = if !advertise.is_empty() {
            resolve(advertise, l.port(), true)?.to_string()
        } else if !flag_advertise.is_empty() {
            flag_advertise
        } else if !is_wildcard(&l) {
            listen.clone()
        } else if let Some(ip) = toward.and_then(local_toward) {
            SocketAddr::new(ip, l.port()).to_string()
        } else {
            return Err("could not choose an IP address to advertise since this system has multiple addresses: pass --advertise-addr".into());
        };
        (self.listen, self.advertise) = (listen, advertise);
        Ok(())
    }

    /// On a restart, the addresses the node made or joined its swarm with, where the flags
    /// leave them open (`--listen-addr` at its default, no `--advertise-addr`).
    pub fn restore_addresses(&mut self, id: &crate::identity::Identity) -> anyhow::Result<()> {
        if !id.listen_addr.is_empty() && !self.listen_given {
            self.listen = id.listen_addr.clone();
        }
        if self.advertise.is_empty() {
            self.advertise = id.advertise_addr.clone();
        }
        if self.advertise.is_empty() {
            bail!("--listen-addr {} is a wildcard and the state dir does not say which address this node advertised: pass --advertise-addr", self.listen);
        }
        Ok(())
    }

    /// Where the node's key, certificate and trusted roots are kept.
    pub fn certs_dir(&self) -> PathBuf {
        self.state_dir.join("certificates")
    }
}

/// `--listen-addr` and `--advertise-addr` resolved (`IP`, `IP:PORT`, an interface, `NAME:PORT`).
/// A wildcard listen address without an advertised one is refused unless `later` (the node
/// learns it at `swarm init|join`, or a join picks it).
fn addresses(
    listen: &str,
    advertise: Option<&str>,
    later: bool,
) -> anyhow::Result<(String, String)> {
    let l = resolve(listen, DEFAULT_PORT, false)
        .map_err(|e| anyhow::anyhow!("--listen-addr {listen:?}: {e}"))?;
    let a = match advertise {
        Some(a) => resolve(a, l.port(), true)
            .map_err(|e| anyhow::anyhow!("--advertise-addr {a:?}: {e}"))?
            .to_string(),
        None if !is_wildcard(&l) => l.to_string(),
        None if later => String::new(),
        None => bail!("--listen-addr {listen} is a wildcard: pass --advertise-addr IP[:PORT] or an interface name so other nodes can reach this one"),
    };
    Ok((l.to_string(), a))
}

fn machine_hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|s| s.trim().to_string())
        .unwrap_or_else(|_| "localhost".into())
}
