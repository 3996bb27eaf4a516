//! Write caching of a disk LU: write-through (the safe default) or write-back (tgtd's own default).
//!
//! Facts used (tgt 1.0.85, `docs/write-cache.md` in the repository): `bs_rdwr` calls `fdatasync` after
//! every WRITE when the caching mode page (8) has WCE=0 or the CDB has FUA; `bsoflags=sync` opens the
//! backing store `O_SYNC`; a `mode_page=` update replaces the whole page, changeable mask included, so
//! initiators cannot turn WCE back on with MODE SELECT; `show` prints the backing-store flags but no mode
//! page.

use crate::client::TgtClient;
use crate::error::TgtError;
use crate::lun::{lun_update_request, BsOFlags, BsType, LunIdentity};
use crate::request::Params;

/// tgt-admin's `write-cache off` (scripts/tgt-admin): caching mode page 8, subpage 0, 18 bytes, first byte
/// 0x10 (DISC set, WCE clear); tgtd's default page differs only there (0x14, WCE set).
pub const WRITE_CACHE_OFF_PAGE: &str =
    "8:0:18:0x10:0:0xff:0xff:0:0:0xff:0xff:0xff:0xff:0x80:0x14:0:0:0:0:0:0";

/// How an LU acknowledges writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
#[non_exhaustive]
pub enum CacheMode {
    /// A WRITE is acknowledged only once it reached the backing device and the device flushed it
    /// (tgtd `fdatasync`s after each write), and the caching mode page says so (WCE=0, not changeable).
    ///
    /// Recipe: the backing store is opened `O_SYNC` (`bsoflags=sync`, so also WRITE SAME, which tgtd never
    /// syncs, is synchronous) and mode page 8 gets WCE=0 ([`WRITE_CACHE_OFF_PAGE`], so tgtd `fdatasync`s
    /// every WRITE and initiators see no volatile cache). Needs the `rdwr` backing store. `direct`
    /// (`O_DIRECT`) is not used: tgt 1.0.85 then fails VERIFY and ORWRITE (unaligned bounce buffers).
    #[default]
    WriteThrough,
    /// tgtd's default: buffered writes, WCE=1. **Risk:** a WRITE without FUA is acknowledged while it is
    /// only in the page cache of the serving node; if that node loses power before the initiator sends
    /// SYNCHRONIZE CACHE, the write is lost, and on an HA pair the initiator never learns it (it reads
    /// the old data back from the other node). Use only with initiators known to flush.
    WriteBack,
}

impl CacheMode {
    /// `write-through` or `write-back`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::WriteThrough => "write-through",
            Self::WriteBack => "write-back",
        }
    }

    /// The backing-store flags an LU is served with in this mode, given the ones asked for.
    pub fn bsoflags(self, asked: Option<BsOFlags>) -> Option<BsOFlags> {
        match (self, asked) {
            (Self::WriteBack, f) => f,
            (Self::WriteThrough, None | Some(BsOFlags::Sync)) => Some(BsOFlags::Sync),
            (Self::WriteThrough, Some(BsOFlags::Direct | BsOFlags::SyncDirect)) => {
                Some(BsOFlags::SyncDirect)
            }
        }
    }

    /// Refuses backing stores that cannot honour the mode.
    pub(crate) fn check(self, bstype: Option<BsType>) -> Result<(), TgtError> {
        match (self, bstype) {
            (Self::WriteThrough, Some(t @ (BsType::Aio | BsType::Null))) => Err(TgtError::invalid(
                "cache",
                format!(
                    "write-through needs the rdwr backing store ({} takes no bsoflags)",
                    t.as_str()
                ),
            )),
            _ => Ok(()),
        }
    }
}

impl std::fmt::Display for CacheMode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl TgtClient {
    /// Sets WCE=0 in the LU's caching mode page (the page becomes [`WRITE_CACHE_OFF_PAGE`], with nothing
    /// changeable by MODE SELECT): tgtd then `fdatasync`s after every WRITE. Send it only while no
    /// initiator can reach the LU (target offline, no ACL): tgtd frees and re-allocates the page while its
    /// I/O threads look it up for every write. [`TgtClient::serve`] does this for write-through LUNs.
    ///
    /// Equivalent to tgt-admin's `write-cache off`: `tgtadm --lld iscsi --mode logicalunit --op update
    /// --tid TID --lun LUN --params mode_page=8:0:18:0x10:0:0xff:0xff:0:0:0xff:0xff:0xff:0xff:0x80:0x14:0:0:0:0:0:0`.
    ///
    /// # Errors
    /// As [`TgtClient::execute`]: refused before sending, a socket failure, or tgtd's code
    /// ([`TgtError::Daemon`]).
    pub async fn disable_write_cache(&self, tid: i32, lun: u64) -> Result<(), TgtError> {
        let mut p = Params::new();
        p.push("mode_page", WRITE_CACHE_OFF_PAGE)?;
        self.execute(&lun_update_request(tid, lun, p)?)
            .await
            .map(drop)
    }

    /// [`TgtClient::set_lun_identity`] and, in write-through mode, [`TgtClient::disable_write_cache`]
    /// in one request (what [`TgtClient::serve`] sends): tgtd applies the keys left to right and only
    /// `mode_page` sets its reply code, identity keys never fail (docs/tgtd-ipc.md §4.4), so an error
    /// is the page's. The same rules hold: only while no initiator can reach the LU.
    ///
    /// Equivalent to `tgtadm --lld iscsi --mode logicalunit --op update --tid TID --lun LUN --params
    /// scsi_id=..,scsi_sn=..,vendor_id=..,product_id=..,product_rev=..,mode_page=8:0:18:0x10:...`
    /// (`mode_page` in write-through mode only).
    ///
    /// # Errors
    /// As [`TgtClient::execute`]: refused before sending, a socket failure, or tgtd's code
    /// ([`TgtError::Daemon`]).
    pub async fn set_lun_identity_and_cache(
        &self,
        tid: i32,
        lun: u64,
        identity: &LunIdentity,
        cache: CacheMode,
    ) -> Result<(), TgtError> {
        let mut p = identity.params()?;
        if cache == CacheMode::WriteThrough {
            p.push("mode_page", WRITE_CACHE_OFF_PAGE)?;
        }
        self.execute(&lun_update_request(tid, lun, p)?)
            .await
            .map(drop)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn write_through_adds_sync() {
        let wt = CacheMode::WriteThrough;
        assert_eq!(CacheMode::default(), wt);
        assert_eq!(wt.bsoflags(None), Some(BsOFlags::Sync));
        assert_eq!(
            wt.bsoflags(Some(BsOFlags::Direct)),
            Some(BsOFlags::SyncDirect)
        );
        assert_eq!(CacheMode::WriteBack.bsoflags(None), None);
        assert_eq!(
            CacheMode::WriteBack.bsoflags(Some(BsOFlags::Direct)),
            Some(BsOFlags::Direct)
        );
        assert!(wt.check(Some(BsType::Aio)).is_err());
        assert!(wt.check(Some(BsType::Rdwr)).is_ok());
        assert!(CacheMode::WriteBack.check(Some(BsType::Aio)).is_ok());
    }

    #[test]
    fn page_is_tgtds_default_with_wce_clear() {
        // sbc.c's default caching page, byte by byte, except the first data byte.
        let default = "8:0:18:0x14:0:0xff:0xff:0:0:0xff:0xff:0xff:0xff:0x80:0x14:0:0:0:0:0:0";
        let a: Vec<&str> = WRITE_CACHE_OFF_PAGE.split(':').collect();
        let b: Vec<&str> = default.split(':').collect();
        assert_eq!(a.len(), 3 + 18);
        let diff: Vec<usize> = (0..a.len()).filter(|i| a[*i] != b[*i]).collect();
        assert_eq!(diff, vec![3]);
        assert_eq!(u8::from_str_radix(&a[3][2..], 16).unwrap() & 0x04, 0);
    }
}
