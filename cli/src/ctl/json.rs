//! `--format json`: the wire objects as JSON. prost types do not derive serde, so each is mapped
//! here by hand; enums become lowercase words (`"manager"`, `"running"`) and times stay in
//! milliseconds since the epoch, as on the wire.

use super::names;
use serde_json::{json, Map, Value};
use shoal_proto::model::Ipv4Net;
use shoal_proto::pb;
use std::collections::{BTreeMap, HashMap};

/// Labels, sorted by key.
pub fn labels(m: &HashMap<String, String>) -> Value {
    json!(m.iter().collect::<BTreeMap<_, _>>())
}

/// A cluster.
pub fn cluster(c: &pb::Cluster) -> Value {
    json!({
        "id": c.id,
        "default_addr_pool": c.default_addr_pool,
        "subnet_size": c.subnet_size,
        "created_ms": c.created_ms,
        "raft": { "leader": c.raft_leader, "term": c.raft_term, "last_applied": c.raft_last_applied },
        "managers": c.managers,
        "workers": c.workers,
        "heartbeat_period_ms": c.heartbeat_period_ms,
        "ca": {
            "digest": c.ca_digest,
            "cert_expiry_ms": c.cert_expiry_ms,
            "rotating": c.ca_rotating,
            "rotation_pending_nodes": c.ca_rotation_pending,
        },
        "autolock": c.autolock,
    })
}

/// A node.
pub fn node(n: &pb::Node) -> Value {
    json!({
        "id": n.id,
        "hostname": n.hostname,
        "role": names::role(n.role()),
        "availability": names::availability(n.availability()).to_lowercase(),
        "state": names::node_state(n.state()).to_lowercase(),
        "certificate": { "not_after_ms": n.cert_not_after_ms, "issuer": n.cert_issuer },
        "state_message": n.state_message,
        "addr": n.addr,
        "labels": labels(&n.labels),
        "manager_status": n.manager_status,
        "raft_id": n.raft_id,
        "created_ms": n.created_ms,
        "updated_ms": n.updated_ms,
        "version": n.version,
    })
}

/// A network.
pub fn network(n: &pb::Network) -> Value {
    json!({
        "id": n.id,
        "name": n.name,
        "driver": names::driver(n.driver()),
        "scope": names::scope(n.driver()),
        "subnet": n.subnet,
        "gateway": n.gateway,
        "vni": n.vni,
        "attachable": n.attachable,
        "ingress": n.ingress,
        "labels": labels(&n.labels),
        "created_ms": n.created_ms,
        "version": n.version,
    })
}

/// A port, published or requested.
pub fn port(p: &pb::PortConfig) -> Value {
    json!({
        "protocol": names::protocol(p.protocol()),
        "target": p.target,
        "published": p.published,
        "mode": names::publish_mode(p.mode()),
        "traffic": names::traffic(p.traffic()),
    })
}

/// A service spec.
pub fn spec(s: &pb::ServiceSpec) -> Value {
    let mut v = spec_fields(s);
    // Only when used, so that the JSON of services without any stays as it was.
    let file = |id: &str, name: &str, target: &str, uid: u32, gid: u32, mode: Option<u32>| {
        json!({
            "id": id,
            "name": name,
            "target": target,
            "uid": uid,
            "gid": gid,
            "mode": format!("{:04o}", mode.unwrap_or(0o444)),
        })
    };
    if !s.secrets.is_empty() {
        v["secrets"] = s
            .secrets
            .iter()
            .map(|r| file(&r.id, &r.name, &r.target, r.uid, r.gid, r.mode))
            .collect();
    }
    if !s.configs.is_empty() {
        v["configs"] = s
            .configs
            .iter()
            .map(|r| file(&r.id, &r.name, &r.target, r.uid, r.gid, r.mode))
            .collect();
    }
    v
}

fn spec_fields(s: &pb::ServiceSpec) -> Value {
    let mut mode = Map::new();
    if s.global {
        mode.insert("global".into(), json!({}));
    } else {
        mode.insert("replicated".into(), json!({ "replicas": s.replicas }));
    }
    let restart = s.restart.unwrap_or_default();
    json!({
        "name": s.name,
        "mode": mode,
        "image": s.image,
        // The digest the tag was pinned to at create/update (empty: not pinned).
        "image_digest": s.image_digest,
        "args": s.args,
        "env": s.env,
        "ports": s.ports.iter().map(port).collect::<Vec<_>>(),
        "networks": s.networks.iter().map(|n| json!({ "target": n.target, "aliases": n.aliases })).collect::<Vec<_>>(),
        "endpoint_mode": names::endpoint_mode(s.endpoint_mode()),
        "restart": {
            "condition": names::restart_condition(restart.condition()),
            "delay_ms": restart.delay_ms,
            "max_attempts": restart.max_attempts,
        },
        "constraints": s.constraints,
        "labels": labels(&s.labels),
        "stop_grace_ms": s.stop_grace_ms,
        "limit_memory_bytes": s.limit_memory_bytes,
        "limit_cpus": s.limit_cpus,
        "force_update": s.force_update,
        // Docker's test form; null: the image's check (if any).
        "healthcheck": s.healthcheck.as_ref().map(|h| json!({
            "test": h.test,
            "interval_ms": h.interval_ms,
            "timeout_ms": h.timeout_ms,
            "start_period_ms": h.start_period_ms,
            "retries": h.retries,
        })),
        // null: the node's default drain (1 s).
        "stop_drain_ms": s.stop_drain_ms,
        "update_config": update_config(s.update_config.as_ref()),
        "rollback_config": update_config(s.rollback_config.as_ref()),
    })
}

/// An update or rollback policy (Docker's defaults when unset).
fn update_config(c: Option<&pb::UpdateConfig>) -> Value {
    let m: shoal_proto::model::UpdateConfig = c.map(Into::into).unwrap_or_default();
    json!({
        "parallelism": m.parallelism,
        "delay_ms": m.delay_ms,
        "failure_action": m.failure_action.as_str(),
        "monitor_ms": m.monitor_ms,
        "max_failure_ratio": m.max_failure_ratio,
        "order": m.order.as_str(),
    })
}

/// An update's progress (`null` before the first update).
fn update_status(u: &pb::UpdateStatus) -> Value {
    json!({
        "state": names::update_state(u.state()),
        "started_ms": u.started_ms,
        "completed_ms": u.completed_ms,
        "message": u.message,
    })
}

/// A service.
pub fn service(s: &pb::Service) -> Value {
    json!({
        "id": s.id,
        "spec": s.spec.as_ref().map(spec),
        "spec_version": s.spec_version,
        "ports": s.ports.iter().map(port).collect::<Vec<_>>(),
        "vips": s.vips.iter().map(|v| json!({ "network_id": v.network_id, "addr": v.addr })).collect::<Vec<_>>(),
        "created_ms": s.created_ms,
        "updated_ms": s.updated_ms,
        "version": s.version,
        "running": s.running,
        "desired": s.desired,
        "update_status": s.update_status.as_ref().map(update_status),
        "previous_spec": s.previous_spec.as_ref().map(spec),
    })
}

/// A task.
pub fn task(t: &pb::Task) -> Value {
    let st = t.status.clone().unwrap_or_default();
    json!({
        "id": t.id,
        "name": t.name,
        "service_id": t.service_id,
        "service_name": t.service_name,
        "slot": t.slot,
        "node_id": t.node_id,
        "spec": t.spec.as_ref().map(spec),
        "spec_version": t.spec_version,
        "desired_state": names::task_state(t.desired_state).to_lowercase(),
        "status": {
            "state": names::task_state(st.state).to_lowercase(),
            "message": st.message,
            "err": st.err,
            "timestamp_ms": st.timestamp_ms,
            "exit_code": st.has_exit_code.then_some(st.exit_code),
            "pid": st.pid,
            "addresses": st.addresses,
            // "", "starting", "healthy" or "unhealthy".
            "health": shoal_proto::model::TaskHealth::from(st.health()).as_str(),
        },
        "networks": if t.networks.is_empty() { local_attachments(&st.addresses) } else { t.networks.iter().map(|n| {
            // Local networks' addresses come from the node (in the status), overlays' from
            // the managers.
            let local: Vec<String> = st
                .addresses
                .iter()
                .filter_map(|a| a.strip_prefix(&format!("{}=", n.network_name)).map(str::to_string))
                .collect();
            let addrs = if n.addresses.is_empty() { local } else { n.addresses.clone() };
            json!({
            "network_id": n.network_id,
            "network": n.network_name,
            "driver": names::driver(n.driver()),
            "addresses": addrs,
            "macs": addrs.iter().map(|a| mac_of(a)).collect::<Vec<_>>(),
            "gateway": n.gateway,
            "aliases": n.aliases,
        })}).collect::<Vec<_>>() },
        "attempt": t.attempt,
        "created_ms": t.created_ms,
        "version": t.version,
    })
}

/// Attachments of a task with no network of its own (the default `bridge`), from the addresses
/// its node reported (`network=address/prefix`).
fn local_attachments(addresses: &[String]) -> Vec<Value> {
    addresses
        .iter()
        .filter_map(|a| a.split_once('='))
        .map(|(net, cidr)| {
            json!({
                "network_id": "",
                "network": net,
                "driver": "bridge",
                "addresses": [cidr],
                "macs": [mac_of(cidr)],
                "gateway": first_host(cidr),
                "aliases": Vec::<String>::new(),
            })
        })
        .collect()
}

/// The first host of `a.b.c.d/len` (the gateway by Shoal's convention).
fn first_host(cidr: &str) -> String {
    match cidr.parse::<Ipv4Net>() {
        Ok(n) if (1..=30).contains(&n.prefix()) => n.host(1).to_string(),
        _ => String::new(),
    }
}

/// The MAC a task's interface has for an address (`02:42` + the IPv4 address, as Docker).
fn mac_of(cidr: &str) -> String {
    match Ipv4Net::addr_of(cidr) {
        Some(a) => {
            let o = a.octets();
            format!("02:42:{:02x}:{:02x}:{:02x}:{:02x}", o[0], o[1], o[2], o[3])
        }
        None => String::new(),
    }
}

/// `network inspect --lb --format json`.
pub fn lb_report(r: &pb::LbReport) -> Value {
    json!({
        "network": r.network,
        "network_id": r.network_id,
        "nodes": r.nodes.iter().map(|n| json!({
            "node_id": n.node_id,
            "hostname": n.hostname,
            "error": n.error,
            "namespace": n.namespace,
            "kind": n.kind,
            "lb_addr": n.lb_addr,
            "services": n.services.iter().map(|s| json!({
                "fwmark": s.fwmark,
                "scheduler": s.scheduler,
                "name": s.name,
                "vip": s.vip,
                "ports": s.ports.iter().map(|p| json!({
                    "protocol": if p.protocol == pb::Protocol::Udp as i32 { "udp" } else { "tcp" },
                    "published": p.published,
                    "target": p.target,
                })).collect::<Vec<_>>(),
                "backends": s.backends.iter().map(|b| json!({
                    "name": b.name,
                    "addr": b.addr,
                    "forward": b.forward,
                    "weight": b.weight,
                    "active": b.active,
                    "inactive": b.inactive,
                    "connections": b.connections,
                })).collect::<Vec<_>>(),
            })).collect::<Vec<_>>(),
        })).collect::<Vec<_>>(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn local_attachments_come_from_the_status() {
        let v = local_attachments(&["bridge=172.17.0.2/16".to_string()]);
        assert_eq!(v[0]["network"], "bridge");
        assert_eq!(v[0]["macs"][0], "02:42:ac:11:00:02");
        assert_eq!(v[0]["gateway"], "172.17.0.1");
    }

    #[test]
    fn macs_follow_addresses() {
        assert_eq!(mac_of("10.0.1.7/24"), "02:42:0a:00:01:07");
        assert_eq!(mac_of("bad"), "");
        assert_eq!(mac_of("10.0.1.7"), "02:42:0a:00:01:07");
        assert_eq!(first_host("10.0.1.7/24"), "10.0.1.1");
        for none in [
            "10.0.1.7",
            "10.0.1.7/31",
            "10.0.1.7/0",
            "10.0.1.7/300",
            "x/24",
        ] {
            assert_eq!(first_host(none), "", "{none}");
        }
    }

    #[test]
    fn enums_are_words() {
        let n = pb::Node {
            id: "n1".into(),
            role: pb::NodeRole::Manager as i32,
            state: pb::NodeState::Ready as i32,
            ..Default::default()
        };
        let v = node(&n);
        assert_eq!(v["role"], "manager");
        assert_eq!(v["state"], "ready");
        assert_eq!(v["availability"], "active");
        let t = pb::Task {
            desired_state: pb::TaskState::Running as i32,
            status: Some(pb::TaskStatus {
                state: pb::TaskState::Failed as i32,
                exit_code: 2,
                has_exit_code: true,
                ..Default::default()
            }),
            ..Default::default()
        };
        let v = task(&t);
        assert_eq!(
            (v["desired_state"].as_str(), v["status"]["state"].as_str()),
            (Some("running"), Some("failed"))
        );
        assert_eq!(v["status"]["exit_code"], 2);
        let s = pb::ServiceSpec {
            global: true,
            ..Default::default()
        };
        assert!(spec(&s)["mode"]["global"].is_object());
    }
}
