//! Executors run tasks. The `process` executor runs the program named by the task's image on
//! this node; namespaces and images come with the data plane.

pub mod adopt;
pub mod cgroup;
pub mod exec;
pub mod init;
pub mod process;
pub mod sandbox;

pub use process::{ProcessExecutor, Running};
