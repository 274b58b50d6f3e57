//! `swarm.Secret` and `swarm.Config`.

use super::{labels, ts, version};
use base64::Engine as _;
use serde_json::{json, Value};
use shoal_proto::pb;

/// A secret as `GET /secrets/{id}` answers it (never its data, as dockerd).
pub fn secret(s: &pb::SecretInfo) -> Value {
    json!({
        "ID": s.id,
        "Version": version(s.version),
        "CreatedAt": ts(s.created_ms),
        "UpdatedAt": ts(s.updated_ms),
        "Spec": { "Name": s.name, "Labels": labels(&s.labels) },
    })
}

/// A config as `GET /configs/{id}` answers it, with its data (base64, as Go's `[]byte`).
pub fn config(c: &pb::ConfigInfo) -> Value {
    json!({
        "ID": c.id,
        "Version": version(c.version),
        "CreatedAt": ts(c.created_ms),
        "UpdatedAt": ts(c.updated_ms),
        "Spec": {
            "Name": c.name,
            "Labels": labels(&c.labels),
            "Data": base64::engine::general_purpose::STANDARD.encode(&c.data),
        },
    })
}
