//! The planner of a logs relay, table by table: who is asked for what, and when again.

use super::*;

fn placed(list: &[(&str, &str)]) -> Vec<Placed> {
    list.iter()
        .map(|(t, n)| Placed {
            task: t.to_string(),
            node: n.to_string(),
        })
        .collect()
}

fn sessions(list: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
    let m: HashMap<String, String> = list
        .iter()
        .map(|(n, s)| (n.to_string(), s.to_string()))
        .collect();
    move |n| m.get(n).cloned()
}

/// `node: tasks (tail, since, skip) resume[task/stream@offset]` for each request.
fn show(a: &Asks) -> Vec<String> {
    a.send
        .iter()
        .map(|(n, r)| {
            let resume: Vec<String> = r
                .resume
                .iter()
                .map(|c| format!("{}/{}@{}", c.task_id, c.stream, c.offset))
                .collect();
            format!(
                "{n}: {} ({}, {}, {}) [{}]",
                r.task_ids.join(","),
                r.tail,
                r.since_ms,
                r.skip_history,
                resume.join(" ")
            )
        })
        .collect()
}

fn line(node: &str, task: &str, stream: &str, end: u64) -> pb::PublishLogsRequest {
    pb::PublishLogsRequest {
        node_id: node.into(),
        lines: vec![pb::LogLine {
            task_id: task.into(),
            stream: stream.into(),
            end,
            ..Default::default()
        }],
        ..Default::default()
    }
}

const GRACE: Duration = Duration::from_secs(5);
const SILENCE: Duration = Duration::from_secs(15);
const T: (Duration, Duration) = (GRACE, SILENCE);

#[test]
fn a_plain_request_asks_each_node_once_for_its_tasks() {
    let h = History {
        tail: 10,
        since_ms: 0,
        skip: false,
    };
    let mut p = LogPlan::new("r", false, h, &[], T);
    let now = Instant::now();
    let tasks = placed(&[
        ("t1", "n1"),
        ("t2", "n2"),
        ("t3", "n1"),
        ("t4", ""),
        ("t5", "n3"),
    ]);
    let a = p.plan(&tasks, sessions(&[("n1", "s1"), ("n2", "s2")]), now);
    assert_eq!(
        show(&a),
        ["n1: t1,t3 (10, 0, false) []", "n2: t2 (10, 0, false) []"]
    );
    assert_eq!(a.unreachable, ["n3"], "not connected: said at once");
    assert!(a.send.iter().all(|(_, r)| !r.follow && r.request_id == "r"));
    assert!(p.waiting());
    // Asked again, nothing new is sent.
    assert_eq!(
        p.plan(&tasks, sessions(&[("n1", "s1"), ("n2", "s2")]), now),
        Asks::default()
    );
    p.took(
        &pb::PublishLogsRequest {
            node_id: "n1".into(),
            done: true,
            ..Default::default()
        },
        now,
    );
    assert_eq!(p.silent(), ["n2"]);
    p.took(
        &pb::PublishLogsRequest {
            node_id: "n2".into(),
            done: true,
            ..Default::default()
        },
        now,
    );
    assert!(!p.waiting());
    assert!(p.cancels().is_empty(), "nothing to cancel");
}

#[test]
fn a_follow_takes_new_tasks_whole_and_reasks_a_node_whose_session_changed() {
    let h = History {
        tail: 0,
        since_ms: 0,
        skip: true,
    };
    let mut p = LogPlan::new("r", true, h, &[], T);
    let now = Instant::now();
    let s = sessions(&[("n1", "s1"), ("n2", "s2")]);
    let a = p.plan(&placed(&[("t1", "n1"), ("t2", "n2")]), &s, now);
    assert_eq!(
        show(&a),
        ["n1: t1 (0, 0, true) []", "n2: t2 (0, 0, true) []"]
    );
    assert!(a.send.iter().all(|(_, r)| r.follow));
    p.took(&line("n1", "t1", "stdout", 40), now);
    p.took(
        &pb::PublishLogsRequest {
            node_id: "n1".into(),
            cursors: vec![pb::LogCursor {
                task_id: "t1".into(),
                stream: "stderr".into(),
                offset: 7,
            }],
            ..Default::default()
        },
        now,
    );
    // t1 restarts as t3 on n1; t4 starts on a new node n3: their logs come whole.
    let tasks = placed(&[("t1", "n1"), ("t2", "n2"), ("t3", "n1"), ("t4", "n3")]);
    let s = sessions(&[("n1", "s1"), ("n2", "s2"), ("n3", "s3")]);
    let a = p.plan(&tasks, &s, now);
    assert_eq!(
        show(&a),
        ["n1: t3 (0, 0, false) []", "n3: t4 (0, 0, false) []"]
    );
    // n1's swarmd restarts: its follow ended; ask again, resuming where the lines stopped.
    let s = sessions(&[("n1", "s1b"), ("n2", "s2"), ("n3", "s3")]);
    let a = p.plan(&tasks, &s, now);
    assert_eq!(
        show(&a),
        [
            "n1: t1 (0, 0, true) [t1/stderr@7 t1/stdout@40]",
            "n1: t3 (0, 0, false) []"
        ]
    );
    assert_eq!(p.plan(&tasks, &s, now), Asks::default());
    let cancels: Vec<String> = p.cancels().into_iter().map(|(n, _)| n).collect();
    assert_eq!(cancels, ["n1", "n2", "n3"]);
    assert!(p
        .cancels()
        .iter()
        .all(|(_, r)| r.cancel && r.request_id == "r"));
}

#[test]
fn a_follow_waits_a_grace_before_saying_a_node_is_away() {
    let mut p = LogPlan::new("r", true, History::default(), &[], T);
    let t0 = Instant::now();
    let tasks = placed(&[("t1", "n1")]);
    let none = sessions(&[]);
    assert_eq!(p.plan(&tasks, &none, t0), Asks::default());
    let a = p.plan(&tasks, &none, t0 + GRACE);
    assert_eq!(a.unreachable, ["n1"]);
    assert!(
        p.plan(&tasks, &none, t0 + GRACE * 2).unreachable.is_empty(),
        "said once"
    );
    // It connects: asked, with the history asked for (t1 was there from the start).
    let a = p.plan(&tasks, sessions(&[("n1", "s1")]), t0 + GRACE * 3);
    assert_eq!(show(&a), ["n1: t1 (0, 0, false) []"]);
}

#[test]
fn a_resumed_follow_continues_the_streams_the_client_has_and_reads_the_others_whole() {
    // What a client sends after its stream broke: everything since its --since, with cursors.
    let h = History {
        tail: 0,
        since_ms: 1_000,
        skip: false,
    };
    let resume = [pb::LogCursor {
        task_id: "t1".into(),
        stream: "stdout".into(),
        offset: 99,
    }];
    let mut p = LogPlan::new("r", true, h, &resume, T);
    let a = p.plan(
        &placed(&[("t1", "n1"), ("t9", "n1")]),
        sessions(&[("n1", "s1")]),
        Instant::now(),
    );
    assert_eq!(show(&a), ["n1: t1,t9 (0, 1000, false) [t1/stdout@99]"]);
    // Cursors never go back.
    p.took(&line("n1", "t1", "stdout", 50), Instant::now());
    p.took(&line("n1", "t1", "stdout", 120), Instant::now());
    let a = p.plan(
        &placed(&[("t1", "n1"), ("t9", "n1")]),
        sessions(&[("n1", "s2")]),
        Instant::now(),
    );
    assert_eq!(show(&a), ["n1: t1,t9 (0, 1000, false) [t1/stdout@120]"]);
}

#[test]
fn a_follow_asks_again_a_node_it_has_not_heard_from() {
    let mut p = LogPlan::new("r", true, History::default(), &[], T);
    let t0 = Instant::now();
    let tasks = placed(&[("t1", "n1"), ("t2", "n2")]);
    let s = sessions(&[("n1", "s1"), ("n2", "s2")]);
    assert_eq!(p.plan(&tasks, &s, t0).send.len(), 2);
    // n1 keeps sending (lines or its idle keepalive); n2 says nothing.
    p.took(&line("n1", "t1", "stdout", 10), t0 + SILENCE / 2);
    p.took(&line("n2", "t2", "stdout", 3), t0);
    let a = p.plan(&tasks, &s, t0 + SILENCE);
    assert_eq!(show(&a), ["n2: t2 (0, 0, false) [t2/stdout@3]"]);
    assert_eq!(
        p.plan(&tasks, &s, t0 + SILENCE),
        Asks::default(),
        "once a period"
    );
}
