//! `node ps` against the fake: the node filter sent (`self` by default), one table for several.

use super::*;

/// A task on manager1 (the fake places every task of its services on worker1), running
/// since an unknown time so the table is exact.
fn manager_task() -> shoal_proto::pb::Task {
    use shoal_proto::pb;
    let id = "x".repeat(25);
    pb::Task {
        name: format!("db.1.{id}"),
        id,
        service_id: "s-db".into(),
        service_name: "db".into(),
        slot: 1,
        node_id: "m".repeat(25),
        spec: Some(pb::ServiceSpec {
            name: "db".into(),
            image: "redis".into(),
            ports: vec![pb::PortConfig {
                protocol: pb::Protocol::Tcp as i32,
                target: 6379,
                published: 6379,
                mode: pb::PublishMode::Host as i32,
                ..Default::default()
            }],
            ..Default::default()
        }),
        desired_state: pb::TaskState::Running as i32,
        status: Some(pb::TaskStatus {
            state: pb::TaskState::Running as i32,
            ..Default::default()
        }),
        ..Default::default()
    }
}

#[tokio::test]
async fn node_ps_defaults_to_self_and_takes_names() {
    let fake = Fake::with_nodes();
    let host = fake.clone().serve_tcp().await;
    ok(
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
            "-d",
            "whoami",
        ],
    )
    .await;
    fake.lock().tasks.push(manager_task());
    let sent_nodes = |fake: &Fake| -> Vec<(String, bool)> {
        let mut s = fake.lock();
        let v = s
            .task_filters
            .iter()
            .map(|f| (f.node.clone(), f.all))
            .collect();
        s.task_filters.clear();
        v
    };

    // No NODE: the node swarmctl talks to, named `self` for the manager to resolve.
    let out = ok(&host, &["node", "ps"]).await;
    assert_eq!(
        out,
        "ID             NAME      IMAGE     NODE       DESIRED STATE   CURRENT STATE   ERROR     PORTS\n\
         xxxxxxxxxxxx   db.1      redis     manager1   Running         Running                   *:6379->6379/tcp\n"
    );
    assert_eq!(sent_nodes(&fake), [("self".to_string(), true)]);

    // Several nodes: one request each, one table.
    let out = ok(&host, &["node", "ps", "worker1", "manager1"]).await;
    assert_eq!(
        sent_nodes(&fake),
        [
            ("worker1".to_string(), true),
            ("manager1".to_string(), true)
        ]
    );
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), 4, "{out}");
    assert!(lines[0].starts_with("ID "), "{out}");
    assert!(
        lines[1].contains(" db.1 ") && lines[1].contains(" manager1 "),
        "{out}"
    );
    assert!(
        lines[2].contains(" web.1 ") && lines[2].contains(" worker1 "),
        "{out}"
    );
    assert!(
        lines[3].contains(" web.2 ") && lines[3].contains(" worker1 "),
        "{out}"
    );

    // The flags of `service ps`.
    let ids = ok(&host, &["node", "ps", "-q", "worker1"]).await;
    assert_eq!(ids.lines().count(), 2, "{ids}");
    assert!(
        ids.lines().all(|l| l.len() == 12 && l.starts_with('t')),
        "{ids}"
    );
    let out = ok(&host, &["node", "ps", "-f", "name=web.2", "worker1"]).await;
    assert_eq!(out.lines().count(), 2, "{out}");
    assert!(out.contains(" web.2 "), "{out}");
    let out = ok(
        &host,
        &[
            "node",
            "ps",
            "-f",
            "desired-state=shutdown",
            "worker1",
            "manager1",
        ],
    )
    .await;
    assert_eq!(out.lines().count(), 1, "only the header: {out}");
    let out = ok(&host, &["node", "ps", "--format", "json", "worker1"]).await;
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v.as_array().map(Vec::len), Some(2));

    // An unknown node: its error only; with a known one, the table of that one.
    let (r, out) = run_cmd(&host, &["node", "ps", "nosuch"]).await;
    assert!(r.unwrap_err().downcast_ref::<AlreadyReported>().is_some());
    assert_eq!(out, "");
    let (r, out) = run_cmd(&host, &["node", "ps", "nosuch", "manager1"]).await;
    assert!(r.is_err());
    assert!(out.contains(" db.1 ") && out.lines().count() == 2, "{out}");
}
