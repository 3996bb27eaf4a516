//! Bitmap arithmetic: how big the on-disk bitmap is, which bytes an activity-log extent covers.
//!
//! drbdmeta `bm_bytes` and `apply_al`; DRBD's `AL_EXTENT_SHIFT` (22: 4 MiB per extent). In v09
//! the slots of the `max_peers` peers are interleaved in 32-bit words (drbdmeta's comment above
//! `struct extent_bit_range`, DRBD 9 `interleaved_word32`), so with 4 KiB per bit the 1024 bits
//! of extent `e` for every slot are the contiguous bytes `[e * 128 * max_peers, (e + 1) * 128 *
//! max_peers)`.

/// Data bytes covered by one activity-log extent (`1 << AL_EXTENT_SHIFT`).
pub const AL_EXTENT_BYTES: u64 = 1 << 22;

/// Bitmap bytes per extent and slot at 4 KiB per bit (`BM_BYTES_PER_AL_EXT`, 128).
pub(crate) const BM_BYTES_PER_AL_EXT: u64 = AL_EXTENT_BYTES / 4096 / 8;

/// drbdmeta `bm_bytes`: on-disk bitmap bytes for `sectors` of data, `bm_bytes_per_bit` per bit
/// (a power of two >= 4096), `max_peers` slots: bits rounded up to 64, times slots, rounded up
/// to 4 KiB.
pub(crate) fn bitmap_bytes(sectors: u64, bm_bytes_per_bit: u32, max_peers: u32) -> u64 {
    let sectors_per_bit = u64::from(bm_bytes_per_bit >> 9).max(1);
    let bits = sectors.div_ceil(sectors_per_bit).next_multiple_of(64);
    (bits / 8 * u64::from(max_peers)).next_multiple_of(4096)
}

/// The bitmap bytes extent `enr` covers with 4 KiB per bit, clipped to `bm_bytes`; `None` when
/// it starts at or beyond `bm_bytes` (drbdmeta 9.22 skips those with "extent beyond end of
/// bitmap").
pub(crate) fn extent_bytes(enr: u32, max_peers: u32, bm_bytes: u64) -> Option<(u64, u64)> {
    let len = BM_BYTES_PER_AL_EXT * u64::from(max_peers);
    let start = u64::from(enr) * len;
    (start < bm_bytes).then(|| (start, (start + len).min(bm_bytes)))
}

/// Sets the bytes of `[start, end)` (bitmap-relative) that fall into the 4 KiB `block` starting
/// at bitmap byte `block_start`; returns how many bits were 0 before (drbdmeta's "additional"
/// out-of-sync bits).
pub(crate) fn set_in_block(block: &mut [u8; 4096], block_start: u64, start: u64, end: u64) -> u64 {
    let s = start.max(block_start).saturating_sub(block_start).min(4096) as usize;
    let e = end.min(block_start + 4096).saturating_sub(block_start) as usize;
    let mut zeros = 0;
    for byte in block.get_mut(s..e.max(s)).unwrap_or_default() {
        zeros += u64::from(byte.count_zeros());
        *byte = 0xff;
    }
    zeros
}
