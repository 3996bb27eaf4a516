//! Target mode: new, delete, state, iSCSI parameters, show.

use crate::client::TgtClient;
use crate::error::TgtError;
use crate::request::{Mode, Op, Params, Request};
use crate::show::{parse_target_params, parse_targets, Target};

/// Longest iSCSI name (RFC 3720 §3.2.6.1).
pub const MAX_TARGET_NAME_LEN: usize = 223;

/// Checks a target name: 1..=223 characters from `[A-Za-z0-9:.-]` (tgtd rejects others with 17).
///
/// # Errors
/// [`TgtError::InvalidRequest`] for an empty name, one over [`MAX_TARGET_NAME_LEN`] bytes, or a
/// character outside `[A-Za-z0-9:.-]`.
pub fn check_target_name(name: &str) -> Result<(), TgtError> {
    if name.is_empty() || name.len() > MAX_TARGET_NAME_LEN {
        return Err(TgtError::invalid(
            "targetname",
            "must be 1..=223 characters",
        ));
    }
    if let Some(c) = name
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, ':' | '.' | '-')))
    {
        return Err(TgtError::invalid(
            "targetname",
            format!("character {c:?} is not in [A-Za-z0-9:.-]"),
        ));
    }
    Ok(())
}

pub(crate) fn check_tid(tid: i32) -> Result<(), TgtError> {
    if tid < 0 {
        return Err(TgtError::invalid("tid", "must be >= 0"));
    }
    Ok(())
}

/// The state a target can be set to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SetState {
    /// `state=ready`
    Ready,
    /// `state=offline`: refuses new logins only; established sessions continue.
    Offline,
}

impl SetState {
    fn as_str(self) -> &'static str {
        match self {
            Self::Ready => "ready",
            Self::Offline => "offline",
        }
    }
}

/// Digest setting (a comma list such as `CRC32C,None` cannot be sent: commas separate params).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Digest {
    /// `None`
    None,
    /// `CRC32C`
    Crc32c,
}

/// An iSCSI target parameter (`tgtadm --mode target --op update --name K --value V`), typed and range-checked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum TargetParam {
    /// `MaxRecvDataSegmentLength` 512..=16777215
    MaxRecvDataSegmentLength(u32),
    /// `MaxXmitDataSegmentLength` 512..=16777215
    MaxXmitDataSegmentLength(u32),
    /// `FirstBurstLength` 512..=16777215
    FirstBurstLength(u32),
    /// `MaxBurstLength` 512..=16777215
    MaxBurstLength(u32),
    /// `HeaderDigest`
    HeaderDigest(Digest),
    /// `DataDigest`
    DataDigest(Digest),
    /// `InitialR2T`
    InitialR2T(bool),
    /// `ImmediateData`
    ImmediateData(bool),
    /// `MaxOutstandingR2T` 1..=65535
    MaxOutstandingR2T(u32),
    /// `MaxConnections` 1..=65535
    MaxConnections(u32),
    /// `DefaultTime2Wait` 0..=3600
    DefaultTime2Wait(u32),
    /// `DefaultTime2Retain` 0..=3600
    DefaultTime2Retain(u32),
    /// `ErrorRecoveryLevel` 0..=2
    ErrorRecoveryLevel(u32),
    /// `MaxQueueCmd` 1..=512
    MaxQueueCmd(u32),
    /// `nop_interval` seconds, 0 = off
    NopInterval(u32),
    /// `nop_count`
    NopCount(u32),
}

impl TargetParam {
    fn key_value(self) -> Result<(&'static str, String), TgtError> {
        fn range(
            k: &'static str,
            v: u32,
            lo: u32,
            hi: u32,
        ) -> Result<(&'static str, String), TgtError> {
            if v < lo || v > hi {
                return Err(TgtError::invalid(k, format!("{v} is outside {lo}..={hi}")));
            }
            Ok((k, v.to_string()))
        }
        fn yn(b: bool) -> String {
            if b { "Yes" } else { "No" }.to_string()
        }
        fn dg(k: &'static str, d: Digest) -> Result<(&'static str, String), TgtError> {
            match d {
                Digest::None => Ok((k, "None".into())),
                Digest::Crc32c => Ok((k, "CRC32C".into())),
            }
        }
        const SEG: u32 = 16_777_215;
        match self {
            Self::MaxRecvDataSegmentLength(v) => range("MaxRecvDataSegmentLength", v, 512, SEG),
            Self::MaxXmitDataSegmentLength(v) => range("MaxXmitDataSegmentLength", v, 512, SEG),
            Self::FirstBurstLength(v) => range("FirstBurstLength", v, 512, SEG),
            Self::MaxBurstLength(v) => range("MaxBurstLength", v, 512, SEG),
            Self::HeaderDigest(d) => dg("HeaderDigest", d),
            Self::DataDigest(d) => dg("DataDigest", d),
            Self::InitialR2T(b) => Ok(("InitialR2T", yn(b))),
            Self::ImmediateData(b) => Ok(("ImmediateData", yn(b))),
            Self::MaxOutstandingR2T(v) => range("MaxOutstandingR2T", v, 1, 65535),
            Self::MaxConnections(v) => range("MaxConnections", v, 1, 65535),
            Self::DefaultTime2Wait(v) => range("DefaultTime2Wait", v, 0, 3600),
            Self::DefaultTime2Retain(v) => range("DefaultTime2Retain", v, 0, 3600),
            Self::ErrorRecoveryLevel(v) => range("ErrorRecoveryLevel", v, 0, 2),
            Self::MaxQueueCmd(v) => range("MaxQueueCmd", v, 1, 512),
            Self::NopInterval(v) => range("nop_interval", v, 0, i32::MAX as u32),
            Self::NopCount(v) => range("nop_count", v, 0, i32::MAX as u32),
        }
    }
}

pub(crate) fn target_new_request(tid: i32, name: &str) -> Result<Request, TgtError> {
    check_tid(tid)?;
    check_target_name(name)?;
    let mut p = Params::new();
    p.push("targetname", name)?;
    Ok(Request::new(Mode::Target, Op::New).tid(tid).params(p))
}

pub(crate) fn target_state_request(tid: i32, state: SetState) -> Result<Request, TgtError> {
    check_tid(tid)?;
    let mut p = Params::new();
    p.push("state", state.as_str())?;
    Ok(Request::new(Mode::Target, Op::Update).tid(tid).params(p))
}

pub(crate) fn target_delete_request(tid: i32, force: bool) -> Result<Request, TgtError> {
    check_tid(tid)?;
    let mut r = Request::new(Mode::Target, Op::Delete).tid(tid);
    r.force = force;
    Ok(r)
}

impl TgtClient {
    /// Creates a target; it starts `ready` with an empty ACL (no login possible yet).
    ///
    /// Equivalent to `tgtadm --lld iscsi --mode target --op new --tid TID --targetname NAME`.
    ///
    /// # Errors
    /// As [`TgtClient::execute`]: refused before sending, a socket failure, or tgtd's code
    /// ([`TgtError::Daemon`]).
    pub async fn new_target(&self, tid: i32, name: &str) -> Result<(), TgtError> {
        self.execute(&target_new_request(tid, name)?)
            .await
            .map(drop)
    }

    /// Deletes a target with its LUNs, ACLs and account bindings; `force` also closes its sessions.
    ///
    /// Equivalent to `tgtadm --lld iscsi --mode target --op delete [--force] --tid TID`.
    ///
    /// # Errors
    /// As [`TgtClient::execute`]: refused before sending, a socket failure, or tgtd's code
    /// ([`TgtError::Daemon`]).
    pub async fn delete_target(&self, tid: i32, force: bool) -> Result<(), TgtError> {
        self.execute(&target_delete_request(tid, force)?)
            .await
            .map(drop)
    }

    /// Sets a target `ready` or `offline` (offline refuses new logins; existing sessions continue).
    ///
    /// Equivalent to `tgtadm --lld iscsi --mode target --op update --tid TID --name state --value STATE`.
    ///
    /// # Errors
    /// As [`TgtClient::execute`]: refused before sending, a socket failure, or tgtd's code
    /// ([`TgtError::Daemon`]).
    pub async fn set_target_state(&self, tid: i32, state: SetState) -> Result<(), TgtError> {
        self.execute(&target_state_request(tid, state)?)
            .await
            .map(drop)
    }

    /// Sets one iSCSI parameter of a target (applies to new logins).
    ///
    /// Equivalent to `tgtadm --lld iscsi --mode target --op update --tid TID --name KEY --value VALUE`.
    ///
    /// # Errors
    /// As [`TgtClient::execute`]: refused before sending, a socket failure, or tgtd's code
    /// ([`TgtError::Daemon`]).
    pub async fn set_target_param(&self, tid: i32, param: TargetParam) -> Result<(), TgtError> {
        check_tid(tid)?;
        let (k, v) = param.key_value()?;
        let mut p = Params::new();
        p.push(k, &v)?;
        self.execute(&Request::new(Mode::Target, Op::Update).tid(tid).params(p))
            .await
            .map(drop)
    }

    /// The raw text of target show for all targets.
    ///
    /// Equivalent to `tgtadm --lld iscsi --mode target --op show`.
    ///
    /// # Errors
    /// As [`TgtClient::execute`]: refused before sending, a socket failure, or tgtd's code
    /// ([`TgtError::Daemon`]).
    pub async fn show_targets_text(&self) -> Result<String, TgtError> {
        Ok(self
            .execute(&Request::new(Mode::Target, Op::Show))
            .await?
            .unwrap_or_default())
    }

    /// All targets, parsed.
    ///
    /// Equivalent to `tgtadm --lld iscsi --mode target --op show`, parsed.
    ///
    /// # Errors
    /// As [`TgtClient::execute`]: refused before sending, a socket failure, or tgtd's code
    /// ([`TgtError::Daemon`]), or [`TgtError::Parse`] for output that cannot be parsed.
    pub async fn show_targets(&self) -> Result<Vec<Target>, TgtError> {
        parse_targets(&self.show_targets_text().await?)
    }

    /// One target from the full show, or `None` when tgtd does not have it (e.g. after a restart).
    ///
    /// # Errors
    /// As [`TgtClient::execute`]: refused before sending, a socket failure, or tgtd's code
    /// ([`TgtError::Daemon`]), or [`TgtError::Parse`] for output that cannot be parsed.
    pub async fn target(&self, tid: i32) -> Result<Option<Target>, TgtError> {
        Ok(self
            .show_targets()
            .await?
            .into_iter()
            .find(|t| t.tid == tid))
    }

    /// True when tgtd has a target with this tid.
    ///
    /// # Errors
    /// As [`TgtClient::execute`]: refused before sending, a socket failure, or tgtd's code
    /// ([`TgtError::Daemon`]), or [`TgtError::Parse`] for output that cannot be parsed.
    pub async fn has_target(&self, tid: i32) -> Result<bool, TgtError> {
        Ok(self.target(tid).await?.is_some())
    }

    /// A target's iSCSI parameters as `(key, value)` pairs.
    ///
    /// Equivalent to `tgtadm --lld iscsi --mode target --op show --tid TID`.
    ///
    /// # Errors
    /// As [`TgtClient::execute`]: refused before sending, a socket failure, or tgtd's code
    /// ([`TgtError::Daemon`]), or [`TgtError::Parse`] for output that cannot be parsed.
    pub async fn show_target_params(&self, tid: i32) -> Result<Vec<(String, String)>, TgtError> {
        check_tid(tid)?;
        let text = self
            .execute(&Request::new(Mode::Target, Op::Show).tid(tid))
            .await?
            .unwrap_or_default();
        parse_target_params(&text)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        assert!(check_target_name("iqn.2026-11.test:t1").is_ok());
        for bad in ["", "a_b", "a b", "a,b", "a=b", "é"] {
            assert!(check_target_name(bad).is_err(), "{bad}");
        }
        assert!(check_target_name(&"a".repeat(224)).is_err());
    }

    #[test]
    fn new_request_bytes() {
        let r = target_new_request(1, "iqn.x:y").unwrap();
        assert_eq!(r.params_str(), "targetname=iqn.x:y");
        assert!(target_new_request(-1, "iqn.x:y").is_err());
    }

    #[test]
    fn params_ranges() {
        assert!(TargetParam::MaxQueueCmd(513).key_value().is_err());
        assert_eq!(
            TargetParam::InitialR2T(false).key_value().unwrap(),
            ("InitialR2T", "No".to_string())
        );
    }
}
