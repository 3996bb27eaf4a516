//! A received generic-netlink payload as the event stream sees it: genl
//! header, DRBD message, then typed event (state word, status fields).
#![no_main]
use drbd_nl::{classify, decode_raw, RawGenl};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let raw = RawGenl { message_type: 0x20, payload: data.to_vec() };
    if let Ok(msg) = decode_raw(&raw) {
        if let Ok(ev) = classify(1, msg) {
            let _ = format!("{ev:?}");
        }
    }
});
