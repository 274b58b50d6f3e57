//! `swarmctl lab` end to end, as root: a real lab of network namespaces, each node a real
//! swarmd, driven only through `swarmctl` — what users run is what is tested.
//!
//! Skipped (with a message) when not root, unless `CI` is set: then not being root fails.
//! Each test uses its own lab name and subnet inside 198.18.0.0/15 and a temporary
//! `SHOAL_LAB_DIR`; a guard runs `lab down` even when an assertion fails.

use shoal_netlib::root::root_or_skip;
use shoal_tests::lab::{interfaces, Lab, CMD_TIMEOUT};
use shoal_tests::{run, wait_for, NodeView};
use std::process::Command;
use std::time::{Duration, Instant};

#[ignore = "needs root"]
#[test]
fn lab_up_exec_ls_down() {
    if !root_or_skip() {
        return;
    }
    let lab = Lab::new();
    let started = Instant::now();
    let up = lab.lab_ok(
        &["up"],
        &["--managers", "3", "--workers", "2", "--subnet", &lab.subnet],
    );
    eprintln!(
        "lab up {} on {} took {:.2}s:\n{up}",
        lab.name,
        lab.subnet,
        started.elapsed().as_secs_f64()
    );
    assert!(up.contains("5 nodes Ready"), "{up}");
    let file = lab.file();
    let ip1 = file["nodes"][0]["address"]
        .as_str()
        .expect("address")
        .to_string();
    assert_eq!(file["host_endpoint"]["link"], format!("swlab-{}", lab.name));

    // Inside manager1, a plain swarmctl talks to manager1.
    let nodes = wait_for(
        "5 nodes Ready through lab exec",
        Duration::from_secs(30),
        || {
            let out = lab.lab(
                &["exec", "manager1"],
                &["--", "swarmctl", "node", "ls", "--format", "json"],
            );
            if !out.success() {
                return Err(out.to_string());
            }
            let v: serde_json::Value =
                serde_json::from_str(&out.stdout).map_err(|e| format!("{e}: {out}"))?;
            let nodes = NodeView::list(&v);
            if nodes.len() == 5 && nodes.iter().all(|n| n.state == "ready") {
                Ok(nodes)
            } else {
                Err(format!("{nodes:?}"))
            }
        },
    );
    assert_eq!(nodes.iter().filter(|n| n.role == "manager").count(), 3);
    assert_eq!(
        nodes
            .iter()
            .filter(|n| n.manager_status == "Leader")
            .count(),
        1
    );
    let mut names: Vec<&str> = nodes.iter().map(|n| n.hostname.as_str()).collect();
    names.sort();
    assert_eq!(
        names,
        ["manager1", "manager2", "manager3", "worker1", "worker2"]
    );
    let host = lab.lab_ok(
        &["exec", "manager1"],
        &["--", "sh", "-c", "echo $SWARM_HOST"],
    );
    assert_eq!(
        host.trim(),
        format!("unix://{}/nodes/manager1/swarmd.sock", lab.dir().display())
    );

    // A node's namespace holds lo and eth0, plus the routing mesh's leg on the ingress
    // network; it routes only the lab's subnet and the ingress network's.
    wait_for(
        "worker2's routing mesh leg",
        Duration::from_secs(20),
        || {
            let dev = lab.lab_ok(&["exec", "worker2"], &["--", "cat", "/proc/net/dev"]);
            let have = interfaces(&dev);
            if have == ["eth0", "lo", shoal_netlib::names::INGRESS_LEG] {
                Ok(())
            } else {
                Err(format!("{have:?}"))
            }
        },
    );
    let routes = lab.lab_ok(&["exec", "worker2"], &["--", "cat", "/proc/net/route"]);
    for l in routes.lines().skip(1) {
        let f: Vec<&str> = l.split_whitespace().collect();
        assert!(
            f[0] == "eth0" || f[0] == shoal_netlib::names::INGRESS_LEG,
            "{routes}"
        );
        assert_ne!(f[1], "00000000", "a default route in worker2:\n{routes}");
    }

    // Exit codes pass through; a missing command is 127 with a message.
    let out = lab.lab(
        &["exec", "worker1"],
        &["--", "sh", "-c", "echo out; echo err >&2; exit 7"],
    );
    assert_eq!(
        (out.code, out.stdout.as_str(), out.stderr.as_str()),
        (7, "out\n", "err\n")
    );
    let out = lab.lab(&["exec", "worker1"], &["--", "no-such-command-in-the-lab"]);
    assert_eq!(out.code, 127, "{out}");
    assert!(out.stderr.contains("command not found"), "{out}");
    let out = lab.lab(&["exec", "worker9"], &["--", "true"]);
    assert!(
        !out.success() && out.stderr.contains("has no node"),
        "{out}"
    );

    // A worker's shell talks to its own swarmd, which refuses manager calls as Docker refuses
    // `docker node ls` on a worker.
    let out = lab.lab(&["exec", "worker1"], &["--", "swarmctl", "node", "ls"]);
    assert!(
        !out.success()
            && out
                .stderr
                .contains("This node is not a swarm manager. Worker nodes can't be used"),
        "{out}"
    );

    // From the host, through the host endpoint.
    let out = lab.ctl(
        &[
            "--host",
            &format!("tcp://{ip1}:2377"),
            "--cert-dir",
            &format!("{}/nodes/manager1/certificates", lab.dir().display()),
            "node",
            "ls",
            "--format",
            "json",
        ],
        CMD_TIMEOUT,
    );
    assert!(out.success(), "{out}");
    let v: serde_json::Value = serde_json::from_str(&out.stdout).expect("JSON");
    assert_eq!(NodeView::list(&v).len(), 5);

    // lab ls lists it as running.
    let ls = lab.ctl(&["lab", "ls"], CMD_TIMEOUT);
    assert!(ls.success(), "{ls}");
    let row = ls
        .stdout
        .lines()
        .find(|l| l.starts_with(&lab.name))
        .unwrap_or_else(|| panic!("{} not in lab ls:\n{ls}", lab.name));
    assert!(
        row.contains("running") && row.contains(&lab.subnet),
        "{row}"
    );
    let ls = lab.ctl(&["lab", "ls", "--format", "json"], CMD_TIMEOUT);
    let v: serde_json::Value = serde_json::from_str(&ls.stdout).expect("JSON");
    let me = v
        .as_array()
        .and_then(|a| a.iter().find(|l| l["name"] == lab.name.as_str()))
        .unwrap_or_else(|| panic!("{ls}"));
    assert_eq!(me["running"], true);
    assert_eq!(
        (me["managers"].as_u64(), me["workers"].as_u64()),
        (Some(3), Some(2))
    );

    // A second `up` of the same lab is refused and leaves the running one alone; so is a
    // subnet outside 198.18.0.0/15.
    let again = lab.lab(&["up"], &["--subnet", &lab.subnet]);
    assert!(
        !again.success() && again.stderr.contains("lab down"),
        "{again}"
    );
    let outside = lab.ctl(
        &["lab", "up", "--name", "zz", "--subnet", "10.1.0.0/24"],
        CMD_TIMEOUT,
    );
    assert!(
        !outside.success() && outside.stderr.contains("198.18.0.0/15"),
        "{outside}"
    );
    assert!(
        lab.lab_ok(
            &["exec", "manager2"],
            &["--", "swarmctl", "node", "ls", "-q"]
        )
        .lines()
        .count()
            == 5
    );

    // Down removes everything, and a second down has nothing to do.
    let pids = lab.pids();
    assert_eq!(pids.len(), 5);
    let started = Instant::now();
    let down = lab.lab_ok(&["down"], &[]);
    eprintln!(
        "lab down took {:.2}s:\n{down}",
        started.elapsed().as_secs_f64()
    );
    // One summary line: what was stopped and removed.
    assert!(
        down.contains(&format!("lab {} removed: 5 swarmd stopped", lab.name))
            && down.contains(&format!("link swlab-{}", lab.name)),
        "{down}"
    );
    lab.assert_gone(&pids);
    let again = lab.lab_ok(&["down"], &[]);
    assert!(again.contains("nothing to remove"), "{again}");
}

#[ignore = "needs root"]
#[test]
fn down_cleans_up_after_a_crash() {
    if !root_or_skip() {
        return;
    }
    let lab = Lab::new();
    lab.lab_ok(
        &["up"],
        &["--managers", "1", "--workers", "1", "--subnet", &lab.subnet],
    );
    let pids = lab.pids();
    assert_eq!(pids.len(), 2);
    // A task process, started by hand in the node's directory, outlives its swarmd.
    let task_dir = lab.dir().join("nodes/worker1");
    let mut task = Command::new("sleep")
        .arg("300")
        .current_dir(&task_dir)
        .spawn()
        .expect("start sleep");
    // A crash: worker1's swarmd killed, lab.json lost.
    let out = run(
        Command::new("kill").args(["-9", &pids[1].to_string()]),
        Duration::from_secs(10),
    );
    assert!(out.success(), "{out}");
    std::fs::remove_file(lab.dir().join("lab.json")).expect("remove lab.json");
    let ls = lab.ctl(&["lab", "ls"], CMD_TIMEOUT);
    assert!(ls.stdout.contains("incomplete"), "{ls}");
    let up = lab.lab(&["up"], &["--subnet", &lab.subnet]);
    assert!(!up.success() && up.stderr.contains("lab down"), "{up}");

    let down = lab.lab_ok(&["down"], &[]);
    // manager1's swarmd stopped; worker1's task process (its swarmd gone) killed.
    assert!(down.contains("1 swarmd stopped"), "{down}");
    assert!(down.contains("1 task process ended"), "{down}");
    let status = wait_for(
        "the leftover task to be killed",
        Duration::from_secs(10),
        || {
            task.try_wait()
                .map_err(|e| e.to_string())?
                .ok_or_else(|| "still running".to_string())
        },
    );
    assert!(!status.success());
    lab.assert_gone(&pids);
}
