//! A received payload as the DRBD 9 event stream sees it: genl header, DRBD 9 message, typed
//! event (notification header, resource / device / connection / peer device / path views).
#![no_main]
use drbd_nl::v9::{decode_raw9, Event};
use drbd_nl::RawGenl;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let raw = RawGenl { message_type: 0x20, payload: data.to_vec() };
    if let Ok(msg) = decode_raw9(&raw) {
        if let Ok(ev) = Event::from_message(1, msg) {
            let _ = format!("{ev:?}");
        }
    }
});
