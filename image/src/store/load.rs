//! `Store::load`: images from a `docker save` archive or an OCI image layout (a directory or a
//! tar of one), for hosts without a registry.
//!
//! A tar is first extracted into `tmp/` taking only regular files with clean relative paths;
//! its symlinks and hard links (old `docker save` links identical layers) are kept as a table
//! and resolved inside the archive, never on disk. Then:
//! - `manifest.json` present: `docker save`. Each entry's config (named by its digest) and
//!   layers (uncompressed tars) become blobs, a manifest is written for them
//!   (OCI, `application/vnd.oci.image.layer.v1.tar` layers), and each `RepoTags` name points
//!   at it: the image id is the config's digest, as `docker images` shows.
//! - else `index.json`: an OCI layout. Each manifest (an index resolved to linux/amd64) and its
//!   blobs are imported, verified against their digests. The name is the
//!   `io.containerd.image.name` annotation, else `org.opencontainers.image.ref.name` parsed as a
//!   reference (`shoal/busybox:1`; a bare tag like `1` gives `docker.io/library/1:latest`, so
//!   name your layouts).
//!
//! An image without a name (`docker save IMAGE_ID`, a layout entry without annotations) is kept
//! under its manifest digest in the index: `list` shows it with no references and `inspect`
//! finds it by id.

use std::collections::BTreeMap;
use std::fs;
use std::io::Read;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use super::spec::{self, AnyManifest, ConfigFile, Descriptor, Manifest, ARCH, OS};
use super::{invalid, io_err, Image, Store, StoreError};
use crate::digest::Digest;
use crate::reference::Reference;
use crate::unpack::clean;

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct SaveEntry {
    config: String,
    #[serde(default)]
    repo_tags: Option<Vec<String>>,
    layers: Vec<String>,
}

/// An archive's files: extracted regular files plus its links, looked up by archive path.
struct Archive {
    root: PathBuf,
    links: BTreeMap<PathBuf, PathBuf>,
}

impl Archive {
    /// The extracted file for `name`, following the archive's own links (at most 16 hops).
    fn path(&self, name: &str) -> Result<PathBuf, StoreError> {
        let mut cur = clean(Path::new(name))
            .filter(|c| !c.is_empty())
            .map(|c| c.iter().collect::<PathBuf>())
            .ok_or_else(|| invalid("archive".into(), format!("bad path {name}")))?;
        for _ in 0..16 {
            match self.links.get(&cur) {
                Some(next) => cur = next.clone(),
                None => {
                    let p = self.root.join(&cur);
                    return if fs::symlink_metadata(&p).is_ok_and(|m| m.file_type().is_file()) {
                        Ok(p)
                    } else {
                        Err(invalid("archive".into(), format!("{name} is missing")))
                    };
                }
            }
        }
        Err(invalid("archive".into(), format!("{name}: too many links")))
    }

    fn read(&self, name: &str) -> Result<Vec<u8>, StoreError> {
        let p = self.path(name)?;
        fs::read(&p).map_err(io_err("read", &p))
    }

    fn exists(&self, name: &str) -> bool {
        self.path(name).is_ok()
    }
}

impl Store {
    /// Loads every image in a `docker save` archive or an OCI layout (directory or tar) and
    /// unpacks their roots. Blocking: call from a blocking thread in async code.
    #[tracing::instrument(skip(self), fields(path = %path.display()))]
    pub fn load(&self, path: &Path) -> Result<Vec<Image>, StoreError> {
        let _tmp;
        let archive = if path.is_dir() {
            Archive {
                root: path.to_path_buf(),
                links: BTreeMap::new(),
            }
        } else {
            let dir = tempfile::Builder::new()
                .prefix("load-")
                .tempdir_in(self.tmp_dir())
                .map_err(io_err("create", &self.tmp_dir()))?;
            let a = extract(path, dir.path())?;
            _tmp = dir;
            a
        };
        let refs = if archive.exists("manifest.json") {
            self.load_docker_save(&archive)?
        } else if archive.exists("index.json") {
            self.load_oci_layout(&archive)?
        } else {
            return Err(invalid(
                path.display().to_string(),
                "neither a docker save archive (manifest.json) nor an OCI layout (index.json)",
            ));
        };
        let mut out = Vec::new();
        for (name, manifest) in refs {
            let m = self.manifest(&manifest)?;
            let layers: Vec<Digest> = m.layers.iter().map(|l| l.digest.clone()).collect();
            self.ensure_root(&m.config.digest, &layers)?;
            // Unnamed (`<none>` in `docker images`): the index keeps it under its manifest
            // digest, so collection keeps it and `inspect` finds it by id.
            let key = match &name {
                Some(r) => r.to_string(),
                None => manifest.to_string(),
            };
            self.tag_key(key, &manifest)?;
            out.push(
                self.inspect(&name.map_or_else(|| m.config.digest.to_string(), |r| r.to_string()))?,
            );
        }
        Ok(out)
    }

    fn load_docker_save(
        &self,
        a: &Archive,
    ) -> Result<Vec<(Option<Reference>, Digest)>, StoreError> {
        let entries: Vec<SaveEntry> = serde_json::from_slice(&a.read("manifest.json")?)
            .map_err(|e| invalid("manifest.json".into(), e))?;
        let mut out = Vec::new();
        for e in entries {
            let config_bytes = a.read(&e.config)?;
            let config: ConfigFile = serde_json::from_slice(&config_bytes)
                .map_err(|err| invalid(format!("config {}", e.config), err))?;
            check_platform(&e.config, &config)?;
            let config_digest = self.put_blob(&config_bytes, None)?;
            let mut layers = Vec::new();
            for l in &e.layers {
                let p = a.path(l)?;
                let size = fs::metadata(&p).map_err(io_err("stat", &p))?.len();
                let digest = self.put_blob_from(&p, None)?;
                layers.push(Descriptor {
                    media_type: spec::OCI_LAYER_TAR.into(),
                    digest,
                    size,
                    platform: None,
                    annotations: Default::default(),
                });
            }
            let manifest = Manifest {
                schema_version: 2,
                media_type: Some(spec::OCI_MANIFEST.into()),
                config: Descriptor {
                    media_type: spec::OCI_CONFIG.into(),
                    digest: config_digest,
                    size: config_bytes.len() as u64,
                    platform: None,
                    annotations: Default::default(),
                },
                layers,
            };
            let bytes =
                serde_json::to_vec(&manifest).map_err(|err| invalid("manifest".into(), err))?;
            let md = self.put_blob(&bytes, None)?;
            let tags = e.repo_tags.unwrap_or_default();
            if tags.is_empty() {
                out.push((None, md.clone()));
            }
            for t in tags {
                let r =
                    Reference::parse(&t).map_err(|err| invalid(format!("RepoTags {t}"), err))?;
                out.push((Some(r), md.clone()));
            }
        }
        Ok(out)
    }

    fn load_oci_layout(&self, a: &Archive) -> Result<Vec<(Option<Reference>, Digest)>, StoreError> {
        let index: spec::Index = serde_json::from_slice(&a.read("index.json")?)
            .map_err(|e| invalid("index.json".into(), e))?;
        let mut out = Vec::new();
        for desc in &index.manifests {
            let name = desc
                .annotations
                .get("io.containerd.image.name")
                .or_else(|| desc.annotations.get("org.opencontainers.image.ref.name"))
                .map(|n| Reference::parse(n).map_err(|e| invalid(format!("image name {n}"), e)))
                .transpose()?;
            let md = self.import_oci_manifest(a, desc, 0)?;
            out.push((name, md));
        }
        Ok(out)
    }

    /// Imports a manifest (following an index to linux/amd64) and its blobs; returns the image
    /// manifest's digest.
    fn import_oci_manifest(
        &self,
        a: &Archive,
        desc: &Descriptor,
        depth: u32,
    ) -> Result<Digest, StoreError> {
        let blob = |d: &Digest| format!("blobs/sha256/{}", d.hex());
        let bytes = a.read(&blob(&desc.digest))?;
        let actual = Digest::of(&bytes);
        if actual != desc.digest {
            return Err(StoreError::DigestMismatch {
                expected: desc.digest.clone(),
                actual,
            });
        }
        match spec::parse_manifest(&bytes, Some(&desc.media_type))
            .map_err(|e| invalid(format!("manifest {}", desc.digest), e))?
        {
            AnyManifest::Index(idx) if depth < 2 => {
                let entry = idx.linux_amd64().ok_or_else(|| StoreError::Platform {
                    reference: desc.digest.to_string(),
                    found: idx
                        .manifests
                        .iter()
                        .filter_map(|d| d.platform.as_ref())
                        .map(|p| format!("{}/{}", p.os, p.architecture))
                        .collect::<Vec<_>>()
                        .join(", "),
                })?;
                self.import_oci_manifest(a, entry, depth + 1)
            }
            AnyManifest::Index(_) => Err(invalid(
                format!("manifest {}", desc.digest),
                "indexes nested too deep",
            )),
            AnyManifest::Image(m) => {
                let config_bytes = a.read(&blob(&m.config.digest))?;
                let config: ConfigFile = serde_json::from_slice(&config_bytes)
                    .map_err(|e| invalid(format!("config {}", m.config.digest), e))?;
                check_platform(m.config.digest.as_str(), &config)?;
                self.put_blob(&config_bytes, Some(&m.config.digest))?;
                for l in &m.layers {
                    self.put_blob_from(&a.path(&blob(&l.digest))?, Some(&l.digest))?;
                }
                self.put_blob(&bytes, Some(&desc.digest))
            }
        }
    }
}

fn check_platform(what: &str, c: &ConfigFile) -> Result<(), StoreError> {
    if c.os != OS || c.architecture != ARCH {
        return Err(StoreError::Platform {
            reference: what.to_string(),
            found: format!("{}/{}", c.os, c.architecture),
        });
    }
    Ok(())
}

/// Extracts regular files with clean paths into `dir`; links go to the table.
fn extract(path: &Path, dir: &Path) -> Result<Archive, StoreError> {
    let f = fs::File::open(path).map_err(io_err("open", path))?;
    let mut reader = std::io::BufReader::new(f);
    let mut head = [0u8; 2];
    let gz = {
        use std::io::BufRead;
        let b = reader.fill_buf().map_err(io_err("read", path))?;
        head[..b.len().min(2)].copy_from_slice(&b[..b.len().min(2)]);
        head == [0x1f, 0x8b]
    };
    let input: Box<dyn Read> = if gz {
        Box::new(flate2::read::GzDecoder::new(reader))
    } else {
        Box::new(reader)
    };
    let mut ar = tar::Archive::new(input);
    let mut links = BTreeMap::new();
    let bad = |e: std::io::Error| invalid(path.display().to_string(), e);
    for entry in ar.entries().map_err(bad)? {
        let mut entry = entry.map_err(bad)?;
        let raw = entry.path().map_err(bad)?.into_owned();
        let Some(comps) = clean(&raw).filter(|c| !c.is_empty()) else {
            continue;
        };
        let rel: PathBuf = comps.iter().collect();
        match entry.header().entry_type() {
            tar::EntryType::Regular | tar::EntryType::Continuous => {
                let dst = dir.join(&rel);
                if let Some(parent) = dst.parent() {
                    fs::create_dir_all(parent).map_err(io_err("create", parent))?;
                }
                let mut out = fs::File::create(&dst).map_err(io_err("create", &dst))?;
                std::io::copy(&mut entry, &mut out).map_err(bad)?;
            }
            tar::EntryType::Symlink | tar::EntryType::Link => {
                let Some(target) = entry.link_name().map_err(bad)? else {
                    continue;
                };
                // Symlinks are relative to their directory; hard links to the archive root.
                let joined = if entry.header().entry_type() == tar::EntryType::Symlink {
                    rel.parent().unwrap_or(Path::new("")).join(target.as_ref())
                } else {
                    target.into_owned()
                };
                if let Some(t) = normalize(&joined) {
                    links.insert(rel, t);
                }
            }
            _ => {}
        }
    }
    Ok(Archive {
        root: dir.to_path_buf(),
        links,
    })
}

/// Lexical `..` resolution inside the archive; `None` when it climbs out or is absolute.
fn normalize(p: &Path) -> Option<PathBuf> {
    let mut out: Vec<&std::ffi::OsStr> = Vec::new();
    for c in p.components() {
        match c {
            std::path::Component::Normal(n) => out.push(n),
            std::path::Component::CurDir => {}
            std::path::Component::ParentDir => {
                out.pop()?;
            }
            _ => return None,
        }
    }
    Some(out.iter().collect())
}
