//! Checks on user input before anything is proposed: a bad request changes nothing.

use super::ControlError;
use crate::store::State;
use shoal_image::digest::Digest;
use shoal_image::reference::Reference;
use shoal_proto::model::{
    validate_name, EndpointMode, FailureAction, NameKind, NetworkDriver, Protocol, PublishMode,
    Runtime, ServiceMode, ServiceSpec, UpdateConfig, VXLAN_PORT,
};
use std::collections::BTreeSet;

/// Names that cannot be used for user networks.
pub const RESERVED_NETWORKS: [&str; 5] = ["ingress", "bridge", "host", "none", "shoal_gwbridge"];

/// Validates a service spec and resolves network names to ids (in place).
pub fn service_spec(state: &State, spec: &mut ServiceSpec) -> Result<(), ControlError> {
    name(NameKind::Service, &spec.name)?;
    if spec.image.trim().is_empty() {
        return Err(ControlError::NoImage);
    }
    if spec.runtime == Runtime::Container {
        Reference::parse(&spec.image)?;
        if !spec.image_digest.is_empty() {
            spec.image_digest
                .parse::<Digest>()
                .map_err(|e| ControlError::ImageDigest(spec.image_digest.clone(), e))?;
        }
    }
    if spec.runtime == Runtime::Process && spec.tty {
        return Err(ControlError::TtyProcess);
    }
    if let ServiceMode::Replicated { replicas } = spec.mode {
        if replicas > crate::MAX_REPLICAS {
            return Err(ControlError::TooManyReplicas {
                replicas,
                max: crate::MAX_REPLICAS,
            });
        }
    }
    for e in &spec.env {
        if !e.contains('=') || e.starts_with('=') {
            return Err(ControlError::Env(e.clone()));
        }
    }
    for c in &spec.constraints {
        crate::scheduler::constraint::Constraint::parse(c)?;
    }
    if spec.endpoint_mode == EndpointMode::Dnsrr
        && spec.ports.iter().any(|p| p.mode == PublishMode::Ingress)
    {
        return Err(ControlError::DnsrrIngress);
    }
    let mut seen = BTreeSet::new();
    for p in &spec.ports {
        if p.target == 0 {
            return Err(ControlError::NoTargetPort);
        }
        if p.protocol == Protocol::Udp && p.published == VXLAN_PORT {
            return Err(ControlError::VxlanPort(VXLAN_PORT));
        }
        if p.published != 0 && !seen.insert((p.protocol, p.published, p.mode == PublishMode::Host))
        {
            return Err(ControlError::PortTwice {
                port: p.published,
                protocol: p.protocol.as_str(),
            });
        }
    }
    let mut ids = BTreeSet::new();
    let attached = spec.networks.len();
    for a in &mut spec.networks {
        // An ambiguous reference is refused like an unknown one: the spec must name one
        // network for sure.
        let net = state
            .network(&a.target)
            .map_err(|_| ControlError::NoSuchNetwork(a.target.clone()))?;
        if net.ingress {
            return Err(ControlError::IngressAttached);
        }
        a.target = net.id.to_string();
        if !ids.insert(a.target.clone()) {
            return Err(ControlError::AttachedTwice(net.name.clone()));
        }
        for alias in &a.aliases {
            name(NameKind::Alias, alias)?;
        }
        if matches!(net.driver, NetworkDriver::Host | NetworkDriver::Null) {
            if attached > 1 {
                return Err(ControlError::NotAlone(net.name.clone()));
            }
            if !a.aliases.is_empty() {
                return Err(ControlError::NoDns(net.name.clone()));
            }
        }
    }
    if spec.limit_memory_bytes < 0 || spec.limit_cpus < 0.0 || !spec.limit_cpus.is_finite() {
        return Err(ControlError::NegativeLimits);
    }
    super::data::references(state, spec)?;
    spec.validate_health_and_drain()
        .map_err(ControlError::Spec)?;
    update_config("update", &spec.update)?;
    update_config("rollback", &spec.rollback)?;
    Ok(())
}

/// The longest `--update-delay` and `--update-monitor` (and their rollback twins) taken: a day.
/// Longer is almost surely a unit mistake (`--update-delay 30000` read as seconds).
pub const MAX_UPDATE_WAIT_MS: u64 = 24 * 3600 * 1000;

/// Checks an update or rollback policy; `kind` is `update` or `rollback`, as the flags name them.
pub fn update_config(kind: &str, c: &UpdateConfig) -> Result<(), ControlError> {
    let bad = |flag: &str, why: String| ControlError::UpdateConfig {
        flag: format!("{kind}-{flag}"),
        why,
    };
    if c.parallelism > crate::MAX_REPLICAS {
        return Err(bad(
            "parallelism",
            format!(
                "{} is too large (at most {}; 0 = all tasks at once)",
                c.parallelism,
                crate::MAX_REPLICAS
            ),
        ));
    }
    for (flag, v) in [("delay", c.delay_ms), ("monitor", c.monitor_ms)] {
        if v > MAX_UPDATE_WAIT_MS {
            return Err(bad(flag, format!("{v} ms is longer than a day")));
        }
    }
    if !(0.0..=1.0).contains(&c.max_failure_ratio) {
        return Err(bad(
            "max-failure-ratio",
            format!(
                "{} is not between 0 and 1 (a share of the tasks, e.g. 0.2)",
                c.max_failure_ratio
            ),
        ));
    }
    if kind == "rollback" && c.failure_action == FailureAction::Rollback {
        return Err(bad(
            "failure-action",
            "a rollback cannot roll back: use pause or continue".to_string(),
        ));
    }
    Ok(())
}

/// Validates a network name.
pub fn network_name(state: &State, name: &str) -> Result<(), ControlError> {
    self::name(NameKind::Network, name)?;
    if RESERVED_NETWORKS.contains(&name) {
        return Err(ControlError::ReservedNetwork(name.to_string()));
    }
    if state.networks.values().any(|n| n.name == name) {
        return Err(ControlError::NetworkExists(name.to_string()));
    }
    Ok(())
}

/// The shared name rules of the model (`validate_name`).
fn name(kind: NameKind, name: &str) -> Result<(), ControlError> {
    validate_name(kind, name).map_err(ControlError::Name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_terminal_is_for_containers_only() {
        let state = State::default();
        // (runtime, tty) → accepted
        let cases = [
            (Runtime::Container, false, true),
            (Runtime::Container, true, true),
            (Runtime::Process, false, true),
            (Runtime::Process, true, false),
        ];
        for (runtime, tty, ok) in cases {
            let mut spec = ServiceSpec {
                name: "web".into(),
                image: if runtime == Runtime::Process {
                    "whoami".into()
                } else {
                    "nginx:alpine".into()
                },
                runtime,
                tty,
                ..Default::default()
            };
            let r = service_spec(&state, &mut spec);
            assert_eq!(r.is_ok(), ok, "{runtime:?} tty {tty}: {r:?}");
            if !ok {
                assert_eq!(r.unwrap_err(), ControlError::TtyProcess);
            }
        }
    }

    #[test]
    fn the_overlays_vxlan_port_cannot_be_published_over_udp() {
        use shoal_proto::model::PortConfig;
        let state = State::default();
        let spec = |protocol, mode| ServiceSpec {
            name: "web".into(),
            image: "whoami".into(),
            runtime: Runtime::Process,
            ports: vec![PortConfig {
                protocol,
                target: 80,
                published: VXLAN_PORT,
                mode,
                ..Default::default()
            }],
            ..Default::default()
        };
        for mode in [PublishMode::Ingress, PublishMode::Host] {
            let e = service_spec(&state, &mut spec(Protocol::Udp, mode)).unwrap_err();
            assert_eq!(e, ControlError::VxlanPort(4789));
            assert!(e.to_string().contains("4789/udp"), "{e}");
            assert_eq!(service_spec(&state, &mut spec(Protocol::Tcp, mode)), Ok(()));
        }
    }

    #[test]
    fn health_checks_and_drains_out_of_bounds_are_refused() {
        use shoal_proto::model::{HealthConfig, HealthTest};
        let state = State::default();
        let spec = |h: Option<HealthConfig>, drain: Option<u64>| ServiceSpec {
            name: "web".into(),
            image: "whoami".into(),
            runtime: Runtime::Process,
            healthcheck: h,
            stop_drain_ms: drain,
            ..Default::default()
        };
        let shell = |interval_ms, retries| HealthConfig {
            test: HealthTest::Shell("test -e /ok".into()),
            interval_ms,
            retries,
            ..Default::default()
        };
        let ok = [
            spec(None, None),
            spec(Some(shell(500, 3)), Some(0)),
            spec(Some(shell(0, 0)), Some(600_000)),
        ];
        for mut s in ok {
            assert_eq!(service_spec(&state, &mut s), Ok(()), "{s:?}");
        }
        let bad = [
            (
                spec(Some(shell(25 * 3600 * 1000, 3)), None),
                "--health-interval",
            ),
            (spec(Some(shell(1000, 100_000)), None), "--health-retries"),
            (spec(None, Some(600_001)), "--stop-drain"),
        ];
        for (mut s, needle) in bad {
            let e = service_spec(&state, &mut s).unwrap_err();
            assert!(e.to_string().contains(needle), "{e}");
        }
    }
}
