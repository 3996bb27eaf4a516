//! Our own small codec for the frames vip sends and listens to: Ethernet II, ARP for IPv4
//! over Ethernet, IPv6 + ICMPv6 neighbour solicitation / advertisement.
//!
//! Decoders take untrusted bytes (anything on the wire) and return a typed [`DecodeError`];
//! they never panic and never index past the input (each has a fuzz target in `vip/fuzz/`).
//! Trailing bytes after a complete header (Ethernet padding) are ignored.

mod arp;
mod ethernet;
mod ndisc;

pub use arp::{ArpOp, ArpPacket, ARP_LEN};
pub use ethernet::{EthernetFrame, MacAddr, ETHERTYPE_ARP, ETHERTYPE_IPV6, ETH_HEADER_LEN};
pub use ndisc::{
    icmpv6_checksum, solicited_node, Ipv6Header, NdiscMessage, NdiscPacket, IPV6_HEADER_LEN,
};

/// Why a frame could not be decoded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum DecodeError {
    /// Fewer bytes than the header (or the length it announces) needs.
    #[error("{layer}: truncated, need {needed} bytes, got {got}")]
    Truncated {
        /// Header being decoded.
        layer: &'static str,
        /// Bytes needed.
        needed: usize,
        /// Bytes present.
        got: usize,
    },
    /// A field holds a value this codec does not handle.
    #[error("{layer}: unsupported {field} {value:#x}")]
    Unsupported {
        /// Header being decoded.
        layer: &'static str,
        /// Field name as in the RFC.
        field: &'static str,
        /// Value found.
        value: u32,
    },
    /// The ICMPv6 checksum does not match the pseudo-header and payload.
    #[error("icmpv6: bad checksum {found:#06x}, expected {expected:#06x}")]
    BadChecksum {
        /// Checksum in the packet.
        found: u16,
        /// Checksum computed over the packet.
        expected: u16,
    },
    /// A neighbour discovery option has length 0 or runs past the packet (RFC 4861 §4.6).
    #[error("ndisc: bad option (type {kind}, length {len} units)")]
    BadOption {
        /// Option type.
        kind: u8,
        /// Option length in units of 8 octets.
        len: u8,
    },
}

/// Reads `N` bytes at `at`, or reports truncation for `layer`.
pub(crate) fn take<const N: usize>(
    buf: &[u8],
    at: usize,
    layer: &'static str,
) -> Result<[u8; N], DecodeError> {
    let end = at.checked_add(N).ok_or(DecodeError::Truncated {
        layer,
        needed: usize::MAX,
        got: buf.len(),
    })?;
    buf.get(at..end)
        .and_then(|s| <[u8; N]>::try_from(s).ok())
        .ok_or(DecodeError::Truncated {
            layer,
            needed: end,
            got: buf.len(),
        })
}

pub(crate) fn be16(buf: &[u8], at: usize, layer: &'static str) -> Result<u16, DecodeError> {
    take::<2>(buf, at, layer).map(u16::from_be_bytes)
}
