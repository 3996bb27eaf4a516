//! DRBD on-disk metadata: read the superblock of internal metadata, replay the activity log
//! into the bitmap.
//!
//! After a power loss of a node that was DRBD Primary, its metadata is "unclean": the kernel
//! refuses to attach the disk (`ERR_MD_UNCLEAN`, 165: "Unclean meta-data found. You need to
//! 'drbdadm apply-al res'") until the extents the activity log names as hot are marked out of
//! sync in the bitmap. `drbdadm up` runs `drbdmeta MINOR v08|v09 DISK internal apply-al` for
//! that; [`apply_al`] does the same without spawning it, for internal metadata of format v08
//! (DRBD 8.4) and v09 (DRBD 9), with drbdmeta 9.22's on-disk result, byte for byte (but for
//! logs whose transaction numbers cross 2^31, which drbdmeta misorders: docs/drbd-metadata.md).
//!
//! ```no_run
//! # fn f() -> Result<(), drbd_md::MdError> {
//! let report = drbd_md::apply_al(std::path::Path::new("/dev/vdb"))?; // the backing disk
//! println!("{}: {} hot extents, {} KiB more out of sync",
//!          report.format, report.hot_extents.len(), report.additional_kib());
//! # Ok(()) }
//! ```
//!
//! The decoders are pure functions on bytes ([`Superblock::decode`], [`Transaction::decode`],
//! [`replay_al`]), fuzzed. The on-disk facts they rely on, with their public sources
//! (drbd-utils `user/shared/drbdmeta.c` at v9.22.0, drbd-headers `drbd_meta_data.h`, DRBD
//! kernel sources at drbd-8.4.7 and drbd-9.3.3), are in the repository's
//! `docs/drbd-metadata.md`.
//!
//! # Choices
//!
//! - **Exclusive, direct.** A block device is opened `O_EXCL` (one DRBD has attached, or a
//!   mounted one, gives [`MdError::Busy`]; Linux ignores `O_EXCL` for regular files) and `O_DIRECT` with 4 KiB-aligned buffers (DRBD
//!   reads metadata with bios, bypassing the page cache); a regular file on a filesystem that
//!   refuses `O_DIRECT` (tmpfs) is opened without it.
//! - **Decide, then write.** Everything is decoded, checked and replayed before the first
//!   write; errors name the byte offset and the field. Writes go bitmap, flush, log, flush,
//!   superblock, flush.
//! - **Only what drbdmeta 9.22 does for 8.4+ logs.** The 0.7-era log format, the
//!   persistent-memory log and bitmaps of more than 4 KiB per bit (with extents to apply) are
//!   refused with [`MdError::Unsupported`]; external metadata is not handled.
//! - **No shell-outs**, no page-cache reads, no panics on any input.
#![deny(missing_docs)]
#![warn(clippy::missing_errors_doc)]
#![cfg_attr(not(test), deny(clippy::unwrap_used))]

mod al;
mod apply;
mod be;
mod bitmap;
mod device;
mod error;
mod superblock;

pub use al::{
    replay_al, Replay, Transaction, AL_CONTEXT_PER_TRANSACTION, AL_EXTENTS_MAX, AL_MAGIC,
    AL_TR_INITIALIZED, AL_TR_UPDATE, AL_UPDATES_PER_TRANSACTION, TRANSACTION_BYTES,
};
pub use apply::{apply_al, ApplyAlReport};
pub use bitmap::AL_EXTENT_BYTES;
pub use error::{AlProblem, MdError};
pub use superblock::{
    flags, Format, Layout, PeerSlot, Superblock, MAGIC_08, MAGIC_09, MAGIC_84_UNCLEAN,
    MIN_DEVICE_BYTES, PEERS_MAX, SUPERBLOCK_BYTES,
};
