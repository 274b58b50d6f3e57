//! What the tests read from `swarmctl … --format json`, as plain structs.

use serde_json::Value;

fn s(v: &Value, k: &str) -> String {
    v[k].as_str().unwrap_or_default().to_string()
}

fn n(v: &Value, k: &str) -> u64 {
    v[k].as_u64().unwrap_or_default()
}

fn list<T>(v: &Value, f: impl Fn(&Value) -> T) -> Vec<T> {
    v.as_array()
        .map(|a| a.iter().map(f).collect())
        .unwrap_or_default()
}

/// A row of `node ls`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeView {
    /// Node id.
    pub id: String,
    /// Hostname.
    pub hostname: String,
    /// `manager` or `worker`.
    pub role: String,
    /// `ready`, `down`, `unknown`, `disconnected`.
    pub state: String,
    /// `active`, `pause`, `drain`.
    pub availability: String,
    /// `Leader`, `Reachable`, `Unreachable` or empty (workers).
    pub manager_status: String,
}

impl NodeView {
    /// Parses one node object.
    pub fn from_json(v: &Value) -> NodeView {
        NodeView {
            id: s(v, "id"),
            hostname: s(v, "hostname"),
            role: s(v, "role"),
            state: s(v, "state"),
            availability: s(v, "availability"),
            manager_status: s(v, "manager_status"),
        }
    }

    /// Parses a `node ls --format json` array.
    pub fn list(v: &Value) -> Vec<NodeView> {
        list(v, NodeView::from_json)
    }
}

/// A task from `service ps` / `task ls`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TaskView {
    /// Task id.
    pub id: String,
    /// `web.1.<id>`.
    pub name: String,
    /// Service name.
    pub service: String,
    /// Slot (replicated services).
    pub slot: u64,
    /// Node the task was placed on (empty while unplaced).
    pub node_id: String,
    /// Desired state, lowercase (`running`, `shutdown`, `remove`, …).
    pub desired: String,
    /// Observed state, lowercase (`pending`, `running`, `failed`, …).
    pub state: String,
    /// Status message (e.g. why a task is unplaceable).
    pub message: String,
    /// Error, if the task failed.
    pub err: String,
    /// Exit code of the process, once it ended.
    pub exit_code: Option<i64>,
    /// Pid of the task's process on its node (0 if none reported).
    pub pid: u64,
    /// Network name → the task's addresses on it (CIDR), in attach order.
    pub networks: Vec<(String, Vec<String>)>,
}

impl TaskView {
    /// Parses one task object.
    pub fn from_json(v: &Value) -> TaskView {
        let st = &v["status"];
        TaskView {
            id: s(v, "id"),
            name: s(v, "name"),
            service: s(v, "service_name"),
            slot: n(v, "slot"),
            node_id: s(v, "node_id"),
            desired: s(v, "desired_state"),
            state: s(st, "state"),
            message: s(st, "message"),
            err: s(st, "err"),
            exit_code: st["exit_code"].as_i64(),
            pid: n(st, "pid"),
            networks: v["networks"]
                .as_array()
                .into_iter()
                .flatten()
                .map(|a| {
                    let addrs = a["addresses"]
                        .as_array()
                        .into_iter()
                        .flatten()
                        .filter_map(|x| x.as_str().map(str::to_string))
                        .collect();
                    (s(a, "network"), addrs)
                })
                .collect(),
        }
    }

    /// The task's first address on network `name`, without its prefix.
    pub fn addr_on(&self, name: &str) -> Option<std::net::Ipv4Addr> {
        let (_, addrs) = self.networks.iter().find(|(n, _)| n == name)?;
        shoal_proto::model::Ipv4Net::addr_of(addrs.first()?)
    }

    /// Parses a task array.
    pub fn list(v: &Value) -> Vec<TaskView> {
        list(v, TaskView::from_json)
    }

    /// Wanted and seen running.
    pub fn is_running(&self) -> bool {
        self.desired == "running" && self.state == "running"
    }

    /// Still wanted (desired state running or before).
    pub fn is_live(&self) -> bool {
        matches!(
            self.desired.as_str(),
            "new"
                | "pending"
                | "assigned"
                | "accepted"
                | "preparing"
                | "ready"
                | "starting"
                | "running"
        )
    }
}

/// A row of `service ls`.
#[derive(Debug, Clone, PartialEq)]
pub struct ServiceView {
    /// Service id.
    pub id: String,
    /// Name.
    pub name: String,
    /// Tasks running.
    pub running: u64,
    /// Tasks wanted.
    pub desired: u64,
    /// Store version (changes on every write to the service).
    pub version: u64,
    /// The spec as JSON.
    pub spec: Value,
    /// Published ports as JSON.
    pub ports: Value,
}

impl ServiceView {
    /// Parses one service object.
    pub fn from_json(v: &Value) -> ServiceView {
        ServiceView {
            id: s(v, "id"),
            name: v["spec"]["name"].as_str().unwrap_or_default().to_string(),
            running: n(v, "running"),
            desired: n(v, "desired"),
            version: n(v, "version"),
            spec: v["spec"].clone(),
            ports: v["ports"].clone(),
        }
    }

    /// Parses a `service ls --format json` array.
    pub fn list(v: &Value) -> Vec<ServiceView> {
        list(v, ServiceView::from_json)
    }
}

/// A row of `network ls`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NetworkView {
    /// Network id.
    pub id: String,
    /// Name.
    pub name: String,
    /// Subnet.
    pub subnet: String,
    /// Store version.
    pub version: u64,
}

impl NetworkView {
    /// Parses one network object.
    pub fn from_json(v: &Value) -> NetworkView {
        NetworkView {
            id: s(v, "id"),
            name: s(v, "name"),
            subnet: s(v, "subnet"),
            version: n(v, "version"),
        }
    }

    /// Parses a `network ls --format json` array.
    pub fn list(v: &Value) -> Vec<NetworkView> {
        list(v, NetworkView::from_json)
    }
}
