//! A received generic-netlink payload as the event stream sees it: genl
//! header (cmd, version, 2 reserved bytes), DRBD message, then typed event
//! (state word, status fields).
#![no_main]
use drbd_nl::{DrbdEvent, DrbdMessage};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let (Some(cmd), Some(body)) = (data.first(), data.get(4..)) else { return };
    if let Ok(msg) = DrbdMessage::parse_payload(*cmd, body) {
        if let Ok(ev) = DrbdEvent::from_message(1, msg) {
            let _ = format!("{ev:?}");
        }
    }
});
