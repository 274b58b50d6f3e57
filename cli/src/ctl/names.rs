//! The words users see for wire enums (Docker's where Docker has one).

use shoal_proto::model;
use shoal_proto::pb;

/// `manager` / `worker`.
pub fn role(r: pb::NodeRole) -> &'static str {
    match r {
        pb::NodeRole::Worker => "worker",
        pb::NodeRole::Manager => "manager",
    }
}

/// `Active` / `Pause` / `Drain` (the AVAILABILITY column).
pub fn availability(a: pb::Availability) -> &'static str {
    match a {
        pb::Availability::Active => "Active",
        pb::Availability::Pause => "Pause",
        pb::Availability::Drain => "Drain",
    }
}

/// `Ready` / `Down` / `Unknown` / `Disconnected` (the STATUS column).
pub fn node_state(s: pb::NodeState) -> &'static str {
    match s {
        pb::NodeState::Unknown => "Unknown",
        pb::NodeState::Down => "Down",
        pb::NodeState::Ready => "Ready",
        pb::NodeState::Disconnected => "Disconnected",
    }
}

/// `overlay` / `bridge` / `host` / `null`, as Docker names drivers.
pub fn driver(d: pb::NetworkDriver) -> &'static str {
    match d {
        pb::NetworkDriver::Overlay => "overlay",
        pb::NetworkDriver::Bridge => "bridge",
        pb::NetworkDriver::Host => "host",
        pb::NetworkDriver::Null => "null",
    }
}

/// `swarm` for overlays, `local` for the others (they exist on each node separately).
pub fn scope(d: pb::NetworkDriver) -> &'static str {
    match d {
        pb::NetworkDriver::Overlay => "swarm",
        _ => "local",
    }
}

/// `tcp` / `udp`.
pub fn protocol(p: pb::Protocol) -> &'static str {
    match p {
        pb::Protocol::Tcp => "tcp",
        pb::Protocol::Udp => "udp",
    }
}

/// `ingress` / `host`.
pub fn publish_mode(m: pb::PublishMode) -> &'static str {
    match m {
        pb::PublishMode::Ingress => "ingress",
        pb::PublishMode::Host => "host",
    }
}

/// `cluster` / `local`.
pub fn traffic(t: pb::TrafficPolicy) -> &'static str {
    match t {
        pb::TrafficPolicy::Cluster => "cluster",
        pb::TrafficPolicy::Local => "local",
    }
}

/// `vip` / `dnsrr`.
pub fn endpoint_mode(m: pb::EndpointMode) -> &'static str {
    match m {
        pb::EndpointMode::Vip => "vip",
        pb::EndpointMode::Dnsrr => "dnsrr",
    }
}

/// `any` / `on-failure` / `none`.
pub fn restart_condition(c: pb::RestartCondition) -> &'static str {
    match c {
        pb::RestartCondition::Any => "any",
        pb::RestartCondition::OnFailure => "on-failure",
        pb::RestartCondition::None => "none",
    }
}

/// Docker's update state names: `updating`, `paused`, `completed`, `rollback_started`, …
pub fn update_state(s: pb::UpdateState) -> &'static str {
    match s {
        pb::UpdateState::None => "",
        pb::UpdateState::Updating => "updating",
        pb::UpdateState::Paused => "paused",
        pb::UpdateState::Completed => "completed",
        pb::UpdateState::RollbackStarted => "rollback_started",
        pb::UpdateState::RollbackPaused => "rollback_paused",
        pb::UpdateState::RollbackCompleted => "rollback_completed",
    }
}

/// A task state from its wire value: `Running`, `Pending`, …
pub fn task_state(v: i32) -> &'static str {
    model::TaskState::from_i32(v)
        .map(model::TaskState::display)
        .unwrap_or("Unknown")
}

/// A port as the PORTS column shows it: `*:30001->8080/tcp`.
pub fn port(p: &pb::PortConfig) -> String {
    match model::PortConfig::try_from(p) {
        Ok(p) => p.display(),
        Err(_) => format!("*:{}->{}/{}", p.published, p.target, protocol(p.protocol())),
    }
}
