//! The Engine API without a cluster: routing, filters, Docker's JSON shapes (expected JSON
//! written by hand from moby's `api/types`), and whole requests against the scripted fake
//! Control server, over a real socket too.

use super::api::{Api, Body, LocalNode, Reply};
use super::filters::Filters;
use super::route::{query_bool, query_get, route, split_version, Route};
use super::types;
use super::ApiError;
use crate::ctl::fake::Fake;
use hyper::Method;
use serde_json::{json, Value};
use shoal_proto::pb;
use std::collections::HashMap;
use std::path::Path;

// 2026-12-06T14:00:00.123Z
const T0: i64 = 1_796_565_600_123;
const T0S: &str = "2026-12-06T14:00:00.123000000Z";

#[test]
fn times_are_rfc3339_with_nanoseconds() {
    assert_eq!(types::ts(T0), T0S);
    assert_eq!(types::ns(1500), 1_500_000_000);
}

#[test]
fn versioned_and_unversioned_paths_route_alike() {
    for p in ["/v1.41/nodes", "/nodes", "/v1.24/nodes", "/v1.12/nodes"] {
        assert_eq!(route(&Method::GET, p), Ok(Route::Nodes), "{p}");
    }
    assert_eq!(
        route(&Method::GET, "/v1.41/services/web"),
        Ok(Route::Service("web".into()))
    );
    assert_eq!(
        route(&Method::DELETE, "/services/a%20b"),
        Ok(Route::ServiceDelete("a b".into()))
    );
    assert_eq!(route(&Method::HEAD, "/_ping"), Ok(Route::Ping));
    assert_eq!(route(&Method::GET, "/v1.41/_ping"), Ok(Route::Ping));
    assert_eq!(route(&Method::GET, "/info"), Ok(Route::Info));
    assert_eq!(
        route(&Method::GET, "/tasks/abc"),
        Ok(Route::Task("abc".into()))
    );
    assert_eq!(
        route(
            &Method::GET,
            "/v1.41/distribution/docker.io/library/nginx:alpine/json"
        ),
        Ok(Route::Distribution("docker.io/library/nginx:alpine".into()))
    );
    assert_eq!(
        route(&Method::GET, "/distribution/json")
            .unwrap_err()
            .status,
        404
    );
    assert_eq!(split_version("/v1.41/info"), Ok((Some("1.41"), "/info")));
    assert_eq!(split_version("/version"), Ok((None, "/version")));
    let nf = route(&Method::GET, "/volumes").unwrap_err();
    assert_eq!(nf, ApiError::not_found("page not found"));
    assert_eq!(route(&Method::POST, "/nodes").unwrap_err().status, 404);
    let new = route(&Method::GET, "/v1.50/nodes").unwrap_err();
    assert_eq!(
        new,
        ApiError::bad_request(
            "client version 1.50 is too new. Maximum supported API version is 1.41"
        )
    );
    let old = route(&Method::GET, "/v1.11/nodes").unwrap_err();
    assert_eq!(old.status, 400);
    assert!(
        old.message
            .starts_with("client version 1.11 is too old. Minimum supported API version is 1.12"),
        "{old}"
    );
}

#[test]
fn queries_decode() {
    let q = "status=true&filters=%7B%22name%22%3A%7B%22web%22%3Atrue%7D%7D";
    assert!(query_bool(q, "status"));
    assert!(!query_bool("status=0", "status"));
    assert!(!query_bool("", "status"));
    assert_eq!(
        query_get(q, "filters").as_deref(),
        Some(r#"{"name":{"web":true}}"#)
    );
    assert_eq!(query_get("a=x+y%2", "a").as_deref(), Some("x y%2"));
}

#[test]
fn filters_parse_both_forms_and_refuse_unknown_names() {
    let f = Filters::parse(Some(r#"{"name":{"web":true,"db":false}}"#), &["name"]).unwrap();
    assert_eq!(f.get("name"), ["web"]);
    let f = Filters::parse(Some(r#"{"name":["web","api"]}"#), &["name"]).unwrap();
    assert_eq!(f.get("name"), ["api", "web"]);
    assert!(f.prefix("name", "webapp") && !f.prefix("name", "db"));
    assert_eq!(Filters::parse(None, &[]).unwrap(), Filters::default());
    assert_eq!(Filters::parse(Some(""), &[]).unwrap(), Filters::default());
    let e = Filters::parse(Some(r#"{"colour":{"red":true}}"#), &["name"]).unwrap_err();
    assert_eq!(e, ApiError::bad_request("Invalid filter 'colour'"));
    assert_eq!(
        Filters::parse(Some("{"), &["name"]).unwrap_err().status,
        400
    );
    assert_eq!(
        Filters::parse(Some(r#"{"name":"web"}"#), &["name"])
            .unwrap_err()
            .status,
        400
    );
    let f = Filters::parse(
        Some(r#"{"label":{"tier":true,"env=prod":true}}"#),
        &["label"],
    )
    .unwrap();
    let mut l: HashMap<String, String> = HashMap::new();
    l.insert("tier".into(), "web".into());
    assert!(!f.labels("label", &l), "every label filter must match");
    l.insert("env".into(), "prod".into());
    assert!(f.labels("label", &l));
    l.insert("env".into(), "dev".into());
    assert!(!f.labels("label", &l));
}

fn manager_node() -> pb::Node {
    pb::Node {
        id: "n1".repeat(12) + "x",
        hostname: "manager1".into(),
        role: pb::NodeRole::Manager as i32,
        availability: pb::Availability::Active as i32,
        state: pb::NodeState::Ready as i32,
        addr: "198.19.233.1:2377".into(),
        manager_status: "Leader".into(),
        labels: [("zone".to_string(), "a".to_string())].into(),
        created_ms: T0,
        updated_ms: T0,
        version: 7,
        ..Default::default()
    }
}

#[test]
fn a_node_in_dockers_shape() {
    let v = types::node::node(&manager_node());
    let expected = json!({
        "ID": "n1n1n1n1n1n1n1n1n1n1n1n1x",
        "Version": { "Index": 7 },
        "CreatedAt": T0S,
        "UpdatedAt": T0S,
        "Spec": { "Labels": { "zone": "a" }, "Role": "manager", "Availability": "active" },
        "Description": {
            "Hostname": "manager1",
            "Platform": { "Architecture": std::env::consts::ARCH, "OS": "linux" },
            "Resources": {},
            "Engine": {
                "EngineVersion": super::ENGINE_VERSION,
                "Plugins": [
                    { "Type": "Network", "Name": "bridge" },
                    { "Type": "Network", "Name": "host" },
                    { "Type": "Network", "Name": "null" },
                    { "Type": "Network", "Name": "overlay" },
                ],
            },
            "TLSInfo": {},
        },
        "Status": { "State": "ready", "Addr": "198.19.233.1" },
        "ManagerStatus": { "Leader": true, "Reachability": "reachable", "Addr": "198.19.233.1:2377" },
    });
    assert_eq!(v, expected);
    let w = types::node::node(&pb::Node {
        role: pb::NodeRole::Worker as i32,
        availability: pb::Availability::Drain as i32,
        state: pb::NodeState::Down as i32,
        state_message: "heartbeat failure".into(),
        manager_status: String::new(),
        ..manager_node()
    });
    assert!(w.get("ManagerStatus").is_none(), "{w}");
    assert_eq!(w["Spec"]["Availability"], "drain");
    assert_eq!(
        w["Status"],
        json!({ "State": "down", "Addr": "198.19.233.1", "Message": "heartbeat failure" })
    );
}

pub(super) fn web_service() -> pb::Service {
    pb::Service {
        id: "s".repeat(25),
        spec: Some(pb::ServiceSpec {
            name: "web".into(),
            replicas: 3,
            image: "nginx:alpine".into(),
            image_digest: format!("sha256:{}", "a".repeat(64)),
            args: vec!["-g".into(), "daemon off;".into()],
            env: vec!["A=1".into()],
            ports: vec![pb::PortConfig {
                protocol: pb::Protocol::Tcp as i32,
                target: 80,
                published: 8080,
                mode: pb::PublishMode::Ingress as i32,
                ..Default::default()
            }],
            networks: vec![pb::NetworkAttachmentSpec {
                target: "lp_net".into(),
                aliases: vec![],
            }],
            labels: [("tier".to_string(), "front".to_string())].into(),
            ..Default::default()
        }),
        ports: vec![pb::PortConfig {
            protocol: pb::Protocol::Tcp as i32,
            target: 80,
            published: 8080,
            mode: pb::PublishMode::Ingress as i32,
            ..Default::default()
        }],
        vips: vec![pb::VirtualIp {
            network_id: "i".repeat(25),
            addr: "10.0.0.5/24".into(),
        }],
        created_ms: T0,
        updated_ms: T0,
        version: 12,
        running: 2,
        desired: 3,
        ..Default::default()
    }
}

#[test]
fn a_service_in_dockers_shape() {
    let v = types::service::service(&web_service(), true);
    let port = json!({ "Protocol": "tcp", "TargetPort": 80, "PublishedPort": 8080, "PublishMode": "ingress" });
    let defaults = json!({
        "Parallelism": 1, "Delay": 0, "FailureAction": "pause", "Monitor": 5_000_000_000u64,
        "MaxFailureRatio": 0.0, "Order": "stop-first",
    });
    let expected = json!({
        "ID": "s".repeat(25),
        "Version": { "Index": 12 },
        "CreatedAt": T0S,
        "UpdatedAt": T0S,
        "Spec": {
            "Name": "web",
            "Labels": { "tier": "front" },
            "TaskTemplate": {
                "ContainerSpec": {
                    "Image": format!("nginx:alpine@sha256:{}", "a".repeat(64)),
                    "Args": ["-g", "daemon off;"],
                    "Env": ["A=1"],
                    "Init": false,
                    "DNSConfig": {},
                    "Isolation": "default",
                },
                "Resources": { "Limits": {}, "Reservations": {} },
                "RestartPolicy": { "Condition": "any", "MaxAttempts": 0 },
                "Placement": {},
                "Networks": [{ "Target": "lp_net" }],
                "ForceUpdate": 0,
                "Runtime": "container",
            },
            "Mode": { "Replicated": { "Replicas": 3 } },
            "UpdateConfig": defaults,
            "RollbackConfig": defaults,
            "EndpointSpec": { "Mode": "vip", "Ports": [port] },
        },
        "Endpoint": {
            "Spec": { "Mode": "vip", "Ports": [port] },
            "Ports": [port],
            "VirtualIPs": [{ "NetworkID": "i".repeat(25), "Addr": "10.0.0.5/24" }],
        },
        "ServiceStatus": { "RunningTasks": 2, "DesiredTasks": 3, "CompletedTasks": 0 },
    });
    assert_eq!(v, expected);
    let plain = types::service::service(&web_service(), false);
    assert!(plain.get("ServiceStatus").is_none());
    let mut g = web_service();
    let sp = g.spec.as_mut().unwrap();
    sp.global = true;
    sp.restart = Some(pb::RestartPolicy {
        condition: pb::RestartCondition::OnFailure as i32,
        delay_ms: 5000,
        max_attempts: 3,
    });
    sp.limit_memory_bytes = 64 << 20;
    sp.limit_cpus = 0.5;
    sp.runtime = pb::Runtime::Process as i32;
    let v = types::service::service(&g, false);
    assert_eq!(v["Spec"]["Mode"], json!({ "Global": {} }));
    assert_eq!(
        v["Spec"]["TaskTemplate"]["RestartPolicy"],
        json!({ "Condition": "on-failure", "Delay": 5_000_000_000u64, "MaxAttempts": 3 })
    );
    assert_eq!(
        v["Spec"]["TaskTemplate"]["Resources"]["Limits"],
        json!({ "NanoCPUs": 500_000_000, "MemoryBytes": 67_108_864 })
    );
    assert!(
        v["Spec"]["TaskTemplate"].get("Runtime").is_none(),
        "the CLI refuses to send back a runtime but container"
    );
}

pub(super) fn web_task() -> pb::Task {
    pb::Task {
        id: "t".repeat(25),
        service_id: "s".repeat(25),
        service_name: "web".into(),
        slot: 1,
        node_id: "n1".repeat(12) + "x",
        spec: web_service().spec,
        desired_state: pb::TaskState::Running as i32,
        status: Some(pb::TaskStatus {
            state: pb::TaskState::Running as i32,
            message: "started".into(),
            timestamp_ms: T0,
            pid: 42,
            ..Default::default()
        }),
        networks: vec![pb::NetworkAttachment {
            network_id: "o".repeat(25),
            addresses: vec!["10.0.1.3/24".into()],
            network_name: "lp_net".into(),
            driver: pb::NetworkDriver::Overlay as i32,
            subnet: "10.0.1.0/24".into(),
            gateway: "10.0.1.1".into(),
            vni: 4097,
            ..Default::default()
        }],
        created_ms: T0,
        version: 20,
        name: format!("web.1.{}", "t".repeat(25)),
        ..Default::default()
    }
}

#[test]
fn a_task_in_dockers_shape() {
    let v = types::task::task(&web_task());
    assert_eq!(v["ID"], "t".repeat(25));
    assert_eq!(v["Version"], json!({ "Index": 20 }));
    assert_eq!(v["ServiceID"], "s".repeat(25));
    assert_eq!(v["NodeID"], "n1".repeat(12) + "x");
    assert_eq!(v["Slot"], 1);
    assert_eq!(v["DesiredState"], "running");
    assert_eq!(
        v["Status"],
        json!({
            "Timestamp": T0S, "State": "running", "Message": "started",
            "ContainerStatus": { "ContainerID": "", "PID": 42, "ExitCode": 0 },
            "PortStatus": {},
        })
    );
    assert_eq!(
        v["Spec"],
        types::service::task_spec(web_service().spec.as_ref().unwrap())
    );
    let att = &v["NetworksAttachments"][0];
    assert_eq!(att["Addresses"], json!(["10.0.1.3/24"]));
    assert_eq!(att["Network"]["ID"], "o".repeat(25));
    assert_eq!(att["Network"]["Spec"]["Name"], "lp_net");
    assert_eq!(
        att["Network"]["Spec"]["DriverConfiguration"]["Name"],
        "overlay"
    );
    assert_eq!(
        att["Network"]["IPAMOptions"]["Configs"],
        json!([{ "Subnet": "10.0.1.0/24", "Gateway": "10.0.1.1" }])
    );
    assert_eq!(
        types::task::state(pb::TaskState::Shutdown as i32),
        "shutdown"
    );
}

fn overlay() -> pb::Network {
    pb::Network {
        id: "o".repeat(25),
        name: "lp_net".into(),
        driver: pb::NetworkDriver::Overlay as i32,
        subnet: "10.0.1.0/24".into(),
        gateway: "10.0.1.1".into(),
        vni: 4097,
        attachable: true,
        created_ms: T0,
        ..Default::default()
    }
}

#[test]
fn a_network_in_dockers_shape() {
    let expected = json!({
        "Name": "lp_net",
        "Id": "o".repeat(25),
        "Created": T0S,
        "Scope": "swarm",
        "Driver": "overlay",
        "EnableIPv6": false,
        "IPAM": { "Driver": "default", "Options": null, "Config": [{ "Subnet": "10.0.1.0/24", "Gateway": "10.0.1.1" }] },
        "Internal": false,
        "Attachable": true,
        "Ingress": false,
        "ConfigFrom": { "Network": "" },
        "ConfigOnly": false,
        "Containers": null,
        "Options": { "com.docker.network.driver.overlay.vxlanid_list": "4097" },
        "Labels": {},
    });
    assert_eq!(types::network::network(&overlay()), expected);
    let bridge = types::network::network(&pb::Network {
        driver: pb::NetworkDriver::Bridge as i32,
        vni: 0,
        subnet: String::new(),
        ..overlay()
    });
    assert_eq!(bridge["Scope"], "local");
    assert_eq!(bridge["IPAM"]["Config"], json!([]));
    assert_eq!(bridge["Options"], json!({}));
}

#[test]
fn secrets_and_configs_in_dockers_shape() {
    let s = pb::SecretInfo {
        id: "x".repeat(25),
        name: "db_pass".into(),
        digest: "sha256:00".into(),
        size: 4,
        created_ms: T0,
        updated_ms: T0,
        version: 3,
        ..Default::default()
    };
    assert_eq!(
        types::data::secret(&s),
        json!({
            "ID": "x".repeat(25), "Version": { "Index": 3 }, "CreatedAt": T0S, "UpdatedAt": T0S,
            "Spec": { "Name": "db_pass", "Labels": {} },
        })
    );
    let c = pb::ConfigInfo {
        id: "c".repeat(25),
        name: "site".into(),
        created_ms: T0,
        updated_ms: T0,
        version: 4,
        data: b"hello".to_vec(),
        ..Default::default()
    };
    assert_eq!(
        types::data::config(&c)["Spec"],
        json!({ "Name": "site", "Labels": {}, "Data": "aGVsbG8=" })
    );
}

pub(super) fn local(dir: &Path) -> LocalNode {
    LocalNode {
        node_id: "m".repeat(25),
        hostname: "manager1".into(),
        addr: "198.19.233.1:2377".into(),
        managers: vec!["198.19.233.1:2377".into()],
        state_dir: dir.to_path_buf(),
        control_socket: dir.join("swarmd.sock"),
        state: "active".into(),
        manager: false,
    }
}

/// An API over a fake manager (two nodes, `web` with one task, `lp_net`) in `dir`.
pub(super) async fn manager_api(dir: &Path) -> (Api, Fake) {
    let fake = Fake::with_nodes();
    {
        let mut s = fake.lock();
        s.nodes[0].addr = "198.19.233.1:2377".into();
        s.nodes[1].addr = "198.19.233.2:2377".into();
        let mut svc = web_service();
        svc.spec.as_mut().unwrap().replicas = 1;
        s.services.push(svc);
        let mut t = web_task();
        t.node_id = "w".repeat(25);
        s.tasks.push(t);
        s.networks.push(overlay());
    }
    fake.clone().serve_unix(&dir.join("swarmd.sock")).await;
    (Api::new(local(dir)), fake)
}

pub(super) fn json_of(r: &Reply) -> &Value {
    match &r.body {
        Body::Json(v) => v,
        b => panic!("not JSON: {b:?}"),
    }
}

const NAME_WEB: &str = "filters=%7B%22name%22%3A%7B%22web%22%3Atrue%7D%7D";

#[tokio::test]
async fn requests_against_a_manager() {
    let dir = tempfile::tempdir().unwrap();
    let (api, _fake) = manager_api(dir.path()).await;
    let r = api.answer(&Method::GET, "/v1.41/nodes", "").await;
    assert_eq!(r.status, 200);
    let nodes = json_of(&r).as_array().unwrap();
    assert_eq!(nodes.len(), 2);
    assert_eq!(nodes[0]["Description"]["Hostname"], "manager1");
    assert_eq!(nodes[0]["ManagerStatus"]["Leader"], true);
    let r = api
        .answer(
            &Method::GET,
            "/nodes",
            r#"filters={"role":{"worker":true}}"#,
        )
        .await;
    let nodes = json_of(&r).as_array().unwrap();
    assert_eq!(nodes.len(), 1);
    assert_eq!(nodes[0]["Spec"]["Role"], "worker");
    let r = api
        .answer(&Method::GET, "/nodes", r#"filters={"role":{"boss":true}}"#)
        .await;
    assert_eq!(
        r,
        Reply::error(&ApiError::bad_request("Invalid role filter: 'boss'"))
    );
    let r = api
        .answer(&Method::GET, "/nodes", r#"filters={"name":{"work":true}}"#)
        .await;
    assert_eq!(json_of(&r).as_array().unwrap().len(), 1, "name is a prefix");
    let r = api.answer(&Method::GET, "/v1.41/nodes/worker1", "").await;
    assert_eq!(json_of(&r)["ID"], "w".repeat(25));
    let r = api.answer(&Method::GET, "/v1.41/nodes/nosuch", "").await;
    assert_eq!(
        r,
        Reply::error(&ApiError::not_found("node nosuch not found"))
    );

    let r = api
        .answer(&Method::GET, "/v1.41/services", "status=1")
        .await;
    let svcs = json_of(&r).as_array().unwrap();
    assert_eq!(svcs.len(), 1);
    assert_eq!(svcs[0]["ServiceStatus"]["DesiredTasks"], 1);
    let r = api.answer(&Method::GET, "/v1.41/services", NAME_WEB).await;
    assert_eq!(json_of(&r).as_array().unwrap().len(), 1);
    let r = api
        .answer(
            &Method::GET,
            "/services",
            r#"filters={"mode":{"global":true}}"#,
        )
        .await;
    assert_eq!(json_of(&r), &json!([]));
    let r = api
        .answer(
            &Method::GET,
            "/services",
            r#"filters={"mode":{"job":true}}"#,
        )
        .await;
    assert_eq!(r.status, 400);
    let r = api
        .answer(&Method::GET, "/services/web", "insertDefaults=true")
        .await;
    assert_eq!(json_of(&r)["Spec"]["Name"], "web");
    let r = api.answer(&Method::GET, "/services/nosuch", "").await;
    assert_eq!(
        r,
        Reply::error(&ApiError::not_found("service nosuch not found"))
    );

    let q = format!(
        "filters={}",
        r#"{"service":{"web":true},"desired-state":{"running":true}}"#
    );
    let r = api.answer(&Method::GET, "/v1.41/tasks", &q).await;
    let tasks = json_of(&r).as_array().unwrap();
    assert_eq!(tasks.len(), 1, "{tasks:?}");
    assert_eq!(tasks[0]["NodeID"], "w".repeat(25));
    let q = r#"filters={"node":{"manager1":true}}"#;
    let r = api.answer(&Method::GET, "/tasks", q).await;
    assert_eq!(json_of(&r), &json!([]));
    let q = r#"filters={"service":{"nosuch":true}}"#;
    let r = api.answer(&Method::GET, "/tasks", q).await;
    assert_eq!(r.status, 404);
    let q = r#"filters={"desired-state":{"sleeping":true}}"#;
    let r = api.answer(&Method::GET, "/tasks", q).await;
    assert_eq!(
        r,
        Reply::error(&ApiError::bad_request(
            "Invalid desired-state filter: 'sleeping'"
        ))
    );

    let r = api.answer(&Method::GET, "/networks", "").await;
    assert_eq!(json_of(&r)[0]["Name"], "lp_net");
    let r = api
        .answer(
            &Method::GET,
            "/networks",
            r#"filters={"driver":{"bridge":true}}"#,
        )
        .await;
    assert_eq!(json_of(&r), &json!([]));
    let r = api.answer(&Method::GET, "/networks/lp_net", "").await;
    assert_eq!(json_of(&r)["Id"], "o".repeat(25));
    let r = api.answer(&Method::GET, "/secrets", "").await;
    assert_eq!(json_of(&r), &json!([]));

    let r = api.answer(&Method::GET, "/info", "").await;
    let swarm = &json_of(&r)["Swarm"];
    assert_eq!(swarm["ControlAvailable"], true);
    assert_eq!(swarm["LocalNodeState"], "active");
    assert_eq!(swarm["NodeAddr"], "198.19.233.1");
    assert_eq!(swarm["Nodes"], 2);
    assert_eq!(swarm["Managers"], 1);
    assert_eq!(swarm["Cluster"]["ID"], "fakecluster");
    assert_eq!(
        swarm["RemoteManagers"],
        json!([{ "NodeID": "m".repeat(25), "Addr": "198.19.233.1:2377" }])
    );

    let r = api.answer(&Method::DELETE, "/v1.41/services/web", "").await;
    assert_eq!(r.status, 200);
    let r = api.answer(&Method::GET, "/services", "").await;
    assert_eq!(json_of(&r), &json!([]));
}

#[tokio::test]
async fn a_worker_refuses_swarm_calls_as_docker_does() {
    let dir = tempfile::tempdir().unwrap();
    let api = Api::new(local(dir.path()));
    for p in [
        "/v1.41/nodes",
        "/services",
        "/tasks",
        "/networks",
        "/secrets",
        "/configs",
    ] {
        let r = api.answer(&Method::GET, p, "").await;
        assert_eq!(r.status, 503, "{p}");
        assert_eq!(
            json_of(&r)["message"],
            "This node is not a swarm manager. Worker nodes can't be used to view or modify cluster state. Please run this command on a manager node or promote the current node to a manager."
        );
    }
    let r = api.answer(&Method::GET, "/info", "").await;
    assert_eq!(r.status, 200);
    let swarm = &json_of(&r)["Swarm"];
    assert_eq!(swarm["ControlAvailable"], false);
    assert_eq!(swarm["LocalNodeState"], "active");
    assert_eq!(swarm["NodeID"], "m".repeat(25));
    assert!(swarm.get("Cluster").is_none());
    assert_eq!(
        swarm["RemoteManagers"],
        json!([{ "NodeID": "", "Addr": "198.19.233.1:2377" }])
    );
    let r = api.answer(&Method::GET, "/_ping", "").await;
    assert_eq!(r.body, Body::Ok);
    let r = api.answer(&Method::GET, "/version", "").await;
    assert_eq!(json_of(&r)["ApiVersion"], "1.41");
}

/// One raw HTTP/1.1 request over the socket; the whole answer (headers and body).
pub(super) async fn raw(sock: &Path, req: &str) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut s = tokio::net::UnixStream::connect(sock).await.unwrap();
    s.write_all(req.as_bytes()).await.unwrap();
    let mut out = Vec::new();
    s.read_to_end(&mut out).await.unwrap();
    String::from_utf8_lossy(&out).into_owned()
}

#[tokio::test]
async fn the_socket_serves_http_and_goes_away() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let (api, _fake) = manager_api(dir.path()).await;
    let sock = dir.path().join("docker.sock");
    // A stale socket (nobody answers) is replaced; a regular file is not.
    drop(std::os::unix::net::UnixListener::bind(&sock).unwrap());
    let plain = dir.path().join("plain");
    std::fs::write(&plain, "x").unwrap();
    assert!(super::server::bind(&plain).await.is_err());
    let l = super::server::bind(&sock).await.unwrap();
    assert_eq!(
        std::fs::metadata(&sock).unwrap().permissions().mode() & 0o777,
        0o600
    );
    // A second server on a live socket is refused.
    let (stop, rx) = tokio::sync::watch::channel(false);
    let served = tokio::spawn(super::server::serve(
        l,
        sock.clone(),
        std::sync::Arc::new(api),
        rx,
    ));
    let e = super::server::bind(&sock).await.unwrap_err().to_string();
    assert!(e.contains("another process serves"), "{e}");

    let head = raw(
        &sock,
        "HEAD /_ping HTTP/1.1\r\nHost: docker\r\nConnection: close\r\n\r\n",
    )
    .await;
    assert!(head.starts_with("HTTP/1.1 200 OK\r\n"), "{head}");
    let lower = head.to_ascii_lowercase();
    for h in [
        "api-version: 1.41",
        "docker-experimental: false",
        "ostype: linux",
    ] {
        assert!(lower.contains(h), "{h}: {head}");
    }
    let get = raw(
        &sock,
        "GET /_ping HTTP/1.1\r\nHost: docker\r\nConnection: close\r\n\r\n",
    )
    .await;
    assert!(get.ends_with("\r\n\r\nOK"), "{get}");
    let nf = raw(
        &sock,
        "GET /v1.41/services/nosuch HTTP/1.1\r\nHost: docker\r\nConnection: close\r\n\r\n",
    )
    .await;
    assert!(nf.starts_with("HTTP/1.1 404 Not Found\r\n"), "{nf}");
    assert!(
        nf.to_ascii_lowercase()
            .contains("content-type: application/json"),
        "{nf}"
    );
    assert!(
        nf.ends_with("{\"message\":\"service nosuch not found\"}\n"),
        "{nf}"
    );

    stop.send(true).unwrap();
    served.await.unwrap();
    assert!(!sock.exists(), "the socket is removed on exit");
}

#[test]
fn docker_host_values() {
    use super::server::parse_host;
    assert_eq!(
        parse_host("unix:///run/d.sock").unwrap(),
        Path::new("/run/d.sock")
    );
    assert_eq!(
        parse_host("unix://docker.sock").unwrap(),
        Path::new("docker.sock")
    );
    for bad in ["tcp://0.0.0.0:2375", "unix://", "/run/d.sock"] {
        let e = parse_host(bad).unwrap_err();
        assert!(
            e.contains("expected unix:///path/docker.sock"),
            "{bad}: {e}"
        );
    }
}
