//! Lab logic that needs no root: validation, addresses, names, `lab.json`, `/proc` parsing.

use super::config::*;
use super::down::parse_mount_points;
use super::down::Removal;
use super::procs::{is_lab_swarmd, parse_cmdline, running_pid, swarmd_args, LabSwarmd, ProcInfo};
use super::ready::ReadyWatch;
use super::state::{LabDir, LabFile};
use super::up::suggest_subnet;
use super::{describe_labs, health_of, labs_here, no_such_lab, Health};
use crate::ctl::{lab::LabCmd, Cli, Command};
use clap::Parser;
use shoal_proto::model::Ipv4Net;
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};

fn spec(managers: usize, workers: usize, subnet: &str) -> LabSpec {
    LabSpec {
        name: "lab".into(),
        managers,
        workers,
        subnet: subnet.parse().unwrap(),
        images: None,
        no_swarm: false,
    }
}

#[test]
fn names() {
    for ok in ["lab", "a", "t0a1b2c3", "12345678"] {
        check_name(ok).unwrap();
    }
    for bad in [
        "",
        "Lab",
        "lab-1",
        "lab_1",
        "a/b",
        "..",
        "123456789",
        "läb",
        "a b",
    ] {
        let e = check_name(bad).unwrap_err();
        assert!(e.contains("invalid lab name"), "{bad}: {e}");
    }
}

#[test]
fn counts() {
    assert_eq!(check_counts(1, 0), Ok(None));
    assert_eq!(check_counts(3, 2), Ok(None));
    assert_eq!(check_counts(7, 16), Ok(None));
    assert!(check_counts(2, 0).unwrap().unwrap().contains("odd"));
    assert!(check_counts(0, 2).unwrap_err().contains("1 to 7"));
    assert!(check_counts(8, 0).unwrap_err().contains("1 to 7"));
    assert!(check_counts(3, 17).unwrap_err().contains("0 to 16"));
}

fn net(s: &str) -> Ipv4Net {
    parse_subnet(s).unwrap()
}

#[test]
fn subnets_parse_and_stay_inside_198_18_0_0_15() {
    let s = net("198.18.0.0/24");
    assert_eq!(s.to_string(), "198.18.0.0/24");
    check_subnet(s).unwrap();
    for ok in [
        "198.19.255.0/24",
        "198.18.4.0/22",
        "198.18.0.0/15",
        "198.19.0.0/16",
    ] {
        check_subnet(net(ok)).unwrap();
    }
    for outside in [
        "10.0.0.0/24",
        "198.17.255.0/24",
        "198.20.0.0/24",
        "0.0.0.0/0",
        "198.16.0.0/14",
    ] {
        let e = check_subnet(net(outside)).unwrap_err();
        assert!(e.contains("outside 198.18.0.0/15"), "{outside}: {e}");
    }
    let e = check_subnet(net("198.18.0.0/25")).unwrap_err();
    assert_eq!(
        e.as_str(),
        "--subnet 198.18.0.0/25 is too small: use a /24 (or a shorter prefix), \
         e.g. --subnet 198.18.0.0/24"
    );
    let e = parse_subnet("198.18.0.5/24").unwrap_err();
    assert!(e.contains("did you mean 198.18.0.0/24"), "{e}");
    for bad in ["198.18.0.0", "198.18.0.0/33", "x/24", "198.18.0.0/x", ""] {
        assert!(parse_subnet(bad).is_err(), "{bad}");
    }
}

#[test]
fn subnet_refusals_keep_the_labs_texts() {
    let why = |s: &str| parse_subnet(s).unwrap_err().to_string();
    let text =
        |s: &str, why: &str| format!("invalid subnet {s:?}: {why} (expected e.g. 198.18.0.0/24)");
    assert_eq!(why("198.18.0.0"), text("198.18.0.0", "no /prefix"));
    assert_eq!(why("x/24"), text("x/24", "not an IPv4 address"));
    for p in ["198.18.0.0/33", "198.18.0.0/x", "198.18.0.0/300"] {
        assert_eq!(why(p), text(p, "the prefix length must be 0 to 32"));
    }
    assert_eq!(
        why(" 198.18.0.5/24 "),
        text(
            " 198.18.0.5/24 ",
            "host bits are set; did you mean 198.18.0.0/24?"
        )
    );
    // Blanks around the whole are ignored, not inside it.
    assert_eq!(net(" 198.18.0.0/24\n"), net("198.18.0.0/24"));
    assert!(parse_subnet("198.18.0.0 /24").is_err());
}

#[test]
fn lab_json_keeps_its_subnet_string_and_the_labs_rules() {
    #[derive(serde::Serialize, serde::Deserialize, Debug)]
    struct F {
        #[serde(deserialize_with = "deserialize_subnet")]
        subnet: Ipv4Net,
    }
    let f: F = serde_json::from_str(r#"{"subnet":"198.18.0.0/24"}"#).unwrap();
    assert_eq!(
        serde_json::to_string(&f).unwrap(),
        r#"{"subnet":"198.18.0.0/24"}"#
    );
    assert!(serde_json::from_str::<F>(r#"{"subnet":"198.18.0.5/24"}"#).is_err());
}

#[test]
fn overlaps() {
    let a = net("198.18.0.0/24");
    let b = net("198.18.1.0/24");
    let wide = net("198.18.0.0/16");
    assert!(!a.overlaps(b));
    assert!(a.overlaps(wide) && wide.overlaps(b));
    assert!(wide.covers(a) && !a.covers(wide));
    assert_eq!(
        suggest_subnet(&[a, net("198.18.1.0/24")]),
        Some(net("198.18.2.0/24"))
    );
    assert_eq!(suggest_subnet(&[wide]), Some(net("198.19.0.0/24")));
    assert_eq!(suggest_subnet(&[SAFE_RANGE]), None);
}

#[test]
fn addresses_managers_first_then_workers() {
    let nodes = spec(3, 2, "198.18.7.0/24").nodes();
    let got: Vec<(String, Role, Ipv4Addr, String)> = nodes
        .iter()
        .map(|n| (n.name.clone(), n.role, n.address, n.link.clone()))
        .collect();
    let ip = |d: u8| Ipv4Addr::new(198, 18, 7, d);
    assert_eq!(
        got,
        vec![
            ("manager1".into(), Role::Manager, ip(1), "nm1".into()),
            ("manager2".into(), Role::Manager, ip(2), "nm2".into()),
            ("manager3".into(), Role::Manager, ip(3), "nm3".into()),
            ("worker1".into(), Role::Worker, ip(4), "nw1".into()),
            ("worker2".into(), Role::Worker, ip(5), "nw2".into()),
        ]
    );
    assert_eq!(nodes[0].endpoint(), "198.18.7.1:2377");
    assert_eq!(spec(3, 2, "198.18.7.0/24").host_address(), ip(254));
    // A wider subnet counts from its network address.
    let wide = spec(7, 16, "198.18.4.0/22");
    assert_eq!(wide.nodes()[22].address, Ipv4Addr::new(198, 18, 4, 23));
    assert_eq!(wide.host_address(), Ipv4Addr::new(198, 18, 4, 254));
}

#[test]
fn every_link_name_fits_15_bytes() {
    let mut s = spec(MAX_MANAGERS, MAX_WORKERS, DEFAULT_SUBNET);
    s.name = "z".repeat(MAX_NAME);
    check_link_names(&s).unwrap();
    assert_eq!(host_link(&s.name), "swlab-zzzzzzzz");
    assert!(host_link(&s.name).len() <= shoal_netlib::MAX_IFNAME);
    assert!(host_link(&s.name).starts_with(shoal_netlib::names::DEVICE));
    for n in s.nodes() {
        assert!(n.link.len() <= shoal_netlib::MAX_IFNAME, "{}", n.link);
    }
    assert_eq!(underlay_link(Role::Worker, 16), "nw16");
}

#[test]
fn validate_reports_the_first_problem() {
    assert_eq!(spec(3, 2, DEFAULT_SUBNET).validate(), Ok(vec![]));
    assert_eq!(spec(2, 0, DEFAULT_SUBNET).validate().unwrap().len(), 1);
    let mut s = spec(3, 2, DEFAULT_SUBNET);
    s.name = "Bad".into();
    assert!(s.validate().unwrap_err().contains("invalid lab name"));
    assert!(spec(3, 2, "10.1.0.0/24")
        .validate()
        .unwrap_err()
        .contains("outside"));
    assert_eq!(LabSpec::default(), spec(3, 2, "198.18.0.0/24"));
}

#[test]
fn lab_json_round_trips() {
    let dir = LabDir::new(Path::new("/tmp/labs"), "lab");
    let mut f = LabFile::plan(&spec(3, 2, DEFAULT_SUBNET), &dir, 1234);
    f.nodes[0].pid = Some(42);
    let text = serde_json::to_string_pretty(&f).unwrap();
    let back: LabFile = serde_json::from_str(&text).unwrap();
    assert_eq!(back, f);
    let v: serde_json::Value = serde_json::from_str(&text).unwrap();
    assert_eq!(v["subnet"], "198.18.0.0/24");
    assert_eq!(v["underlay"]["netns"], "/tmp/labs/lab/netns/ul");
    assert_eq!(v["underlay"]["bridge"], "ulbr0");
    assert_eq!(v["host_endpoint"]["link"], "swlab-lab");
    assert_eq!(v["host_endpoint"]["address"], "198.18.0.254");
    assert_eq!(v["nodes"][0]["role"], "manager");
    assert_eq!(v["nodes"][0]["pid"], 42);
    assert_eq!(v["nodes"][4]["name"], "worker2");
    assert_eq!(v["nodes"][4]["address"], "198.18.0.5");
    assert_eq!(v["nodes"][4]["state_dir"], "/tmp/labs/lab/nodes/worker2");
    assert_eq!(v["nodes"][4]["pid"], serde_json::Value::Null);
    assert_eq!(f.counts(), (3, 2));
    assert_eq!(f.node("worker1").unwrap().link, "nw1");
    // A bad subnet in the file is refused, not trusted.
    let bad = text.replace("198.18.0.0/24", "198.18.0.1/24");
    assert!(serde_json::from_str::<LabFile>(&bad).is_err());
}

#[test]
fn save_and_load() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = LabDir::new(tmp.path(), "x1");
    assert_eq!(dir.load().unwrap(), None);
    std::fs::create_dir_all(&dir.dir).unwrap();
    let f = LabFile::plan(&spec(1, 0, DEFAULT_SUBNET), &dir, 1);
    dir.save(&f).unwrap();
    assert_eq!(dir.load().unwrap(), Some(f));
    std::fs::write(dir.file(), "{").unwrap();
    assert!(dir.load().is_err());
    assert_eq!(super::state::list(tmp.path()), vec!["x1".to_string()]);
}

#[test]
fn swarmd_command_line() {
    let dir = LabDir::new(Path::new("/l"), "lab");
    let nodes = spec(3, 1, DEFAULT_SUBNET).nodes();
    let extra = vec!["--election-timeout".to_string(), "300ms".to_string()];
    let args = swarmd_args(
        &dir,
        &nodes[3],
        Some(("198.18.0.1:2377", "SWMTKN-1-a-b")),
        &extra,
    );
    assert_eq!(
        args.join(" "),
        "--state-dir /l/lab/nodes/worker1 --hostname worker1 --listen-addr 198.18.0.4:2377 \
         --advertise-addr 198.18.0.4:2377 --data-plane kernel --join 198.18.0.1:2377 \
         --token SWMTKN-1-a-b --dns-upstream none \
         --election-timeout 300ms"
    );
    let mut argv = vec!["/usr/bin/swarmd".to_string()];
    argv.extend(args);
    assert!(is_lab_swarmd(&argv, &dir.nodes()));
    // Another lab's swarmd, something else with a state dir, or no state dir: not ours.
    assert!(!is_lab_swarmd(&argv, Path::new("/l/other/nodes")));
    let mut other = argv.clone();
    other[0] = "/usr/bin/sleep".into();
    assert!(!is_lab_swarmd(&other, &dir.nodes()));
    assert!(!is_lab_swarmd(&argv[..1], &dir.nodes()));
    assert!(is_lab_swarmd(
        &["swarmd".into(), "--state-dir=/l/lab/nodes/manager1".into()],
        &dir.nodes()
    ));
}

#[test]
fn proc_entries() {
    assert_eq!(
        parse_cmdline(b"/bin/swarmd\0--state-dir\0/x y\0"),
        vec!["/bin/swarmd", "--state-dir", "/x y"]
    );
    let me = ProcInfo::read(std::process::id()).expect("this process");
    assert!(!me.zombie);
    assert!(!me.argv.is_empty());
    let nodes = PathBuf::from("/l/lab/nodes");
    let p = ProcInfo {
        pid: 1,
        argv: vec!["sleep".into(), "100".into()],
        cwd: Some(nodes.join("worker1/tasks/abc")),
        zombie: false,
    };
    assert!(p.belongs_to(&nodes));
    assert!(!p.belongs_to(Path::new("/l/lab2/nodes")));
    let by_arg = ProcInfo {
        cwd: Some("/".into()),
        argv: vec!["x".into(), "--log=/l/lab/nodes/m/x.log".into()],
        ..p.clone()
    };
    assert!(by_arg.belongs_to(&nodes));
    assert!(!ProcInfo { zombie: true, ..p }.belongs_to(&nodes));
}

#[test]
fn mountinfo_points() {
    let text = "36 35 98:0 / /mnt/a\\040b rw - ext4 /dev/x rw\n\
                37 35 0:4 net:[4026] /var/lib/shoal/labs/lab/netns/ul rw - nsfs nsfs rw\n";
    assert_eq!(
        parse_mount_points(text),
        vec![
            PathBuf::from("/mnt/a b"),
            PathBuf::from("/var/lib/shoal/labs/lab/netns/ul")
        ]
    );
}

#[test]
fn command_line() {
    let parse = |args: &[&str]| {
        let mut argv = vec!["swarmctl", "lab"];
        argv.extend(args);
        match Cli::try_parse_from(argv).map(|c| c.command) {
            Ok(Command::Lab(c)) => Ok(c),
            Ok(other) => panic!("not a lab command: {other:?}"),
            Err(e) => Err(e.to_string()),
        }
    };
    match parse(&["up"]).unwrap() {
        LabCmd::Up {
            name,
            managers,
            workers,
            subnet,
            images,
            no_swarm,
        } => {
            assert_eq!(name.name, "lab");
            assert_eq!((managers, workers), (3, 2));
            assert_eq!(subnet.to_string(), "198.18.0.0/24");
            assert_eq!(images, None);
            assert!(!no_swarm);
        }
        c => panic!("{c:?}"),
    }
    match parse(&["up", "--no-swarm"]).unwrap() {
        LabCmd::Up { no_swarm, .. } => assert!(no_swarm),
        c => panic!("{c:?}"),
    }
    match parse(&["up", "--images", "/tmp/oci"]).unwrap() {
        LabCmd::Up { images, .. } => assert_eq!(images, Some(PathBuf::from("/tmp/oci"))),
        c => panic!("{c:?}"),
    }
    match parse(&[
        "exec", "manager1", "--name", "t1", "--", "swarmctl", "node", "ls", "--format", "json",
    ])
    .unwrap()
    {
        LabCmd::Exec { node, name, cmd } => {
            assert_eq!((node.as_str(), name.name.as_str()), ("manager1", "t1"));
            assert_eq!(cmd, ["swarmctl", "node", "ls", "--format", "json"]);
        }
        c => panic!("{c:?}"),
    }
    // Without `--` everything from the command on is the command's.
    match parse(&["exec", "worker2", "ip", "-4", "addr"]).unwrap() {
        LabCmd::Exec { cmd, .. } => assert_eq!(cmd, ["ip", "-4", "addr"]),
        c => panic!("{c:?}"),
    }
    assert!(parse(&["up", "--name", "BAD"])
        .unwrap_err()
        .contains("invalid lab name"));
    assert!(parse(&["up", "--subnet", "10.0.0.0/24"])
        .unwrap_err()
        .contains("198.18.0.0/15"));
    assert!(parse(&["exec", "manager1"]).is_err());
    assert!(parse(&["down", "--name", "x/y"]).is_err());
    assert!(matches!(parse(&["ls"]).unwrap(), LabCmd::Ls));
    match parse(&["restart", "worker1", "--name", "t1"]).unwrap() {
        LabCmd::Restart { node, name } => {
            assert_eq!((node.as_str(), name.name.as_str()), ("worker1", "t1"))
        }
        c => panic!("{c:?}"),
    }
    match parse(&["stop", "manager2", "--kill"]).unwrap() {
        LabCmd::Stop { node, name, kill } => {
            assert_eq!(
                (node.as_str(), name.name.as_str(), kill),
                ("manager2", "lab", true)
            )
        }
        c => panic!("{c:?}"),
    }
    assert!(matches!(
        parse(&["stop", "worker1"]).unwrap(),
        LabCmd::Stop { kill: false, .. }
    ));
    assert!(matches!(
        parse(&["start", "worker1"]).unwrap(),
        LabCmd::Start { .. }
    ));
    assert!(parse(&["restart"]).is_err());
}

#[test]
fn environment_of_a_node() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = LabDir::new(tmp.path(), "lab");
    let f = LabFile::plan(&spec(3, 2, DEFAULT_SUBNET), &dir, 1);
    let get = |node: &str, key: &str| -> String {
        super::exec::env(&dir, &f, f.node(node).unwrap())
            .into_iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.to_string_lossy().into_owned())
            .unwrap_or_default()
    };
    let sock = format!(
        "unix://{}/lab/nodes/manager2/swarmd.sock",
        tmp.path().display()
    );
    assert_eq!(get("manager2", "SWARM_HOST"), sock);
    // Workers serve no control socket: they talk to the first manager.
    assert_eq!(get("worker1", "SWARM_HOST"), "tcp://198.18.0.1:2377");
    assert!(get("worker1", "SWARM_CERT_DIR").ends_with("/nodes/worker1/certificates"));
    assert_eq!(get("worker1", "PS1"), "lab/worker1 \\w# ");
    assert_eq!(get("worker1", "SHOAL_LAB_NODE"), "worker1");
    // A promoted worker serving its own socket is talked to directly.
    std::fs::create_dir_all(dir.node("worker2")).unwrap();
    std::fs::write(dir.socket("worker2"), "").unwrap();
    assert!(get("worker2", "SWARM_HOST").ends_with("/nodes/worker2/swarmd.sock"));
}

#[test]
fn restart_arguments_are_recorded_or_rebuilt() {
    let dir = LabDir::new(Path::new("/l"), "lab");
    let mut f = LabFile::plan(&spec(1, 1, DEFAULT_SUBNET), &dir, 1);
    let extra = vec!["--log".to_string(), "debug".to_string()];
    // A lab.json from before the arguments were recorded: rebuilt as `lab up` made them, with
    // no join (the state dir holds the node's identity).
    let w = f.node("worker1").unwrap().clone();
    assert!(w.args.is_empty());
    let rebuilt = w.swarmd_args(&dir, &extra);
    assert_eq!(rebuilt, swarmd_args(&dir, &w.plan(), None, &extra));
    assert_eq!(
        rebuilt.join(" "),
        "--state-dir /l/lab/nodes/worker1 --hostname worker1 --listen-addr 198.18.0.2:2377 \
         --advertise-addr 198.18.0.2:2377 --data-plane kernel --dns-upstream none --log debug"
    );
    assert!(!rebuilt.iter().any(|a| a == "--join" || a == "--token"));
    // Recorded ones win, whatever the environment says now.
    f.nodes[1].args = vec![
        "--state-dir".into(),
        "/l/lab/nodes/worker1".into(),
        "--x".into(),
    ];
    assert_eq!(f.nodes[1].swarmd_args(&dir, &extra), f.nodes[1].args);
    // They are kept in lab.json; an older lab.json without them still loads.
    let text = serde_json::to_string(&f).unwrap();
    let back: LabFile = serde_json::from_str(&text).unwrap();
    assert_eq!(back, f);
    let mut v: serde_json::Value = serde_json::from_str(&text).unwrap();
    assert_eq!(v["nodes"][1]["args"][2], "--x");
    assert!(
        v["nodes"][0].get("args").is_none(),
        "empty args are not written"
    );
    v["nodes"][1].as_object_mut().unwrap().remove("args");
    let old: LabFile = serde_json::from_value(v).unwrap();
    assert!(old.nodes[1].args.is_empty());
}

#[test]
fn a_node_runs_when_its_state_dir_has_a_live_swarmd() {
    let dir = LabDir::new(Path::new("/l"), "lab");
    let mut f = LabFile::plan(&spec(1, 1, DEFAULT_SUBNET), &dir, 1);
    f.nodes[0].pid = Some(100);
    f.nodes[1].pid = Some(200);
    let sw = |pid: u32, node: &str| LabSwarmd {
        pid,
        state_dir: dir.node(node),
    };
    // As recorded.
    let live = [sw(100, "manager1"), sw(200, "worker1")];
    assert_eq!(health_of(&f, &live, true), Health::Running);
    assert_eq!(
        running_pid(Some(200), &dir.node("worker1"), &live),
        Some(200)
    );
    // worker1 restarted by hand: the recorded pid is gone, another swarmd serves its state dir.
    let restarted = [sw(100, "manager1"), sw(345, "worker1")];
    assert_eq!(health_of(&f, &restarted, true), Health::Running);
    assert_eq!(
        running_pid(Some(200), &dir.node("worker1"), &restarted),
        Some(345)
    );
    // Also when lab.json has no pid (after `lab stop`), and with a trailing slash.
    f.nodes[1].pid = None;
    let slash = LabSwarmd {
        pid: 345,
        state_dir: PathBuf::from(format!("{}/", dir.node("worker1").display())),
    };
    assert_eq!(running_pid(None, &dir.node("worker1"), &[slash]), Some(345));
    // Stopped: degraded. A recorded pid now another node's swarmd is not this node's.
    assert_eq!(
        health_of(&f, &[sw(100, "manager1")], true),
        Health::Degraded { up: 1, total: 2 }
    );
    assert_eq!(
        running_pid(Some(100), &dir.node("worker1"), &[sw(100, "manager1")]),
        None
    );
    assert_eq!(health_of(&f, &[], true), Health::Stopped);
    // Every swarmd up but a namespace file missing: degraded too.
    assert_eq!(
        health_of(&f, &restarted, false),
        Health::Degraded { up: 2, total: 2 }
    );
    assert_eq!(
        Health::Degraded { up: 4, total: 5 }.to_string(),
        "degraded (4/5 swarmd running)"
    );
}

#[test]
fn state_dir_of_a_process() {
    let p = ProcInfo {
        pid: 1,
        argv: vec![
            "swarmd".into(),
            "--state-dir".into(),
            "nodes/worker1".into(),
        ],
        cwd: Some("/l/lab".into()),
        zombie: false,
    };
    assert_eq!(p.state_dir(), Some(PathBuf::from("/l/lab/nodes/worker1")));
    let abs = ProcInfo {
        argv: vec!["swarmd".into(), "--state-dir=/l/lab/nodes/m1".into()],
        ..p.clone()
    };
    assert_eq!(abs.state_dir(), Some(PathBuf::from("/l/lab/nodes/m1")));
    let none = ProcInfo {
        argv: vec!["swarmd".into()],
        ..p
    };
    assert_eq!(none.state_dir(), None);
}

#[test]
fn down_summary() {
    let mut r = Removal::default();
    assert!(r.is_empty());
    for (i, n) in ["manager1", "manager2", "manager3", "worker1", "worker2"]
        .iter()
        .enumerate()
    {
        r.swarmds
            .push((100 + i as u32, n.to_string(), "SIGTERM".into()));
    }
    r.task_processes = 12;
    r.shells = 2;
    r.node_namespaces = 5;
    r.underlay = true;
    r.task_sandboxes = 23;
    r.link = Some("swlab-demo".into());
    r.dir = true;
    r.items.push("…".into());
    assert_eq!(
        r.summary("demo"),
        "lab demo removed: 5 swarmd stopped (SIGTERM), 12 task processes and 2 shells ended, \
         5 node namespaces and the underlay, 23 task sandboxes, link swlab-demo"
    );
    r.swarmds[4].2 = "SIGKILL".into();
    r.task_processes = 1;
    r.shells = 0;
    r.task_sandboxes = 0;
    r.node_namespaces = 1;
    r.underlay = false;
    r.link = None;
    assert_eq!(
        r.summary("demo"),
        "lab demo removed: 5 swarmd stopped (4 SIGTERM, 1 SIGKILL), 1 task process ended, \
         1 node namespace"
    );
    // A crashed `lab up` that made only its directory.
    let only_dir = Removal {
        items: vec!["removed /l/x".into()],
        dir: true,
        ..Removal::default()
    };
    assert_eq!(only_dir.summary("x"), "lab x removed: its directory");
    let shells_only = Removal {
        items: vec!["…".into()],
        shells: 1,
        underlay: true,
        ..Removal::default()
    };
    assert_eq!(
        shells_only.summary("x"),
        "lab x removed: 1 shell ended, the underlay namespace"
    );
}

#[test]
fn no_such_lab_names_the_labs_there_are() {
    let labs = vec![
        ("demo".to_string(), Health::Running),
        ("t1".to_string(), Health::Stopped),
    ];
    assert_eq!(
        no_such_lab("foo", &labs),
        "there is no lab \"foo\"; labs here: demo (running), t1 (stopped)"
    );
    assert_eq!(
        no_such_lab("foo", &[]),
        "there is no lab \"foo\"; there are no labs: create one with `swarmctl lab up`"
    );
    // Read from a lab root: one with a lab.json and no swarmd, one without a lab.json.
    let tmp = tempfile::tempdir().unwrap();
    let t1 = LabDir::new(tmp.path(), "t1");
    std::fs::create_dir_all(&t1.dir).unwrap();
    t1.save(&LabFile::plan(&spec(1, 0, DEFAULT_SUBNET), &t1, 1))
        .unwrap();
    std::fs::create_dir_all(tmp.path().join("half")).unwrap();
    std::fs::create_dir_all(tmp.path().join("Not-A-Lab")).unwrap();
    let here = labs_here(tmp.path());
    assert_eq!(
        describe_labs(&here),
        "labs here: half (incomplete: no lab.json), t1 (stopped)"
    );
}

#[test]
fn ready_again_needs_evidence_of_the_new_swarmd() {
    let t0 = std::time::Instant::now();
    let at = |ms: u64| t0 + std::time::Duration::from_millis(ms);
    let steady = std::time::Duration::from_secs(5);
    // Ready throughout (the manager's grace hid the restart): not believed at once…
    let mut w = ReadyWatch::new(steady);
    assert!(!w.observe(at(0), Some(true), false));
    assert!(!w.observe(at(4_900), Some(true), false));
    // …but once the new swarmd logged its session,
    assert!(w.observe(at(5_000 - 1), Some(true), true));
    // or after staying Ready long enough.
    let mut w = ReadyWatch::new(steady);
    assert!(!w.observe(at(0), Some(true), false));
    assert!(w.observe(at(5_000), Some(true), false));
    // Down, then Ready: the new swarmd's.
    let mut w = ReadyWatch::new(steady);
    assert!(!w.observe(at(0), Some(false), false));
    assert!(!w.observe(at(100), None, false));
    assert!(w.observe(at(200), Some(true), false));
    // No manager answering is no evidence either way; a logged session alone is not Ready.
    let mut w = ReadyWatch::new(steady);
    assert!(!w.observe(at(0), None, true));
    assert!(!w.observe(at(9_000), None, true));
}

#[test]
fn logged_since_reads_only_what_was_appended() {
    let tmp = tempfile::tempdir().unwrap();
    let log = tmp.path().join("swarmd.log");
    std::fs::write(&log, "old: session established\n").unwrap();
    let from = std::fs::metadata(&log).unwrap().len();
    assert!(!super::ready::logged_since(
        &log,
        from,
        "session established"
    ));
    std::fs::write(
        &log,
        "old: session established\nINFO new: session established\n",
    )
    .unwrap();
    assert!(super::ready::logged_since(
        &log,
        from,
        "session established"
    ));
    assert!(!super::ready::logged_since(
        &tmp.path().join("none"),
        0,
        "x"
    ));
}

#[test]
fn processes_are_found_by_network_namespace() {
    // Read-only: finds a child of this test in this (the host's) namespace; signals nothing.
    let mut child = std::process::Command::new("sleep")
        .arg("30")
        .spawn()
        .unwrap();
    let id = super::sessions::ns_id(Path::new("/proc/self/ns/net")).expect("own netns");
    let found = super::sessions::in_namespaces(&[id]);
    let pid = child.id();
    let _ = child.kill();
    let _ = child.wait();
    assert!(found.iter().any(|p| p.pid == pid));
    assert!(
        !found.iter().any(|p| p.pid == std::process::id()),
        "never this process"
    );
    assert!(super::sessions::in_namespaces(&[]).is_empty());
    assert!(super::sessions::in_namespaces(&[(0, 0)]).is_empty());
}
