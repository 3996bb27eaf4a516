//! [`Drbd`] over the kernel's DRBD 8.4 generic-netlink API (crate `drbd-nl`): no program is run.

use drbd_nl::{
    AfterSbPolicy, Attach, Connect, DeviceStatus, DrbdError, DrbdEvent, DrbdHandle, FencingPolicy,
    NetConf, NewMinor, NewResource, Primary, Request, RetCode, Secondary, SibReason, StateRv,
    Status,
};
use futures::StreamExt;
use tokio::sync::mpsc::UnboundedSender;
use tracing::warn;

use super::{ConfigFeed, Drbd, Generations};
use crate::config::{Config, Manage, Resource};
use crate::error::BackendError;
use crate::fsm::{Connection, Disk, DrbdNet, DrbdView, Event, Fencing, Role, SyncView, VolumeView};

/// The policies a managed resource gets (see `docs/stale-data-and-split-brain.md`): fencing
/// `resource-only`, so DRBD keeps a rebooted node's disk Consistent instead of UpToDate, and
/// every after-split-brain policy `disconnect`, so nothing is resolved automatically.
pub const MANAGED_FENCING: FencingPolicy = FencingPolicy::ResourceOnly;
/// After-split-brain policy for zero, one and two Primaries in manage mode.
pub const MANAGED_AFTER_SB: AfterSbPolicy = AfterSbPolicy::Disconnect;

/// What manage mode sets on a resource's replication, in DRBD's terms: one set for both APIs
/// (8.4 puts fencing in the disk options, DRBD 9 in the connection's net options).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ManagedOptions {
    /// Replication protocol `A`, `B` or `C`.
    pub protocol: char,
    /// [`MANAGED_FENCING`].
    pub fencing: FencingPolicy,
    /// After-split-brain policies with zero, one and two Primaries ([`MANAGED_AFTER_SB`]).
    pub after_sb: [AfterSbPolicy; 3],
    /// Peer-failure detection (docs/takeover.md): `ping-int` (s), `ping-timeout` (0.1 s),
    /// `timeout` (0.1 s), `ko-count`, from the config.
    pub ping_int_s: u32,
    /// `ping-timeout`, tenths of a second.
    pub ping_timeout_ds: u32,
    /// `timeout`, tenths of a second.
    pub timeout_ds: u32,
    /// `ko-count` (0 = off).
    pub ko_count: u32,
}

impl ManagedOptions {
    /// The options of a managed resource with bring-up parameters `m`.
    pub fn of(m: &Manage) -> Self {
        ManagedOptions {
            protocol: m.protocol.as_char(),
            fencing: MANAGED_FENCING,
            after_sb: [MANAGED_AFTER_SB; 3],
            ping_int_s: m.ping_int_s,
            ping_timeout_ds: m.ping_timeout_ds,
            timeout_ds: m.timeout_ds,
            ko_count: m.ko_count,
        }
    }
}

/// How long after a Diskless StandAlone event a resource is read again, to see whether `down`
/// removed it (8.4 sends no event for that; [`NetlinkDrbd::watch`]). `down` deletes the minor
/// right after the detach, in the same request.
pub const RECHECK_AFTER: std::time::Duration = std::time::Duration::from_millis(200);

/// DRBD through netlink.
#[derive(Debug, Clone)]
pub struct NetlinkDrbd {
    handle: DrbdHandle,
}

impl NetlinkDrbd {
    /// Connect to the kernel's `drbd` family (fails without the module or with DRBD 9).
    pub async fn connect() -> Result<NetlinkDrbd, BackendError> {
        Ok(NetlinkDrbd {
            handle: DrbdHandle::connect().await.map_err(err)?,
        })
    }

    /// A backend on an open 8.4 handle (see `drbd9::AnyDrbd::connect`).
    pub fn from_handle(handle: DrbdHandle) -> NetlinkDrbd {
        NetlinkDrbd { handle }
    }

    /// The underlying handle.
    pub fn handle(&self) -> &DrbdHandle {
        &self.handle
    }

    /// Follow DRBD's events and send one [`Event::Drbd`] per state change of a resource of
    /// the current config (`config` follows reloads); after a lost burst, re-read every
    /// resource. Equivalent to `drbdsetup-84 events all`. Subscribes before reading so nothing
    /// is missed. 8.4 announces no removal (DRBD 9's `NOTIFY_DESTROY`): `down` ends with a
    /// Diskless StandAlone event and deletes the minor silently, so a resource seen that way is
    /// read again [`RECHECK_AFTER`] later.
    pub async fn watch(
        self,
        config: ConfigFeed,
        tx: UnboundedSender<Event>,
    ) -> Result<(), BackendError> {
        let mut events = self.handle.events().await.map_err(err)?;
        let first = config.borrow().clone();
        self.resync(&first, &tx).await;
        let mut recheck = std::collections::BTreeSet::new();
        let mut recheck_at: Option<tokio::time::Instant> = None;
        loop {
            let item = tokio::select! {
                item = events.next() => match item {
                    Some(item) => item,
                    None => break,
                },
                _ = tokio::time::sleep_until(
                        recheck_at.unwrap_or_else(tokio::time::Instant::now)),
                    if recheck_at.is_some() => {
                    recheck_at = None;
                    let config = config.borrow().clone();
                    let names = std::mem::take(&mut recheck);
                    for r in config.resources.iter().filter(|r| names.contains(&r.name)) {
                        match self.status(r).await {
                            Ok(view) => {
                                let ev = Event::Drbd { resource: r.name.clone(), view };
                                if tx.send(ev).is_err() {
                                    return Ok(());
                                }
                            }
                            Err(e) => warn!(resource = %r.name, error = %e, "DRBD status"),
                        }
                    }
                    continue;
                }
            };
            let config = config.borrow().clone();
            match item {
                Ok(DrbdEvent::Device { status, .. }) => {
                    let Some(res) = config.resources.iter().find(|r| {
                        r.volume_minors()
                            .any(|(_, minor)| status.minor == Some(minor))
                    }) else {
                        continue;
                    };
                    if status.reason == Some(SibReason::HelperPre)
                        && status.helper.as_deref() == Some("split-brain")
                    {
                        let ev = Event::SplitBrain {
                            resource: res.name.clone(),
                        };
                        if tx.send(ev).is_err() {
                            return Ok(());
                        }
                    }
                    // one volume's event: the resource's view needs every volume's state
                    let view = if res.volumes.is_empty() {
                        view_of(&status)
                    } else {
                        self.status(res).await.ok()
                    };
                    if let Some(view) = view {
                        if view.half_up() {
                            recheck.insert(res.name.clone());
                            recheck_at
                                .get_or_insert_with(|| tokio::time::Instant::now() + RECHECK_AFTER);
                        }
                        if tx
                            .send(Event::Drbd {
                                resource: res.name.clone(),
                                view,
                            })
                            .is_err()
                        {
                            return Ok(());
                        }
                    }
                }
                Ok(_) => {}
                Err(e) => {
                    warn!(error = %e, "DRBD event lost; re-reading state");
                    self.resync(&config, &tx).await;
                }
            }
        }
        Err(BackendError::Unavailable("DRBD event stream ended".into()))
    }

    /// One minor's view within `res` (`None`: the minor does not exist).
    async fn device_view(
        &self,
        res: &Resource,
        minor: u32,
    ) -> Result<Option<DrbdView>, BackendError> {
        match self.handle.execute(Status::new().resource(&res.name)).await {
            Ok(devs) => Ok(devs
                .iter()
                .find(|d| d.minor == Some(minor))
                .and_then(view_of)),
            Err(e) if is_code(&e, &[RetCode::ResNotKnown, RetCode::MinorInvalid]) => Ok(None),
            Err(e) => Err(err(e)),
        }
    }

    /// `primary` of every volume, `force`d or not, each through [`off_runtime_at_once`] when
    /// `at_once`; a refusal demotes the volumes already promoted.
    async fn promote(
        &self,
        res: &Resource,
        force: bool,
        at_once: bool,
    ) -> Result<(), BackendError> {
        let minors: Vec<u32> = res.volume_minors().map(|(_, m)| m).collect();
        for (i, minor) in minors.iter().enumerate() {
            let request = Primary::new(*minor).force(force);
            let done = if at_once {
                let handle = self.handle.clone();
                off_runtime_at_once(move || handle.execute_blocking(request)).await
            } else {
                self.set_role(request).await
            };
            let refused = match done {
                Ok(()) => continue,
                // A peer volume Primary: -1 for this volume's peer, -20 for another's.
                Err(e)
                    if matches!(
                        e.state_rv(),
                        Some(StateRv::TwoPrimaries | StateRv::OVolPeerPri)
                    ) =>
                {
                    BackendError::PeerPrimary(e)
                }
                Err(e) => err(e),
            };
            for m in &minors[..i] {
                if let Err(e) = self.set_role(Secondary::new(*m)).await {
                    warn!(resource = %res.name, minor = m, error = %e,
                        "demoting a volume after another one's promote failed");
                }
            }
            return Err(refused);
        }
        Ok(())
    }

    /// A role request ([`Primary`], [`Secondary`]) through [`off_runtime`].
    async fn set_role(
        &self,
        request: impl Request<Output = ()> + Send + 'static,
    ) -> Result<(), DrbdError> {
        let handle = self.handle.clone();
        off_runtime(move || handle.execute_blocking(request)).await
    }

    async fn resync(&self, config: &Config, tx: &UnboundedSender<Event>) {
        for r in &config.resources {
            match self.status(r).await {
                Ok(view) => {
                    let _ = tx.send(Event::Drbd {
                        resource: r.name.clone(),
                        view,
                    });
                }
                Err(e) => warn!(resource = %r.name, error = %e, "DRBD status"),
            }
        }
    }
}

/// DRBD's error as the agent's: I/O and a missing family are kept apart from DRBD's refusals.
pub(super) fn err(e: DrbdError) -> BackendError {
    match e {
        DrbdError::Io(io) => BackendError::Io(io),
        DrbdError::FamilyNotFound => BackendError::Unavailable(e.to_string()),
        other => BackendError::Drbd(other),
    }
}

fn role(r: drbd_nl::Role) -> Role {
    match r {
        drbd_nl::Role::Primary => Role::Primary,
        drbd_nl::Role::Secondary => Role::Secondary,
        _ => Role::Unknown,
    }
}

fn disk(d: drbd_nl::DiskState) -> Disk {
    match d.to_string().as_str() {
        "Diskless" => Disk::Diskless,
        "Attaching" => Disk::Attaching,
        "Failed" => Disk::Failed,
        "Negotiating" => Disk::Negotiating,
        "Inconsistent" => Disk::Inconsistent,
        "Outdated" => Disk::Outdated,
        "Consistent" => Disk::Consistent,
        "UpToDate" => Disk::UpToDate,
        _ => Disk::DUnknown,
    }
}

fn connection(c: drbd_nl::ConnState) -> Connection {
    match c {
        drbd_nl::ConnState::StandAlone => Connection::StandAlone,
        drbd_nl::ConnState::WFConnection => Connection::WFConnection,
        drbd_nl::ConnState::Connected => Connection::Connected,
        other => Connection::Other(other.to_string()),
    }
}

/// The agent's view of one device status (`None` without a state word).
pub fn view_of(s: &DeviceStatus) -> Option<DrbdView> {
    let st = s.new_state.or(s.state)?;
    Some(DrbdView {
        up: true,
        role: role(st.role),
        peer_role: role(st.peer),
        connection: connection(st.conn),
        disk: disk(st.disk),
        peer_disk: disk(st.pdsk),
        fencing: s.fencing.map(Fencing::from_nl).unwrap_or_default(),
        net: s.net.map(|n| DrbdNet {
            ping_int_s: n.ping_int_s,
            ping_timeout_ds: n.ping_timeout_ds,
            timeout_ds: n.timeout_ds,
            ko_count: n.ko_count,
            allow_two_primaries: n.two_primaries,
        }),
        drbd9: None,
        // One bitmap bit is 4 KiB.
        sync: s.bits_oos.map(|bits| SyncView {
            out_of_sync_kib: bits.saturating_mul(4),
            done_permille: s
                .bits_rs_total
                .filter(|t| *t > 0)
                .and(s.sync_progress_permille())
                .and_then(|p| u32::try_from(p).ok()),
        }),
        volumes: Vec::new(),
    })
}

/// The agent's view of `res` from DRBD's status of its devices: volume 0's, or with
/// `[[resource.volume]]` every volume's combined ([`DrbdView::of_volumes`]).
pub fn resource_view(res: &Resource, devs: &[DeviceStatus]) -> DrbdView {
    let find = |minor: u32| {
        devs.iter()
            .find(|d| d.minor == Some(minor))
            .and_then(view_of)
    };
    let base = find(res.minor).unwrap_or_default();
    if res.volumes.is_empty() {
        return base;
    }
    let views: Vec<(VolumeView, Option<SyncView>)> = res
        .volume_minors()
        .map(|(volume, minor)| {
            let v = find(minor);
            let sync = v.as_ref().and_then(|v| v.sync);
            let v = v.unwrap_or(DrbdView {
                disk: Disk::Diskless,
                ..DrbdView::default()
            });
            let vv = VolumeView {
                volume,
                minor,
                up: v.up,
                role: v.role,
                peer_role: v.peer_role,
                disk: v.disk,
                peer_disk: v.peer_disk,
            };
            (vv, sync)
        })
        .collect();
    let syncs: Vec<SyncView> = views.iter().filter_map(|(_, s)| *s).collect();
    let sync = (!syncs.is_empty()).then(|| SyncView {
        out_of_sync_kib: syncs.iter().map(|s| s.out_of_sync_kib).sum(),
        done_permille: syncs.iter().filter_map(|s| s.done_permille).min(),
    });
    base.of_volumes(views.into_iter().map(|(v, _)| v).collect(), sync)
}

fn is_code(e: &DrbdError, codes: &[RetCode]) -> bool {
    e.ret_code().is_some_and(|c| codes.contains(&c))
}

/// Runs a DRBD role request (`primary`, `secondary`; either API's `execute_blocking`) on a
/// thread of tokio's blocking pool, on a netlink socket of its own. A role change waits in the
/// kernel inside `sendmsg()`, with a connected peer for the peer's answer (a network round
/// trip); on the handle's one socket it would block the agent's runtime thread, and with it
/// every other resource's promote, tgtd, events and status. Apart, the kernel runs the
/// resources' role changes at once (DRBD 8.4 holds only the resource's `adm_mutex`:
/// `docs/drbd-genl.md` §3.1.1).
/// A request given up by the executor's timeout runs on in the kernel (as it did on the shared
/// socket); a later request of the same resource (the rollback's `secondary`) waits for it on
/// the resource's `adm_mutex`. The pool's threads exit after 10 s idle: nothing stays awake.
pub(crate) async fn off_runtime(
    request: impl FnOnce() -> Result<(), DrbdError> + Send + 'static,
) -> Result<(), DrbdError> {
    tokio::task::spawn_blocking(request)
        .await
        .unwrap_or_else(|e| Err(DrbdError::Io(std::io::Error::other(e))))
}

/// The signal that ends DRBD's sleep inside a `primary` request ([`off_runtime_at_once`]).
/// `SIGURG` is ignored by default, so one that arrives before its handler is installed, or
/// from elsewhere, does nothing.
const WAKE: nix::sys::signal::Signal = nix::sys::signal::Signal::SIGURG;

/// How often [`off_runtime_at_once`] signals the request's thread while it runs: a signal that
/// lands before the thread enters `sendmsg()` is handled in user space and ends no sleep.
const WAKE_EVERY: std::time::Duration = std::time::Duration::from_millis(5);

/// [`off_runtime`] for a `primary` that DRBD 8.4 will refuse because the peer is Primary,
/// without the sleep DRBD takes inside the request. `drbd_set_role()` (Linux
/// `drivers/block/drbd/drbd_nl.c`) pings the peer, is refused with `SS_TWO_PRIMARIES`, sleeps
/// `ping-timeout` + 0.1 s in `schedule_timeout_interruptible()` and tries once more. A signal
/// to the thread in the request ends that sleep: the retry follows at once, is refused the
/// same way while the ping is unanswered, and the request returns. DRBD's verdict on the ping
/// (the connection dropped after `ping-timeout`, or the peer demoting) then comes as an event
/// ([`Drbd::changed`]) instead of inside a request that holds the resource's `state_mutex`.
/// Every try is DRBD's own arbitration of an unforced request: a signal only ends the wait
/// early. The handler (tokio's, installed once; `SA_RESTART`, so the socket calls around the
/// request go on) does nothing; the thread is signalled only while the request runs on it.
pub(crate) async fn off_runtime_at_once(
    request: impl FnOnce() -> Result<(), DrbdError> + Send + 'static,
) -> Result<(), DrbdError> {
    use nix::sys::pthread::{pthread_kill, pthread_self, Pthread};
    use std::sync::{Arc, Mutex, OnceLock};
    static HANDLER: OnceLock<bool> = OnceLock::new();
    let handled = *HANDLER.get_or_init(|| {
        let kind = tokio::signal::unix::SignalKind::from_raw(WAKE as i32);
        tokio::signal::unix::signal(kind).is_ok()
    });
    if !handled {
        return off_runtime(request).await;
    }
    // The request's thread while the request runs on it; `None` before and after.
    let running: Arc<Mutex<Option<Pthread>>> = Arc::default();
    let mark = |r: &Arc<Mutex<Option<Pthread>>>, t| {
        *r.lock().unwrap_or_else(std::sync::PoisonError::into_inner) = t;
    };
    /// Clears the thread when the request ends, also by a panic.
    struct Ran(Arc<Mutex<Option<Pthread>>>);
    impl Drop for Ran {
        fn drop(&mut self) {
            *self
                .0
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner) = None;
        }
    }
    let on = running.clone();
    let task = tokio::task::spawn_blocking(move || {
        mark(&on, Some(pthread_self()));
        let _ran = Ran(on);
        request()
    });
    tokio::pin!(task);
    let mut tick = tokio::time::interval(WAKE_EVERY);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            r = &mut task => {
                return r.unwrap_or_else(|e| Err(DrbdError::Io(std::io::Error::other(e))));
            }
            _ = tick.tick() => {
                // Under the lock: the thread is still in the request, not back in the pool.
                let t = running.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
                if let Some(t) = *t {
                    let _ = pthread_kill(t, WAKE);
                }
            }
        }
    }
}

impl Drbd for NetlinkDrbd {
    async fn status(&self, res: &Resource) -> Result<DrbdView, BackendError> {
        match self.handle.execute(Status::new().resource(&res.name)).await {
            Ok(devs) => Ok(resource_view(res, &devs)),
            Err(e) if is_code(&e, &[RetCode::ResNotKnown, RetCode::MinorInvalid]) => {
                Ok(DrbdView::default())
            }
            Err(e) => Err(err(e)),
        }
    }

    async fn up(&self, res: &Resource) -> Result<(), BackendError> {
        let Some(m) = &res.manage else {
            return Err(BackendError::Failed(format!(
                "{}: mode is adopt; the agent does not bring it up",
                res.name
            )));
        };
        let (local, peer) = (m.local, m.peer);
        let o = ManagedOptions::of(m);
        let h = &self.handle;
        h.execute(NewResource::new(&res.name)).await.map_err(err)?;
        // every volume: its minor (new-minor RES MINOR VOLUME), then its disk
        let disks = std::iter::once((0, res.minor, &m.disk)).chain(
            res.volumes
                .iter()
                .filter_map(|v| v.disk.as_ref().map(|d| (v.volume, v.minor, d))),
        );
        for (volume, minor, disk) in disks {
            if self.device_view(res, minor).await?.is_none() {
                match h.execute(NewMinor::new(&res.name, minor, volume)).await {
                    Err(e) if !is_code(&e, &[RetCode::MinorOrVolumeExists]) => return Err(err(e)),
                    _ => {}
                }
            }
            let current = self.device_view(res, minor).await?.unwrap_or_default();
            if matches!(current.disk, Disk::Diskless | Disk::DUnknown) {
                let mut attach = Attach::new(minor, disk.to_string_lossy()).fencing(o.fencing);
                // [resource.manage.disk_options]: DRBD's defaults for what is unset.
                for opt in m.disk_options.drbd84() {
                    attach = attach.option(opt);
                }
                super::metadata::replaying_unclean(&res.name, minor, disk, || {
                    h.execute(attach.clone())
                })
                .await?;
            }
        }
        let current = self.status(res).await?;
        if matches!(
            current.connection,
            Connection::StandAlone | Connection::Unknown
        ) {
            let mut connect = Connect::new(&res.name, local, peer)
                .protocol(o.protocol)
                .after_split_brain(o.after_sb[0], o.after_sb[1], o.after_sb[2])
                .option(NetConf::PingInt(o.ping_int_s))
                .option(NetConf::PingTimeo(o.ping_timeout_ds))
                .option(NetConf::Timeout(o.timeout_ds))
                .option(NetConf::KoCount(o.ko_count));
            // [resource.manage.net_options]: DRBD's defaults for what is unset.
            for opt in m.net_options.drbd84() {
                connect = connect.option(opt);
            }
            h.execute(connect).await.map_err(err)?;
        }
        Ok(())
    }

    /// 8.4 keeps a role per volume (`drbdadm primary` promotes each minor): every volume in
    /// turn; when one is refused, the ones promoted before are demoted again, so the resource is
    /// never left half Primary.
    async fn primary(&self, res: &Resource, force: bool) -> Result<(), BackendError> {
        self.promote(res, force, false).await
    }

    async fn primary_at_once(&self, res: &Resource) -> Result<(), BackendError> {
        self.promote(res, false, true).await
    }

    async fn changed(
        &self,
        res: &Resource,
        before: &DrbdView,
        limit: std::time::Duration,
    ) -> Result<DrbdView, BackendError> {
        let end = tokio::time::Instant::now() + limit;
        // Subscribed before the first read, so no change between them is missed.
        let mut events = self.handle.events().await.map_err(err)?;
        loop {
            let now = self.status(res).await?;
            if !now.same_standing(before) || tokio::time::Instant::now() >= end {
                return Ok(now);
            }
            // Read again after an event of one of its volumes, a lost burst, or at the end.
            loop {
                match tokio::time::timeout_at(end, events.next()).await {
                    Ok(Some(Ok(DrbdEvent::Device { status, .. }))) => {
                        if res.volume_minors().any(|(_, m)| status.minor == Some(m)) {
                            break;
                        }
                    }
                    Ok(Some(Ok(_))) => {}
                    Ok(Some(Err(_))) | Err(_) => break,
                    Ok(None) => {
                        return Err(BackendError::Unavailable("DRBD event stream ended".into()))
                    }
                }
            }
        }
    }

    async fn generations(&self, res: &Resource) -> Result<Generations, BackendError> {
        let devs = self
            .handle
            .execute(Status::new().resource(&res.name))
            .await
            .map_err(err)?;
        let d = devs
            .iter()
            .find(|d| d.minor == Some(res.minor))
            .ok_or_else(|| BackendError::Failed(format!("{}: not up", res.name)))?;
        let uuids = d
            .uuids
            .ok_or_else(|| BackendError::Failed(format!("{}: no disk attached", res.name)))?;
        Ok(Generations {
            uuids,
            bits_oos: d.bits_oos.unwrap_or(0),
            disk_flags: d.disk_flags.unwrap_or(0),
            local: d.local_addr.as_ref().map(|a| a.to_string()),
            peer: d.peer_addr.as_ref().map(|a| a.to_string()),
            drbd9: None,
        })
    }

    /// Every volume (8.4 keeps a role per volume); each is tried, the first failure returned.
    async fn secondary(&self, res: &Resource) -> Result<(), BackendError> {
        let mut first = Ok(());
        for (_, minor) in res.volume_minors() {
            let r = self.set_role(Secondary::new(minor)).await;
            if let (Err(e), Ok(())) = (r, &first) {
                first = Err(err(e));
            }
        }
        first
    }
}
