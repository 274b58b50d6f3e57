//! Autolock (`swarmctl swarm update --autolock=true`): every manager keeps its raft key file
//! (`<state dir>/raft/keys.json`) in step with the cluster's setting, as SwarmKit's managers
//! follow `cluster.spec.encryption_config.auto_lock_managers`:
//!
//! * autolock on: the data key is wrapped under a KEK derived from the cluster's unlock key
//!   (`kek.location: unlock_key`), so no key that opens the raft data is on disk;
//! * a rotated unlock key: the data key is wrapped under the new one's KEK;
//! * autolock off: a fresh random KEK goes back into the file.
//!
//! [`plan`] decides (pure); [`keep_key_file`] is the level-triggered loop that reads the
//! cluster from the local store after each applied entry and applies the plan. A manager
//! restarted with `kek.location: unlock_key` comes up locked (see `control::locked`).

use crate::raft::storage::keys::{KeyError, RaftKeys};
use crate::raft::storage::unlock::UnlockKey;
use crate::store::Store;
use shoal_proto::model::Cluster;
use std::path::PathBuf;
use tracing::{info, warn};

/// What a locked manager answers every call with, and logs once at start (Docker's text).
pub const LOCKED_MESSAGE: &str = "Swarm is encrypted and needs to be unlocked before it can be \
     used. Please use \"swarmctl swarm unlock\" to unlock it.";

/// How soon a key file that could not be written is tried again (an idle cluster applies no
/// entry that would wake the loop).
const SAVE_RETRY: std::time::Duration = std::time::Duration::from_secs(2);

/// A change of the key file that brings it in line with the cluster.
#[derive(Debug)]
pub enum Change {
    /// Wrap the data key under this unlock key's KEK.
    LockWith(UnlockKey),
    /// Wrap the data key under a fresh KEK kept in the file.
    ToStateDir,
}

/// The change `keys` needs to match `cluster`'s autolock setting, if any. A cluster older than
/// the one the current wrapping follows (`keys.cluster_version`: a snapshot replayed at start,
/// before the newer entries) changes nothing. An autolocked cluster whose unlock key does not
/// parse is left alone (`Err`): nothing better can be done than to keep the current wrapping.
pub fn plan(keys: &RaftKeys, cluster: &Cluster) -> Result<Option<Change>, KeyError> {
    use crate::raft::storage::keys::KekLocation;
    if cluster.version < keys.cluster_version {
        return Ok(None);
    }
    if cluster.autolock {
        let key = UnlockKey::parse(&cluster.unlock_key.0).map_err(|_| KeyError::WrongUnlockKey)?;
        Ok((!keys.locked_by(&key)).then_some(Change::LockWith(key)))
    } else {
        Ok((keys.location() == KekLocation::UnlockKey).then_some(Change::ToStateDir))
    }
}

/// Keeps the key file at `path` (holding `keys`) in step with the cluster in `store`: looks
/// after every applied entry. Runs until aborted.
pub async fn keep_key_file(store: Store, path: PathBuf, mut keys: RaftKeys) {
    let mut rx = store.subscribe();
    loop {
        let mut failed = false;
        let cluster = store.read().cluster.clone();
        if let Some(c) = cluster {
            match plan(&keys, &c) {
                Ok(None) => {}
                Ok(Some(change)) => {
                    let mut next = keys.clone();
                    next.cluster_version = c.version;
                    let what = match &change {
                        Change::LockWith(k) => {
                            next.lock_with(k);
                            "wrapped the raft data key under the cluster's unlock key (autolock)"
                        }
                        Change::ToStateDir => {
                            next.unlock_to_state_dir();
                            "autolock is off: the raft data key's key-encryption key is in the state dir again"
                        }
                    };
                    match next.save(&path) {
                        Ok(()) => {
                            keys = next;
                            info!(path = %path.display(), "{what}");
                        }
                        // Retried at the next applied entry, or in a moment.
                        Err(e) => {
                            failed = true;
                            warn!(error = %e, "could not update the raft key file; retrying");
                        }
                    }
                }
                Err(_) => warn!(
                    "the cluster's unlock key is malformed; the raft key file is left as it is"
                ),
            }
        }
        let retry = async {
            if failed {
                tokio::time::sleep(SAVE_RETRY).await
            } else {
                std::future::pending().await
            }
        };
        tokio::select! {
            r = rx.changed() => if r.is_err() { return },
            () = retry => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::raft::storage::keys::KekLocation;
    use shoal_proto::model::Secret;

    fn cluster(key: Option<&UnlockKey>) -> Cluster {
        Cluster {
            autolock: key.is_some(),
            unlock_key: Secret(key.map(|k| k.to_text().to_string()).unwrap_or_default()),
            ..Default::default()
        }
    }

    #[test]
    fn plan_follows_the_cluster_setting() {
        let mut keys = RaftKeys::generate();
        assert!(plan(&keys, &cluster(None)).unwrap().is_none());
        let k1 = UnlockKey::generate();
        let Some(Change::LockWith(k)) = plan(&keys, &cluster(Some(&k1))).unwrap() else {
            panic!("autolock on must lock")
        };
        keys.lock_with(&k);
        assert!(plan(&keys, &cluster(Some(&k1))).unwrap().is_none());
        let k2 = UnlockKey::generate();
        assert!(matches!(
            plan(&keys, &cluster(Some(&k2))).unwrap(),
            Some(Change::LockWith(_))
        ));
        let Some(Change::ToStateDir) = plan(&keys, &cluster(None)).unwrap() else {
            panic!("autolock off must unlock")
        };
        keys.unlock_to_state_dir();
        assert_eq!(keys.location(), KekLocation::StateDir);
        // A stale view of the cluster (older than what the wrapping follows) changes nothing.
        keys.cluster_version = 10;
        let mut old = cluster(Some(&k1));
        old.version = 9;
        assert!(plan(&keys, &old).unwrap().is_none());
        old.version = 10;
        assert!(plan(&keys, &old).unwrap().is_some());
        let mut bad = cluster(Some(&k1));
        bad.version = 10;
        bad.unlock_key = Secret("SWMKEY-1-garbage".into());
        assert!(plan(&keys, &bad).is_err());
    }

    /// The loop converges the file after each applied change of the cluster.
    #[tokio::test]
    async fn the_key_file_follows_the_store() {
        use crate::raft::storage::keys::FILE;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(FILE);
        let keys = RaftKeys::generate();
        keys.save(&path).unwrap();
        let store = Store::default();
        let task = tokio::spawn(keep_key_file(store.clone(), path.clone(), keys));
        let wait_for = |want: KekLocation| {
            let path = path.clone();
            async move {
                let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
                while RaftKeys::location_of(&path).unwrap() != Some(want) {
                    assert!(std::time::Instant::now() < deadline, "never {want:?}");
                    tokio::time::sleep(std::time::Duration::from_millis(10)).await;
                }
            }
        };
        let k = UnlockKey::generate();
        let mut on = cluster(Some(&k));
        on.version = 5;
        store.write(5, |s| s.cluster = Some(on));
        wait_for(KekLocation::UnlockKey).await;
        let opened = RaftKeys::load_with(&path, Some(&k)).unwrap().unwrap();
        assert_eq!(opened.cluster_version, 5);
        let mut off = cluster(None);
        off.version = 6;
        store.write(6, |s| s.cluster = Some(off));
        wait_for(KekLocation::StateDir).await;
        task.abort();
    }
}
