//! Published ports: one cluster-wide space per protocol; dynamic ports from 30000–32767.

use serde::{Deserialize, Serialize};
use shoal_proto::model::{PortConfig, Protocol, PublishMode, Service};
use std::collections::BTreeSet;

/// First dynamic published port.
pub const DYNAMIC_START: u16 = 30000;
/// Last dynamic published port.
pub const DYNAMIC_END: u16 = 32767;

/// Why published ports could not be allocated (a store refusal: it crosses the wire between
/// managers inside [`crate::store::Refusal`]).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
#[non_exhaustive]
pub enum PortError {
    /// Another service publishes this port in ingress mode.
    #[error("port {port}/{protocol} is already published by service {owner:?}; choose another with --publish PUBLISHED:{target}")]
    InUse {
        /// The published port.
        port: u16,
        /// `tcp` or `udp`.
        protocol: String,
        /// The service holding it.
        owner: String,
        /// The target port asked for.
        target: u16,
    },
    /// Every dynamic port is taken.
    #[error("no free published port left in {DYNAMIC_START}-{DYNAMIC_END}")]
    NoneFree,
}

/// Ports published (in either mode) by services other than `except`: a dynamic pick never
/// takes one of them.
pub fn used_ports<'a>(
    services: impl Iterator<Item = &'a Service>,
    except: &str,
) -> BTreeSet<(Protocol, u16)> {
    services
        .filter(|s| s.id != except)
        .flat_map(|s| s.ports.iter())
        .filter(|p| p.published != 0)
        .map(|p| (p.protocol, p.published))
        .collect()
}

/// Fills in published ports for `wanted`: fixed ones are checked against `used`, missing ones
/// take the next free dynamic port. `previous` ports of the same service keep their numbers.
pub fn allocate(
    wanted: &[PortConfig],
    previous: &[PortConfig],
    used: &BTreeSet<(Protocol, u16)>,
    service_name: &str,
    owner_of: impl Fn(Protocol, u16) -> Option<String>,
) -> Result<Vec<PortConfig>, PortError> {
    let mut taken = used.clone();
    let mut out = Vec::with_capacity(wanted.len());
    // Fixed ports first, so a dynamic pick never steals a port asked for explicitly.
    for p in wanted.iter().filter(|p| p.published != 0) {
        // Fixed host-mode ports are per node: two services may use one on different nodes.
        if !taken.insert((p.protocol, p.published)) && p.mode == PublishMode::Ingress {
            let who = owner_of(p.protocol, p.published).unwrap_or_else(|| service_name.to_string());
            return Err(PortError::InUse {
                port: p.published,
                protocol: p.protocol.as_str().to_string(),
                owner: who,
                target: p.target,
            });
        }
    }
    for p in wanted {
        let mut p = *p;
        if p.published == 0 {
            let kept = previous
                .iter()
                .find(|q| {
                    q.target == p.target
                        && q.protocol == p.protocol
                        && q.mode == p.mode
                        && q.published != 0
                })
                .map(|q| q.published)
                .filter(|port| !taken.contains(&(p.protocol, *port)));
            let port = match kept {
                Some(port) => port,
                None => (DYNAMIC_START..=DYNAMIC_END)
                    .find(|port| !taken.contains(&(p.protocol, *port)))
                    .ok_or(PortError::NoneFree)?,
            };
            taken.insert((p.protocol, port));
            p.published = port;
        }
        out.push(p);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(s: &str) -> PortConfig {
        PortConfig::parse(s).unwrap()
    }

    #[test]
    fn dynamic_and_fixed() {
        let used = BTreeSet::from([(Protocol::Tcp, 30000)]);
        let got = allocate(
            &[parse("8080"), parse("30001:80")],
            &[],
            &used,
            "web",
            |_, _| None,
        )
        .unwrap();
        assert_eq!(
            got[0].published, 30002,
            "skips the used one and the fixed one"
        );
        assert_eq!(got[1].published, 30001);
    }

    #[test]
    fn conflicts_refused_with_owner() {
        let used = BTreeSet::from([(Protocol::Tcp, 8080)]);
        let err = allocate(&[parse("8080:80")], &[], &used, "web", |_, _| {
            Some("api".into())
        })
        .unwrap_err()
        .to_string();
        assert_eq!(
            err,
            "port 8080/tcp is already published by service \"api\"; choose another with --publish PUBLISHED:80"
        );
        assert_eq!(
            PortError::NoneFree.to_string(),
            "no free published port left in 30000-32767"
        );
        // the same number over udp is free
        assert!(allocate(&[parse("8080:80/udp")], &[], &used, "web", |_, _| None).is_ok());
        // twice in one spec
        assert!(allocate(
            &[parse("9000:80"), parse("9000:81")],
            &[],
            &BTreeSet::new(),
            "web",
            |_, _| None
        )
        .is_err());
    }

    #[test]
    fn updates_keep_their_dynamic_port() {
        let prev = vec![PortConfig {
            published: 31000,
            ..parse("8080")
        }];
        let got = allocate(&[parse("8080")], &prev, &BTreeSet::new(), "web", |_, _| {
            None
        })
        .unwrap();
        assert_eq!(got[0].published, 31000);
    }

    #[test]
    fn host_mode_gets_a_dynamic_port_and_fixed_ones_may_repeat() {
        let used = BTreeSet::from([(Protocol::Tcp, 30000), (Protocol::Tcp, 8080)]);
        let got = allocate(
            &[parse("80,mode=host"), parse("8080:80,mode=host")],
            &[],
            &used,
            "web",
            |_, _| None,
        )
        .unwrap();
        assert_eq!(got[0].published, 30001, "a dynamic port no service holds");
        assert_eq!(got[1].published, 8080, "host-mode ports are per node");
    }
}
