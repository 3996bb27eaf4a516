//! Tickle peer-link datagrams (bytes from the replication network) must never panic, and what
//! decodes must encode back to the same message.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(m) = agent::peer_link::decode(data) {
        let (bytes, fit) = agent::peer_link::encode_message(&m);
        assert_eq!(fit, m.conns.len(), "a decoded list fits one datagram");
        assert_eq!(agent::peer_link::decode(&bytes).ok(), Some(m));
    }
});
