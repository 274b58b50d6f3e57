//! Messages checked byte for byte against layouts written out by hand from
//! `include/uapi/linux/ip_vs.h` (host-order numbers as on x86-64/aarch64, little-endian),
//! replies parsed from hand-made datagrams, and one check against this machine's kernel.

use std::net::Ipv4Addr;
use std::time::Duration;

use super::attr::*;
use super::msg::{self, IpvsMessage, Reply};
use super::*;

const VIP: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 2);
const BE: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 5);
const FAMILY: u16 = 29;

/// An attribute: length, type, value, zero padding to 4 bytes.
fn nla(kind: u16, value: &[u8]) -> Vec<u8> {
    let mut v = Vec::new();
    v.extend(((4 + value.len()) as u16).to_le_bytes());
    v.extend(kind.to_le_bytes());
    v.extend(value);
    v.resize(v.len().next_multiple_of(4), 0);
    v
}

/// A nested attribute as the kernel writes it (`nla_nest_start_noflag`: no `NLA_F_NESTED`).
fn nest(kind: u16, parts: &[Vec<u8>]) -> Vec<u8> {
    nla(kind, &parts.concat())
}

/// A netlink message: header (`type`, `flags`, `seq`, port 4242) and payload.
fn nlmsg(ty: u16, flags: u16, seq: u32, payload: &[u8]) -> Vec<u8> {
    let mut v = Vec::new();
    v.extend(((16 + payload.len()) as u32).to_le_bytes());
    v.extend(ty.to_le_bytes());
    v.extend(flags.to_le_bytes());
    v.extend(seq.to_le_bytes());
    v.extend(4242u32.to_le_bytes());
    v.extend(payload);
    v.resize(v.len().next_multiple_of(4), 0);
    v
}

/// `union nf_inet_addr` with an IPv4 address.
fn addr16(a: Ipv4Addr) -> [u8; 16] {
    let mut b = [0; 16];
    b[..4].copy_from_slice(&a.octets());
    b
}

/// `-t 10.0.0.2:80` as `IPVS_CMD_ATTR_SERVICE`, written out.
#[rustfmt::skip]
const SVC_KEY_TCP: [u8; 48] = [
    0x30, 0x00, 0x01, 0x80,             // len 48, IPVS_CMD_ATTR_SERVICE | NLA_F_NESTED
    0x06, 0x00, 0x01, 0x00, 2, 0, 0, 0, // IPVS_SVC_ATTR_AF = AF_INET (u16 + 2 pad)
    0x06, 0x00, 0x02, 0x00, 6, 0, 0, 0, // IPVS_SVC_ATTR_PROTOCOL = IPPROTO_TCP
    0x14, 0x00, 0x03, 0x00,             // IPVS_SVC_ATTR_ADDR, 16 bytes
    10, 0, 0, 2, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
    0x06, 0x00, 0x04, 0x00, 0x00, 0x50, 0, 0, // IPVS_SVC_ATTR_PORT = 80, big-endian
];

#[test]
fn new_service_tcp_rr() {
    // ipvsadm -A -t 10.0.0.2:80 -s rr
    let m = msg::new_service(&Service::new(ServiceKey::tcp(VIP, 80), "rr"));
    #[rustfmt::skip]
    let want: Vec<u8> = [
        &[1u8, 1, 0, 0][..],                // genl: IPVS_CMD_NEW_SERVICE, version 1
        &[0x54, 0x00, 0x01, 0x80],          // len 84, IPVS_CMD_ATTR_SERVICE | NLA_F_NESTED
        &[0x06, 0x00, 0x01, 0x00, 2, 0, 0, 0],
        &[0x06, 0x00, 0x02, 0x00, 6, 0, 0, 0],
        &[0x14, 0x00, 0x03, 0x00, 10, 0, 0, 2, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0],
        &[0x06, 0x00, 0x04, 0x00, 0x00, 0x50, 0, 0],
        &[0x07, 0x00, 0x06, 0x00, b'r', b'r', 0, 0],      // SCHED_NAME "rr\0" + 1 pad
        &[0x0c, 0x00, 0x07, 0x00, 0, 0, 0, 0, 0xff, 0xff, 0xff, 0xff], // FLAGS {0, ~0}
        &[0x08, 0x00, 0x08, 0x00, 0, 0, 0, 0],            // TIMEOUT 0
        &[0x08, 0x00, 0x09, 0x00, 0xff, 0xff, 0xff, 0xff], // NETMASK 255.255.255.255
    ]
    .concat();
    assert_eq!(m.to_bytes(), want);
}

#[test]
fn new_service_fwmark_persistent() {
    // ipvsadm -A -f 256 -s wrr -p 300
    let svc = Service {
        flags: Service::PERSISTENT,
        timeout: Duration::from_secs(300),
        ..Service::new(ServiceKey::Fwmark(256), "wrr")
    };
    #[rustfmt::skip]
    let want: Vec<u8> = [
        &[1u8, 1, 0, 0][..],
        &[0x38, 0x00, 0x01, 0x80],                        // len 56
        &[0x06, 0x00, 0x01, 0x00, 2, 0, 0, 0],            // AF_INET
        &[0x08, 0x00, 0x05, 0x00, 0x00, 0x01, 0, 0],      // FWMARK 256 (host order)
        &[0x08, 0x00, 0x06, 0x00, b'w', b'r', b'r', 0],   // SCHED_NAME "wrr\0"
        &[0x0c, 0x00, 0x07, 0x00, 1, 0, 0, 0, 0xff, 0xff, 0xff, 0xff], // FLAGS {PERSISTENT, ~0}
        &[0x08, 0x00, 0x08, 0x00, 0x2c, 0x01, 0, 0],      // TIMEOUT 300
        &[0x08, 0x00, 0x09, 0x00, 0xff, 0xff, 0xff, 0xff],
    ]
    .concat();
    assert_eq!(msg::new_service(&svc).to_bytes(), want);
    // -E is the same message with IPVS_CMD_SET_SERVICE; -D carries only the key.
    assert_eq!(msg::set_service(&svc).to_bytes()[..1], [2]);
    #[rustfmt::skip]
    let del: Vec<u8> = [
        &[3u8, 1, 0, 0][..],
        &[0x14, 0x00, 0x01, 0x80],
        &[0x06, 0x00, 0x01, 0x00, 2, 0, 0, 0],
        &[0x08, 0x00, 0x05, 0x00, 0x00, 0x01, 0, 0],
    ]
    .concat();
    assert_eq!(msg::del_service(&svc.key).to_bytes(), del);
}

#[test]
fn new_dest_masq_weight() {
    // ipvsadm -a -t 10.0.0.2:80 -r 10.0.0.5:8080 -m -w 3
    let m = msg::new_dest(&ServiceKey::tcp(VIP, 80), &Dest::masq(BE, 8080, 3));
    #[rustfmt::skip]
    let want: Vec<u8> = [
        &[5u8, 1, 0, 0][..],                              // IPVS_CMD_NEW_DEST
        &SVC_KEY_TCP[..],
        &[0x48, 0x00, 0x02, 0x80],                        // len 72, IPVS_CMD_ATTR_DEST | NESTED
        &[0x14, 0x00, 0x01, 0x00, 10, 0, 0, 5, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0], // ADDR
        &[0x06, 0x00, 0x02, 0x00, 0x1f, 0x90, 0, 0],      // PORT 8080 big-endian
        &[0x08, 0x00, 0x03, 0x00, 0, 0, 0, 0],            // FWD_METHOD IP_VS_CONN_F_MASQ
        &[0x08, 0x00, 0x04, 0x00, 3, 0, 0, 0],            // WEIGHT 3
        &[0x08, 0x00, 0x05, 0x00, 0, 0, 0, 0],            // U_THRESH
        &[0x08, 0x00, 0x06, 0x00, 0, 0, 0, 0],            // L_THRESH
        &[0x06, 0x00, 0x0b, 0x00, 2, 0, 0, 0],            // ADDR_FAMILY AF_INET
    ]
    .concat();
    assert_eq!(m.to_bytes(), want);
    // -e: same attributes, IPVS_CMD_SET_DEST; direct routing is 3.
    let e = msg::set_dest(
        &ServiceKey::tcp(VIP, 80),
        &Dest {
            fwd: Forward::Route,
            ..Dest::masq(BE, 8080, 3)
        },
    );
    let e = e.to_bytes();
    assert_eq!(e[0], 6);
    assert_eq!(
        e[4 + 48 + 4 + 20 + 8..][..8],
        [0x08, 0x00, 0x03, 0x00, 3, 0, 0, 0]
    );
}

#[test]
fn del_dest_of_fwmark_service() {
    // ipvsadm -d -f 256 -r 10.0.0.5:0
    #[rustfmt::skip]
    let want: Vec<u8> = [
        &[7u8, 1, 0, 0][..],                              // IPVS_CMD_DEL_DEST
        &[0x14, 0x00, 0x01, 0x80],
        &[0x06, 0x00, 0x01, 0x00, 2, 0, 0, 0],
        &[0x08, 0x00, 0x05, 0x00, 0x00, 0x01, 0, 0],
        &[0x28, 0x00, 0x02, 0x80],                        // len 40
        &[0x14, 0x00, 0x01, 0x00, 10, 0, 0, 5, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0],
        &[0x06, 0x00, 0x02, 0x00, 0, 0, 0, 0],            // port 0
        &[0x06, 0x00, 0x0b, 0x00, 2, 0, 0, 0],
    ]
    .concat();
    assert_eq!(
        msg::del_dest(&ServiceKey::Fwmark(256), BE, 0).to_bytes(),
        want
    );
}

#[test]
fn get_dest_dump_request_frame() {
    // ipvsadm -L -n -t 10.0.0.2:80: a dump (NLM_F_REQUEST | NLM_F_DUMP) carrying the service.
    let frame = msg::frame(
        msg::get_dests(&ServiceKey::tcp(VIP, 80)),
        FAMILY,
        msg::FLAGS_DUMP,
        7,
    );
    #[rustfmt::skip]
    let want: Vec<u8> = [
        &[0x44u8, 0, 0, 0][..],     // nlmsg_len 68
        &[29, 0],                   // nlmsg_type = the family id
        &[0x01, 0x03],              // NLM_F_REQUEST | NLM_F_ROOT | NLM_F_MATCH
        &[7, 0, 0, 0],              // seq
        &[0, 0, 0, 0],              // port: the kernel fills it
        &[8, 1, 0, 0],              // IPVS_CMD_GET_DEST, version 1
        &SVC_KEY_TCP[..],
    ]
    .concat();
    assert_eq!(frame, want);
    // The service dump carries nothing; a change asks for an ack.
    assert_eq!(
        msg::frame(msg::get_services(), FAMILY, msg::FLAGS_DUMP, 1)[16..],
        [4, 1, 0, 0]
    );
    assert_eq!(
        msg::frame(msg::flush(), FAMILY, msg::FLAGS_DO, 1)[6..8],
        [0x05, 0x00]
    );
}

#[test]
fn config_info_zero_flush() {
    // ipvsadm --set 900 120 300
    let t = Timeouts {
        tcp: Duration::from_secs(900),
        tcp_fin: Duration::from_secs(120),
        udp: Duration::from_secs(300),
    };
    #[rustfmt::skip]
    let want: Vec<u8> = [
        &[12u8, 1, 0, 0][..],                         // IPVS_CMD_SET_CONFIG
        &[0x08, 0x00, 0x04, 0x00, 0x84, 0x03, 0, 0],  // TIMEOUT_TCP 900
        &[0x08, 0x00, 0x05, 0x00, 0x78, 0x00, 0, 0],  // TIMEOUT_TCP_FIN 120
        &[0x08, 0x00, 0x06, 0x00, 0x2c, 0x01, 0, 0],  // TIMEOUT_UDP 300
    ]
    .concat();
    assert_eq!(msg::set_config(&t).to_bytes(), want);
    assert_eq!(msg::get_config().to_bytes(), [13, 1, 0, 0]);
    assert_eq!(msg::get_info().to_bytes(), [15, 1, 0, 0]);
    assert_eq!(msg::zero(None).to_bytes(), [16, 1, 0, 0]);
    assert_eq!(
        msg::zero(Some(&ServiceKey::tcp(VIP, 80))).to_bytes(),
        [&[16u8, 1, 0, 0][..], &SVC_KEY_TCP].concat()
    );
    assert_eq!(msg::flush().to_bytes(), [17, 1, 0, 0]);
    // A GET_CONFIG reply (IPVS_CMD_SET_CONFIG) reads back into the same timeouts.
    let reply = IpvsMessage::from_bytes(&msg::set_config(&t).to_bytes()).unwrap();
    assert_eq!(msg::timeouts_of(&reply), t);
}

#[test]
fn family_request_and_reply() {
    // CTRL_CMD_GETFAMILY "IPVS" to GENL_ID_CTRL (16), version 2, acked.
    #[rustfmt::skip]
    let want: Vec<u8> = [
        &[32u8, 0, 0, 0][..], &[16, 0], &[0x05, 0x00], &[1, 0, 0, 0], &[0, 0, 0, 0],
        &[3, 2, 0, 0],
        &[0x09, 0x00, 0x02, 0x00, b'I', b'P', b'V', b'S', 0, 0, 0, 0], // CTRL_ATTR_FAMILY_NAME
    ]
    .concat();
    assert_eq!(msg::frame(msg::get_family(), 0, msg::FLAGS_DO, 1), want);
    // The reply: genl header, FAMILY_ID, FAMILY_NAME, and attributes nobody needs.
    let reply = [
        vec![1, 2, 0, 0],
        nla(1, &29u16.to_le_bytes()),
        nla(2, b"IPVS\0"),
        nla(3, &1u32.to_le_bytes()),
        nest(6, &[nest(1, &[nla(1, &1u32.to_le_bytes())])]),
        nla(99, b"future"),
    ]
    .concat();
    assert_eq!(msg::family_id_of(&reply).unwrap(), 29);
    assert!(msg::family_id_of(&[1, 2, 0, 0]).is_err());
}

/// `IPVS_*_ATTR_STATS` as the kernel fills it (`ip_vs_genl_fill_stats`): 32-bit counts and
/// rates, 64-bit bytes after an `IPVS_STATS_ATTR_PAD` where alignment needs one.
fn stats32(conns: u32) -> Vec<Vec<u8>> {
    vec![
        nla(IPVS_STATS_ATTR_CONNS, &conns.to_le_bytes()),
        nla(IPVS_STATS_ATTR_INPKTS, &10u32.to_le_bytes()),
        nla(IPVS_STATS_ATTR_OUTPKTS, &8u32.to_le_bytes()),
        nla(IPVS_STATS_ATTR_PAD, &[]),
        nla(IPVS_STATS_ATTR_INBYTES, &1000u64.to_le_bytes()),
        nla(IPVS_STATS_ATTR_OUTBYTES, &800u64.to_le_bytes()),
        nla(IPVS_STATS_ATTR_CPS, &1u32.to_le_bytes()),
        nla(IPVS_STATS_ATTR_INPPS, &2u32.to_le_bytes()),
        nla(IPVS_STATS_ATTR_OUTPPS, &3u32.to_le_bytes()),
        nla(IPVS_STATS_ATTR_INBPS, &4u32.to_le_bytes()),
        nla(IPVS_STATS_ATTR_OUTBPS, &5u32.to_le_bytes()),
    ]
}

/// `IPVS_*_ATTR_STATS64`: everything 64-bit.
fn stats64(conns: u64) -> Vec<Vec<u8>> {
    [conns, 10, 8, 1000, 800, 1, 2, 3, 4, 5]
        .iter()
        .enumerate()
        .map(|(i, v)| nla(i as u16 + 1, &v.to_le_bytes()))
        .collect()
}

#[test]
fn parse_service_dump() {
    let seq = 41;
    let tcp = [
        vec![IPVS_CMD_NEW_SERVICE, 1, 0, 0],
        nest(
            IPVS_CMD_ATTR_SERVICE,
            &[
                nla(IPVS_SVC_ATTR_AF, &2u16.to_le_bytes()),
                nla(IPVS_SVC_ATTR_PROTOCOL, &6u16.to_le_bytes()),
                nla(IPVS_SVC_ATTR_ADDR, &addr16(VIP)),
                nla(IPVS_SVC_ATTR_PORT, &80u16.to_be_bytes()),
                nla(IPVS_SVC_ATTR_SCHED_NAME, b"rr\0"),
                nla(IPVS_SVC_ATTR_FLAGS, &[2, 0, 0, 0, 0xff, 0xff, 0xff, 0xff]), // HASHED
                nla(IPVS_SVC_ATTR_TIMEOUT, &0u32.to_le_bytes()),
                nla(IPVS_SVC_ATTR_NETMASK, &[0xff, 0xff, 0xff, 0xff]),
                nest(IPVS_SVC_ATTR_STATS, &stats32(5)),
                nest(IPVS_SVC_ATTR_STATS64, &stats64(5_000_000_000)),
                nla(42, &[1, 2, 3, 4]), // an attribute of a future kernel
            ],
        ),
    ]
    .concat();
    let fwm = [
        vec![IPVS_CMD_NEW_SERVICE, 1, 0, 0],
        nest(
            IPVS_CMD_ATTR_SERVICE,
            &[
                nla(IPVS_SVC_ATTR_AF, &2u16.to_le_bytes()),
                nla(IPVS_SVC_ATTR_FWMARK, &256u32.to_le_bytes()),
                nla(IPVS_SVC_ATTR_SCHED_NAME, b"wrr\0"),
                nla(IPVS_SVC_ATTR_PE_NAME, b"sip\0"),
                nla(IPVS_SVC_ATTR_FLAGS, &[3, 0, 0, 0, 0xff, 0xff, 0xff, 0xff]),
                nla(IPVS_SVC_ATTR_TIMEOUT, &360u32.to_le_bytes()),
                nla(IPVS_SVC_ATTR_NETMASK, &[255, 255, 255, 0]),
                nest(IPVS_SVC_ATTR_STATS, &stats32(7)), // an old kernel: no STATS64
            ],
        ),
        nla(9, b"unknown top-level"),
    ]
    .concat();
    let v6 = [
        vec![IPVS_CMD_NEW_SERVICE, 1, 0, 0],
        nest(
            IPVS_CMD_ATTR_SERVICE,
            &[
                nla(IPVS_SVC_ATTR_AF, &10u16.to_le_bytes()),
                nla(IPVS_SVC_ATTR_PROTOCOL, &6u16.to_le_bytes()),
                nla(IPVS_SVC_ATTR_ADDR, &[0xfd; 16]),
                nla(IPVS_SVC_ATTR_PORT, &80u16.to_be_bytes()),
                nla(IPVS_SVC_ATTR_SCHED_NAME, b"rr\0"),
            ],
        ),
    ]
    .concat();
    const MULTI: u16 = 2;
    let datagram = [
        nlmsg(FAMILY, MULTI, seq - 1, &tcp), // left over from an earlier request: skipped
        nlmsg(FAMILY, MULTI, seq, &tcp),
        nlmsg(FAMILY, MULTI, seq, &fwm),
        nlmsg(FAMILY, MULTI, seq, &v6),
        nlmsg(3, MULTI, seq, &0i32.to_le_bytes()), // NLMSG_DONE
    ]
    .concat();
    let replies = msg::replies(&datagram, seq).unwrap();
    assert_eq!(replies.len(), 4);
    assert_eq!(replies[3], Reply::Done);
    let mut services = Vec::new();
    for r in &replies[..3] {
        let Reply::Data(d) = r else { panic!("{r:?}") };
        services.extend(msg::services_of(&IpvsMessage::from_bytes(d).unwrap()).unwrap());
    }
    let full = Stats {
        conns: 5_000_000_000,
        inpkts: 10,
        outpkts: 8,
        inbytes: 1000,
        outbytes: 800,
        cps: 1,
        inpps: 2,
        outpps: 3,
        inbps: 4,
        outbps: 5,
    };
    assert_eq!(
        services,
        vec![
            ServiceInfo {
                service: Service::new(ServiceKey::tcp(VIP, 80), "rr"),
                stats: full
            },
            ServiceInfo {
                service: Service {
                    flags: Service::PERSISTENT,
                    timeout: Duration::from_secs(360),
                    netmask: Ipv4Addr::new(255, 255, 255, 0),
                    ..Service::new(ServiceKey::Fwmark(256), "wrr")
                },
                stats: Stats { conns: 7, ..full },
            },
        ]
    );
}

#[test]
fn parse_dest_dump() {
    let dest = |addr: Ipv4Addr, active: u32, inactive: u32, extra: Vec<Vec<u8>>| {
        let mut attrs = vec![
            nla(IPVS_DEST_ATTR_ADDR, &addr16(addr)),
            nla(IPVS_DEST_ATTR_PORT, &8080u16.to_be_bytes()),
            nla(IPVS_DEST_ATTR_FWD_METHOD, &0u32.to_le_bytes()),
            nla(IPVS_DEST_ATTR_WEIGHT, &2u32.to_le_bytes()),
            nla(IPVS_DEST_ATTR_U_THRESH, &100u32.to_le_bytes()),
            nla(IPVS_DEST_ATTR_L_THRESH, &50u32.to_le_bytes()),
            nla(IPVS_DEST_ATTR_ACTIVE_CONNS, &active.to_le_bytes()),
            nla(IPVS_DEST_ATTR_INACT_CONNS, &inactive.to_le_bytes()),
            nla(IPVS_DEST_ATTR_PERSIST_CONNS, &1u32.to_le_bytes()),
            nest(IPVS_DEST_ATTR_STATS, &stats32(9)),
        ];
        attrs.extend(extra);
        // With NLA_F_NESTED, as a newer kernel might send it.
        [
            vec![IPVS_CMD_NEW_DEST, 1, 0, 0],
            nest(IPVS_CMD_ATTR_DEST | 0x8000, &attrs),
        ]
        .concat()
    };
    let new_kernel = dest(
        BE,
        3,
        4,
        vec![
            nla(IPVS_DEST_ATTR_ADDR_FAMILY, &2u16.to_le_bytes()),
            nest(IPVS_DEST_ATTR_STATS64, &stats64(9)),
            nla(IPVS_DEST_ATTR_TUN_TYPE, &[0]),
            nla(IPVS_DEST_ATTR_TUN_PORT, &0u16.to_be_bytes()),
            nla(IPVS_DEST_ATTR_TUN_FLAGS, &0u16.to_le_bytes()),
            nla(16, &[0; 8]), // a future attribute
        ],
    );
    let old_kernel = dest(Ipv4Addr::new(10, 0, 0, 6), 0, 1, vec![]);
    let v6 = dest(
        Ipv4Addr::new(10, 0, 0, 7),
        0,
        0,
        vec![nla(IPVS_DEST_ATTR_ADDR_FAMILY, &10u16.to_le_bytes())],
    );
    let datagram = [
        nlmsg(FAMILY, 2, 5, &new_kernel),
        nlmsg(FAMILY, 2, 5, &old_kernel),
        nlmsg(FAMILY, 2, 5, &v6),
        nlmsg(3, 2, 5, &[0; 4]),
    ]
    .concat();
    let mut dests = Vec::new();
    for r in msg::replies(&datagram, 5).unwrap() {
        if let Reply::Data(d) = r {
            dests.extend(msg::dests_of(&IpvsMessage::from_bytes(&d).unwrap()).unwrap());
        }
    }
    let d = Dest {
        upper_threshold: 100,
        lower_threshold: 50,
        ..Dest::masq(BE, 8080, 2)
    };
    assert_eq!(dests.len(), 2, "{dests:?}");
    assert_eq!(dests[0].dest, d);
    assert_eq!(
        (
            dests[0].active_conns,
            dests[0].inactive_conns,
            dests[0].persist_conns
        ),
        (3, 4, 1)
    );
    assert_eq!(dests[0].stats.conns, 9);
    assert_eq!(dests[0].stats.outbps, 5);
    assert_eq!(dests[1].dest.addr, Ipv4Addr::new(10, 0, 0, 6));
    assert_eq!((dests[1].active_conns, dests[1].inactive_conns), (0, 1));
    assert_eq!(dests[1].stats.inbytes, 1000);
}

#[test]
fn acks_errors_and_done() {
    // An ack: error 0, the request's header echoed (NLM_F_CAPPED: header only).
    let ack = nlmsg(2, 0x100, 9, &[&0i32.to_le_bytes()[..], &[0; 16]].concat());
    assert_eq!(msg::replies(&ack, 9).unwrap(), vec![Reply::Ack]);
    // EEXIST, capped, no TLVs.
    let exists = nlmsg(
        2,
        0x100,
        9,
        &[&(-17i32).to_le_bytes()[..], &[0; 16]].concat(),
    );
    assert_eq!(
        msg::replies(&exists, 9).unwrap(),
        vec![Reply::Failed {
            errno: 17,
            msg: None
        }]
    );
    // EINVAL with an extended ack message (NLM_F_CAPPED | NLM_F_ACK_TLVS).
    let einval = nlmsg(
        2,
        0x300,
        9,
        &[
            &(-22i32).to_le_bytes()[..],
            &[0; 16],
            &nla(1, b"bad attr\0"),
        ]
        .concat(),
    );
    assert_eq!(
        msg::replies(&einval, 9).unwrap(),
        vec![Reply::Failed {
            errno: 22,
            msg: Some("bad attr".into())
        }]
    );
    // Not capped: the whole request is echoed before the TLVs.
    let mut echoed = nlmsg(FAMILY, 5, 9, &[1, 1, 0, 0]);
    echoed.truncate(20);
    let uncapped = nlmsg(
        2,
        0x200,
        9,
        &[&(-1i32).to_le_bytes()[..], &echoed, &nla(1, b"denied\0")].concat(),
    );
    assert_eq!(
        msg::replies(&uncapped, 9).unwrap(),
        vec![Reply::Failed {
            errno: 1,
            msg: Some("denied".into())
        }]
    );
    // A dump that fails ends with a negative NLMSG_DONE.
    let done = nlmsg(3, 2, 9, &(-12i32).to_le_bytes());
    assert_eq!(
        msg::replies(&done, 9).unwrap(),
        vec![Reply::Failed {
            errno: 12,
            msg: None
        }]
    );
    // Truncated datagrams are errors, not panics.
    assert!(msg::replies(&ack[..10], 9).is_err());
    let mut lying = ack.clone();
    lying[0] = 200;
    assert!(msg::replies(&lying, 9).is_err());
}

#[test]
fn info_reply() {
    let reply = [
        vec![IPVS_CMD_SET_INFO, 1, 0, 0],
        nla(IPVS_INFO_ATTR_VERSION, &0x010201u32.to_le_bytes()),
        nla(IPVS_INFO_ATTR_CONN_TAB_SIZE, &4096u32.to_le_bytes()),
    ]
    .concat();
    let m = IpvsMessage::from_bytes(&reply).unwrap();
    assert_eq!(
        m.attrs,
        vec![Attr::InfoVersion(0x010201), Attr::InfoConnTabSize(4096)]
    );
    assert_eq!(msg::version_of(&m).unwrap(), (1, 2, 1));
}

#[test]
fn services_and_dests_round_trip() {
    for svc in [
        Service::new(ServiceKey::udp(VIP, 53), "sh"),
        Service {
            flags: Service::PERSISTENT | Service::ONEPACKET,
            timeout: Duration::from_secs(60),
            netmask: Ipv4Addr::new(255, 255, 0, 0),
            ..Service::new(ServiceKey::Fwmark(0x100), "mh")
        },
        Service::new(
            ServiceKey::Addr {
                proto: IPPROTO_SCTP,
                addr: VIP,
                port: 9,
            },
            "lc",
        ),
    ] {
        let back =
            msg::services_of(&IpvsMessage::from_bytes(&msg::new_service(&svc).to_bytes()).unwrap())
                .unwrap();
        assert_eq!(
            back,
            vec![ServiceInfo {
                service: svc,
                stats: Stats::default()
            }]
        );
    }
    for fwd in [
        Forward::Masq,
        Forward::Local,
        Forward::Tunnel,
        Forward::Route,
    ] {
        let d = Dest {
            fwd,
            upper_threshold: 7,
            lower_threshold: 3,
            ..Dest::masq(BE, 0, 0)
        };
        let m =
            IpvsMessage::from_bytes(&msg::set_dest(&ServiceKey::Fwmark(1), &d).to_bytes()).unwrap();
        let back = msg::dests_of(&m).unwrap();
        assert_eq!(back.len(), 1);
        assert_eq!(back[0].dest, d);
        assert_eq!(Forward::from_raw(fwd.raw()), Some(fwd));
    }
    // Every attribute kind, including nested stats and unknown ones, survives emit + parse.
    let all = IpvsMessage {
        cmd: IPVS_CMD_NEW_DEST,
        attrs: vec![
            Attr::Service(vec![
                SvcAttr::Af(2),
                SvcAttr::Fwmark(3),
                SvcAttr::PeName("sip".into()),
                SvcAttr::Stats(vec![StatsAttr::U32(1, 4), StatsAttr::U64(4, 5)]),
                SvcAttr::Stats64(vec![StatsAttr::U64(1, 6)]),
            ]),
            Attr::Dest(vec![
                DestAttr::TunType(1),
                DestAttr::TunPort(6081),
                DestAttr::TunFlags(3),
                DestAttr::ActiveConns(1),
                DestAttr::InactConns(2),
                DestAttr::PersistConns(3),
            ]),
            Attr::TimeoutUdp(5),
        ],
    };
    assert_eq!(IpvsMessage::from_bytes(&all.to_bytes()).unwrap(), all);
}

#[test]
fn malformed_replies_are_errors() {
    // A known attribute with the wrong size.
    let bad_af = [
        vec![IPVS_CMD_NEW_SERVICE, 1, 0, 0],
        nest(
            IPVS_CMD_ATTR_SERVICE,
            &[nla(IPVS_SVC_ATTR_AF, &[2, 0, 0, 0])],
        ),
    ]
    .concat();
    assert!(IpvsMessage::from_bytes(&bad_af).is_err());
    // A service without its key.
    let keyless = [
        vec![IPVS_CMD_NEW_SERVICE, 1, 0, 0],
        nest(
            IPVS_CMD_ATTR_SERVICE,
            &[
                nla(IPVS_SVC_ATTR_AF, &2u16.to_le_bytes()),
                nla(IPVS_SVC_ATTR_SCHED_NAME, b"rr\0"),
            ],
        ),
    ]
    .concat();
    assert!(msg::services_of(&IpvsMessage::from_bytes(&keyless).unwrap()).is_err());
    // An attribute running past the end.
    assert!(IpvsMessage::from_bytes(&[1, 1, 0, 0, 0x20, 0, 1, 0, 0, 0]).is_err());
    assert!(IpvsMessage::from_bytes(&[1, 1]).is_err());
}

#[test]
fn errors_say_what_and_why() {
    let e = Error::Kernel {
        op: "ipvsadm -A -f 256".into(),
        errno: libc::EEXIST,
        detail: None,
    };
    assert_eq!(e.to_string(), "ipvsadm -A -f 256: File exists (EEXIST)");
    assert!(e.is_exists() && !e.is_not_found());
    let e = Error::Kernel {
        op: "ipvsadm -a -t 10.0.0.2:80".into(),
        errno: libc::ESRCH,
        detail: Some("x".into()),
    };
    assert_eq!(
        e.to_string(),
        "ipvsadm -a -t 10.0.0.2:80: No such process (ESRCH): x"
    );
    assert!(e.is_not_found());
    assert_eq!(ServiceKey::udp(VIP, 53).to_string(), "-u 10.0.0.2:53");
    assert_eq!(ServiceKey::Fwmark(256).to_string(), "-f 256");
    assert!(Error::Unavailable.to_string().contains("no IPVS"));
    assert!(socket::check_scheduler("rr").is_ok());
    assert!(socket::check_scheduler("").is_err());
    assert!(socket::check_scheduler("sixteen-letters!").is_err());
}

/// Resolving the family needs no privilege. This kernel has no IPVS, so [`Ipvs::open`] must
/// say so with [`Error::Unavailable`]; on a kernel with IPVS (which resolving loads when it
/// can) it must succeed instead.
#[test]
fn open_on_this_kernel() {
    match Ipvs::open() {
        Err(Error::Unavailable) => assert!(!std::path::Path::new("/proc/net/ip_vs").exists()),
        Ok(ipvs) => {
            assert!(std::path::Path::new("/proc/net/ip_vs").exists());
            assert_ne!(ipvs.family_id(), 0);
        }
        Err(e) => panic!("Ipvs::open: {e}"),
    }
}
