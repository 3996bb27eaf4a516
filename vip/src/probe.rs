//! Address conflict detection before a claim: RFC 5227 §2.1.1 ARP probes for IPv4, RFC 4862
//! §5.4 duplicate address detection (NS from `::`) for IPv6.
//!
//! RFC 5227's own timing (PROBE_WAIT 1 s, 3 probes 1-2 s apart, then ANNOUNCE_WAIT 2 s) makes a
//! claim take 4-7 s, too slow for a failover; the defaults here keep the same shape (several
//! probes at random spacing, then a quiet listening window) inside 250 ms on a LAN where an
//! answer takes well under a millisecond. Every number is configurable and the probe can be
//! switched off (`ClaimOptions::probe = None`), e.g. when fencing already guarantees the peer is
//! gone.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use tokio::time::Instant;

use crate::error::VipError;
use crate::packet::{
    solicited_node, ArpOp, ArpPacket, EthernetFrame, MacAddr, NdiscMessage, NdiscPacket,
    ETHERTYPE_ARP, ETHERTYPE_IPV6,
};
use crate::socket::{PacketSocket, Receiver, PACKET_OUTGOING};

/// Probe timing.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
#[non_exhaustive]
pub struct ProbePolicy {
    /// Probes to send (RFC 5227 PROBE_NUM, 3). At least one is sent.
    pub count: u32,
    /// Least spacing between probes (RFC 5227 PROBE_MIN, 1 s there; 40 ms here).
    #[serde(rename = "min_interval_ms", with = "crate::serde_ms")]
    pub min_interval: Duration,
    /// Largest spacing between probes (RFC 5227 PROBE_MAX, 2 s there; 80 ms here).
    #[serde(rename = "max_interval_ms", with = "crate::serde_ms")]
    pub max_interval: Duration,
    /// Whole probe time, from the first probe to the verdict: probes that would fall after it
    /// are not sent; after the last probe the socket keeps listening until it ends (250 ms).
    #[serde(rename = "window_ms", with = "crate::serde_ms")]
    pub window: Duration,
}

impl Default for ProbePolicy {
    fn default() -> Self {
        ProbePolicy {
            count: 3,
            min_interval: Duration::from_millis(40),
            max_interval: Duration::from_millis(80),
            window: Duration::from_millis(250),
        }
    }
}

/// A tiny xorshift generator for probe jitter (RFC 5227 asks for random spacing so two hosts
/// probing at once do not stay in lock-step; it need not be cryptographic).
struct Jitter(u64);

impl Jitter {
    fn new() -> Jitter {
        let t = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64)
            .unwrap_or(0);
        Jitter(t ^ u64::from(std::process::id()).rotate_left(32) | 1)
    }

    fn between(&mut self, lo: Duration, hi: Duration) -> Duration {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        let span = hi.saturating_sub(lo).as_micros() as u64;
        lo + Duration::from_micros(if span == 0 { 0 } else { self.0 % (span + 1) })
    }
}

/// What a received frame says about the candidate address.
fn conflict_v4(frame: &[u8], ours: MacAddr, addr: Ipv4Addr) -> Option<MacAddr> {
    let eth = EthernetFrame::decode(frame).ok()?;
    if eth.ethertype != ETHERTYPE_ARP || eth.src == ours {
        return None;
    }
    let arp = ArpPacket::decode(eth.payload).ok()?;
    if arp.sender_mac == ours {
        return None;
    }
    // RFC 5227 §2.1.1: any ARP packet (request or reply) whose sender IP is the address ...
    if arp.sender_ip == addr {
        return Some(arp.sender_mac);
    }
    // ... or an ARP probe for the address from another host (it is probing at the same time).
    if arp.op == ArpOp::Request && arp.sender_ip.is_unspecified() && arp.target_ip == addr {
        return Some(arp.sender_mac);
    }
    None
}

fn conflict_v6(frame: &[u8], ours: MacAddr, addr: Ipv6Addr) -> Option<MacAddr> {
    let eth = EthernetFrame::decode(frame).ok()?;
    if eth.ethertype != ETHERTYPE_IPV6 || eth.src == ours {
        return None;
    }
    let p = NdiscPacket::decode(eth.payload).ok()?;
    if p.header.hop_limit != 255 {
        return None; // RFC 4861 §7.1: not from the link, discard
    }
    match p.message {
        // RFC 4862 §5.4.4: an NA for the tentative address: it is a duplicate.
        NdiscMessage::Advert {
            target, target_ll, ..
        } if target == addr => Some(target_ll.unwrap_or(eth.src)),
        // RFC 4862 §5.4.3: an NS for it from `::` is another host's DAD: both must back off.
        NdiscMessage::Solicit { target, .. } if target == addr && p.header.src.is_unspecified() => {
            Some(eth.src)
        }
        _ => None,
    }
}

/// Probes `addr` on the interface; `Ok(elapsed)` when nobody answered within the window,
/// [`VipError::Conflict`] naming the other MAC as soon as someone does.
pub(crate) async fn probe(
    sender: &PacketSocket,
    ifindex: u32,
    iface: &str,
    ours: MacAddr,
    addr: IpAddr,
    policy: &ProbePolicy,
) -> Result<Duration, VipError> {
    let start = Instant::now();
    let (dst, ethertype, frame) = probe_frame(ours, addr);
    let rx = receiver(ifindex, iface, addr)?;
    let verdict = listen(
        &rx,
        sender,
        &frame,
        dst,
        ethertype,
        iface,
        ours,
        addr,
        policy,
        start,
        Kept::default(),
    )
    .await;
    verdict
}

/// Time a probe sent past the policy's `count` leaves for an answer before the verdict: the
/// quiet time the window leaves after its last probe when every spacing is the longest
/// (`window - (count - 1) * max_interval`), at least `min_interval`. 90 ms by default.
pub(crate) fn answer_time(policy: &ProbePolicy) -> Duration {
    quiet_after_last(policy, policy.max_interval).max(policy.min_interval)
}

/// What is left of the window after `count - 1` spacings of `spacing` (zero when they fill it).
fn quiet_after_last(policy: &ProbePolicy, spacing: Duration) -> Duration {
    let spaced = spacing.saturating_mul(policy.count.max(1).saturating_sub(1));
    policy.window.saturating_sub(spaced)
}

/// Least spacing of the probes a kept session sends past the policy's `count`: a policy with no
/// spacing (`min_interval` and `max_interval` zero) would otherwise send back to back for as
/// long as the keep lasts. At most 100 probes a second.
const KEPT_MIN_SPACING: Duration = Duration::from_millis(10);

/// With `sent` probes out, the next is one past the policy's `count` (at least one): kept
/// probing.
fn past_count(policy: &ProbePolicy, sent: u32) -> bool {
    sent >= policy.count.max(1)
}

/// The wait before the next probe, `sent` probes out: the policy's random spacing, and for a
/// probe past its `count` (kept probing) at least [`KEPT_MIN_SPACING`].
fn spacing(policy: &ProbePolicy, sent: u32, jitter: &mut Jitter) -> Duration {
    let d = jitter.between(policy.min_interval, policy.max_interval);
    if past_count(policy, sent) {
        d.max(KEPT_MIN_SPACING)
    } else {
        d
    }
}

/// When a probe's listening ends once it no longer sends: the window's end, and for a kept
/// probe (which may send past the window, also as the `count`-th when the window is shorter
/// than the schedule) not before its last probe has had its [`answer_time`].
fn listen_end(
    policy: &ProbePolicy,
    deadline: Instant,
    last: Instant,
    sent: u32,
    kept: bool,
) -> Instant {
    if kept && sent > 0 {
        deadline.max(last + answer_time(policy))
    } else {
        deadline
    }
}

/// Probing past the policy's probes ([`start`] with a `keep`): until `until`, or until the
/// verdict is asked (`stop` fires); once the claim is near (`near` fires), each such probe
/// waits until the last is [`fresh_age`] old.
#[derive(Debug, Default)]
struct Kept {
    until: Option<Instant>,
    stop: Option<tokio::sync::oneshot::Receiver<()>>,
    stopped: bool,
    near: Option<tokio::sync::oneshot::Receiver<()>>,
    claim_near: bool,
}

impl Kept {
    fn keeping(&self, now: Instant) -> bool {
        !self.stopped && self.until.is_some_and(|t| now < t)
    }
}

/// Resolves when `rx`'s sender sends or is dropped (the session is gone); never without one.
async fn fired(rx: &mut Option<tokio::sync::oneshot::Receiver<()>>) {
    match rx.as_mut() {
        Some(rx) => {
            let _ = rx.await;
        }
        None => std::future::pending().await,
    }
}

/// The oldest a probe's last probe can be when a probe of its own (not kept) gives its verdict
/// at the window's end: `window - (count - 1) x min_interval`, at least [`answer_time`]. 170
/// ms by default, 120 ms for a 200 ms window.
pub(crate) fn fresh_age(policy: &ProbePolicy) -> Duration {
    quiet_after_last(policy, policy.min_interval).max(answer_time(policy))
}

/// When the next probe goes, `sent` probes out, the last at `last`, its spacing ending at
/// `spaced`: then, but a probe past the policy's `count` once the claim is near not before the
/// last is [`fresh_age`] old. Until then a claim's verdict needs no probe of its own, and none
/// is older at that verdict than a fresh probe's can be.
fn next_probe_at(
    policy: &ProbePolicy,
    sent: u32,
    last: Instant,
    spaced: Instant,
    claim_near: bool,
) -> Instant {
    if claim_near && past_count(policy, sent) {
        spaced.max(last + fresh_age(policy))
    } else {
        spaced
    }
}

/// The probe's frame: destination, ethertype and the whole Ethernet frame.
pub(crate) fn probe_frame(ours: MacAddr, addr: IpAddr) -> (MacAddr, u16, Vec<u8>) {
    let (ethertype, dst, payload) = match addr {
        IpAddr::V4(ip) => {
            let mut p = Vec::with_capacity(28);
            ArpPacket::probe(ours, ip).encode(&mut p);
            (ETHERTYPE_ARP, MacAddr::BROADCAST, p)
        }
        IpAddr::V6(ip) => {
            let ns = NdiscPacket::dad_solicit(ip);
            let mut p = Vec::with_capacity(64);
            ns.encode(&mut p);
            (ETHERTYPE_IPV6, MacAddr::ipv6_multicast(&ns.header.dst), p)
        }
    };
    let mut frame = Vec::with_capacity(14 + payload.len());
    EthernetFrame {
        dst,
        src: ours,
        ethertype,
        payload: &payload,
    }
    .encode(&mut frame);
    (dst, ethertype, frame)
}

/// A socket receiving what may show a conflict for `addr` (ARP, or IPv6 with the
/// solicited-node group joined).
fn receiver(ifindex: u32, iface: &str, addr: IpAddr) -> Result<Receiver, VipError> {
    let ethertype = if addr.is_ipv4() {
        ETHERTYPE_ARP
    } else {
        ETHERTYPE_IPV6
    };
    let rx = PacketSocket::receiver(ifindex, ethertype)
        .map(Receiver::new)
        .map_err(|e| VipError::io("open probe socket", iface, e))?;
    if let IpAddr::V6(ip) = addr {
        // Another host's DAD probe goes to the solicited-node group of the address.
        rx.join_multicast(MacAddr::ipv6_multicast(&solicited_node(&ip)))
            .map_err(|e| VipError::io("join solicited-node group", iface, e))?;
    }
    Ok(rx)
}

/// A probe running in the background ([`start`]): it sends the probes and listens for its
/// window, then keeps its socket open, so every frame that arrives until [`Session::verdict`]
/// is still queued there and is judged too.
#[derive(Debug)]
pub(crate) struct Session {
    task: Option<tokio::task::JoinHandle<(Result<Duration, VipError>, Receiver)>>,
    /// Ends kept probing: the verdict is asked.
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    /// Says the claim is near ([`Session::claim_near`]).
    near: Option<tokio::sync::oneshot::Sender<()>>,
    /// Probes go out until then (unless the verdict was asked).
    probing_until: Instant,
    /// Set by the task when a socket error ended it (not a conflict: that is a verdict).
    failed: std::sync::Arc<std::sync::atomic::AtomicBool>,
    /// After the window: the verdict (`Err` text for anything but a conflict) and the socket.
    done: Option<(Result<Duration, Option<MacAddr>>, Receiver)>,
    error: Option<String>,
    ifindex: u32,
    iface: String,
    ours: MacAddr,
    addr: IpAddr,
}

impl Drop for Session {
    fn drop(&mut self) {
        if let Some(t) = self.task.take() {
            t.abort();
        }
        // The socket (here or in the aborted task) closes off the runtime (`Receiver`).
    }
}

/// Starts a probe of `addr` in a task and returns at once (the first probe is sent there).
/// With a `keep` longer than the window it goes on sending probes at the policy's spacing
/// until the verdict is asked or `keep` has passed since the first; a probe sent past the
/// policy's `count` is then given [`answer_time`] before the verdict.
pub(crate) fn start(
    sender: std::sync::Arc<PacketSocket>,
    ifindex: u32,
    iface: &str,
    ours: MacAddr,
    addr: IpAddr,
    policy: &ProbePolicy,
    keep: Duration,
) -> Result<Session, VipError> {
    let start = Instant::now();
    let (dst, ethertype, frame) = probe_frame(ours, addr);
    let rx = receiver(ifindex, iface, addr)?;
    let (name, policy) = (iface.to_string(), policy.clone());
    let (stop, stop_rx) = tokio::sync::oneshot::channel();
    let (near, near_rx) = tokio::sync::oneshot::channel();
    // An hour is "until asked" for every use; it keeps `start + keep` from overflowing.
    let keep = keep.min(Duration::from_secs(3600));
    let kept = Kept {
        until: (keep > policy.window).then(|| start + keep),
        stop: Some(stop_rx),
        stopped: false,
        near: Some(near_rx),
        claim_near: false,
    };
    let probing_until = start + keep.max(policy.window);
    let failed = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let failed_in = failed.clone();
    let task = tokio::spawn(async move {
        let verdict = listen(
            &rx, &sender, &frame, dst, ethertype, &name, ours, addr, &policy, start, kept,
        )
        .await;
        if matches!(&verdict, Err(e) if !matches!(e, VipError::Conflict { .. })) {
            failed_in.store(true, std::sync::atomic::Ordering::Relaxed);
        }
        (verdict, rx)
    });
    Ok(Session {
        task: Some(task),
        stop: Some(stop),
        near: Some(near),
        probing_until,
        failed,
        done: None,
        error: None,
        ifindex,
        iface: iface.to_string(),
        ours,
        addr,
    })
}

impl Session {
    /// Interface index probed on.
    pub(crate) fn ifindex(&self) -> u32 {
        self.ifindex
    }

    /// Probes still go out, or a conflict already ended them (a verdict as good): no socket
    /// error ended its task, the verdict was not asked, and the window or the keep has not
    /// passed.
    pub(crate) fn probing(&self) -> bool {
        self.stop.is_some()
            && !self.failed.load(std::sync::atomic::Ordering::Relaxed)
            && Instant::now() < self.probing_until
    }

    /// The claim is near: from now on each probe past the policy's `count` waits until the
    /// last is [`fresh_age`] old (see [`next_probe_at`]). Idempotent.
    pub(crate) fn claim_near(&mut self) {
        if let Some(near) = self.near.take() {
            let _ = near.send(());
        }
    }

    /// Waits for the window to end, then judges every frame received since: `Ok(elapsed)`
    /// when nobody answered for the address from the first probe until now,
    /// [`VipError::Conflict`] otherwise. Callable again (late frames are judged each time).
    pub(crate) async fn verdict(&mut self) -> Result<Duration, VipError> {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(task) = self.task.as_mut() {
            let r = task.await;
            self.task = None;
            match r {
                Ok((Ok(d), rx)) => self.done = Some((Ok(d), rx)),
                Ok((Err(VipError::Conflict { mac, .. }), rx)) => {
                    self.done = Some((Err(Some(mac)), rx))
                }
                Ok((Err(e), _rx)) => self.error = Some(e.to_string()),
                Err(e) => self.error = Some(format!("probe task: {e}")),
            }
        }
        if let Some(e) = &self.error {
            return Err(VipError::Io {
                op: "probe",
                source: std::io::Error::other(e.clone()),
            });
        }
        let addr = self.addr;
        let Some((verdict, rx)) = self.done.as_mut() else {
            return Err(VipError::Io {
                op: "probe",
                source: std::io::Error::other("no verdict"),
            });
        };
        if let Ok(d) = verdict {
            if let Err(mac) = drain(rx, self.ours, addr, &self.iface)? {
                *verdict = Err(Some(mac));
            } else {
                return Ok(*d);
            }
        }
        match verdict {
            Err(Some(mac)) => Err(VipError::Conflict { addr, mac: *mac }),
            _ => Err(VipError::Io {
                op: "probe",
                source: std::io::Error::other("no verdict"),
            }),
        }
    }
}

/// Reads what is queued on `rx` without waiting: `Ok(Err(mac))` when a frame shows a
/// conflict, `Ok(Ok(()))` when none does.
fn drain(
    rx: &PacketSocket,
    ours: MacAddr,
    addr: IpAddr,
    iface: &str,
) -> Result<Result<(), MacAddr>, VipError> {
    let mut buf = vec![0u8; 2048];
    while let Some((n, pkttype)) = rx
        .try_recv(&mut buf)
        .map_err(|e| VipError::io("receive probe answer", iface, e))?
    {
        if pkttype == PACKET_OUTGOING {
            continue;
        }
        let frame = buf.get(..n).unwrap_or_default();
        let other = match addr {
            IpAddr::V4(ip) => conflict_v4(frame, ours, ip),
            IpAddr::V6(ip) => conflict_v6(frame, ours, ip),
        };
        if let Some(mac) = other {
            return Ok(Err(mac));
        }
    }
    Ok(Ok(()))
}

/// Sends the probes and waits for the window to end or a conflict to show up. Kept probing
/// ([`Kept`]) goes on sending at the policy's spacing past the window; once it ends, the last
/// probe past the policy's `count` is given [`answer_time`] before the verdict.
#[allow(clippy::too_many_arguments)]
async fn listen(
    rx: &PacketSocket,
    sender: &PacketSocket,
    frame: &[u8],
    dst: MacAddr,
    ethertype: u16,
    iface: &str,
    ours: MacAddr,
    addr: IpAddr,
    policy: &ProbePolicy,
    start: Instant,
    mut kept: Kept,
) -> Result<Duration, VipError> {
    let deadline = start + policy.window;
    let count = policy.count.max(1);
    let mut jitter = Jitter::new();
    let mut sent = 0u32;
    let mut last = start;
    let mut next_probe = start;
    let mut buf = vec![0u8; 2048];
    loop {
        let now = Instant::now();
        let keeping = kept.keeping(now);
        let end = listen_end(policy, deadline, last, sent, kept.until.is_some());
        if !keeping && now >= end {
            return Ok(start.elapsed());
        }
        let send = keeping || (sent < count && next_probe < deadline);
        let wake = match (send, kept.until) {
            (true, Some(until)) if keeping => next_probe.min(until),
            (true, _) => next_probe.min(end),
            (false, _) => end,
        };
        tokio::select! {
            biased;
            r = rx.recv(&mut buf) => {
                let (n, pkttype) = r.map_err(|e| VipError::io("receive probe answer", iface, e))?;
                if pkttype == PACKET_OUTGOING {
                    continue;
                }
                let frame = buf.get(..n).unwrap_or_default();
                let other = match addr {
                    IpAddr::V4(ip) => conflict_v4(frame, ours, ip),
                    IpAddr::V6(ip) => conflict_v6(frame, ours, ip),
                };
                if let Some(mac) = other {
                    return Err(VipError::Conflict { addr, mac });
                }
            }
            _ = fired(&mut kept.stop), if !kept.stopped => kept.stopped = true,
            _ = fired(&mut kept.near), if !kept.claim_near => {
                kept.claim_near = true;
                next_probe = next_probe_at(policy, sent, last, next_probe, true);
            }
            _ = tokio::time::sleep_until(wake) => {
                let now = Instant::now();
                if send && next_probe <= now && (kept.keeping(now) || now < deadline) {
                    sender
                        .send(frame, dst, ethertype)
                        .await
                        .map_err(|e| VipError::io("send probe", iface, e))?;
                    sent += 1;
                    last = now;
                    let spaced = now + spacing(policy, sent, &mut jitter);
                    next_probe = next_probe_at(policy, sent, last, spaced, kept.claim_near);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const OURS: MacAddr = MacAddr([2, 0, 0, 0, 0, 1]);
    const THEIRS: MacAddr = MacAddr([2, 0, 0, 0, 0, 2]);

    fn arp_frame(src: MacAddr, p: ArpPacket) -> Vec<u8> {
        let mut payload = Vec::new();
        p.encode(&mut payload);
        let mut f = Vec::new();
        EthernetFrame {
            dst: MacAddr::BROADCAST,
            src,
            ethertype: ETHERTYPE_ARP,
            payload: &payload,
        }
        .encode(&mut f);
        f
    }

    #[test]
    fn v4_verdicts() {
        let ip = Ipv4Addr::new(10, 0, 0, 7);
        // Another host's reply to our probe.
        let reply = ArpPacket {
            op: ArpOp::Reply,
            sender_mac: THEIRS,
            sender_ip: ip,
            target_mac: OURS,
            target_ip: Ipv4Addr::UNSPECIFIED,
        };
        assert_eq!(
            conflict_v4(&arp_frame(THEIRS, reply), OURS, ip),
            Some(THEIRS)
        );
        // Another host probing at the same time.
        let probe = ArpPacket::probe(THEIRS, ip);
        assert_eq!(
            conflict_v4(&arp_frame(THEIRS, probe), OURS, ip),
            Some(THEIRS)
        );
        // Our own probe, seen again, and unrelated traffic.
        assert_eq!(
            conflict_v4(&arp_frame(OURS, ArpPacket::probe(OURS, ip)), OURS, ip),
            None
        );
        let other = ArpPacket::gratuitous_request(THEIRS, Ipv4Addr::new(10, 0, 0, 8));
        assert_eq!(conflict_v4(&arp_frame(THEIRS, other), OURS, ip), None);
        assert_eq!(conflict_v4(&[1, 2, 3], OURS, ip), None);
    }

    #[test]
    fn v6_verdicts() {
        let ip: Ipv6Addr = "fd00::7".parse().expect("literal");
        let frame = |src: MacAddr, p: NdiscPacket| {
            let mut payload = Vec::new();
            p.encode(&mut payload);
            let mut f = Vec::new();
            EthernetFrame {
                dst: MacAddr([0x33, 0x33, 0, 0, 0, 1]),
                src,
                ethertype: ETHERTYPE_IPV6,
                payload: &payload,
            }
            .encode(&mut f);
            f
        };
        let na = NdiscPacket::unsolicited_advert(THEIRS, ip);
        assert_eq!(conflict_v6(&frame(THEIRS, na), OURS, ip), Some(THEIRS));
        let ns = NdiscPacket::dad_solicit(ip);
        assert_eq!(conflict_v6(&frame(THEIRS, ns), OURS, ip), Some(THEIRS));
        assert_eq!(conflict_v6(&frame(OURS, ns), OURS, ip), None);
    }

    #[test]
    fn jitter_in_range() {
        let mut j = Jitter::new();
        let (lo, hi) = (Duration::from_millis(40), Duration::from_millis(80));
        for _ in 0..1000 {
            let d = j.between(lo, hi);
            assert!(d >= lo && d <= hi);
        }
        assert_eq!(j.between(hi, lo), hi);
    }

    #[test]
    fn once_the_claim_is_near_kept_probes_wait_for_a_fresh_probes_age() {
        let ms = Duration::from_millis;
        let p = ProbePolicy::default();
        assert_eq!(fresh_age(&p), ms(170));
        let lab = ProbePolicy {
            window: ms(200),
            ..ProbePolicy::default()
        };
        assert_eq!(fresh_age(&lab), ms(120));
        let t = Instant::now();
        // The window's own probes keep their spacing; so does every probe before the claim
        // is near.
        assert_eq!(next_probe_at(&lab, 2, t, t + ms(50), true), t + ms(50));
        assert_eq!(next_probe_at(&lab, 5, t, t + ms(50), false), t + ms(50));
        // Past the count once it is near: not before the last is a fresh probe's age.
        assert_eq!(next_probe_at(&lab, 3, t, t + ms(50), true), t + ms(120));
        assert_eq!(next_probe_at(&lab, 9, t, t + ms(130), true), t + ms(130));
        // A window shorter than the schedule: at least the answer time.
        let short = ProbePolicy {
            window: ms(60),
            ..ProbePolicy::default()
        };
        assert_eq!(fresh_age(&short), answer_time(&short));
    }

    #[test]
    fn kept_probes_past_the_count_are_spaced_even_by_a_policy_without_spacing() {
        let mut j = Jitter::new();
        let p = ProbePolicy {
            min_interval: Duration::ZERO,
            max_interval: Duration::ZERO,
            ..ProbePolicy::default()
        };
        assert_eq!(spacing(&p, 1, &mut j), Duration::ZERO);
        assert_eq!(spacing(&p, 2, &mut j), Duration::ZERO);
        assert_eq!(spacing(&p, 3, &mut j), KEPT_MIN_SPACING);
        assert_eq!(spacing(&p, 40, &mut j), KEPT_MIN_SPACING);
        // The policy's own spacing when it is longer.
        let d = spacing(&ProbePolicy::default(), 5, &mut j);
        assert!(d >= Duration::from_millis(40) && d <= Duration::from_millis(80));
    }

    #[test]
    fn answer_time_is_the_windows_least_quiet_after_its_last_probe() {
        let ms = Duration::from_millis;
        let mut p = ProbePolicy::default();
        assert_eq!(answer_time(&p), ms(90));
        p.window = ms(200);
        assert_eq!(answer_time(&p), ms(40));
        // A window too short for every probe at the longest spacing: at least the least one.
        p.window = ms(100);
        assert_eq!(answer_time(&p), ms(40));
        p.count = 0;
        p.window = ms(30);
        assert_eq!(answer_time(&p), ms(40));
    }

    #[test]
    fn a_kept_probes_last_probe_past_the_window_is_given_its_answer_time() {
        let ms = Duration::from_millis;
        let p = ProbePolicy {
            window: ms(100),
            count: 3,
            min_interval: ms(65),
            max_interval: ms(65),
        };
        let start = Instant::now();
        let deadline = start + p.window;
        // The 3rd probe (the policy's last) at 130 ms, past the 100 ms window.
        let last = start + ms(130);
        let answer = answer_time(&p);
        assert_eq!(listen_end(&p, deadline, last, 3, true), last + answer);
        // Not kept: the window's end, as before.
        assert_eq!(listen_end(&p, deadline, last, 3, false), deadline);
        // Kept, inside the window: the window's end when that is later.
        assert_eq!(
            listen_end(&p, deadline, start, 1, true),
            deadline.max(start + answer)
        );
        assert_eq!(listen_end(&p, deadline, start, 0, true), deadline);
    }
}
