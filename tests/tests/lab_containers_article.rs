//! The reference article's sections 3.2–3.4 with containers, on a `swarmctl lab` of 3 managers
//! and 2 workers (root) whose registry serves the demo images: `web` (`shoal/whoami`, 5 replicas
//! on `lp_net`, publishing 8080) runs one replica on each node; the routing mesh answers on
//! `localhost` of every node, round robin over the 5; from inside a `shoal/busybox` container on
//! `lp_net`, `web` is the VIP (balanced the same way), `tasks.web` lists the replicas, a replica's
//! address resolves back to `web.<slot>.<taskid>.lp_net`, which reaches it; `task exec` shows the
//! image's own `/etc/os-release`; and `task exec -it` is a terminal into that container, the real
//! swarmctl on a pseudo-terminal in a manager that does not lead (as the article's
//! `docker exec -it`).
//!
//! Needs the demo images (`deploy/test.sh` builds them first, as root, with `deploy/images.sh`).
//! Traffic stays inside the lab: requests are made from the lab's nodes and containers.

use nix::pty::{openpty, Winsize};
use nix::sys::termios::{tcgetattr, LocalFlags};
use shoal_netlib::root::root_or_skip;
use shoal_tests::lab::{demo_images_or_skip, Lab};
use shoal_tests::{bin, kill_on_fail, wait_for, NetworkView, NodeView, Output, TaskView};
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::io::Write;
use std::net::Ipv4Addr;
use std::os::fd::AsRawFd;
use std::process::{Command, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// A subnet of its own (Lab::new picks among 198.19.10-209.0/24; lab_containers has .236,
/// lab_registry .240, the DNS/LB tests .250 and .251).
const SUBNET: &str = "198.19.232.0/24";
const NODES: [&str; 5] = ["manager1", "manager2", "manager3", "worker1", "worker2"];
const WAIT: Duration = Duration::from_secs(20);

/// Elapsed seconds since `t0`, for the timings printed along the way.
fn at(t0: Instant) -> f64 {
    t0.elapsed().as_secs_f64()
}

/// `sh -c SCRIPT` inside task `task` (through `swarmctl task exec` from manager1).
fn in_task(lab: &Lab, task: &str, script: &str) -> Output {
    lab.swarmctl(&["task", "exec", task, "--", "sh", "-c", script])
}

/// The addresses busybox's `nslookup NAME` prints inside `task` (empty when it does not
/// resolve). The server's own `Address: 127.0.0.11:53` has a port, and is left out.
fn nslookup(lab: &Lab, task: &str, name: &str) -> BTreeSet<Ipv4Addr> {
    let out = in_task(lab, task, &format!("nslookup {name} || true"));
    out.stdout
        .lines()
        .filter(|l| l.starts_with("Address"))
        .filter_map(|l| l.split_whitespace().nth(1)?.parse().ok())
        .collect()
}

fn lp_net_addr(t: &TaskView) -> Ipv4Addr {
    t.addr_on("lp_net")
        .unwrap_or_else(|| panic!("{t:?} has no lp_net address"))
}

/// Node id → host name.
fn hostnames(lab: &Lab) -> HashMap<String, String> {
    nodes(lab).into_iter().map(|n| (n.id, n.hostname)).collect()
}

fn nodes(lab: &Lab) -> Vec<NodeView> {
    let v: serde_json::Value =
        serde_json::from_str(&lab.swarmctl_ok(&["node", "ls", "--format", "json"])).expect("json");
    NodeView::list(&v)
}

/// `web`'s published port, from `service ls` (`*:PORT->8080/tcp`).
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

/// Every node's balancer of `net` lists exactly `tasks` for `web` (`network inspect --lb`).
fn wait_tables(lab: &Lab, net: &str, tasks: &[TaskView]) {
    let want: BTreeSet<String> = tasks.iter().map(|t| t.name.clone()).collect();
    wait_for(
        &format!("every balancer of {net} to list web's 5 replicas"),
        WAIT,
        || {
            let out = lab.swarmctl(&["network", "inspect", net, "--lb", "--format", "json"]);
            if !out.success() {
                return Err(out.to_string());
            }
            let v: serde_json::Value =
                serde_json::from_str(&out.stdout).map_err(|e| e.to_string())?;
            let mut have: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
            for n in v[0]["nodes"].as_array().into_iter().flatten() {
                let host = n["hostname"].as_str().unwrap_or_default().to_string();
                let backends = n["services"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter(|s| s["name"] == "web")
                    .flat_map(|s| s["backends"].as_array().cloned().unwrap_or_default())
                    .filter_map(|b| b["name"].as_str().map(str::to_string))
                    .collect();
                have.insert(host, backends);
            }
            match NODES.iter().find(|n| have.get(**n) != Some(&want)) {
                None => Ok(()),
                Some(n) => Err(format!("{n}: {:?}, want {want:?}", have.get(*n))),
            }
        },
    );
}

/// Strict round robin: `answers` (one per request, in order) name each of `ids` once.
fn assert_round_robin(what: &str, answers: &[String], ids: &BTreeSet<String>) {
    let got: BTreeSet<String> = answers.iter().cloned().collect();
    assert_eq!(
        answers.len(),
        ids.len(),
        "{what}: one answer per request: {answers:?}"
    );
    assert_eq!(&got, ids, "{what}: each replica once, in turn: {answers:?}");
}

/// Waits until what the terminal showed so far satisfies `done` (at most [`WAIT`]); on timeout,
/// fails with its last lines.
fn wait_screen(desc: &str, seen: &Mutex<String>, mut done: impl FnMut(&str) -> bool) {
    wait_for(desc, WAIT, || {
        let s = seen.lock().expect("lock").clone();
        if done(&s) {
            Ok(())
        } else {
            Err(last_lines(&s))
        }
    });
}

/// The last lines of the terminal, for messages.
fn last_lines(screen: &str) -> String {
    let lines: Vec<&str> = screen.lines().collect();
    let tail = lines[lines.len().saturating_sub(15)..].join("\n");
    format!("the terminal's last lines:\n{tail}")
}

#[ignore = "needs root"]
#[test]
fn article_sections_3_2_to_3_4_with_containers() {
    if !root_or_skip() {
        return;
    }
    let Some(images) = demo_images_or_skip() else {
        return;
    };
    let t0 = Instant::now();
    let mut lab = Lab::new();
    lab.subnet = SUBNET.into();
    lab.up_with_images(3, 2, &images);
    eprintln!("[{:>5.1}s] lab up", at(t0));

    // --- 3.2: the overlay network and 5 replicas of web on it, one per node ---
    lab.swarmctl_ok(&["network", "create", "-d", "overlay", "lp_net"]);
    lab.swarmctl_ok(&[
        "service",
        "create",
        "-d",
        "--publish=8080",
        "--replicas=5",
        "--name=web",
        "--network=lp_net",
        "shoal/whoami",
    ]);
    let web = lab.running("web", 5);
    let names = hostnames(&lab);
    let mut web_nodes: Vec<&str> = web.iter().map(|t| names[&t.node_id].as_str()).collect();
    web_nodes.sort();
    assert_eq!(web_nodes, NODES, "one replica on each node: {web:?}");
    let ls = lab.swarmctl_ok(&["service", "ls"]);
    let row = ls
        .lines()
        .find(|l| l.split_whitespace().nth(1) == Some("web"))
        .unwrap_or_else(|| panic!("no web in\n{ls}"));
    assert!(
        row.contains(" 5/5 ") && row.contains(" shoal/whoami "),
        "service ls: {row}"
    );
    let port = published_port(&lab);
    let ids: BTreeSet<String> = web.iter().map(|t| t.id.clone()).collect();
    eprintln!(
        "[{:>5.1}s] web: 5 replicas on {web_nodes:?}, published on {port}",
        at(t0)
    );

    // The image's own files: the demo images' /etc/os-release, not the host's.
    let host_release = std::fs::read_to_string("/etc/os-release").unwrap_or_default();
    let release = lab.swarmctl(&["task", "exec", "web.1", "--", "cat", "/etc/os-release"]);
    assert!(release.success(), "{release}");
    assert!(
        release.stdout.contains("NAME=\"Shoal busybox\""),
        "web.1's /etc/os-release is its image's: {release}"
    );
    assert_ne!(
        release.stdout.trim(),
        host_release.trim(),
        "web.1 shows the host's /etc/os-release"
    );

    // --- 3.3: the routing mesh on localhost of every node, round robin over the 5 ---
    wait_tables(&lab, "ingress", &web);
    for node in NODES {
        let script = format!(
            "for i in 1 2 3 4 5; do curl -s -m 3 http://localhost:{port}/name || printf FAIL; echo; done"
        );
        let out = lab.on_node(node, &["sh", "-c", &script]);
        assert!(out.success(), "{out}");
        let answers: Vec<String> = out.stdout.lines().map(str::to_string).collect();
        assert_round_robin(&format!("localhost:{port} on {node}"), &answers, &ids);
    }
    eprintln!(
        "[{:>5.1}s] the mesh answers on every node, round robin",
        at(t0)
    );

    // --- 3.4: a busybox container on lp_net finds web by name ---
    lab.swarmctl_ok(&[
        "service",
        "create",
        "-d",
        "--name",
        "client",
        "--network",
        "lp_net",
        "--constraint",
        "node.hostname==worker2",
        "shoal/busybox",
        "sleep",
        "100000",
    ]);
    let client = lab.running("client", 1).remove(0);
    wait_tables(&lab, "lp_net", &web);
    eprintln!("[{:>5.1}s] client running on worker2", at(t0));

    let conf = in_task(&lab, "client.1", "cat /etc/resolv.conf");
    assert!(conf.stdout.contains("nameserver 127.0.0.11"), "{conf}");

    // `web` is web's VIP on lp_net.
    let nets: serde_json::Value =
        serde_json::from_str(&lab.swarmctl_ok(&["network", "ls", "--format", "json"]))
            .expect("json");
    let lp_net = NetworkView::list(&nets)
        .into_iter()
        .find(|n| n.name == "lp_net")
        .unwrap_or_else(|| panic!("no lp_net in {nets}"));
    let svc: serde_json::Value =
        serde_json::from_str(&lab.swarmctl_ok(&["service", "inspect", "web", "--format", "json"]))
            .expect("json");
    let vip: Ipv4Addr = svc[0]["vips"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|v| v["network_id"] == lp_net.id.as_str())
        .and_then(|v| v["addr"].as_str()?.split('/').next()?.parse().ok())
        .unwrap_or_else(|| panic!("no VIP of web on lp_net ({}): {svc}", lp_net.id));
    let got = nslookup(&lab, "client.1", "web");
    assert_eq!(got, BTreeSet::from([vip]), "nslookup web: the VIP");
    let ping = in_task(&lab, "client.1", "ping -c 2 -W 2 web");
    assert!(
        ping.stdout.contains(&format!("PING web ({vip})")),
        "ping web goes to the VIP: {ping}"
    );
    // And the VIP is balanced round robin over the 5, from inside the container.
    let out = in_task(
        &lab,
        "client.1",
        "for i in 1 2 3 4 5; do timeout 5 wget -qO- web:8080/name || printf FAIL; echo; done",
    );
    assert!(out.success(), "{out}");
    let answers: Vec<String> = out.stdout.lines().map(str::to_string).collect();
    assert_round_robin("web:8080 from client.1", &answers, &ids);

    // `tasks.web`: every replica's address.
    let all: BTreeSet<Ipv4Addr> = web.iter().map(lp_net_addr).collect();
    assert_eq!(
        nslookup(&lab, "client.1", "tasks.web"),
        all,
        "nslookup tasks.web: the 5 replicas"
    );

    // Each replica's address resolves back to its long name, which reaches it.
    for t in &web {
        let ip = lp_net_addr(t);
        let fqdn = format!("{}.lp_net", t.name);
        let back = in_task(&lab, "client.1", &format!("nslookup {ip}"));
        assert!(
            back.stdout.contains(&format!("name = {fqdn}")),
            "nslookup {ip}: {fqdn}: {back}"
        );
        let ping = in_task(&lab, "client.1", &format!("ping -c 2 -W 2 {fqdn}"));
        assert!(
            ping.success() && ping.stdout.contains(&format!("PING {fqdn} ({ip})")),
            "{ping}"
        );
        let name = in_task(
            &lab,
            "client.1",
            &format!("timeout 5 wget -qO- http://{}:8080/name", t.name),
        );
        assert_eq!(
            name.stdout.trim(),
            t.id,
            "{} answers itself: {name}",
            t.name
        );
    }
    eprintln!(
        "[{:>5.1}s] web, tasks.web and the slot names resolve in client.1 (VIP {vip})",
        at(t0)
    );

    // --- `task exec -it`: a terminal into client.1 from a manager that does not lead ---
    let all_nodes = nodes(&lab);
    let from = all_nodes
        .iter()
        .find(|n| n.role == "manager" && n.manager_status != "Leader" && n.id != client.node_id)
        .unwrap_or_else(|| panic!("no follower manager: {all_nodes:?}"))
        .hostname
        .clone();
    let size = Winsize {
        ws_row: 30,
        ws_col: 100,
        ws_xpixel: 0,
        ws_ypixel: 0,
    };
    let pty = openpty(Some(&size), None).expect("openpty");
    let slave_path = std::fs::read_link(format!("/proc/self/fd/{}", pty.slave.as_raw_fd()))
        .expect("the pty's path");
    let slave = || Stdio::from(pty.slave.try_clone().expect("dup the pty"));
    let mut child = Command::new("setsid")
        .arg("--ctty")
        .arg(bin("swarmctl"))
        .args(["lab", "exec", &from, "--name", &lab.name, "--"])
        .args(["swarmctl", "task", "exec", "-it", "client.1", "sh"])
        .env("SHOAL_LAB_DIR", &lab.root)
        .env("NO_COLOR", "1")
        .env_remove("SWARM_HOST")
        .stdin(slave())
        .stdout(slave())
        .stderr(slave())
        .spawn()
        .expect("start swarmctl on the pty");
    let guard = kill_on_fail(child.id());
    let seen = shoal_tests::pty::capture(&pty.master);
    let mut master = std::fs::File::from(pty.master);
    let mut type_in = |s: &str| master.write_all(s.as_bytes()).expect("type in");
    let screen = || seen.lock().expect("lock").clone();

    wait_screen("client.1's shell prompt", &seen, |s| s.contains("# "));
    let local = tcgetattr(&pty.slave).expect("tcgetattr");
    assert!(
        !local
            .local_flags
            .intersects(LocalFlags::ICANON | LocalFlags::ECHO | LocalFlags::ISIG),
        "swarmctl puts its terminal in raw mode"
    );
    // The container's host name is its task id, and its files are its image's.
    type_in("echo h''ost=$(hostname); cat /etc/os-release\r");
    wait_screen("client.1's hostname and /etc/os-release", &seen, |s| {
        s.contains(&format!("host={}", client.id)) && s.contains("NAME=\"Shoal busybox\"")
    });
    // The article's `curl web:8080` from `docker exec -it`.
    type_in("wget -qO- web:8080/name; echo; echo d''one\r");
    wait_screen("a replica's answer to wget web:8080", &seen, |s| {
        s.contains("done") && ids.iter().any(|id| s.contains(id.as_str()))
    });
    // The window size, then a resize (SIGWINCH to swarmctl, which sends it on).
    type_in("stty size\r");
    wait_screen("`stty size` to print 30 100", &seen, |s| {
        s.contains("30 100")
    });
    let ok = Command::new("stty")
        .arg("-F")
        .arg(&slave_path)
        .args(["rows", "40", "cols", "120"])
        .status()
        .expect("stty");
    assert!(ok.success(), "stty rows 40 cols 120");
    wait_screen("`stty size` to print 40 120", &seen, |s| {
        type_in("stty size\r");
        std::thread::sleep(Duration::from_millis(200));
        s.contains("40 120")
    });
    // Ctrl-C interrupts the container's foreground job, not swarmctl.
    type_in("echo st''arted; sleep 100\r");
    wait_screen("the remote job to start", &seen, |s| s.contains("started"));
    type_in("\x03");
    type_in("echo af''ter\r");
    wait_screen("the shell to be back after Ctrl-C", &seen, |s| {
        s.contains("after")
    });
    assert!(
        child.try_wait().expect("try_wait").is_none(),
        "swarmctl survives Ctrl-C: {}",
        screen()
    );
    // The shell's exit code is swarmctl's.
    type_in("exit 3\r");
    let mut status = None;
    wait_for("swarmctl to exit", WAIT, || {
        status = child.try_wait().expect("try_wait");
        match status {
            Some(_) => Ok(()),
            None => Err(last_lines(&screen())),
        }
    });
    assert_eq!(
        status.and_then(|s| s.code()),
        Some(3),
        "the remote exit code: {}",
        screen()
    );
    drop(guard);
    let after = tcgetattr(&pty.slave).expect("tcgetattr");
    assert!(
        after
            .local_flags
            .contains(LocalFlags::ICANON | LocalFlags::ECHO | LocalFlags::ISIG),
        "swarmctl restores its terminal"
    );
    let still = lab.running("client", 1);
    assert_eq!(
        still[0].id, client.id,
        "the session leaves client.1 running"
    );
    eprintln!(
        "[{:>5.1}s] task exec -it client.1 from {from}: done",
        at(t0)
    );
}
