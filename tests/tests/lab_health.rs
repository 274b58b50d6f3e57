//! Health checks and the stop drain on a `swarmctl lab` (root):
//! * a task with `--health-cmd` stays STARTING, out of the balancers (`network inspect --lb`)
//!   and `tasks.<svc>` DNS answers, until its probe passes; then it runs, healthy, and answers
//!   through the VIP; made unhealthy (its probe's file removed with `swarmctl task exec`) it
//!   leaves both while it drains, fails with Docker's `unhealthy container` and is replaced;
//! * a health command that never returns is killed at its timeout and counts as a failure;
//! * an established connection through the VIP keeps getting answers while its task drains
//!   (`--stop-drain`), after the balancers and DNS let go of it;
//! * the container path: an OCI task probed through `runc exec` (when the demo images exist).

use shoal_netlib::root::root_or_skip;
use shoal_tests::lab::{demo_images_or_skip, Lab};
use shoal_tests::{wait_for, wait_until};
use std::collections::BTreeSet;
use std::net::Ipv4Addr;
use std::time::{Duration, Instant};

const WAIT: Duration = Duration::from_secs(60);

fn at(t0: Instant) -> f64 {
    t0.elapsed().as_secs_f64()
}

/// `service ps SERVICE --format json`, as JSON task objects (retried: a call can meet a
/// leader election).
fn tasks(lab: &Lab, service: &str) -> Vec<serde_json::Value> {
    wait_for("service ps", Duration::from_secs(20), || {
        let out = lab.swarmctl(&["service", "ps", service, "--format", "json"]);
        if !out.success() {
            return Err(out.to_string());
        }
        let v: serde_json::Value = serde_json::from_str(&out.stdout).map_err(|e| e.to_string())?;
        Ok(v.as_array().cloned().unwrap_or_default())
    })
}

fn st<'a>(t: &'a serde_json::Value, key: &str) -> &'a str {
    t["status"][key].as_str().unwrap_or_default()
}

/// The one task of `service` that the managers want running, once `ok` holds for it.
fn wait_task(
    lab: &Lab,
    service: &str,
    what: &str,
    ok: impl Fn(&serde_json::Value) -> bool,
) -> serde_json::Value {
    wait_for(&format!("{service}: {what}"), WAIT, || {
        let all = tasks(lab, service);
        let live: Vec<&serde_json::Value> = all
            .iter()
            .filter(|t| t["desired_state"] == "running")
            .collect();
        match live.as_slice() {
            [t] if ok(t) => Ok((*t).clone()),
            _ => Err(format!("{all:#?}")),
        }
    })
}

/// The backends (task names) of `service` in every node's balancer of `net`.
fn backends(lab: &Lab, net: &str, service: &str) -> Result<BTreeSet<String>, String> {
    let out = lab.swarmctl(&["network", "inspect", net, "--lb", "--format", "json"]);
    if !out.success() {
        return Err(out.to_string());
    }
    let v: serde_json::Value = serde_json::from_str(&out.stdout).map_err(|e| e.to_string())?;
    let mut all = BTreeSet::new();
    for n in v[0]["nodes"].as_array().into_iter().flatten() {
        for s in n["services"].as_array().into_iter().flatten() {
            if s["name"] == service {
                for b in s["backends"].as_array().into_iter().flatten() {
                    all.insert(b["name"].as_str().unwrap_or_default().to_string());
                }
            }
        }
    }
    Ok(all)
}

/// `getent ahostsv4 NAME` inside `task`: the addresses (empty when it does not resolve).
fn resolve(lab: &Lab, task: &str, name: &str) -> BTreeSet<Ipv4Addr> {
    let out = lab.swarmctl(&[
        "task",
        "exec",
        task,
        "--",
        "sh",
        "-c",
        &format!("getent ahostsv4 {name} || true"),
    ]);
    out.stdout
        .lines()
        .filter_map(|l| l.split_whitespace().next()?.parse().ok())
        .collect()
}

fn lp_addr(t: &serde_json::Value) -> Ipv4Addr {
    t["networks"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|a| a["network"] == "lp_net")
        .and_then(|a| a["addresses"][0].as_str())
        .and_then(|a| a.split('/').next()?.parse().ok())
        .unwrap_or_else(|| panic!("no lp_net address: {t:#}"))
}

fn id(t: &serde_json::Value) -> String {
    t["id"].as_str().unwrap_or_default().to_string()
}

fn name(t: &serde_json::Value) -> String {
    t["name"].as_str().unwrap_or_default().to_string()
}

/// A lab of one manager and one worker on `subnet`, with the overlay `lp_net` and a `client`
/// task on it (where VIP and DNS checks are made from): the lab and the client's task id.
fn lab_with_client(subnet: &str) -> (Lab, String) {
    let mut lab = Lab::new();
    lab.subnet = subnet.into();
    lab.lab_ok(
        &["up"],
        &["--managers", "1", "--workers", "1", "--subnet", &lab.subnet],
    );
    lab.swarmctl_ok(&["network", "create", "-d", "overlay", "lp_net"]);
    lab.create_client();
    let client = id(&wait_task(&lab, "client", "running", |t| {
        st(t, "state") == "running"
    }));
    (lab, client)
}

#[ignore = "needs root"]
#[test]
fn health_checks_gate_balancers_and_dns_and_replace_unhealthy_tasks() {
    if !root_or_skip() {
        return;
    }
    let t0 = Instant::now();
    let (lab, client) = lab_with_client("198.19.71.0/24");
    // The probe looks for a file named after the task (a process task's hostname is its id);
    // the files live in the lab's directory, which the tasks see.
    let marks = lab.root.join("marks");
    std::fs::create_dir_all(&marks).expect("marks dir");
    let mark = |task: &str| marks.join(format!("ok-{task}"));
    let probe = format!("test -e {}/ok-$(hostname)", marks.display());
    lab.swarmctl_ok(&[
        "service",
        "create",
        "--runtime",
        "process",
        "--name",
        "web",
        "--network",
        "lp_net",
        "--health-cmd",
        &probe,
        "--health-interval",
        "300ms",
        "--health-timeout",
        "5s",
        "--health-retries",
        "2",
        // Failures before the first pass do not count: the task waits for its mark.
        "--health-start-period",
        "10m",
        "--stop-drain",
        "10s",
        "-d",
        "whoami",
    ]);
    eprintln!("[{:>5.1}s] lab up, web created", at(t0));

    // 1. No mark: STARTING, health starting, in no balancer and no DNS answer.
    let web = wait_task(&lab, "web", "starting with a pid", |t| {
        st(t, "state") == "starting" && st(t, "health") == "starting" && t["status"]["pid"] != 0
    });
    let ps = lab.swarmctl_ok(&["service", "ps", "web"]);
    assert!(ps.contains("Starting"), "{ps}");
    assert_eq!(backends(&lab, "lp_net", "web"), Ok(BTreeSet::new()));
    assert!(resolve(&lab, &client, "tasks.web").is_empty());
    // Its mark: the next probe passes.
    std::fs::write(mark(&id(&web)), b"").expect("mark");
    let web = wait_task(&lab, "web", "running, healthy", |t| {
        st(t, "state") == "running" && st(t, "health") == "healthy"
    });
    eprintln!("[{:>5.1}s] web healthy once its mark exists", at(t0));
    let first = id(&web);
    wait_until("web in the balancers", WAIT, || {
        backends(&lab, "lp_net", "web") == Ok([name(&web)].into())
    });
    wait_until("tasks.web answers", WAIT, || {
        resolve(&lab, &client, "tasks.web") == [lp_addr(&web)].into()
    });
    let ps = lab.swarmctl_ok(&["service", "ps", "web"]);
    assert!(ps.contains("(healthy)"), "{ps}");
    let answer = lab.swarmctl_ok(&[
        "task",
        "exec",
        &client,
        "--",
        "curl",
        "-s",
        "-m",
        "5",
        "http://web:8080/name",
    ]);
    assert_eq!(
        answer.trim(),
        first,
        "the VIP answers with the healthy task"
    );

    // 2. Its mark removed from inside the task: unhealthy, out of the balancers and DNS while
    //    it drains (still running), then FAILED with Docker's error, and replaced.
    let rm = lab.swarmctl(&[
        "task",
        "exec",
        &first,
        "--",
        "sh",
        "-c",
        &format!("rm {}", mark(&first).display()),
    ]);
    assert!(rm.success(), "{rm}");
    wait_for(
        "web unhealthy, out of balancers and DNS, still running",
        WAIT,
        || {
            let all = tasks(&lab, "web");
            let t = all.iter().find(|t| id(t) == first).ok_or("gone")?;
            let lb = backends(&lab, "lp_net", "web")?;
            let dns = resolve(&lab, &client, "tasks.web");
            if st(t, "health") == "unhealthy"
                && st(t, "state") == "running"
                && lb.is_empty()
                && dns.is_empty()
            {
                Ok(())
            } else {
                Err(format!("{t:#}\nlb {lb:?} dns {dns:?}"))
            }
        },
    );
    eprintln!("[{:>5.1}s] unhealthy: out of the balancers and DNS", at(t0));
    let failed = wait_for("web's first task failed", WAIT, || {
        let all = tasks(&lab, "web");
        let t = all.iter().find(|t| id(t) == first).ok_or("gone")?;
        (st(t, "state") == "failed")
            .then(|| t.clone())
            .ok_or_else(|| format!("{t:#}"))
    });
    assert_eq!(st(&failed, "err"), "unhealthy container", "{failed:#}");
    let ps = lab.swarmctl_ok(&["service", "ps", "web"]);
    assert!(ps.contains("\"unhealthy container\""), "{ps}");
    // The replacement starts as its predecessor did, and joins once healthy.
    let next = wait_task(&lab, "web", "a replacement, starting", |t| {
        id(t) != first && st(t, "state") == "starting" && t["status"]["pid"] != 0
    });
    std::fs::write(mark(&id(&next)), b"").expect("mark");
    let next = wait_task(&lab, "web", "the replacement healthy", |t| {
        st(t, "health") == "healthy"
    });
    wait_until("the replacement in the balancers", WAIT, || {
        backends(&lab, "lp_net", "web") == Ok([name(&next)].into())
    });
    eprintln!(
        "[{:>5.1}s] replaced; the new task joined once healthy",
        at(t0)
    );

    // 3. A health command that never returns: killed at its timeout, a failure; the task never
    //    runs and fails unhealthy.
    lab.swarmctl_ok(&[
        "service",
        "create",
        "--runtime",
        "process",
        "--name",
        "hang",
        "--restart-condition",
        "none",
        "--health-cmd",
        "sleep 100000",
        "--health-interval",
        "200ms",
        "--health-timeout",
        "500ms",
        "--health-retries",
        "2",
        "-d",
        "whoami",
        "--port",
        "9100",
    ]);
    let hung = wait_for("hang fails", WAIT, || {
        let all = tasks(&lab, "hang");
        match all.as_slice() {
            [t] if st(t, "state") == "failed" => Ok(t.clone()),
            _ => Err(format!("{all:#?}")),
        }
    });
    assert_eq!(st(&hung, "err"), "unhealthy container", "{hung:#}");
    assert_eq!(st(&hung, "health"), "unhealthy", "{hung:#}");
    eprintln!(
        "[{:>5.1}s] a hanging probe: killed at its timeout, failed",
        at(t0)
    );
}

#[ignore = "needs root"]
#[test]
fn a_draining_task_keeps_answering_its_established_connections() {
    if !root_or_skip() {
        return;
    }
    let t0 = Instant::now();
    let (lab, client) = lab_with_client("198.19.72.0/24");
    lab.swarmctl_ok(&[
        "service",
        "create",
        "--runtime",
        "process",
        "--name",
        "web",
        "--network",
        "lp_net",
        "--stop-drain",
        "10s",
        "-d",
        "whoami",
    ]);
    let web = wait_task(&lab, "web", "running", |t| st(t, "state") == "running");
    wait_until("web in the balancers", WAIT, || {
        backends(&lab, "lp_net", "web") == Ok([name(&web)].into())
    });
    let inspect = lab.swarmctl_ok(&["service", "inspect", "web", "--pretty"]);
    assert!(inspect.contains("StopDrain:     10s"), "{inspect}");
    eprintln!("[{:>5.1}s] web runs", at(t0));

    // One keep-alive connection to the VIP, from the client task: a request every 100 ms
    // until told to stop (a file), then one more; every answer printed.
    let dir = lab.root.join("drain");
    std::fs::create_dir_all(&dir).expect("dir");
    let (connected, go) = (dir.join("connected"), dir.join("go"));
    let script = format!(
        r#"
import http.client, os, time
c = http.client.HTTPConnection("web", 8080, timeout=5)
def ask():
    try:
        c.request("GET", "/name")
        return c.getresponse().read().decode()
    except Exception as e:
        return "FAIL " + repr(e)
print(ask(), flush=True)
open("{connected}", "w").close()
for _ in range(1200):
    if os.path.exists("{go}"):
        break
    print(ask(), flush=True)
    time.sleep(0.1)
print("after:", ask(), flush=True)
"#,
        connected = connected.display(),
        go = go.display()
    );
    let conn = {
        let (lab_root, name, client) = (lab.root.clone(), lab.name.clone(), client.clone());
        let swarmd_args = lab.swarmd_args.clone();
        std::thread::spawn(move || {
            let mut cmd = std::process::Command::new(shoal_tests::bin("swarmctl"));
            cmd.args(["lab", "exec", "manager1", "--name", &name, "--", "swarmctl"])
                .args(["task", "exec", &client, "--timeout", "180", "--"])
                .args(["/usr/bin/python3", "-c", &script])
                .env("SHOAL_LAB_DIR", &lab_root)
                .env("SHOAL_LAB_SWARMD_ARGS", &swarmd_args)
                .env_remove("SWARM_HOST");
            shoal_tests::run(&mut cmd, Duration::from_secs(200))
        })
    };
    wait_until("the connection is up", WAIT, || connected.exists());

    // Stop web: it leaves the balancers and DNS at once, and keeps running for its drain.
    lab.swarmctl_ok(&["service", "scale", "web=0", "-d"]);
    wait_for(
        "web out of the balancers and DNS, still running",
        WAIT,
        || {
            let all = tasks(&lab, "web");
            let t = all.iter().find(|t| id(t) == id(&web)).ok_or("gone")?;
            let lb = backends(&lab, "lp_net", "web")?;
            let dns = resolve(&lab, &client, "tasks.web");
            if t["desired_state"] != "running"
                && st(t, "state") == "running"
                && lb.is_empty()
                && dns.is_empty()
            {
                Ok(())
            } else {
                Err(format!("{t:#}\nlb {lb:?} dns {dns:?}"))
            }
        },
    );
    eprintln!(
        "[{:>5.1}s] web draining: out of the balancers and DNS",
        at(t0)
    );
    std::fs::write(&go, b"").expect("go");
    let out = conn.join().expect("the connection's thread");
    assert!(out.success(), "{out}");
    let answers: Vec<&str> = out.stdout.lines().collect();
    let last = answers.last().copied().unwrap_or_default();
    assert_eq!(last, format!("after: {}", id(&web)), "{out}");
    assert!(
        answers.iter().all(|a| a.ends_with(&id(&web))),
        "every answer from the draining task: {out}"
    );
    // It was still draining when it answered last, and then stops.
    let t = tasks(&lab, "web");
    assert!(t.iter().any(|t| id(t) == id(&web)), "{t:#?}");
    wait_until("web stopped after its drain", WAIT, || {
        tasks(&lab, "web")
            .iter()
            .all(|t| st(t, "state") == "shutdown")
    });
    eprintln!(
        "[{:>5.1}s] the established connection answered through the drain",
        at(t0)
    );
}

#[ignore = "needs root"]
#[test]
fn containers_are_probed_through_the_runtime() {
    if !root_or_skip() {
        return;
    }
    let Some(images) = demo_images_or_skip() else {
        return;
    };
    let t0 = Instant::now();
    let mut lab = Lab::new();
    lab.subnet = "198.19.73.0/24".into();
    lab.up_with_images(1, 0, &images);
    lab.swarmctl_ok(&[
        "service",
        "create",
        "-d",
        "--name",
        "box",
        "--health-cmd",
        "test -e /tmp/ok",
        "--health-interval",
        "300ms",
        "--health-retries",
        "2",
        "shoal/busybox",
        "sleep",
        "100000",
    ]);
    let t = wait_task(&lab, "box", "starting", |t| {
        st(t, "state") == "starting" && t["status"]["pid"] != 0
    });
    eprintln!("[{:>5.1}s] the container runs, starting", at(t0));
    let touch = lab.swarmctl(&["task", "exec", &id(&t), "--", "touch", "/tmp/ok"]);
    assert!(touch.success(), "{touch}");
    wait_task(&lab, "box", "healthy", |t| {
        st(t, "state") == "running" && st(t, "health") == "healthy"
    });
    let rm = lab.swarmctl(&["task", "exec", &id(&t), "--", "rm", "/tmp/ok"]);
    assert!(rm.success(), "{rm}");
    let failed = wait_for("box fails unhealthy", WAIT, || {
        let all = tasks(&lab, "box");
        let f = all.iter().find(|x| id(x) == id(&t)).ok_or("gone")?;
        (st(f, "state") == "failed")
            .then(|| f.clone())
            .ok_or_else(|| format!("{f:#}"))
    });
    assert_eq!(st(&failed, "err"), "unhealthy container");
    // Its replacement is a fresh container: no /tmp/ok, starting again.
    wait_task(&lab, "box", "a replacement, starting", |x| {
        id(x) != id(&t) && st(x, "state") == "starting"
    });
    eprintln!("[{:>5.1}s] unhealthy container failed and replaced", at(t0));
}
