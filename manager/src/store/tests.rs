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
        id: format!("n-{name}"),
        name: name.into(),
        subnet: subnet.into(),
        ..Default::default()
    }
}

fn svc(name: &str, ports: &[&str]) -> Service {
    Service {
        id: format!("s-{name}"),
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
    assert!(s.apply(1, &Command::InitCluster(cluster())).error.is_none());
    assert!(s
        .apply(2, &Command::CreateNetwork(net("ingress", "")))
        .error
        .is_none());
    assert!(s
        .apply(3, &Command::CreateNetwork(net("lp_net", "")))
        .error
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
    assert!(dup.error.unwrap().contains("already exists"));
    let overlap = s.apply(5, &Command::CreateNetwork(net("other", "10.0.1.0/25")));
    assert!(overlap.error.unwrap().contains("overlaps"));
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
    assert!(s.apply(3, &Command::CreateService(web)).error.is_none());
    assert_eq!(s.services["s-web"].ports[0].published, 30000);
    let r = s.apply(4, &Command::CreateService(svc("web", &[])));
    assert!(r.error.unwrap().contains("already exists"));
    let r = s.apply(5, &Command::CreateService(svc("api", &["30000:80"])));
    assert!(r.error.unwrap().contains("\"web\""));
    let r = s.apply(
        6,
        &Command::RemoveNetwork {
            id: "n-lp_net".into(),
        },
    );
    assert!(r.error.unwrap().contains("in use by service(s) web"));
    assert!(s
        .apply(7, &Command::RemoveService { id: "s-web".into() })
        .error
        .is_none());
    assert!(s
        .apply(
            8,
            &Command::RemoveNetwork {
                id: "n-lp_net".into()
            }
        )
        .error
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
    assert_eq!(s.apply(1, &Command::PutTasks(vec![t.clone()])).conflicts, 0);
    assert_eq!(
        s.apply(2, &Command::PutTasks(vec![t.clone()])).conflicts,
        1,
        "stale version"
    );
    assert_eq!(s.node_tasks("n1").count(), 1);
    let running = TaskStatus {
        state: TaskState::Running,
        ..Default::default()
    };
    s.apply(3, &Command::TaskStatuses(vec![("t1".into(), running)]));
    let starting = TaskStatus {
        state: TaskState::Starting,
        ..Default::default()
    };
    s.apply(4, &Command::TaskStatuses(vec![("t1".into(), starting)]));
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
