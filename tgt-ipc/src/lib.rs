//! Native client for `tgtd`'s management socket: what `tgtadm` does, without spawning it.
//!
//! tgtd (the Linux SCSI target framework daemon, Debian 12's tgt 1.0.85) listens on a Unix socket
//! (`/var/run/tgtd/socket.N`). A client sends one 120-byte request header plus a `key=value,...` string and
//! gets back an 8-byte reply header, an error code, and for `show` a text body; one request per connection.
//! The protocol facts used here, with their sources, are in the repository's `docs/tgtd-ipc.md`.
//!
//! Needs at run time: a running tgtd, and a caller with effective uid **and** gid 0 (tgtd checks the
//! peer's credentials and closes the connection without a reply otherwise). Never spawns a program.
//!
//! Choices made:
//! - **Validate before sending.** Requests are built only by typed operations; values that could inject a
//!   `,` or `=` into the params string are refused, and so is every request tgt 1.0.85 is known to crash on
//!   (missing params, a target without a name, out-of-order CHAP unbinds). [`Request::validate`] runs again
//!   just before the socket is touched.
//! - **Typed errors.** tgtd's codes become [`TgtErrno`] with tgtadm's own messages; nothing panics on any
//!   reply bytes.
//! - **Async, tokio.** Each call has a connect timeout and a reply timeout (tgtd is single-threaded and may
//!   stall on slow storage).
//! - **`show` parsed into structs** ([`Target`], [`Nexus`], [`Lun`], ...), keyed off indentation.
//! - **HA operations** [`TgtClient::serve`] and [`TgtClient::stop_serving`] encode the publish order and the
//!   stop order (`state=offline` does not stop established sessions; closing connections does).
//! - **Write-through by default.** [`ServeLun::cache`] is [`CacheMode::WriteThrough`] unless write-back is
//!   asked for explicitly: tgtd then syncs every write and tells initiators it has no write cache.
#![deny(missing_docs)]
#![warn(clippy::missing_errors_doc)]
#![cfg_attr(
    not(test),
    deny(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)
)]

mod account;
mod acl;
mod cache;
mod client;
mod conn;
mod error;
mod lun;
mod portal;
mod request;
mod response;
mod serve;
mod show;
mod system;
mod target;

pub use account::{AccountDirection, AccountScope};
pub use acl::Acl;
pub use cache::{CacheMode, WRITE_CACHE_OFF_PAGE};
pub use client::{
    TgtClient, CONNECT_RETRY_MAX_STEP, DEFAULT_CONNECT_TIMEOUT, DEFAULT_REPLY_TIMEOUT,
    DEFAULT_SOCKET_BASE, MAX_CONTROL_PORT,
};
pub use error::{TgtErrno, TgtError};
pub use lun::{BsOFlags, BsType, LunBacking, LunIdentity, LunSetting, MAX_LUN};
pub use request::{Mode, Op, Params, Request, MAX_PARAMS_LEN, REQ_HEADER_LEN};
pub use response::{
    decode_body, decode_header, decode_reply, ReplyHeader, MAX_REPLY_BODY, RSP_HEADER_LEN,
};
pub use serve::{
    ServeAccount, ServeLun, ServeOutcome, ServeSpec, Served, StopOutcome, STOP_RETRY_FOR,
    STOP_RETRY_MAX_STEP,
};
pub use show::{
    parse_accounts, parse_connections, parse_portals, parse_system, parse_target_params,
    parse_targets, AccountBinding, ConnectionInfo, Lun, Nexus, NexusConnection, Portal, SystemInfo,
    Target, TargetState,
};
pub use target::{check_target_name, Digest, SetState, TargetParam, MAX_TARGET_NAME_LEN};
