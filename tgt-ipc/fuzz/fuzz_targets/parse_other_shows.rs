//! Any text into the system, conn, portal, account and target-parameter show parsers: no panic.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let _ = tgt_ipc::parse_system(&text);
    let _ = tgt_ipc::parse_connections(&text);
    let _ = tgt_ipc::parse_portals(&text);
    let _ = tgt_ipc::parse_accounts(&text);
    let _ = tgt_ipc::parse_target_params(&text);
});
