//! [`Address`] over rtnetlink and packet sockets (crate `vip`): no `ip` or `arping` is run.
//!
//! One probe per promote: [`Address::start_probe`] starts `vip`'s probe (RFC 5227 ARP probes
//! for IPv4, NS from `::` for IPv6; like `arping -D -I IF ADDR`) in the background while DRBD
//! and the target come up; its socket keeps listening until [`Address::claim`], which waits for
//! the window and refuses if anyone answered for the address at any time since the first probe
//! (`vip::Vip::claim_probed`), without probing again. A conflict there surfaces as a failed
//! `address-claim` stage, which rolls the promotion back; the executor also asks for the verdict
//! ([`Address::probe_conflict`]) before DRBD is promoted without a connected Secondary peer.
//! A probe older than [`PROBE_MAX_AGE`] is not trusted: the claim probes again.
//!
//! [`Address::claim`] returns once `vip` has put the first announcement on the wire; the rest of
//! the schedule (`announce.count` announcements `announce.interval_ms` apart) runs in `vip`'s
//! background task, which a release (or the next claim) stops; while the address is held it
//! follows the link (a fresh schedule when the link comes back or the MAC changes, every frame
//! with the current MAC). A small task logs each result.
//!
//! With `[tickle]`, a claim then sends tickle ACKs to the client connections on the address
//! that the peer reported ([`crate::peer_link`]), so initiators whose connections went with a
//! dead peer log in again at once; a planned demote hands them over first
//! ([`Address::hand_over`]).
//!
//! While an address is held here, [`NetlinkAddress::watch`] also runs `vip`'s conflict watch for it
//! (RFC 5227 §2.4: an ARP packet from another MAC whose sender IP is the address; IPv6: a neighbour
//! advertisement for it from another MAC). A host holding the address that sends nothing by itself
//! (a healed partition: each kernel only answers requests, by unicast) is asked: while no conflict
//! is shown the watch sends an RFC 5227 ARP probe (IPv6: a DAD NS from `::`) every `[address.probe]
//! while_held_s` (10 s; 0: off; a reload changes it at once), which that host's kernel answers with
//! the address as sender. A conflict is one warning line and one alarm per other MAC
//! ([`NetlinkAddress::take_conflict_reports`], raised by the daemon), a defensive announcement and
//! an RFC 5227 ARP probe (IPv6: a DAD NS) at most once per `vip::DEFEND_INTERVAL` (RFC 5227 §2.4
//! (c), defend indefinitely; a holder's kernel answers the probe even when it sends nothing by
//! itself) and a note in status ([`NetlinkAddress::conflict`]) until no conflicting frame came for
//! [`CONFLICT_CLEAR_AFTER`] and a last probe stayed unanswered (then reported too, so the daemon's
//! followers show it cleared: `STATUS=`, metrics). A watch its link's down/up ended is opened
//! again; a conflict shown meanwhile is shown as not watched, and not past the clear period with
//! nothing to vouch for it (reported too, as is a conflict that goes with its address's release).
//! The address is never released for it and no role changes: which node holds it is the authority's
//! decision (docs/takeover.md).
//!
//! An address whose link is down (no `IFF_UP` or no carrier) is not claimed: the watch reports
//! the link as [`Event::Link`] and the state machine claims it when the link is back
//! (docs/takeover.md).

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use futures::stream::{AbortHandle, BoxStream};
use futures::StreamExt;
use ipnet::IpNet;
use tokio::sync::mpsc::{UnboundedReceiver, UnboundedSender};
use tokio::sync::Mutex;
use tokio::time::Instant;
use tracing::{debug, info, warn};
use vip::{
    AnnounceMode, AnnouncePolicy, ClaimOptions, Defender, MacAddr, ProbePolicy, ProbeSession, Vip,
    VipError, VipEvent, DEFEND_INTERVAL,
};

use super::Address;
use crate::config::{Address as AddressConfig, Config};
use crate::error::BackendError;
use crate::fsm::Event;
use crate::peer_link::PeerLink;
use crate::status::AddressConflict;

/// The floating addresses of a config, one handle each; a reload adds handles
/// ([`NetlinkAddress::add_missing`]) and drops them ([`NetlinkAddress::retain`]), and the watch
/// follows.
#[derive(Debug)]
pub struct NetlinkAddress {
    handles: std::sync::Mutex<Handles>,
    /// The tickle peer link (`[tickle]`): a claim tickles the peer's connections on the address.
    tickle: Option<Arc<PeerLink>>,
    /// The peer's release notices, subscribed with the link so that none sent before the watch
    /// runs is missed; taken by the watch.
    notices: std::sync::Mutex<Option<tokio::sync::broadcast::Receiver<Vec<std::net::IpAddr>>>>,
    /// Address conflicts raised and cleared, for the daemon
    /// ([`NetlinkAddress::take_conflict_reports`]).
    alarms: UnboundedSender<ConflictReport>,
    alarms_rx: std::sync::Mutex<Option<UnboundedReceiver<ConflictReport>>>,
    /// How long a conflict stays shown after its last frame, probes unanswered
    /// ([`CONFLICT_CLEAR_AFTER`]).
    clear_after: Duration,
}

/// A conflict is shown (and counts as one episode) until no conflicting frame came for this
/// long although this node probed for the address: while a conflict is shown the watch sends
/// an RFC 5227 ARP probe (IPv6: a DAD NS) at each defence (every `vip::DEFEND_INTERVAL`, 10 s)
/// and once more before clearing, and a host holding the address answers every probe (its
/// kernel does, even when it sends nothing by itself). 60 s is six probes without an answer.
pub const CONFLICT_CLEAR_AFTER: Duration = Duration::from_secs(60);

/// How long the last probe before clearing a conflict waits for its answer (on a LAN it takes
/// well under a millisecond); never longer than the clear period itself, nor than the probe
/// period of a short one.
const PROBE_ANSWER_WAIT: Duration = Duration::from_secs(1);

/// Retry of a conflict watch that could not be opened or ended with an error (its interface
/// went down, or is gone): the first after this, doubling up to [`WATCH_RETRY_MAX`]; a link
/// coming back retries at once.
const WATCH_RETRY_MIN: Duration = Duration::from_secs(1);
const WATCH_RETRY_MAX: Duration = Duration::from_secs(30);

/// Other hosts using an address held here, in the current episode (from the first conflicting
/// frame until the conflict clears).
#[derive(Debug, Clone)]
struct Seen {
    /// Every other MAC seen, in the order first seen (one alarm each).
    macs: Vec<MacAddr>,
    first: Instant,
    last: Instant,
    /// Conflicting frames seen, from all of `macs`.
    frames: u64,
    /// The watch task that saw it ([`ForgetOnEnd`]).
    watch: u64,
    /// Why its watch is not open (the error it ended with), while it is not: nothing vouches
    /// for the conflict then ([`ConflictReport::Unwatched`]).
    unwatched: Option<String>,
}

impl Seen {
    /// When status stops showing it although nothing cleared it (its watch could not probe,
    /// or was not open): the clear period after its last frame, and the last probe's wait.
    fn shown_until(&self, clear_after: Duration) -> Instant {
        self.last + clear_after + PROBE_ANSWER_WAIT.min(clear_after)
    }
}

/// An address and the interface it floats on: a changed interface is another handle (the old
/// one releases the address, the new one claims it).
type Key = (IpNet, String);

/// One address's events in the watch; `None` last when its stream ended by itself.
type Watched = BoxStream<'static, (Key, Option<VipEvent>)>;

#[derive(Debug, Default)]
struct Handles {
    by_key: BTreeMap<Key, Arc<Handle>>,
    /// The running watch's inbox for the streams of addresses added later.
    watch: Option<UnboundedSender<Watched>>,
}

/// One address: its `vip` handle, its started probe, its stream in the watch.
#[derive(Debug)]
struct Handle {
    vip: Mutex<Vip>,
    /// The probe started for it, until its claim (or release).
    probe: Mutex<Option<ProbeSession>>,
    /// A probe started on the peer's release notice, kept probing ([`EARLY_PROBE_KEPT`]): a
    /// promote's [`Address::start_probe`] takes it only while its probes still go out; after
    /// that it is dropped.
    early: Mutex<Option<ProbeSession>>,
    /// Its probe policy (`None`: probing off), for a probe started on a release notice;
    /// follows reloads ([`NetlinkAddress::retain`]).
    policy: std::sync::Mutex<Option<ProbePolicy>>,
    /// Ends its stream in the watch when the handle goes.
    watched: std::sync::Mutex<Option<AbortHandle>>,
    /// The conflict watch task while the address is held here.
    conflicts: std::sync::Mutex<Option<tokio::task::JoinHandle<()>>>,
    /// The conflict it last saw, until it clears.
    seen: Arc<std::sync::Mutex<Option<Seen>>>,
    /// Wakes a conflict watch waiting to be opened again (its link came back).
    retry: Arc<tokio::sync::Notify>,
    /// The period of the probe while held (`[address.probe] while_held_s`, `None`: off); a
    /// reload changes it under the running conflict watch ([`NetlinkAddress::retain`]).
    while_held: tokio::sync::watch::Sender<Option<Duration>>,
}

impl Handle {
    fn new(a: &AddressConfig) -> Result<Handle, BackendError> {
        let (ip, prefix) = (a.address.addr(), a.address.prefix_len());
        Ok(Handle {
            vip: Mutex::new(Vip::new(a.interface.clone(), ip, prefix).map_err(err)?),
            probe: Mutex::new(None),
            early: Mutex::new(None),
            policy: std::sync::Mutex::new(probe_policy(a)),
            watched: std::sync::Mutex::new(None),
            conflicts: std::sync::Mutex::new(None),
            seen: Arc::new(std::sync::Mutex::new(None)),
            retry: Arc::new(tokio::sync::Notify::new()),
            while_held: tokio::sync::watch::Sender::new(a.probe.while_held()),
        })
    }

    /// Runs the conflict watch while `held`, stops it (forgetting what it saw) otherwise: a
    /// conflict shown is then reported cleared, so no follower keeps it for an address not
    /// held here.
    fn follow_conflicts(self: &Arc<Handle>, key: &Key, held: bool, alarms: &Alarms) {
        let mut task = lock(&self.conflicts);
        if !held {
            if let Some(t) = task.take() {
                t.abort();
            }
            if let Some(was) = lock(&self.seen).take() {
                info!(address = %key.0, interface = %key.1, macs = ?was.macs,
                    "address no longer held here: its conflict is no longer watched");
                let _ = alarms.tx.send(ConflictReport::Cleared);
            }
            return;
        }
        if task.as_ref().is_some_and(|t| !t.is_finished()) {
            // Running, maybe waiting to reopen after its link went down: now.
            self.retry.notify_one();
            return;
        }
        let run = watch_conflicts(Arc::downgrade(self), key.clone(), alarms.clone());
        *task = Some(tokio::spawn(run));
    }

    /// Its link came back: a conflict watch that ended or waits to reopen (the socket saw
    /// `ENETDOWN`) is opened again now, if the address is held here (a watch task exists).
    fn link_back(self: &Arc<Handle>, key: &Key, alarms: &Alarms) {
        if lock(&self.conflicts).is_some() {
            self.follow_conflicts(key, true, alarms);
        }
    }

    /// Its events for the watch (subscribed now: nothing later is missed). The first is a
    /// re-read of the address and its link (as after an overrun): the watch task subscribes
    /// while the daemon already observes, and a change between the two would otherwise be
    /// seen only by the safety net.
    async fn subscribe(&self, key: &Key) -> Result<Watched, BackendError> {
        let w = self.vip.lock().await.watch().await.map_err(err)?;
        let (k, first, end) = (key.clone(), key.clone(), key.clone());
        let events = futures::stream::once(async move { (first, Some(VipEvent::Overrun)) })
            .chain(w.map(move |ev| (k.clone(), Some(ev))))
            .chain(futures::stream::once(async move { (end, None) }));
        let (events, stop) = futures::stream::abortable(events);
        *lock(&self.watched) = Some(stop);
        Ok(events.boxed())
    }
}

impl Drop for Handle {
    fn drop(&mut self) {
        if let Some(stop) = lock(&self.watched).take() {
            stop.abort();
        }
        if let Some(t) = lock(&self.conflicts).take() {
            t.abort();
        }
    }
}

/// What a conflict watch tells the daemon ([`NetlinkAddress::take_conflict_reports`]): both
/// change what [`NetlinkAddress::conflict`] shows, outside any event of the state machine.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ConflictReport {
    /// Another host uses a held address (a MAC new in its conflict): the alarm text, naming
    /// the address, the interface and the MAC.
    Alarm(String),
    /// The watch of a conflict shown in status ended with an error (its link went down, its
    /// socket failed): status shows the conflict as not watched
    /// ([`AddressConflict::unwatched`]) until the watch is open again
    /// ([`ConflictReport::Watched`]) or the clear period after its last frame passes
    /// ([`ConflictReport::Cleared`]).
    Unwatched,
    /// The watch of a conflict shown as not watched is open again.
    Watched,
    /// A conflict shown in status is no longer shown: it cleared (no conflicting frame for the
    /// clear period, the last probe unanswered), or could not be vouched for over the clear
    /// period (its watch not open, or its probes not sent; logged as a warning), or its
    /// address is no longer held here.
    Cleared,
}

/// The next conflict report from [`NetlinkAddress::take_conflict_reports`]'s receiver; never
/// without one.
pub async fn next_conflict_report(
    rx: &mut Option<UnboundedReceiver<ConflictReport>>,
) -> Option<ConflictReport> {
    match rx {
        Some(rx) => rx.recv().await,
        None => std::future::pending().await,
    }
}

/// Where a conflict task sends its reports and how long a conflict stays shown.
#[derive(Debug, Clone)]
struct Alarms {
    tx: UnboundedSender<ConflictReport>,
    clear_after: Duration,
}

/// Tells the conflict watch tasks apart ([`Seen::watch`]).
static WATCH_IDS: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

/// Forgets the conflict of a watch task when it ends (returns, or is aborted) and reports it
/// cleared: what is not watched any more is not shown. A later task's conflict is left alone.
struct ForgetOnEnd {
    seen: Arc<std::sync::Mutex<Option<Seen>>>,
    watch: u64,
    tx: UnboundedSender<ConflictReport>,
}

impl Drop for ForgetOnEnd {
    fn drop(&mut self) {
        let mut s = lock(&self.seen);
        if s.as_ref().is_some_and(|s| s.watch == self.watch) {
            *s = None;
            let _ = self.tx.send(ConflictReport::Cleared);
        }
    }
}

/// Stops showing the conflict in `seen` that nothing could vouch for over the clear period
/// (`why`), if it is still the one whose last frame was at `last`: a warning, and the report
/// that tells the followers.
fn expire(
    seen: &std::sync::Mutex<Option<Seen>>,
    last: Instant,
    alarms: &Alarms,
    (address, interface): (&str, &str),
    why: &str,
) {
    let Some(was) = lock(seen).take_if(|s| s.last == last) else {
        return;
    };
    warn!(%address, %interface, macs = ?was.macs, frames = was.frames,
        quiet_s = alarms.clear_after.as_secs(), reason = why,
        "address conflict no longer shown: no conflicting frame for the clear period, but \
         nothing could check that the other host let the address go");
    let _ = alarms.tx.send(ConflictReport::Cleared);
}

/// The conflict watch of one held address (module docs), for as long as the address is held
/// here: a watch that cannot be opened or ends with an error (its link went down) is opened
/// again after [`WATCH_RETRY_MIN`], doubling up to [`WATCH_RETRY_MAX`], or at once when the
/// link comes back ([`Handle::link_back`]). A conflict shown when its watch ended is shown as
/// not watched meanwhile, and no longer once the clear period after its last frame passed with
/// the watch still not open. The task holds the handle weakly: a handle dropped by a reload
/// stops it ([`Handle`]'s `Drop`); its conflict is forgotten when it ends.
async fn watch_conflicts(h: std::sync::Weak<Handle>, (net, interface): Key, alarms: Alarms) {
    let address = net.to_string();
    let (seen, retry, mut while_held) = match h.upgrade() {
        Some(h) => (h.seen.clone(), h.retry.clone(), h.while_held.subscribe()),
        None => return,
    };
    let id = WATCH_IDS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let _forget = ForgetOnEnd {
        seen: seen.clone(),
        watch: id,
        tx: alarms.tx.clone(),
    };
    let mut defender = Defender::default();
    let mut backoff = WATCH_RETRY_MIN;
    let mut failing = false;
    loop {
        let w = {
            let Some(h) = h.upgrade() else { return };
            let w = h.vip.lock().await.conflict_watch().await;
            w
        };
        match w {
            Ok(mut w) => {
                if failing {
                    info!(%address, %interface, "conflict watch open again");
                }
                failing = false;
                let watched_again = lock(&seen)
                    .as_mut()
                    .is_some_and(|s| s.unwatched.take().is_some());
                if watched_again {
                    info!(%address, %interface, "the address conflict shown is watched again");
                    let _ = alarms.tx.send(ConflictReport::Watched);
                }
                let opened = Instant::now();
                let mut task = ConflictTask {
                    h: &h,
                    seen: &seen,
                    alarms: &alarms,
                    defender: &mut defender,
                    watch: id,
                    address: &address,
                    interface: &interface,
                    ipv6: net.addr().is_ipv6(),
                    while_held: &mut while_held,
                };
                let Some(e) = task.run(&mut w).await else {
                    return;
                };
                warn!(%address, %interface, error = %e,
                    "conflict watch ended: opened again when the link is back");
                let unwatched = lock(&seen)
                    .as_mut()
                    .is_some_and(|s| s.watch == id && s.unwatched.replace(e.to_string()).is_none());
                if unwatched {
                    warn!(%address, %interface, error = %e,
                        "the address conflict shown is not watched until the watch is open \
                         again; shown as such, for the clear period after its last frame at \
                         most");
                    let _ = alarms.tx.send(ConflictReport::Unwatched);
                }
                if opened.elapsed() >= WATCH_RETRY_MAX {
                    backoff = WATCH_RETRY_MIN;
                }
            }
            Err(e) if !failing => {
                failing = true;
                warn!(%address, %interface, error = %e,
                    "no conflict watch: another host using the address is not noticed until \
                     it opens (retried)");
            }
            Err(e) => debug!(%address, %interface, error = %e, "conflict watch still not open"),
        }
        let reopen = Instant::now() + backoff;
        loop {
            // A conflict its watch cannot vouch for is not shown past the clear period.
            let unwatched = lock(&seen).as_ref().and_then(|s| {
                let why = s.unwatched.clone()?;
                Some((s.last, s.shown_until(alarms.clear_after), why))
            });
            let until = unwatched.as_ref().map(|u| u.1);
            tokio::select! {
                _ = tokio::time::sleep_until(reopen) => break,
                _ = retry.notified() => break,
                _ = tokio::time::sleep_until(until.unwrap_or(reopen)), if until.is_some() => {
                    if let Some((last, _, why)) = unwatched {
                        let why = format!("its watch is not open: {why}");
                        expire(&seen, last, &alarms, (&address, &interface), &why);
                    }
                }
            }
        }
        backoff = (backoff * 2).min(WATCH_RETRY_MAX);
    }
}

/// The most other MACs one conflict lists and raises an alarm for.
const MAX_CONFLICT_MACS: usize = 8;

/// One open conflict watch of [`watch_conflicts`] and what it updates.
struct ConflictTask<'a> {
    h: &'a std::sync::Weak<Handle>,
    seen: &'a std::sync::Mutex<Option<Seen>>,
    alarms: &'a Alarms,
    defender: &'a mut Defender,
    watch: u64,
    address: &'a str,
    interface: &'a str,
    /// The address is IPv6 (its probe's answer goes to all-nodes).
    ipv6: bool,
    /// The period of the probe while held and no conflict is shown (`None`: off).
    while_held: &'a mut tokio::sync::watch::Receiver<Option<Duration>>,
}

impl ConflictTask<'_> {
    /// Logs, alarms (once per other MAC and episode) and defends each conflict. While none is
    /// shown, probes for the address every `while_held` period (from the watch's opening; off
    /// with `None`): another holder's kernel answers, even when it sends nothing by itself (a
    /// healed partition), and the answer is a conflict. While one is shown, probes at each
    /// defence interval and once more before clearing it, and clears it when no conflicting
    /// frame came for `clear_after` and that last probe stayed unanswered for
    /// [`PROBE_ANSWER_WAIT`]. Returns the watch's error, `None` once the handle is gone.
    async fn run(&mut self, w: &mut vip::ConflictWatch) -> Option<VipError> {
        let (address, interface) = (self.address, self.interface);
        let clear_after = self.alarms.clear_after;
        // Short clear periods (tests) probe more often, so a holder is asked within one.
        let probe_every = DEFEND_INTERVAL
            .min(clear_after / 2)
            .max(Duration::from_millis(10));
        // Never past the next periodic probe, which would replace the last one: the conflict
        // would never clear (short clear periods).
        let answer_wait = PROBE_ANSWER_WAIT.min(clear_after).min(probe_every);
        // Status stops showing a conflict then ([`Seen::shown_until`]); one whose last probe
        // could not be sent is reported then, not cleared.
        let expire_after = clear_after + PROBE_ANSWER_WAIT.min(clear_after);
        // The last probe tried in this episode, and whether it could not be sent (then it
        // proves nothing and is tried again after `probe_every`).
        let mut probed: Option<Instant> = None;
        let mut unsent = false;
        // The probe while held: the last one tried (the watch's opening before the first: the
        // claim has just probed and announced), the last one sent, and whether sends fail
        // (warned once).
        let mut held_tried = Instant::now();
        let mut held_sent: Option<Instant> = None;
        let mut held_failing = false;
        loop {
            let last = lock(self.seen).as_ref().map(|s| s.last);
            if last.is_none() {
                // No conflict shown: only the probe while held is due.
                probed = None;
                let period = *self.while_held.borrow_and_update();
                let next = period.map(|p| held_tried + p);
                tokio::select! {
                    r = w.next() => {
                        let c = match r {
                            Ok(c) => c,
                            Err(e) => return Some(e),
                        };
                        // As below: an IPv6 holder's answer misleads the neighbours.
                        let answered = self.ipv6
                            && held_sent
                                .is_some_and(|p| c.at.saturating_duration_since(p) <= answer_wait);
                        self.conflict(c, answered).await?;
                    }
                    // A reload changed the period: the next probe is due from the last one.
                    // The sender goes with the handle.
                    r = self.while_held.changed() => r.ok()?,
                    _ = tokio::time::sleep_until(next.unwrap_or_else(Instant::now)), if next.is_some() => {
                        held_tried = Instant::now();
                        match w.probe().await {
                            Ok(()) => {
                                held_sent = Some(held_tried);
                                if std::mem::take(&mut held_failing) {
                                    info!(%address, %interface, "probes while held sent again");
                                }
                                debug!(%address, %interface, "probe while held sent");
                            }
                            Err(e) if !held_failing => {
                                held_failing = true;
                                warn!(%address, %interface, error = %e,
                                    "probe while held not sent: another host holding the \
                                     address silently is not noticed meanwhile (retried)");
                            }
                            Err(e) => debug!(%address, %interface, error = %e,
                                "probe while held still not sent"),
                        }
                    }
                }
                continue;
            }
            let wake = last.map(|last| {
                let clear_at = last + clear_after;
                let periodic = probed.map_or_else(Instant::now, |p| p + probe_every);
                let check = match probed {
                    Some(p) if p >= clear_at && !unsent => p + answer_wait,
                    // The probe could not be sent: it is no longer shown from then on.
                    Some(p) if p >= clear_at => (p + probe_every).min(last + expire_after),
                    _ => clear_at,
                };
                periodic.min(check)
            });
            tokio::select! {
                r = w.next() => {
                    let c = match r {
                        Ok(c) => c,
                        Err(e) => return Some(e),
                    };
                    // An IPv6 holder answers our DAD probe to all-nodes with the override flag:
                    // neighbours then point at it, so an answer is defended at once.
                    let answered = self.ipv6
                        && probed.is_some_and(|p| c.at.saturating_duration_since(p) <= answer_wait);
                    self.conflict(c, answered).await?;
                }
                _ = tokio::time::sleep_until(wake.unwrap_or_else(Instant::now)), if wake.is_some() => {
                    let Some(last) = last else { continue };
                    let now = Instant::now();
                    let clear_at = last + clear_after;
                    if !unsent && probed.is_some_and(|p| p >= clear_at && now >= p + answer_wait) {
                        let was = lock(self.seen).take_if(|s| s.last == last);
                        if let Some(was) = was {
                            info!(%address, %interface, macs = ?was.macs, frames = was.frames,
                                quiet_s = clear_after.as_secs(),
                                "address conflict cleared: no conflicting frame since, probes \
                                 for the address unanswered");
                            let _ = self.alarms.tx.send(ConflictReport::Cleared);
                            // Neighbours the other host's frames pointed at it learn this
                            // node's MAC again now, not at their own cache timeout.
                            let h = self.h.upgrade()?;
                            let sent = h.vip.lock().await.defend(AnnounceMode::Request).await;
                            if let Err(e) = sent {
                                warn!(%address, error = %e, "announcement after the conflict failed");
                            }
                        }
                        continue;
                    }
                    if unsent && now >= last + expire_after {
                        let why = "the probes for the address could not be sent";
                        expire(self.seen, last, self.alarms, (address, interface), why);
                        continue;
                    }
                    let due = probed.is_none_or(|p| now >= p + probe_every || p < clear_at && now >= clear_at);
                    if due {
                        // Only a probe sent can go unanswered: a failed send clears nothing.
                        probed = Some(now);
                        held_tried = now;
                        unsent = false;
                        match w.probe().await {
                            Ok(()) => debug!(%address, %interface, "conflict probe sent"),
                            Err(e) => {
                                unsent = true;
                                warn!(%address, %interface, error = %e, "conflict probe not sent");
                            }
                        }
                    }
                }
            }
        }
    }

    /// One conflicting frame: counted, an alarm for a MAC new in this episode, a defence
    /// when one is due. `None` once the handle is gone.
    async fn conflict(&mut self, c: vip::Conflict, answered: bool) -> Option<()> {
        let (address, interface) = (self.address, self.interface);
        let new = {
            let mut s = lock(self.seen);
            match s.as_mut() {
                Some(s) => {
                    s.last = s.last.max(c.at);
                    s.frames += 1;
                    // Bounded: random source MACs (a spoofer) raise MAX_CONFLICT_MACS alarms.
                    let new = !s.macs.contains(&c.mac) && s.macs.len() < MAX_CONFLICT_MACS;
                    if new {
                        s.macs.push(c.mac);
                    }
                    new
                }
                None => {
                    *s = Some(Seen {
                        macs: vec![c.mac],
                        first: c.at,
                        last: c.at,
                        frames: 1,
                        watch: self.watch,
                        unwatched: None,
                    });
                    true
                }
            }
        };
        if new {
            warn!(%address, %interface, mac = %c.mac, kind = ?c.kind,
                "address conflict: another host uses the address; kept and defended \
                 (the authority decides who holds it)");
            let _ = self.alarms.tx.send(ConflictReport::Alarm(format!(
                "address {address} on {interface}: {} also answers for it (address \
                 conflict, RFC 5227); kept here, the authority decides who holds it",
                c.mac
            )));
        }
        if self.defender.should_defend(c.at) || answered {
            let h = self.h.upgrade()?;
            let sent = h.vip.lock().await.defend(AnnounceMode::Request).await;
            match sent.map(|v| v.into_iter().find_map(|r| r.result.err())) {
                Ok(None) => debug!(%address, mac = %c.mac, "defensive announcement sent"),
                Ok(Some(e)) | Err(e) => {
                    warn!(%address, error = %e, "defensive announcement failed")
                }
            }
        }
        Some(())
    }
}

/// A std mutex's guard; a panic elsewhere while holding it leaves plain data, still usable.
fn lock<T>(m: &std::sync::Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

fn key(a: &AddressConfig) -> Key {
    (a.address, a.interface.clone())
}

/// A started probe older than this is dropped and the claim probes again (a promote takes
/// well under a second; the probe's socket buffer is not meant to cover minutes).
pub const PROBE_MAX_AGE: Duration = Duration::from_secs(10);

/// How long a probe started on the peer's release notice keeps probing for a promote to take
/// it: about 16 ARP probes or DAD solicitations a second at the default spacing, once per
/// planned switchover. An authority signals the new primary well within it (the lab one host
/// round trip after the old primary is Secondary, Pacemaker after its demote and notify
/// actions, HA-Lizard both at once); a promote later than that probes afresh.
pub const EARLY_PROBE_KEPT: Duration = Duration::from_secs(3);

/// A probe started on the peer's release notice whose probes still go out: a promote that
/// takes it has a probe as recent as one it would start, and its claim waits only for the
/// last probe's answer time ([`vip::Vip::start_kept_probe`]).
fn usable(session: &ProbeSession) -> bool {
    session.probing()
}

/// [`usable`] with at least one probe window of its keep left: its probes then go on at least
/// as long as those of a probe the promote would start now, so taking it is never a staler
/// probe at the claim than not taking it.
fn takeable(session: &ProbeSession, policy: &ProbePolicy) -> bool {
    usable(session) && session.started().elapsed() + policy.window <= EARLY_PROBE_KEPT
}

fn err(e: VipError) -> BackendError {
    BackendError::Vip(e)
}

/// The probe policy of an address, `None` when probing is disabled in the config.
fn probe_policy(a: &AddressConfig) -> Option<ProbePolicy> {
    a.probe.enabled.then(|| {
        let mut p = ProbePolicy::default();
        p.window = Duration::from_millis(a.probe.timeout_ms);
        p
    })
}

fn options(a: &AddressConfig) -> ClaimOptions {
    let mut announce = AnnouncePolicy::default();
    announce.count = a.announce.count.max(1);
    announce.interval = Duration::from_millis(a.announce.interval_ms);
    ClaimOptions::default()
        .probe(probe_policy(a))
        .announce(announce)
}

impl NetlinkAddress {
    /// One handle per configured address. Must run inside a tokio runtime.
    pub fn new(config: &Config) -> Result<NetlinkAddress, BackendError> {
        let mut handles = Handles::default();
        for a in &config.addresses {
            handles.by_key.insert(key(a), Arc::new(Handle::new(a)?));
        }
        let (alarms, alarms_rx) = tokio::sync::mpsc::unbounded_channel();
        Ok(NetlinkAddress {
            handles: std::sync::Mutex::new(handles),
            tickle: None,
            notices: std::sync::Mutex::new(None),
            alarms,
            alarms_rx: std::sync::Mutex::new(Some(alarms_rx)),
            clear_after: CONFLICT_CLEAR_AFTER,
        })
    }

    /// Shows a conflict until no conflicting frame came for `d` instead of
    /// [`CONFLICT_CLEAR_AFTER`] (tests).
    pub fn with_conflict_clear_after(mut self, d: Duration) -> NetlinkAddress {
        self.clear_after = d;
        self
    }

    /// The address conflicts for the daemon: an alarm to raise per conflict (a new other MAC,
    /// or the first frame after a cleared one), and each clearing; `None` once taken.
    pub fn take_conflict_reports(&self) -> Option<UnboundedReceiver<ConflictReport>> {
        lock(&self.alarms_rx).take()
    }

    /// Other hosts using `address` (as status spells it) on `interface` while it is held
    /// here: their MACs and when, until the conflict clears; `None` otherwise, also when its
    /// last frame is older than the clear period (and the last probe's wait): a watch that
    /// stopped without clearing it does not leave it shown.
    pub fn conflict(&self, address: &str, interface: &str) -> Option<AddressConflict> {
        let h = lock(&self.handles);
        let (_, h) = h
            .by_key
            .iter()
            .find(|((net, i), _)| i == interface && net.to_string() == address)?;
        let s = lock(&h.seen).clone()?;
        // One its watch did not clear (the task stopped without ending): not shown.
        if Instant::now() >= s.shown_until(self.clear_after) {
            return None;
        }
        let ms = |t: Instant| u64::try_from(t.elapsed().as_millis()).unwrap_or(u64::MAX);
        Some(AddressConflict {
            mac: s.macs.first()?.to_string(),
            macs: s.macs.iter().map(ToString::to_string).collect(),
            first_seen_ms_ago: ms(s.first),
            last_seen_ms_ago: ms(s.last),
            frames: s.frames,
            unwatched: s.unwatched,
        })
    }

    fn alarms(&self) -> Alarms {
        Alarms {
            tx: self.alarms.clone(),
            clear_after: self.clear_after,
        }
    }

    fn follow_conflicts(&self, k: &Key, held: bool) {
        let Some(h) = lock(&self.handles).by_key.get(k).cloned() else {
            return;
        };
        h.follow_conflicts(k, held, &self.alarms());
    }

    fn link_back(&self, k: &Key) {
        let Some(h) = lock(&self.handles).by_key.get(k).cloned() else {
            return;
        };
        h.link_back(k, &self.alarms());
    }

    /// Each claim then sends tickle ACKs to the connections on the address that `link` learnt
    /// from the peer, once the first announcement is out ([`PeerLink::tickle`]).
    pub fn with_tickle(mut self, link: Arc<PeerLink>) -> NetlinkAddress {
        self.notices = std::sync::Mutex::new(Some(link.released_notices()));
        self.tickle = Some(link);
        self
    }

    /// The tickle peer link, if any.
    pub fn peer_link(&self) -> Option<&Arc<PeerLink>> {
        self.tickle.as_ref()
    }

    /// Before a reload: a handle for each address of `config` that has none yet (a new
    /// address, or one on another interface), followed by the running watch from now on.
    /// Nothing is added or claimed.
    ///
    /// # Errors
    /// [`BackendError::Vip`] when a handle cannot be made or, with a watch running, its
    /// interface does not exist ([`VipError::UnknownInterface`]); the handles made before
    /// stay until [`NetlinkAddress::retain`].
    pub async fn add_missing(&self, config: &Config) -> Result<(), BackendError> {
        for a in &config.addresses {
            let k = key(a);
            if lock(&self.handles).by_key.contains_key(&k) {
                continue;
            }
            let h = Arc::new(Handle::new(a)?);
            let inbox = lock(&self.handles).watch.clone();
            if let Some(inbox) = inbox {
                let events = h.subscribe(&k).await?;
                // The watch ended: nothing follows any address any more (logged there).
                let _ = inbox.send(events);
            }
            lock(&self.handles).by_key.insert(k, h);
        }
        Ok(())
    }

    /// After a reload: only the handles of `config`'s addresses are kept; the others (released
    /// by the reload's demote) are dropped and leave the watch. The kept ones take `config`'s
    /// probe period while held (`[address.probe] while_held_s`), their running conflict watch
    /// at once.
    pub fn retain(&self, config: &Config) {
        let keep: Vec<Key> = config.addresses.iter().map(key).collect();
        let mut handles = lock(&self.handles);
        handles.by_key.retain(|k, _| keep.contains(k));
        for a in &config.addresses {
            if let Some(h) = handles.by_key.get(&key(a)) {
                let period = a.probe.while_held();
                h.while_held
                    .send_if_modified(|p| std::mem::replace(p, period) != period);
                *lock(&h.policy) = probe_policy(a);
            }
        }
    }

    fn handle(&self, a: &AddressConfig) -> Result<Arc<Handle>, BackendError> {
        lock(&self.handles)
            .by_key
            .get(&key(a))
            .cloned()
            .ok_or_else(|| BackendError::Failed(format!("{} is not configured", a.address)))
    }

    /// The peer's planned demote released `ips` (its notice over the tickle link): starts the
    /// probe of each configured one that is not held here, probed, and has no probe running
    /// (one of a promote, or of an earlier notice). It keeps probing for up to
    /// [`EARLY_PROBE_KEPT`], so a promote that starts in that time takes it and its claim waits
    /// only for the last probe's answer time ([`Address::start_probe`]). Failures are only
    /// logged: the promote then probes as usual.
    async fn probe_early(&self, ips: &[std::net::IpAddr]) {
        let handles: Vec<(Key, Arc<Handle>)> = lock(&self.handles)
            .by_key
            .iter()
            .filter(|(k, _)| ips.contains(&k.0.addr()))
            .map(|(k, h)| (k.clone(), h.clone()))
            .collect();
        for (k, h) in handles {
            let Some(policy) = lock(&h.policy).clone() else {
                continue;
            };
            // A promote's own probe runs already, or one of an earlier notice. One that no
            // longer probes is no reason to wait: a promote refused after it started its probe
            // leaves it behind, and the next promote would not take it (it starts afresh).
            let promoting = h.probe.lock().await.as_ref().is_some_and(usable);
            if promoting || h.early.lock().await.as_ref().is_some_and(usable) {
                continue;
            }
            let mut v = h.vip.lock().await;
            if !matches!(v.is_held().await, Ok(false)) {
                continue;
            }
            let session = match v.start_kept_probe(&policy, EARLY_PROBE_KEPT).await {
                Ok(s) => s,
                Err(e) => {
                    debug!(address = %k.0, error = %e, "probe on the peer's release not started");
                    continue;
                }
            };
            let started = session.started();
            // Stored before the address's lock is let go: a promote's probe takes it then.
            *h.early.lock().await = Some(session);
            drop(v);
            info!(address = %k.0, interface = %k.1,
                "the peer released the address: probing it ahead of a promote");
            // Once it no longer probes it is not taken: dropped then, with its socket.
            let h = Arc::downgrade(&h);
            tokio::spawn(async move {
                tokio::time::sleep(EARLY_PROBE_KEPT.max(policy.window)).await;
                let Some(h) = h.upgrade() else { return };
                let mut slot = h.early.lock().await;
                if slot.as_ref().is_some_and(|s| s.started() == started) {
                    *slot = None;
                }
            });
        }
    }

    /// Is a probe started on the peer's release notice waiting for a promote to take it
    /// (tests)?
    pub async fn early_probe_waiting(&self, a: &AddressConfig) -> bool {
        match self.handle(a) {
            Ok(h) => h.early.lock().await.as_ref().is_some_and(usable),
            Err(_) => false,
        }
    }

    /// The started probe of `a`, unless it is too old to trust.
    async fn take_probe(&self, a: &AddressConfig) -> Result<Option<ProbeSession>, BackendError> {
        let s = self.handle(a)?.probe.lock().await.take();
        Ok(s.filter(|s| s.started().elapsed() < PROBE_MAX_AGE))
    }

    /// Report additions and removals of every address as [`Event::Address`] and its link going
    /// down or coming back as [`Event::Link`] (equivalent to `ip monitor link address`): the
    /// state machine restores an address removed by hand and claims one that waited for its
    /// link. A held address's announcements follow the link inside `vip` (a fresh burst when
    /// it comes back or its MAC changes). Addresses a reload adds are followed from their
    /// [`NetlinkAddress::add_missing`], removed ones no more after [`NetlinkAddress::retain`].
    /// While an address is held here its conflict watch runs (module docs).
    pub async fn watch(&self, tx: UnboundedSender<Event>) -> Result<(), BackendError> {
        let (inbox_tx, mut inbox) = tokio::sync::mpsc::unbounded_channel();
        let existing: Vec<(Key, Arc<Handle>)> = {
            let mut h = lock(&self.handles);
            h.watch = Some(inbox_tx);
            h.by_key
                .iter()
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect()
        };
        let mut all = futures::stream::SelectAll::new();
        for (k, h) in existing {
            all.push(h.subscribe(&k).await?);
        }
        let taken = lock(&self.notices).take();
        let mut notices = taken.or_else(|| self.tickle.as_ref().map(|l| l.released_notices()));
        loop {
            let (k, ev) = tokio::select! {
                Some(events) = inbox.recv() => {
                    all.push(events);
                    continue;
                }
                r = async {
                    match notices.as_mut() {
                        Some(n) => n.recv().await,
                        None => std::future::pending().await,
                    }
                } => {
                    use tokio::sync::broadcast::error::RecvError;
                    match r {
                        Ok(ips) => self.probe_early(&ips).await,
                        Err(RecvError::Lagged(n)) => {
                            debug!(notices = n, "peer's release notices dropped: probed at the promote");
                        }
                        Err(RecvError::Closed) => notices = None,
                    }
                    continue;
                }
                Some(item) = all.next(), if !all.is_empty() => item,
                else => break,
            };
            // Events name the address in its canonical spelling, as plans and status do.
            let address = k.0.to_string();
            let Some(ev) = ev else {
                warn!(%address, "address watch ended: changes to it are not seen");
                continue;
            };
            let held = match ev {
                VipEvent::Added => true,
                VipEvent::Removed => false,
                // The address itself is reported by its own events (a re-read here could be
                // older than a claim that follows it).
                VipEvent::LinkDown | VipEvent::LinkUp => {
                    let up = ev == VipEvent::LinkUp;
                    debug!(%address, up, "address link");
                    if up {
                        self.link_back(&k);
                    }
                    if tx.send(Event::Link { address, up }).is_err() {
                        return Ok(());
                    }
                    continue;
                }
                // A lost burst (overrun): read the truth again.
                VipEvent::Overrun => {
                    let Some(h) = lock(&self.handles).by_key.get(&k).cloned() else {
                        continue;
                    };
                    let v = h.vip.lock().await;
                    match (v.is_held().await, v.link_up().await) {
                        (Ok(held), Ok(up)) => {
                            let link = Event::Link {
                                address: address.clone(),
                                up,
                            };
                            if tx.send(link).is_err() {
                                return Ok(());
                            }
                            held
                        }
                        (Err(e), _) | (_, Err(e)) => {
                            warn!(%address, error = %e, "address check after watch event");
                            continue;
                        }
                    }
                }
                // A MAC change is vip's to announce.
                _ => continue,
            };
            self.follow_conflicts(&k, held);
            if tx.send(Event::Address { address, held }).is_err() {
                return Ok(());
            }
        }
        warn!("address watch ended");
        Err(BackendError::Unavailable("address watch ended".into()))
    }
}

impl Address for NetlinkAddress {
    async fn held(&self, a: &AddressConfig) -> Result<bool, BackendError> {
        self.handle(a)?
            .vip
            .lock()
            .await
            .is_held()
            .await
            .map_err(err)
    }

    /// Probes the link (`vip::Vip::probe`, like `arping -D -I IF ADDR`) for the configured
    /// probe window. An address held on this node's interface is not "elsewhere": `false`
    /// without probing. With `probe.enabled = false` in the config this answers `false` without
    /// sending anything (the executor skips the check then anyway). The address held on another
    /// interface of this host, or the interface down/missing, is an error, which refuses the
    /// promote with that reason.
    async fn link_up(&self, a: &AddressConfig) -> Result<bool, BackendError> {
        self.handle(a)?
            .vip
            .lock()
            .await
            .link_up()
            .await
            .map_err(err)
    }

    async fn held_on_other_interface(
        &self,
        a: &AddressConfig,
    ) -> Result<Option<String>, BackendError> {
        self.handle(a)?
            .vip
            .lock()
            .await
            .held_on_other_interface()
            .await
            .map_err(err)
    }

    async fn answered_elsewhere(&self, a: &AddressConfig) -> Result<bool, BackendError> {
        let Some(policy) = probe_policy(a) else {
            return Ok(false);
        };
        let h = self.handle(a)?;
        let mut v = h.vip.lock().await;
        if v.is_held().await.map_err(err)? {
            return Ok(false);
        }
        let r = v.probe(&policy).await.map_err(err)?;
        if let Some(mac) = r.conflict {
            crate::metrics::ADDRESS_EVENTS.conflict(&a.address.to_string());
            warn!(address = %a.address, interface = %a.interface, %mac, "another host answers for the address");
        }
        Ok(r.conflict.is_some())
    }

    async fn start_probe(&self, a: &AddressConfig) -> Result<(), BackendError> {
        let Some(policy) = probe_policy(a) else {
            return Ok(());
        };
        let h = self.handle(a)?;
        let mut v = h.vip.lock().await;
        if v.is_held().await.map_err(err)? {
            return Ok(());
        }
        // Started on the peer's release notice and still probing: it covers every frame from
        // its start until the claim, a probe started now would cover them from now. Once its
        // probes have stopped, a host that took the address since, answering only when asked,
        // would not be asked: a fresh probe then.
        let early = h.early.lock().await.take().filter(|s| takeable(s, &policy));
        if let Some(s) = early {
            debug!(address = %a.address, age_ms = s.started().elapsed().as_millis() as u64,
                "the probe started on the peer's release is taken");
            *h.probe.lock().await = Some(s);
            return Ok(());
        }
        let session = v.start_probe(&policy).await.map_err(err)?;
        *h.probe.lock().await = Some(session);
        Ok(())
    }

    async fn probe_conflict(&self, a: &AddressConfig) -> Result<bool, BackendError> {
        let h = self.handle(a)?;
        let mut slot = h.probe.lock().await;
        match slot.as_mut() {
            Some(s) if s.started().elapsed() < PROBE_MAX_AGE => {
                let other = s.conflict().await.map_err(err)?;
                if let Some(mac) = other {
                    crate::metrics::ADDRESS_EVENTS.conflict(&a.address.to_string());
                    warn!(address = %a.address, interface = %a.interface, %mac, "another host answers for the address");
                }
                Ok(other.is_some())
            }
            _ => {
                *slot = None;
                drop(slot);
                self.answered_elsewhere(a).await
            }
        }
    }

    async fn claim_near(&self, a: &AddressConfig) {
        let Ok(h) = self.handle(a) else {
            return;
        };
        // Held only while a verdict is awaited (`probe_conflict`), which ends kept probing
        // anyway: nothing to tell then, and no wait in front of the serve.
        let Ok(mut slot) = h.probe.try_lock() else {
            return;
        };
        if let Some(s) = slot.as_mut() {
            s.claim_near();
            debug!(address = %a.address, "the last target in front of it starts serving: its claim is near");
        }
    }

    async fn claim(&self, a: &AddressConfig) -> Result<(), BackendError> {
        let opts = options(a);
        let probe = self.take_probe(a).await?;
        let h = self.handle(a)?;
        // An early probe the promote did not take stops: its probes would look like a second
        // prober's to this claim's neighbours and to the peer's next claim.
        h.early.lock().await.take();
        let mut v = h.vip.lock().await;
        let report = match probe {
            Some(p) => v.claim_probed(p, &opts).await,
            None => v.claim(&opts).await,
        };
        // Held already while its link is down (an address event older than the claim): it
        // stays, and its running schedule announces it when the link comes back.
        if let Err(VipError::InterfaceDown { .. }) = &report {
            if v.is_held().await.unwrap_or(false) {
                return Ok(());
            }
        }
        drop(v);
        let report = match report {
            // Nothing added: a refusal (the promote is undone and the node is where it was).
            Err(e @ VipError::Conflict { .. }) => {
                crate::metrics::ADDRESS_EVENTS.conflict(&a.address.to_string());
                return Err(BackendError::Vip(e));
            }
            r => r.map_err(err)?,
        };
        // The remaining announcements are vip's background task (held by the Vip, stopped by
        // release); only log their results here. The stream ends when that task does.
        let mut announcements = report.announcements;
        let address = a.address.to_string();
        tokio::spawn(async move {
            while let Some(r) = announcements.next().await {
                crate::metrics::ADDRESS_EVENTS.announcement(&address, r.result.is_ok());
                match r.result {
                    Ok(()) => debug!(%address, burst = r.burst, index = r.index, kind = ?r.kind,
                        at_ms = r.at.as_millis() as u64, "announcement sent"),
                    Err(e) => warn!(%address, burst = r.burst, index = r.index, kind = ?r.kind,
                        at_ms = r.at.as_millis() as u64, error = %e, "announcement failed"),
                }
            }
        });
        // The address is announced: the clients' answers to the tickles reach this host. An
        // optimisation: its failure is logged there and never fails the claim. On a congested
        // link the sends a full queue refused are retried for up to 155 ms first.
        if let Some(link) = &self.tickle {
            link.tickle(a.address.addr()).await;
        }
        Ok(())
    }

    async fn tell_released(&self, a: &AddressConfig) {
        if let Some(link) = &self.tickle {
            link.tell_released(&[a.address.addr()]).await;
        }
    }

    async fn hand_over(&self, ips: Vec<std::net::IpAddr>) -> Result<usize, String> {
        match &self.tickle {
            Some(link) => link.hand_over(&ips).await,
            None => Err("no [tickle] section".into()),
        }
    }

    async fn release(&self, a: &AddressConfig) -> Result<(), BackendError> {
        self.take_probe(a).await?;
        self.handle(a)?.early.lock().await.take();
        self.handle(a)?
            .vip
            .lock()
            .await
            .release()
            .await
            .map_err(err)?;
        // Its conflict watch stops now, not at the watch's removal event: a probe while held
        // sent after the release would look like a second prober to the node claiming it next.
        self.follow_conflicts(&key(a), false);
        Ok(())
    }
}
