//! `swarmctl swarm init | join | leave`: the local node's membership, through its control
//! socket's `NodeLifecycle` (a node in no swarm serves nothing else). Docker's texts.

use super::swarm::join_text;
use crate::client::{self, ClientConfig, RpcResultExt};
use clap::Args;
use shoal_proto::pb;

/// `swarm init`'s flags.
#[derive(Debug, Args)]
pub struct InitArgs {
    /// Address other nodes reach this one at: `IP`, `IP:PORT` or an interface name (`eth0`,
    /// `eth0:2377`). Default: swarmd's `--advertise-addr`, else its listen address.
    #[arg(long)]
    pub advertise_addr: Option<String>,
    /// Address to listen on for the cluster's traffic, in the same forms (default: swarmd's
    /// `--listen-addr`).
    #[arg(long)]
    pub listen_addr: Option<String>,
    /// Address pool for networks without `--subnet` (CIDR; default: swarmd's flag).
    #[arg(long)]
    pub default_addr_pool: Option<String>,
    /// Prefix length of the subnets cut from the pool.
    #[arg(long)]
    pub default_addr_pool_mask_length: Option<u32>,
}

/// `swarm join`'s flags.
#[derive(Debug, Args)]
pub struct JoinArgs {
    /// The join token (`swarmctl swarm join-token worker|manager` on a manager).
    #[arg(long, env = "SWARM_TOKEN", hide_env_values = true)]
    pub token: String,
    /// Address other nodes reach this one at (default: the one that reaches the manager).
    #[arg(long)]
    pub advertise_addr: Option<String>,
    /// Address to listen on (a manager's cluster traffic).
    #[arg(long)]
    pub listen_addr: Option<String>,
    /// A manager of the swarm: `IP[:PORT]` (port 2377 by default).
    pub remote: String,
}

/// Refuses a TCP host: membership is the local node's, as `docker swarm init` is dockerd's.
fn local_only(host: &str) -> anyhow::Result<()> {
    if host.starts_with("unix://") || host.starts_with('/') {
        return Ok(());
    }
    anyhow::bail!(
        "swarm init|join|leave change the node swarmd runs on: use its control socket (--host unix:///PATH/swarmd.sock), not {host}"
    )
}

async fn connect(
    host: &str,
    cfg: &ClientConfig,
) -> anyhow::Result<pb::node_lifecycle_client::NodeLifecycleClient<tonic::transport::Channel>> {
    local_only(host)?;
    let mut cfg = cfg.clone();
    // A join waits for the managers, an init for a new raft group.
    cfg.request_timeout = Some(std::time::Duration::from_secs(90));
    client::connect_lifecycle(host, &cfg).await
}

/// `swarm init`: prints the node id and how to add a worker.
pub async fn init(host: &str, cfg: &ClientConfig, a: InitArgs) -> anyhow::Result<()> {
    let mut c = connect(host, cfg).await?;
    let r = c
        .init(pb::SwarmInitRequest {
            listen_addr: a.listen_addr.unwrap_or_default(),
            advertise_addr: a.advertise_addr.unwrap_or_default(),
            default_addr_pool: a.default_addr_pool.into_iter().collect(),
            subnet_size: a.default_addr_pool_mask_length.unwrap_or(0),
        })
        .await
        .rpc()?;
    println!(
        "Swarm initialized: current node ({}) is now a manager.\n",
        r.node_id
    );
    let mut ctl = client::connect_with(host, cfg).await?;
    let t = ctl
        .get_join_token(pb::JoinTokenRequest {
            role: pb::NodeRole::Worker as i32,
            rotate: false,
        })
        .await
        .rpc()?;
    println!("{}", join_text("worker", &t));
    println!(
        "To add a manager to this swarm, run 'swarmctl swarm join-token manager' and follow the instructions.\n"
    );
    Ok(())
}

/// `swarm join`: says whether the node joined as a worker or a manager.
pub async fn join(host: &str, cfg: &ClientConfig, a: JoinArgs) -> anyhow::Result<()> {
    let mut c = connect(host, cfg).await?;
    let s = c
        .join(pb::SwarmJoinRequest {
            listen_addr: a.listen_addr.unwrap_or_default(),
            advertise_addr: a.advertise_addr.unwrap_or_default(),
            remote_addrs: vec![a.remote],
            token: a.token,
        })
        .await
        .rpc()?;
    println!(
        "This node joined a swarm as a {}.",
        if s.manager { "manager" } else { "worker" }
    );
    Ok(())
}

/// `swarm leave [--force]`.
pub async fn leave(host: &str, cfg: &ClientConfig, force: bool) -> anyhow::Result<()> {
    let mut c = connect(host, cfg).await?;
    c.leave(pb::SwarmLeaveRequest { force }).await.rpc()?;
    println!("Node left the swarm.");
    Ok(())
}

#[cfg(test)]
mod tests {
    #[test]
    fn membership_is_local() {
        assert!(super::local_only("unix:///var/lib/shoal/swarmd.sock").is_ok());
        let e = super::local_only("tcp://198.18.0.1:2377").unwrap_err();
        assert!(e.to_string().contains("control socket"), "{e}");
    }
}
