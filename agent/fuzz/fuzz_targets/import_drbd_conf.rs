//! drbd.conf text: never panics; includes are answered with the same text (read once).
#![no_main]
use agent::import::drbd_conf::{parse, resources};
use agent::import::{Loc, ParseError};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(s) = std::str::from_utf8(data) {
        let mut load = |p: &str, _: &Loc| -> Result<Vec<(String, String)>, ParseError> {
            Ok(vec![(p.to_string(), s.to_string())])
        };
        if let Ok(stmts) = parse(s, "d.conf", &mut load) {
            let _ = resources(&stmts);
        }
    }
});
