//! `swarmctl image ls|pull|rm|prune|load` end to end: real swarmd nodes, swarmctl talking to a
//! manager that does not lead, the leader relaying to the node's agent and its image store.
//!
//! Needs the demo archives of `deploy/images.sh` (`/var/tmp/shoal-images/archives`, or
//! `$SHOAL_IMAGE_CACHE/archives`); skipped without them. `skopeo` (deploy/deps.sh) makes the
//! `docker save` form of one when it is installed.

use shoal_netlib::root::root_or_skip;
use shoal_tests::{bin, wait_until, Cluster};
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::Duration;

fn cache() -> PathBuf {
    std::env::var_os("SHOAL_IMAGE_CACHE")
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/var/tmp/shoal-images"))
}

/// The demo image archive `name` (an OCI layout tar), if `deploy/images.sh` made it.
fn archive(name: &str) -> Option<PathBuf> {
    let p = cache().join("archives").join(name);
    if p.is_file() {
        Some(p)
    } else {
        eprintln!("skipped: {} is missing (run deploy/images.sh)", p.display());
        None
    }
}

/// The image rows of `image ls` for node `node`.
fn rows(ls: &str, node: &str) -> Vec<String> {
    ls.lines()
        .filter(|l| l.split_whitespace().next() == Some(node))
        .map(|l| l.split_whitespace().collect::<Vec<_>>().join(" "))
        .collect()
}

#[test]
fn load_list_remove_and_prune_on_a_node_through_a_follower() {
    let Some(tar) = archive("shoal-busybox.tar") else {
        return;
    };
    let tar = tar.to_str().unwrap();
    let c = Cluster::start(2, 1);
    let leader = c.leader();
    let f = c.managers().into_iter().find(|&i| i != leader).unwrap();

    // An OCI archive, relayed through the follower and the leader to worker1.
    let out = c.ctl_ok(f, &["image", "load", "--node", "worker1", "-i", tar]);
    assert_eq!(out, "Loaded image: shoal/busybox:latest\n");
    let ls = c.ctl_ok(f, &["image", "ls"]);
    let w = rows(&ls, "worker1");
    assert_eq!(w.len(), 1, "{ls}");
    assert!(w[0].starts_with("worker1 shoal/busybox latest "), "{ls}");
    assert!(w[0].ends_with(" -"), "not in use: {ls}");
    assert!(
        rows(&ls, "manager1").is_empty(),
        "only worker1 has it: {ls}"
    );
    let ids = c.ctl_ok(f, &["image", "ls", "--node", "worker1", "-q"]);
    assert_eq!(ids.trim().len(), 12, "{ids}");
    let json = c.ctl_json(f, &["image", "ls", "--node", "worker1"]);
    assert_eq!(json[0]["Images"][0]["RepoTags"][0], "shoal/busybox:latest");

    // The `docker save` form, from stdin, when skopeo can make it.
    let docker_tar = c.root().join("busybox-docker.tar");
    let made = Command::new("skopeo")
        .args(["copy", "--quiet", &format!("oci-archive:{tar}")])
        .arg(format!(
            "docker-archive:{}:shoal/busybox:saved",
            docker_tar.display()
        ))
        .status()
        .is_ok_and(|s| s.success());
    if made {
        let out = Command::new(bin("swarmctl"))
            .args(["--host", &c.node(f).host()])
            .args(["image", "load", "--node", "worker1"])
            .env("SWARM_CERT_DIR", c.node(0).certs())
            .env_remove("SWARM_HOST")
            .stdin(Stdio::from(std::fs::File::open(&docker_tar).unwrap()))
            .output()
            .unwrap();
        assert!(out.status.success(), "{out:?}");
        assert_eq!(
            String::from_utf8_lossy(&out.stdout),
            "Loaded image: shoal/busybox:saved\n"
        );
        let ls = c.ctl_ok(f, &["image", "ls", "--node", "worker1"]);
        assert_eq!(rows(&ls, "worker1").len(), 2, "{ls}");
    } else {
        eprintln!("skopeo unavailable: the docker save form is not tested");
    }
    let before = c.ctl_ok(f, &["image", "ls"]);

    // Bad input: an unknown node, a garbage archive, an unknown image. The store is untouched.
    let e = c.ctl_err(f, &["image", "ls", "--node", "nosuchnode"]);
    assert!(e.stderr.contains("nosuchnode"), "{}", e.stderr);
    let garbage = c.root().join("garbage.tar");
    std::fs::write(&garbage, b"not an image archive\n".repeat(1000)).unwrap();
    let e = c.ctl_err(
        f,
        &[
            "image",
            "load",
            "--node",
            "worker1",
            "-i",
            garbage.to_str().unwrap(),
        ],
    );
    assert!(e.stderr.contains("Error: worker1: "), "{}", e.stderr);
    assert_eq!(e.stdout, "");
    let e = c.ctl_err(f, &["image", "rm", "--node", "worker1", "nope:1"]);
    assert!(
        e.stderr.contains("worker1: No such image: nope:1"),
        "{}",
        e.stderr
    );
    let e = c.ctl_err(
        f,
        &["image", "pull", "--node", "worker1", "127.0.0.1:1/nope:1"],
    );
    assert!(e.stderr.contains("Error: worker1: "), "{}", e.stderr);
    assert_eq!(c.ctl_ok(f, &["image", "ls"]), before, "nothing changed");

    // rm by name, then prune -a takes the rest.
    let out = c.ctl_ok(
        f,
        &["image", "rm", "--node", "worker1", "shoal/busybox:latest"],
    );
    assert!(
        out.starts_with("worker1: Untagged: shoal/busybox:latest\n"),
        "{out}"
    );
    let out = c.ctl_ok(f, &["image", "prune", "-a"]);
    assert!(out.contains("Total reclaimed space: "), "{out}");
    assert!(rows(&c.ctl_ok(f, &["image", "ls"]), "worker1").is_empty());
}

#[ignore = "needs root"]
#[test]
fn an_image_a_task_runs_is_not_removed() {
    if !root_or_skip() {
        return;
    }
    let Some(tar) = archive("shoal-busybox.tar") else {
        return;
    };
    let c = Cluster::start(1, 1);
    let out = c.ctl_ok(
        0,
        &[
            "image",
            "load",
            "--node",
            "worker1",
            "-i",
            tar.to_str().unwrap(),
        ],
    );
    assert_eq!(out, "Loaded image: shoal/busybox:latest\n");
    c.ctl_ok(
        0,
        &[
            "service",
            "create",
            "--name",
            "sleeper",
            "--no-resolve-image",
            "--constraint",
            "node.role==worker",
            "shoal/busybox",
            "sleep",
            "1000",
        ],
    );
    // A container, not a host process: `wait_running`'s check of the process does not apply.
    wait_until("sleeper runs", Duration::from_secs(30), || {
        c.service_ps(0, "sleeper")
            .iter()
            .any(|t| t.state == "running")
    });

    let e = c.ctl_err(0, &["image", "rm", "--node", "worker1", "shoal/busybox"]);
    assert!(
        e.stderr.contains("Error: worker1: conflict: unable to remove repository reference \"shoal/busybox\" (must force) - task sleeper.1."),
        "{}",
        e.stderr
    );
    let e = c.ctl_err(
        0,
        &["image", "rm", "-f", "--node", "worker1", "shoal/busybox"],
    );
    assert!(e.stderr.contains("(cannot be forced)"), "{}", e.stderr);
    let out = c.ctl_ok(0, &["image", "prune", "-a"]);
    assert_eq!(out, "Total reclaimed space: 0B\n");
    let ls = c.ctl_ok(0, &["image", "ls", "--node", "worker1"]);
    assert!(ls.contains("sleeper.1."), "IN USE BY names the task: {ls}");

    // Once the task is gone the image can go.
    c.ctl_ok(0, &["service", "rm", "sleeper"]);
    wait_until("the image is removable", Duration::from_secs(30), || {
        c.ctl(0, &["image", "rm", "--node", "worker1", "shoal/busybox"])
            .success()
    });
    assert!(rows(&c.ctl_ok(0, &["image", "ls"]), "worker1").is_empty());
}
