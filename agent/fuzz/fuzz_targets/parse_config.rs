//! Configuration text must parse or fail with a located error, never panic.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(s) = std::str::from_utf8(data) {
        let _ = agent::config::Config::parse(s, std::path::Path::new("fuzz.toml"));
    }
});
