//! A sock_diag dump datagram (netlink-packet-sock-diag's parse and our conversion to
//! `Connection`s) on arbitrary bytes: no panic; every connection kept has the asked local end.
#![no_main]
use libfuzzer_sys::fuzz_target;
use std::net::{IpAddr, Ipv4Addr};
use vip::tickle::decode_dump_datagram;

fuzz_target!(|data: &[u8]| {
    let local = IpAddr::V4(Ipv4Addr::new(10, 0, 0, 1));
    let mut out = Vec::new();
    for family in [2u8, 10] {
        let _ = decode_dump_datagram(data, family, 1, local, 3260, &mut out);
    }
    assert!(out
        .iter()
        .all(|c| c.local.ip() == local && c.local.port() == 3260));
});
