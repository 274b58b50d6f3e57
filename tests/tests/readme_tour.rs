//! The README's tour, run as written: every command of its "A tour" section, in order, on a lab
//! with default timings (what a user gets), through `deploy/tour.py` — the same runner
//! `deploy/demo.sh` uses. A command that fails, prints nothing where the README shows output or
//! lacks the table header the README shows fails this test, so the README cannot drift.

use shoal_netlib::root::root_or_skip;
use shoal_tests::bin;
use shoal_tests::lab::Lab;
use std::path::Path;
use std::process::Command;

#[ignore = "needs root"]
#[test]
fn the_readme_tour_runs_as_written() {
    if !root_or_skip() {
        return;
    }
    let mut lab = Lab::new();
    // Users' timings: none of the tests' faster ones.
    lab.swarmd_args = String::new();
    let repo = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let mut cmd = Command::new("python3");
    cmd.arg(repo.join("deploy/tour.py"))
        .args(["--readme", &repo.join("README.md").display().to_string()])
        .args(["--lab", &lab.name, "--subnet", &lab.subnet])
        .args(["--swarmctl", &bin("swarmctl").display().to_string()])
        .env("SHOAL_LAB_DIR", &lab.root)
        .env("SHOAL_LAB_SWARMD_ARGS", &lab.swarmd_args)
        .env("NO_COLOR", "1")
        .env_remove("SWARM_HOST");
    // Bounded: each command of the tour has its own deadline in the runner; this is the whole.
    let out = shoal_tests::run(&mut cmd, std::time::Duration::from_secs(1200));
    println!("{}", out.stdout);
    assert!(
        out.success(),
        "the README tour failed:\n{}\n{}",
        out.stdout
            .lines()
            .filter(|l| l.starts_with("FAILED") || l.starts_with("!!"))
            .collect::<Vec<_>>()
            .join("\n"),
        out.stderr
    );
    let summary = out.stdout.lines().rev().find(|l| l.contains("tour steps"));
    assert!(
        summary.is_some_and(|l| l.contains(", 0 failed")),
        "no summary line: {}",
        out.stdout
    );
    // Dropping the lab runs `lab down` again: the tour's own `lab down` left nothing for it.
    drop(lab);
}
