//! drbdmeta `apply-al` for internal v08/v09 metadata (drbdmeta `meta_apply_al`, `apply_al`).

use std::path::Path;

use crate::al::{
    self, block_magic, initialized_al, Replay, AL_MAGIC, AL_PMEM_MAGIC, TRANSACTION_BYTES,
};
use crate::bitmap::{extent_bytes, set_in_block};
use crate::device::{Block, Device};
use crate::error::{AlProblem, MdError};
use crate::superblock::{flags, Format, Layout, Superblock, MAGIC_08, MAGIC_09, MAGIC_84_UNCLEAN};
use crate::MIN_DEVICE_BYTES;

/// What [`apply_al`] found and did.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct ApplyAlReport {
    /// Superblock format found.
    pub format: Format,
    /// The superblock before: `MDF_AL_CLEAN` set and not `DRBD_MD_MAGIC_84_UNCLEAN`.
    pub was_clean: bool,
    /// `MDF_PRIMARY_IND` was set: the node was Primary, so its hot extents are applied.
    pub primary_ind: bool,
    /// Extents (4 MiB of data each) hot at the newest transaction, ascending; empty when the
    /// log held no update or could not be replayed.
    pub hot_extents: Vec<u32>,
    /// Transactions of the ring that failed the magic or CRC32C check (one is normal after a
    /// power loss during a log write).
    pub corrupt_transactions: u32,
    /// Why the log could not be replayed, when that was ignored because the node was not
    /// Primary (drbdmeta: "Error ignored, no need to apply the AL"; the log is re-initialized).
    pub al_problem_ignored: Option<AlProblem>,
    /// The hot extents were applied to the bitmap (the node was Primary and the log held
    /// updates).
    pub applied: bool,
    /// Bitmap bits newly set (all peer slots counted), i.e. additional out-of-sync blocks.
    pub additional_bits: u64,
    /// Hot extents starting beyond the bitmap in use (skipped, as drbdmeta does).
    pub extents_beyond_bitmap: u32,
    /// The activity log was re-initialized (all `AL_TR_INITIALIZED`).
    pub al_reinitialized: bool,
    /// The superblock was rewritten with `MDF_AL_CLEAN` (and, v08, `DRBD_MD_MAGIC_08`).
    pub superblock_written: bool,
    /// Data bytes per bitmap bit (to turn [`ApplyAlReport::additional_bits`] into bytes).
    pub bm_bytes_per_bit: u32,
    /// Where the metadata lies.
    pub layout: Layout,
}

impl ApplyAlReport {
    /// Additional out-of-sync data, KiB (drbdmeta prints it: "Marked additional N KB as
    /// out-of-sync based on AL.").
    pub fn additional_kib(&self) -> u64 {
        self.additional_bits * u64::from(self.bm_bytes_per_bit / 1024)
    }

    /// True when anything was written.
    pub fn wrote(&self) -> bool {
        self.applied || self.al_reinitialized || self.superblock_written
    }
}

/// Replays the activity log of the internal metadata on `path` into its bitmap, exactly as
/// `drbdmeta MINOR v08|v09 PATH internal apply-al` (drbd-utils 9.22) does, so the kernel will
/// attach the disk (a DRBD 8.4 kernel refuses unclean metadata with `ERR_MD_UNCLEAN`, 165).
///
/// `path` is the backing block device (or an image file). The superblock is the last
/// 4 KiB-aligned 4 KiB block; its magic selects v08 or v09. Steps:
/// 1. open with `O_EXCL | O_DIRECT` ([`MdError::Busy`] while DRBD holds it or it is mounted);
/// 2. decode and check the superblock and the layout for the device size, read the log;
///    refuse the pre-8.4 log format and the persistent-memory log ([`MdError::Unsupported`]);
/// 3. replay the log; if it cannot be replayed and the node was Primary
///    (`MDF_PRIMARY_IND`), fail with [`MdError::ActivityLog`]; if not Primary, go on and
///    re-initialize it (as drbdmeta);
/// 4. if the node was Primary and the log held updates: set the bitmap bits of every hot
///    extent for every peer slot (`[e * 128 * max_peers, (e + 1) * 128 * max_peers)` bytes);
/// 5. if the log held updates (or was ignored): re-initialize it;
/// 6. if anything was applied, or `MDF_AL_CLEAN` was clear, or the magic is not
///    `DRBD_MD_MAGIC_08` (always for v09): write the superblock with `MDF_AL_CLEAN`, v08 magic
///    `DRBD_MD_MAGIC_08`, reserved bytes zero, `effective_size` clipped to the usable size.
///
/// Each step's writes are flushed (`fsync`) before the next one's, so a power loss in between
/// leaves the bitmap set before the log is cleared and the log cleared before the superblock
/// says clean; the log's block 0 is written last, so a torn log write never leaves a log
/// neither tool would replay (drbdmeta writes the log at once and flushes once at the end;
/// the bytes written are the same).
/// Metadata that is clean with an initialized log is left untouched.
///
/// # Errors
/// [`MdError::Busy`], [`MdError::Open`], [`MdError::NotADevice`], [`MdError::TooSmall`],
/// [`MdError::NoMetadata`], [`MdError::Invalid`], [`MdError::Unsupported`],
/// [`MdError::ActivityLog`] (nothing written for any of these), [`MdError::Io`] (offsets
/// absolute; a write error can leave a partial result that a rerun repairs).
pub fn apply_al(path: &Path) -> Result<ApplyAlReport, MdError> {
    let dev = Device::open(path)?;
    if dev.size < MIN_DEVICE_BYTES {
        return Err(MdError::TooSmall {
            size: dev.size,
            min: MIN_DEVICE_BYTES,
        });
    }
    let md_offset = (dev.size - 4096) & !4095;
    let sb_bytes = dev.read("read superblock", md_offset, 4096)?;
    let sb = Superblock::decode(&sb_bytes).map_err(|e| e.at(md_offset))?;
    let layout = sb.internal_layout(dev.size).map_err(|e| e.at(md_offset))?;
    let al = dev.read("read activity log", layout.al_offset, layout.al_bytes)?;
    let plan = plan(&sb, &layout, &al).map_err(|e| e.at(layout.al_offset))?;

    let mut report = ApplyAlReport {
        format: sb.format,
        was_clean: sb.is_clean(),
        primary_ind: sb.flags & flags::PRIMARY_IND != 0,
        hot_extents: plan
            .replay
            .as_ref()
            .map(|r| r.hot_extents.clone())
            .unwrap_or_default(),
        corrupt_transactions: plan.replay.as_ref().map_or(0, |r| r.corrupt),
        al_problem_ignored: plan.replay.as_ref().err().copied(),
        applied: plan.apply,
        additional_bits: 0,
        extents_beyond_bitmap: 0,
        al_reinitialized: plan.reinit_al,
        superblock_written: plan.superblock.is_some(),
        bm_bytes_per_bit: sb.bm_bytes_per_bit,
        layout,
    };
    if plan.apply {
        // Extents ascend, so do their blocks: one block in memory, written when left.
        let mut current: Option<(u64, Block, bool)> = None;
        let mut wrote = false;
        for &e in &report.hot_extents {
            let Some((s, end)) = extent_bytes(e, sb.max_peers, layout.bm_bytes) else {
                report.extents_beyond_bitmap += 1;
                continue;
            };
            for blk in s / 4096..end.div_ceil(4096) {
                if current.as_ref().is_none_or(|(b, ..)| *b != blk) {
                    wrote |= flush_block(&dev, &layout, current.take())?;
                    let block = dev.read_block("read bitmap", layout.bm_offset + blk * 4096)?;
                    current = Some((blk, block, false));
                }
                if let Some((_, block, dirty)) = current.as_mut() {
                    let zeros = set_in_block(&mut block.0, blk * 4096, s, end);
                    report.additional_bits += zeros;
                    *dirty |= zeros > 0;
                }
            }
        }
        wrote |= flush_block(&dev, &layout, current)?;
        if wrote {
            dev.sync("flush bitmap")?;
        }
    }
    if plan.reinit_al {
        // Block 0 (transaction 0's slot whatever the striping) last: the kernel writes its
        // first transaction there, so while it is unwritten the log still holds an update, and
        // if its own write tears, "initialized but block 0" is what drbdmeta accepts as clean.
        // In one write, a tear of the last update block would leave initialized blocks and one
        // corrupt one: refused by both tools although the bitmap was already applied.
        let slots = (layout.al_bytes / 4096) as u32;
        let log = initialized_al(slots);
        let (first, rest) = log.split_at(TRANSACTION_BYTES);
        if !rest.is_empty() {
            dev.write("write activity log", layout.al_offset + 4096, rest)?;
            dev.sync("flush activity log")?;
        }
        dev.write("write activity log block 0", layout.al_offset, first)?;
        dev.sync("flush activity log block 0")?;
    }
    if let Some(new) = &plan.superblock {
        dev.write("write superblock", md_offset, &new.encode())?;
        dev.sync("flush superblock")?;
    }
    Ok(report)
}

/// Writes a bitmap block back if it changed; true if it did.
fn flush_block(
    dev: &Device,
    layout: &Layout,
    b: Option<(u64, Block, bool)>,
) -> Result<bool, MdError> {
    match b {
        Some((blk, block, true)) => {
            dev.write("write bitmap", layout.bm_offset + blk * 4096, &block.0)?;
            Ok(true)
        }
        _ => Ok(false),
    }
}

/// What to write, decided before anything is written.
struct Plan {
    /// The replay, or why it failed (ignored: the node was not Primary).
    replay: Result<Replay, AlProblem>,
    apply: bool,
    reinit_al: bool,
    superblock: Option<Superblock>,
}

/// drbdmeta `meta_apply_al`'s decisions for v08/v09 (offsets relative to the log).
fn plan(sb: &Superblock, layout: &Layout, al: &[u8]) -> Result<Plan, MdError> {
    let default_stripes = sb.al_stripes == 1 && sb.al_stripe_size_4k == 8;
    let al84 = sb.magic == MAGIC_84_UNCLEAN
        || sb.magic == MAGIC_09
        || block_magic(al, 0) == Some(AL_MAGIC)
        || block_magic(al, 1) == Some(AL_MAGIC)
        || !default_stripes;
    if !al84 {
        return Err(MdError::Unsupported {
            offset: 0,
            what: "pre-8.4 (0.7 .. 8.3) activity log format: v08 superblock with magic \
                   DRBD_MD_MAGIC_08 and no AL magic in transactions 0 and 1"
                .into(),
        });
    }
    if block_magic(al, 0) == Some(AL_PMEM_MAGIC) {
        return Err(MdError::Unsupported {
            offset: 0,
            what: "persistent-memory activity log (DRBD_AL_PMEM_MAGIC)".into(),
        });
    }
    let primary = sb.flags & flags::PRIMARY_IND != 0;
    let replay = match al::replay_al(al, sb.al_stripes, sb.al_stripe_size_4k) {
        Ok(r) => Ok(r),
        Err(MdError::ActivityLog { offset, problem }) if primary => {
            return Err(MdError::ActivityLog { offset, problem })
        }
        Err(MdError::ActivityLog { problem, .. }) => Err(problem),
        Err(e) => return Err(e),
    };
    let updates = replay.as_ref().is_ok_and(|r| !r.is_initialized_only());
    let apply = updates && primary;
    if apply
        && sb.bm_bytes_per_bit != 4096
        && replay.as_ref().is_ok_and(|r| !r.hot_extents.is_empty())
    {
        return Err(MdError::Unsupported {
            offset: 0,
            what: format!(
                "applying extents to a bitmap of {} bytes per bit (drbdmeta 9.22 handles 4096)",
                sb.bm_bytes_per_bit
            ),
        });
    }
    let reinit_al = replay.is_err() || updates;
    let superblock =
        (apply || sb.flags & flags::AL_CLEAN == 0 || sb.magic != MAGIC_08).then(|| {
            let mut new = sb.clone();
            new.flags |= flags::AL_CLEAN;
            if new.format == Format::V08 {
                new.magic = MAGIC_08;
            }
            new.effective_size = layout.effective_size;
            new
        });
    Ok(Plan {
        replay,
        apply,
        reinit_al,
        superblock,
    })
}
