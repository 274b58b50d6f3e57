//! Conversions between wire types (`pb`) and domain types (`model`). The only place they meet.

use crate::model as m;
use crate::pb;

fn opt_state(v: i32) -> m::TaskState {
    m::TaskState::from_i32(v).unwrap_or_default()
}

impl From<m::NodeRole> for pb::NodeRole {
    fn from(r: m::NodeRole) -> Self {
        match r {
            m::NodeRole::Worker => pb::NodeRole::Worker,
            m::NodeRole::Manager => pb::NodeRole::Manager,
        }
    }
}
impl From<pb::NodeRole> for m::NodeRole {
    fn from(r: pb::NodeRole) -> Self {
        match r {
            pb::NodeRole::Worker => m::NodeRole::Worker,
            pb::NodeRole::Manager => m::NodeRole::Manager,
        }
    }
}
impl From<m::Availability> for pb::Availability {
    fn from(a: m::Availability) -> Self {
        match a {
            m::Availability::Active => pb::Availability::Active,
            m::Availability::Pause => pb::Availability::Pause,
            m::Availability::Drain => pb::Availability::Drain,
        }
    }
}
impl From<pb::Availability> for m::Availability {
    fn from(a: pb::Availability) -> Self {
        match a {
            pb::Availability::Active => m::Availability::Active,
            pb::Availability::Pause => m::Availability::Pause,
            pb::Availability::Drain => m::Availability::Drain,
        }
    }
}
impl From<m::NodeState> for pb::NodeState {
    fn from(s: m::NodeState) -> Self {
        match s {
            m::NodeState::Unknown => pb::NodeState::Unknown,
            m::NodeState::Down => pb::NodeState::Down,
            m::NodeState::Ready => pb::NodeState::Ready,
            m::NodeState::Disconnected => pb::NodeState::Disconnected,
        }
    }
}
impl From<pb::NodeState> for m::NodeState {
    fn from(s: pb::NodeState) -> Self {
        match s {
            pb::NodeState::Unknown => m::NodeState::Unknown,
            pb::NodeState::Down => m::NodeState::Down,
            pb::NodeState::Ready => m::NodeState::Ready,
            pb::NodeState::Disconnected => m::NodeState::Disconnected,
        }
    }
}

/// A node on the wire; `manager_status` is computed by the caller (raft view).
pub fn node_to_pb(n: &m::Node, manager_status: &str) -> pb::Node {
    pb::Node {
        id: n.id.to_string(),
        hostname: n.hostname.clone(),
        role: pb::NodeRole::from(n.role) as i32,
        availability: pb::Availability::from(n.availability) as i32,
        state: pb::NodeState::from(n.state) as i32,
        state_message: n.state_message.clone(),
        addr: n.addr.clone(),
        labels: n.labels.clone().into_iter().collect(),
        manager_status: manager_status.to_string(),
        raft_id: n.raft_id,
        created_ms: n.created_ms,
        updated_ms: n.updated_ms,
        version: n.version,
        cert_not_after_ms: n.cert_not_after_ms,
        cert_issuer: n.cert_issuer.clone(),
        lb_addrs: n
            .lb_addrs
            .iter()
            .map(|(k, v)| (k.to_string(), v.clone()))
            .collect(),
    }
}

impl From<&pb::Node> for m::Node {
    fn from(n: &pb::Node) -> Self {
        m::Node {
            id: n.id.clone().into(),
            hostname: n.hostname.clone(),
            role: n.role().into(),
            availability: n.availability().into(),
            state: n.state().into(),
            state_message: n.state_message.clone(),
            addr: n.addr.clone(),
            labels: n.labels.clone().into_iter().collect(),
            raft_id: n.raft_id,
            created_ms: n.created_ms,
            updated_ms: n.updated_ms,
            version: n.version,
            cert_not_after_ms: n.cert_not_after_ms,
            cert_issuer: n.cert_issuer.clone(),
            lb_addrs: n
                .lb_addrs
                .iter()
                .map(|(k, v)| (k.into(), v.clone()))
                .collect(),
        }
    }
}

impl From<m::NetworkDriver> for pb::NetworkDriver {
    fn from(d: m::NetworkDriver) -> Self {
        match d {
            m::NetworkDriver::Overlay => pb::NetworkDriver::Overlay,
            m::NetworkDriver::Bridge => pb::NetworkDriver::Bridge,
            m::NetworkDriver::Host => pb::NetworkDriver::Host,
            m::NetworkDriver::Null => pb::NetworkDriver::Null,
        }
    }
}

impl From<pb::NetworkDriver> for m::NetworkDriver {
    fn from(d: pb::NetworkDriver) -> Self {
        match d {
            pb::NetworkDriver::Overlay => m::NetworkDriver::Overlay,
            pb::NetworkDriver::Bridge => m::NetworkDriver::Bridge,
            pb::NetworkDriver::Host => m::NetworkDriver::Host,
            pb::NetworkDriver::Null => m::NetworkDriver::Null,
        }
    }
}

impl From<&m::Network> for pb::Network {
    fn from(n: &m::Network) -> Self {
        pb::Network {
            id: n.id.to_string(),
            name: n.name.clone(),
            driver: pb::NetworkDriver::from(n.driver) as i32,
            subnet: n.subnet.clone(),
            gateway: n.gateway.clone(),
            vni: n.vni,
            attachable: n.attachable,
            ingress: n.ingress,
            labels: n.labels.clone().into_iter().collect(),
            created_ms: n.created_ms,
            version: n.version,
        }
    }
}

impl From<&pb::Network> for m::Network {
    fn from(n: &pb::Network) -> Self {
        m::Network {
            id: n.id.clone().into(),
            name: n.name.clone(),
            driver: n.driver().into(),
            subnet: n.subnet.clone(),
            gateway: n.gateway.clone(),
            vni: n.vni,
            attachable: n.attachable,
            ingress: n.ingress,
            labels: n.labels.clone().into_iter().collect(),
            ipam_cursor: 0,
            created_ms: n.created_ms,
            version: n.version,
        }
    }
}

impl From<&m::PortConfig> for pb::PortConfig {
    fn from(p: &m::PortConfig) -> Self {
        pb::PortConfig {
            protocol: match p.protocol {
                m::Protocol::Tcp => pb::Protocol::Tcp,
                m::Protocol::Udp => pb::Protocol::Udp,
            } as i32,
            target: p.target.into(),
            published: p.published.into(),
            mode: match p.mode {
                m::PublishMode::Ingress => pb::PublishMode::Ingress,
                m::PublishMode::Host => pb::PublishMode::Host,
            } as i32,
            traffic: match p.traffic {
                m::TrafficPolicy::Cluster => pb::TrafficPolicy::Cluster,
                m::TrafficPolicy::Local => pb::TrafficPolicy::Local,
            } as i32,
        }
    }
}

impl TryFrom<&pb::PortConfig> for m::PortConfig {
    type Error = m::Invalid;
    fn try_from(p: &pb::PortConfig) -> Result<Self, m::Invalid> {
        let port = |v: u32, what: &'static str| {
            u16::try_from(v).map_err(|_| m::Invalid::PortRange { what, value: v })
        };
        Ok(m::PortConfig {
            protocol: match p.protocol() {
                pb::Protocol::Tcp => m::Protocol::Tcp,
                pb::Protocol::Udp => m::Protocol::Udp,
            },
            target: port(p.target, "target")?,
            published: port(p.published, "published")?,
            mode: match p.mode() {
                pb::PublishMode::Ingress => m::PublishMode::Ingress,
                pb::PublishMode::Host => m::PublishMode::Host,
            },
            traffic: match p.traffic() {
                pb::TrafficPolicy::Cluster => m::TrafficPolicy::Cluster,
                pb::TrafficPolicy::Local => m::TrafficPolicy::Local,
            },
        })
    }
}

impl From<&m::ServiceSpec> for pb::ServiceSpec {
    fn from(s: &m::ServiceSpec) -> Self {
        let (replicas, global) = match s.mode {
            m::ServiceMode::Replicated { replicas } => (replicas, false),
            m::ServiceMode::Global => (0, true),
        };
        pb::ServiceSpec {
            name: s.name.clone(),
            replicas,
            global,
            image: s.image.clone(),
            args: s.args.clone(),
            env: s.env.clone(),
            ports: s.ports.iter().map(Into::into).collect(),
            networks: s
                .networks
                .iter()
                .map(|n| pb::NetworkAttachmentSpec {
                    target: n.target.clone(),
                    aliases: n.aliases.clone(),
                })
                .collect(),
            endpoint_mode: match s.endpoint_mode {
                m::EndpointMode::Vip => pb::EndpointMode::Vip,
                m::EndpointMode::Dnsrr => pb::EndpointMode::Dnsrr,
            } as i32,
            restart: Some(pb::RestartPolicy {
                condition: match s.restart.condition {
                    m::RestartCondition::Any => pb::RestartCondition::Any,
                    m::RestartCondition::OnFailure => pb::RestartCondition::OnFailure,
                    m::RestartCondition::None => pb::RestartCondition::None,
                } as i32,
                delay_ms: s.restart.delay_ms,
                max_attempts: s.restart.max_attempts,
            }),
            constraints: s.constraints.clone(),
            labels: s.labels.clone().into_iter().collect(),
            stop_grace_ms: s.stop_grace_ms,
            limit_memory_bytes: s.limit_memory_bytes,
            limit_cpus: s.limit_cpus,
            force_update: s.force_update,
            runtime: match s.runtime {
                m::Runtime::Container => pb::Runtime::Container,
                m::Runtime::Process => pb::Runtime::Process,
            } as i32,
            image_digest: s.image_digest.clone(),
            entrypoint: s.entrypoint.clone(),
            user: s.user.clone(),
            workdir: s.workdir.clone(),
            tty: s.tty,
            init: s.init,
            update_config: Some((&s.update).into()),
            rollback_config: Some((&s.rollback).into()),
            healthcheck: s.healthcheck.as_ref().map(|h| pb::HealthCheck {
                test: h.test.to_docker(),
                interval_ms: h.interval_ms,
                timeout_ms: h.timeout_ms,
                start_period_ms: h.start_period_ms,
                retries: h.retries,
            }),
            stop_drain_ms: s.stop_drain_ms,
            secrets: s
                .secrets
                .iter()
                .map(|r| pb::SecretReference {
                    id: r.id.to_string(),
                    name: r.name.clone(),
                    target: r.target.clone(),
                    uid: r.uid,
                    gid: r.gid,
                    mode: Some(r.mode),
                })
                .collect(),
            configs: s
                .configs
                .iter()
                .map(|r| pb::ConfigReference {
                    id: r.id.to_string(),
                    name: r.name.clone(),
                    target: r.target.clone(),
                    uid: r.uid,
                    gid: r.gid,
                    mode: Some(r.mode),
                })
                .collect(),
            container_labels: s.container_labels.clone().into_iter().collect(),
        }
    }
}

/// Docker's default mode of a secret or config file.
pub const DEFAULT_DATA_MODE: u32 = 0o444;

impl From<&m::UpdateConfig> for pb::UpdateConfig {
    fn from(c: &m::UpdateConfig) -> Self {
        pb::UpdateConfig {
            parallelism: c.parallelism,
            delay_ms: c.delay_ms,
            failure_action: match c.failure_action {
                m::FailureAction::Pause => pb::FailureAction::Pause,
                m::FailureAction::Continue => pb::FailureAction::Continue,
                m::FailureAction::Rollback => pb::FailureAction::Rollback,
            } as i32,
            monitor_ms: c.monitor_ms,
            max_failure_ratio: c.max_failure_ratio,
            order: match c.order {
                m::UpdateOrder::StopFirst => pb::UpdateOrder::StopFirst,
                m::UpdateOrder::StartFirst => pb::UpdateOrder::StartFirst,
            } as i32,
        }
    }
}

impl From<&pb::UpdateConfig> for m::UpdateConfig {
    fn from(c: &pb::UpdateConfig) -> Self {
        m::UpdateConfig {
            parallelism: c.parallelism,
            delay_ms: c.delay_ms,
            failure_action: match c.failure_action() {
                pb::FailureAction::Pause => m::FailureAction::Pause,
                pb::FailureAction::Continue => m::FailureAction::Continue,
                pb::FailureAction::Rollback => m::FailureAction::Rollback,
            },
            monitor_ms: c.monitor_ms,
            max_failure_ratio: c.max_failure_ratio,
            order: match c.order() {
                pb::UpdateOrder::StopFirst => m::UpdateOrder::StopFirst,
                pb::UpdateOrder::StartFirst => m::UpdateOrder::StartFirst,
            },
        }
    }
}

impl From<&m::UpdateStatus> for pb::UpdateStatus {
    fn from(u: &m::UpdateStatus) -> Self {
        pb::UpdateStatus {
            state: match u.state {
                m::UpdateState::Updating => pb::UpdateState::Updating,
                m::UpdateState::Paused => pb::UpdateState::Paused,
                m::UpdateState::Completed => pb::UpdateState::Completed,
                m::UpdateState::RollbackStarted => pb::UpdateState::RollbackStarted,
                m::UpdateState::RollbackPaused => pb::UpdateState::RollbackPaused,
                m::UpdateState::RollbackCompleted => pb::UpdateState::RollbackCompleted,
            } as i32,
            started_ms: u.started_ms,
            completed_ms: u.completed_ms,
            message: u.message.clone(),
        }
    }
}

/// An update status off the wire; `None` for an unset one (`UPDATE_STATE_NONE`).
pub fn update_status_from_pb(u: &pb::UpdateStatus) -> Option<m::UpdateStatus> {
    let state = match u.state() {
        pb::UpdateState::None => return None,
        pb::UpdateState::Updating => m::UpdateState::Updating,
        pb::UpdateState::Paused => m::UpdateState::Paused,
        pb::UpdateState::Completed => m::UpdateState::Completed,
        pb::UpdateState::RollbackStarted => m::UpdateState::RollbackStarted,
        pb::UpdateState::RollbackPaused => m::UpdateState::RollbackPaused,
        pb::UpdateState::RollbackCompleted => m::UpdateState::RollbackCompleted,
    };
    Some(m::UpdateStatus {
        state,
        started_ms: u.started_ms,
        completed_ms: u.completed_ms,
        message: u.message.clone(),
    })
}

impl TryFrom<&pb::ServiceSpec> for m::ServiceSpec {
    type Error = m::Invalid;
    fn try_from(s: &pb::ServiceSpec) -> Result<Self, m::Invalid> {
        let restart = match &s.restart {
            Some(r) => m::RestartPolicy {
                condition: match r.condition() {
                    pb::RestartCondition::Any => m::RestartCondition::Any,
                    pb::RestartCondition::OnFailure => m::RestartCondition::OnFailure,
                    pb::RestartCondition::None => m::RestartCondition::None,
                },
                delay_ms: r.delay_ms,
                max_attempts: r.max_attempts,
            },
            None => m::RestartPolicy::default(),
        };
        Ok(m::ServiceSpec {
            name: s.name.clone(),
            mode: if s.global {
                m::ServiceMode::Global
            } else {
                m::ServiceMode::Replicated {
                    replicas: s.replicas,
                }
            },
            image: s.image.clone(),
            args: s.args.clone(),
            env: s.env.clone(),
            ports: s
                .ports
                .iter()
                .map(m::PortConfig::try_from)
                .collect::<Result<_, _>>()?,
            networks: s
                .networks
                .iter()
                .map(|n| m::NetworkAttachmentSpec {
                    target: n.target.clone(),
                    aliases: n.aliases.clone(),
                })
                .collect(),
            endpoint_mode: match s.endpoint_mode() {
                pb::EndpointMode::Vip => m::EndpointMode::Vip,
                pb::EndpointMode::Dnsrr => m::EndpointMode::Dnsrr,
            },
            restart,
            constraints: s.constraints.clone(),
            labels: s.labels.clone().into_iter().collect(),
            stop_grace_ms: s.stop_grace_ms,
            limit_memory_bytes: s.limit_memory_bytes,
            limit_cpus: s.limit_cpus,
            force_update: s.force_update,
            runtime: match s.runtime() {
                pb::Runtime::Container => m::Runtime::Container,
                pb::Runtime::Process => m::Runtime::Process,
            },
            image_digest: s.image_digest.clone(),
            entrypoint: s.entrypoint.clone(),
            user: s.user.clone(),
            workdir: s.workdir.clone(),
            tty: s.tty,
            init: s.init,
            update: s.update_config.as_ref().map(Into::into).unwrap_or_default(),
            rollback: s
                .rollback_config
                .as_ref()
                .map(Into::into)
                .unwrap_or_default(),
            healthcheck: s
                .healthcheck
                .as_ref()
                .map(|h| {
                    Ok::<_, m::Invalid>(m::HealthConfig {
                        test: m::HealthTest::from_docker(&h.test)?,
                        interval_ms: h.interval_ms,
                        timeout_ms: h.timeout_ms,
                        start_period_ms: h.start_period_ms,
                        retries: h.retries,
                    })
                })
                .transpose()?,
            stop_drain_ms: s.stop_drain_ms,
            secrets: s
                .secrets
                .iter()
                .map(|r| m::SecretReference {
                    id: r.id.as_str().into(),
                    name: r.name.clone(),
                    target: r.target.clone(),
                    uid: r.uid,
                    gid: r.gid,
                    mode: r.mode.unwrap_or(DEFAULT_DATA_MODE),
                })
                .collect(),
            configs: s
                .configs
                .iter()
                .map(|r| m::ConfigReference {
                    id: r.id.as_str().into(),
                    name: r.name.clone(),
                    target: r.target.clone(),
                    uid: r.uid,
                    gid: r.gid,
                    mode: r.mode.unwrap_or(DEFAULT_DATA_MODE),
                })
                .collect(),
            container_labels: s.container_labels.clone().into_iter().collect(),
        })
    }
}

impl From<m::TaskHealth> for pb::TaskHealth {
    fn from(h: m::TaskHealth) -> Self {
        match h {
            m::TaskHealth::None => pb::TaskHealth::None,
            m::TaskHealth::Starting => pb::TaskHealth::Starting,
            m::TaskHealth::Healthy => pb::TaskHealth::Healthy,
            m::TaskHealth::Unhealthy => pb::TaskHealth::Unhealthy,
        }
    }
}

impl From<pb::TaskHealth> for m::TaskHealth {
    fn from(h: pb::TaskHealth) -> Self {
        match h {
            pb::TaskHealth::None => m::TaskHealth::None,
            pb::TaskHealth::Starting => m::TaskHealth::Starting,
            pb::TaskHealth::Healthy => m::TaskHealth::Healthy,
            pb::TaskHealth::Unhealthy => m::TaskHealth::Unhealthy,
        }
    }
}

/// A service on the wire, with its running/desired counts.
pub fn service_to_pb(s: &m::Service, running: u64, desired: u64) -> pb::Service {
    pb::Service {
        id: s.id.to_string(),
        spec: Some((&s.spec).into()),
        spec_version: s.spec_version,
        ports: s.ports.iter().map(Into::into).collect(),
        vips: s
            .vips
            .iter()
            .map(|v| pb::VirtualIp {
                network_id: v.network_id.to_string(),
                addr: v.addr.clone(),
            })
            .collect(),
        created_ms: s.created_ms,
        updated_ms: s.updated_ms,
        version: s.version,
        running,
        desired,
        update_status: s.update_status.as_ref().map(Into::into),
        previous_spec: s.previous_spec.as_ref().map(Into::into),
    }
}

impl TryFrom<&pb::Service> for m::Service {
    type Error = m::Invalid;
    fn try_from(s: &pb::Service) -> Result<Self, m::Invalid> {
        Ok(m::Service {
            id: s.id.clone().into(),
            spec: s
                .spec
                .as_ref()
                .map(m::ServiceSpec::try_from)
                .transpose()?
                .unwrap_or_default(),
            spec_version: s.spec_version,
            ports: s
                .ports
                .iter()
                .map(m::PortConfig::try_from)
                .collect::<Result<_, _>>()?,
            vips: s
                .vips
                .iter()
                .map(|v| m::VirtualIp {
                    network_id: v.network_id.clone().into(),
                    addr: v.addr.clone(),
                })
                .collect(),
            created_ms: s.created_ms,
            updated_ms: s.updated_ms,
            version: s.version,
            update_status: s.update_status.as_ref().and_then(update_status_from_pb),
            previous_spec: s
                .previous_spec
                .as_ref()
                .map(m::ServiceSpec::try_from)
                .transpose()?,
        })
    }
}

impl From<&m::TaskStatus> for pb::TaskStatus {
    fn from(s: &m::TaskStatus) -> Self {
        pb::TaskStatus {
            state: s.state as i32,
            message: s.message.clone(),
            err: s.err.clone(),
            timestamp_ms: s.timestamp_ms,
            exit_code: s.exit_code.unwrap_or(0),
            has_exit_code: s.exit_code.is_some(),
            pid: s.pid,
            addresses: s.addresses.clone(),
            health: pb::TaskHealth::from(s.health) as i32,
        }
    }
}

impl From<&pb::TaskStatus> for m::TaskStatus {
    fn from(s: &pb::TaskStatus) -> Self {
        m::TaskStatus {
            state: opt_state(s.state),
            message: s.message.clone(),
            err: s.err.clone(),
            timestamp_ms: s.timestamp_ms,
            exit_code: s.has_exit_code.then_some(s.exit_code),
            pid: s.pid,
            addresses: s.addresses.clone(),
            health: s.health().into(),
        }
    }
}

impl From<&m::Task> for pb::Task {
    fn from(t: &m::Task) -> Self {
        pb::Task {
            id: t.id.to_string(),
            service_id: t.service_id.to_string(),
            service_name: t.service_name.clone(),
            slot: t.slot,
            node_id: t.node_id.to_string(),
            spec: Some((&t.spec).into()),
            spec_version: t.spec_version,
            desired_state: t.desired_state as i32,
            status: Some((&t.status).into()),
            networks: t
                .networks
                .iter()
                .map(|n| pb::NetworkAttachment {
                    network_id: n.network_id.to_string(),
                    addresses: n.addresses.clone(),
                    aliases: n.aliases.clone(),
                    network_name: n.network.name.clone(),
                    driver: pb::NetworkDriver::from(n.network.driver) as i32,
                    subnet: n.network.subnet.clone(),
                    gateway: n.network.gateway.clone(),
                    vni: n.network.vni,
                })
                .collect(),
            attempt: t.attempt,
            created_ms: t.created_ms,
            version: t.version,
            name: t.name(),
        }
    }
}

impl TryFrom<&pb::Task> for m::Task {
    type Error = m::Invalid;
    fn try_from(t: &pb::Task) -> Result<Self, m::Invalid> {
        Ok(m::Task {
            id: t.id.clone().into(),
            service_id: t.service_id.clone().into(),
            service_name: t.service_name.clone(),
            slot: t.slot,
            node_id: t.node_id.clone().into(),
            spec: t
                .spec
                .as_ref()
                .map(m::ServiceSpec::try_from)
                .transpose()?
                .unwrap_or_default(),
            spec_version: t.spec_version,
            desired_state: opt_state(t.desired_state),
            status: t.status.as_ref().map(Into::into).unwrap_or_default(),
            networks: t
                .networks
                .iter()
                .map(|n| m::NetworkAttachment {
                    network_id: n.network_id.clone().into(),
                    addresses: n.addresses.clone(),
                    aliases: n.aliases.clone(),
                    network: m::AttachedNetwork {
                        name: n.network_name.clone(),
                        driver: n.driver().into(),
                        subnet: n.subnet.clone(),
                        gateway: n.gateway.clone(),
                        vni: n.vni,
                    },
                })
                .collect(),
            attempt: t.attempt,
            created_ms: t.created_ms,
            version: t.version,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn task_round_trips() {
        let t = m::Task {
            id: "t1".into(),
            service_name: "web".into(),
            slot: 3,
            spec: m::ServiceSpec {
                name: "web".into(),
                ports: vec![m::PortConfig::parse("8080:80/udp").unwrap()],
                ..Default::default()
            },
            desired_state: m::TaskState::Running,
            status: m::TaskStatus {
                state: m::TaskState::Failed,
                exit_code: Some(3),
                health: m::TaskHealth::Unhealthy,
                ..Default::default()
            },
            ..Default::default()
        };
        let wire = pb::Task::from(&t);
        assert_eq!(wire.name, "web.3.t1");
        assert_eq!(m::Task::try_from(&wire).unwrap(), t);
    }

    #[test]
    fn health_and_drain_round_trip() {
        let tests = [
            m::HealthTest::Inherit,
            m::HealthTest::None,
            m::HealthTest::Cmd(vec!["/bin/check".into(), "-q".into()]),
            m::HealthTest::Shell("test -e /ok".into()),
        ];
        for test in tests {
            let spec = m::ServiceSpec {
                name: "web".into(),
                healthcheck: Some(m::HealthConfig {
                    test,
                    interval_ms: 5000,
                    timeout_ms: 1000,
                    start_period_ms: 2000,
                    retries: 4,
                }),
                stop_drain_ms: Some(0),
                ..Default::default()
            };
            let wire = pb::ServiceSpec::from(&spec);
            assert_eq!(m::ServiceSpec::try_from(&wire).unwrap(), spec);
        }
        // Unset stays unset (the image's check; the node's drain).
        let spec = m::ServiceSpec::default();
        let wire = pb::ServiceSpec::from(&spec);
        assert_eq!(
            (wire.healthcheck.is_none(), wire.stop_drain_ms),
            (true, None)
        );
        assert_eq!(m::ServiceSpec::try_from(&wire).unwrap(), spec);
        // A test in no form Docker knows is refused at the edge.
        let mut bad = wire;
        bad.healthcheck = Some(pb::HealthCheck {
            test: vec!["curl".into()],
            ..Default::default()
        });
        assert!(m::ServiceSpec::try_from(&bad).is_err());
        for h in [
            m::TaskHealth::None,
            m::TaskHealth::Starting,
            m::TaskHealth::Healthy,
            m::TaskHealth::Unhealthy,
        ] {
            let st = m::TaskStatus {
                health: h,
                ..Default::default()
            };
            assert_eq!(m::TaskStatus::from(&pb::TaskStatus::from(&st)), st);
        }
    }
}
