use super::*;
use shoal_proto::model::*;

fn cluster() -> Cluster {
    Cluster {
        id: "c1".into(),
        default_addr_pool: "10.0.0.0/8".into(),
        subnet_size: 24,
        ..Default::default()
    }
}

fn net(name: &str, subnet: &str) -> Network {
    Network {
        id: format!("n-{name}").into(),
        name: name.into(),
        subnet: subnet.into(),
        ..Default::default()
    }
}

fn svc(name: &str, ports: &[&str]) -> Service {
    Service {
        id: format!("s-{name}").into(),
        spec: ServiceSpec {
            name: name.into(),
            image: "sleep".into(),
            ports: ports
                .iter()
                .map(|p| PortConfig::parse(p).unwrap())
                .collect(),
            ..Default::default()
        },
        ..Default::default()
    }
}

#[test]
fn networks_get_subnets_and_vnis_and_names_are_unique() {
    let mut s = State::default();
    assert!(s
        .apply(1, &Command::InitCluster(cluster()))
        .refusal
        .is_none());
    assert!(s
        .apply(2, &Command::CreateNetwork(net("ingress", "")))
        .refusal
        .is_none());
    assert!(s
        .apply(3, &Command::CreateNetwork(net("lp_net", "")))
        .refusal
        .is_none());
    assert_eq!(s.networks["n-ingress"].subnet, "10.0.0.0/24");
    assert_eq!(s.networks["n-lp_net"].subnet, "10.0.1.0/24");
    assert_eq!(s.networks["n-lp_net"].gateway, "10.0.1.1");
    assert_eq!(s.networks["n-ingress"].vni, FIRST_VNI);
    assert_eq!(s.networks["n-lp_net"].vni, FIRST_VNI + 1);
    let dup = s.apply(
        4,
        &Command::CreateNetwork(Network {
            id: "x".into(),
            ..net("lp_net", "")
        }),
    );
    assert_eq!(
        dup.refusal,
        Some(Refusal::NameTaken {
            kind: ObjectKind::Network,
            name: "lp_net".into(),
            holder: None
        })
    );
    let overlap = s.apply(5, &Command::CreateNetwork(net("other", "10.0.1.0/25")));
    assert_eq!(
        overlap.refusal.unwrap().to_string(),
        "subnet 10.0.1.0/25 overlaps network lp_net (10.0.1.0/24)"
    );
    assert_eq!(s.networks.len(), 2, "refused commands change nothing");
}

#[test]
fn services_ports_conflicts_and_network_in_use() {
    let mut s = State::default();
    s.apply(1, &Command::InitCluster(cluster()));
    s.apply(2, &Command::CreateNetwork(net("lp_net", "")));
    let mut web = svc("web", &["8080"]);
    web.spec.networks.push(NetworkAttachmentSpec {
        target: "n-lp_net".into(),
        aliases: vec![],
    });
    assert!(s.apply(3, &Command::CreateService(web)).refusal.is_none());
    assert_eq!(s.services["s-web"].ports[0].published, 30000);
    let r = s.apply(4, &Command::CreateService(svc("web", &[])));
    assert!(matches!(r.refusal, Some(Refusal::IdTaken { .. })), "{r:?}");
    let r = s.apply(5, &Command::CreateService(svc("api", &["30000:80"])));
    assert!(
        matches!(&r.refusal, Some(Refusal::Port(p)) if p.to_string().contains("\"web\"")),
        "{r:?}"
    );
    let r = s.apply(
        6,
        &Command::RemoveNetwork {
            id: "n-lp_net".into(),
        },
    );
    assert_eq!(
        r.refusal,
        Some(Refusal::NetworkInUse {
            network: "lp_net".into(),
            services: vec!["web".into()]
        })
    );
    assert!(s
        .apply(7, &Command::RemoveService { id: "s-web".into() })
        .refusal
        .is_none());
    assert!(s
        .apply(
            8,
            &Command::RemoveNetwork {
                id: "n-lp_net".into()
            }
        )
        .refusal
        .is_none());
}

#[test]
fn task_versions_and_forward_only_status() {
    let mut s = State::default();
    let t = Task {
        id: "t1".into(),
        node_id: "n1".into(),
        ..Default::default()
    };
    assert_eq!(s.apply(1, &Command::PutTasks(vec![t.clone()])).skipped, 0);
    assert_eq!(
        s.apply(2, &Command::PutTasks(vec![t.clone()])).skipped,
        1,
        "stale version"
    );
    assert_eq!(s.node_tasks("n1").count(), 1);
    let running = TaskStatus {
        state: TaskState::Running,
        ..Default::default()
    };
    s.apply(
        3,
        &Command::TaskStatuses(vec![TaskStatusUpdate {
            task_id: "t1".into(),
            status: running,
        }]),
    );
    let starting = TaskStatus {
        state: TaskState::Starting,
        ..Default::default()
    };
    s.apply(
        4,
        &Command::TaskStatuses(vec![TaskStatusUpdate {
            task_id: "t1".into(),
            status: starting,
        }]),
    );
    assert_eq!(s.tasks["t1"].status.state, TaskState::Running);
    let mut moved = s.tasks["t1"].clone();
    moved.node_id = "n2".into();
    s.apply(5, &Command::PutTasks(vec![moved]));
    assert_eq!(s.node_tasks("n1").count(), 0);
    assert_eq!(s.node_tasks("n2").count(), 1);
    let mut copy = s.clone();
    copy.tasks_by_node.clear();
    copy.reindex();
    assert_eq!(copy.tasks_by_node, s.tasks_by_node);
}

fn task(id: &str, service: &Service, slot: u64, state: TaskState, created_ms: i64) -> Task {
    Task {
        id: id.into(),
        service_id: service.id.clone(),
        service_name: service.spec.name.clone(),
        slot,
        node_id: "node1".into(),
        spec: service.spec.clone(),
        desired_state: if state.is_terminal() {
            TaskState::Shutdown
        } else {
            TaskState::Running
        },
        status: TaskStatus {
            state,
            ..Default::default()
        },
        created_ms,
        ..Default::default()
    }
}

#[test]
fn tasks_are_found_by_every_name_a_user_sees() {
    let mut s = State::default();
    let web = svc("web", &[]);
    s.services.insert(web.id.clone(), web.clone());
    let old = task("b6h6wsx87u1pold000000000a", &web, 5, TaskState::Failed, 1);
    let cur = task("b6h6wsx87u1pqr5t0000000zz", &web, 5, TaskState::Running, 2);
    let other = task("k2m4wsx87u1p00000000000aa", &web, 1, TaskState::Running, 3);
    for t in [&old, &cur, &other] {
        s.tasks.insert(t.id.clone(), t.clone());
    }
    let found = |q: &str| s.task(q).map(|t| t.id.clone());
    // The id, a unique prefix, the full name.
    assert_eq!(found(&cur.id), Ok(cur.id.clone()));
    assert_eq!(found("k2m4"), Ok(other.id.clone()));
    assert_eq!(found(&cur.name()), Ok(cur.id.clone()));
    // `service.slot`: the slot's current task, not the failed one before it.
    assert_eq!(found("web.5"), Ok(cur.id.clone()));
    assert_eq!(found("web.1"), Ok(other.id.clone()));
    // `service.slot.<12 characters>` as `service ps` prints ids.
    assert_eq!(found("web.5.b6h6wsx87u1pq"), Ok(cur.id.clone()));
    assert_eq!(found("web.1.k2m4wsx87u1p"), Ok(other.id.clone()));
    // Ambiguous forms say what they match; unknown ones are not found.
    match s.task("web.5.b6h6wsx87u1p") {
        Err(LookupError::Ambiguous { candidates, .. }) => {
            let mut want = vec![cur.name(), old.name()];
            want.sort();
            assert_eq!(candidates, want);
        }
        r => panic!("expected ambiguous, got {r:?}"),
    }
    assert!(matches!(s.task("b6h6"), Err(LookupError::Ambiguous { .. })));
    assert_eq!(
        s.task("web.9"),
        Err(LookupError::NotFound {
            kind: ObjectKind::Task,
            query: "web.9".into()
        })
    );
    assert!(s.task("db.1").is_err());
    assert!(s.task("web.1.zzz").is_err());
    assert!(s.task("").is_err());
    assert!(
        s.task("k2").is_err(),
        "two characters are too few for a prefix"
    );
}

#[test]
fn global_tasks_are_found_by_service_and_node() {
    let mut s = State::default();
    let mut agent = svc("agent", &[]);
    agent.spec.mode = ServiceMode::Global;
    s.services.insert(agent.id.clone(), agent.clone());
    s.nodes.insert(
        "node1".into(),
        Node {
            id: "node1".into(),
            hostname: "worker1".into(),
            ..Default::default()
        },
    );
    let t = task(
        "g7h8j9k0l1m2n3p4q5r6s7t8u",
        &agent,
        0,
        TaskState::Running,
        1,
    );
    s.tasks.insert(t.id.clone(), t.clone());
    assert_eq!(s.task("agent.worker1").map(|t| &t.id), Ok(&t.id));
    assert_eq!(s.task("agent.node1").map(|t| &t.id), Ok(&t.id));
    assert_eq!(s.task(&t.name()).map(|t| &t.id), Ok(&t.id));
    assert_eq!(s.task("agent.node1.g7h8j9").map(|t| &t.id), Ok(&t.id));
}

#[test]
fn services_networks_and_nodes_resolve_one_way_and_never_guess() {
    let mut s = State::default();
    for (id, name) in [("abc111", "web"), ("abc222", "api"), ("xyz333", "abc")] {
        let mut x = svc(name, &[]);
        x.id = id.into();
        s.services.insert(x.id.clone(), x);
    }
    let id = |r: Result<&Service, LookupError>| r.map(|x| x.id.clone());
    assert_eq!(id(s.service("abc111")), Ok("abc111".into()), "by id");
    assert_eq!(id(s.service("web")), Ok("abc111".into()), "by name");
    assert_eq!(
        id(s.service("abc")),
        Ok("xyz333".into()),
        "a name beats an id prefix"
    );
    assert_eq!(id(s.service("xyz")), Ok("xyz333".into()), "unique prefix");
    assert_eq!(s.service("abc1").map(|x| x.id.clone()), Ok("abc111".into()));
    s.services.remove("xyz333");
    match s.service("abc") {
        Err(LookupError::Ambiguous { candidates, .. }) => {
            assert_eq!(candidates, vec!["api".to_string(), "web".to_string()])
        }
        r => panic!("an ambiguous prefix must not pick one: {r:?}"),
    }
    assert_eq!(
        s.service("ab").unwrap_err().to_string(),
        "service ab not found",
        "too short for a prefix"
    );
    assert_eq!(
        s.network("nope").unwrap_err(),
        LookupError::NotFound {
            kind: ObjectKind::Network,
            query: "nope".into()
        }
    );

    // Two nodes may share a hostname: then the hostname names neither.
    for id in ["node-a", "node-b"] {
        s.nodes.insert(
            id.into(),
            Node {
                id: id.into(),
                hostname: "worker1".into(),
                ..Default::default()
            },
        );
    }
    assert_eq!(
        s.node("worker1").unwrap_err().to_string(),
        "node worker1 is ambiguous: it matches node-a, node-b; use more of the id"
    );
    assert_eq!(s.node("node-b").map(|n| n.id.as_str()), Ok("node-b"));
}

#[test]
fn stale_single_object_writes_are_refused_as_conflicts() {
    let mut s = State::default();
    s.apply(1, &Command::InitCluster(cluster()));
    let mut stale = s.cluster.clone().unwrap();
    stale.version = 0;
    assert_eq!(
        s.apply(2, &Command::PutCluster(stale)).refusal,
        Some(Refusal::Conflict(Versioned::Cluster))
    );
    let n = Node {
        id: "n1".into(),
        ..Default::default()
    };
    assert!(s.apply(3, &Command::PutNode(n.clone())).refusal.is_none());
    assert_eq!(
        s.apply(4, &Command::PutNode(n)).refusal,
        Some(Refusal::Conflict(Versioned::Node { id: "n1".into() }))
    );
    let mut web = svc("web", &[]);
    s.apply(5, &Command::CreateService(web.clone()));
    web.version = 1;
    assert_eq!(
        s.apply(6, &Command::UpdateService(web)).refusal,
        Some(Refusal::Conflict(Versioned::Service { name: "web".into() }))
    );
}

fn secret(name: &str) -> SecretObject {
    SecretObject {
        id: format!("sec-{name}").into(),
        name: name.into(),
        data: Opaque(b"pw".to_vec()),
        ..Default::default()
    }
}

#[test]
fn secrets_are_created_once_by_name_and_not_removed_while_used() {
    let mut s = State::default();
    assert!(s
        .apply(1, &Command::CreateSecret(secret("db")))
        .refusal
        .is_none());
    assert_eq!(s.secrets["sec-db"].version, 1);
    let dup = s.apply(
        2,
        &Command::CreateSecret(SecretObject {
            id: "other".into(),
            ..secret("db")
        }),
    );
    assert_eq!(
        dup.refusal.unwrap().to_string(),
        "secret with name \"db\" already exists"
    );
    let mut web = svc("web", &[]);
    web.spec.secrets.push(SecretReference {
        id: "sec-db".into(),
        name: "db".into(),
        target: "db".into(),
        mode: 0o444,
        ..Default::default()
    });
    assert!(s
        .apply(3, &Command::CreateService(web.clone()))
        .refusal
        .is_none());
    let used = s.apply(
        4,
        &Command::RemoveSecret {
            id: "sec-db".into(),
        },
    );
    assert_eq!(
        used.refusal.unwrap().to_string(),
        "secret 'db' is in use by the following service: web"
    );
    let mut api = svc("api", &[]);
    api.spec.secrets = web.spec.secrets.clone();
    assert!(s.apply(5, &Command::CreateService(api)).refusal.is_none());
    let used = s.apply(
        6,
        &Command::RemoveSecret {
            id: "sec-db".into(),
        },
    );
    assert_eq!(
        used.refusal.unwrap().to_string(),
        "secret 'db' is in use by the following services: api, web"
    );
    let mut ghost = svc("ghost", &[]);
    ghost.spec.secrets.push(SecretReference {
        id: "nope".into(),
        name: "nope".into(),
        ..Default::default()
    });
    assert_eq!(
        s.apply(7, &Command::CreateService(ghost))
            .refusal
            .unwrap()
            .to_string(),
        "secret nope not found"
    );
    for (i, id) in ["s-web", "s-api"].into_iter().enumerate() {
        s.apply(8 + i as u64, &Command::RemoveService { id: id.into() });
    }
    assert!(s
        .apply(
            10,
            &Command::RemoveSecret {
                id: "sec-db".into()
            }
        )
        .refusal
        .is_none());
    assert!(s.secrets.is_empty());
}

#[test]
fn configs_refuse_duplicates_and_removal_in_use() {
    let mut s = State::default();
    let cfg = ConfigObject {
        id: "cfg-1".into(),
        name: "nginx.conf".into(),
        data: Opaque(b"x".to_vec()),
        ..Default::default()
    };
    assert!(s
        .apply(1, &Command::CreateConfig(cfg.clone()))
        .refusal
        .is_none());
    let dup = ConfigObject {
        id: "cfg-2".into(),
        ..cfg.clone()
    };
    assert_eq!(
        s.apply(2, &Command::CreateConfig(dup))
            .refusal
            .unwrap()
            .to_string(),
        "config with name \"nginx.conf\" already exists"
    );
    let mut web = svc("web", &[]);
    web.spec.configs.push(ConfigReference {
        id: "cfg-1".into(),
        name: "nginx.conf".into(),
        target: "/etc/nginx.conf".into(),
        ..Default::default()
    });
    assert!(s.apply(3, &Command::CreateService(web)).refusal.is_none());
    assert_eq!(
        s.apply(4, &Command::RemoveConfig { id: "cfg-1".into() })
            .refusal
            .unwrap()
            .to_string(),
        "config 'nginx.conf' is in use by the following service: web"
    );
}

#[test]
fn snapshots_without_secrets_still_load() {
    let mut s = State::default();
    s.apply(1, &Command::CreateSecret(secret("db")));
    let mut v = serde_json::to_value(&s).unwrap();
    let obj = v.as_object_mut().unwrap();
    obj.remove("secrets");
    obj.remove("configs");
    let old: State = serde_json::from_value(v).unwrap();
    assert!(old.secrets.is_empty() && old.configs.is_empty());
}

#[test]
fn a_batch_reports_each_commands_own_outcome() {
    let mut s = State::default();
    s.apply(1, &Command::InitCluster(cluster()));
    // Two clients' writes in one entry (`raft::batch`): the second is refused on its own.
    let r = s.apply(
        2,
        &Command::Batch(vec![
            Command::CreateService(svc("web", &[])),
            Command::CreateService(svc("web", &[])),
            Command::CreateService(svc("api", &[])),
        ]),
    );
    assert_eq!(r.parts.len(), 3, "{r:?}");
    assert!(r.parts[0].refusal.is_none() && r.parts[0].id == "s-web");
    assert!(
        matches!(r.parts[1].refusal, Some(Refusal::IdTaken { .. })),
        "{r:?}"
    );
    assert!(r.parts[2].refusal.is_none() && r.parts[2].id == "s-api");
    assert_eq!(
        r.refusal, r.parts[1].refusal,
        "the first refusal, as before"
    );
    assert!(s.services.contains_key("s-api"));
}
