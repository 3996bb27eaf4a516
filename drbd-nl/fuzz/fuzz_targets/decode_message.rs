//! DrbdMessage decoding (header + every attribute set): no panic, and what
//! decodes re-emits to bytes that decode to the same value.
#![no_main]
use drbd_nl::DrbdMessage;
use libfuzzer_sys::fuzz_target;
use netlink_packet_core::Emitable;

fuzz_target!(|data: &[u8]| {
    let Some((cmd, rest)) = data.split_first() else { return };
    if let Ok(msg) = DrbdMessage::parse_payload(*cmd, rest) {
        let mut buf = vec![0u8; msg.buffer_len()];
        msg.emit(&mut buf);
        let again = DrbdMessage::parse_payload(*cmd, &buf).expect("re-emitted message must decode");
        assert_eq!(again, msg);
    }
});
