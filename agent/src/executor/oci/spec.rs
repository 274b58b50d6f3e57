//! A task's `config.json` (the OCI runtime spec, built with `oci-spec`), with Docker's defaults
//! where Docker has them: its 14 default capabilities (moby `oci/caps/defaults.go`), masked and
//! read-only paths and default mounts (moby `oci/defaults.go`), the device cgroup rules of its
//! default devices, `noNewPrivileges`. Shoal's own parts: the task's existing network namespace
//! by path (so overlay networks, VIPs, the routing mesh and the 127.0.0.11 DNS work as for
//! every task), its `/etc/hosts`, `/etc/hostname`, `/etc/resolv.conf` bound from its directory,
//! and its limits in its cgroup beneath `swarmd`'s.

use std::collections::HashSet;
use std::path::{Path, PathBuf};

use oci_spec::runtime::{
    Capability, LinuxBuilder, LinuxCapabilitiesBuilder, LinuxCpuBuilder, LinuxDeviceCgroupBuilder,
    LinuxDeviceType, LinuxMemoryBuilder, LinuxNamespaceBuilder, LinuxNamespaceType,
    LinuxResourcesBuilder, Mount, MountBuilder, ProcessBuilder, RootBuilder, Spec, SpecBuilder,
    UserBuilder,
};
use oci_spec::OciSpecError;

use crate::executor::cgroup::{Limits, CFS_PERIOD_US};

/// The annotation that keeps the image's stop signal with the container (read back when a
/// restarted agent adopts it).
pub const STOP_SIGNAL_ANNOTATION: &str = "org.opencontainers.image.stopSignal";

/// The annotation that keeps the image's health check with the container (JSON of the model's
/// `HealthConfig`), read back when a restarted agent adopts it.
pub const HEALTH_ANNOTATION: &str = "org.shoal.image.healthcheck";

/// Docker's default capabilities (moby `oci/caps/defaults.go`).
pub const DEFAULT_CAPS: [Capability; 14] = [
    Capability::Chown,
    Capability::DacOverride,
    Capability::Fsetid,
    Capability::Fowner,
    Capability::Mknod,
    Capability::NetRaw,
    Capability::Setgid,
    Capability::Setuid,
    Capability::Setfcap,
    Capability::Setpcap,
    Capability::NetBindService,
    Capability::SysChroot,
    Capability::Kill,
    Capability::AuditWrite,
];

/// Paths Docker hides from containers (an empty file or tmpfs over them).
pub const MASKED_PATHS: [&str; 11] = [
    "/proc/asound",
    "/proc/acpi",
    "/proc/kcore",
    "/proc/keys",
    "/proc/latency_stats",
    "/proc/timer_list",
    "/proc/timer_stats",
    "/proc/sched_debug",
    "/proc/scsi",
    "/sys/firmware",
    "/sys/devices/virtual/powercap",
];

/// Paths Docker makes read-only in containers.
pub const READONLY_PATHS: [&str; 5] = [
    "/proc/bus",
    "/proc/fs",
    "/proc/irq",
    "/proc/sys",
    "/proc/sysrq-trigger",
];

/// The container's main process.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ProcessConfig {
    /// Program and arguments.
    pub args: Vec<String>,
    /// `KEY=value` pairs.
    pub env: Vec<String>,
    /// Working directory (absolute).
    pub cwd: String,
    /// User id.
    pub uid: u32,
    /// Group id.
    pub gid: u32,
    /// Supplementary groups.
    pub additional_gids: Vec<u32>,
    /// A terminal (`-t`): the runtime then needs a console socket.
    pub terminal: bool,
}

/// Everything a task's `config.json` is built from.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ContainerConfig {
    /// Its process.
    pub process: ProcessConfig,
    /// Its root file system (the overlay's mount point).
    pub rootfs: PathBuf,
    /// Its host name.
    pub hostname: String,
    /// The network namespace to join (`None`: the node's, for `--network host`).
    pub netns: Option<PathBuf>,
    /// Files bound over the container's: (source on the node, destination in the container).
    pub binds: Vec<(PathBuf, String)>,
    /// Secrets and configs: files bound read-only (source on the node, destination).
    pub file_binds: Vec<(PathBuf, String)>,
    /// `linux.cgroupsPath` (`None`: the runtime's default, or no cgroup of its own).
    pub cgroups_path: Option<PathBuf>,
    /// Its limits (as `linux.resources`).
    pub limits: Limits,
    /// A cgroup namespace of its own (Docker's default on cgroup v2).
    pub cgroup_ns: bool,
    /// The image's stop signal, kept as an annotation.
    pub stop_signal: Option<String>,
    /// The image's health check (JSON), kept as an annotation.
    pub health: Option<String>,
    /// `--init`: this program (tini's static build, as Docker's `docker-init`: the image may
    /// have no C library) is bound read-only at [`INIT_PATH`] and runs as PID 1, the task's
    /// process as its child: `docker-init -- PROGRAM ARGS…`.
    pub init: Option<PathBuf>,
}

/// Where `--init`'s program is bound in the container (Docker's path: an image's tooling may
/// look for it there).
pub const INIT_PATH: &str = "/sbin/docker-init";

fn mount(dest: &str, typ: &str, source: &str, options: &[&str]) -> Result<Mount, OciSpecError> {
    MountBuilder::default()
        .destination(dest)
        .typ(typ)
        .source(source)
        .options(options.iter().map(|s| s.to_string()).collect::<Vec<_>>())
        .build()
}

/// Docker's default mounts (moby `oci/defaults.go`): `/proc`, a tmpfs `/dev`, `/dev/pts`,
/// `/sys` read-only, the cgroup tree read-only, `/dev/mqueue`, a 64 MiB `/dev/shm`.
pub fn default_mounts() -> Result<Vec<Mount>, OciSpecError> {
    Ok(vec![
        mount("/proc", "proc", "proc", &["nosuid", "noexec", "nodev"])?,
        mount(
            "/dev",
            "tmpfs",
            "tmpfs",
            &["nosuid", "strictatime", "mode=755", "size=65536k"],
        )?,
        mount(
            "/dev/pts",
            "devpts",
            "devpts",
            &[
                "nosuid",
                "noexec",
                "newinstance",
                "ptmxmode=0666",
                "mode=0620",
                "gid=5",
            ],
        )?,
        mount(
            "/sys",
            "sysfs",
            "sysfs",
            &["nosuid", "noexec", "nodev", "ro"],
        )?,
        mount(
            "/sys/fs/cgroup",
            "cgroup",
            "cgroup",
            &["ro", "nosuid", "noexec", "nodev"],
        )?,
        mount(
            "/dev/mqueue",
            "mqueue",
            "mqueue",
            &["nosuid", "noexec", "nodev"],
        )?,
        mount(
            "/dev/shm",
            "tmpfs",
            "shm",
            &["nosuid", "noexec", "nodev", "mode=1777", "size=65536k"],
        )?,
    ])
}

/// The device cgroup rules: nothing, then Docker's default devices (`/dev/null`, `zero`,
/// `full`, `random`, `urandom`, `tty`, `console`, the pty master and slaves) and `mknod` of any.
fn device_rules() -> Result<Vec<oci_spec::runtime::LinuxDeviceCgroup>, OciSpecError> {
    let rule = |allow: bool,
                typ: LinuxDeviceType,
                major: Option<i64>,
                minor: Option<i64>,
                access: &str| {
        let mut b = LinuxDeviceCgroupBuilder::default()
            .allow(allow)
            .typ(typ)
            .access(access);
        if let Some(m) = major {
            b = b.major(m);
        }
        if let Some(m) = minor {
            b = b.minor(m);
        }
        b.build()
    };
    use LinuxDeviceType::{A, B, C};
    Ok(vec![
        rule(false, A, None, None, "rwm")?,
        rule(true, C, None, None, "m")?,
        rule(true, B, None, None, "m")?,
        rule(true, C, Some(1), Some(3), "rwm")?, // null
        rule(true, C, Some(1), Some(5), "rwm")?, // zero
        rule(true, C, Some(1), Some(7), "rwm")?, // full
        rule(true, C, Some(1), Some(8), "rwm")?, // random
        rule(true, C, Some(1), Some(9), "rwm")?, // urandom
        rule(true, C, Some(5), Some(0), "rwm")?, // tty
        rule(true, C, Some(5), Some(1), "rwm")?, // console
        rule(true, C, Some(5), Some(2), "rwm")?, // ptmx
        rule(true, C, Some(136), None, "rwm")?,  // pts
    ])
}

/// The container's process as `config.json` (and `exec --process`) take it.
pub fn process(p: &ProcessConfig) -> Result<oci_spec::runtime::Process, OciSpecError> {
    let caps: HashSet<Capability> = DEFAULT_CAPS.into_iter().collect();
    let capabilities = LinuxCapabilitiesBuilder::default()
        .bounding(caps.clone())
        .effective(caps.clone())
        .permitted(caps)
        .build()?;
    let mut user = UserBuilder::default().uid(p.uid).gid(p.gid);
    if !p.additional_gids.is_empty() {
        user = user.additional_gids(p.additional_gids.clone());
    }
    ProcessBuilder::default()
        .terminal(p.terminal)
        .user(user.build()?)
        .args(p.args.clone())
        .env(p.env.clone())
        .cwd(&p.cwd)
        .capabilities(capabilities)
        .no_new_privileges(true)
        .build()
}

/// Builds the spec of a container.
pub fn build(c: &ContainerConfig) -> Result<Spec, OciSpecError> {
    let ns = |typ: LinuxNamespaceType, path: Option<&Path>| {
        let b = LinuxNamespaceBuilder::default().typ(typ);
        match path {
            Some(p) => b.path(p).build(),
            None => b.build(),
        }
    };
    let mut namespaces = vec![
        ns(LinuxNamespaceType::Pid, None)?,
        ns(LinuxNamespaceType::Ipc, None)?,
        ns(LinuxNamespaceType::Uts, None)?,
        ns(LinuxNamespaceType::Mount, None)?,
    ];
    if let Some(path) = &c.netns {
        namespaces.push(ns(LinuxNamespaceType::Network, Some(path))?);
    }
    if c.cgroup_ns {
        namespaces.push(ns(LinuxNamespaceType::Cgroup, None)?);
    }

    let mut resources = LinuxResourcesBuilder::default().devices(device_rules()?);
    if let Some(bytes) = c.limits.memory_bytes {
        let limit = i64::try_from(bytes).unwrap_or(i64::MAX);
        resources = resources.memory(LinuxMemoryBuilder::default().limit(limit).build()?);
    }
    if let Some(quota) = c.limits.cpu_quota_us {
        let cpu = LinuxCpuBuilder::default()
            .quota(i64::try_from(quota).unwrap_or(i64::MAX))
            .period(CFS_PERIOD_US)
            .build()?;
        resources = resources.cpu(cpu);
    }

    let mut linux = LinuxBuilder::default()
        .namespaces(namespaces)
        .resources(resources.build()?)
        .masked_paths(MASKED_PATHS.map(String::from).to_vec())
        .readonly_paths(READONLY_PATHS.map(String::from).to_vec());
    if let Some(p) = &c.cgroups_path {
        linux = linux.cgroups_path(p.clone());
    }

    let mut mounts = default_mounts()?;
    for (source, dest) in &c.binds {
        mounts.push(
            MountBuilder::default()
                .destination(dest)
                .typ("bind")
                .source(source)
                .options(vec!["rbind".to_string(), "rprivate".to_string()])
                .build()?,
        );
    }

    for (source, dest) in &c.file_binds {
        mounts.push(
            MountBuilder::default()
                .destination(dest)
                .typ("bind")
                .source(source)
                .options(
                    ["bind", "rprivate", "ro", "nosuid", "nodev", "noexec"]
                        .map(String::from)
                        .to_vec(),
                )
                .build()?,
        );
    }

    let mut process_config = c.process.clone();
    if let Some(init) = &c.init {
        mounts.push(
            MountBuilder::default()
                .destination(INIT_PATH)
                .typ("bind")
                .source(init)
                .options(vec!["bind".to_string(), "ro".to_string()])
                .build()?,
        );
        let mut args = vec![INIT_PATH.to_string(), "--".to_string()];
        args.append(&mut process_config.args);
        process_config.args = args;
    }

    let mut spec = SpecBuilder::default()
        .version("1.0.2")
        .root(
            RootBuilder::default()
                .path(&c.rootfs)
                .readonly(false)
                .build()?,
        )
        .process(process(&process_config)?)
        .hostname(&c.hostname)
        .mounts(mounts)
        .linux(linux.build()?);
    let annotations: std::collections::HashMap<String, String> = [
        (STOP_SIGNAL_ANNOTATION, &c.stop_signal),
        (HEALTH_ANNOTATION, &c.health),
    ]
    .into_iter()
    .filter_map(|(k, v)| Some((k.to_string(), v.clone()?)))
    .collect();
    if !annotations.is_empty() {
        spec = spec.annotations(annotations);
    }
    spec.build()
}
