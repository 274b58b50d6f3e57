use super::*;

fn backend(task: &str, ip: &str) -> pb::LbBackend {
    pb::LbBackend {
        task_id: task.into(),
        name: format!("web.1.{task}"),
        ip: ip.into(),
    }
}

fn service(id: &str, name: &str, backends: Vec<pb::LbBackend>) -> pb::LbService {
    pb::LbService {
        service_id: id.into(),
        name: name.into(),
        vip: "10.0.1.2/24".into(),
        fwmark: 258,
        ports: vec![],
        backends,
    }
}

fn lb(services: Vec<pb::LbService>) -> pb::LbTable {
    pb::LbTable {
        network_id: "net1".into(),
        name: "front".into(),
        subnet: "10.0.1.0/24".into(),
        services,
        ..Default::default()
    }
}

/// full(v1) + delta(v1→v2) == full(v2), and the delta is what changed only.
fn round_trip_lb(a: &pb::LbTable, b: &pb::LbTable) -> pb::LbDelta {
    let d = lb_diff(a, b).expect("a delta");
    let mut got = a.clone();
    lb_apply(&mut got, &d);
    assert_eq!(&got, b);
    d
}

#[test]
fn lb_round_trips_adds_removals_and_replacements() {
    // Sorted by name, as the managers send them.
    let v1 = lb(vec![
        service("s2", "api", vec![backend("c", "10.0.1.12")]),
        service(
            "s1",
            "web",
            vec![backend("a", "10.0.1.10"), backend("b", "10.0.1.11")],
        ),
    ]);
    // A backend added, one removed, one whose address changed.
    let v2 = lb(vec![
        service("s2", "api", vec![backend("c", "10.0.1.12")]),
        service(
            "s1",
            "web",
            vec![backend("b", "10.0.1.99"), backend("d", "10.0.1.13")],
        ),
    ]);
    let d = round_trip_lb(&v1, &v2);
    assert!(d.put.is_empty() && d.removed.is_empty());
    assert_eq!(d.backends.len(), 1, "s2 did not change");
    let bd = &d.backends[0];
    let put: Vec<(&str, &str)> = bd
        .put
        .iter()
        .map(|b| (b.task_id.as_str(), b.ip.as_str()))
        .collect();
    assert_eq!(put, vec![("b", "10.0.1.99"), ("d", "10.0.1.13")]);
    assert_eq!(bd.removed, vec!["a".to_string()]);
    // A service goes, another comes (sorted in by name), one's VIP changes: whole services.
    let mut s1 = service("s1", "web", vec![backend("b", "10.0.1.99")]);
    s1.vip = "10.0.1.3/24".into();
    let v3 = lb(vec![service("s3", "aaa", vec![]), s1]);
    let d = round_trip_lb(&v2, &v3);
    assert_eq!(d.removed, vec!["s2".to_string()]);
    assert_eq!(d.put.len(), 2);
    // Nothing changed: an empty delta.
    assert!(lb_delta_is_empty(&round_trip_lb(&v3, &v3)));
    // Everything goes.
    round_trip_lb(&v3, &lb(vec![]));
    round_trip_lb(&lb(vec![]), &v3);
}

#[test]
fn lb_header_changes_and_repeated_keys_are_no_delta() {
    let v1 = lb(vec![service("s1", "web", vec![backend("a", "10.0.1.10")])]);
    let mut v2 = v1.clone();
    v2.lb_addr = "10.0.1.250/24".into();
    assert!(lb_diff(&v1, &v2).is_none(), "the node's own address");
    let mut v3 = v1.clone();
    v3.vni = 4097;
    assert!(lb_diff(&v1, &v3).is_none());
    let twice = lb(vec![service(
        "s1",
        "web",
        vec![backend("a", "10.0.1.10"), backend("a", "10.0.1.11")],
    )]);
    assert!(lb_diff(&v1, &twice).is_none());
}

fn dns(services: Vec<pb::DnsService>) -> pb::DnsNetwork {
    pb::DnsNetwork {
        network_id: "net1".into(),
        name: "front".into(),
        services,
    }
}

fn dsvc(name: &str, vip: &str, tasks: &[(&str, &str)]) -> pb::DnsService {
    pb::DnsService {
        name: name.into(),
        vip: vip.into(),
        aliases: vec![],
        tasks: tasks
            .iter()
            .map(|(n, ip)| pb::DnsTask {
                name: (*n).into(),
                ip: (*ip).into(),
            })
            .collect(),
    }
}

fn round_trip_dns(a: &pb::DnsNetwork, b: &pb::DnsNetwork) -> pb::DnsDelta {
    let d = dns_diff(a, b).expect("a delta");
    let mut got = a.clone();
    dns_apply(&mut got, &d);
    assert_eq!(&got, b);
    d
}

#[test]
fn dns_round_trips() {
    let v1 = dns(vec![
        dsvc("api", "10.0.1.3", &[("api.1.x", "10.0.1.20")]),
        dsvc(
            "web",
            "10.0.1.2",
            &[("web.1.a", "10.0.1.10"), ("web.2.b", "10.0.1.11")],
        ),
    ]);
    let v2 = dns(vec![
        dsvc("api", "10.0.1.3", &[("api.1.x", "10.0.1.20")]),
        dsvc(
            "web",
            "10.0.1.2",
            &[("web.2.b", "10.0.1.12"), ("web.3.c", "10.0.1.13")],
        ),
    ]);
    let d = round_trip_dns(&v1, &v2);
    assert_eq!(d.tasks.len(), 1);
    assert_eq!(d.tasks[0].removed, vec!["web.1.a".to_string()]);
    assert_eq!(
        d.tasks[0].put.len(),
        2,
        "the moved address and the new task"
    );
    let mut v3 = v2.clone();
    v3.services[1].aliases = vec!["www".into()];
    v3.services.remove(0);
    v3.services.push(dsvc("zed", "", &[]));
    let d = round_trip_dns(&v2, &v3);
    assert_eq!(d.removed, vec!["api".to_string()]);
    assert_eq!(d.put.len(), 2);
    round_trip_dns(&v3, &dns(vec![]));
    let mut renamed = v3.clone();
    renamed.name = "back".into();
    assert!(dns_diff(&v3, &renamed).is_none());
}

#[test]
fn sorted_diff_and_peers() {
    let (added, removed) = sorted_diff(&[1, 3, 5, 7], &[2, 3, 7, 8]);
    assert_eq!(added, vec![2, 8]);
    assert_eq!(removed, vec![1, 5]);
    assert_eq!(sorted_diff::<u8>(&[], &[]), (vec![], vec![]));
    let e = |ip: &str, node: &str| pb::PeerEntry {
        ip: ip.into(),
        node_ip: node.into(),
    };
    let mut held: PeerSet = [("10.0.1.10", "192.0.2.1"), ("10.0.1.11", "192.0.2.2")]
        .iter()
        .map(|(a, b)| (a.to_string(), b.to_string()))
        .collect();
    // An address that moves to another node: removed, then put.
    peers_apply(
        &mut held,
        &[e("10.0.1.10", "192.0.2.3")],
        &[e("10.0.1.10", "192.0.2.1")],
    );
    let want: PeerSet = [("10.0.1.10", "192.0.2.3"), ("10.0.1.11", "192.0.2.2")]
        .iter()
        .map(|(a, b)| (a.to_string(), b.to_string()))
        .collect();
    assert_eq!(held, want);
}
