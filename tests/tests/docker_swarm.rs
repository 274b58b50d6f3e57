//! A swarm made and run with the real `docker` CLI only (Debian's `docker.io` 20.10), through
//! each node's Engine API socket (`swarmd --docker-host`), on a lab of 3 managers and 2 workers
//! started in no swarm (`lab up --no-swarm`, as Play with Docker's nodes): `docker swarm init
//! --advertise-addr eth0`, `docker swarm join` with the tokens `join-token` prints, `node ls`
//! from a manager and a worker, drain, promote and demote, an attachable overlay network, the
//! article's service (5 replicas, published, on the overlay) converging with the CLI's
//! progress display and answering through the mesh on every node, `service ls|ps|inspect
//! --pretty|scale|update --image|rollback|logs -f|rm`, a secret, and `swarm leave` (refused to
//! a manager, then a worker leaving, its node removed, and the same node joining again). Every
//! text checked is the CLI's own output, as it prints it against dockerd.

use shoal_netlib::root::root_or_skip;
use shoal_tests::docker::{row, tabwriter, Docker};
use shoal_tests::lab::Lab;
use shoal_tests::{wait_for, TaskView};
use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::Stdio;
use std::time::{Duration, Instant};

/// This test's lab subnet (outside the range other lab tests draw theirs from).
const SUBNET: &str = "198.19.237.0/24";

const NODES: [&str; 5] = ["manager1", "manager2", "manager3", "worker1", "worker2"];

struct Swarm {
    lab: Lab,
    docker: Docker,
}

impl Swarm {
    fn sock(&self, node: &str) -> PathBuf {
        self.lab.docker_sock(node)
    }

    fn ok(&self, node: &str, args: &[&str]) -> String {
        self.docker.ok(&self.sock(node), args)
    }

    fn refused(&self, node: &str, args: &[&str], message: &str) {
        self.docker.refused(&self.sock(node), args, message)
    }

    /// `docker node ls` on `node` until it is `want`.
    fn node_ls_is(&self, node: &str, want: &str) {
        wait_for(
            &format!("docker node ls on {node}"),
            Duration::from_secs(60),
            || {
                let t = self.ok(node, &["node", "ls"]);
                (t == want)
                    .then_some(())
                    .ok_or(format!("got\n{t}\nwant\n{want}"))
            },
        );
    }
}

/// Node ids by hostname, as `docker node ls` shows them.
fn ids(s: &Swarm) -> Vec<(String, String)> {
    s.ok(
        "manager1",
        &["node", "ls", "--format", "{{.Hostname}} {{.ID}}"],
    )
    .lines()
    .filter_map(|l| l.split_once(' '))
    .map(|(h, id)| (h.to_string(), id.to_string()))
    .collect()
}

/// The expected `docker node ls` table seen from `me`: `status[i]` is (STATUS, AVAILABILITY,
/// MANAGER STATUS) of `NODES[i]`, `None` for a node not listed.
fn table(
    ids: &[(String, String)],
    me: &str,
    engine: &str,
    status: &[Option<(&str, &str, &str)>],
) -> String {
    let mut rows = vec![row(&[
        "ID",
        "HOSTNAME",
        "STATUS",
        "AVAILABILITY",
        "MANAGER STATUS",
        "ENGINE VERSION",
    ])];
    for (i, name) in NODES.iter().enumerate() {
        let Some((st, av, ms)) = status[i] else {
            continue;
        };
        let id = &ids.iter().find(|(h, _)| h == name).unwrap().1;
        let id = if *name == me {
            format!("{id} *")
        } else {
            format!("{id}  ")
        };
        rows.push(row(&[&id, name, st, av, ms, engine]));
    }
    tabwriter(&rows)
}

#[test]
#[ignore = "needs root"]
fn a_swarm_made_and_run_with_the_docker_cli() {
    if !root_or_skip() {
        return;
    }
    let Some(docker) = Docker::new() else { return };
    let Some(images) = shoal_tests::lab::demo_images_or_skip() else {
        return;
    };
    let mut lab = Lab::new();
    lab.subnet = SUBNET.into();
    lab.serve_docker();
    let images = images.display().to_string();
    let up = lab.lab_ok(
        &["up"],
        &[
            "--managers",
            "3",
            "--workers",
            "2",
            "--subnet",
            SUBNET,
            "--images",
            &images,
            "--no-swarm",
        ],
    );
    assert!(up.contains("in no swarm"), "{up}");
    let s = Swarm { lab, docker };
    let ip = |i: usize| format!("198.19.237.{}", i + 1);

    // In no swarm: inactive, manager calls refused as dockerd refuses them.
    for n in NODES {
        let st = s.ok(n, &["info", "--format", "{{.Swarm.LocalNodeState}}"]);
        assert_eq!(st.trim(), "inactive", "{n}");
    }
    s.refused(
        "manager1",
        &["node", "ls"],
        "This node is not a swarm manager. Use \"docker swarm init\" or \"docker swarm join\" to connect this node to swarm and try again.",
    );
    s.refused(
        "worker1",
        &["swarm", "leave"],
        "This node is not part of a swarm",
    );

    // init through an interface name.
    let init = s.ok("manager1", &["swarm", "init", "--advertise-addr", "eth0"]);
    let lines: Vec<&str> = init.lines().collect();
    let m1_id = lines[0]
        .strip_prefix("Swarm initialized: current node (")
        .and_then(|l| l.strip_suffix(") is now a manager."))
        .unwrap_or_else(|| panic!("{init}"));
    assert_eq!(m1_id.len(), 25, "{init}");
    let worker_token = s.ok("manager1", &["swarm", "join-token", "-q", "worker"]);
    let worker_token = worker_token.trim();
    let manager_token = s.ok("manager1", &["swarm", "join-token", "-q", "manager"]);
    let manager_token = manager_token.trim();
    assert_eq!(
        init,
        format!(
            "Swarm initialized: current node ({m1_id}) is now a manager.\n\nTo add a worker to this swarm, run the following command:\n\n    docker swarm join --token {worker_token} {}:2377\n\nTo add a manager to this swarm, run 'docker swarm join-token manager' and follow the instructions.\n\n",
            ip(0)
        )
    );
    s.refused(
        "manager1",
        &["swarm", "init"],
        "This node is already part of a swarm. Use \"docker swarm leave\" to leave this swarm and join another one.",
    );
    let addr = format!("{}:2377", ip(0));
    for m in ["manager2", "manager3"] {
        let out = s.ok(m, &["swarm", "join", "--token", manager_token, &addr]);
        assert_eq!(out, "This node joined a swarm as a manager.\n");
    }
    for w in ["worker1", "worker2"] {
        let out = s.ok(w, &["swarm", "join", "--token", worker_token, &addr]);
        assert_eq!(out, "This node joined a swarm as a worker.\n");
    }
    let info = s.ok(
        "worker1",
        &[
            "info",
            "--format",
            "{{.Swarm.LocalNodeState}} {{.Swarm.ControlAvailable}} {{.Swarm.NodeAddr}}",
        ],
    );
    assert_eq!(info.trim(), format!("active false {}", ip(3)));

    // node ls: the whole table, from manager1 and from manager2.
    let engine = s.ok("manager1", &["version", "--format", "{{.Server.Version}}"]);
    let engine = engine.trim().to_string();
    let ids = wait_for("5 nodes listed", Duration::from_secs(30), || {
        let ids = ids(&s);
        (ids.len() == 5)
            .then_some(ids.clone())
            .ok_or(format!("{ids:?}"))
    });
    let all = |m: [&'static str; 5],
               av: [&'static str; 5]|
     -> Vec<Option<(&'static str, &'static str, &'static str)>> {
        (0..5).map(|i| Some(("Ready", av[i], m[i]))).collect()
    };
    let roles = ["Leader", "Reachable", "Reachable", "", ""];
    let active = ["Active"; 5];
    s.node_ls_is(
        "manager1",
        &table(&ids, "manager1", &engine, &all(roles, active)),
    );
    s.node_ls_is(
        "manager2",
        &table(&ids, "manager2", &engine, &all(roles, active)),
    );
    s.refused(
        "worker1",
        &["node", "ls"],
        "This node is not a swarm manager. Worker nodes can't be used to view or modify cluster state. Please run this command on a manager node or promote the current node to a manager.",
    );

    // drain, promote, demote.
    assert_eq!(
        s.ok(
            "manager1",
            &["node", "update", "--availability", "drain", "worker2"]
        ),
        "worker2\n"
    );
    let mut drained = active;
    drained[4] = "Drain";
    s.node_ls_is(
        "manager1",
        &table(&ids, "manager1", &engine, &all(roles, drained)),
    );
    s.ok(
        "manager1",
        &["node", "update", "--availability", "active", "worker2"],
    );
    assert_eq!(
        s.ok("manager1", &["node", "promote", "worker1"]),
        "Node worker1 promoted to a manager in the swarm.\n"
    );
    let mut promoted = roles;
    promoted[3] = "Reachable";
    s.node_ls_is(
        "manager1",
        &table(&ids, "manager1", &engine, &all(promoted, active)),
    );
    assert_eq!(
        s.ok("manager1", &["node", "demote", "worker1"]),
        "Manager worker1 demoted in the swarm.\n"
    );
    s.node_ls_is(
        "manager1",
        &table(&ids, "manager1", &engine, &all(roles, active)),
    );

    // The article's overlay and service, on every node.
    let net = s.ok(
        "manager1",
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
    let nls = s.ok(
        "manager1",
        &[
            "network",
            "ls",
            "--filter",
            "name=lp_net",
            "--format",
            "{{.Name}} {{.Driver}} {{.Scope}}",
        ],
    );
    assert_eq!(nls, "lp_net overlay swarm\n");
    let out = s.docker.run(
        &s.sock("manager1"),
        &[
            "service",
            "create",
            "--name",
            "web",
            "--replicas",
            "5",
            "--publish",
            "8080:8080",
            "--network",
            "lp_net",
            "shoal/whoami",
        ],
    );
    assert!(out.success(), "{out}");
    let text = out.stdout.replace('\r', "\n");
    assert!(text.contains("overall progress: 5 out of 5 tasks"), "{out}");
    assert!(
        text.trim_end().ends_with("verify: Service converged"),
        "{out}"
    );
    let sid = s.ok(
        "manager1",
        &["service", "inspect", "web", "--format", "{{.ID}}"],
    );
    let sid = sid.trim();
    assert_eq!(
        s.ok("manager2", &["service", "ls"]),
        tabwriter(&[
            row(&["ID", "NAME", "MODE", "REPLICAS", "IMAGE", "PORTS"]),
            row(&[
                &sid[..12],
                "web",
                "replicated",
                "5/5",
                "shoal/whoami:latest",
                "*:8080->8080/tcp"
            ]),
        ])
    );
    let ps = s.ok(
        "manager1",
        &[
            "service",
            "ps",
            "web",
            "--format",
            "{{.Name}} {{.Node}} {{.DesiredState}} {{.CurrentState}}",
        ],
    );
    let mut lines: Vec<&str> = ps.lines().collect();
    lines.sort();
    assert_eq!(lines.len(), 5, "{ps}");
    for (i, l) in lines.iter().enumerate() {
        let f: Vec<&str> = l.split_whitespace().collect();
        assert_eq!(f[0], format!("web.{}", i + 1), "{ps}");
        assert!(NODES.contains(&f[1]), "{ps}");
        assert_eq!(&f[2..4], ["Running", "Running"], "{ps}");
    }
    // The routing mesh answers on every node, the balancer reaching more than one replica.
    let mut seen = std::collections::BTreeSet::new();
    for n in NODES {
        for _ in 0..3 {
            let r = s
                .lab
                .on_node(n, &["curl", "-s", "-m", "5", "http://127.0.0.1:8080/"]);
            assert!(r.success() && r.stdout.starts_with("I'm "), "{n}: {r}");
            seen.insert(r.stdout.lines().next().unwrap_or_default().to_string());
        }
    }
    assert!(
        seen.len() > 1,
        "one replica answered every request: {seen:?}"
    );

    let pretty = s.ok("manager1", &["service", "inspect", "--pretty", "web"]);
    for want in [
        "Name:\t\tweb",
        "Service Mode:\tReplicated",
        " Replicas:\t5",
        "PublishedPort = 8080",
    ] {
        assert!(pretty.contains(want), "{want:?} in\n{pretty}");
    }

    // scale, update --image, rollback: each converging as the CLI shows it.
    let image_of = |svc: &str| {
        let f = "{{.Spec.TaskTemplate.ContainerSpec.Image}}";
        s.ok("manager1", &["service", "inspect", svc, "--format", f])
    };
    let out = s.ok("manager1", &["service", "scale", "web=3"]);
    assert!(out.starts_with("web scaled to 3\n"), "{out}");
    assert!(
        out.trim_end().ends_with("verify: Service converged"),
        "{out}"
    );
    let out = s.ok(
        "manager1",
        &["service", "update", "--image", "shoal/nginx", "web"],
    );
    assert!(
        out.trim_end().ends_with("verify: Service converged"),
        "{out}"
    );
    let image = image_of("web");
    assert!(image.starts_with("shoal/nginx:latest@sha256:"), "{image}");
    let out = s.ok("manager1", &["service", "rollback", "web"]);
    assert!(
        out.starts_with("web\nrollback: manually requested rollback"),
        "{out}"
    );
    assert!(
        out.trim_end().ends_with("verify: Service converged"),
        "{out}"
    );
    let image = image_of("web");
    assert!(image.starts_with("shoal/whoami:latest@sha256:"), "{image}");
    let r = s.lab.on_node(
        "worker2",
        &["curl", "-s", "-m", "5", "http://127.0.0.1:8080/"],
    );
    assert!(r.success() && r.stdout.starts_with("I'm "), "{r}");

    // logs -f: every running task's line arrives on the stream, which then stays open.
    let running: Vec<TaskView> = s.lab.running("web", 3);
    let mut child = s
        .docker
        .command(&s.sock("manager3"), &["service", "logs", "-f", "web"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("docker service logs -f");
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for l in BufReader::new(stdout).lines().map_while(Result::ok) {
            if tx.send(l).is_err() {
                break;
            }
        }
    });
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut pending: Vec<String> = running.iter().map(|t| t.id[..12].to_string()).collect();
    while !pending.is_empty() && Instant::now() < deadline {
        if let Ok(l) = rx.recv_timeout(Duration::from_millis(500)) {
            pending.retain(|id| !l.contains(&format!(".{id}@")));
        }
    }
    let still_open = child.try_wait().expect("logs -f status").is_none();
    let _ = child.kill();
    let _ = child.wait();
    assert!(pending.is_empty(), "no log line of tasks {pending:?}");
    assert!(still_open, "docker service logs -f ended by itself");

    // A secret, read by a task.
    let out = s.docker.run_with_input(
        &s.sock("manager1"),
        &["secret", "create", "db_pass", "-"],
        b"s3cr3t-of-the-swarm",
    );
    assert!(out.success(), "{out}");
    assert_eq!(out.stdout.trim().len(), 25, "{out}");
    s.ok(
        "manager1",
        &[
            "service",
            "create",
            "--name",
            "db",
            "--secret",
            "db_pass",
            "shoal/busybox",
            "sleep",
            "3600",
        ],
    );
    let db = s.lab.running("db", 1);
    let cat = s.lab.swarmctl(&[
        "task",
        "exec",
        &db[0].id,
        "--",
        "cat",
        "/run/secrets/db_pass",
    ]);
    assert!(cat.success(), "{cat}");
    assert_eq!(cat.stdout, "s3cr3t-of-the-swarm");
    let out = s
        .docker
        .run(&s.sock("manager1"), &["secret", "rm", "db_pass"]);
    assert!(!out.success(), "{out}");
    assert!(
        out.stderr
            .contains("secret 'db_pass' is in use by the following service: db"),
        "{out}"
    );

    // Unknown objects, as the CLI words them.
    let out = s
        .docker
        .run(&s.sock("manager1"), &["service", "rm", "nosuch"]);
    assert!(!out.success());
    assert!(out.stderr.contains("nosuch"), "{out}");

    assert_eq!(
        s.ok("manager1", &["service", "rm", "web", "db"]),
        "web\ndb\n"
    );

    article(&s);

    // Autolock through docker: a restarted manager is locked and says so in Docker's words
    // until `docker swarm unlock` (the key on stdin) opens it.
    let on = s.ok("manager1", &["swarm", "update", "--autolock=true"]);
    let key = on
        .split_whitespace()
        .find(|w| w.starts_with("SWMKEY-1-"))
        .unwrap_or_else(|| panic!("{on}"))
        .to_string();
    s.lab.lab_ok(&["restart", "manager3"], &[]);
    let st = s.ok(
        "manager3",
        &["info", "--format", "{{.Swarm.LocalNodeState}}"],
    );
    assert_eq!(st.trim(), "locked");
    s.refused(
        "manager3",
        &["node", "ls"],
        "Swarm is encrypted and needs to be unlocked before it can be used. Please use \"docker swarm unlock\" to unlock it.",
    );
    let bad = s.docker.run_with_input(
        &s.sock("manager3"),
        &["swarm", "unlock"],
        b"SWMKEY-1-wrong\n",
    );
    assert!(
        !bad.success() && bad.stderr.contains("invalid unlock key"),
        "{bad}"
    );
    let out = s.docker.run_with_input(
        &s.sock("manager3"),
        &["swarm", "unlock"],
        format!("{key}\n").as_bytes(),
    );
    assert!(out.success(), "{out}");
    s.node_ls_is(
        "manager3",
        &table(&ids, "manager3", &engine, &all(roles, active)),
    );
    let out = s.docker.run(&s.sock("manager3"), &["swarm", "unlock"]);
    assert!(
        !out.success() && out.stderr.contains("swarm is not locked"),
        "{out}"
    );
    s.ok("manager1", &["swarm", "update", "--autolock=false"]);

    // leave: refused to a manager without --force; a worker leaves, is Down, is removed, and
    // joins again from the same running swarmd.
    s.refused(
        "manager3",
        &["swarm", "leave"],
        "You are attempting to leave the swarm on a node that is participating as a manager. The only way to restore a swarm that has lost consensus is to reinitialize it with `--force-new-cluster`. Use `--force` to suppress this message.",
    );
    assert_eq!(
        s.ok("worker2", &["swarm", "leave"]),
        "Node left the swarm.\n"
    );
    let st = s.ok(
        "worker2",
        &["info", "--format", "{{.Swarm.LocalNodeState}}"],
    );
    assert_eq!(st.trim(), "inactive");
    let mut down = all(roles, active);
    down[4] = Some(("Down", "Active", ""));
    s.node_ls_is("manager1", &table(&ids, "manager1", &engine, &down));
    assert_eq!(s.ok("manager1", &["node", "rm", "worker2"]), "worker2\n");
    let mut gone = all(roles, active);
    gone[4] = None;
    s.node_ls_is("manager1", &table(&ids, "manager1", &engine, &gone));
    let out = s.ok(
        "worker2",
        &["swarm", "join", "--token", worker_token, &addr],
    );
    assert_eq!(out, "This node joined a swarm as a worker.\n");
    wait_for("worker2 back, Ready", Duration::from_secs(60), || {
        let t = s.ok(
            "manager1",
            &["node", "ls", "--format", "{{.Hostname}} {{.Status}}"],
        );
        (t.matches("worker2 Ready").count() == 1)
            .then_some(())
            .ok_or(t)
    });
}

/// The reference article's sections 3.2–3.4 typed as the article types them (its images aside:
/// `shoal/whoami` and `shoal/busybox` from the lab's registry): the service published on a port
/// the swarm picks, answering through the mesh on every node; `docker service ps`, `docker ps`
/// on each node (its own replica), `docker inspect` of a replica (its ingress and lp_net
/// addresses); an unnamed `-t` service, and in its container: the service's name, `ping`, a
/// reverse lookup of a replica's address and that replica's long name.
fn article(s: &Swarm) {
    let id = s.ok(
        "manager1",
        &[
            "service",
            "create",
            "-d",
            "--publish=8080",
            "--replicas=5",
            "--name=web",
            "--network=lp_net",
            "shoal/whoami",
        ],
    );
    assert_eq!(id.trim().len(), 25, "{id}");
    let ports = wait_for("web at 5/5", Duration::from_secs(90), || {
        let l = s.ok(
            "manager1",
            &[
                "service",
                "ls",
                "--filter",
                "name=web",
                "--format",
                "{{.Replicas}} {{.Ports}}",
            ],
        );
        match l.trim().split_once(' ') {
            Some(("5/5", p)) => Ok(p.to_string()),
            _ => Err(l),
        }
    });
    // `*:30000->8080/tcp`: a port from the swarm's range.
    let published: u16 = ports
        .strip_prefix("*:")
        .and_then(|p| p.strip_suffix("->8080/tcp"))
        .and_then(|p| p.parse().ok())
        .unwrap_or_else(|| panic!("{ports}"));
    assert!((30000..=32767).contains(&published), "{ports}");
    let url = format!("http://localhost:{published}/");
    for n in NODES {
        let r = s.lab.on_node(n, &["curl", "-s", "-m", "5", &url]);
        assert!(r.success() && r.stdout.starts_with("I'm "), "{n}: {r}");
    }

    // docker service ps web, then docker ps on every node: each shows its own replica.
    let ps = s.ok(
        "manager1",
        &[
            "service",
            "ps",
            "--no-trunc",
            "web",
            "--format",
            "{{.Name}}.{{.ID}} {{.Node}} {{.CurrentState}}",
        ],
    );
    let replicas: Vec<(String, String)> = ps
        .lines()
        .map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            assert_eq!(f[2], "Running", "{ps}");
            (f[0].to_string(), f[1].to_string())
        })
        .collect();
    assert_eq!(replicas.len(), 5, "{ps}");
    for n in NODES {
        let mine: Vec<&String> = replicas
            .iter()
            .filter(|(_, node)| node == n)
            .map(|(r, _)| r)
            .collect();
        let mut want: Vec<&str> = mine.iter().map(|r| r.as_str()).collect();
        want.sort();
        // The first web's containers stop as their service is gone: wait for them to go.
        wait_for(
            &format!("docker ps on {n}"),
            Duration::from_secs(30),
            || {
                let names = s.ok(
                    n,
                    &["ps", "--filter", "name=web.", "--format", "{{.Names}}"],
                );
                let mut shown: Vec<&str> = names.lines().collect();
                shown.sort();
                (shown == want)
                    .then_some(())
                    .ok_or(format!("{shown:?}, want {want:?}"))
            },
        );
    }
    let (web2, node2) = replicas
        .iter()
        .find(|(r, _)| r.starts_with("web.2."))
        .unwrap();
    let nets: serde_json::Value = serde_json::from_str(&s.ok(
        node2,
        &[
            "inspect",
            web2,
            "--format",
            "{{json .NetworkSettings.Networks}}",
        ],
    ))
    .unwrap();
    let ip_on = |net: &str| -> String {
        nets[net]["IPAMConfig"]["IPv4Address"]
            .as_str()
            .unwrap_or_else(|| panic!("{net} in {nets}"))
            .to_string()
    };
    let (ingress_ip, lp_ip) = (ip_on("ingress"), ip_on("lp_net"));
    assert!(
        ingress_ip.parse::<std::net::Ipv4Addr>().is_ok()
            && lp_ip.parse::<std::net::Ipv4Addr>().is_ok(),
        "{nets}"
    );

    // 3.4: an unnamed service with a terminal; names resolved in its container.
    let id = s.ok(
        "manager1",
        &[
            "service",
            "create",
            "-t",
            "--network=lp_net",
            "shoal/busybox",
        ],
    );
    let client = s.ok(
        "manager1",
        &[
            "service",
            "inspect",
            id.lines().next().unwrap_or_default(),
            "--format",
            "{{.Spec.Name}}",
        ],
    );
    let client = client.trim().to_string();
    let (adjective, surname) = client.split_once('_').unwrap_or_else(|| panic!("{client}"));
    assert!(!adjective.is_empty() && !surname.is_empty(), "{client}");
    let task = wait_for("the client's task running", Duration::from_secs(60), || {
        let l = s.ok(
            "manager1",
            &[
                "service",
                "ps",
                "--no-trunc",
                &client,
                "--format",
                "{{.Name}}.{{.ID}} {{.CurrentState}}",
            ],
        );
        match l.lines().next().and_then(|l| l.split_once(' ')) {
            Some((t, st)) if st.starts_with("Running") => Ok(t.to_string()),
            _ => Err(l),
        }
    });
    // Through manager1's socket, wherever the task runs.
    let exec = |script: &str| {
        s.docker
            .run(&s.sock("manager1"), &["exec", &task, "sh", "-c", script])
    };
    // The client's node learns the service's name with its task: until then, retry.
    wait_for("web:8080 from the client", Duration::from_secs(30), || {
        let r = exec("timeout 5 wget -qO- web:8080/");
        (r.success() && r.stdout.starts_with("I'm "))
            .then_some(())
            .ok_or(r.to_string())
    });
    let r = exec("ping -c 2 -W 2 web");
    assert!(
        r.success() && r.stdout.contains("2 packets received"),
        "{r}"
    );
    let r = exec(&format!("nslookup {lp_ip}"));
    let long = format!("{web2}.lp_net");
    assert!(
        r.success() && r.stdout.contains(&long),
        "reverse of {lp_ip}: {r}"
    );
    let r = exec(&format!("ping -c 2 -W 2 {long}"));
    assert!(
        r.success() && r.stdout.contains(&format!("({lp_ip})")),
        "{r}"
    );
    assert_eq!(
        s.ok("manager1", &["service", "rm", "web", &client]),
        format!("web\n{client}\n")
    );
}
