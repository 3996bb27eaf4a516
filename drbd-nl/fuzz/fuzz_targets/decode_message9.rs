//! Drbd9Message decoding (header + every DRBD 9 attribute set): no panic, and what decodes
//! re-emits to bytes that decode to the same value.
#![no_main]
use drbd_nl::v9::Drbd9Message;
use libfuzzer_sys::fuzz_target;
use netlink_packet_core::Emitable;

fuzz_target!(|data: &[u8]| {
    let Some((cmd, rest)) = data.split_first() else { return };
    if let Ok(msg) = Drbd9Message::parse_payload(*cmd, rest) {
        let mut buf = vec![0u8; msg.buffer_len()];
        msg.emit(&mut buf);
        let again = Drbd9Message::parse_payload(*cmd, &buf).expect("re-emitted message must decode");
        assert_eq!(again, msg);
    }
});
