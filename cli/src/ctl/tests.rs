//! Command tests: argument parsing, and whole commands against the in-process fake server.

use super::fake::Fake;
use super::output::SharedBuf;
use super::*;

mod data;
mod inspect;
mod node_ps;
mod swarm_lock;

/// The fake serves plain gRPC, as an `--insecure-plaintext` cluster does.
async fn connect(host: &str) -> anyhow::Result<crate::client::Control> {
    let cfg = crate::client::ClientConfig {
        plaintext: true,
        ..Default::default()
    };
    crate::client::connect_control(host, &cfg).await
}

/// Runs `swarmctl ARGS` against `host`, returning the result and what went to stdout.
pub(crate) async fn run_cmd(host: &str, args: &[&str]) -> (anyhow::Result<()>, String) {
    let mut argv = vec!["swarmctl"];
    argv.extend_from_slice(args);
    let cli = Cli::try_parse_from(argv).expect("arguments parse");
    let (out, buf): (Out, SharedBuf) = Out::buffer();
    let mut ctx = Ctx {
        client: connect(host).await.expect("connect"),
        dial: Some(crate::client::ClientConfig {
            plaintext: true,
            ..Default::default()
        }),
        format: cli.format,
        out,
    };
    let r = dispatch(&mut ctx, cli.command).await;
    (r, buf.contents())
}

pub(crate) async fn ok(host: &str, args: &[&str]) -> String {
    let (r, out) = run_cmd(host, args).await;
    if let Err(e) = r {
        panic!("swarmctl {args:?} failed: {e:#}\n{out}");
    }
    out
}

#[test]
fn consistent_is_a_global_flag() {
    assert!(
        !Cli::try_parse_from(["swarmctl", "service", "ls"])
            .unwrap()
            .consistent
    );
    for argv in [
        &["swarmctl", "--consistent", "service", "ls"][..],
        &["swarmctl", "service", "inspect", "--consistent", "web"][..],
    ] {
        assert!(Cli::try_parse_from(argv).unwrap().consistent, "{argv:?}");
    }
}

#[test]
fn global_flags_and_defaults() {
    let cli = Cli::try_parse_from(["swarmctl", "node", "ls"]).unwrap();
    assert_eq!(
        cli.format, None,
        "not given: inspect can tell it from table"
    );
    // --host and --format are accepted after the subcommand too.
    let cli = Cli::try_parse_from([
        "swarmctl",
        "node",
        "ls",
        "--format",
        "json",
        "--host",
        "tcp://1.2.3.4:2377",
    ])
    .unwrap();
    assert_eq!(
        (cli.format, cli.host.as_str()),
        (Some(Format::Json), "tcp://1.2.3.4:2377")
    );
    assert!(Cli::try_parse_from(["swarmctl", "--format", "yaml", "node", "ls"]).is_err());
    assert!(Cli::try_parse_from(["swarmctl", "swarm", "join-token", "boss"]).is_err());
    assert!(Cli::try_parse_from(["swarmctl", "service", "scale", "web"])
        .unwrap_err()
        .to_string()
        .contains("SERVICE=REPLICAS"));
    assert!(Cli::try_parse_from([
        "swarmctl",
        "node",
        "update",
        "--availability",
        "sleep",
        "n1"
    ])
    .is_err());
}

#[test]
fn every_command_parses() {
    for argv in [
        "swarm inspect",
        "swarm join-token worker --rotate -q",
        "node ls -q --no-trunc",
        "node inspect --pretty a b",
        "node ps",
        "node ps -q --no-trunc -f desired-state=running --filter name=web a b",
        "node update --availability drain --label-add a=b --label-rm c n1",
        "node promote a b",
        "node demote a",
        "node rm --force a",
        "service ls",
        "service ps --no-trunc -q web api",
        "service ps -f node=worker1 -f id=abc web",
        "service inspect --pretty web",
        "service scale web=3 api=0 -d --timeout 5s",
        "service update --image x --force web",
        "service rm web",
        "service logs --tail 10 web",
        "network create -d bridge --subnet 10.1.0.0/24 --attachable --label a=b net1",
        "network ls",
        "network inspect net1",
        "network inspect --pretty net1",
        "network rm net1 net2",
        "task ls --service web --node n1 --all",
        "task inspect t1",
        "task inspect --pretty t1 t2",
    ] {
        let mut full = vec!["swarmctl"];
        full.extend(argv.split(' '));
        if let Err(e) = Cli::try_parse_from(full) {
            panic!("{argv}: {e}");
        }
    }
}

#[tokio::test]
async fn node_commands() {
    let host = Fake::with_nodes().serve_tcp().await;
    let out = ok(&host, &["node", "ls"]).await;
    assert_eq!(
        out,
        "ID             HOSTNAME   STATUS    AVAILABILITY   MANAGER STATUS\n\
         mmmmmmmmmmmm   manager1   Ready     Active         Leader\n\
         wwwwwwwwwwww   worker1    Ready     Active\n"
    );
    assert_eq!(
        ok(
            &host,
            &[
                "node",
                "update",
                "--availability",
                "drain",
                "--label-add",
                "disk=ssd",
                "worker1"
            ]
        )
        .await,
        "worker1\n"
    );
    let out = ok(&host, &["node", "ls", "--format", "json"]).await;
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v[1]["availability"], "drain");
    assert_eq!(v[1]["labels"]["disk"], "ssd");
    assert_eq!(
        ok(&host, &["node", "promote", "worker1"]).await,
        "Node worker1 promoted to a manager in the swarm.\n"
    );
    let out = ok(&host, &["node", "inspect", "--pretty", "worker1"]).await;
    assert!(
        out.contains("Role:                   manager\n") && out.contains(" - disk=ssd\n"),
        "{out}"
    );
    // One bad argument of several: the others are done, the command fails.
    let (r, out) = run_cmd(&host, &["node", "rm", "nosuch", "worker1"]).await;
    assert!(r.unwrap_err().downcast_ref::<AlreadyReported>().is_some());
    assert_eq!(out, "worker1\n");
    assert_eq!(ok(&host, &["node", "ls", "-q"]).await, "mmmmmmmmmmmm\n");
}

#[tokio::test]
async fn swarm_commands() {
    let host = Fake::with_nodes().serve_tcp().await;
    let out = ok(&host, &["swarm", "join-token", "manager"]).await;
    assert!(out.starts_with("To add a manager to this swarm, run the following command:\n\n    swarmd --join 10.0.0.1:2377 --token SWMTKN-1-digest-mgr"), "{out}");
    assert_eq!(
        ok(&host, &["swarm", "join-token", "-q", "worker"]).await,
        "SWMTKN-1-digest-wkr\n"
    );
    let out = ok(&host, &["swarm", "inspect", "--format", "json"]).await;
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["raft"]["leader"], "manager1");
}

#[tokio::test]
async fn service_create_shows_progress_until_converged() {
    let host = Fake::with_nodes().serve_tcp().await;
    let out = ok(
        &host,
        &[
            "service",
            "create",
            "--runtime",
            "process",
            "--name",
            "web",
            "--replicas",
            "2",
            "-p",
            "8080",
            "whoami",
            "--port",
            "80",
        ],
    )
    .await;
    let mut lines = out.lines();
    let id = lines.next().unwrap().to_string();
    assert_eq!(id.len(), 25);
    // Not a terminal: each change once, in order.
    let rest: Vec<&str> = lines.collect();
    assert!(
        rest.contains(&"overall progress: 0 out of 2 tasks"),
        "{out}"
    );
    assert!(
        rest.iter().any(|l| l.starts_with("1/2: pending   [")),
        "{out}"
    );
    assert!(
        rest.contains(&"overall progress: 2 out of 2 tasks"),
        "{out}"
    );
    assert!(
        rest.contains(&"verify: Waiting 1 seconds to verify that tasks are stable..."),
        "{out}"
    );
    assert_eq!(
        rest.last().unwrap(),
        &format!("verify: Service {id} converged")
    );
    let running = format!("running   [{}>]", "=".repeat(50));
    assert!(rest.contains(&format!("2/2: {running}").as_str()), "{out}");

    let out = ok(&host, &["service", "ls"]).await;
    assert!(
        out.contains("web       replicated   2/2        whoami    *:30000->8080/tcp"),
        "{out}"
    );
    let out = ok(&host, &["service", "ps", "web"]).await;
    assert!(
        out.starts_with(
            "ID             NAME      IMAGE     NODE      DESIRED STATE   CURRENT STATE"
        ),
        "{out}"
    );
    assert!(
        out.contains("web.1     whoami    worker1   Running         Running "),
        "{out}"
    );
    let ids = ok(&host, &["service", "ps", "-q", "web"]).await;
    let first = ids.lines().next().unwrap();
    assert_eq!(first.len(), 12);
    let out = ok(&host, &["task", "inspect", first]).await;
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v[0]["status"]["state"], "running");
    assert_eq!(
        v[0]["name"].as_str().map(|n| n.starts_with("web.1.")),
        Some(true)
    );
    let out = ok(&host, &["task", "ls", "--service", "web"]).await;
    assert_eq!(out.lines().count(), 3, "{out}");

    // Same name again: the server's message, as is.
    let (r, _) = run_cmd(
        &host,
        &[
            "service",
            "create",
            "--runtime",
            "process",
            "--name",
            "web",
            "-d",
            "whoami",
        ],
    )
    .await;
    assert_eq!(
        r.unwrap_err().to_string(),
        "service with name \"web\" already exists"
    );
}

#[tokio::test]
async fn stuck_tasks_show_why_and_time_out() {
    let host = Fake::with_nodes().serve_tcp().await;
    let started = std::time::Instant::now();
    let (r, out) = run_cmd(
        &host,
        &[
            "service",
            "create",
            "--runtime",
            "process",
            "--name",
            "db",
            "--constraint",
            "node.role==nowhere",
            "--timeout",
            "1s",
            "whoami",
        ],
    )
    .await;
    assert!(started.elapsed() < std::time::Duration::from_secs(5));
    assert!(
        out.contains(
            "1/1: no suitable node (2 nodes do not satisfy constraint node.role==nowhere)"
        ),
        "{out}"
    );
    let e = r.unwrap_err().to_string();
    assert!(
        e.starts_with(
            "service db did not converge within 1s: 0 out of 1 tasks running; no suitable node (2"
        ),
        "{e}"
    );
    assert!(e.ends_with("see `swarmctl service ps db`"), "{e}");
    let out = ok(&host, &["service", "ps", "db"]).await;
    assert!(
        out.contains("Pending ") && out.contains("\"no suitable node (2 nodes do…\""),
        "{out}"
    );
}

#[tokio::test]
async fn failing_polls_are_retried_and_reported() {
    let fake = Fake::with_nodes();
    fake.lock().no_leader = true;
    let host = fake.serve_tcp().await;
    let (r, out) = run_cmd(
        &host,
        &[
            "service",
            "create",
            "--runtime",
            "process",
            "--name",
            "web",
            "--timeout",
            "1s",
            "whoami",
        ],
    )
    .await;
    assert_eq!(out.lines().count(), 1, "only the id: {out}");
    let e = r.unwrap_err().to_string();
    assert!(e.starts_with("service web did not converge within 1s: 0 out of 0 tasks running; no raft leader right now"), "{e}");
}

#[tokio::test]
async fn scale_update_logs_and_rm() {
    let host = Fake::with_nodes().serve_tcp().await;
    ok(
        &host,
        &[
            "service",
            "create",
            "--runtime",
            "process",
            "--name",
            "web",
            "-d",
            "whoami",
        ],
    )
    .await;
    let out = ok(&host, &["service", "scale", "web=3"]).await;
    assert!(
        out.starts_with("web scaled to 3\noverall progress: "),
        "{out}"
    );
    assert!(out.trim_end().ends_with("converged"), "{out}");
    let (r, _) = run_cmd(&host, &["service", "scale", "nosuch=2", "-d"]).await;
    assert!(r.unwrap_err().downcast_ref::<AlreadyReported>().is_some());

    let out = ok(
        &host,
        &[
            "service",
            "update",
            "--image",
            "whoami2",
            "--env-add",
            "A=1",
            "web",
            "--format",
            "json",
        ],
    )
    .await;
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["spec"]["image"], "whoami2");
    assert_eq!(v["running"], 3);
    assert_eq!(v["spec_version"], 2);
    let out = ok(&host, &["service", "ps", "web"]).await;
    assert_eq!(out.matches(" \\_ web.").count(), 3, "{out}");

    let out = ok(&host, &["service", "logs", "web"]).await;
    assert!(
        out.lines()
            .any(|l| l.ends_with("    | hello from 1") && l.contains("@worker1")),
        "{out}"
    );
    let out = ok(&host, &["service", "logs", "--format", "json", "web"]).await;
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["errors"].as_array().map(Vec::len), Some(1));
    let (r, _) = run_cmd(&host, &["service", "logs", "nosuch"]).await;
    assert!(r
        .unwrap_err()
        .to_string()
        .starts_with("no service or task nosuch"));

    let out = ok(&host, &["service", "inspect", "web"]).await;
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v[0]["spec"]["env"][0], "A=1");
    assert_eq!(ok(&host, &["service", "rm", "web"]).await, "web\n");
    assert_eq!(ok(&host, &["service", "ls", "-q"]).await, "");
}

#[tokio::test]
async fn network_commands() {
    let host = Fake::with_nodes().serve_tcp().await;
    let id = ok(&host, &["network", "create", "front"]).await;
    assert_eq!(id.trim().len(), 25);
    ok(
        &host,
        &[
            "network",
            "create",
            "-d",
            "bridge",
            "--subnet",
            "10.9.0.0/24",
            "local1",
        ],
    )
    .await;
    let out = ok(&host, &["network", "ls"]).await;
    assert!(
        out.contains("front     overlay   swarm\n") && out.contains("local1    bridge    local\n"),
        "{out}"
    );
    let (r, _) = run_cmd(&host, &["network", "create", "--subnet", "10.9.0.0", "x"]).await;
    assert!(r.unwrap_err().to_string().contains("expected an IPv4 CIDR"));
    let (r, _) = run_cmd(&host, &["network", "create", "bad name"]).await;
    assert!(r.unwrap_err().to_string().contains("invalid network name"));
    let out = ok(&host, &["network", "inspect", "front"]).await;
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v[0]["scope"], "swarm");
    assert_eq!(
        ok(&host, &["network", "rm", "front", "local1"]).await,
        "front\nlocal1\n"
    );
}

#[tokio::test]
async fn network_inspect_lb_reads_like_ipvsadm() {
    let host = Fake::with_nodes().serve_tcp().await;
    let out = ok(&host, &["network", "inspect", "--lb", "lp_net"]).await;
    assert!(
        out.starts_with("manager1: lb_n1 (nftables), balancer address 10.0.1.4/24\n"),
        "{out}"
    );
    assert!(
        out.contains("FWM  258 rr  (web VIP 10.0.1.2/24)\n"),
        "{out}"
    );
    assert!(out.contains("  -> web.1.t1 (10.0.1.3)"), "{out}");
    assert!(
        out.contains("Masq    1      -          -         7"),
        "{out}"
    );
}

/// `--help` as the user sees it: clap renders it as the "error" of the parse.
fn help(args: &[&str]) -> String {
    let mut argv = vec!["swarmctl"];
    argv.extend_from_slice(args);
    argv.push("--help");
    let e = Cli::try_parse_from(argv).unwrap_err();
    assert_eq!(e.kind(), clap::error::ErrorKind::DisplayHelp);
    e.to_string()
}

#[test]
fn help_lists_own_flags_before_global_ones() {
    let at = |h: &str, what: &str| h.find(what).unwrap_or_else(|| panic!("{what}:\n{h}"));
    let h = help(&["service", "create"]);
    assert!(at(&h, "--name <NAME>") < at(&h, "--host <HOST>"), "{h}");
    assert!(at(&h, "--timeout") < at(&h, "Global Options:"), "{h}");
    assert!(at(&h, "Global Options:") < at(&h, "--host <HOST>"), "{h}");
    for global in ["--cert-dir", "--insecure-plaintext", "--format <FORMAT>"] {
        assert!(at(&h, "Global Options:") < at(&h, global), "{global}: {h}");
    }
    let h = help(&["node", "ls"]);
    assert!(at(&h, "--no-trunc") < at(&h, "Global Options:"), "{h}");
    assert!(at(&h, "Global Options:") < at(&h, "--host <HOST>"), "{h}");
    let h = help(&[]);
    assert!(at(&h, "Commands:") < at(&h, "Global Options:"), "{h}");
    assert!(at(&h, "Global Options:") < at(&h, "--host <HOST>"), "{h}");
}

#[tokio::test]
async fn container_images_are_pinned_to_their_digest() {
    let fake = Fake::with_nodes();
    let (d1, d2) = (
        format!("sha256:{}", "1".repeat(64)),
        format!("sha256:{}", "2".repeat(64)),
    );
    fake.lock()
        .registry
        .insert("shoal/whoami".into(), d1.clone());
    fake.lock()
        .registry
        .insert("shoal/whoami:2".into(), d2.clone());
    let host = fake.clone().serve_tcp().await;
    let spec = |name: &str| {
        let s = fake.lock();
        let svc = s
            .services
            .iter()
            .find(|v| v.spec.as_ref().is_some_and(|p| p.name == name))
            .cloned()
            .expect("created");
        svc.spec.unwrap()
    };
    let create = |name: &'static str, extra: &'static [&'static str], image: &'static str| {
        let mut a = vec!["service", "create", "-d", "--name", name];
        a.extend_from_slice(extra);
        a.push(image);
        a
    };

    // A tag the registry knows: pinned; the image stays as typed.
    ok(&host, &create("web", &[], "shoal/whoami")).await;
    let s = spec("web");
    assert_eq!(
        (s.image.as_str(), s.image_digest.as_str()),
        ("shoal/whoami", d1.as_str())
    );
    assert_eq!(s.runtime(), shoal_proto::pb::Runtime::Container);
    let out = ok(&host, &["service", "inspect", "--pretty", "web"]).await;
    assert!(
        out.contains("Image:") && out.contains(&format!("shoal/whoami@{d1}")),
        "{out}"
    );

    // One it can't find: created anyway, unpinned (the Docker CLI's warning goes to stderr).
    ok(&host, &create("nopin", &[], "shoal/unknown")).await;
    assert_eq!(spec("nopin").image_digest, "");
    // Not asked: --no-resolve-image, and programs.
    ok(
        &host,
        &create("tagonly", &["--no-resolve-image"], "shoal/whoami"),
    )
    .await;
    assert_eq!(spec("tagonly").image_digest, "");
    ok(
        &host,
        &create("prog", &["--runtime", "process"], "shoal/whoami"),
    )
    .await;
    let s = spec("prog");
    assert_eq!(
        (s.image_digest.as_str(), s.runtime()),
        ("", shoal_proto::pb::Runtime::Process)
    );
    // A reference that does not parse is an error, and nothing is created.
    let (r, _) = run_cmd(&host, &create("bad", &[], "Bad Image")).await;
    assert!(r
        .unwrap_err()
        .to_string()
        .contains("invalid reference format"));
    assert!(fake
        .lock()
        .services
        .iter()
        .all(|v| v.spec.as_ref().is_some_and(|p| p.name != "bad")));

    // An update that leaves the image keeps the digest; --image pins the new one.
    ok(
        &host,
        &["service", "update", "-d", "--env-add", "A=1", "web"],
    )
    .await;
    assert_eq!(spec("web").image_digest, d1);
    ok(
        &host,
        &[
            "service",
            "update",
            "-d",
            "--image",
            "shoal/whoami:2",
            "web",
        ],
    )
    .await;
    let s = spec("web");
    assert_eq!(
        (s.image.as_str(), s.image_digest.as_str()),
        ("shoal/whoami:2", d2.as_str())
    );

    // Container flags reach the spec.
    ok(
        &host,
        &create(
            "c",
            &[
                "--entrypoint",
                "/bin/sh -c",
                "-u",
                "1000:1000",
                "-w",
                "/srv",
                "-t",
                "--init",
            ],
            "shoal/busybox",
        ),
    )
    .await;
    let s = spec("c");
    assert_eq!(s.entrypoint, ["/bin/sh", "-c"]);
    assert_eq!(
        (s.user.as_str(), s.workdir.as_str(), s.tty, s.init),
        ("1000:1000", "/srv", true, true)
    );
    let (r, _) = run_cmd(&host, &create("rel", &["-w", "srv"], "shoal/busybox")).await;
    assert!(r.unwrap_err().to_string().contains("absolute path"));
}
