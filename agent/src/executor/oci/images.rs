//! The [`ImageSource`] of production: the node's image store (`<state dir>/images`,
//! [`shoal_image::Store`]) filled from registries ([`shoal_image::registry::Client`]).
//!
//! * **Pinned pulls.** A service resolved to a digest at `service create` names its image
//!   `name:tag@sha256:…` here, so every node pulls the same bytes.
//! * **One pull per image.** Tasks of the same image wait for one another's pull (a lock per
//!   reference) and then find it in the store.
//! * **Bounded.** The registry client has connect and read timeouts; the whole pull (waiting
//!   for another task's pull included) also has a deadline, so a registry that trickles bytes
//!   cannot hold a task in `Preparing` forever: the task fails and the restart policy retries.
//! * **Progress.** Layer progress becomes the task's status message, at most every
//!   [`PROGRESS_EVERY`] and whenever a layer completes ([`Meter`]).
//! * **Collection.** The executor's sweep gives the lower directories its containers use;
//!   images no container used for [`StoreImages::with_gc_grace`] are removed. The grace keeps
//!   an image between the two tasks of a rolling restart; a pull in flight defers collection
//!   (the store would otherwise see its fresh blobs as unreferenced).

use std::collections::{HashMap, HashSet};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use shoal_image::registry::{Client, RegistryError};
use shoal_image::{ImageConfig, ImageId, Progress, Reference, Store, StoreError};

use super::ImageSource;
use crate::executor::controller::BoxFuture;
use crate::executor::Error;

/// Shortest time between two progress messages of one pull.
pub const PROGRESS_EVERY: Duration = Duration::from_millis(500);

/// Default of [`StoreImages::with_pull_timeout`].
pub const DEFAULT_PULL_TIMEOUT: Duration = Duration::from_secs(600);

/// Default of [`StoreImages::with_gc_grace`].
pub const DEFAULT_GC_GRACE: Duration = Duration::from_secs(300);

/// Images from the node's store, pulled from registries when missing.
#[derive(Debug)]
pub struct StoreImages {
    store: Store,
    client: Client,
    pull_timeout: Duration,
    gc_grace: Duration,
    /// One lock per reference being ensured: the single flight.
    flights: Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>,
    /// Held shared by every pull, exclusively (and only tried) by a collection.
    pulls: tokio::sync::RwLock<()>,
    /// Images found unused by a collection, since when.
    unused_since: Mutex<HashMap<ImageId, Instant>>,
}

impl StoreImages {
    /// Images of `store`, pulled with `client` when missing.
    pub fn new(store: Store, client: Client) -> StoreImages {
        StoreImages {
            store,
            client,
            pull_timeout: DEFAULT_PULL_TIMEOUT,
            gc_grace: DEFAULT_GC_GRACE,
            flights: Mutex::default(),
            pulls: tokio::sync::RwLock::new(()),
            unused_since: Mutex::default(),
        }
    }

    /// A pull (waiting for the same image's pull by another task included) fails after
    /// `timeout`.
    pub fn with_pull_timeout(mut self, timeout: Duration) -> Self {
        self.pull_timeout = timeout;
        self
    }

    /// Images no container uses are removed once they have been unused for `grace`.
    pub fn with_gc_grace(mut self, grace: Duration) -> Self {
        self.gc_grace = grace;
        self
    }

    /// The store.
    pub fn store(&self) -> &Store {
        &self.store
    }

    fn flight(&self, key: &str) -> Arc<tokio::sync::Mutex<()>> {
        let mut f = self.flights.lock().unwrap_or_else(|e| e.into_inner());
        f.entry(key.to_string()).or_default().clone()
    }

    /// Forgets the lock of `key` when no other task holds it.
    fn land(&self, key: &str, flight: Arc<tokio::sync::Mutex<()>>) {
        let mut f = self.flights.lock().unwrap_or_else(|e| e.into_inner());
        // Ours and the map's: nobody else waits.
        if Arc::strong_count(&flight) <= 2 {
            f.remove(key);
        }
    }

    async fn ensure(
        &self,
        image: &str,
        digest: &str,
        progress: &(dyn Fn(&str) + Send + Sync),
    ) -> Result<(PathBuf, ImageConfig), Error> {
        let pinned = pinned(image, digest);
        let r = Reference::parse(&pinned).map_err(|source| Error::BadReference {
            image: image.to_string(),
            source,
        })?;
        let key = r.to_string();
        let flight = self.flight(&key);
        let meter = Meter::new(image);
        let report = |p: Progress| {
            if let Some(msg) = meter.update(p, Instant::now()) {
                progress(&msg);
            }
        };
        let pull = async {
            let _pulling = self.pulls.read().await;
            let _alone = flight.lock().await;
            self.store.ensure(&self.client, &r, &report).await
        };
        let res = tokio::time::timeout(self.pull_timeout, pull).await;
        self.land(&key, flight);
        let img = match res {
            Err(_) => {
                return Err(Error::PullTimeout {
                    image: image.to_string(),
                    after: self.pull_timeout,
                })
            }
            Ok(r) => r.map_err(|e| pull_error(image, e))?,
        };
        self.unused_since
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&img.id);
        let config = self.store.config(&img).map_err(|e| pull_error(image, e))?;
        Ok((self.store.root(&img), config))
    }
}

impl ImageSource for StoreImages {
    fn lower_dir<'a>(
        &'a self,
        image: &'a str,
        digest: &'a str,
        progress: &'a (dyn Fn(&str) + Send + Sync),
    ) -> BoxFuture<'a, Result<(PathBuf, ImageConfig), Error>> {
        Box::pin(self.ensure(image, digest, progress))
    }

    fn collect(&self, in_use: &HashSet<PathBuf>) {
        // A pull in flight: its blobs are not named yet. Next sweep.
        let Ok(_no_pulls) = self.pulls.try_write() else {
            return;
        };
        let images = match self.store.list() {
            Ok(i) => i,
            Err(e) => {
                tracing::warn!(error = %e, "image collection: cannot list the store");
                return;
            }
        };
        let now = Instant::now();
        let mut keep = HashSet::new();
        {
            let mut since = self.unused_since.lock().unwrap_or_else(|e| e.into_inner());
            since.retain(|id, _| images.iter().any(|i| &i.id == id));
            for img in &images {
                if in_use.contains(&self.store.root(img)) {
                    since.remove(&img.id);
                    keep.insert(img.id.clone());
                    continue;
                }
                let t = *since.entry(img.id.clone()).or_insert(now);
                if now.duration_since(t) < self.gc_grace {
                    keep.insert(img.id.clone());
                }
            }
        }
        if keep.len() == images.len() {
            return;
        }
        match self.store.prune(&keep) {
            Ok(gone) => {
                for id in gone {
                    tracing::info!(image.id = %id.short(), "removed an image no task uses");
                }
            }
            Err(e) => tracing::warn!(error = %e, "image collection failed"),
        }
    }
}

/// `image` pinned to `digest` (`name:tag@sha256:…`) when there is one and the image does not
/// carry one already.
pub fn pinned(image: &str, digest: &str) -> String {
    if digest.is_empty() || image.contains('@') {
        image.to_string()
    } else {
        format!("{image}@{digest}")
    }
}

/// A store error as the task's error: an unknown image or tag in Docker's words, the
/// registry's (or the store's) error otherwise.
pub fn pull_error(image: &str, e: StoreError) -> Error {
    match e {
        StoreError::NoSuchImage(_) | StoreError::Registry(RegistryError::NotFound(_)) => {
            Error::NoSuchImage {
                image: image.to_string(),
            }
        }
        source => Error::Pull {
            image: image.to_string(),
            source,
        },
    }
}

/// Turns a pull's per-layer progress into status messages, throttled.
#[derive(Debug)]
pub struct Meter {
    image: String,
    state: Mutex<MeterState>,
}

#[derive(Debug, Default)]
struct MeterState {
    /// Layers seen, in order, with (done, total).
    layers: Vec<(shoal_image::Digest, u64, u64)>,
    last: Option<Instant>,
}

impl Meter {
    /// A meter for a pull of `image`.
    pub fn new(image: &str) -> Meter {
        Meter {
            image: image.to_string(),
            state: Mutex::default(),
        }
    }

    /// Records `p` at `now`; returns the message to show when one is due (a layer completed,
    /// or [`PROGRESS_EVERY`] since the last one).
    pub fn update(&self, p: Progress, now: Instant) -> Option<String> {
        let mut s = self.state.lock().unwrap_or_else(|e| e.into_inner());
        let completed = p.done >= p.total;
        match s.layers.iter_mut().find(|(d, ..)| *d == p.layer) {
            Some(l) => {
                if l.1 >= l.2 {
                    return None; // already complete: nothing new
                }
                l.1 = p.done;
                l.2 = p.total;
            }
            None => s.layers.push((p.layer, p.done, p.total)),
        }
        let due = s
            .last
            .is_none_or(|t| now.duration_since(t) >= PROGRESS_EVERY);
        if !(due || completed) {
            return None;
        }
        s.last = Some(now);
        let done = s.layers.iter().filter(|(_, d, t)| d >= t).count();
        let (_, d, t) = s.layers.last().cloned()?;
        Some(message(&self.image, done, s.layers.len(), d, t))
    }
}

/// `pulling busybox: 2 layers done, layer 3 at 12.0 MB/30.1 MB`.
pub fn message(image: &str, done: usize, seen: usize, bytes: u64, total: u64) -> String {
    if done == seen {
        let s = if done == 1 { "" } else { "s" };
        return format!("pulling {image}: {done} layer{s} done");
    }
    format!(
        "pulling {image}: {done} of {seen}+ layers done, layer {seen} at {}/{}",
        mb(bytes),
        mb(total)
    )
}

/// Decimal megabytes with one decimal, as `docker pull` shows them.
fn mb(b: u64) -> String {
    format!("{:.1} MB", b as f64 / 1e6)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(layer: u8, done: u64, total: u64) -> Progress {
        Progress {
            layer: shoal_image::Digest::of(&[layer]),
            done,
            total,
        }
    }

    #[test]
    fn progress_is_throttled_and_says_layers_and_bytes() {
        let m = Meter::new("busybox");
        let t0 = Instant::now();
        assert_eq!(
            m.update(p(1, 1_000_000, 2_000_000), t0).as_deref(),
            Some("pulling busybox: 0 of 1+ layers done, layer 1 at 1.0 MB/2.0 MB")
        );
        // Within the period: nothing...
        assert_eq!(m.update(p(1, 1_500_000, 2_000_000), t0), None);
        // ...but a completed layer is always said.
        assert_eq!(
            m.update(p(1, 2_000_000, 2_000_000), t0).as_deref(),
            Some("pulling busybox: 1 layer done")
        );
        assert_eq!(m.update(p(1, 2_000_000, 2_000_000), t0), None, "said once");
        let t1 = t0 + PROGRESS_EVERY;
        assert_eq!(
            m.update(p(2, 12_000_000, 30_100_000), t1).as_deref(),
            Some("pulling busybox: 1 of 2+ layers done, layer 2 at 12.0 MB/30.1 MB")
        );
        assert_eq!(
            m.update(p(2, 13_000_000, 30_100_000), t1 + Duration::from_millis(10)),
            None
        );
        assert_eq!(
            m.update(p(2, 30_100_000, 30_100_000), t1).as_deref(),
            Some("pulling busybox: 2 layers done")
        );
    }

    #[test]
    fn the_digest_pins_the_image() {
        let d = "sha256:aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";
        assert_eq!(pinned("busybox", ""), "busybox");
        assert_eq!(pinned("busybox:1", d), format!("busybox:1@{d}"));
        assert_eq!(pinned(&format!("busybox@{d}"), d), format!("busybox@{d}"));
    }

    #[test]
    fn an_unknown_image_is_no_such_image_other_errors_are_the_registrys() {
        let e = pull_error(
            "nope:1",
            StoreError::Registry(RegistryError::NotFound("x".into())),
        );
        assert!(matches!(e, Error::NoSuchImage { .. }));
        assert_eq!(e.to_string(), "No such image: nope:1");
        let e = pull_error("nope:1", StoreError::NoSuchImage("nope:1".into()));
        assert_eq!(e.to_string(), "No such image: nope:1");
        let e = pull_error(
            "web:1",
            StoreError::Registry(RegistryError::Unreachable {
                registry: "10.0.0.1:5000".into(),
                detail: "connection refused".into(),
            }),
        );
        assert!(matches!(e, Error::Pull { .. }));
        assert_eq!(
            e.to_string(),
            "pulling web:1: registry 10.0.0.1:5000 unreachable: connection refused"
        );
    }

    #[tokio::test]
    async fn a_registry_that_never_answers_fails_the_pull_in_time() {
        // A listener that accepts and says nothing.
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let host = l.local_addr().unwrap().to_string();
        let dir = tempfile::tempdir().unwrap();
        let client = Client::new(shoal_image::registry::RegistryConfig {
            insecure: vec![host.clone()],
            ..Default::default()
        })
        .unwrap();
        let images = StoreImages::new(Store::open(dir.path()).unwrap(), client)
            .with_pull_timeout(Duration::from_millis(300));
        let t0 = Instant::now();
        let e = images
            .lower_dir(&format!("{host}/x:1"), "", &|_| {})
            .await
            .unwrap_err();
        assert!(matches!(e, Error::PullTimeout { .. }), "{e}");
        assert!(t0.elapsed() < Duration::from_secs(5));
        drop(l);
    }
}
