//! IPv6 + ICMPv6 NS/NA decoder on arbitrary bytes: no panic; a decoded packet re-encodes to
//! something that decodes to the same value (options other than link-layer ones are dropped).
#![no_main]
use libfuzzer_sys::fuzz_target;
use vip::packet::NdiscPacket;

fuzz_target!(|data: &[u8]| {
    if let Ok(p) = NdiscPacket::decode(data) {
        let mut out = Vec::new();
        p.encode(&mut out);
        assert_eq!(NdiscPacket::decode(&out), Ok(p));
    }
});
