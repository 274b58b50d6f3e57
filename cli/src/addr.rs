//! Listen and advertise addresses as Docker takes them (`docker swarm init|join
//! --listen-addr|--advertise-addr`, and `swarmd`'s flags of the same names): `IP`, `IP:PORT`,
//! an interface name, or `NAME:PORT`; the port defaults to 2377, an advertised one to the
//! listen port. Errors are dockerd's words.

use crate::BadInput;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};

/// The swarm port when an address has none.
pub const DEFAULT_PORT: u16 = 2377;

/// A listen address that is not an IP address or an interface (dockerd's words).
pub const BAD_LISTEN: &str =
    "listen address must be an IP address or network interface (with optional port number)";
/// An advertise address that is not a non-zero IP address or an interface (dockerd's words).
pub const BAD_ADVERTISE: &str =
    "advertise address must be a non-zero IP address or network interface (with optional port number)";

/// Splits `HOST[:PORT]` (`[v6]:PORT` too); `None` port when there is none.
fn split(spec: &str) -> Option<(&str, Option<u16>)> {
    if spec.parse::<IpAddr>().is_ok() {
        return Some((spec, None));
    }
    if let Some(rest) = spec.strip_prefix('[') {
        let (h, p) = rest.split_once("]:")?;
        return Some((h, Some(p.parse().ok()?)));
    }
    match spec.rsplit_once(':') {
        Some((h, p)) => Some((h, Some(p.parse().ok()?))),
        None => Some((spec, None)),
    }
}

/// Whether `s` could be an interface name (the kernel's rules: 1–15 bytes, no `/`, blank or
/// `:`).
fn iface_name(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 15
        && s.bytes()
            .all(|b| b.is_ascii_graphic() && b != b'/' && b != b':')
}

/// Resolves `spec` with `iface` answering an interface's addresses (IPv4 first); `port` is the
/// port when `spec` has none; `advertise` refuses unspecified addresses (0.0.0.0).
pub fn resolve_with(
    spec: &str,
    port: u16,
    advertise: bool,
    iface: impl Fn(&str) -> Option<Vec<IpAddr>>,
) -> Result<SocketAddr, BadInput> {
    let bad = || BadInput::from(if advertise { BAD_ADVERTISE } else { BAD_LISTEN });
    let spec = spec.trim();
    let (host, p) = split(spec).ok_or_else(bad)?;
    let port = p.unwrap_or(port);
    let ip = match host.parse::<IpAddr>() {
        Ok(ip) => ip,
        Err(_) if iface_name(host) => {
            let addrs = iface(host).ok_or_else(|| {
                BadInput::from(format!("no such interface: {host:?} ({})", bad()))
            })?;
            let v4: Vec<IpAddr> = addrs.iter().copied().filter(IpAddr::is_ipv4).collect();
            match v4.as_slice() {
                [one] => *one,
                [a, b, ..] => {
                    return Err(format!(
                        "interface {host} has more than one IPv4 address ({a} and {b})"
                    )
                    .into())
                }
                [] => {
                    return Err(format!(
                        "interface {host} has no usable IPv4 address: must specify a valid IP address or interface name"
                    )
                    .into())
                }
            }
        }
        Err(_) => return Err(bad()),
    };
    if advertise && ip.is_unspecified() {
        return Err(bad());
    }
    Ok(SocketAddr::new(ip, port))
}

/// [`resolve_with`] on this machine's interfaces.
pub fn resolve(spec: &str, port: u16, advertise: bool) -> Result<SocketAddr, BadInput> {
    resolve_with(spec, port, advertise, interface_addrs)
}

/// The addresses of interface `name` on this machine (in this network namespace); `None` when
/// there is no such interface.
pub fn interface_addrs(name: &str) -> Option<Vec<IpAddr>> {
    let all = nix::ifaddrs::getifaddrs().ok()?;
    let mut found = false;
    let mut out = Vec::new();
    for a in all.filter(|a| a.interface_name == name) {
        found = true;
        let Some(addr) = a.address else { continue };
        if let Some(v4) = addr.as_sockaddr_in() {
            out.push(IpAddr::V4(v4.ip()));
        } else if let Some(v6) = addr.as_sockaddr_in6() {
            out.push(IpAddr::V6(v6.ip()));
        }
    }
    found.then_some(out)
}

/// The local address this machine would use to reach `remote` (no packet is sent): how a
/// joining node without `--advertise-addr` picks its own, as dockerd does.
pub fn local_toward(remote: &str) -> Option<IpAddr> {
    let sock = std::net::UdpSocket::bind((Ipv4Addr::UNSPECIFIED, 0)).ok()?;
    sock.connect(remote).ok()?;
    Some(sock.local_addr().ok()?.ip())
}

/// A manager's address with the swarm port when it has none: `HOST` → `HOST:2377`, a bare IPv6
/// address → `[IP]:2377`.
pub fn with_port(a: &str) -> String {
    let a = a.trim();
    if let Ok(ip) = a.parse::<IpAddr>() {
        return SocketAddr::new(ip, DEFAULT_PORT).to_string();
    }
    if a.parse::<SocketAddr>().is_ok() || (!a.starts_with('[') && a.contains(':')) {
        a.to_string()
    } else {
        format!("{a}:{DEFAULT_PORT}")
    }
}

/// Whether `a` listens on every address (0.0.0.0 or ::).
pub fn is_wildcard(a: &SocketAddr) -> bool {
    a.ip().is_unspecified()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lookup(name: &str) -> Option<Vec<IpAddr>> {
        match name {
            "eth0" => Some(vec![
                "198.18.0.1".parse().unwrap(),
                "fe80::1".parse().unwrap(),
            ]),
            "two" => Some(vec![
                "10.0.0.1".parse().unwrap(),
                "10.0.0.2".parse().unwrap(),
            ]),
            "v6only" => Some(vec!["fe80::1".parse().unwrap()]),
            _ => None,
        }
    }

    fn r(spec: &str, advertise: bool) -> Result<String, String> {
        resolve_with(spec, 2377, advertise, lookup)
            .map(|a| a.to_string())
            .map_err(|e| e.to_string())
    }

    #[test]
    fn ips_ports_and_interfaces() {
        assert_eq!(r("198.18.0.5", true).unwrap(), "198.18.0.5:2377");
        assert_eq!(r("198.18.0.5:4000", true).unwrap(), "198.18.0.5:4000");
        assert_eq!(r("eth0", true).unwrap(), "198.18.0.1:2377");
        assert_eq!(r("eth0:2400", false).unwrap(), "198.18.0.1:2400");
        assert_eq!(r("0.0.0.0", false).unwrap(), "0.0.0.0:2377");
        assert_eq!(r("[::1]:2377", true).unwrap(), "[::1]:2377");
        assert_eq!(r("127.0.0.11", true).unwrap(), "127.0.0.11:2377");
    }

    #[test]
    fn refusals_say_what_docker_says() {
        assert_eq!(r("0.0.0.0:2377", true).unwrap_err(), BAD_ADVERTISE);
        assert!(r("nosuch0", true)
            .unwrap_err()
            .contains("no such interface"));
        assert!(r("two", true)
            .unwrap_err()
            .contains("more than one IPv4 address (10.0.0.1 and 10.0.0.2)"));
        assert!(r("v6only", true).unwrap_err().contains("no usable IPv4"));
        assert_eq!(r("eth0:port", false).unwrap_err(), BAD_LISTEN);
        assert_eq!(r("a/b", false).unwrap_err(), BAD_LISTEN);
        assert_eq!(r("", true).unwrap_err(), BAD_ADVERTISE);
    }

    #[test]
    fn remote_addresses_get_the_swarm_port() {
        assert_eq!(with_port("198.18.0.1"), "198.18.0.1:2377");
        assert_eq!(with_port("198.18.0.1:2400"), "198.18.0.1:2400");
        assert_eq!(with_port("2001:db8::1"), "[2001:db8::1]:2377");
        assert_eq!(with_port("[2001:db8::1]:2400"), "[2001:db8::1]:2400");
        assert_eq!(with_port("manager1"), "manager1:2377");
    }

    #[test]
    fn loopback_is_an_interface_here() {
        let lo = interface_addrs("lo").expect("lo exists");
        assert!(lo.contains(&IpAddr::V4(Ipv4Addr::LOCALHOST)), "{lo:?}");
        assert!(interface_addrs("nosuch-if0").is_none());
    }
}
