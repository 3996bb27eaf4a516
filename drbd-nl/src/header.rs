//! `struct drbd_genlmsghdr`, the 8-byte DRBD user header after the genl header.
//!
//! ```text
//!  0                   1                   2                   3
//!  0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! |                     minor (u32, host order)                   |
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! |   flags (u32, requests) / ret_code (s32, replies and events)  |
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! ```

use netlink_packet_core::{DecodeError, Emitable};

/// Size of `struct drbd_genlmsghdr` (`CTRL_ATTR_HDRSIZE` of family `drbd`).
pub const DRBD_GENL_HDRLEN: usize = 8;
/// The header minor for requests that do not address a device.
pub const MINOR_NONE: u32 = 0xFFFF_FFFF;
/// `DRBD_GENL_F_SET_DEFAULTS`: reset an option set to defaults before applying.
pub const DRBD_GENL_F_SET_DEFAULTS: u32 = 1;

/// The DRBD user header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DrbdHeader {
    /// The device minor, or [`MINOR_NONE`].
    pub minor: u32,
    /// Requests: flags ([`DRBD_GENL_F_SET_DEFAULTS`]). Replies and events: the
    /// `ret_code` as raw bits; read it with [`DrbdHeader::ret_code`].
    pub flags: u32,
}

impl Default for DrbdHeader {
    fn default() -> Self {
        Self {
            minor: MINOR_NONE,
            flags: 0,
        }
    }
}

impl DrbdHeader {
    /// A request header for `minor` with no flags.
    pub fn new(minor: u32) -> Self {
        Self { minor, flags: 0 }
    }

    /// The `ret_code` of a reply: a `drbd_ret_code` (>= 100) or a
    /// `drbd_state_rv` (<= 4), see [`crate::ReplyCode`].
    pub fn ret_code(&self) -> i32 {
        self.flags as i32
    }

    /// Parses the first 8 bytes of `buf`.
    ///
    /// # Errors
    /// [`DecodeError`] when `buf` holds fewer than 8 bytes.
    pub fn parse(buf: &[u8]) -> Result<Self, DecodeError> {
        match buf {
            [m0, m1, m2, m3, f0, f1, f2, f3, ..] => Ok(Self {
                minor: u32::from_ne_bytes([*m0, *m1, *m2, *m3]),
                flags: u32::from_ne_bytes([*f0, *f1, *f2, *f3]),
            }),
            _ => Err(DecodeError::from(format!(
                "DRBD header needs {DRBD_GENL_HDRLEN} bytes, got {}",
                buf.len()
            ))),
        }
    }
}

impl Emitable for DrbdHeader {
    fn buffer_len(&self) -> usize {
        DRBD_GENL_HDRLEN
    }

    fn emit(&self, buffer: &mut [u8]) {
        // invariant: netlink-packet-core hands us buffer_len() bytes.
        if let Some(dst) = buffer.get_mut(0..4) {
            dst.copy_from_slice(&self.minor.to_ne_bytes());
        }
        if let Some(dst) = buffer.get_mut(4..8) {
            dst.copy_from_slice(&self.flags.to_ne_bytes());
        }
    }
}
