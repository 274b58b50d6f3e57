//! The control plane end to end: 3 managers and 2 workers as real processes, a replicated
//! service scaled up and down, the raft leader killed, a worker killed, and every manager
//! stopped and restarted from its state dir.

use shoal_tests::{wait_for, Cluster, NetworkView, ServiceView, TaskView};
use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

fn step(t0: &Instant, what: &str) {
    eprintln!("[{:>5.1}s] {what}", t0.elapsed().as_secs_f64());
}

/// Prints what an operator would look at (visible with `--nocapture`).
fn show(c: &Cluster, via: usize, args: &[&str]) {
    let out = c.ctl_ok(via, args);
    eprintln!("$ swarmctl {}\n{}", args.join(" "), out.trim_end());
}

/// The cells of the table row whose column `col` is `key`.
fn row<'a>(table: &'a str, col: usize, key: &str) -> Vec<&'a str> {
    table
        .lines()
        .map(|l| {
            l.split("  ")
                .map(str::trim)
                .filter(|c| !c.is_empty())
                .collect::<Vec<_>>()
        })
        .find(|cells| cells.get(col) == Some(&key))
        .unwrap_or_else(|| panic!("no row with {key:?} in column {col}:\n{table}"))
}

fn ids<T>(items: &[T], f: impl Fn(&T) -> String) -> BTreeSet<String> {
    items.iter().map(f).collect()
}

fn per_node(tasks: &[TaskView]) -> BTreeMap<String, usize> {
    let mut m = BTreeMap::new();
    for t in tasks {
        *m.entry(t.node_id.clone()).or_insert(0) += 1;
    }
    m
}

/// Services (id, name, spec, published ports) and networks as they must survive failures:
/// everything but live counters and store versions.
type Catalog = (Vec<(String, String, String, String)>, Vec<NetworkView>);

fn catalog(c: &Cluster, via: usize) -> Catalog {
    let mut services: Vec<_> = c
        .service_ls(via)
        .into_iter()
        .map(|s: ServiceView| (s.id, s.name, s.spec.to_string(), s.ports.to_string()))
        .collect();
    services.sort();
    let mut networks: Vec<NetworkView> = c
        .network_ls(via)
        .into_iter()
        .map(|n| NetworkView { version: 0, ..n })
        .collect();
    networks.sort_by(|a, b| a.id.cmp(&b.id));
    (services, networks)
}

#[test]
fn three_managers_two_workers_survive_failures_and_restarts() {
    let t0 = Instant::now();
    let c = Cluster::start(3, 2);
    step(&t0, "3 managers + 2 workers Ready");
    let m = c.leader();

    // --- create: 5 replicas, one on each node ---
    let out = c.ctl_ok(
        m,
        &[
            "service",
            "create",
            "--runtime",
            "process",
            "--name",
            "web",
            "--replicas",
            "5",
            "sleep",
            "1000",
        ],
    );
    assert!(
        out.contains("converged"),
        "service create should follow the tasks until they converge:\n{out}"
    );
    let tasks = c.wait_running(m, "web", 5);
    assert_eq!(
        per_node(&tasks).len(),
        5,
        "5 tasks on 5 distinct nodes: {tasks:#?}"
    );
    assert_eq!(
        ids(&tasks, |t| t.slot.to_string()),
        ["1", "2", "3", "4", "5"].map(String::from).into(),
        "slots 1-5"
    );
    let ls = c.ctl_ok(m, &["service", "ls"]);
    assert_eq!(row(&ls, 1, "web")[3], "5/5", "service ls:\n{ls}");
    let table = c.ctl_ok(m, &["task", "ls"]);
    assert_eq!(
        table
            .lines()
            .filter(|l| l.contains(" web.") && l.contains("Running"))
            .count(),
        5,
        "task ls:\n{table}"
    );
    // Every manager answers, followers included (they catch up within a raft heartbeat).
    for i in c.managers() {
        wait_for(
            &format!("manager{} to list 5 running web tasks", i + 1),
            Duration::from_secs(5),
            || {
                let n = c
                    .service_ps(i, "web")
                    .iter()
                    .filter(|t| t.is_running())
                    .count();
                if n == 5 {
                    Ok(())
                } else {
                    Err(format!("{n} running"))
                }
            },
        );
    }
    step(&t0, "web: 5/5 on 5 nodes");

    // --- scale up: 10 replicas, spread two per node ---
    c.ctl_ok(m, &["service", "scale", "web=10"]);
    let ten = c.wait_running(m, "web", 10);
    assert!(
        per_node(&ten).values().all(|&n| n == 2),
        "spread evenly: {:?}",
        per_node(&ten)
    );
    step(&t0, "web: 10/10");

    // --- scale down: 2 replicas; the other 8 processes are stopped ---
    c.ctl_ok(m, &["service", "scale", "web=2"]);
    let two = c.wait_running(m, "web", 2);
    let kept = ids(&two, |t| t.id.clone());
    for t in ten.iter().filter(|t| !kept.contains(&t.id)) {
        wait_for(
            &format!("process of removed task {} to stop", t.name),
            Duration::from_secs(15),
            || match c.task_process(t) {
                Ok(()) => Err(format!("pid {} still runs", t.pid)),
                Err(_) => Ok(()),
            },
        );
    }
    let ls = c.ctl_ok(m, &["service", "ls"]);
    assert_eq!(row(&ls, 1, "web")[3], "2/2", "service ls:\n{ls}");
    step(&t0, "web: 2/2, 8 processes stopped");

    // --- network ls: the predefined networks and a user overlay, as Docker shows them ---
    c.ctl_ok(m, &["network", "create", "front"]);
    let nets = c.ctl_json(m, &["network", "ls"]);
    let mut shown: Vec<(String, String, String)> = nets
        .as_array()
        .expect("a list")
        .iter()
        .map(|n| {
            let f = |k: &str| n[k].as_str().unwrap_or_default().to_string();
            (f("name"), f("driver"), f("scope"))
        })
        .collect();
    shown.sort();
    let want = [
        ("bridge", "bridge", "local"),
        ("front", "overlay", "swarm"),
        ("host", "host", "local"),
        ("ingress", "overlay", "swarm"),
        ("none", "null", "local"),
        ("shoal_gwbridge", "bridge", "local"),
    ];
    let want: Vec<(String, String, String)> = want
        .iter()
        .map(|(a, b, c)| (a.to_string(), b.to_string(), c.to_string()))
        .collect();
    assert_eq!(shown, want, "network ls");

    // --- kill -9 the leader ---
    let before = catalog(&c, m);
    let live_before = c
        .service_ps(m, "web")
        .into_iter()
        .filter(TaskView::is_live)
        .collect::<Vec<_>>();
    let old = c.leader();
    let old_id = c.node_id(old);
    let old_name = c.node(old).hostname.clone();
    let killed_at = Instant::now();
    c.kill9(old);
    step(&t0, &format!("killed -9 the leader {old_name}"));
    let new = c.leader();
    assert_ne!(new, old);
    let failover = killed_at.elapsed();
    step(
        &t0,
        &format!("new leader {} after {failover:?}", c.node(new).hostname),
    );
    let view = wait_for(
        &format!("{old_name} to be Down/Unreachable"),
        Duration::from_secs(15),
        || {
            let nodes = c.node_ls(new);
            let o = nodes
                .iter()
                .find(|n| n.id == old_id)
                .ok_or("old leader not listed")?;
            if o.state == "down" && o.manager_status == "Unreachable" {
                Ok(nodes)
            } else {
                Err(format!("{old_name}: {} / {:?}", o.state, o.manager_status))
            }
        },
    );
    let leaders: Vec<_> = view
        .iter()
        .filter(|n| n.manager_status == "Leader")
        .map(|n| n.hostname.clone())
        .collect();
    // Under load leadership may move on again; what matters is one leader, not the dead one.
    assert_eq!(leaders.len(), 1, "exactly one leader: {view:#?}");
    assert_ne!(
        leaders[0], old_name,
        "the dead manager is not the leader: {view:#?}"
    );
    let table = c.ctl_ok(new, &["node", "ls"]);
    let old_row = row(&table, 1, &old_name);
    assert_eq!(
        (old_row[2], old_row.last().copied()),
        ("Down", Some("Unreachable")),
        "node ls:\n{table}"
    );
    assert_eq!(
        row(&table, 1, &c.node(new).hostname).last(),
        Some(&"Leader"),
        "node ls:\n{table}"
    );
    step(&t0, &format!("{old_name} shows Down / Unreachable"));
    show(&c, new, &["node", "ls"]);
    // Everything committed is still there, and the tasks that were not on the dead node kept
    // running untouched.
    assert_eq!(
        catalog(&c, new),
        before,
        "services and networks after failover"
    );
    let after = c.wait_running(new, "web", 2);
    let after_ids = ids(&after, |t| t.id.clone());
    for t in live_before.iter().filter(|t| t.node_id != old_id) {
        assert!(
            after_ids.contains(&t.id),
            "task {} (not on the dead leader) should still run: {after:#?}",
            t.name
        );
    }
    assert!(
        after.iter().all(|t| t.node_id != old_id),
        "no task on the dead node: {after:#?}"
    );
    // Writes work again, through the leader and through a follower (forwarded).
    c.ctl_ok(new, &["network", "create", "after-failover"]);
    let follower = c
        .managers()
        .into_iter()
        .find(|&i| i != new && c.is_running(i))
        .expect("a live follower");
    c.ctl_ok(follower, &["network", "create", "via-follower"]);
    let names = ids(&c.network_ls(new), |n| n.name.clone());
    assert!(
        names.contains("after-failover") && names.contains("via-follower"),
        "{names:?}"
    );
    step(&t0, "writes work after failover");

    // --- kill -9 a worker that runs a task ---
    let mut replicas = 2;
    let running = c.wait_running(new, "web", replicas);
    let on_worker = |tasks: &[TaskView]| {
        tasks.iter().find_map(|t| {
            c.index_of(&t.node_id)
                .filter(|&i| !c.node(i).manager)
                .map(|i| (i, t.clone()))
        })
    };
    let (w, victim) = match on_worker(&running) {
        Some(x) => x,
        None => {
            // Placement depends on node ids; with both tasks on managers, one more replica per
            // live node puts a task on each worker.
            replicas = 4;
            c.ctl_ok(new, &["service", "scale", "web=4"]);
            on_worker(&c.wait_running(new, "web", replicas))
                .expect("a task on a worker after scaling to 4")
        }
    };
    let w_id = c.node_id(w);
    let w_name = c.node(w).hostname.clone();
    c.kill9(w);
    step(
        &t0,
        &format!("killed -9 {w_name}, which ran {}", victim.name),
    );
    wait_for(
        &format!("{w_name} to be Down"),
        Duration::from_secs(15),
        || {
            let n = c
                .node_ls(new)
                .into_iter()
                .find(|n| n.id == w_id)
                .ok_or("worker not listed")?;
            if n.state == "down" {
                Ok(())
            } else {
                Err(n.state)
            }
        },
    );
    let table = c.ctl_ok(new, &["node", "ls"]);
    assert_eq!(row(&table, 1, &w_name)[2], "Down", "node ls:\n{table}");
    let healed = c.wait_running(new, "web", replicas);
    assert!(
        healed
            .iter()
            .all(|t| t.node_id != w_id && t.node_id != old_id),
        "only live nodes run web: {healed:#?}"
    );
    let replacement = healed
        .iter()
        .find(|t| t.slot == victim.slot)
        .expect("the slot is filled again");
    assert_ne!(
        replacement.id, victim.id,
        "a replacement is a new task in the same slot"
    );
    let history = c.service_ps(new, "web");
    let old_task = history
        .iter()
        .find(|t| t.id == victim.id)
        .expect("the lost task stays in the slot's history");
    assert_ne!(
        old_task.desired, "running",
        "the lost task is retired: {old_task:?}"
    );
    step(
        &t0,
        &format!("{w_name} Down; web.{} runs again elsewhere", victim.slot),
    );
    show(&c, new, &["service", "ps", "web"]);

    // --- stop and restart every manager ---
    let before = catalog(&c, new);
    let live_before = c
        .service_ps(new, "web")
        .into_iter()
        .filter(TaskView::is_live)
        .collect::<Vec<_>>();
    let nodes_before: BTreeSet<(String, String, String)> = c
        .node_ls(new)
        .into_iter()
        .map(|n| (n.id, n.hostname, n.role))
        .collect();
    for i in c.managers() {
        if c.is_running(i) {
            let t = Instant::now();
            c.stop(i);
            step(
                &t0,
                &format!("stopped manager{} (SIGTERM) in {:?}", i + 1, t.elapsed()),
            );
        }
    }
    for i in c.managers() {
        c.restart(i);
    }
    c.restart(w);
    c.wait_ready();
    let m = c.leader();
    step(
        &t0,
        &format!("all managers restarted; leader {}", c.node(m).hostname),
    );
    show(&c, m, &["node", "ls"]);
    // A restarted manager may serve reads a moment before it has applied its whole log.
    wait_for(
        "the same services, networks and nodes after restarting every manager",
        Duration::from_secs(10),
        || {
            let now = catalog(&c, m);
            let nodes: BTreeSet<(String, String, String)> = c
                .node_ls(m)
                .into_iter()
                .map(|n| (n.id, n.hostname, n.role))
                .collect();
            if now == before && nodes == nodes_before {
                Ok(())
            } else {
                Err(format!(
                    "before: {before:#?}\n{nodes_before:#?}\nnow: {now:#?}\n{nodes:#?}"
                ))
            }
        },
    );
    let all = c.service_ps(m, "web");
    let all_ids = ids(&all, |t| t.id.clone());
    for t in &live_before {
        assert!(
            all_ids.contains(&t.id),
            "task {} is gone after the restart: {all:#?}",
            t.name
        );
    }
    let running = c.wait_running(m, "web", replicas);
    let running_ids = ids(&running, |t| t.id.clone());
    // Tasks on the surviving worker never stopped: same task, same process.
    let survivor = c
        .workers()
        .into_iter()
        .find(|&i| i != w)
        .expect("the other worker");
    let survivor_id = c.node_id(survivor);
    for t in live_before.iter().filter(|t| t.node_id == survivor_id) {
        assert!(
            running_ids.contains(&t.id),
            "task {} on {} should have kept running: {running:#?}",
            t.name,
            c.node(survivor).hostname
        );
        let now = running.iter().find(|r| r.id == t.id).expect("listed");
        assert_eq!(now.pid, t.pid, "same process for {}", t.name);
    }
    // And the cluster takes writes again.
    c.ctl_ok(m, &["network", "create", "after-restart"]);
    c.ctl_ok(m, &["service", "scale", "web=3"]);
    c.wait_running(m, "web", 3);
    step(&t0, "writes work after restarting every manager");
    show(&c, m, &["service", "ps", "web"]);
    show(&c, m, &["network", "ls"]);
}
