//! Rolling updates on a `swarmctl lab` (root), driven only through `swarmctl` as a user would:
//!
//! * twelve `service update --env-add` at the same time all land (each re-reads and re-applies
//!   its edit when the managers answer `update out of sequence`);
//! * a rolling update of 5 replicas (`--update-parallelism 1 --update-order start-first`, with
//!   a health check) under a bounded loop of requests through the routing mesh and through the
//!   VIP fails no request;
//! * an update to a command that exits rolls back by itself (`--update-failure-action
//!   rollback`), one whose health check never passes pauses, and `service rollback` returns to
//!   the previous spec — each ending with every replica running the old spec.

use shoal_netlib::root::root_or_skip;
use shoal_tests::lab::Lab;
use shoal_tests::{wait_for, TaskView};
use std::time::Duration;

/// What the health check asks of a `whoami` task: an answer on its port.
const HEALTH: &str = "curl -sf -m 1 -o /dev/null http://127.0.0.1:8080/name";

fn tasks(lab: &Lab, service: &str) -> Vec<TaskView> {
    let out = lab.swarmctl(&["service", "ps", service, "--format", "json"]);
    assert!(out.success(), "{out}");
    TaskView::list(&serde_json::from_str(&out.stdout).expect("json"))
}

fn inspect(lab: &Lab, service: &str) -> serde_json::Value {
    let out = lab.swarmctl_ok(&["service", "inspect", service]);
    let v: serde_json::Value = serde_json::from_str(&out).expect("json");
    v[0].clone()
}

/// The env of `service`'s spec.
fn env(lab: &Lab, service: &str) -> Vec<String> {
    let v = inspect(lab, service);
    let mut env: Vec<String> = v["spec"]["env"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|e| e.as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default();
    env.sort();
    env
}

/// `service` has exactly `n` running tasks and every one runs with `marker` in its env.
fn all_running_with(lab: &Lab, service: &str, n: usize, marker: &str) {
    wait_for(
        &format!("{n} running tasks of {service} with {marker}"),
        Duration::from_secs(60),
        || {
            let out = lab.swarmctl(&["service", "ps", service, "--format", "json"]);
            let v: serde_json::Value =
                serde_json::from_str(&out.stdout).map_err(|e| e.to_string())?;
            let running: Vec<&serde_json::Value> = v
                .as_array()
                .into_iter()
                .flatten()
                .filter(|t| t["desired_state"] == "running" && t["status"]["state"] == "running")
                .collect();
            let with = running
                .iter()
                .filter(|t| {
                    t["spec"]["env"]
                        .as_array()
                        .is_some_and(|e| e.iter().any(|x| x == marker))
                })
                .count();
            if running.len() == n && with == n {
                Ok(())
            } else {
                Err(format!("{} running, {with} with {marker}", running.len()))
            }
        },
    );
}

#[test]
#[ignore = "needs root"]
fn rolling_updates_lose_nothing() {
    if !root_or_skip() {
        return;
    }
    let lab = Lab::new();
    lab.lab_ok(
        &["up"],
        &["--managers", "1", "--workers", "2", "--subnet", &lab.subnet],
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
        "--publish",
        "8080",
        "--network",
        "lp_net",
        "--env",
        "V=1",
        "--health-cmd",
        HEALTH,
        "--health-interval",
        "300ms",
        "--health-retries",
        "2",
        "--update-parallelism",
        "1",
        "--update-order",
        "start-first",
        "--update-monitor",
        "1s",
        "--timeout",
        "120s",
        "whoami",
    ]);
    lab.create_client();
    lab.running("client", 1);
    all_running_with(&lab, "web", 5, "V=1");

    concurrent_edits(&lab);
    zero_failed_requests(&lab);
    failures_roll_back_or_pause(&lab);
}

/// Twelve clients edit `client` at once; every edit is there afterwards.
fn concurrent_edits(lab: &Lab) {
    let edits: Vec<String> = (0..12).map(|i| format!("K{i}=v{i}")).collect();
    std::thread::scope(|s| {
        let runs: Vec<_> = edits
            .iter()
            .map(|e| {
                s.spawn(move || {
                    lab.swarmctl(&[
                        "service",
                        "update",
                        "--env-add",
                        e,
                        "--update-parallelism",
                        "0",
                        "-d",
                        "client",
                    ])
                })
            })
            .collect();
        for r in runs {
            let out = r.join().expect("thread");
            assert!(
                out.success(),
                "every concurrent edit is acknowledged: {out}"
            );
        }
    });
    let got = env(lab, "client");
    for e in &edits {
        assert!(
            got.contains(e),
            "{e} was acknowledged but is missing: {got:?}"
        );
    }
    lab.running("client", 1);
}

/// Bounded request loops, one from a node through the routing mesh and one from a task of
/// `client` through web's VIP, run while `web` is updated; none fails.
fn zero_failed_requests(lab: &Lab) {
    let port = published_port(lab);
    let stop = lab.root.join("stop-requests");
    // At most 120 s (and 20,000 requests), or until the stop file appears.
    let looped = |addr: String| {
        format!(
            "end=$(( $(date +%s) + 120 )); n=0; while [ ! -e {stop} ] && [ $(date +%s) -lt $end ] && [ $n -lt 20000 ]; do n=$((n+1)); curl -s --connect-timeout 0.9 -m 2 http://{addr}/name >/dev/null && echo OK || echo FAIL; done",
            stop = stop.display()
        )
    };
    let mesh = looped(format!("127.0.0.1:{port}"));
    let client = lab.running("client", 1)[0].clone();
    let vip = looped(format!("{}:8080", vip_near(lab, &client)));
    let client = client.name;
    let (mesh_out, vip_out, update) = std::thread::scope(|s| {
        let m = s.spawn(|| lab.on_node("worker1", &["sh", "-c", &mesh]));
        let v = s.spawn(|| {
            lab.swarmctl(&[
                "task",
                "exec",
                "--timeout",
                "150",
                &client,
                "--",
                "sh",
                "-c",
                &vip,
            ])
        });
        // Let both loops get going before the update starts.
        std::thread::sleep(Duration::from_millis(500));
        let update = lab.swarmctl(&[
            "service",
            "update",
            "--env-add",
            "V=2",
            "--timeout",
            "120s",
            "web",
        ]);
        std::fs::write(&stop, b"").expect("stop file");
        (m.join().expect("mesh"), v.join().expect("vip"), update)
    });
    let _ = std::fs::remove_file(&stop);
    assert!(update.success(), "{update}");
    all_running_with(lab, "web", 5, "V=2");
    for (what, out) in [("routing mesh", mesh_out), ("VIP", vip_out)] {
        assert!(out.success(), "{what} loop: {out}");
        let ok = out.stdout.lines().filter(|l| *l == "OK").count();
        let failed = out.stdout.lines().filter(|l| *l == "FAIL").count();
        eprintln!("{what}: {ok} requests answered, {failed} failed during the update");
        assert!(ok > 0, "{what}: no request was made: {out}");
        assert_eq!(failed, 0, "{what}: requests failed during a rolling update");
    }
}

/// web's VIP on the network `client` is on (lp_net; its other VIP is on ingress).
fn vip_near(lab: &Lab, client: &TaskView) -> String {
    let near = client.addr_on("lp_net").expect("client on lp_net").octets();
    inspect(lab, "web")["vips"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|v| v["addr"].as_str())
        .map(|a| a.split('/').next().unwrap_or(a).to_string())
        .find(|a| {
            a.parse::<std::net::Ipv4Addr>()
                .is_ok_and(|ip| ip.octets()[..3] == near[..3])
        })
        .expect("a VIP of web on lp_net")
}

fn published_port(lab: &Lab) -> u16 {
    let v = inspect(lab, "web");
    v["ports"][0]["published"]
        .as_u64()
        .expect("a published port") as u16
}

/// Updates that fail end on the old spec with every replica running.
fn failures_roll_back_or_pause(lab: &Lab) {
    // A command that exits: rolled back by itself.
    let out = lab.swarmctl(&[
        "service",
        "update",
        "--args",
        "--no-such-flag",
        "--env-add",
        "V=3",
        "--update-failure-action",
        "rollback",
        "--timeout",
        "120s",
        "web",
    ]);
    assert!(!out.success(), "a rolled-back update is an error: {out}");
    assert!(out.stderr.contains("rolled back"), "{out}");
    let status = &inspect(lab, "web")["update_status"];
    assert_eq!(status["state"], "rollback_completed", "{status}");
    assert!(
        status["message"]
            .as_str()
            .unwrap_or("")
            .contains("rollback completed"),
        "{status}"
    );
    all_running_with(lab, "web", 5, "V=2");

    // A health check that never passes: paused, the old tasks keep serving.
    let out = lab.swarmctl(&[
        "service",
        "update",
        "--health-cmd",
        "false",
        "--env-add",
        "V=4",
        "--timeout",
        "120s",
        "web",
    ]);
    assert!(!out.success(), "a paused update is an error: {out}");
    assert!(out.stderr.contains("update paused"), "{out}");
    let status = &inspect(lab, "web")["update_status"];
    assert_eq!(status["state"], "paused", "{status}");
    let old = tasks(lab, "web")
        .into_iter()
        .filter(|t| t.desired == "running" && t.state == "running")
        .count();
    assert!(old >= 4, "the slots the update did not reach keep running");

    // `service rollback`: back to V=2 with the working health check.
    let out = lab.swarmctl(&["service", "rollback", "--timeout", "120s", "web"]);
    assert!(out.success(), "{out}");
    all_running_with(lab, "web", 5, "V=2");
    assert_eq!(
        inspect(lab, "web")["update_status"]["state"],
        "rollback_completed"
    );
    // Nothing to roll back to twice in a row would be wrong: the previous spec is now V=4's.
    let prev = &inspect(lab, "web")["previous_spec"]["env"];
    assert!(
        prev.as_array()
            .is_some_and(|e| e.iter().any(|x| x == "V=4")),
        "{prev}"
    );
}
