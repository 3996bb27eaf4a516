//! targets.conf text (tgt-admin syntax) through the parser and tgt-admin's rules: never panics;
//! includes are answered with one fixed file so nesting and the read-once rule are exercised.
#![no_main]
use agent::import::tgt_conf::{parse, targets};
use agent::import::{Loc, ParseError};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(s) = std::str::from_utf8(data) {
        let mut load = |p: &str, _: &Loc| -> Result<Vec<(String, String)>, ParseError> {
            Ok(vec![(p.to_string(), s.to_string())])
        };
        if let Ok(items) = parse(s, "t.conf", &mut load) {
            if let Ok(c) = targets(&items) {
                for t in c.targets {
                    assert!(t.tid > 0);
                    assert!(t.luns.iter().all(|l| l.lun > 0));
                }
            }
        }
    }
});
