//! Unpack edge cases. Every hostile archive runs in `outer/root` next to `outer/outside`, and
//! the test checks that nothing changed outside `root`.

use std::fs;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

use super::*;
use crate::testutil::{gzip, tar, E};

struct Sandbox {
    _dir: tempfile::TempDir,
    outer: PathBuf,
    root: PathBuf,
}

fn sandbox() -> Sandbox {
    let dir = tempfile::tempdir().unwrap();
    let outer = dir.path().to_path_buf();
    fs::create_dir(outer.join("root")).unwrap();
    fs::create_dir(outer.join("outside")).unwrap();
    fs::write(outer.join("outside/secret"), b"secret").unwrap();
    Sandbox {
        root: outer.join("root"),
        outer,
        _dir: dir,
    }
}

impl Sandbox {
    fn apply(&self, entries: &[E<'_>]) -> Result<LayerReport, UnpackError> {
        apply_layer(&self.root, &tar(entries)[..], &UnpackOptions::default())
    }

    /// Only `root` and `outside` exist next to each other, and `outside` holds only its secret.
    fn assert_outside_untouched(&self) {
        let mut top: Vec<_> = fs::read_dir(&self.outer)
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        top.sort();
        assert_eq!(top, ["outside", "root"]);
        let inside: Vec<_> = fs::read_dir(self.outer.join("outside"))
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(inside, ["secret"]);
        assert_eq!(
            fs::read(self.outer.join("outside/secret")).unwrap(),
            b"secret"
        );
    }

    fn outside(&self) -> String {
        self.outer.join("outside").display().to_string()
    }
}

fn exists(p: &Path) -> bool {
    fs::symlink_metadata(p).is_ok()
}

#[test]
fn dot_dot_and_absolute_paths_are_refused() {
    for bad in ["../evil", "a/../../evil", "/abs/evil", "./../evil"] {
        let s = sandbox();
        let err = s.apply(&[E::File(bad, b"x", 0o644)]).unwrap_err();
        assert!(
            matches!(err, UnpackError::Escape { ref entry } if entry.contains("evil")),
            "{bad}: {err}"
        );
        s.assert_outside_untouched();
    }
}

#[test]
fn never_writes_through_a_symlinked_parent() {
    let s = sandbox();
    let out = s.outside();
    let err = s
        .apply(&[E::Symlink("link", &out), E::File("link/evil", b"x", 0o644)])
        .unwrap_err();
    assert!(
        matches!(err, UnpackError::Parent { ref parent, .. } if parent == "link"),
        "{err}"
    );
    s.assert_outside_untouched();
    // The same across layers: the symlink from a lower layer, the file in an upper one.
    let err = s.apply(&[E::Dir("link/sub/", 0o755)]).unwrap_err();
    assert!(matches!(err, UnpackError::Parent { .. }), "{err}");
    s.assert_outside_untouched();
}

#[test]
fn a_file_replaces_a_symlink_instead_of_following_it() {
    let s = sandbox();
    let target = format!("{}/secret", s.outside());
    s.apply(&[E::Symlink("x", &target)]).unwrap();
    s.apply(&[E::File("x", b"mine", 0o644)]).unwrap();
    assert_eq!(fs::read(s.root.join("x")).unwrap(), b"mine");
    s.assert_outside_untouched();
    // A directory entry over a symlink to a directory replaces the link too.
    s.apply(&[E::Symlink("d", &s.outside())]).unwrap();
    s.apply(&[E::Dir("d/", 0o700)]).unwrap();
    assert!(fs::symlink_metadata(s.root.join("d")).unwrap().is_dir());
    s.assert_outside_untouched();
}

#[test]
fn hard_links_must_name_an_unpacked_file_inside() {
    let cases: &[&[E<'_>]] = &[
        &[E::Link("h", "../outside/secret")],
        &[E::Link("h", "/etc/passwd")],
        &[E::Link("h", "missing")],
        &[E::Dir("d/", 0o755), E::Link("h", "d")],
        &[E::Symlink("s", "/etc/passwd"), E::Link("h", "s")],
    ];
    for entries in cases {
        let s = sandbox();
        let err = s.apply(entries).unwrap_err();
        assert!(
            matches!(err, UnpackError::HardLink { ref entry, .. } if entry == "h"),
            "{err}"
        );
        assert!(!exists(&s.root.join("h")));
        s.assert_outside_untouched();
    }
    // Through a symlinked parent (absolute, so the symlink itself is allowed).
    let s = sandbox();
    let out = s.outside();
    let err = s
        .apply(&[E::Symlink("l", &out), E::Link("h", "l/secret")])
        .unwrap_err();
    assert!(matches!(err, UnpackError::HardLink { .. }), "{err}");
    s.assert_outside_untouched();
}

#[test]
fn relative_symlinks_may_not_climb_above_the_root() {
    for bad in ["../../etc", "../x", "a/../../.."] {
        let s = sandbox();
        let err = s.apply(&[E::Symlink("top", bad)]).unwrap_err();
        assert!(
            matches!(err, UnpackError::SymlinkEscape { .. }),
            "{bad}: {err}"
        );
        s.assert_outside_untouched();
    }
    let s = sandbox();
    let err = s
        .apply(&[E::Symlink("a/b/s", "../../../outside")])
        .unwrap_err();
    assert!(matches!(err, UnpackError::SymlinkEscape { .. }), "{err}");
    s.apply(&[
        E::Symlink("a/b/ok", "../../c"),
        E::Symlink("bin/sh", "/bin/busybox"),
    ])
    .unwrap();
    assert_eq!(
        fs::read_link(s.root.join("a/b/ok")).unwrap(),
        Path::new("../../c")
    );
    assert_eq!(
        fs::read_link(s.root.join("bin/sh")).unwrap(),
        Path::new("/bin/busybox")
    );
    s.assert_outside_untouched();
}

#[test]
fn device_nodes_are_refused_and_fifos_skipped() {
    let s = sandbox();
    let err = s.apply(&[E::Char("dev/null")]).unwrap_err();
    assert!(
        matches!(err, UnpackError::Device { ref entry } if entry == "dev/null"),
        "{err}"
    );
    assert!(!exists(&s.root.join("dev/null")));
    let r = s.apply(&[E::Fifo("run/fifo")]).unwrap();
    assert_eq!(
        r.warnings,
        [UnpackWarning::SkippedFifo {
            entry: "run/fifo".into()
        }]
    );
    assert!(!exists(&s.root.join("run/fifo")));
    s.assert_outside_untouched();
}

#[test]
fn whiteouts_delete_lower_entries() {
    let s = sandbox();
    s.apply(&[
        E::File("a/f1", b"1", 0o644),
        E::File("a/f2", b"2", 0o644),
        E::File("b/g", b"g", 0o644),
    ])
    .unwrap();
    s.apply(&[
        E::File("a/.wh.f1", b"", 0o644),
        E::File(".wh.b", b"", 0o644),
    ])
    .unwrap();
    assert!(!exists(&s.root.join("a/f1")));
    assert!(exists(&s.root.join("a/f2")));
    assert!(!exists(&s.root.join("b")));
    assert!(!exists(&s.root.join("a/.wh.f1")));
}

#[test]
fn opaque_directories_keep_only_the_new_layer() {
    let s = sandbox();
    s.apply(&[
        E::File("d/x", b"x", 0o644),
        E::File("d/sub/y", b"y", 0o644),
        E::File("e", b"e", 0o644),
    ])
    .unwrap();
    s.apply(&[
        E::Dir("d/", 0o755),
        E::File("d/new", b"n", 0o644),
        E::File("d/.wh..wh..opq", b"", 0o644),
    ])
    .unwrap();
    let mut names: Vec<_> = fs::read_dir(s.root.join("d"))
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    names.sort();
    assert_eq!(names, ["new"]);
    assert!(exists(&s.root.join("e")));
}

#[test]
fn whiteouts_never_act_through_a_symlink() {
    let s = sandbox();
    let out = s.outside();
    s.apply(&[E::Symlink("l", &out)]).unwrap();
    for wh in ["l/.wh.secret", "l/.wh..wh..opq"] {
        let err = s.apply(&[E::File(wh, b"", 0o644)]).unwrap_err();
        assert!(matches!(err, UnpackError::Parent { .. }), "{wh}: {err}");
        s.assert_outside_untouched();
    }
    // Whiting out the symlink itself removes the link, not its target.
    s.apply(&[E::File(".wh.l", b"", 0o644)]).unwrap();
    assert!(!exists(&s.root.join("l")));
    s.assert_outside_untouched();
}

#[test]
fn hard_links_symlinks_modes_and_mtimes() {
    let s = sandbox();
    s.apply(&[
        E::Dir("bin/", 0o750),
        E::File("bin/tool", b"t", 0o4755),
        E::Link("bin/alias", "bin/tool"),
        E::Symlink("bin/sh", "tool"),
    ])
    .unwrap();
    let a = fs::metadata(s.root.join("bin/tool")).unwrap();
    let b = fs::metadata(s.root.join("bin/alias")).unwrap();
    assert_eq!(a.ino(), b.ino());
    assert_eq!(a.permissions().mode() & 0o7777, 0o4755);
    assert_eq!(a.mtime(), 1_000_000);
    let d = fs::metadata(s.root.join("bin")).unwrap();
    assert_eq!(d.permissions().mode() & 0o7777, 0o750);
    assert_eq!(d.mtime(), 1_000_000);
    assert_eq!(
        fs::read_link(s.root.join("bin/sh")).unwrap(),
        Path::new("tool")
    );
    assert_eq!(
        fs::symlink_metadata(s.root.join("bin/sh")).unwrap().mtime(),
        1_000_000
    );
}

#[test]
fn gzip_layers_report_the_uncompressed_digest() {
    let s = sandbox();
    let raw = tar(&[E::File("f", b"data", 0o644)]);
    let r = apply_layer(&s.root, &gzip(&raw)[..], &UnpackOptions::default()).unwrap();
    assert_eq!(r.diff_id, Digest::of(&raw));
    assert_eq!(fs::read(s.root.join("f")).unwrap(), b"data");
}

#[test]
fn unsupported_compression_and_garbage_are_typed_errors() {
    let s = sandbox();
    let zstd = [0x28u8, 0xb5, 0x2f, 0xfd, 0, 0, 0, 0];
    let err = apply_layer(&s.root, &zstd[..], &UnpackOptions::default()).unwrap_err();
    assert!(matches!(err, UnpackError::Compression("zstd")));
    let garbage = vec![0x42u8; 1024];
    let err = apply_layer(&s.root, &garbage[..], &UnpackOptions::default()).unwrap_err();
    assert!(matches!(err, UnpackError::Read(_)), "{err}");
    let truncated = &gzip(&tar(&[E::File("f", &[7u8; 5000], 0o644)]))[..100];
    assert!(apply_layer(&s.root, truncated, &UnpackOptions::default()).is_err());
    s.assert_outside_untouched();
}

/// Bounded randomized input (the cargo-fuzz target runs the same on many more): random bytes
/// and random mutations of a valid layer never write outside the root and never panic.
#[test]
fn random_archives_stay_inside() {
    let base = tar(&[
        E::Dir("a/", 0o755),
        E::File("a/f", b"x", 0o644),
        E::Symlink("a/s", "../a/f"),
        E::Link("a/h", "a/f"),
        E::File("a/.wh.f", b"", 0o644),
    ]);
    let mut seed = 0x9e37_79b9_7f4a_7c15u64;
    let mut next = move || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed
    };
    for _ in 0..300 {
        let s = sandbox();
        let mut data = base.clone();
        for _ in 0..(next() % 8 + 1) {
            let i = (next() % data.len() as u64) as usize;
            data[i] = next() as u8;
        }
        let _ = apply_layer(&s.root, &data[..], &UnpackOptions::default());
        s.assert_outside_untouched();
    }
}

#[test]
fn the_root_entry_umoci_writes_is_the_root() {
    let s = sandbox();
    s.apply(&[
        E::Dir("/", 0o755),
        E::Dir("./", 0o755),
        E::File("x", b"x", 0o644),
    ])
    .unwrap();
    s.assert_outside_untouched();
}
