//! Control-socket request lines (bytes from any local root client) must never panic.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(s) = std::str::from_utf8(data) {
        let _ = agent::control::Request::parse(s);
    }
});
