//! Containers from the demo images on a `swarmctl lab` of 1 manager and 2 workers (root), for
//! what the README tour does not show: cgroup limits as the kernel holds them, `service logs`
//! of a container, a `swarmd` restart that adopts its node's containers (same tasks, same init
//! processes, still answering), an unknown image's error in `service ps`, digest pinning (a tag
//! pushed again mid-run leaves the replicas on the pinned bytes until `service update --image`)
//! and the routing mesh answering on every node's address from the host endpoint. The article's
//! sections 3.2–3.4 with containers (5 replicas, names from inside a container, `task exec -it`)
//! are `lab_containers_article.rs`.
//!
//! Needs the demo images (`deploy/test.sh` builds them first, as root, with `deploy/images.sh`)
//! and `skopeo` (to push a tag again). Traffic stays inside the lab: the host only talks to the
//! lab's own addresses, and only while its link is up.

use shoal_netlib::root::root_or_skip;
use shoal_tests::lab::{demo_images, demo_images_or_skip, Lab};
use shoal_tests::{run, wait_for, NodeView, Output, TaskView};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

/// A subnet of its own (Lab::new picks among 198.19.10-209.0/24; lab_containers_article has
/// .232, lab_registry .240, the DNS/LB tests .250 and .251).
const SUBNET: &str = "198.19.236.0/24";
const REGISTRY: &str = "198.19.236.254:5000";
const MEMORY: u64 = 64 << 20;

/// Elapsed seconds since `t0`, for the timings printed along the way.
fn at(t0: Instant) -> f64 {
    t0.elapsed().as_secs_f64()
}

/// Every task of `service` (history included), parsed and raw (the raw one has the spec).
fn tasks(lab: &Lab, service: &str) -> Result<Vec<(TaskView, serde_json::Value)>, String> {
    let out = lab.swarmctl(&["service", "ps", service, "--format", "json"]);
    if !out.success() {
        return Err(out.to_string());
    }
    let v: serde_json::Value =
        serde_json::from_str(&out.stdout).map_err(|e| format!("{e}: {out}"))?;
    Ok(v.as_array()
        .into_iter()
        .flatten()
        .map(|t| (TaskView::from_json(t), t.clone()))
        .collect())
}

/// The service's tasks wanted and seen running, once there are exactly `n` and `ok` holds for
/// each (at most `timeout`).
fn running_where(
    lab: &Lab,
    service: &str,
    n: usize,
    timeout: Duration,
    ok: impl Fn(&serde_json::Value) -> bool,
) -> Vec<(TaskView, serde_json::Value)> {
    wait_for(&format!("{n} running tasks of {service}"), timeout, || {
        let all = tasks(lab, service)?;
        let live: Vec<_> = all
            .iter()
            .filter(|(t, raw)| t.is_running() && ok(raw))
            .cloned()
            .collect();
        let others = all
            .iter()
            .filter(|(t, _)| t.is_live() && !t.is_running())
            .count();
        if live.len() == n && others == 0 {
            Ok(live)
        } else {
            let seen: Vec<String> = all
                .iter()
                .map(|(t, raw)| {
                    format!(
                        "{} {}/{} {} {}",
                        t.name, t.desired, t.state, raw["spec"]["image_digest"], t.err
                    )
                })
                .collect();
            Err(seen.join("; "))
        }
    })
}

fn running(lab: &Lab, service: &str, n: usize) -> Vec<TaskView> {
    running_where(lab, service, n, Duration::from_secs(60), |_| true)
        .into_iter()
        .map(|(t, _)| t)
        .collect()
}

/// `swarmctl WORDS… TAIL…` from manager1, which must succeed (`words`: split at spaces).
fn swarmctl(lab: &Lab, words: &str, tail: &[&str]) -> String {
    let mut args: Vec<&str> = words.split_whitespace().collect();
    args.extend(tail);
    lab.swarmctl_ok(&args)
}

/// Node id → host name.
fn hostnames(lab: &Lab) -> HashMap<String, String> {
    let v: serde_json::Value =
        serde_json::from_str(&lab.swarmctl_ok(&["node", "ls", "--format", "json"])).expect("json");
    NodeView::list(&v)
        .into_iter()
        .map(|n| (n.id, n.hostname))
        .collect()
}

/// `swarmctl task exec TASK -- CMD…` from manager1.
fn exec(lab: &Lab, task: &str, cmd: &[&str]) -> Output {
    let mut args = vec!["task", "exec", task, "--"];
    args.extend(cmd);
    lab.swarmctl(&args)
}

/// A node's state directory (from `lab.json`).
fn state_dir(lab: &Lab, node: &str) -> PathBuf {
    let file = lab.file();
    let n = file["nodes"]
        .as_array()
        .expect("nodes")
        .iter()
        .find(|n| n["name"] == node)
        .unwrap_or_else(|| panic!("no node {node} in {file}"));
    PathBuf::from(n["state_dir"].as_str().expect("state_dir"))
}

/// The container init's pid of a task, as the runtime wrote it (`bundle/init.pid`).
fn init_pid(state: &Path, task_id: &str) -> u32 {
    let p = state.join("tasks").join(task_id).join("bundle/init.pid");
    let text = std::fs::read_to_string(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
    text.trim()
        .parse()
        .unwrap_or_else(|e| panic!("{}: {e}: {text:?}", p.display()))
}

/// The process's start time (field 22 of `/proc/PID/stat`): a pid reused by another process
/// would have another.
fn start_time(pid: u32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let (_, rest) = stat.rsplit_once(')')?;
    rest.split_whitespace().nth(19)?.parse().ok()
}

/// A file of the cgroup `pid` is in, read from the host (what the kernel enforces): `v1` in
/// `controller`'s hierarchy on cgroup v1, else `v2` in the unified one (`/proc/PID/cgroup`
/// lines are `id:controllers:path`, cgroups(7)).
fn cgroup_file(pid: u32, controller: &str, v1: &str, v2: &str) -> String {
    let text = std::fs::read_to_string(format!("/proc/{pid}/cgroup")).expect("/proc/PID/cgroup");
    let root = Path::new("/sys/fs/cgroup");
    let is_v1 = root.join(controller).is_dir();
    let path = text
        .lines()
        .filter_map(|line| {
            let mut parts = line.splitn(3, ':');
            let (_, ctrl, p) = (parts.next()?, parts.next()?, parts.next()?);
            let p = p.trim_start_matches('/');
            if is_v1 && ctrl.split(',').any(|c| c == controller) {
                Some(root.join(controller).join(p).join(v1))
            } else if !is_v1 && ctrl.is_empty() {
                Some(root.join(p).join(v2))
            } else {
                None
            }
        })
        .next()
        .unwrap_or_else(|| panic!("no {controller} cgroup for {pid}:\n{text}"));
    std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        .trim()
        .to_string()
}

/// A node's swarmd pid (from `lab.json`).
fn swarmd_pid(lab: &Lab, node: &str) -> Option<u64> {
    let file = lab.file();
    file["nodes"]
        .as_array()?
        .iter()
        .find(|n| n["name"] == node)?["pid"]
        .as_u64()
}

/// `curl URL` from the host, only while the lab's link is there (once it is gone, the lab's
/// addresses would be reached through the host's default route).
fn host_curl(lab: &Lab, url: &str) -> Output {
    let link = format!("swlab-{}", lab.name);
    assert!(
        Path::new("/sys/class/net").join(&link).exists(),
        "the lab's link {link} is gone: not connecting to {url}"
    );
    run(
        Command::new("curl").args(["-s", "-m", "3", url]),
        Duration::from_secs(10),
    )
}

/// `skopeo copy` of `image` from the demo layout to the lab registry's `dest`.
fn push(image: &str, dest: &str) {
    let out = run(
        Command::new("skopeo").args([
            "copy",
            "--quiet",
            "--dest-tls-verify=false",
            &format!("oci:{}:{image}", demo_images().display()),
            &format!("docker://{REGISTRY}/{dest}"),
        ]),
        Duration::from_secs(60),
    );
    assert!(out.success(), "{out}");
}

/// The digest `service inspect --pretty` shows (`Image: IMAGE@sha256:…`).
fn pinned(lab: &Lab, service: &str, image: &str) -> String {
    let pretty = lab.swarmctl_ok(&["service", "inspect", "--pretty", service]);
    let line = pretty
        .lines()
        .find(|l| l.trim_start().starts_with("Image:"))
        .unwrap_or_else(|| panic!("no Image line:\n{pretty}"));
    let shown = line.trim_start().trim_start_matches("Image:").trim();
    let digest = shown
        .strip_prefix(&format!("{image}@"))
        .unwrap_or_else(|| panic!("{image} is not pinned: {line}"));
    assert!(
        digest.starts_with("sha256:") && digest.len() == 71,
        "{line}"
    );
    digest.to_string()
}

#[ignore = "needs root"]
#[test]
fn containers_limits_logs_adoption_errors_pinning_and_mesh() {
    if !root_or_skip() {
        return;
    }
    let Some(images) = demo_images_or_skip() else {
        return;
    };
    let t0 = Instant::now();
    let mut lab = Lab::new();
    lab.subnet = SUBNET.into();
    lab.up_with_images(1, 2, &images);
    eprintln!("[{:>5.1}s] lab up", at(t0));
    let nodes: Vec<(String, String)> = lab.file()["nodes"]
        .as_array()
        .expect("nodes")
        .iter()
        .map(|n| {
            (
                n["name"].as_str().expect("name").to_string(),
                n["address"].as_str().expect("address").to_string(),
            )
        })
        .collect();
    assert_eq!(nodes.len(), 3, "{nodes:?}");

    // web first, on empty nodes: the spread puts one replica on each.
    lab.swarmctl_ok(&["network", "create", "-d", "overlay", "ct_net"]);
    swarmctl(
        &lab,
        concat!(
            "service create -d --name web --replicas 3 --network ct_net --publish 8080:8080 ",
            "shoal/whoami"
        ),
        &[],
    );
    swarmctl(
        &lab,
        concat!(
            "service create -d --name hello --network ct_net ",
            "--constraint node.hostname==manager1 shoal/busybox sh -c"
        ),
        &["echo hello from $HOSTNAME; sleep 100000"],
    );
    swarmctl(
        &lab,
        concat!(
            "service create -d --name lim --limit-memory 64M --limit-cpu 0.5 ",
            "--constraint node.hostname==worker1 shoal/busybox sleep 100000"
        ),
        &[],
    );
    let web = running(&lab, "web", 3);
    let hello = running(&lab, "hello", 1).remove(0);
    let lim = running(&lab, "lim", 1).remove(0);
    eprintln!("[{:>5.1}s] web, hello and lim running", at(t0));
    let names = hostnames(&lab);
    let mut web_nodes: Vec<&str> = web.iter().map(|t| names[&t.node_id].as_str()).collect();
    web_nodes.sort();
    assert_eq!(web_nodes, ["manager1", "worker1", "worker2"], "{web:?}");

    // --- 1. cgroup limits: the kernel's values for the container's init ---
    let worker1 = state_dir(&lab, "worker1");
    let lim_pid = init_pid(&worker1, &lim.id);
    let mem: u64 = cgroup_file(lim_pid, "memory", "memory.limit_in_bytes", "memory.max")
        .parse()
        .expect("a number");
    assert_eq!(mem, MEMORY, "the memory limit of lim's cgroup");
    let cpu = if Path::new("/sys/fs/cgroup/cpu").exists() {
        let quota = cgroup_file(lim_pid, "cpu", "cpu.cfs_quota_us", "");
        let period = cgroup_file(lim_pid, "cpu", "cpu.cfs_period_us", "");
        format!("{quota} {period}")
    } else {
        cgroup_file(lim_pid, "cpu", "", "cpu.max")
    };
    assert_eq!(
        cpu, "50000 100000",
        "0.5 CPU: quota and period of lim's cgroup"
    );
    // And the container sees its own cgroup's limit (v1: its memory hierarchy is mounted at
    // /sys/fs/cgroup/memory; v2: its cgroup namespace's root).
    let inside = exec(
        &lab,
        "lim.1",
        &[
            "sh",
            "-c",
            concat!(
                "cat /sys/fs/cgroup/memory/memory.limit_in_bytes 2>/dev/null ",
                "|| cat /sys/fs/cgroup/memory.max"
            ),
        ],
    );
    assert!(inside.success(), "{inside}");
    assert_eq!(inside.stdout.trim(), MEMORY.to_string(), "{inside}");
    eprintln!(
        "[{:>5.1}s] limits checked (pid {lim_pid}: {mem} bytes, cpu {cpu})",
        at(t0)
    );

    // --- 2. logs: the container's stdout, under its task's name ---
    let want = format!("hello from {}", hello.id);
    let logs = wait_for(
        "hello's line in service logs",
        Duration::from_secs(20),
        || {
            let out = lab.swarmctl(&["service", "logs", "hello"]);
            match out.stdout.lines().find(|l| l.contains(&want)) {
                Some(l) if out.success() => Ok(l.to_string()),
                _ => Err(out.to_string()),
            }
        },
    );
    assert!(
        logs.starts_with("hello.1") && logs.contains("@manager1") && logs.contains(" | "),
        "the task's name and node before the line: {logs}"
    );
    eprintln!("[{:>5.1}s] logs: {logs}", at(t0));

    // --- 3. a swarmd restart adopts its containers ---
    let web1 = web
        .iter()
        .find(|t| names[&t.node_id] == "worker1")
        .expect("a web replica on worker1")
        .clone();
    let web1_addr = web1.addr_on("ct_net").expect("web's ct_net address");
    let url = format!("http://{web1_addr}:8080/name");
    let answer = |when: &str| {
        wait_for(
            &format!("web's worker1 replica answering hello ({when})"),
            Duration::from_secs(20),
            || {
                // `timeout`, not `wget -T`: Debian's busybox 1.35 wget segfaults with -T.
                let out = exec(&lab, "hello.1", &["timeout", "5", "wget", "-qO-", &url]);
                if out.success() && out.stdout.trim() == web1.id {
                    Ok(())
                } else {
                    Err(out.to_string())
                }
            },
        )
    };
    answer("before the restart");
    let on_worker1: Vec<(String, u32, u64)> = [&web1, &lim]
        .iter()
        .map(|t| {
            let pid = init_pid(&worker1, &t.id);
            (t.id.clone(), pid, start_time(pid).expect("the init runs"))
        })
        .collect();
    let swarmd_before = swarmd_pid(&lab, "worker1");
    let restart = lab.lab_ok(&["restart", "worker1"], &[]);
    eprintln!("[{:>5.1}s] worker1 restarted: {}", at(t0), restart.trim());
    assert_ne!(swarmd_pid(&lab, "worker1"), swarmd_before, "a new swarmd");
    wait_for("worker1 Ready again", Duration::from_secs(30), || {
        let v: serde_json::Value =
            serde_json::from_str(&lab.swarmctl_ok(&["node", "ls", "--format", "json"]))
                .map_err(|e| e.to_string())?;
        let n = NodeView::list(&v);
        match n.iter().find(|n| n.hostname == "worker1") {
            Some(n) if n.state == "ready" => Ok(()),
            other => Err(format!("{other:?}")),
        }
    });
    // The same tasks, still running, with the same init processes: right after the restart,
    // and again at the end (a swarmd that removed them only once its first assignments came
    // would pass the first check).
    let adopted = |when: &str| {
        for (service, task) in [("web", &web1), ("lim", &lim)] {
            let now = tasks(&lab, service).expect("service ps");
            let t = now
                .iter()
                .map(|(t, _)| t)
                .find(|t| t.id == task.id)
                .unwrap_or_else(|| panic!("{} is gone ({when}): {now:?}", task.id));
            assert!(t.is_running(), "{when}: {t:?}");
            assert_eq!(
                now.iter().filter(|(t, _)| t.slot == task.slot).count(),
                1,
                "no replacement for {} ({when}): {now:?}",
                task.name
            );
        }
        for (id, pid, started) in &on_worker1 {
            assert_eq!(init_pid(&worker1, id), *pid, "{id}'s init pid ({when})");
            assert_eq!(
                start_time(*pid),
                Some(*started),
                "{id}'s init ({pid}) is the same process ({when})"
            );
        }
        answer(when);
    };
    adopted("after the restart");
    running(&lab, "web", 3);
    eprintln!("[{:>5.1}s] worker1's containers adopted", at(t0));

    // --- 4. an unknown image: the task's error, retried, nothing else touched ---
    let ghost = lab.swarmctl(&["service", "create", "-d", "--name", "ghost", "shoal/nope"]);
    assert!(ghost.success(), "{ghost}");
    let ps = wait_for(
        "ghost's No such image, retried",
        Duration::from_secs(60),
        || {
            let out = lab.swarmctl(&["service", "ps", "ghost", "--no-trunc"]);
            let failed = out
                .stdout
                .lines()
                .filter(|l| l.contains("No such image"))
                .count();
            if out.success() && failed >= 2 {
                Ok(out.stdout)
            } else {
                Err(out.to_string())
            }
        },
    );
    assert!(ps.contains("shoal/nope"), "{ps}");
    let header = ps.lines().next().unwrap_or_default();
    let err_col = header.find("ERROR").expect("an ERROR column");
    let line = ps
        .lines()
        .find(|l| l.contains("No such image"))
        .unwrap_or_default();
    assert!(
        line.get(err_col..)
            .unwrap_or_default()
            .contains("No such image"),
        "in the ERROR column:\n{ps}"
    );
    running(&lab, "web", 3);
    running(&lab, "hello", 1);
    running(&lab, "lim", 1);
    lab.swarmctl_ok(&["service", "rm", "ghost"]);
    eprintln!("[{:>5.1}s] ghost: No such image, retried; removed", at(t0));

    // --- 5. digest pinning: a tag pushed again leaves the replicas on the pinned bytes ---
    push("shoal/busybox:latest", "shoal/pin:1");
    // `--entrypoint sleep`: the same command in both images (shoal/whoami's entrypoint is
    // /whoami; its busybox has `sleep`).
    swarmctl(
        &lab,
        "service create -d --name pin --replicas 2 --entrypoint sleep shoal/pin:1 100000",
        &[],
    );
    let d1 = pinned(&lab, "pin", "shoal/pin:1");
    let digest_is =
        |d: String| move |raw: &serde_json::Value| raw["spec"]["image_digest"] == d.as_str();
    running_where(
        &lab,
        "pin",
        2,
        Duration::from_secs(60),
        digest_is(d1.clone()),
    );
    push("shoal/whoami:latest", "shoal/pin:1");
    lab.swarmctl_ok(&["service", "scale", "pin=3"]);
    let pin = running_where(
        &lab,
        "pin",
        3,
        Duration::from_secs(60),
        digest_is(d1.clone()),
    );
    assert_eq!(
        pinned(&lab, "pin", "shoal/pin:1"),
        d1,
        "scaling keeps the digest"
    );
    for (t, _) in &pin {
        let out = exec(
            &lab,
            &t.id,
            &["sh", "-c", "test -e /whoami && echo whoami || echo busybox"],
        );
        assert_eq!(
            out.stdout.trim(),
            "busybox",
            "{} runs the pinned image: {out}",
            t.name
        );
    }
    eprintln!(
        "[{:>5.1}s] pin: 3 replicas on {d1} after the tag moved",
        at(t0)
    );
    lab.swarmctl_ok(&["service", "update", "-d", "--image", "shoal/pin:1", "pin"]);
    let d2 = pinned(&lab, "pin", "shoal/pin:1");
    assert_ne!(d2, d1, "update --image resolves the tag again");
    let pin2 = running_where(
        &lab,
        "pin",
        3,
        Duration::from_secs(90),
        digest_is(d2.clone()),
    );
    for (t, _) in &pin2 {
        assert!(
            pin.iter().all(|(old, _)| old.id != t.id),
            "{} was replaced",
            t.name
        );
        let out = exec(
            &lab,
            &t.id,
            &["sh", "-c", "test -e /whoami && echo whoami || echo busybox"],
        );
        assert_eq!(
            out.stdout.trim(),
            "whoami",
            "{} runs the new image: {out}",
            t.name
        );
    }
    eprintln!("[{:>5.1}s] pin: updated to {d2}", at(t0));

    adopted("at the end");

    // --- 6. the routing mesh answers on every node's address from the host endpoint ---
    // Round robin (`numgen inc`, per node): three connections to one node reach the three
    // replicas, two of them on other nodes.
    let mut web_ids: Vec<String> = web.iter().map(|t| t.id.clone()).collect();
    web_ids.sort();
    for (node, addr) in &nodes {
        let url = format!("http://{addr}:8080/name");
        let mut got = Vec::new();
        for i in 0..web_ids.len() {
            got.push(wait_for(
                &format!("{url} ({node}) from the host, request {i}"),
                Duration::from_secs(20),
                || {
                    let out = host_curl(&lab, &url);
                    let name = out.stdout.trim().to_string();
                    if out.success() && web_ids.contains(&name) {
                        Ok(name)
                    } else {
                        Err(out.to_string())
                    }
                },
            ));
        }
        eprintln!("[{:>5.1}s] {url} ({node}): {got:?}", at(t0));
        got.sort();
        assert_eq!(got, web_ids, "{node}'s mesh reaches every replica");
    }
    eprintln!("[{:>5.1}s] done", at(t0));
}
