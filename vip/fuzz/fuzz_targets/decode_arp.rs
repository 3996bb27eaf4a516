//! ARP decoder on arbitrary bytes: no panic; a decoded packet re-encodes to its 28 bytes.
#![no_main]
use libfuzzer_sys::fuzz_target;
use vip::packet::{ArpPacket, ARP_LEN};

fuzz_target!(|data: &[u8]| {
    if let Ok(p) = ArpPacket::decode(data) {
        let mut out = Vec::new();
        p.encode(&mut out);
        assert_eq!(Some(out.as_slice()), data.get(..ARP_LEN));
    }
});
