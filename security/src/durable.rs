//! State files that survive a power cut: written whole or not at all, and on the disk before the
//! call returns.
//!
//! [`write`] puts the bytes in a temporary file beside the target (mode given, created fresh),
//! fsyncs it, renames it over the target and fsyncs the directory, so that after a crash the
//! target holds either its old content or the new one — never an empty or partial file (what a
//! plain `std::fs::write` leaves behind when the power goes before the kernel wrote it back:
//! `tests/vm/power-loss.sh` found a zero-length `node.json` that way). [`sync_dir`] makes
//! creations, renames and removals in a directory durable.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

/// Writes `data` to `path` atomically and durably, the file created with `mode` (a file already
/// at `path` is replaced, its mode with it).
pub fn write(path: &Path, data: &[u8], mode: u32) -> std::io::Result<()> {
    let name = path
        .file_name()
        .ok_or_else(|| std::io::Error::other(format!("{} names no file", path.display())))?;
    let dir = path.parent().unwrap_or(Path::new("."));
    let mut tmp_name = std::ffi::OsString::from(".");
    tmp_name.push(name);
    tmp_name.push(".tmp");
    let tmp = dir.join(tmp_name);
    let _ = std::fs::remove_file(&tmp);
    let mut f = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(mode)
        .open(&tmp)?;
    f.write_all(data)?;
    f.sync_all()?;
    drop(f);
    std::fs::rename(&tmp, path)?;
    sync_dir(dir)
}

/// Fsyncs the directory `dir`: the entries created, renamed or removed in it are on the disk.
pub fn sync_dir(dir: &Path) -> std::io::Result<()> {
    let dir = if dir.as_os_str().is_empty() {
        Path::new(".")
    } else {
        dir
    };
    File::open(dir)?.sync_all()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn replaces_whole_with_the_mode_and_leaves_no_temporary() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("node.json");
        write(&p, b"{\"a\":1}", 0o600).unwrap();
        write(&p, b"{\"a\":2}", 0o600).unwrap();
        assert_eq!(std::fs::read(&p).unwrap(), b"{\"a\":2}");
        let mode = std::fs::metadata(&p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        let names: Vec<_> = std::fs::read_dir(d.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, vec![std::ffi::OsString::from("node.json")]);
    }

    #[test]
    fn a_stale_temporary_from_a_crash_is_replaced() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("k.pem");
        std::fs::write(d.path().join(".k.pem.tmp"), b"half").unwrap();
        write(&p, b"whole", 0o644).unwrap();
        assert_eq!(std::fs::read(&p).unwrap(), b"whole");
        assert!(!d.path().join(".k.pem.tmp").exists());
    }

    #[test]
    fn a_path_without_a_file_name_is_an_error() {
        assert!(write(Path::new("/"), b"x", 0o600).is_err());
    }
}
