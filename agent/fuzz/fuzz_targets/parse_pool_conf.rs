//! pool.conf contents (written by XAPI / HA-Lizard, or garbage) must never panic and never read
//! as primary unless they say exactly `master`.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(s) = std::str::from_utf8(data) {
        let a = agent::role::pool_conf::parse(s);
        if a == agent::fsm::Authority::Primary {
            assert_eq!(s.trim(), "master");
        }
    }
});
