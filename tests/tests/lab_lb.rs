//! Service load balancing on a `swarmctl lab` of 3 managers and 2 workers (root): the
//! reference article's section 3.3. The routing mesh answers a published port on every node
//! (`localhost` included) with strict round robin over the replicas; a task of another service
//! reaches the service's VIP, balanced the same way in its own namespace (the backend sees the
//! client's address); `network inspect --lb` shows each node's
//! balancer with counters that match; after scaling and after a worker dies, every balancer
//! lists exactly the running tasks and no request goes to a missing one.

use shoal_netlib::root::root_or_skip;
use shoal_tests::lab::Lab;
use shoal_tests::{wait_for, TaskView};
use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

const NODES: [&str; 5] = ["manager1", "manager2", "manager3", "worker1", "worker2"];

/// `n` requests to `http://ADDR/name` from `node`, one after the other, in one exec: the task
/// ids that answered, in order ("FAIL" for a request that got no answer).
fn names_from(lab: &Lab, node: &str, addr: &str, n: usize) -> Vec<String> {
    let script = format!(
        "for i in $(seq {n}); do curl -s -m 3 http://{addr}/name || printf FAIL; echo; done"
    );
    let out = lab.on_node(node, &["sh", "-c", &script]);
    assert!(out.success(), "{out}");
    out.stdout.lines().map(str::to_string).collect()
}

/// The same from inside task `task` (through `swarmctl task exec`).
fn names_from_task(lab: &Lab, task: &str, addr: &str, n: usize) -> Vec<String> {
    let script = format!(
        "for i in $(seq {n}); do curl -s -m 3 http://{addr}/name || printf FAIL; echo; done"
    );
    let out = lab.swarmctl(&["task", "exec", task, "--", "sh", "-c", &script]);
    assert!(out.success(), "{out}");
    out.stdout.lines().map(str::to_string).collect()
}

/// Strict round robin over `tasks`: every window of `tasks.len()` consecutive answers names each
/// task once.
fn assert_round_robin(what: &str, answers: &[String], tasks: &[TaskView]) {
    let ids: BTreeSet<&str> = tasks.iter().map(|t| t.id.as_str()).collect();
    for a in answers {
        assert!(
            ids.contains(a.as_str()),
            "{what}: {a:?} is not a running task: {answers:?}"
        );
    }
    for w in answers.windows(tasks.len()) {
        let distinct: BTreeSet<&String> = w.iter().collect();
        assert_eq!(
            distinct.len(),
            tasks.len(),
            "{what}: not round robin: {answers:?}"
        );
    }
}

fn published_port(lab: &Lab) -> u16 {
    let ls = lab.swarmctl_ok(&["service", "ls"]);
    let port = ls
        .split_whitespace()
        .find_map(|w| {
            w.strip_prefix("*:")?
                .strip_suffix("->8080/tcp")?
                .parse()
                .ok()
        })
        .unwrap_or_else(|| panic!("no *:PORT->8080/tcp in\n{ls}"));
    assert!((30000..=32767).contains(&port), "{ls}");
    port
}

/// `network inspect NET --lb --format json`: node → backend name → connections, for the
/// service with `fwmark`-less name `service`.
fn balancers(lab: &Lab, net: &str, service: &str) -> BTreeMap<String, BTreeMap<String, u64>> {
    // Retried: under load a leader election can make one call fail ("no raft leader").
    let out = wait_for("network inspect --lb", Duration::from_secs(20), || {
        let out = lab.swarmctl(&["network", "inspect", net, "--lb", "--format", "json"]);
        if out.success() {
            Ok(out.stdout)
        } else {
            Err(out.to_string())
        }
    });
    let v: serde_json::Value = serde_json::from_str(&out).expect("JSON");
    let mut map = BTreeMap::new();
    for n in v[0]["nodes"].as_array().into_iter().flatten() {
        let host = n["hostname"].as_str().unwrap_or_default().to_string();
        let mut backends = BTreeMap::new();
        for s in n["services"].as_array().into_iter().flatten() {
            if s["name"] != service {
                continue;
            }
            assert_eq!(s["scheduler"], "rr", "{out}");
            assert!(s["fwmark"].as_u64().unwrap_or(0) >= 256, "{out}");
            for b in s["backends"].as_array().into_iter().flatten() {
                assert_eq!(b["forward"], "Masq", "{out}");
                backends.insert(
                    b["name"].as_str().unwrap_or_default().to_string(),
                    b["connections"].as_u64().unwrap_or(0),
                );
            }
        }
        map.insert(host, backends);
    }
    map
}

/// Waits until the balancers of `net` on every node in `nodes` list exactly `tasks`.
fn wait_tables(lab: &Lab, net: &str, nodes: &[&str], tasks: &[TaskView]) {
    let want: BTreeSet<String> = tasks.iter().map(|t| t.name.clone()).collect();
    wait_for(
        &format!("every balancer of {net} to list exactly the running tasks"),
        Duration::from_secs(20),
        || {
            let tables = balancers(lab, net, "web");
            for node in nodes {
                let have: BTreeSet<String> = tables
                    .get(*node)
                    .map(|b| b.keys().cloned().collect())
                    .unwrap_or_default();
                if have != want {
                    return Err(format!("{node}: {have:?}, want {want:?}"));
                }
            }
            Ok(())
        },
    );
}

#[ignore = "needs root"]
#[test]
fn vips_and_the_routing_mesh() {
    if !root_or_skip() {
        return;
    }
    let t0 = Instant::now();
    let lab = Lab::new();
    lab.lab_ok(&["up"], &["--subnet", &lab.subnet]);
    let file = lab.file();
    let addr = |i: usize| {
        file["nodes"][i]["address"]
            .as_str()
            .expect("address")
            .to_string()
    };

    lab.create_article_web();
    let web = lab.running("web", 5);
    let port = published_port(&lab);
    wait_tables(&lab, "ingress", &NODES, &web);
    eprintln!(
        "[{:>5.1}s] web runs, published on {port}",
        t0.elapsed().as_secs_f64()
    );

    // 1. The mesh: from every node, localhost and another node's address.
    for (i, node) in NODES.iter().enumerate() {
        let local = names_from(&lab, node, &format!("localhost:{port}"), 5);
        assert_round_robin(&format!("{node} → localhost"), &local, &web);
        let other = format!("{}:{port}", addr((i + 1) % NODES.len()));
        let remote = names_from(&lab, node, &other, 10);
        assert_round_robin(&format!("{node} → {other}"), &remote, &web);
    }
    eprintln!(
        "[{:>5.1}s] mesh: strict round robin from every node",
        t0.elapsed().as_secs_f64()
    );

    // 2. The VIP, from a task of a second service on lp_net; counters match what was sent.
    lab.create_client();
    let client = lab.running("client", 1).remove(0);
    let svc: serde_json::Value =
        serde_json::from_str(&lab.swarmctl_ok(&["service", "inspect", "web", "--format", "json"]))
            .expect("JSON");
    let vip = svc[0]["vips"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|v| v["addr"].as_str())
        .map(|a| a.split('/').next().unwrap_or_default().to_string())
        .collect::<Vec<_>>();
    let nodes: serde_json::Value =
        serde_json::from_str(&lab.swarmctl_ok(&["node", "ls", "--format", "json"])).expect("JSON");
    let client_node = nodes
        .as_array()
        .into_iter()
        .flatten()
        .find(|n| n["id"] == client.node_id)
        .and_then(|n| n["hostname"].as_str())
        .expect("client's node")
        .to_string();
    let before = balancers(&lab, "lp_net", "web");
    // The VIP on lp_net: the one in the client's subnet there (the other is on ingress).
    let client_ip = client.addr_on("lp_net").expect("client on lp_net").octets();
    let vip = vip
        .iter()
        .find(|v| {
            v.parse::<std::net::Ipv4Addr>()
                .is_ok_and(|a| a.octets()[..3] == client_ip[..3])
        })
        .unwrap_or_else(|| panic!("no VIP of web on lp_net: {vip:?}"));
    let answers = names_from_task(&lab, &client.id, &format!("{vip}:8080"), 10);
    assert_round_robin("client → web's VIP", &answers, &web);
    // Balanced in the client's own namespace, without SNAT: the backend sees the client.
    let client_addr = client.addr_on("lp_net").expect("client on lp_net");
    let out = lab.swarmctl(&[
        "task",
        "exec",
        &client.id,
        "--",
        "curl",
        "-s",
        "-m",
        "3",
        &format!("http://{vip}:8080/"),
    ]);
    assert!(
        out.stdout.contains(&format!("RemoteAddr: {client_addr}:")),
        "the VIP's backend should see the client's own address {client_addr}: {out}"
    );
    let after = balancers(&lab, "lp_net", "web");
    let delta: BTreeMap<&String, u64> = after[&client_node]
        .iter()
        .map(|(k, v)| (k, v - before[&client_node].get(k).copied().unwrap_or(0)))
        .collect();
    assert_eq!(delta.len(), 5, "{after:?}");
    let total: u64 = delta.values().sum();
    assert_eq!(total, 11, "10 requests and the RemoteAddr one: {delta:?}");
    for (name, d) in &delta {
        assert!(
            (2..=3).contains(d),
            "{name}: 11 requests over 5 backends, round robin, count 2 or 3 each: {delta:?}"
        );
    }
    let text = lab.swarmctl_ok(&[
        "network",
        "inspect",
        "lp_net",
        "--lb",
        "--node",
        &client_node,
    ]);
    assert!(text.contains(" rr  (web VIP "), "{text}");
    assert!(
        text.lines().filter(|l| l.contains("Masq")).count() >= 5,
        "{text}"
    );
    eprintln!(
        "[{:>5.1}s] VIP: round robin, counters match",
        t0.elapsed().as_secs_f64()
    );

    // 3. Scale down and up: every balancer follows.
    lab.swarmctl_ok(&["service", "scale", "web=2", "-d"]);
    let two = lab.running("web", 2);
    wait_tables(&lab, "ingress", &NODES, &two);
    wait_tables(&lab, "lp_net", &[&client_node], &two);
    assert_round_robin(
        "after scale 2",
        &names_from(&lab, "manager1", &format!("localhost:{port}"), 6),
        &two,
    );
    lab.swarmctl_ok(&["service", "scale", "web=5", "-d"]);
    let five = lab.running("web", 5);
    wait_tables(&lab, "ingress", &NODES, &five);
    assert_round_robin(
        "after scale 5",
        &names_from(&lab, "manager2", &format!("localhost:{port}"), 10),
        &five,
    );
    eprintln!(
        "[{:>5.1}s] scaled 2 and back to 5",
        t0.elapsed().as_secs_f64()
    );

    // kill -9 worker2's swarmd: once it is Down, after one heartbeat period, no request goes to
    // its tasks (they still run: tasks outlive swarmd), and its tasks are replaced.
    let pids = lab.pids();
    let victim = pids[4];
    let worker2 = nodes
        .as_array()
        .into_iter()
        .flatten()
        .find(|n| n["hostname"] == "worker2")
        .and_then(|n| n["id"].as_str())
        .expect("worker2")
        .to_string();
    let on_victim: BTreeSet<String> = five
        .iter()
        .filter(|t| t.node_id == worker2)
        .map(|t| t.id.clone())
        .collect();
    // SAFETY of the kill: a pid of a swarmd this lab started (lab.json), by exact pid.
    let status = std::process::Command::new("kill")
        .args(["-9", &victim.to_string()])
        .status()
        .expect("kill");
    assert!(status.success());
    wait_for("worker2 to be Down", Duration::from_secs(20), || {
        let v: serde_json::Value =
            serde_json::from_str(&lab.swarmctl_ok(&["node", "ls", "--format", "json"]))
                .map_err(|e| e.to_string())?;
        let down = v
            .as_array()
            .into_iter()
            .flatten()
            .any(|n| n["hostname"] == "worker2" && n["state"] == "down");
        if down {
            Ok(())
        } else {
            Err(format!("{v}"))
        }
    });
    // One heartbeat period of the lab's timings (250 ms), then every request must avoid
    // worker2's tasks.
    std::thread::sleep(Duration::from_millis(250));
    for node in ["manager1", "worker1"] {
        let answers = names_from(&lab, node, &format!("localhost:{port}"), 10);
        for a in &answers {
            assert!(
                a != "FAIL" && !on_victim.contains(a),
                "{node}: {a:?} after worker2 went down: {answers:?}"
            );
        }
    }
    // The replacements: 5 tasks meant to run and running, none on worker2.
    let replaced = wait_for("5 replicas off worker2", Duration::from_secs(60), || {
        let v: serde_json::Value =
            serde_json::from_str(&lab.swarmctl_ok(&["service", "ps", "web", "--format", "json"]))
                .map_err(|e| e.to_string())?;
        let live: Vec<TaskView> = TaskView::list(&v)
            .into_iter()
            .filter(|t| t.state == "running" && t.desired == "running" && t.node_id != worker2)
            .collect();
        if live.len() == 5 {
            Ok(live)
        } else {
            Err(format!("{live:?}"))
        }
    });
    let live = ["manager1", "manager2", "manager3", "worker1"];
    wait_tables(&lab, "ingress", &live, &replaced);
    assert_round_robin(
        "after worker2 died",
        &names_from(&lab, "manager3", &format!("localhost:{port}"), 10),
        &replaced,
    );
    eprintln!(
        "[{:>5.1}s] worker2 killed: balancers follow",
        t0.elapsed().as_secs_f64()
    );
}
