//! Node, network, secret and config writes and `GET /swarm`, against the scripted fake manager.

use super::api::{Body, Reply};
use super::spec::{data_create, network_create, node_update};
use super::tests::{json_of, manager_api};
use super::ApiError;
use hyper::Method;
use serde_json::json;
use shoal_proto::pb;

#[test]
fn a_node_spec_is_the_change_to_make() {
    let current = pb::Node {
        id: "w".repeat(25),
        labels: [
            ("old".to_string(), "1".to_string()),
            ("keep".to_string(), "2".to_string()),
        ]
        .into(),
        ..Default::default()
    };
    let spec = json!({ "Labels": { "keep": "2", "zone": "a" }, "Role": "manager", "Availability": "drain" });
    let r = node_update(&spec, &current, 9).unwrap();
    assert_eq!(r.id, "w".repeat(25));
    assert_eq!(r.version, 9);
    assert!(r.set_role && r.role == pb::NodeRole::Manager as i32);
    assert!(r.set_availability && r.availability == pb::Availability::Drain as i32);
    assert_eq!(r.rm_labels, ["old"]);
    assert_eq!(r.add_labels.len(), 2);
    let e = node_update(&json!({ "Role": "boss" }), &current, 1).unwrap_err();
    assert_eq!(e.status, 400);
    let e = node_update(&json!({ "Name": "n1" }), &current, 1).unwrap_err();
    assert_eq!(
        e,
        ApiError::bad_request("Spec.Name is not supported by Shoal")
    );
}

#[test]
fn a_network_create_request_as_the_cli_sends_it() {
    let v = json!({
        "Name": "lp_net", "CheckDuplicate": true, "Driver": "overlay", "Scope": "swarm",
        "EnableIPv6": false,
        "IPAM": { "Driver": "default", "Options": {}, "Config": [{ "Subnet": "10.20.0.0/24" }] },
        "Internal": false, "Attachable": true, "Ingress": false, "ConfigOnly": false,
        "ConfigFrom": null, "Options": {}, "Labels": { "stack": "lp" },
    });
    let r = network_create(&v).unwrap();
    assert_eq!(r.name, "lp_net");
    assert_eq!(r.driver, pb::NetworkDriver::Overlay as i32);
    assert_eq!(r.subnet, "10.20.0.0/24");
    assert!(r.attachable);
    assert_eq!(r.labels["stack"], "lp");
    let mut internal = v.clone();
    internal["Internal"] = json!(true);
    assert_eq!(
        network_create(&internal).unwrap_err(),
        ApiError::bad_request("Network.Internal is not supported by Shoal")
    );
    let mut gw = v.clone();
    gw["IPAM"]["Config"][0]["Gateway"] = json!("10.20.0.254");
    assert_eq!(
        network_create(&gw).unwrap_err().message,
        "Network.IPAM.Config[0].Gateway is not supported by Shoal"
    );
    let mut macvlan = v;
    macvlan["Driver"] = json!("macvlan");
    assert_eq!(network_create(&macvlan).unwrap_err().status, 400);
}

#[test]
fn secret_data_is_base64() {
    let r = data_create(
        &json!({ "Name": "db_pass", "Labels": {}, "Data": "c2VjcmV0" }),
        "secret",
    )
    .unwrap();
    assert_eq!(
        (r.name.as_str(), r.data.as_slice()),
        ("db_pass", &b"secret"[..])
    );
    assert_eq!(
        data_create(&json!({ "Name": "x", "Data": "!!" }), "secret")
            .unwrap_err()
            .status,
        400
    );
    assert_eq!(
        data_create(
            &json!({ "Name": "x", "Data": "eA==", "Templating": { "Name": "golang" } }),
            "config"
        )
        .unwrap_err()
        .message,
        "Spec.Templating is not supported by Shoal"
    );
}

#[tokio::test]
async fn distribution_gives_the_digest_to_pin() {
    let dir = tempfile::tempdir().unwrap();
    let (api, fake) = manager_api(dir.path()).await;
    let digest = format!("sha256:{}", "b".repeat(64));
    fake.lock()
        .registry
        .insert("198.19.233.254:5000/shoal/whoami:1".into(), digest.clone());
    let r = api
        .answer(
            &Method::GET,
            "/v1.41/distribution/198.19.233.254:5000/shoal/whoami:1/json",
            "",
        )
        .await;
    assert_eq!(
        json_of(&r),
        &json!({ "Descriptor": { "digest": digest }, "Platforms": [] })
    );
    let r = api
        .answer(&Method::GET, "/v1.41/distribution/nosuch:1/json", "")
        .await;
    assert_eq!(r.status, 404, "{r:?}");
}

#[tokio::test]
async fn writes_against_a_manager() {
    let dir = tempfile::tempdir().unwrap();
    let (api, fake) = manager_api(dir.path()).await;
    let post = |path: &'static str, body: serde_json::Value| {
        let api = api.clone();
        async move {
            api.answer_with(&Method::POST, path, "", &serde_json::to_vec(&body).unwrap())
                .await
        }
    };

    let r = api.answer(&Method::GET, "/v1.41/swarm", "").await;
    let v = json_of(&r);
    assert_eq!(v["ID"], "fakecluster");
    assert!(
        v["JoinTokens"]["Worker"]
            .as_str()
            .is_some_and(|t| t.starts_with("SWMTKN-1-")),
        "{v}"
    );
    assert!(
        v["JoinTokens"]["Manager"]
            .as_str()
            .is_some_and(|t| t.starts_with("SWMTKN-1-")),
        "{v}"
    );

    // Rotate the worker token the way `docker swarm join-token --rotate worker` does: the spec
    // as read, sent back with the flag.
    let before = v["JoinTokens"]["Worker"].clone();
    let spec = serde_json::to_vec(&v["Spec"]).unwrap();
    let q = format!("version={}&rotateWorkerToken=true", v["Version"]["Index"]);
    let r = api
        .answer_with(&Method::POST, "/v1.41/swarm/update", &q, &spec)
        .await;
    assert_eq!(r.status, 200, "{r:?}");
    let r = api.answer(&Method::GET, "/v1.41/swarm", "").await;
    // (The fake's tokens never change: the lab test sees a real rotation.)
    assert_eq!(json_of(&r)["JoinTokens"]["Worker"], before);
    let mut hb = json_of(&r)["Spec"].clone();
    hb["Dispatcher"]["HeartbeatPeriod"] = json!(10_000_000_000u64);
    let r = api
        .answer_with(
            &Method::POST,
            "/swarm/update",
            "version=1",
            &serde_json::to_vec(&hb).unwrap(),
        )
        .await;
    assert_eq!(r.status, 400, "{r:?}");
    // The task history Shoal keeps is shown, sent back unchanged, and cannot be changed.
    let mut history = json_of(&api.answer(&Method::GET, "/swarm", "").await)["Spec"].clone();
    assert_eq!(history["Orchestration"]["TaskHistoryRetentionLimit"], 5);
    history["Orchestration"]["TaskHistoryRetentionLimit"] = json!(10);
    let r = api
        .answer_with(
            &Method::POST,
            "/swarm/update",
            "version=1",
            &serde_json::to_vec(&history).unwrap(),
        )
        .await;
    assert_eq!(r.status, 400, "{r:?}");
    let mut lock = json_of(&api.answer(&Method::GET, "/swarm", "").await)["Spec"].clone();
    lock["EncryptionConfig"]["AutoLockManagers"] = json!(true);
    let r = api
        .answer_with(
            &Method::POST,
            "/swarm/update",
            "version=1",
            &serde_json::to_vec(&lock).unwrap(),
        )
        .await;
    assert_eq!(r.status, 200, "{r:?}");
    let r = api.answer(&Method::GET, "/swarm/unlockkey", "").await;
    assert!(
        json_of(&r)["UnlockKey"]
            .as_str()
            .is_some_and(|k| k.starts_with("SWMKEY-1-")),
        "{r:?}"
    );

    // Drain the worker with the version read.
    let r = api.answer(&Method::GET, "/nodes/worker1", "").await;
    let node = json_of(&r).clone();
    let mut spec = node["Spec"].clone();
    spec["Availability"] = json!("drain");
    let body = serde_json::to_vec(&spec).unwrap();
    let q = format!("version={}", node["Version"]["Index"]);
    let r = api
        .answer_with(&Method::POST, "/v1.41/nodes/worker1/update", &q, &body)
        .await;
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(
        fake.lock().nodes[1].availability,
        pb::Availability::Drain as i32
    );
    let r = api
        .answer_with(&Method::POST, "/v1.41/nodes/worker1/update", "", &body)
        .await;
    assert_eq!(r.status, 400, "no version: {r:?}");

    let r = post(
        "/v1.41/networks/create",
        json!({ "Name": "lp_net2", "Driver": "overlay", "Attachable": true }),
    )
    .await;
    assert_eq!(r.status, 201, "{r:?}");
    let id = json_of(&r)["Id"].as_str().unwrap().to_string();
    assert_eq!(json_of(&r)["Warning"], "");
    let r = api
        .answer(&Method::GET, &format!("/networks/{id}"), "")
        .await;
    assert_eq!(json_of(&r)["Name"], "lp_net2");
    let r = api.answer(&Method::DELETE, "/networks/lp_net2", "").await;
    assert_eq!(
        r,
        Reply {
            status: 204,
            body: Body::Empty
        }
    );

    let r = post(
        "/secrets/create",
        json!({ "Name": "db_pass", "Labels": {}, "Data": "c2VjcmV0" }),
    )
    .await;
    assert_eq!(r.status, 201, "{r:?}");
    assert_eq!(fake.lock().secrets[0].1, b"secret");
    let r = api.answer(&Method::GET, "/secrets", "").await;
    assert_eq!(json_of(&r)[0]["Spec"]["Name"], "db_pass");
    let r = api.answer(&Method::DELETE, "/secrets/db_pass", "").await;
    assert_eq!(r.status, 204, "{r:?}");
    let r = post("/configs/create", json!({ "Name": "site", "Data": "aGk=" })).await;
    assert_eq!(r.status, 201, "{r:?}");
    let r = api.answer(&Method::GET, "/configs/site", "").await;
    assert_eq!(json_of(&r)["Spec"]["Data"], "aGk=");
    let r = api.answer(&Method::DELETE, "/configs/site", "").await;
    assert_eq!(r.status, 204, "{r:?}");

    let r = api
        .answer(&Method::DELETE, "/v1.41/nodes/worker1", "force=true")
        .await;
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(fake.lock().nodes.len(), 1);
}
