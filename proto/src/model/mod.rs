//! Domain model: the objects the managers replicate and the agents act on.

mod command;
mod health;
mod id;
mod ids;
mod invalid;
mod net;
mod node;
mod secret;
mod service;
mod task;
mod update;

pub use command::{Command, NodeLbAddr, NodeStateChange, TaskStatusUpdate};
pub use health::{
    fmt_ms, HealthConfig, HealthTest, Probe, TaskHealth, DEFAULT_INTERVAL, DEFAULT_RETRIES,
    DEFAULT_TIMEOUT, MAX_DURATION, MAX_RETRIES, MIN_DURATION,
};
pub use id::{ConfigId, NetworkId, NodeId, SecretId, ServiceId, TaskId};
pub use ids::{new_id, now_ms, validate_name, NameKind};
pub use invalid::Invalid;
pub use net::{Ipv4Net, Ipv4NetError};
pub use node::{
    Availability, Cluster, Network, NetworkDriver, Node, NodeRole, NodeState, Secret,
    PREDEFINED_NETWORKS,
};
pub use secret::{
    data_name_ok, ConfigObject, ConfigReference, DataObject, DataReference, Opaque, SecretObject,
    SecretReference, MAX_DATA_BYTES, MAX_DATA_NAME,
};
pub use service::{
    EndpointMode, NetworkAttachmentSpec, PortConfig, Protocol, PublishMode, RestartCondition,
    RestartPolicy, Runtime, Service, ServiceMode, ServiceSpec, TrafficPolicy, VirtualIp,
    DEFAULT_STOP_DRAIN, MAX_STOP_DRAIN, VXLAN_PORT,
};
pub use task::{AttachedNetwork, NetworkAttachment, Task, TaskState, TaskStatus};
pub use update::{
    FailureAction, UpdateConfig, UpdateOrder, UpdateState, UpdateStatus, DEFAULT_MONITOR_MS,
};
