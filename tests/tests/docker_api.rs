//! The Engine API socket (`swarmd --docker-host`) of a real swarmd, spoken to over plain
//! HTTP/1.1 (no root, no docker CLI): Docker's `_up-to-date` task filter, which the CLI's
//! progress display of `docker service scale|update` relies on, through the Control API's
//! `TaskFilter.up_to_date`. A scale keeps every task up to date; during an update only the
//! tasks of the new spec are.

use serde_json::Value;
use shoal_tests::{wait_for, Cluster, Timings};
use std::io::{Read, Write};
use std::path::Path;
use std::time::Duration;

/// `GET path` over the socket; the JSON body.
fn get(sock: &Path, path: &str) -> Value {
    let mut s = std::os::unix::net::UnixStream::connect(sock).expect("connect the docker socket");
    s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    write!(s, "GET {path} HTTP/1.0\r\nHost: docker\r\n\r\n").unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).unwrap();
    let (head, body) = out.split_once("\r\n\r\n").expect("an HTTP answer");
    assert!(
        head.starts_with("HTTP/1.0 200") || head.starts_with("HTTP/1.1 200"),
        "{out}"
    );
    serde_json::from_str(body).unwrap_or_else(|e| panic!("{e}: {body}"))
}

/// `filters={"service":{"web":true},"_up-to-date":{"true":true}}`, percent-encoded.
const UP_TO_DATE_WEB: &str = "/v1.41/tasks?filters=%7B%22service%22%3A%7B%22web%22%3Atrue%7D%2C%22_up-to-date%22%3A%7B%22true%22%3Atrue%7D%7D";

/// (slot, env) of the up-to-date tasks that run and should, sorted.
fn up_to_date(sock: &Path) -> Vec<(u64, Value)> {
    let tasks = get(sock, UP_TO_DATE_WEB);
    let mut v: Vec<(u64, Value)> = tasks
        .as_array()
        .unwrap()
        .iter()
        .filter(|t| t["DesiredState"] == "running" && t["Status"]["State"] == "running")
        .map(|t| {
            (
                t["Slot"].as_u64().unwrap(),
                t["Spec"]["ContainerSpec"]["Env"].clone(),
            )
        })
        .collect();
    v.sort_by_key(|(s, _)| *s);
    v
}

#[test]
fn up_to_date_tasks_through_the_engine_api() {
    let dir = tempfile::tempdir().unwrap();
    let sock = dir.path().join("docker.sock");
    let host = format!("unix://{}", sock.display());
    let c = Cluster::start_args(1, 0, Timings::default(), &["--docker-host", &host]);
    c.ctl_ok(
        0,
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
            "sleep",
            "1000",
        ],
    );
    c.wait_running(0, "web", 2);
    c.ctl_ok(0, &["service", "scale", "web=3"]);
    c.wait_running(0, "web", 3);
    let all = wait_for(
        "3 up-to-date tasks after a scale",
        Duration::from_secs(30),
        || {
            let v = up_to_date(&sock);
            (v.len() == 3).then_some(v.clone()).ok_or(format!("{v:?}"))
        },
    );
    assert!(all.iter().all(|(_, env)| env.is_null()), "{all:?}");
    // An update that replaces one task, then waits 10 minutes: the two old tasks still run,
    // but are not up to date.
    c.ctl_ok(
        0,
        &[
            "service",
            "update",
            "-d",
            "--env-add",
            "A=1",
            "--update-delay",
            "10m",
            "web",
        ],
    );
    wait_for(
        "one new task, alone up to date",
        Duration::from_secs(60),
        || {
            let v = up_to_date(&sock);
            let one_new = v.len() == 1 && v[0].1 == serde_json::json!(["A=1"]);
            one_new.then_some(()).ok_or(format!("{v:?}"))
        },
    );
    let every = get(&sock, "/v1.41/tasks");
    let running = every
        .as_array()
        .unwrap()
        .iter()
        .filter(|t| t["DesiredState"] == "running" && t["Status"]["State"] == "running")
        .count();
    assert_eq!(
        running, 3,
        "without the filter the old tasks are there: {every}"
    );
}
