//! The key file across autolock: state_dir → unlock_key → rotated → state_dir, and what a wrong
//! unlock key leaves behind (nothing).

use super::keys::{KekLocation, KeyError, RaftKeys, FILE};
use super::unlock::UnlockKey;
use super::{open_encrypted_with, EngineKind};

fn json(path: &std::path::Path) -> serde_json::Value {
    serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap()
}

fn same_dek(a: &RaftKeys, b: &RaftKeys) -> bool {
    // Both ciphers open what the other seals: the same data key.
    let sealed = a.data_cipher().seal(b"t", b"payload").unwrap();
    b.data_cipher().open(b"t", &sealed).is_ok()
}

#[test]
fn transitions_keep_the_data_key_and_never_write_the_unlock_kek() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join(FILE);
    let original = RaftKeys::generate();
    original.save(&path).unwrap();
    assert_eq!(json(&path)["kek"]["location"], "state_dir");
    assert_eq!(
        RaftKeys::location_of(&path).unwrap(),
        Some(KekLocation::StateDir)
    );

    // Autolock on.
    let k1 = UnlockKey::generate();
    let mut keys = RaftKeys::load(&path).unwrap().unwrap();
    keys.lock_with(&k1);
    keys.save(&path).unwrap();
    let v = json(&path);
    assert_eq!(v["kek"], serde_json::json!({"location": "unlock_key"}));
    let text = std::fs::read_to_string(&path).unwrap();
    assert!(!text.contains(&*k1.to_text()));
    assert_eq!(
        RaftKeys::location_of(&path).unwrap(),
        Some(KekLocation::UnlockKey)
    );
    assert!(matches!(
        RaftKeys::load(&path).unwrap_err(),
        KeyError::Locked { .. }
    ));
    let opened = RaftKeys::load_with(&path, Some(&k1)).unwrap().unwrap();
    assert!(opened.locked_by(&k1));
    assert!(same_dek(&original, &opened));

    // Rotation: the old key no longer opens it, the new one does.
    let k2 = UnlockKey::generate();
    let mut keys = opened;
    assert!(!keys.locked_by(&k2));
    keys.lock_with(&k2);
    keys.save(&path).unwrap();
    assert!(matches!(
        RaftKeys::load_with(&path, Some(&k1)).unwrap_err(),
        KeyError::WrongUnlockKey
    ));
    let opened = RaftKeys::load_with(&path, Some(&k2)).unwrap().unwrap();
    assert!(same_dek(&original, &opened));

    // Autolock off: a random KEK back in the file, no unlock key needed.
    let mut keys = opened;
    keys.unlock_to_state_dir();
    keys.save(&path).unwrap();
    assert_eq!(json(&path)["kek"]["location"], "state_dir");
    let opened = RaftKeys::load(&path).unwrap().unwrap();
    assert_eq!(opened.location(), KekLocation::StateDir);
    assert!(same_dek(&original, &opened));
    // The file stays private.
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(&path).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o600);
}

#[test]
fn a_wrong_unlock_key_is_refused_and_changes_nothing_on_disk() {
    let dir = tempfile::tempdir().unwrap();
    let right = UnlockKey::generate();
    // A real store, locked: written, then its key file re-wrapped under `right`.
    let (_, mut keys) = open_encrypted_with(EngineKind::Redb, dir.path(), None).unwrap();
    keys.lock_with(&right);
    keys.save(&dir.path().join(FILE)).unwrap();

    let snapshot = |d: &std::path::Path| {
        let mut files = Vec::new();
        for e in walk(d) {
            files.push((e.clone(), std::fs::read(&e).unwrap()));
        }
        files
    };
    let before = snapshot(dir.path());
    let wrong = UnlockKey::generate();
    let e = open_encrypted_with(EngineKind::Redb, dir.path(), Some(&wrong))
        .err()
        .unwrap();
    assert_eq!(e.to_string(), "invalid unlock key");
    let e = open_encrypted_with(EngineKind::Redb, dir.path(), None)
        .err()
        .unwrap();
    assert!(e.to_string().contains("swarmctl swarm unlock"), "{e}");
    assert_eq!(
        snapshot(dir.path()),
        before,
        "a refused key touched the files"
    );

    // The right key opens it.
    let (_, keys) = open_encrypted_with(EngineKind::Redb, dir.path(), Some(&right)).unwrap();
    assert!(keys.locked_by(&right));
    assert!(!format!("{keys:?}").contains(&*right.to_text()));
}

fn walk(d: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(d).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            out.extend(walk(&p));
        } else {
            out.push(p);
        }
    }
    out.sort();
    out
}

#[test]
fn a_garbled_key_file_is_refused_without_quoting_it() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join(FILE);
    let material = "c2VjcmV0LWtleS1tYXRlcmlhbC1uZXZlci1zaG93bg==";
    std::fs::write(
        &path,
        format!(r#"{{"format":1,"kek":"{material}","dek":"x","migrated":[]}}"#),
    )
    .unwrap();
    let Err(e) = RaftKeys::load(&path) else {
        panic!("a garbled key file was accepted");
    };
    assert!(matches!(e, KeyError::Garbled { .. }), "{e}");
    let text = e.to_string();
    assert!(!text.contains(material), "{text}");
    assert!(text.contains("line 1 column"), "{text}");
}
