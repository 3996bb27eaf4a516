//! The netlink socket: one `netlink-proto` connection per handle, family and
//! group resolved by name through nlctrl.
//!
//! The connection carries [`RawGenl`]: bytes after the netlink header, kept
//! as they came. Decoding happens in this crate, so a message that does not
//! decode becomes a typed error for the caller instead of being dropped by
//! the transport (netlink-proto logs and drops payloads that fail to parse,
//! which would leave a request waiting forever).

use futures::StreamExt;
use netlink_packet_core::ParseableParametrized;
use netlink_packet_core::{
    DecodeError, Emitable, NetlinkBuffer, NetlinkDeserializable, NetlinkHeader, NetlinkMessage,
    NetlinkPayload, NetlinkSerializable, NLM_F_MULTIPART, NLM_F_REQUEST,
};
use netlink_packet_generic::ctrl::nlas::{GenlCtrlAttrs, McastGrpAttrs};
use netlink_packet_generic::ctrl::{GenlCtrl, GenlCtrlCmd};
use netlink_packet_generic::{GenlHeader, GenlMessage};
use netlink_proto::sys::AsyncSocket;
use netlink_proto::sys::{protocols::NETLINK_GENERIC, SocketAddr};
use netlink_proto::ConnectionHandle;
use netlink_sys::Socket;

use crate::error::DrbdError;
use crate::message::{DRBD_API_VERSION_84, DRBD_EVENTS_GROUP, DRBD_FAMILY_NAME};

/// `GENL_ID_CTRL`: the fixed family id of nlctrl.
const GENL_ID_CTRL: u16 = 0x10;

/// A generic-netlink payload as bytes: the transport type of the connection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RawGenl {
    /// `nlmsg_type`: the family id.
    pub message_type: u16,
    /// Everything after the netlink header (genl header, DRBD header, attributes).
    pub payload: Vec<u8>,
}

impl NetlinkSerializable for RawGenl {
    fn message_type(&self) -> u16 {
        self.message_type
    }
    fn buffer_len(&self) -> usize {
        self.payload.len()
    }
    fn serialize(&self, buffer: &mut [u8]) {
        if let Some(dst) = buffer.get_mut(..self.payload.len()) {
            dst.copy_from_slice(&self.payload);
        }
    }
}

impl NetlinkDeserializable for RawGenl {
    type Error = DecodeError;
    fn deserialize(header: &NetlinkHeader, payload: &[u8]) -> Result<Self, DecodeError> {
        Ok(Self {
            message_type: header.message_type,
            payload: payload.to_vec(),
        })
    }
}

impl RawGenl {
    /// Encodes a generic-netlink message for family `family_id`.
    pub fn encode<F>(family_id: u16, msg: &GenlMessage<F>) -> Self
    where
        F: netlink_packet_generic::GenlFamily + Emitable + std::fmt::Debug,
    {
        let mut payload = vec![0u8; Emitable::buffer_len(msg)];
        msg.emit(&mut payload);
        Self {
            message_type: family_id,
            payload,
        }
    }

    /// The genl command byte, if present.
    pub fn cmd(&self) -> Option<u8> {
        self.payload.first().copied()
    }
}

/// What nlctrl says about the `drbd` family.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct FamilyInfo {
    /// The family id (assigned at module load).
    pub id: u16,
    /// `CTRL_ATTR_VERSION`: 1 for DRBD 8.4, 2 for DRBD 9.
    pub version: u32,
    /// `CTRL_ATTR_HDRSIZE`: 8.
    pub hdrsize: u32,
    /// `CTRL_ATTR_MAXATTR`.
    pub maxattr: u32,
    /// The `events` multicast group id, if advertised.
    pub events_group: Option<u32>,
    /// Command numbers advertised in `CTRL_ATTR_OPS`.
    pub ops: Vec<u32>,
}

impl FamilyInfo {
    /// Refuses anything but the DRBD 8.4 API (version 1, header size 8).
    /// A DRBD 9 kernel (version 2, or op 44 `NEW_PEER` advertised) gives
    /// [`DrbdError::UnsupportedApi`].
    ///
    /// # Errors
    /// [`DrbdError::UnsupportedApi`] for a family version other than 1 or when op 44 (`NEW_PEER`,
    /// DRBD 9) is advertised; [`DrbdError::Protocol`] for a user header size other than 8.
    pub(crate) fn check_84(&self) -> Result<(), DrbdError> {
        if self.version != DRBD_API_VERSION_84 || self.ops.contains(&44) {
            return Err(DrbdError::UnsupportedApi {
                version: self.version,
            });
        }
        if self.hdrsize != crate::header::DRBD_GENL_HDRLEN as u32 {
            return Err(DrbdError::Protocol {
                context: "resolve family drbd".into(),
                reason: format!("user header size {} (expected 8)", self.hdrsize),
            });
        }
        Ok(())
    }

    /// The `events` group id, or [`DrbdError::GroupNotFound`].
    ///
    /// # Errors
    /// [`DrbdError::GroupNotFound`] when the family has no `events` group.
    pub(crate) fn events_group(&self) -> Result<u32, DrbdError> {
        self.events_group
            .ok_or_else(|| DrbdError::GroupNotFound(DRBD_EVENTS_GROUP.to_string()))
    }

    /// Reads a `CTRL_CMD_NEWFAMILY` reply.
    ///
    /// # Errors
    /// [`DrbdError::Protocol`] when the reply has no `CTRL_ATTR_FAMILY_ID`.
    pub(crate) fn from_ctrl(ctrl: &GenlCtrl) -> Result<Self, DrbdError> {
        let mut id = None;
        let mut info = FamilyInfo {
            id: 0,
            version: 0,
            hdrsize: 0,
            maxattr: 0,
            events_group: None,
            ops: Vec::new(),
        };
        for nla in &ctrl.nlas {
            match nla {
                GenlCtrlAttrs::FamilyId(v) => id = Some(*v),
                GenlCtrlAttrs::Version(v) => info.version = *v,
                GenlCtrlAttrs::HdrSize(v) => info.hdrsize = *v,
                GenlCtrlAttrs::MaxAttr(v) => info.maxattr = *v,
                GenlCtrlAttrs::Ops(ops) => {
                    for op in ops {
                        for a in op {
                            if let netlink_packet_generic::ctrl::nlas::OpAttrs::Id(n) = a {
                                info.ops.push(*n);
                            }
                        }
                    }
                }
                GenlCtrlAttrs::McastGroups(groups) => {
                    for g in groups {
                        let name = g.iter().find_map(|a| match a {
                            McastGrpAttrs::Name(n) => Some(n.as_str()),
                            _ => None,
                        });
                        let gid = g.iter().find_map(|a| match a {
                            McastGrpAttrs::Id(n) => Some(*n),
                            _ => None,
                        });
                        if name == Some(DRBD_EVENTS_GROUP) {
                            info.events_group = gid;
                        }
                    }
                }
                _ => {}
            }
        }
        info.id = id.ok_or_else(|| DrbdError::Protocol {
            context: "resolve family drbd".into(),
            reason: "nlctrl reply without CTRL_ATTR_FAMILY_ID".into(),
        })?;
        Ok(info)
    }
}

/// A spawned netlink-proto connection: the handle, the unsolicited stream,
/// and the task (aborted when the last owner drops it).
pub(crate) struct Conn {
    pub handle: ConnectionHandle<RawGenl>,
    pub unsolicited:
        futures::channel::mpsc::UnboundedReceiver<(NetlinkMessage<RawGenl>, SocketAddr)>,
    pub task: TaskGuard,
}

/// Aborts the connection task on drop.
#[derive(Debug)]
pub(crate) struct TaskGuard(tokio::task::JoinHandle<()>);

impl Drop for TaskGuard {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// Opens a generic-netlink socket, optionally joins `group` before the
/// connection task starts (so nothing is missed), and spawns the task.
pub(crate) fn open(group: Option<u32>) -> Result<Conn, DrbdError> {
    let (mut conn, handle, unsolicited) =
        netlink_proto::new_connection::<RawGenl>(NETLINK_GENERIC)?;
    let socket = conn.socket_mut().socket_mut();
    // drbdsetup asks for 1 MiB: a resync can emit bursts of broadcasts.
    let _ = socket.set_rx_buf_sz(1 << 20);
    // Bind first: an unbound socket has portid 0, the kernel's own, and
    // netlink_broadcast skips the sender's portid, so it would get no events.
    socket.bind_auto()?;
    if let Some(g) = group {
        socket.add_membership(g)?;
    }
    let task = TaskGuard(tokio::spawn(conn));
    Ok(Conn {
        handle,
        unsolicited,
        task,
    })
}

/// Sends one request and collects the replies (inner messages); an
/// `NLMSG_ERROR` with an errno or an `NLMSG_DONE` with one is an error.
pub(crate) async fn request(
    handle: &ConnectionHandle<RawGenl>,
    payload: RawGenl,
    flags: u16,
    context: &str,
) -> Result<Vec<RawGenl>, DrbdError> {
    let mut replies = handle
        .request(netlink_message(payload, flags), SocketAddr::new(0, 0))
        .map_err(|_| DrbdError::ConnectionClosed)?;
    let mut out = Vec::new();
    while let Some(reply) = replies.next().await {
        collect(reply.payload, &mut out, context)?;
    }
    Ok(out)
}

/// [`request`] on a socket of its own, synchronously: opens a socket, sends, reads until the
/// reply that ends the request (what netlink-proto's `Protocol` ends it on: anything but an
/// `NLM_F_MULTI` part), closes the socket. The calling thread waits in `sendmsg()` while the
/// kernel runs a doit, so requests from different threads proceed in the kernel at once.
pub(crate) fn request_blocking(
    payload: RawGenl,
    flags: u16,
    context: &str,
) -> Result<Vec<RawGenl>, DrbdError> {
    let mut socket = Socket::new(NETLINK_GENERIC)?;
    socket.bind_auto()?;
    let msg = netlink_message(payload, flags);
    let mut bytes = vec![0u8; msg.buffer_len()];
    msg.serialize(&mut bytes);
    socket.send_to(&bytes, &SocketAddr::new(0, 0), 0)?;
    let mut out = Vec::new();
    loop {
        // A signal handled on this thread (one that ends DRBD's sleep inside the request)
        // interrupts a wait for the reply; the reply is still queued.
        let (datagram, _) = match socket.recv_from_full() {
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            r => r?,
        };
        if read_datagram(&datagram, &mut out, context)? {
            return Ok(out);
        }
    }
}

/// The messages of one received datagram (a dump may put several parts in one), each kept by
/// [`collect`]; `true` once the request ended (a reply that is not an `NLM_F_MULTI` part).
fn read_datagram(
    mut rest: &[u8],
    out: &mut Vec<RawGenl>,
    context: &str,
) -> Result<bool, DrbdError> {
    while !rest.is_empty() {
        let len = NetlinkBuffer::new_checked(rest)?.length() as usize;
        let reply = NetlinkMessage::<RawGenl>::deserialize(rest)?;
        let more = matches!(reply.payload, NetlinkPayload::InnerMessage(_))
            && reply.header.flags & NLM_F_MULTIPART != 0;
        collect(reply.payload, out, context)?;
        if !more {
            return Ok(true);
        }
        rest = rest
            .get(len.next_multiple_of(NLMSG_ALIGNTO)..)
            .unwrap_or(&[]);
    }
    Ok(false)
}

/// `NLMSG_ALIGNTO`: netlink messages in one datagram start on 4-byte boundaries.
const NLMSG_ALIGNTO: usize = 4;

/// A request message with `flags` (sequence number and port left to the sender).
fn netlink_message(payload: RawGenl, flags: u16) -> NetlinkMessage<RawGenl> {
    let mut header = NetlinkHeader::default();
    header.flags = flags;
    let mut msg = NetlinkMessage::new(header, NetlinkPayload::InnerMessage(payload));
    msg.finalize();
    msg
}

/// One reply of a request, for both senders: an inner message is kept in `out`; an
/// `NLMSG_ERROR` with an errno, an `NLMSG_DONE` with one or an overrun is the request's error.
fn collect(
    payload: NetlinkPayload<RawGenl>,
    out: &mut Vec<RawGenl>,
    context: &str,
) -> Result<(), DrbdError> {
    match payload {
        NetlinkPayload::InnerMessage(m) => out.push(m),
        NetlinkPayload::Error(e) => {
            if let Some(code) = e.code {
                return Err(DrbdError::Netlink {
                    context: context.to_string(),
                    source: std::io::Error::from_raw_os_error(-code.get()),
                });
            }
        }
        NetlinkPayload::Done(d) if d.code != 0 => {
            return Err(DrbdError::Netlink {
                context: context.to_string(),
                source: std::io::Error::from_raw_os_error(d.code.saturating_neg()),
            });
        }
        NetlinkPayload::Overrun(_) => {
            return Err(DrbdError::Protocol {
                context: context.to_string(),
                reason: "netlink overrun".into(),
            })
        }
        _ => {}
    }
    Ok(())
}

/// Resolves the `drbd` family through nlctrl (`CTRL_CMD_GETFAMILY`).
pub(crate) async fn resolve_family(
    handle: &ConnectionHandle<RawGenl>,
) -> Result<FamilyInfo, DrbdError> {
    let ctrl = GenlMessage::from_payload(GenlCtrl {
        cmd: GenlCtrlCmd::GetFamily,
        nlas: vec![GenlCtrlAttrs::FamilyName(DRBD_FAMILY_NAME.to_string())],
    });
    let raw = RawGenl::encode(GENL_ID_CTRL, &ctrl);
    let replies = match request(handle, raw, NLM_F_REQUEST, "resolve family drbd").await {
        Err(DrbdError::Netlink { source, .. }) if source.raw_os_error() == Some(libc_enoent()) => {
            return Err(DrbdError::FamilyNotFound)
        }
        other => other?,
    };
    let reply = replies.first().ok_or_else(|| DrbdError::Protocol {
        context: "resolve family drbd".into(),
        reason: "no reply from nlctrl".into(),
    })?;
    let header = GenlHeader::parse(&reply.payload)?;
    let body = reply.payload.get(4..).unwrap_or(&[]);
    let ctrl = GenlCtrl::parse_with_param(body, header)?;
    FamilyInfo::from_ctrl(&ctrl)
}

const fn libc_enoent() -> i32 {
    2
}

#[cfg(test)]
mod tests {
    use super::*;
    use netlink_packet_generic::ctrl::nlas::OpAttrs;

    fn family(version: u32, ops: &[u32], group: bool) -> GenlCtrl {
        let mut nlas = vec![
            GenlCtrlAttrs::FamilyId(0x20),
            GenlCtrlAttrs::FamilyName("drbd".into()),
            GenlCtrlAttrs::Version(version),
            GenlCtrlAttrs::HdrSize(8),
            GenlCtrlAttrs::MaxAttr(24),
            GenlCtrlAttrs::Ops(
                ops.iter()
                    .map(|n| vec![OpAttrs::Id(*n), OpAttrs::Flags(0xb)])
                    .collect(),
            ),
        ];
        if group {
            nlas.push(GenlCtrlAttrs::McastGroups(vec![vec![
                McastGrpAttrs::Name("events".into()),
                McastGrpAttrs::Id(9),
            ]]));
        }
        GenlCtrl {
            cmd: GenlCtrlCmd::NewFamily,
            nlas,
        }
    }

    #[test]
    fn drbd_84_family_is_accepted() {
        let info = FamilyInfo::from_ctrl(&family(1, &[2, 5, 14, 15], true)).unwrap();
        assert_eq!(info.id, 0x20);
        assert!(info.check_84().is_ok());
        assert_eq!(info.events_group().unwrap(), 9);
    }

    #[test]
    fn drbd_9_is_refused_with_a_clear_error() {
        let info = FamilyInfo::from_ctrl(&family(2, &[5, 44, 45], true)).unwrap();
        let err = info.check_84().unwrap_err();
        assert!(matches!(err, DrbdError::UnsupportedApi { version: 2 }));
        assert!(err.to_string().contains("DRBD 9"), "{err}");
        // version 1 but DRBD 9 ops (NEW_PEER = 44) advertised: refused too.
        let info = FamilyInfo::from_ctrl(&family(1, &[5, 44], true)).unwrap();
        assert!(info.check_84().is_err());
    }

    /// A dump's parts (`NLM_F_MULTI`) keep the blocking reader reading, up to `NLMSG_DONE`, also
    /// when they share a datagram; a doit's one reply ends it.
    #[test]
    fn blocking_reader_ends_where_the_request_ends() {
        let part: &[u8] = include_bytes!("../tests/data/cap84_get_status_dump_part.bin");
        let reply: &[u8] = include_bytes!("../tests/data/cap84_primary_reply.bin");
        let mut done = [0u8; 20];
        done[..4].copy_from_slice(&20u32.to_ne_bytes());
        done[4..6].copy_from_slice(&3u16.to_ne_bytes()); // NLMSG_DONE
        let mut out = Vec::new();
        assert!(!read_datagram(part, &mut out, "status").unwrap());
        let two_and_done = [part, part, &done[..]].concat();
        assert!(read_datagram(&two_and_done, &mut out, "status").unwrap());
        assert_eq!(out.len(), 3);
        assert_eq!(out[0].payload, part[16..]);
        let mut out = Vec::new();
        assert!(read_datagram(reply, &mut out, "primary 1").unwrap());
        assert_eq!(out.len(), 1);
    }

    /// An errno (`NLMSG_ERROR`) or bytes that are no netlink message are errors, never a panic.
    #[test]
    fn blocking_reader_refuses_errors_and_garbage() {
        let mut error = [0u8; 36];
        error[..4].copy_from_slice(&36u32.to_ne_bytes());
        error[4..6].copy_from_slice(&2u16.to_ne_bytes()); // NLMSG_ERROR
        error[16..20].copy_from_slice(&(-1i32).to_ne_bytes()); // -EPERM
        let e = read_datagram(&error, &mut Vec::new(), "primary 1").unwrap_err();
        assert!(
            matches!(&e, DrbdError::Netlink { source, .. } if source.raw_os_error() == Some(1))
        );
        let part: &[u8] = include_bytes!("../tests/data/cap84_get_status_dump_part.bin");
        for bad in [&part[..10], &part[..100], &[0xff; 40][..]] {
            assert!(read_datagram(bad, &mut Vec::new(), "status").is_err());
        }
    }

    #[test]
    fn missing_events_group_is_an_error() {
        let info = FamilyInfo::from_ctrl(&family(1, &[2], false)).unwrap();
        assert!(matches!(
            info.events_group(),
            Err(DrbdError::GroupNotFound(_))
        ));
    }
}
