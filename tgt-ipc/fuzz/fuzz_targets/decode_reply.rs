//! Any bytes as a tgtd reply (header + body): typed result, no panic.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    match tgt_ipc::decode_reply(data) {
        Ok(Some(text)) => {
            // a decoded body is what the show parsers get next
            let _ = tgt_ipc::parse_targets(&text);
        }
        Ok(None) | Err(_) => {}
    }
    let _ = tgt_ipc::decode_header(data);
    let _ = tgt_ipc::decode_body(data);
});
