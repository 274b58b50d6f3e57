//! Control objects in Docker's JSON shapes (moby's `api/types/swarm` and `types.NetworkResource`):
//! field names, nesting and units as dockerd 20.10 sends them (times RFC 3339 with nanoseconds,
//! durations in nanoseconds, enums in lower case).

pub mod container;
pub mod data;
pub mod network;
pub mod node;
pub mod service;
pub mod system;
pub mod task;

use serde_json::{Map, Value};
use std::collections::HashMap;

/// `ms` since the epoch as Docker's times (`2026-12-06T14:00:00.123000000Z`).
pub fn ts(ms: i64) -> String {
    crate::ctl::time::rfc3339_nano(ms)
}

/// Milliseconds as Go's `time.Duration` (nanoseconds).
pub fn ns(ms: u64) -> u64 {
    ms.saturating_mul(1_000_000)
}

/// Labels as a JSON object, keys sorted (`{}` when there are none: Docker never omits them).
pub fn labels(l: &HashMap<String, String>) -> Value {
    let mut keys: Vec<&String> = l.keys().collect();
    keys.sort();
    Value::Object(
        keys.into_iter()
            .map(|k| (k.clone(), Value::String(l[k].clone())))
            .collect::<Map<String, Value>>(),
    )
}

/// `{"Index": version}`.
pub fn version(v: u64) -> Value {
    serde_json::json!({ "Index": v })
}

/// The IP of an `ip:port` address (Docker's node `Status.Addr` and `NodeAddr` have no port).
pub fn ip_of(addr: &str) -> String {
    match addr.parse::<std::net::SocketAddr>() {
        Ok(a) => a.ip().to_string(),
        Err(_) => addr.to_string(),
    }
}
