//! A real registry for root tests: Debian's `docker-registry` (the CNCF distribution server) on
//! 127.0.0.1 with a free port and a config of its own, and a busybox image written as an OCI
//! layout by the test (a plain tar layer, sha256, JSON) and pushed with `skopeo`. The registry
//! is killed by its PID and its directory removed when the guard drops (a failed assertion
//! included). As in the image crate's live tests, which are private to that crate.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use shoal_image::Digest;

/// The programs these tests need, with the Debian packages that have them.
const TOOLS: [(&str, &str); 3] = [
    ("docker-registry", "docker-registry"),
    ("skopeo", "skopeo"),
    ("tar", "tar"),
];

/// True when every tool is there. Without them the test is skipped, except under CI (`CI`
/// set), where it fails.
pub fn tools_or_skip() -> bool {
    let path = std::env::var_os("PATH").unwrap_or_default();
    let missing: Vec<&str> = TOOLS
        .iter()
        .filter(|(t, _)| !std::env::split_paths(&path).any(|d| d.join(t).is_file()))
        .map(|(_, pkg)| *pkg)
        .collect();
    if missing.is_empty() {
        return true;
    }
    assert!(
        std::env::var_os("CI").is_none(),
        "this test needs the Debian packages {missing:?} (deploy/deps.sh installs them), and CI is set"
    );
    eprintln!("skipped: needs the packages {missing:?}");
    false
}

/// A running registry; killed (by its PID) and its storage removed on drop.
pub struct Registry {
    child: Child,
    dir: tempfile::TempDir,
    port: u16,
}

impl Drop for Registry {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = &self.dir;
    }
}

impl Registry {
    /// Starts one and waits until `GET /v2/` answers.
    pub fn start() -> Registry {
        let dir = tempfile::Builder::new()
            .prefix("shoal-registry-test-")
            .tempdir_in("/var/tmp")
            .unwrap();
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let cfg = dir.path().join("reg.yml");
        std::fs::write(
            &cfg,
            format!(
                "version: 0.1\nlog:\n  level: warn\nstorage:\n  filesystem:\n    rootdirectory: {}\nhttp:\n  addr: 127.0.0.1:{port}\n",
                dir.path().join("data").display()
            ),
        )
        .unwrap();
        let log = std::fs::File::create(dir.path().join("registry.log")).unwrap();
        let child = Command::new("docker-registry")
            .arg("serve")
            .arg(&cfg)
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("start docker-registry");
        let reg = Registry { child, dir, port };
        let deadline = Instant::now() + Duration::from_secs(20);
        while !reg.answers() {
            assert!(
                Instant::now() < deadline,
                "docker-registry did not answer on 127.0.0.1:{port} within 20 s"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        reg
    }

    fn answers(&self) -> bool {
        let Ok(mut s) = TcpStream::connect(("127.0.0.1", self.port)) else {
            return false;
        };
        let _ = s.set_read_timeout(Some(Duration::from_secs(1)));
        if s.write_all(b"GET /v2/ HTTP/1.0\r\n\r\n").is_err() {
            return false;
        }
        let mut buf = [0u8; 32];
        matches!(s.read(&mut buf), Ok(n) if buf[..n].starts_with(b"HTTP/1.1 200") || buf[..n].starts_with(b"HTTP/1.0 200"))
    }

    /// `127.0.0.1:PORT`.
    pub fn host(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// `http://127.0.0.1:PORT`, for a mirror flag.
    pub fn url(&self) -> String {
        format!("http://{}", self.host())
    }

    /// Pushes the image in the OCI layout `layout` (tag `tag`) as `dest` (`repo:tag`).
    pub fn push(&self, layout: &Path, tag: &str, dest: &str) {
        let out = Command::new("skopeo")
            .args(["copy", "--dest-tls-verify=false", "--quiet"])
            .arg(format!("oci:{}:{tag}", layout.display()))
            .arg(format!("docker://{}/{dest}", self.host()))
            .output()
            .expect("run skopeo");
        assert!(
            out.status.success(),
            "skopeo copy: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

/// Writes, at `dir`, an OCI layout holding a busybox image tagged `tag`: `/bin/busybox` (the
/// node's static one) with `sh`, `cat`, `sleep` links, `/etc/passwd`, and `/etc/os-release`
/// saying `os_release`; `Cmd` is `sleep 1000`.
pub fn busybox_layout(dir: &Path, tag: &str, os_release: &str) {
    let root = dir.join("rootfs");
    std::fs::create_dir_all(root.join("bin")).unwrap();
    std::fs::create_dir_all(root.join("etc")).unwrap();
    std::fs::copy("/bin/busybox", root.join("bin/busybox")).unwrap();
    for applet in ["sh", "cat", "sleep", "echo", "id"] {
        std::os::unix::fs::symlink("busybox", root.join("bin").join(applet)).unwrap();
    }
    std::fs::write(root.join("etc/passwd"), "root:x:0:0:root:/root:/bin/sh\n").unwrap();
    std::fs::write(root.join("etc/os-release"), os_release).unwrap();
    let tar = dir.join("layer.tar");
    let ok = Command::new("tar")
        .args(["--numeric-owner", "--owner=0", "--group=0", "-C"])
        .arg(&root)
        .arg("-cf")
        .arg(&tar)
        .arg(".")
        .status()
        .unwrap()
        .success();
    assert!(ok, "tar");
    let layer = std::fs::read(&tar).unwrap();
    let config = serde_json::to_vec(&serde_json::json!({
        "architecture": "amd64",
        "os": "linux",
        "config": {"Cmd": ["sleep", "1000"], "Env": ["PATH=/bin"]},
        "rootfs": {"type": "layers", "diff_ids": [Digest::of(&layer).to_string()]}
    }))
    .unwrap();
    let manifest = serde_json::to_vec(&serde_json::json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": Digest::of(&config).to_string(), "size": config.len()},
        "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar", "digest": Digest::of(&layer).to_string(), "size": layer.len()}]
    }))
    .unwrap();
    let layout = dir.join("oci");
    let blobs = layout.join("blobs/sha256");
    std::fs::create_dir_all(&blobs).unwrap();
    for b in [&layer, &config, &manifest] {
        std::fs::write(blobs.join(Digest::of(b).hex()), b).unwrap();
    }
    std::fs::write(
        layout.join("oci-layout"),
        br#"{"imageLayoutVersion":"1.0.0"}"#,
    )
    .unwrap();
    let index = serde_json::json!({
        "schemaVersion": 2,
        "manifests": [{
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "digest": Digest::of(&manifest).to_string(), "size": manifest.len(),
            "annotations": {"org.opencontainers.image.ref.name": tag},
        }]
    });
    std::fs::write(
        layout.join("index.json"),
        serde_json::to_vec(&index).unwrap(),
    )
    .unwrap();
}
