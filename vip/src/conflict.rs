//! Ongoing address conflict detection while the address is held: RFC 5227 §2.4 for IPv4, the
//! same idea for IPv6 neighbour advertisements (RFC 4862 §5.4.4, case 2).
//!
//! The receive socket carries a classic BPF program (socket(7) `SO_ATTACH_FILTER`, attached
//! before the socket is bound, so nothing unfiltered is ever queued): only frames that could
//! be a conflict wake the process. The same verdict is taken again in userspace on the decoded
//! frame ([`Conflict::from_frame`]); the filter is an optimisation, never the judge.
//!
//! Only frames the kernel's own ARP / IPv6 input takes count: packet types `PACKET_HOST`,
//! `PACKET_BROADCAST` and `PACKET_MULTICAST` (packet(7); `net/ipv4/arp.c` `arp_rcv` drops
//! `PACKET_OTHERHOST` and `PACKET_LOOPBACK`, `ipv6_rcv` `PACKET_OTHERHOST`): a frame of a
//! VLAN this host has no device for, or another host's unicast seen in promiscuous mode, is
//! not ours to judge. A socket bound to one protocol never sees the frames this host sends
//! (those go to `ETH_P_ALL` taps only); frames of this host arriving on this interface (from
//! another of its interfaces on the same network, "ARP flux" with `arp_announce=0`) are
//! excluded by MAC: every link's MAC (and a bond slave's permanent one) counts as ours.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::time::Duration;

use tokio::time::Instant;

use futures::TryStreamExt;
use netlink_packet_route::link::LinkAttribute;

use crate::error::VipError;
use crate::packet::{
    ArpOp, ArpPacket, EthernetFrame, MacAddr, NdiscMessage, NdiscPacket, ETHERTYPE_ARP,
    ETHERTYPE_IPV6,
};
use crate::probe::probe_frame;
use crate::socket::{PacketSocket, Receiver};

/// RFC 5227 §1.1 `DEFEND_INTERVAL`: at most one defensive announcement per 10 s (§2.4 (b),
/// (c)), so two hosts that both defend do not flood the link.
pub const DEFEND_INTERVAL: Duration = Duration::from_secs(10);

/// What kind of frame showed the conflict.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ConflictKind {
    /// An ARP packet whose sender IP is our address (RFC 5227 §2.4): request (a gratuitous
    /// ARP or an ordinary query from the other holder) or reply.
    Arp(ArpOp),
    /// A neighbour advertisement (solicited or not) whose target is our address (RFC 4862
    /// §5.4.4, case 2: "it would possibly indicate that the address is a duplicate").
    NeighborAdvert {
        /// S flag: an answer to a solicitation.
        solicited: bool,
        /// O flag: meant to override neighbours' cache entries.
        override_flag: bool,
    },
}

/// Another host using the held address: one conflicting frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct Conflict {
    /// The other host's hardware address: ARP sender hardware address, or the NA's target
    /// link-layer address option (its Ethernet source without one).
    pub mac: MacAddr,
    /// The frame.
    pub kind: ConflictKind,
    /// When it was read from the socket.
    pub at: Instant,
}

impl Conflict {
    /// Judges one received Ethernet frame (as an `AF_PACKET`/`SOCK_RAW` socket gives it) for
    /// `addr`, held by an interface whose MAC is `ours`: `Some` when it shows another host using
    /// the address, `None` for anything else, including undecodable bytes.
    ///
    /// IPv4 (RFC 5227 §2.4): an ARP request or reply whose sender IP is `addr` and whose sender
    /// hardware address is not `ours`. An ARP probe (sender IP 0.0.0.0, §2.1.1) is not a
    /// conflict: the kernel answers it, and the prober backs off. IPv6: a neighbour
    /// advertisement with hop limit 255 (RFC 4861 §7.1.2) whose target is `addr`, from a
    /// link-layer address that is not `ours`. The packet type (packet(7) `sll_pkttype`) and
    /// this host's other MACs are not judged here: [`ConflictWatch`] checks both. `at` is
    /// stored as [`Conflict::at`] (a `std::time::Instant` converts).
    pub fn from_frame(
        frame: &[u8],
        ours: MacAddr,
        addr: IpAddr,
        at: impl Into<Instant>,
    ) -> Option<Conflict> {
        let at = at.into();
        let eth = EthernetFrame::decode(frame).ok()?;
        let (mac, kind) = match addr {
            IpAddr::V4(ip) => arp_conflict(&eth, ours, ip)?,
            IpAddr::V6(ip) => na_conflict(&eth, ours, ip)?,
        };
        Some(Conflict { mac, kind, at })
    }
}

fn arp_conflict(
    eth: &EthernetFrame<'_>,
    ours: MacAddr,
    ip: Ipv4Addr,
) -> Option<(MacAddr, ConflictKind)> {
    if eth.ethertype != ETHERTYPE_ARP || eth.src == ours {
        return None;
    }
    let arp = ArpPacket::decode(eth.payload).ok()?;
    if arp.sender_ip != ip || arp.sender_mac == ours {
        return None;
    }
    Some((arp.sender_mac, ConflictKind::Arp(arp.op)))
}

fn na_conflict(
    eth: &EthernetFrame<'_>,
    ours: MacAddr,
    ip: Ipv6Addr,
) -> Option<(MacAddr, ConflictKind)> {
    if eth.ethertype != ETHERTYPE_IPV6 || eth.src == ours {
        return None;
    }
    let p = NdiscPacket::decode(eth.payload).ok()?;
    if p.header.hop_limit != 255 {
        return None; // RFC 4861 §7.1.2: not from the link
    }
    match p.message {
        NdiscMessage::Advert {
            target,
            target_ll,
            solicited,
            override_flag,
            ..
        } if target == ip => {
            let mac = target_ll.unwrap_or(eth.src);
            (mac != ours).then_some((
                mac,
                ConflictKind::NeighborAdvert {
                    solicited,
                    override_flag,
                },
            ))
        }
        _ => None,
    }
}

/// RFC 5227 §2.4 (c), "defend indefinitely": answer every conflict with one announcement, but
/// at most one per [`DEFEND_INTERVAL`]. A pure clock, no I/O; pair it with
/// [`crate::Vip::defend`].
///
/// ```
/// # use vip::{Defender, DEFEND_INTERVAL};
/// let t = tokio::time::Instant::now();
/// let mut d = Defender::default();
/// assert!(d.should_defend(t));
/// assert!(!d.should_defend(t + DEFEND_INTERVAL / 2));
/// assert!(d.should_defend(t + DEFEND_INTERVAL));
/// ```
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Defender {
    last: Option<Instant>,
}

impl Defender {
    /// Whether a conflict seen at `now` gets a defensive announcement; if so, `now` is recorded
    /// as the last defence.
    pub fn should_defend(&mut self, now: Instant) -> bool {
        let due = self
            .last
            .is_none_or(|t| now.saturating_duration_since(t) >= DEFEND_INTERVAL);
        if due {
            self.last = Some(now);
        }
        due
    }

    /// When the last defence was decided, if any.
    pub fn last(&self) -> Option<Instant> {
        self.last
    }
}

/// Classic BPF (`<linux/filter.h>`) for the receive socket.
mod bpf {
    use libc::sock_filter;

    const LD_W_ABS: u16 = (libc::BPF_LD | libc::BPF_W | libc::BPF_ABS) as u16;
    const LD_H_ABS: u16 = (libc::BPF_LD | libc::BPF_H | libc::BPF_ABS) as u16;
    const LD_B_ABS: u16 = (libc::BPF_LD | libc::BPF_B | libc::BPF_ABS) as u16;
    const JEQ_K: u16 = (libc::BPF_JMP | libc::BPF_JEQ | libc::BPF_K) as u16;
    const JGT_K: u16 = (libc::BPF_JMP | libc::BPF_JGT | libc::BPF_K) as u16;
    const RET_K: u16 = (libc::BPF_RET | libc::BPF_K) as u16;
    /// `SKF_AD_OFF + SKF_AD_PKTTYPE`: the ancillary load of `skb->pkt_type`.
    const PKTTYPE: u32 = (libc::SKF_AD_OFF + libc::SKF_AD_PKTTYPE) as u32;

    /// A load of the accumulator: its opcode and offset (from the Ethernet header).
    #[derive(Clone, Copy)]
    pub(super) enum Load {
        Word(u32),
        Half(u32),
        Byte(u32),
        PktType,
    }

    /// What the loaded value must be.
    #[derive(Clone, Copy)]
    pub(super) enum Is {
        Equal(u32),
        AtMost(u32),
    }

    /// Accept (whole frame) when every `(load, is)` holds, else drop: one load and one jump
    /// per check, each failed check jumping to the final `ret #0`.
    pub(super) fn all(checks: &[(Load, Is)]) -> Vec<sock_filter> {
        let n = checks.len();
        let mut prog = Vec::with_capacity(2 * n + 2);
        for (i, &(load, is)) in checks.iter().enumerate() {
            let (code, off) = match load {
                Load::Word(o) => (LD_W_ABS, o),
                Load::Half(o) => (LD_H_ABS, o),
                Load::Byte(o) => (LD_B_ABS, o),
                Load::PktType => (LD_W_ABS, PKTTYPE),
            };
            prog.push(sock_filter {
                code,
                jt: 0,
                jf: 0,
                k: off,
            });
            // From the instruction after this jump to the `ret #0` (the last one).
            let to_drop = u8::try_from(2 * (n - i - 1) + 1).unwrap_or(u8::MAX);
            let (code, jt, jf, k) = match is {
                Is::Equal(k) => (JEQ_K, 0, to_drop, k),
                Is::AtMost(k) => (JGT_K, to_drop, 0, k),
            };
            prog.push(sock_filter { code, jt, jf, k });
        }
        prog.push(sock_filter {
            code: RET_K,
            jt: 0,
            jf: 0,
            k: u32::MAX,
        });
        prog.push(sock_filter {
            code: RET_K,
            jt: 0,
            jf: 0,
            k: 0,
        });
        prog
    }
}

/// Whether a frame of this packet type (packet(7) `sll_pkttype`) reaches the kernel's ARP /
/// IPv6 input: `PACKET_HOST`, `PACKET_BROADCAST` or `PACKET_MULTICAST` (`net/ipv4/arp.c`
/// `arp_rcv` drops `PACKET_OTHERHOST` and `PACKET_LOOPBACK`, `net/ipv6/ip6_input.c`
/// `ipv6_rcv` `PACKET_OTHERHOST`).
fn taken_by_kernel(pkttype: u8) -> bool {
    pkttype <= libc::PACKET_MULTICAST
}

/// The kernel-side filter for `addr`: packet type `PACKET_HOST`, `PACKET_BROADCAST` or
/// `PACKET_MULTICAST` (0-2, [`taken_by_kernel`]), and for IPv4 an ARP packet whose sender IP
/// (offset 14 + 14) is `addr`; for IPv6 an ICMPv6 (next header 58, no extension header)
/// neighbour advertisement (type 136) with hop limit 255 whose target (offset 14 + 40 + 8) is
/// `addr`. A superset of what [`Conflict::from_frame`] accepts.
fn filter(addr: IpAddr) -> Vec<libc::sock_filter> {
    use bpf::Is::{AtMost, Equal};
    use bpf::Load::{Byte, Half, PktType, Word};
    let mut checks = vec![(PktType, AtMost(u32::from(libc::PACKET_MULTICAST)))];
    match addr {
        IpAddr::V4(ip) => {
            checks.push((Half(12), Equal(u32::from(ETHERTYPE_ARP))));
            checks.push((Word(28), Equal(u32::from(ip))));
        }
        IpAddr::V6(ip) => {
            checks.push((Half(12), Equal(u32::from(ETHERTYPE_IPV6))));
            checks.push((Byte(14 + 6), Equal(58)));
            checks.push((Byte(14 + 7), Equal(255)));
            checks.push((Byte(14 + 40), Equal(136)));
            let o = ip.octets();
            for (i, w) in o.chunks_exact(4).enumerate() {
                let w = u32::from_be_bytes([w[0], w[1], w[2], w[3]]);
                checks.push((Word(14 + 40 + 8 + 4 * i as u32), Equal(w)));
            }
        }
    }
    bpf::all(&checks)
}

/// How often this host's MACs are read again at most: a frame naming a MAC not (yet) known
/// as ours costs one link dump per this period, not one per frame (an ARP flood stays cheap).
pub const LOCAL_MACS_MAX_AGE: Duration = Duration::from_secs(1);

/// Watches a held address for other hosts using it ([`crate::Vip::conflict_watch`]): each
/// [`ConflictWatch::next`] returns the next conflicting frame. It does not look at whether the
/// address is held; run it while it is. Nothing is sent unless asked: defending is the
/// caller's decision ([`Defender`], [`crate::Vip::defend`]), and so is checking actively
/// whether the other host still holds the address ([`ConflictWatch::probe`]). Dropping it
/// closes the socket (off the caller's path: a packet socket with a protocol hook takes
/// milliseconds to close).
#[derive(Debug)]
pub struct ConflictWatch {
    rx: Receiver,
    /// For [`ConflictWatch::probe`], opened on its first call.
    tx: Option<PacketSocket>,
    handle: rtnetlink::Handle,
    conn: tokio::task::JoinHandle<()>,
    ifindex: u32,
    iface: String,
    addr: IpAddr,
    mac: MacAddr,
    /// Every link's MAC (and permanent MAC) on this host, as last read, and when.
    local: Vec<MacAddr>,
    local_read: Option<Instant>,
    checked: u64,
    /// A conflicting frame (and its Ethernet source) being checked against this host's MACs
    /// (see `next`).
    pending: Option<(Conflict, MacAddr)>,
    buf: Vec<u8>,
}

impl Drop for ConflictWatch {
    fn drop(&mut self) {
        // `rx` closes off the runtime (`Receiver`).
        self.conn.abort();
    }
}

impl ConflictWatch {
    /// Opens the filtered receive socket on `ifindex` (MAC `mac`).
    pub(crate) fn new(
        ifindex: u32,
        iface: &str,
        addr: IpAddr,
        mac: MacAddr,
    ) -> Result<ConflictWatch, VipError> {
        let ethertype = if addr.is_ipv4() {
            ETHERTYPE_ARP
        } else {
            ETHERTYPE_IPV6
        };
        let rx = PacketSocket::filtered_receiver(ifindex, ethertype, &filter(addr))
            .map(Receiver::new)
            .map_err(|e| VipError::io("open conflict watch socket", iface, e))?;
        // Its own netlink connection: this host's MACs are re-read when a frame carries an
        // unknown one, also after the Vip that made the watch is gone.
        let (conn, handle, _) =
            rtnetlink::new_connection().map_err(|e| VipError::io("netlink socket", iface, e))?;
        Ok(ConflictWatch {
            rx,
            tx: None,
            handle,
            conn: tokio::spawn(conn),
            ifindex,
            iface: iface.to_string(),
            addr,
            mac,
            local: vec![mac],
            local_read: None,
            checked: 0,
            pending: None,
            buf: vec![0u8; 2048],
        })
    }

    /// The address watched.
    pub fn addr(&self) -> IpAddr {
        self.addr
    }

    /// The interface's MAC as last read (frames from it are ours).
    pub fn mac(&self) -> MacAddr {
        self.mac
    }

    /// This host's MACs as last read: every link's address and, where the kernel reports one,
    /// its permanent address (`IFLA_PERM_ADDRESS`, a bond slave's own MAC). Frames naming
    /// one are never a conflict.
    pub fn local_macs(&self) -> &[MacAddr] {
        &self.local
    }

    /// Frames the kernel filter let through to this watch since it was opened: each one woke
    /// the process. ARP for other addresses and frames the kernel's ARP / IPv6 input would
    /// not take (other VLANs, other hosts' unicast) never count.
    pub fn frames_checked(&self) -> u64 {
        self.checked
    }

    /// Waits for the next conflicting frame. A frame naming a MAC not known as this host's
    /// costs a netlink dump of the links, at most one per [`LOCAL_MACS_MAX_AGE`] (a MAC may
    /// have changed: a bond's active slave, `ip link set address`). Cancel-safe: a frame
    /// received but not yet returned is judged again on the next call.
    ///
    /// # Errors
    /// [`VipError::InterfaceDown`] when the interface went down (the socket reports
    /// `ENETDOWN` once; packet(7) sockets get their hook back when it comes up, but make a new
    /// watch to be sure), [`VipError::UnknownInterface`] once it is gone, [`VipError::Io`]
    /// for other receive errors.
    pub async fn next(&mut self) -> Result<Conflict, VipError> {
        loop {
            if self.pending.is_none() {
                let (n, pkttype) =
                    self.rx.recv(&mut self.buf).await.map_err(|e| {
                        VipError::io("receive conflict watch frame", &self.iface, e)
                    })?;
                self.checked += 1;
                if !taken_by_kernel(pkttype) {
                    continue;
                }
                let frame = self.buf.get(..n).unwrap_or_default();
                let src = frame
                    .get(6..12)
                    .and_then(MacAddr::from_slice)
                    .unwrap_or(MacAddr::ZERO);
                self.pending = Conflict::from_frame(frame, self.mac, self.addr, Instant::now())
                    .map(|c| (c, src));
            }
            let Some((c, src)) = self.pending else {
                continue;
            };
            let known = |local: &[MacAddr]| local.contains(&c.mac) || local.contains(&src);
            if !known(&self.local)
                && self
                    .local_read
                    .is_none_or(|t| t.elapsed() >= LOCAL_MACS_MAX_AGE)
            {
                self.read_local().await;
            }
            self.pending = None;
            if !known(&self.local) {
                return Ok(c);
            }
        }
    }

    /// Reads every link's MAC again (one `RTM_GETLINK` dump); on a netlink error the old set
    /// stays (and is tried again after [`LOCAL_MACS_MAX_AGE`]).
    async fn read_local(&mut self) {
        self.local_read = Some(Instant::now());
        let mut s = self.handle.link().get().execute();
        let mut local = Vec::new();
        loop {
            match s.try_next().await {
                Ok(Some(m)) => {
                    for a in &m.attributes {
                        if let LinkAttribute::Address(b) | LinkAttribute::PermAddress(b) = a {
                            match MacAddr::from_slice(b) {
                                Some(mac) if mac != MacAddr::ZERO => {
                                    if m.header.index == self.ifindex
                                        && matches!(a, LinkAttribute::Address(_))
                                    {
                                        self.mac = mac;
                                    }
                                    local.push(mac);
                                }
                                _ => {}
                            }
                        }
                    }
                }
                Ok(None) => break,
                Err(_) => return,
            }
        }
        local.sort_unstable_by_key(|m| m.0);
        local.dedup();
        self.local = local;
    }

    /// Sends one probe for the address from the interface's MAC: an RFC 5227 §2.1.1 ARP
    /// probe (sender IP 0.0.0.0, target IP the address; broadcast), for IPv6 a duplicate
    /// address detection NS from `::` (RFC 4862 §5.4.2; to the solicited-node group). A host
    /// holding the address answers it (Linux `arp_process`: an ARP reply with the address as
    /// sender IP, unicast to us; `ndisc_recv_ns`: an NA for it to all-nodes), even one that
    /// sends nothing by itself, and that answer is a conflict for [`ConflictWatch::next`].
    /// Gratuitous ARP from the holder draws no such answer: Linux ignores ARP whose sender IP
    /// is one of its own addresses. The same frame as [`crate::Vip::probe`] sends.
    ///
    /// # Errors
    /// [`VipError::InterfaceDown`] / [`VipError::UnknownInterface`] when the interface is
    /// down or gone, [`VipError::PermissionDenied`] without `CAP_NET_RAW`, [`VipError::Io`]
    /// for other send errors.
    pub async fn probe(&mut self) -> Result<(), VipError> {
        let tx = match &self.tx {
            Some(tx) => tx,
            None => {
                let tx = PacketSocket::sender(self.ifindex)
                    .map_err(|e| VipError::io("open probe socket", &self.iface, e))?;
                self.tx.insert(tx)
            }
        };
        // The MAC as it is now (a bond's failover, `ip link set address`): a probe from a
        // stale one draws an answer sent to it, never seen here.
        if let Ok(link) = crate::address::link_by_index(&self.handle, self.ifindex).await {
            if let Some(mac) = link.mac {
                self.mac = mac;
            }
        }
        let (dst, ethertype, frame) = probe_frame(self.mac, self.addr);
        tx.send(&frame, dst, ethertype)
            .await
            .map_err(|e| VipError::io("send conflict probe", &self.iface, e))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::packet::NdiscPacket;

    const OURS: MacAddr = MacAddr([2, 0, 0, 0, 0, 1]);
    const THEIRS: MacAddr = MacAddr([2, 0, 0, 0, 0, 2]);

    fn eth(src: MacAddr, ethertype: u16, payload: &[u8]) -> Vec<u8> {
        let mut f = Vec::new();
        EthernetFrame {
            dst: MacAddr::BROADCAST,
            src,
            ethertype,
            payload,
        }
        .encode(&mut f);
        f
    }

    fn arp(src: MacAddr, p: ArpPacket) -> Vec<u8> {
        let mut payload = Vec::new();
        p.encode(&mut payload);
        eth(src, ETHERTYPE_ARP, &payload)
    }

    /// A tiny classic BPF interpreter for the instructions [`filter`] uses (absolute loads,
    /// `jeq #k`, `ret #k`), so the program is checked against the userspace verdict.
    fn run_bpf(prog: &[libc::sock_filter], frame: &[u8], pkttype: u8) -> bool {
        let mut a: u32 = 0;
        let mut pc = 0usize;
        let load = |off: u32, n: usize| -> Option<u32> {
            let o = off as usize;
            let b = frame.get(o..o + n)?;
            Some(b.iter().fold(0u32, |acc, x| acc << 8 | u32::from(*x)))
        };
        loop {
            let i = prog[pc];
            pc += 1;
            match i.code {
                0x20 if i.k == (libc::SKF_AD_OFF + libc::SKF_AD_PKTTYPE) as u32 => {
                    a = u32::from(pkttype)
                }
                0x20 => match load(i.k, 4) {
                    Some(v) => a = v,
                    None => return false,
                },
                0x28 => match load(i.k, 2) {
                    Some(v) => a = v,
                    None => return false,
                },
                0x30 => match load(i.k, 1) {
                    Some(v) => a = v,
                    None => return false,
                },
                0x15 => pc += usize::from(if a == i.k { i.jt } else { i.jf }),
                0x25 => pc += usize::from(if a > i.k { i.jt } else { i.jf }),
                0x06 => return i.k != 0,
                c => panic!("unexpected opcode {c:#x}"),
            }
        }
    }

    #[test]
    fn v4_verdicts_and_filter_agree() {
        let ip = Ipv4Addr::new(10, 0, 0, 7);
        let addr = IpAddr::V4(ip);
        let t = Instant::now();
        let prog = filter(addr);
        let garp = arp(THEIRS, ArpPacket::gratuitous_request(THEIRS, ip));
        let reply = arp(THEIRS, ArpPacket::gratuitous_reply(THEIRS, ip));
        let probe = arp(THEIRS, ArpPacket::probe(THEIRS, ip));
        let own = arp(OURS, ArpPacket::gratuitous_request(OURS, ip));
        let other_ip = arp(
            THEIRS,
            ArpPacket::gratuitous_request(THEIRS, Ipv4Addr::new(10, 0, 0, 8)),
        );
        // Ethernet source ours, ARP sender theirs (a proxy): still not a frame from another host.
        let mixed = arp(OURS, ArpPacket::gratuitous_request(THEIRS, ip));
        let c = Conflict::from_frame(&garp, OURS, addr, t).expect("conflict");
        assert_eq!((c.mac, c.kind), (THEIRS, ConflictKind::Arp(ArpOp::Request)));
        let c = Conflict::from_frame(&reply, OURS, addr, t).expect("conflict");
        assert_eq!(c.kind, ConflictKind::Arp(ArpOp::Reply));
        for f in [&probe, &own, &other_ip, &mixed] {
            assert_eq!(Conflict::from_frame(f, OURS, addr, t), None);
        }
        assert_eq!(Conflict::from_frame(&[1, 2, 3], OURS, addr, t), None);
        // The filter lets through what userspace accepts and drops the probe, other addresses
        // and frames the kernel's ARP input would not take (other hosts' unicast, other
        // VLANs: PACKET_OTHERHOST; PACKET_OUTGOING, PACKET_LOOPBACK).
        assert!(run_bpf(&prog, &garp, 0) && run_bpf(&prog, &reply, 1) && run_bpf(&prog, &garp, 2));
        for t in [
            libc::PACKET_OTHERHOST,
            libc::PACKET_OUTGOING,
            libc::PACKET_LOOPBACK,
        ] {
            assert!(!run_bpf(&prog, &garp, t) && !taken_by_kernel(t));
        }
        assert!((0..=2).all(taken_by_kernel));
        assert!(!run_bpf(&prog, &probe, 1) && !run_bpf(&prog, &other_ip, 1));
        assert!(!run_bpf(&prog, &garp[..20], 1));
    }

    #[test]
    fn v6_verdicts_and_filter_agree() {
        let ip: Ipv6Addr = "fd00::7".parse().expect("literal");
        let addr = IpAddr::V6(ip);
        let t = Instant::now();
        let prog = filter(addr);
        let na = |src: MacAddr, p: NdiscPacket| {
            let mut payload = Vec::new();
            p.encode(&mut payload);
            eth(src, ETHERTYPE_IPV6, &payload)
        };
        let theirs = na(THEIRS, NdiscPacket::unsolicited_advert(THEIRS, ip));
        let c = Conflict::from_frame(&theirs, OURS, addr, t).expect("conflict");
        assert_eq!(c.mac, THEIRS);
        assert!(matches!(
            c.kind,
            ConflictKind::NeighborAdvert {
                override_flag: true,
                solicited: false
            }
        ));
        assert!(run_bpf(&prog, &theirs, 2));
        assert!(!run_bpf(&prog, &theirs, libc::PACKET_OTHERHOST));
        let own = na(OURS, NdiscPacket::unsolicited_advert(OURS, ip));
        assert_eq!(Conflict::from_frame(&own, OURS, addr, t), None);
        // A DAD probe for it is no conflict (the kernel defends), nor an NA for another address.
        let dad = na(THEIRS, NdiscPacket::dad_solicit(ip));
        assert_eq!(Conflict::from_frame(&dad, OURS, addr, t), None);
        assert!(!run_bpf(&prog, &dad, 2));
        let other: Ipv6Addr = "fd00::8".parse().expect("literal");
        let na_other = na(THEIRS, NdiscPacket::unsolicited_advert(THEIRS, other));
        assert_eq!(Conflict::from_frame(&na_other, OURS, addr, t), None);
        assert!(!run_bpf(&prog, &na_other, 2));
    }

    #[test]
    fn defends_once_per_interval() {
        let t = Instant::now();
        let mut d = Defender::default();
        assert!(d.should_defend(t));
        assert!(!d.should_defend(t + Duration::from_secs(9)));
        assert_eq!(d.last(), Some(t));
        assert!(d.should_defend(t + DEFEND_INTERVAL));
        // A clock that went backwards (an `at` older than the last defence) does not defend.
        assert!(!d.should_defend(t));
    }
}
