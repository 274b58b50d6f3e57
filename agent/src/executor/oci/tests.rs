//! The OCI executor without root: the generated spec, the merge of image defaults, users.

use super::spec::{self, ContainerConfig, ProcessConfig, DEFAULT_CAPS};
use super::*;
use oci_spec::runtime::{Capability, LinuxNamespaceType};
use shoal_proto::model::ServiceSpec;
use std::path::Path;

fn config() -> ContainerConfig {
    ContainerConfig {
        process: ProcessConfig {
            args: vec!["/bin/sh".into(), "-c".into(), "echo hi".into()],
            env: vec!["PATH=/bin".into(), "A=b".into()],
            cwd: "/srv".into(),
            uid: 1000,
            gid: 100,
            additional_gids: vec![27],
            terminal: false,
        },
        rootfs: "/var/lib/shoal/tasks/t1/bundle/rootfs".into(),
        hostname: "t1".into(),
        netns: Some("/run/shoal/netns/tk_t1".into()),
        binds: vec![(
            "/var/lib/shoal/tasks/t1/resolv.conf".into(),
            "/etc/resolv.conf".into(),
        )],
        file_binds: vec![(
            "/var/lib/shoal/tasks/t1/files/secret-0".into(),
            "/run/secrets/db_pass".into(),
        )],
        cgroups_path: Some("shoal-t1".into()),
        limits: Limits {
            memory_bytes: Some(64 << 20),
            cpu_quota_us: Some(50_000),
        },
        cgroup_ns: false,
        stop_signal: Some("SIGQUIT".into()),
        health: None,
        init: None,
    }
}

use crate::executor::cgroup::Limits;

#[test]
fn spec_joins_the_tasks_netns_and_makes_the_other_namespaces() {
    let s = spec::build(&config()).unwrap();
    let ns = s.linux().as_ref().unwrap().namespaces().as_ref().unwrap();
    let net: Vec<_> = ns
        .iter()
        .filter(|n| n.typ() == LinuxNamespaceType::Network)
        .collect();
    assert_eq!(net.len(), 1);
    assert_eq!(
        net[0].path().as_deref(),
        Some(Path::new("/run/shoal/netns/tk_t1"))
    );
    for t in [
        LinuxNamespaceType::Pid,
        LinuxNamespaceType::Ipc,
        LinuxNamespaceType::Uts,
        LinuxNamespaceType::Mount,
    ] {
        let n = ns.iter().find(|n| n.typ() == t).unwrap();
        assert!(n.path().is_none(), "{t:?} is a new namespace");
    }
    assert!(!ns.iter().any(|n| n.typ() == LinuxNamespaceType::Cgroup));
    assert!(!ns.iter().any(|n| n.typ() == LinuxNamespaceType::User));

    let mut host = config();
    host.netns = None;
    host.cgroup_ns = true;
    let s = spec::build(&host).unwrap();
    let ns = s.linux().as_ref().unwrap().namespaces().as_ref().unwrap();
    assert!(
        !ns.iter().any(|n| n.typ() == LinuxNamespaceType::Network),
        "host network: the node's namespace"
    );
    assert!(ns.iter().any(|n| n.typ() == LinuxNamespaceType::Cgroup));
}

#[test]
fn spec_has_dockers_mounts_and_the_tasks_etc_files() {
    let s = spec::build(&config()).unwrap();
    let mounts = s.mounts().as_ref().unwrap();
    let dest: Vec<String> = mounts
        .iter()
        .map(|m| m.destination().display().to_string())
        .collect();
    for d in [
        "/proc",
        "/dev",
        "/dev/pts",
        "/sys",
        "/sys/fs/cgroup",
        "/dev/mqueue",
        "/dev/shm",
        "/etc/resolv.conf",
    ] {
        assert!(dest.iter().any(|x| x == d), "{d} in {dest:?}");
    }
    let sys = mounts
        .iter()
        .find(|m| m.destination() == Path::new("/sys"))
        .unwrap();
    assert!(sys.options().as_ref().unwrap().contains(&"ro".to_string()));
    let resolv = mounts
        .iter()
        .find(|m| m.destination() == Path::new("/etc/resolv.conf"))
        .unwrap();
    assert_eq!(resolv.typ().as_deref(), Some("bind"));
    assert_eq!(
        resolv.source().as_deref(),
        Some(Path::new("/var/lib/shoal/tasks/t1/resolv.conf"))
    );
    let secret = mounts
        .iter()
        .find(|m| m.destination() == Path::new("/run/secrets/db_pass"))
        .unwrap();
    assert_eq!(secret.typ().as_deref(), Some("bind"));
    let opts = secret.options().as_ref().unwrap();
    assert!(
        ["ro", "nosuid", "nodev", "noexec"]
            .iter()
            .all(|o| opts.contains(&o.to_string())),
        "secrets are read-only: {opts:?}"
    );
    assert_eq!(s.hostname().as_deref(), Some("t1"));
    let root = s.root().as_ref().unwrap();
    assert_eq!(
        root.path(),
        Path::new("/var/lib/shoal/tasks/t1/bundle/rootfs")
    );
    assert_eq!(root.readonly(), Some(false));
    let linux = s.linux().as_ref().unwrap();
    let masked = linux.masked_paths().as_ref().unwrap();
    assert!(masked.contains(&"/proc/kcore".to_string()));
    assert!(masked.contains(&"/sys/firmware".to_string()));
    let ro = linux.readonly_paths().as_ref().unwrap();
    assert!(ro.contains(&"/proc/sys".to_string()));
    assert!(ro.contains(&"/proc/sysrq-trigger".to_string()));
}

#[test]
fn spec_process_has_dockers_caps_env_cwd_user() {
    let s = spec::build(&config()).unwrap();
    let p = s.process().as_ref().unwrap();
    assert_eq!(p.args().as_ref().unwrap()[0], "/bin/sh");
    assert_eq!(
        p.env().as_ref().unwrap(),
        &vec!["PATH=/bin".to_string(), "A=b".into()]
    );
    assert_eq!(p.cwd(), Path::new("/srv"));
    assert_eq!(p.user().uid(), 1000);
    assert_eq!(p.user().gid(), 100);
    assert_eq!(p.user().additional_gids().as_deref(), Some(&[27][..]));
    assert_eq!(p.no_new_privileges(), Some(true));
    assert_eq!(p.terminal(), Some(false));
    let caps = p.capabilities().as_ref().unwrap();
    let bounding = caps.bounding().as_ref().unwrap();
    assert_eq!(bounding.len(), 14);
    for c in DEFAULT_CAPS {
        assert!(bounding.contains(&c), "{c:?}");
    }
    assert!(!bounding.contains(&Capability::SysAdmin));
    assert!(!bounding.contains(&Capability::NetAdmin));
    assert_eq!(caps.effective(), caps.bounding());
}

#[test]
fn spec_carries_limits_and_the_cgroup_path() {
    let s = spec::build(&config()).unwrap();
    let linux = s.linux().as_ref().unwrap();
    assert_eq!(linux.cgroups_path().as_deref(), Some(Path::new("shoal-t1")));
    let r = linux.resources().as_ref().unwrap();
    assert_eq!(r.memory().unwrap().limit(), Some(64 << 20));
    assert_eq!(r.cpu().as_ref().unwrap().quota(), Some(50_000));
    assert_eq!(r.cpu().as_ref().unwrap().period(), Some(100_000));
    let devices = r.devices().as_ref().unwrap();
    assert!(!devices[0].allow(), "deny everything first");
    assert_eq!(
        s.annotations()
            .as_ref()
            .unwrap()
            .get(spec::STOP_SIGNAL_ANNOTATION)
            .map(String::as_str),
        Some("SIGQUIT")
    );
    // It is what a runtime reads.
    let json = serde_json::to_value(&s).unwrap();
    assert_eq!(json["linux"]["cgroupsPath"], "shoal-t1");
    assert_eq!(json["process"]["noNewPrivileges"], true);
    assert_eq!(json["linux"]["resources"]["memory"]["limit"], 64 << 20);
}

fn task(args: &[&str], env: &[&str]) -> Task {
    Task {
        id: "t1".into(),
        service_name: "web".into(),
        slot: 1,
        spec: ServiceSpec {
            image: "img".into(),
            args: args.iter().map(|s| s.to_string()).collect(),
            env: env.iter().map(|s| s.to_string()).collect(),
            ..Default::default()
        },
        ..Default::default()
    }
}

#[test]
fn the_process_is_dockers_merge_with_shoals_env() {
    let image = ImageConfig {
        entrypoint: vec!["/entry".into()],
        cmd: vec!["--default".into()],
        env: vec!["PATH=/image/bin".into(), "A=image".into()],
        working_dir: "/app".into(),
        user: "www".into(),
        ..Default::default()
    };
    let p = process_of(&image, &task(&[], &[]), "n1").unwrap();
    assert_eq!(p.args, ["/entry", "--default"]);
    assert_eq!(p.cwd, "/app");
    assert_eq!(p.user, "www");
    assert!(p.env.contains(&"SHOAL_TASK_ID=t1".to_string()));
    assert!(p.env.contains(&"SHOAL_NODE_ID=n1".to_string()));
    let mut t = task(&["x"], &["A=service", "SHOAL_TASK_SLOT=override"]);
    t.spec.entrypoint = vec!["/other".into()];
    t.spec.user = "1000:1000".into();
    t.spec.workdir = "/w".into();
    let p = process_of(&image, &t, "n1").unwrap();
    assert_eq!(
        p.args,
        ["/other", "x"],
        "--entrypoint drops the image's Cmd"
    );
    assert_eq!((p.cwd.as_str(), p.user.as_str()), ("/w", "1000:1000"));
    assert!(p.env.contains(&"A=service".to_string()));
    assert!(p.env.contains(&"SHOAL_TASK_SLOT=override".to_string()));
    let e = process_of(&ImageConfig::default(), &task(&[], &[]), "n1").unwrap_err();
    assert!(matches!(e, Error::NoImageCommand { .. }), "{e}");
    t.spec.workdir = "rel".into();
    let e = process_of(&image, &t, "n1").unwrap_err();
    assert!(matches!(e, Error::Process { .. }), "{e}");
}

#[test]
fn overlay_options_refuse_paths_that_would_split_them() {
    let o = overlay::Overlay {
        lower: "/images/a".into(),
        upper: "/t/upper".into(),
        work: "/t/work".into(),
        target: "/t/rootfs".into(),
    };
    assert_eq!(
        o.options().unwrap(),
        "lowerdir=/images/a,upperdir=/t/upper,workdir=/t/work"
    );
    let bad = overlay::Overlay {
        lower: "/images/a,upperdir=/etc".into(),
        ..o
    };
    assert!(bad.options().is_err());
}

#[test]
fn a_missing_runtime_is_a_clear_error() {
    let e = runtime::Runtime::new("no-such-runtime-xyz", "/nonexistent".into()).unwrap_err();
    assert!(e.to_string().contains("install runc or crun"), "{e}");
}

#[test]
fn init_and_terminal_in_the_spec() {
    let tini = Path::new("/usr/bin/tini-static");
    // (init program, terminal) → (argv, init bound read-only, process.terminal)
    let cases: [(Option<&Path>, bool, &[&str]); 4] = [
        (None, false, &["/bin/sh", "-c", "echo hi"]),
        (None, true, &["/bin/sh", "-c", "echo hi"]),
        (
            Some(tini),
            false,
            &["/sbin/docker-init", "--", "/bin/sh", "-c", "echo hi"],
        ),
        (
            Some(tini),
            true,
            &["/sbin/docker-init", "--", "/bin/sh", "-c", "echo hi"],
        ),
    ];
    for (init, terminal, want) in cases {
        let mut c = config();
        c.init = init.map(Path::to_path_buf);
        c.process.terminal = terminal;
        let s = spec::build(&c).unwrap();
        let p = s.process().as_ref().unwrap();
        let case = format!("init {init:?}, terminal {terminal}");
        assert_eq!(p.args().clone().unwrap(), want, "{case}");
        assert_eq!(p.terminal(), Some(terminal), "{case}");
        let bound = s
            .mounts()
            .as_ref()
            .unwrap()
            .iter()
            .find(|m| m.destination() == Path::new(spec::INIT_PATH));
        match (init, bound) {
            (None, None) => {}
            (Some(init), Some(m)) => {
                assert_eq!(m.source().as_deref(), Some(init), "{case}");
                assert_eq!(m.typ().as_deref(), Some("bind"), "{case}");
                assert!(
                    m.options().as_ref().unwrap().contains(&"ro".to_string()),
                    "{case}: read-only"
                );
            }
            (init, m) => panic!("{case}: init {init:?} but bound {m:?}"),
        }
    }
}

#[test]
fn an_images_healthcheck_becomes_the_models() {
    use shoal_proto::model::{HealthConfig, HealthTest};
    let h = shoal_image::Healthcheck {
        test: Some(vec!["CMD".into(), "/check".into()]),
        interval: Some(1_500_000_000),
        timeout: Some(1),
        start_period: Some(-5),
        retries: Some(2),
    };
    assert_eq!(
        super::image_health(&h),
        Some(HealthConfig {
            test: HealthTest::Cmd(vec!["/check".into()]),
            interval_ms: 1500,
            timeout_ms: 1,
            start_period_ms: 0,
            retries: 2,
        })
    );
    let none = shoal_image::Healthcheck {
        test: Some(vec!["NONE".into()]),
        ..Default::default()
    };
    assert_eq!(super::image_health(&none).unwrap().test, HealthTest::None);
    let bad = shoal_image::Healthcheck {
        test: Some(vec!["nonsense".into()]),
        ..Default::default()
    };
    assert_eq!(super::image_health(&bad), None);
}

#[test]
fn the_images_health_check_is_kept_with_the_container() {
    use shoal_proto::model::{HealthConfig, HealthTest};
    let h = HealthConfig {
        test: HealthTest::Shell("test -e /ok".into()),
        interval_ms: 500,
        ..Default::default()
    };
    let mut c = config();
    c.health = Some(serde_json::to_string(&h).unwrap());
    let s = spec::build(&c).unwrap();
    let a = s.annotations().clone().unwrap();
    // What adoption reads back.
    let back: HealthConfig = serde_json::from_str(&a[spec::HEALTH_ANNOTATION]).unwrap();
    assert_eq!(back, h);
    assert_eq!(a[spec::STOP_SIGNAL_ANNOTATION], "SIGQUIT");
    // No check, no annotation.
    let s = spec::build(&config()).unwrap();
    assert!(!s
        .annotations()
        .clone()
        .unwrap_or_default()
        .contains_key(spec::HEALTH_ANNOTATION));
}
