use super::*;

fn lb(net: &str, backends: &[(&str, &str)]) -> pb::LbTable {
    pb::LbTable {
        network_id: net.into(),
        lb_addr: "10.0.1.250/24".into(),
        services: vec![pb::LbService {
            service_id: "s1".into(),
            name: "web".into(),
            vip: "10.0.1.2/24".into(),
            fwmark: 258,
            ports: vec![],
            backends: backends
                .iter()
                .map(|(t, ip)| pb::LbBackend {
                    task_id: (*t).into(),
                    name: format!("web.1.{t}"),
                    ip: (*ip).into(),
                })
                .collect(),
        }],
        ..Default::default()
    }
}

fn peer(ip: &str, node: &str) -> pb::PeerEntry {
    pb::PeerEntry {
        ip: ip.into(),
        node_ip: node.into(),
    }
}

fn first() -> pb::Assignments {
    pb::Assignments {
        full: true,
        tables: Some(pb::TableUpdates {
            reset: true,
            lb: vec![pb::LbUpdate {
                network_id: "net1".into(),
                to_version: 5,
                full: Some(lb("net1", &[("a", "10.0.1.10")])),
                ..Default::default()
            }],
            dns: vec![],
            peers: vec![pb::PeersUpdate {
                network_id: "net1".into(),
                to_version: 5,
                full: true,
                put: vec![peer("10.0.1.10", "192.0.2.2")],
                ..Default::default()
            }],
        }),
        ..Default::default()
    }
}

/// A session's first message: every kind whole, in the form the worker takes.
#[test]
fn the_first_message_sets_every_kind() {
    let mut held = HeldTables::default();
    let mut a = first();
    held.apply(&mut a).unwrap();
    assert!(a.lb_full && a.dns_full && a.peers_full);
    assert!(a.tables.is_none());
    assert_eq!(a.lb, vec![lb("net1", &[("a", "10.0.1.10")])]);
    assert!(a.dns.is_empty());
    assert_eq!(a.peers.len(), 1);
    assert_eq!(held.versions("net1"), (Some(5), None, Some(5)));
}

/// A delta gives the worker the same tables as the whole form would; a delta whose base is not
/// held is refused and changes nothing.
#[test]
fn deltas_apply_onto_the_version_held_only() {
    let mut held = HeldTables::default();
    held.apply(&mut first()).unwrap();
    let delta = |from: u64, to: u64| pb::Assignments {
        tables: Some(pb::TableUpdates {
            lb: vec![pb::LbUpdate {
                network_id: "net1".into(),
                from_version: from,
                to_version: to,
                delta: Some(pb::LbDelta {
                    backends: vec![pb::LbBackendsDelta {
                        service_id: "s1".into(),
                        put: vec![pb::LbBackend {
                            task_id: "b".into(),
                            name: "web.1.b".into(),
                            ip: "10.0.1.11".into(),
                        }],
                        removed: vec!["a".into()],
                    }],
                    ..Default::default()
                }),
                ..Default::default()
            }],
            peers: vec![pb::PeersUpdate {
                network_id: "net1".into(),
                from_version: from,
                to_version: to,
                put: vec![peer("10.0.1.11", "192.0.2.3")],
                removed: vec![peer("10.0.1.10", "192.0.2.2")],
                ..Default::default()
            }],
            ..Default::default()
        }),
        ..Default::default()
    };
    let before = held.clone();
    let mut stale = delta(4, 6);
    assert_eq!(
        held.apply(&mut stale),
        Err(Stale {
            kind: "balancer",
            network: "net1".into(),
            from: 4,
            held: Some(5)
        })
    );
    assert_eq!(held, before, "nothing applied");
    assert!(!stale.lb_full);

    let mut a = delta(5, 6);
    held.apply(&mut a).unwrap();
    assert!(
        a.lb_full && a.peers_full && !a.dns_full,
        "only what changed"
    );
    assert_eq!(a.lb, vec![lb("net1", &[("b", "10.0.1.11")])]);
    assert_eq!(
        a.peers,
        vec![pb::OverlayPeer {
            network_id: "net1".into(),
            ip: "10.0.1.11".into(),
            node_ip: "192.0.2.3".into(),
        }]
    );
    assert_eq!(held.versions("net1"), (Some(6), None, Some(6)));

    // A chain in one message, then the network goes.
    let mut chain = delta(6, 7);
    let t = chain.tables.as_mut().unwrap();
    t.lb.push(pb::LbUpdate {
        network_id: "net1".into(),
        from_version: 7,
        to_version: 8,
        delta: Some(pb::LbDelta::default()),
        ..Default::default()
    });
    held.apply(&mut chain).unwrap();
    assert_eq!(held.versions("net1").0, Some(8));
    let mut gone = pb::Assignments {
        tables: Some(pb::TableUpdates {
            lb: vec![pb::LbUpdate {
                network_id: "net1".into(),
                removed: true,
                ..Default::default()
            }],
            peers: vec![pb::PeersUpdate {
                network_id: "net1".into(),
                gone: true,
                ..Default::default()
            }],
            ..Default::default()
        }),
        ..Default::default()
    };
    held.apply(&mut gone).unwrap();
    assert!(gone.lb_full && gone.lb.is_empty() && gone.peers.is_empty());
    assert_eq!(held.versions("net1"), (None, None, None));
    // A delta onto a table not held.
    assert!(held.apply(&mut delta(8, 9)).is_err());
}

/// A manager that sends tables whole (an older one): the message goes to the worker as it
/// came, and nothing held keeps a version a delta could start from.
#[test]
fn whole_tables_pass_through() {
    let mut held = HeldTables::default();
    held.apply(&mut first()).unwrap();
    let mut a = pb::Assignments {
        lb_full: true,
        lb: vec![lb("net2", &[])],
        ..Default::default()
    };
    let want = a.clone();
    held.apply(&mut a).unwrap();
    assert_eq!(a, want);
    assert_eq!(held.versions("net1").0, None);
    assert_eq!(held.versions("net1").2, Some(5), "peers were not resent");
}
