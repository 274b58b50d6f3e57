//! Docker's service spec read into the Control API's, and the writes through the API against the
//! scripted fake manager.

use super::api::Api;
use super::spec::service_spec;
use super::tests::{json_of, manager_api, web_service};
use super::{types, ApiError};
use hyper::Method;
use serde_json::json;
use shoal_proto::pb;

/// What `docker service create --name web --replicas 2 -p 8080:80 --env A=1
/// --no-resolve-image nginx:alpine -g 'daemon off;'` (CLI 20.10) posts.
fn cli_create() -> serde_json::Value {
    json!({
        "Name": "web",
        "Labels": {},
        "TaskTemplate": {
            "ContainerSpec": {
                "Image": "nginx:alpine",
                "Args": ["-g", "daemon off;"],
                "Env": ["A=1"],
                "Init": false,
                "StopGracePeriod": 10_000_000_000u64,
                "DNSConfig": {},
                "Isolation": "default",
            },
            "Resources": { "Limits": {}, "Reservations": {} },
            "RestartPolicy": { "Condition": "any", "Delay": 5_000_000_000u64, "MaxAttempts": 0 },
            "Placement": {},
            "ForceUpdate": 0,
            "Runtime": "container",
        },
        "Mode": { "Replicated": { "Replicas": 2 } },
        "UpdateConfig": {
            "Parallelism": 1, "FailureAction": "pause", "Monitor": 5_000_000_000u64,
            "MaxFailureRatio": 0, "Order": "stop-first",
        },
        "RollbackConfig": {
            "Parallelism": 1, "FailureAction": "pause", "Monitor": 5_000_000_000u64,
            "MaxFailureRatio": 0, "Order": "stop-first",
        },
        "EndpointSpec": {
            "Mode": "vip",
            "Ports": [{ "Protocol": "tcp", "TargetPort": 80, "PublishedPort": 8080, "PublishMode": "ingress" }],
        },
    })
}

#[test]
fn an_update_keeps_a_ports_traffic_policy_docker_does_not_know() {
    let base = service_spec(&cli_create(), pb::ServiceSpec::default()).unwrap();
    let mut local = base.clone();
    local.ports[0].traffic = pb::TrafficPolicy::Local as i32;
    let s = service_spec(&cli_create(), local).unwrap();
    assert_eq!(s.ports[0].traffic(), pb::TrafficPolicy::Local);
    // Another target port is another port: the default.
    let mut other = cli_create();
    other["EndpointSpec"]["Ports"][0]["TargetPort"] = json!(81);
    let mut local = base.clone();
    local.ports[0].traffic = pb::TrafficPolicy::Local as i32;
    let s = service_spec(&other, local).unwrap();
    assert_eq!(s.ports[0].traffic(), pb::TrafficPolicy::Cluster);
    // And Docker's JSON of such a service has no field Docker would not know.
    let mut svc = super::tests::web_service();
    svc.spec.as_mut().unwrap().ports[0].traffic = pb::TrafficPolicy::Local as i32;
    svc.ports[0].traffic = pb::TrafficPolicy::Local as i32;
    let v = types::service::service(&svc, false);
    assert_eq!(
        v["Endpoint"]["Ports"][0],
        json!({ "Protocol": "tcp", "TargetPort": 80, "PublishedPort": 8080, "PublishMode": "ingress" })
    );
}

#[test]
fn the_clis_create_spec_reads_into_a_control_spec() {
    let s = service_spec(&cli_create(), pb::ServiceSpec::default()).unwrap();
    assert_eq!(s.name, "web");
    assert_eq!(s.image, "nginx:alpine");
    assert_eq!(s.image_digest, "");
    assert_eq!(s.args, ["-g", "daemon off;"]);
    assert_eq!(s.env, ["A=1"]);
    assert_eq!(s.replicas, 2);
    assert!(!s.global);
    assert_eq!(s.stop_grace_ms, 10_000);
    assert_eq!(
        s.restart,
        Some(pb::RestartPolicy {
            condition: pb::RestartCondition::Any as i32,
            delay_ms: 5000,
            max_attempts: 0
        })
    );
    assert_eq!(
        s.ports,
        [pb::PortConfig {
            protocol: pb::Protocol::Tcp as i32,
            target: 80,
            published: 8080,
            mode: pb::PublishMode::Ingress as i32,
            ..Default::default()
        }]
    );
    let u = s.update_config.unwrap();
    assert_eq!((u.parallelism, u.monitor_ms), (1, 5000));
}

#[test]
fn what_shoal_shows_reads_back_unchanged() {
    let mut svc = web_service();
    let sp = svc.spec.as_mut().unwrap();
    sp.restart = Some(pb::RestartPolicy {
        condition: pb::RestartCondition::OnFailure as i32,
        delay_ms: 2000,
        max_attempts: 3,
    });
    sp.update_config = Some(pb::UpdateConfig {
        parallelism: 2,
        delay_ms: 1000,
        failure_action: pb::FailureAction::Rollback as i32,
        monitor_ms: 3000,
        max_failure_ratio: 0.5,
        order: pb::UpdateOrder::StartFirst as i32,
    });
    sp.rollback_config = sp.update_config;
    sp.healthcheck = Some(pb::HealthCheck {
        test: vec!["CMD-SHELL".into(), "true".into()],
        interval_ms: 2000,
        timeout_ms: 1000,
        start_period_ms: 0,
        retries: 3,
    });
    sp.secrets = vec![pb::SecretReference {
        id: "x".repeat(25),
        name: "db_pass".into(),
        target: "db_pass".into(),
        uid: 1,
        gid: 2,
        mode: Some(0o400),
    }];
    sp.limit_memory_bytes = 64 << 20;
    sp.constraints = vec!["node.role==worker".into()];
    sp.stop_grace_ms = 3000;
    sp.runtime = pb::Runtime::Process as i32;
    let shown = types::service::service(&svc, false);
    // An update starts from the service's spec: the runtime Docker's JSON does not show is kept.
    let base = pb::ServiceSpec {
        runtime: pb::Runtime::Process as i32,
        ..Default::default()
    };
    let read = service_spec(&shown["Spec"], base).unwrap();
    assert_eq!(&read, svc.spec.as_ref().unwrap());
    let mut tagged = shown["Spec"].clone();
    tagged["TaskTemplate"]["ContainerSpec"]["Image"] = json!("whoami:latest");
    let process = pb::ServiceSpec {
        image: "whoami".into(),
        runtime: pb::Runtime::Process as i32,
        ..Default::default()
    };
    assert_eq!(
        service_spec(&tagged, process).unwrap().image,
        "whoami",
        "the CLI's `:latest` is not a program's name"
    );
    let created = service_spec(&shown["Spec"], pb::ServiceSpec::default()).unwrap();
    assert_eq!(created.runtime(), pb::Runtime::Container);
}

#[test]
fn fields_shoal_lacks_are_refused_by_name() {
    for (edit, field) in [
        (
            json!({ "TaskTemplate": { "ContainerSpec": { "Image": "x", "Mounts": [{ "Type": "volume" }] } } }),
            "Spec.TaskTemplate.ContainerSpec.Mounts",
        ),
        (
            json!({ "TaskTemplate": { "ContainerSpec": { "Image": "x" }, "LogDriver": { "Name": "syslog" } } }),
            "Spec.TaskTemplate.LogDriver",
        ),
        (
            json!({ "TaskTemplate": { "ContainerSpec": { "Image": "x" }, "Resources": { "Reservations": { "MemoryBytes": 1 } } } }),
            "Spec.TaskTemplate.Resources.Reservations",
        ),
        (
            json!({ "Mode": { "ReplicatedJob": { "MaxConcurrent": 1 } } }),
            "Spec.Mode.ReplicatedJob",
        ),
        (json!({ "Colour": "red" }), "Spec.Colour"),
    ] {
        let mut spec = json!({ "Name": "web" });
        for (k, v) in edit.as_object().unwrap() {
            spec[k] = v.clone();
        }
        let e = service_spec(&spec, pb::ServiceSpec::default()).unwrap_err();
        assert_eq!(
            e,
            ApiError::bad_request(format!("{field} is not supported by Shoal")),
            "{spec}"
        );
    }
    let e = service_spec(
        &json!({ "Mode": { "Replicated": { "Replicas": -1 } } }),
        Default::default(),
    )
    .unwrap_err();
    assert_eq!(e.status, 400);
    assert!(e.message.contains("Spec.Mode.Replicated.Replicas"), "{e}");
    // Empty values of unsupported fields are what the CLI sends by default: accepted.
    let mut spec = cli_create();
    spec["TaskTemplate"]["ContainerSpec"]["Mounts"] = json!([]);
    spec["TaskTemplate"]["ContainerSpec"]["Privileges"] = json!(null);
    assert!(service_spec(&spec, pb::ServiceSpec::default()).is_ok());
}

#[tokio::test]
async fn create_update_and_a_stale_version() {
    let dir = tempfile::tempdir().unwrap();
    let (api, fake): (Api, _) = manager_api(dir.path()).await;
    let mut create = cli_create();
    create["Name"] = json!("api");
    let body = serde_json::to_vec(&create).unwrap();
    let r = api
        .answer_with(&Method::POST, "/v1.41/services/create", "", &body)
        .await;
    assert_eq!(r.status, 201, "{r:?}");
    let id = json_of(&r)["ID"].as_str().unwrap().to_string();
    let again = api
        .answer_with(&Method::POST, "/v1.41/services/create", "", &body)
        .await;
    assert_eq!(again.status, 409, "{again:?}");

    let r = api
        .answer(&Method::GET, &format!("/services/{id}"), "")
        .await;
    let svc = json_of(&r).clone();
    let version = svc["Version"]["Index"].as_u64().unwrap();
    let mut spec = svc["Spec"].clone();
    spec["Mode"]["Replicated"]["Replicas"] = json!(5);
    spec["TaskTemplate"]["ContainerSpec"]["Image"] = json!("nginx:1.27");
    let body = serde_json::to_vec(&spec).unwrap();
    let path = format!("/v1.41/services/{id}/update");
    let r = api
        .answer_with(&Method::POST, &path, &format!("version={version}"), &body)
        .await;
    assert_eq!(r.status, 200, "{r:?}");
    {
        let s = fake.lock();
        let sp = s
            .services
            .iter()
            .find(|s| s.id == id)
            .unwrap()
            .spec
            .clone()
            .unwrap();
        assert_eq!((sp.replicas, sp.image.as_str()), (5, "nginx:1.27"));
    }
    // The same version again is stale now: dockerd 20.10's answer.
    let r = api
        .answer_with(&Method::POST, &path, &format!("version={version}"), &body)
        .await;
    assert_eq!(
        r,
        super::api::Reply::error(&ApiError {
            status: 500,
            message: "rpc error: code = Unknown desc = update out of sequence".into()
        })
    );
    let r = api.answer_with(&Method::POST, &path, "", &body).await;
    assert_eq!(r.status, 400, "no version: {r:?}");
    let r = api
        .answer_with(&Method::POST, &path, "version=99", b"{not json")
        .await;
    assert_eq!(r.status, 400);
    let mut bad = spec.clone();
    bad["TaskTemplate"]["ContainerSpec"]["Hostname"] = json!("x");
    let r = api
        .answer_with(
            &Method::POST,
            &path,
            &format!("version={}", version + 1),
            &serde_json::to_vec(&bad).unwrap(),
        )
        .await;
    assert_eq!(
        json_of(&r)["message"],
        "Spec.TaskTemplate.ContainerSpec.Hostname is not supported by Shoal"
    );
}

/// `--config cfg1` (CLI 20.10): the file is named after the config, and dockerd mounts a
/// relative target at the root.
#[test]
fn a_relative_config_target_is_mounted_at_the_root() {
    let mut create = cli_create();
    create["TaskTemplate"]["ContainerSpec"]["Configs"] = json!([
        { "File": { "Name": "cfg1", "UID": "0", "GID": "0", "Mode": 292 },
          "ConfigID": "c".repeat(25), "ConfigName": "cfg1" },
        { "File": { "Name": "/etc/app.conf", "UID": "0", "GID": "0", "Mode": 292 },
          "ConfigID": "d".repeat(25), "ConfigName": "app" },
    ]);
    let s = service_spec(&create, pb::ServiceSpec::default()).unwrap();
    let targets: Vec<&str> = s.configs.iter().map(|c| c.target.as_str()).collect();
    assert_eq!(targets, ["/cfg1", "/etc/app.conf"]);
}
