//! The request: tgtd's 120-byte `struct tgtadm_req` header plus the `key=value,...` params string.
//!
//! Layout (host byte order, docs/tgtd-ipc.md §2.1):
//!
//! ```text
//!  0 mode u32 | 4 op u32 | 8 lld char[64] | 72 len u32 | 76 tid i32 | 80 sid u64 | 88 lun u64
//! 96 cid u32 | 100 host_no u32 | 104 device_type u32 | 108 ac_dir u32 | 112 pack u32 | 116 force u32
//! ```
//!
//! A [`Request`] can only be built by this crate's typed operations, and [`Request::validate`] is checked again
//! before anything is sent, so requests that crash tgtd (docs/tgtd-ipc.md §7.2) cannot leave the
//! process.

use crate::error::TgtError;

/// Size of `struct tgtadm_req`.
pub const REQ_HEADER_LEN: usize = 120;
/// Largest params string tgtd accepts, NUL included (`len - 120 <= 8192`).
pub const MAX_PARAMS_LEN: usize = 8192;
/// The driver name sent in `lld`.
pub const LLD_ISCSI: &str = "iscsi";

const MODE_SYSTEM: u32 = 0;
const MODE_TARGET: u32 = 1;
const MODE_DEVICE: u32 = 2;
const MODE_PORTAL: u32 = 3;
const MODE_LLD: u32 = 4;
const MODE_SESSION: u32 = 5;
const MODE_CONNECTION: u32 = 6;
const MODE_ACCOUNT: u32 = 7;

const OP_NEW: u32 = 0;
const OP_DELETE: u32 = 1;
const OP_SHOW: u32 = 2;
const OP_BIND: u32 = 3;
const OP_UNBIND: u32 = 4;
const OP_UPDATE: u32 = 5;
const OP_STATS: u32 = 6;
const OP_START: u32 = 7;
const OP_STOP: u32 = 8;

/// `tgtadm --mode` (`enum tgtadm_mode`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Mode {
    /// `MODE_SYSTEM` (`--mode sys`)
    System,
    /// `MODE_TARGET` (`--mode target`)
    Target,
    /// `MODE_DEVICE` (`--mode logicalunit`)
    Device,
    /// `MODE_PORTAL` (`--mode portal`)
    Portal,
    /// `MODE_LLD` (`--mode lld`)
    Lld,
    /// `MODE_SESSION` (`--mode session`)
    Session,
    /// `MODE_CONNECTION` (`--mode conn`)
    Connection,
    /// `MODE_ACCOUNT` (`--mode account`)
    Account,
}

impl Mode {
    /// The wire value.
    pub fn code(self) -> u32 {
        match self {
            Self::System => MODE_SYSTEM,
            Self::Target => MODE_TARGET,
            Self::Device => MODE_DEVICE,
            Self::Portal => MODE_PORTAL,
            Self::Lld => MODE_LLD,
            Self::Session => MODE_SESSION,
            Self::Connection => MODE_CONNECTION,
            Self::Account => MODE_ACCOUNT,
        }
    }
}

/// `tgtadm --op` (`enum tgtadm_op`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Op {
    /// `OP_NEW`
    New,
    /// `OP_DELETE`
    Delete,
    /// `OP_SHOW`
    Show,
    /// `OP_BIND`
    Bind,
    /// `OP_UNBIND`
    Unbind,
    /// `OP_UPDATE`
    Update,
    /// `OP_STATS`
    Stats,
    /// `OP_START`
    Start,
    /// `OP_STOP`
    Stop,
}

impl Op {
    /// The wire value.
    pub fn code(self) -> u32 {
        match self {
            Self::New => OP_NEW,
            Self::Delete => OP_DELETE,
            Self::Show => OP_SHOW,
            Self::Bind => OP_BIND,
            Self::Unbind => OP_UNBIND,
            Self::Update => OP_UPDATE,
            Self::Stats => OP_STATS,
            Self::Start => OP_START,
            Self::Stop => OP_STOP,
        }
    }
}

/// The params string, built key by key; values can never inject a separator.
///
/// Every value is checked: no `,` (the pair separator), no `=`, no NUL and no control characters. Keys are
/// fixed strings chosen by this crate.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Params {
    text: String,
    keys: Vec<&'static str>,
}

impl Params {
    /// An empty params string.
    pub fn new() -> Self {
        Self::default()
    }

    /// Appends `key=value`, refusing values that could break the `key=value,...` framing.
    ///
    /// # Errors
    /// [`TgtError::InvalidRequest`] when `value` holds `,` `=` NUL or a control character.
    pub fn push(&mut self, key: &'static str, value: &str) -> Result<&mut Self, TgtError> {
        check_plain_value(key, value)?;
        let sep = usize::from(!self.text.is_empty());
        if self.text.len() + sep + key.len() + 1 + value.len() + 1 > MAX_PARAMS_LEN {
            return Err(TgtError::invalid(
                key,
                format!("params would exceed tgtd's {MAX_PARAMS_LEN}-byte limit"),
            ));
        }
        if !self.text.is_empty() {
            self.text.push(',');
        }
        self.text.push_str(key);
        self.text.push('=');
        self.text.push_str(value);
        self.keys.push(key);
        Ok(self)
    }

    /// The text, without the NUL.
    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// The keys, in order.
    pub fn keys(&self) -> &[&'static str] {
        &self.keys
    }

    /// True when no key was pushed.
    pub fn is_empty(&self) -> bool {
        self.text.is_empty()
    }
}

/// Refuses `,` `=` NUL, control characters and empty values.
pub(crate) fn check_plain_value(what: &'static str, value: &str) -> Result<(), TgtError> {
    if value.is_empty() {
        return Err(TgtError::invalid(what, "empty value"));
    }
    if let Some(c) = value
        .chars()
        .find(|c| *c == ',' || *c == '=' || c.is_control())
    {
        return Err(TgtError::invalid(
            what,
            format!("value contains forbidden character {c:?}"),
        ));
    }
    Ok(())
}

/// One management request: header fields plus params. Built by the typed operations of this crate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    pub(crate) mode: Mode,
    pub(crate) op: Op,
    pub(crate) lld: &'static str,
    pub(crate) tid: i32,
    pub(crate) sid: u64,
    pub(crate) lun: u64,
    pub(crate) cid: u32,
    pub(crate) device_type: u32,
    pub(crate) ac_dir: u32,
    pub(crate) force: bool,
    pub(crate) params: Params,
}

impl Request {
    /// A request with tgtadm's defaults: lld `iscsi`, tid -1, lun `u64::MAX`, everything else 0, no params.
    pub(crate) fn new(mode: Mode, op: Op) -> Self {
        Self {
            mode,
            op,
            lld: LLD_ISCSI,
            tid: -1,
            sid: 0,
            lun: u64::MAX,
            cid: 0,
            device_type: 0,
            ac_dir: 0,
            force: false,
            params: Params::new(),
        }
    }

    pub(crate) fn tid(mut self, tid: i32) -> Self {
        self.tid = tid;
        self
    }

    pub(crate) fn params(mut self, params: Params) -> Self {
        self.params = params;
        self
    }

    /// The mode.
    pub fn mode(&self) -> Mode {
        self.mode
    }

    /// The op.
    pub fn op(&self) -> Op {
        self.op
    }

    /// The params string (without its NUL).
    pub fn params_str(&self) -> &str {
        self.params.as_str()
    }

    /// Checks the rules of docs/tgtd-ipc.md §7.2 (requests that crash tgtd 1.0.85) and the size
    /// limit. Called by [`crate::TgtClient::execute`] before connecting.
    ///
    /// # Errors
    /// [`TgtError::InvalidRequest`] naming the field at fault.
    pub fn validate(&self) -> Result<(), TgtError> {
        let needs_params = matches!(
            (self.mode, self.op),
            (Mode::Target, Op::New)
                | (Mode::Target, Op::Update)
                | (Mode::Target, Op::Bind)
                | (Mode::Target, Op::Unbind)
                | (Mode::Account, Op::New)
                | (Mode::Account, Op::Delete)
                | (Mode::Account, Op::Bind)
                | (Mode::Account, Op::Unbind)
                | (Mode::Portal, Op::New)
                | (Mode::Portal, Op::Delete)
                | (Mode::Device, Op::Update)
                | (Mode::System, Op::Update)
        );
        if needs_params && self.params.is_empty() {
            return Err(TgtError::invalid(
                "params",
                "this operation needs parameters (tgtd dereferences a NULL string without them)",
            ));
        }
        if self.mode == Mode::Target && self.op == Op::New {
            if self.params.keys() != ["targetname"] {
                return Err(TgtError::invalid(
                    "targetname",
                    "target new needs exactly targetname=",
                ));
            }
            if self.tid < 0 {
                return Err(TgtError::invalid("tid", "target new needs a tid >= 0"));
            }
        }
        let per_tid = matches!(
            (self.mode, self.op),
            (Mode::Target, Op::Delete)
                | (Mode::Target, Op::Update)
                | (Mode::Target, Op::Bind)
                | (Mode::Target, Op::Unbind)
                | (Mode::Device, _)
                | (Mode::Connection, Op::Show)
                | (Mode::Connection, Op::Delete)
        );
        if per_tid && self.tid < 0 {
            return Err(TgtError::invalid("tid", "this operation needs a tid >= 0"));
        }
        if self.params.as_str().len() + 1 > MAX_PARAMS_LEN {
            return Err(TgtError::invalid("params", "longer than 8192 bytes"));
        }
        if self.params.as_str().bytes().any(|b| b == 0) {
            return Err(TgtError::invalid("params", "contains NUL"));
        }
        Ok(())
    }

    /// Encodes header and params (NUL-terminated) exactly as tgtadm does, in host byte order.
    pub fn encode(&self) -> Vec<u8> {
        let params = self.params.as_str().as_bytes();
        let body_len = if params.is_empty() {
            0
        } else {
            params.len() + 1
        };
        let total = REQ_HEADER_LEN + body_len;
        let mut out = Vec::with_capacity(total);
        out.extend_from_slice(&self.mode.code().to_ne_bytes()); // 0 mode
        out.extend_from_slice(&self.op.code().to_ne_bytes()); // 4 op
        let mut lld = [0u8; 64]; // 8 lld, NUL-padded; byte 63 stays NUL
        for (dst, src) in lld.iter_mut().take(63).zip(self.lld.bytes()) {
            *dst = src;
        }
        out.extend_from_slice(&lld);
        // total is at most 120 + 8192 after validate(); saturate rather than wrap otherwise
        let len = u32::try_from(total).unwrap_or(u32::MAX);
        out.extend_from_slice(&len.to_ne_bytes()); // 72 len
        out.extend_from_slice(&self.tid.to_ne_bytes()); // 76 tid
        out.extend_from_slice(&self.sid.to_ne_bytes()); // 80 sid
        out.extend_from_slice(&self.lun.to_ne_bytes()); // 88 lun
        out.extend_from_slice(&self.cid.to_ne_bytes()); // 96 cid
        out.extend_from_slice(&0u32.to_ne_bytes()); // 100 host_no
        out.extend_from_slice(&self.device_type.to_ne_bytes()); // 104 device_type
        out.extend_from_slice(&self.ac_dir.to_ne_bytes()); // 108 ac_dir
        out.extend_from_slice(&0u32.to_ne_bytes()); // 112 pack
        out.extend_from_slice(&u32::from(self.force).to_ne_bytes()); // 116 force
        if body_len > 0 {
            out.extend_from_slice(params);
            out.push(0);
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_matches_tgtadm_capture() {
        // docs/tgtd-ipc.md §2.3: tgtadm --lld iscsi --mode logicalunit --op update --tid 1 --lun 1
        //            --params scsi_id=ABC,scsi_sn=SN1  (tgtadm adds "targetOps " and a trailing comma)
        let mut p = Params::new();
        p.push("scsi_id", "ABC")
            .unwrap()
            .push("scsi_sn", "SN1")
            .unwrap();
        let mut r = Request::new(Mode::Device, Op::Update).tid(1).params(p);
        r.lun = 1;
        let b = r.encode();
        assert_eq!(b.len(), 120 + "scsi_id=ABC,scsi_sn=SN1".len() + 1);
        assert_eq!(&b[0..4], &2u32.to_ne_bytes());
        assert_eq!(&b[4..8], &5u32.to_ne_bytes());
        assert_eq!(&b[8..13], b"iscsi");
        assert!(b[13..72].iter().all(|x| *x == 0));
        assert_eq!(&b[72..76], &(b.len() as u32).to_ne_bytes());
        assert_eq!(&b[76..80], &1i32.to_ne_bytes());
        assert_eq!(&b[80..88], &0u64.to_ne_bytes());
        assert_eq!(&b[88..96], &1u64.to_ne_bytes());
        assert!(b[96..120].iter().all(|x| *x == 0));
        assert_eq!(&b[120..], b"scsi_id=ABC,scsi_sn=SN1\0");
    }

    #[test]
    fn no_params_means_len_120() {
        let mut r = Request::new(Mode::Target, Op::Delete).tid(7);
        r.force = true;
        let b = r.encode();
        assert_eq!(b.len(), 120);
        assert_eq!(&b[72..76], &120u32.to_ne_bytes());
        assert_eq!(&b[116..120], &1u32.to_ne_bytes());
    }

    #[test]
    fn values_cannot_inject_separators() {
        let mut p = Params::new();
        for bad in ["a,b", "a=b", "a\0b", "a\nb", ""] {
            assert!(matches!(
                p.push("path", bad),
                Err(TgtError::InvalidRequest { .. })
            ));
        }
        assert!(p.is_empty());
    }

    #[test]
    fn crashing_shapes_are_refused() {
        // TARGET/NEW without params, or without targetname
        assert!(Request::new(Mode::Target, Op::New)
            .tid(1)
            .validate()
            .is_err());
        let mut p = Params::new();
        p.push("path", "x").unwrap();
        assert!(Request::new(Mode::Target, Op::New)
            .tid(1)
            .params(p)
            .validate()
            .is_err());
        for (m, o) in [
            (Mode::Target, Op::Update),
            (Mode::Account, Op::New),
            (Mode::Account, Op::Bind),
            (Mode::Account, Op::Unbind),
            (Mode::Account, Op::Delete),
            (Mode::Portal, Op::New),
            (Mode::Portal, Op::Delete),
        ] {
            assert!(Request::new(m, o).tid(1).validate().is_err(), "{m:?} {o:?}");
        }
    }

    #[test]
    fn params_limit() {
        let mut p = Params::new();
        let long = "x".repeat(4000);
        p.push("a", &long).unwrap();
        p.push("b", &long).unwrap();
        assert!(p.push("c", &long).is_err());
    }
}
