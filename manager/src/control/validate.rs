//! Checks on user input before anything is proposed: a bad request changes nothing.

use crate::store::State;
use shoal_proto::model::{
    validate_name, EndpointMode, NetworkDriver, PublishMode, ServiceMode, ServiceSpec,
};
use std::collections::BTreeSet;

/// Names that cannot be used for user networks.
pub const RESERVED_NETWORKS: [&str; 5] = ["ingress", "bridge", "host", "none", "shoal_gwbridge"];

/// Validates a service spec and resolves network names to ids (in place).
pub fn service_spec(state: &State, spec: &mut ServiceSpec) -> Result<(), String> {
    validate_name("service", &spec.name, false)?;
    if spec.image.trim().is_empty() {
        return Err("an image (the program to run) is required".into());
    }
    if let ServiceMode::Replicated { replicas } = spec.mode {
        if replicas > crate::MAX_REPLICAS {
            return Err(format!(
                "--replicas {replicas} is too large (at most {})",
                crate::MAX_REPLICAS
            ));
        }
    }
    for e in &spec.env {
        if !e.contains('=') || e.starts_with('=') {
            return Err(format!("invalid --env {e:?}: expected KEY=VALUE"));
        }
    }
    for c in &spec.constraints {
        crate::scheduler::constraint::Constraint::parse(c)?;
    }
    if spec.endpoint_mode == EndpointMode::Dnsrr
        && spec.ports.iter().any(|p| p.mode == PublishMode::Ingress)
    {
        return Err("port published with ingress mode can't be used with dnsrr mode: publish with mode=host or use --endpoint-mode vip".into());
    }
    let mut seen = BTreeSet::new();
    for p in &spec.ports {
        if p.target == 0 {
            return Err("a published port needs a target port (1-65535)".into());
        }
        if p.published != 0 && !seen.insert((p.protocol, p.published, p.mode == PublishMode::Host))
        {
            return Err(format!(
                "port {}/{} is published twice",
                p.published,
                p.protocol.as_str()
            ));
        }
    }
    let mut ids = BTreeSet::new();
    let attached = spec.networks.len();
    for a in &mut spec.networks {
        let net = state.network(&a.target).ok_or_else(|| {
            format!(
                "network {} not found; create it with `swarmctl network create -d overlay {}`",
                a.target, a.target
            )
        })?;
        if net.ingress {
            return Err(
                "the ingress network can't be attached directly: publish a port instead".into(),
            );
        }
        a.target = net.id.clone();
        if !ids.insert(a.target.clone()) {
            return Err(format!("network {} is attached twice", net.name));
        }
        for alias in &a.aliases {
            validate_name("alias", alias, true)?;
        }
        if matches!(net.driver, NetworkDriver::Host | NetworkDriver::Null) {
            if attached > 1 {
                return Err(format!(
                    "a task on the {} network cannot be attached to other networks",
                    net.name
                ));
            }
            if !a.aliases.is_empty() {
                return Err(format!(
                    "the {} network has no DNS: drop the alias",
                    net.name
                ));
            }
        }
    }
    if spec.limit_memory_bytes < 0 || spec.limit_cpus < 0.0 || !spec.limit_cpus.is_finite() {
        return Err("resource limits must not be negative".into());
    }
    Ok(())
}

/// Validates a network name.
pub fn network_name(state: &State, name: &str) -> Result<(), String> {
    validate_name("network", name, true)?;
    if RESERVED_NETWORKS.contains(&name) {
        return Err(format!("network name {name:?} is reserved"));
    }
    if state.networks.values().any(|n| n.name == name) {
        return Err(format!("network with name {name:?} already exists"));
    }
    Ok(())
}
