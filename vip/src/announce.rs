//! Announcing a claimed address: gratuitous ARP (RFC 5227 §3, both forms) for IPv4, unsolicited
//! neighbour advertisements (RFC 4861 §7.2.6) for IPv6. This module is the policy (how many,
//! how far apart, bursts, refresh) and the frames; the socket is [`crate::socket`].

use std::net::IpAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use tokio::sync::mpsc;
use tokio::time::Instant;

use futures::StreamExt;
use rtnetlink::Handle;

use crate::address::link_by_index;
use crate::error::VipError;
use crate::packet::{
    ArpPacket, EthernetFrame, MacAddr, NdiscPacket, ETHERTYPE_ARP, ETHERTYPE_IPV6,
};
use crate::socket::PacketSocket;
use crate::watch::{VipEvent, VipWatch};

/// Which gratuitous ARP form to send for IPv4 (IPv6 always sends unsolicited NAs).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum AnnounceMode {
    /// ARP request with sender = target = address (what `arping -U`, keepalived and IPaddr2
    /// send by default).
    #[default]
    Request,
    /// ARP reply with sender = target (IPaddr2's `arp_sender` "reply" form; `arping -A`).
    Reply,
    /// One of each per announcement: some old stacks only learn from one form.
    Both,
}

/// How a claimed address is announced.
///
/// Defaults: 5 announcements 200 ms apart (IPaddr2), a second burst 5 s after the first
/// (keepalived's `vrrp_garp_master_delay`; gratuitous ARPs sent while a bond or bridge port is
/// still coming up get lost), no periodic refresh.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
#[non_exhaustive]
pub struct AnnouncePolicy {
    /// Announcements per burst (at least 1: the first is always sent inside `claim`).
    pub count: u32,
    /// Spacing between announcements of a burst.
    #[serde(rename = "interval_ms", with = "crate::serde_ms")]
    pub interval: Duration,
    /// Request, reply or both (IPv4 only).
    pub mode: AnnounceMode,
    /// Start of a second burst of `count` announcements, counted from the first one.
    #[serde(rename = "second_burst_after_ms", with = "crate::serde_ms::option")]
    pub second_burst_after: Option<Duration>,
    /// Then one announcement every `refresh` until released, for switch MAC tables and ARP
    /// caches that age out ("stuck ARP caches").
    #[serde(rename = "refresh_ms", with = "crate::serde_ms::option")]
    pub refresh: Option<Duration>,
}

impl Default for AnnouncePolicy {
    fn default() -> Self {
        AnnouncePolicy {
            count: 5,
            interval: Duration::from_millis(200),
            mode: AnnounceMode::Request,
            second_burst_after: Some(Duration::from_secs(5)),
            refresh: None,
        }
    }
}

/// Kind of frame an announcement put on the wire.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum FrameKind {
    /// Gratuitous ARP request.
    GarpRequest,
    /// Gratuitous ARP reply.
    GarpReply,
    /// Unsolicited neighbour advertisement to ff02::1 with the override flag.
    UnsolicitedNa,
}

/// Why an announcement schedule (re)started.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum AnnounceCause {
    /// The claim ([`crate::Vip::claim`]).
    Claim,
    /// The link came back (admin up with carrier) while the address was held: switches and
    /// neighbours may have forgotten it, and frames sent while it was down were lost.
    LinkUp,
    /// The interface's MAC address changed while the address was held (a bond's active slave
    /// with `fail_over_mac`, a re-enslaved bond, `ip link set dev IF address`).
    MacChanged,
    /// A defensive announcement after another host used the address ([`crate::Vip::defend`],
    /// RFC 5227 §2.4).
    Defend,
}

/// The outcome of one announcement frame.
#[derive(Debug)]
#[non_exhaustive]
pub struct AnnounceResult {
    /// Why this schedule runs; each restart counts `burst`, `index` and `at` from 0 again.
    pub cause: AnnounceCause,
    /// 0 = first burst, 1 = second burst, 2.. = refreshes.
    pub burst: u32,
    /// Position in the burst, from 0.
    pub index: u32,
    /// Frame sent.
    pub kind: FrameKind,
    /// The MAC address the frame announces (Ethernet source and ARP sender / NA target
    /// link-layer address): the interface's at the time it was built.
    pub mac: MacAddr,
    /// When it was handed to the kernel, counted from the first announcement of its schedule.
    pub at: Duration,
    /// `Ok` once the frame is on the interface's queue, or why it is not.
    pub result: Result<(), VipError>,
}

/// One prebuilt frame.
#[derive(Debug)]
pub(crate) struct Frame {
    kind: FrameKind,
    bytes: Vec<u8>,
    dst: MacAddr,
    src: MacAddr,
    ethertype: u16,
}

/// The frames of one announcement for `addr` from `mac`.
pub(crate) fn frames(mac: MacAddr, addr: IpAddr, mode: AnnounceMode) -> Vec<Frame> {
    let mut out = Vec::new();
    match addr {
        IpAddr::V4(ip) => {
            let mut push = |kind, arp: ArpPacket| {
                let mut payload = Vec::with_capacity(28);
                arp.encode(&mut payload);
                let mut bytes = Vec::with_capacity(42);
                EthernetFrame {
                    dst: MacAddr::BROADCAST,
                    src: mac,
                    ethertype: ETHERTYPE_ARP,
                    payload: &payload,
                }
                .encode(&mut bytes);
                out.push(Frame {
                    kind,
                    bytes,
                    dst: MacAddr::BROADCAST,
                    src: mac,
                    ethertype: ETHERTYPE_ARP,
                });
            };
            if matches!(mode, AnnounceMode::Request | AnnounceMode::Both) {
                push(
                    FrameKind::GarpRequest,
                    ArpPacket::gratuitous_request(mac, ip),
                );
            }
            if matches!(mode, AnnounceMode::Reply | AnnounceMode::Both) {
                push(FrameKind::GarpReply, ArpPacket::gratuitous_reply(mac, ip));
            }
        }
        IpAddr::V6(ip) => {
            let na = NdiscPacket::unsolicited_advert(mac, ip);
            let dst = MacAddr::ipv6_multicast(&na.header.dst);
            let mut payload = Vec::with_capacity(72);
            na.encode(&mut payload);
            let mut bytes = Vec::with_capacity(86);
            EthernetFrame {
                dst,
                src: mac,
                ethertype: ETHERTYPE_IPV6,
                payload: &payload,
            }
            .encode(&mut bytes);
            out.push(Frame {
                kind: FrameKind::UnsolicitedNa,
                bytes,
                dst,
                src: mac,
                ethertype: ETHERTYPE_IPV6,
            });
        }
    }
    out
}

/// Sends one announcement (one frame per [`Frame`]) and returns a result per frame.
pub(crate) async fn send_round(
    sock: &PacketSocket,
    frames: &[Frame],
    iface: &str,
    start: Instant,
    cause: AnnounceCause,
    (burst, index): (u32, u32),
) -> Vec<AnnounceResult> {
    let mut out = Vec::with_capacity(frames.len());
    for f in frames {
        let result = sock
            .send(&f.bytes, f.dst, f.ethertype)
            .await
            .map_err(|e| VipError::io("send announcement", iface, e));
        out.push(AnnounceResult {
            cause,
            burst,
            index,
            kind: f.kind,
            mac: f.src,
            at: start.elapsed(),
            result,
        });
    }
    out
}

/// Results of the announcements of one claim, first one included. The stream stays open while
/// the address is held (the link is followed: a schedule restarts when it comes back or its
/// MAC changes) and ends when the address is released or claimed again, or the [`crate::Vip`]
/// is dropped.
#[derive(Debug)]
pub struct Announcements {
    rx: mpsc::UnboundedReceiver<AnnounceResult>,
}

impl Announcements {
    /// The next result, or `None` once no more announcements will be sent.
    pub async fn next(&mut self) -> Option<AnnounceResult> {
        self.rx.recv().await
    }

    /// A result already available, without waiting.
    pub fn try_next(&mut self) -> Option<AnnounceResult> {
        self.rx.try_recv().ok()
    }
}

impl futures::Stream for Announcements {
    type Item = AnnounceResult;
    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        self.rx.poll_recv(cx)
    }
}

/// Everything the background part of a schedule needs.
pub(crate) struct Schedule {
    pub(crate) sock: Arc<PacketSocket>,
    /// To read the link (its MAC, up or down) before each announcement.
    pub(crate) handle: Handle,
    pub(crate) ifindex: u32,
    pub(crate) addr: IpAddr,
    /// The MAC the first announcement carried.
    pub(crate) mac: MacAddr,
    pub(crate) iface: String,
    pub(crate) policy: AnnouncePolicy,
    /// When the first announcement went out.
    pub(crate) start: Instant,
}

/// The `k`-th announcement of a schedule (0 = the first): burst, index in the burst, and
/// offset from the first; `None` once the schedule is done.
fn slot(p: &AnnouncePolicy, k: u32) -> Option<(u32, u32, Duration)> {
    let count = p.count.max(1);
    if k < count {
        return Some((0, k, p.interval * k));
    }
    let (mut last, mut j) = (p.interval * (count - 1), k - count);
    if let Some(after) = p.second_burst_after {
        if j < count {
            return Some((1, j, after + p.interval * j));
        }
        last = after + p.interval * (count - 1);
        j -= count;
    }
    let every = p.refresh.filter(|d| !d.is_zero())?;
    Some((
        2u32.saturating_add(j),
        0,
        last + every * j.saturating_add(1),
    ))
}

/// The next link event, or never once there is no watch.
async fn next_event(watch: &mut Option<VipWatch>) -> Option<VipEvent> {
    match watch {
        Some(w) => w.next().await,
        None => std::future::pending().await,
    }
}

/// Creates the results channel, queues the first announcement's results, and returns the
/// background task that sends the rest of the schedule and follows the link while the address
/// is held: no frames while it is down, a fresh schedule when it comes back or its MAC
/// changes, and every frame built from the MAC the link has when it is sent.
pub(crate) fn spawn_rest(
    first: Vec<AnnounceResult>,
    s: Schedule,
) -> (Announcements, tokio::task::JoinHandle<()>) {
    let (tx, rx) = mpsc::unbounded_channel();
    for r in first {
        let _ = tx.send(r);
    }
    let task = tokio::spawn(async move {
        let p = &s.policy;
        // The caller may have dropped the receiver; announcing goes on regardless.
        let emit = |v: Vec<AnnounceResult>| {
            for r in v {
                let _ = tx.send(r);
            }
        };
        let mut watch = match VipWatch::new(s.ifindex, &s.iface, s.addr).await {
            Ok(w) => Some(w),
            Err(e) => {
                tracing::warn!(iface = %s.iface, error = %e, "no link watch: announcements do not follow the link");
                None
            }
        };
        let (mut mac, mut start, mut k, mut cause) = (s.mac, s.start, 1u32, AnnounceCause::Claim);
        let mut frames = frames(mac, s.addr, p.mode);
        // What the watch saw when it joined (the link may have changed since the claim's check).
        let mut up = watch.as_ref().is_none_or(VipWatch::link_up);
        let mut changed = watch.as_ref().and_then(VipWatch::mac).filter(|m| *m != mac);
        loop {
            if let Some(m) = changed.take() {
                mac = m;
                frames = crate::announce::frames(mac, s.addr, p.mode);
                (start, k, cause) = (Instant::now(), 0, AnnounceCause::MacChanged);
            }
            let due = slot(p, k).filter(|_| up).map(|(.., at)| start + at);
            tokio::select! {
                biased;
                ev = next_event(&mut watch) => match ev {
                    Some(VipEvent::MacChanged { mac: m }) => changed = Some(m).filter(|m| *m != mac),
                    Some(VipEvent::LinkDown) => up = false,
                    Some(VipEvent::LinkUp) => {
                        up = true;
                        (start, k, cause) = (Instant::now(), 0, AnnounceCause::LinkUp);
                    }
                    Some(_) => {}
                    None => {
                        watch = None;
                        up = true;
                    }
                },
                _ = tokio::time::sleep_until(due.unwrap_or(start)), if due.is_some() => {
                    // Read the link once more: an event may still be in flight.
                    if let Ok(l) = link_by_index(&s.handle, s.ifindex).await {
                        if watch.is_some() && !l.is_up() {
                            up = false;
                            continue;
                        }
                        changed = l.mac.filter(|m| *m != mac);
                        if changed.is_some() {
                            continue;
                        }
                    }
                    let Some((burst, index, _)) = slot(p, k) else { continue };
                    emit(send_round(&s.sock, &frames, &s.iface, start, cause, (burst, index)).await);
                    k += 1;
                }
            }
        }
    });
    (Announcements { rx }, task)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::packet::{ArpOp, NdiscMessage};

    #[test]
    fn frames_per_mode() {
        let mac = MacAddr([2, 0, 0, 0, 0, 9]);
        let v4: IpAddr = "10.1.2.3".parse().expect("literal");
        assert_eq!(frames(mac, v4, AnnounceMode::Request).len(), 1);
        let both = frames(mac, v4, AnnounceMode::Both);
        assert_eq!(both.len(), 2);
        let reply = both.get(1).expect("two frames");
        let eth = EthernetFrame::decode(&reply.bytes).expect("valid");
        let arp = ArpPacket::decode(eth.payload).expect("valid");
        assert_eq!((arp.op, arp.target_mac), (ArpOp::Reply, mac));
        let v6: IpAddr = "fd00::5".parse().expect("literal");
        let na = frames(mac, v6, AnnounceMode::Both);
        let f = na.first().expect("one frame");
        assert_eq!(f.dst, MacAddr([0x33, 0x33, 0, 0, 0, 1]));
        let eth = EthernetFrame::decode(&f.bytes).expect("valid");
        let p = NdiscPacket::decode(eth.payload).expect("valid");
        assert!(matches!(
            p.message,
            NdiscMessage::Advert {
                override_flag: true,
                solicited: false,
                ..
            }
        ));
    }

    #[test]
    fn schedule_slots() {
        let ms = Duration::from_millis;
        let mut p = AnnouncePolicy {
            count: 2,
            interval: ms(10),
            second_burst_after: Some(ms(100)),
            refresh: Some(ms(50)),
            ..AnnouncePolicy::default()
        };
        let got: Vec<_> = (0..6).map(|k| slot(&p, k)).collect();
        assert_eq!(
            got,
            [
                Some((0, 0, ms(0))),
                Some((0, 1, ms(10))),
                Some((1, 0, ms(100))),
                Some((1, 1, ms(110))),
                Some((2, 0, ms(160))),
                Some((3, 0, ms(210))),
            ]
        );
        p.refresh = None;
        assert_eq!(slot(&p, 4), None);
        p.second_burst_after = None;
        assert_eq!(slot(&p, 2), None);
    }

    #[test]
    fn policy_serde_names() {
        let p: AnnouncePolicy = serde_json::from_str(
            r#"{"count":3,"interval_ms":100,"mode":"both","refresh_ms":60000}"#,
        )
        .expect("valid");
        assert_eq!(p.count, 3);
        assert_eq!(p.interval, Duration::from_millis(100));
        assert_eq!(p.mode, AnnounceMode::Both);
        assert_eq!(p.second_burst_after, Some(Duration::from_secs(5)));
        assert_eq!(p.refresh, Some(Duration::from_secs(60)));
        let back: AnnouncePolicy =
            serde_json::from_str(&serde_json::to_string(&p).expect("ser")).expect("de");
        assert_eq!(back, p);
    }
}
