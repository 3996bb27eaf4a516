//! IPv6 (RFC 8200) carrying ICMPv6 (RFC 4443) neighbour discovery (RFC 4861): the neighbour
//! solicitation used for duplicate address detection (RFC 4862 §5.4) and the unsolicited
//! neighbour advertisement used to announce a moved address (RFC 4861 §7.2.6).

use std::net::Ipv6Addr;

use super::{be16, take, DecodeError, MacAddr};

/// Length of the fixed IPv6 header.
pub const IPV6_HEADER_LEN: usize = 40;

const IPPROTO_ICMPV6: u8 = 58;
const ND_NEIGHBOR_SOLICIT: u8 = 135;
const ND_NEIGHBOR_ADVERT: u8 = 136;
const ND_OPT_SOURCE_LINKADDR: u8 = 1;
const ND_OPT_TARGET_LINKADDR: u8 = 2;
const ND_NA_FLAG_ROUTER: u8 = 0x80;
const ND_NA_FLAG_SOLICITED: u8 = 0x40;
const ND_NA_FLAG_OVERRIDE: u8 = 0x20;
/// NS/NA body before options: type, code, checksum, flags/reserved, target.
const ND_BODY_LEN: usize = 24;

/// The fixed IPv6 header.
///
/// ```text
///  0                   1                   2                   3
///  0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
/// +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
/// |Version| Traffic Class |           Flow Label                  |
/// +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
/// |         Payload Length        |  Next Header  |   Hop Limit   |
/// +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
/// |                                                               |
/// +                     Source Address (128 bits)                 +
/// |                                                               |
/// +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
/// |                                                               |
/// +                  Destination Address (128 bits)               +
/// |                                                               |
/// +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ipv6Header {
    /// Hop limit; neighbour discovery requires 255 (RFC 4861 §7.1.1).
    pub hop_limit: u8,
    /// Source address (`::` in a DAD solicitation).
    pub src: Ipv6Addr,
    /// Destination address.
    pub dst: Ipv6Addr,
}

/// A neighbour discovery message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum NdiscMessage {
    /// Neighbour solicitation (type 135).
    ///
    /// ```text
    ///  0                   1                   2                   3
    ///  0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
    /// +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
    /// |     Type      |     Code      |          Checksum             |
    /// +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
    /// |                           Reserved                            |
    /// +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
    /// |                                                               |
    /// +                       Target Address (128 bits)               +
    /// |                                                               |
    /// +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
    /// |   Options ...
    /// +-+-+-+-+-+-+-+-+-+-+-+-+-
    /// ```
    Solicit {
        /// Address being resolved or checked.
        target: Ipv6Addr,
        /// Source link-layer address option (absent when the source is `::`).
        source_ll: Option<MacAddr>,
    },
    /// Neighbour advertisement (type 136).
    ///
    /// ```text
    ///  0                   1                   2                   3
    ///  0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
    /// +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
    /// |     Type      |     Code      |          Checksum             |
    /// +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
    /// |R|S|O|                     Reserved                            |
    /// +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
    /// |                                                               |
    /// +                       Target Address (128 bits)               +
    /// |                                                               |
    /// +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
    /// |   Options ...
    /// +-+-+-+-+-+-+-+-+-+-+-+-+-
    /// ```
    Advert {
        /// R: sender is a router.
        router: bool,
        /// S: answer to a solicitation (must be 0 for an unsolicited one).
        solicited: bool,
        /// O: override an existing cache entry.
        override_flag: bool,
        /// Address advertised.
        target: Ipv6Addr,
        /// Target link-layer address option.
        target_ll: Option<MacAddr>,
    },
}

/// An IPv6 packet carrying one neighbour discovery message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NdiscPacket {
    /// IPv6 header fields that matter for neighbour discovery.
    pub header: Ipv6Header,
    /// The ICMPv6 message.
    pub message: NdiscMessage,
}

/// The solicited-node multicast address of `addr`: ff02::1:ffXX:XXXX (RFC 4291 §2.7.1).
pub fn solicited_node(addr: &Ipv6Addr) -> Ipv6Addr {
    let o = addr.octets();
    Ipv6Addr::from([
        0xff, 0x02, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0xff, o[13], o[14], o[15],
    ])
}

/// ICMPv6 checksum (RFC 4443 §2.3) over the IPv6 pseudo-header (RFC 8200 §8.1) and `icmp`
/// (whose checksum field must be zero, or hold the checksum: then the result is 0).
pub fn icmpv6_checksum(src: &Ipv6Addr, dst: &Ipv6Addr, icmp: &[u8]) -> u16 {
    super::pseudo_header_checksum(&src.octets(), &dst.octets(), IPPROTO_ICMPV6, icmp)
}

impl NdiscPacket {
    /// Unsolicited neighbour advertisement for `addr` to all-nodes (ff02::1), O=1, S=0, with
    /// the target link-layer address option (RFC 4861 §7.2.6), from `addr` itself (as
    /// IPaddr2's `send_ua` does).
    pub fn unsolicited_advert(mac: MacAddr, addr: Ipv6Addr) -> Self {
        NdiscPacket {
            header: Ipv6Header {
                hop_limit: 255,
                src: addr,
                dst: Ipv6Addr::new(0xff02, 0, 0, 0, 0, 0, 0, 1),
            },
            message: NdiscMessage::Advert {
                router: false,
                solicited: false,
                override_flag: true,
                target: addr,
                target_ll: Some(mac),
            },
        }
    }

    /// Duplicate address detection probe: NS from `::` to the solicited-node multicast of
    /// `addr`, no source link-layer option (RFC 4862 §5.4.2).
    pub fn dad_solicit(addr: Ipv6Addr) -> Self {
        NdiscPacket {
            header: Ipv6Header {
                hop_limit: 255,
                src: Ipv6Addr::UNSPECIFIED,
                dst: solicited_node(&addr),
            },
            message: NdiscMessage::Solicit {
                target: addr,
                source_ll: None,
            },
        }
    }

    /// Decodes an IPv6 packet (the payload of an Ethernet frame of type 0x86dd) that must hold
    /// an NS or NA directly after the fixed header; verifies length, code and checksum.
    ///
    /// # Errors
    /// [`DecodeError`] for a truncated packet, another next header or ICMPv6 type, a nonzero
    /// code, a bad checksum or a malformed option.
    pub fn decode(buf: &[u8]) -> Result<Self, DecodeError> {
        const L: &str = "ipv6";
        let [vtc, ..] = take::<4>(buf, 0, L)?;
        if vtc >> 4 != 6 {
            return Err(DecodeError::Unsupported {
                layer: L,
                field: "version",
                value: u32::from(vtc >> 4),
            });
        }
        let payload_len = usize::from(be16(buf, 4, L)?);
        let [next_header, hop_limit] = take::<2>(buf, 6, L)?;
        let src = Ipv6Addr::from(take::<16>(buf, 8, L)?);
        let dst = Ipv6Addr::from(take::<16>(buf, 24, L)?);
        if next_header != IPPROTO_ICMPV6 {
            return Err(DecodeError::Unsupported {
                layer: L,
                field: "next header",
                value: next_header.into(),
            });
        }
        let end = IPV6_HEADER_LEN + payload_len;
        let icmp = buf
            .get(IPV6_HEADER_LEN..end)
            .ok_or(DecodeError::Truncated {
                layer: L,
                needed: end,
                got: buf.len(),
            })?;
        let message = decode_icmp(icmp, &src, &dst)?;
        Ok(NdiscPacket {
            header: Ipv6Header {
                hop_limit,
                src,
                dst,
            },
            message,
        })
    }

    /// Appends the encoded IPv6 packet (header + ICMPv6 with checksum) to `out`.
    pub fn encode(&self, out: &mut Vec<u8>) {
        let mut icmp = Vec::with_capacity(ND_BODY_LEN + 8);
        let (target, opt) = match self.message {
            NdiscMessage::Solicit { target, source_ll } => {
                icmp.push(ND_NEIGHBOR_SOLICIT); // type
                icmp.push(0); // code
                icmp.extend_from_slice(&[0, 0]); // checksum, filled below
                icmp.extend_from_slice(&[0; 4]); // reserved
                (target, source_ll.map(|m| (ND_OPT_SOURCE_LINKADDR, m)))
            }
            NdiscMessage::Advert {
                router,
                solicited,
                override_flag,
                target,
                target_ll,
            } => {
                let mut flags = 0u8;
                if router {
                    flags |= ND_NA_FLAG_ROUTER;
                }
                if solicited {
                    flags |= ND_NA_FLAG_SOLICITED;
                }
                if override_flag {
                    flags |= ND_NA_FLAG_OVERRIDE;
                }
                icmp.push(ND_NEIGHBOR_ADVERT); // type
                icmp.push(0); // code
                icmp.extend_from_slice(&[0, 0]); // checksum, filled below
                icmp.extend_from_slice(&[flags, 0, 0, 0]); // R|S|O + reserved
                (target, target_ll.map(|m| (ND_OPT_TARGET_LINKADDR, m)))
            }
        };
        icmp.extend_from_slice(&target.octets()); // target address
        if let Some((kind, mac)) = opt {
            icmp.push(kind); // option type
            icmp.push(1); // option length: 1 unit of 8 octets
            icmp.extend_from_slice(&mac.0); // link-layer address
        }
        let sum = icmpv6_checksum(&self.header.src, &self.header.dst, &icmp);
        if let Some(c) = icmp.get_mut(2..4) {
            c.copy_from_slice(&sum.to_be_bytes());
        }
        out.push(0x60); // version 6, traffic class high nibble 0
        out.extend_from_slice(&[0, 0, 0]); // traffic class low nibble, flow label 0
        out.extend_from_slice(&(icmp.len() as u16).to_be_bytes()); // payload length
        out.push(IPPROTO_ICMPV6); // next header
        out.push(self.header.hop_limit); // hop limit
        out.extend_from_slice(&self.header.src.octets()); // source
        out.extend_from_slice(&self.header.dst.octets()); // destination
        out.extend_from_slice(&icmp);
    }
}

fn decode_icmp(icmp: &[u8], src: &Ipv6Addr, dst: &Ipv6Addr) -> Result<NdiscMessage, DecodeError> {
    const L: &str = "icmpv6";
    let [kind, code] = take::<2>(icmp, 0, L)?;
    if kind != ND_NEIGHBOR_SOLICIT && kind != ND_NEIGHBOR_ADVERT {
        return Err(DecodeError::Unsupported {
            layer: L,
            field: "type",
            value: kind.into(),
        });
    }
    if code != 0 {
        return Err(DecodeError::Unsupported {
            layer: L,
            field: "code",
            value: code.into(),
        });
    }
    let [flags, ..] = take::<4>(icmp, 4, L)?;
    let target = Ipv6Addr::from(take::<16>(icmp, 8, L)?);
    let found = be16(icmp, 2, L)?;
    if icmpv6_checksum(src, dst, icmp) != 0 {
        let mut zeroed = icmp.to_vec();
        if let Some(c) = zeroed.get_mut(2..4) {
            c.copy_from_slice(&[0, 0]);
        }
        return Err(DecodeError::BadChecksum {
            found,
            expected: icmpv6_checksum(src, dst, &zeroed),
        });
    }
    let mut source_ll = None;
    let mut target_ll = None;
    let mut at = ND_BODY_LEN;
    while at < icmp.len() {
        let [okind, olen] = take::<2>(icmp, at, "ndisc option")?;
        let bytes = usize::from(olen) * 8;
        let body =
            icmp.get(at..at + bytes)
                .filter(|_| olen != 0)
                .ok_or(DecodeError::BadOption {
                    kind: okind,
                    len: olen,
                })?;
        // A link-layer option for Ethernet is 1 unit: type, length, 6-byte MAC (RFC 2464 §6).
        let mac = body.get(2..8).and_then(MacAddr::from_slice);
        match okind {
            ND_OPT_SOURCE_LINKADDR => source_ll = mac,
            ND_OPT_TARGET_LINKADDR => target_ll = mac,
            _ => {}
        }
        at += bytes;
    }
    Ok(if kind == ND_NEIGHBOR_SOLICIT {
        NdiscMessage::Solicit { target, source_ll }
    } else {
        NdiscMessage::Advert {
            router: flags & ND_NA_FLAG_ROUTER != 0,
            solicited: flags & ND_NA_FLAG_SOLICITED != 0,
            override_flag: flags & ND_NA_FLAG_OVERRIDE != 0,
            target,
            target_ll,
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const MAC: MacAddr = MacAddr([0x02, 0, 0, 0, 0, 0x01]);

    /// Unsolicited NA for fd00::10 from 02:00:00:00:00:01 to ff02::1, O flag, target LL option;
    /// bytes laid out by hand from RFC 4861 §4.4, checksum computed independently
    /// (sum of pseudo-header + message words, one's complement) = 0x5a7d (Python `struct` sum).
    const NA: [u8; 72] = [
        0x60, 0, 0, 0, // version 6, tc 0, flow 0
        0, 32, 58, 255, // payload length 32, next header ICMPv6, hop limit 255
        0xfd, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x10, // src fd00::10
        0xff, 2, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, // dst ff02::1
        136, 0, 0x5a, 0x7d, // NA, code 0, checksum
        0x20, 0, 0, 0, // O flag
        0xfd, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x10, // target fd00::10
        2, 1, 0x02, 0, 0, 0, 0, 0x01, // target LL option
    ];

    #[test]
    fn na_vector() {
        let addr: Ipv6Addr = "fd00::10".parse().expect("literal");
        let mut v = Vec::new();
        NdiscPacket::unsolicited_advert(MAC, addr).encode(&mut v);
        assert_eq!(v, NA);
        assert_eq!(
            NdiscPacket::decode(&NA),
            Ok(NdiscPacket::unsolicited_advert(MAC, addr))
        );
    }

    #[test]
    fn ns_roundtrip_and_errors() {
        let addr: Ipv6Addr = "fd00::10".parse().expect("literal");
        let p = NdiscPacket::dad_solicit(addr);
        assert_eq!(
            p.header.dst,
            "ff02::1:ff00:10".parse::<Ipv6Addr>().expect("literal")
        );
        let mut v = Vec::new();
        p.encode(&mut v);
        assert_eq!(NdiscPacket::decode(&v), Ok(p));
        for n in 0..v.len() {
            assert!(NdiscPacket::decode(&v[..n]).is_err(), "prefix {n}");
        }
        let mut bad = v.clone();
        bad[60] ^= 1;
        assert!(matches!(
            NdiscPacket::decode(&bad),
            Err(DecodeError::BadChecksum { .. })
        ));
        let mut bad = NA;
        bad[65] = 0; // option length 0
        bad[42] = 0; // checksum, recomputed below
        bad[43] = 0;
        let sum = icmpv6_checksum(
            &"fd00::10".parse().expect("literal"),
            &"ff02::1".parse().expect("literal"),
            &bad[40..],
        );
        bad[42..44].copy_from_slice(&sum.to_be_bytes());
        assert_eq!(
            NdiscPacket::decode(&bad),
            Err(DecodeError::BadOption { kind: 2, len: 0 })
        );
    }
}
