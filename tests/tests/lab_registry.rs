//! The lab's image registry, as root: `lab up` starts Debian's `docker-registry` on the host
//! endpoint (`.254:5000`) before the nodes and pushes the demo images of `deploy/images.sh`
//! into it; the host and every node reach it; `lab start` brings it back; `lab down` stops it.
//!
//! Needs the demo images (`deploy/test.sh` builds them first, as root, with `deploy/images.sh`).

use shoal_netlib::root::root_or_skip;
use shoal_tests::lab::{demo_images, Lab};
use shoal_tests::{bin, wait_until};
use std::process::Command;
use std::time::Duration;

/// A subnet of its own (Lab::new picks among 198.19.10-209.0/24).
const SUBNET: &str = "198.19.240.0/24";
const REGISTRY: &str = "198.19.240.254:5000";
const IMAGES: [&str; 3] = ["shoal/busybox", "shoal/nginx", "shoal/whoami"];

/// The registry's catalog as `curl` sees it from where `lab` runs it (the host or a node).
fn catalog(out: &str) -> Vec<String> {
    let v: serde_json::Value = serde_json::from_str(out).unwrap_or_else(|e| panic!("{e}: {out:?}"));
    let mut repos: Vec<String> = v["repositories"]
        .as_array()
        .expect("repositories")
        .iter()
        .filter_map(|r| r.as_str().map(str::to_string))
        .collect();
    repos.sort();
    repos
}

fn alive(pid: u32, lab_dir: &str) -> bool {
    let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
    String::from_utf8_lossy(&cmdline).contains(lab_dir)
}

/// Whether a socket listens on `addr`, from `ss` (never by connecting: once the lab's link is
/// gone, a connection to its address would leave through the host's default route).
fn listening(addr: &str) -> bool {
    let out = Command::new("ss")
        .args(["-Hltn", "src", addr])
        .output()
        .expect("ss (iproute2)");
    assert!(out.status.success(), "ss -Hltn src {addr} failed");
    !String::from_utf8_lossy(&out.stdout).trim().is_empty()
}

#[ignore = "needs root"]
#[test]
fn lab_registry_serves_the_demo_images() {
    if !root_or_skip() {
        return;
    }
    let images = demo_images();
    assert!(
        images.join("index.json").is_file(),
        "no demo images in {}: run deploy/images.sh (as root) first",
        images.display()
    );
    let mut lab = Lab::new();
    lab.subnet = SUBNET.into();
    let up = lab.up_with_images(1, 1, &images);
    eprintln!("{up}");
    assert!(
        up.contains(&format!("registry: http://{REGISTRY}/")),
        "{up}"
    );
    assert!(up.contains("shoal/whoami:latest"), "{up}");
    assert!(up.contains("2 nodes Ready"), "{up}");
    let file = lab.file();
    let reg = &file["registry"];
    assert_eq!(reg["address"], REGISTRY, "{file}");
    let pid = reg["pid"].as_u64().expect("registry pid") as u32;
    let dir = lab.dir().display().to_string();
    assert!(alive(pid, &dir), "registry {pid} is not running");
    assert!(listening(REGISTRY), "nothing listens on {REGISTRY}");
    // It listens on the lab's address only, never on every address.
    let config = std::fs::read_to_string(lab.dir().join("registry/config.yml")).unwrap();
    assert!(config.contains(&format!("addr: {REGISTRY}")), "{config}");

    // Every node's swarmd names it as docker.io's mirror (when this swarmd has the flags).
    let help = Command::new(bin("swarmd")).arg("--help").output().unwrap();
    if String::from_utf8_lossy(&help.stdout).contains("--registry-mirror") {
        for n in file["nodes"].as_array().unwrap() {
            let args: Vec<&str> = n["args"]
                .as_array()
                .unwrap()
                .iter()
                .filter_map(|a| a.as_str())
                .collect();
            let line = args.join(" ");
            assert!(
                line.contains(&format!(
                    "--registry-mirror docker.io=http://{REGISTRY} --insecure-registry {REGISTRY}"
                )),
                "{line}"
            );
        }
    } else {
        eprintln!("swarmd has no --registry-mirror yet: the nodes' flags are not checked");
    }

    // The catalog from the host and from inside a node's namespace.
    let url = format!("http://{REGISTRY}/v2/_catalog");
    let host = Command::new("curl")
        .args(["-sf", "--max-time", "5", &url])
        .output()
        .unwrap();
    assert!(host.status.success(), "curl {url} from the host failed");
    assert_eq!(catalog(&String::from_utf8_lossy(&host.stdout)), IMAGES);
    let node = lab.on_node("worker1", &["curl", "-sf", "--max-time", "5", &url]);
    assert!(node.success(), "{node}");
    assert_eq!(catalog(&node.stdout), IMAGES);
    let tags = lab.on_node(
        "manager1",
        &[
            "curl",
            "-sf",
            "--max-time",
            "5",
            &format!("http://{REGISTRY}/v2/shoal/whoami/tags/list"),
        ],
    );
    assert!(tags.stdout.contains("\"latest\""), "{tags}");

    // `swarmctl image pull` on every node, through docker.io's mirror (the lab's registry):
    // each node says it pulled, and its store lists the image with the registry's digest.
    let pull = lab.swarmctl_ok(&["image", "pull", "shoal/whoami"]);
    for node in ["manager1", "worker1"] {
        assert!(
            pull.lines().any(|l| l.starts_with(&format!("{node}: "))
                && l.contains("shoal/whoami")
                && l.ends_with(": Pull complete")),
            "{pull}"
        );
    }
    let digest = pull
        .lines()
        .find_map(|l| {
            l.split_once(": Digest: ")
                .map(|(_, d)| d.trim().to_string())
        })
        .unwrap_or_else(|| panic!("no digest in {pull}"));
    let head = lab.on_node(
        "manager1",
        &[
            "curl",
            "-sfI",
            "--max-time",
            "5",
            "-H",
            "Accept: application/vnd.oci.image.manifest.v1+json, application/vnd.oci.image.index.v1+json, application/vnd.docker.distribution.manifest.v2+json",
            &format!("http://{REGISTRY}/v2/shoal/whoami/manifests/latest"),
        ],
    );
    assert!(
        head.stdout
            .to_lowercase()
            .contains(&format!("docker-content-digest: {digest}")),
        "the pulled digest {digest} is not the registry's: {head}"
    );
    let ls = lab.swarmctl_ok(&["image", "ls", "--node", "worker1", "--digests"]);
    assert!(
        ls.lines()
            .any(|l| l.contains("shoal/whoami") && l.contains(&digest)),
        "{ls}"
    );
    // An image the registry does not have: the node's error, nothing added.
    let nope = lab.swarmctl(&["image", "pull", "--node", "worker1", "shoal/nope"]);
    assert!(!nope.success(), "{nope}");
    assert!(nope.stderr.contains("worker1"), "{nope}");
    let ls2 = lab.swarmctl_ok(&["image", "ls", "--node", "worker1", "--digests"]);
    assert_eq!(ls2, ls, "a failed pull changed the store");

    // Gone (a crash): `lab start` of a node brings it back, with its images.
    Command::new("kill")
        .args(["-KILL", &pid.to_string()])
        .status()
        .unwrap();
    wait_until("the registry to die", Duration::from_secs(5), || {
        !alive(pid, &dir)
    });
    lab.lab_ok(&["stop", "worker1"], &[]);
    let start = lab.lab_ok(&["start", "worker1"], &[]);
    assert!(start.contains("registry: was not running"), "{start}");
    let pid2 = lab.file()["registry"]["pid"].as_u64().expect("pid") as u32;
    assert_ne!(pid2, pid);
    assert!(alive(pid2, &dir));
    let node = lab.on_node("worker1", &["curl", "-sf", "--max-time", "5", &url]);
    assert_eq!(catalog(&node.stdout), IMAGES, "{node}");

    // `lab down` stops it: pid gone, port closed, nothing left.
    let pids = lab.pids();
    let down = lab.lab_ok(&["down"], &[]);
    assert!(
        down.contains(&format!("registry stopped (pid {pid2}, SIGTERM)")),
        "{down}"
    );
    assert!(!alive(pid2, &dir), "registry {pid2} still runs");
    assert!(
        !listening(REGISTRY),
        "something still listens on {REGISTRY}"
    );
    lab.assert_gone(&pids);
}
