//! Unit tests on sample `/proc/self/cgroup` texts and cgroup trees built in a temporary
//! directory (no root), then root tests that run real tasks in real cgroups beneath the test
//! process's own.

use super::*;
use shoal_proto::model::ServiceSpec;
use std::os::unix::fs::symlink;

const V1_SAMPLE: &str = "9:name=systemd:/\n8:pids:/\n4:memory:/process_api/abc\n3:cpuset:/\n\
                         2:cpu,cpuacct:/\n0::/\n";
const V2_SAMPLE: &str = "0::/system.slice/swarmd.service\n";

fn limits(mem: i64, cpus: f64) -> Limits {
    Limits::of(&ServiceSpec {
        limit_memory_bytes: mem,
        limit_cpus: cpus,
        ..Default::default()
    })
}

fn touch(path: &Path, content: &str) {
    fs::create_dir_all(path.parent().unwrap()).unwrap();
    fs::write(path, content).unwrap();
}

fn read(path: &Path) -> String {
    fs::read_to_string(path).unwrap()
}

/// A v1 host like this machine kind: memory under a managed cgroup, `cpu,cpuacct` at the
/// root, and a cgroup2 mount without controllers at `unified`.
fn v1_tree(root: &Path) -> Cgroups {
    touch(
        &root.join("memory/process_api/abc/memory.limit_in_bytes"),
        "9223372036854771712\n",
    );
    touch(&root.join("cpu,cpuacct/cpu.cfs_quota_us"), "-1\n");
    touch(&root.join("unified/cgroup.controllers"), "");
    Cgroups::detect_at(root, Ok(V1_SAMPLE.into()))
}

/// A v2 host with swarmd in `system.slice/swarmd.service`.
fn v2_tree(root: &Path, own_controllers: &str) -> (Cgroups, PathBuf) {
    touch(
        &root.join("cgroup.controllers"),
        "cpuset cpu io memory pids\n",
    );
    let own = root.join("system.slice/swarmd.service");
    touch(&own.join("cgroup.controllers"), own_controllers);
    touch(&own.join("cgroup.subtree_control"), "");
    (Cgroups::detect_at(root, Ok(V2_SAMPLE.into())), own)
}

#[test]
fn parses_proc_self_cgroup() {
    let m = Membership::parse(V1_SAMPLE);
    assert_eq!(m.v2.as_deref(), Some("/"));
    assert_eq!(m.v1.len(), 5);
    assert_eq!(
        m.v1_of("memory"),
        Some(&(vec!["memory".to_string()], "/process_api/abc".to_string()))
    );
    assert_eq!(
        m.v1_of("cpu"),
        Some(&(vec!["cpu".into(), "cpuacct".into()], "/".to_string()))
    );
    assert_eq!(m.v1[0].0, ["name=systemd"]);

    let m = Membership::parse(V2_SAMPLE);
    assert_eq!(m.v2.as_deref(), Some("/system.slice/swarmd.service"));
    assert!(m.v1.is_empty());

    // Paths may hold ':'; junk lines are skipped.
    let m = Membership::parse("garbage\n4:memory:/a:b\n");
    assert_eq!(m.v1, [(vec!["memory".to_string()], "/a:b".to_string())]);
}

#[test]
fn detects_v1_beneath_own_cgroups() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    let cg = v1_tree(root);
    assert_eq!(cg.version(), Some(Version::V1));
    assert_eq!(
        cg.task_dirs("t1"),
        [
            root.join("memory/process_api/abc/shoal-t1"),
            root.join("cpu,cpuacct/shoal-t1")
        ]
    );
}

#[test]
fn detects_v1_through_the_controller_symlink_name() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    touch(&root.join("cpu/x/cpu.cfs_quota_us"), "-1\n");
    let cg = Cgroups::detect_at(root, Ok("2:cpu,cpuacct:/x\n".into()));
    assert_eq!(cg.task_dirs("t"), [root.join("cpu/x/shoal-t")]);
    // No memory hierarchy: a memory limit is refused with the reason, a CPU one is fine.
    let err = cg.create("t", &limits(64 << 20, 0.0)).unwrap_err();
    assert!(
        err.to_string()
            .contains("no memory line in /proc/self/cgroup"),
        "{err}"
    );
}

#[test]
fn detects_v2_only_with_memory_or_cpu_at_the_root() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    let (cg, own) = v2_tree(root, "cpu memory");
    assert_eq!(cg.version(), Some(Version::V2));
    assert_eq!(cg.task_dirs("t1"), [own.join("shoal-tasks/shoal-t1")]);

    // A cgroup2 root without those controllers (a hybrid host) is v1.
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    touch(&root.join("cgroup.controllers"), "hugetlb\n");
    let cg = v1_tree(root);
    assert_eq!(cg.version(), Some(Version::V1));
}

#[test]
fn no_cgroups_means_only_unlimited_tasks() {
    let dir = tempfile::tempdir().unwrap();
    let cg = Cgroups::detect_at(dir.path(), Err(io::ErrorKind::NotFound.into()));
    assert_eq!(cg.version(), None);
    assert!(cg.task_dirs("t").is_empty());
    assert_eq!(
        cg.create("t", &Limits::default()).unwrap(),
        Vec::<PathBuf>::new()
    );
    let err = cg.create("t", &limits(0, 1.0)).unwrap_err();
    assert!(
        err.to_string()
            .starts_with("cgroup: cannot apply the cpu limit: reading /proc/self/cgroup"),
        "{err}"
    );
}

#[test]
fn own_cgroup_not_visible_is_explained() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    touch(&root.join("memory/memory.limit_in_bytes"), "0\n");
    let cg = Cgroups::detect_at(root, Ok("4:memory:/docker/abc\n".into()));
    let err = cg.create("t", &limits(1 << 20, 0.0)).unwrap_err();
    let msg = err.to_string();
    assert!(
        msg.contains("swarmd's memory cgroup /docker/abc is not under"),
        "{msg}"
    );
}

#[test]
fn limits_from_specs() {
    assert_eq!(
        limits(64 << 20, 0.5),
        Limits {
            memory_bytes: Some(67_108_864),
            cpu_quota_us: Some(50_000)
        }
    );
    assert!(limits(0, 0.0).is_empty());
    assert!(limits(-5, -1.0).is_empty());
    assert!(limits(0, f64::NAN).is_empty());
    assert_eq!(limits(0, 0.001).cpu_quota_us, Some(MIN_CFS_QUOTA_US));
    assert_eq!(limits(0, 2.0).cpu_quota_us, Some(200_000));
    assert_eq!(limits(0, 1.5).controllers(), [Controller::Cpu]);
}

#[test]
fn limit_file_contents() {
    let files = |v, l: &Limits| -> Vec<(&'static str, String, bool)> {
        limit_files(v, l)
            .into_iter()
            .map(|f| (f.file, f.value, f.required))
            .collect()
    };
    let l = limits(64 << 20, 0.5);
    assert_eq!(
        files(Version::V1, &l),
        [
            ("memory.limit_in_bytes", "67108864".to_string(), true),
            ("memory.memsw.limit_in_bytes", "67108864".to_string(), false),
            ("cpu.cfs_period_us", "100000".to_string(), true),
            ("cpu.cfs_quota_us", "50000".to_string(), true),
        ]
    );
    assert_eq!(
        files(Version::V2, &l),
        [
            ("memory.max", "67108864".to_string(), true),
            ("memory.swap.max", "0".to_string(), false),
            ("cpu.max", "50000 100000".to_string(), true),
        ]
    );
    assert_eq!(
        files(Version::V2, &limits(0, 3.0)),
        [("cpu.max", "300000 100000".to_string(), true)]
    );
    assert!(limit_files(Version::V1, &Limits::default()).is_empty());
}

#[test]
fn creates_v1_cgroups_and_writes_limits() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    let cg = v1_tree(root);
    let [mem, cpu] = <[PathBuf; 2]>::try_from(cg.task_dirs("t1")).unwrap();
    // A plain directory stands in for the kernel: the files a new cgroup has exist already.
    for f in ["memory.limit_in_bytes", "cgroup.procs"] {
        touch(&mem.join(f), "");
    }
    for f in ["cpu.cfs_period_us", "cpu.cfs_quota_us", "cgroup.procs"] {
        touch(&cpu.join(f), "");
    }
    let procs = cg.create("t1", &limits(64 << 20, 0.5)).unwrap();
    assert_eq!(procs, [mem.join("cgroup.procs"), cpu.join("cgroup.procs")]);
    assert_eq!(read(&mem.join("memory.limit_in_bytes")), "67108864");
    assert!(
        !mem.join("memory.memsw.limit_in_bytes").exists(),
        "optional files are written only where the kernel has them"
    );
    assert_eq!(read(&cpu.join("cpu.cfs_period_us")), "100000");
    assert_eq!(read(&cpu.join("cpu.cfs_quota_us")), "50000");

    // Memory only: no cpu cgroup.
    touch(
        &root.join("memory/process_api/abc/shoal-t2/memory.limit_in_bytes"),
        "",
    );
    touch(
        &root.join("memory/process_api/abc/shoal-t2/cgroup.procs"),
        "",
    );
    let procs = cg.create("t2", &limits(1 << 30, 0.0)).unwrap();
    assert_eq!(procs.len(), 1);
    assert!(!root.join("cpu,cpuacct/shoal-t2").exists());

    // No limit: no cgroup at all.
    assert!(cg.create("t3", &Limits::default()).unwrap().is_empty());
    assert!(cg.task_dirs("t3").iter().all(|d| !d.exists()));
}

#[test]
fn a_limit_that_cannot_be_written_names_the_file_and_errno() {
    let dir = tempfile::tempdir().unwrap();
    let cg = v1_tree(dir.path());
    // The directory made here has no `memory.limit_in_bytes`: ENOENT on writing it.
    let err = cg
        .create("t1", &limits(64 << 20, 0.0))
        .unwrap_err()
        .to_string();
    let file = dir
        .path()
        .join("memory/process_api/abc/shoal-t1/memory.limit_in_bytes");
    assert!(
        err.starts_with(&format!("cgroup: writing 67108864 to {}: ", file.display())),
        "{err}"
    );
    assert!(err.contains("(os error 2)"), "{err}");
    assert!(
        cg.task_dirs("t1").iter().all(|d| !d.exists()),
        "the half-made cgroup is removed"
    );
    assert!(matches!(
        cg.create("../x", &limits(1, 0.0)),
        Err(Error::BadName(_))
    ));
}

#[test]
fn creates_v2_cgroups_below_shoal_tasks() {
    let dir = tempfile::tempdir().unwrap();
    let (cg, own) = v2_tree(dir.path(), "cpu io memory\n");
    let parent = own.join("shoal-tasks");
    touch(&parent.join("cgroup.subtree_control"), "");
    let task = parent.join("shoal-t1");
    for f in ["memory.max", "memory.swap.max", "cpu.max", "cgroup.procs"] {
        touch(&task.join(f), "");
    }
    let procs = cg.create("t1", &limits(64 << 20, 0.5)).unwrap();
    assert_eq!(procs, [task.join("cgroup.procs")]);
    assert_eq!(read(&task.join("memory.max")), "67108864");
    assert_eq!(read(&task.join("memory.swap.max")), "0");
    assert_eq!(read(&task.join("cpu.max")), "50000 100000");
    assert!(!read(&own.join("cgroup.subtree_control")).is_empty());
    assert!(!read(&parent.join("cgroup.subtree_control")).is_empty());
}

#[test]
fn runtime_paths_are_beneath_swarmds_cgroup() {
    let dir = tempfile::tempdir().unwrap();
    // v1: relative, which runc resolves beneath its own (swarmd's) cgroup in each hierarchy.
    let cg = v1_tree(dir.path());
    assert_eq!(
        cg.runtime_path("t1", &limits(64 << 20, 0.5)).unwrap(),
        Some(PathBuf::from("shoal-t1"))
    );
    assert!(matches!(
        cg.runtime_path("../x", &Limits::default()),
        Err(Error::BadName(_))
    ));

    // v2: absolute, below shoal-tasks, with the controllers delegated on the way.
    let dir = tempfile::tempdir().unwrap();
    let (cg, own) = v2_tree(dir.path(), "cpu io memory\n");
    touch(&own.join("shoal-tasks/cgroup.subtree_control"), "");
    assert_eq!(
        cg.runtime_path("t1", &limits(64 << 20, 0.0)).unwrap(),
        Some(PathBuf::from(
            "/system.slice/swarmd.service/shoal-tasks/shoal-t1"
        ))
    );
    assert!(read(&own.join("cgroup.subtree_control")).contains("memory"));

    // No cgroups at all: fine without limits, an error with one.
    let none = Cgroups::detect_at(dir.path(), Err(io::Error::other("no /proc")));
    assert_eq!(none.runtime_path("t1", &Limits::default()).unwrap(), None);
    assert!(none.runtime_path("t1", &limits(1 << 20, 0.0)).is_err());
}

#[test]
fn v2_refusals_say_what_to_do() {
    let dir = tempfile::tempdir().unwrap();
    let (cg, own) = v2_tree(dir.path(), "memory\n");
    let err = cg.create("t1", &limits(0, 1.0)).unwrap_err().to_string();
    assert!(err.contains("cgroup.controllers lists \"memory\""), "{err}");
    assert!(err.contains("Delegate=yes"), "{err}");

    // The kernel refusing `+memory` (EBUSY when swarmd's cgroup holds processes; here a file
    // that cannot be written).
    fs::remove_file(own.join("cgroup.subtree_control")).unwrap();
    symlink("/proc/version", own.join("cgroup.subtree_control")).unwrap();
    let err = cg.create("t1", &limits(1 << 20, 0.0)).unwrap_err();
    assert!(matches!(err, Error::Delegate { .. }), "{err}");
    let msg = err.to_string();
    assert!(
        msg.starts_with(&format!(
            "cgroup v2: cannot delegate memory/cpu below swarmd's cgroup {}: writing \"+memory\"",
            own.display()
        )),
        "{msg}"
    );
    assert!(msg.contains("os error"), "{msg}");
    assert!(msg.ends_with("a systemd unit with Delegate=yes"), "{msg}");
}

#[tokio::test]
async fn remove_and_sweep() {
    let dir = tempfile::tempdir().unwrap();
    let cg = v1_tree(dir.path());
    let own = dir.path().join("memory/process_api/abc");
    for d in ["shoal-t1", "shoal-old", "shoal-keep", "other"] {
        fs::create_dir(own.join(d)).unwrap();
    }
    touch(&own.join("shoal-file"), "");
    cg.remove("t1", Duration::ZERO, Duration::ZERO)
        .await
        .unwrap();
    assert!(!own.join("shoal-t1").exists());
    cg.remove("t1", Duration::ZERO, Duration::ZERO)
        .await
        .unwrap(); // gone already: fine

    let keep: HashSet<String> = ["keep".to_string()].into();
    assert!(cg.sweep(&keep, Duration::from_secs(3600)).is_empty());
    assert!(own.join("shoal-old").exists(), "too young to be a leftover");
    assert!(cg.sweep(&keep, Duration::ZERO).is_empty());
    assert!(!own.join("shoal-old").exists());
    for kept in ["shoal-keep", "other", "shoal-file"] {
        assert!(own.join(kept).exists(), "{kept}");
    }
    // A cgroup that cannot be removed is reported, not fatal.
    touch(&own.join("shoal-busy/x"), "");
    let failed = cg.sweep(&keep, Duration::ZERO);
    assert_eq!(failed.len(), 1);
    assert!(
        failed[0].to_string().contains("shoal-busy"),
        "{}",
        failed[0]
    );
}

mod root;
