//! Ethernet II framing (IEEE 802.3 clause 3.1.1, "DIX" type field).

use std::fmt;

use super::{be16, take, DecodeError};

/// EtherType of ARP (RFC 826).
pub const ETHERTYPE_ARP: u16 = 0x0806;
/// EtherType of IPv6 (RFC 2464).
pub const ETHERTYPE_IPV6: u16 = 0x86dd;
/// Length of the Ethernet II header (no 802.1Q tag, no FCS).
pub const ETH_HEADER_LEN: usize = 14;

/// A 48-bit IEEE 802 MAC address.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct MacAddr(pub [u8; 6]);

impl MacAddr {
    /// ff:ff:ff:ff:ff:ff.
    pub const BROADCAST: MacAddr = MacAddr([0xff; 6]);
    /// 00:00:00:00:00:00 (the "unknown" target hardware address of an ARP request).
    pub const ZERO: MacAddr = MacAddr([0; 6]);

    /// The octets.
    pub fn octets(&self) -> [u8; 6] {
        self.0
    }

    /// Builds a MAC from a slice of exactly 6 bytes (as rtnetlink's `IFLA_ADDRESS` gives it).
    pub fn from_slice(b: &[u8]) -> Option<MacAddr> {
        <[u8; 6]>::try_from(b).ok().map(MacAddr)
    }

    /// The Ethernet multicast MAC for an IPv6 multicast address: 33:33 + its low 32 bits (RFC 2464 §7).
    pub fn ipv6_multicast(addr: &std::net::Ipv6Addr) -> MacAddr {
        let o = addr.octets();
        MacAddr([0x33, 0x33, o[12], o[13], o[14], o[15]])
    }
}

impl fmt::Display for MacAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let [a, b, c, d, e, g] = self.0;
        write!(f, "{a:02x}:{b:02x}:{c:02x}:{d:02x}:{e:02x}:{g:02x}")
    }
}

/// A decoded Ethernet II frame, borrowing its payload.
///
/// ```text
///  0                   1                   2                   3
///  0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
/// +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
/// |                 Destination MAC address                       |
/// +                               +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
/// |                               |                               |
/// +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+                               +
/// |                   Source MAC address                          |
/// +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
/// |           EtherType           |  Payload ...                  |
/// +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EthernetFrame<'a> {
    /// Destination MAC.
    pub dst: MacAddr,
    /// Source MAC.
    pub src: MacAddr,
    /// EtherType (0x0806 ARP, 0x86dd IPv6, ...). 802.1Q tags are not unwrapped: Linux packet
    /// sockets deliver frames with the tag already stripped into metadata.
    pub ethertype: u16,
    /// Everything after the header (may include padding).
    pub payload: &'a [u8],
}

impl<'a> EthernetFrame<'a> {
    /// Decodes a frame as read from an `AF_PACKET`/`SOCK_RAW` socket.
    ///
    /// # Errors
    /// [`DecodeError`] when `buf` is shorter than the 14-byte header.
    pub fn decode(buf: &'a [u8]) -> Result<Self, DecodeError> {
        const L: &str = "ethernet";
        let dst = MacAddr(take::<6>(buf, 0, L)?);
        let src = MacAddr(take::<6>(buf, 6, L)?);
        let ethertype = be16(buf, 12, L)?;
        let payload = buf.get(ETH_HEADER_LEN..).unwrap_or_default();
        Ok(EthernetFrame {
            dst,
            src,
            ethertype,
            payload,
        })
    }

    /// Appends the encoded frame to `out`.
    pub fn encode(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.dst.0); // destination
        out.extend_from_slice(&self.src.0); // source
        out.extend_from_slice(&self.ethertype.to_be_bytes()); // type
        out.extend_from_slice(self.payload);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roundtrip_and_truncation() {
        let f = EthernetFrame {
            dst: MacAddr::BROADCAST,
            src: MacAddr([2, 0, 0, 0, 0, 1]),
            ethertype: ETHERTYPE_ARP,
            payload: &[1, 2, 3],
        };
        let mut v = Vec::new();
        f.encode(&mut v);
        assert_eq!(v.len(), 17);
        assert_eq!(EthernetFrame::decode(&v), Ok(f));
        for n in 0..ETH_HEADER_LEN {
            assert!(matches!(
                EthernetFrame::decode(&v[..n]),
                Err(DecodeError::Truncated { .. })
            ));
        }
        assert_eq!(
            MacAddr([2, 0, 0, 0, 0xab, 1]).to_string(),
            "02:00:00:00:ab:01"
        );
    }
}
