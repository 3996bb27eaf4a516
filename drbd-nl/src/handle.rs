//! [`DrbdHandle`]: the async client. One netlink socket, the `drbd` family
//! resolved by name, DRBD 8.4 checked; requests hand out builders.

use std::sync::Arc;

use netlink_packet_core::{NLM_F_DUMP, NLM_F_REQUEST};
use netlink_packet_generic::{GenlHeader, GenlMessage};
use netlink_proto::ConnectionHandle;

use crate::connection::{self, FamilyInfo, RawGenl, TaskGuard};
use crate::error::DrbdError;
use crate::event::EventStream;
use crate::message::DrbdMessage;
use crate::request::*;
use crate::ret_code::ReplyCode;
use crate::status::DeviceStatus;

struct Inner {
    conn: ConnectionHandle<RawGenl>,
    family: FamilyInfo,
    _task: TaskGuard,
}

/// A handle on the kernel's DRBD 8.4 generic-netlink API. Cheap to clone.
///
/// Equivalent of `drbdsetup-84`: every request names its drbdsetup
/// counterpart. Must be created inside a tokio runtime (it spawns the
/// netlink connection task, which stops when the last clone is dropped).
#[derive(Clone)]
pub struct DrbdHandle {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for DrbdHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DrbdHandle")
            .field("family", &self.inner.family)
            .finish()
    }
}

impl DrbdHandle {
    /// Opens a socket, resolves family `drbd` by name and refuses any API but
    /// 8.4 ([`DrbdError::UnsupportedApi`] for DRBD 9; [`DrbdError::FamilyNotFound`]
    /// without the module or outside the initial netns).
    ///
    /// # Errors
    /// [`DrbdError::FamilyNotFound`] (no `drbd` module, or not in the initial netns);
    /// [`DrbdError::UnsupportedApi`] (DRBD 9); [`DrbdError::Io`] / [`DrbdError::Netlink`] when the
    /// socket or the nlctrl request fails; [`DrbdError::Protocol`] / [`DrbdError::Decode`] for a
    /// malformed nlctrl reply.
    pub async fn connect() -> Result<Self, DrbdError> {
        let conn = connection::open(None)?;
        let family = connection::resolve_family(&conn.handle).await?;
        family.check_84()?;
        Ok(Self::from_parts(conn, family))
    }

    /// A handle on an open socket whose family was resolved (and checked) already.
    pub(crate) fn from_parts(conn: connection::Conn, family: FamilyInfo) -> Self {
        Self {
            inner: Arc::new(Inner {
                conn: conn.handle,
                family,
                _task: conn.task,
            }),
        }
    }

    /// What nlctrl said about the family (id, version, group, ops).
    pub fn family(&self) -> &FamilyInfo {
        &self.inner.family
    }

    /// Subscribes to the `events` multicast group on a new socket: a stream
    /// of typed events. Equivalent to the listening half of
    /// `drbdsetup-84 events all` (a missing group is an error). Take a
    /// [`DrbdHandle::status`] snapshot *after* this returns to miss nothing.
    ///
    /// # Errors
    /// [`DrbdError::GroupNotFound`] without an `events` group; [`DrbdError::Io`] when the socket
    /// cannot be opened, bound or joined to the group.
    pub async fn events(&self) -> Result<EventStream, DrbdError> {
        let group = self.inner.family.events_group()?;
        let conn = connection::open(Some(group))?;
        Ok(EventStream::new(conn, self.inner.family.id))
    }

    /// Sends one DRBD message and returns every reply message, undecoded
    /// replies as errors. The only place that picks netlink flags: `dump`
    /// adds `NLM_F_DUMP`; `extra_flags` carries e.g. `NLM_F_EXCL`. No
    /// `NLM_F_ACK`: each DRBD doit sends exactly one reply, as drbdsetup expects.
    ///
    /// # Errors
    /// [`DrbdError::Netlink`] / [`DrbdError::Io`] when the exchange fails; [`DrbdError::Decode`]
    /// for a reply that cannot be decoded.
    pub async fn send(
        &self,
        msg: &DrbdMessage,
        dump: bool,
        extra_flags: u16,
        context: &str,
    ) -> Result<Vec<DrbdMessage>, DrbdError> {
        let mut genl = GenlMessage::from_payload(msg.clone());
        genl.set_resolved_family_id(self.inner.family.id);
        let raw = RawGenl::encode(self.inner.family.id, &genl);
        let mut flags = NLM_F_REQUEST | extra_flags;
        if dump {
            flags |= NLM_F_DUMP;
        }
        let replies = connection::request(&self.inner.conn, raw, flags, context).await?;
        replies.iter().map(decode_raw).collect()
    }

    /// Sends a doit request and checks its single reply: `NO_ERROR` (101) or
    /// `SS_SUCCESS`..`SS_CW_NO_NEED` (1..=4) is success; any other code is
    /// [`DrbdError::Kernel`] or [`DrbdError::StateChange`] with the kernel's
    /// info text.
    ///
    /// # Errors
    /// [`DrbdError::Netlink`] / [`DrbdError::Io`] when the exchange fails; [`DrbdError::Decode`]
    /// for a reply that cannot be decoded;
    /// [`DrbdError::Kernel`] / [`DrbdError::StateChange`] for a refusal (see [`check_reply`]).
    pub async fn execute_doit(
        &self,
        msg: &DrbdMessage,
        extra_flags: u16,
        context: &str,
    ) -> Result<DrbdMessage, DrbdError> {
        let replies = self.send(msg, false, extra_flags, context).await?;
        let reply = replies
            .into_iter()
            .next()
            .ok_or_else(|| DrbdError::Protocol {
                context: context.to_string(),
                reason: "no DRBD reply".into(),
            })?;
        check_reply(reply, context)
    }

    /// Status of every device (or of one resource): equivalent to
    /// `drbdsetup-84 status` / the snapshot of `drbdsetup-84 events`.
    pub fn status(&self) -> Status {
        Status::new().bind(self.clone())
    }

    /// `drbdsetup-84 new-resource NAME`.
    pub fn new_resource(&self, name: impl Into<String>) -> NewResource {
        NewResource::new(name).bind(self.clone())
    }

    /// `drbdsetup-84 del-resource NAME`.
    pub fn del_resource(&self, name: impl Into<String>) -> DelResource {
        DelResource::new(name).bind(self.clone())
    }

    /// `drbdsetup-84 new-minor RESOURCE MINOR VOLUME`.
    pub fn new_minor(&self, resource: impl Into<String>, minor: u32, volume: u32) -> NewMinor {
        NewMinor::new(resource, minor, volume).bind(self.clone())
    }

    /// `drbdsetup-84 del-minor MINOR`.
    pub fn del_minor(&self, minor: u32) -> DelMinor {
        DelMinor::new(minor).bind(self.clone())
    }

    /// `drbdsetup-84 attach MINOR DEV DEV internal`.
    pub fn attach(&self, minor: u32, backing_dev: impl Into<String>) -> Attach {
        Attach::new(minor, backing_dev).bind(self.clone())
    }

    /// `drbdsetup-84 detach MINOR`.
    pub fn detach(&self, minor: u32) -> Detach {
        Detach::new(minor).bind(self.clone())
    }

    /// `drbdsetup-84 connect RESOURCE ipv4:LOCAL ipv4:PEER --protocol=C`.
    pub fn connect_peer(
        &self,
        resource: impl Into<String>,
        local: std::net::SocketAddr,
        peer: std::net::SocketAddr,
    ) -> Connect {
        Connect::new(resource, local, peer).bind(self.clone())
    }

    /// `drbdsetup-84 disconnect LOCAL PEER`.
    pub fn disconnect(
        &self,
        local: std::net::SocketAddr,
        peer: std::net::SocketAddr,
    ) -> Disconnect {
        Disconnect::new(local, peer).bind(self.clone())
    }

    /// `drbdsetup-84 primary MINOR`.
    pub fn primary(&self, minor: u32) -> Primary {
        Primary::new(minor).bind(self.clone())
    }

    /// `drbdsetup-84 secondary MINOR`.
    pub fn secondary(&self, minor: u32) -> Secondary {
        Secondary::new(minor).bind(self.clone())
    }

    /// `drbdsetup-84 new-current-uuid MINOR`.
    pub fn new_current_uuid(&self, minor: u32) -> NewCurrentUuid {
        NewCurrentUuid::new(minor).bind(self.clone())
    }

    /// `drbdsetup-84 resize MINOR`.
    pub fn resize(&self, minor: u32) -> Resize {
        Resize::new(minor).bind(self.clone())
    }

    /// `drbdsetup-84 down RESOURCE`.
    pub fn down(&self, resource: impl Into<String>) -> Down {
        Down::new(resource).bind(self.clone())
    }

    /// Convenience: the dump of [`DrbdHandle::status`] as typed device status.
    ///
    /// # Errors
    /// Those of [`Status`]'s execute: netlink failures, a kernel error code, or a reply that
    /// cannot be decoded.
    pub async fn devices(&self) -> Result<Vec<DeviceStatus>, DrbdError> {
        self.status().execute().await
    }
}

/// Decodes one received generic-netlink payload as a DRBD message.
///
/// # Errors
/// [`DrbdError::Decode`] for a truncated or malformed payload.
pub fn decode_raw(raw: &RawGenl) -> Result<DrbdMessage, DrbdError> {
    let header = GenlHeader::parse(&raw.payload)?;
    let body = raw.payload.get(4..).unwrap_or(&[]);
    Ok(DrbdMessage::parse_payload(header.cmd, body)?)
}

/// Turns a reply's `ret_code` into `Ok(reply)` or the typed error.
///
/// # Errors
/// [`DrbdError::Kernel`] for a `drbd_ret_code` other than `NO_ERROR` (101);
/// [`DrbdError::StateChange`] for a failed `drbd_state_rv` (below 1); both carry the kernel's info text.
pub fn check_reply(reply: DrbdMessage, context: &str) -> Result<DrbdMessage, DrbdError> {
    reply_result(
        ReplyCode::from_raw(reply.header.ret_code()),
        reply.info_text(),
        context,
    )
    .map(|()| reply)
}

/// A reply's classified `ret_code` (and info text) as `Ok` or the typed error: shared by both
/// APIs, which classify it each in its own numbering.
pub(crate) fn reply_result(
    code: ReplyCode,
    info_text: Option<&str>,
    context: &str,
) -> Result<(), DrbdError> {
    if code.is_success() {
        return Ok(());
    }
    let info_text = info_text.map(str::to_string);
    Err(match code {
        ReplyCode::Ret(code) => DrbdError::Kernel {
            context: context.to_string(),
            code,
            info_text,
        },
        ReplyCode::State(code) => DrbdError::StateChange {
            context: context.to_string(),
            code,
            info_text,
        },
    })
}
