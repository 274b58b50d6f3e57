//! What a lab is made of, checked before anything is built: its name, node counts, subnet, and
//! the names and addresses every node gets. Pure logic, tested without root.

use crate::BadInput;
use serde::{Deserialize, Serialize};
use shoal_netlib::{names::check_ifname, MAX_IFNAME};
use shoal_proto::model::{Ipv4Net, Ipv4NetError};
use std::net::Ipv4Addr;

/// `--name` when none is given.
pub const DEFAULT_NAME: &str = "lab";
/// `--subnet` when none is given.
pub const DEFAULT_SUBNET: &str = "198.18.0.0/24";
/// Longest lab name: `swlab-<name>` must fit an interface name (15 bytes).
pub const MAX_NAME: usize = 8;
/// Most managers a lab may have (raft groups of more than 7 only get slower).
pub const MAX_MANAGERS: usize = 7;
/// Most workers a lab may have.
pub const MAX_WORKERS: usize = 16;
/// Port every swarmd listens on, inside its own namespace.
pub const PORT: u16 = 2377;
/// Name of the underlay namespace (one per lab, in the lab's own netns directory).
pub const UNDERLAY_NS: &str = "ul";
/// The bridge in the underlay namespace every node and the host are plugged into.
pub const UNDERLAY_BRIDGE: &str = "ulbr0";
/// The name of a node's interface inside its namespace.
pub const NODE_IFNAME: &str = "eth0";
/// The underlay end of the host endpoint's veth (in the underlay namespace).
pub const HOST_PEER: &str = "nhost";
/// Prefix of the host endpoint's veth in the host namespace: `swlab-<name>`.
pub const HOST_LINK_PREFIX: &str = "swlab-";
/// Last octet (offset into the subnet) of the host endpoint's address.
pub const HOST_OFFSET: u32 = 254;
/// MTU of every underlay link.
pub const MTU: u32 = 1500;

/// The only addresses a lab may use: 198.18.0.0/15, reserved for benchmarking (RFC 2544) and
/// never routed on the Internet. A project-wide network-safety rule.
pub const SAFE_RANGE: Ipv4Net = match Ipv4Net::new(Ipv4Addr::new(198, 18, 0, 0), 15) {
    Some(n) => n,
    None => panic!("15 is a prefix length"),
};

/// Parses `--subnet` (and `lab.json`'s `subnet`): `A.B.C.D/N`, surrounding blanks ignored, host
/// bits zero. The lab's own texts, which name the flag's example range.
pub fn parse_subnet(s: &str) -> Result<Ipv4Net, BadInput> {
    let bad = |why: &str| {
        BadInput::from(format!(
            "invalid subnet {s:?}: {why} (expected e.g. 198.18.0.0/24)"
        ))
    };
    Ipv4Net::parse_network(s.trim()).map_err(|e| match e {
        Ipv4NetError::NotCidr { .. } => bad("no /prefix"),
        Ipv4NetError::BadAddress { .. } => bad("not an IPv4 address"),
        Ipv4NetError::HostBits { network, .. } => {
            bad(&format!("host bits are set; did you mean {network}?"))
        }
        _ => bad("the prefix length must be 0 to 32"),
    })
}

/// Checks that a lab may use this subnet: inside [`SAFE_RANGE`], prefix at most /24 (room for
/// every node and the host endpoint at `.254`).
pub fn check_subnet(net: Ipv4Net) -> Result<(), BadInput> {
    if !SAFE_RANGE.covers(net) {
        return Err(format!(
            "--subnet {net} is outside {SAFE_RANGE}: labs use only 198.18.0.0/15 \
             (reserved for benchmarking, never routed), e.g. --subnet 198.18.1.0/24"
        )
        .into());
    }
    if net.prefix() > 24 {
        let wider = Ipv4Net::new(net.addr(), 24).map(Ipv4Net::trunc);
        return Err(format!(
            "--subnet {net} is too small: use a /24 (or a shorter prefix), e.g. --subnet {}",
            wider.map(|w| w.to_string()).unwrap_or_default()
        )
        .into());
    }
    Ok(())
}

/// `lab.json`'s `subnet`, read with the lab's rules ([`parse_subnet`]); written as
/// [`Ipv4Net`]'s own `A.B.C.D/N` string.
pub fn deserialize_subnet<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Ipv4Net, D::Error> {
    let s = String::deserialize(d)?;
    parse_subnet(&s).map_err(serde::de::Error::custom)
}

/// Checks a lab name: 1–8 characters `[a-z0-9]`. Every namespace, link and directory of the lab
/// carries it, so it must be short and plain.
pub fn check_name(name: &str) -> Result<(), BadInput> {
    if name.is_empty() || name.len() > MAX_NAME {
        return Err(format!(
            "invalid lab name {name:?}: use 1 to {MAX_NAME} characters a-z and 0-9"
        )
        .into());
    }
    if !name
        .bytes()
        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
    {
        return Err(format!(
            "invalid lab name {name:?}: use only lowercase letters a-z and digits 0-9"
        )
        .into());
    }
    Ok(())
}

/// Checks the node counts; `Ok(Some(warning))` for an even number of managers.
pub fn check_counts(managers: usize, workers: usize) -> Result<Option<String>, BadInput> {
    if !(1..=MAX_MANAGERS).contains(&managers) {
        return Err(format!(
            "--managers {managers}: a lab has 1 to {MAX_MANAGERS} managers (1, 3, 5 or 7 recommended)"
        ).into());
    }
    if workers > MAX_WORKERS {
        return Err(format!("--workers {workers}: a lab has 0 to {MAX_WORKERS} workers").into());
    }
    if managers.is_multiple_of(2) {
        return Ok(Some(format!(
            "warning: {managers} managers tolerate no more failures than {}: an odd number is recommended",
            managers - 1
        )));
    }
    Ok(None)
}

/// Whether a node is a raft member.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Runs the managers' raft and APIs (and tasks).
    Manager,
    /// Runs tasks only.
    Worker,
}

impl Role {
    /// `manager` / `worker`.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Manager => "manager",
            Role::Worker => "worker",
        }
    }
}

/// One node of a lab as planned: its name, role, address and underlay link.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodePlan {
    /// `manager1`, `worker2`: also its namespace's and state directory's name, and its
    /// `--hostname`.
    pub name: String,
    /// Manager or worker.
    pub role: Role,
    /// The address of its `eth0`.
    pub address: Ipv4Addr,
    /// Its veth's end in the underlay namespace ([`underlay_link`]).
    pub link: String,
}

impl NodePlan {
    /// `IP:2377`: its `--listen-addr` and `--advertise-addr`.
    pub fn endpoint(&self) -> String {
        format!("{}:{PORT}", self.address)
    }
}

/// What `lab up` builds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LabSpec {
    /// `--name`.
    pub name: String,
    /// `--managers`.
    pub managers: usize,
    /// `--workers`.
    pub workers: usize,
    /// `--subnet`.
    pub subnet: Ipv4Net,
    /// `--images DIR`: the OCI layout whose images `lab up` pushes into the lab's registry;
    /// `None` for the demo images' cache (`deploy/images.sh`'s), when it exists.
    pub images: Option<std::path::PathBuf>,
    /// `--no-swarm`: the nodes start in no swarm (`swarmd --idle`), as Play with Docker's do;
    /// the user makes the swarm with `swarm init|join` (swarmctl's or docker's).
    pub no_swarm: bool,
}

impl Default for LabSpec {
    fn default() -> Self {
        LabSpec {
            name: DEFAULT_NAME.into(),
            managers: 3,
            workers: 2,
            subnet: parse_subnet(DEFAULT_SUBNET).expect("the default subnet parses"),
            images: None,
            no_swarm: false,
        }
    }
}

impl LabSpec {
    /// Checks everything that can be checked without looking at the machine; returns warnings.
    pub fn validate(&self) -> Result<Vec<String>, BadInput> {
        check_name(&self.name)?;
        let warning = check_counts(self.managers, self.workers)?;
        check_subnet(self.subnet)?;
        Ok(warning.into_iter().collect())
    }

    /// Every node: `manager1..N` at `.1..N`, then `worker1..M` at `.N+1..N+M`.
    pub fn nodes(&self) -> Vec<NodePlan> {
        let managers = (1..=self.managers).map(|k| (Role::Manager, k));
        let workers = (1..=self.workers).map(|k| (Role::Worker, k));
        managers
            .chain(workers)
            .enumerate()
            .map(|(i, (role, k))| NodePlan {
                name: node_name(role, k),
                role,
                address: self.subnet.host(i as u32 + 1),
                link: underlay_link(role, k),
            })
            .collect()
    }

    /// The host endpoint's address (`.254`).
    pub fn host_address(&self) -> Ipv4Addr {
        self.subnet.host(HOST_OFFSET)
    }
}

/// `manager3`, `worker12`.
pub fn node_name(role: Role, k: usize) -> String {
    format!("{}{k}", role.as_str())
}

/// The underlay end of a node's veth: `nm<k>` for managers, `nw<k>` for workers (the node's own
/// end is `eth0`). Short on purpose: it lives in the lab's underlay namespace only.
pub fn underlay_link(role: Role, k: usize) -> String {
    let r = match role {
        Role::Manager => 'm',
        Role::Worker => 'w',
    };
    format!("n{r}{k}")
}

/// The host namespace's end of the host endpoint veth: `swlab-<name>`.
pub fn host_link(lab: &str) -> String {
    format!("{HOST_LINK_PREFIX}{lab}")
}

/// Checks every interface name a lab of this name and size uses (kernel rules, ≤ 15 bytes).
pub fn check_link_names(spec: &LabSpec) -> Result<(), BadInput> {
    let mut all = vec![
        host_link(&spec.name),
        HOST_PEER.to_string(),
        UNDERLAY_BRIDGE.to_string(),
        NODE_IFNAME.to_string(),
    ];
    all.extend(spec.nodes().into_iter().map(|n| n.link));
    for n in &all {
        check_ifname(n).map_err(|e| BadInput::from(e.to_string()))?;
        debug_assert!(n.len() <= MAX_IFNAME);
    }
    Ok(())
}
