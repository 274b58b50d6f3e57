//! Lab logic that needs no root: validation, addresses, names, `lab.json`, `/proc` parsing.

use super::config::*;
use super::down::parse_mount_points;
use super::procs::{is_lab_swarmd, parse_cmdline, swarmd_args, ProcInfo};
use super::state::{LabDir, LabFile};
use super::up::suggest_subnet;
use crate::ctl::{lab::LabCmd, Cli, Command};
use clap::Parser;
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};

fn spec(managers: usize, workers: usize, subnet: &str) -> LabSpec {
    LabSpec {
        name: "lab".into(),
        managers,
        workers,
        subnet: subnet.parse().unwrap(),
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

#[test]
fn subnets_parse_and_stay_inside_198_18_0_0_15() {
    let s: Subnet = "198.18.0.0/24".parse().unwrap();
    assert_eq!(s.to_string(), "198.18.0.0/24");
    s.check_for_lab().unwrap();
    for ok in [
        "198.19.255.0/24",
        "198.18.4.0/22",
        "198.18.0.0/15",
        "198.19.0.0/16",
    ] {
        ok.parse::<Subnet>().unwrap().check_for_lab().unwrap();
    }
    for outside in [
        "10.0.0.0/24",
        "198.17.255.0/24",
        "198.20.0.0/24",
        "0.0.0.0/0",
        "198.16.0.0/14",
    ] {
        let e = outside
            .parse::<Subnet>()
            .unwrap()
            .check_for_lab()
            .unwrap_err();
        assert!(e.contains("outside 198.18.0.0/15"), "{outside}: {e}");
    }
    let e = "198.18.0.0/25"
        .parse::<Subnet>()
        .unwrap()
        .check_for_lab()
        .unwrap_err();
    assert!(
        e.contains("too small") && e.contains("198.18.0.0/24"),
        "{e}"
    );
    let e = "198.18.0.5/24".parse::<Subnet>().unwrap_err();
    assert!(e.contains("did you mean 198.18.0.0/24"), "{e}");
    for bad in ["198.18.0.0", "198.18.0.0/33", "x/24", "198.18.0.0/x", ""] {
        assert!(bad.parse::<Subnet>().is_err(), "{bad}");
    }
}

#[test]
fn overlaps() {
    let a: Subnet = "198.18.0.0/24".parse().unwrap();
    let b: Subnet = "198.18.1.0/24".parse().unwrap();
    let wide: Subnet = "198.18.0.0/16".parse().unwrap();
    assert!(!a.overlaps(&b));
    assert!(a.overlaps(&wide) && wide.overlaps(&b));
    assert!(wide.covers(&a) && !a.covers(&wide));
    assert_eq!(
        suggest_subnet(&[a, "198.18.1.0/24".parse().unwrap()]),
        Some("198.18.2.0/24".parse().unwrap())
    );
    assert_eq!(
        suggest_subnet(&[wide]),
        Some("198.19.0.0/24".parse().unwrap())
    );
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
        } => {
            assert_eq!(name.name, "lab");
            assert_eq!((managers, workers), (3, 2));
            assert_eq!(subnet.to_string(), "198.18.0.0/24");
        }
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
