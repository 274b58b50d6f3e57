//! A node's credentials: its key, its certificate chain and the roots it trusts.
//!
//! Kept in `<state-dir>/certificates/` as `node.key` (0600), `node.crt` (the chain: the node's
//! certificate, then any cross-signed CA certificate to present with it) and `ca.crt` (the
//! trusted roots). In memory they are swapped whole when renewed; TLS configurations are rebuilt
//! from the new ones for the next connection or handshake, while open connections stay up.

use crate::identity::{CertInfo, NodeIdentity};
use crate::{pem, tls, Error, Result};
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, RwLock};
use tokio::sync::watch;

/// File names under the certificates directory.
pub const KEY_FILE: &str = "node.key";
/// The node's certificate chain.
pub const CERT_FILE: &str = "node.crt";
/// The trusted roots.
pub const ROOTS_FILE: &str = "ca.crt";

/// One consistent set of credentials.
pub struct Material {
    /// Chain, PEM.
    pub chain_pem: String,
    /// Key, PEM.
    pub key_pem: String,
    /// Trusted roots, PEM.
    pub roots_pem: String,
    /// What the node certificate says.
    pub info: CertInfo,
    pub(crate) chain: Vec<CertificateDer<'static>>,
    pub(crate) key: PrivateKeyDer<'static>,
    pub(crate) roots: Vec<CertificateDer<'static>>,
}

impl Material {
    fn new(chain_pem: String, key_pem: String, roots_pem: String) -> Result<Material> {
        let chain = pem::certs(&chain_pem, "node certificate")?;
        let key = pem::key(&key_pem)?;
        let roots = pem::certs(&roots_pem, "trusted roots")?;
        let info = CertInfo::parse(&chain[0])?;
        let m = Material {
            chain_pem,
            key_pem,
            roots_pem,
            info,
            chain,
            key,
            roots,
        };
        // Refuses a key that does not match the certificate, and roots that are not CAs.
        tls::server_config(&m)?;
        Ok(m)
    }

    /// Digests of the trusted roots (see [`crate::ca_digest`]).
    pub fn root_digests(&self) -> Vec<String> {
        self.roots.iter().map(|r| crate::ca_digest(r)).collect()
    }
}

type Cached<T> = Mutex<Option<(u64, Arc<T>)>>;

/// A node's live credentials.
pub struct Credentials {
    dir: Option<PathBuf>,
    cur: RwLock<Arc<Material>>,
    version: watch::Sender<u64>,
    client: Cached<rustls::ClientConfig>,
    server: Cached<rustls::ServerConfig>,
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Credentials")
            .field("identity", &self.current().info.identity)
            .field("dir", &self.dir)
            .finish()
    }
}

fn io_err(path: &Path) -> impl FnOnce(std::io::Error) -> Error + '_ {
    move |source| Error::Io {
        path: path.display().to_string(),
        source,
    }
}

/// Writes `data` to `dir/name` atomically and durably with mode `mode`.
fn write_file(dir: &Path, name: &str, data: &str, mode: u32) -> Result<()> {
    let path = dir.join(name);
    crate::durable::write(&path, data.as_bytes(), mode).map_err(io_err(&path))
}

impl Credentials {
    /// Credentials from PEM, written to `dir` when one is given (created 0700).
    pub fn new(
        chain_pem: String,
        key_pem: String,
        roots_pem: String,
        dir: Option<PathBuf>,
    ) -> Result<Arc<Credentials>> {
        let m = Material::new(chain_pem, key_pem, roots_pem)?;
        let c = Credentials {
            dir,
            cur: RwLock::new(Arc::new(m)),
            version: watch::channel(1).0,
            client: Mutex::new(None),
            server: Mutex::new(None),
        };
        c.save(&c.current())?;
        Ok(Arc::new(c))
    }

    /// The credentials saved in `dir`, if it has them.
    pub fn load(dir: &Path) -> Result<Option<Arc<Credentials>>> {
        let read = |name: &str| -> Result<Option<String>> {
            let p = dir.join(name);
            match std::fs::read_to_string(&p) {
                Ok(s) => Ok(Some(s)),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
                Err(e) => Err(io_err(&p)(e)),
            }
        };
        let (Some(key), Some(chain), Some(roots)) =
            (read(KEY_FILE)?, read(CERT_FILE)?, read(ROOTS_FILE)?)
        else {
            return Ok(None);
        };
        let m = Material::new(chain, key, roots)
            .map_err(|e| Error::Parse(format!("{}: {e}", dir.display())))?;
        Ok(Some(Arc::new(Credentials {
            dir: Some(dir.to_path_buf()),
            cur: RwLock::new(Arc::new(m)),
            version: watch::channel(1).0,
            client: Mutex::new(None),
            server: Mutex::new(None),
        })))
    }

    fn save(&self, m: &Material) -> Result<()> {
        let Some(dir) = &self.dir else { return Ok(()) };
        std::fs::create_dir_all(dir).map_err(io_err(dir))?;
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))
            .map_err(io_err(dir))?;
        write_file(dir, KEY_FILE, &m.key_pem, 0o600)?;
        write_file(dir, CERT_FILE, &m.chain_pem, 0o644)?;
        write_file(dir, ROOTS_FILE, &m.roots_pem, 0o644)?;
        Ok(())
    }

    /// The current set.
    pub fn current(&self) -> Arc<Material> {
        self.cur.read().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// Who these credentials say this node is.
    pub fn identity(&self) -> NodeIdentity {
        self.current().info.identity.clone()
    }

    /// Where they are kept.
    pub fn dir(&self) -> Option<&Path> {
        self.dir.as_deref()
    }

    /// Bumped on every change.
    pub fn version(&self) -> u64 {
        *self.version.borrow()
    }

    /// Wakes on every change.
    pub fn subscribe(&self) -> watch::Receiver<u64> {
        self.version.subscribe()
    }

    /// Replaces the certificate chain (and the key, and the roots, when given), saving them
    /// first. The old set stays in use if the new one does not check out.
    pub fn replace(
        &self,
        chain_pem: String,
        key_pem: Option<String>,
        roots_pem: Option<String>,
    ) -> Result<()> {
        let cur = self.current();
        let m = Material::new(
            chain_pem,
            key_pem.unwrap_or_else(|| cur.key_pem.clone()),
            roots_pem.unwrap_or_else(|| cur.roots_pem.clone()),
        )?;
        self.save(&m)?;
        *self.cur.write().unwrap_or_else(|e| e.into_inner()) = Arc::new(m);
        self.version.send_modify(|v| *v += 1);
        Ok(())
    }

    /// Replaces the trusted roots if they differ; says whether they did.
    pub fn set_roots(&self, roots_pem: &str) -> Result<bool> {
        let cur = self.current();
        if cur.roots_pem == roots_pem {
            return Ok(false);
        }
        self.replace(cur.chain_pem.clone(), None, Some(roots_pem.to_string()))?;
        Ok(true)
    }

    fn cached<T>(
        &self,
        slot: &Cached<T>,
        make: impl FnOnce(&Material) -> Result<T>,
    ) -> Result<Arc<T>> {
        let v = self.version();
        let mut g = slot.lock().unwrap_or_else(|e| e.into_inner());
        if let Some((cv, c)) = &*g {
            if *cv == v {
                return Ok(c.clone());
            }
        }
        let c = Arc::new(make(&self.current())?);
        *g = Some((v, c.clone()));
        Ok(c)
    }

    /// The client side: presents this node's certificate, trusts its roots.
    pub(crate) fn client_config(&self) -> Result<Arc<rustls::ClientConfig>> {
        self.cached(&self.client, |m| {
            tls::client_config(&m.roots, Some((m.chain.clone(), m.key.clone_key())))
        })
    }

    /// The server side: presents this node's certificate; a client certificate, when one is
    /// sent, must chain to the roots.
    pub(crate) fn server_config(&self) -> Result<Arc<rustls::ServerConfig>> {
        self.cached(&self.server, tls::server_config)
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::ca::{NodeKeyPair, RootCa};
    use crate::identity::Role;
    use std::time::Duration;

    /// A certificate (valid one hour) and key for node `id` of cluster `c1`.
    pub(crate) fn node(ca: &RootCa, id: &str, role: Role) -> (String, String) {
        let key = NodeKeyPair::generate().unwrap();
        let who = NodeIdentity {
            node_id: id.into(),
            role,
            cluster_id: "c1".into(),
        };
        let cert = ca
            .issue(&key.csr().unwrap(), &who, Duration::from_secs(3600))
            .unwrap();
        (cert, key.pem())
    }

    #[test]
    fn saved_0600_and_loaded_back() {
        let ca = RootCa::generate("c1").unwrap();
        let (cert, key) = node(&ca, "n1", Role::Manager);
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path().join("certificates");
        let c = Credentials::new(cert, key, ca.cert_pem.clone(), Some(d.clone())).unwrap();
        let mode = |n: &str| std::fs::metadata(d.join(n)).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(KEY_FILE), 0o600);
        assert_eq!(
            std::fs::metadata(&d).unwrap().permissions().mode() & 0o777,
            0o700
        );
        let back = Credentials::load(&d).unwrap().unwrap();
        assert_eq!(back.identity(), c.identity());
        assert_eq!(back.identity().role, Role::Manager);

        let (cert2, _) = node(&ca, "n1", Role::Worker);
        // A certificate for another key is refused and the old set kept.
        assert!(c.replace(cert2, None, None).is_err());
        assert_eq!(c.identity().role, Role::Manager);
        assert_eq!(c.version(), 1);
    }

    #[test]
    fn nothing_saved_means_none() {
        let dir = tempfile::tempdir().unwrap();
        assert!(Credentials::load(dir.path()).unwrap().is_none());
    }
}
