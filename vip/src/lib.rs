//! A floating (virtual) IP address for an HA pair: claim it on this host, release it, check it,
//! and watch it, without `ip`, `arping` or `send_arp`.
//!
//! ```no_run
//! # async fn f() -> Result<(), vip::VipError> {
//! let mut vip = vip::Vip::new("eth0", "192.0.2.10".parse().unwrap(), 24)?;
//! let report = vip.claim(&vip::ClaimOptions::default()).await?;
//! println!("probe {:?} add {:?} first announce {:?}", report.probe, report.add, report.first_announce);
//! vip.release().await?;
//! # Ok(()) }
//! ```
//!
//! # Choices
//! - **rtnetlink** (rust-netlink `rtnetlink` 0.24) for link lookup, address add/del/dump and the
//!   multicast watch; vip does not re-encode rtnetlink. IPv6 addresses are added with
//!   `IFA_F_NODAD`: the kernel's DAD would hold the address tentative for a second or more;
//!   our own probe (optional) does the detection before the add instead.
//! - **Own frame codec** ([`packet`]): Ethernet II, ARP, IPv6 + ICMPv6 NS/NA, each under its
//!   RFC diagram, decoders total (typed [`DecodeError`], no panics, fuzzed in `vip/fuzz`).
//! - **Packet sockets** (`AF_PACKET`, `SOCK_RAW`) through `libc` + tokio `AsyncFd`, the only
//!   `unsafe` in the crate (`socket.rs`). The send socket uses protocol 0 and is kept open:
//!   a socket with a protocol hook costs 8-16 ms to close on this kernel.
//! - **Announce** ([`AnnouncePolicy`]): the first announcement is sent inside
//!   [`Vip::claim`], which returns once it is on the wire; the rest (burst, second burst,
//!   periodic refresh) runs in a tokio task, and every frame sent yields an
//!   [`AnnounceResult`]. That task follows the link while the address is held: each frame is
//!   built from the MAC the interface has when it is sent, nothing is sent while the link is
//!   down, and the schedule starts again when the link returns or the MAC changes
//!   ([`AnnounceCause`]). Gratuitous ARP as request, reply or both; IPv6 unsolicited NA to
//!   ff02::1 with the override flag and the target link-layer option.
//! - **Probe** ([`ProbePolicy`]): RFC 5227 §2.1.1 (sender IP 0.0.0.0) for IPv4, NS from `::`
//!   to the solicited-node group for IPv6; a conflict names the other MAC. Short HA defaults
//!   (3 probes, 250 ms window), configurable, can be off.
//! - **Watch** ([`VipWatch`]): `RTNLGRP_LINK` + `RTNLGRP_IPV4_IFADDR`/`RTNLGRP_IPV6_IFADDR`,
//!   filtered to this address and interface: [`VipEvent`] Removed/Added/LinkDown/LinkUp/
//!   MacChanged.
//! - **Conflicts while held** ([`ConflictWatch`], [`Vip::conflict_watch`]): RFC 5227 §2.4,
//!   an ARP request or reply whose sender IP is the held address from a MAC that is none of
//!   this host's (ARP probes, sender 0.0.0.0, are not conflicts); for IPv6 a neighbour
//!   advertisement for it from another MAC (RFC 4862 §5.4.4). Only packet types the kernel's
//!   ARP / IPv6 input takes count (packet(7) `PACKET_HOST`, `PACKET_BROADCAST`,
//!   `PACKET_MULTICAST`). A classic BPF filter on the packet socket (socket(7)
//!   `SO_ATTACH_FILTER`) keeps every other frame in the kernel; userspace judges what passes
//!   again. Defending is the caller's choice: [`Defender`] (one announcement per
//!   [`DEFEND_INTERVAL`], RFC 5227 §1.1) and [`Vip::defend`]; [`ConflictWatch::probe`] asks
//!   a quiet holder (an RFC 5227 ARP probe; its answer is a conflict).
//! - **Tickle ACKs** ([`tickle`]): the TCP connections to the address, listed on the holder by a
//!   `sock_diag` dump (rust-netlink `netlink-packet-sock-diag` over a sync `netlink-sys`
//!   socket), reset from the new holder after a move by CTDB-style tickle ACKs sent through raw
//!   `IPPROTO_TCP` sockets (`socket2`) bound to the address (`docs/tickle-ack.md`).
//!
//! Needs `CAP_NET_ADMIN` (address changes) and `CAP_NET_RAW` (packet sockets); without them the
//! calls fail with [`VipError::PermissionDenied`].
#![deny(missing_docs)]
#![warn(clippy::missing_errors_doc)]
#![cfg_attr(not(test), deny(clippy::unwrap_used))]

mod address;
mod announce;
mod conflict;
mod error;
pub mod packet;
mod probe;
mod serde_ms;
mod socket;
pub mod tickle;
mod vip;
mod watch;

pub use address::LinkInfo;
pub use announce::{
    AnnounceCause, AnnounceMode, AnnouncePolicy, AnnounceResult, Announcements, FrameKind,
};
pub use conflict::{
    Conflict, ConflictKind, ConflictWatch, Defender, DEFEND_INTERVAL, LOCAL_MACS_MAX_AGE,
};
pub use error::VipError;
pub use packet::{DecodeError, MacAddr};
pub use probe::ProbePolicy;
pub use vip::{ClaimOptions, ClaimReport, ProbeReport, ProbeSession, ReleaseReport, Vip};
pub use watch::{VipEvent, VipWatch};
