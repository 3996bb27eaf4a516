//! Any text as target show output: typed result, no panic; a parsed nexus always has its fields in order.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    if let Ok(targets) = tgt_ipc::parse_targets(&text) {
        for t in targets {
            let _ = t.lun(1);
        }
    }
});
