//! `swarm.Service` and the `TaskSpec` it shares with tasks.

use super::{labels, ns, ts, version};
use crate::ctl::names;
use serde_json::{json, Map, Value};
use shoal_proto::pb;

/// The image as Docker keeps it in a spec: pinned as `name:tag@sha256:…` when resolved.
pub fn image(s: &pb::ServiceSpec) -> String {
    if s.image_digest.is_empty() || s.image.contains('@') {
        s.image.clone()
    } else {
        format!("{}@{}", s.image, s.image_digest)
    }
}

fn health(h: &pb::HealthCheck) -> Value {
    let mut v = Map::new();
    if !h.test.is_empty() {
        v.insert("Test".into(), json!(h.test));
    }
    for (k, ms) in [
        ("Interval", h.interval_ms),
        ("Timeout", h.timeout_ms),
        ("StartPeriod", h.start_period_ms),
    ] {
        if ms != 0 {
            v.insert(k.into(), json!(ns(ms)));
        }
    }
    if h.retries != 0 {
        v.insert("Retries".into(), json!(h.retries));
    }
    Value::Object(v)
}

fn file(target: &str, uid: u32, gid: u32, mode: Option<u32>) -> Value {
    json!({
        "Name": target,
        "UID": uid.to_string(),
        "GID": gid.to_string(),
        "Mode": mode.unwrap_or(0o444),
    })
}

/// `ContainerSpec`.
fn container_spec(s: &pb::ServiceSpec) -> Value {
    let mut c = Map::new();
    c.insert("Image".into(), json!(image(s)));
    if !s.container_labels.is_empty() {
        c.insert("Labels".into(), labels(&s.container_labels));
    }
    if !s.entrypoint.is_empty() {
        c.insert("Command".into(), json!(s.entrypoint));
    }
    if !s.args.is_empty() {
        c.insert("Args".into(), json!(s.args));
    }
    if !s.env.is_empty() {
        c.insert("Env".into(), json!(s.env));
    }
    if !s.workdir.is_empty() {
        c.insert("Dir".into(), json!(s.workdir));
    }
    if !s.user.is_empty() {
        c.insert("User".into(), json!(s.user));
    }
    // What the CLI sends for every service it makes (`Init` is a `*bool`, `DNSConfig` a
    // struct): dockerd gives them back as sent.
    c.insert("Init".into(), json!(s.init));
    if s.tty {
        c.insert("TTY".into(), json!(true));
    }
    if s.stop_grace_ms != 0 {
        c.insert("StopGracePeriod".into(), json!(ns(s.stop_grace_ms)));
    }
    if let Some(h) = &s.healthcheck {
        c.insert("Healthcheck".into(), health(h));
    }
    if !s.secrets.is_empty() {
        let v: Vec<Value> = s
            .secrets
            .iter()
            .map(|r| {
                let target = if r.target.is_empty() {
                    &r.name
                } else {
                    &r.target
                };
                json!({
                    "File": file(target, r.uid, r.gid, r.mode),
                    "SecretID": r.id,
                    "SecretName": r.name,
                })
            })
            .collect();
        c.insert("Secrets".into(), json!(v));
    }
    if !s.configs.is_empty() {
        let v: Vec<Value> = s
            .configs
            .iter()
            .map(|r| {
                let target = if r.target.is_empty() {
                    format!("/{}", r.name)
                } else {
                    r.target.clone()
                };
                json!({
                    "File": file(&target, r.uid, r.gid, r.mode),
                    "ConfigID": r.id,
                    "ConfigName": r.name,
                })
            })
            .collect();
        c.insert("Configs".into(), json!(v));
    }
    c.insert("DNSConfig".into(), json!({}));
    c.insert("Isolation".into(), json!("default"));
    Value::Object(c)
}

/// `TaskSpec` (a service's `TaskTemplate`, a task's `Spec`).
pub fn task_spec(s: &pb::ServiceSpec) -> Value {
    let mut limits = Map::new();
    if s.limit_cpus > 0.0 {
        limits.insert("NanoCPUs".into(), json!((s.limit_cpus * 1e9) as i64));
    }
    if s.limit_memory_bytes > 0 {
        limits.insert("MemoryBytes".into(), json!(s.limit_memory_bytes));
    }
    let restart = match &s.restart {
        Some(r) => json!({
            "Condition": names::restart_condition(r.condition()),
            "Delay": ns(r.delay_ms),
            "MaxAttempts": r.max_attempts,
        }),
        None => json!({ "Condition": "any", "MaxAttempts": 0 }),
    };
    let mut placement = Map::new();
    if !s.constraints.is_empty() {
        placement.insert("Constraints".into(), json!(s.constraints));
    }
    let mut t = json!({
        "ContainerSpec": container_spec(s),
        "Resources": { "Limits": limits, "Reservations": {} },
        "RestartPolicy": restart,
        "Placement": placement,
        "ForceUpdate": s.force_update,
    });
    // A `--runtime process` service has no `Runtime` here: the CLI refuses to send back a
    // container spec with any runtime but `container` ("mismatched runtime with container
    // spec"), and an update without one keeps the service's.
    if s.runtime() == pb::Runtime::Container {
        t["Runtime"] = json!("container");
    }
    if !s.networks.is_empty() {
        let nets: Vec<Value> = s
            .networks
            .iter()
            .map(|n| {
                let mut v = json!({ "Target": n.target });
                if !n.aliases.is_empty() {
                    v["Aliases"] = json!(n.aliases);
                }
                v
            })
            .collect();
        t["Networks"] = json!(nets);
    }
    t
}

/// `UpdateConfig` / `RollbackConfig`; unset: Docker's defaults (what the CLI sends).
fn update_config(u: Option<&pb::UpdateConfig>) -> Value {
    let d = pb::UpdateConfig {
        parallelism: 1,
        monitor_ms: 5000,
        ..Default::default()
    };
    let u = u.unwrap_or(&d);
    json!({
        "Parallelism": u.parallelism,
        "Delay": ns(u.delay_ms),
        "FailureAction": match u.failure_action() {
            pb::FailureAction::Pause => "pause",
            pb::FailureAction::Continue => "continue",
            pb::FailureAction::Rollback => "rollback",
        },
        "Monitor": ns(u.monitor_ms),
        "MaxFailureRatio": u.max_failure_ratio,
        "Order": match u.order() {
            pb::UpdateOrder::StopFirst => "stop-first",
            pb::UpdateOrder::StartFirst => "start-first",
        },
    })
}

fn port(p: &pb::PortConfig) -> Value {
    json!({
        "Protocol": names::protocol(p.protocol()),
        "TargetPort": p.target,
        "PublishedPort": p.published,
        "PublishMode": names::publish_mode(p.mode()),
    })
}

fn endpoint_spec(s: &pb::ServiceSpec) -> Value {
    let mut e = json!({ "Mode": names::endpoint_mode(s.endpoint_mode()) });
    if !s.ports.is_empty() {
        e["Ports"] = json!(s.ports.iter().map(port).collect::<Vec<_>>());
    }
    e
}

/// `ServiceSpec`.
pub fn spec(s: &pb::ServiceSpec) -> Value {
    json!({
        "Name": s.name,
        "Labels": labels(&s.labels),
        "TaskTemplate": task_spec(s),
        "Mode": if s.global {
            json!({ "Global": {} })
        } else {
            json!({ "Replicated": { "Replicas": s.replicas } })
        },
        "UpdateConfig": update_config(s.update_config.as_ref()),
        "RollbackConfig": update_config(s.rollback_config.as_ref()),
        "EndpointSpec": endpoint_spec(s),
    })
}

/// A service as `GET /services/{id}` answers it; with `status`, its `ServiceStatus` (running
/// and desired tasks) as `GET /services?status=true` adds it.
pub fn service(s: &pb::Service, status: bool) -> Value {
    let empty = pb::ServiceSpec::default();
    let sp = s.spec.as_ref().unwrap_or(&empty);
    let mut endpoint = json!({ "Spec": endpoint_spec(sp) });
    if !s.ports.is_empty() {
        endpoint["Ports"] = json!(s.ports.iter().map(port).collect::<Vec<_>>());
    }
    if !s.vips.is_empty() {
        let vips: Vec<Value> = s
            .vips
            .iter()
            .map(|v| json!({ "NetworkID": v.network_id, "Addr": v.addr }))
            .collect();
        endpoint["VirtualIPs"] = json!(vips);
    }
    let mut v = json!({
        "ID": s.id,
        "Version": version(s.version),
        "CreatedAt": ts(s.created_ms),
        "UpdatedAt": ts(s.updated_ms),
        "Spec": spec(sp),
    });
    if let Some(p) = &s.previous_spec {
        v["PreviousSpec"] = spec(p);
    }
    v["Endpoint"] = endpoint;
    if let Some(u) = &s.update_status {
        if u.state() != pb::UpdateState::None {
            let mut us = json!({ "State": names::update_state(u.state()) });
            if u.started_ms != 0 {
                us["StartedAt"] = json!(ts(u.started_ms));
            }
            if u.completed_ms != 0 {
                us["CompletedAt"] = json!(ts(u.completed_ms));
            }
            us["Message"] = json!(u.message);
            v["UpdateStatus"] = us;
        }
    }
    if status {
        v["ServiceStatus"] = json!({
            "RunningTasks": s.running,
            "DesiredTasks": s.desired,
            "CompletedTasks": 0,
        });
    }
    v
}
