//! The [`Vip`] handle: claim, release, is-held, watch.

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use rtnetlink::Handle;
use serde::{Deserialize, Serialize};
use tokio::task::JoinHandle;
use tokio::time::Instant;

use crate::address::{
    add_address, del_address, find_address, link_by_index, link_by_name, LinkInfo,
};
use crate::announce::{
    frames, send_round, spawn_rest, AnnounceCause, AnnounceMode, AnnouncePolicy, AnnounceResult,
    Announcements, Schedule,
};
use crate::conflict::ConflictWatch;
use crate::error::VipError;
use crate::packet::MacAddr;
use crate::probe::{probe, ProbePolicy};
use crate::socket::PacketSocket;
use crate::watch::VipWatch;

/// How to claim: probe first (or not), then how to announce.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
#[non_exhaustive]
pub struct ClaimOptions {
    /// Conflict probe before adding; `None` skips it (what IPaddr2 and keepalived do).
    pub probe: Option<ProbePolicy>,
    /// Announcement schedule.
    pub announce: AnnouncePolicy,
}

impl Default for ClaimOptions {
    fn default() -> Self {
        ClaimOptions {
            probe: Some(ProbePolicy::default()),
            announce: AnnouncePolicy::default(),
        }
    }
}

impl ClaimOptions {
    /// No probe, default announcements: the fastest claim.
    pub fn without_probe() -> Self {
        ClaimOptions {
            probe: None,
            ..ClaimOptions::default()
        }
    }

    /// Replaces the probe policy.
    pub fn probe(mut self, p: Option<ProbePolicy>) -> Self {
        self.probe = p;
        self
    }

    /// Replaces the announce policy.
    pub fn announce(mut self, a: AnnouncePolicy) -> Self {
        self.announce = a;
        self
    }
}

/// What a claim did and how long each step took.
#[derive(Debug)]
#[non_exhaustive]
pub struct ClaimReport {
    /// The address was already on the interface: no probe, no add, only a new announcement
    /// schedule.
    pub already_held: bool,
    /// Interface index.
    pub ifindex: u32,
    /// MAC address announced.
    pub mac: MacAddr,
    /// Probe time (`None` when not probed).
    pub probe: Option<Duration>,
    /// Link/address checks before the probe (two netlink round trips).
    pub check: Duration,
    /// `RTM_NEWADDR` round trip (zero when already held).
    pub add: Duration,
    /// Sending the first announcement.
    pub first_announce: Duration,
    /// Whole claim.
    pub total: Duration,
    /// Results of every announcement of this claim, the first one included.
    pub announcements: Announcements,
}

/// What a probe-only call ([`Vip::probe`]) heard.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct ProbeReport {
    /// MAC address of a host that answered for the address (or probed for it at the same
    /// time); `None` when the window passed in silence.
    pub conflict: Option<MacAddr>,
    /// Interface index probed on.
    pub ifindex: u32,
    /// This interface's MAC address (the probes' sender hardware address).
    pub mac: MacAddr,
    /// Whole call: checks, probes and listening (shorter than the window on a conflict).
    pub total: Duration,
}

/// A conflict probe running in the background ([`Vip::start_probe`]): it keeps listening
/// after its window until [`Vip::claim_probed`] (or [`ProbeSession::conflict`]) judges it, so
/// one probe covers the whole time between its start and the add. Dropping it stops it.
#[derive(Debug)]
pub struct ProbeSession {
    inner: crate::probe::Session,
    started: Instant,
}

impl ProbeSession {
    /// When the first probe went out.
    pub fn started(&self) -> Instant {
        self.started
    }

    /// Whether probes still go out (or a conflict heard already ended them: its verdict is
    /// one): no socket error ended it, and within the window, or, for a kept probe
    /// ([`Vip::start_kept_probe`]), until its verdict is asked or its keep has passed. A claim whose session still probes
    /// when it asks for the verdict has a probe at most one spacing old, answered or waited
    /// for ([`Vip::start_kept_probe`]); one whose keep ran out before has only what its socket
    /// heard since its last probe.
    pub fn probing(&self) -> bool {
        self.inner.probing()
    }

    /// The claim is near but not yet due (the agent says so when the last target in front of
    /// the address starts serving): from now on a kept probe ([`Vip::start_kept_probe`]) sends
    /// each probe past its policy's `count` only once the last one is as old as a probe of its
    /// own (not kept) can leave its last probe at its verdict (`window - (count - 1) x
    /// min_interval`, at least the answer time; 170 ms by default). A claim within that time
    /// finds its last probe's answer time mostly passed while the caller worked, instead of
    /// waiting for a probe just sent; a later claim finds the probes going on and waits as
    /// before. The window's own probes keep their spacing; nothing else changes: the socket
    /// listens on and every frame is judged at the verdict. Idempotent.
    pub fn claim_near(&mut self) {
        self.inner.claim_near();
    }

    /// Waits until the probe window has ended, then tells whether another host answered for
    /// the address (or probed for it) at any time since the first probe: its MAC, or `None`.
    /// May be called again later (frames that arrived meanwhile are judged then).
    ///
    /// # Errors
    /// [`VipError::Io`] when receiving failed.
    pub async fn conflict(&mut self) -> Result<Option<MacAddr>, VipError> {
        match self.inner.verdict().await {
            Ok(_) => Ok(None),
            Err(VipError::Conflict { mac, .. }) => Ok(Some(mac)),
            Err(e) => Err(e),
        }
    }
}

/// What a release did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct ReleaseReport {
    /// The address was on the interface and is now gone (`false`: nothing to do).
    pub removed: bool,
    /// Whole release.
    pub total: Duration,
}

/// A floating address (with prefix) on one interface.
///
/// Needs a tokio runtime with I/O and time enabled: it runs its own rtnetlink connection
/// task. Dropping it stops any announcements still scheduled (the address stays).
#[derive(Debug)]
pub struct Vip {
    iface: String,
    addr: IpAddr,
    prefix: u8,
    handle: Handle,
    conn: JoinHandle<()>,
    sender: Option<(u32, Arc<PacketSocket>)>,
    announcer: Option<JoinHandle<()>>,
}

impl Drop for Vip {
    fn drop(&mut self) {
        self.stop_announcing();
        self.conn.abort();
    }
}

impl Vip {
    /// A handle for `addr/prefix` on `iface`. Checks the address, opens a netlink socket; the
    /// interface itself is looked up at each claim (it may come and go).
    ///
    /// # Errors
    /// [`VipError::InvalidAddress`] for a prefix over 32 / 128 or an address that cannot float
    /// (unspecified, multicast, loopback); [`VipError::Io`] outside a tokio runtime or when the
    /// netlink socket cannot be opened.
    pub fn new(iface: impl Into<String>, addr: IpAddr, prefix: u8) -> Result<Vip, VipError> {
        let iface = iface.into();
        Vip::check_address(addr, prefix)?;
        if tokio::runtime::Handle::try_current().is_err() {
            return Err(VipError::Io {
                op: "Vip::new",
                source: std::io::Error::other("no tokio runtime"),
            });
        }
        let (conn, handle, _) =
            rtnetlink::new_connection().map_err(|e| VipError::io("netlink socket", &iface, e))?;
        let conn = tokio::spawn(conn);
        Ok(Vip {
            iface,
            addr,
            prefix,
            handle,
            conn,
            sender: None,
            announcer: None,
        })
    }

    /// The address check of [`Vip::new`], without a runtime or a socket (for configuration
    /// checkers that must accept nothing [`Vip::new`] refuses later).
    ///
    /// # Errors
    /// [`VipError::InvalidAddress`] for a prefix over 32 / 128 or an address that cannot float
    /// (unspecified, multicast, loopback, or the network or IPv4 broadcast address of its
    /// prefix: every host of the subnet sends there; /31, /32, /127 and /128 have no such
    /// address, RFC 3021 and RFC 6164).
    pub fn check_address(addr: IpAddr, prefix: u8) -> Result<(), VipError> {
        let max = if addr.is_ipv4() { 32 } else { 128 };
        if prefix > max || addr.is_unspecified() || addr.is_multicast() || addr.is_loopback() {
            return Err(VipError::InvalidAddress { addr, prefix });
        }
        if prefix + 1 < max {
            let (bits, host) = match addr {
                IpAddr::V4(a) => (u128::from(u32::from(a)), (1u128 << (32 - prefix)) - 1),
                IpAddr::V6(a) => (u128::from(a), u128::MAX >> prefix),
            };
            // network (IPv6: Subnet-Router anycast, RFC 4291 2.6.1); IPv4 broadcast
            if bits & host == 0 || (addr.is_ipv4() && bits & host == host) {
                return Err(VipError::InvalidAddress { addr, prefix });
            }
        }
        Ok(())
    }

    /// Interface name.
    pub fn iface(&self) -> &str {
        &self.iface
    }

    /// The floating address.
    pub fn addr(&self) -> IpAddr {
        self.addr
    }

    /// Its prefix length.
    pub fn prefix(&self) -> u8 {
        self.prefix
    }

    /// Deletes this address from interface `index` (true if it was there).
    async fn del_own(&self, index: u32) -> Result<bool, VipError> {
        del_address(&self.handle, index, &self.iface, self.addr, self.prefix).await
    }

    fn stop_announcing(&mut self) {
        if let Some(t) = self.announcer.take() {
            t.abort();
        }
    }

    fn sender(&mut self, ifindex: u32) -> Result<Arc<PacketSocket>, VipError> {
        match &self.sender {
            Some((i, s)) if *i == ifindex => Ok(s.clone()),
            _ => {
                let s = Arc::new(
                    PacketSocket::sender(ifindex)
                        .map_err(|e| VipError::io("open packet socket", &self.iface, e))?,
                );
                self.sender = Some((ifindex, s.clone()));
                Ok(s)
            }
        }
    }

    /// The interface, up and Ethernet, and its MAC.
    async fn ethernet_link_up(&self) -> Result<(LinkInfo, MacAddr), VipError> {
        let link = link_by_name(&self.handle, &self.iface).await?;
        if !link.is_up() {
            return Err(VipError::InterfaceDown {
                iface: self.iface.clone(),
            });
        }
        let mac = link.mac.ok_or_else(|| VipError::NotEthernet {
            iface: self.iface.clone(),
        })?;
        Ok((link, mac))
    }

    /// Link checks shared by [`Vip::claim`] and [`Vip::probe`]: the interface exists, is up and
    /// is Ethernet, and no other interface of this host holds the address. Returns the link, its
    /// MAC and whether this interface already holds the address.
    async fn check_link(&self) -> Result<(LinkInfo, MacAddr, bool), VipError> {
        let (link, mac) = self.ethernet_link_up().await?;
        let holders = find_address(&self.handle, self.addr).await?;
        let already_held = holders.iter().any(|(i, _)| *i == link.index);
        if let Some(iface) = self.other_holder(&holders, Some(link.index)).await {
            return Err(VipError::AddressOnOtherInterface {
                addr: self.addr,
                iface,
            });
        }
        Ok((link, mac, already_held))
    }

    /// The name (or `#index`) of an interface in `holders` other than `own`.
    async fn other_holder(&self, holders: &[(u32, u8)], own: Option<u32>) -> Option<String> {
        let (other, _) = holders.iter().find(|(i, _)| Some(*i) != own)?;
        Some(match link_by_index(&self.handle, *other).await {
            Ok(l) => l.name,
            Err(_) => format!("#{other}"),
        })
    }

    /// The interface of this host, other than this one, that holds the address (equivalent to
    /// `ip addr show to ADDR` listing another device), or `None`: an address left on the wrong
    /// interface answers for this host there, and [`Vip::release`] does not remove it.
    ///
    /// # Errors
    /// [`VipError::Netlink`] when the link or address dump fails.
    pub async fn held_on_other_interface(&self) -> Result<Option<String>, VipError> {
        let own = match link_by_name(&self.handle, &self.iface).await {
            Ok(l) => Some(l.index),
            Err(VipError::UnknownInterface { .. }) => None,
            Err(e) => return Err(e),
        };
        let holders = find_address(&self.handle, self.addr).await?;
        Ok(self.other_holder(&holders, own).await)
    }

    /// Asks the link whether another host answers for the address, without adding it: the same
    /// checks as [`Vip::claim`] (interface up and Ethernet, address on no other interface of
    /// this host), then the conflict probe claim runs (RFC 5227 §2.1.1 ARP probes from
    /// 0.0.0.0 for IPv4, RFC 4862 §5.4 neighbour solicitations from `::` for IPv6), listening
    /// until `policy.window` ends or someone answers.
    ///
    /// Equivalent to `arping -D -I IF ADDR` (IPv4) or `ndisc6`-style DAD (IPv6): a conflict is
    /// [`ProbeReport::conflict`] naming the other host's MAC, not an error. It does not look at
    /// this host's own hold of the address: a host holding it on this interface does not hear
    /// its own probes, so call [`Vip::is_held`] first when "held here" must not count.
    /// Does not touch a running announcement schedule.
    ///
    /// # Errors
    /// [`VipError::UnknownInterface`], [`VipError::InterfaceDown`], [`VipError::NotEthernet`],
    /// [`VipError::AddressOnOtherInterface`] from the checks; [`VipError::PermissionDenied`]
    /// without `CAP_NET_RAW`; [`VipError::Netlink`] / [`VipError::Io`] for other failures.
    pub async fn probe(&mut self, policy: &ProbePolicy) -> Result<ProbeReport, VipError> {
        let start = Instant::now();
        let (link, mac, _) = self.check_link().await?;
        let sock = self.sender(link.index)?;
        let conflict = match probe(&sock, link.index, &self.iface, mac, self.addr, policy).await {
            Ok(_) => None,
            Err(VipError::Conflict { mac, .. }) => Some(mac),
            Err(e) => return Err(e),
        };
        Ok(ProbeReport {
            conflict,
            ifindex: link.index,
            mac,
            total: start.elapsed(),
        })
    }

    /// Starts the conflict probe of [`Vip::probe`] in the background and returns once the
    /// link checks passed (the probes go out from a task): the caller does other work while
    /// the window runs, then claims with [`Vip::claim_probed`], which waits for the window,
    /// refuses if anyone answered for the address from the first probe until the add, and
    /// does not probe again. Like [`Vip::probe`] it does not look at this host's own hold.
    ///
    /// # Errors
    /// As [`Vip::probe`]'s link checks: [`VipError::UnknownInterface`],
    /// [`VipError::InterfaceDown`], [`VipError::NotEthernet`],
    /// [`VipError::AddressOnOtherInterface`], [`VipError::Io`].
    pub async fn start_probe(&mut self, policy: &ProbePolicy) -> Result<ProbeSession, VipError> {
        self.start_kept_probe(policy, Duration::ZERO).await
    }

    /// [`Vip::start_probe`] that goes on probing at the policy's spacing past its `count`
    /// (inside the window too; those probes at least 10 ms apart, even with a policy of zero
    /// spacing) until its verdict is asked ([`Vip::claim_probed`],
    /// [`ProbeSession::conflict`]) or `keep` has passed since its first probe (a `keep` not
    /// longer than the window changes nothing; one longer than an hour is an hour). The
    /// verdict then waits for the window's end and until the last probe sent has had the
    /// quiet time the window leaves after its last probe at the longest spacing (`window -
    /// (count - 1) × max_interval`, at least `min_interval`; 90 ms by default), instead of a
    /// whole window: for a probe started before it is known whether, or when, the claim will
    /// come (the peer's release of the address), so that a host that took the address in the
    /// meantime and answers only when asked is still asked shortly before the add.
    ///
    /// # Errors
    /// As [`Vip::start_probe`].
    pub async fn start_kept_probe(
        &mut self,
        policy: &ProbePolicy,
        keep: Duration,
    ) -> Result<ProbeSession, VipError> {
        let (link, mac, _) = self.check_link().await?;
        let sock = self.sender(link.index)?;
        let started = Instant::now();
        let inner =
            crate::probe::start(sock, link.index, &self.iface, mac, self.addr, policy, keep)?;
        Ok(ProbeSession { inner, started })
    }

    /// [`Vip::claim`] after [`Vip::start_probe`]: instead of probing, waits for `session`'s
    /// verdict, which covers every frame heard from its first probe until now; a conflict is
    /// [`VipError::Conflict`] and nothing is added. `opts.probe` is used only if the
    /// interface changed since the probe started (it is probed again then).
    ///
    /// # Errors
    /// As [`Vip::claim`].
    pub async fn claim_probed(
        &mut self,
        session: ProbeSession,
        opts: &ClaimOptions,
    ) -> Result<ClaimReport, VipError> {
        self.claim_with(opts, Some(session)).await
    }

    /// Claims the address: checks the interface (exists, up, Ethernet) and that no other
    /// interface holds the address; probes (if enabled); adds it (IPv6 with `IFA_F_NODAD`);
    /// sends the first announcement and returns once it is on the wire; the rest of the
    /// schedule runs in the background (see [`ClaimReport::announcements`]).
    ///
    /// Equivalent to `arping -D` / `ndisc6`-style DAD, then `ip addr add ADDR/PREFIX dev IF
    /// [nodad]`, then `arping -U` / IPaddr2's `send_arp` / `send_ua`.
    ///
    /// Idempotent: claiming a held address skips probe and add and restarts the announcements.
    /// If the first announcement cannot be sent, an address this call added is removed again.
    ///
    /// # Errors
    /// Those of [`Vip::probe`]'s checks; [`VipError::Conflict`] when another host answers the
    /// probe (nothing was added); [`VipError::PermissionDenied`] without `CAP_NET_ADMIN` /
    /// `CAP_NET_RAW`; [`VipError::Netlink`] / [`VipError::Io`] for other failures.
    pub async fn claim(&mut self, opts: &ClaimOptions) -> Result<ClaimReport, VipError> {
        self.claim_with(opts, None).await
    }

    async fn claim_with(
        &mut self,
        opts: &ClaimOptions,
        session: Option<ProbeSession>,
    ) -> Result<ClaimReport, VipError> {
        let start = Instant::now();
        // A refused check leaves a running schedule alone (it follows the link).
        let (link, mac, already_held) = self.check_link().await?;
        self.stop_announcing();
        let sock = self.sender(link.index)?;
        let check = start.elapsed();

        let mut probe_time = None;
        match (already_held, session) {
            (true, _) => {}
            (false, Some(mut s)) if s.inner.ifindex() == link.index => {
                if let Some(other) = s.conflict().await? {
                    return Err(VipError::Conflict {
                        addr: self.addr,
                        mac: other,
                    });
                }
                probe_time = Some(s.started.elapsed());
            }
            (false, _) => {
                if let Some(p) = &opts.probe {
                    let t = probe(&sock, link.index, &self.iface, mac, self.addr, p).await?;
                    probe_time = Some(t);
                }
            }
        }

        let t = Instant::now();
        let added = if already_held {
            false
        } else {
            add_address(&self.handle, &link, self.addr, self.prefix).await?
        };
        let add = t.elapsed();

        let t = Instant::now();
        let frames = frames(mac, self.addr, opts.announce.mode);
        let first = send_round(&sock, &frames, &self.iface, t, AnnounceCause::Claim, (0, 0)).await;
        let first_announce = t.elapsed();
        if let Some(err) = first.iter().find_map(|r| r.result.as_ref().err()) {
            tracing::warn!(iface = %self.iface, addr = %self.addr, %err, "first announcement failed");
            let err = match first.into_iter().find_map(|r| r.result.err()) {
                Some(e) => e,
                None => VipError::Io {
                    op: "send announcement",
                    source: std::io::Error::other("unknown"),
                },
            };
            if added {
                self.del_own(link.index).await?;
            }
            return Err(err);
        }
        let (announcements, task) = spawn_rest(
            first,
            Schedule {
                sock,
                handle: self.handle.clone(),
                ifindex: link.index,
                addr: self.addr,
                mac,
                iface: self.iface.clone(),
                policy: opts.announce.clone(),
                start: t,
            },
        );
        self.announcer = Some(task);
        Ok(ClaimReport {
            already_held,
            ifindex: link.index,
            mac,
            probe: probe_time,
            check,
            add,
            first_announce,
            total: start.elapsed(),
            announcements,
        })
    }

    /// Releases the address: stops announcements and deletes it (equivalent to `ip addr del
    /// ADDR/PREFIX dev IF`). Idempotent: an address (or interface) already gone is not an
    /// error.
    ///
    /// # Errors
    /// [`VipError::PermissionDenied`] without `CAP_NET_ADMIN`; [`VipError::Netlink`] when the
    /// link lookup or `RTM_DELADDR` fails otherwise.
    pub async fn release(&mut self) -> Result<ReleaseReport, VipError> {
        let start = Instant::now();
        self.stop_announcing();
        let link = match link_by_name(&self.handle, &self.iface).await {
            Ok(l) => l,
            Err(VipError::UnknownInterface { .. }) => {
                return Ok(ReleaseReport {
                    removed: false,
                    total: start.elapsed(),
                })
            }
            Err(e) => return Err(e),
        };
        let removed = self.del_own(link.index).await?;
        Ok(ReleaseReport {
            removed,
            total: start.elapsed(),
        })
    }

    /// Whether the address is on the interface now (equivalent to `ip addr show dev IF to
    /// ADDR`). A missing interface is `false`.
    ///
    /// # Errors
    /// [`VipError::Netlink`] when the link or address dump fails.
    pub async fn is_held(&self) -> Result<bool, VipError> {
        let link = match link_by_name(&self.handle, &self.iface).await {
            Ok(l) => l,
            Err(VipError::UnknownInterface { .. }) => return Ok(false),
            Err(e) => return Err(e),
        };
        Ok(find_address(&self.handle, self.addr)
            .await?
            .iter()
            .any(|(i, _)| *i == link.index))
    }

    /// Whether the interface is administratively up with carrier, so a claim can announce (the
    /// check [`Vip::claim`] refuses with [`VipError::InterfaceDown`]). A missing interface is
    /// `false`.
    ///
    /// # Errors
    /// [`VipError::Netlink`] when the link lookup fails.
    pub async fn link_up(&self) -> Result<bool, VipError> {
        match link_by_name(&self.handle, &self.iface).await {
            Ok(l) => Ok(l.is_up()),
            Err(VipError::UnknownInterface { .. }) => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// Watches the held address for other hosts using it (RFC 5227 §2.4 for IPv4; neighbour
    /// advertisements for it for IPv6, RFC 4862 §5.4.4): see [`ConflictWatch`]. Opens one
    /// filtered packet socket on the interface; the process is woken only by frames that may be
    /// a conflict. Call it while the address is held (it does not check).
    ///
    /// # Errors
    /// [`VipError::UnknownInterface`] when the interface does not exist now;
    /// [`VipError::NotEthernet`] without a 6-byte hardware address; [`VipError::PermissionDenied`]
    /// without `CAP_NET_RAW`; [`VipError::Netlink`] / [`VipError::Io`] for other failures.
    pub async fn conflict_watch(&self) -> Result<ConflictWatch, VipError> {
        let link = link_by_name(&self.handle, &self.iface).await?;
        let mac = link.mac.ok_or_else(|| VipError::NotEthernet {
            iface: self.iface.clone(),
        })?;
        ConflictWatch::new(link.index, &self.iface, self.addr, mac)
    }

    /// Sends one announcement of the held address now, from the interface's current MAC
    /// ([`AnnounceCause::Defend`]; `mode` as in [`AnnouncePolicy::mode`]): the defence of
    /// RFC 5227 §2.4 (b)/(c), "one single ARP Announcement" (an unsolicited NA for IPv6).
    /// Rate limiting is the caller's ([`crate::Defender`], one per [`crate::DEFEND_INTERVAL`]).
    /// A running announcement schedule is left alone.
    ///
    /// # Errors
    /// [`VipError::NotHeld`] when the address is not on the interface (nothing is sent);
    /// [`VipError::UnknownInterface`], [`VipError::InterfaceDown`], [`VipError::NotEthernet`];
    /// [`VipError::Netlink`] / [`VipError::Io`] for other failures. A frame that could not be
    /// sent is an `Err` in its [`AnnounceResult::result`].
    pub async fn defend(&mut self, mode: AnnounceMode) -> Result<Vec<AnnounceResult>, VipError> {
        let (link, mac) = self.ethernet_link_up().await?;
        let held = find_address(&self.handle, self.addr).await?;
        if !held.iter().any(|(i, _)| *i == link.index) {
            return Err(VipError::NotHeld {
                addr: self.addr,
                iface: self.iface.clone(),
            });
        }
        let sock = self.sender(link.index)?;
        let frames = frames(mac, self.addr, mode);
        let t = Instant::now();
        Ok(send_round(
            &sock,
            &frames,
            &self.iface,
            t,
            AnnounceCause::Defend,
            (0, 0),
        )
        .await)
    }

    /// Watches the address and its interface (equivalent to `ip monitor link address`): see
    /// [`VipEvent`](crate::VipEvent).
    ///
    /// # Errors
    /// [`VipError::UnknownInterface`] when the interface does not exist now;
    /// [`VipError::Netlink`] / [`VipError::Io`] when the multicast socket cannot be set up.
    pub async fn watch(&self) -> Result<VipWatch, VipError> {
        let link = link_by_name(&self.handle, &self.iface).await?;
        VipWatch::new(link.index, &self.iface, self.addr).await
    }
}

#[cfg(test)]
mod check_address_tests {
    use super::Vip;

    #[test]
    fn network_and_broadcast_refused_except_31_32() {
        let ok = |s: &str, p: u8| Vip::check_address(s.parse().expect("ip"), p).is_ok();
        assert!(ok("192.168.50.10", 24));
        assert!(!ok("192.168.50.0", 24));
        assert!(!ok("192.168.50.255", 24));
        assert!(!ok("10.0.0.0", 8));
        assert!(ok("192.168.50.0", 31) && ok("192.168.50.1", 31));
        assert!(ok("192.168.50.255", 32));
        assert!(ok("fd00::10", 64) && ok("fd00::ffff:ffff:ffff:ffff", 64));
        assert!(!ok("fd00::", 64));
        assert!(ok("fd00::", 127) && ok("fd00::", 128));
    }
}
