//! The two operations the agent needs: [`TgtClient::serve`] and [`TgtClient::stop_serving`], plus
//! [`TgtClient::served`] to notice a tgtd that restarted empty.

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use crate::account::{check_password, check_user, AccountDirection, AccountScope};
use crate::acl::Acl;
use crate::cache::CacheMode;
use crate::client::TgtClient;
use crate::error::{TgtErrno, TgtError};
use crate::lun::{
    check_lun, lun_attach_request, lun_new_pathless_request, lun_new_request, LunBacking,
    LunIdentity,
};
use crate::show::{Target, TargetState};
use crate::target::{check_target_name, check_tid, SetState};

/// One LU of a served target.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServeLun {
    /// LUN number, 1..=16383.
    pub lun: u64,
    /// Backing store.
    pub backing: LunBacking,
    /// Identity (same on both nodes).
    pub identity: LunIdentity,
    /// Write-through (default: `O_SYNC` and WCE=0) or write-back; use the same on both nodes. See
    /// [`CacheMode`] for the recipe and the risk of write-back.
    pub cache: CacheMode,
}

impl ServeLun {
    /// The backing store as served: [`LunBacking::bsoflags`] gains `sync` in write-through mode.
    pub fn served_backing(&self) -> LunBacking {
        let mut b = self.backing.clone();
        b.bsoflags = self.cache.bsoflags(b.bsoflags);
        b
    }
}

/// A CHAP account of a served target.
#[derive(Clone, PartialEq, Eq)]
pub struct ServeAccount {
    /// User name (1..=255 characters from `[A-Za-z0-9.-_@:]`).
    pub user: String,
    /// The CHAP secret (1..=255 printable ASCII characters). Never printed: `Debug` shows
    /// `<redacted>`.
    pub password: String,
    /// Incoming: the initiator proves itself with this account (several allowed). Outgoing:
    /// the target proves itself to the initiator, mutual CHAP (at most one).
    pub direction: AccountDirection,
}

impl std::fmt::Debug for ServeAccount {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServeAccount")
            .field("user", &self.user)
            .field("password", &"<redacted>")
            .field("direction", &self.direction)
            .finish()
    }
}

/// What to serve: one target with its LUNs, ACL and CHAP accounts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServeSpec {
    /// Target id (use the same on both nodes: VPD 0x83's NAA-3 designator depends on it).
    pub tid: i32,
    /// Target IQN.
    pub name: String,
    /// LUNs.
    pub luns: Vec<ServeLun>,
    /// ACL entries (an empty list means nobody can log in).
    pub acls: Vec<Acl>,
    /// CHAP accounts (empty: no CHAP). With an incoming account bound, tgtd lets an initiator
    /// log in only with one of them; they are bound while the target is still offline.
    pub accounts: Vec<ServeAccount>,
}

impl ServeSpec {
    /// Checks every field without talking to tgtd.
    ///
    /// # Errors
    /// [`TgtError::InvalidRequest`] naming the field at fault.
    pub fn validate(&self) -> Result<(), TgtError> {
        check_tid(self.tid)?;
        check_target_name(&self.name)?;
        let mut seen = BTreeSet::new();
        for l in &self.luns {
            check_lun(l.lun)?;
            if !seen.insert(l.lun) {
                return Err(TgtError::invalid(
                    "lun",
                    format!("LUN {} listed twice", l.lun),
                ));
            }
            l.cache.check(l.backing.bstype)?;
            lun_new_request(self.tid, l.lun, &l.served_backing())?;
            l.identity.params()?;
        }
        let mut acls = BTreeSet::new();
        for a in &self.acls {
            if !acls.insert(a) {
                return Err(TgtError::invalid(
                    "acl",
                    format!("{} listed twice", a.as_str()),
                ));
            }
            match a {
                Acl::Address(s) => drop(Acl::address(s)?),
                Acl::Name(s) => drop(Acl::name(s)?),
            }
        }
        let mut users = BTreeSet::new();
        for a in &self.accounts {
            check_user(&a.user)?;
            check_password(&a.password)?;
            if !users.insert((&a.user, a.direction == AccountDirection::Outgoing)) {
                return Err(TgtError::invalid(
                    "user",
                    format!("account {} listed twice", a.user),
                ));
            }
        }
        let outgoing = self
            .accounts
            .iter()
            .filter(|a| a.direction == AccountDirection::Outgoing)
            .count();
        if outgoing > 1 {
            return Err(TgtError::invalid(
                "user",
                "tgtd binds at most one outgoing account per target",
            ));
        }
        Ok(())
    }

    /// How a parsed `show` of every target ([`TgtClient::show_targets`]) serves this spec: what
    /// [`TgtClient::served`] returns, without asking tgtd (one `show` for several specs).
    pub fn served_in(&self, targets: &[Target]) -> Served {
        let t = match owned(targets, self.tid, &self.name) {
            Ok(Some(t)) => t,
            Ok(None) => return Served::Missing,
            Err(foreign) => return foreign,
        };
        let d = self.differences(t);
        if !d.is_empty() {
            if self.compare(t, true).is_empty() {
                Served::Staged
            } else {
                Served::Different(d)
            }
        } else if t.state == TargetState::Ready {
            Served::Serving
        } else {
            Served::Offline
        }
    }

    /// Compares with a target parsed from show; returns the differences (empty = identical as far as
    /// show can tell: `vendor_id`, `product_id` and `product_rev` are not printed by show, and neither is
    /// any mode page). The cache mode is compared through the backing-store flags it implies (`sync` in
    /// write-through mode), not through the caching mode page's WCE bit, which show does not print.
    pub fn differences(&self, t: &Target) -> Vec<String> {
        self.compare(t, false)
    }

    /// [`ServeSpec::differences`] against the served target, or with `staged` against this
    /// spec's staged target ([`TgtClient::stage`]): every LU without a backing-store path, no
    /// ACL entry, no account.
    fn compare(&self, t: &Target, staged: bool) -> Vec<String> {
        let mut d = Vec::new();
        if t.name != self.name {
            d.push(format!("name is {} (want {})", t.name, self.name));
        }
        let have: BTreeSet<u64> = t.luns.iter().map(|l| l.lun).filter(|l| *l != 0).collect();
        let want: BTreeSet<u64> = self.luns.iter().map(|l| l.lun).collect();
        if have != want {
            d.push(format!("LUNs are {have:?} (want {want:?})"));
        }
        for l in &self.luns {
            let Some(h) = t.lun(l.lun) else { continue };
            let path = l.backing.path.to_str().filter(|_| !staged);
            if h.backing_store_path.as_deref() != path {
                d.push(format!(
                    "LUN {} backing store is {:?} (want {path:?})",
                    l.lun, h.backing_store_path
                ));
            }
            if let Some(bt) = l.backing.bstype {
                if h.backing_store_type != bt.as_str() {
                    d.push(format!(
                        "LUN {} bstype is {} (want {})",
                        l.lun,
                        h.backing_store_type,
                        bt.as_str()
                    ));
                }
            }
            let flags = l
                .cache
                .bsoflags(l.backing.bsoflags)
                .map(|f| f.as_str())
                .unwrap_or("");
            if h.backing_store_flags != flags {
                d.push(format!(
                    "LUN {} bsoflags are {:?} (want {flags:?})",
                    l.lun, h.backing_store_flags
                ));
            }
            if let Some(bs) = l.backing.blocksize {
                if h.block_size != bs {
                    d.push(format!(
                        "LUN {} block size is {} (want {bs})",
                        l.lun, h.block_size
                    ));
                }
            }
            if h.scsi_id != l.identity.scsi_id {
                d.push(format!("LUN {} scsi_id is {:?}", l.lun, h.scsi_id));
            }
            if h.scsi_sn != l.identity.scsi_sn {
                d.push(format!("LUN {} scsi_sn is {:?}", l.lun, h.scsi_sn));
            }
            // a failed attach may leave it read-only (`bs_rdwr_open` on EACCES / EROFS)
            if staged && h.readonly {
                d.push(format!("LUN {} is read-only", l.lun));
            }
        }
        let have: BTreeSet<&str> = t.acls.iter().map(String::as_str).collect();
        let want: BTreeSet<&str> = self
            .acls
            .iter()
            .filter(|_| !staged)
            .map(Acl::as_str)
            .collect();
        if have != want {
            d.push(format!("ACLs are {have:?} (want {want:?})"));
        }
        let have: BTreeSet<(&str, bool)> = t
            .accounts
            .iter()
            .map(|a| (a.user.as_str(), a.outgoing))
            .collect();
        let want: BTreeSet<(&str, bool)> = self
            .accounts
            .iter()
            .filter(|_| !staged)
            .map(|a| (a.user.as_str(), a.direction == AccountDirection::Outgoing))
            .collect();
        if have != want {
            d.push(format!(
                "accounts (user, outgoing) are {have:?} (want {want:?})"
            ));
        }
        d
    }
}

/// Result of [`TgtClient::serve`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum ServeOutcome {
    /// The target was created.
    Created,
    /// An identical target was already there (set `ready` if it was offline).
    AlreadyServing,
}

/// Result of [`TgtClient::served`].
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Served {
    /// Present, identical, ready.
    Serving,
    /// Present and identical but offline.
    Offline,
    /// Absent: tgtd restarted empty, or the target was removed.
    Missing,
    /// Staged ([`TgtClient::stage`]): this IQN at this tid with the spec's LUs, each without a
    /// backing store, and no ACL entry or account: nothing is opened and nobody can log in or
    /// discover it. [`TgtClient::serve`] completes it.
    Staged,
    /// Present but different; each entry is a difference.
    Different(Vec<String>),
    /// Someone else's target: `tid` holds `name`, another IQN at the asked tid or the asked IQN
    /// at another tid. Never to be touched by the asker.
    Foreign {
        /// The tid of the target found.
        tid: i32,
        /// Its IQN.
        name: String,
    },
}

/// Result of [`TgtClient::stop_serving`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum StopOutcome {
    /// The target was removed.
    Stopped {
        /// ACL entries unbound.
        acls_unbound: usize,
        /// iSCSI connections closed.
        connections_closed: usize,
        /// Forced deletes sent (more than 1 when tgtd refused while I/O was in flight).
        delete_attempts: u32,
    },
    /// There was no such target.
    NotServing,
}

/// How long [`TgtClient::stop_serving`] keeps retrying by default while tgtd reports I/O in flight
/// (see [`TgtClient::busy_retry_for`]).
pub const STOP_RETRY_FOR: Duration = Duration::from_secs(3);
/// First pause between deletes refused for I/O in flight; it doubles up to [`STOP_RETRY_MAX_STEP`].
const STOP_RETRY_STEP: Duration = Duration::from_millis(10);
/// Longest pause between deletes refused for I/O in flight.
pub const STOP_RETRY_MAX_STEP: Duration = Duration::from_millis(320);

/// The target at `tid` from `targets`, or `Foreign` when `tid` holds another IQN or `name` is
/// served at another tid (docs/tgtd-ipc.md §7.7).
fn owned<'a>(targets: &'a [Target], tid: i32, name: &str) -> Result<Option<&'a Target>, Served> {
    let foreign = |t: &Target| Served::Foreign {
        tid: t.tid,
        name: t.name.clone(),
    };
    match targets.iter().find(|t| t.tid == tid) {
        Some(t) if t.name == name => Ok(Some(t)),
        Some(t) => Err(foreign(t)),
        None => match targets.iter().find(|t| t.name == name) {
            Some(t) => Err(foreign(t)),
            None => Ok(None),
        },
    }
}

fn foreign_error(found: Served, want_tid: i32, want_name: &str) -> TgtError {
    match found {
        Served::Foreign { tid, name } => TgtError::TargetForeign {
            tid,
            name,
            want_tid,
            want_name: want_name.to_string(),
        },
        other => TgtError::Protocol(format!("unexpected {other:?}")),
    }
}

impl TgtClient {
    /// Publishes a target in the safe order (docs/tgtd-ipc.md §7.3): target new (tgtd creates it
    /// `ready` with an empty ACL, so nobody can log in or discover it until the first ACL bind),
    /// each LU new, then one LU update with its identity and, in write-through mode, WCE=0
    /// ([`TgtClient::set_lun_identity_and_cache`], while nobody can log in yet), CHAP accounts
    /// (created when absent, bound), the ACL binds last. Idempotent: when target new reports the tid or name taken, the
    /// target show is compared with `spec`; this spec's staged target ([`TgtClient::stage`]) is
    /// completed ([`TgtClient::serve_staged`], [`ServeOutcome::Created`]); an identical existing target is accepted
    /// ([`ServeOutcome::AlreadyServing`]), a different one is a [`TgtError::TargetConflict`]. If a step fails
    /// after the target was created, the target is deleted again (best effort) and the step's error returned.
    ///
    /// An existing target is compared through `show`, which cannot print the caching mode page: its WCE bit
    /// is taken to be what this client set when it created the target (the mode page is not rewritten on a
    /// target initiators can reach; see [`TgtClient::disable_write_cache`]).
    ///
    /// Equivalent to `tgtadm` target new; logicalunit new (bsoflags `sync` added in write-through
    /// mode); logicalunit update scsi_id,scsi_sn,vendor_id,product_id,product_rev,mode_page=8:...
    /// (mode_page in write-through mode only); account new and account bind (per account; an
    /// existing account of that name is reused, tgtd cannot show its secret); target bind (per
    /// ACL).
    ///
    /// # Errors
    /// [`TgtError::TargetForeign`] when the tid holds another IQN or the IQN is served at another
    /// tid (nothing is changed); [`TgtError::TargetConflict`] when the target at the tid has this IQN
    /// but differs (half-built: [`TgtClient::stop_serving`] it, then serve again); otherwise
    /// as [`TgtClient::execute`]: refused before sending, a socket failure, or tgtd's code
    /// ([`TgtError::Daemon`]) of the failing step.
    pub async fn serve(&self, spec: &ServeSpec) -> Result<ServeOutcome, TgtError> {
        spec.validate()?;
        // optimistic: on a promotion the target is normally absent, so create first and look only on a clash
        match self.new_target(spec.tid, &spec.name).await {
            Ok(()) => {}
            Err(e) if e.errno() == Some(TgtErrno::TargetExist) => {
                return self.serve_existing(spec).await
            }
            Err(e) => return Err(e),
        }
        match self.publish(spec).await {
            Ok(()) => Ok(ServeOutcome::Created),
            Err(e) => {
                // best effort: do not leave a half-built target behind
                let _ = self.delete_target(spec.tid, true).await;
                Err(e)
            }
        }
    }

    /// The tid or the name is taken: accept an identical target, report a different one.
    async fn serve_existing(&self, spec: &ServeSpec) -> Result<ServeOutcome, TgtError> {
        let targets = self.show_targets().await?;
        let found = owned(&targets, spec.tid, &spec.name)
            .map_err(|f| foreign_error(f, spec.tid, &spec.name))?;
        if let Some(t) = found {
            if spec.compare(t, true).is_empty() {
                self.serve_staged(spec).await?;
                return Ok(ServeOutcome::Created);
            }
            let d = spec.differences(t);
            if !d.is_empty() {
                return Err(TgtError::TargetConflict {
                    tid: spec.tid,
                    differences: d,
                });
            }
            if t.state != TargetState::Ready {
                self.set_target_state(spec.tid, SetState::Ready).await?;
            }
            return Ok(ServeOutcome::AlreadyServing);
        }
        Err(TgtError::TargetConflict {
            tid: spec.tid,
            differences: vec!["tgtd reports the target exists but show does not list it".into()],
        })
    }

    async fn publish(&self, spec: &ServeSpec) -> Result<(), TgtError> {
        // No `state=offline` / `ready` around the build: the empty ACL already keeps everyone out
        // (docs/tgtd-ipc.md §7.3), two requests less per target.
        for l in &spec.luns {
            self.new_lun(spec.tid, l.lun, &l.served_backing()).await?;
            self.set_lun_identity_and_cache(spec.tid, l.lun, &l.identity, l.cache)
                .await?;
        }
        self.open_access(spec).await
    }

    /// CHAP accounts (created when absent, bound), then the ACL binds: the last steps of a
    /// publish, after which initiators may log in.
    async fn open_access(&self, spec: &ServeSpec) -> Result<(), TgtError> {
        for a in &spec.accounts {
            // accounts are global in tgtd: one of this name may exist already (tgtd cannot
            // show its secret; serve creates it with the configured one when absent)
            match self.new_account(&a.user, &a.password).await {
                Err(e) if e.errno() == Some(TgtErrno::UserExist) => {}
                r => r?,
            }
            self.bind_account(AccountScope::Target(spec.tid), &a.user, a.direction)
                .await?;
        }
        for a in &spec.acls {
            self.bind_acl(spec.tid, a).await?;
        }
        Ok(())
    }

    /// Stages `spec`'s target ahead of a serve, with nothing opened and nobody let in: target new
    /// (no ACL entry: no login, no discovery), each LU new **without** a backing store (tgtd
    /// starts its backing-store I/O threads but opens no device; the LU is offline), then its
    /// identity and cache mode page as [`TgtClient::serve`] sets them. A later
    /// [`TgtClient::serve`] (or [`TgtClient::serve_staged`]) then only attaches each LU's backing
    /// store and binds accounts and ACLs: the device must be openable only then (a DRBD device
    /// only once Primary). Accounts and ACLs are not part of staging. Idempotent: an identical
    /// staged target is accepted; if a step fails after the target was created, it is deleted
    /// again (best effort). Facts: docs/tgtd-ipc.md §7.9.
    ///
    /// Equivalent to `tgtadm` target new; logicalunit new without `--backing-store` (bsoflags
    /// `sync` added in write-through mode); logicalunit update
    /// scsi_id,scsi_sn,vendor_id,product_id,product_rev,mode_page=8:... per LU.
    ///
    /// # Errors
    /// [`TgtError::TargetForeign`] as [`TgtClient::serve`]; [`TgtError::TargetConflict`] when the
    /// target at the tid has this IQN but is not this staged target (served, or different);
    /// otherwise as [`TgtClient::execute`].
    pub async fn stage(&self, spec: &ServeSpec) -> Result<(), TgtError> {
        spec.validate()?;
        match self.new_target(spec.tid, &spec.name).await {
            Ok(()) => {}
            Err(e) if e.errno() == Some(TgtErrno::TargetExist) => {
                let targets = self.show_targets().await?;
                return match spec.served_in(&targets) {
                    Served::Staged => Ok(()),
                    f @ Served::Foreign { .. } => Err(foreign_error(f, spec.tid, &spec.name)),
                    other => Err(TgtError::TargetConflict {
                        tid: spec.tid,
                        differences: vec![format!("not staged: {other:?}")],
                    }),
                };
            }
            Err(e) => return Err(e),
        }
        let built = async {
            for l in &spec.luns {
                let r = lun_new_pathless_request(spec.tid, l.lun, &l.served_backing())?;
                self.execute(&r).await?;
                self.set_lun_identity_and_cache(spec.tid, l.lun, &l.identity, l.cache)
                    .await?;
            }
            Ok(())
        }
        .await;
        if built.is_err() {
            let _ = self.delete_target(spec.tid, true).await;
        }
        built
    }

    /// Completes a target [`TgtClient::stage`]d with `spec`: per LU one update that attaches its
    /// backing store (`removable=0,path=...`: tgtd opens it with the LU's bsoflags and sets the
    /// LU online), then CHAP accounts and the ACL binds as [`TgtClient::serve`] does. The result
    /// shows and answers initiators as a target [`TgtClient::serve`] created (docs/tgtd-ipc.md
    /// §7.9). Nothing is checked first: the caller knows it staged this target (a `show` would
    /// cost what staging saves); tgtd has no conditional update, so ownership is as fresh as the
    /// caller's last look (docs/tgtd-ipc.md §7.7). If a step fails after the first LU was
    /// attached, the target is deleted (best effort).
    ///
    /// Equivalent to `tgtadm` logicalunit update removable=0,path=PATH (per LU); account new and
    /// bind; target bind (per ACL).
    ///
    /// # Errors
    /// As [`TgtClient::execute`]; tgtd's `NoTarget` or `NoLun` (there is no such staged target),
    /// `InvalidRequest` (an LU already has a backing store, or the path cannot be opened).
    pub async fn serve_staged(&self, spec: &ServeSpec) -> Result<(), TgtError> {
        spec.validate()?;
        let mut attached = false;
        let done = async {
            for l in &spec.luns {
                self.execute(&lun_attach_request(spec.tid, l.lun, &l.served_backing())?)
                    .await?;
                attached = true;
            }
            self.open_access(spec).await
        }
        .await;
        if done.is_err() && attached {
            let _ = self.delete_target(spec.tid, true).await;
        }
        done
    }

    /// Is `spec` being served? Detects a tgtd that restarted empty ([`Served::Missing`]) and someone
    /// else's target at its tid or its IQN at another tid ([`Served::Foreign`]). The cache mode is
    /// checked only through the backing-store flags (see [`ServeSpec::differences`]): `show` does not print
    /// the caching mode page.
    ///
    /// Equivalent to `tgtadm --lld iscsi --mode target --op show`, compared with the spec.
    ///
    /// # Errors
    /// As [`TgtClient::execute`]: refused before sending, a socket failure, or tgtd's code
    /// ([`TgtError::Daemon`]), or [`TgtError::Parse`] for output that cannot be parsed.
    pub async fn served(&self, spec: &ServeSpec) -> Result<Served, TgtError> {
        check_tid(spec.tid)?;
        Ok(spec.served_in(&self.show_targets().await?))
    }

    /// Like [`TgtClient::served`], but an absent target is the error [`TgtError::TargetMissing`].
    ///
    /// # Errors
    /// As [`TgtClient::execute`]: refused before sending, a socket failure, or tgtd's code
    /// ([`TgtError::Daemon`]), or [`TgtError::Parse`] for output that cannot be parsed.
    pub async fn check_served(&self, spec: &ServeSpec) -> Result<Served, TgtError> {
        match self.served(spec).await? {
            Served::Missing => Err(TgtError::TargetMissing {
                tid: spec.tid,
                name: spec.name.clone(),
            }),
            other => Ok(other),
        }
    }

    /// Stops serving the target `name` at `tid` so initiators notice at once: unbind every ACL
    /// entry (no log-back-in), `state=offline` (unless show has it offline already), close every
    /// connection, delete the target with force (tgtd deletes its LUs); if tgtd refuses for a busy
    /// LU, delete each LU (highest LUN first, as tgtd's own target delete does), so the refusal
    /// names it, then the target. A LU
    /// refused for I/O in flight (docs/tgtd-ipc.md §7.6) is retried with a doubling pause (10 ms up to
    /// [`STOP_RETRY_MAX_STEP`]) for [`TgtClient::busy_retry_for`] (default [`STOP_RETRY_FOR`]),
    /// closing any connection that appeared meanwhile. An absent target is
    /// [`StopOutcome::NotServing`]; someone else's target (another IQN at `tid`, or `name` at
    /// another tid) is refused before anything is sent but `show`.
    ///
    /// This is tgtd's order for taking one target down, not a node's demote order: where it runs
    /// relative to DRBD and the floating address is the caller's (the agent's demote data).
    ///
    /// Equivalent to `tgtadm` target show; target unbind (per ACL); target update state=offline;
    /// conn delete (per connection from conn show); target delete --force; after a busy refusal,
    /// logicalunit delete (per LU) and target delete --force again.
    ///
    /// # Errors
    /// [`TgtError::TargetForeign`] (nothing changed); [`TgtError::IoInFlight`] naming the LU still
    /// busy after the retries (the target is left offline, its idle LUs deleted); otherwise as
    /// [`TgtClient::execute`]: refused before sending, a socket failure, or tgtd's code
    /// ([`TgtError::Daemon`]).
    pub async fn stop_serving(&self, tid: i32, name: &str) -> Result<StopOutcome, TgtError> {
        check_tid(tid)?;
        check_target_name(name)?;
        self.stop_serving_in(&self.show_targets().await?, tid, name)
            .await
    }

    /// [`TgtClient::stop_serving`] with the ownership check made against `targets`, a `target show`
    /// the caller read ([`TgtClient::show_targets`]) **after** it decided to stop this target (one
    /// show shared by several targets' stops saves a show per target). The check is then as fresh
    /// as that show: tgtd has no conditional delete, so the check and the first change are always
    /// two requests (docs/tgtd-ipc.md §7.7); a show read before the caller's own last change at
    /// `tid` gives a wrong answer.
    ///
    /// # Errors
    /// As [`TgtClient::stop_serving`].
    pub async fn stop_serving_in(
        &self,
        targets: &[Target],
        tid: i32,
        name: &str,
    ) -> Result<StopOutcome, TgtError> {
        check_tid(tid)?;
        check_target_name(name)?;
        let t = match owned(targets, tid, name) {
            Ok(Some(t)) => t.clone(),
            Ok(None) => return Ok(StopOutcome::NotServing),
            Err(f) => return Err(foreign_error(f, tid, name)),
        };
        let mut acls_unbound = 0;
        for entry in &t.acls {
            let first = Acl::from_shown(entry);
            let res = match self.unbind_acl(tid, &first).await {
                Err(e)
                    if e.errno() == Some(TgtErrno::AclNoExist)
                        || matches!(e, TgtError::InvalidRequest { .. }) =>
                {
                    // shown address and name entries look alike: try the other kind
                    let other = match first {
                        Acl::Address(s) => Acl::Name(s),
                        Acl::Name(s) => Acl::Address(s),
                    };
                    self.unbind_acl(tid, &other).await
                }
                r => r,
            };
            match res {
                Ok(()) => acls_unbound += 1,
                Err(e) if e.errno() == Some(TgtErrno::AclNoExist) => {}
                Err(e) if e.errno() == Some(TgtErrno::NoTarget) => {
                    return Ok(StopOutcome::NotServing)
                }
                Err(e) => return Err(e),
            }
        }
        // already offline in the show (the agent's demote offlines before it removes): one request less
        if t.state != TargetState::Offline {
            match self.set_target_state(tid, SetState::Offline).await {
                Err(e) if e.errno() == Some(TgtErrno::NoTarget) => {
                    return Ok(StopOutcome::NotServing)
                }
                r => r?,
            }
        }
        let mut connections_closed = self.close_connections(tid).await?;
        let mut luns: Vec<u64> = t.luns.iter().map(|l| l.lun).filter(|l| *l != 0).collect();
        luns.sort_unstable_by(|a, b| b.cmp(a));
        let started = Instant::now();
        let mut pause = STOP_RETRY_STEP;
        let mut delete_attempts = 0;
        loop {
            delete_attempts += 1;
            let busy = match self.delete_luns_and_target(tid, &mut luns).await {
                Ok(()) => break,
                Err(Busy::Lun(lun)) => lun,
                Err(Busy::Other(e)) => return Err(e),
            };
            if started.elapsed() >= self.busy_retry {
                return Err(TgtError::IoInFlight {
                    tid,
                    lun: busy,
                    waited: started.elapsed(),
                });
            }
            connections_closed += self.close_connections(tid).await?;
            tokio::time::sleep(pause).await;
            pause = (pause * 2).min(STOP_RETRY_MAX_STEP);
        }
        Ok(StopOutcome::Stopped {
            acls_unbound,
            connections_closed,
            delete_attempts,
        })
    }

    /// One pass: the target with force (tgtd deletes its LUs, one request for the common case);
    /// when tgtd refuses for a busy LU, which it does not name (docs/tgtd-ipc.md §7.6), each
    /// remaining LU (removed from `luns` once deleted), then the target.
    async fn delete_luns_and_target(&self, tid: i32, luns: &mut Vec<u64>) -> Result<(), Busy> {
        let busy = |e: TgtError, lun| match e.errno() {
            Some(TgtErrno::LunActive | TgtErrno::TargetActive) => Busy::Lun(lun),
            _ => Busy::Other(e),
        };
        match self.delete_target(tid, true).await {
            Ok(()) => return Ok(()),
            Err(e) if e.errno() == Some(TgtErrno::NoTarget) => return Ok(()),
            Err(e) => {
                if let Busy::Other(e) = busy(e, 0) {
                    return Err(Busy::Other(e));
                }
            }
        }
        while let Some(&lun) = luns.first() {
            match self.delete_lun(tid, lun).await {
                Ok(()) => {}
                Err(e) if e.errno() == Some(TgtErrno::NoLun) => {}
                Err(e) if e.errno() == Some(TgtErrno::NoTarget) => return Ok(()),
                Err(e) => return Err(busy(e, lun)),
            }
            luns.remove(0);
        }
        match self.delete_target(tid, true).await {
            Ok(()) => Ok(()),
            Err(e) if e.errno() == Some(TgtErrno::NoTarget) => Ok(()),
            // only the controller LU 0 is left
            Err(e) => Err(busy(e, 0)),
        }
    }

    /// Closes every connection of target `tid` (one `conn show`, then a delete per connection);
    /// returns how many were closed. An absent target, or a connection gone meanwhile, is no error.
    ///
    /// Equivalent to `tgtadm --mode conn --op show --tid TID`, then `tgtadm --mode conn --op delete
    /// --tid TID --sid SID --cid CID` for each connection listed.
    ///
    /// # Errors
    /// As [`TgtClient::execute`]: refused before sending, a socket failure, or tgtd's code
    /// ([`TgtError::Daemon`]), or [`TgtError::Parse`] for output that cannot be parsed.
    pub async fn close_connections(&self, tid: i32) -> Result<usize, TgtError> {
        let conns = match self.show_connections(tid).await {
            Ok(c) => c,
            Err(e) if e.errno() == Some(TgtErrno::NoTarget) => return Ok(0),
            Err(e) => return Err(e),
        };
        let mut closed = 0;
        for c in conns {
            match self.delete_connection(tid, c.sid, c.cid).await {
                Ok(()) => closed += 1,
                // it went away by itself meanwhile
                Err(e)
                    if matches!(
                        e.errno(),
                        Some(TgtErrno::NoSession | TgtErrno::NoConnection | TgtErrno::NoTarget)
                    ) => {}
                Err(e) => return Err(e),
            }
        }
        Ok(closed)
    }
}

/// Why one delete pass stopped.
enum Busy {
    /// This LU has commands in flight.
    Lun(u64),
    /// Anything else.
    Other(TgtError),
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(accounts: Vec<ServeAccount>) -> ServeSpec {
        ServeSpec {
            tid: 1,
            name: "iqn.2026-11.test:t".into(),
            luns: Vec::new(),
            acls: vec![Acl::all()],
            accounts,
        }
    }

    fn account(user: &str, password: &str, direction: AccountDirection) -> ServeAccount {
        ServeAccount {
            user: user.into(),
            password: password.into(),
            direction,
        }
    }

    #[test]
    fn accounts_checked_and_never_printed() {
        let a = account("u1", "s3cret-value", AccountDirection::Incoming);
        assert!(!format!("{a:?}").contains("s3cret"));
        let o = |u: &str| account(u, "x", AccountDirection::Outgoing);
        assert!(spec(vec![a.clone(), o("t1")]).validate().is_ok());
        assert!(spec(vec![a.clone(), a.clone()]).validate().is_err());
        assert!(spec(vec![o("t1"), o("t2")]).validate().is_err());
        let e = spec(vec![account("u1", "has space", AccountDirection::Incoming)])
            .validate()
            .unwrap_err();
        assert!(!e.to_string().contains("has space"), "{e}");
        assert!(spec(vec![account("u,1", "x", AccountDirection::Incoming)])
            .validate()
            .is_err());
    }

    #[test]
    fn differences_compare_bindings() {
        let t = Target {
            tid: 1,
            name: "iqn.2026-11.test:t".into(),
            acls: vec!["ALL".into()],
            accounts: vec![crate::show::AccountBinding {
                user: "u1".into(),
                outgoing: false,
            }],
            ..Target::default()
        };
        let a = account("u1", "", AccountDirection::Incoming);
        assert!(spec(vec![a.clone()]).differences(&t).is_empty());
        assert_eq!(spec(Vec::new()).differences(&t).len(), 1);
        let out = account("u1", "", AccountDirection::Outgoing);
        assert_eq!(spec(vec![out]).differences(&t).len(), 1);
    }
}
