use super::create::build_spec;
use super::update::apply;
use super::*;
use crate::ctl::{Cli, Command};
use clap::Parser;
use shoal_proto::model::{
    EndpointMode, Protocol, PublishMode, RestartCondition, ServiceMode, TaskState,
};
use std::collections::HashMap;

fn create_args(argv: &[&str]) -> CreateArgs {
    let mut full = vec!["swarmctl", "service", "create"];
    full.extend_from_slice(argv);
    match Cli::try_parse_from(full).expect("parses").command {
        Command::Service(ServiceCmd::Create(a)) => *a,
        other => panic!("{other:?}"),
    }
}

fn update_args(argv: &[&str]) -> UpdateArgs {
    let mut full = vec!["swarmctl", "service", "update"];
    full.extend_from_slice(argv);
    match Cli::try_parse_from(full).expect("parses").command {
        Command::Service(ServiceCmd::Update(a)) => *a,
        other => panic!("{other:?}"),
    }
}

#[test]
fn create_flags_make_a_spec() {
    let a = create_args(&[
        "--name",
        "web",
        "--replicas",
        "3",
        "-p",
        "8080:80",
        "--publish",
        "53/udp,mode=host",
        "--network",
        "front",
        "--network",
        "name=back,alias=api",
        "--endpoint-mode",
        "dnsrr",
        "-e",
        "A=1",
        "--constraint",
        "node.role==worker",
        "--label",
        "tier=web",
        "--restart-condition",
        "on-failure",
        "--restart-delay",
        "5s",
        "--restart-max-attempts",
        "3",
        "--stop-grace-period",
        "500ms",
        "--limit-memory",
        "64M",
        "--limit-cpu",
        "0.5",
        "-d",
        "whoami",
        "--port",
        "80",
        "-v",
    ]);
    assert!(a.wait.detach);
    let s = build_spec(&a).unwrap();
    assert_eq!(s.mode, ServiceMode::Replicated { replicas: 3 });
    assert_eq!(s.image, "whoami");
    assert_eq!(s.args, ["--port", "80", "-v"]);
    assert_eq!((s.ports[0].published, s.ports[0].target), (8080, 80));
    assert_eq!(
        (s.ports[1].protocol, s.ports[1].mode),
        (Protocol::Udp, PublishMode::Host)
    );
    assert_eq!(s.networks[1].target, "back");
    assert_eq!(s.networks[1].aliases, ["api"]);
    assert_eq!(s.endpoint_mode, EndpointMode::Dnsrr);
    assert_eq!(s.env, ["A=1"]);
    assert_eq!(s.labels["tier"], "web");
    assert_eq!(
        (
            s.restart.condition,
            s.restart.delay_ms,
            s.restart.max_attempts
        ),
        (RestartCondition::OnFailure, 5000, 3)
    );
    assert_eq!(
        (s.stop_grace_ms, s.limit_memory_bytes, s.limit_cpus),
        (500, 64 << 20, 0.5)
    );
}

#[test]
fn create_defaults_and_modes() {
    let s = build_spec(&create_args(&["--name", "web", "whoami"])).unwrap();
    assert_eq!(s.mode, ServiceMode::Replicated { replicas: 1 });
    assert_eq!(s.restart, shoal_proto::model::RestartPolicy::default());
    let s = build_spec(&create_args(&[
        "--name", "web", "--mode", "global", "whoami",
    ]))
    .unwrap();
    assert_eq!(s.mode, ServiceMode::Global);
    let e = build_spec(&create_args(&[
        "--name",
        "web",
        "--mode",
        "global",
        "--replicas",
        "2",
        "whoami",
    ]))
    .unwrap_err();
    assert!(e
        .to_string()
        .contains("--replicas can't be used with --mode global"));
    let e = build_spec(&create_args(&["--name", "web.1", "whoami"])).unwrap_err();
    assert!(e.to_string().contains("invalid service name"), "{e}");
}

#[test]
fn create_refuses_bad_values_clearly() {
    for (argv, want) in [
        (
            vec!["--name", "web", "--replicas", "-1", "whoami"],
            "non-negative integer",
        ),
        (
            vec!["--name", "web", "--replicas=-1", "whoami"],
            "non-negative integer",
        ),
        (
            vec!["--name", "web", "--replicas", "x", "whoami"],
            "non-negative integer",
        ),
        (
            vec!["--name", "web", "-p", "70000", "whoami"],
            "target port must be 1-65535",
        ),
        (
            vec!["--name", "web", "--restart-delay", "5", "whoami"],
            "e.g. 500ms",
        ),
        (
            vec!["--name", "web", "--limit-memory", "lots", "whoami"],
            "e.g. 64M",
        ),
        (
            vec!["--name", "web", "--network", "name=x,color=red", "whoami"],
            "unknown option",
        ),
        (
            vec!["--name", "web", "--bogus", "whoami"],
            "unexpected argument '--bogus'",
        ),
        (vec!["--name", "web"], "<IMAGE>"),
    ] {
        let mut full = vec!["swarmctl", "service", "create"];
        full.extend_from_slice(&argv);
        let e = Cli::try_parse_from(full).expect_err("refused").to_string();
        assert!(e.contains(want), "{argv:?}: {e}");
    }
}

#[test]
fn update_edits_the_spec() {
    let mut spec = build_spec(&create_args(&[
        "--name",
        "web",
        "--replicas",
        "2",
        "-p",
        "80",
        "-p",
        "53/udp",
        "-e",
        "A=1",
        "-e",
        "B=2",
        "--constraint",
        "x==1",
        "--label",
        "k=v",
        "whoami",
    ]))
    .unwrap();
    let a = update_args(&[
        "--replicas",
        "5",
        "--image",
        "whoami2",
        "--args",
        "--port 81 'a b'",
        "--env-add",
        "A=9",
        "--env-rm",
        "B",
        "--publish-rm",
        "53/udp",
        "--publish-add",
        "8080:80",
        "--constraint-rm",
        "x==1",
        "--constraint-add",
        "y==2",
        "--label-rm",
        "k",
        "--label-add",
        "t=1",
        "--network-add",
        "front",
        "--network-rm",
        "back",
        "--limit-cpu",
        "2",
        "web",
    ]);
    spec.networks
        .push(shoal_proto::model::NetworkAttachmentSpec {
            target: "backid".into(),
            aliases: vec![],
        });
    apply(&a, &mut spec, &[("back".into(), "backid".into())]).unwrap();
    assert_eq!(spec.mode, ServiceMode::Replicated { replicas: 5 });
    assert_eq!(spec.image, "whoami2");
    assert_eq!(spec.args, ["--port", "81", "a b"]);
    assert_eq!(spec.env, ["A=9"]);
    assert_eq!(spec.ports.len(), 1);
    assert_eq!((spec.ports[0].published, spec.ports[0].target), (8080, 80));
    assert_eq!(spec.constraints, ["y==2"]);
    assert_eq!(spec.labels.keys().collect::<Vec<_>>(), ["t"]);
    assert_eq!(
        spec.networks
            .iter()
            .map(|n| n.target.as_str())
            .collect::<Vec<_>>(),
        ["front"]
    );
    assert_eq!(spec.limit_cpus, 2.0);
}

#[test]
fn update_force_bumps_a_counter() {
    let mut spec = build_spec(&create_args(&["--name", "web", "whoami"])).unwrap();
    let a = update_args(&["--force", "web"]);
    apply(&a, &mut spec, &[]).unwrap();
    apply(&a, &mut spec, &[]).unwrap();
    assert_eq!(spec.force_update, 2);
    assert!(spec.env.is_empty());
}

#[test]
fn update_replicas_of_a_global_service_is_refused() {
    let mut spec = build_spec(&create_args(&[
        "--name", "web", "--mode", "global", "whoami",
    ]))
    .unwrap();
    let e = apply(&update_args(&["--replicas", "2", "web"]), &mut spec, &[]).unwrap_err();
    assert!(e.to_string().contains("global"), "{e}");
}

#[test]
fn service_table() {
    let svc = |id: char, name: &str, global: bool, running, desired, ports: Vec<pb::PortConfig>| {
        pb::Service {
            id: id.to_string().repeat(25),
            spec: Some(pb::ServiceSpec {
                name: name.into(),
                global,
                image: "whoami".into(),
                ..Default::default()
            }),
            ports,
            running,
            desired,
            ..Default::default()
        }
    };
    let p = |published, target| pb::PortConfig {
        published,
        target,
        ..Default::default()
    };
    let services = [
        svc('a', "web", false, 2, 3, vec![p(30001, 8080), p(8081, 81)]),
        svc('b', "monitor", true, 2, 2, vec![]),
    ];
    let want = "\
ID             NAME      MODE         REPLICAS   IMAGE     PORTS
aaaaaaaaaaaa   web       replicated   2/3        whoami    *:30001->8080/tcp, *:8081->81/tcp
bbbbbbbbbbbb   monitor   global       2/2        whoami
";
    assert_eq!(table(&services, false), want);
}

fn ps_task(
    id: &str,
    slot: u64,
    created: i64,
    desired: TaskState,
    state: TaskState,
    err: &str,
) -> pb::Task {
    pb::Task {
        id: id.repeat(25).chars().take(25).collect(),
        name: format!(
            "web.{slot}.{}",
            id.repeat(25).chars().take(25).collect::<String>()
        ),
        service_name: "web".into(),
        slot,
        node_id: "n1".into(),
        spec: Some(pb::ServiceSpec {
            name: "web".into(),
            image: "whoami".into(),
            ..Default::default()
        }),
        desired_state: desired as i32,
        status: Some(pb::TaskStatus {
            state: state as i32,
            err: err.into(),
            timestamp_ms: 95_000 - created * 1000,
            ..Default::default()
        }),
        created_ms: created,
        ..Default::default()
    }
}

#[test]
fn ps_nests_older_tasks_under_their_slot() {
    let mut tasks = vec![
        ps_task("b", 2, 3, TaskState::Running, TaskState::Running, ""),
        ps_task(
            "o",
            1,
            1,
            TaskState::Shutdown,
            TaskState::Failed,
            "task: non-zero exit (1): the program crashed",
        ),
        ps_task("n", 1, 2, TaskState::Running, TaskState::Running, ""),
    ];
    sort_tasks(&mut tasks);
    let hosts: HashMap<String, String> = [("n1".to_string(), "worker1".to_string())].into();
    let got = ps_table(&tasks, &hosts, 100_000, false);
    let want = "\
ID             NAME        IMAGE     NODE      DESIRED STATE   CURRENT STATE           ERROR                             PORTS
nnnnnnnnnnnn   web.1       whoami    worker1   Running         Running 7 seconds ago
oooooooooooo    \\_ web.1   whoami    worker1   Shutdown        Failed 6 seconds ago    \"task: non-zero exit (1): the…\"
bbbbbbbbbbbb   web.2       whoami    worker1   Running         Running 8 seconds ago
";
    assert_eq!(got, want);
    let full = ps_table(&tasks, &hosts, 100_000, true);
    assert!(
        full.contains(&format!("web.1.{}", "n".repeat(25))),
        "{full}"
    );
    assert!(
        full.contains("\"task: non-zero exit (1): the program crashed\""),
        "{full}"
    );
}

#[test]
fn ps_ports_are_the_host_mode_ones() {
    let mut t = ps_task("a", 1, 1, TaskState::Running, TaskState::Running, "");
    let port = |published, mode: pb::PublishMode| pb::PortConfig {
        protocol: pb::Protocol::Udp as i32,
        target: 53,
        published,
        mode: mode as i32,
        ..Default::default()
    };
    t.spec.as_mut().unwrap().ports = vec![
        port(5353, pb::PublishMode::Host),
        port(30000, pb::PublishMode::Ingress),
        port(0, pb::PublishMode::Host),
    ];
    let got = ps_table(&[t], &HashMap::new(), 100_000, false);
    assert!(
        got.lines().nth(1).unwrap().ends_with("   *:5353->53/udp"),
        "{got}"
    );
}

#[test]
fn ps_filters_like_docker() {
    use super::ps::{keep, parse_filter};
    let running = ps_task("a", 1, 1, TaskState::Running, TaskState::Running, "");
    let old = ps_task("b", 2, 1, TaskState::Shutdown, TaskState::Failed, "");
    let hosts: HashMap<String, String> = [("n1".to_string(), "worker1".to_string())].into();
    let f = |specs: &[&str]| -> Vec<TaskMatch> {
        specs.iter().map(|s| parse_filter(s).unwrap()).collect()
    };
    let kept = |specs: &[&str]| -> Vec<u64> {
        [&running, &old]
            .into_iter()
            .filter(|t| keep(&f(specs), t, &hosts))
            .map(|t| t.slot)
            .collect()
    };
    assert_eq!(kept(&[]), [1, 2]);
    assert_eq!(kept(&["desired-state=running"]), [1]);
    assert_eq!(kept(&["desired-state=Shutdown"]), [2]);
    // Values of one key: any; different keys: all.
    assert_eq!(kept(&["name=web.1", "name=web.2"]), [1, 2]);
    assert_eq!(
        kept(&["name=web.2", "desired-state=running"]),
        Vec::<u64>::new()
    );
    assert_eq!(kept(&["id=aaa"]), [1]);
    assert_eq!(kept(&["node=worker1"]), [1, 2]);
    assert_eq!(kept(&["node=n1"]), [1, 2]);
    assert_eq!(kept(&["node=worker2"]), Vec::<u64>::new());
    assert!(parse_filter("label=a")
        .unwrap_err()
        .contains("expected id, name, node or desired-state"));
    assert!(parse_filter("desired-state=sleeping").is_err());
    assert!(parse_filter("name").is_err());
}

#[test]
fn ps_names() {
    let t = ps_task("a", 3, 1, TaskState::Running, TaskState::Running, "");
    assert_eq!(display_name(&t, false), "web.3");
    let mut g = t.clone();
    g.name = String::new();
    g.spec.as_mut().unwrap().global = true;
    g.node_id = "node9".into();
    assert_eq!(display_name(&g, false), "web.node9");
    assert_eq!(display_name(&g, true), format!("web.node9.{}", g.id));
}

#[test]
fn log_lines_are_prefixed_and_aligned() {
    let line = |task: &str, node: &str, data: &str| pb::LogLine {
        task_id: "x".into(),
        task_name: task.into(),
        node_id: node.into(),
        stream: "stdout".into(),
        data: data.as_bytes().to_vec(),
        ..Default::default()
    };
    let hosts: HashMap<String, String> = [("n1".to_string(), "worker1".to_string())].into();
    let got = logs::render(
        &[
            line("web.1.abc", "n1", "hello\nworld\n"),
            line("web.10.abc", "n2", "x"),
        ],
        &hosts,
        logs::Style::default(),
    );
    let texts: Vec<&str> = got.iter().map(|(_, t)| t.as_str()).collect();
    assert_eq!(
        texts,
        [
            "web.1.abc@worker1    | hello",
            "web.1.abc@worker1    | world",
            "web.10.abc@n2        | x"
        ]
    );
}

#[test]
fn pretty_inspect_names_networks() {
    let s = pb::Service {
        id: "s1".into(),
        spec: Some(pb::ServiceSpec {
            name: "web".into(),
            replicas: 2,
            image: "whoami".into(),
            networks: vec![pb::NetworkAttachmentSpec {
                target: "nid".into(),
                aliases: vec!["api".into()],
            }],
            limit_memory_bytes: 64 << 20,
            ..Default::default()
        }),
        vips: vec![pb::VirtualIp {
            network_id: "nid".into(),
            addr: "10.0.1.2/24".into(),
        }],
        ..Default::default()
    };
    let nets: HashMap<String, String> = [("nid".to_string(), "front".to_string())].into();
    let out = pretty_service(&s, &nets);
    assert!(out.contains("Name:           web\n"), "{out}");
    assert!(out.contains(" Replicas:      2\n"), "{out}");
    assert!(
        out.contains("Networks:       front (aliases: api)\n"),
        "{out}"
    );
    assert!(
        out.contains(" VIP:           10.0.1.2/24 on front\n"),
        "{out}"
    );
    assert!(out.contains("  Memory:       64MiB\n"), "{out}");
}

#[test]
fn health_flags_parse_into_the_spec() {
    use shoal_proto::model::{HealthConfig, HealthTest};
    let a = create_args(&[
        "--name",
        "web",
        "--health-cmd",
        "curl -f http://localhost/ || exit 1",
        "--health-interval",
        "1m30s",
        "--health-timeout",
        "500ms",
        "--health-retries",
        "5",
        "--health-start-period",
        "10s",
        "--stop-drain",
        "3s",
        "nginx",
    ]);
    let spec = build_spec(&a).unwrap();
    assert_eq!(
        spec.healthcheck,
        Some(HealthConfig {
            test: HealthTest::Shell("curl -f http://localhost/ || exit 1".into()),
            interval_ms: 90_000,
            timeout_ms: 500,
            start_period_ms: 10_000,
            retries: 5,
        })
    );
    assert_eq!(spec.stop_drain_ms, Some(3000));
    // Unset: the image's check, the node's drain.
    let spec = build_spec(&create_args(&["--name", "web", "nginx"])).unwrap();
    assert_eq!((spec.healthcheck, spec.stop_drain_ms), (None, None));
    // update: --no-healthcheck, then a command again.
    let mut spec = build_spec(&a).unwrap();
    apply(&update_args(&["--no-healthcheck", "web"]), &mut spec, &[]).unwrap();
    assert_eq!(spec.healthcheck.as_ref().unwrap().test, HealthTest::None);
    apply(
        &update_args(&["--health-cmd", "true", "web"]),
        &mut spec,
        &[],
    )
    .unwrap();
    assert_eq!(
        spec.healthcheck.as_ref().unwrap().test,
        HealthTest::Shell("true".into())
    );
}

#[test]
fn bad_health_flags_are_refused_clearly() {
    for (argv, want) in [
        (vec!["--health-interval", "-5s"], "it can't be negative"),
        (vec!["--health-timeout=-1s"], "can't be negative"),
        (vec!["--health-retries", "-1"], "non-negative integer"),
        (vec!["--health-retries", "lots"], "non-negative integer"),
        (vec!["--stop-drain", "forever"], "not a duration"),
    ] {
        let mut full = vec!["swarmctl", "service", "create", "--name", "web"];
        full.extend_from_slice(&argv);
        full.push("nginx");
        let e = Cli::try_parse_from(full).expect_err("refused").to_string();
        assert!(e.contains(want), "{argv:?}: {e}");
    }
    // Parsed, then refused by the bounds, with nothing sent.
    for (argv, want) in [
        (vec!["--health-interval", "48h"], "between 1ms and 24h"),
        (vec!["--health-retries", "5000"], "at most 1000"),
        (vec!["--stop-drain", "1h"], "at most 10m"),
        (
            vec!["--no-healthcheck", "--health-cmd", "true"],
            "conflicts",
        ),
    ] {
        let mut full = vec!["--name", "web"];
        full.extend_from_slice(&argv);
        full.push("nginx");
        let e = build_spec(&create_args(&full)).unwrap_err().to_string();
        assert!(e.contains(want), "{argv:?}: {e}");
    }
}

#[test]
fn ps_shows_health_as_docker_ps_does() {
    let mut healthy = ps_task("a", 1, 2, TaskState::Running, TaskState::Running, "");
    let mut starting = ps_task("b", 2, 2, TaskState::Running, TaskState::Starting, "");
    let mut unhealthy = ps_task("c", 3, 2, TaskState::Running, TaskState::Running, "");
    let mut failed = ps_task(
        "d",
        4,
        2,
        TaskState::Shutdown,
        TaskState::Failed,
        "unhealthy container",
    );
    for (t, h) in [
        (&mut healthy, pb::TaskHealth::Healthy),
        (&mut starting, pb::TaskHealth::Starting),
        (&mut unhealthy, pb::TaskHealth::Unhealthy),
        (&mut failed, pb::TaskHealth::Unhealthy),
    ] {
        t.status.as_mut().unwrap().health = h as i32;
    }
    let tasks = vec![healthy, starting, unhealthy, failed];
    let got = ps_table(&tasks, &HashMap::new(), 100_000, false);
    let rows: Vec<&str> = got.lines().skip(1).collect();
    assert!(rows[0].contains("Running 7 seconds ago (healthy)"), "{got}");
    assert!(
        rows[1].contains("Starting 7 seconds ago") && !rows[1].contains('('),
        "{got}"
    );
    assert!(
        rows[2].contains("Running 7 seconds ago (unhealthy)"),
        "{got}"
    );
    assert!(
        rows[3].contains("Failed 7 seconds ago ") && rows[3].contains("\"unhealthy container\""),
        "{got}"
    );
}

#[test]
fn pretty_inspect_shows_the_health_check_and_drain() {
    let s = pb::Service {
        id: "s1".into(),
        spec: Some(pb::ServiceSpec {
            name: "web".into(),
            image: "whoami".into(),
            healthcheck: Some(pb::HealthCheck {
                test: vec!["CMD-SHELL".into(), "test -e /ok".into()],
                interval_ms: 5000,
                ..Default::default()
            }),
            ..Default::default()
        }),
        ..Default::default()
    };
    let out = pretty_service(&s, &HashMap::new());
    for line in [
        " StopDrain:     1s (default)\n",
        "Healthcheck:\n",
        " Test:          CMD-SHELL test -e /ok\n",
        " Interval:      5s\n",
        " Timeout:       30s (default)\n",
        " Retries:       3 (default)\n",
    ] {
        assert!(out.contains(line), "{line:?} in\n{out}");
    }
}

#[test]
fn secret_and_config_flags_in_every_form() {
    let a = create_args(&[
        "--name",
        "db",
        "--secret",
        "db_pass",
        "--secret",
        "src=tls,target=certs/key.pem,uid=999,gid=4294967295,mode=0400",
        "--config",
        "source=app.conf,target=/etc/app.conf,mode=644",
        "whoami",
    ]);
    let spec = build_spec(&a).unwrap();
    let s = &spec.secrets;
    assert_eq!(
        (s[0].name.as_str(), s[0].target.as_str(), s[0].mode),
        ("db_pass", "", 0o444)
    );
    assert_eq!(
        (
            s[1].name.as_str(),
            s[1].target.as_str(),
            s[1].uid,
            s[1].gid,
            s[1].mode
        ),
        ("tls", "certs/key.pem", 999, u32::MAX, 0o400)
    );
    let c = &spec.configs[0];
    assert_eq!(
        (c.name.as_str(), c.target.as_str(), c.mode),
        ("app.conf", "/etc/app.conf", 0o644)
    );
    for bad in [
        "",
        "src=",
        "target=x",
        "src=a,uid=-1",
        "src=a,gid=4294967296",
        "src=a,mode=10000",
        "src=a,mode=9",
        "src=a,color=red",
        "a,b",
    ] {
        let argv = [
            "swarmctl", "service", "create", "--name", "x", "--secret", bad, "img",
        ];
        assert!(Cli::try_parse_from(argv).is_err(), "{bad:?}");
    }

    // Rotation: the old one out, the new one in at the same target.
    let mut spec = spec;
    spec.secrets[0].id = "oldid".into();
    let u = update_args(&[
        "--secret-rm",
        "oldid",
        "--secret-add",
        "src=db_pass2,target=db_pass",
        "--config-rm",
        "app.conf",
        "--config-add",
        "other",
        "db",
    ]);
    apply(&u, &mut spec, &[]).unwrap();
    let names: Vec<&str> = spec.secrets.iter().map(|r| r.name.as_str()).collect();
    assert_eq!(names, ["tls", "db_pass2"]);
    assert_eq!(spec.secrets[1].target, "db_pass");
    assert_eq!(spec.configs.len(), 1);
    assert_eq!(spec.configs[0].name, "other");
}
