//! `swarm.Task`.

use super::{ts, version};
use serde_json::{json, Value};
use shoal_proto::model::TaskState;
use shoal_proto::pb;

/// Docker's name for a task state (`running`, `shutdown`, …), from its wire value.
pub fn state(v: i32) -> String {
    TaskState::from_i32(v)
        .map(|s| s.display().to_ascii_lowercase())
        .unwrap_or_else(|| "unknown".into())
}

fn attachment(a: &pb::NetworkAttachment) -> Value {
    let driver = crate::ctl::names::driver(a.driver());
    let mut ipam = json!({ "Driver": { "Name": "default" } });
    if !a.subnet.is_empty() {
        ipam["Configs"] = json!([{ "Subnet": a.subnet, "Gateway": a.gateway }]);
    }
    let mut spec = json!({
        "Name": a.network_name,
        "Labels": {},
        "DriverConfiguration": { "Name": driver },
        "Scope": crate::ctl::names::scope(a.driver()),
    });
    if a.network_name == "ingress" {
        spec["Ingress"] = json!(true);
    }
    let mut net = json!({
        "ID": a.network_id,
        "Version": {},
        "CreatedAt": ts(0),
        "UpdatedAt": ts(0),
        "Spec": spec,
        "DriverState": { "Name": driver },
        "IPAMOptions": ipam,
    });
    if a.vni != 0 {
        net["DriverState"]["Options"] =
            json!({ "com.docker.network.driver.overlay.vxlanid_list": a.vni.to_string() });
    }
    let mut v = json!({ "Network": net, "Addresses": a.addresses });
    if !a.aliases.is_empty() {
        v["Aliases"] = json!(a.aliases);
    }
    v
}

/// A task as `GET /tasks/{id}` answers it.
pub fn task(t: &pb::Task) -> Value {
    let empty = pb::TaskStatus::default();
    let st = t.status.as_ref().unwrap_or(&empty);
    let mut status = json!({
        "Timestamp": ts(st.timestamp_ms),
        "State": state(st.state),
        "Message": st.message,
    });
    if !st.err.is_empty() {
        status["Err"] = json!(st.err);
    }
    let mut cs = json!({ "ContainerID": "", "PID": st.pid });
    cs["ExitCode"] = json!(if st.has_exit_code { st.exit_code } else { 0 });
    status["ContainerStatus"] = cs;
    status["PortStatus"] = json!({});
    let spec = t
        .spec
        .as_ref()
        .map(super::service::task_spec)
        .unwrap_or_else(|| json!({}));
    let mut v = json!({
        "ID": t.id,
        "Version": version(t.version),
        "CreatedAt": ts(t.created_ms),
        "UpdatedAt": ts(st.timestamp_ms.max(t.created_ms)),
        "Labels": {},
        "Spec": spec,
        "ServiceID": t.service_id,
        "Slot": t.slot,
        "Status": status,
        "DesiredState": state(t.desired_state),
    });
    if !t.node_id.is_empty() {
        v["NodeID"] = json!(t.node_id);
    }
    if !t.networks.is_empty() {
        v["NetworksAttachments"] = json!(t.networks.iter().map(attachment).collect::<Vec<_>>());
    }
    v
}
