//! Upgrades keep the cluster: a cluster started from the previous commit's state directory
//! restarts and serves on the new binary.
//!
//! The fixture `tests/fixtures/state-0df639a` was made by commit 0df639a's `swarmd` and
//! `swarmctl` (`tests/fixtures/make-state.sh`; how, and how to regenerate it, in
//! `tests/fixtures/README.md`): one manager on 127.0.0.1:19377 with default TLS, a network
//! `appnet` and a service `web` on it, and raft data that is a snapshot followed by log
//! entries — so the new binary reads both formats. Beside it, what that `swarmctl` showed
//! (`expected/`): the new one must show the same, then accept new writes, and read back what it
//! wrote on top of the old data after another restart.

use serde_json::Value;
use shoal_tests::{Cluster, FixedPort, Timings};
use std::path::{Path, PathBuf};
use std::time::Duration;

/// The fixture's directory.
const FIXTURE: &str = "state-0df639a";
/// The port its manager listened on: raft's membership and the node object hold
/// `127.0.0.1:19377`, so the restarted node must listen there again. Below the harness's
/// 20000–29999 and the kernel's ephemeral ports; a lock keeps two test runs from sharing it.
const PORT: u16 = 19377;
/// Fields that move on their own: store versions, heartbeat times, live counts, raft progress.
const VOLATILE: [&str; 4] = ["version", "updated_ms", "running", "raft"];

fn fixture() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("fixtures")
        .join(FIXTURE)
}

fn expected(name: &str) -> String {
    let p = fixture().join("expected").join(name);
    std::fs::read_to_string(&p).unwrap_or_else(|e| panic!("cannot read {}: {e}", p.display()))
}

fn expected_json(name: &str) -> Value {
    serde_json::from_str(&expected(name)).unwrap_or_else(|e| panic!("{name}: {e}"))
}

/// `v` without the [`VOLATILE`] fields, at any depth.
fn stable(v: &Value) -> Value {
    match v {
        Value::Object(m) => Value::Object(
            m.iter()
                .filter(|(k, _)| !VOLATILE.contains(&k.as_str()))
                .map(|(k, v)| (k.clone(), stable(v)))
                .collect(),
        ),
        Value::Array(a) => Value::Array(a.iter().map(stable).collect()),
        v => v.clone(),
    }
}

/// `actual` cut down to the fields `before` has, recursively: what the old binary showed must be
/// shown the same way; fields added since (update policies, health checks, …) may be there too.
fn as_before(actual: &Value, before: &Value) -> Value {
    match (actual, before) {
        (Value::Object(a), Value::Object(b)) => Value::Object(
            a.iter()
                .filter_map(|(k, v)| b.get(k).map(|bv| (k.clone(), as_before(v, bv))))
                .collect(),
        ),
        (Value::Array(a), Value::Array(b)) if a.len() == b.len() => {
            Value::Array(a.iter().zip(b).map(|(x, y)| as_before(x, y)).collect())
        }
        (a, _) => a.clone(),
    }
}

/// Fails with what to do once the fixture's certificates have expired (they are valid for
/// ten years from when it was made).
fn check_certificates_valid(state_dir: &Path) {
    let p = state_dir.join("certificates").join("node.crt");
    let pem = std::fs::read_to_string(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
    let info = shoal_security::ca::cert_info(&pem).expect("the fixture's node certificate");
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or_default();
    assert!(
        now < info.not_after,
        "the fixture's node certificate expired (not after {} s since the epoch): regenerate \
         the fixture as tests/fixtures/README.md says",
        info.not_after
    );
}

/// The fixture's plaintext raft data was migrated: a key file readable by its owner only, that
/// records the engine as migrated (see `manager/src/raft/storage/migrate.rs`), and no plaintext
/// left in the raft directory.
fn check_raft_data_encrypted(state_dir: &Path) {
    use std::os::unix::fs::PermissionsExt;
    let path = state_dir.join("raft").join("keys.json");
    let meta = std::fs::metadata(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    assert_eq!(
        meta.permissions().mode() & 0o777,
        0o600,
        "{}",
        path.display()
    );
    let keys: Value = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
    assert_eq!(
        keys["migrated"],
        serde_json::json!(["redb"]),
        "{}",
        path.display()
    );
    // The fixture's network name was in its plaintext raft data; no raft file holds it now.
    let raft = state_dir.join("raft");
    assert!(!raft.join("redb.plaintext").exists());
    assert!(
        !holds(&raft, b"appnet"),
        "plaintext raft data left in {}",
        raft.display()
    );
}

/// Whether any file under `dir` contains `needle`.
fn holds(dir: &Path, needle: &[u8]) -> bool {
    std::fs::read_dir(dir).unwrap().any(|e| {
        let p = e.unwrap().path();
        if p.is_dir() {
            holds(&p, needle)
        } else {
            let bytes = std::fs::read(&p).unwrap();
            bytes.windows(needle.len()).any(|w| w == needle)
        }
    })
}

#[test]
fn a_cluster_from_the_previous_commits_state_dir_restarts_and_serves() {
    let state = fixture().join("manager1");
    check_certificates_valid(&state);
    let port = FixedPort::take(PORT, Duration::from_secs(300));
    // The fixture's swarmd ran with the default agent heartbeat, which `swarm inspect` shows.
    let timings = Timings {
        heartbeat_period: "500ms".into(),
        ..Timings::default()
    };
    let c = Cluster::restore(&state, "manager1", port, timings);

    // The same objects, shown the same way, once the service's task is back.
    c.wait_running(0, "web", 1);
    check_raft_data_encrypted(&c.node(0).dir);
    for (args, name) in [
        (["service", "ls"], "service-ls"),
        (["network", "ls"], "network-ls"),
        (["node", "ls"], "node-ls"),
    ] {
        assert_eq!(
            c.ctl_ok(0, &args),
            expected(&format!("{name}.txt")),
            "swarmctl {}",
            args.join(" ")
        );
        let before = stable(&expected_json(&format!("{name}.json")));
        assert_eq!(
            as_before(&stable(&c.ctl_json(0, &args)), &before),
            before,
            "swarmctl {} --format json",
            args.join(" ")
        );
    }
    let before = stable(&expected_json("service-inspect-web.json"));
    assert_eq!(
        as_before(
            &stable(&c.ctl_json(0, &["service", "inspect", "web"])),
            &before
        ),
        before
    );
    let before = stable(&expected_json("swarm-inspect.json"));
    assert_eq!(
        as_before(&stable(&c.ctl_json(0, &["swarm", "inspect"])), &before),
        before
    );

    // New writes: a network, a service on the old and the new network, a scale.
    c.ctl_ok(0, &["network", "create", "after"]);
    c.ctl_ok(
        0,
        &[
            "service",
            "create",
            "--runtime",
            "process",
            "--name",
            "api",
            "--network",
            "appnet",
            "--network",
            "after",
            "sleep",
            "1000",
        ],
    );
    c.wait_running(0, "api", 1);
    c.ctl_ok(0, &["service", "scale", "web=2"]);
    c.wait_running(0, "web", 2);

    // Old and new entries together read back by the new binary.
    c.stop(0);
    c.restart(0);
    c.wait_ready();
    c.wait_running(0, "web", 2);
    c.wait_running(0, "api", 1);
    let names: Vec<String> = c.network_ls(0).into_iter().map(|n| n.name).collect();
    assert!(
        names.iter().any(|n| n == "appnet") && names.iter().any(|n| n == "after"),
        "{names:?}"
    );
}
