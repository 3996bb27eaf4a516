//! Tickle peer-link datagrams (bytes from the replication network) must never panic, keyed or
//! not, and what decodes must encode (and seal) back to the same message.
#![no_main]
use std::net::SocketAddr;

use agent::peer_link::{decode, encode_message, LinkKey, MAX_MESSAGE};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(key) = LinkKey::new(b"fuzz-secret-0123456789") else {
        return;
    };
    let (a, b) = (
        SocketAddr::from(([10, 1, 0, 1], 7790)),
        SocketAddr::from(([10, 1, 0, 2], 7790)),
    );
    if let Ok(message) = key.open(b, a, data) {
        // Only a forged tag would get here: the fuzzer does not know the key.
        let _ = decode(message);
    }
    if let Ok(m) = decode(data) {
        let (bytes, fit) = encode_message(&m);
        // A datagram of an older agent may use the 32 bytes a tag now takes.
        if serde_json::to_vec(&m).is_ok_and(|v| v.len() <= MAX_MESSAGE) {
            assert_eq!(fit, m.conns.len(), "a decoded list fits one datagram");
            assert_eq!(decode(&bytes).ok(), Some(m.clone()));
        }
        let sealed = key.seal(a, b, &bytes);
        assert_eq!(key.open(a, b, &sealed).ok(), Some(&bytes[..]));
        assert!(key.open(b, a, &sealed).is_err(), "sent back, it does not verify");
    }
});
