//! The crate's error type.

use std::io;
use std::net::IpAddr;

use crate::packet::{DecodeError, MacAddr};

/// Everything that can go wrong claiming, releasing or watching a floating address.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum VipError {
    /// No interface has this name (`ENODEV`), or it vanished.
    #[error("unknown interface {iface:?}")]
    UnknownInterface {
        /// Interface name or `#index`.
        iface: String,
    },
    /// The address is already configured on a different interface of this host.
    #[error("{addr} is already on interface {iface}")]
    AddressOnOtherInterface {
        /// The floating address.
        addr: IpAddr,
        /// Interface holding it.
        iface: String,
    },
    /// The kernel refused for lack of `CAP_NET_ADMIN` / `CAP_NET_RAW` (`EPERM`/`EACCES`).
    #[error("permission denied: {op} (needs CAP_NET_ADMIN and CAP_NET_RAW)")]
    PermissionDenied {
        /// What was attempted.
        op: &'static str,
    },
    /// The interface is administratively down or has no carrier.
    #[error("interface {iface} is down")]
    InterfaceDown {
        /// Interface name.
        iface: String,
    },
    /// Another host answered or probed for the address during the probe window (RFC 5227
    /// §2.1.1, RFC 4862 §5.4).
    #[error("address conflict: {addr} is used by {mac}")]
    Conflict {
        /// The floating address.
        addr: IpAddr,
        /// MAC address of the other host.
        mac: MacAddr,
    },
    /// The address is not on the interface, so it is not announced ([`crate::Vip::defend`]).
    #[error("{addr} is not held on {iface}")]
    NotHeld {
        /// The floating address.
        addr: IpAddr,
        /// Interface name.
        iface: String,
    },
    /// Address and prefix do not fit together (prefix over 32 / 128), or the address cannot
    /// float (unspecified, multicast, loopback).
    #[error("invalid floating address {addr}/{prefix}")]
    InvalidAddress {
        /// Address.
        addr: IpAddr,
        /// Prefix length.
        prefix: u8,
    },
    /// The interface is not Ethernet-like (no 6-byte hardware address), so ARP/NDP frames
    /// cannot be built for it.
    #[error("interface {iface} has no Ethernet address")]
    NotEthernet {
        /// Interface name.
        iface: String,
    },
    /// A netlink request failed with an error we do not map to a variant above.
    #[error("netlink {op}: {source}")]
    Netlink {
        /// Request, named like the `ip` command it replaces.
        op: &'static str,
        /// rtnetlink's error (carries the kernel's errno when there is one).
        #[source]
        source: rtnetlink::Error,
    },
    /// A socket call failed.
    #[error("{op}: {source}")]
    Io {
        /// System call or step.
        op: &'static str,
        /// The OS error.
        #[source]
        source: io::Error,
    },
    /// A frame could not be decoded.
    #[error(transparent)]
    Decode(#[from] DecodeError),
}

impl VipError {
    /// Wraps an I/O error, turning `EPERM`/`EACCES` into [`VipError::PermissionDenied`] and
    /// `ENETDOWN` into [`VipError::InterfaceDown`] for `iface`.
    pub(crate) fn io(op: &'static str, iface: &str, source: io::Error) -> VipError {
        match source.raw_os_error() {
            Some(libc::EPERM) | Some(libc::EACCES) => VipError::PermissionDenied { op },
            Some(libc::ENETDOWN) => VipError::InterfaceDown {
                iface: iface.to_string(),
            },
            Some(libc::ENODEV) | Some(libc::ENXIO) => VipError::UnknownInterface {
                iface: iface.to_string(),
            },
            _ => VipError::Io { op, source },
        }
    }

    /// Wraps an rtnetlink error, mapping the kernel's errno where it has a meaning of its own.
    pub(crate) fn netlink(op: &'static str, iface: &str, source: rtnetlink::Error) -> VipError {
        match netlink_errno(&source) {
            Some(libc::EPERM) | Some(libc::EACCES) => VipError::PermissionDenied { op },
            Some(libc::ENODEV) => VipError::UnknownInterface {
                iface: iface.to_string(),
            },
            Some(libc::ENETDOWN) => VipError::InterfaceDown {
                iface: iface.to_string(),
            },
            _ => VipError::Netlink { op, source },
        }
    }
}

/// The positive errno carried by a netlink NACK, if any.
pub(crate) fn netlink_errno(e: &rtnetlink::Error) -> Option<i32> {
    match e {
        rtnetlink::Error::NetlinkError(m) => m.code.map(|c| -c.get()),
        _ => None,
    }
}
