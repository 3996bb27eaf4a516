//! One trait per subsystem the agent drives: [`Drbd`], [`Target`], [`Address`].
//!
//! The executor only talks to these traits. Real implementations sit beside this file:
//! [`drbd`] over drbd-nl, [`target`] over tgt-ipc, [`vip`] over vip; [`memory`] holds in-memory
//! implementations with fault injection for tests.
//! Every mutating call must be idempotent: asking for the state that already holds succeeds.

use std::future::Future;

use crate::config::{Address as AddressConfig, Resource};
use crate::error::BackendError;
use crate::fsm::{DrbdView, TargetView};

pub mod drbd;
pub mod drbd9;
pub mod drbd_conf;
#[cfg(any(test, feature = "simulate"))]
pub mod memory;
mod metadata;
pub mod target;
mod tgt_show;
pub mod vip;

/// Warnings for what tgt's and DRBD's own configuration files would do to the configured
/// resources ([`target::tgt_config_overlaps`], [`drbd_conf::drbd_config_overlaps`] on the files
/// drbdadm reads; DRBD's only looked up when a resource is managed): logged at the daemon's
/// start, printed by `check-config`.
pub fn own_config_warnings(config: &crate::config::Config) -> Vec<String> {
    let tgt_conf = std::path::Path::new(target::TGT_CONF);
    let managed = config.resources.iter().any(|r| r.manage.is_some());
    let drbd_confs = if managed {
        drbd_conf::drbdadm_files(&drbd_conf::DRBD_CONFS)
    } else {
        Vec::new()
    };
    let mut out = target::tgt_config_overlaps(config, tgt_conf);
    for f in &drbd_confs {
        out.extend(drbd_conf::drbd_config_overlaps(config, f));
    }
    out
}

/// The running config as the watches follow it: a reload sends the new one, and each watch
/// reads the current one at every event, so added resources are reported and removed ones are
/// not (`daemon::follow`).
pub type ConfigFeed = tokio::sync::watch::Receiver<std::sync::Arc<crate::config::Config>>;

/// A feed that stays at `config` (for a watch outside a daemon that reloads).
pub fn fixed(config: &crate::config::Config) -> ConfigFeed {
    tokio::sync::watch::channel(std::sync::Arc::new(config.clone())).1
}

/// A DRBD resource's role and bring-up.
pub trait Drbd: Send + Sync {
    /// Read the resource's state; equivalent to `drbdsetup-84 status RES` (8.4: `cat /proc/drbd`).
    /// A resource that does not exist in the kernel is `up: false`, not an error.
    fn status(&self, res: &Resource)
        -> impl Future<Output = Result<DrbdView, BackendError>> + Send;
    /// Bring a managed resource up from the config; equivalent to `drbdadm up RES`
    /// (new-resource, new-minor, attach, connect).
    fn up(&self, res: &Resource) -> impl Future<Output = Result<(), BackendError>> + Send;
    /// Become Primary; equivalent to `drbdsetup-84 primary MINOR [--force]`. `force`
    /// (`assume_uptodate`) also overrides a missing peer's fencing and a Consistent disk.
    fn primary(
        &self,
        res: &Resource,
        force: bool,
    ) -> impl Future<Output = Result<(), BackendError>> + Send;
    /// Become Secondary; equivalent to `drbdsetup-84 secondary MINOR`.
    fn secondary(&self, res: &Resource) -> impl Future<Output = Result<(), BackendError>> + Send;
    /// Become Primary, unforced, where the peer shows Primary
    /// ([`DrbdView::refuses_for_primary_peer`]). DRBD 8.4 (`NetlinkDrbd`) pings the peer and
    /// refuses ([`BackendError::PeerPrimary`]) at once, instead of sleeping `ping-timeout` +
    /// 0.1 s inside the request before its one retry; the caller follows DRBD's verdict on the
    /// ping with [`Drbd::changed`] (docs/takeover.md, "Power loss"). Default: [`Drbd::primary`]
    /// unforced, which may wait in the kernel as it always did.
    fn primary_at_once(
        &self,
        res: &Resource,
    ) -> impl Future<Output = Result<(), BackendError>> + Send {
        self.primary(res, false)
    }
    /// DRBD's state of the resource once it no longer has the standing of `before`
    /// ([`DrbdView::same_standing`]: roles, connection, disks), or when `limit` has passed,
    /// whatever it is then. Default: reads [`Drbd::status`] every 10 ms.
    fn changed(
        &self,
        res: &Resource,
        before: &DrbdView,
        limit: std::time::Duration,
    ) -> impl Future<Output = Result<DrbdView, BackendError>> + Send {
        async move {
            let end = tokio::time::Instant::now() + limit;
            loop {
                let now = self.status(res).await?;
                if !now.same_standing(before) || tokio::time::Instant::now() >= end {
                    return Ok(now);
                }
                tokio::time::sleep(std::time::Duration::from_millis(10)).await;
            }
        }
    }
    /// The local data generations and what DRBD shows of the split, for `iscsi-ha
    /// split-brain`; equivalent to `drbdsetup-84 show-gi MINOR`. Backends without them say so.
    fn generations(
        &self,
        res: &Resource,
    ) -> impl Future<Output = Result<Generations, BackendError>> + Send {
        let _ = res;
        async { Err(BackendError::Unavailable("no data generations here".into())) }
    }
    /// Which DRBD the kernel runs, `8.4` or `9`, for the status; `None` where there is no
    /// kernel DRBD (in-memory backends).
    fn version(&self) -> Option<&'static str> {
        None
    }
    /// Refuses a config this backend cannot serve safely (at daemon start and reload), e.g. a
    /// LUN on a device that is not one of its resource's volumes. Default: nothing to check
    /// (in-memory backends, whose tests serve plain files).
    fn check_config(&self, config: &crate::config::Config) -> Result<(), BackendError> {
        let _ = config;
        Ok(())
    }
}

/// One node's data generations of a resource, as DRBD exposes them locally.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Generations {
    /// Current, bitmap, history 1, history 2 UUIDs (bit 0 of the current one: was Primary).
    pub uuids: [u64; 4],
    /// Out-of-sync 4 KiB blocks in the local bitmap (while disconnected: written here since).
    pub bits_oos: u64,
    /// Meta-data flags (`MDF_*`).
    pub disk_flags: u32,
    /// Local replication endpoint.
    pub local: Option<String>,
    /// Peer replication endpoint.
    pub peer: Option<String>,
    /// DRBD 9 only (`uuids` then holds the configured peer's bitmap UUID and the two newest
    /// history UUIDs): every peer's bitmap UUID and the whole history.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub drbd9: Option<drbd9::Generations9>,
}

/// `MDF_CRASHED_PRIMARY` in [`Generations::disk_flags`] (`include/linux/drbd.h`): this node was
/// Primary when it last went down uncleanly (set at attach from the on-disk Primary flag, kept
/// until a resync).
pub const MDF_CRASHED_PRIMARY: u32 = 0x40;

impl Generations {
    /// Whether DRBD's metadata says this node went down as Primary ([`MDF_CRASHED_PRIMARY`]).
    pub fn crashed_primary(&self) -> bool {
        self.disk_flags & MDF_CRASHED_PRIMARY != 0
    }
}

/// The iSCSI target serving one resource.
pub trait Target: Send + Sync {
    /// Read the target's state; equivalent to `tgtadm --lld iscsi --mode target --op show`.
    /// tgtd not running is `Absent`, not an error.
    fn status(
        &self,
        res: &Resource,
    ) -> impl Future<Output = Result<TargetView, BackendError>> + Send;
    /// Create what is missing of target, LUNs, identity and ACLs, then accept logins;
    /// equivalent to `tgtadm --op new` (target, LUN), `--op update` (identity, state=ready),
    /// `--op bind` (initiators).
    fn serve(&self, res: &Resource) -> impl Future<Output = Result<(), BackendError>> + Send;
    /// Refuse new logins and close every connection; equivalent to
    /// `tgtadm --op update --name state --value offline` then `--mode conn --op delete`.
    fn offline(&self, res: &Resource) -> impl Future<Output = Result<(), BackendError>> + Send;
    /// Refuse new logins and keep the connections (a planned demote's handover: they are closed
    /// by [`Target::remove`] once the address is gone); equivalent to `tgtadm --op update
    /// --name state --value offline`. Default: [`Target::offline`] (closes them).
    fn refuse_logins(
        &self,
        res: &Resource,
    ) -> impl Future<Output = Result<(), BackendError>> + Send {
        self.offline(res)
    }
    /// Delete the target (which closes the backing device); equivalent to
    /// `tgtadm --op delete --force --mode target --tid TID`.
    fn remove(&self, res: &Resource) -> impl Future<Output = Result<(), BackendError>> + Send;
    /// Before DRBD Primary: [`BackendError::Refused`] ("tid N holds IQN") when someone else's
    /// target holds the resource's tid or IQN; equivalent to `tgtadm --op show`. Every
    /// mutating call also leaves such a target untouched. Default: nothing to check.
    fn check_owner(&self, res: &Resource) -> impl Future<Output = Result<(), BackendError>> + Send {
        let _ = res;
        async { Ok(()) }
    }
    /// Whether this node stands by: its authority is secondary and it has converged there, so
    /// none of its targets is to be served (a restarted tgtd is not held offline for any, and
    /// a hold running ends). Told by the daemon when it changes. Default: nothing to do.
    fn stand_by(&self, standby: bool) -> impl Future<Output = ()> + Send {
        let _ = standby;
        async {}
    }
    /// Whether the last read of `res`'s target ([`Target::status`]) found it staged ahead of a
    /// promote (read as absent; `status` says so). Default: never.
    fn staged(&self, _res: &Resource) -> bool {
        false
    }
    /// Whether targets may be staged ahead of a promote: the node stands by and is not in
    /// maintenance (which changes nothing). Off leaves what is staged as it is. Told by the
    /// daemon when it changes. Default: nothing to do.
    fn stage_ahead(&self, on: bool) -> impl Future<Output = ()> + Send {
        let _ = on;
        async {}
    }
}

/// A floating address.
pub trait Address: Send + Sync {
    /// Is it held on this node? Equivalent to `ip -o addr show dev IF to ADDR`.
    fn held(&self, addr: &AddressConfig)
        -> impl Future<Output = Result<bool, BackendError>> + Send;
    /// Is its interface administratively up with carrier (a claim can announce it)?
    /// Equivalent to `ip link show dev IF` showing `UP,LOWER_UP`. Default: up.
    fn link_up(
        &self,
        addr: &AddressConfig,
    ) -> impl Future<Output = Result<bool, BackendError>> + Send {
        let _ = addr;
        async { Ok(true) }
    }
    /// Another interface of this host that holds it (a typo in `interface`, or one added by
    /// hand), or `None`. Equivalent to `ip -o addr show to ADDR`. Default: none.
    fn held_on_other_interface(
        &self,
        addr: &AddressConfig,
    ) -> impl Future<Output = Result<Option<String>, BackendError>> + Send {
        let _ = addr;
        async { Ok(None) }
    }
    /// Does another host answer for it? Equivalent to `arping -D -I IF ADDR` (RFC 5227 probe).
    fn answered_elsewhere(
        &self,
        addr: &AddressConfig,
    ) -> impl Future<Output = Result<bool, BackendError>> + Send;
    /// Start the check of [`Address::answered_elsewhere`] and return at once, so it runs while
    /// DRBD and the target come up; [`Address::probe_conflict`] gives its verdict and
    /// [`Address::claim`] uses it instead of probing again. Default: nothing is started.
    fn start_probe(
        &self,
        addr: &AddressConfig,
    ) -> impl Future<Output = Result<(), BackendError>> + Send {
        let _ = addr;
        async { Ok(()) }
    }
    /// Did another host answer for it since [`Address::start_probe`]? Waits for the probe
    /// window to end. Default (and without a started probe): a whole probe now.
    fn probe_conflict(
        &self,
        addr: &AddressConfig,
    ) -> impl Future<Output = Result<bool, BackendError>> + Send {
        self.answered_elsewhere(addr)
    }
    /// The claim is near: the last target in front of it starts serving. A probe that keeps
    /// probing (one started on the peer's release notice and taken by
    /// [`Address::start_probe`]) spaces its next probes so that its last one is judged while
    /// that target comes up rather than at the claim, never older there than a probe of the
    /// promote's own would be ([`::vip::ProbeSession::claim_near`]). Default: nothing.
    fn claim_near(&self, addr: &AddressConfig) -> impl Future<Output = ()> + Send {
        let _ = addr;
        async {}
    }
    /// Add and announce it; equivalent to `ip addr add ADDR/PREFIX dev IF` then
    /// `arping -U` (IPv4) or an unsolicited neighbour advertisement (IPv6). After
    /// [`Address::start_probe`] a conflict heard since then refuses it.
    fn claim(&self, addr: &AddressConfig) -> impl Future<Output = Result<(), BackendError>> + Send;
    /// Remove it; equivalent to `ip addr del ADDR/PREFIX dev IF`.
    fn release(
        &self,
        addr: &AddressConfig,
    ) -> impl Future<Output = Result<(), BackendError>> + Send;
    /// After a planned demote removed it: tells the peer (`[tickle]`,
    /// [`crate::peer_link::PeerLink::tell_released`]), whose probe of it starts then instead of
    /// at its promote. Best effort, never fails. Default: no peer link, nothing told.
    fn tell_released(&self, addr: &AddressConfig) -> impl Future<Output = ()> + Send {
        let _ = addr;
        async {}
    }
    /// A planned demote's handover of the client connections on `ips` to the peer
    /// (`[tickle]`, [`crate::peer_link::PeerLink::hand_over`]): `Ok(n)` once the peer
    /// acknowledged the fresh list, `n` connections on `ips`; `Err(why)` otherwise. Default:
    /// no peer link.
    fn hand_over(
        &self,
        ips: Vec<std::net::IpAddr>,
    ) -> impl Future<Output = Result<usize, String>> + Send {
        let _ = ips;
        async { Err("no [tickle] peer link".to_string()) }
    }
}

impl<T: Drbd> Drbd for std::sync::Arc<T> {
    fn status(
        &self,
        res: &Resource,
    ) -> impl Future<Output = Result<DrbdView, BackendError>> + Send {
        (**self).status(res)
    }
    fn up(&self, res: &Resource) -> impl Future<Output = Result<(), BackendError>> + Send {
        (**self).up(res)
    }
    fn primary(
        &self,
        res: &Resource,
        force: bool,
    ) -> impl Future<Output = Result<(), BackendError>> + Send {
        (**self).primary(res, force)
    }
    fn secondary(&self, res: &Resource) -> impl Future<Output = Result<(), BackendError>> + Send {
        (**self).secondary(res)
    }
    fn primary_at_once(
        &self,
        res: &Resource,
    ) -> impl Future<Output = Result<(), BackendError>> + Send {
        (**self).primary_at_once(res)
    }
    fn changed(
        &self,
        res: &Resource,
        before: &DrbdView,
        limit: std::time::Duration,
    ) -> impl Future<Output = Result<DrbdView, BackendError>> + Send {
        (**self).changed(res, before, limit)
    }
    fn generations(
        &self,
        res: &Resource,
    ) -> impl Future<Output = Result<Generations, BackendError>> + Send {
        (**self).generations(res)
    }
    fn version(&self) -> Option<&'static str> {
        (**self).version()
    }
    fn check_config(&self, config: &crate::config::Config) -> Result<(), BackendError> {
        (**self).check_config(config)
    }
}

impl<T: Target> Target for std::sync::Arc<T> {
    fn status(
        &self,
        res: &Resource,
    ) -> impl Future<Output = Result<TargetView, BackendError>> + Send {
        (**self).status(res)
    }
    fn serve(&self, res: &Resource) -> impl Future<Output = Result<(), BackendError>> + Send {
        (**self).serve(res)
    }
    fn offline(&self, res: &Resource) -> impl Future<Output = Result<(), BackendError>> + Send {
        (**self).offline(res)
    }
    fn refuse_logins(
        &self,
        res: &Resource,
    ) -> impl Future<Output = Result<(), BackendError>> + Send {
        (**self).refuse_logins(res)
    }
    fn remove(&self, res: &Resource) -> impl Future<Output = Result<(), BackendError>> + Send {
        (**self).remove(res)
    }
    fn check_owner(&self, res: &Resource) -> impl Future<Output = Result<(), BackendError>> + Send {
        (**self).check_owner(res)
    }
    fn stand_by(&self, standby: bool) -> impl Future<Output = ()> + Send {
        (**self).stand_by(standby)
    }
    fn stage_ahead(&self, on: bool) -> impl Future<Output = ()> + Send {
        (**self).stage_ahead(on)
    }
    fn staged(&self, res: &Resource) -> bool {
        (**self).staged(res)
    }
}

impl<T: Address> Address for std::sync::Arc<T> {
    fn held(&self, a: &AddressConfig) -> impl Future<Output = Result<bool, BackendError>> + Send {
        (**self).held(a)
    }
    fn link_up(
        &self,
        a: &AddressConfig,
    ) -> impl Future<Output = Result<bool, BackendError>> + Send {
        (**self).link_up(a)
    }
    fn held_on_other_interface(
        &self,
        a: &AddressConfig,
    ) -> impl Future<Output = Result<Option<String>, BackendError>> + Send {
        (**self).held_on_other_interface(a)
    }
    fn answered_elsewhere(
        &self,
        a: &AddressConfig,
    ) -> impl Future<Output = Result<bool, BackendError>> + Send {
        (**self).answered_elsewhere(a)
    }
    fn start_probe(
        &self,
        a: &AddressConfig,
    ) -> impl Future<Output = Result<(), BackendError>> + Send {
        (**self).start_probe(a)
    }
    fn probe_conflict(
        &self,
        a: &AddressConfig,
    ) -> impl Future<Output = Result<bool, BackendError>> + Send {
        (**self).probe_conflict(a)
    }
    fn claim_near(&self, a: &AddressConfig) -> impl Future<Output = ()> + Send {
        (**self).claim_near(a)
    }
    fn claim(&self, a: &AddressConfig) -> impl Future<Output = Result<(), BackendError>> + Send {
        (**self).claim(a)
    }
    fn release(&self, a: &AddressConfig) -> impl Future<Output = Result<(), BackendError>> + Send {
        (**self).release(a)
    }
    fn tell_released(&self, a: &AddressConfig) -> impl Future<Output = ()> + Send {
        (**self).tell_released(a)
    }
    fn hand_over(
        &self,
        ips: Vec<std::net::IpAddr>,
    ) -> impl Future<Output = Result<usize, String>> + Send {
        (**self).hand_over(ips)
    }
}
