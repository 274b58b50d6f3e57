//! What a task's limits are in kernel units, and which cgroup files set them.

use super::Version;
use shoal_proto::model::ServiceSpec;

/// The CFS period every task gets, in microseconds (Docker's).
pub const CFS_PERIOD_US: u64 = 100_000;
/// The smallest CFS quota the kernel accepts (1 ms; `cpu.cfs_quota_us` in
/// Documentation/scheduler/sched-bwc.rst).
pub const MIN_CFS_QUOTA_US: u64 = 1_000;

/// A controller a limit needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Controller {
    /// Memory.
    Memory,
    /// CPU bandwidth (CFS quota).
    Cpu,
}

impl Controller {
    /// The controller's name in the kernel.
    pub fn name(self) -> &'static str {
        match self {
            Controller::Memory => "memory",
            Controller::Cpu => "cpu",
        }
    }

    /// A v1 file only this controller's hierarchy has.
    pub(super) fn v1_probe(self) -> &'static str {
        match self {
            Controller::Memory => "memory.limit_in_bytes",
            Controller::Cpu => "cpu.cfs_quota_us",
        }
    }
}

/// A task's limits in kernel units.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Limits {
    /// Bytes of memory.
    pub memory_bytes: Option<u64>,
    /// CFS quota in microseconds per [`CFS_PERIOD_US`].
    pub cpu_quota_us: Option<u64>,
}

impl Limits {
    /// The limits of a service spec (0 = none). CPU quotas below the kernel's minimum are
    /// raised to it.
    pub fn of(spec: &ServiceSpec) -> Limits {
        let cpus = spec.limit_cpus;
        Limits {
            memory_bytes: u64::try_from(spec.limit_memory_bytes)
                .ok()
                .filter(|b| *b > 0),
            cpu_quota_us: (cpus.is_finite() && cpus > 0.0)
                .then(|| ((cpus * CFS_PERIOD_US as f64).round() as u64).max(MIN_CFS_QUOTA_US)),
        }
    }

    /// No limit at all (the task gets no cgroup).
    pub fn is_empty(&self) -> bool {
        self.memory_bytes.is_none() && self.cpu_quota_us.is_none()
    }

    /// The controllers these limits need.
    pub fn controllers(&self) -> Vec<Controller> {
        let mut c = Vec::new();
        if self.memory_bytes.is_some() {
            c.push(Controller::Memory);
        }
        if self.cpu_quota_us.is_some() {
            c.push(Controller::Cpu);
        }
        c
    }
}

/// One value to write into a task's cgroup.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LimitFile {
    /// The controller (on v1, the hierarchy) the file belongs to.
    pub controller: Controller,
    /// The file name.
    pub file: &'static str,
    /// What to write.
    pub value: String,
    /// When false the file is written only if present, and errors are ignored.
    pub required: bool,
}

/// The files that set `limits`, in the order they must be written. Swap is not allowed beyond
/// the memory limit (v1 `memory.memsw.limit_in_bytes` equal to it, v2 `memory.swap.max` 0)
/// where the kernel accounts it.
pub fn limit_files(version: Version, limits: &Limits) -> Vec<LimitFile> {
    let f = |controller, file, value: String, required| LimitFile {
        controller,
        file,
        value,
        required,
    };
    let mut v = Vec::new();
    match version {
        Version::V1 => {
            if let Some(b) = limits.memory_bytes {
                v.push(f(
                    Controller::Memory,
                    "memory.limit_in_bytes",
                    b.to_string(),
                    true,
                ));
                v.push(f(
                    Controller::Memory,
                    "memory.memsw.limit_in_bytes",
                    b.to_string(),
                    false,
                ));
            }
            if let Some(q) = limits.cpu_quota_us {
                v.push(f(
                    Controller::Cpu,
                    "cpu.cfs_period_us",
                    CFS_PERIOD_US.to_string(),
                    true,
                ));
                v.push(f(Controller::Cpu, "cpu.cfs_quota_us", q.to_string(), true));
            }
        }
        Version::V2 => {
            if let Some(b) = limits.memory_bytes {
                v.push(f(Controller::Memory, "memory.max", b.to_string(), true));
                v.push(f(Controller::Memory, "memory.swap.max", "0".into(), false));
            }
            if let Some(q) = limits.cpu_quota_us {
                v.push(f(
                    Controller::Cpu,
                    "cpu.max",
                    format!("{q} {CFS_PERIOD_US}"),
                    true,
                ));
            }
        }
    }
    v
}
