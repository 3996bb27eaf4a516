//! The crate's error type.

use std::path::PathBuf;

/// Everything that can go wrong reading or repairing DRBD metadata.
///
/// Byte offsets are absolute on the device for [`crate::apply_al`], and relative to the
/// given buffer for the pure decoders ([`crate::Superblock::decode`],
/// [`crate::Transaction::decode`], [`crate::replay_al`]). Whenever `apply_al` returns an
/// error found while decoding or replaying, it has written nothing.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum MdError {
    /// `open(2)` of the backing device failed (other than [`MdError::Busy`]).
    #[error("open {path}: {source}")]
    Open {
        /// The path given.
        path: PathBuf,
        /// The errno.
        #[source]
        source: std::io::Error,
    },
    /// The exclusive open (`O_EXCL`) of a block device failed with `EBUSY`: DRBD has it
    /// attached, it is mounted, or another holder (device mapper, md, another `O_EXCL`
    /// opener) has it. drbdmeta refuses the same way (`apply-al` never retries without
    /// `O_EXCL`).
    #[error("{path} is in use (exclusive open failed with EBUSY: attached to DRBD, mounted, or held by another user); refusing to touch its metadata")]
    Busy {
        /// The path given.
        path: PathBuf,
    },
    /// The path is neither a block device nor a regular file.
    #[error("{path} is neither a block device nor a regular file")]
    NotADevice {
        /// The path given.
        path: PathBuf,
    },
    /// A read, write or flush of the device failed. After the first write (a bitmap block),
    /// a later read or write error can leave part of the bitmap set and the log and
    /// superblock as they were: safe (bits are only ever set), and a rerun completes it.
    #[error("{op} at byte {offset}: {source}")]
    Io {
        /// What was being done (`read superblock`, `write bitmap`, ...).
        op: &'static str,
        /// Absolute byte offset on the device.
        offset: u64,
        /// The errno.
        #[source]
        source: std::io::Error,
    },
    /// The device is too small to hold internal metadata (drbdmeta's minimum: 68 KiB).
    #[error(
        "device of {size} bytes is too small for internal DRBD metadata (at least {min} bytes)"
    )]
    TooSmall {
        /// Device size in bytes.
        size: u64,
        /// The minimum in bytes.
        min: u64,
    },
    /// Fewer bytes than a structure needs.
    #[error("{what} at byte {offset}: {len} bytes, needs {need}")]
    Truncated {
        /// The structure (`superblock`, `activity log`, `AL transaction`).
        what: &'static str,
        /// Byte offset of the structure.
        offset: u64,
        /// Bytes given.
        len: usize,
        /// Bytes needed.
        need: usize,
    },
    /// No DRBD v08/v09 superblock: the magic (big-endian u32 at byte 60 of the superblock)
    /// is none of `DRBD_MD_MAGIC_08`, `DRBD_MD_MAGIC_84_UNCLEAN`, `DRBD_MD_MAGIC_09`.
    #[error(
        "no DRBD v08/v09 metadata at byte {offset}: magic {magic:#010x} (internal metadata is \
         looked for in the device's last 4 KiB: external metadata, a device grown or shrunk \
         since create-md, or none at all)"
    )]
    NoMetadata {
        /// Byte offset of the superblock.
        offset: u64,
        /// The magic found.
        magic: u32,
    },
    /// DRBD metadata this crate deliberately does not handle (0.6/0.7 superblocks, the
    /// pre-8.4 activity-log format, the persistent-memory activity log, a bitmap granularity
    /// other than 4 KiB with extents to apply, sizes beyond drbdmeta's limits).
    #[error("unsupported at byte {offset}: {what}")]
    Unsupported {
        /// Byte offset of the structure concerned.
        offset: u64,
        /// What and why.
        what: String,
    },
    /// A field has a value drbdmeta (or the kernel) would refuse.
    #[error("invalid {field} at byte {offset}: {value} (expected {expected})")]
    Invalid {
        /// Byte offset of the field.
        offset: u64,
        /// The field's name in `drbd_meta_data.h` / drbdmeta (`al_offset`, `crc32c`, ...).
        field: &'static str,
        /// The value found.
        value: String,
        /// What was expected.
        expected: String,
    },
    /// The activity log cannot be replayed, and the superblock has `MDF_PRIMARY_IND` set
    /// (the node was Primary, so the log matters). drbdmeta exits non-zero without writing
    /// (1 for [`AlProblem::NoValidTransaction`], 2 for [`AlProblem::NoValidUpdate`]).
    #[error("activity log at byte {offset}: {problem}; the node was Primary (MDF_PRIMARY_IND), refusing to mark the metadata clean")]
    ActivityLog {
        /// Byte offset of the activity log.
        offset: u64,
        /// What is wrong with it.
        problem: AlProblem,
    },
}

/// Why an activity log cannot be replayed (drbdmeta `replay_al_84`'s negative returns).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum AlProblem {
    /// Not one of the `slots` 4 KiB transactions has the AL magic and a correct CRC32C
    /// (drbdmeta: "No usable activity log found", `-ENODATA`).
    NoValidTransaction {
        /// Transactions in the ring.
        slots: u32,
    },
    /// Some transactions are valid `AL_TR_INITIALIZED` ones, more than one is corrupt, and none
    /// is an update (drbdmeta: "No valid AL update transaction found", `-EINVAL`).
    NoValidUpdate {
        /// Transactions in the ring.
        slots: u32,
        /// Corrupt ones (bad magic or CRC32C).
        corrupt: u32,
    },
}

impl std::fmt::Display for AlProblem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::NoValidTransaction { slots } => {
                write!(f, "none of its {slots} transactions is valid (magic, crc32c)")
            }
            Self::NoValidUpdate { slots, corrupt } => write!(
                f,
                "{corrupt} of its {slots} transactions are corrupt and no valid update transaction is left"
            ),
        }
    }
}

impl MdError {
    /// The same error with its buffer-relative offset moved by `base` (absolute offsets).
    pub(crate) fn at(self, base: u64) -> Self {
        match self {
            Self::Truncated {
                what,
                offset,
                len,
                need,
            } => Self::Truncated {
                what,
                offset: offset + base,
                len,
                need,
            },
            Self::NoMetadata { offset, magic } => Self::NoMetadata {
                offset: offset + base,
                magic,
            },
            Self::Unsupported { offset, what } => Self::Unsupported {
                offset: offset + base,
                what,
            },
            Self::Invalid {
                offset,
                field,
                value,
                expected,
            } => Self::Invalid {
                offset: offset + base,
                field,
                value,
                expected,
            },
            Self::ActivityLog { offset, problem } => Self::ActivityLog {
                offset: offset + base,
                problem,
            },
            other => other,
        }
    }

    pub(crate) fn invalid(
        offset: u64,
        field: &'static str,
        value: impl std::fmt::Display,
        expected: impl std::fmt::Display,
    ) -> Self {
        Self::Invalid {
            offset,
            field,
            value: value.to_string(),
            expected: expected.to_string(),
        }
    }
}
