//! Ethernet II decoder on arbitrary bytes: no panic; a decoded frame re-encodes to the input.
#![no_main]
use libfuzzer_sys::fuzz_target;
use vip::packet::EthernetFrame;

fuzz_target!(|data: &[u8]| {
    if let Ok(f) = EthernetFrame::decode(data) {
        let mut out = Vec::new();
        f.encode(&mut out);
        assert_eq!(out, data);
    }
});
