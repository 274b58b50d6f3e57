//! Executors run tasks, behind one seam ([`Executor`] and its per-task [`Controller`], after
//! SwarmKit's): the OCI executor ([`OciExecutor`]) runs containers from images (services'
//! default `--runtime container`), the `process` executor ([`ProcessExecutor`]) runs the
//! program named by the task's image on this node (`--runtime process`), in the task's
//! sandbox when there is a data plane; [`RuntimeExecutor`] holds both and routes each task.
//!
//! * [`controller`]: the seam;
//! * [`by_runtime`]: the node's executor, routing each task by its runtime;
//! * [`process`]: the process executor and its controller;
//! * [`oci`]: the OCI executor: containers from images, run by `runc` or `crun`;
//! * [`sandbox`], [`init`]: starting a process inside its namespaces, with an init;
//! * [`cgroup`]: memory and CPU limits;
//! * [`adopt`]: tasks that outlive `swarmd`;
//! * [`exec`]: `swarmctl task exec`;
//! * [`files`]: secrets and configs, in memory, in the tasks that use them.

pub mod adopt;
pub mod by_runtime;
pub mod cgroup;
pub mod controller;
mod error;
pub mod exec;
pub mod files;
pub mod init;
pub mod interactive;
pub mod oci;
pub mod process;
pub mod sandbox;

pub use by_runtime::{Containers, RuntimeExecutor};
pub use controller::{Controller, ExecOutput, Executor, Exit};
pub use error::Error;
pub use interactive::{ExecIn, ExecOut, ExecSession, ExecSpec, WinSize};
pub use oci::{ImageSource, OciController, OciExecutor, StoreImages};
pub use process::{ProcessController, ProcessExecutor, Running};
