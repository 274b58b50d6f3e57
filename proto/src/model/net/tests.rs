use super::*;

fn net(s: &str) -> Ipv4Net {
    s.parse().unwrap()
}

fn err(s: &str) -> String {
    s.parse::<Ipv4Net>().unwrap_err().to_string()
}

#[test]
fn parses_an_address_with_a_prefix_and_prints_it_back() {
    for s in [
        "10.0.0.0/8",
        "10.0.0.5/24",
        "0.0.0.0/0",
        "255.255.255.255/32",
    ] {
        assert_eq!(net(s).to_string(), s);
    }
    let n = net("10.0.0.5/24");
    assert_eq!((n.addr(), n.prefix()), (Ipv4Addr::new(10, 0, 0, 5), 24));
    // What `u8::from_str` takes, as every parser before this one did.
    assert_eq!(net("10.0.0.0/+8").prefix(), 8);
}

#[test]
fn refusals_keep_the_managers_texts() {
    assert_eq!(
        err("10.0.0.0"),
        "invalid subnet \"10.0.0.0\": expected CIDR such as 10.0.9.0/24"
    );
    assert_eq!(
        err("10.0.0/24"),
        "invalid subnet \"10.0.0/24\": \"10.0.0\" is not an IPv4 address"
    );
    assert_eq!(
        err(" 10.0.0.0/24"),
        "invalid subnet \" 10.0.0.0/24\": \" 10.0.0.0\" is not an IPv4 address"
    );
    assert_eq!(
        err("10.0.0.0/33"),
        "invalid subnet \"10.0.0.0/33\": prefix length must be 0-32"
    );
    assert_eq!(err("10.0.0.0/x"), err("10.0.0.0/33").replace("33", "x"));
    assert_eq!(
        err("fd00::/64"),
        "invalid subnet \"fd00::/64\": \"fd00::\" is not an IPv4 address"
    );
    // The address is checked before the prefix.
    assert!(matches!(
        "x/33".parse::<Ipv4Net>(),
        Err(Ipv4NetError::BadAddress { .. })
    ));
    assert!(matches!(
        "10.0.0.0/300".parse::<Ipv4Net>(),
        Err(Ipv4NetError::BadPrefix { .. })
    ));
    assert!(matches!(
        "10.0.0.0/33".parse::<Ipv4Net>(),
        Err(Ipv4NetError::PrefixTooLong { prefix: 33, .. })
    ));
    assert!(matches!(
        "10.0.0.0/24/1".parse::<Ipv4Net>(),
        Err(Ipv4NetError::BadPrefix { .. })
    ));
}

#[test]
fn a_network_has_no_host_bits() {
    assert_eq!(
        Ipv4Net::parse_network("10.0.0.0/24").unwrap(),
        net("10.0.0.0/24")
    );
    assert_eq!(
        Ipv4Net::parse_network("10.0.0.1/24")
            .unwrap_err()
            .to_string(),
        "invalid subnet \"10.0.0.1/24\": did you mean 10.0.0.0/24?"
    );
    assert!(Ipv4Net::parse_network("0.0.0.0/0").is_ok());
    assert!(Ipv4Net::parse_network("1.0.0.0/0").is_err());
}

#[test]
fn arithmetic() {
    let n = net("10.0.1.7/29");
    assert_eq!(n.network(), Ipv4Addr::new(10, 0, 1, 0));
    assert_eq!(n.broadcast(), Ipv4Addr::new(10, 0, 1, 7));
    assert_eq!(n.trunc(), net("10.0.1.0/29"));
    assert!(!n.is_network() && n.trunc().is_network());
    assert_eq!(n.size(), 8);
    assert_eq!(n.host(1), Ipv4Addr::new(10, 0, 1, 1));
    assert_eq!(n.checked_host(0), None);
    assert_eq!(n.checked_host(6), Some(Ipv4Addr::new(10, 0, 1, 6)));
    assert_eq!(n.checked_host(7), None);
    assert_eq!(net("10.0.0.0/32").checked_host(1), None);
    assert!(n.contains(Ipv4Addr::new(10, 0, 1, 3)));
    assert!(!n.contains(Ipv4Addr::new(10, 0, 1, 8)));
    assert!(net("0.0.0.0/0").contains(Ipv4Addr::new(1, 2, 3, 4)));

    let wide = net("10.0.0.0/16");
    assert!(wide.overlaps(net("10.0.5.0/24")) && net("10.0.5.0/24").overlaps(wide));
    assert!(!wide.overlaps(net("10.1.0.0/24")));
    assert!(wide.covers(net("10.0.5.0/24")) && !net("10.0.5.0/24").covers(wide));
    assert_eq!(Ipv4Net::new(Ipv4Addr::UNSPECIFIED, 33), None);
}

#[test]
fn addr_of_takes_a_bare_address_too() {
    assert_eq!(
        Ipv4Net::addr_of("10.0.0.5/24"),
        Some(Ipv4Addr::new(10, 0, 0, 5))
    );
    assert_eq!(
        Ipv4Net::addr_of("10.0.0.5"),
        Some(Ipv4Addr::new(10, 0, 0, 5))
    );
    assert_eq!(Ipv4Net::addr_of(""), None);
}

#[test]
fn serde_is_the_string() {
    let n = net("10.0.0.5/24");
    assert_eq!(serde_json::to_string(&n).unwrap(), "\"10.0.0.5/24\"");
    assert_eq!(
        serde_json::from_str::<Ipv4Net>("\"10.0.0.5/24\"").unwrap(),
        n
    );
    assert!(serde_json::from_str::<Ipv4Net>("\"10.0.0.5\"").is_err());
}
