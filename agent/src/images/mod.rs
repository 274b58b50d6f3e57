//! The node's images as `swarmctl image ls|pull|rm|prune|load` sees them (relayed by the
//! leader, see `session`), and the one lock that keeps those operations, the tasks' pulls and
//! the executor's collection from undoing one another.
//!
//! [`NodeImages`] wraps the executor's [`StoreImages`] as its [`ImageSource`]:
//! * **Shared:** a task's pull (`lower_dir`), `image pull` and `image load` hold the lock
//!   shared: each writes blobs before naming them, and none removes anything.
//! * **Exclusive:** `image rm` and `image prune` hold it exclusively (a collection of blobs
//!   would otherwise take the fresh, still unnamed blobs of a pull), waiting at most
//!   [`NodeImages::with_busy_wait`] for pulls in flight: then they fail and say so. The
//!   executor's collection only tries it.
//! * **In use:** an image is in use when a container task supervised here names it (preparing
//!   included: its pull holds the lock, and its name is in the worker's table first), or when
//!   the executor's last sweep found a container on its root (a task adopted before the
//!   managers re-sent its spec). Such an image is never removed.
//! * **Consistent:** a load that fails leaves no name behind; its blobs are collected at once.

mod ops;
mod upload;

#[cfg(test)]
mod tests;

pub use ops::{image_summary, OpError};
pub use upload::{receive, UploadError};

use std::collections::{HashMap, HashSet};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use shoal_image::registry::Client;
use shoal_image::{ImageConfig, ImageId, Store};
use tokio::sync::{RwLock, RwLockWriteGuard};

use crate::executor::controller::BoxFuture;
use crate::executor::{Error, ImageSource, StoreImages};
use crate::worker::TaskImage;

/// Default of [`NodeImages::with_busy_wait`].
pub const DEFAULT_BUSY_WAIT: Duration = Duration::from_secs(30);
/// How often `rm`/`prune` try for the lock while pulls or loads hold it.
const EXCLUSIVE_POLL: Duration = Duration::from_millis(50);

/// The node's image store with the lock its users share (see the module's doc).
#[derive(Debug)]
pub struct NodeImages {
    source: Arc<dyn ImageSource>,
    store: Store,
    client: Client,
    lock: RwLock<()>,
    /// The lower directories containers used at the executor's last sweep.
    containers: Mutex<HashSet<PathBuf>>,
    busy_wait: Duration,
    pull_timeout: Duration,
}

impl NodeImages {
    /// The images of `images` (the executor's source), whose store and registry client are
    /// `store` and `client`.
    pub fn new(images: StoreImages, client: Client) -> NodeImages {
        let store = images.store().clone();
        NodeImages::with_source(Arc::new(images), store, client)
    }

    /// The same over any source (tests use a fake one).
    pub fn with_source(source: Arc<dyn ImageSource>, store: Store, client: Client) -> NodeImages {
        NodeImages {
            source,
            store,
            client,
            lock: RwLock::new(()),
            containers: Mutex::default(),
            busy_wait: DEFAULT_BUSY_WAIT,
            pull_timeout: crate::executor::oci::images::DEFAULT_PULL_TIMEOUT,
        }
    }

    /// `image rm|prune` wait at most `wait` for pulls and loads in flight.
    pub fn with_busy_wait(mut self, wait: Duration) -> Self {
        self.busy_wait = wait;
        self
    }

    /// `image pull` fails after `timeout`.
    pub fn with_pull_timeout(mut self, timeout: Duration) -> Self {
        self.pull_timeout = timeout;
        self
    }

    /// The store.
    pub fn store(&self) -> &Store {
        &self.store
    }

    /// The lock held exclusively, waiting at most the busy wait. Polled rather than queued: a
    /// queued writer would hold back every new reader (task starts, even of cached images)
    /// for as long as it waits.
    async fn exclusive(&self) -> Result<RwLockWriteGuard<'_, ()>, OpError> {
        let deadline = tokio::time::Instant::now() + self.busy_wait;
        loop {
            if let Ok(guard) = self.lock.try_write() {
                return Ok(guard);
            }
            if tokio::time::Instant::now() >= deadline {
                return Err(OpError::Busy {
                    waited: self.busy_wait,
                });
            }
            tokio::time::sleep(EXCLUSIVE_POLL).await;
        }
    }

    /// Image id → the tasks using it (an empty list: a container no known task names).
    fn users(&self, tasks: &[TaskImage]) -> HashMap<ImageId, Vec<String>> {
        let mut users: HashMap<ImageId, Vec<String>> = HashMap::new();
        for t in tasks {
            if let Ok(img) = self.store.inspect(&t.image) {
                users.entry(img.id).or_default().push(t.task.clone());
            }
        }
        let containers = self
            .containers
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        if let Ok(all) = self.store.list() {
            for img in all {
                if containers.contains(&self.store.root(&img)) {
                    // "": a container no task names (`first_user` says so).
                    let u = users.entry(img.id).or_default();
                    if u.is_empty() {
                        u.push(String::new());
                    }
                }
            }
        }
        users
    }
}

impl ImageSource for NodeImages {
    fn lower_dir<'a>(
        &'a self,
        image: &'a str,
        digest: &'a str,
        progress: &'a (dyn Fn(&str) + Send + Sync),
    ) -> BoxFuture<'a, Result<(PathBuf, ImageConfig), Error>> {
        Box::pin(async move {
            let _shared = self.lock.read().await;
            self.source.lower_dir(image, digest, progress).await
        })
    }

    fn collect(&self, in_use: &HashSet<PathBuf>) {
        *self.containers.lock().unwrap_or_else(|e| e.into_inner()) = in_use.clone();
        // An `image` command in flight: next sweep.
        if let Ok(_alone) = self.lock.try_write() {
            self.source.collect(in_use);
        }
    }
}
