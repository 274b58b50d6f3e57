//! Service discovery on a `swarmctl lab` of 3 managers and 2 workers (root): the reference
//! article's section 3.4. From a task of a second service on `lp_net`, `web` is the VIP and
//! answers HTTP, `tasks.web` lists every replica, a task address resolves back to
//! `web.<slot>.<taskid>.lp_net`, which `ping` reaches; a task on another network sees none of it;
//! after `scale web=2`, `tasks.web` lists 2. Names outside the cluster go to the upstream the
//! lab names — a resolver this test runs on the lab's host endpoint, never this machine's.

use shoal_netlib::root::root_or_skip;
use shoal_tests::lab::Lab;
use shoal_tests::{wait_for, TaskView};
use std::collections::BTreeSet;
use std::net::{Ipv4Addr, UdpSocket};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// `sh -c SCRIPT` inside task `task` (through `swarmctl task exec`).
fn in_task(lab: &Lab, task: &str, script: &str) -> shoal_tests::Output {
    lab.swarmctl(&["task", "exec", task, "--", "sh", "-c", script])
}

/// `getent ahostsv4 NAME` inside `task`: the addresses (empty when it does not resolve).
fn resolve(lab: &Lab, task: &str, name: &str) -> BTreeSet<Ipv4Addr> {
    let out = in_task(lab, task, &format!("getent ahostsv4 {name} || true"));
    out.stdout
        .lines()
        .filter_map(|l| l.split_whitespace().next()?.parse().ok())
        .collect()
}

fn lp_net_addr(t: &TaskView) -> Ipv4Addr {
    t.addr_on("lp_net")
        .unwrap_or_else(|| panic!("{t:?} has no lp_net address"))
}

/// A resolver for one name (`outside.test.` → 192.0.2.80), NXDOMAIN for the rest, on `addr`,
/// until `stop` (at most `life`).
fn fake_upstream(
    addr: &str,
    life: Duration,
    stop: Arc<AtomicBool>,
) -> std::thread::JoinHandle<usize> {
    let sock = UdpSocket::bind(addr).unwrap_or_else(|e| panic!("bind {addr}: {e}"));
    sock.set_read_timeout(Some(Duration::from_millis(200)))
        .unwrap();
    std::thread::spawn(move || {
        let end = Instant::now() + life;
        let mut answered = 0;
        let mut buf = [0u8; 1500];
        while Instant::now() < end && !stop.load(Ordering::Relaxed) {
            let Ok((n, from)) = sock.recv_from(&mut buf) else {
                continue;
            };
            if n < 12 {
                continue;
            }
            // The question, as sent: header (12 bytes) then QNAME, QTYPE, QCLASS.
            let q = &buf[12..n];
            let Some(end_name) = q.iter().position(|b| *b == 0) else {
                continue;
            };
            let question = &q[..end_name + 5];
            let known = q[..end_name].eq_ignore_ascii_case(b"\x07outside\x04test");
            let mut r = Vec::with_capacity(64);
            r.extend_from_slice(&buf[..2]); // id
            r.extend_from_slice(&[0x81, if known { 0x80 } else { 0x83 }]); // QR RD RA, rcode
            r.extend_from_slice(&[0, 1, 0, u8::from(known), 0, 0, 0, 0]);
            r.extend_from_slice(question);
            if known {
                r.extend_from_slice(&[0xc0, 12, 0, 1, 0, 1, 0, 0, 0, 60, 0, 4, 192, 0, 2, 80]);
            }
            let _ = sock.send_to(&r, from);
            answered += 1;
        }
        answered
    })
}

#[ignore = "needs root"]
#[test]
fn service_discovery() {
    if !root_or_skip() {
        return;
    }
    let t0 = Instant::now();
    let mut lab = Lab::new();
    // The lab's host endpoint is .254 of its subnet: the upstream resolver listens there.
    let base = lab.subnet.trim_end_matches("0/24").to_string();
    let upstream = format!("{base}254:5353");
    lab.swarmd_args = format!("{} --dns-upstream {upstream}", lab.swarmd_args);
    lab.lab_ok(&["up"], &["--subnet", &lab.subnet]);
    let stop = Arc::new(AtomicBool::new(false));
    let resolver = fake_upstream(&upstream, Duration::from_secs(120), Arc::clone(&stop));

    lab.create_article_web();
    lab.swarmctl_ok(&["network", "create", "-d", "overlay", "other_net"]);
    lab.create_client();
    lab.swarmctl_ok(&[
        "service",
        "create",
        "--runtime",
        "process",
        "--name",
        "stranger",
        "--network",
        "other_net",
        "-d",
        "whoami",
        "--port",
        "9000",
    ]);
    let web = lab.running("web", 5);
    let client = lab.running("client", 1).remove(0).id;
    let stranger = lab.running("stranger", 1).remove(0).id;
    eprintln!("[{:>5.1}s] services running", t0.elapsed().as_secs_f64());

    let conf = in_task(&lab, &client, "cat /etc/resolv.conf");
    assert!(conf.stdout.contains("nameserver 127.0.0.11"), "{conf}");
    assert!(conf.stdout.contains("options ndots:0"), "{conf}");

    // `web` is the VIP, and answers HTTP.
    let svc: serde_json::Value =
        serde_json::from_str(&lab.swarmctl_ok(&["service", "inspect", "web", "--format", "json"]))
            .expect("JSON");
    let vips: BTreeSet<Ipv4Addr> = svc[0]["vips"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|v| v["addr"].as_str()?.split('/').next()?.parse().ok())
        .collect();
    let got = resolve(&lab, &client, "web");
    assert_eq!(got.len(), 1, "web -> {got:?}");
    assert!(vips.is_superset(&got), "web -> {got:?}, VIPs {vips:?}");
    let out = in_task(&lab, &client, "curl -s -m 3 web:8080/name");
    let ids: BTreeSet<&str> = web.iter().map(|t| t.id.as_str()).collect();
    assert!(ids.contains(out.stdout.trim()), "curl web:8080 -> {out}");
    let ping = in_task(&lab, &client, "ping -c 1 -W 2 web");
    let vip = got.iter().next().expect("a VIP").to_string();
    assert!(
        ping.stdout.contains(&format!("({vip})")),
        "ping web should resolve to the VIP: {ping}"
    );

    // `tasks.web`: every replica.
    let all: BTreeSet<Ipv4Addr> = web.iter().map(lp_net_addr).collect();
    assert_eq!(resolve(&lab, &client, "tasks.web"), all);

    // Reverse lookup, and the task's own name reaches it.
    let one = &web[0];
    let ip = lp_net_addr(one);
    let back = in_task(&lab, &client, &format!("getent hosts {ip}"));
    let fqdn = format!("{}.lp_net", one.name);
    assert!(back.stdout.contains(&fqdn), "reverse of {ip}: {back}");
    let ping = in_task(&lab, &client, &format!("ping -c 1 -W 2 {fqdn}"));
    assert!(
        ping.success() && ping.stdout.contains(&format!("({ip})")),
        "{ping}"
    );
    assert_eq!(resolve(&lab, &client, &one.name), BTreeSet::from([ip]));
    eprintln!(
        "[{:>5.1}s] names resolve from client",
        t0.elapsed().as_secs_f64()
    );

    // Scoped to the asking task's networks.
    assert!(resolve(&lab, &stranger, "web").is_empty());
    assert!(resolve(&lab, &stranger, "tasks.web").is_empty());
    assert_eq!(resolve(&lab, &stranger, "stranger").len(), 1);

    // Outside names: the lab's upstream; unknown everywhere: NXDOMAIN, quickly.
    assert_eq!(
        resolve(&lab, &client, "outside.test"),
        BTreeSet::from([Ipv4Addr::new(192, 0, 2, 80)])
    );
    let t = Instant::now();
    assert!(resolve(&lab, &client, "nowhere.test").is_empty());
    assert!(
        t.elapsed() < Duration::from_secs(5),
        "NXDOMAIN took {:?}",
        t.elapsed()
    );

    // Scale down: tasks.web follows at once.
    lab.swarmctl_ok(&["service", "scale", "web=2", "-d"]);
    let two = lab.running("web", 2);
    let want: BTreeSet<Ipv4Addr> = two.iter().map(lp_net_addr).collect();
    wait_for("tasks.web to list 2", Duration::from_secs(10), || {
        let got = resolve(&lab, &client, "tasks.web");
        if got == want {
            Ok(())
        } else {
            Err(format!("{got:?}"))
        }
    });
    eprintln!(
        "[{:>5.1}s] scaled: tasks.web follows",
        t0.elapsed().as_secs_f64()
    );
    stop.store(true, Ordering::Relaxed);
    assert!(resolver.join().unwrap_or(0) >= 2, "the upstream was asked");
}
