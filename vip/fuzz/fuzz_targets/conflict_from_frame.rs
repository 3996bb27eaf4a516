//! The conflict watch's verdict (Ethernet, then ARP or IPv6 + ICMPv6 NA) on arbitrary bytes, for
//! an IPv4 and an IPv6 address: no panic; a conflict never names our own MAC.
#![no_main]
use libfuzzer_sys::fuzz_target;
use vip::{Conflict, MacAddr};

fuzz_target!(|data: &[u8]| {
    let ours = MacAddr([2, 0, 0, 0, 0, 1]);
    let now = std::time::Instant::now();
    for addr in ["10.0.0.7", "fd00::7"] {
        let addr = addr.parse().expect("literal");
        if let Some(c) = Conflict::from_frame(data, ours, addr, now) {
            assert_ne!(c.mac, ours);
        }
    }
});
