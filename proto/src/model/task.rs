//! Tasks: one-shot units that run one copy of a service on one node.

use super::{NetworkId, NodeId, ServiceId, ServiceSpec, TaskId};
use serde::{Deserialize, Serialize};

/// Task lifecycle. Values follow SwarmKit's (spaced by 64); a task's state only moves forward.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, Default,
)]
#[repr(i32)]
pub enum TaskState {
    /// Created by the orchestrator.
    #[default]
    New = 0,
    /// Resources allocated; waiting for a node.
    Pending = 64,
    /// Placed on a node.
    Assigned = 192,
    /// The agent took it.
    Accepted = 256,
    /// The agent is preparing it.
    Preparing = 320,
    /// Ready to start.
    Ready = 384,
    /// Starting.
    Starting = 448,
    /// Running.
    Running = 512,
    /// Exited with status 0.
    Complete = 576,
    /// Stopped on request.
    Shutdown = 640,
    /// Exited non-zero or could not start.
    Failed = 704,
    /// The node refused it.
    Rejected = 768,
    /// Marked for removal.
    Remove = 800,
    /// Its node is gone.
    Orphaned = 832,
}

impl TaskState {
    /// All states, in order.
    pub const ALL: [TaskState; 14] = [
        TaskState::New,
        TaskState::Pending,
        TaskState::Assigned,
        TaskState::Accepted,
        TaskState::Preparing,
        TaskState::Ready,
        TaskState::Starting,
        TaskState::Running,
        TaskState::Complete,
        TaskState::Shutdown,
        TaskState::Failed,
        TaskState::Rejected,
        TaskState::Remove,
        TaskState::Orphaned,
    ];

    /// The task will not run (again).
    pub fn is_terminal(self) -> bool {
        self > TaskState::Running
    }

    /// Lowercase name as Docker prints it (`Running`).
    pub fn display(self) -> &'static str {
        match self {
            TaskState::New => "New",
            TaskState::Pending => "Pending",
            TaskState::Assigned => "Assigned",
            TaskState::Accepted => "Accepted",
            TaskState::Preparing => "Preparing",
            TaskState::Ready => "Ready",
            TaskState::Starting => "Starting",
            TaskState::Running => "Running",
            TaskState::Complete => "Complete",
            TaskState::Shutdown => "Shutdown",
            TaskState::Failed => "Failed",
            TaskState::Rejected => "Rejected",
            TaskState::Remove => "Remove",
            TaskState::Orphaned => "Orphaned",
        }
    }

    /// From the numeric value.
    pub fn from_i32(v: i32) -> Option<TaskState> {
        TaskState::ALL.iter().copied().find(|s| *s as i32 == v)
    }

    /// The one rule for state changes: a task never moves backwards. Returns the state to keep.
    pub fn advance(current: TaskState, proposed: TaskState) -> TaskState {
        current.max(proposed)
    }
}

/// What the agent (or the manager) last observed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct TaskStatus {
    /// Observed state.
    pub state: TaskState,
    /// Human message ("started", "scheduled", "no suitable node …").
    pub message: String,
    /// Error, if the task failed.
    pub err: String,
    /// When the state was reached.
    pub timestamp_ms: i64,
    /// Exit code, once exited.
    pub exit_code: Option<i32>,
    /// Process id on the node while running.
    pub pid: u32,
    /// Addresses the node gave the task itself on local (bridge) networks, as
    /// `network=address/prefix` (overlay addresses are in the attachments).
    #[serde(default)]
    pub addresses: Vec<String>,
    /// What its health check found (none: it has none). Not written when none, so that a
    /// status without a check encodes as before health checks existed.
    #[serde(default, skip_serializing_if = "super::TaskHealth::is_none")]
    pub health: super::TaskHealth,
}

/// A task's address on one network.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct NetworkAttachment {
    /// Network id.
    pub network_id: NetworkId,
    /// Addresses in CIDR form.
    pub addresses: Vec<String>,
    /// DNS aliases.
    pub aliases: Vec<String>,
    /// The network's name, driver, subnet, gateway and VNI when the attachment was made, so an
    /// agent can build it from the task alone.
    #[serde(default)]
    pub network: AttachedNetwork,
}

/// What an agent needs to know of a network to attach a task to it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct AttachedNetwork {
    /// Name.
    pub name: String,
    /// Driver.
    pub driver: super::NetworkDriver,
    /// Subnet (CIDR); empty for `host` and `none`.
    pub subnet: String,
    /// Gateway address; empty for `host` and `none`.
    pub gateway: String,
    /// VXLAN id (overlays).
    pub vni: u32,
}

impl From<&super::Network> for AttachedNetwork {
    fn from(n: &super::Network) -> Self {
        AttachedNetwork {
            name: n.name.clone(),
            driver: n.driver,
            subnet: n.subnet.clone(),
            gateway: n.gateway.clone(),
            vni: n.vni,
        }
    }
}

/// One run of one slot of a service.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
pub struct Task {
    /// Task id.
    pub id: TaskId,
    /// Owning service.
    pub service_id: ServiceId,
    /// Service name at creation (for task names).
    pub service_name: String,
    /// Slot (replicated; 0 for global tasks).
    pub slot: u64,
    /// Node, once assigned (global tasks have it from the start).
    pub node_id: NodeId,
    /// The service spec the task was made from.
    pub spec: ServiceSpec,
    /// The service spec version it was made from.
    pub spec_version: u64,
    /// What the managers want.
    pub desired_state: TaskState,
    /// What was observed.
    pub status: TaskStatus,
    /// Network attachments (filled by the allocator).
    pub networks: Vec<NetworkAttachment>,
    /// How many tasks this slot had before this one (restart count).
    pub attempt: u64,
    /// Creation time.
    pub created_ms: i64,
    /// Raft index of the last write.
    pub version: u64,
}

impl Task {
    /// `service.slot.taskid`, or `service.nodeid.taskid` for global services.
    pub fn name(&self) -> String {
        if matches!(self.spec.mode, super::ServiceMode::Global) {
            format!("{}.{}.{}", self.service_name, self.node_id, self.id)
        } else {
            format!("{}.{}.{}", self.service_name, self.slot, self.id)
        }
    }

    /// Whether balancers and DNS answers may include the task: it runs and its health check,
    /// if it has one, passes (its desired state and node are the caller's to check).
    pub fn serves(&self) -> bool {
        self.status.state == TaskState::Running && self.status.health.serves()
    }

    /// Whether the task counts as alive for its slot: the managers still want it running and it
    /// has not ended.
    pub fn is_live(&self) -> bool {
        self.desired_state <= TaskState::Running && !self.status.state.is_terminal()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn states_only_move_forward() {
        assert_eq!(
            TaskState::advance(TaskState::Running, TaskState::Starting),
            TaskState::Running
        );
        assert_eq!(
            TaskState::advance(TaskState::Running, TaskState::Failed),
            TaskState::Failed
        );
        assert!(TaskState::Complete.is_terminal());
        assert!(!TaskState::Running.is_terminal());
        for s in TaskState::ALL {
            assert_eq!(TaskState::from_i32(s as i32), Some(s));
        }
    }
}
