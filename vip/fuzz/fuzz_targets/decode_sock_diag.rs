//! A sock_diag dump datagram (netlink-packet-sock-diag's parse and our conversion to
//! `Connection`s) on arbitrary bytes, as given and wrapped in a valid `SOCK_DIAG_BY_FAMILY`
//! netlink header (to reach the `inet_diag_msg` parser): no panic; every connection kept has
//! the asked local end.
#![no_main]
use libfuzzer_sys::fuzz_target;
use std::net::{IpAddr, Ipv4Addr};
use vip::tickle::decode_dump_datagram;

fuzz_target!(|data: &[u8]| {
    let local = IpAddr::V4(Ipv4Addr::new(10, 0, 0, 1));
    let mut wrapped = Vec::with_capacity(16 + data.len());
    wrapped.extend_from_slice(&((16 + data.len()) as u32).to_ne_bytes());
    wrapped.extend_from_slice(&20u16.to_ne_bytes()); // SOCK_DIAG_BY_FAMILY
    wrapped.extend_from_slice(&2u16.to_ne_bytes()); // NLM_F_MULTI
    wrapped.extend_from_slice(&1u32.to_ne_bytes()); // sequence number
    wrapped.extend_from_slice(&0u32.to_ne_bytes()); // port id
    wrapped.extend_from_slice(data);
    let mut out = Vec::new();
    for bytes in [data, &wrapped[..]] {
        for family in [2u8, 10] {
            let _ = decode_dump_datagram(bytes, family, 1, local, 3260, &mut out);
        }
    }
    assert!(out
        .iter()
        .all(|c| c.local.ip() == local && c.local.port() == 3260));
});
