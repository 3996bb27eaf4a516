//! The two operations the agent needs: [`TgtClient::serve`] and [`TgtClient::stop_serving`], plus
//! [`TgtClient::served`] to notice a tgtd that restarted empty.

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use crate::account::{check_password, check_user, AccountDirection, AccountScope};
use crate::acl::Acl;
use crate::cache::CacheMode;
use crate::client::TgtClient;
use crate::error::{TgtErrno, TgtError};
use crate::lun::{check_lun, lun_new_request, LunBacking, LunIdentity};
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

    /// Compares with a target parsed from show; returns the differences (empty = identical as far as
    /// show can tell: `vendor_id`, `product_id` and `product_rev` are not printed by show, and neither is
    /// any mode page). The cache mode is compared through the backing-store flags it implies (`sync` in
    /// write-through mode), not through the caching mode page's WCE bit, which show does not print.
    pub fn differences(&self, t: &Target) -> Vec<String> {
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
            let path = l.backing.path.to_str().unwrap_or_default();
            if h.backing_store_path.as_deref() != Some(path) {
                d.push(format!(
                    "LUN {} backing store is {:?} (want {path})",
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
        }
        let have: BTreeSet<&str> = t.acls.iter().map(String::as_str).collect();
        let want: BTreeSet<&str> = self.acls.iter().map(Acl::as_str).collect();
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
    /// Present but different; each entry is a difference.
    Different(Vec<String>),
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

/// How long [`TgtClient::stop_serving`] keeps retrying the forced delete while tgtd reports I/O in flight.
pub const STOP_RETRY_FOR: Duration = Duration::from_secs(3);
const STOP_RETRY_STEP: Duration = Duration::from_millis(10);

impl TgtClient {
    /// Publishes a target in the safe order (docs/tgtd-ipc.md §7.3): target new, `state=offline`,
    /// each LU new with its
    /// identity and, in write-through mode, WCE=0 ([`TgtClient::disable_write_cache`], while nobody can
    /// log in yet), CHAP accounts (created when absent, bound), ACL binds, `state=ready`. Idempotent: when target new reports the tid or name taken, the
    /// target show is compared with `spec`; an identical existing target is accepted
    /// ([`ServeOutcome::AlreadyServing`]), a different one is a [`TgtError::TargetConflict`]. If a step fails
    /// after the target was created, the target is deleted again (best effort) and the step's error returned.
    ///
    /// An existing target is compared through `show`, which cannot print the caching mode page: its WCE bit
    /// is taken to be what this client set when it created the target (the mode page is not rewritten on a
    /// target initiators can reach; see [`TgtClient::disable_write_cache`]).
    ///
    /// Equivalent to `tgtadm` target new; target update state=offline; logicalunit new (bsoflags `sync`
    /// added in write-through mode); logicalunit update scsi_id,scsi_sn,vendor_id,product_id,product_rev;
    /// logicalunit update mode_page=8:... (write-through only); account new and account bind (per
    /// account; an existing account of that name is reused, tgtd cannot show its secret); target bind
    /// (per ACL); target update state=ready.
    ///
    /// # Errors
    /// [`TgtError::TargetConflict`] when the tid or name is taken by a different target; otherwise
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
        if let Some(t) = targets.iter().find(|t| t.tid == spec.tid) {
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
        let differences = match targets.iter().find(|t| t.name == spec.name) {
            Some(t) => vec![format!("name {} is used by tid {}", spec.name, t.tid)],
            None => vec!["tgtd reports the target exists but show does not list it".to_string()],
        };
        Err(TgtError::TargetConflict {
            tid: spec.tid,
            differences,
        })
    }

    async fn publish(&self, spec: &ServeSpec) -> Result<(), TgtError> {
        self.set_target_state(spec.tid, SetState::Offline).await?;
        for l in &spec.luns {
            self.new_lun(spec.tid, l.lun, &l.served_backing()).await?;
            self.set_lun_identity(spec.tid, l.lun, &l.identity).await?;
            if l.cache == CacheMode::WriteThrough {
                self.disable_write_cache(spec.tid, l.lun).await?;
            }
        }
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
        self.set_target_state(spec.tid, SetState::Ready).await
    }

    /// Is `spec` being served? Detects a tgtd that restarted empty ([`Served::Missing`]). The cache mode is
    /// checked only through the backing-store flags (see [`ServeSpec::differences`]): `show` does not print
    /// the caching mode page.
    ///
    /// Equivalent to `tgtadm --lld iscsi --mode target --op show`, compared with the spec.
    ///
    /// # Errors
    /// As [`TgtClient::execute`]: refused before sending, a socket failure, or tgtd's code
    /// ([`TgtError::Daemon`]), or [`TgtError::Parse`] for output that cannot be parsed.
    pub async fn served(&self, spec: &ServeSpec) -> Result<Served, TgtError> {
        let Some(t) = self.target(spec.tid).await? else {
            return Ok(Served::Missing);
        };
        let d = spec.differences(&t);
        Ok(if !d.is_empty() {
            Served::Different(d)
        } else if t.state == TargetState::Ready {
            Served::Serving
        } else {
            Served::Offline
        })
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

    /// Stops serving a target so initiators notice at once: unbind every ACL entry (no log-back-in),
    /// `state=offline`, close every connection, then delete with force, retrying for up to
    /// [`STOP_RETRY_FOR`] while tgtd reports the target or an LU busy (I/O in flight), closing any
    /// connection that appeared meanwhile. An absent target is [`StopOutcome::NotServing`].
    ///
    /// Equivalent to `tgtadm` target unbind (per ACL); target update state=offline; conn delete (per
    /// connection from conn show); target delete --force.
    ///
    /// # Errors
    /// As [`TgtClient::execute`]: refused before sending, a socket failure, or tgtd's code
    /// ([`TgtError::Daemon`]).
    pub async fn stop_serving(&self, tid: i32) -> Result<StopOutcome, TgtError> {
        check_tid(tid)?;
        let Some(t) = self.target(tid).await? else {
            return Ok(StopOutcome::NotServing);
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
        match self.set_target_state(tid, SetState::Offline).await {
            Err(e) if e.errno() == Some(TgtErrno::NoTarget) => return Ok(StopOutcome::NotServing),
            r => r?,
        }
        let mut connections_closed = self.close_all_connections(tid).await?;
        let started = Instant::now();
        let mut delete_attempts = 0;
        loop {
            delete_attempts += 1;
            match self.delete_target(tid, true).await {
                Ok(()) => break,
                Err(e) if e.errno() == Some(TgtErrno::NoTarget) => break,
                Err(e)
                    if matches!(
                        e.errno(),
                        Some(TgtErrno::TargetActive | TgtErrno::LunActive)
                    ) && started.elapsed() < STOP_RETRY_FOR =>
                {
                    connections_closed += self.close_all_connections(tid).await?;
                    tokio::time::sleep(STOP_RETRY_STEP).await;
                }
                Err(e) => return Err(e),
            }
        }
        Ok(StopOutcome::Stopped {
            acls_unbound,
            connections_closed,
            delete_attempts,
        })
    }

    async fn close_all_connections(&self, tid: i32) -> Result<usize, TgtError> {
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
