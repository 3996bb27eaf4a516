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

use crate::error::VipError;
use crate::packet::{
    ArpPacket, EthernetFrame, MacAddr, NdiscPacket, ETHERTYPE_ARP, ETHERTYPE_IPV6,
};
use crate::socket::PacketSocket;

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

/// The outcome of one announcement frame.
#[derive(Debug)]
pub struct AnnounceResult {
    /// 0 = first burst, 1 = second burst, 2.. = refreshes.
    pub burst: u32,
    /// Position in the burst, from 0.
    pub index: u32,
    /// Frame sent.
    pub kind: FrameKind,
    /// When it was handed to the kernel, counted from the first announcement.
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
    burst: u32,
    index: u32,
) -> Vec<AnnounceResult> {
    let mut out = Vec::with_capacity(frames.len());
    for f in frames {
        let result = sock
            .send(&f.bytes, f.dst, f.ethertype)
            .await
            .map_err(|e| VipError::io("send announcement", iface, e));
        out.push(AnnounceResult {
            burst,
            index,
            kind: f.kind,
            at: start.elapsed(),
            result,
        });
    }
    out
}

/// Results of the announcements of one claim, first one included; ends when the schedule is
/// done or the address is released or claimed again.
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
    pub(crate) frames: Vec<Frame>,
    pub(crate) iface: String,
    pub(crate) policy: AnnouncePolicy,
    /// When the first announcement went out.
    pub(crate) start: Instant,
}

/// Creates the results channel, queues the first announcement's results, and returns the
/// background future that sends the rest of the schedule.
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
        let emit = |v: Vec<AnnounceResult>| {
            for r in v {
                // The caller may have dropped the receiver; announcing goes on regardless.
                let _ = tx.send(r);
            }
        };
        for i in 1..p.count {
            tokio::time::sleep_until(s.start + p.interval * i).await;
            emit(send_round(&s.sock, &s.frames, &s.iface, s.start, 0, i).await);
        }
        let mut last = s.start + p.interval * p.count.saturating_sub(1);
        if let Some(after) = p.second_burst_after {
            for i in 0..p.count.max(1) {
                last = s.start + after + p.interval * i;
                tokio::time::sleep_until(last).await;
                emit(send_round(&s.sock, &s.frames, &s.iface, s.start, 1, i).await);
            }
        }
        if let Some(every) = p.refresh.filter(|d| !d.is_zero()) {
            let mut burst = 2u32;
            loop {
                last += every;
                tokio::time::sleep_until(last).await;
                emit(send_round(&s.sock, &s.frames, &s.iface, s.start, burst, 0).await);
                burst = burst.saturating_add(1);
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
