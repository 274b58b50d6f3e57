//! `swarmctl --consistent`: linearizable reads through raft's read index, on 3 real managers.
//!
//! A consistent read on a follower sees a write the leader has just acknowledged; a manager cut
//! off from the others (its peers frozen with SIGSTOP) refuses a consistent read instead of
//! answering from its possibly stale store, while a plain read still answers locally; once the
//! peers are thawed, consistent reads work again.

use shoal_tests::{wait_for, Cluster};
use std::time::Duration;

/// Thaws the paused managers even when the test fails half-way (the cluster kills them after).
struct Thaw<'a> {
    c: &'a Cluster,
    paused: Vec<usize>,
}

impl Thaw<'_> {
    fn pause(&mut self, i: usize) {
        self.c.pause(i);
        self.paused.push(i);
    }

    fn resume_all(&mut self) {
        for i in self.paused.drain(..) {
            self.c.resume(i);
        }
    }
}

impl Drop for Thaw<'_> {
    fn drop(&mut self) {
        for &i in &self.paused {
            if self.c.is_running(i) {
                self.c.resume(i);
            }
        }
    }
}

fn create(c: &Cluster, via: usize, name: &str) {
    c.ctl_ok(
        via,
        &[
            "service",
            "create",
            "--runtime",
            "process",
            "--name",
            name,
            "--replicas",
            "0",
            "sleep",
            "1000",
        ],
    );
}

/// The service names in `swarmctl --consistent service ls` on manager `via`, or its error.
fn consistent_names(c: &Cluster, via: usize) -> Result<Vec<String>, String> {
    let out = c.ctl(via, &["--consistent", "service", "ls"]);
    if !out.success() {
        return Err(out.stderr);
    }
    Ok(names(&out.stdout))
}

/// The NAME column of a `service ls` table.
fn names(table: &str) -> Vec<String> {
    table
        .lines()
        .skip(1)
        .filter_map(|l| l.split_whitespace().nth(1))
        .map(str::to_string)
        .collect()
}

/// Waits until a consistent read works on manager `via` again (the cluster healed).
fn wait_consistent(c: &Cluster, via: usize) {
    wait_for(
        "a consistent read to succeed again",
        Duration::from_secs(60),
        || consistent_names(c, via).map(|_| ()),
    );
}

#[test]
fn consistent_reads_see_acknowledged_writes_and_refuse_without_a_quorum() {
    let c = Cluster::start(3, 0);
    let leader = c.leader();
    let followers: Vec<usize> = c.managers().into_iter().filter(|&i| i != leader).collect();
    let (f, other) = (followers[0], followers[1]);

    // A write acknowledged by the leader is in the very next consistent read on a follower.
    for n in 0..5 {
        let name = format!("lin{n}");
        create(&c, leader, &name);
        let names = consistent_names(&c, f).unwrap_or_else(|e| panic!("consistent read: {e}"));
        assert!(
            names.contains(&name),
            "a consistent read on a follower missed {name}, acknowledged by the leader: {names:?}"
        );
        let inspect = c.ctl_ok(f, &["service", "inspect", "--consistent", &name]);
        assert!(inspect.contains(&name), "{inspect}");
    }

    // The follower cut off from the leader and the other follower: a consistent read fails with
    // a clear error; a plain read still answers from the follower's own store.
    let mut thaw = Thaw {
        c: &c,
        paused: Vec::new(),
    };
    thaw.pause(leader);
    thaw.pause(other);
    let err = consistent_names(&c, f).expect_err("a consistent read without a quorum must fail");
    assert!(
        err.contains("consistent read refused"),
        "unexpected error: {err}"
    );
    let plain = names(&c.ctl_ok(f, &["service", "ls"]));
    assert!(plain.contains(&"lin4".to_string()), "{plain:?}");
    thaw.resume_all();
    wait_consistent(&c, f);

    // The leader cut off from both followers refuses too (its read index needs a quorum's
    // heartbeat answers).
    let leader = c.leader();
    for i in c.managers().into_iter().filter(|&i| i != leader) {
        thaw.pause(i);
    }
    let err = consistent_names(&c, leader).expect_err("a leader without a quorum must refuse");
    assert!(
        err.contains("consistent read refused"),
        "unexpected error: {err}"
    );
    thaw.resume_all();
    wait_consistent(&c, leader);
    let names = consistent_names(&c, leader).expect("consistent read after healing");
    assert!(names.contains(&"lin4".to_string()), "{names:?}");
}
