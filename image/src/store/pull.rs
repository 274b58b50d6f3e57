//! `Store::pull`: manifest, config and layers from a registry into the store, then the root
//! unpacked. Every blob is verified before it is kept; layers already present are skipped.

use super::{invalid, io_err, Image, Store, StoreError};
use crate::digest::Digest;
use crate::reference::Reference;
use crate::registry::{BlobError, Client, RegistryError};
use crate::store::blobs::BlobWriter;
use crate::store::spec::{ConfigFile, ARCH, OS};

/// Download progress of one layer (the agent shows it while the task is `Preparing`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Progress {
    /// The layer blob.
    pub layer: Digest,
    /// Bytes received (equal to `total` for a layer already in the store).
    pub done: u64,
    /// The layer's size from the manifest.
    pub total: u64,
}

impl Store {
    /// The image `r` from the store when it is there with its root, else [`Store::pull`]ed.
    /// What the agent calls before starting a task.
    pub async fn ensure(
        &self,
        client: &Client,
        r: &Reference,
        progress: &(dyn Fn(Progress) + Send + Sync),
    ) -> Result<Image, StoreError> {
        if let Ok(img) = self.inspect(&r.to_string()) {
            if self.root(&img).is_dir() {
                return Ok(img);
            }
        }
        self.pull(client, r, progress).await
    }

    /// Pulls `r` (its linux/amd64 manifest), stores every blob verified, unpacks the root, and
    /// points `r` at the manifest. Counted in [`super::pull_counts`].
    pub async fn pull(
        &self,
        client: &Client,
        r: &Reference,
        progress: &(dyn Fn(Progress) + Send + Sync),
    ) -> Result<Image, StoreError> {
        let outcome = super::pull_counts::Outcome::start();
        let img = self.pull_uncounted(client, r, progress).await?;
        outcome.succeeded();
        Ok(img)
    }

    #[tracing::instrument(skip(self, client, progress), fields(image = %r))]
    async fn pull_uncounted(
        &self,
        client: &Client,
        r: &Reference,
        progress: &(dyn Fn(Progress) + Send + Sync),
    ) -> Result<Image, StoreError> {
        let fetched = client.manifest(r).await?;
        let m = &fetched.manifest;
        // Config first (small): it says the platform and the diff ids.
        let config_bytes = self
            .fetch_blob(client, &fetched.endpoint, &m.config, &|_| {})
            .await?;
        let config: ConfigFile = serde_json::from_slice(&config_bytes)
            .map_err(|e| invalid(format!("config {}", m.config.digest), e))?;
        if config.os != OS || config.architecture != ARCH {
            return Err(StoreError::Platform {
                reference: r.familiar(),
                found: format!("{}/{}", config.os, config.architecture),
            });
        }
        for layer in &m.layers {
            if self.has_blob(&layer.digest) {
                progress(Progress {
                    layer: layer.digest.clone(),
                    done: layer.size,
                    total: layer.size,
                });
                continue;
            }
            self.fetch_blob(client, &fetched.endpoint, layer, progress)
                .await?;
        }
        let manifest = self.put_blob(&fetched.bytes, Some(&fetched.digest))?;
        let id = m.config.digest.clone();
        let layers: Vec<Digest> = m.layers.iter().map(|l| l.digest.clone()).collect();
        let this = self.clone();
        let (id2, layers2) = (id.clone(), layers.clone());
        tokio::task::spawn_blocking(move || this.ensure_root(&id2, &layers2))
            .await
            .map_err(|e| io_err("unpack", self.dir())(std::io::Error::other(e)))??;
        self.tag(r, &manifest)?;
        tracing::info!(image.id = %id.short(), manifest = %manifest, "image pulled");
        self.inspect(&r.to_string())
    }

    /// Downloads one blob into the store; returns its bytes when it is the config (small).
    async fn fetch_blob(
        &self,
        client: &Client,
        ep: &crate::registry::Endpoint,
        desc: &crate::store::Descriptor,
        progress: &(dyn Fn(Progress) + Send + Sync),
    ) -> Result<Vec<u8>, StoreError> {
        let mut w = BlobWriter::new(self)?;
        let mut small = Vec::new();
        let keep = desc.size <= 4 * 1024 * 1024;
        let total = desc.size;
        let res = client
            .blob(ep, desc, |chunk| {
                // Writes go to the page cache in chunks of at most a few hundred KiB.
                w.write(chunk)?;
                if keep {
                    small.extend_from_slice(chunk);
                }
                progress(Progress {
                    layer: desc.digest.clone(),
                    done: w.written,
                    total,
                });
                Ok(())
            })
            .await;
        match res {
            Ok(()) => {}
            Err(BlobError::Store(e)) => return Err(e),
            Err(BlobError::Registry(RegistryError::DigestMismatch { .. }))
            | Err(BlobError::Registry(RegistryError::Protocol { .. }))
                if w.written > 0 =>
            {
                // Let the store's own check name the digests (and discard the bytes).
                w.commit(self, Some(&desc.digest))?;
                return Err(StoreError::Registry(RegistryError::DigestMismatch {
                    what: format!("blob {}", desc.digest),
                    expected: desc.digest.to_string(),
                    actual: "unknown".into(),
                }));
            }
            Err(BlobError::Registry(e)) => return Err(e.into()),
        }
        w.commit(self, Some(&desc.digest))?;
        Ok(small)
    }
}
