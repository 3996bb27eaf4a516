//! The DRBD 8.4+ activity log: a ring of 4 KiB transactions (`struct al_transaction_on_disk`,
//! drbd-headers `drbd_meta_data.h`), striped, each CRC32C-checked, and its replay into the set of
//! extents that were hot when the node stopped (drbd-utils drbdmeta `v84_al_disk_to_cpu`,
//! `al_tr_number_to_on_disk_slot`, `replay_al_84`, `initialize_al`).

use crate::be::{get_u16, get_u32, put_u16, put_u32};
use crate::error::{AlProblem, MdError};

/// Bytes of one transaction.
pub const TRANSACTION_BYTES: usize = 4096;
/// `DRBD_AL_MAGIC` (base64 decode of "actlog==").
pub const AL_MAGIC: u32 = 0x69cb_65a2;
/// `DRBD_AL_PMEM_MAGIC`: the persistent-memory log format (refused).
pub(crate) const AL_PMEM_MAGIC: u32 = 0x6aa6_67a6;
/// `AL_UPDATES_PER_TRANSACTION`.
pub const AL_UPDATES_PER_TRANSACTION: usize = 64;
/// `AL_CONTEXT_PER_TRANSACTION`.
pub const AL_CONTEXT_PER_TRANSACTION: usize = 919;
/// `AL_EXTENTS_MAX` (drbd_limits.h `DRBD_AL_EXTENTS_MAX`): slots beyond it are ignored.
pub const AL_EXTENTS_MAX: u32 = 65534;
/// `AL_TR_UPDATE`.
pub const AL_TR_UPDATE: u16 = 0;
/// `AL_TR_INITIALIZED`: a transaction written by create-md / apply-al, no content.
pub const AL_TR_INITIALIZED: u16 = 0xffff;

mod off {
    pub const MAGIC: usize = 0;
    pub const TR_NUMBER: usize = 4;
    pub const CRC32C: usize = 8;
    pub const TRANSACTION_TYPE: usize = 12;
    pub const N_UPDATES: usize = 14;
    pub const CONTEXT_SIZE: usize = 16;
    pub const CONTEXT_START_SLOT_NR: usize = 18;
    pub const UPDATE_SLOT_NR: usize = 36;
    pub const UPDATE_EXTENT_NR: usize = 164;
    pub const CONTEXT: usize = 420;
}

/// One decoded, valid activity-log transaction.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Transaction {
    /// Sequence number (wraps; ordered with wrapping arithmetic).
    pub tr_number: u32,
    /// [`AL_TR_UPDATE`], [`AL_TR_INITIALIZED`], or another (unknown) type.
    pub transaction_type: u16,
    /// Updates in use (entries beyond it still count unless their slot is `0xffff`).
    pub n_updates: u16,
    /// Slots in the log ("al-extents").
    pub context_size: u16,
    /// Slot of `context[0]`.
    pub context_start_slot_nr: u16,
    /// Slot of each update (64 entries).
    pub update_slot_nr: Vec<u16>,
    /// Extent now in that slot (64 entries).
    pub update_extent_nr: Vec<u32>,
    /// Extents of slots `context_start_slot_nr..` (919 entries; `u32::MAX` = empty).
    pub context: Vec<u32>,
}

impl Transaction {
    /// Decodes a transaction from the first 4096 bytes of `block`, checking the magic and the
    /// CRC32C (Castagnoli, seed 0, no final inversion, over the 4 KiB with the `crc32c` field
    /// zeroed, as DRBD's `crc32c(0, ...)`).
    ///
    /// # Errors
    /// [`MdError::Truncated`] below 4096 bytes, [`MdError::Invalid`] for field `magic` (byte 0)
    /// or `crc32c` (byte 8). Never panics.
    pub fn decode(block: &[u8]) -> Result<Self, MdError> {
        if block.len() < TRANSACTION_BYTES {
            return Err(MdError::Truncated {
                what: "AL transaction",
                offset: 0,
                len: block.len(),
                need: TRANSACTION_BYTES,
            });
        }
        let b = &block[..TRANSACTION_BYTES];
        let magic = get_u32(b, off::MAGIC);
        if magic != AL_MAGIC {
            return Err(MdError::invalid(
                off::MAGIC as u64,
                "magic",
                format_args!("{magic:#010x}"),
                format_args!("{AL_MAGIC:#010x}"),
            ));
        }
        let crc = get_u32(b, off::CRC32C);
        let want = crc_of(b);
        if crc != want {
            return Err(MdError::invalid(
                off::CRC32C as u64,
                "crc32c",
                format_args!("{crc:#010x}"),
                format_args!("{want:#010x}"),
            ));
        }
        Ok(Self {
            tr_number: get_u32(b, off::TR_NUMBER),
            transaction_type: get_u16(b, off::TRANSACTION_TYPE),
            n_updates: get_u16(b, off::N_UPDATES),
            context_size: get_u16(b, off::CONTEXT_SIZE),
            context_start_slot_nr: get_u16(b, off::CONTEXT_START_SLOT_NR),
            update_slot_nr: (0..AL_UPDATES_PER_TRANSACTION)
                .map(|i| get_u16(b, off::UPDATE_SLOT_NR + 2 * i))
                .collect(),
            update_extent_nr: (0..AL_UPDATES_PER_TRANSACTION)
                .map(|i| get_u32(b, off::UPDATE_EXTENT_NR + 4 * i))
                .collect(),
            context: (0..AL_CONTEXT_PER_TRANSACTION)
                .map(|i| get_u32(b, off::CONTEXT + 4 * i))
                .collect(),
        })
    }
}

/// DRBD's transaction checksum: CRC32C of the block with its `crc32c` field as zero, computed
/// from seed 0 without the usual pre/post inversion (the crc32c crate's standard CRC32C is
/// `!raw(!crc)`, so raw(0, data) = `!crc32c_append(!0, data)`).
fn crc_of(block: &[u8]) -> u32 {
    let raw = |crc: u32, data: &[u8]| !crc32c::crc32c_append(!crc, data);
    let c = raw(0, &block[..off::CRC32C]);
    let c = raw(c, &[0; 4]);
    raw(c, &block[off::CRC32C + 4..TRANSACTION_BYTES])
}

/// drbdmeta `al_tr_number_to_on_disk_slot`: the on-disk 4 KiB block of the `b`-th transaction
/// of the ring: transaction `t = b % slots` goes to stripe `t % stripes`, block `t / stripes`
/// within it.
pub(crate) fn on_disk_slot(b: u32, stripes: u32, stripe_size_4k: u32) -> u32 {
    let slots = stripes * stripe_size_4k;
    let t = b % slots;
    (t % stripes) * stripe_size_4k + t / stripes
}

/// What replaying an activity log found.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Replay {
    /// Extents hot at the newest transaction, ascending, without duplicates (empty when the log
    /// holds no update, or every slot was emptied).
    pub hot_extents: Vec<u32>,
    /// Transactions in the ring (`al_stripes * al_stripe_size_4k`).
    pub slots: u32,
    /// Transactions with the AL magic and a correct CRC32C.
    pub valid: u32,
    /// Valid transactions of type [`AL_TR_UPDATE`] (or any type but [`AL_TR_INITIALIZED`]).
    pub updates: u32,
    /// `slots - valid` (drbdmeta: "N corrupt AL transactions found"; one is expected after a
    /// power loss during a log write).
    pub corrupt: u32,
}

impl Replay {
    /// True when the log holds no update transaction: nothing to apply, drbdmeta leaves the log
    /// as it is.
    pub fn is_initialized_only(&self) -> bool {
        self.updates == 0
    }
}

/// Replays a DRBD 8.4+ activity log (drbdmeta `replay_al_84`): `al` holds the whole log as
/// on disk, `al_stripes * al_stripe_size_4k` blocks of 4 KiB; transactions are read in ring
/// order (see [`Superblock::al_stripes`](crate::Superblock::al_stripes)), the oldest and newest
/// valid update are found by wrapping `tr_number` order, and the transactions from oldest to
/// newest set the slot array (context first, then updates; slots >= 65534 ignored).
///
/// # Errors
/// [`MdError::Truncated`] when `al` is shorter than the log, [`MdError::Invalid`] for 0 stripes
/// or stripe size, [`MdError::ActivityLog`] (offset 0) when not one transaction is valid, or
/// when none is an update and more than the first is corrupt. Never panics.
pub fn replay_al(al: &[u8], al_stripes: u32, al_stripe_size_4k: u32) -> Result<Replay, MdError> {
    if al_stripes == 0 || al_stripe_size_4k == 0 {
        return Err(MdError::invalid(
            0,
            "al_stripes * al_stripe_size_4k",
            format_args!("{al_stripes} * {al_stripe_size_4k}"),
            "at least one transaction",
        ));
    }
    let need = al_stripes
        .checked_mul(al_stripe_size_4k)
        .and_then(|n| (n as usize).checked_mul(TRANSACTION_BYTES))
        .filter(|&n| n <= al.len())
        .ok_or(MdError::Truncated {
            what: "activity log",
            offset: 0,
            len: al.len(),
            need: (al_stripes as usize)
                .saturating_mul(al_stripe_size_4k as usize)
                .saturating_mul(TRANSACTION_BYTES),
        })?;
    let slots = (need / TRANSACTION_BYTES) as u32;
    // Logical index b -> the transaction, if valid.
    let trs: Vec<Option<Transaction>> = (0..slots)
        .map(|b| {
            let o = on_disk_slot(b, al_stripes, al_stripe_size_4k) as usize * TRANSACTION_BYTES;
            Transaction::decode(&al[o..o + TRANSACTION_BYTES]).ok()
        })
        .collect();
    let valid = trs.iter().flatten().count() as u32;
    let corrupt = slots - valid;
    // (index, tr_number) of the oldest and newest update.
    let mut range: Option<((u32, u32), (u32, u32))> = None;
    let mut updates = 0;
    for (b, t) in trs.iter().enumerate() {
        let Some(t) = t
            .as_ref()
            .filter(|t| t.transaction_type != AL_TR_INITIALIZED)
        else {
            continue;
        };
        updates += 1;
        let here = (b as u32, t.tr_number);
        let (oldest, newest) = range.get_or_insert((here, here));
        if (t.tr_number.wrapping_sub(oldest.1) as i32) < 0 {
            *oldest = here;
        }
        if (t.tr_number.wrapping_sub(newest.1) as i32) > 0 {
            *newest = here;
        }
    }
    if valid == 0 {
        return Err(MdError::ActivityLog {
            offset: 0,
            problem: AlProblem::NoValidTransaction { slots },
        });
    }
    let Some(((oldest, _), (mut newest, _))) = range else {
        // No update: fine when all are initialized, or only the first one is broken.
        if valid == slots || (trs[0].is_none() && valid == slots - 1) {
            return Ok(Replay {
                hot_extents: Vec::new(),
                slots,
                valid,
                updates: 0,
                corrupt,
            });
        }
        return Err(MdError::ActivityLog {
            offset: 0,
            problem: AlProblem::NoValidUpdate { slots, corrupt },
        });
    };
    if newest < oldest {
        newest += slots;
    }
    let mut hot = vec![u32::MAX; AL_EXTENTS_MAX as usize];
    for b in oldest..=newest {
        let Some(t) = trs[(b % slots) as usize]
            .as_ref()
            .filter(|t| t.transaction_type != AL_TR_INITIALIZED)
        else {
            continue;
        };
        for (i, &extent) in t.context.iter().enumerate() {
            let slot = u32::from(t.context_start_slot_nr) + i as u32;
            if extent == u32::MAX && slot >= u32::from(t.context_size) {
                continue;
            }
            if let Some(h) = hot.get_mut(slot as usize) {
                *h = extent;
            }
        }
        for (i, (&slot, &extent)) in t.update_slot_nr.iter().zip(&t.update_extent_nr).enumerate() {
            if i >= usize::from(t.n_updates) && slot == u16::MAX {
                continue;
            }
            if let Some(h) = hot.get_mut(usize::from(slot)) {
                *h = extent;
            }
        }
    }
    hot.retain(|&e| e != u32::MAX);
    hot.sort_unstable();
    hot.dedup();
    Ok(Replay {
        hot_extents: hot,
        slots,
        valid,
        updates,
        corrupt,
    })
}

/// The log drbdmeta's `initialize_al` writes: every block the AL magic, type
/// [`AL_TR_INITIALIZED`], zeros, and its CRC32C.
pub(crate) fn initialized_al(slots: u32) -> Vec<u8> {
    let mut block = [0u8; TRANSACTION_BYTES];
    put_u32(&mut block, off::MAGIC, AL_MAGIC);
    put_u16(&mut block, off::TRANSACTION_TYPE, AL_TR_INITIALIZED);
    let crc = crc_of(&block);
    put_u32(&mut block, off::CRC32C, crc);
    block.repeat(slots as usize)
}

/// The magic of transaction block `i` of the log as on disk, if present.
pub(crate) fn block_magic(al: &[u8], i: usize) -> Option<u32> {
    let at = i * TRANSACTION_BYTES;
    (al.len() >= at + 4).then(|| get_u32(al, at))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An update transaction: `updates` as (slot, extent), no context (context_size 0).
    fn update(tr_number: u32, updates: &[(u16, u32)]) -> [u8; TRANSACTION_BYTES] {
        let mut b = [0u8; TRANSACTION_BYTES];
        put_u32(&mut b, off::MAGIC, AL_MAGIC);
        put_u32(&mut b, off::TR_NUMBER, tr_number);
        put_u16(&mut b, off::TRANSACTION_TYPE, AL_TR_UPDATE);
        put_u16(&mut b, off::N_UPDATES, updates.len() as u16);
        for i in 0..AL_UPDATES_PER_TRANSACTION {
            let (slot, extent) = updates.get(i).copied().unwrap_or((0xffff, !0));
            put_u16(&mut b, off::UPDATE_SLOT_NR + 2 * i, slot);
            put_u32(&mut b, off::UPDATE_EXTENT_NR + 4 * i, extent);
        }
        for i in 0..AL_CONTEXT_PER_TRANSACTION {
            put_u32(&mut b, off::CONTEXT + 4 * i, !0);
        }
        let crc = crc_of(&b);
        put_u32(&mut b, off::CRC32C, crc);
        b
    }

    /// Transaction numbers crossing 2^31 are ordered by wrapping arithmetic (the kernel's own
    /// order). drbdmeta 9.22 compares them as plain signed numbers there and takes
    /// 0x7ffffffd..0x7fffffff as the newest, so it replays slot 0's older extent 22 instead of
    /// 25 (found by a review, with drbdmeta as the oracle); drbd-md keeps the right one.
    #[test]
    fn transaction_numbers_crossing_2_pow_31_replay_in_wrapping_order() {
        let mut al = vec![0u8; 8 * TRANSACTION_BYTES];
        for k in 0..6u32 {
            let t = update(0x7fff_fffd + k, &[(1000 + k as u16, 10 + k), (0, 20 + k)]);
            al[k as usize * TRANSACTION_BYTES..][..TRANSACTION_BYTES].copy_from_slice(&t);
        }
        for k in 6..8 {
            let t = initialized_al(1);
            al[k * TRANSACTION_BYTES..][..TRANSACTION_BYTES].copy_from_slice(&t);
        }
        let r = replay_al(&al, 1, 8).unwrap();
        assert_eq!(r.hot_extents, [10, 11, 12, 13, 14, 15, 25]);
    }
}
