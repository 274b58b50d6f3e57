//! `RegistryConfig`: mirrors, insecure registries, credentials file and timeouts (swarmd's
//! `--registry-mirror`, `--insecure-registry`).

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use super::RegistryError;

/// How nodes reach registries (swarmd's `--registry-mirror`, `--insecure-registry`, and the
/// credentials file).
#[derive(Debug, Clone)]
pub struct RegistryConfig {
    /// Registry domain (`docker.io`) → mirror URLs (`http://10.0.0.254:5000`), tried in order
    /// before the registry itself.
    pub mirrors: BTreeMap<String, Vec<String>>,
    /// `HOST:PORT`s spoken to over plain HTTP. Nothing else ever is.
    pub insecure: Vec<String>,
    /// A Docker-style `config.json` with `auths`.
    pub auth_file: Option<PathBuf>,
    /// TCP/TLS connect timeout.
    pub connect_timeout: Duration,
    /// Longest silence while reading a response (also bounds a stalled blob download).
    pub read_timeout: Duration,
    /// Deadline for one manifest request (token exchange included).
    pub request_timeout: Duration,
}

impl Default for RegistryConfig {
    fn default() -> Self {
        RegistryConfig {
            mirrors: BTreeMap::new(),
            insecure: Vec::new(),
            auth_file: None,
            connect_timeout: Duration::from_secs(5),
            read_timeout: Duration::from_secs(30),
            request_timeout: Duration::from_secs(30),
        }
    }
}

impl RegistryConfig {
    /// Adds a `--registry-mirror REGISTRY=URL` flag (`docker.io=http://10.0.0.254:5000`).
    pub fn add_mirror(&mut self, flag: &str) -> Result<(), RegistryError> {
        let (registry, url) = flag.split_once('=').ok_or_else(|| {
            RegistryError::Config(format!("--registry-mirror {flag}: expected REGISTRY=URL"))
        })?;
        mirror_host(url)?;
        self.mirrors
            .entry(registry.to_string())
            .or_default()
            .push(url.trim_end_matches('/').to_string());
        Ok(())
    }

    /// Checks every mirror URL and insecure entry.
    pub fn validate(&self) -> Result<(), RegistryError> {
        for url in self.mirrors.values().flatten() {
            mirror_host(url)?;
        }
        for h in &self.insecure {
            if h.is_empty() || h.contains('/') {
                return Err(RegistryError::Config(format!(
                    "--insecure-registry {h}: expected HOST[:PORT]"
                )));
            }
        }
        if self.connect_timeout.is_zero()
            || self.read_timeout.is_zero()
            || self.request_timeout.is_zero()
        {
            return Err(RegistryError::Config(
                "registry timeouts must be positive".into(),
            ));
        }
        Ok(())
    }
}

/// `http://host:port` → (`host:port`, insecure).
pub(super) fn mirror_host(url: &str) -> Result<(String, bool), RegistryError> {
    let bad = || {
        RegistryError::Config(format!(
            "registry mirror {url}: expected http(s)://HOST[:PORT]"
        ))
    };
    let (rest, insecure) = match (url.strip_prefix("https://"), url.strip_prefix("http://")) {
        (Some(r), _) => (r, false),
        (_, Some(r)) => (r, true),
        _ => return Err(bad()),
    };
    let host = rest.trim_end_matches('/');
    if host.is_empty() || host.contains('/') {
        return Err(bad());
    }
    Ok((host.to_string(), insecure))
}
