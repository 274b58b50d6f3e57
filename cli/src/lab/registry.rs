//! The lab's image registry: Debian's `docker-registry` (the CNCF distribution server) on the
//! host endpoint (`<subnet>.254:5000`), plain HTTP, no auth, its blobs under the lab's
//! directory. Every node's swarmd names it as the mirror of `docker.io`, so `shoal/whoami`
//! (`docker.io/shoal/whoami:latest`) is pulled from it, as a dockerd with `registry-mirrors`
//! would. `lab up` pushes the demo images `deploy/images.sh` built into it.
//!
//! ```text
//! <root>/<lab>/registry/
//!   config.yml      written by the lab (the packaged config turns htpasswd auth on)
//!   registry.log    its stdout and stderr
//!   data/           its storage (filesystem driver)
//! ```
//!
//! It runs in the host namespace (the host endpoint lives there), listens on the lab's address
//! only, and is stopped by pid after `/proc` proves it is the one serving this lab's config.

use super::procs::{self, ProcInfo};
use super::state::{LabDir, RegistryRecord};
use anyhow::{bail, Context};
use std::fs::OpenOptions;
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// The registry's port on the host endpoint.
pub const PORT: u16 = 5000;
/// The registry program (Debian's `docker-registry`).
pub const PROGRAM: &str = "docker-registry";
/// Env var naming the registry binary to run instead of `docker-registry` on `PATH`.
pub const REGISTRY_ENV: &str = "SHOAL_DOCKER_REGISTRY";
/// The demo images' cache (as `deploy/images.sh`): its `oci/` is the layout pushed by default.
pub const IMAGE_CACHE_ENV: &str = "SHOAL_IMAGE_CACHE";
/// Where `deploy/images.sh` builds unless [`IMAGE_CACHE_ENV`] says otherwise.
pub const DEFAULT_IMAGE_CACHE: &str = "/var/tmp/shoal-images";
/// The registry the lab's registry mirrors for the nodes.
pub const MIRRORED: &str = "docker.io";
/// How long the registry gets to answer `GET /v2/` after it is started.
pub const READY_TIMEOUT: Duration = Duration::from_secs(10);
/// How long it gets to exit after SIGTERM before it is killed.
pub const STOP_GRACE: Duration = Duration::from_secs(5);
/// How long one `skopeo copy` of an image may take.
pub const PUSH_TIMEOUT: Duration = Duration::from_secs(180);
/// One HTTP request's budget (connect, send, read).
const HTTP_TIMEOUT: Duration = Duration::from_secs(2);
/// The annotation naming an image in an OCI layout's `index.json`.
const REF_NAME: &str = "org.opencontainers.image.ref.name";

/// The registry's address in a lab whose host endpoint is `host`.
pub fn address(host: Ipv4Addr) -> SocketAddrV4 {
    SocketAddrV4::new(host, PORT)
}

/// The swarmd flags that make a node pull `docker.io` images from the lab's registry at
/// `addr`: `--registry-mirror docker.io=http://ADDR --insecure-registry ADDR`.
pub fn swarmd_flags(addr: SocketAddrV4) -> Vec<String> {
    vec![
        "--registry-mirror".into(),
        format!("{MIRRORED}=http://{addr}"),
        "--insecure-registry".into(),
        addr.to_string(),
    ]
}

/// The extra flags of every node's swarmd: the mirror flags for the registry at `mirror`
/// (none when swarmd lacks them), then `user`'s (`SHOAL_LAB_SWARMD_ARGS`), which come last so
/// that they can add mirrors of their own.
pub fn node_extra(mirror: Option<SocketAddrV4>, user: Vec<String>) -> Vec<String> {
    let mut v: Vec<String> = mirror.map(swarmd_flags).unwrap_or_default();
    v.extend(user);
    v
}

/// The registry's config: filesystem storage in `data`, listening on `addr` only, no auth
/// (the same as `deploy/registry.sh`'s).
pub fn config_yaml(data: &Path, addr: SocketAddrV4) -> String {
    format!(
        "version: 0.1\n\
         log:\n  level: info\n  accesslog:\n    disabled: true\n\
         storage:\n  filesystem:\n    rootdirectory: {}\n  delete:\n    enabled: true\n\
         http:\n  addr: {addr}\n",
        data.display()
    )
}

/// The demo images' layout: `$SHOAL_IMAGE_CACHE/oci`, else `/var/tmp/shoal-images/oci`.
pub fn default_layout() -> PathBuf {
    std::env::var_os(IMAGE_CACHE_ENV)
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(DEFAULT_IMAGE_CACHE))
        .join("oci")
}

/// Whether `dir` is an OCI image layout (it has an `index.json`).
pub fn is_layout(dir: &Path) -> bool {
    dir.join("index.json").is_file()
}

/// The image references (`shoal/whoami:latest`) named in an OCI layout's `index.json`, sorted;
/// names that are not `REPOSITORY:TAG` (a bare `latest`, as `umoci init` makes) are left out.
pub fn layout_refs(index_json: &[u8]) -> anyhow::Result<Vec<String>> {
    let v: serde_json::Value =
        serde_json::from_slice(index_json).context("index.json is not JSON")?;
    let mut refs: Vec<String> = v["manifests"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|m| m["annotations"][REF_NAME].as_str())
        .filter(|r| is_repo_tag(r))
        .map(str::to_string)
        .collect();
    refs.sort();
    refs.dedup();
    Ok(refs)
}

/// `a/b:tag` with a lowercase repository path and a tag (Docker's rules, simplified).
fn is_repo_tag(r: &str) -> bool {
    let Some((repo, tag)) = r.rsplit_once(':') else {
        return false;
    };
    let repo_ok = !repo.is_empty()
        && repo.split('/').all(|c| {
            !c.is_empty()
                && c.bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"._-".contains(&b))
        });
    let tag_ok = !tag.is_empty()
        && tag.len() <= 128
        && tag
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b));
    repo_ok && tag_ok
}

/// `skopeo copy` arguments pushing `reference` from `layout` to the registry at `addr`.
pub fn push_args(layout: &Path, reference: &str, addr: SocketAddrV4) -> Vec<String> {
    vec![
        "copy".into(),
        "--quiet".into(),
        "--dest-tls-verify=false".into(),
        // oci:PATH:REF picks the manifest whose ref.name is REF (the path ends at the first
        // colon, hence no colon in PATH: see `push`).
        format!("oci:{}:{reference}", layout.display()),
        format!("docker://{addr}/{reference}"),
    ]
}

/// The registry binary: `$SHOAL_DOCKER_REGISTRY`, else `docker-registry` on `PATH`.
pub fn find() -> anyhow::Result<PathBuf> {
    if let Some(p) = std::env::var_os(REGISTRY_ENV).filter(|p| !p.is_empty()) {
        return Ok(PathBuf::from(p));
    }
    procs::find_on_path(PROGRAM).ok_or_else(|| {
        anyhow::anyhow!(
            "{PROGRAM} not found: the lab's image registry is Debian's docker-registry; \
             install it with `deploy/deps.sh` (as root) or `apt-get install docker-registry`"
        )
    })
}

/// Whether `argv` is a registry serving `config` (`… serve CONFIG`).
pub fn is_registry_of(argv: &[String], config: &Path) -> bool {
    argv.windows(2)
        .any(|w| w[0] == "serve" && Path::new(&w[1]) == config)
}

/// Whether `pid` is alive and is the registry serving `config`.
pub fn is_ours(pid: u32, config: &Path) -> bool {
    ProcInfo::read(pid).is_some_and(|p| !p.zombie && is_registry_of(&p.argv, config))
}

/// The live registries serving `config` (the one `lab.json` records, or one whose record was
/// lost in a crash), by pid.
pub fn running(config: &Path) -> Vec<u32> {
    procs::others()
        .into_iter()
        .filter(|p| !p.zombie && is_registry_of(&p.argv, config))
        .map(|p| p.pid)
        .collect()
}

/// Writes the config and starts the registry of the lab in `dir` at `addr`, in the host
/// namespace, in its own process group, logging to `registry/registry.log`. It outlives this
/// process. Does not wait: see [`wait_ready`].
pub fn spawn(bin: &Path, dir: &LabDir, addr: SocketAddrV4) -> anyhow::Result<Child> {
    use std::os::unix::process::CommandExt;
    let rdir = dir.registry();
    let data = rdir.join("data");
    std::fs::create_dir_all(&data).with_context(|| format!("cannot create {}", data.display()))?;
    let config = dir.registry_config();
    std::fs::write(&config, config_yaml(&data, addr))
        .with_context(|| format!("cannot write {}", config.display()))?;
    let log_path = rdir.join("registry.log");
    let log = OpenOptions::new()
        .create(true)
        .append(true)
        .open(&log_path)
        .with_context(|| format!("cannot open {}", log_path.display()))?;
    let log2 = log.try_clone().context("duplicating the log file")?;
    Command::new(bin)
        .arg("serve")
        .arg(&config)
        .current_dir(&rdir)
        .stdin(Stdio::null())
        .stdout(log)
        .stderr(log2)
        .process_group(0)
        .spawn()
        .with_context(|| format!("cannot start {}", bin.display()))
}

/// `GET PATH` over HTTP/1.0 from `addr`: the status code and the body. Enough for the
/// registry's `/v2/` and `/v2/_catalog`; no redirects, no chunked bodies.
pub async fn http_get(addr: SocketAddr, path: &str) -> anyhow::Result<(u16, String)> {
    let exchange = async {
        let mut s = tokio::net::TcpStream::connect(addr).await?;
        let req = format!("GET {path} HTTP/1.0\r\nHost: {addr}\r\nAccept: */*\r\n\r\n");
        s.write_all(req.as_bytes()).await?;
        let mut buf = Vec::new();
        s.read_to_end(&mut buf).await?;
        Ok::<_, std::io::Error>(buf)
    };
    let buf = tokio::time::timeout(HTTP_TIMEOUT, exchange)
        .await
        .map_err(|_| anyhow::anyhow!("no answer from http://{addr}{path} within {HTTP_TIMEOUT:?}"))?
        .with_context(|| format!("GET http://{addr}{path}"))?;
    parse_response(&buf).with_context(|| format!("GET http://{addr}{path}"))
}

/// The status code and body of an HTTP/1.x response.
pub fn parse_response(buf: &[u8]) -> anyhow::Result<(u16, String)> {
    let text = String::from_utf8_lossy(buf);
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let status = head
        .lines()
        .next()
        .and_then(|l| {
            let mut f = l.split_whitespace();
            f.next().filter(|v| v.starts_with("HTTP/1."))?;
            f.next()?.parse::<u16>().ok()
        })
        .ok_or_else(|| anyhow::anyhow!("not an HTTP response: {:?}", head.lines().next()))?;
    Ok((status, body.to_string()))
}

/// Waits until the registry answers `GET /v2/` with 200, at most [`READY_TIMEOUT`]; fails
/// early when `child` exits.
pub async fn wait_ready(child: &mut Child, addr: SocketAddrV4) -> anyhow::Result<()> {
    let deadline = Instant::now() + READY_TIMEOUT;
    loop {
        if let Ok(Some(status)) = child.try_wait() {
            bail!("{PROGRAM} exited ({status})");
        }
        let last = match http_get(addr.into(), "/v2/").await {
            Ok((200, _)) => return Ok(()),
            Ok((code, _)) => format!("GET /v2/ answered {code}"),
            Err(e) => format!("{e:#}"),
        };
        if Instant::now() > deadline {
            bail!(
                "the registry did not answer on http://{addr}/v2/ within {}s (last: {last})",
                READY_TIMEOUT.as_secs()
            );
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Starts the registry of the lab in `dir` at `addr` and waits until it answers. On failure
/// the process is stopped and the error carries the end of its log. Returns its pid.
pub async fn start(dir: &LabDir, addr: SocketAddrV4) -> anyhow::Result<u32> {
    let bin = find()?;
    // No probe before it starts: something else on the port makes it fail to bind, which
    // `wait_ready` reports with its log.
    let mut child = spawn(&bin, dir, addr)?;
    let pid = child.id();
    if let Err(e) = wait_ready(&mut child, addr).await {
        stop(pid, &dir.registry_config());
        let _ = child.wait();
        let log = dir.registry().join("registry.log");
        bail!(
            "{e:#}; last lines of {}:\n{}",
            log.display(),
            procs::tail(&log, 20)
        );
    }
    Ok(pid)
}

/// Stops registry `pid` if it is still the one serving `config`: SIGTERM, then SIGKILL after
/// [`STOP_GRACE`]. Returns the signal that ended it, `None` when it was not running.
pub fn stop(pid: u32, config: &Path) -> Option<&'static str> {
    if !is_ours(pid, config) {
        return None;
    }
    procs::signal(pid, "TERM");
    let started = Instant::now();
    while is_ours(pid, config) && started.elapsed() < STOP_GRACE {
        std::thread::sleep(Duration::from_millis(50));
    }
    if is_ours(pid, config) {
        procs::signal(pid, "KILL");
        return Some("SIGKILL");
    }
    Some("SIGTERM")
}

/// Pushes every `REPOSITORY:TAG` of the OCI layout `layout` to the registry at `addr` with
/// `skopeo copy`; returns the references pushed.
pub async fn push(layout: &Path, addr: SocketAddrV4) -> anyhow::Result<Vec<String>> {
    let index = layout.join("index.json");
    let bytes =
        std::fs::read(&index).with_context(|| format!("cannot read {}", index.display()))?;
    let refs = layout_refs(&bytes).with_context(|| format!("in {}", index.display()))?;
    anyhow::ensure!(
        !refs.is_empty(),
        "{} names no image (no REPOSITORY:TAG in its index.json)",
        layout.display()
    );
    anyhow::ensure!(
        !layout.to_string_lossy().contains(':'),
        "{}: skopeo cannot read a layout whose path holds a ':'",
        layout.display()
    );
    let skopeo = procs::find_on_path("skopeo").ok_or_else(|| {
        anyhow::anyhow!("skopeo not found: install it with `deploy/deps.sh` (as root)")
    })?;
    for r in &refs {
        let run = tokio::process::Command::new(&skopeo)
            .args(push_args(layout, r, addr))
            .stdin(Stdio::null())
            .kill_on_drop(true)
            .output();
        let out = tokio::time::timeout(PUSH_TIMEOUT, run)
            .await
            .map_err(|_| anyhow::anyhow!("pushing {r}: skopeo took over {PUSH_TIMEOUT:?}"))?
            .with_context(|| format!("cannot run {}", skopeo.display()))?;
        if !out.status.success() {
            bail!(
                "pushing {r} to {addr} failed ({}): {}",
                out.status,
                String::from_utf8_lossy(&out.stderr).trim()
            );
        }
    }
    Ok(refs)
}

/// Starts the lab's registry again when its record says it should run and nothing serves its
/// config (after a reboot, or a crash of the registry). Returns the new pid, `None` when it
/// already ran or the lab has none.
pub async fn ensure(dir: &LabDir, rec: &mut RegistryRecord) -> anyhow::Result<Option<u32>> {
    let config = dir.registry_config();
    if let Some(pid) = rec.pid.filter(|p| is_ours(*p, &config)) {
        rec.pid = Some(pid);
        return Ok(None);
    }
    if let Some(pid) = running(&config).first() {
        rec.pid = Some(*pid);
        return Ok(None);
    }
    // Its address is the host endpoint's: without the lab's link, a connection to it would
    // leave through the host's default route, so nothing is started (nor probed) then.
    let link = super::config::host_link(&dir.name);
    anyhow::ensure!(
        super::net::host_has_link(&link),
        "the lab's host link {link} is gone (the host rebooted?): run `swarmctl lab down{}` \
         and `lab up` again",
        super::name_flag(&dir.name)
    );
    let pid = start(dir, rec.address).await?;
    rec.pid = Some(pid);
    Ok(Some(pid))
}
