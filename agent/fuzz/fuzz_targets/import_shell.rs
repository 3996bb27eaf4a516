//! iscsi-ha.conf text (shell KEY=value): never panics; every error names line 1..=lines.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(s) = std::str::from_utf8(data) {
        match agent::import::shell::parse(s, "f", &Default::default()) {
            Ok(v) => {
                for a in v {
                    assert!(a.at.line >= 1 && a.at.line <= s.lines().count());
                }
            }
            Err(e) => assert!(e.at.line >= 1 && e.at.line <= s.lines().count().max(1)),
        }
    }
});
