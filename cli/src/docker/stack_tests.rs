//! What `docker stack deploy` and `docker events` need, without a manager: the service spec the
//! CLI 20.10 posts for a compose service, label-only secret and config updates, the `/events`
//! routes, filters, times and message shape.

use super::data_update::{parse, ONLY_LABELS};
use super::events::{matches, message, parse_time, FILTERS};
use super::filters::Filters;
use super::route::{route, Route};
use super::spec::service_spec;
use super::types;
use hyper::Method;
use serde_json::json;
use shoal_proto::pb;

/// What CLI 20.10 posts for a compose service with labels, a health check, start-first
/// updates, a restart policy, a memory limit, aliases and a secret (captured from
/// `docker stack deploy`).
fn stack_service() -> serde_json::Value {
    json!({
        "Name": "app_web",
        "Labels": { "com.docker.stack.image": "shoal/whoami", "com.docker.stack.namespace": "app" },
        "TaskTemplate": {
            "ContainerSpec": {
                "Image": "shoal/whoami:latest@sha256:0f992ea5886e4d782cd941523f4b0f477a4b5c81b0aa78872739b56c1d6a2c2c",
                "Labels": { "com.docker.stack.namespace": "app", "com.example.svc": "web" },
                "Env": ["GREETING=one"],
                "Privileges": { "CredentialSpec": null, "SELinuxContext": null },
                "Healthcheck": { "Test": ["CMD", "true"], "Interval": 5_000_000_000u64, "Timeout": 3_000_000_000u64, "Retries": 2 },
                "Secrets": [{
                    "File": { "Name": "db_pass", "UID": "0", "GID": "0", "Mode": 292 },
                    "SecretID": "63d0x0mmpoamm08wwnfsc2bpk", "SecretName": "app_pw",
                }],
            },
            "Resources": { "Limits": { "MemoryBytes": 67108864 } },
            "RestartPolicy": { "Condition": "on-failure", "MaxAttempts": 5 },
            "Placement": {},
            "Networks": [{ "Target": "app_front", "Aliases": ["webby", "web"] }],
            "ForceUpdate": 0,
        },
        "Mode": { "Replicated": { "Replicas": 2 } },
        "UpdateConfig": { "Parallelism": 1, "MaxFailureRatio": 0, "Order": "start-first" },
        "EndpointSpec": {
            "Mode": "dnsrr",
            "Ports": [{ "Protocol": "tcp", "TargetPort": 8080, "PublishedPort": 8080, "PublishMode": "ingress" }],
        },
    })
}

#[test]
fn a_stack_service_is_carried_whole() {
    let s = service_spec(&stack_service(), pb::ServiceSpec::default()).unwrap();
    assert_eq!(s.labels.get("com.docker.stack.namespace").unwrap(), "app");
    assert_eq!(s.container_labels.len(), 2);
    assert_eq!(s.container_labels.get("com.example.svc").unwrap(), "web");
    assert_eq!(s.image, "shoal/whoami:latest");
    assert_eq!(s.healthcheck.as_ref().unwrap().retries, 2);
    let u = s.update_config.unwrap();
    assert_eq!((u.parallelism, u.order()), (1, pb::UpdateOrder::StartFirst));
    let r = s.restart.unwrap();
    assert_eq!(
        (r.condition(), r.max_attempts),
        (pb::RestartCondition::OnFailure, 5)
    );
    assert_eq!(s.limit_memory_bytes, 67108864);
    assert_eq!(s.networks[0].aliases, ["webby", "web"]);
    assert_eq!(s.endpoint_mode(), pb::EndpointMode::Dnsrr);
    assert_eq!(s.secrets[0].target, "db_pass");
    assert_eq!(s.secrets[0].mode, Some(0o444));
    assert_eq!(s.ports[0].published, 8080);
    // The container labels come back in the inspect.
    let svc = pb::Service {
        id: "x".into(),
        spec: Some(s),
        ..Default::default()
    };
    let v = types::service::service(&svc, false);
    assert_eq!(
        v["Spec"]["TaskTemplate"]["ContainerSpec"]["Labels"],
        json!({ "com.docker.stack.namespace": "app", "com.example.svc": "web" })
    );
}

#[test]
fn compose_fields_shoal_lacks_are_refused_by_name() {
    for (path, value, name) in [
        (
            "ContainerSpec",
            json!({ "ReadOnly": true }),
            "Spec.TaskTemplate.ContainerSpec.ReadOnly",
        ),
        (
            "ContainerSpec",
            json!({ "StopSignal": "SIGUSR1" }),
            "Spec.TaskTemplate.ContainerSpec.StopSignal",
        ),
        (
            "ContainerSpec",
            json!({ "Hosts": ["1.2.3.4 a"] }),
            "Spec.TaskTemplate.ContainerSpec.Hosts",
        ),
        (
            "Resources",
            json!({ "Reservations": { "MemoryBytes": 1 } }),
            "Spec.TaskTemplate.Resources.Reservations",
        ),
        (
            "Placement",
            json!({ "Preferences": [{ "Spread": { "SpreadDescriptor": "node.id" } }] }),
            "Spec.TaskTemplate.Placement.Preferences",
        ),
    ] {
        let mut spec = stack_service();
        for (k, v) in value.as_object().unwrap() {
            spec["TaskTemplate"][path][k] = v.clone();
        }
        let e = service_spec(&spec, pb::ServiceSpec::default()).unwrap_err();
        assert_eq!(e.status, 400);
        assert!(
            e.message.starts_with(name) && e.message.ends_with("is not supported by Shoal"),
            "{}",
            e.message
        );
    }
}

#[test]
fn secret_and_config_updates_take_labels_only() {
    let super::data_update::DataUpdate { name, labels, data } = parse(&json!({
        "Name": "app_pw",
        "Labels": { "com.docker.stack.namespace": "app" },
        "Data": "czNjcmV0Cg==",
    }))
    .unwrap();
    assert_eq!(name, "app_pw");
    assert_eq!(labels.get("com.docker.stack.namespace").unwrap(), "app");
    assert_eq!(data.unwrap(), b"s3cret\n");
    let e = parse(&json!({ "Name": "x", "Driver": { "Name": "vault" } })).unwrap_err();
    assert_eq!(e.message, "Spec.Driver is not supported by Shoal");
    assert!(parse(&json!({ "Name": "x", "Templating": {} })).is_ok());
    assert_eq!(ONLY_LABELS, "only updates to Labels are allowed");
}

#[test]
fn stack_and_event_routes() {
    assert_eq!(
        route(&Method::POST, "/v1.41/secrets/abc/update").unwrap(),
        Route::SecretUpdate("abc".into())
    );
    assert_eq!(
        route(&Method::POST, "/v1.41/configs/abc/update").unwrap(),
        Route::ConfigUpdate("abc".into())
    );
    assert_eq!(route(&Method::GET, "/v1.41/events").unwrap(), Route::Events);
    assert_eq!(route(&Method::POST, "/events").unwrap_err().status, 404);
}

#[test]
fn event_times_are_docker_seconds() {
    assert_eq!(
        parse_time("since", "1700000000").unwrap(),
        1_700_000_000_000_000_000
    );
    assert_eq!(
        parse_time("since", "1700000000.5").unwrap(),
        1_700_000_000_500_000_000
    );
    assert_eq!(
        parse_time("until", "1700000000.000000042").unwrap(),
        1_700_000_000_000_000_042
    );
    for bad in ["", "10m", "1.2.3", "1.x", "1.1234567890"] {
        assert_eq!(parse_time("since", bad).unwrap_err().status, 400, "{bad}");
    }
}

fn event(kind: &str, action: &str, id: &str, name: &str) -> pb::WatchEvent {
    pb::WatchEvent {
        kind: kind.into(),
        action: action.into(),
        id: id.into(),
        name: name.into(),
        time_ns: 1_700_000_000_123_456_789,
        index: 7,
    }
}

#[test]
fn event_filters_match_as_dockerd_s() {
    let f = |raw: &str| Filters::parse(Some(raw), FILTERS).unwrap();
    let web = event("service", "update", "s1abc", "app_web");
    let pw = event("secret", "create", "x9", "app_pw");
    assert!(matches(&Filters::default(), &web));
    assert!(matches(&f(r#"{"type":{"service":true}}"#), &web));
    assert!(!matches(&f(r#"{"type":{"service":true}}"#), &pw));
    assert!(matches(
        &f(r#"{"type":{"service":true,"secret":true}}"#),
        &pw
    ));
    assert!(matches(&f(r#"{"event":{"update":true}}"#), &web));
    assert!(!matches(&f(r#"{"event":{"remove":true}}"#), &web));
    assert!(matches(&f(r#"{"scope":{"swarm":true}}"#), &web));
    assert!(!matches(&f(r#"{"scope":{"local":true}}"#), &web));
    // An object filter names objects of its type, by id or name prefix, and excludes the rest.
    assert!(matches(&f(r#"{"service":{"app_w":true}}"#), &web));
    assert!(matches(&f(r#"{"service":{"s1":true}}"#), &web));
    assert!(!matches(&f(r#"{"service":{"app_db":true}}"#), &web));
    assert!(!matches(&f(r#"{"service":{"app":true}}"#), &pw));
    assert!(matches(&f(r#"{"secret":{"app_pw":true}}"#), &pw));
    let e = Filters::parse(Some(r#"{"container":{"x":true}}"#), FILTERS).unwrap_err();
    assert_eq!(e.message, "Invalid filter 'container'");
}

#[test]
fn an_event_is_docker_s_message() {
    assert_eq!(
        message(&event("service", "create", "s1abc", "app_web")),
        json!({
            "Type": "service",
            "Action": "create",
            "Actor": { "ID": "s1abc", "Attributes": { "name": "app_web" } },
            "scope": "swarm",
            "time": 1_700_000_000,
            "timeNano": 1_700_000_000_123_456_789i64,
        })
    );
}
