//! `swarmd --join ADDR --token TOKEN` on an empty state dir: the join itself is
//! `shoal_agent::join`; here the node keeps what it was given.

use crate::identity::Identity;
use crate::node::Node;
use anyhow::Context;
use shoal_agent::join::JoinConfig;
use shoal_security::Transport;

/// Joins through `addr` with `token`, saves the node's identity and the managers it was told
/// of. The node's addresses are known (see [`Node::take_addresses`]).
pub async fn join(node: &Node, addr: &str, token: &str) -> anyhow::Result<(Identity, Transport)> {
    let mut cfg = JoinConfig::new(addr.to_string(), token.to_string(), node.certs_dir());
    cfg.hostname = node.hostname.clone();
    cfg.advertise_addr = node.advertise.clone();
    cfg.labels = node.labels.clone();
    cfg.plaintext = node.args.insecure_plaintext;
    let joined = shoal_agent::join::join(&cfg).await?;
    let ident = Identity {
        node_id: joined.node_id,
        manager: joined.manager,
        raft_id: joined.raft_id,
        cluster_id: joined.cluster_id,
        plaintext: cfg.plaintext,
        listen_addr: node.listen.clone(),
        advertise_addr: node.advertise.clone(),
    };
    ident.save(&node.state_dir)?;
    if !joined.managers.is_empty() {
        let path = node.state_dir.join("managers.json");
        shoal_security::durable::write(&path, &serde_json::to_vec(&joined.managers)?, 0o600)
            .with_context(|| format!("cannot write {}", path.display()))?;
    }
    println!(
        "This node joined a swarm as a {}.",
        if ident.manager { "manager" } else { "worker" }
    );
    Ok((ident, joined.transport))
}
