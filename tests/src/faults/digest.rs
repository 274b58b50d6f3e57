//! A manager's store as the Control API lists it, reduced to the replicated fields and hashed:
//! equal digests on every manager mean equal services, networks and nodes.

use super::client::connect;
use sha2::{Digest, Sha256};
use shoal_proto::pb;
use std::collections::BTreeMap;

/// One manager's listing: the digest and every service's (version, label value).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Listing {
    /// SHA-256 of the canonical text of the listing (hex, 16 characters shown).
    pub digest: String,
    /// Service name → (version, label `v`).
    pub services: BTreeMap<String, (u64, Option<u64>)>,
}

/// Lists the store of the manager at `socket`; `None` when it does not answer.
pub async fn listing(socket: &str) -> Option<Listing> {
    let mut c = connect(socket).await?;
    let services = c
        .list_services(pb::Empty {})
        .await
        .ok()?
        .into_inner()
        .services;
    let networks = c
        .list_networks(pb::Empty {})
        .await
        .ok()?
        .into_inner()
        .networks;
    let nodes = c.list_nodes(pb::Empty {}).await.ok()?.into_inner().nodes;
    let mut text = String::new();
    let mut by_name = BTreeMap::new();
    let mut svcs: Vec<&pb::Service> = services.iter().collect();
    svcs.sort_by(|a, b| a.id.cmp(&b.id));
    for s in svcs {
        let spec = s.spec.clone().unwrap_or_default();
        let labels: BTreeMap<_, _> = spec.labels.iter().collect();
        text.push_str(&format!(
            "service {} {} v{} sv{} replicas={} labels={labels:?}\n",
            s.id, spec.name, s.version, s.spec_version, spec.replicas
        ));
        by_name.insert(spec.name.clone(), (s.version, super::client::value_of(s)));
    }
    let mut nets: Vec<&pb::Network> = networks.iter().collect();
    nets.sort_by(|a, b| a.id.cmp(&b.id));
    for n in nets {
        text.push_str(&format!(
            "network {} {} v{} {} vni={}\n",
            n.id, n.name, n.version, n.subnet, n.vni
        ));
    }
    let mut nds: Vec<&pb::Node> = nodes.iter().collect();
    nds.sort_by(|a, b| a.id.cmp(&b.id));
    for n in nds {
        text.push_str(&format!(
            "node {} {} v{} role={} availability={}\n",
            n.id, n.hostname, n.version, n.role, n.availability
        ));
    }
    let hash = Sha256::digest(text.as_bytes());
    let digest: String = hash.iter().take(8).map(|b| format!("{b:02x}")).collect();
    Some(Listing {
        digest,
        services: by_name,
    })
}
