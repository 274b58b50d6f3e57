//! `service logs` end to end on a lab of 3 managers and 3 workers (root): `-f` streams the lines
//! of tasks on three nodes, goes on through a task's restart (the new task's lines arrive in the
//! same stream) and through the death of the leader it was talking to (it asks another manager
//! and resumes each task's log where it stopped: every task's numbered lines arrive once each,
//! none missing), and ends by itself when the service is removed. `-t`, `--since`, `--tail`,
//! `--raw` and bad input are checked on a second service.
//!
//! Process-runtime tasks (`sh`), so no images are needed.

use shoal_netlib::root::root_or_skip;
use shoal_tests::lab::Lab;
use shoal_tests::{bin, kill_on_fail, wait_for, NodeView, Output};
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// A subnet of its own (Lab::new picks among 198.19.10-209.0/24; other fixed ones: .232, .236,
/// .240, .250, .251).
const SUBNET: &str = "198.19.61.0/24";

fn step(t0: Instant, what: &str) {
    eprintln!("[{:>5.1}s] {what}", t0.elapsed().as_secs_f64());
}

/// A `swarmctl … service logs -f` running in a node, its output collected as it comes.
struct Follow {
    child: Child,
    out: Arc<Mutex<Vec<String>>>,
    err: Arc<Mutex<Vec<String>>>,
}

impl Follow {
    fn start(lab: &Lab, node: &str, args: &[&str]) -> Follow {
        let mut cmd = Command::new(bin("swarmctl"));
        cmd.args(["lab", "exec", node, "--name", &lab.name, "--", "swarmctl"])
            .args(args)
            .env("SHOAL_LAB_DIR", &lab.root)
            .env("NO_COLOR", "1")
            .env_remove("SWARM_HOST")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = cmd.spawn().expect("start swarmctl service logs -f");
        let collect = |r: Box<dyn std::io::Read + Send>| {
            let lines = Arc::new(Mutex::new(Vec::new()));
            let l = lines.clone();
            std::thread::spawn(move || {
                for line in BufReader::new(r).lines() {
                    let Ok(line) = line else { break };
                    l.lock().unwrap().push(line);
                }
            });
            lines
        };
        let out = collect(Box::new(child.stdout.take().expect("stdout")));
        let err = collect(Box::new(child.stderr.take().expect("stderr")));
        Follow { child, out, err }
    }

    fn out(&self) -> Vec<String> {
        self.out.lock().unwrap().clone()
    }

    fn err(&self) -> String {
        self.err.lock().unwrap().join("\n")
    }

    /// Its exit code once it ended by itself (at most `within`).
    fn wait(&mut self, within: Duration) -> i32 {
        let end = Instant::now() + within;
        loop {
            if let Some(s) = self.child.try_wait().expect("wait") {
                return s.code().unwrap_or(-1);
            }
            assert!(
                Instant::now() < end,
                "the follow did not end within {within:?}; stderr:\n{}",
                self.err()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Follow {
    fn drop(&mut self) {
        // Ours, by pid, if the test failed before it ended (lab exec passes SIGTERM on).
        if let Ok(None) = self.child.try_wait() {
            let _ = Command::new("kill")
                .arg(self.child.id().to_string())
                .status();
            let _ = self.child.wait();
        }
    }
}

/// One line of the ticker as `logs -f` prints it: `ticker.<node>.<id>@HOST    | tick ID N`.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Tick {
    host: String,
    task: String,
    n: u64,
}

fn tick(line: &str) -> Option<Tick> {
    let (prefix, text) = line.split_once(" | ")?;
    let host = prefix.split_once('@')?.1.trim().to_string();
    let mut words = text.trim().split(' ');
    (words.next()? == "tick").then_some(())?;
    let task = words.next()?.to_string();
    let n = words.next()?.parse().ok()?;
    Some(Tick { host, task, n })
}

fn ticks(lines: &[String]) -> Vec<Tick> {
    lines.iter().filter_map(|l| tick(l)).collect()
}

/// The highest line number seen per task.
fn highest(ts: &[Tick]) -> HashMap<String, u64> {
    let mut m = HashMap::new();
    for t in ts {
        let e = m.entry(t.task.clone()).or_insert(0);
        *e = (*e).max(t.n);
    }
    m
}

fn nodes(lab: &Lab, via: &str) -> Result<Vec<NodeView>, String> {
    let out = lab.on_node(via, &["swarmctl", "node", "ls", "--format", "json"]);
    if !out.success() {
        return Err(out.to_string());
    }
    let v: serde_json::Value = serde_json::from_str(&out.stdout).map_err(|e| e.to_string())?;
    Ok(NodeView::list(&v))
}

fn ok(out: Output) -> String {
    assert!(out.success(), "{out}");
    out.stdout
}

#[ignore = "needs root"]
#[test]
fn logs_follow_through_a_task_restart_and_a_leader_kill() {
    if !root_or_skip() {
        return;
    }
    let t0 = Instant::now();
    let mut lab = Lab::new();
    lab.subnet = SUBNET.into();
    lab.lab_ok(
        &["up"],
        &["--managers", "3", "--workers", "3", "--subnet", SUBNET],
    );
    let all = wait_for("6 nodes Ready", Duration::from_secs(60), || {
        let n = nodes(&lab, "manager1")?;
        if n.len() == 6 && n.iter().all(|n| n.state == "ready") {
            Ok(n)
        } else {
            Err(format!("{n:?}"))
        }
    });
    let leader = all
        .iter()
        .find(|n| n.manager_status == "Leader")
        .expect("a leader")
        .hostname
        .clone();
    let other = ["manager1", "manager2", "manager3"]
        .into_iter()
        .find(|m| *m != leader)
        .expect("another manager");
    step(
        t0,
        &format!("lab up: 3 managers, 3 workers; {leader} leads"),
    );

    // One ticker task per worker; a task exits (3) once a file named after it appears.
    let stop_dir = lab.root.join("stop");
    std::fs::create_dir_all(&stop_dir).unwrap();
    let script = "i=0; while :; do echo \"tick $SHOAL_TASK_ID $i\"; \
                  [ -e \"$STOP_DIR/$SHOAL_TASK_ID\" ] && exit 3; i=$((i+1)); sleep 0.1; done";
    let env = format!("STOP_DIR={}", stop_dir.display());
    lab.swarmctl_ok(&[
        "service",
        "create",
        "--runtime",
        "process",
        "--name",
        "ticker",
        "--mode",
        "global",
        "--constraint",
        "node.role==worker",
        "--restart-delay",
        "100ms",
        "--env",
        &env,
        "-d",
        "sh",
        "-c",
        script,
    ]);
    let first = lab.running("ticker", 3);
    step(t0, "ticker runs on the 3 workers");

    // --- logs -f against the leader's own socket ---
    let mut f = Follow::start(&lab, &leader, &["service", "logs", "-f", "ticker"]);
    let _guard = kill_on_fail(f.child.id());
    wait_for(
        "lines from the three workers",
        Duration::from_secs(30),
        || {
            let hosts: BTreeSet<String> = ticks(&f.out()).into_iter().map(|t| t.host).collect();
            if hosts.len() == 3 && hosts.iter().all(|h| h.starts_with("worker")) {
                Ok(())
            } else {
                Err(format!("{hosts:?}; stderr: {}", f.err()))
            }
        },
    );
    step(t0, "logs -f: lines from worker1, worker2, worker3");

    // --- a task restarts: the new task's lines come in the same stream ---
    let victim = &first[0];
    std::fs::write(stop_dir.join(&victim.id), b"").unwrap();
    let old: BTreeSet<String> = first.iter().map(|t| t.id.clone()).collect();
    let restarted = wait_for(
        "the restarted task's lines in the follow",
        Duration::from_secs(30),
        || {
            ticks(&f.out())
                .into_iter()
                .find(|t| !old.contains(&t.task))
                .ok_or_else(|| format!("stderr: {}", f.err()))
        },
    );
    let victim_host = ticks(&f.out())
        .into_iter()
        .find(|t| t.task == victim.id)
        .expect("the victim's lines")
        .host;
    assert_eq!(
        restarted.host, victim_host,
        "restarted on its node (global)"
    );
    step(
        t0,
        &format!(
            "task {} restarted as {}: its lines follow",
            victim.id, restarted.task
        ),
    );

    // --- the cheap flags, on a second service ---
    lab.swarmctl_ok(&[
        "service",
        "create",
        "--runtime",
        "process",
        "--name",
        "once",
        "--constraint",
        "node.role==worker",
        "-d",
        "sh",
        "-c",
        "echo first; sleep 1.2; echo second; echo oops >&2; exec sleep 100000",
    ]);
    let stamped = wait_for("once's two lines", Duration::from_secs(30), || {
        let out = lab.swarmctl(&["service", "logs", "-t", "once"]);
        if out.success() && out.stdout.contains("| second") {
            Ok(out.stdout)
        } else {
            Err(out.to_string())
        }
    });
    // -t: `2024-05-01T10:00:00.123000000Z once.1.<id>@worker…    | first`.
    let time_of = |text: &str| {
        let l = stamped
            .lines()
            .find(|l| l.ends_with(&format!("| {text}")))
            .unwrap_or_else(|| panic!("no {text} in {stamped}"));
        let (ts, rest) = l.split_once(' ').expect("a timestamp first");
        assert!(
            ts.len() == 30 && ts.ends_with("000000Z") && ts.as_bytes()[10] == b'T',
            "RFC 3339 with nine digits: {l}"
        );
        assert!(rest.starts_with("once.1."), "{l}");
        ts.to_string()
    };
    let (t_first, t_second) = (time_of("first"), time_of("second"));
    assert!(t_first < t_second, "{stamped}");
    let raw = lab.swarmctl(&["service", "logs", "--raw", "once"]);
    assert_eq!(ok(raw.clone()), "first\nsecond\n", "{raw}");
    assert_eq!(raw.stderr, "oops\n", "stderr lines on stderr: {raw}");
    let tail = lab.swarmctl(&["service", "logs", "--raw", "--tail", "1", "once"]);
    assert_eq!(ok(tail), "second\n", "the last line of each stream");
    let none = lab.swarmctl(&["service", "logs", "--raw", "-n", "0", "once"]);
    assert_eq!(ok(none), "");
    let since = lab.swarmctl(&["service", "logs", "--raw", "--since", &t_second, "once"]);
    assert_eq!(ok(since), "second\n", "--since the second line's time");
    let recent = lab.swarmctl(&["service", "logs", "--raw", "--since", "10m", "once"]);
    assert_eq!(ok(recent), "first\nsecond\n");
    for (args, says) in [
        (vec!["--since", "yesterday"], "\"yesterday\" is not a time"),
        (vec!["--tail", "-3"], "\"-3\" is not a number of lines"),
    ] {
        let mut a = vec!["service", "logs"];
        a.extend(args);
        a.push("once");
        let out = lab.swarmctl(&a);
        assert!(!out.success() && out.stderr.contains(says), "{out}");
    }
    step(
        t0,
        "-t, --raw, --tail 1, -n 0, --since TIME, --since 10m; bad input refused",
    );

    // --- the leader dies: the follow asks another manager and misses nothing ---
    let before = highest(&ticks(&f.out()));
    lab.lab_ok(&["stop", &leader], &["--kill"]);
    step(t0, &format!("{leader} killed"));
    let live: Vec<String> = ticks(&f.out())
        .iter()
        .filter(|t| t.task != victim.id)
        .map(|t| t.task.clone())
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect();
    assert_eq!(live.len(), 3, "{live:?}");
    wait_for(
        "new lines of every task after the leader's death",
        Duration::from_secs(90),
        || {
            let now = highest(&ticks(&f.out()));
            let behind: Vec<&String> = live
                .iter()
                .filter(|t| {
                    now.get(*t).copied().unwrap_or(0) <= before.get(*t).copied().unwrap_or(0) + 5
                })
                .collect();
            if behind.is_empty() {
                Ok(())
            } else {
                Err(format!("{behind:?}; stderr: {}", f.err()))
            }
        },
    );
    assert!(
        f.err().contains("asking again"),
        "the follow noticed: {}",
        f.err()
    );
    step(t0, "the follow goes on through another manager");
    eprintln!("the follow said on stderr:\n{}", f.err());

    // --- removing the service ends the follow ---
    ok(lab.on_node(other, &["swarmctl", "service", "rm", "ticker"]));
    let code = f.wait(Duration::from_secs(30));
    assert_eq!(code, 0, "stderr: {}", f.err());
    step(t0, "service rm ended the follow");

    // Every task's lines came once each and in order, none missing: 0, 1, 2, … up to the last.
    let mut by_task: BTreeMap<String, Vec<u64>> = BTreeMap::new();
    for t in ticks(&f.out()) {
        by_task.entry(t.task).or_default().push(t.n);
    }
    assert_eq!(
        by_task.len(),
        4,
        "3 tasks and the restarted one: {by_task:?}"
    );
    for (task, ns) in &by_task {
        let want: Vec<u64> = (0..ns.len() as u64).collect();
        assert_eq!(ns, &want, "task {task}: lines lost or repeated");
    }
    step(
        t0,
        &format!(
            "{} lines, each task's numbered from 0 without a gap or a repeat",
            by_task.values().map(Vec::len).sum::<usize>()
        ),
    );
}
