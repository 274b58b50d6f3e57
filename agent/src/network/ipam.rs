//! Addresses on local-scope (bridge) networks: each node hands them out itself, as Docker's
//! default IPAM does, and keeps them in `<state-dir>/network/ipam.json` so a restarted agent
//! gives running tasks' addresses to nobody else.

use std::collections::BTreeMap;
use std::net::Ipv4Addr;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};
use shoal_proto::model::{Ipv4Net, Ipv4NetError};

use super::Error;

/// Parses a local network's subnet `a.b.c.d/len`, prefix 1 to 30 (room for a gateway and a
/// host); host bits are cleared (`10.0.0.5/24` is `10.0.0.0/24`). The managers have already
/// checked what they store, so these refusals only meet a subnet they never handed out.
pub fn parse_subnet(s: &str) -> Result<Ipv4Net, Error> {
    let net: Ipv4Net = s.parse().map_err(|e| match e {
        // A number, just not 1-30: say so (a `u8` that is over 32 lands here too).
        Ipv4NetError::PrefixTooLong { .. } => Error::BadPrefix { subnet: s.into() },
        _ => Error::BadSubnet { subnet: s.into() },
    })?;
    if !(1..=30).contains(&net.prefix()) {
        return Err(Error::BadPrefix { subnet: s.into() });
    }
    Ok(net.trunc())
}

/// Which task holds which address, per network.
#[derive(Debug, Default, Serialize, Deserialize)]
pub struct LocalIpam {
    /// network id → task id → address.
    taken: BTreeMap<String, BTreeMap<String, Ipv4Addr>>,
    #[serde(skip)]
    path: Option<PathBuf>,
}

impl LocalIpam {
    /// Loads the table from `path` (empty when absent or unreadable: the janitor then frees
    /// what no task uses).
    pub fn load(path: PathBuf) -> LocalIpam {
        let mut ipam: LocalIpam = std::fs::read(&path)
            .ok()
            .and_then(|b| serde_json::from_slice(&b).ok())
            .unwrap_or_default();
        ipam.path = Some(path);
        ipam
    }

    fn save(&self) {
        if let Some(p) = &self.path {
            if let Some(dir) = p.parent() {
                let _ = std::fs::create_dir_all(dir);
            }
            let tmp = p.with_extension("tmp");
            if let Ok(b) = serde_json::to_vec(self) {
                if std::fs::write(&tmp, b).is_ok() {
                    let _ = std::fs::rename(&tmp, p);
                }
            }
        }
    }

    /// The address of `task` on `net` (subnet `subnet`, gateway `gateway` excluded): the one it
    /// has, or the lowest free one.
    pub fn assign(
        &mut self,
        net: &str,
        subnet: Ipv4Net,
        gateway: Ipv4Addr,
        task: &str,
    ) -> Result<Ipv4Addr, Error> {
        let table = self.taken.entry(net.to_string()).or_default();
        if let Some(a) = table.get(task) {
            return Ok(*a);
        }
        let used: std::collections::BTreeSet<Ipv4Addr> = table.values().copied().collect();
        let addr = (1..)
            .map_while(|n| subnet.checked_host(n))
            .find(|a| *a != gateway && !used.contains(a))
            .ok_or(Error::SubnetFull { subnet })?;
        table.insert(task.to_string(), addr);
        self.save();
        Ok(addr)
    }

    /// Frees every address of `task`.
    pub fn release(&mut self, task: &str) {
        let mut changed = false;
        for table in self.taken.values_mut() {
            changed |= table.remove(task).is_some();
        }
        self.taken.retain(|_, t| !t.is_empty());
        if changed {
            self.save();
        }
    }

    /// Tasks holding addresses.
    pub fn tasks(&self) -> Vec<String> {
        let mut v: Vec<String> = self
            .taken
            .values()
            .flat_map(|t| t.keys().cloned())
            .collect();
        v.sort();
        v.dedup();
        v
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn assigns_lowest_free_skipping_gateway_and_survives_reload() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("ipam.json");
        let s = parse_subnet("172.17.0.0/16").unwrap();
        let gw: Ipv4Addr = "172.17.0.1".parse().unwrap();
        let mut ipam = LocalIpam::load(path.clone());
        assert_eq!(
            ipam.assign("b", s, gw, "t1").unwrap(),
            "172.17.0.2".parse::<Ipv4Addr>().unwrap()
        );
        assert_eq!(
            ipam.assign("b", s, gw, "t2").unwrap(),
            "172.17.0.3".parse::<Ipv4Addr>().unwrap()
        );
        assert_eq!(
            ipam.assign("b", s, gw, "t1").unwrap(),
            "172.17.0.2".parse::<Ipv4Addr>().unwrap()
        );
        let mut again = LocalIpam::load(path);
        assert_eq!(again.tasks(), vec!["t1".to_string(), "t2".to_string()]);
        again.release("t1");
        assert_eq!(
            again.assign("b", s, gw, "t3").unwrap(),
            "172.17.0.2".parse::<Ipv4Addr>().unwrap()
        );
    }

    #[test]
    fn a_full_subnet_is_a_clear_error() {
        let s = parse_subnet("10.9.0.0/30").unwrap();
        let gw: Ipv4Addr = "10.9.0.1".parse().unwrap();
        let mut ipam = LocalIpam::default();
        assert_eq!(
            ipam.assign("n", s, gw, "a").unwrap(),
            "10.9.0.2".parse::<Ipv4Addr>().unwrap()
        );
        assert_eq!(
            ipam.assign("n", s, gw, "b").unwrap_err().to_string(),
            "no free address left in 10.9.0.0/30"
        );
        assert!(parse_subnet("10.0.0.0").is_err());
        assert!(parse_subnet("10.0.0.0/31").is_err());
    }

    #[test]
    fn local_subnets_are_1_to_30_and_lose_their_host_bits() {
        let text = |s: &str| parse_subnet(s).unwrap_err().to_string();
        assert_eq!(
            parse_subnet("10.0.0.5/24").unwrap().to_string(),
            "10.0.0.0/24"
        );
        assert_eq!(parse_subnet("10.0.0.0/1").unwrap().to_string(), "0.0.0.0/1");
        for bad in [
            "10.0.0.0",
            "10.0.0/24",
            "10.0.0.0/x",
            "10.0.0.0/300",
            "x/33",
            " 10.0.0.0/24",
        ] {
            assert_eq!(text(bad), format!("bad subnet {bad:?}"));
        }
        for short in [
            "10.0.0.0/0",
            "10.0.0.0/31",
            "10.0.0.0/32",
            "10.0.0.0/33",
            "10.0.0.0/255",
        ] {
            assert_eq!(
                text(short),
                format!("bad subnet {short:?}: prefix must be 1..=30")
            );
        }
    }
}
