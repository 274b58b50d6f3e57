//! What can go wrong in the data plane. A task whose sandbox cannot be built is rejected with
//! `network: ` and this error's text, so every message here is one an operator reads in
//! `service ps`. netlib's errors pass through unchanged (`transparent`): they already name the
//! operation the way `ip`/`nft`/`ipvsadm` would and keep the kernel's errno, and the agent adds
//! nothing an operator needs; matching the variant gives the typed error back (`errno()`…).

/// An error of the data plane.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// rtnetlink (links, addresses, routes, neighbours, FDB) refused or failed.
    #[error(transparent)]
    Link(#[from] shoal_netlib::rt::Error),
    /// A network namespace could not be made, opened or removed.
    #[error(transparent)]
    Netns(#[from] shoal_netlib::netns::Error),
    /// An nftables transaction failed.
    #[error(transparent)]
    Nft(#[from] shoal_netlib::nft::Error),
    /// A load balancer (IPVS or nftables) could not be opened or programmed.
    #[error(transparent)]
    Balancer(#[from] shoal_netlib::lb::Error),
    /// A sysctl could not be set.
    #[error(transparent)]
    Sysctl(#[from] shoal_netlib::sysctl::Error),
    /// The embedded DNS could not listen in the task.
    #[error(transparent)]
    Dns(#[from] crate::dns::Error),
    /// A subnet that is not `a.b.c.d/len`.
    #[error("bad subnet {subnet:?}")]
    BadSubnet {
        /// What was given.
        subnet: String,
    },
    /// A subnet whose prefix leaves no room for hosts (or is 0).
    #[error("bad subnet {subnet:?}: prefix must be 1..=30")]
    BadPrefix {
        /// What was given.
        subnet: String,
    },
    /// An address that is not `a.b.c.d/len`.
    #[error("bad address {addr:?}")]
    BadAddress {
        /// What was given.
        addr: String,
    },
    /// A bridge network's gateway that is not an address.
    #[error("network {network}: bad gateway {gateway:?}")]
    BadGateway {
        /// The network's name.
        network: String,
        /// What was given.
        gateway: String,
    },
    /// An overlay network allocated without a gateway.
    #[error("overlay without a gateway")]
    OverlayGateway,
    /// An overlay network whose VXLAN id the managers have not allocated yet.
    #[error("network {network} has no VXLAN id yet")]
    NoVni {
        /// The network's name.
        network: String,
    },
    /// A task on an overlay network the managers gave no address yet.
    #[error("no address on {network} yet")]
    NoAddress {
        /// The network's name.
        network: String,
    },
    /// Every address of a local subnet is taken.
    #[error("no free address left in {subnet}")]
    SubnetFull {
        /// The subnet.
        subnet: shoal_proto::model::Ipv4Net,
    },
    /// More networks on one task than interface names (`eth0`…`eth255`).
    #[error("too many networks")]
    TooManyNetworks,
    /// `--publish mode=host` on a task with no bridge network.
    #[error("--publish mode=host needs the task on a bridge network (or the host network)")]
    HostPortNeedsBridge,
    /// `network inspect --lb` on a node with no balancer for the network.
    #[error("no balancer for this network on this node (no task of it here)")]
    NoBalancer,
}

/// Result of the data plane.
pub type Result<T, E = Error> = std::result::Result<T, E>;
