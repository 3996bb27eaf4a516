//! The 4 KiB metadata superblock, formats v08 (DRBD 8.4) and v09 (DRBD 9).
//!
//! Layouts: drbd-utils `user/shared/drbdmeta.c` (`struct md_on_disk_08`,
//! `md_disk_08_to_cpu`, `md_cpu_to_disk_08`, `is_valid_md`) and drbd-headers
//! `drbd_meta_data.h` (`struct meta_data_on_disk_9`); all fields big-endian.

use crate::be::{get_u32, get_u64, put_u32, put_u64};
use crate::bitmap::bitmap_bytes;
use crate::error::MdError;

/// Size of the superblock on disk, bytes (both formats are padded to 4 KiB).
pub const SUPERBLOCK_BYTES: usize = 4096;

/// `DRBD_MAGIC` (`linux/drbd.h`); the superblock magics are offsets from it.
const DRBD_MAGIC: u32 = 0x8374_0267;
/// Magic of a v06 superblock (DRBD 0.6), refused.
const MAGIC_06: u32 = DRBD_MAGIC + 2;
/// Magic of a v07 superblock (DRBD 0.7), refused.
const MAGIC_07: u32 = DRBD_MAGIC + 3;
/// `DRBD_MD_MAGIC_08`: v08 metadata whose activity log is clean (written by drbdmeta).
pub const MAGIC_08: u32 = DRBD_MAGIC + 4;
/// `DRBD_MD_MAGIC_84_UNCLEAN`: v08 metadata as the DRBD 8.4 kernel writes it while attached;
/// the kernel refuses to attach it (`ERR_MD_UNCLEAN`) until apply-al writes [`MAGIC_08`].
pub const MAGIC_84_UNCLEAN: u32 = DRBD_MAGIC + 5;
/// `DRBD_MD_MAGIC_09`: v09 metadata (DRBD 9); cleanliness is the [`flags::AL_CLEAN`] flag.
pub const MAGIC_09: u32 = DRBD_MAGIC + 6;

/// `DRBD_PEERS_MAX` (`linux/drbd.h`): peer slots in a v09 superblock (and history UUIDs).
pub const PEERS_MAX: usize = 32;

/// `enum mdf_flag` bits of [`Superblock::flags`] (`linux/drbd.h`).
pub mod flags {
    /// `MDF_CONSISTENT`.
    pub const CONSISTENT: u32 = 1 << 0;
    /// `MDF_PRIMARY_IND`: the node was Primary; the activity log must be applied.
    pub const PRIMARY_IND: u32 = 1 << 1;
    /// `MDF_CONNECTED_IND` (v08 only).
    pub const CONNECTED_IND: u32 = 1 << 2;
    /// `MDF_FULL_SYNC` (v08 only).
    pub const FULL_SYNC: u32 = 1 << 3;
    /// `MDF_WAS_UP_TO_DATE`.
    pub const WAS_UP_TO_DATE: u32 = 1 << 4;
    /// `MDF_PEER_OUT_DATED` (v08 only).
    pub const PEER_OUT_DATED: u32 = 1 << 5;
    /// `MDF_CRASHED_PRIMARY`.
    pub const CRASHED_PRIMARY: u32 = 1 << 6;
    /// `MDF_AL_CLEAN`: the activity log holds nothing to apply (set by apply-al and by a clean
    /// detach).
    pub const AL_CLEAN: u32 = 1 << 7;
    /// `MDF_AL_DISABLED`.
    pub const AL_DISABLED: u32 = 1 << 8;
}

/// Superblock format (drbdmeta's `v08` / `v09` argument).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Format {
    /// DRBD 8.4 (`struct md_on_disk_08`), one peer.
    V08,
    /// DRBD 9 (`struct meta_data_on_disk_9`), up to 31 bitmap slots.
    V09,
}

impl std::fmt::Display for Format {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::V08 => "v08",
            Self::V09 => "v09",
        })
    }
}

/// One peer slot of the superblock (`struct peer_dev_md_on_disk_9`; v08 has one, holding only
/// the bitmap UUID).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub struct PeerSlot {
    /// UUID the bitmap of this peer is relative to.
    pub bitmap_uuid: u64,
    /// v09: data generation tag of the bitmap (0 in v08).
    pub bitmap_dagtag: u64,
    /// v09: `MDF_PEER_*` flags (0 in v08).
    pub flags: u32,
    /// v09: bitmap slot of this node id, -1 for none (0 in v08).
    pub bitmap_index: i32,
}

/// A decoded v08 or v09 superblock: the fields drbdmeta keeps (`struct md_cpu`); reserved
/// bytes are not kept, and [`Superblock::encode`] writes them as zero, as drbdmeta does.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Superblock {
    /// Which layout.
    pub format: Format,
    /// The magic as found: [`MAGIC_08`], [`MAGIC_84_UNCLEAN`] (v08) or [`MAGIC_09`] (v09).
    pub magic: u32,
    /// Last agreed size of the DRBD device, 512-byte sectors (`la_size_sect`).
    pub effective_size: u64,
    /// Current data generation UUID.
    pub current_uuid: u64,
    /// History UUIDs: 2 in v08 (`UI_HISTORY_START..=UI_HISTORY_END`), 32 in v09.
    pub history_uuids: Vec<u64>,
    /// Peer slots: 1 in v08 (its bitmap UUID), 32 (`DRBD_NODE_ID_MAX`) in v09.
    pub peers: Vec<PeerSlot>,
    /// Device UUID.
    pub device_uuid: u64,
    /// `MDF_*` flags, see [`flags`].
    pub flags: u32,
    /// Size of the metadata area in 512-byte sectors (superblock + activity log + bitmap).
    pub md_size_sect: u32,
    /// Activity log offset from the superblock, 512-byte sectors (negative for internal
    /// metadata: the log lies before the superblock).
    pub al_offset: i32,
    /// `al-extents` of the last attach (kept, unused by apply-al).
    pub al_nr_extents: u32,
    /// Bitmap offset from the superblock, 512-byte sectors (negative for internal metadata).
    pub bm_offset: i32,
    /// Bytes of data per bitmap bit (4096 unless DRBD 9's bitmap block size was changed).
    pub bm_bytes_per_bit: u32,
    /// Last peer `max_bio_size`, bytes.
    pub la_peer_max_bio_size: u32,
    /// Bitmap slots (`bm_max_peers`; 1 for v08).
    pub max_peers: u32,
    /// v09: this node's id (-1 if unset); 0 for v08.
    pub node_id: i32,
    /// Activity log stripes (v08: a superblock with 0 stripes and 0 stripe size means the
    /// pre-8.4 fixed log, 1 stripe of 8, as drbdmeta reads it).
    pub al_stripes: u32,
    /// Activity log stripe size, 4 KiB blocks (= transactions).
    pub al_stripe_size_4k: u32,
}

/// Byte offsets of the fields (v08 and v09 share them up to `la_peer_max_bio_size`).
mod off {
    pub const EFFECTIVE_SIZE: usize = 0;
    pub const UUIDS: usize = 8;
    pub const DEVICE_UUID_08: usize = 40;
    pub const DEVICE_UUID_09: usize = 48;
    pub const FLAGS: usize = 56;
    pub const MAGIC: usize = 60;
    pub const MD_SIZE_SECT: usize = 64;
    pub const AL_OFFSET: usize = 68;
    pub const AL_NR_EXTENTS: usize = 72;
    pub const BM_OFFSET: usize = 76;
    pub const BM_BYTES_PER_BIT: usize = 80;
    pub const LA_PEER_MAX_BIO_SIZE: usize = 84;
    pub const AL_STRIPES_08: usize = 88;
    pub const AL_STRIPE_SIZE_08: usize = 92;
    pub const BM_MAX_PEERS_09: usize = 88;
    pub const NODE_ID_09: usize = 92;
    pub const AL_STRIPES_09: usize = 96;
    pub const AL_STRIPE_SIZE_09: usize = 100;
    pub const PEERS_09: usize = 112;
    pub const PEER_BYTES_09: usize = 32;
    pub const HISTORY_09: usize = 1136;
}

/// Where internal ("flexible internal") metadata lies on a device, all in bytes from the
/// device start, as drbdmeta computes it (`v07_style_md_get_byte_offset`,
/// `re_initialize_md_offsets`, `max_usable_sectors`, `clip_effective_size_and_bm_bytes`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct Layout {
    /// Device size, bytes.
    pub device_size: u64,
    /// Superblock: the last 4 KiB-aligned 4 KiB block.
    pub md_offset: u64,
    /// Activity log start.
    pub al_offset: u64,
    /// Activity log length (`al_stripes * al_stripe_size_4k * 4096`).
    pub al_bytes: u64,
    /// Bitmap start (the lowest metadata byte).
    pub bm_offset: u64,
    /// Bitmap bytes in use for [`Layout::effective_size`] (all slots, 4 KiB-aligned).
    pub bm_bytes: u64,
    /// Data sectors the metadata leaves (`bm_offset / 512`).
    pub max_usable_sectors: u64,
    /// [`Superblock::effective_size`] clipped to `max_usable_sectors` (drbdmeta writes the
    /// clipped value back when it rewrites the superblock).
    pub effective_size: u64,
}

/// drbdmeta refuses devices below this (`SO_MUCH`, 68 KiB).
pub const MIN_DEVICE_BYTES: u64 = 68 * 1024;

impl Superblock {
    /// Decodes a superblock from the first 4096 bytes of `bytes` and checks the fields that do
    /// not depend on the device (drbdmeta `is_valid_md`: magic, `max_peers` 1..=31, `node_id`
    /// -1..=31, `bitmap_index` -1..=31 of the used slots; plus what its asserts and the
    /// kernel require: `bm_bytes_per_bit` a power of two >= 4096, a non-empty activity log).
    ///
    /// As drbdmeta: v08 stripes 0/0 read as 1/8; a v09 `bm_max_peers` above 31 reads as 31.
    ///
    /// # Errors
    /// [`MdError::Truncated`] below 4096 bytes, [`MdError::NoMetadata`] for an unknown magic,
    /// [`MdError::Unsupported`] for v06/v07 magics, [`MdError::Invalid`] naming the field and its
    /// byte offset. Never panics.
    pub fn decode(bytes: &[u8]) -> Result<Self, MdError> {
        if bytes.len() < SUPERBLOCK_BYTES {
            return Err(MdError::Truncated {
                what: "superblock",
                offset: 0,
                len: bytes.len(),
                need: SUPERBLOCK_BYTES,
            });
        }
        let b = &bytes[..SUPERBLOCK_BYTES];
        let magic = get_u32(b, off::MAGIC);
        let format = match magic {
            MAGIC_08 | MAGIC_84_UNCLEAN => Format::V08,
            MAGIC_09 => Format::V09,
            MAGIC_06 | MAGIC_07 => {
                return Err(MdError::Unsupported {
                    offset: off::MAGIC as u64,
                    what: format!(
                        "DRBD 0.{} metadata (magic {magic:#010x}); only v08 and v09 are handled",
                        if magic == MAGIC_06 { 6 } else { 7 }
                    ),
                })
            }
            _ => return Err(MdError::NoMetadata { offset: 0, magic }),
        };
        // Fields at the same offsets in both formats; the rest per format below.
        let base = Self {
            format,
            magic,
            effective_size: get_u64(b, off::EFFECTIVE_SIZE),
            current_uuid: get_u64(b, off::UUIDS),
            history_uuids: Vec::new(),
            peers: Vec::new(),
            device_uuid: 0,
            flags: get_u32(b, off::FLAGS),
            md_size_sect: get_u32(b, off::MD_SIZE_SECT),
            al_offset: get_u32(b, off::AL_OFFSET) as i32,
            al_nr_extents: get_u32(b, off::AL_NR_EXTENTS),
            bm_offset: get_u32(b, off::BM_OFFSET) as i32,
            bm_bytes_per_bit: get_u32(b, off::BM_BYTES_PER_BIT),
            la_peer_max_bio_size: get_u32(b, off::LA_PEER_MAX_BIO_SIZE),
            max_peers: 1,
            node_id: 0,
            al_stripes: 0,
            al_stripe_size_4k: 0,
        };
        let sb = match format {
            Format::V08 => {
                // uuid[UI_SIZE]: current, bitmap, history start, history end.
                let uuid = |i: usize| get_u64(b, off::UUIDS + 8 * i);
                let (mut stripes, mut stripe_size) = (
                    get_u32(b, off::AL_STRIPES_08),
                    get_u32(b, off::AL_STRIPE_SIZE_08),
                );
                if stripes == 0 && stripe_size == 0 {
                    (stripes, stripe_size) = (1, 8);
                }
                Self {
                    history_uuids: vec![uuid(2), uuid(3)],
                    peers: vec![PeerSlot {
                        bitmap_uuid: uuid(1),
                        ..PeerSlot::default()
                    }],
                    device_uuid: get_u64(b, off::DEVICE_UUID_08),
                    al_stripes: stripes,
                    al_stripe_size_4k: stripe_size,
                    ..base
                }
            }
            Format::V09 => Self {
                history_uuids: (0..PEERS_MAX)
                    .map(|i| get_u64(b, off::HISTORY_09 + 8 * i))
                    .collect(),
                peers: (0..PEERS_MAX)
                    .map(|i| {
                        let p = off::PEERS_09 + off::PEER_BYTES_09 * i;
                        PeerSlot {
                            bitmap_uuid: get_u64(b, p),
                            bitmap_dagtag: get_u64(b, p + 8),
                            flags: get_u32(b, p + 16),
                            bitmap_index: get_u32(b, p + 20) as i32,
                        }
                    })
                    .collect(),
                device_uuid: get_u64(b, off::DEVICE_UUID_09),
                // md_disk_09_to_cpu clamps to DRBD_PEERS_MAX - 1.
                max_peers: get_u32(b, off::BM_MAX_PEERS_09).min(PEERS_MAX as u32 - 1),
                node_id: get_u32(b, off::NODE_ID_09) as i32,
                al_stripes: get_u32(b, off::AL_STRIPES_09),
                al_stripe_size_4k: get_u32(b, off::AL_STRIPE_SIZE_09),
                ..base
            },
        };
        sb.check()?;
        Ok(sb)
    }

    /// drbdmeta `is_valid_md`'s device-independent checks, plus its asserts as errors.
    fn check(&self) -> Result<(), MdError> {
        let v09 = self.format == Format::V09;
        if !(1..PEERS_MAX as u32).contains(&self.max_peers) {
            return Err(MdError::invalid(
                off::BM_MAX_PEERS_09 as u64,
                "bm_max_peers",
                self.max_peers,
                "1..=31",
            ));
        }
        if !(-1..PEERS_MAX as i32).contains(&self.node_id) {
            return Err(MdError::invalid(
                off::NODE_ID_09 as u64,
                "node_id",
                self.node_id,
                "-1..=31",
            ));
        }
        if v09 {
            for (n, p) in self.peers.iter().take(self.max_peers as usize).enumerate() {
                if !(-1..PEERS_MAX as i32).contains(&p.bitmap_index) {
                    return Err(MdError::invalid(
                        (off::PEERS_09 + off::PEER_BYTES_09 * n + 20) as u64,
                        "peers[].bitmap_index",
                        p.bitmap_index,
                        "-1..=31",
                    ));
                }
            }
        }
        let bpb = self.bm_bytes_per_bit;
        if bpb < 4096 || !bpb.is_power_of_two() {
            return Err(MdError::invalid(
                off::BM_BYTES_PER_BIT as u64,
                "bm_bytes_per_bit",
                bpb,
                "a power of two >= 4096",
            ));
        }
        let (so, sso) = if v09 {
            (off::AL_STRIPES_09, off::AL_STRIPE_SIZE_09)
        } else {
            (off::AL_STRIPES_08, off::AL_STRIPE_SIZE_08)
        };
        if self.al_stripes == 0 {
            return Err(MdError::invalid(so as u64, "al_stripes", 0, ">= 1"));
        }
        if self.al_stripe_size_4k == 0 {
            return Err(MdError::invalid(sso as u64, "al_stripe_size_4k", 0, ">= 1"));
        }
        Ok(())
    }

    /// Activity log transactions (4 KiB each): `al_stripes * al_stripe_size_4k`, if that fits
    /// drbdmeta's `int` sector arithmetic.
    pub fn al_slots(&self) -> Option<u32> {
        let n = self.al_stripes.checked_mul(self.al_stripe_size_4k)?;
        // al_size_sect = n * 8 is an int in drbdmeta.
        (u64::from(n) * 8 <= i32::MAX as u64).then_some(n)
    }

    /// True when the activity log needs nothing from apply-al: `MDF_AL_CLEAN` set and (v08)
    /// the magic is [`MAGIC_08`] (what the 8.4 kernel checks before attaching; drbdmeta
    /// rewrites a v09 superblock whatever its flags, see [`crate::apply_al`]).
    pub fn is_clean(&self) -> bool {
        self.flags & flags::AL_CLEAN != 0 && self.magic != MAGIC_84_UNCLEAN
    }

    /// Where internal metadata with this superblock lies on a device of `device_size` bytes,
    /// checked as drbdmeta's `is_valid_md` does for internal metadata: `al_offset` must be
    /// `-al_stripes * al_stripe_size_4k * 8` sectors, `bm_offset` must leave room for the
    /// bitmap of the whole device (`-md_size + 8`), and (v08 only) `md_size_sect` must match.
    ///
    /// # Errors
    /// [`MdError::TooSmall`] below 68 KiB, [`MdError::Invalid`] (offset relative to the
    /// superblock) for an offset or size that does not match the device,
    /// [`MdError::Unsupported`] beyond drbdmeta's limits (1 PiB, 32 MiB activity log).
    pub fn internal_layout(&self, device_size: u64) -> Result<Layout, MdError> {
        if device_size < MIN_DEVICE_BYTES {
            return Err(MdError::TooSmall {
                size: device_size,
                min: MIN_DEVICE_BYTES,
            });
        }
        let md_offset = (device_size - 4096) & !4095;
        let slots = self.al_slots().ok_or_else(|| {
            MdError::invalid(
                off::AL_OFFSET as u64,
                "al_stripes * al_stripe_size_4k",
                format!("{} * {}", self.al_stripes, self.al_stripe_size_4k),
                "an activity log below 1 TiB",
            )
        })?;
        let al_size_sect = i64::from(slots) * 8;
        if i64::from(self.al_offset) != -al_size_sect {
            return Err(MdError::invalid(
                off::AL_OFFSET as u64,
                "al_offset",
                self.al_offset,
                -al_size_sect,
            ));
        }
        // drbdmeta reads the whole log into its 32 MiB buffer.
        let al_bytes = u64::from(slots) * 4096;
        if al_bytes > 32 << 20 {
            return Err(MdError::Unsupported {
                offset: off::AL_OFFSET as u64,
                what: format!("activity log of {al_bytes} bytes (drbdmeta handles up to 32 MiB)"),
            });
        }
        let device_sectors = device_size >> 9;
        let bm = self.bitmap_bytes(device_sectors)?;
        let md_size_sect = (bm >> 9).next_multiple_of(8) + 8 + al_size_sect as u64;
        let want_bm = 8 - md_size_sect as i64;
        if i64::from(self.bm_offset) != want_bm {
            return Err(MdError::invalid(
                off::BM_OFFSET as u64,
                "bm_offset",
                self.bm_offset,
                want_bm,
            ));
        }
        if self.format == Format::V08 && u64::from(self.md_size_sect) != md_size_sect {
            return Err(MdError::invalid(
                off::MD_SIZE_SECT as u64,
                "md_size_sect",
                self.md_size_sect,
                md_size_sect,
            ));
        }
        let too_big = || {
            MdError::invalid(
                off::MD_SIZE_SECT as u64,
                "md_size_sect",
                md_size_sect,
                format!("metadata within the device of {device_size} bytes"),
            )
        };
        let bm_offset = (md_offset + 4096)
            .checked_sub(md_size_sect * 512)
            .ok_or_else(too_big)?;
        let al_offset = md_offset - al_bytes;
        let max_usable_sectors = bm_offset >> 9;
        let effective_size = self.effective_size.min(max_usable_sectors);
        Ok(Layout {
            device_size,
            md_offset,
            al_offset,
            al_bytes,
            bm_offset,
            bm_bytes: self.bitmap_bytes(effective_size)?,
            max_usable_sectors,
            effective_size,
        })
    }

    /// drbdmeta `bm_bytes` for this superblock, with its assert on 1 PiB as an error.
    fn bitmap_bytes(&self, sectors: u64) -> Result<u64, MdError> {
        if sectors > 1 << (50 - 9) {
            return Err(MdError::Unsupported {
                offset: off::EFFECTIVE_SIZE as u64,
                what: format!("{sectors} sectors: drbdmeta handles up to 1 PiB"),
            });
        }
        Ok(bitmap_bytes(sectors, self.bm_bytes_per_bit, self.max_peers))
    }

    /// The superblock as drbdmeta writes it (`md_cpu_to_disk_08` / `md_cpu_to_disk_09`): the
    /// kept fields, big-endian, everything else zero.
    pub fn encode(&self) -> [u8; SUPERBLOCK_BYTES] {
        let mut b = [0u8; SUPERBLOCK_BYTES];
        let peer = |i: usize| self.peers.get(i).copied().unwrap_or_default();
        let hist = |i: usize| self.history_uuids.get(i).copied().unwrap_or(0);
        put_u64(&mut b, off::EFFECTIVE_SIZE, self.effective_size);
        put_u32(&mut b, off::FLAGS, self.flags);
        put_u32(&mut b, off::MAGIC, self.magic);
        put_u32(&mut b, off::MD_SIZE_SECT, self.md_size_sect);
        put_u32(&mut b, off::AL_OFFSET, self.al_offset as u32);
        put_u32(&mut b, off::AL_NR_EXTENTS, self.al_nr_extents);
        put_u32(&mut b, off::BM_OFFSET, self.bm_offset as u32);
        put_u32(&mut b, off::BM_BYTES_PER_BIT, self.bm_bytes_per_bit);
        put_u32(&mut b, off::LA_PEER_MAX_BIO_SIZE, self.la_peer_max_bio_size);
        match self.format {
            Format::V08 => {
                put_u64(&mut b, off::UUIDS, self.current_uuid);
                put_u64(&mut b, off::UUIDS + 8, peer(0).bitmap_uuid);
                put_u64(&mut b, off::UUIDS + 16, hist(0));
                put_u64(&mut b, off::UUIDS + 24, hist(1));
                put_u64(&mut b, off::DEVICE_UUID_08, self.device_uuid);
                put_u32(&mut b, off::AL_STRIPES_08, self.al_stripes);
                put_u32(&mut b, off::AL_STRIPE_SIZE_08, self.al_stripe_size_4k);
            }
            Format::V09 => {
                put_u64(&mut b, off::UUIDS, self.current_uuid);
                put_u64(&mut b, off::DEVICE_UUID_09, self.device_uuid);
                put_u32(&mut b, off::BM_MAX_PEERS_09, self.max_peers);
                put_u32(&mut b, off::NODE_ID_09, self.node_id as u32);
                put_u32(&mut b, off::AL_STRIPES_09, self.al_stripes);
                put_u32(&mut b, off::AL_STRIPE_SIZE_09, self.al_stripe_size_4k);
                for i in 0..PEERS_MAX {
                    let p = off::PEERS_09 + off::PEER_BYTES_09 * i;
                    let s = peer(i);
                    put_u64(&mut b, p, s.bitmap_uuid);
                    put_u64(&mut b, p + 8, s.bitmap_dagtag);
                    put_u32(&mut b, p + 16, s.flags);
                    put_u32(&mut b, p + 20, s.bitmap_index as u32);
                }
                for i in 0..PEERS_MAX {
                    put_u64(&mut b, off::HISTORY_09 + 8 * i, hist(i));
                }
            }
        }
        b
    }
}
