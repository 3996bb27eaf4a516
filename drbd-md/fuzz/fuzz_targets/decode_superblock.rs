//! Superblock bytes (the first 4096), then a device size (the next 8): no panic; what decodes
//! re-encodes to a superblock that decodes the same; the layout check never panics.
#![no_main]
use drbd_md::Superblock;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let mut block = [0u8; 4096];
    let n = data.len().min(4096);
    block[..n].copy_from_slice(&data[..n]);
    // Short inputs would only ever hit NoMetadata: the magic comes from the input's end then.
    if data.len() < 64 && data.len() >= 4 {
        block[60..64].copy_from_slice(&data[data.len() - 4..]);
    }
    let _ = Superblock::decode(data);
    if let Ok(sb) = Superblock::decode(&block) {
        let again = Superblock::decode(&sb.encode()).expect("re-encoded superblock decodes");
        assert_eq!(again, sb);
        let size = data
            .get(4096..4104)
            .map_or(16 << 20, |b| u64::from_be_bytes(b.try_into().expect("8 bytes")));
        if let Ok(l) = sb.internal_layout(size) {
            assert!(l.bm_offset < l.al_offset && l.al_offset < l.md_offset);
            assert!(l.md_offset + 4096 <= size);
        }
    }
});
