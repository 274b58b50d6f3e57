//! `swarmd --metrics-addr` on a `swarmctl lab` of one manager and one worker (root): every
//! node's page passes `promtool check metrics` (Debian's `prometheus`; `deploy/deps.sh`
//! installs it), before and after traffic; requests through a service's VIP by name and a
//! reverse lookup from a task raise the balancer's per-backend connections and bytes (both
//! directions) and the DNS counters
//! of the task's node, and the service's creation raises the manager's raft and dispatcher
//! figures. `lab up` gives every node its `--metrics-addr` (its underlay address, port 9323),
//! and `swarmctl lab ui` turns the balancers' counters into a request rate per service: with
//! traffic running, its snapshot shows a non-zero rate for the service.

use shoal_netlib::root::root_or_skip;
use shoal_tests::lab::Lab;
use shoal_tests::{bin, kill_on_fail, run, wait_for};
use std::io::BufRead;
use std::process::{Command, Stdio};
use std::time::Duration;

const NODES: [&str; 2] = ["manager1", "worker1"];
const PORT: u16 = 9323;

/// `GET /metrics` of `node` at the address `lab up` gave it (its own), from inside its
/// namespace.
fn scrape(lab: &Lab, node: &str) -> String {
    let file = lab.file();
    let addr = file["nodes"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|n| n["name"] == node)
        .and_then(|n| n["address"].as_str())
        .unwrap_or_else(|| panic!("no node {node} in lab.json: {file}"))
        .to_string();
    let url = format!("http://{addr}:{PORT}/metrics");
    let out = lab.on_node(node, &["curl", "-sSf", "-m", "10", &url]);
    assert!(out.success(), "scrape {node}: {out}");
    out.stdout
}

/// `promtool check metrics` on `page`: any problem (a format error or a lint warning) fails.
fn promtool(lab: &Lab, node: &str, page: &str) {
    let file = lab.root.join(format!("{node}.prom"));
    std::fs::write(&file, page).expect("write the page");
    let script = format!("promtool check metrics < '{}'", file.display());
    let out = run(
        Command::new("sh").args(["-c", &script]),
        Duration::from_secs(30),
    );
    assert!(
        out.success() && out.stdout.trim().is_empty() && out.stderr.trim().is_empty(),
        "promtool check metrics on {node}'s page (is Debian's `prometheus` installed? \
         deploy/deps.sh installs it): {out}\n--- page ---\n{page}"
    );
    let _ = std::fs::remove_file(&file);
}

/// The sum of the samples of `name` whose labels include every `k="v"` of `labels`.
fn value(page: &str, name: &str, labels: &[(&str, &str)]) -> f64 {
    page.lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| l.rsplit_once(' '))
        .filter(|(series, _)| {
            let (n, rest) = series.split_once('{').unwrap_or((series, ""));
            n == name
                && labels
                    .iter()
                    .all(|(k, v)| rest.contains(&format!("{k}=\"{v}\"")))
        })
        .filter_map(|(_, v)| v.parse::<f64>().ok())
        .sum()
}

/// How many samples of `name` have every `k="v"` of `labels`.
fn series(page: &str, name: &str, labels: &[(&str, &str)]) -> usize {
    page.lines()
        .filter(|l| !l.starts_with('#'))
        .filter(|l| {
            let series = l.rsplit_once(' ').map_or("", |(s, _)| s);
            let (n, rest) = series.split_once('{').unwrap_or((series, ""));
            n == name
                && labels
                    .iter()
                    .all(|(k, v)| rest.contains(&format!("{k}=\"{v}\"")))
        })
        .count()
}

#[ignore = "needs root"]
#[test]
fn metrics_pass_promtool_and_rise_with_traffic() {
    if !root_or_skip() {
        return;
    }
    let mut lab = Lab::new();
    lab.subnet = "198.19.71.0/24".into();
    lab.lab_ok(
        &["up"],
        &["--managers", "1", "--workers", "1", "--subnet", &lab.subnet],
    );

    // 1. Every node's page is valid as it starts; the manager's has raft and the dispatcher.
    let mut first = Vec::new();
    for node in NODES {
        let page = scrape(&lab, node);
        promtool(&lab, node, &page);
        assert!(
            value(&page, "process_resident_memory_bytes", &[]) > 0.0,
            "{page}"
        );
        assert!(value(&page, "process_open_fds", &[]) > 0.0, "{page}");
        first.push(page);
    }
    let m0 = &first[0];
    assert_eq!(value(m0, "shoal_raft_is_leader", &[]), 1.0, "{m0}");
    assert!(value(m0, "shoal_raft_term", &[]) >= 1.0, "{m0}");
    assert_eq!(value(&first[1], "shoal_manager_running", &[]), 0.0);
    wait_for("2 agent sessions", Duration::from_secs(20), || {
        let p = scrape(&lab, "manager1");
        let n = value(&p, "shoal_dispatcher_sessions", &[]);
        (n == 2.0).then_some(()).ok_or(format!("{n} sessions"))
    });

    // 2. A service with a VIP on an overlay, and a client task on the same network.
    lab.create_article_web();
    lab.create_client();
    let web = lab.running("web", 5);
    let client = lab.running("client", 1).remove(0);
    let client_node = if client.node_id == node_id(&lab, "manager1") {
        "manager1"
    } else {
        "worker1"
    };
    // The client's node balances to all five tasks of web once its table has them.
    let before = wait_for(
        "the client's node to balance lp_net's web over 5 backends",
        Duration::from_secs(30),
        || {
            let p = scrape(&lab, client_node);
            let labels = [("network", "lp_net"), ("service", "web")];
            let n = series(&p, "shoal_lb_backend_connections_total", &labels);
            (n == 5).then_some(p).ok_or(format!("{n} backends"))
        },
    );
    let m1 = scrape(&lab, "manager1");

    // 3. Traffic: 10 requests to web's VIP by name, and a reverse lookup of a task of web (not
    // the client's own address: that one is in its /etc/hosts).
    let script =
        "for i in $(seq 10); do curl -s -m 3 http://web:8080/name || printf FAIL; echo; done";
    let out = lab.swarmctl(&["task", "exec", &client.id, "--", "sh", "-c", script]);
    assert!(out.success(), "{out}");
    assert!(!out.stdout.contains("FAIL"), "{out}");
    let ip = web[0].addr_on("lp_net").expect("web on lp_net").to_string();
    let out = lab.swarmctl(&["task", "exec", &client.id, "--", "getent", "hosts", &ip]);
    assert!(out.success(), "{out}");

    // 4. The counters rose.
    let after = scrape(&lab, client_node);
    promtool(&lab, client_node, &after);
    let conns = |p: &str| {
        let labels = [("network", "lp_net"), ("service", "web")];
        value(p, "shoal_lb_backend_connections_total", &labels)
    };
    assert!(
        conns(&after) - conns(&before) >= 10.0,
        "10 connections through the VIP: before {}, after {}\n{after}",
        conns(&before),
        conns(&after)
    );
    let rose = |name: &str, labels: &[(&str, &str)], by: f64| {
        let (b, a) = (value(&before, name, labels), value(&after, name, labels));
        assert!(a - b >= by, "{name}{labels:?}: {b} → {a}\n{after}");
    };
    for direction in ["in", "out"] {
        let labels = [
            ("network", "lp_net"),
            ("service", "web"),
            ("direction", direction),
        ];
        rose("shoal_lb_backend_bytes_total", &labels, 1.0);
    }
    rose("shoal_dns_queries_total", &[("type", "A")], 1.0);
    rose("shoal_dns_queries_total", &[("type", "PTR")], 1.0);
    rose(
        "shoal_dns_responses_total",
        &[("source", "local"), ("rcode", "noerror")],
        2.0,
    );
    rose(
        "shoal_dns_request_duration_seconds_count",
        &[("source", "local")],
        2.0,
    );
    let m2 = scrape(&lab, "manager1");
    promtool(&lab, "manager1", &m2);
    for name in [
        "shoal_raft_applied_index",
        "shoal_raft_last_log_index",
        "shoal_raft_write_duration_seconds_count",
    ] {
        assert!(
            value(&m2, name, &[]) > value(m0, name, &[]),
            "{name} did not rise\n{m2}"
        );
    }
    assert!(
        value(&m2, "shoal_raft_commit_index", &[]) >= value(&m1, "shoal_raft_applied_index", &[])
    );
    assert!(
        value(&m2, "shoal_dispatcher_heartbeats_total", &[])
            > value(m0, "shoal_dispatcher_heartbeats_total", &[])
    );
    assert!(value(&m2, "shoal_dispatcher_assignment_message_bytes_count", &[]) > 0.0);
    assert_eq!(
        value(
            &m2,
            "shoal_tasks",
            &[("service", "web"), ("state", "Running")]
        ),
        5.0,
        "{m2}"
    );
    let worker = scrape(&lab, "worker1");
    promtool(&lab, "worker1", &worker);

    // 5. `lab ui` shows web's request rate: traffic in bursts until its snapshot has one above
    // zero (it samples every node's counters every 2 s and derives the rate from two samples).
    let mut ui = Command::new(bin("swarmctl"))
        .args(["lab", "ui", "--name", &lab.name, "--listen", "127.0.0.1:0"])
        .env("SHOAL_LAB_DIR", &lab.root)
        .env("NO_COLOR", "1")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("start swarmctl lab ui");
    let _guard = kill_on_fail(ui.id());
    let stdout = ui.stdout.take().expect("piped stdout");
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in std::io::BufReader::new(stdout)
            .lines()
            .map_while(Result::ok)
        {
            if tx.send(line).is_err() {
                return;
            }
        }
    });
    let url = loop {
        let line = rx
            .recv_timeout(Duration::from_secs(30))
            .expect("lab ui printed its address");
        if let Some((_, u)) = line.split_once("http://") {
            break format!("http://{u}");
        }
    };
    let (base, token) = url.split_once("/?token=").expect("a token in the address");
    let cookie = format!("shoal_lab={token}");
    let api = format!("{base}/api/lab");
    let web_rate = wait_for(
        "lab ui to show a request rate for web",
        Duration::from_secs(90),
        || {
            let burst =
                "for i in $(seq 10); do curl -s -m 3 -o /dev/null http://web:8080/name; done";
            let out = lab.swarmctl(&["task", "exec", &client.id, "--", "sh", "-c", burst]);
            if !out.success() {
                return Err(format!("traffic: {out}"));
            }
            let out = run(
                Command::new("curl").args(["-sSf", "-m", "10", "-b", &cookie, &api]),
                Duration::from_secs(15),
            );
            let v: serde_json::Value = serde_json::from_str(&out.stdout)
                .map_err(|e| format!("GET /api/lab: {e}: {out}"))?;
            let web = v["services"]
                .as_array()
                .into_iter()
                .flatten()
                .find(|s| s["name"] == "web")
                .cloned()
                .unwrap_or_default();
            match web["rate"].as_f64() {
                Some(r) if r > 0.0 => Ok((r, v)),
                _ => Err(format!("web: {web}; metrics: {}", v["metrics"])),
            }
        },
    );
    let (rate, snap) = web_rate;
    eprintln!("lab ui: web at {rate} connections/s");
    assert!(rate.is_finite(), "{snap}");
    assert_eq!(snap["metrics"]["serving"], 2, "{snap}");
    assert!(snap["services"]
        .as_array()
        .into_iter()
        .flatten()
        .all(|s| s["rate"].as_f64().is_some_and(|r| r >= 0.0)));
    let _ = ui.kill();
    let _ = ui.wait();
}

/// The node id of lab node `name` (its hostname).
fn node_id(lab: &Lab, name: &str) -> String {
    let v: serde_json::Value =
        serde_json::from_str(&lab.swarmctl_ok(&["node", "ls", "--format", "json"])).expect("JSON");
    v.as_array()
        .into_iter()
        .flatten()
        .find(|n| n["hostname"] == name)
        .and_then(|n| n["id"].as_str())
        .unwrap_or_else(|| panic!("no node {name}: {v}"))
        .to_string()
}
