//! Bad input gets a clear error — a non-zero exit and a message on stderr that names the
//! problem — and changes nothing in the cluster.

use shoal_tests::{Cluster, Output};
use std::collections::BTreeSet;
use std::time::{Duration, Instant};

/// Everything a bad request must leave alone: services (spec, ports, store version),
/// networks, nodes and tasks.
#[derive(Debug, PartialEq)]
struct Snapshot {
    services: BTreeSet<(String, String, String, u64)>,
    networks: BTreeSet<(String, String, String, u64)>,
    nodes: BTreeSet<(String, String, String, String)>,
    tasks: BTreeSet<String>,
}

fn snapshot(c: &Cluster, m: usize) -> Snapshot {
    Snapshot {
        services: c
            .service_ls(m)
            .into_iter()
            .map(|s| (s.id, s.name, format!("{} {}", s.spec, s.ports), s.version))
            .collect(),
        networks: c
            .network_ls(m)
            .into_iter()
            .map(|n| (n.id, n.name, n.subnet, n.version))
            .collect(),
        nodes: c
            .node_ls(m)
            .into_iter()
            .map(|n| (n.id, n.hostname, n.role, n.availability))
            .collect(),
        tasks: c.task_ls_all(m).into_iter().map(|t| t.id).collect(),
    }
}

/// Checks a failed command: non-zero exit, nothing on stdout, every `needles` on stderr (case
/// insensitive), no panic.
fn assert_clear_error(out: &Output, needles: &[&str]) {
    assert_ne!(out.code, 0, "should fail:\n{out}");
    assert!(
        out.stdout.trim().is_empty(),
        "a failed command prints nothing on stdout:\n{out}"
    );
    let err = out.stderr.to_lowercase();
    for n in needles {
        assert!(
            err.contains(&n.to_lowercase()),
            "stderr should mention {n:?}:\n{out}"
        );
    }
    assert!(
        !err.contains("panicked") && !err.contains("status {"),
        "raw internals leaked:\n{out}"
    );
}

#[test]
fn bad_requests_fail_clearly_and_change_nothing() {
    let t0 = Instant::now();
    let c = Cluster::start(1, 0);
    let m = 0;
    // Something to conflict with: a network in use and a service publishing 8080.
    c.ctl_ok(m, &["network", "create", "used"]);
    c.ctl_ok(
        m,
        &[
            "service",
            "create",
            "--runtime",
            "process",
            "--name",
            "web",
            "--publish",
            "8080:80",
            "--network",
            "used",
            "sleep",
            "1000",
        ],
    );
    c.wait_running(m, "web", 1);
    let data_file = concat!(env!("CARGO_MANIFEST_DIR"), "/Cargo.toml");
    c.ctl_ok(m, &["secret", "create", "pw", data_file]);
    let before = snapshot(&c, m);

    let long = "a".repeat(64);
    let cases: Vec<(Vec<&str>, Vec<&str>)> = vec![
        // Service names.
        (
            vec![
                "service",
                "create",
                "--runtime",
                "process",
                "--name",
                "web.1",
                "sleep",
                "1",
            ],
            vec!["invalid service name", "web.1"],
        ),
        (
            vec![
                "service",
                "create",
                "--runtime",
                "process",
                "--name=-web",
                "sleep",
                "1",
            ],
            vec!["invalid service name", "-web"],
        ),
        (
            vec![
                "service",
                "create",
                "--runtime",
                "process",
                "--name",
                "my web",
                "sleep",
                "1",
            ],
            vec!["invalid service name", "my web"],
        ),
        (
            vec![
                "service",
                "create",
                "--runtime",
                "process",
                "--name",
                "",
                "sleep",
                "1",
            ],
            vec!["service name must not be empty"],
        ),
        (
            vec![
                "service",
                "create",
                "--runtime",
                "process",
                "--name",
                &long,
                "sleep",
                "1",
            ],
            vec!["longer than 63"],
        ),
        // Replica counts.
        (
            vec![
                "service",
                "create",
                "--runtime",
                "process",
                "--name",
                "neg",
                "--replicas",
                "-1",
                "sleep",
                "1",
            ],
            vec!["--replicas", "non-negative integer"],
        ),
        (
            vec![
                "service",
                "create",
                "--runtime",
                "process",
                "--name",
                "big",
                "--replicas",
                "1000000",
                "sleep",
                "1",
            ],
            vec!["1000000", "too large", "100000"],
        ),
        (
            vec![
                "service",
                "create",
                "--runtime",
                "process",
                "--name",
                "huge",
                "--replicas",
                "99999999999999999999999",
                "sleep",
                "1",
            ],
            vec!["--replicas", "non-negative integer"],
        ),
        // Malformed --publish.
        (
            vec![
                "service",
                "create",
                "--runtime",
                "process",
                "--name",
                "p",
                "--publish",
                "abc",
                "sleep",
                "1",
            ],
            vec!["invalid --publish \"abc\"", "[PUBLISHED:]TARGET"],
        ),
        (
            vec![
                "service",
                "create",
                "--runtime",
                "process",
                "--name",
                "p",
                "--publish",
                "8080:",
                "sleep",
                "1",
            ],
            vec!["invalid --publish \"8080:\""],
        ),
        (
            vec![
                "service",
                "create",
                "--runtime",
                "process",
                "--name",
                "p",
                "--publish",
                "70000",
                "sleep",
                "1",
            ],
            vec!["invalid --publish \"70000\""],
        ),
        (
            vec![
                "service",
                "create",
                "--runtime",
                "process",
                "--name",
                "p",
                "--publish",
                "8081:80/sctp",
                "sleep",
                "1",
            ],
            vec!["invalid --publish", "sctp"],
        ),
        (
            vec![
                "service",
                "create",
                "--runtime",
                "process",
                "--name",
                "p",
                "--publish",
                "8081:80,mode=bogus",
                "sleep",
                "1",
            ],
            vec!["invalid --publish", "mode"],
        ),
        // A port another service publishes.
        (
            vec![
                "service",
                "create",
                "--runtime",
                "process",
                "--name",
                "web2",
                "--publish",
                "8080:81",
                "sleep",
                "1",
            ],
            vec!["port 8080/tcp is already published by service \"web\""],
        ),
        // The overlays' own VXLAN port.
        (
            vec![
                "service",
                "create",
                "--runtime",
                "process",
                "--name",
                "vx",
                "--publish",
                "4789:80/udp",
                "sleep",
                "1",
            ],
            vec!["port 4789/udp is where every node receives overlay (VXLAN) traffic"],
        ),
        // Unknown network.
        (
            vec![
                "service",
                "create",
                "--runtime",
                "process",
                "--name",
                "lost",
                "--network",
                "nosuch",
                "sleep",
                "1",
            ],
            vec!["network nosuch not found"],
        ),
        // Bad constraint.
        (
            vec![
                "service",
                "create",
                "--runtime",
                "process",
                "--name",
                "c",
                "--constraint",
                "node.role=manager",
                "sleep",
                "1",
            ],
            vec!["invalid constraint", "node.role=manager"],
        ),
        // Duplicate names.
        (
            vec![
                "service",
                "create",
                "--runtime",
                "process",
                "--name",
                "web",
                "sleep",
                "1",
            ],
            vec!["service with name \"web\" already exists"],
        ),
        // Secrets: names, sizes, duplicates, references.
        (
            vec!["secret", "create", "bad name", data_file],
            vec!["invalid secret name \"bad name\""],
        ),
        (
            vec!["secret", "create", "empty", "/dev/null"],
            vec!["secret data must be larger than 0"],
        ),
        (
            vec!["secret", "create", "pw", data_file],
            vec!["secret with name \"pw\" already exists"],
        ),
        (
            vec![
                "service",
                "create",
                "--runtime",
                "process",
                "--name",
                "s",
                "--secret",
                "nosuch",
                "sleep",
                "1",
            ],
            vec!["secret nosuch not found"],
        ),
        (
            vec![
                "service",
                "create",
                "--runtime",
                "process",
                "--name",
                "s",
                "--secret",
                "src=pw,target=../../etc/shadow",
                "sleep",
                "1",
            ],
            vec!["invalid secret target", "../../etc/shadow"],
        ),
        (
            vec![
                "service",
                "create",
                "--runtime",
                "process",
                "--name",
                "s",
                "--secret",
                "src=pw,mode=17777",
                "sleep",
                "1",
            ],
            vec!["mode must be octal"],
        ),
        (
            vec![
                "service",
                "create",
                "--runtime",
                "process",
                "--name",
                "s",
                "--secret",
                "pw",
                "sleep",
                "1",
            ],
            vec!["--secret and --config need a container"],
        ),
        (
            vec!["network", "create", "used"],
            vec!["network with name \"used\" already exists"],
        ),
        (
            vec!["network", "create", "ingress"],
            vec!["\"ingress\" is reserved"],
        ),
        (
            vec!["network", "create", "--subnet", "10.0.0.0/24", "clash"],
            vec!["overlaps", "ingress"],
        ),
        // The predefined networks.
        (
            vec!["network", "rm", "bridge"],
            vec!["bridge is a pre-defined network and cannot be removed"],
        ),
        (
            vec!["network", "rm", "none"],
            vec!["none is a pre-defined network and cannot be removed"],
        ),
        (
            vec!["network", "create", "--subnet", "172.17.5.0/24", "clash2"],
            vec!["overlaps", "bridge"],
        ),
        (
            vec![
                "service",
                "create",
                "--runtime",
                "process",
                "--name",
                "h",
                "--network",
                "host",
                "--network",
                "used",
                "sleep",
                "1",
            ],
            vec!["on the host network cannot be attached to other networks"],
        ),
        // A network in use.
        (
            vec!["network", "rm", "used"],
            vec!["network used is in use by service(s) web"],
        ),
        // The last manager.
        (
            vec!["node", "demote", "manager1"],
            vec!["can't demote the last manager"],
        ),
        // Things that do not exist.
        (
            vec!["service", "scale", "nosuch=3"],
            vec!["service nosuch not found"],
        ),
        (
            vec!["service", "scale", "web=-1"],
            vec!["non-negative integer"],
        ),
        (
            vec!["service", "scale", "web=1000000"],
            vec!["too many", "100000"],
        ),
        (
            vec!["service", "rm", "nosuch"],
            vec!["service nosuch not found"],
        ),
        (
            vec!["network", "rm", "nosuch"],
            vec!["network nosuch not found"],
        ),
        (
            vec!["node", "update", "--availability", "drain", "nosuch"],
            vec!["node nosuch not found"],
        ),
        (
            vec!["node", "update", "--availability", "sideways", "manager1"],
            vec!["invalid value 'sideways'"],
        ),
        // Update and rollback policies.
        (
            vec!["service", "update", "--update-parallelism", "-1", "web"],
            vec!["is not a number of tasks"],
        ),
        (
            vec![
                "service",
                "update",
                "--update-parallelism",
                "100000000",
                "web",
            ],
            vec!["--update-parallelism", "too large"],
        ),
        (
            vec!["service", "update", "--update-delay=-5s", "web"],
            vec!["--update-delay", "not a duration"],
        ),
        (
            vec!["service", "update", "--update-monitor", "48h", "web"],
            vec!["--update-monitor", "longer than a day"],
        ),
        (
            vec![
                "service",
                "update",
                "--update-max-failure-ratio",
                "1.5",
                "web",
            ],
            vec!["not a ratio between 0 and 1"],
        ),
        (
            vec![
                "service",
                "update",
                "--rollback-failure-action",
                "rollback",
                "web",
            ],
            vec!["invalid value 'rollback'"],
        ),
        (
            vec!["service", "update", "--update-order", "sideways", "web"],
            vec!["invalid value 'sideways'"],
        ),
        (
            vec!["service", "rollback", "web"],
            vec!["service web does not have a previous spec"],
        ),
        (
            vec!["service", "update", "--rollback", "--env-add", "A=1", "web"],
            vec!["--rollback", "cannot be combined"],
        ),
        (
            vec!["service", "rollback", "nosuch"],
            vec!["service nosuch not found"],
        ),
        // Autolock: off here, so there is no key; the key is never an argument.
        (vec!["swarm", "unlock-key"], vec!["no unlock key is set"]),
        (
            vec!["swarm", "unlock-key", "--rotate"],
            vec!["no unlock key is set"],
        ),
        (vec!["swarm", "unlock"], vec!["no unlock key given"]),
        (
            vec!["swarm", "unlock", "SWMKEY-1-abc"],
            vec!["unexpected argument"],
        ),
        (
            vec!["swarm", "update", "--autolock=maybe"],
            vec!["invalid value 'maybe'"],
        ),
    ];
    for (args, needles) in &cases {
        let out = c.ctl(m, args);
        assert_clear_error(&out, needles);
        assert_eq!(
            snapshot(&c, m),
            before,
            "`swarmctl {}` changed the cluster",
            args.join(" ")
        );
    }
    // `swarm unlock` of a running manager, whatever the key: as Docker, "swarm is not locked".
    for key in ["SWMKEY-1-wrong", "not a key"] {
        let out = c.ctl_stdin(m, &["swarm", "unlock"], key);
        assert_clear_error(&out, &["swarm is not locked"]);
        assert!(!out.stderr.contains(key), "{out}");
    }
    assert_eq!(
        snapshot(&c, m),
        before,
        "`swarm unlock` changed the cluster"
    );
    // `service ps` of a missing service fails the same way and, like Docker, prints no table.
    let out = c.ctl(m, &["service", "ps", "nosuch"]);
    assert_ne!(out.code, 0, "{out}");
    assert!(out.stderr.contains("service nosuch not found"), "{out}");
    assert!(out.stdout.is_empty(), "{out}");
    eprintln!(
        "[{:>5.1}s] {} bad requests refused, nothing changed",
        t0.elapsed().as_secs_f64(),
        cases.len()
    );
}

#[test]
fn bad_joins_and_unreachable_managers() {
    let t0 = Instant::now();
    let a = Cluster::start(1, 0);
    let other = Cluster::start(1, 0);
    let join = a.node(0).addr.clone();
    let good = a
        .ctl_ok(0, &["swarm", "join-token", "worker", "-q"])
        .trim()
        .to_string();
    let foreign = other
        .ctl_ok(0, &["swarm", "join-token", "worker", "-q"])
        .trim()
        .to_string();
    let (digest, _) = good
        .trim_start_matches("SWMTKN-1-")
        .split_once('-')
        .expect("SWMTKN-1-<digest>-<secret>");
    let wrong = format!("SWMTKN-1-{digest}-0000000000000000000000000");
    // A token rotated out, and a's secret under another CA's digest.
    let rotated_out = good.clone();
    let current = a
        .ctl_ok(0, &["swarm", "join-token", "worker", "--rotate", "-q"])
        .trim()
        .to_string();
    assert_ne!(current, rotated_out);
    let (other_digest, _) = foreign
        .trim_start_matches("SWMTKN-1-")
        .split_once('-')
        .expect("SWMTKN-1-<digest>-<secret>");
    let (_, secret) = current
        .trim_start_matches("SWMTKN-1-")
        .split_once('-')
        .expect("SWMTKN-1-<digest>-<secret>");
    let wrong_ca = format!("SWMTKN-1-{other_digest}-{secret}");
    let nodes_before = a.node_ls(0);

    let cases: Vec<(&str, Vec<&str>, Vec<&str>)> = vec![
        ("no-token", vec!["--join", &join], vec!["--token"]),
        (
            "empty-token",
            vec!["--join", &join, "--token", ""],
            vec!["a join token is required"],
        ),
        (
            "malformed-token",
            vec!["--join", &join, "--token", "hello"],
            vec!["malformed join token"],
        ),
        (
            "wrong-secret",
            vec!["--join", &join, "--token", &wrong],
            vec!["refused", "invalid join token"],
        ),
        (
            "other-cluster",
            vec!["--join", &join, "--token", &foreign],
            vec!["refused", "belongs to another cluster"],
        ),
        (
            "rotated-out",
            vec!["--join", &join, "--token", &rotated_out],
            vec!["refused", "invalid join token", "rotated"],
        ),
        (
            "ca-digest-mismatch",
            vec!["--join", &join, "--token", &wrong_ca],
            vec!["refused", "does not hold the root CA named by the token"],
        ),
    ];
    for (name, args, needles) in &cases {
        let (out, dir) = a.swarmd_once(name, args, Duration::from_secs(20));
        assert_ne!(out.code, 0, "{name}: swarmd should exit non-zero:\n{out}");
        assert!(
            out.elapsed < Duration::from_secs(10),
            "{name}: should fail fast:\n{out}"
        );
        let err = out.stderr.to_lowercase();
        for n in needles {
            assert!(
                err.contains(&n.to_lowercase()),
                "{name}: stderr should mention {n:?}:\n{out}"
            );
        }
        assert!(
            !dir.join("node.json").exists(),
            "{name}: a refused node must not get an identity"
        );
        assert_eq!(a.node_ls(0), nodes_before, "{name}: no node was added");
    }
    eprintln!("[{:>5.1}s] bad joins refused", t0.elapsed().as_secs_f64());

    // Talking to a manager that is down fails fast and says so: stopped (socket removed),
    // killed (socket left behind, nobody listening), and over TCP.
    other.stop(0);
    a.kill9(0);
    let dead = [
        other.node(0).host(),
        a.node(0).host(),
        format!("tcp://{}", other.node(0).addr),
    ];
    for host in &dead {
        let out = a.ctl_host(host, &["node", "ls"]);
        assert_clear_error(
            &out,
            &[
                &format!("cannot reach swarmd at {host}"),
                "is swarmd running there?",
            ],
        );
        assert!(
            out.elapsed < Duration::from_secs(5),
            "should fail fast:\n{out}"
        );
    }
    eprintln!(
        "[{:>5.1}s] unreachable managers reported",
        t0.elapsed().as_secs_f64()
    );
}
