//! `--data-plane kernel`: the agent's data plane, with its balancer and DNS settings.

use crate::node::Node;
use anyhow::Context;
use shoal_agent::network::DataPlane;

/// The data plane the flags ask for (`None`: tasks run as plain processes).
pub async fn build(node: &Node) -> anyhow::Result<Option<DataPlane>> {
    if node.args.data_plane != "kernel" {
        return Ok(None);
    }
    let dp = DataPlane::new(&node.state_dir)
        .await
        .context("--data-plane kernel needs root (network namespaces, bridges, nftables)")?;
    let choice = node
        .args
        .lb_backend
        .parse()
        .map_err(|e| anyhow::anyhow!("--lb-backend: {e}"))?;
    dp.set_lb_backend(choice).await;
    dp.set_dns_upstream(dns_upstream(node.args.dns_upstream.as_deref())?);
    Ok(Some(dp))
}

/// `--dns-upstream`: `none`, `IP[:PORT],…` (port 53 by default), or the node's resolv.conf.
fn dns_upstream(arg: Option<&str>) -> anyhow::Result<Vec<std::net::SocketAddr>> {
    let Some(arg) = arg else {
        return Ok(shoal_agent::dns::system_upstream());
    };
    if arg.trim() == "none" {
        return Ok(Vec::new());
    }
    arg.split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|s| {
            s.parse::<std::net::SocketAddr>()
                .or_else(|_| s.parse::<std::net::IpAddr>().map(|ip| (ip, 53).into()))
                .map_err(|_| {
                    anyhow::anyhow!("--dns-upstream {s:?}: expected IP or IP:PORT (or none)")
                })
        })
        .collect()
}
