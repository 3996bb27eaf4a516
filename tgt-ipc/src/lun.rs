//! Logical-unit mode: new (backing store, bstype, bsoflags, blocksize), delete, update, identity.

use std::path::{Path, PathBuf};

use crate::client::TgtClient;
use crate::error::TgtError;
use crate::request::{check_plain_value, Mode, Op, Params, Request};
use crate::target::check_tid;

/// Largest LUN this client creates (REPORT LUNS encodes `lun & 0x3fff`).
pub const MAX_LUN: u64 = 16383;

/// Backing-store type (`--bstype`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum BsType {
    /// `rdwr`: pread/pwrite on a file or block device (the default).
    Rdwr,
    /// `aio`: Linux native AIO (supports no bsoflags).
    Aio,
    /// `null`: discards writes, reads zeros.
    Null,
}

impl BsType {
    /// The name tgtd uses.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Rdwr => "rdwr",
            Self::Aio => "aio",
            Self::Null => "null",
        }
    }
}

/// Backing-store open flags (`--bsoflags`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum BsOFlags {
    /// `sync` (O_SYNC)
    Sync,
    /// `direct` (O_DIRECT). tgt 1.0.85 then fails VERIFY and ORWRITE (it reads into unaligned
    /// `malloc` buffers; `docs/write-cache.md`).
    Direct,
    /// `sync:direct`
    SyncDirect,
}

impl BsOFlags {
    /// The spelling tgtd uses (also in show's `Backing store flags:`).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Sync => "sync",
            Self::Direct => "direct",
            Self::SyncDirect => "sync:direct",
        }
    }
}

/// How a new disk LU is backed (`tgtadm --mode logicalunit --op new` options).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LunBacking {
    /// `--backing-store`: absolute path of a regular file or block device.
    pub path: PathBuf,
    /// `--bstype` (tgtd's default for iSCSI is `rdwr`).
    pub bstype: Option<BsType>,
    /// `--bsoflags`.
    pub bsoflags: Option<BsOFlags>,
    /// `--blocksize`: logical block size, a power of two 512..=65536.
    pub blocksize: Option<u32>,
}

impl LunBacking {
    /// A backing store at `path`, tgtd defaults for the rest.
    pub fn new(path: impl Into<PathBuf>) -> Self {
        Self {
            path: path.into(),
            bstype: None,
            bsoflags: None,
            blocksize: None,
        }
    }

    /// Sets `--bstype`.
    pub fn bstype(mut self, bstype: BsType) -> Self {
        self.bstype = Some(bstype);
        self
    }

    /// Sets `--bsoflags`.
    pub fn bsoflags(mut self, flags: BsOFlags) -> Self {
        self.bsoflags = Some(flags);
        self
    }

    /// Sets `--blocksize`.
    pub fn blocksize(mut self, size: u32) -> Self {
        self.blocksize = Some(size);
        self
    }
}

fn check_path(path: &Path) -> Result<&str, TgtError> {
    let s = path
        .to_str()
        .ok_or_else(|| TgtError::invalid("path", "not valid UTF-8"))?;
    if !path.is_absolute() {
        return Err(TgtError::invalid("path", "must be absolute"));
    }
    check_plain_value("path", s)?;
    Ok(s)
}

pub(crate) fn check_lun(lun: u64) -> Result<(), TgtError> {
    if lun == 0 || lun > MAX_LUN {
        return Err(TgtError::invalid(
            "lun",
            "must be 1..=16383 (LUN 0 is tgtd's controller)",
        ));
    }
    Ok(())
}

pub(crate) fn lun_new_request(tid: i32, lun: u64, b: &LunBacking) -> Result<Request, TgtError> {
    lun_new_with(tid, lun, b, true)
}

/// `lun_new_request` without the path: tgtd starts the backing store (its I/O threads) but
/// opens nothing, and the LU is offline and removable until a path is attached
/// (`usr/target.c` `tgt_device_create`, docs/tgtd-ipc.md §7.9).
pub(crate) fn lun_new_pathless_request(
    tid: i32,
    lun: u64,
    b: &LunBacking,
) -> Result<Request, TgtError> {
    lun_new_with(tid, lun, b, false)
}

/// Attaches `b.path` to a pathless LU: `removable=0` (tgtd set it for the pathless LU) then
/// `path=` (opened with the LU's bsoflags, the LU goes online), one update
/// (`usr/spc.c` `lu_config` handles them in order).
pub(crate) fn lun_attach_request(tid: i32, lun: u64, b: &LunBacking) -> Result<Request, TgtError> {
    let mut p = Params::new();
    p.push("removable", "0")?;
    p.push("path", check_path(&b.path)?)?;
    lun_update_request(tid, lun, p)
}

fn lun_new_with(tid: i32, lun: u64, b: &LunBacking, path: bool) -> Result<Request, TgtError> {
    check_tid(tid)?;
    check_lun(lun)?;
    let mut p = Params::new();
    // checked also when left out: a staged LU gets this path later
    let checked = check_path(&b.path)?;
    if path {
        p.push("path", checked)?;
    }
    if let Some(t) = b.bstype {
        p.push("bstype", t.as_str())?;
    }
    if let Some(f) = b.bsoflags {
        if b.bstype == Some(BsType::Aio) {
            return Err(TgtError::invalid(
                "bsoflags",
                "the aio backing store takes no flags",
            ));
        }
        p.push("bsoflags", f.as_str())?;
    }
    if let Some(bs) = b.blocksize {
        if !bs.is_power_of_two() || !(512..=65536).contains(&bs) {
            return Err(TgtError::invalid(
                "blocksize",
                "must be a power of two in 512..=65536",
            ));
        }
        p.push("blocksize", &bs.to_string())?;
    }
    let mut r = Request::new(Mode::Device, Op::New).tid(tid).params(p);
    r.lun = lun;
    r.device_type = 0; // disk
    Ok(r)
}

/// The initiator-visible identity of an LU (docs/tgtd-ipc.md §7.4). Set the same values on both
/// nodes.
///
/// `scsi_id` feeds the VPD 0x83 T10 designator and the NAA-6 designator (use 32 hex digits starting with `6`
/// so NAA-6 equals it); `scsi_sn` is the VPD 0x80 unit serial.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct LunIdentity {
    /// `scsi_id`, at most 36 characters.
    pub scsi_id: String,
    /// `scsi_sn`, at most 36 characters.
    pub scsi_sn: String,
    /// `vendor_id` (standard INQUIRY), at most 8 characters.
    pub vendor_id: Option<String>,
    /// `product_id`, at most 16 characters.
    pub product_id: Option<String>,
    /// `product_rev`, at most 4 characters.
    pub product_rev: Option<String>,
}

fn check_ident(what: &'static str, v: &str, max: usize) -> Result<(), TgtError> {
    check_plain_value(what, v)?;
    if v.len() > max {
        return Err(TgtError::invalid(
            what,
            format!("longer than {max} characters (tgtd would truncate it)"),
        ));
    }
    if !v.bytes().all(|b| (0x20..0x7f).contains(&b)) {
        return Err(TgtError::invalid(what, "must be printable ASCII"));
    }
    if v.starts_with(' ') || v.ends_with(' ') {
        return Err(TgtError::invalid(what, "leading or trailing space"));
    }
    Ok(())
}

impl LunIdentity {
    /// Checks every field as [`TgtClient::set_lun_identity`] does, without talking to tgtd (for
    /// configuration checkers that must accept nothing tgt-ipc refuses later).
    ///
    /// # Errors
    /// [`TgtError::InvalidRequest`] whose `what` names the field (`scsi_id`, `scsi_sn`,
    /// `vendor_id`, `product_id`, `product_rev`): empty, too long, not printable ASCII, `,`
    /// or `=`, a leading or trailing space.
    pub fn check(&self) -> Result<(), TgtError> {
        self.params().map(drop)
    }

    /// The params string, in the order tgt-admin sends them.
    pub(crate) fn params(&self) -> Result<Params, TgtError> {
        let mut p = Params::new();
        check_ident("scsi_id", &self.scsi_id, 36)?;
        p.push("scsi_id", &self.scsi_id)?;
        check_ident("scsi_sn", &self.scsi_sn, 36)?;
        p.push("scsi_sn", &self.scsi_sn)?;
        for (k, v, max) in [
            ("vendor_id", &self.vendor_id, 8),
            ("product_id", &self.product_id, 16),
            ("product_rev", &self.product_rev, 4),
        ] {
            if let Some(v) = v {
                check_ident(k, v, max)?;
                p.push(k, v)?;
            }
        }
        Ok(p)
    }
}

/// One LU setting for [`TgtClient::update_lun`] (one key per request, for exact error attribution).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum LunSetting {
    /// `online=0|1` (medium present; on a non-removable disk I/O continues when offline).
    Online(bool),
    /// `readonly=0|1`
    Readonly(bool),
    /// `removable=0|1`
    Removable(bool),
    /// `thin_provisioning=0|1`
    ThinProvisioning(bool),
    /// `path=`: a new backing store; the LU must be offline first.
    Path(PathBuf),
}

pub(crate) fn lun_update_request(tid: i32, lun: u64, p: Params) -> Result<Request, TgtError> {
    check_tid(tid)?;
    check_lun(lun)?;
    let mut r = Request::new(Mode::Device, Op::Update).tid(tid).params(p);
    r.lun = lun;
    Ok(r)
}

impl TgtClient {
    /// Creates a disk LU backed by a file or block device. A missing file gives tgtd's `InvalidRequest`.
    ///
    /// Equivalent to `tgtadm --lld iscsi --mode logicalunit --op new --tid TID --lun LUN --backing-store PATH
    /// [--bstype T] [--bsoflags F] [--blocksize B]`.
    ///
    /// # Errors
    /// As [`TgtClient::execute`]: refused before sending, a socket failure, or tgtd's code
    /// ([`TgtError::Daemon`]).
    pub async fn new_lun(&self, tid: i32, lun: u64, backing: &LunBacking) -> Result<(), TgtError> {
        self.execute(&lun_new_request(tid, lun, backing)?)
            .await
            .map(drop)
    }

    /// Deletes an LU (LUN 0 cannot be deleted; in-flight commands give `LunActive`).
    ///
    /// Equivalent to `tgtadm --lld iscsi --mode logicalunit --op delete --tid TID --lun LUN`.
    ///
    /// # Errors
    /// As [`TgtClient::execute`]: refused before sending, a socket failure, or tgtd's code
    /// ([`TgtError::Daemon`]).
    pub async fn delete_lun(&self, tid: i32, lun: u64) -> Result<(), TgtError> {
        check_tid(tid)?;
        check_lun(lun)?;
        let mut r = Request::new(Mode::Device, Op::Delete).tid(tid);
        r.lun = lun;
        self.execute(&r).await.map(drop)
    }

    /// Sets the LU identity in one request (as the ClusterLabs `iSCSILogicalUnit` agent and tgt-admin do).
    /// Do it before binding the ACL; never change it while sessions exist.
    ///
    /// Equivalent to `tgtadm --lld iscsi --mode logicalunit --op update --tid TID --lun LUN
    /// --params scsi_id=..,scsi_sn=..,vendor_id=..,product_id=..,product_rev=..`.
    ///
    /// # Errors
    /// As [`TgtClient::execute`]: refused before sending, a socket failure, or tgtd's code
    /// ([`TgtError::Daemon`]).
    pub async fn set_lun_identity(
        &self,
        tid: i32,
        lun: u64,
        identity: &LunIdentity,
    ) -> Result<(), TgtError> {
        self.execute(&lun_update_request(tid, lun, identity.params()?)?)
            .await
            .map(drop)
    }

    /// Changes one LU setting.
    ///
    /// Equivalent to `tgtadm --lld iscsi --mode logicalunit --op update --tid TID --lun LUN --params KEY=VALUE`.
    ///
    /// # Errors
    /// As [`TgtClient::execute`]: refused before sending, a socket failure, or tgtd's code
    /// ([`TgtError::Daemon`]).
    pub async fn update_lun(
        &self,
        tid: i32,
        lun: u64,
        setting: &LunSetting,
    ) -> Result<(), TgtError> {
        let b = |v: bool| if v { "1" } else { "0" };
        let mut p = Params::new();
        match setting {
            LunSetting::Online(v) => p.push("online", b(*v))?,
            LunSetting::Readonly(v) => p.push("readonly", b(*v))?,
            LunSetting::Removable(v) => p.push("removable", b(*v))?,
            LunSetting::ThinProvisioning(v) => p.push("thin_provisioning", b(*v))?,
            LunSetting::Path(path) => p.push("path", check_path(path)?)?,
        };
        self.execute(&lun_update_request(tid, lun, p)?)
            .await
            .map(drop)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn new_params_in_tgtadm_order() {
        let b = LunBacking::new("/srv/v.img")
            .bstype(BsType::Rdwr)
            .bsoflags(BsOFlags::Direct)
            .blocksize(4096);
        let r = lun_new_request(1, 1, &b).unwrap();
        assert_eq!(
            r.params_str(),
            "path=/srv/v.img,bstype=rdwr,bsoflags=direct,blocksize=4096"
        );
        assert!(lun_new_request(1, 0, &b).is_err());
        assert!(lun_new_request(1, 1, &LunBacking::new("rel.img")).is_err());
        assert!(lun_new_request(1, 1, &LunBacking::new("/a,b=c")).is_err());
        assert!(lun_new_request(1, 1, &LunBacking::new("/a").blocksize(1000)).is_err());
        assert!(lun_new_request(
            1,
            1,
            &LunBacking::new("/a")
                .bstype(BsType::Aio)
                .bsoflags(BsOFlags::Sync)
        )
        .is_err());
    }

    #[test]
    fn identity_params() {
        let id = LunIdentity {
            scsi_id: "60014052e3c1a9b8d7f6e5d4c3b2a190".into(),
            scsi_sn: "SN1".into(),
            vendor_id: Some("ISCSIHA".into()),
            product_id: Some("VOL".into()),
            product_rev: Some("0001".into()),
        };
        assert_eq!(
            id.params().unwrap().as_str(),
            "scsi_id=60014052e3c1a9b8d7f6e5d4c3b2a190,scsi_sn=SN1,vendor_id=ISCSIHA,product_id=VOL,product_rev=0001"
        );
        let mut bad = id.clone();
        bad.vendor_id = Some("TOOLONGVENDOR".into());
        assert!(bad.params().is_err());
        let mut bad = id.clone();
        bad.scsi_sn = "a,vendor_id=X".into();
        assert!(bad.params().is_err());
        let mut bad = id;
        bad.scsi_id = String::new();
        assert!(bad.params().is_err());
    }
}
