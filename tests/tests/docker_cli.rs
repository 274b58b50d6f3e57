//! The real `docker` CLI (Debian's `docker.io`, 20.10, API 1.41) against Shoal's Engine API
//! socket (`swarmd --docker-host`) on a `swarmctl lab` of one manager and one worker (root). No
//! dockerd and no Docker Hub: the CLI talks to swarmd only. Checked, as the CLI prints them:
//! `docker version`, `docker info` (its Swarm section), `docker node ls` (the whole table, `*`
//! on the node itself, Leader), `docker service ls|ps|inspect` of a service made with
//! `swarmctl`, `docker network ls`, the errors for unknown objects, and the worker's socket
//! refusing swarm calls with Docker's words. Stopping a node removes its socket.

use shoal_netlib::root::root_or_skip;
use shoal_tests::docker::{row, tabwriter, Docker};
use shoal_tests::lab::Lab;
use shoal_tests::{wait_for, NodeView};
use std::time::Duration;

/// These tests' lab subnet (outside the range other lab tests draw theirs from): one lab at a
/// time, see [`one_lab`].
const SUBNET: &str = "198.19.233.0/24";

/// Serialises the tests of this file, which share [`SUBNET`].
fn one_lab() -> std::sync::MutexGuard<'static, ()> {
    static LAB: std::sync::Mutex<()> = std::sync::Mutex::new(());
    LAB.lock().unwrap_or_else(|e| e.into_inner())
}

#[test]
#[ignore = "needs root"]
fn the_docker_cli_drives_the_cluster() {
    if !root_or_skip() {
        return;
    }
    let Some(docker) = Docker::new() else { return };
    let _one = one_lab();
    let mut lab = Lab::new();
    lab.subnet = SUBNET.into();
    // Every node serves the API in its state dir (swarmd runs there in a lab).
    lab.serve_docker();
    lab.lab_ok(
        &["up"],
        &["--managers", "1", "--workers", "1", "--subnet", SUBNET],
    );
    let msock = lab.docker_sock("manager1");
    let wsock = lab.docker_sock("worker1");
    let nodes: Vec<NodeView> = NodeView::list(
        &serde_json::from_str(&lab.swarmctl_ok(&["node", "ls", "--format", "json"])).unwrap(),
    );
    let id_of = |h: &str| nodes.iter().find(|n| n.hostname == h).unwrap().id.clone();
    let (mid, wid) = (id_of("manager1"), id_of("worker1"));

    // version and info.
    let v = docker.ok(
        &msock,
        &[
            "version",
            "--format",
            "{{.Server.APIVersion}} {{.Server.Os}}",
        ],
    );
    assert_eq!(v.trim(), "1.41 linux");
    let swarm: serde_json::Value =
        serde_json::from_str(&docker.ok(&msock, &["info", "--format", "{{json .Swarm}}"])).unwrap();
    assert_eq!(swarm["NodeID"], mid.as_str());
    assert_eq!(swarm["LocalNodeState"], "active");
    assert_eq!(swarm["ControlAvailable"], true);
    assert_eq!(swarm["Nodes"], 2);
    assert_eq!(swarm["Managers"], 1);
    assert!(
        swarm["Cluster"]["ID"]
            .as_str()
            .is_some_and(|s| s.len() == 25),
        "{swarm}"
    );
    assert_eq!(swarm["RemoteManagers"][0]["NodeID"], mid.as_str());

    // node ls: the whole table.
    let engine = docker.ok(&msock, &["version", "--format", "{{.Server.Version}}"]);
    let engine = engine.trim();
    let expected = tabwriter(&[
        row(&[
            "ID",
            "HOSTNAME",
            "STATUS",
            "AVAILABILITY",
            "MANAGER STATUS",
            "ENGINE VERSION",
        ]),
        row(&[
            &format!("{mid} *"),
            "manager1",
            "Ready",
            "Active",
            "Leader",
            engine,
        ]),
        row(&[
            &format!("{wid}  "),
            "worker1",
            "Ready",
            "Active",
            "",
            engine,
        ]),
    ]);
    let table = wait_for(
        "both nodes Ready in docker node ls",
        Duration::from_secs(30),
        || {
            let t = docker.ok(&msock, &["node", "ls"]);
            if t == expected {
                Ok(t)
            } else {
                Err(format!("got\n{t}\nwant\n{expected}"))
            }
        },
    );
    assert_eq!(table, expected);
    let workers = docker.ok(&msock, &["node", "ls", "-q", "--filter", "role=worker"]);
    assert_eq!(workers.trim(), wid);
    let me = docker.ok(
        &msock,
        &[
            "node",
            "inspect",
            "self",
            "--format",
            "{{.Description.Hostname}} {{.Spec.Role}} {{.Status.State}} {{.ManagerStatus.Leader}}",
        ],
    );
    assert_eq!(me.trim(), "manager1 manager ready true");

    // A service made with swarmctl, seen through docker.
    lab.swarmctl_ok(&[
        "service",
        "create",
        "--runtime",
        "process",
        "--name",
        "web",
        "--replicas",
        "2",
        "--publish",
        "8080:8080",
        "-d",
        "whoami",
    ]);
    let running = lab.running("web", 2);
    let sid = docker.ok(
        &msock,
        &["service", "inspect", "web", "--format", "{{.ID}}"],
    );
    let sid = sid.trim().to_string();
    assert_eq!(sid.len(), 25, "{sid}");
    let expected = tabwriter(&[
        row(&["ID", "NAME", "MODE", "REPLICAS", "IMAGE", "PORTS"]),
        row(&[
            &sid[..12],
            "web",
            "replicated",
            "2/2",
            "whoami",
            "*:8080->8080/tcp",
        ]),
    ]);
    assert_eq!(docker.ok(&msock, &["service", "ls"]), expected);
    let inspect: serde_json::Value =
        serde_json::from_str(&docker.ok(&msock, &["service", "inspect", "web"])).unwrap();
    let spec = &inspect[0]["Spec"];
    assert_eq!(spec["Name"], "web");
    assert_eq!(spec["Mode"]["Replicated"]["Replicas"], 2);
    assert_eq!(spec["TaskTemplate"]["ContainerSpec"]["Image"], "whoami");
    assert_eq!(spec["EndpointSpec"]["Ports"][0]["PublishedPort"], 8080);
    assert_eq!(inspect[0]["Endpoint"]["Ports"][0]["TargetPort"], 8080);
    let ps = docker.ok(
        &msock,
        &[
            "service",
            "ps",
            "web",
            "--format",
            "{{.Name}} {{.Image}} {{.Node}} {{.DesiredState}} {{.CurrentState}}",
        ],
    );
    let mut lines: Vec<&str> = ps.lines().collect();
    lines.sort();
    assert_eq!(lines.len(), 2, "{ps}");
    for (i, l) in lines.iter().enumerate() {
        let want = format!("web.{} whoami ", i + 1);
        assert!(
            l.starts_with(&want) && l.contains(" Running Running "),
            "{ps}"
        );
    }
    let on_nodes: Vec<String> = running
        .iter()
        .map(|t| {
            nodes
                .iter()
                .find(|n| n.id == t.node_id)
                .unwrap()
                .hostname
                .clone()
        })
        .collect();
    for h in &on_nodes {
        assert!(ps.contains(&format!(" {h} ")), "{h}: {ps}");
    }
    let header = docker.ok(&msock, &["service", "ps", "web"]);
    let header = header
        .lines()
        .next()
        .unwrap()
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ");
    assert_eq!(
        header,
        "ID NAME IMAGE NODE DESIRED STATE CURRENT STATE ERROR PORTS"
    );

    // logs: each task's line, named as the CLI names tasks.
    let logs = docker.ok(&msock, &["service", "logs", "web"]);
    let mut lines: Vec<&str> = logs.lines().collect();
    lines.sort();
    assert_eq!(lines.len(), 2, "{logs}");
    for (i, l) in lines.iter().enumerate() {
        let t = running.iter().find(|t| t.slot == i as u64 + 1).unwrap();
        let host = &nodes.iter().find(|n| n.id == t.node_id).unwrap().hostname;
        let want = format!(
            "web.{}.{}@{host}    | listening on 0.0.0.0:8080 (tcp+udp) as {}",
            i + 1,
            &t.id[..12],
            t.id
        );
        assert_eq!(*l, want, "{logs}");
    }

    // scale (with the CLI's progress display), update and rollback of a process service.
    docker.ok(&msock, &["service", "scale", "web=3"]);
    wait_for(
        "web at 3/3 in docker service ls",
        Duration::from_secs(60),
        || {
            let r = docker.ok(&msock, &["service", "ls", "--format", "{{.Replicas}}"]);
            (r.trim() == "3/3").then_some(()).ok_or(r)
        },
    );
    docker.ok(
        &msock,
        &["service", "update", "-d", "--env-add", "X=1", "web"],
    );
    let env = docker.ok(
        &msock,
        &[
            "service",
            "inspect",
            "web",
            "--format",
            "{{.Spec.TaskTemplate.ContainerSpec.Env}} {{.Spec.TaskTemplate.ContainerSpec.Image}}",
        ],
    );
    assert_eq!(env.trim(), "[X=1] whoami");
    docker.ok(&msock, &["service", "rollback", "-d", "web"]);
    let env = docker.ok(
        &msock,
        &[
            "service",
            "inspect",
            "web",
            "--format",
            "{{.Spec.TaskTemplate.ContainerSpec.Env}}",
        ],
    );
    assert_eq!(env.trim(), "[]");
    lab.running("web", 3);

    // network ls: every network swarmctl lists, as Docker's table sorted by name.
    let nets: serde_json::Value =
        serde_json::from_str(&lab.swarmctl_ok(&["network", "ls", "--format", "json"])).unwrap();
    let mut rows: Vec<Vec<String>> = nets
        .as_array()
        .unwrap()
        .iter()
        .map(|n| {
            let s = |k: &str| n[k].as_str().unwrap().to_string();
            vec![
                s("id")[..12].to_string(),
                s("name"),
                s("driver"),
                s("scope"),
            ]
        })
        .collect();
    assert!(
        rows.iter()
            .any(|r| r[1] == "ingress" && r[2] == "overlay" && r[3] == "swarm"),
        "{rows:?}"
    );
    rows.sort_by(|a, b| a[1].cmp(&b[1]));
    rows.insert(0, row(&["NETWORK ID", "NAME", "DRIVER", "SCOPE"]));
    assert_eq!(docker.ok(&msock, &["network", "ls"]), tabwriter(&rows));

    // Unknown objects: a 404, which the CLI words itself (the 20.10 CLI prints service and node
    // inspect errors as `Status: …, Code: 1`, as it does against dockerd; newer ones do not).
    let client = docker.ok(&msock, &["version", "--format", "{{.Client.Version}}"]);
    let (no_service, no_node, no_network) = if client.starts_with("20.") {
        (
            "Status: Error: no such service: nosuch, Code: 1",
            "Status: Error: No such node: nosuch, Code: 1",
            "Error: No such network: nosuch",
        )
    } else {
        (
            "Error: no such service: nosuch",
            // Newer CLIs print dockerd's own message for nodes and networks: Shoal's is the same.
            "Error response from daemon: node nosuch not found",
            "Error response from daemon: network nosuch not found",
        )
    };
    let out = docker.run(&msock, &["service", "inspect", "nosuch"]);
    assert_eq!((out.code, out.stderr.trim()), (1, no_service), "{out}");
    let out = docker.run(&msock, &["node", "inspect", "nosuch"]);
    assert_eq!((out.code, out.stderr.trim()), (1, no_node), "{out}");
    let out = docker.run(&msock, &["network", "inspect", "nosuch"]);
    assert_eq!((out.code, out.stderr.trim()), (1, no_network), "{out}");

    // The worker: its own part of info, and Docker's refusal of swarm calls.
    let wswarm = docker.ok(
        &wsock,
        &[
            "info",
            "--format",
            "{{.Swarm.NodeID}} {{.Swarm.LocalNodeState}} {{.Swarm.ControlAvailable}}",
        ],
    );
    assert_eq!(wswarm.trim(), format!("{wid} active false"));
    let refused = "Error response from daemon: This node is not a swarm manager. Worker nodes can't be used to view or modify cluster state. Please run this command on a manager node or promote the current node to a manager.";
    for args in [&["node", "ls"][..], &["service", "ls"][..]] {
        let out = docker.run(&wsock, args);
        assert_eq!((out.code, out.stderr.trim()), (1, refused), "{out}");
    }

    // Writes through docker: a 0-replica service (no image is pulled), updated with the version
    // the CLI read; a field Shoal lacks is refused by name.
    let api_id = docker.ok(
        &msock,
        &[
            "service",
            "create",
            "--name",
            "api",
            "--replicas",
            "0",
            "--no-resolve-image",
            "-d",
            "nginx:alpine",
        ],
    );
    assert_eq!(api_id.trim().len(), 25, "{api_id}");
    assert_eq!(
        docker
            .ok(
                &msock,
                &["service", "update", "-d", "--env-add", "A=1", "api"]
            )
            .trim(),
        "api"
    );
    let shown = docker.ok(
        &msock,
        &[
            "service",
            "inspect",
            "api",
            "--format",
            "{{.Spec.TaskTemplate.ContainerSpec.Env}} {{.Spec.Mode.Replicated.Replicas}}",
        ],
    );
    assert_eq!(shown.trim(), "[A=1] 0");
    let out = docker.run(
        &msock,
        &[
            "service",
            "create",
            "--name",
            "vol",
            "--replicas",
            "0",
            "--no-resolve-image",
            "-d",
            "--mount",
            "type=volume,dst=/data",
            "nginx:alpine",
        ],
    );
    assert_eq!(
        (out.code, out.stderr.trim()),
        (1, "Error response from daemon: Spec.TaskTemplate.ContainerSpec.Mounts is not supported by Shoal"),
        "{out}"
    );
    assert_eq!(docker.ok(&msock, &["service", "rm", "api"]).trim(), "api");

    // rm through docker; the service is gone for swarmctl too.
    assert_eq!(docker.ok(&msock, &["service", "rm", "web"]).trim(), "web");
    let left = lab.swarmctl_ok(&["service", "ls", "-q"]);
    assert_eq!(left.trim(), "", "{left}");

    // The swarm's join token, as swarmctl shows it, in Docker's words.
    let token = lab.swarmctl_ok(&["swarm", "join-token", "worker", "-q"]);
    let mgr_addr = format!("{}:2377", SUBNET.trim_end_matches("0/24").to_string() + "1");
    assert_eq!(
        docker.ok(&msock, &["swarm", "join-token", "worker"]),
        format!(
            "To add a worker to this swarm, run the following command:\n\n    docker swarm join --token {} {mgr_addr}\n\n",
            token.trim()
        )
    );

    docker.ok(&msock, &["swarm", "join-token", "--rotate", "-q", "worker"]);
    let rotated = lab.swarmctl_ok(&["swarm", "join-token", "worker", "-q"]);
    assert_ne!(rotated.trim(), token.trim(), "rotated");
    assert_eq!(
        docker
            .ok(&msock, &["swarm", "join-token", "-q", "worker"])
            .trim(),
        rotated.trim()
    );
    // Autolock on through docker: the key docker prints is the cluster's; then off again.
    let on = docker.ok(&msock, &["swarm", "update", "--autolock=true"]);
    let key = docker.ok(&msock, &["swarm", "unlock-key", "-q"]);
    assert!(
        key.trim().starts_with("SWMKEY-1-") && on.contains(key.trim()),
        "{on}"
    );
    assert_eq!(
        lab.swarmctl_ok(&["swarm", "unlock-key", "-q"]).trim(),
        key.trim()
    );
    docker.ok(&msock, &["swarm", "update", "--autolock=false"]);

    // Nodes: drain and label the worker, then back to active.
    assert_eq!(
        docker
            .ok(
                &msock,
                &[
                    "node",
                    "update",
                    "--availability",
                    "drain",
                    "--label-add",
                    "zone=a",
                    "worker1"
                ]
            )
            .trim(),
        "worker1"
    );
    let shown = docker.ok(
        &msock,
        &[
            "node",
            "inspect",
            "worker1",
            "--format",
            "{{.Spec.Availability}} {{.Spec.Labels}}",
        ],
    );
    assert_eq!(shown.trim(), "drain map[zone:a]");
    let drained = docker.ok(
        &msock,
        &[
            "node",
            "ls",
            "--filter",
            "node.label=zone=a",
            "--format",
            "{{.Hostname}} {{.Availability}}",
        ],
    );
    assert_eq!(drained.trim(), "worker1 Drain");
    docker.ok(
        &msock,
        &["node", "update", "--availability", "active", "worker1"],
    );

    // Networks, secrets and configs made and removed through docker.
    let net = docker.ok(
        &msock,
        &[
            "network",
            "create",
            "-d",
            "overlay",
            "--attachable",
            "lp_net",
        ],
    );
    assert_eq!(net.trim().len(), 25, "{net}");
    let listed = docker.ok(
        &msock,
        &[
            "network",
            "ls",
            "--filter",
            "name=lp_net",
            "--format",
            "{{.Name}} {{.Driver}} {{.Scope}}",
        ],
    );
    assert_eq!(listed.trim(), "lp_net overlay swarm");
    assert_eq!(
        docker.ok(&msock, &["network", "rm", "lp_net"]).trim(),
        "lp_net"
    );
    let pw = lab.root.join("db_pass.txt");
    std::fs::write(&pw, "s3cret").unwrap();
    let sec = docker.ok(
        &msock,
        &["secret", "create", "db_pass", pw.to_str().unwrap()],
    );
    assert_eq!(sec.trim().len(), 25, "{sec}");
    assert_eq!(
        docker
            .ok(&msock, &["secret", "ls", "--format", "{{.Name}}"])
            .trim(),
        "db_pass"
    );
    assert_eq!(
        docker.ok(&msock, &["secret", "rm", "db_pass"]).trim(),
        "db_pass"
    );
    docker.ok(&msock, &["config", "create", "site", pw.to_str().unwrap()]);
    let data = docker.ok(
        &msock,
        &[
            "config",
            "inspect",
            "site",
            "--format",
            "{{printf \"%s\" .Spec.Data}}",
        ],
    );
    assert_eq!(data.trim(), "s3cret");
    assert_eq!(docker.ok(&msock, &["config", "rm", "site"]).trim(), "site");

    // A stopped node's socket is gone.
    lab.lab_ok(&["stop", "worker1"], &[]);
    assert!(
        !wsock.exists(),
        "{} is left after the node stopped",
        wsock.display()
    );
}

/// `docker service create` of an image from the lab's registry, as a user types it (no
/// `--no-resolve-image`, no `-d`): the CLI pins the digest `/distribution` gives, follows the
/// service to convergence with its own progress display, and the routing mesh answers on the
/// published port.
#[test]
#[ignore = "needs root"]
fn the_docker_cli_creates_a_container_service() {
    if !root_or_skip() {
        return;
    }
    let Some(docker) = Docker::new() else { return };
    let Some(images) = shoal_tests::lab::demo_images_or_skip() else {
        return;
    };
    let _one = one_lab();
    let mut lab = Lab::new();
    lab.subnet = SUBNET.into();
    lab.serve_docker();
    lab.up_with_images(1, 1, &images);
    let msock = lab.docker_sock("manager1");
    let out = docker.run(
        &msock,
        &[
            "service",
            "create",
            "--name",
            "who",
            "--replicas",
            "2",
            "--publish",
            "8080:8080",
            "shoal/whoami",
        ],
    );
    assert!(out.success(), "{out}");
    // 20.10: `verify: Service converged`; newer CLIs name the service's id.
    let last = out.stdout.trim_end().lines().last().unwrap_or_default();
    assert!(
        last.starts_with("verify: Service ") && last.ends_with(" converged"),
        "{out}"
    );
    assert!(
        out.stderr.trim().is_empty(),
        "no warning about the digest: {out}"
    );
    let image = docker.ok(
        &msock,
        &[
            "service",
            "inspect",
            "who",
            "--format",
            "{{.Spec.TaskTemplate.ContainerSpec.Image}}",
        ],
    );
    assert!(
        image.trim().starts_with("shoal/whoami:latest@sha256:"),
        "{image}"
    );
    let ls = docker.ok(
        &msock,
        &[
            "service",
            "ls",
            "--format",
            "{{.Name}} {{.Replicas}} {{.Image}} {{.Ports}}",
        ],
    );
    assert_eq!(ls.trim(), "who 2/2 shoal/whoami:latest *:8080->8080/tcp");
    let hello = lab.on_node(
        "manager1",
        &["curl", "-s", "-m", "5", "http://127.0.0.1:8080/"],
    );
    assert!(
        hello.success() && hello.stdout.starts_with("I'm "),
        "{hello}"
    );
    assert_eq!(docker.ok(&msock, &["service", "rm", "who"]).trim(), "who");
}
