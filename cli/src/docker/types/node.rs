//! `swarm.Node`.

use super::{ip_of, labels, ts, version};
use crate::docker::ENGINE_VERSION;
use serde_json::{json, Value};
use shoal_proto::pb;

/// Docker's name for a node state (`ready`, `down`, …).
pub fn state(s: pb::NodeState) -> &'static str {
    match s {
        pb::NodeState::Unknown => "unknown",
        pb::NodeState::Down => "down",
        pb::NodeState::Ready => "ready",
        pb::NodeState::Disconnected => "disconnected",
    }
}

/// Docker's name for an availability (`active`, `pause`, `drain`).
pub fn availability(a: pb::Availability) -> &'static str {
    match a {
        pb::Availability::Active => "active",
        pb::Availability::Pause => "pause",
        pb::Availability::Drain => "drain",
    }
}

/// Go's name for this machine's architecture (`amd64`, `arm64`).
pub fn go_arch() -> &'static str {
    match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        a => a,
    }
}

/// The network drivers every Shoal engine has (`/info`'s `Plugins.Network`).
pub const NETWORK_DRIVERS: [&str; 4] = ["bridge", "host", "null", "overlay"];

/// `Description.Engine.Plugins`: `{Type, Name}` of each driver the engine has.
fn plugins() -> Value {
    let v: Vec<Value> = NETWORK_DRIVERS
        .iter()
        .map(|n| json!({ "Type": "Network", "Name": n }))
        .collect();
    json!(v)
}

/// A node as `GET /nodes/{id}` answers it.
pub fn node(n: &pb::Node) -> Value {
    let mut v = json!({
        "ID": n.id,
        "Version": version(n.version),
        "CreatedAt": ts(n.created_ms),
        "UpdatedAt": ts(n.updated_ms),
        "Spec": {
            "Labels": labels(&n.labels),
            "Role": crate::ctl::names::role(n.role()),
            "Availability": availability(n.availability()),
        },
        "Description": {
            "Hostname": n.hostname,
            "Platform": { "Architecture": std::env::consts::ARCH, "OS": "linux" },
            "Resources": {},
            "Engine": { "EngineVersion": ENGINE_VERSION, "Plugins": plugins() },
            "TLSInfo": {},
        },
        "Status": { "State": state(n.state()), "Addr": ip_of(&n.addr) },
    });
    if !n.state_message.is_empty() {
        v["Status"]["Message"] = json!(n.state_message);
    }
    if n.role() == pb::NodeRole::Manager {
        let mut ms = json!({});
        if n.manager_status == "Leader" {
            ms["Leader"] = json!(true);
        }
        ms["Reachability"] = json!(match n.manager_status.as_str() {
            "Leader" | "Reachable" => "reachable",
            "Unreachable" => "unreachable",
            _ => "unknown",
        });
        ms["Addr"] = json!(n.addr);
        v["ManagerStatus"] = ms;
    }
    v
}
