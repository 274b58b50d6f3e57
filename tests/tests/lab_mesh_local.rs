//! `--publish …,traffic=local` on a `swarmctl lab` of 1 manager and 2 workers (root), issue 22:
//! a node answers the port with its own tasks only and without source NAT, so `whoami` shows
//! the client's own address as `RemoteAddr`; a node with no task of the service refuses the
//! port (it never forwards it to another node); the same service published without the option
//! still goes through the routing mesh and sees the mesh's address (behaviour unchanged).

use shoal_netlib::root::root_or_skip;
use shoal_tests::lab::Lab;
use shoal_tests::wait_for;
use std::time::{Duration, Instant};

/// The lab subnet this test's labs use (this helper's allotment).
const SUBNET: &str = "198.19.64.0/24";
const LOCAL_PORT: &str = "30480";
const CLUSTER_PORT: &str = "30481";

/// `curl http://ADDR:PORT/` from `node`, bounded by curl's own 3 s: the exit code and the
/// `RemoteAddr` whoami answered with (its address part).
fn remote_addr(lab: &Lab, node: &str, addr: &str, port: &str) -> (i32, Option<String>) {
    let url = format!("http://{addr}:{port}/");
    let out = lab.on_node(node, &["curl", "-s", "-m", "3", &url]);
    let remote = out.stdout.lines().find_map(|l| {
        let a = l.strip_prefix("RemoteAddr: ")?;
        Some(a.rsplit_once(':').map_or(a, |(ip, _)| ip).to_string())
    });
    (out.code, remote)
}

#[ignore = "needs root"]
#[test]
fn traffic_local_keeps_the_clients_address() {
    if !root_or_skip() {
        return;
    }
    let t0 = Instant::now();
    let at = || t0.elapsed().as_secs_f64();
    let mut lab = Lab::new();
    lab.subnet = SUBNET.to_string();
    lab.lab_ok(
        &["up"],
        &["--subnet", &lab.subnet, "--managers", "1", "--workers", "2"],
    );
    let file = lab.file();
    let addr_of = |host: &str| -> String {
        file["nodes"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|n| n["name"] == host || n["hostname"] == host)
            .and_then(|n| n["address"].as_str())
            .unwrap_or_else(|| panic!("no address of {host} in {file}"))
            .to_string()
    };
    let (manager1, worker1, worker2) =
        (addr_of("manager1"), addr_of("worker1"), addr_of("worker2"));

    // The same whoami twice, both pinned to worker1: with traffic=local, and without.
    for (name, publish) in [
        (
            "near",
            format!("published={LOCAL_PORT},target=8080,mode=ingress,traffic=local"),
        ),
        ("far", format!("published={CLUSTER_PORT},target=8080")),
    ] {
        lab.swarmctl_ok(&[
            "service",
            "create",
            "--runtime",
            "process",
            "--name",
            name,
            "--constraint",
            "node.hostname==worker1",
            "--publish",
            &publish,
            "-d",
            "whoami",
        ]);
    }
    lab.running("near", 1);
    lab.running("far", 1);
    let inspect = lab.swarmctl_ok(&["service", "inspect", "near", "--format", "json"]);
    let v: serde_json::Value = serde_json::from_str(&inspect).expect("JSON");
    assert_eq!(
        v[0]["spec"]["ports"][0]["traffic"], "local",
        "service inspect shows the option: {inspect}"
    );
    let pretty = lab.swarmctl_ok(&["service", "inspect", "near", "--pretty"]);
    assert!(pretty.contains("(local)"), "{pretty}");
    eprintln!("[{:>5.1}s] near and far run on worker1", at());

    // Once worker2 answers the cluster port (its mesh has the table with both services)…
    wait_for(
        "far through worker2's mesh",
        Duration::from_secs(30),
        || match remote_addr(&lab, "manager1", &worker2, CLUSTER_PORT) {
            (0, Some(r)) => Ok(r),
            other => Err(format!("{other:?}")),
        },
    );
    // …through the node that runs the task: the client's own address.
    let seen = wait_for(
        "near through worker1",
        Duration::from_secs(30),
        || match remote_addr(&lab, "manager1", &worker1, LOCAL_PORT) {
            (0, Some(r)) => Ok(r),
            other => Err(format!("{other:?}")),
        },
    );
    assert_eq!(seen, manager1, "traffic=local: whoami sees the client");
    let (code, r) = remote_addr(&lab, "worker2", &worker1, LOCAL_PORT);
    assert_eq!((code, r.as_deref()), (0, Some(worker2.as_str())));
    // From the node itself (`localhost`) too.
    let (code, r) = remote_addr(&lab, "worker1", "localhost", LOCAL_PORT);
    assert!(
        code == 0 && r.is_some(),
        "worker1 → localhost: {code} {r:?}"
    );
    eprintln!("[{:>5.1}s] near sees the client's address", at());

    // Through a node without a task: refused (TCP reset), never forwarded.
    for (client, node) in [("manager1", &worker2), ("worker1", &manager1)] {
        let (code, r) = remote_addr(&lab, client, node, LOCAL_PORT);
        assert_eq!(r, None, "{client} → {node}: answered");
        assert_eq!(
            code, 7,
            "{client} → {node}: curl exit {code}, want 7 (refused)"
        );
    }
    eprintln!("[{:>5.1}s] nodes without a task refuse it", at());

    // Without the option: through any node, the mesh's address, not the client's.
    for node in [&manager1, &worker1, &worker2] {
        let (code, r) = remote_addr(&lab, "manager1", node, CLUSTER_PORT);
        assert_eq!(code, 0, "far through {node}");
        let r = r.expect("a RemoteAddr");
        assert_ne!(r, manager1, "far through {node}: SNATed as before");
    }
    eprintln!("[{:>5.1}s] far is SNATed as before", at());
}
