//! Fixtures for the unit tests: tar archives with any (also hostile) entry, and whole images
//! as an OCI layout or a `docker save` archive, written directly (tar + sha256 + JSON).

use std::io::Write;
use std::path::Path;

use crate::digest::Digest;

/// One tar entry of a fixture layer.
pub enum E<'a> {
    File(&'a str, &'a [u8], u32),
    Dir(&'a str, u32),
    Symlink(&'a str, &'a str),
    Link(&'a str, &'a str),
    Char(&'a str),
    Fifo(&'a str),
}

/// A header whose name and link name are written as raw bytes, so that the tar crate's own
/// path checks cannot clean up the hostile fixtures.
fn header(path: &str, kind: tar::EntryType, size: u64, mode: u32, link: &str) -> tar::Header {
    let mut h = tar::Header::new_gnu();
    h.set_entry_type(kind);
    h.set_size(size);
    h.set_mode(mode);
    h.set_mtime(1_000_000);
    h.set_uid(0);
    h.set_gid(0);
    let old = h.as_old_mut();
    old.name[..path.len()].copy_from_slice(path.as_bytes());
    old.linkname[..link.len()].copy_from_slice(link.as_bytes());
    h.set_cksum();
    h
}

/// An uncompressed tar of `entries`.
pub fn tar(entries: &[E<'_>]) -> Vec<u8> {
    use tar::EntryType as T;
    let mut b = tar::Builder::new(Vec::new());
    for e in entries {
        let (h, data): (_, &[u8]) = match e {
            E::File(p, d, m) => (header(p, T::Regular, d.len() as u64, *m, ""), d),
            E::Dir(p, m) => (header(p, T::Directory, 0, *m, ""), &[]),
            E::Symlink(p, t) => (header(p, T::Symlink, 0, 0o777, t), &[]),
            E::Link(p, t) => (header(p, T::Link, 0, 0o644, t), &[]),
            E::Char(p) => (header(p, T::Char, 0, 0o644, ""), &[]),
            E::Fifo(p) => (header(p, T::Fifo, 0, 0o644, ""), &[]),
        };
        b.append(&h, data).unwrap();
    }
    b.into_inner().unwrap()
}

/// `data` gzip-compressed.
pub fn gzip(data: &[u8]) -> Vec<u8> {
    let mut g = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    g.write_all(data).unwrap();
    g.finish().unwrap()
}

/// A test image: its layers (uncompressed tars) and config JSON.
pub struct Fixture {
    pub layers: Vec<Vec<u8>>,
    pub config: Vec<u8>,
}

impl Fixture {
    /// A two-layer image with `/bin/hello`, `/etc/passwd`, `/etc/group`, and a whiteout.
    pub fn sample() -> Self {
        let l1 = tar(&[
            E::Dir("bin/", 0o755),
            E::File("bin/hello", b"#!/bin/sh\necho hi\n", 0o755),
            E::Dir("etc/", 0o755),
            E::File(
                "etc/passwd",
                b"root:x:0:0:root:/root:/bin/sh\nwww:x:33:33::/var/www:/bin/false\n",
                0o644,
            ),
            E::File(
                "etc/group",
                b"root:x:0:\nwww:x:33:\nextra:x:50:www\n",
                0o644,
            ),
            E::File("etc/old", b"old", 0o644),
        ]);
        let l2 = tar(&[
            E::File("etc/.wh.old", b"", 0o644),
            E::File("etc/motd", b"hello", 0o644),
        ]);
        let diff_ids: Vec<String> = [&l1, &l2]
            .iter()
            .map(|l| Digest::of(l).to_string())
            .collect();
        let config = serde_json::json!({
            "architecture": "amd64",
            "os": "linux",
            "config": {
                "Entrypoint": ["/bin/hello"],
                "Cmd": ["--flag"],
                "Env": ["PATH=/bin", "A=1"],
                "WorkingDir": "/srv",
                "User": "www",
                "StopSignal": "SIGQUIT",
                "ExposedPorts": {"80/tcp": {}},
                "Labels": {"l": "v"}
            },
            "rootfs": {"type": "layers", "diff_ids": diff_ids}
        });
        Fixture {
            layers: vec![l1, l2],
            config: serde_json::to_vec(&config).unwrap(),
        }
    }

    /// The OCI manifest (gzip layers) and the compressed layer blobs.
    pub fn oci_manifest(&self) -> (Vec<u8>, Vec<Vec<u8>>) {
        let gz: Vec<Vec<u8>> = self.layers.iter().map(|l| gzip(l)).collect();
        let layers: Vec<_> = gz
            .iter()
            .map(|b| serde_json::json!({"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip", "digest": Digest::of(b).to_string(), "size": b.len()}))
            .collect();
        let m = serde_json::json!({
            "schemaVersion": 2,
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": Digest::of(&self.config).to_string(), "size": self.config.len()},
            "layers": layers
        });
        (serde_json::to_vec(&m).unwrap(), gz)
    }

    /// Writes an OCI image layout directory at `dir`, the manifest tagged `ref_name`.
    pub fn write_oci_layout(&self, dir: &Path, ref_name: &str) -> Digest {
        let blobs = dir.join("blobs/sha256");
        std::fs::create_dir_all(&blobs).unwrap();
        let (manifest, gz) = self.oci_manifest();
        for b in gz.iter().chain([&manifest, &self.config]) {
            std::fs::write(blobs.join(Digest::of(b).hex()), b).unwrap();
        }
        std::fs::write(dir.join("oci-layout"), br#"{"imageLayoutVersion":"1.0.0"}"#).unwrap();
        let md = Digest::of(&manifest);
        let index = serde_json::json!({
            "schemaVersion": 2,
            "manifests": [{
                "mediaType": "application/vnd.oci.image.manifest.v1+json",
                "digest": md.to_string(), "size": manifest.len(),
                "annotations": {"org.opencontainers.image.ref.name": ref_name},
                "platform": {"architecture": "amd64", "os": "linux"}
            }]
        });
        std::fs::write(dir.join("index.json"), serde_json::to_vec(&index).unwrap()).unwrap();
        md
    }

    /// A `docker save` archive (legacy layout: `<id>/layer.tar`, `<hex>.json`, `manifest.json`).
    pub fn docker_save(&self, repo_tags: &[&str]) -> Vec<u8> {
        let mut b = tar::Builder::new(Vec::new());
        let cfg_name = format!("{}.json", Digest::of(&self.config).hex());
        let add = |b: &mut tar::Builder<Vec<u8>>, name: &str, data: &[u8]| {
            let mut h = tar::Header::new_ustar();
            h.set_size(data.len() as u64);
            h.set_mode(0o644);
            h.set_entry_type(tar::EntryType::Regular);
            b.append_data(&mut h, name, data).unwrap();
        };
        let mut layer_names = Vec::new();
        for (i, l) in self.layers.iter().enumerate() {
            let name = format!("layer{i}/layer.tar");
            add(&mut b, &name, l);
            layer_names.push(name);
        }
        add(&mut b, &cfg_name, &self.config);
        let manifest =
            serde_json::json!([{"Config": cfg_name, "RepoTags": repo_tags, "Layers": layer_names}]);
        add(
            &mut b,
            "manifest.json",
            &serde_json::to_vec(&manifest).unwrap(),
        );
        b.into_inner().unwrap()
    }
}
