//! A task as a container: `types.Container` (`GET /containers/json`, `docker ps`) and
//! `types.ContainerJSON` (`GET /containers/{id}/json`, `docker inspect`), as dockerd shows the
//! containers of swarm tasks: named `service.slot.taskid`, labelled `com.docker.swarm.*`.
//!
//! Shoal runs a task without a separate container object, so a container's id is its task's
//! id (the CLI shows its first 12 characters), and its host name is the task id too.

use super::{labels, ts};
use serde_json::{json, Map, Value};
use shoal_proto::model::TaskState;
use shoal_proto::pb;

/// Docker's container state (`created`, `running`, `exited`) of a task state.
pub fn state(t: &pb::Task) -> &'static str {
    let st = t.status.as_ref().map(|s| s.state).unwrap_or_default();
    match TaskState::from_i32(st) {
        Some(TaskState::Running) => "running",
        Some(s) if s > TaskState::Running => "exited",
        _ => "created",
    }
}

/// Whether the task's container exists or existed on its node (the agent took it: ACCEPTED or
/// later). `docker ps -a` lists those.
pub fn has_container(t: &pb::Task) -> bool {
    let st = t.status.as_ref().map(|s| s.state).unwrap_or_default();
    TaskState::from_i32(st).is_some_and(|s| s >= TaskState::Accepted)
}

/// dockerd's `State.String()`: `Up 5 minutes`, `Exited (0) 3 seconds ago`, `Created`.
pub fn status_text(t: &pb::Task, now_ms: i64) -> String {
    let empty = pb::TaskStatus::default();
    let st = t.status.as_ref().unwrap_or(&empty);
    let since = |ms: i64| capitalized(&crate::ctl::output::human_duration(now_ms - ms));
    match state(t) {
        "running" => format!("Up {}", since(st.timestamp_ms)),
        "exited" => format!(
            "Exited ({}) {} ago",
            if st.has_exit_code { st.exit_code } else { 0 },
            since(st.timestamp_ms)
        ),
        _ => "Created".into(),
    }
}

/// Go's `units.HumanDuration` starts with a capital (`Less than a second`, `About a minute`).
fn capitalized(s: &str) -> String {
    let mut c = s.chars();
    match c.next() {
        Some(f) => f.to_uppercase().chain(c).collect(),
        None => String::new(),
    }
}

/// The image as swarm containers show it: `name:tag@sha256:…` when the service is pinned.
pub fn image(s: &pb::ServiceSpec) -> String {
    if s.image_digest.is_empty() || s.image.contains('@') {
        s.image.clone()
    } else {
        format!("{}@{}", s.image, s.image_digest)
    }
}

/// The command line (`docker ps`'s COMMAND, quoted and cut by the CLI).
pub fn command(s: &pb::ServiceSpec) -> String {
    s.entrypoint
        .iter()
        .chain(s.args.iter())
        .cloned()
        .collect::<Vec<_>>()
        .join(" ")
}

/// The service's labels and the `com.docker.swarm.*` ones dockerd puts on a task's container.
pub fn container_labels(t: &pb::Task) -> Value {
    let mut l = t
        .spec
        .as_ref()
        .map(|s| s.labels.clone())
        .unwrap_or_default();
    for (k, v) in [
        ("com.docker.swarm.node.id", &t.node_id),
        ("com.docker.swarm.service.id", &t.service_id),
        ("com.docker.swarm.service.name", &t.service_name),
        ("com.docker.swarm.task", &String::new()),
        ("com.docker.swarm.task.id", &t.id),
        ("com.docker.swarm.task.name", &t.name),
    ] {
        l.insert(k.to_string(), v.clone());
    }
    labels(&l)
}

/// An address `10.0.1.5/24` as (`10.0.1.5`, 24).
fn split_cidr(a: &str) -> (String, u32) {
    match a.split_once('/') {
        Some((ip, p)) => (ip.to_string(), p.parse().unwrap_or(0)),
        None => (a.to_string(), 0),
    }
}

/// One `EndpointSettings`.
fn endpoint(network_id: &str, addr: Option<&str>, gateway: &str, aliases: &[String]) -> Value {
    let (ip, prefix) = addr.map(split_cidr).unwrap_or_default();
    let gateway = gateway.split('/').next().unwrap_or_default();
    let ipam = if ip.is_empty() {
        Value::Null
    } else {
        json!({ "IPv4Address": ip })
    };
    json!({
        "IPAMConfig": ipam,
        "Links": null,
        "Aliases": if aliases.is_empty() { Value::Null } else { json!(aliases) },
        "NetworkID": network_id,
        "EndpointID": "",
        "Gateway": gateway,
        "IPAddress": ip,
        "IPPrefixLen": prefix,
        "IPv6Gateway": "",
        "GlobalIPv6Address": "",
        "GlobalIPv6PrefixLen": 0,
        "MacAddress": "",
        "DriverOpts": null,
    })
}

/// `NetworkSettings.Networks`: the task's swarm networks (overlay attachments, `ingress`
/// included) by name, then the local networks its node gave it (`status.addresses`).
pub fn networks(t: &pb::Task) -> Value {
    let mut m = Map::new();
    for a in &t.networks {
        m.insert(
            a.network_name.clone(),
            endpoint(
                &a.network_id,
                a.addresses.first().map(String::as_str),
                &a.gateway,
                &a.aliases,
            ),
        );
    }
    if let Some(st) = &t.status {
        for a in &st.addresses {
            if let Some((net, addr)) = a.split_once('=') {
                m.entry(net.to_string())
                    .or_insert_with(|| endpoint("", Some(addr), "", &[]));
            }
        }
    }
    Value::Object(m)
}

/// A task in `GET /containers/json`'s list.
pub fn summary(t: &pb::Task, now_ms: i64) -> Value {
    let empty = pb::ServiceSpec::default();
    let spec = t.spec.as_ref().unwrap_or(&empty);
    json!({
        "Id": t.id,
        "Names": [format!("/{}", t.name)],
        "Image": image(spec),
        "ImageID": spec.image_digest,
        "Command": command(spec),
        "Created": t.created_ms / 1000,
        "Ports": [],
        "Labels": container_labels(t),
        "State": state(t),
        "Status": status_text(t, now_ms),
        "HostConfig": { "NetworkMode": "default" },
        "NetworkSettings": { "Networks": networks(t) },
        "Mounts": [],
    })
}

/// A task as `GET /containers/{id}/json` answers it.
pub fn inspect(t: &pb::Task) -> Value {
    let empty = pb::ServiceSpec::default();
    let spec = t.spec.as_ref().unwrap_or(&empty);
    let st = t.status.clone().unwrap_or_default();
    let docker_state = state(t);
    let running = docker_state == "running";
    let started = if TaskState::from_i32(st.state).is_some_and(|s| s >= TaskState::Running) {
        ts(st.timestamp_ms)
    } else {
        ts(0)
    };
    let finished = if docker_state == "exited" {
        ts(st.timestamp_ms)
    } else {
        ts(0)
    };
    let (path, args) = match spec.entrypoint.split_first() {
        Some((p, rest)) => (p.clone(), rest.iter().chain(&spec.args).cloned().collect()),
        None => match spec.args.split_first() {
            Some((p, rest)) => (p.clone(), rest.to_vec()),
            None => (String::new(), Vec::new()),
        },
    };
    json!({
        "Id": t.id,
        "Created": ts(t.created_ms),
        "Path": path,
        "Args": args,
        "State": {
            "Status": docker_state,
            "Running": running,
            "Paused": false,
            "Restarting": false,
            "OOMKilled": false,
            "Dead": false,
            "Pid": if running { st.pid } else { 0 },
            "ExitCode": if st.has_exit_code { st.exit_code } else { 0 },
            "Error": st.err,
            "StartedAt": started,
            "FinishedAt": finished,
        },
        "Image": spec.image_digest,
        "ResolvConfPath": "",
        "HostnamePath": "",
        "HostsPath": "",
        "LogPath": "",
        "Name": format!("/{}", t.name),
        "RestartCount": 0,
        "Driver": "",
        "Platform": "linux",
        "MountLabel": "",
        "ProcessLabel": "",
        "AppArmorProfile": "",
        "ExecIDs": null,
        "HostConfig": {
            "NetworkMode": "default",
            "RestartPolicy": { "Name": "", "MaximumRetryCount": 0 },
            "LogConfig": { "Type": "json-file", "Config": {} },
            "Init": spec.init,
        },
        "GraphDriver": { "Data": null, "Name": "" },
        "Mounts": [],
        "Config": {
            "Hostname": t.id,
            "Domainname": "",
            "User": spec.user,
            "AttachStdin": false,
            "AttachStdout": false,
            "AttachStderr": false,
            "Tty": spec.tty,
            "OpenStdin": false,
            "StdinOnce": false,
            "Env": spec.env,
            "Cmd": if spec.args.is_empty() { Value::Null } else { json!(spec.args) },
            "Image": image(spec),
            "Volumes": null,
            "WorkingDir": spec.workdir,
            "Entrypoint": if spec.entrypoint.is_empty() { Value::Null } else { json!(spec.entrypoint) },
            "OnBuild": null,
            "Labels": container_labels(t),
        },
        "NetworkSettings": {
            "Bridge": "",
            "SandboxID": "",
            "HairpinMode": false,
            "LinkLocalIPv6Address": "",
            "LinkLocalIPv6PrefixLen": 0,
            "Ports": {},
            "SandboxKey": "",
            "SecondaryIPAddresses": null,
            "SecondaryIPv6Addresses": null,
            "EndpointID": "",
            "Gateway": "",
            "GlobalIPv6Address": "",
            "GlobalIPv6PrefixLen": 0,
            "IPAddress": "",
            "IPPrefixLen": 0,
            "IPv6Gateway": "",
            "MacAddress": "",
            "Networks": networks(t),
        },
    })
}
