//! `--init`'s program, as Docker's: dockerd binds its `docker-init` (tini, built statically)
//! at `/sbin/docker-init` and runs `docker-init -- ENTRYPOINT CMD…` as the container's PID 1
//! (moby `daemon/oci_linux.go`, `WithInit`). PID 1 gets no signal it has no handler for, and
//! nothing else reaps the container's orphans: tini forwards the stop signal to the program,
//! reaps every zombie and exits with the program's status.
//!
//! The program must run in any image, including one without a C library (the demo
//! `shoal/busybox` is busybox-static alone): hence Debian's `tini-static`, not `tini` nor
//! `swarmd` itself (both linked against glibc). `swarmd --init-path` names it, as dockerd's
//! `--init-path`; without it [`find`] looks it up.

use std::io::{self, Read};
use std::path::{Path, PathBuf};

/// Names looked up in `PATH`, in order: Debian's tini package, then Docker's name.
pub const NAMES: [&str; 2] = ["tini-static", "docker-init"];

/// Where Debian's `tini` package installs its static build.
pub const DEBIAN: &str = "/usr/bin/tini-static";

/// The init program of a node without `--init-path`: the first of [`NAMES`] in `PATH`, else
/// [`DEBIAN`]; `None` when there is none.
pub fn find() -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    NAMES
        .iter()
        .flat_map(|n| std::env::split_paths(&path).map(move |d| d.join(n)))
        .chain([PathBuf::from(DEBIAN)])
        .find(|p| p.is_file())
}

/// Whether `program` is a dynamically linked ELF file (it has a `PT_INTERP` program header:
/// it needs a loader, so it only runs in images that have its C library). `Ok(false)` for a
/// static ELF file; an error for a file that is no 64-bit little-endian ELF.
pub fn is_dynamic(program: &Path) -> io::Result<bool> {
    let mut data = Vec::new();
    std::fs::File::open(program)?
        .take(64 * 1024)
        .read_to_end(&mut data)?;
    let bad = || io::Error::new(io::ErrorKind::InvalidData, "not a 64-bit ELF file");
    if data.len() < 64 || &data[..4] != b"\x7fELF" || data[4] != 2 || data[5] != 1 {
        return Err(bad());
    }
    let u16_at = |o: usize| u16::from_le_bytes([data[o], data[o + 1]]) as usize;
    let phoff = u64::from_le_bytes(data[0x20..0x28].try_into().map_err(|_| bad())?) as usize;
    let (phentsize, phnum) = (u16_at(0x36), u16_at(0x38));
    const PT_INTERP: u32 = 3;
    for i in 0..phnum {
        let at = phoff.saturating_add(i * phentsize);
        let Some(h) = data.get(at..at.saturating_add(4)) else {
            return Err(bad());
        };
        if u32::from_le_bytes([h[0], h[1], h[2], h[3]]) == PT_INTERP {
            return Ok(true);
        }
    }
    Ok(false)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A 64-bit little-endian ELF header followed by program headers of types `types`.
    fn elf(types: &[u32]) -> Vec<u8> {
        let mut d = vec![0u8; 64];
        d[..6].copy_from_slice(b"\x7fELF\x02\x01");
        d[0x20..0x28].copy_from_slice(&64u64.to_le_bytes());
        d[0x36..0x38].copy_from_slice(&56u16.to_le_bytes());
        d[0x38..0x3a].copy_from_slice(&(types.len() as u16).to_le_bytes());
        for t in types {
            let mut h = vec![0u8; 56];
            h[..4].copy_from_slice(&t.to_le_bytes());
            d.extend(h);
        }
        d
    }

    #[test]
    fn tells_static_from_dynamic_programs() {
        let dir = tempfile::tempdir().unwrap();
        let cases: [(&str, Vec<u8>, Option<bool>); 4] = [
            ("static", elf(&[1, 1, 4]), Some(false)),
            ("dynamic", elf(&[6, 3, 1]), Some(true)),
            ("script", b"#!/bin/sh\necho hi\n".to_vec(), None),
            ("cut short", elf(&[1, 3])[..100].to_vec(), None),
        ];
        for (name, bytes, want) in cases {
            let p = dir.path().join(name);
            std::fs::write(&p, bytes).unwrap();
            assert_eq!(is_dynamic(&p).ok(), want, "{name}");
        }
        // This test binary needs the C library's loader.
        assert!(is_dynamic(&std::env::current_exe().unwrap()).unwrap());
        if Path::new(DEBIAN).is_file() {
            assert!(!is_dynamic(Path::new(DEBIAN)).unwrap(), "{DEBIAN}");
        }
    }
}
