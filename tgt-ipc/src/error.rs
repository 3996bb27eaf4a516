//! The crate's error type: [`TgtError`], and tgtd's own error codes, [`TgtErrno`].

use std::io;
use std::path::PathBuf;
use std::time::Duration;

/// tgtd's error code (`enum tgtadm_errno` in tgt's `usr/tgtadm_error.h`), as sent in the reply header.
///
/// [`TgtErrno::name`] gives the C name, [`TgtErrno::message`] the text `tgtadm` prints for it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum TgtErrno {
    /// 1 `TGTADM_UNKNOWN_ERR`
    UnknownErr,
    /// 2 `TGTADM_NOMEM`
    NoMem,
    /// 3 `TGTADM_NO_DRIVER`
    NoDriver,
    /// 4 `TGTADM_NO_TARGET`
    NoTarget,
    /// 5 `TGTADM_NO_LUN`
    NoLun,
    /// 6 `TGTADM_NO_SESSION`
    NoSession,
    /// 7 `TGTADM_NO_CONNECTION`
    NoConnection,
    /// 8 `TGTADM_NO_BINDING`
    NoBinding,
    /// 9 `TGTADM_TARGET_EXIST`: duplicate tid or duplicate target name.
    TargetExist,
    /// 10 `TGTADM_LUN_EXIST`
    LunExist,
    /// 11 `TGTADM_BINDING_EXIST`
    BindingExist,
    /// 12 `TGTADM_ACL_EXIST`
    AclExist,
    /// 13 `TGTADM_ACL_NOEXIST`
    AclNoExist,
    /// 14 `TGTADM_USER_EXIST`
    UserExist,
    /// 15 `TGTADM_NO_USER`
    NoUser,
    /// 16 `TGTADM_TOO_MANY_USER`
    TooManyUser,
    /// 17 `TGTADM_INVALID_REQUEST`: tgtd's catch-all (missing backing file, bad bstype, bad name, ...).
    InvalidRequest,
    /// 18 `TGTADM_OUTACCOUNT_EXIST`
    OutAccountExist,
    /// 19 `TGTADM_TARGET_ACTIVE`
    TargetActive,
    /// 20 `TGTADM_LUN_ACTIVE`
    LunActive,
    /// 21 `TGTADM_DRIVER_ACTIVE`
    DriverActive,
    /// 22 `TGTADM_UNSUPPORTED_OPERATION`
    UnsupportedOperation,
    /// 23 `TGTADM_UNKNOWN_PARAM`
    UnknownParam,
    /// 24 `TGTADM_PREVENT_REMOVAL`
    PreventRemoval,
    /// A code this crate does not know (tgtadm prints `(unknown tgtadm_errno)`).
    Other(u32),
}

impl TgtErrno {
    /// Maps a non-zero wire code; 0 (success) is not an error and maps to `Other(0)`.
    pub fn from_code(code: u32) -> Self {
        match code {
            1 => Self::UnknownErr,
            2 => Self::NoMem,
            3 => Self::NoDriver,
            4 => Self::NoTarget,
            5 => Self::NoLun,
            6 => Self::NoSession,
            7 => Self::NoConnection,
            8 => Self::NoBinding,
            9 => Self::TargetExist,
            10 => Self::LunExist,
            11 => Self::BindingExist,
            12 => Self::AclExist,
            13 => Self::AclNoExist,
            14 => Self::UserExist,
            15 => Self::NoUser,
            16 => Self::TooManyUser,
            17 => Self::InvalidRequest,
            18 => Self::OutAccountExist,
            19 => Self::TargetActive,
            20 => Self::LunActive,
            21 => Self::DriverActive,
            22 => Self::UnsupportedOperation,
            23 => Self::UnknownParam,
            24 => Self::PreventRemoval,
            other => Self::Other(other),
        }
    }

    /// The wire code.
    pub fn code(self) -> u32 {
        match self {
            Self::UnknownErr => 1,
            Self::NoMem => 2,
            Self::NoDriver => 3,
            Self::NoTarget => 4,
            Self::NoLun => 5,
            Self::NoSession => 6,
            Self::NoConnection => 7,
            Self::NoBinding => 8,
            Self::TargetExist => 9,
            Self::LunExist => 10,
            Self::BindingExist => 11,
            Self::AclExist => 12,
            Self::AclNoExist => 13,
            Self::UserExist => 14,
            Self::NoUser => 15,
            Self::TooManyUser => 16,
            Self::InvalidRequest => 17,
            Self::OutAccountExist => 18,
            Self::TargetActive => 19,
            Self::LunActive => 20,
            Self::DriverActive => 21,
            Self::UnsupportedOperation => 22,
            Self::UnknownParam => 23,
            Self::PreventRemoval => 24,
            Self::Other(c) => c,
        }
    }

    /// The C enumerator name, e.g. `TGTADM_NO_TARGET`.
    pub fn name(self) -> &'static str {
        match self {
            Self::UnknownErr => "TGTADM_UNKNOWN_ERR",
            Self::NoMem => "TGTADM_NOMEM",
            Self::NoDriver => "TGTADM_NO_DRIVER",
            Self::NoTarget => "TGTADM_NO_TARGET",
            Self::NoLun => "TGTADM_NO_LUN",
            Self::NoSession => "TGTADM_NO_SESSION",
            Self::NoConnection => "TGTADM_NO_CONNECTION",
            Self::NoBinding => "TGTADM_NO_BINDING",
            Self::TargetExist => "TGTADM_TARGET_EXIST",
            Self::LunExist => "TGTADM_LUN_EXIST",
            Self::BindingExist => "TGTADM_BINDING_EXIST",
            Self::AclExist => "TGTADM_ACL_EXIST",
            Self::AclNoExist => "TGTADM_ACL_NOEXIST",
            Self::UserExist => "TGTADM_USER_EXIST",
            Self::NoUser => "TGTADM_NO_USER",
            Self::TooManyUser => "TGTADM_TOO_MANY_USER",
            Self::InvalidRequest => "TGTADM_INVALID_REQUEST",
            Self::OutAccountExist => "TGTADM_OUTACCOUNT_EXIST",
            Self::TargetActive => "TGTADM_TARGET_ACTIVE",
            Self::LunActive => "TGTADM_LUN_ACTIVE",
            Self::DriverActive => "TGTADM_DRIVER_ACTIVE",
            Self::UnsupportedOperation => "TGTADM_UNSUPPORTED_OPERATION",
            Self::UnknownParam => "TGTADM_UNKNOWN_PARAM",
            Self::PreventRemoval => "TGTADM_PREVENT_REMOVAL",
            Self::Other(_) => "TGTADM_UNKNOWN_CODE",
        }
    }

    /// The message `tgtadm` prints for this code (its `tgtadm_strerror`).
    pub fn message(self) -> &'static str {
        match self {
            Self::UnknownErr => "unknown error",
            Self::NoMem => "out of memory",
            Self::NoDriver => "can't find the driver",
            Self::NoTarget => "can't find the target",
            Self::NoLun => "can't find the logical unit",
            Self::NoSession => "can't find the session",
            Self::NoConnection => "can't find the connection",
            Self::NoBinding => "can't find the binding",
            Self::TargetExist => "this target already exists",
            Self::LunExist => "this logical unit number already exists",
            Self::BindingExist => "this binding already exists",
            Self::AclExist => "this access control rule already exists",
            Self::AclNoExist => "this access control rule does not exist",
            Self::UserExist => "this account already exists",
            Self::NoUser => "can't find the account",
            Self::TooManyUser => "too many accounts",
            Self::InvalidRequest => "invalid request",
            Self::OutAccountExist => "this target already has an outgoing account",
            Self::TargetActive => "this target is still active",
            Self::LunActive => "this logical unit is still active",
            Self::DriverActive => "this driver is busy",
            Self::UnsupportedOperation => "this operation isn't supported",
            Self::UnknownParam => "unknown parameter",
            Self::PreventRemoval => "this device has Prevent Removal set",
            Self::Other(_) => "(unknown tgtadm_errno)",
        }
    }
}

impl std::fmt::Display for TgtErrno {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} ({} = {})", self.message(), self.name(), self.code())
    }
}

/// Everything that can go wrong talking to tgtd.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TgtError {
    /// The request was refused by this client before anything was sent (bad value, or a request known to
    /// crash tgtd).
    #[error("invalid request: {what}: {reason}")]
    InvalidRequest {
        /// The field or parameter at fault.
        what: &'static str,
        /// Why it was refused.
        reason: String,
    },
    /// Connecting to the management socket failed (`ENOENT`: no tgtd; `ECONNREFUSED`: stale socket file).
    #[error("cannot connect to tgtd at {path}: {source}")]
    Connect {
        /// The socket path.
        path: PathBuf,
        /// The OS error.
        #[source]
        source: io::Error,
    },
    /// Connecting took longer than the connect timeout.
    #[error("connecting to tgtd at {path} timed out after {timeout:?}")]
    ConnectTimeout {
        /// The socket path.
        path: PathBuf,
        /// The timeout that expired.
        timeout: Duration,
    },
    /// Sending the request or reading the reply failed.
    #[error("talking to tgtd failed: {0}")]
    Io(#[source] io::Error),
    /// No complete reply within the reply timeout (tgtd is busy or hung).
    #[error("tgtd did not reply within {timeout:?}")]
    ReplyTimeout {
        /// The timeout that expired.
        timeout: Duration,
    },
    /// tgtd closed the connection without a reply: peer credentials refused, bad length, or tgtd crashed.
    #[error("tgtd closed the connection without a reply (credentials refused, bad request length, or tgtd died)")]
    NoReply,
    /// tgtd answered with an error code. Displays tgtd's (tgtadm's) message.
    #[error("tgtd: {errno}")]
    Daemon {
        /// The code.
        errno: TgtErrno,
    },
    /// The reply does not follow the protocol (bad length, truncated body).
    #[error("protocol error: {0}")]
    Protocol(String),
    /// A `show` reply could not be parsed.
    #[error("cannot parse tgtd show output, line {line}: {reason}")]
    Parse {
        /// 1-based line number.
        line: usize,
        /// What was wrong.
        reason: String,
    },
    /// `serve`: a target with this tid (or name) exists and differs from the requested one.
    #[error("target {tid} exists and differs: {}", differences.join("; "))]
    TargetConflict {
        /// The tid.
        tid: i32,
        /// One entry per difference found.
        differences: Vec<String>,
    },
    /// Someone else's target: the tid holds another IQN, or the IQN is served at another tid (by
    /// tgt's own service from `/etc/tgt`, say). Nothing was changed; it is never touched.
    #[error("tid {tid} holds {name}, not {want_name} at tid {want_tid}: left untouched")]
    TargetForeign {
        /// The tid of the target found.
        tid: i32,
        /// Its IQN.
        name: String,
        /// The tid asked for.
        want_tid: i32,
        /// The IQN asked for.
        want_name: String,
    },
    /// Stopping a target: tgtd still refuses to delete this logical unit because SCSI commands on it
    /// have not completed (`TGTADM_LUN_ACTIVE`; `--force` does not help, docs/tgtd-ipc.md §7.6), after
    /// retrying for the client's busy-retry time. A frozen backing device keeps it so until its I/O
    /// completes; the target is left in place (possibly without its other LUs), offline.
    #[error("LUN {lun} of tid {tid}: I/O in flight (tgtd refuses to delete a logical unit with commands outstanding; retried for {waited:?})")]
    IoInFlight {
        /// The tid.
        tid: i32,
        /// The busy LUN (0: the target's controller LU).
        lun: u64,
        /// How long deletes were retried.
        waited: Duration,
    },
    /// A target that should be served is missing (tgtd restarted empty, or someone deleted it).
    #[error("target {tid} ({name}) is not present in tgtd (tgtd restarted?)")]
    TargetMissing {
        /// The tid.
        tid: i32,
        /// The expected IQN.
        name: String,
    },
}

impl TgtError {
    /// tgtd's error code, when this error is a [`TgtError::Daemon`].
    pub fn errno(&self) -> Option<TgtErrno> {
        match self {
            Self::Daemon { errno } => Some(*errno),
            _ => None,
        }
    }

    pub(crate) fn invalid(what: &'static str, reason: impl Into<String>) -> Self {
        Self::InvalidRequest {
            what,
            reason: reason.into(),
        }
    }
}
