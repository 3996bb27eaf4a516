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

/// Internet checksum (RFC 1071) over the pseudo-header of IPv4 (RFC 793 §3.1: source, destination,
/// zero, protocol, length) or IPv6 (RFC 8200 §8.1: source, destination, 32-bit length, zeros, next
/// header) and `data` (whose checksum field must be zero, or hold the checksum: then the result
/// is 0). `src` and `dst` are 4 or 16 octets. One formula serves both: with the length below
/// 65536 the IPv6 layout's extra zero words add nothing to the one's complement sum.
pub(crate) fn pseudo_header_checksum(src: &[u8], dst: &[u8], protocol: u8, data: &[u8]) -> u16 {
    let mut sum: u64 = 0;
    let mut add = |bytes: &[u8]| {
        let mut chunks = bytes.chunks_exact(2);
        for c in &mut chunks {
            if let [a, b] = c {
                sum += u64::from(u16::from_be_bytes([*a, *b]));
            }
        }
        if let [last] = chunks.remainder() {
            sum += u64::from(u16::from_be_bytes([*last, 0]));
        }
    };
    add(src);
    add(dst);
    add(&(data.len() as u32).to_be_bytes());
    add(&[0, 0, 0, protocol]);
    add(data);
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !(sum as u16)
}
