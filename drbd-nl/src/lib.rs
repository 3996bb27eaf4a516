//! DRBD 8.4 over generic netlink, without `drbdsetup`.
//!
//! A native codec and async client for the kernel DRBD 8.4 netlink API (the
//! DRBD built into Linux, `drbd.ko` 8.4.11 in Linux 6.1): family `drbd`
//! (resolved by name), the 8-byte DRBD user header after the genl header,
//! nested attribute sets with DRBD's mandatory flag, typed state decoded from
//! the 32-bit state word, typed errors carrying `drbd_ret_code` / `SS_*`
//! results with the kernel's names and texts, and the `events` multicast
//! group as a `Stream`. The protocol facts it relies on, with their public
//! sources (Linux v6.1 `include/linux/drbd_genl.h` and friends, drbd-utils),
//! are in the repository's `docs/drbd-genl.md`.
//!
//! Needs at run time: the `drbd` module loaded and the caller in the initial network namespace
//! (the family is not registered elsewhere: [`DrbdError::FamilyNotFound`]); state-changing requests
//! need `CAP_NET_ADMIN`. Never spawns a program.
//!
//! ```no_run
//! # async fn f() -> Result<(), drbd_nl::DrbdError> {
//! use drbd_nl::{DrbdHandle, Primary, Request, Status};
//! let drbd = DrbdHandle::connect().await?;               // refuses DRBD 9
//! let promote = Primary::new(1).force(true);             // a request is a plain value
//! assert_eq!(promote.command_line(), "primary 1 --force");
//! drbd.execute(promote).await?;                          // drbdsetup-84 primary 1 --force
//! for dev in drbd.execute(Status::new()).await? {        // drbdsetup-84 status
//!     println!("{} {:?}", dev.object_name(), dev.state);
//! }
//! # Ok(()) }
//! ```
//!
//! # Choices
//!
//! - **Both APIs, told apart by the family version.** nlctrl's version is 1
//!   for DRBD 8.4 and 2 for DRBD 9 (which also advertises op 44 `NEW_PEER`).
//!   [`DrbdHandle`] speaks 8.4 and refuses 9 with [`DrbdError::UnsupportedApi`]
//!   instead of misparsing it; [`v9::Drbd9Handle`] speaks DRBD 9 (its own
//!   attribute sets and state enums in [`v9`]); [`v9::AnyHandle::connect`]
//!   picks one. Public enums are `#[non_exhaustive]` and use DRBD's own names.
//! - **One netlink stack: `netlink-proto` 0.14 + `netlink-packet-generic`,
//!   not `genetlink`.** `genetlink` 0.3 pulls `netlink-proto` 0.13 beside
//!   rtnetlink's 0.14, so the workspace would carry two. What genetlink adds
//!   (an nlctrl family lookup and a cache) is one request here
//!   ([`FamilyInfo`]), and DRBD needs the whole nlctrl reply anyway (version,
//!   header size, ops, multicast group id). We share `netlink-packet-core`
//!   (`Nla`, `Emitable`, `DecodeError`) with rtnetlink and the `vip` crate.
//! - **Requests are values, one sender.** Each drbdsetup verb is a type
//!   ([`Primary`], [`Attach`], [`Status`], ...) implementing [`Request`]:
//!   its message can be built and compared without a socket (the tests compare
//!   it byte for byte with what `drbdsetup-84` sends), and
//!   [`DrbdHandle::execute`] is the only way to send it; one private
//!   function there picks the netlink flags (dump, exclusive), as ethtool's
//!   `ethtool_execute` does. [`DrbdHandle::execute_blocking`] sends the same
//!   values on a socket of its own from a thread of the caller's: a role change
//!   waits in the kernel (for the peer, with a connected one), and requests from
//!   different threads and sockets run there at once.
//! - **Decoding in this crate, not in the transport.** netlink-proto drops
//!   payloads that fail to parse (it only logs), which would leave a request
//!   waiting forever; the connection carries raw payloads ([`RawGenl`]) and
//!   undecodable replies and events surface as [`DrbdError::Decode`].
//! - **Bit 14.** `DRBD_GENLA_F_MANDATORY` is the same bit as
//!   `NLA_F_NET_BYTEORDER`; it is stripped on decode (`type & 0x3FFF`) and set
//!   on the fields `drbd_genl.h` marks mandatory. [`AttrSet`] remembers
//!   whether a received set carried it and `NLA_F_NESTED`, so kernel messages
//!   re-emit byte for byte and unknown fields survive as `Other`.
//! - **No shell-outs.** `drbdmeta create-md` is not netlink and stays a
//!   test-only tool; everything else `drbdadm up` does is here.
#![deny(missing_docs)]
#![warn(clippy::missing_errors_doc)]
#![cfg_attr(not(test), deny(clippy::unwrap_used))]

mod attr;
mod codec;
mod connection;
mod error;
mod event;
mod handle;
mod header;
mod message;
mod nla;
mod policy;
mod request;
mod ret_code;
mod sockaddr;
mod state;
mod status;
pub mod v9;

// The client: a handle, the requests it sends, what comes back.
pub use error::DrbdError;
pub use event::{DrbdEvent, EventStream};
pub use handle::DrbdHandle;
pub use request::minor::{
    Attach, DelMinor, Detach, NewCurrentUuid, NewMinor, Primary, Resize, Secondary,
    META_DEV_IDX_INTERNAL,
};
pub use request::resource::{Connect, DelResource, Disconnect, Down, NewResource};
pub use request::status::Status;
pub use request::Request;
pub use status::{DeviceStatus, NetTimeouts};

// Typed values: state word, results, option values, addresses.
pub use policy::{AfterSbPolicy, FencingPolicy};
pub use ret_code::{ReplyCode, RetCode, StateRv};
pub use sockaddr::SockAddr;
pub use state::{ConnState, DiskState, Role, SibReason, State, SuspendFlags};

// The codec: messages, the DRBD header, attribute sets (`drbd_genl.h`), the family.
pub use attr::sets::{
    CfgContext, CfgReply, ConnectionInfo, ConnectionStatistics, DetachParms, DeviceInfo,
    DeviceStatistics, DisconnectParms, DiskConf, DrbdAttr, Helper, NetConf, NewCUuidParms,
    NotificationHeader, PeerDeviceInfo, PeerDeviceStatistics, ResizeParms, ResourceInfo,
    ResourceOpts, ResourceStatistics, SetRoleParms, StartOvParms, StateInfo, TimeoutParms,
};
pub use connection::{FamilyInfo, RawGenl};
pub use header::{DrbdHeader, DRBD_GENL_F_SET_DEFAULTS, DRBD_GENL_HDRLEN, MINOR_NONE};
pub use message::{DrbdCmd, DrbdMessage, DRBD_API_VERSION_84, DRBD_EVENTS_GROUP, DRBD_FAMILY_NAME};
pub use nla::{AttrSet, DRBD_GENLA_F_MANDATORY};

/// The README's examples, compiled by `cargo test --doc`.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeDoctests;
