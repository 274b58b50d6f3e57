//! What the page draws: the lab's nodes, networks (with each node's balancer address) and
//! services (VIPs, ports, tasks), read from the managers through the Control API, as any client.

use crate::client::{self, ClientConfig};
use crate::ctl::names;
use crate::lab::state::{LabDir, LabFile};
use serde_json::{json, Value};
use shoal_proto::model::Ipv4Net;
use shoal_proto::pb;
use std::collections::HashMap;
use std::time::Duration;

/// One snapshot of the lab as JSON (see the module's contract in `mod.rs`).
pub async fn take(dir: &LabDir, file: &LabFile) -> anyhow::Result<Value> {
    let cfg = ClientConfig {
        connect_timeout: Duration::from_secs(1),
        request_timeout: Some(Duration::from_secs(3)),
        ..Default::default()
    };
    // Any manager that answers: its control socket in the lab directory.
    let mut last = None;
    let mut c = None;
    for n in file.nodes.iter().filter(|n| dir.socket(&n.name).exists()) {
        match client::connect_with(&dir.host(&n.name), &cfg).await {
            Ok(cl) => {
                c = Some(cl);
                break;
            }
            Err(e) => last = Some(e),
        }
    }
    let Some(mut c) = c else {
        return Err(last.unwrap_or_else(|| anyhow::anyhow!("no manager of the lab answers")));
    };
    let nodes = c.list_nodes(pb::Empty {}).await?.into_inner().nodes;
    let services = c.list_services(pb::Empty {}).await?.into_inner().services;
    let tasks = c
        .list_tasks(pb::TaskFilter::default())
        .await?
        .into_inner()
        .tasks;
    let networks = c.list_networks(pb::Empty {}).await?.into_inner().networks;
    Ok(render(file, &nodes, &services, &tasks, &networks))
}

/// The snapshot from what the managers said.
pub fn render(
    file: &LabFile,
    nodes: &[pb::Node],
    services: &[pb::Service],
    tasks: &[pb::Task],
    networks: &[pb::Network],
) -> Value {
    let host_of: HashMap<&str, &str> = nodes
        .iter()
        .map(|n| (n.id.as_str(), n.hostname.as_str()))
        .collect();
    let net_name: HashMap<&str, &str> = networks
        .iter()
        .map(|n| (n.id.as_str(), n.name.as_str()))
        .collect();
    let mut ns: Vec<Value> = file
        .nodes
        .iter()
        .map(|r| {
            let n = nodes.iter().find(|n| n.hostname == r.name);
            json!({
                "name": r.name,
                "id": n.map(|n| n.id.clone()).unwrap_or_default(),
                "role": n.map(|n| names::role(n.role())).unwrap_or("unknown"),
                "leader": n.is_some_and(|n| n.manager_status == "Leader"),
                "state": n.map(|n| names::node_state(n.state()).to_lowercase()).unwrap_or_else(|| "unknown".into()),
                "address": r.address.to_string(),
            })
        })
        .collect();
    ns.sort_by(|a, b| a["name"].as_str().cmp(&b["name"].as_str()));
    let nets: Vec<Value> = networks
        .iter()
        .filter(|n| names::driver(n.driver()) == "overlay")
        .map(|n| {
            let lb: Vec<Value> = nodes
                .iter()
                .filter_map(|node| {
                    node.lb_addrs
                        .get(&n.id)
                        .map(|a| json!({ "node": node.hostname, "addr": a }))
                })
                .collect();
            json!({
                "id": n.id, "name": n.name, "driver": "overlay", "subnet": n.subnet,
                "ingress": n.ingress, "lb": lb,
            })
        })
        .collect();
    let svcs: Vec<Value> = services
        .iter()
        .map(|s| {
            let spec = s.spec.clone().unwrap_or_default();
            let ts: Vec<Value> = tasks
                .iter()
                .filter(|t| t.service_id == s.id)
                .filter(|t| t.desired_state == pb::TaskState::Running as i32)
                .map(|t| {
                    let ip = t
                        .networks
                        .iter()
                        .find(|a| net_name.get(a.network_id.as_str()) != Some(&"ingress"))
                        .or(t.networks.first())
                        .and_then(|a| a.addresses.first())
                        .and_then(|a| Ipv4Net::addr_of(a))
                        .map(|ip| ip.to_string())
                        .unwrap_or_default();
                    let node = host_of.get(t.node_id.as_str()).copied().unwrap_or("");
                    json!({
                        "id": t.id, "name": t.name, "node": node,
                        "state": names::task_state(t.status.as_ref().map(|st| st.state).unwrap_or(0)).to_lowercase(),
                        "ip": ip,
                    })
                })
                .collect();
            json!({
                "id": s.id,
                "name": spec.name,
                "replicas": s.desired,
                "running": s.running,
                "vips": s.vips.iter().map(|v| json!({
                    "network": net_name.get(v.network_id.as_str()).copied().unwrap_or(""),
                    "addr": v.addr,
                })).collect::<Vec<_>>(),
                "ports": s.ports.iter().filter(|p| p.published > 0).map(|p| json!({
                    "published": p.published,
                    "target": p.target,
                    "protocol": if p.protocol == pb::Protocol::Udp as i32 { "udp" } else { "tcp" },
                })).collect::<Vec<_>>(),
                "tasks": ts,
            })
        })
        .collect();
    json!({ "lab": file.name, "nodes": ns, "networks": nets, "services": svcs })
}
