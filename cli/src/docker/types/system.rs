//! `/version` (`types.Version`) and `/info` (`types.Info` with its `Swarm` section).

use super::node::go_arch;
use super::{ip_of, ns, ts, version as index};
use crate::docker::{LocalNode, API_VERSION, ENGINE_VERSION, MIN_API_VERSION};
use serde_json::{json, Value};
use shoal_proto::pb;

fn kernel_version() -> String {
    std::fs::read_to_string("/proc/sys/kernel/osrelease")
        .map(|s| s.trim().to_string())
        .unwrap_or_default()
}

fn mem_total() -> u64 {
    std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|m| {
            m.lines()
                .find(|l| l.starts_with("MemTotal:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|kb| kb.parse::<u64>().ok())
        })
        .map(|kb| kb * 1024)
        .unwrap_or(0)
}

/// `GET /version`.
pub fn version() -> Value {
    let kernel = kernel_version();
    json!({
        "Platform": { "Name": "Shoal" },
        "Components": [{
            "Name": "Engine",
            "Version": ENGINE_VERSION,
            "Details": {
                "ApiVersion": API_VERSION,
                "MinAPIVersion": MIN_API_VERSION,
                "Os": "linux",
                "Arch": go_arch(),
                "KernelVersion": kernel,
                "GitCommit": "",
                "GoVersion": "",
                "BuildTime": "",
                "Experimental": "false",
            },
        }],
        "Version": ENGINE_VERSION,
        "ApiVersion": API_VERSION,
        "MinAPIVersion": MIN_API_VERSION,
        "GitCommit": "",
        "GoVersion": "",
        "Os": "linux",
        "Arch": go_arch(),
        "KernelVersion": kernel,
        "BuildTime": "",
    })
}

/// `TLSInfo` (of the cluster and of every node) from the root CA's certificate (`ca.crt` in
/// the node's certificate directory): the PEM, and the base64 DER of its subject and public key
/// (the issuer of node certificates). `{}` when there is none (`--insecure-plaintext`).
pub fn tls_info(roots_pem: Option<&str>) -> Value {
    use base64::Engine as _;
    let Some(pem) = roots_pem else {
        return json!({});
    };
    match shoal_security::ca::subject_and_key(pem) {
        Ok((subject, key)) => {
            let b64 = base64::engine::general_purpose::STANDARD;
            json!({
                "TrustRoot": pem,
                "CertIssuerSubject": b64.encode(subject),
                "CertIssuerPublicKey": b64.encode(key),
            })
        }
        Err(_) => json!({}),
    }
}

/// What a manager adds to `/info`: the cluster and its nodes.
#[derive(Debug)]
pub struct ManagerView<'a> {
    /// `GetCluster`.
    pub cluster: &'a pb::Cluster,
    /// `ListNodes`.
    pub nodes: &'a [pb::Node],
}

/// `Swarm.Cluster` (`swarm.ClusterInfo`).
pub fn cluster(c: &pb::Cluster) -> Value {
    json!({
        "ID": c.id,
        "Version": index(c.raft_last_applied),
        "CreatedAt": ts(c.created_ms),
        "UpdatedAt": ts(c.created_ms),
        "Spec": {
            "Name": "default",
            "Labels": {},
            "Orchestration": {
                "TaskHistoryRetentionLimit": shoal_manager::orchestrator::TASK_HISTORY_RETENTION,
            },
            "Raft": {},
            "Dispatcher": { "HeartbeatPeriod": ns(c.heartbeat_period_ms) },
            "CAConfig": { "NodeCertExpiry": ns(c.cert_expiry_ms) },
            "TaskDefaults": {},
            "EncryptionConfig": { "AutoLockManagers": c.autolock },
        },
        "TLSInfo": {},
        "RootRotationInProgress": c.ca_rotating,
        "DefaultAddrPool": if c.default_addr_pool.is_empty() {
            json!([])
        } else {
            json!([c.default_addr_pool])
        },
        "SubnetSize": c.subnet_size,
        "DataPathPort": 4789,
    })
}

/// `GET /swarm` (`swarm.Swarm`): the cluster and its join tokens.
pub fn swarm_inspect(c: &pb::Cluster, worker_token: &str, manager_token: &str) -> Value {
    let mut v = cluster(c);
    v["JoinTokens"] = json!({ "Worker": worker_token, "Manager": manager_token });
    v
}

/// `Swarm` (`swarm.Info`): every node has its own part; a manager adds the cluster's.
pub fn swarm(local: &LocalNode, manager: Option<&ManagerView<'_>>) -> Value {
    if local.state != "active" {
        // In no swarm, joining, or locked: dockerd's shape, no cluster part.
        let (id, addr) = match local.state.as_str() {
            "inactive" => (String::new(), String::new()),
            _ => (local.node_id.clone(), ip_of(&local.addr)),
        };
        return json!({
            "NodeID": id,
            "NodeAddr": addr,
            "LocalNodeState": local.state,
            "ControlAvailable": false,
            "Error": "",
            "RemoteManagers": null,
        });
    }
    let mut v = json!({
        "NodeID": local.node_id,
        "NodeAddr": ip_of(&local.addr),
        "LocalNodeState": "active",
        "ControlAvailable": manager.is_some() || local.manager,
        "Error": "",
    });
    match manager {
        Some(m) => {
            let managers: Vec<&pb::Node> = m
                .nodes
                .iter()
                .filter(|n| n.role() == pb::NodeRole::Manager)
                .collect();
            let peers: Vec<Value> = managers
                .iter()
                .map(|n| json!({ "NodeID": n.id, "Addr": n.addr }))
                .collect();
            v["RemoteManagers"] = json!(peers);
            v["Nodes"] = json!(m.nodes.len());
            v["Managers"] = json!(managers.len());
            v["Cluster"] = cluster(m.cluster);
        }
        None => {
            let peers: Vec<Value> = local
                .managers
                .iter()
                .map(|a| json!({ "NodeID": "", "Addr": a }))
                .collect();
            v["RemoteManagers"] = json!(peers);
        }
    }
    v
}

/// `GET /info`.
pub fn info(local: &LocalNode, manager: Option<&ManagerView<'_>>) -> Value {
    let ncpu = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1);
    // Two halves: one `json!` this size exceeds the macro's recursion limit.
    let mut v = json!({
        "ID": local.node_id,
        "Containers": 0,
        "ContainersRunning": 0,
        "ContainersPaused": 0,
        "ContainersStopped": 0,
        "Images": 0,
        "Driver": "overlay",
        "DriverStatus": [],
        "Plugins": {
            "Volume": [],
            "Network": super::node::NETWORK_DRIVERS,
            "Authorization": null,
            "Log": [],
        },
        "MemoryLimit": true,
        "SwapLimit": false,
        "CpuCfsPeriod": true,
        "CpuCfsQuota": true,
        "IPv4Forwarding": true,
        "Debug": false,
        "NFd": 0,
        "NGoroutines": 0,
        "SystemTime": ts(shoal_proto::model::now_ms()),
        "LoggingDriver": "json-file",
        "CgroupDriver": "cgroupfs",
        "NEventsListener": 0,
    });
    let rest = json!({
        "KernelVersion": kernel_version(),
        "OperatingSystem": "Shoal",
        "OSType": "linux",
        "Architecture": std::env::consts::ARCH,
        "IndexServerAddress": "https://index.docker.io/v1/",
        "RegistryConfig": null,
        "NCPU": ncpu,
        "MemTotal": mem_total(),
        "DockerRootDir": local.state_dir.display().to_string(),
        "Name": local.hostname,
        "Labels": [],
        "ExperimentalBuild": false,
        "ServerVersion": ENGINE_VERSION,
        "Runtimes": {},
        "DefaultRuntime": "runc",
        "Swarm": swarm(local, manager),
        "LiveRestoreEnabled": false,
        "Isolation": "",
        "InitBinary": "",
        "SecurityOptions": [],
        "Warnings": null,
    });
    if let (Some(v), Value::Object(rest)) = (v.as_object_mut(), rest) {
        v.extend(rest);
    }
    v
}
