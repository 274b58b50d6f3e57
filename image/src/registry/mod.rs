//! Pulling from a registry, on the `oci-client` crate (oras-project/rust-oci-client).
//!
//! Why `oci-client` and not a small client of our own: it is maintained, does the bearer-token
//! flow (`WWW-Authenticate` challenge, token endpoint, Basic credentials) that public
//! registries need, verifies each blob's digest while streaming and each manifest against a
//! pinned digest, takes connect/read timeouts, and chooses plain HTTP per registry
//! (`ClientProtocol::HttpsExcept`), which is exactly `--insecure-registry`. Its cost is
//! `reqwest` (built with rustls on `ring`, the provider the workspace already uses; no
//! aws-lc, no OpenSSL) and `oci-spec`, which the runtime side needs anyway.
//!
//! What this module adds on top:
//! - mirrors as dockerd's `registry-mirrors`: for a reference on a mirrored registry, each
//!   mirror is tried first, then the registry itself; blobs come from the endpoint that served
//!   the manifest;
//! - index / manifest-list resolution to linux/amd64 (Shoal's one platform), with every
//!   manifest's bytes hashed and checked against the digest that named it;
//! - a deadline on every manifest request, so a registry that accepts the connection and then
//!   says nothing gives [`RegistryError::Timeout`] instead of hanging a node;
//! - typed errors that say what to do.

mod auth;
mod config;
mod error;

use futures_util::StreamExt;
use oci_client::client::{ClientConfig, ClientProtocol};
use oci_client::errors::OciDistributionError;
use oci_client::secrets::RegistryAuth;

pub use auth::{AuthFile, Credentials};
pub use config::RegistryConfig;
pub use error::{BlobError, RegistryError};

use config::mirror_host;
use error::{classify, protocol};

use crate::digest::Digest;
use crate::reference::Reference;
use crate::store::{parse_manifest, AnyManifest, Descriptor, Manifest, MANIFEST_TYPES};

/// One place a repository can be pulled from: a mirror or the registry itself.
#[derive(Debug, Clone)]
pub struct Endpoint {
    oci: oci_client::Reference,
    host: String,
}

impl Endpoint {
    /// The host served from.
    pub fn host(&self) -> &str {
        &self.host
    }
}

/// A platform manifest fetched and verified.
#[derive(Debug, Clone)]
pub struct FetchedManifest {
    /// Its digest (bytes verified).
    pub digest: Digest,
    /// Its bytes.
    pub bytes: Vec<u8>,
    /// Parsed.
    pub manifest: Manifest,
    /// Where it came from (fetch blobs from the same place).
    pub endpoint: Endpoint,
}

/// A registry client. Cheap to clone (the HTTP pool and token cache are shared).
#[derive(Clone)]
pub struct Client {
    oci: oci_client::Client,
    cfg: RegistryConfig,
    auths: AuthFile,
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Client").field("cfg", &self.cfg).finish()
    }
}

impl Client {
    /// A client for `cfg` (validated; the credentials file read once).
    pub fn new(cfg: RegistryConfig) -> Result<Client, RegistryError> {
        cfg.validate()?;
        // reqwest is built without a default provider: use ring, as the rest of Shoal does.
        // An error here only means a provider is installed already.
        let _ = rustls::crypto::ring::default_provider().install_default();
        let mut plain = cfg.insecure.clone();
        for url in cfg.mirrors.values().flatten() {
            if let (host, true) = mirror_host(url)? {
                plain.push(host);
            }
        }
        let auths = match &cfg.auth_file {
            Some(p) => AuthFile::load(p)?,
            None => AuthFile::default(),
        };
        let config = ClientConfig {
            protocol: ClientProtocol::HttpsExcept(plain),
            connect_timeout: Some(cfg.connect_timeout),
            read_timeout: Some(cfg.read_timeout),
            platform_resolver: None,
            ..Default::default()
        };
        // oci-client 0.18 builds a default reqwest client as well, which panics where the
        // system has no CA certificates (reqwest's platform verifier finds none): that is a
        // node that cannot verify any registry, said as an error instead.
        if !system_roots() {
            return Err(RegistryError::NoRoots);
        }
        let oci = oci_client::Client::try_from(config)
            .map_err(|e| RegistryError::Config(format!("cannot make an HTTPS client: {e}")))?;
        Ok(Client { oci, cfg, auths })
    }

    /// Mirrors first (dockerd's order), then the registry.
    fn endpoints(&self, r: &Reference) -> Vec<Endpoint> {
        let tag = r.tag().unwrap_or("latest").to_string();
        let base = match r.digest() {
            Some(d) => oci_client::Reference::with_digest(
                r.domain().into(),
                r.path().into(),
                d.to_string(),
            ),
            None => oci_client::Reference::with_tag(r.domain().into(), r.path().into(), tag),
        };
        let mut out = Vec::new();
        for url in self.cfg.mirrors.get(r.domain()).into_iter().flatten() {
            if let Ok((host, _)) = mirror_host(url) {
                let mut m = base.clone();
                m.set_mirror_registry(host.clone());
                out.push(Endpoint { oci: m, host });
            }
        }
        let host = base.resolve_registry().to_string();
        out.push(Endpoint { oci: base, host });
        out
    }

    fn auth_for(&self, host: &str, domain: &str) -> RegistryAuth {
        match self.auths.get(host).or_else(|| self.auths.get(domain)) {
            Some(c) => RegistryAuth::Basic(c.username.clone(), c.password.clone()),
            None => RegistryAuth::Anonymous,
        }
    }

    /// The digest the registry gives `r`'s tag (`Docker-Content-Digest` of a HEAD, else the
    /// hash of a GET): for a multi-platform image, the index's digest, as `docker service
    /// create` pins it.
    #[tracing::instrument(skip(self), fields(image = %r))]
    pub async fn resolve(&self, r: &Reference) -> Result<Digest, RegistryError> {
        let mut last = None;
        for ep in self.endpoints(r) {
            let auth = self.auth_for(&ep.host, r.domain());
            let res = self
                .deadline(&ep.host, self.oci.fetch_manifest_digest(&ep.oci, &auth))
                .await;
            match res.and_then(|d| {
                d.parse::<Digest>()
                    .map_err(|e| protocol(&ep.host, "Docker-Content-Digest", e))
            }) {
                Ok(d) => return Ok(d),
                Err(e) => {
                    tracing::debug!(endpoint = %ep.host, error = %e, "resolve failed; trying the next endpoint");
                    last = Some(worse(last, e));
                }
            }
        }
        Err(last.unwrap_or_else(|| RegistryError::NotFound(r.familiar())))
    }

    /// The linux/amd64 image manifest for `r`, following an index, every document verified
    /// against the digest that named it.
    #[tracing::instrument(skip(self), fields(image = %r))]
    pub async fn manifest(&self, r: &Reference) -> Result<FetchedManifest, RegistryError> {
        let mut last = None;
        for ep in self.endpoints(r) {
            match self.manifest_from(r, &ep).await {
                Ok(m) => return Ok(m),
                Err(e) => {
                    tracing::debug!(endpoint = %ep.host, error = %e, "manifest fetch failed; trying the next endpoint");
                    last = Some(worse(last, e));
                }
            }
        }
        Err(last.unwrap_or_else(|| RegistryError::NotFound(r.familiar())))
    }

    async fn manifest_from(
        &self,
        r: &Reference,
        ep: &Endpoint,
    ) -> Result<FetchedManifest, RegistryError> {
        let auth = self.auth_for(&ep.host, r.domain());
        let (bytes, digest) = self.fetch_raw(r, ep, &ep.oci, &auth, r.digest()).await?;
        match parse_manifest(&bytes, None).map_err(|e| protocol(&ep.host, "manifest", e))? {
            AnyManifest::Image(manifest) => Ok(FetchedManifest {
                digest,
                bytes,
                manifest,
                endpoint: ep.clone(),
            }),
            AnyManifest::Index(index) => {
                let Some(entry) = index.linux_amd64() else {
                    let found: Vec<String> = index
                        .manifests
                        .iter()
                        .filter_map(|d| {
                            d.platform
                                .as_ref()
                                .map(|p| format!("{}/{}", p.os, p.architecture))
                        })
                        .collect();
                    return Err(RegistryError::Platform {
                        reference: r.familiar(),
                        found: found.join(", "),
                    });
                };
                let oci = ep.oci.clone_with_digest(entry.digest.to_string());
                let (bytes, digest) = self
                    .fetch_raw(r, ep, &oci, &auth, Some(&entry.digest))
                    .await?;
                match parse_manifest(&bytes, None).map_err(|e| protocol(&ep.host, "manifest", e))? {
                    AnyManifest::Image(manifest) => Ok(FetchedManifest {
                        digest,
                        bytes,
                        manifest,
                        endpoint: ep.clone(),
                    }),
                    AnyManifest::Index(_) => Err(protocol(&ep.host, "manifest", "nested index")),
                }
            }
        }
    }

    async fn fetch_raw(
        &self,
        r: &Reference,
        ep: &Endpoint,
        oci: &oci_client::Reference,
        auth: &RegistryAuth,
        expected: Option<&Digest>,
    ) -> Result<(Vec<u8>, Digest), RegistryError> {
        let fut = self.oci.pull_manifest_raw(oci, auth, MANIFEST_TYPES);
        let (bytes, _) = self.deadline(&ep.host, fut).await.map_err(|e| match e {
            RegistryError::NotFound(_) => RegistryError::NotFound(r.familiar()),
            RegistryError::Unauthorized(_) => RegistryError::Unauthorized(r.familiar()),
            e => e,
        })?;
        // Our own check, whatever the library did: the bytes must hash to the digest asked for.
        let actual = Digest::of(&bytes);
        if let Some(want) = expected {
            if *want != actual {
                return Err(RegistryError::DigestMismatch {
                    what: format!("manifest of {}", r.familiar()),
                    expected: want.to_string(),
                    actual: actual.to_string(),
                });
            }
        }
        Ok((bytes.to_vec(), actual))
    }

    /// Streams blob `desc` from `ep` into `sink`, chunk by chunk; the library verifies the
    /// digest at the end of the stream (the store verifies it again before keeping it).
    pub async fn blob<F>(
        &self,
        ep: &Endpoint,
        desc: &Descriptor,
        mut sink: F,
    ) -> Result<(), BlobError>
    where
        F: FnMut(&[u8]) -> Result<(), crate::store::StoreError>,
    {
        let layer = oci_client::manifest::OciDescriptor {
            media_type: desc.media_type.clone(),
            digest: desc.digest.to_string(),
            size: desc.size as i64,
            ..Default::default()
        };
        let mut stream = self
            .deadline(&ep.host, self.oci.pull_blob_stream(&ep.oci, &layer))
            .await
            .map_err(BlobError::Registry)?;
        while let Some(chunk) = stream.next().await {
            let chunk = chunk.map_err(|e| {
                BlobError::Registry(
                    if e.kind() == std::io::ErrorKind::InvalidData
                        || e.to_string().contains("igest")
                    {
                        RegistryError::DigestMismatch {
                            what: format!("blob {}", desc.digest),
                            expected: desc.digest.to_string(),
                            actual: e.to_string(),
                        }
                    } else {
                        RegistryError::Unreachable {
                            registry: ep.host.clone(),
                            detail: e.to_string(),
                        }
                    },
                )
            })?;
            sink(&chunk).map_err(BlobError::Store)?;
        }
        Ok(())
    }

    async fn deadline<T>(
        &self,
        host: &str,
        fut: impl std::future::Future<Output = Result<T, OciDistributionError>>,
    ) -> Result<T, RegistryError> {
        match tokio::time::timeout(self.cfg.request_timeout, fut).await {
            Err(_) => Err(RegistryError::Timeout {
                registry: host.into(),
                after: self.cfg.request_timeout,
            }),
            Ok(r) => r.map_err(|e| classify(host, e)),
        }
    }
}

#[cfg(test)]
mod tests;

/// The error to report after trying another endpoint: the newest, unless an earlier endpoint
/// (a mirror) answered that the image does not exist and this one only failed to answer (the
/// upstream of an offline node): "not found" is what the user must act on.
fn worse(earlier: Option<RegistryError>, now: RegistryError) -> RegistryError {
    match (earlier, now) {
        (
            Some(found @ RegistryError::NotFound(_)),
            RegistryError::Unreachable { .. } | RegistryError::Timeout { .. },
        ) => found,
        (_, now) => now,
    }
}

/// Where Linux distributions keep their CA bundle (openssl-probe's list, as reqwest's platform
/// verifier looks).
const SYSTEM_CA_FILES: [&str; 5] = [
    "/etc/ssl/certs/ca-certificates.crt",
    "/etc/pki/tls/certs/ca-bundle.crt",
    "/etc/ssl/ca-bundle.pem",
    "/etc/pki/tls/cacert.pem",
    "/etc/ssl/cert.pem",
];

/// Whether the system has CA certificates where reqwest's platform verifier looks for them.
fn system_roots() -> bool {
    std::env::var_os("SSL_CERT_FILE").is_some()
        || std::env::var_os("SSL_CERT_DIR").is_some()
        || SYSTEM_CA_FILES
            .iter()
            .any(|f| std::fs::metadata(f).is_ok_and(|m| m.len() > 0))
}
