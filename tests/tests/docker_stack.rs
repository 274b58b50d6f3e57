//! `docker stack deploy|ls|services|ps|rm` and `docker events` of the real `docker` CLI
//! (Debian's `docker.io`, 20.10) against Shoal's Engine API socket, on a `swarmctl lab` of one
//! manager and one worker (root). The CLI turns the compose file into API calls itself
//! (networks, secrets and configs labelled `com.docker.stack.namespace`, then services pinned to
//! the digest `/distribution` gives); what Shoal stores is checked through `docker service
//! inspect` and `swarmctl`. A redeploy changing one service leaves the other as it was (same
//! version, same tasks); `docker events --since --until` shows what happened and ends; `stack
//! rm` leaves nothing; a compose file using a field Shoal does not implement is refused naming
//! it, and creates no service.

use shoal_netlib::root::root_or_skip;
use shoal_tests::docker::{row, tabwriter, Docker, CLI_TIMEOUT};
use shoal_tests::lab::Lab;
use shoal_tests::{run, wait_for, Output, TaskView};
use std::collections::BTreeSet;
use std::path::PathBuf;
use std::time::Duration;

/// This file's lab subnet.
const SUBNET: &str = "198.19.235.0/24";

/// The stack: a web service (2 replicas, a health check, start-first updates) and a db service
/// with a secret and a config, on an overlay network. `GREETING` is replaced per deploy.
const COMPOSE: &str = r#"version: "3.8"
services:
  web:
    image: shoal/whoami
    environment:
      - GREETING=GREETING_VALUE
    labels:
      com.example.container: web
    healthcheck:
      test: ["CMD", "true"]
      interval: 2s
      timeout: 3s
      retries: 3
    deploy:
      replicas: 2
      labels:
        com.example.tier: front
      update_config:
        parallelism: 1
        order: start-first
      rollback_config:
        parallelism: 2
      restart_policy:
        condition: on-failure
        max_attempts: 5
      resources:
        limits:
          memory: 64M
    networks:
      front:
        aliases: [webby]
    ports:
      - "8080:8080"
  db:
    image: shoal/busybox
    command: ["sleep", "100000"]
    deploy:
      endpoint_mode: dnsrr
    secrets:
      - source: pw
        target: db_pass
    configs:
      - source: conf
        target: /etc/app.conf
    networks: [front]
networks:
  front:
    driver: overlay
secrets:
  pw:
    file: ./pw.txt
configs:
  conf:
    file: ./app.conf
"#;

/// A service using `read_only`, which Shoal does not implement.
const UNSUPPORTED: &str = r#"version: "3.8"
services:
  ro:
    image: shoal/busybox
    command: ["sleep", "100000"]
    read_only: true
"#;

/// The CLI against one socket, run in the compose files' directory.
struct Stacks {
    docker: Docker,
    sock: PathBuf,
    dir: tempfile::TempDir,
}

impl Stacks {
    fn run(&self, args: &[&str]) -> Output {
        let mut cmd = self.docker.command(&self.sock, args);
        cmd.current_dir(self.dir.path());
        run(&mut cmd, CLI_TIMEOUT)
    }

    fn ok(&self, args: &[&str]) -> String {
        let out = self.run(args);
        assert!(out.success(), "docker {args:?}: {out}");
        out.stdout
    }

    fn write(&self, name: &str, text: &str) {
        std::fs::write(self.dir.path().join(name), text).unwrap();
    }

    fn lines(&self, args: &[&str]) -> Vec<String> {
        self.ok(args).lines().map(str::to_string).collect()
    }
}

fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

/// The ids of `service`'s tasks, from `swarmctl service ps`.
fn task_ids(lab: &Lab, service: &str) -> BTreeSet<String> {
    let out = lab.swarmctl_ok(&["service", "ps", service, "--format", "json"]);
    TaskView::list(&serde_json::from_str(&out).unwrap())
        .into_iter()
        .map(|t| t.id)
        .collect()
}

/// The names swarmctl lists of one kind (`service`, `network`, `secret`, `config`).
fn swarmctl_names(lab: &Lab, kind: &str) -> Vec<String> {
    let out = lab.swarmctl_ok(&[kind, "ls", "--format", "json"]);
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    v.as_array()
        .map(|a| {
            a.iter()
                .filter_map(|o| {
                    o.get("name")
                        .or_else(|| o.pointer("/spec/name"))
                        .and_then(|n| n.as_str())
                        .map(str::to_string)
                })
                .collect()
        })
        .unwrap_or_default()
}

/// Waits until neither docker nor swarmctl lists anything of stack `ns`.
fn assert_stack_gone(lab: &Lab, docker: &Stacks, ns: &str) {
    let label = format!("label=com.docker.stack.namespace={ns}");
    wait_for(
        &format!("stack {ns} removed"),
        Duration::from_secs(60),
        || {
            let mut left = Vec::new();
            for kind in ["service", "network", "secret", "config"] {
                let names = docker.ok(&[kind, "ls", "--filter", &label, "--format", "{{.Name}}"]);
                left.extend(names.lines().map(|n| format!("docker {kind} {n}")));
                let prefix = format!("{ns}_");
                left.extend(
                    swarmctl_names(lab, kind)
                        .into_iter()
                        .filter(|n| n.starts_with(&prefix))
                        .map(|n| format!("swarmctl {kind} {n}")),
                );
            }
            if left.is_empty() {
                Ok(())
            } else {
                Err(format!("{left:?}"))
            }
        },
    );
}

#[test]
#[ignore = "needs root"]
fn docker_stack_deploys_updates_and_removes_a_stack() {
    if !root_or_skip() {
        return;
    }
    let Some(cli) = Docker::new() else { return };
    let Some(images) = shoal_tests::lab::demo_images_or_skip() else {
        return;
    };
    let mut lab = Lab::new();
    lab.subnet = SUBNET.into();
    lab.serve_docker();
    lab.up_with_images(1, 1, &images);
    let docker = Stacks {
        docker: cli,
        sock: lab.docker_sock("manager1"),
        dir: tempfile::tempdir().unwrap(),
    };
    docker.write("pw.txt", "s3cret-stack\n");
    docker.write("app.conf", "max_connections = 9\n");
    docker.write("compose.yml", &COMPOSE.replace("GREETING_VALUE", "one"));
    let t0 = unix_now().to_string();

    // Deploy.
    let out = docker.ok(&["stack", "deploy", "-c", "compose.yml", "app"]);
    let said: BTreeSet<&str> = out.lines().collect();
    assert_eq!(
        said,
        BTreeSet::from([
            "Creating network app_front",
            "Creating secret app_pw",
            "Creating config app_conf",
            "Creating service app_web",
            "Creating service app_db",
        ]),
        "{out}"
    );
    assert_eq!(
        docker.ok(&["stack", "ls"]),
        tabwriter(&[
            row(&["NAME", "SERVICES", "ORCHESTRATOR"]),
            row(&["app", "2", "Swarm"]),
        ])
    );
    let id = |name: &str| docker.ok(&["service", "inspect", name, "--format", "{{.ID}}"]);
    let (web, db) = (id("app_web"), id("app_db"));
    let want = tabwriter(&[
        row(&["ID", "NAME", "MODE", "REPLICAS", "IMAGE", "PORTS"]),
        row(&[
            &db.trim()[..12],
            "app_db",
            "replicated",
            "1/1",
            "shoal/busybox:latest",
            "",
        ]),
        row(&[
            &web.trim()[..12],
            "app_web",
            "replicated",
            "2/2",
            "shoal/whoami:latest",
            "*:8080->8080/tcp",
        ]),
    ]);
    wait_for("stack services converged", Duration::from_secs(90), || {
        let got = docker.ok(&["stack", "services", "app"]);
        if got == want {
            Ok(())
        } else {
            Err(got)
        }
    });
    let ps = docker.lines(&[
        "stack",
        "ps",
        "app",
        "--format",
        "{{.Name}} {{.DesiredState}} {{.CurrentState}}",
    ]);
    let names: BTreeSet<&str> = ps
        .iter()
        .map(|l| l.split(' ').next().unwrap_or_default())
        .collect();
    assert_eq!(
        names,
        BTreeSet::from(["app_db.1", "app_web.1", "app_web.2"]),
        "{ps:?}"
    );
    assert!(ps.iter().all(|l| l.contains(" Running Running ")), "{ps:?}");

    // What the compose file said is carried.
    let f = |name: &str, fmt: &str| {
        docker
            .ok(&["service", "inspect", name, "--format", fmt])
            .trim()
            .to_string()
    };
    assert_eq!(
        f("app_web", "{{json .Spec.Labels}}"),
        r#"{"com.docker.stack.image":"shoal/whoami","com.docker.stack.namespace":"app","com.example.tier":"front"}"#
    );
    assert_eq!(
        f(
            "app_web",
            "{{json .Spec.TaskTemplate.ContainerSpec.Labels}}"
        ),
        r#"{"com.docker.stack.namespace":"app","com.example.container":"web"}"#
    );
    assert_eq!(
        f(
            "app_web",
            "{{json .Spec.TaskTemplate.ContainerSpec.Healthcheck}}"
        ),
        r#"{"Test":["CMD","true"],"Interval":2000000000,"Timeout":3000000000,"Retries":3}"#
    );
    assert_eq!(
        f(
            "app_web",
            "{{.Spec.UpdateConfig.Parallelism}} {{.Spec.UpdateConfig.Order}} {{.Spec.RollbackConfig.Parallelism}}"
        ),
        "1 start-first 2"
    );
    assert_eq!(
        f(
            "app_web",
            "{{json .Spec.TaskTemplate.RestartPolicy}} {{.Spec.TaskTemplate.Resources.Limits.MemoryBytes}}"
        ),
        r#"{"Condition":"on-failure","Delay":0,"MaxAttempts":5} 67108864"#
    );
    let net = |fmt: &str| {
        docker
            .ok(&["network", "inspect", "app_front", "--format", fmt])
            .trim()
            .to_string()
    };
    let front = net("{{.ID}}");
    let net_of = |s: &str| {
        f(
            s,
            "{{range .Spec.TaskTemplate.Networks}}{{.Target}} {{.Aliases}}{{end}}",
        )
    };
    assert_eq!(net_of("app_web"), format!("{front} [webby web]"));
    assert_eq!(net_of("app_db"), format!("{front} [db]"));
    assert_eq!(f("app_db", "{{.Spec.EndpointSpec.Mode}}"), "dnsrr");
    assert_eq!(
        net("{{.Driver}} {{json .Labels}}"),
        r#"overlay {"com.docker.stack.namespace":"app"}"#
    );
    for kind in ["secret", "config"] {
        let name = if kind == "secret" {
            "app_pw"
        } else {
            "app_conf"
        };
        assert_eq!(
            docker
                .ok(&[kind, "inspect", name, "--format", "{{json .Spec.Labels}}"])
                .trim(),
            r#"{"com.docker.stack.namespace":"app"}"#
        );
    }
    // The secret and the config reach the db task.
    let task = lab.running("app_db", 1).remove(0);
    let read = wait_for("task exec", Duration::from_secs(30), || {
        let out = lab.swarmctl(&[
            "task",
            "exec",
            &task.id,
            "--",
            "sh",
            "-c",
            "cat /run/secrets/db_pass /etc/app.conf",
        ]);
        if out.success() {
            Ok(out.stdout)
        } else {
            Err(out.to_string())
        }
    });
    assert_eq!(read, "s3cret-stack\nmax_connections = 9\n");

    // A redeploy that changes web only: db keeps its version and its tasks.
    let version = |name: &str| f(name, "{{.Version.Index}}");
    let (db_version, web_version) = (version("app_db"), version("app_web"));
    let db_tasks = task_ids(&lab, "app_db");
    docker.write("compose.yml", &COMPOSE.replace("GREETING_VALUE", "two"));
    let out = docker.ok(&["stack", "deploy", "-c", "compose.yml", "app"]);
    let said: BTreeSet<&str> = out.lines().collect();
    assert_eq!(
        said,
        BTreeSet::from([
            format!("Updating service app_web (id: {})", web.trim()).as_str(),
            format!("Updating service app_db (id: {})", db.trim()).as_str(),
        ]),
        "{out}"
    );
    assert_eq!(version("app_db"), db_version);
    assert_ne!(version("app_web"), web_version);
    assert!(f("app_web", "{{json .Spec.TaskTemplate.ContainerSpec.Env}}").contains("GREETING=two"));
    wait_for("web updated", Duration::from_secs(120), || {
        let s = f("app_web", "{{.UpdateStatus.State}}");
        if s == "completed" {
            Ok(())
        } else {
            Err(s)
        }
    });
    lab.running("app_web", 2);
    assert_eq!(task_ids(&lab, "app_db"), db_tasks);

    // Events: the services' creation and web's update, then the end of the stream.
    let t1 = (unix_now() + 1).to_string();
    let events = docker.lines(&[
        "events",
        "--since",
        &t0,
        "--until",
        &t1,
        "--filter",
        "type=service",
        "--format",
        "{{json .}}",
    ]);
    let seen: Vec<(String, String, String)> = events
        .iter()
        .map(|l| {
            let v: serde_json::Value = serde_json::from_str(l).unwrap();
            assert_eq!(v["Type"], "service", "{l}");
            assert_eq!(v["scope"], "swarm", "{l}");
            let t = v["timeNano"].as_i64().unwrap();
            assert_eq!(v["time"].as_i64().unwrap(), t / 1_000_000_000, "{l}");
            (
                v["Action"].as_str().unwrap().to_string(),
                v["Actor"]["Attributes"]["name"]
                    .as_str()
                    .unwrap()
                    .to_string(),
                v["Actor"]["ID"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    let has = |action: &str, name: &str, id: &str| {
        seen.iter()
            .any(|(a, n, i)| a == action && n == name && i == id.trim())
    };
    assert!(has("create", "app_web", &web), "{events:#?}");
    assert!(has("create", "app_db", &db), "{events:#?}");
    assert!(has("update", "app_web", &web), "{events:#?}");
    let secrets = docker.lines(&[
        "events",
        "--since",
        &t0,
        "--until",
        &t1,
        "--filter",
        "type=secret",
        "--format",
        "{{.Type}} {{.Action}} {{.Actor.Attributes.name}}",
    ]);
    assert!(
        secrets.first().map(String::as_str) == Some("secret create app_pw"),
        "{secrets:?}"
    );

    // Removal.
    let out = docker.ok(&["stack", "rm", "app"]);
    let said: BTreeSet<&str> = out.lines().collect();
    assert_eq!(
        said,
        BTreeSet::from([
            "Removing service app_db",
            "Removing service app_web",
            "Removing secret app_pw",
            "Removing config app_conf",
            "Removing network app_front",
        ]),
        "{out}"
    );
    assert_stack_gone(&lab, &docker, "app");
    assert_eq!(
        docker.ok(&["stack", "ls"]),
        "NAME      SERVICES   ORCHESTRATOR\n"
    );

    // A field Shoal does not implement: refused by name, no service made.
    docker.write("bad.yml", UNSUPPORTED);
    let out = docker.run(&["stack", "deploy", "-c", "bad.yml", "bad"]);
    assert!(!out.success(), "{out}");
    assert!(
        out.stderr.contains(
            "failed to create service bad_ro: Error response from daemon: Spec.TaskTemplate.ContainerSpec.ReadOnly is not supported by Shoal"
        ),
        "{out}"
    );
    assert!(swarmctl_names(&lab, "service").is_empty());
    // What the CLI made before the service (as with dockerd, its default network) goes with
    // `stack rm`.
    docker.ok(&["stack", "rm", "bad"]);
    assert_stack_gone(&lab, &docker, "bad");
}
