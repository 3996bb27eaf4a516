//! `ctx_my_addr` / `ctx_peer_addr` bytes: no panic; what decodes re-encodes.
#![no_main]
use drbd_nl::SockAddr;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(a) = SockAddr::from_bytes(data) {
        let b = a.to_bytes();
        assert_eq!(SockAddr::from_bytes(&b).expect("re-encoded"), a);
        let _ = a.to_string();
    }
});
