//! The reference article's container commands (sections 3.2–3.4) with the real `docker` CLI
//! (Debian's `docker.io` 20.10) against Shoal's Engine API socket (`swarmd --docker-host`), on
//! a `swarmctl lab` of one manager and one worker (root), images from the lab's registry:
//! `docker ps` (its table, the task's `service.slot.taskid` name), `docker inspect` (the
//! task's address on the overlay network, as swarmctl reports it), `docker exec` through the
//! manager's socket into the task on the worker (output, exit code, `-it` on a terminal), and
//! Docker's errors for unknown containers.

use nix::pty::{openpty, Winsize};
use shoal_netlib::root::root_or_skip;
use shoal_tests::docker::Docker;
use shoal_tests::lab::Lab;
use shoal_tests::{kill_on_fail, wait_until};
use std::io::Write;
use std::process::{Command, Stdio};
use std::time::Duration;

/// This file's lab subnet.
const SUBNET: &str = "198.19.234.0/24";

const WAIT: Duration = Duration::from_secs(30);

/// The columns of a CLI table line (cells are separated by at least two spaces… or one space
/// of padding after a cell that filled its width: split on runs of 2+ spaces is enough here).
fn cells(line: &str) -> Vec<String> {
    line.split("  ")
        .map(str::trim)
        .filter(|c| !c.is_empty())
        .map(str::to_string)
        .collect()
}

#[test]
#[ignore = "needs root"]
fn the_articles_container_commands_through_the_docker_cli() {
    if !root_or_skip() {
        return;
    }
    let Some(docker) = Docker::new() else { return };
    let Some(images) = shoal_tests::lab::demo_images_or_skip() else {
        return;
    };
    let mut lab = Lab::new();
    lab.subnet = SUBNET.into();
    lab.serve_docker();
    lab.up_with_images(1, 1, &images);
    let msock = lab.docker_sock("manager1");
    let wsock = lab.docker_sock("worker1");

    lab.swarmctl_ok(&["network", "create", "-d", "overlay", "lp_net"]);
    docker.ok(
        &msock,
        &[
            "service",
            "create",
            "--name",
            "web",
            "--replicas",
            "2",
            "--network",
            "lp_net",
            "shoal/whoami",
        ],
    );
    let tasks = lab.running("web", 2);
    let nodes: serde_json::Value =
        serde_json::from_str(&lab.swarmctl_ok(&["node", "ls", "--format", "json"])).unwrap();
    let nodes = shoal_tests::NodeView::list(&nodes);
    let node_of = |host: &str| {
        nodes
            .iter()
            .find(|n| n.hostname == host)
            .unwrap()
            .id
            .clone()
    };
    let on = |host: &str| {
        let id = node_of(host);
        tasks
            .iter()
            .find(|t| t.node_id == id)
            .unwrap_or_else(|| panic!("no task of web on {host}: {tasks:?}"))
            .clone()
    };
    let (mtask, wtask) = (on("manager1"), on("worker1"));

    // docker ps on the manager: its own task's container, in the CLI's table.
    let ps = docker.ok(&msock, &["ps"]);
    eprintln!("docker ps on manager1:\n{ps}");
    let lines: Vec<&str> = ps.lines().collect();
    assert_eq!(lines.len(), 2, "{ps}");
    assert_eq!(
        cells(lines[0]),
        [
            "CONTAINER ID",
            "IMAGE",
            "COMMAND",
            "CREATED",
            "STATUS",
            "PORTS",
            "NAMES"
        ],
        "{ps}"
    );
    assert!(lines[1].starts_with(&mtask.id[..12]), "{ps}");
    assert!(lines[1].ends_with(&mtask.name), "{ps}");
    let row = docker.ok(
        &msock,
        &[
            "ps",
            "--format",
            "{{.ID}}|{{.Image}}|{{.Names}}|{{.Status}}",
        ],
    );
    let row: Vec<&str> = row.trim().split('|').collect();
    assert_eq!(
        row[..3],
        [&mtask.id[..12], "shoal/whoami:latest", &mtask.name]
    );
    assert!(row[3].starts_with("Up "), "{row:?}");
    assert_eq!(docker.ok(&msock, &["ps", "-q"]).trim(), &mtask.id[..12]);
    let filtered = docker.ok(
        &msock,
        &["ps", "-a", "--filter", "name=web", "--format", "{{.Names}}"],
    );
    assert_eq!(filtered.trim(), mtask.name);
    let none = docker.ok(&msock, &["ps", "--filter", "status=exited", "-q"]);
    assert_eq!(none.trim(), "");
    // The worker answers from its own agent.
    let w = docker.ok(&wsock, &["ps", "--format", "{{.ID}} {{.Names}} {{.State}}"]);
    assert_eq!(
        w.trim(),
        format!("{} {} running", &wtask.id[..12], wtask.name),
        "{w}"
    );
    let wi = docker.ok(
        &wsock,
        &[
            "inspect",
            &wtask.name,
            "--format",
            r#"{{(index .NetworkSettings.Networks "lp_net").IPAMConfig.IPv4Address}}"#,
        ],
    );
    assert_eq!(wi.trim(), wtask.addr_on("lp_net").unwrap().to_string());

    // docker inspect: the task's address on lp_net, as swarmctl has it, by name and by id.
    for t in [&mtask, &wtask] {
        let want = t.addr_on("lp_net").unwrap().to_string();
        for key in [t.name.as_str(), &t.id[..12]] {
            let got = docker.ok(
                &msock,
                &[
                    "inspect",
                    key,
                    "--format",
                    r#"{{.Name}} {{(index .NetworkSettings.Networks "lp_net").IPAMConfig.IPv4Address}} {{.State.Running}}"#,
                ],
            );
            assert_eq!(got.trim(), format!("/{} {want} true", t.name));
        }
    }
    let c = docker.ok(
        &msock,
        &[
            "container",
            "inspect",
            &wtask.name,
            "--format",
            r#"{{index .Config.Labels "com.docker.swarm.service.name"}} {{.Config.Hostname}}"#,
        ],
    );
    assert_eq!(c.trim(), format!("web {}", wtask.id));
    let out = docker.run(&msock, &["inspect", "nosuch"]);
    assert_eq!(out.code, 1, "{out}");
    assert_eq!(out.stderr.trim(), "Error: No such object: nosuch", "{out}");

    // docker exec through the manager into the worker's task.
    let name = wtask.name.as_str();
    assert_eq!(
        docker.ok(&msock, &["exec", name, "hostname"]).trim(),
        wtask.id
    );
    assert_eq!(
        docker
            .ok(&msock, &["exec", name, "cat", "/etc/hostname"])
            .trim(),
        wtask.id
    );
    let three = docker.run(
        &msock,
        &["exec", name, "sh", "-c", "echo out; echo err >&2; exit 3"],
    );
    assert_eq!(three.code, 3, "{three}");
    assert_eq!(three.stdout, "out\n", "{three}");
    assert_eq!(three.stderr, "err\n", "{three}");
    let piped = docker.ok(
        &msock,
        &[
            "exec",
            &wtask.id[..12],
            "ping",
            "-c",
            "1",
            "-W",
            "5",
            &mtask.addr_on("lp_net").unwrap().to_string(),
        ],
    );
    assert!(piped.contains("1 packets received"), "{piped}");
    let nosuch = docker.run(&msock, &["exec", "nosuch", "hostname"]);
    assert_eq!(nosuch.code, 1, "{nosuch}");
    assert_eq!(
        nosuch.stderr.trim(),
        "Error: No such container: nosuch",
        "{nosuch}"
    );
    let bad = docker.run(&msock, &["exec", "--privileged", name, "hostname"]);
    assert!(!bad.success(), "{bad}");
    assert!(bad.stderr.contains("Privileged is not supported"), "{bad}");

    // docker exec -it on a terminal: a shell, a command, its output, exit 3.
    let size = Winsize {
        ws_row: 30,
        ws_col: 100,
        ws_xpixel: 0,
        ws_ypixel: 0,
    };
    let pty = openpty(Some(&size), None).unwrap();
    let cmd = docker.command(&msock, &["exec", "-it", name, "sh"]);
    let mut child = Command::new("setsid")
        .arg("--ctty")
        .arg(cmd.get_program())
        .args(cmd.get_args())
        .envs(cmd.get_envs().filter_map(|(k, v)| Some((k, v?))))
        .env_remove("DOCKER_API_VERSION")
        .env_remove("DOCKER_CONTEXT")
        .stdin(Stdio::from(pty.slave.try_clone().unwrap()))
        .stdout(Stdio::from(pty.slave.try_clone().unwrap()))
        .stderr(Stdio::from(pty.slave.try_clone().unwrap()))
        .spawn()
        .unwrap();
    let guard = kill_on_fail(child.id());
    let seen = shoal_tests::pty::capture(&pty.master);
    let mut master = std::fs::File::from(pty.master);
    let mut type_in = |s: &str| master.write_all(s.as_bytes()).unwrap();
    let seen_has = |s: &str| seen.lock().unwrap().contains(s);
    wait_until("the remote shell's prompt", WAIT, || {
        let s = seen.lock().unwrap();
        s.contains("$ ") || s.contains("# ")
    });
    type_in("echo h''i from $(hostname)\r");
    let want = format!("hi from {}", wtask.id);
    wait_until("the command's output", WAIT, || seen_has(&want));
    type_in("exit 3\r");
    let mut status = None;
    wait_until("docker exec -it to exit", WAIT, || {
        status = child.try_wait().unwrap();
        status.is_some()
    });
    assert_eq!(status.unwrap().code(), Some(3), "{}", seen.lock().unwrap());
    eprintln!("docker exec -it transcript: {:?}", seen.lock().unwrap());
    drop(guard);

    assert_eq!(docker.ok(&msock, &["service", "rm", "web"]).trim(), "web");
}
