//! IPv6 + ICMPv6 NS/NA decoder on arbitrary bytes: no panic; a decoded packet re-encodes to
//! something that decodes to the same value (options other than link-layer ones are dropped).
//! Each input is tried twice: as is, and with its ICMPv6 checksum fixed up, so the fuzzer gets
//! past the checksum into the option parser.
#![no_main]
use std::net::Ipv6Addr;

use libfuzzer_sys::fuzz_target;
use vip::packet::{icmpv6_checksum, NdiscPacket, IPV6_HEADER_LEN};

fn check(data: &[u8]) {
    if let Ok(p) = NdiscPacket::decode(data) {
        let mut out = Vec::new();
        p.encode(&mut out);
        assert_eq!(NdiscPacket::decode(&out), Ok(p));
    }
}

fuzz_target!(|data: &[u8]| {
    check(data);
    let mut fixed = data.to_vec();
    let (Some(src), Some(dst)) = (data.get(8..24), data.get(24..40)) else {
        return;
    };
    let (Ok(src), Ok(dst)) = (<[u8; 16]>::try_from(src), <[u8; 16]>::try_from(dst)) else {
        return;
    };
    let len = usize::from(u16::from_be_bytes([data[4], data[5]]));
    let Some(icmp) = fixed.get_mut(IPV6_HEADER_LEN..IPV6_HEADER_LEN + len) else {
        return;
    };
    if icmp.len() < 4 {
        return;
    }
    icmp[2] = 0;
    icmp[3] = 0;
    let sum = icmpv6_checksum(&Ipv6Addr::from(src), &Ipv6Addr::from(dst), icmp);
    icmp[2..4].copy_from_slice(&sum.to_be_bytes());
    check(&fixed);
});
