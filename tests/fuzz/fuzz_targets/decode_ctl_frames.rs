//! Fuzzes the host side of the guest control channel: the frame parser and base64 decoder see
//! whatever bytes a guest writes on ttyS1.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let mut p = lab::qemu::FrameParser::default();
    for line in data.split_inclusive(|b| *b == b'\n') {
        let _ = p.line(line);
    }
    let _ = lab::qemu::b64_decode(&String::from_utf8_lossy(data));
});
