//! The frame codec against frames captured from the real kernel and Debian's arping (see
//! `tests/data/README.md`): decode to the expected fields, re-encode to the same bytes.

use std::net::{Ipv4Addr, Ipv6Addr};

use vip::packet::{
    ArpOp, ArpPacket, EthernetFrame, NdiscMessage, NdiscPacket, ARP_LEN, ETHERTYPE_ARP,
    ETHERTYPE_IPV6,
};
use vip::MacAddr;

const ETH0: MacAddr = MacAddr([2, 0, 0, 0, 0, 1]);
const PEER0: MacAddr = MacAddr([2, 0, 0, 0, 0, 2]);

fn v6(s: &str) -> Ipv6Addr {
    s.parse().expect("literal")
}

#[test]
fn arping_gratuitous_request() {
    let raw: &[u8] = include_bytes!("data/garp_arping.bin");
    let eth = EthernetFrame::decode(raw).expect("ethernet");
    assert_eq!(
        (eth.dst, eth.src, eth.ethertype),
        (MacAddr::BROADCAST, ETH0, ETHERTYPE_ARP)
    );
    let mut again = Vec::new();
    eth.encode(&mut again);
    assert_eq!(
        again, raw,
        "ethernet re-encodes byte for byte (padding kept as payload)"
    );

    let arp = ArpPacket::decode(eth.payload).expect("arp");
    let ip = Ipv4Addr::new(10, 79, 0, 1);
    assert_eq!(
        arp,
        ArpPacket {
            op: ArpOp::Request,
            sender_mac: ETH0,
            sender_ip: ip,
            target_mac: MacAddr::BROADCAST, // arping's choice; ours sends zero (RFC 5227 §3)
            target_ip: ip,
        }
    );
    let mut bytes = Vec::new();
    arp.encode(&mut bytes);
    assert_eq!(Some(bytes.as_slice()), eth.payload.get(..ARP_LEN));
}

#[test]
fn kernel_reply_to_rfc5227_probe() {
    let raw: &[u8] = include_bytes!("data/arp_reply_to_probe.bin");
    let eth = EthernetFrame::decode(raw).expect("ethernet");
    assert_eq!((eth.dst, eth.src), (PEER0, ETH0));
    let arp = ArpPacket::decode(eth.payload).expect("arp");
    // What the probe looks for: a packet whose sender IP is the candidate, from another MAC.
    assert_eq!(arp.op, ArpOp::Reply);
    assert_eq!(arp.sender_ip, Ipv4Addr::new(10, 79, 0, 1));
    assert_eq!(arp.sender_mac, ETH0);
    assert_eq!(
        (arp.target_mac, arp.target_ip),
        (PEER0, Ipv4Addr::UNSPECIFIED)
    );
    let mut bytes = Vec::new();
    arp.encode(&mut bytes);
    assert_eq!(bytes, eth.payload);
}

#[test]
fn kernel_dad_defense_na_equals_our_unsolicited_na() {
    let raw: &[u8] = include_bytes!("data/na_dad_defense.bin");
    let eth = EthernetFrame::decode(raw).expect("ethernet");
    assert_eq!(eth.ethertype, ETHERTYPE_IPV6);
    assert_eq!(eth.dst, MacAddr([0x33, 0x33, 0, 0, 0, 1]));
    let p = NdiscPacket::decode(eth.payload).expect("ndisc");
    assert_eq!(p.header.hop_limit, 255);
    assert_eq!((p.header.src, p.header.dst), (v6("fd79::1"), v6("ff02::1")));
    assert_eq!(
        p.message,
        NdiscMessage::Advert {
            router: false,
            solicited: false,
            override_flag: true,
            target: v6("fd79::1"),
            target_ll: Some(ETH0),
        }
    );
    // The kernel's defence is byte for byte the unsolicited NA vip sends.
    let mut ours = Vec::new();
    NdiscPacket::unsolicited_advert(ETH0, v6("fd79::1")).encode(&mut ours);
    assert_eq!(ours, eth.payload);
}

#[test]
fn kernel_dad_ns_with_nonce_option() {
    let raw: &[u8] = include_bytes!("data/ns_kernel_dad.bin");
    let eth = EthernetFrame::decode(raw).expect("ethernet");
    assert_eq!(eth.dst, MacAddr([0x33, 0x33, 0xff, 0, 0, 2]));
    let p = NdiscPacket::decode(eth.payload).expect("ndisc");
    assert!(p.header.src.is_unspecified());
    assert_eq!(p.header.dst, v6("ff02::1:ff00:2"));
    assert_eq!(
        p.message,
        NdiscMessage::Solicit {
            target: v6("fd79::2"),
            source_ll: None,
        }
    );
    // The nonce option is skipped; our DAD probe is the same NS without it.
    assert_eq!(p, NdiscPacket::dad_solicit(v6("fd79::2")));
    let mut ours = Vec::new();
    p.encode(&mut ours);
    assert_eq!(
        ours.get(4..6),
        Some(&[0u8, 24][..]),
        "payload length without the option"
    );
    assert_eq!(eth.payload.get(4..6), Some(&[0u8, 32][..]));
}
