//! Activity logs: byte 0 picks the stripes (1..=4), byte 1 the stripe size (1..=8), byte 2 which
//! blocks get a valid magic and CRC32C (so the replay itself is reached), the rest are the
//! blocks. No panic; hot extents come out sorted, unique, below u32::MAX.
#![no_main]
use drbd_md::{replay_al, Transaction, AL_MAGIC};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let [a, b, fix, rest @ ..] = data else {
        return;
    };
    let (stripes, size) = (u32::from(a % 4) + 1, u32::from(b % 8) + 1);
    let slots = (stripes * size) as usize;
    let mut al = rest.to_vec();
    al.resize(slots * 4096, 0xff);
    for (i, block) in al.chunks_mut(4096).enumerate() {
        if fix & (1 << (i % 8)) != 0 {
            block[..4].copy_from_slice(&AL_MAGIC.to_be_bytes());
            block[8..12].fill(0);
            // DRBD's crc32c(0, ...): seed 0, no inversion.
            let crc = !crc32c::crc32c_append(!0, block);
            block[8..12].copy_from_slice(&crc.to_be_bytes());
            assert!(Transaction::decode(block).is_ok());
        }
    }
    let _ = replay_al(rest, stripes, size);
    if let Ok(r) = replay_al(&al, stripes, size) {
        assert!(r.hot_extents.windows(2).all(|w| w[0] < w[1]));
        assert!(r.hot_extents.last().is_none_or(|&e| e != u32::MAX));
        assert_eq!(r.valid + r.corrupt, r.slots);
    }
});
