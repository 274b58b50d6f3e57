//! Pulls from a real registry: Debian's `docker-registry` (the CNCF distribution server)
//! started on 127.0.0.1 with a free port and a config of its own, images pushed with `skopeo`
//! from OCI layouts this test writes. Marked ignored (it runs programs and listens on a port);
//! `deploy/test.sh` runs it with `--include-ignored`. Without the programs it fails under CI
//! and is skipped otherwise. The registry is killed by PID and its directory removed even when
//! an assertion fails (the guard's `Drop`).

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use super::*;
use crate::registry::{Client, RegistryConfig, RegistryError};
use crate::testutil::Fixture;

const TOOLS: [&str; 2] = ["docker-registry", "skopeo"];

fn tools_or_skip() -> bool {
    let missing: Vec<&str> = TOOLS
        .iter()
        .copied()
        .filter(|t| {
            !std::env::split_paths(&std::env::var_os("PATH").unwrap_or_default())
                .any(|d| d.join(t).is_file())
        })
        .collect();
    if missing.is_empty() {
        return true;
    }
    assert!(
        std::env::var_os("CI").is_none(),
        "this test needs {missing:?} (Debian packages docker-registry and skopeo; deploy/deps.sh installs them), and CI is set"
    );
    eprintln!("skipped: needs {missing:?}");
    false
}

/// A running registry; killed (by its PID) and its storage removed on drop.
struct Registry {
    child: Child,
    dir: tempfile::TempDir,
    port: u16,
}

impl Drop for Registry {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Registry {
    fn start() -> Registry {
        let dir = tempfile::tempdir().unwrap();
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

    /// `GET /v2/` answers 200.
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

    fn host(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    fn push(&self, layout: &Path, tag: &str, dest: &str, all: bool) {
        let mut cmd = Command::new("skopeo");
        cmd.args(["copy", "--dest-tls-verify=false", "--quiet"]);
        if all {
            cmd.arg("--all");
        }
        let out = cmd
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

    fn blob_file(&self, d: &Digest) -> PathBuf {
        self.dir
            .path()
            .join("data/docker/registry/v2/blobs/sha256")
            .join(&d.hex()[..2])
            .join(d.hex())
            .join("data")
    }

    fn client(&self) -> Client {
        Client::new(RegistryConfig {
            insecure: vec![self.host()],
            connect_timeout: Duration::from_secs(2),
            request_timeout: Duration::from_secs(10),
            ..Default::default()
        })
        .unwrap()
    }
}

/// A layout holding the sample image and an index whose first entry is an arm64 variant.
fn write_layouts(dir: &Path) -> (Fixture, Digest) {
    let fx = Fixture::sample();
    let single = dir.join("single");
    let md = fx.write_oci_layout(&single, "hello");
    // The multi-platform layout: the same blobs plus an arm64 config/manifest and an index.
    let multi = dir.join("multi");
    fx.write_oci_layout(&multi, "hello");
    let mut arm_cfg: serde_json::Value = serde_json::from_slice(&fx.config).unwrap();
    arm_cfg["architecture"] = "arm64".into();
    let arm_cfg = serde_json::to_vec(&arm_cfg).unwrap();
    let (amd_manifest, _) = fx.oci_manifest();
    let mut arm_manifest: serde_json::Value = serde_json::from_slice(&amd_manifest).unwrap();
    arm_manifest["config"]["digest"] = Digest::of(&arm_cfg).to_string().into();
    arm_manifest["config"]["size"] = arm_cfg.len().into();
    let arm_manifest = serde_json::to_vec(&arm_manifest).unwrap();
    let blobs = multi.join("blobs/sha256");
    for b in [&arm_cfg, &arm_manifest] {
        std::fs::write(blobs.join(Digest::of(b).hex()), b).unwrap();
    }
    let entry = |m: &[u8], arch: &str| {
        serde_json::json!({"mediaType": spec::OCI_MANIFEST, "digest": Digest::of(m).to_string(), "size": m.len(),
            "platform": {"architecture": arch, "os": "linux"}})
    };
    let index = serde_json::to_vec(&serde_json::json!({
        "schemaVersion": 2, "mediaType": spec::OCI_INDEX,
        "manifests": [entry(&arm_manifest, "arm64"), entry(&amd_manifest, "amd64")]
    }))
    .unwrap();
    std::fs::write(blobs.join(Digest::of(&index).hex()), &index).unwrap();
    let top = serde_json::json!({"schemaVersion": 2, "manifests": [{
        "mediaType": spec::OCI_INDEX, "digest": Digest::of(&index).to_string(), "size": index.len(),
        "annotations": {"org.opencontainers.image.ref.name": "hello"}}]});
    std::fs::write(multi.join("index.json"), serde_json::to_vec(&top).unwrap()).unwrap();
    (fx, md)
}

#[tokio::test]
#[ignore = "needs docker-registry and skopeo"]
async fn pull_resolve_and_corruption_against_a_real_registry() {
    if !tools_or_skip() {
        return;
    }
    let reg = Registry::start();
    let work = tempfile::tempdir().unwrap();
    let (fx, md) = write_layouts(work.path());
    reg.push(&work.path().join("single"), "hello", "shoal/hello:1", false);
    reg.push(&work.path().join("multi"), "hello", "shoal/multi:1", true);
    let client = reg.client();
    let host = reg.host();

    // resolve: the tag's digest, as the registry's Docker-Content-Digest says.
    let r = Reference::parse(&format!("{host}/shoal/hello:1")).unwrap();
    assert_eq!(client.resolve(&r).await.unwrap(), md);

    // pull with progress; the root and config are the image's.
    let store = Store::open(work.path().join("store")).unwrap();
    let seen = std::sync::Mutex::new(Vec::new());
    let img = store
        .pull(&client, &r, &|p: Progress| seen.lock().unwrap().push(p))
        .await
        .unwrap();
    assert_eq!(img.manifest, md);
    assert_eq!(img.id, Digest::of(&fx.config));
    assert_eq!(
        std::fs::read(store.root(&img).join("etc/motd")).unwrap(),
        b"hello"
    );
    assert_eq!(store.config(&img).unwrap().entrypoint, ["/bin/hello"]);
    let seen = seen.into_inner().unwrap();
    for l in &img.layers {
        let last = seen
            .iter()
            .rev()
            .find(|p| &p.layer == l)
            .expect("progress for every layer");
        assert_eq!(last.done, last.total);
    }

    // A multi-platform tag: resolve gives the index digest, pull takes the amd64 manifest.
    let multi = Reference::parse(&format!("{host}/shoal/multi:1")).unwrap();
    let index_digest = client.resolve(&multi).await.unwrap();
    assert_ne!(index_digest, md);
    let pinned = multi.with_digest(index_digest.clone());
    let img2 = store.pull(&client, &pinned, &|_| {}).await.unwrap();
    assert_eq!(
        img2.manifest, md,
        "linux/amd64 chosen over the first (arm64) entry"
    );
    assert_eq!(img2.id, img.id, "same image, no second root");
    let by_digest = Reference::parse(&format!("{host}/shoal/hello@{md}")).unwrap();
    assert_eq!(
        store.ensure(&client, &by_digest, &|_| {}).await.unwrap().id,
        img.id
    );

    // A pinned digest the registry serves different bytes for is refused.
    let wrong = Reference::parse(&format!("{host}/shoal/hello@{}", Digest::of(b"nope"))).unwrap();
    assert!(store.pull(&client, &wrong, &|_| {}).await.is_err());

    // Unknown tag: Docker's words.
    let missing = Reference::parse(&format!("{host}/shoal/nothing:1")).unwrap();
    let err = store.pull(&client, &missing, &|_| {}).await.unwrap_err();
    assert!(
        matches!(err, StoreError::Registry(RegistryError::NotFound(_))),
        "{err}"
    );
    assert_eq!(
        err.to_string(),
        format!("manifest for {host}/shoal/nothing:1 not found: manifest unknown")
    );

    // A mirror for a registry that does not exist: served by ours.
    let mut cfg = RegistryConfig {
        insecure: vec![host.clone()],
        request_timeout: Duration::from_secs(10),
        ..Default::default()
    };
    cfg.add_mirror(&format!("registry.invalid=http://{host}"))
        .unwrap();
    let mirrored = Client::new(cfg).unwrap();
    let fresh = Store::open(work.path().join("store-mirror")).unwrap();
    let via = fresh
        .pull(
            &mirrored,
            &Reference::parse("registry.invalid/shoal/hello:1").unwrap(),
            &|_| {},
        )
        .await
        .unwrap();
    assert_eq!(via.id, img.id);

    // A corrupted layer in the registry: the pull fails, the blob is not kept, nothing named.
    let victim = &img.layers[1];
    let file = reg.blob_file(victim);
    let mut bytes = std::fs::read(&file).unwrap();
    let n = bytes.len();
    bytes[n / 2] ^= 0xff;
    std::fs::write(&file, bytes).unwrap();
    let clean = Store::open(work.path().join("store-clean")).unwrap();
    let err = clean.pull(&client, &r, &|_| {}).await.unwrap_err();
    assert!(
        matches!(
            err,
            StoreError::DigestMismatch { .. }
                | StoreError::Registry(RegistryError::DigestMismatch { .. })
        ),
        "{err}"
    );
    assert!(!clean.blob_path(victim).exists());
    assert!(clean.list().unwrap().is_empty());
    assert!(std::fs::read_dir(clean.dir().join("roots"))
        .unwrap()
        .next()
        .is_none());
    eprintln!(
        "pulled {} from {host}; the corrupted pull failed with: {err}",
        img.id.short()
    );
}
