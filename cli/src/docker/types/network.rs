//! `types.NetworkResource`, what `GET /networks` lists (not `swarm.Network`).

use super::{labels, ts};
use crate::ctl::names;
use serde_json::{json, Value};
use shoal_proto::pb;

/// A network as `GET /networks/{id}` answers it.
pub fn network(n: &pb::Network) -> Value {
    let config = if n.subnet.is_empty() {
        json!([])
    } else {
        json!([{ "Subnet": n.subnet, "Gateway": n.gateway }])
    };
    let mut options = serde_json::Map::new();
    if n.vni != 0 {
        options.insert(
            "com.docker.network.driver.overlay.vxlanid_list".into(),
            json!(n.vni.to_string()),
        );
    }
    json!({
        "Name": n.name,
        "Id": n.id,
        "Created": ts(n.created_ms),
        "Scope": names::scope(n.driver()),
        "Driver": names::driver(n.driver()),
        "EnableIPv6": false,
        "IPAM": { "Driver": "default", "Options": null, "Config": config },
        "Internal": false,
        "Attachable": n.attachable,
        "Ingress": n.ingress,
        "ConfigFrom": { "Network": "" },
        "ConfigOnly": false,
        "Containers": null,
        "Options": options,
        "Labels": labels(&n.labels),
    })
}
