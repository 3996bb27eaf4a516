//! The DRBD 9 API (generic-netlink family `drbd`, version 2).
//!
//! Source of truth: `linux/drbd_genl.h` and `linux/drbd.h` of LINBIT's public drbd-headers
//! repository at commit 32c2e607 (the headers of drbd 9.3.3). DRBD 9 keeps the family name,
//! the 8-byte user header and the command numbers 8.4 had, renumbers several attribute sets,
//! splits connection and replication state, and adds peers and paths as objects of their own
//! (node ids are explicit). Requests must carry version 2 in the genl header.
//!
//! [`Drbd9Handle`] offers per-object status dumps, the events2 stream, and
//! [`Drbd9Handle::execute`] sends the request values [`Primary9`], [`Secondary9`] and
//! [`Request9`] (each a [`Request`]`<Drbd9Message>`, the trait of the 8.4 requests too);
//! [`AnyHandle::connect`] picks 8.4 or 9 from the family version.

mod event;
mod handle;
mod message;
mod request;
mod sets;
mod state;
mod status;

pub use crate::request::Request;
pub use event::{Event, EventStream9, NotifyType, Object, NOTIFY_CONTINUES};
pub use handle::{AnyHandle, Drbd9Handle};
pub use message::{Drbd9Cmd, Drbd9Message, DRBD_API_VERSION_9};
pub use request::{dump_request, resource_context, wire_protocol, Primary9, Request9, Secondary9};
pub use sets::*;
pub use state::{ConnectionState, DiskState, ReplState};
pub use status::{Connection, Context, Device, NetOptions, Path, PeerDevice, Resource};
