//! The JSON documents of the image format (OCI image spec, and Docker's v2 schema 2 which has
//! the same shape): descriptors, manifests, indexes / manifest lists, and the config blob.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::digest::Digest;

/// OCI image manifest.
pub const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
/// OCI image index.
pub const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
/// Docker v2 schema 2 manifest.
pub const DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";
/// Docker manifest list.
pub const DOCKER_LIST: &str = "application/vnd.docker.distribution.manifest.list.v2+json";
/// An uncompressed OCI layer (what `load` records for `docker save` layers).
pub const OCI_LAYER_TAR: &str = "application/vnd.oci.image.layer.v1.tar";
/// OCI config.
pub const OCI_CONFIG: &str = "application/vnd.oci.image.config.v1+json";
/// Every manifest type a pull accepts, for the `Accept` header.
pub const MANIFEST_TYPES: &[&str] = &[OCI_MANIFEST, OCI_INDEX, DOCKER_MANIFEST, DOCKER_LIST];

/// The only platform Shoal runs.
pub const OS: &str = "linux";
/// The only platform Shoal runs.
pub const ARCH: &str = "amd64";

/// A content descriptor.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct Descriptor {
    /// Media type.
    #[serde(default)]
    pub media_type: String,
    /// Content digest.
    pub digest: Digest,
    /// Size in bytes.
    pub size: u64,
    /// Platform, in indexes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub platform: Option<Platform>,
    /// Annotations (`org.opencontainers.image.ref.name`…).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: BTreeMap<String, String>,
}

/// An index entry's platform.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Platform {
    /// `amd64`…
    pub architecture: String,
    /// `linux`…
    pub os: String,
}

/// An image manifest (OCI or Docker v2 schema 2).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Manifest {
    /// Always 2.
    pub schema_version: u32,
    /// The manifest's own media type (optional in OCI).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub media_type: Option<String>,
    /// The config blob.
    pub config: Descriptor,
    /// Layer blobs, lowest first.
    pub layers: Vec<Descriptor>,
}

/// An index or manifest list.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Index {
    /// The media type, when present.
    #[serde(default)]
    pub media_type: Option<String>,
    /// Per-platform manifests.
    pub manifests: Vec<Descriptor>,
}

impl Index {
    /// The linux/amd64 entry (the first one, as dockerd picks).
    pub fn linux_amd64(&self) -> Option<&Descriptor> {
        self.manifests.iter().find(|d| {
            d.platform
                .as_ref()
                .is_some_and(|p| p.os == OS && p.architecture == ARCH)
        })
    }
}

/// What a manifest document is, told by its `mediaType` or, failing that, its shape.
pub enum AnyManifest {
    /// A single-platform manifest.
    Image(Manifest),
    /// An index or manifest list.
    Index(Index),
}

/// Parses manifest bytes (`media_type` from the HTTP `Content-Type` when known).
pub fn parse_manifest(
    bytes: &[u8],
    media_type: Option<&str>,
) -> Result<AnyManifest, serde_json::Error> {
    #[derive(Deserialize)]
    #[serde(rename_all = "camelCase")]
    struct Probe {
        media_type: Option<String>,
        manifests: Option<serde_json::Value>,
    }
    let p: Probe = serde_json::from_slice(bytes)?;
    let mt = p.media_type.as_deref().or(media_type).unwrap_or("");
    if mt == OCI_INDEX || mt == DOCKER_LIST || (mt.is_empty() && p.manifests.is_some()) {
        Ok(AnyManifest::Index(serde_json::from_slice(bytes)?))
    } else {
        Ok(AnyManifest::Image(serde_json::from_slice(bytes)?))
    }
}

/// The config blob (only the fields Shoal uses).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct ConfigFile {
    /// `amd64`…
    #[serde(default)]
    pub architecture: String,
    /// `linux`…
    #[serde(default)]
    pub os: String,
    /// The runtime defaults.
    #[serde(default)]
    pub config: Option<ContainerConfig>,
    /// The uncompressed layer digests.
    #[serde(default)]
    pub rootfs: RootFs,
}

/// `rootfs` of the config.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct RootFs {
    /// Always `layers`.
    #[serde(rename = "type", default)]
    pub kind: String,
    /// sha256 of each uncompressed layer tar, lowest first.
    #[serde(default)]
    pub diff_ids: Vec<Digest>,
}

/// The `config` section of the config blob (Docker's capitalized keys).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct ContainerConfig {
    /// `Entrypoint`.
    #[serde(default)]
    pub entrypoint: Option<Vec<String>>,
    /// `Cmd`.
    #[serde(default)]
    pub cmd: Option<Vec<String>>,
    /// `Env`.
    #[serde(default)]
    pub env: Option<Vec<String>>,
    /// `WorkingDir`.
    #[serde(default)]
    pub working_dir: Option<String>,
    /// `User`.
    #[serde(default)]
    pub user: Option<String>,
    /// `StopSignal`.
    #[serde(default)]
    pub stop_signal: Option<String>,
    /// `ExposedPorts` (`"80/tcp": {}`).
    #[serde(default)]
    pub exposed_ports: Option<BTreeMap<String, serde_json::Value>>,
    /// `Labels`.
    #[serde(default)]
    pub labels: Option<BTreeMap<String, String>>,
    /// `Healthcheck` (Dockerfile `HEALTHCHECK`).
    #[serde(default)]
    pub healthcheck: Option<Healthcheck>,
}

/// An image's `HEALTHCHECK`, as Docker writes it in the config (durations in nanoseconds; zero or
/// absent: the default).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct Healthcheck {
    /// `[]` (inherit), `["NONE"]`, `["CMD", …]` or `["CMD-SHELL", "…"]`.
    #[serde(default)]
    pub test: Option<Vec<String>>,
    /// Time between probes.
    #[serde(default)]
    pub interval: Option<i64>,
    /// Time a probe may take.
    #[serde(default)]
    pub timeout: Option<i64>,
    /// Time after the start during which failures do not count.
    #[serde(default)]
    pub start_period: Option<i64>,
    /// Failures in a row that make the container unhealthy.
    #[serde(default)]
    pub retries: Option<i64>,
}

/// What a container needs from an image's config: its `config` section plus platform.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ImageConfig {
    /// `Entrypoint`.
    pub entrypoint: Vec<String>,
    /// `Cmd`.
    pub cmd: Vec<String>,
    /// `Env` (`KEY=VALUE`).
    pub env: Vec<String>,
    /// `WorkingDir` (empty: `/`).
    pub working_dir: String,
    /// `User` (empty: root).
    pub user: String,
    /// `StopSignal` (empty: SIGTERM).
    pub stop_signal: String,
    /// `ExposedPorts` keys (`80/tcp`).
    pub exposed_ports: Vec<String>,
    /// `Labels`.
    pub labels: BTreeMap<String, String>,
    /// `Healthcheck`, if the image has one.
    #[serde(default)]
    pub healthcheck: Option<Healthcheck>,
    /// `os`.
    pub os: String,
    /// `architecture`.
    pub architecture: String,
}

impl From<ConfigFile> for ImageConfig {
    fn from(f: ConfigFile) -> Self {
        let c = f.config.unwrap_or_default();
        ImageConfig {
            entrypoint: c.entrypoint.unwrap_or_default(),
            cmd: c.cmd.unwrap_or_default(),
            env: c.env.unwrap_or_default(),
            working_dir: c.working_dir.unwrap_or_default(),
            user: c.user.unwrap_or_default(),
            stop_signal: c.stop_signal.unwrap_or_default(),
            exposed_ports: c.exposed_ports.unwrap_or_default().into_keys().collect(),
            labels: c.labels.unwrap_or_default(),
            healthcheck: c.healthcheck,
            os: f.os,
            architecture: f.architecture,
        }
    }
}
