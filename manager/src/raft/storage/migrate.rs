//! Migration of a store written in plaintext (before encryption at rest) into a sealed copy.
//!
//! Records are not sealed in place: the engine would keep the plaintext they replace in free
//! pages (redb) or old segments (sled). Instead the whole store is copied, sealed, into
//! `<dir>/<engine>.sealing/`, which then replaces `<dir>/<engine>/`:
//!
//! 1. copy into `<engine>.sealing`, flush;
//! 2. rename `<engine>` → `<engine>.plaintext`, then `<engine>.sealing` → `<engine>`, sync `<dir>`;
//! 3. record the engine as migrated in the key file, then delete `<engine>.plaintext`.
//!
//! A crash anywhere is recovered on the next open ([`recover`]): without `<engine>` but with both
//! others, step 2 is finished (the copy was complete before the first rename); a `.sealing` left
//! beside `<engine>` is an unfinished copy and is deleted; `.plaintext` is deleted once the key
//! file says migrated.

use super::crypt::{Cipher, CryptEngine};
use super::{open_engine, open_engine_at, Engine, EngineKind, OpenError};
use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

fn sealing(kind: EngineKind, dir: &Path) -> PathBuf {
    dir.join(format!("{kind}.sealing"))
}

fn plaintext(kind: EngineKind, dir: &Path) -> PathBuf {
    dir.join(format!("{kind}.plaintext"))
}

fn io_err(path: &Path) -> impl FnOnce(std::io::Error) -> OpenError {
    let path = path.to_path_buf();
    move |source| OpenError::Migrate { path, source }
}

/// Finishes or discards a migration a crash interrupted (see the module doc).
pub(super) fn recover(kind: EngineKind, dir: &Path) -> Result<(), OpenError> {
    let (live, sealing, plain) = (kind.dir(dir), sealing(kind, dir), plaintext(kind, dir));
    if sealing.exists() {
        if !live.exists() && plain.exists() {
            std::fs::rename(&sealing, &live).map_err(io_err(&live))?;
            sync_dir(dir)?;
        } else {
            std::fs::remove_dir_all(&sealing).map_err(io_err(&sealing))?;
        }
    }
    Ok(())
}

/// Copies `raw` (the live engine, closed here) into a sealed copy that replaces it. Returns how
/// many records were copied.
pub(super) fn copy_sealed(
    kind: EngineKind,
    dir: &Path,
    raw: Arc<dyn Engine>,
    cipher: Cipher,
    meta_keys: &[&str],
) -> Result<usize, OpenError> {
    let (live, sealing, plain) = (kind.dir(dir), sealing(kind, dir), plaintext(kind, dir));
    let copy = CryptEngine::new(open_engine_at(kind, &sealing)?, cipher);
    let copied = copy
        .copy_from(&*raw, meta_keys)
        .map_err(|source| OpenError::Engine {
            kind,
            dir: sealing.clone(),
            source,
        })?;
    drop(copy);
    drop(raw);
    if plain.exists() {
        std::fs::remove_dir_all(&plain).map_err(io_err(&plain))?;
    }
    std::fs::rename(&live, &plain).map_err(io_err(&plain))?;
    std::fs::rename(&sealing, &live).map_err(io_err(&live))?;
    sync_dir(dir)?;
    Ok(copied)
}

/// Opens the engine again after [`copy_sealed`] closed it. sled releases a closed database's
/// lock from a background thread shortly after, so its lock error is retried for at most 5 s.
pub(super) fn reopen(kind: EngineKind, dir: &Path) -> Result<Arc<dyn Engine>, OpenError> {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        match open_engine(kind, dir) {
            Err(e) if e.to_string().contains("acquire lock") && Instant::now() < deadline => {
                std::thread::sleep(Duration::from_millis(20));
            }
            r => return r,
        }
    }
}

/// Deletes the plaintext store a finished migration left (call once the key file says
/// migrated).
pub(super) fn remove_plaintext(kind: EngineKind, dir: &Path) -> Result<(), OpenError> {
    let plain = plaintext(kind, dir);
    if plain.exists() {
        std::fs::remove_dir_all(&plain).map_err(io_err(&plain))?;
        sync_dir(dir)?;
    }
    Ok(())
}

fn sync_dir(dir: &Path) -> Result<(), OpenError> {
    File::open(dir)
        .and_then(|f| f.sync_all())
        .map_err(io_err(dir))
}
