//! Services end to end: logs, restart policies, drain, global mode and placement constraints,
//! on small clusters of real swarmd processes.

use shoal_tests::{wait_for, Cluster, TaskView};
use std::collections::BTreeSet;
use std::time::{Duration, Instant};

fn step(t0: &Instant, what: &str) {
    eprintln!("[{:>5.1}s] {what}", t0.elapsed().as_secs_f64());
}

fn nodes_of(tasks: &[TaskView]) -> BTreeSet<String> {
    tasks.iter().map(|t| t.node_id.clone()).collect()
}

#[test]
fn logs_and_restart_policies() {
    let t0 = Instant::now();
    let c = Cluster::start(1, 1);
    let m = 0;
    step(&t0, "1 manager + 1 worker Ready");

    // --- service logs: what the tasks print, prefixed with task and node ---
    let script =
        "echo hello-from-$SHOAL_TASK_SLOT; echo oops-from-$SHOAL_TASK_SLOT >&2; exec sleep 1000";
    c.ctl_ok(
        m,
        &[
            "service",
            "create",
            "--runtime",
            "process",
            "--name",
            "hello",
            "--replicas",
            "2",
            "sh",
            "-c",
            script,
        ],
    );
    let tasks = c.wait_running(m, "hello", 2);
    let hostname = |t: &TaskView| {
        c.node(c.index_of(&t.node_id).expect("known node"))
            .hostname
            .clone()
    };
    let out = wait_for(
        "both tasks' output in service logs",
        Duration::from_secs(15),
        || {
            let out = c.ctl(m, &["service", "logs", "hello"]);
            if out.success()
                && out.stdout.contains("hello-from-1")
                && out.stdout.contains("hello-from-2")
            {
                Ok(out)
            } else {
                Err(out.to_string())
            }
        },
    );
    for t in &tasks {
        // As Docker prints it: the task id cut to 12 characters.
        let short = t.name.replace(&t.id, &t.id[..12]);
        let prefix = format!("{short}@{}", hostname(t));
        let line = out
            .stdout
            .lines()
            .find(|l| l.starts_with(&prefix))
            .unwrap_or_else(|| panic!("no line for {prefix}:\n{out}"));
        assert!(
            line.ends_with(&format!("| hello-from-{}", t.slot)),
            "stdout line of {prefix}: {line:?}"
        );
        let err = out
            .stderr
            .lines()
            .find(|l| l.starts_with(&prefix))
            .unwrap_or_else(|| panic!("no stderr line for {prefix}:\n{out}"));
        assert!(
            err.ends_with(&format!("| oops-from-{}", t.slot)),
            "stderr line of {prefix}: {err:?}"
        );
    }
    // One task's logs, by task id.
    let one = c.ctl_ok(m, &["service", "logs", &tasks[0].id]);
    assert!(
        one.contains(&format!("hello-from-{}", tasks[0].slot)),
        "{one}"
    );
    assert!(
        !one.contains(&format!("hello-from-{}", tasks[1].slot)),
        "only that task's lines:\n{one}"
    );
    let json = c.ctl_json(m, &["service", "logs", "hello"]);
    let lines = json["lines"].as_array().expect("lines");
    assert!(
        lines
            .iter()
            .any(|l| l["data"] == "hello-from-1" && l["stream"] == "stdout"),
        "{json:#}"
    );
    step(&t0, "service logs show both tasks' stdout and stderr");

    // --- restart policies: `none` leaves a crashed task failed; the default replaces it ---
    c.ctl_ok(
        m,
        &[
            "service",
            "create",
            "--runtime",
            "process",
            "-d",
            "--name",
            "once",
            "--restart-condition",
            "none",
            "sh",
            "-c",
            "exit 3",
        ],
    );
    c.ctl_ok(
        m,
        &[
            "service",
            "create",
            "--runtime",
            "process",
            "-d",
            "--name",
            "crashy",
            "sh",
            "-c",
            "exit 3",
        ],
    );
    // The default policy (condition any, 1s delay) keeps replacing crashy's task in slot 1:
    // wait for two replacements. `service ps` lists the newest task of a slot first.
    let crashy = wait_for(
        "crashy's task to be replaced twice",
        Duration::from_secs(30),
        || {
            let tasks = c.service_ps(m, "crashy");
            if tasks.len() >= 3 {
                Ok(tasks)
            } else {
                Err(format!("{tasks:#?}"))
            }
        },
    );
    assert!(
        crashy.iter().all(|t| t.slot == 1),
        "restarts stay in slot 1: {crashy:#?}"
    );
    assert_eq!(
        crashy
            .iter()
            .map(|t| t.id.clone())
            .collect::<BTreeSet<_>>()
            .len(),
        crashy.len(),
        "each restart is a new task"
    );
    for t in &crashy[1..] {
        assert_eq!(
            (t.state.as_str(), t.exit_code),
            ("failed", Some(3)),
            "{t:?}"
        );
        assert!(t.err.contains('3'), "a failed task says why: {t:?}");
        assert_ne!(t.desired, "running", "a replaced task is retired: {t:?}");
    }
    assert!(
        crashy.iter().filter(|t| t.is_live()).count() <= 1,
        "one live task per slot: {crashy:#?}"
    );
    let table = c.ctl_ok(m, &["service", "ps", "crashy"]);
    assert!(
        table.contains("\\_ crashy.1"),
        "older tasks shown under the slot:\n{table}"
    );
    // By now `once` has had the same time to be restarted, and was not.
    let once = c.service_ps(m, "once");
    assert_eq!(
        once.len(),
        1,
        "restart-condition none: never replaced: {once:#?}"
    );
    assert_eq!(
        (once[0].state.as_str(), once[0].exit_code),
        ("failed", Some(3)),
        "{once:#?}"
    );
    let table = c.ctl_ok(m, &["service", "ps", "once"]);
    assert!(
        table.contains("Failed") && table.contains('3'),
        "service ps once:\n{table}"
    );
    let svc = c
        .service_ls(m)
        .into_iter()
        .find(|s| s.name == "once")
        .expect("once listed");
    assert_eq!(svc.running, 0, "{svc:?}");
    step(
        &t0,
        "restart policies: none stays failed, default restarts in the same slot",
    );
}

#[test]
fn placement_drain_global_and_constraints() {
    let t0 = Instant::now();
    let c = Cluster::start(1, 2);
    let m = 0;
    let all: BTreeSet<String> = (0..3).map(|i| c.node_id(i)).collect();
    let workers: BTreeSet<String> = c.workers().into_iter().map(|i| c.node_id(i)).collect();
    step(&t0, "1 manager + 2 workers Ready");

    // --- global: one task per node ---
    c.ctl_ok(
        m,
        &[
            "service",
            "create",
            "--runtime",
            "process",
            "--name",
            "agent",
            "--mode",
            "global",
            "sleep",
            "1000",
        ],
    );
    let agent = c.wait_running(m, "agent", 3);
    assert_eq!(
        nodes_of(&agent),
        all,
        "one agent task on every node: {agent:#?}"
    );
    let ls = c.ctl_ok(m, &["service", "ls"]);
    let line = ls
        .lines()
        .find(|l| l.contains(" agent "))
        .unwrap_or_else(|| panic!("{ls}"));
    assert!(
        line.contains("global") && line.contains("3/3"),
        "service ls:\n{ls}"
    );
    step(&t0, "global service: 3 tasks on 3 nodes");

    // --- a constraint: workers only ---
    c.ctl_ok(
        m,
        &[
            "service",
            "create",
            "--runtime",
            "process",
            "--name",
            "back",
            "--replicas",
            "4",
            "--constraint",
            "node.role==worker",
            "sleep",
            "1000",
        ],
    );
    let back = c.wait_running(m, "back", 4);
    assert_eq!(
        nodes_of(&back),
        workers,
        "node.role==worker: only (and both) workers: {back:#?}"
    );
    step(
        &t0,
        "constraint node.role==worker: 4 tasks on the 2 workers",
    );

    // --- an unplaceable constraint: tasks stay pending and say why ---
    c.ctl_ok(
        m,
        &[
            "service",
            "create",
            "--runtime",
            "process",
            "-d",
            "--name",
            "nowhere",
            "--replicas",
            "2",
            "--constraint",
            "node.labels.zone==mars",
            "sleep",
            "1000",
        ],
    );
    let pending = wait_for(
        "nowhere's tasks pending with a reason",
        Duration::from_secs(15),
        || {
            let tasks = c.service_ps(m, "nowhere");
            if tasks.len() == 2
                && tasks
                    .iter()
                    .all(|t| t.state == "pending" && t.message.contains("no suitable node"))
            {
                Ok(tasks)
            } else {
                Err(format!("{tasks:#?}"))
            }
        },
    );
    assert!(
        pending.iter().all(|t| t.node_id.is_empty()),
        "not placed anywhere: {pending:#?}"
    );
    assert!(
        pending[0].message.contains("zone"),
        "the reason names the constraint: {:?}",
        pending[0].message
    );
    let table = c.ctl_ok(m, &["service", "ps", "nowhere"]);
    assert!(
        table.contains("Pending") && table.contains("\"no suitable node"),
        "service ps nowhere:\n{table}"
    );
    let ls = c.ctl_ok(m, &["service", "ls"]);
    assert!(
        ls.lines()
            .any(|l| l.contains(" nowhere ") && l.contains("0/2")),
        "service ls:\n{ls}"
    );
    // Once a node satisfies it, the pending tasks are placed there.
    c.ctl_ok(
        m,
        &["node", "update", "--label-add", "zone=mars", "worker2"],
    );
    let placed = c.wait_running(m, "nowhere", 2);
    assert_eq!(
        nodes_of(&placed),
        BTreeSet::from([c.node_id(c.index_of_hostname("worker2").expect("worker2"))]),
        "{placed:#?}"
    );
    step(
        &t0,
        "unplaceable constraint: pending with a reason, placed once a node matches",
    );

    // --- drain: every task leaves the node ---
    c.ctl_ok(
        m,
        &[
            "service",
            "create",
            "--runtime",
            "process",
            "--name",
            "spread",
            "--replicas",
            "3",
            "sleep",
            "1000",
        ],
    );
    let spread = c.wait_running(m, "spread", 3);
    assert_eq!(nodes_of(&spread), all, "one per node: {spread:#?}");
    let w1 = c.index_of_hostname("worker1").expect("worker1");
    let w1_id = c.node_id(w1);
    let on_w1: Vec<TaskView> = c
        .task_ls_all(m)
        .into_iter()
        .filter(|t| t.node_id == w1_id && t.is_running())
        .collect();
    assert!(
        on_w1.len() >= 3,
        "worker1 runs agent, back and spread tasks: {on_w1:#?}"
    );
    c.ctl_ok(m, &["node", "update", "--availability", "drain", "worker1"]);
    let spread = c.wait_running(m, "spread", 3);
    let back = c.wait_running(m, "back", 4);
    let agent = c.wait_running(m, "agent", 2);
    for t in spread.iter().chain(&back).chain(&agent) {
        assert_ne!(t.node_id, w1_id, "{} still on the drained worker1", t.name);
    }
    for t in &on_w1 {
        assert!(
            c.task_process(t).is_err(),
            "{} (pid {}) should have stopped on worker1",
            t.name,
            t.pid
        );
    }
    let node = c
        .node_ls(m)
        .into_iter()
        .find(|n| n.id == w1_id)
        .expect("worker1 listed");
    assert_eq!(
        (node.state.as_str(), node.availability.as_str()),
        ("ready", "drain"),
        "{node:?}"
    );
    let table = c.ctl_ok(m, &["node", "ls"]);
    assert!(
        table
            .lines()
            .any(|l| l.contains("worker1") && l.contains("Drain")),
        "node ls:\n{table}"
    );
    step(&t0, "drain: worker1 emptied, its tasks run elsewhere");
    // Back to active: the global service returns to it.
    c.ctl_ok(
        m,
        &["node", "update", "--availability", "active", "worker1"],
    );
    let agent = c.wait_running(m, "agent", 3);
    assert_eq!(nodes_of(&agent), all, "{agent:#?}");
    step(
        &t0,
        "worker1 active again: the global service is back on it",
    );
}
