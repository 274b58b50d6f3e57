//! What each `swarmctl image` verb does to the node's store, in Docker's words.

use std::collections::{HashMap, HashSet};
use std::path::Path;
use std::time::Duration;

use shoal_image::{Image, ImageId, Reference, Store, StoreError};
use shoal_proto::pb;
use tracing::info;

use super::NodeImages;
use crate::worker::TaskImage;

/// Why an image operation failed on this node. The text is what `swarmctl` prints.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum OpError {
    /// The store failed (an unknown image among others: `No such image: …`).
    #[error(transparent)]
    Store(#[from] StoreError),
    /// Pulls or loads kept the store busy.
    #[error("the node's image store is busy with pulls or loads (waited {}s); retry", .waited.as_secs())]
    Busy {
        /// How long the operation waited.
        waited: Duration,
    },
    /// Removing a name of an image a task uses, without `--force`.
    #[error("conflict: unable to remove repository reference {name:?} (must force) - task {task} is using its referenced image {id}")]
    InUse {
        /// The name asked.
        name: String,
        /// A task using it.
        task: String,
        /// The image's short id.
        id: String,
    },
    /// Removing an image (its last name, or by id) a task uses: never done.
    #[error("conflict: unable to delete {id} (cannot be forced) - image is being used by running task {task}")]
    InUseForced {
        /// The image's short id.
        id: String,
        /// A task using it.
        task: String,
    },
    /// Removing by id an image with several names, without `--force`.
    #[error("conflict: unable to delete {id} (must be forced) - image is referenced in multiple repositories")]
    ManyNames {
        /// The image's short id.
        id: String,
    },
    /// `image pull` of something that is not a reference.
    #[error(transparent)]
    Reference(#[from] shoal_image::ReferenceError),
    /// `image pull` took too long.
    #[error("pulling {image}: no result within {}s", .after.as_secs())]
    PullTimeout {
        /// The image.
        image: String,
        /// The timeout.
        after: Duration,
    },
    /// The work could not be run.
    #[error("image operation interrupted: {0}")]
    Join(String),
}

/// An image as `image ls` shows it; `users` are the tasks using it ("": a container no
/// task names).
pub fn image_summary(img: &Image, users: Option<&Vec<String>>) -> pb::ImageSummary {
    pb::ImageSummary {
        references: img.references.iter().map(Reference::familiar).collect(),
        id: img.id.to_string(),
        digest: img.manifest.to_string(),
        size: img.size,
        used_by: users.cloned().unwrap_or_default(),
    }
}

/// A user to name in a conflict: the first task, or "(a container)" for one no task names.
fn first_user(users: &[String]) -> String {
    users
        .iter()
        .find(|u| !u.is_empty())
        .cloned()
        .unwrap_or_else(|| "(a container adopted on this node)".into())
}

/// Bytes of the store's blobs (what `rm` and `prune` give back is the difference).
fn blob_bytes(store: &Store) -> u64 {
    let dir = store.dir().join("blobs/sha256");
    std::fs::read_dir(dir)
        .map(|rd| {
            rd.flatten()
                .filter_map(|e| e.metadata().ok())
                .map(|m| m.len())
                .sum()
        })
        .unwrap_or(0)
}

impl NodeImages {
    /// `image ls`: every image, with the tasks using it.
    pub fn list(&self, tasks: &[TaskImage]) -> Result<Vec<pb::ImageSummary>, OpError> {
        let users = self.users(tasks);
        Ok(self
            .store
            .list()?
            .iter()
            .map(|i| image_summary(i, users.get(&i.id)))
            .collect())
    }

    /// `image pull REF`: from the registry (or its mirror) whether or not the store has it,
    /// as `docker pull` checks for a newer image.
    pub async fn pull(&self, image: &str) -> Result<pb::ImageSummary, OpError> {
        let r = Reference::parse(image)?;
        let _shared = self.lock.read().await;
        let pull = self.store.pull(&self.client, &r, &|_| {});
        let img = tokio::time::timeout(self.pull_timeout, pull)
            .await
            .map_err(|_| OpError::PullTimeout {
                image: image.to_string(),
                after: self.pull_timeout,
            })??;
        Ok(image_summary(&img, None))
    }

    /// `image rm NAME…`: each name (or id) in turn; a failure does not stop the others.
    /// Returns what was removed, the bytes freed, and one error per name that failed.
    pub async fn remove(
        &self,
        names: &[String],
        force: bool,
        tasks: &[TaskImage],
    ) -> Result<(Vec<pb::ImageDeleted>, u64, Vec<String>), OpError> {
        let _alone = self.exclusive().await?;
        let before = blob_bytes(&self.store);
        let users = self.users(tasks);
        let mut deleted = Vec::new();
        let mut errors = Vec::new();
        for name in names {
            match self.remove_one(name, force, &users) {
                Ok(d) => deleted.extend(d),
                Err(e) => errors.push(e.to_string()),
            }
        }
        Ok((
            deleted,
            before.saturating_sub(blob_bytes(&self.store)),
            errors,
        ))
    }

    fn remove_one(
        &self,
        name: &str,
        force: bool,
        users: &HashMap<ImageId, Vec<String>>,
    ) -> Result<Vec<pb::ImageDeleted>, OpError> {
        let img = self.store.inspect(name)?;
        let id = img.id.short().to_string();
        // By name: that name only (when the store has it), the image goes with its last name.
        let by_name = Reference::parse(name)
            .ok()
            .filter(|r| img.references.contains(r));
        let last = by_name.is_none() || img.references.len() <= 1;
        if by_name.is_none() && img.references.len() > 1 && !force {
            return Err(OpError::ManyNames { id });
        }
        if let Some(users) = users.get(&img.id) {
            let task = first_user(users);
            if !force {
                return Err(OpError::InUse {
                    name: name.to_string(),
                    task,
                    id,
                });
            }
            if last {
                return Err(OpError::InUseForced { id, task });
            }
        }
        let removed = self.store.remove(name)?;
        let mut out: Vec<pb::ImageDeleted> = removed
            .iter()
            .map(|r| pb::ImageDeleted {
                untagged: r.familiar(),
                deleted: String::new(),
            })
            .collect();
        if self.store.inspect(img.id.as_str()).is_err() {
            out.push(pb::ImageDeleted {
                untagged: String::new(),
                deleted: img.id.to_string(),
            });
        }
        info!(image.id = %id, name, "image removed");
        Ok(out)
    }

    /// `image prune [-a]`: images no task uses (only the unnamed ones without `all`).
    pub async fn prune(
        &self,
        all: bool,
        tasks: &[TaskImage],
    ) -> Result<(Vec<pb::ImageDeleted>, u64), OpError> {
        let _alone = self.exclusive().await?;
        let before = blob_bytes(&self.store);
        let users = self.users(tasks);
        let images = self.store.list()?;
        let keep: HashSet<ImageId> = images
            .iter()
            .filter(|i| users.contains_key(&i.id) || (!all && !i.references.is_empty()))
            .map(|i| i.id.clone())
            .collect();
        let gone: HashSet<ImageId> = self.store.prune(&keep)?.into_iter().collect();
        let mut out = Vec::new();
        for img in images.iter().filter(|i| gone.contains(&i.id)) {
            out.extend(img.references.iter().map(|r| pb::ImageDeleted {
                untagged: r.familiar(),
                deleted: String::new(),
            }));
            out.push(pb::ImageDeleted {
                untagged: String::new(),
                deleted: img.id.to_string(),
            });
        }
        Ok((out, before.saturating_sub(blob_bytes(&self.store))))
    }

    /// `image load`: the archive at `path` (a `docker save` or OCI layout tar). A failure
    /// leaves no name; what it wrote is collected before the error is returned.
    pub async fn load(&self, path: &Path) -> Result<Vec<pb::ImageSummary>, OpError> {
        let res = {
            let _shared = self.lock.read().await;
            let (store, path) = (self.store.clone(), path.to_path_buf());
            tokio::task::spawn_blocking(move || store.load(&path))
                .await
                .map_err(|e| OpError::Join(e.to_string()))?
        };
        match res {
            Ok(images) => {
                for i in &images {
                    info!(image.id = %i.id.short(), "image loaded");
                }
                Ok(images.iter().map(|i| image_summary(i, None)).collect())
            }
            Err(e) => {
                // Blobs (and a root) the failed load wrote: nothing names them. Collected now
                // so the store holds only what it lists (a busy store: the next collection).
                if let Ok(_alone) = self.exclusive().await {
                    // Every named image is kept: the prune only collects.
                    let kept = self
                        .store
                        .list()
                        .map(|l| l.into_iter().map(|i| i.id).collect());
                    if let Err(e) = kept.and_then(|ids: HashSet<ImageId>| self.store.prune(&ids)) {
                        tracing::warn!(error = %e, "could not collect what a failed load left");
                    }
                }
                Err(e.into())
            }
        }
    }
}
