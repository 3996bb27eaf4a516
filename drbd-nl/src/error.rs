//! The crate's error type.

use crate::ret_code::{RetCode, StateRv};

/// Everything that can go wrong talking to DRBD.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DrbdError {
    /// A socket error (errno kept).
    #[error("netlink socket: {0}")]
    Io(#[from] std::io::Error),
    /// The connection task is gone.
    #[error("netlink connection closed")]
    ConnectionClosed,
    /// Bytes from the kernel did not decode.
    #[error("cannot decode DRBD netlink message: {0}")]
    Decode(#[from] netlink_packet_core::DecodeError),
    /// The kernel answered with `NLMSG_ERROR` (a negative errno, no DRBD reply).
    #[error("{context}: kernel netlink error: {source}")]
    Netlink {
        /// What was asked.
        context: String,
        /// The errno.
        #[source]
        source: std::io::Error,
    },
    /// The `drbd` generic-netlink family is not registered: module not
    /// loaded, or not in the initial network namespace.
    #[error("generic netlink family \"drbd\" not found (module not loaded, or not in the initial netns)")]
    FamilyNotFound,
    /// The family has no `events` multicast group.
    #[error("generic netlink family \"drbd\" has no multicast group \"{0}\"")]
    GroupNotFound(String),
    /// The kernel speaks another DRBD netlink API than the handle asked for (8.4 is version 1,
    /// DRBD 9 version 2; [`crate::v9::AnyHandle`] takes either).
    #[error("DRBD netlink API version {version} is not the one asked for: DrbdHandle speaks DRBD 8.4 (version 1), v9::Drbd9Handle DRBD 9 (version 2), v9::AnyHandle either")]
    UnsupportedApi {
        /// `CTRL_ATTR_VERSION` of the family.
        version: u32,
    },
    /// A configuration command failed with a `drbd_ret_code`.
    #[error("{context}: Failure: {code}{}", info_suffix(.info_text))]
    Kernel {
        /// What was asked (drbdsetup style, e.g. `attach 1`).
        context: String,
        /// The code.
        code: RetCode,
        /// The kernel's info text (CFG_REPLY), if any.
        info_text: Option<String>,
    },
    /// A state change was refused with a `drbd_state_rv` (`SS_*`).
    #[error("{context}: State change failed: {code}{}", info_suffix(.info_text))]
    StateChange {
        /// What was asked.
        context: String,
        /// The code.
        code: StateRv,
        /// The kernel's info text (CFG_REPLY), if any.
        info_text: Option<String>,
    },
    /// The kernel's answer did not fit the protocol (e.g. no reply at all).
    #[error("{context}: protocol error: {reason}")]
    Protocol {
        /// What was asked.
        context: String,
        /// What was wrong.
        reason: String,
    },
    /// A name that is not one of DRBD's spellings.
    #[error("\"{name}\" is not a valid {kind}")]
    InvalidName {
        /// The type asked for.
        kind: &'static str,
        /// The text given.
        name: String,
    },
    /// A request argument the kernel would refuse (e.g. a resource name with `/`).
    #[error("invalid argument: {0}")]
    InvalidArgument(String),
}

fn info_suffix(info: &Option<String>) -> String {
    match info {
        Some(t) => format!(" (additional info from kernel: {t})"),
        None => String::new(),
    }
}

impl DrbdError {
    /// The `drbd_ret_code`, if this is a [`DrbdError::Kernel`].
    pub fn ret_code(&self) -> Option<RetCode> {
        match self {
            Self::Kernel { code, .. } => Some(*code),
            _ => None,
        }
    }

    /// The `drbd_state_rv`, if this is a [`DrbdError::StateChange`].
    pub fn state_rv(&self) -> Option<StateRv> {
        match self {
            Self::StateChange { code, .. } => Some(*code),
            _ => None,
        }
    }
}
