//! A received payload as the DRBD 9 event stream sees it: genl header, DRBD 9 message, typed
//! event (notification header, resource / device / connection / peer device / path views).
#![no_main]
use drbd_nl::v9::{Drbd9Message, Event};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let (Some(cmd), Some(body)) = (data.first(), data.get(4..)) else {
        return;
    };
    if let Ok(msg) = Drbd9Message::parse_payload(*cmd, body) {
        if let Ok(ev) = Event::from_message(1, msg) {
            let _ = format!("{ev:?}");
        }
    }
});
