//! End-to-end test harness: starts real `swarmd` processes on 127.0.0.1 (no root needed:
//! `--data-plane none` runs tasks as plain child processes) and drives them with the real
//! `swarmctl`, exactly as an operator would.
//!
//! ```no_run
//! use shoal_tests::Cluster;
//! let c = Cluster::start(3, 2); // manager1..3, worker1..2, all Ready
//! c.ctl_ok(0, &["service", "create", "--runtime", "process", "--name", "web", "--replicas", "5", "sleep", "1000"]);
//! c.wait_running(0, "web", 5);
//! ```
//!
//! Running them (the binaries are not rebuilt by `cargo test -p shoal-tests`, so build first):
//!
//! ```text
//! cargo build --workspace --bins && cargo test -p shoal-tests
//! ```
//!
//! Environment: `SHOAL_BIN_DIR` (where `swarmd` and `swarmctl` are; default: this test's cargo
//! target dir), `SHOAL_E2E_KEEP=1` (keep the state dirs and logs of a failed test; `always`: of
//! every test), `SWARMD_LOG` (swarmd's log filter, e.g. `info,shoal_manager=debug`).
//!
//! Everything waits on conditions with deadlines ([`wait_for`], [`wait_until`]); nothing sleeps
//! a fixed time and hopes. A [`Cluster`] kills the processes it started (by pid, only those)
//! and removes its directories when dropped, and prints the tail of every node's log when the
//! test is failing.
#![forbid(unsafe_code)]

mod bins;
mod cluster;
pub mod docker;
pub mod dockerd;
pub mod faults;
pub mod lab;
mod ports;
pub mod pty;
mod run;
mod views;
mod wait;

pub use bins::{bin, bin_dir};
pub use cluster::{Cluster, NodeProc, Timings};
pub use ports::{free_port, FixedPort};
pub use run::{kill_on_fail, run, Output};
pub use views::{NetworkView, NodeView, ServiceView, TaskView};
pub use wait::{wait_for, wait_until, POLL};
