//! ARP for IPv4 over Ethernet (RFC 826), as used by gratuitous ARP (RFC 5227 §3) and
//! address conflict probes (RFC 5227 §2.1.1).

use std::net::Ipv4Addr;

use super::{be16, take, DecodeError, MacAddr};

/// Length of an Ethernet/IPv4 ARP packet.
pub const ARP_LEN: usize = 28;

const ARPHRD_ETHER: u16 = 1;
const ETH_P_IP: u16 = 0x0800;
const ARPOP_REQUEST: u16 = 1;
const ARPOP_REPLY: u16 = 2;

/// ARP operation code (`ar_op`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ArpOp {
    /// `ARPOP_REQUEST` (1).
    Request,
    /// `ARPOP_REPLY` (2).
    Reply,
    /// Any other code (RARP, InARP, ...), kept as read.
    Other(u16),
}

impl From<u16> for ArpOp {
    fn from(v: u16) -> Self {
        match v {
            ARPOP_REQUEST => ArpOp::Request,
            ARPOP_REPLY => ArpOp::Reply,
            o => ArpOp::Other(o),
        }
    }
}

impl From<ArpOp> for u16 {
    fn from(v: ArpOp) -> u16 {
        match v {
            ArpOp::Request => ARPOP_REQUEST,
            ArpOp::Reply => ARPOP_REPLY,
            ArpOp::Other(o) => o,
        }
    }
}

/// An ARP packet for IPv4 over Ethernet (hardware type 1, protocol type 0x0800, lengths 6 and 4).
///
/// ```text
///  0                   1                   2                   3
///  0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
/// +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
/// |      Hardware Type (1)        |     Protocol Type (0x0800)    |
/// +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
/// |  HLEN (6)     |  PLEN (4)     |          Operation            |
/// +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
/// |                Sender Hardware Address (6 octets)             |
/// +                               +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
/// |                               | Sender Protocol Address (4)   |
/// +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+                               +
/// |                               |                               |
/// +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+                               +
/// |                Target Hardware Address (6 octets)             |
/// +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
/// |                Target Protocol Address (4 octets)             |
/// +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ArpPacket {
    /// `ar_op`.
    pub op: ArpOp,
    /// `ar_sha`.
    pub sender_mac: MacAddr,
    /// `ar_spa` (0.0.0.0 in an RFC 5227 probe).
    pub sender_ip: Ipv4Addr,
    /// `ar_tha`.
    pub target_mac: MacAddr,
    /// `ar_tpa`.
    pub target_ip: Ipv4Addr,
}

impl ArpPacket {
    /// Gratuitous ARP request: sender = target = `ip`, target MAC zero (RFC 5227 §3, what
    /// `arping -U` and IPaddr2's `send_arp` send).
    pub fn gratuitous_request(mac: MacAddr, ip: Ipv4Addr) -> Self {
        ArpPacket {
            op: ArpOp::Request,
            sender_mac: mac,
            sender_ip: ip,
            target_mac: MacAddr::ZERO,
            target_ip: ip,
        }
    }

    /// Gratuitous ARP reply: sender = target, and target MAC = sender MAC, which is what Linux
    /// requires to treat a reply as gratuitous (`arp_is_garp()` in `net/ipv4/arp.c`).
    pub fn gratuitous_reply(mac: MacAddr, ip: Ipv4Addr) -> Self {
        ArpPacket {
            op: ArpOp::Reply,
            sender_mac: mac,
            sender_ip: ip,
            target_mac: mac,
            target_ip: ip,
        }
    }

    /// RFC 5227 §2.1.1 probe: sender IP 0.0.0.0, target MAC zero, target IP = the candidate.
    pub fn probe(mac: MacAddr, ip: Ipv4Addr) -> Self {
        ArpPacket {
            op: ArpOp::Request,
            sender_mac: mac,
            sender_ip: Ipv4Addr::UNSPECIFIED,
            target_mac: MacAddr::ZERO,
            target_ip: ip,
        }
    }

    /// Decodes the ARP payload of an Ethernet frame. Only Ethernet/IPv4 ARP is accepted.
    ///
    /// # Errors
    /// [`DecodeError`] when `buf` is shorter than 28 bytes or is not Ethernet/IPv4 ARP.
    pub fn decode(buf: &[u8]) -> Result<Self, DecodeError> {
        const L: &str = "arp";
        let htype = be16(buf, 0, L)?;
        let ptype = be16(buf, 2, L)?;
        let [hlen, plen] = take::<2>(buf, 4, L)?;
        if htype != ARPHRD_ETHER {
            return Err(DecodeError::Unsupported {
                layer: L,
                field: "hardware type",
                value: htype.into(),
            });
        }
        if ptype != ETH_P_IP {
            return Err(DecodeError::Unsupported {
                layer: L,
                field: "protocol type",
                value: ptype.into(),
            });
        }
        if hlen != 6 || plen != 4 {
            return Err(DecodeError::Unsupported {
                layer: L,
                field: "address lengths",
                value: u32::from(hlen) << 8 | u32::from(plen),
            });
        }
        Ok(ArpPacket {
            op: be16(buf, 6, L)?.into(),
            sender_mac: MacAddr(take::<6>(buf, 8, L)?),
            sender_ip: Ipv4Addr::from(take::<4>(buf, 14, L)?),
            target_mac: MacAddr(take::<6>(buf, 18, L)?),
            target_ip: Ipv4Addr::from(take::<4>(buf, 24, L)?),
        })
    }

    /// Appends the 28 encoded bytes to `out`.
    pub fn encode(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&ARPHRD_ETHER.to_be_bytes()); // hardware type: Ethernet
        out.extend_from_slice(&ETH_P_IP.to_be_bytes()); // protocol type: IPv4
        out.push(6); // hardware address length
        out.push(4); // protocol address length
        out.extend_from_slice(&u16::from(self.op).to_be_bytes()); // operation
        out.extend_from_slice(&self.sender_mac.0); // sender hardware address
        out.extend_from_slice(&self.sender_ip.octets()); // sender protocol address
        out.extend_from_slice(&self.target_mac.0); // target hardware address
        out.extend_from_slice(&self.target_ip.octets()); // target protocol address
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A gratuitous ARP request for 10.0.0.1 from 02:00:00:00:00:01, the ARP part of the frame
    /// that Debian 12's `arping -U -c 1 -i IF -S 10.0.0.1 10.0.0.1` sends (field by field as
    /// in RFC 826; arping puts ff:ff:ff:ff:ff:ff in the target hardware address).
    const GARP: [u8; 28] = [
        0x00, 0x01, // htype Ethernet
        0x08, 0x00, // ptype IPv4
        6, 4, // hlen, plen
        0x00, 0x01, // request
        2, 0, 0, 0, 0, 1, // sha
        10, 0, 0, 1, // spa
        0xff, 0xff, 0xff, 0xff, 0xff, 0xff, // tha
        10, 0, 0, 1, // tpa
    ];

    #[test]
    fn decode_and_reencode() {
        let p = ArpPacket::decode(&GARP).expect("valid");
        assert_eq!(p.op, ArpOp::Request);
        assert_eq!(p.sender_ip, Ipv4Addr::new(10, 0, 0, 1));
        assert_eq!(p.target_mac, MacAddr::BROADCAST);
        let mut v = Vec::new();
        p.encode(&mut v);
        assert_eq!(v, GARP);
    }

    #[test]
    fn rejects_short_and_foreign() {
        for n in 0..ARP_LEN {
            assert!(ArpPacket::decode(&GARP[..n]).is_err());
        }
        let mut bad = GARP;
        bad[1] = 6; // IEEE 802 hardware type
        assert!(matches!(
            ArpPacket::decode(&bad),
            Err(DecodeError::Unsupported {
                field: "hardware type",
                ..
            })
        ));
        let mut bad = GARP;
        bad[4] = 8;
        assert!(ArpPacket::decode(&bad).is_err());
    }

    #[test]
    fn builders() {
        let mac = MacAddr([2, 0, 0, 0, 0, 1]);
        let ip = Ipv4Addr::new(10, 0, 0, 1);
        let r = ArpPacket::gratuitous_reply(mac, ip);
        assert_eq!((r.op, r.target_mac), (ArpOp::Reply, mac));
        let p = ArpPacket::probe(mac, ip);
        assert_eq!(p.sender_ip, Ipv4Addr::UNSPECIFIED);
        for op in [ArpOp::Request, ArpOp::Reply, ArpOp::Other(3)] {
            assert_eq!(ArpOp::from(u16::from(op)), op);
        }
    }
}
