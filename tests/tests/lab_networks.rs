//! The reference article's section 2 on a `swarmctl lab` (root): tasks on the default
//! `bridge` network get 172.17.0.x addresses and reach each other; a task on `none` has only
//! `lo` and no route; a task on `host` serves on the node's own address; tasks on two user
//! bridge networks cannot reach each other. Traffic stays inside the lab's namespaces.

use shoal_netlib::root::root_or_skip;
use shoal_tests::lab::{interfaces, Lab};
use shoal_tests::{run, wait_for, Output, TaskView};
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

/// The task's network namespace file on `node`.
fn task_netns(lab: &Lab, node: &str, task_id: &str) -> PathBuf {
    let short: String = task_id
        .chars()
        .filter(|c| c.is_ascii_alphanumeric())
        .take(12)
        .collect();
    lab.dir()
        .join("nodes")
        .join(node)
        .join("netns")
        .join(format!("tk_{}", short.to_lowercase()))
}

/// A command inside a task's network namespace.
fn in_task(ns: &Path, cmd: &[&str]) -> Output {
    let mut c = Command::new("nsenter");
    c.arg(format!("--net={}", ns.display())).args(cmd);
    run(&mut c, Duration::from_secs(20))
}

fn curl_name(addr: &str) -> Vec<&str> {
    vec!["curl", "-s", "-m", "3", addr]
}

#[ignore = "needs root"]
#[test]
fn article_section_2_bridge_none_host_and_isolated_bridges() {
    if !root_or_skip() {
        return;
    }
    let lab = Lab::new();
    lab.lab_ok(
        &["up"],
        &["--managers", "1", "--workers", "1", "--subnet", &lab.subnet],
    );
    let worker_ip = lab.file()["nodes"][1]["address"]
        .as_str()
        .expect("address")
        .to_string();
    let on_worker = ["--constraint", "node.hostname==worker1"];

    // --- the default bridge network: 172.17.0.x, reachable from the node and each other ---
    let mut args = vec![
        "service",
        "create",
        "--runtime",
        "process",
        "--name",
        "web",
        "--replicas",
        "2",
    ];
    args.extend(on_worker);
    args.push("whoami");
    lab.swarmctl_ok(&args);
    let web = lab.running("web", 2);
    let mut names = Vec::new();
    for ip in ["172.17.0.2", "172.17.0.3"] {
        let out = lab.on_node("worker1", &curl_name(&format!("http://{ip}:8080/name")));
        assert!(out.success(), "{out}");
        names.push(out.stdout.trim().to_string());
    }
    names.sort();
    let mut ids: Vec<String> = web.iter().map(|t| t.id.clone()).collect();
    ids.sort();
    assert_eq!(
        names, ids,
        "each bridge address answers with its own task's host name"
    );
    let ns0 = task_netns(&lab, "worker1", &web[0].id);
    let page = in_task(&ns0, &curl_name("http://172.17.0.2:8080/"));
    let page2 = in_task(&ns0, &curl_name("http://172.17.0.3:8080/"));
    assert!(page.success() && page2.success(), "{page}\n{page2}");
    assert!(
        page.stdout.contains("I'm ") && page2.stdout.contains("I'm "),
        "{page}\n{page2}"
    );
    let whoami = if page.stdout.contains(&web[0].id) {
        &page2.stdout
    } else {
        &page.stdout
    };
    assert!(
        whoami.contains("RemoteAddr: 172.17.0."),
        "the other task sees our bridge address:\n{whoami}"
    );

    let ping = in_task(&ns0, &["ping", "-c", "1", "-W", "2", "172.17.0.3"]);
    assert!(ping.success(), "ping between two bridge tasks: {ping}");
    // task inspect shows the attachment the node made: network, address, MAC, gateway.
    let v: serde_json::Value = serde_json::from_str(
        &lab.swarmctl_ok(&["task", "inspect", &web[0].id, "--format", "json"]),
    )
    .expect("json");
    let task = if v.is_array() { &v[0] } else { &v };
    let att = &task["networks"][0];
    assert_eq!(att["network"], "bridge", "{task}");
    let addr = att["addresses"][0].as_str().unwrap_or_default();
    assert!(
        addr.starts_with("172.17.0.") && addr.ends_with("/16"),
        "{task}"
    );
    assert!(
        att["macs"][0]
            .as_str()
            .unwrap_or_default()
            .starts_with("02:42:ac:11:00:"),
        "{task}"
    );
    assert_eq!(att["gateway"], "172.17.0.1", "{task}");

    // --- none: loopback only, no route ---
    let mut args = vec![
        "service",
        "create",
        "--runtime",
        "process",
        "--name",
        "lonely",
        "--network",
        "none",
    ];
    args.extend(on_worker);
    args.extend(["sleep", "100000"]);
    lab.swarmctl_ok(&args);
    let lonely = lab.running("lonely", 1);
    let ns = task_netns(&lab, "worker1", &lonely[0].id);
    // /proc/net shows the network namespace of the reader (nsenter's /sys would not).
    let links = in_task(&ns, &["cat", "/proc/net/dev"]);
    assert_eq!(interfaces(&links.stdout), vec!["lo".to_string()], "{links}");
    let routes = in_task(&ns, &["cat", "/proc/net/route"]);
    assert_eq!(
        routes.stdout.lines().count(),
        1,
        "only the header:\n{routes}"
    );
    // Stopping it: `sleep` has no SIGTERM handler, but it is not PID 1 (swarmd's init is), so
    // SIGTERM ends it at once (exit 143) instead of the SIGKILL after the grace period (137).
    lab.swarmctl_ok(&["service", "update", "--force", "-d", "lonely"]);
    let stopped = wait_for("lonely's task stopped", Duration::from_secs(30), || {
        let out = lab.swarmctl(&["service", "ps", "lonely", "--format", "json"]);
        let v: serde_json::Value =
            serde_json::from_str(&out.stdout).map_err(|e| format!("{e}: {out}"))?;
        TaskView::list(&v)
            .into_iter()
            .find(|t| t.id == lonely[0].id && t.state == "shutdown")
            .ok_or_else(|| format!("{v}"))
    });
    assert_eq!(stopped.exit_code, Some(143), "{stopped:?}");

    // --- host: the task serves on the node's own address ---
    let mut args = vec![
        "service",
        "create",
        "--runtime",
        "process",
        "--name",
        "onhost",
        "--network",
        "host",
    ];
    args.extend(on_worker);
    args.extend(["whoami", "--port", "8081"]);
    lab.swarmctl_ok(&args);
    let onhost = lab.running("onhost", 1);
    let url = format!(
        "http://{}:8081/name",
        worker_ip.split(':').next().unwrap_or_default()
    );
    let answer = wait_for(
        "the host-network task answers",
        Duration::from_secs(20),
        || {
            let out = lab.on_node("manager1", &curl_name(&url));
            if out.success() && !out.stdout.trim().is_empty() {
                Ok(out.stdout.trim().to_string())
            } else {
                Err(out.to_string())
            }
        },
    );
    // The node's name (`swarmd --hostname`), as Docker gives a host-network container its
    // host's: in a lab, not the machine's.
    assert_eq!(
        answer, "worker1",
        "a host-network task sees the node's host name"
    );
    assert!(
        !task_netns(&lab, "worker1", &onhost[0].id).exists(),
        "no namespace of its own"
    );

    // --- --publish mode=host: the node's own address, a fixed or a dynamic port, to the task ---
    let worker = worker_ip.split(':').next().unwrap_or_default().to_string();
    let mut args = vec![
        "service",
        "create",
        "--runtime",
        "process",
        "--name",
        "pub",
        "--publish",
        "9090:8080,mode=host",
    ];
    args.extend(["--publish", "8080,mode=host"]);
    args.extend(on_worker);
    args.push("whoami");
    lab.swarmctl_ok(&args);
    let pubt = lab.running("pub", 1);
    let inspect: serde_json::Value =
        serde_json::from_str(&lab.swarmctl_ok(&["service", "inspect", "pub", "--format", "json"]))
            .expect("json");
    let svc = if inspect.is_array() {
        &inspect[0]
    } else {
        &inspect
    };
    let dynamic = svc["ports"]
        .as_array()
        .expect("ports")
        .iter()
        .filter_map(|p| p["published"].as_u64())
        .find(|p| *p != 9090)
        .expect("a dynamic port");
    assert!((30000..=32767).contains(&dynamic), "{svc}");
    for port in [9090, dynamic] {
        for from in ["manager1", "worker1"] {
            let url = format!("http://{worker}:{port}/name");
            let out = lab.on_node(from, &curl_name(&url));
            assert_eq!(out.stdout.trim(), pubt[0].id, "{from} -> {url}: {out}");
        }
    }

    // --- two user bridge networks cannot reach each other ---
    lab.swarmctl_ok(&[
        "network",
        "create",
        "-d",
        "bridge",
        "--subnet",
        "198.19.250.0/24",
        "red",
    ]);
    lab.swarmctl_ok(&[
        "network",
        "create",
        "-d",
        "bridge",
        "--subnet",
        "198.19.251.0/24",
        "blue",
    ]);
    for (svc, net, n) in [("r", "red", "2"), ("b", "blue", "1")] {
        let mut args = vec![
            "service",
            "create",
            "--runtime",
            "process",
            "--name",
            svc,
            "--replicas",
            n,
            "--network",
            net,
        ];
        args.extend(on_worker);
        args.push("whoami");
        lab.swarmctl_ok(&args);
    }
    let reds = lab.running("r", 2);
    lab.running("b", 1);
    let red_ns = task_netns(&lab, "worker1", &reds[0].id);
    let same = in_task(&red_ns, &curl_name("http://198.19.250.3:8080/name"));
    let same2 = in_task(&red_ns, &curl_name("http://198.19.250.2:8080/name"));
    assert!(
        same.success() && same2.success(),
        "tasks of one bridge network reach each other:\n{same}\n{same2}"
    );
    let other = in_task(&red_ns, &curl_name("http://198.19.251.2:8080/name"));
    assert!(!other.success(), "red reached blue:\n{other}");
    let to_default = in_task(&red_ns, &curl_name("http://172.17.0.2:8080/name"));
    assert!(
        !to_default.success(),
        "red reached the default bridge:\n{to_default}"
    );

    // Removing the services removes their sandboxes.
    for svc in ["web", "lonely", "onhost", "pub", "r", "b"] {
        lab.swarmctl_ok(&["service", "rm", svc]);
    }
    wait_no_sandbox(&lab, "worker1");
}

/// Waits until `node` has no task or overlay sandbox left but the routing mesh's (every node
/// keeps the ingress network's overlay sandbox, where its own namespace has a leg).
fn wait_no_sandbox(lab: &Lab, node: &str) {
    let dir = lab.dir().join("nodes").join(node).join("netns");
    let nets: serde_json::Value =
        serde_json::from_str(&lab.swarmctl_ok(&["network", "ls", "--format", "json"]))
            .expect("json");
    let ingress = nets
        .as_array()
        .into_iter()
        .flatten()
        .find(|n| n["name"] == "ingress")
        .and_then(|n| n["id"].as_str())
        .expect("the ingress network");
    let mesh = [shoal_netlib::names::overlay_ns(ingress)];
    wait_for(
        &format!("{node}: no sandbox left"),
        Duration::from_secs(30),
        || {
            let left: Vec<String> = std::fs::read_dir(&dir)
                .map(|rd| {
                    rd.flatten()
                        .map(|e| e.file_name().to_string_lossy().to_string())
                        .filter(|n| !mesh.contains(n))
                        .collect()
                })
                .unwrap_or_default();
            if left.is_empty() {
                Ok(())
            } else {
                Err(format!("{left:?}"))
            }
        },
    );
}

/// Node id → hostname, through `node ls`.
fn hostnames(lab: &Lab) -> std::collections::BTreeMap<String, String> {
    let v: serde_json::Value =
        serde_json::from_str(&lab.swarmctl_ok(&["node", "ls", "--format", "json"])).expect("json");
    shoal_tests::NodeView::list(&v)
        .into_iter()
        .map(|n| (n.id, n.hostname))
        .collect()
}

#[ignore = "needs root"]
#[test]
fn article_section_3_overlay_across_five_nodes() {
    if !root_or_skip() {
        return;
    }
    let lab = Lab::new();
    lab.lab_ok(
        &["up"],
        &["--managers", "3", "--workers", "2", "--subnet", &lab.subnet],
    );
    lab.swarmctl_ok(&["network", "create", "-d", "overlay", "lp_net"]);
    lab.swarmctl_ok(&[
        "service",
        "create",
        "--runtime",
        "process",
        "--name",
        "web",
        "--replicas",
        "5",
        "--network",
        "lp_net",
        "whoami",
    ]);
    let tasks = lab.running("web", 5);
    let names = hostnames(&lab);
    let on: std::collections::BTreeSet<&str> =
        tasks.iter().map(|t| names[&t.node_id].as_str()).collect();
    assert_eq!(on.len(), 5, "one task per node: {on:?}");

    // Every task's address on lp_net, from the managers' allocation.
    let v: serde_json::Value =
        serde_json::from_str(&lab.swarmctl_ok(&["service", "ps", "web", "--format", "json"]))
            .expect("json");
    let ips: Vec<(String, String, String)> = v
        .as_array()
        .expect("tasks")
        .iter()
        .filter(|t| t["status"]["state"] == "running")
        .map(|t| {
            let addr = t["networks"][0]["addresses"][0]
                .as_str()
                .expect("an address")
                .to_string();
            let ip = addr.split('/').next().unwrap_or_default().to_string();
            (
                t["id"].as_str().unwrap_or_default().to_string(),
                names[t["node_id"].as_str().unwrap_or_default()].clone(),
                ip,
            )
        })
        .collect();
    assert_eq!(ips.len(), 5);

    // From every task, every other task answers by IP across the VXLAN overlay.
    for (id, node, _) in &ips {
        let ns = task_netns(&lab, node, id);
        for (other, other_node, ip) in &ips {
            let out = wait_for(
                &format!("{node}/{id} reaches {other_node}/{other} at {ip}"),
                Duration::from_secs(20),
                || {
                    let out = in_task(&ns, &curl_name(&format!("http://{ip}:8080/name")));
                    if out.success() && out.stdout.trim() == other {
                        Ok(out)
                    } else {
                        Err(out.to_string())
                    }
                },
            );
            assert_eq!(out.stdout.trim(), other);
        }
    }
    // The nodes track their own connections but not the overlays' VXLAN packets.
    let nodes: BTreeSet<&String> = ips.iter().map(|(_, n, _)| n).collect();
    for node in nodes {
        let out = in_task(
            &lab.dir().join("netns").join(node),
            &["cat", "/proc/net/nf_conntrack"],
        );
        assert!(out.success(), "{node}: {out}");
        assert!(
            out.stdout.contains("tcp "),
            "{node}: conntrack runs there: {out}"
        );
        assert!(
            !out.stdout.contains("dport=4789 "),
            "{node}: VXLAN packets tracked: {out}"
        );
    }

    // task exec from manager1 into a task on another node: its own host name, /etc/hostname,
    // PID namespace (PID 1 is whoami), network (reaches another task by IP); exit codes pass.
    let (id, node, _) = ips
        .iter()
        .find(|(_, n, _)| n != "manager1")
        .expect("a task elsewhere");
    let (other, _, other_ip) = ips.iter().find(|(i, ..)| i != id).expect("another task");
    let exec = |cmd: &[&str]| {
        let mut a = vec!["task", "exec", id.as_str(), "--"];
        a.extend(cmd);
        lab.swarmctl(&a)
    };
    let out = exec(&[
        "sh",
        "-c",
        "hostname; cat /etc/hostname; tr '\\0' ' ' </proc/1/cmdline; echo; tr '\\0' ' ' </proc/2/cmdline",
    ]);
    assert!(out.success(), "{out}");
    let lines: Vec<&str> = out.stdout.lines().collect();
    assert_eq!(
        &lines[..2],
        &[id.as_str(), id.as_str()],
        "{out} (task on {node})"
    );
    assert!(
        lines[2].contains("__task-init") && lines[3].contains("whoami"),
        "PID 1 of the task is swarmd's init, PID 2 its program: {out}"
    );
    let out = exec(&[
        "curl",
        "-s",
        "-m",
        "3",
        &format!("http://{other_ip}:8080/name"),
    ]);
    assert_eq!(out.stdout.trim(), other, "{out}");
    let out = exec(&["sh", "-c", "echo oops >&2; exit 3"]);
    assert_eq!(out.code, 3, "{out}");
    assert!(out.stderr.contains("oops"), "{out}");
    let out = exec(&["no-such-command-xyz"]);
    assert!(
        !out.success() && out.stderr.contains("no-such-command-xyz"),
        "{out}"
    );

    // An overlay-only task also has shoal_gwbridge (eth1, 172.18.0.0/16) as its way out: the
    // default route goes there, not into the overlay.
    let out = exec(&["cat", "/proc/net/dev", "/proc/net/route"]);
    assert!(out.stdout.contains("eth1:"), "{out}");
    let default = out
        .stdout
        .lines()
        .find(|l| l.split_whitespace().nth(1) == Some("00000000"))
        .unwrap_or_else(|| panic!("no default route: {out}"));
    assert!(
        default.starts_with("eth1") && default.contains("010012AC"),
        "via 172.18.0.1: {default}"
    );

    // network ls shows the predefined networks and lp_net as Docker does.
    let nets: serde_json::Value =
        serde_json::from_str(&lab.swarmctl_ok(&["network", "ls", "--format", "json"]))
            .expect("json");
    let mut shown: Vec<String> = nets
        .as_array()
        .expect("networks")
        .iter()
        .map(|n| {
            format!(
                "{} {} {}",
                n["name"].as_str().unwrap_or(""),
                n["driver"].as_str().unwrap_or(""),
                n["scope"].as_str().unwrap_or("")
            )
        })
        .collect();
    shown.sort();
    assert_eq!(
        shown,
        vec![
            "bridge bridge local",
            "host host local",
            "ingress overlay swarm",
            "lp_net overlay swarm",
            "none null local",
            "shoal_gwbridge bridge local"
        ]
    );

    // Removing the service removes every task and overlay sandbox on every node.
    lab.swarmctl_ok(&["service", "rm", "web"]);
    for node in ["manager1", "manager2", "manager3", "worker1", "worker2"] {
        wait_no_sandbox(&lab, node);
    }
}

/// One keep-alive HTTP connection from inside a namespace: requests go over the same TCP
/// connection until it breaks.
struct KeepAlive {
    stream: std::net::TcpStream,
}

impl KeepAlive {
    fn open(ns: &Path, addr: &str) -> KeepAlive {
        let ns = shoal_netlib::netns::NetNs::open(ns).expect("the node's namespace");
        let addr: std::net::SocketAddr = addr.parse().expect("an address");
        let stream = ns
            .run(move || std::net::TcpStream::connect_timeout(&addr, Duration::from_secs(3)))
            .expect("enter the namespace")
            .expect("connect");
        stream
            .set_read_timeout(Some(Duration::from_secs(3)))
            .unwrap();
        KeepAlive { stream }
    }

    /// `GET /name` on the open connection; the body.
    fn name(&mut self) -> std::io::Result<String> {
        use std::io::{Read, Write};
        self.stream
            .write_all(b"GET /name HTTP/1.1\r\nHost: t\r\n\r\n")?;
        let mut buf = vec![0u8; 4096];
        let mut got = Vec::new();
        loop {
            let n = self.stream.read(&mut buf)?;
            if n == 0 {
                return Err(std::io::ErrorKind::UnexpectedEof.into());
            }
            got.extend_from_slice(&buf[..n]);
            let text = String::from_utf8_lossy(&got).to_string();
            if let Some((head, body)) = text.split_once("\r\n\r\n") {
                let len: usize = head
                    .lines()
                    .find_map(|l| {
                        l.to_ascii_lowercase()
                            .strip_prefix("content-length:")
                            .map(|v| v.trim().to_string())
                    })
                    .and_then(|v| v.parse().ok())
                    .unwrap_or(0);
                if body.len() >= len {
                    return Ok(body[..len].to_string());
                }
            }
        }
    }
}

#[ignore = "needs root"]
#[test]
fn restarting_the_agent_keeps_tasks_and_their_connections() {
    if !root_or_skip() {
        return;
    }
    let mut lab = Lab::new();
    // Default timings, as users run: a clean stop says goodbye and the managers wait their
    // restart grace (15 s); without it the node would be Down after 3 × 500 ms.
    lab.swarmd_args = String::new();
    lab.lab_ok(
        &["up"],
        &["--managers", "1", "--workers", "1", "--subnet", &lab.subnet],
    );
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
        "8080",
        "--constraint",
        "node.hostname==worker1",
        "whoami",
    ]);
    // And one on the default bridge (published ports put web on ingress instead).
    lab.swarmctl_ok(&[
        "service",
        "create",
        "--runtime",
        "process",
        "--name",
        "local",
        "--constraint",
        "node.hostname==worker1",
        "whoami",
    ]);
    let before = [lab.running("web", 2), lab.running("local", 1)].concat();
    let port = published_port(&lab, "web");
    let file = lab.file();
    let addr_of = |name: &str| {
        file["nodes"]
            .as_array()
            .unwrap()
            .iter()
            .find(|n| n["name"] == name)
            .and_then(|n| n["address"].as_str().map(str::to_string))
            .unwrap()
    };
    let worker1 = addr_of("worker1");
    let netns = lab.dir().join("netns");
    // One connection on worker1's bridge, one through the routing mesh from manager1 to
    // worker1's published port (worker1's own namespace balances it).
    let mut bridge = KeepAlive::open(&netns.join("worker1"), "172.17.0.2:8080");
    let mut mesh = KeepAlive::open(&netns.join("manager1"), &format!("{worker1}:{port}"));
    let (first_bridge, first_mesh) = (bridge.name().unwrap(), mesh.name().unwrap());
    let old_pid = lab.pids()[1];

    // `lab restart`: SIGTERM, wait for the exit, start swarmd again on its state dir.
    let out = lab.lab_ok(&["restart", "worker1"], &[]);
    assert!(out.contains("worker1"), "{out}");
    let new_pid = lab.pids()[1];
    assert_ne!(old_pid, new_pid, "a new swarmd runs: {out}");
    let ls = lab.ctl(&["lab", "ls"], Duration::from_secs(30)).stdout;
    assert!(
        ls.lines()
            .any(|l| l.starts_with(&lab.name) && l.ends_with("running")),
        "lab ls counts the restarted node: {ls}"
    );
    let again = [lab.running("web", 2), lab.running("local", 1)].concat();
    let ids = |v: &[TaskView]| {
        let mut x: Vec<(String, u64)> = v.iter().map(|t| (t.id.clone(), t.pid)).collect();
        x.sort();
        x
    };
    assert_eq!(
        ids(&again),
        ids(&before),
        "the tasks were kept (same ids, same processes), not replaced"
    );
    let all: serde_json::Value =
        serde_json::from_str(&lab.swarmctl_ok(&["service", "ps", "web", "--format", "json"]))
            .unwrap();
    assert_eq!(
        all.as_array().unwrap().len(),
        2,
        "no replacement task was made: {all}"
    );
    assert_eq!(
        bridge.name().expect("the bridge connection still works"),
        first_bridge
    );
    assert_eq!(
        mesh.name().expect("the mesh connection still works"),
        first_mesh
    );
    let node_ls = lab.swarmctl_ok(&["node", "ls"]);
    assert!(
        node_ls
            .lines()
            .all(|l| !l.contains("worker1") || l.contains("Ready")),
        "{node_ls}"
    );

    // The adopted tasks are still managed: scaling down stops one and removes its sandbox.
    lab.swarmctl_ok(&["service", "scale", "web=1"]);
    lab.running("web", 1);
    let netns_dir = lab.dir().join("nodes").join("worker1").join("netns");
    wait_for(
        "two task sandboxes left (web.1, local.1)",
        Duration::from_secs(30),
        || {
            let n = std::fs::read_dir(&netns_dir)
                .map(|rd| {
                    rd.flatten()
                        .filter(|e| e.file_name().to_string_lossy().starts_with("tk_"))
                        .count()
                })
                .unwrap_or(0);
            if n == 2 {
                Ok(())
            } else {
                Err(format!("{n} sandboxes"))
            }
        },
    );

    // A crash is still found at once: kill -9 (no goodbye) and the node is Down within a few
    // heartbeats, far sooner than the restart grace.
    let t0 = std::time::Instant::now();
    lab.lab_ok(&["stop", "worker1"], &["--kill"]);
    wait_for(
        "worker1 Down after kill -9",
        Duration::from_secs(10),
        || {
            let out = lab.swarmctl_ok(&["node", "ls"]);
            match out.lines().find(|l| l.contains("worker1")) {
                Some(l) if l.contains("Down") => Ok(()),
                l => Err(format!("{l:?}")),
            }
        },
    );
    println!("worker1 Down {:?} after kill -9", t0.elapsed());
}

/// The port the routing mesh published for `service`'s first port.
fn published_port(lab: &Lab, service: &str) -> u64 {
    let v: serde_json::Value = serde_json::from_str(
        &lab.swarmctl_ok(&["service", "inspect", service, "--format", "json"]),
    )
    .expect("json");
    let s = if v.is_array() { &v[0] } else { &v };
    s["ports"][0]["published"]
        .as_u64()
        .unwrap_or_else(|| panic!("no published port: {v}"))
}
