//! `service logs`: the flags, how lines are printed, and a follow carried on through broken
//! streams, against the fake server.

use super::follow::Cursors;
use super::print::{task_name, Printer, Style};
use crate::ctl::fake::Fake;
use crate::ctl::tests::{ok, run_cmd};
use crate::ctl::Cli;
use clap::Parser;
use shoal_proto::pb;
use std::collections::HashMap;
use tonic::Status;

const ID: &str = "abcdefghijklmnopqrstuvwxy";

fn line(task: &str, stream: &str, end: u64, data: &str) -> pb::LogLine {
    pb::LogLine {
        task_id: task.into(),
        task_name: format!("web.1.{task}"),
        node_id: "w".repeat(25),
        stream: stream.into(),
        data: data.as_bytes().to_vec(),
        timestamp_ms: 1_410_848_266_000 + end as i64,
        end,
    }
}

#[test]
fn names_are_cut_like_dockers() {
    let l = line(ID, "stdout", 1, "x");
    let name = |style: Style| task_name(&l, &style);
    assert_eq!(name(Style::default()), "web.1.abcdefghijkl");
    let no_trunc = Style {
        no_trunc: true,
        ..Default::default()
    };
    assert_eq!(name(no_trunc), format!("web.1.{ID}"));
    let no_ids = Style {
        no_task_ids: true,
        ..Default::default()
    };
    assert_eq!(name(no_ids), "web.1");
}

#[test]
fn timestamps_go_first_and_raw_drops_the_prefix() {
    let hosts: HashMap<String, String> = [("w".repeat(25), "worker1".to_string())].into();
    let l = line(ID, "stdout", 123, "hello");
    let mut p = Printer {
        style: Style {
            timestamps: true,
            ..Default::default()
        },
        hosts: hosts.clone(),
        width: 0,
    };
    assert_eq!(
        p.text(&l),
        ["2014-09-16T06:17:46.123000000Z web.1.abcdefghijkl@worker1    | hello"]
    );
    p.style.raw = true;
    assert_eq!(p.text(&l), ["2014-09-16T06:17:46.123000000Z hello"]);
    p.style.timestamps = false;
    assert_eq!(p.text(&l), ["hello"]);
    // The column widens as wider prefixes come, never narrows.
    let mut p = Printer {
        hosts,
        ..Default::default()
    };
    let mut other = line("x", "stdout", 1, "b");
    other.task_name = "web.10.x".into();
    other.node_id = "n-unknown".into();
    p.text(&other);
    assert_eq!(p.text(&l), ["web.1.abcdefghijkl@worker1    | hello"]);
    assert_eq!(
        p.text(&other),
        [format!("{:<26}    | b", "web.10.x@n-unknown")]
    );
}

#[test]
fn cursors_skip_what_was_printed_and_resume_the_rest() {
    let mut c = Cursors::default();
    let first = pb::LogsRequest {
        service: "web".into(),
        tail: 5,
        skip_history: false,
        follow: true,
        since_ms: 42,
        ..Default::default()
    };
    assert_eq!(c.resume(&first), first, "nothing yet: the same request");
    assert!(c.take(&line("t1", "stdout", 10, "a")));
    assert!(c.take(&line("t1", "stdout", 20, "b")));
    assert!(!c.take(&line("t1", "stdout", 20, "b")), "twice");
    assert!(!c.take(&line("t1", "stdout", 10, "a")), "older");
    assert!(c.take(&line("t1", "stderr", 5, "e")), "its own stream");
    c.note(&pb::LogCursor {
        task_id: "t2".into(),
        stream: "stdout".into(),
        offset: 7,
    });
    let again = c.resume(&first);
    let got: Vec<String> = again
        .resume
        .iter()
        .map(|c| format!("{}/{}@{}", c.task_id, c.stream, c.offset))
        .collect();
    assert_eq!(got, ["t1/stderr@5", "t1/stdout@20", "t2/stdout@7"]);
    assert_eq!(
        (again.tail, again.skip_history, again.since_ms, again.follow),
        (0, false, 42, true),
        "streams it never saw: all since --since"
    );
}

#[test]
fn bad_flags_are_refused_clearly() {
    let err = |args: &[&str]| {
        let mut argv = vec!["swarmctl", "service", "logs"];
        argv.extend(args);
        Cli::try_parse_from(argv).unwrap_err().to_string()
    };
    let e = err(&["--since", "yesterday", "web"]);
    assert!(e.contains("\"yesterday\" is not a time"), "{e}");
    let e = err(&["--tail", "-3", "web"]);
    assert!(e.contains("\"-3\" is not a number of lines"), "{e}");
    let e = err(&["-n", "many", "web"]);
    assert!(e.contains("or all"), "{e}");
    for ok in [
        "-f -t --since 10m -n 5 --raw web",
        "--follow --timestamps --tail all --no-task-ids --no-trunc web",
        "--since 2024-05-01T10:00:00Z web",
    ] {
        let mut argv = vec!["swarmctl", "service", "logs"];
        argv.extend(ok.split(' '));
        assert!(Cli::try_parse_from(argv).is_ok(), "{ok}");
    }
}

async fn fake_with_web() -> (Fake, String) {
    let fake = Fake::with_nodes();
    let host = fake.clone().serve_tcp().await;
    ok(
        &host,
        &[
            "service",
            "create",
            "--runtime",
            "process",
            "--name",
            "web",
            "--replicas",
            "2",
            "-d",
            "whoami",
        ],
    )
    .await;
    (fake, host)
}

#[tokio::test]
async fn flags_become_the_request() {
    let (fake, host) = fake_with_web().await;
    let before = shoal_proto::model::now_ms();
    let out = ok(
        &host,
        &["service", "logs", "-t", "--since", "10m", "-n", "0", "web"],
    )
    .await;
    let r = fake.lock().log_requests.last().cloned().unwrap();
    assert_eq!(
        (r.service.as_str(), r.tail, r.skip_history, r.follow),
        ("web", 0, true, false)
    );
    assert!(
        r.since_ms >= before - 600_000 && r.since_ms <= before,
        "{}",
        r.since_ms
    );
    // -t: the RFC 3339 time first.
    assert!(
        out.lines()
            .any(|l| l.starts_with("2023-11-14T22:13:20.001000000Z web.1.")),
        "{out}"
    );
    ok(&host, &["service", "logs", "--tail", "3", "web"]).await;
    let r = fake.lock().log_requests.last().cloned().unwrap();
    assert_eq!((r.tail, r.skip_history, r.since_ms), (3, false, 0));
    let raw = ok(&host, &["service", "logs", "--raw", "web"]).await;
    assert_eq!(raw, "hello from 1\nhello from 2\n");
}

fn batch(lines: Vec<pb::LogLine>) -> Result<pb::LogsResponse, Status> {
    Ok(pb::LogsResponse {
        lines,
        ..Default::default()
    })
}

#[tokio::test]
async fn a_follow_carries_on_through_a_broken_stream_without_repeating_a_line() {
    let (fake, host) = fake_with_web().await;
    {
        let mut s = fake.lock();
        s.log_scripts.push_back(vec![
            // History and where it ends, in one batch (as an agent sends it).
            Ok(pb::LogsResponse {
                lines: vec![line("t1", "stdout", 10, "a"), line("t1", "stdout", 20, "b")],
                cursors: vec![pb::LogCursor {
                    task_id: "t1".into(),
                    stream: "stdout".into(),
                    offset: 20,
                }],
                ..Default::default()
            }),
            Ok(pb::LogsResponse {
                cursors: vec![pb::LogCursor {
                    task_id: "t2".into(),
                    stream: "stdout".into(),
                    offset: 0,
                }],
                ..Default::default()
            }),
            Err(Status::unavailable("the leader went away")),
        ]);
        // The next manager sends "b" again (it cannot know), then what is new; the service is
        // removed: the stream ends.
        s.log_scripts.push_back(vec![batch(vec![
            line("t1", "stdout", 20, "b"),
            line("t1", "stdout", 30, "c"),
            line("t2", "stdout", 4, "d"),
        ])]);
    }
    let out = ok(&host, &["service", "logs", "-f", "--raw", "web"]).await;
    assert_eq!(out, "a\nb\nc\nd\n");
    let reqs = fake.lock().log_requests.clone();
    assert_eq!(reqs.len(), 2);
    assert!(reqs[0].follow && reqs[0].resume.is_empty());
    let resume: Vec<String> = reqs[1]
        .resume
        .iter()
        .map(|c| format!("{}/{}@{}", c.task_id, c.stream, c.offset))
        .collect();
    assert_eq!(resume, ["t1/stdout@20", "t2/stdout@0"]);
}

#[tokio::test]
async fn a_follow_moves_to_another_manager_when_its_own_is_gone() {
    // Manager B answers the resumed follow; A (the one swarmctl talks to) breaks, then refuses.
    let b = Fake::with_nodes();
    b.lock().services = Vec::new();
    b.lock()
        .log_scripts
        .push_back(vec![batch(vec![line("t1", "stdout", 30, "from b")])]);
    let b_host = b.clone().serve_tcp().await;
    let (a, a_host) = fake_with_web().await;
    {
        let mut s = a.lock();
        s.nodes[0].addr = b_host.trim_start_matches("tcp://").to_string();
        s.nodes[0].role = pb::NodeRole::Manager as i32;
        s.log_scripts.push_back(vec![
            batch(vec![line("t1", "stdout", 10, "from a")]),
            Err(Status::unavailable("gone")),
        ]);
        s.log_scripts
            .push_back(vec![Err(Status::unavailable("no leader right now"))]);
    }
    let (r, out) = run_cmd(&a_host, &["service", "logs", "-f", "--raw", "web"]).await;
    r.unwrap();
    assert_eq!(out, "from a\nfrom b\n");
    let resumed = b.lock().log_requests.clone();
    assert_eq!(resumed.len(), 1);
    assert_eq!(resumed[0].resume[0].offset, 10);
}

#[tokio::test]
async fn a_follow_stops_on_an_answer_that_will_not_change() {
    let (fake, host) = fake_with_web().await;
    fake.lock()
        .log_scripts
        .push_back(vec![Err(Status::invalid_argument("bad request"))]);
    let (r, _) = run_cmd(&host, &["service", "logs", "-f", "web"]).await;
    assert_eq!(r.unwrap_err().to_string(), "bad request");
}
