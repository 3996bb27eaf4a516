//! [`Drbd9Handle`]: the async client of the DRBD 9 API, and the request builders it hands out.

use std::sync::Arc;

use futures::StreamExt;
use netlink_packet_core::{NetlinkPayload, NLM_F_DUMP, NLM_F_REQUEST};
use netlink_packet_generic::{GenlHeader, GenlMessage};
use netlink_proto::ConnectionHandle;

use super::event::{Event, EventStream9, Object};
use super::message::{Drbd9Cmd, Drbd9Message, DRBD_API_VERSION_9};
use super::sets::{CfgContext, Drbd9Attr, SetRoleParms};
use super::status::{Connection, Device, Path, PeerDevice, Resource};
use crate::codec::reply_result;
use crate::connection::{self, FamilyInfo, RawGenl, TaskGuard};
use crate::error::DrbdError;
use crate::handle::DrbdHandle;
use crate::header::MINOR_NONE;
use crate::AttrSet;

struct Inner {
    conn: ConnectionHandle<RawGenl>,
    family: FamilyInfo,
    _task: TaskGuard,
    /// A netlink socket runs one dump at a time (a second one gets `EBUSY`): dumps queue here.
    dumping: futures::lock::Mutex<()>,
}

/// A handle on the kernel's DRBD 9 generic-netlink API (family version 2). Cheap to clone.
///
/// Equivalent of DRBD 9's `drbdsetup`: every request names its drbdsetup counterpart. Must be
/// created inside a tokio runtime.
#[derive(Clone)]
pub struct Drbd9Handle {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for Drbd9Handle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Drbd9Handle")
            .field("family", &self.inner.family)
            .finish()
    }
}

/// A handle on whichever DRBD API the kernel speaks, chosen by the family version.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub enum AnyHandle {
    /// Family version 1: the in-tree DRBD 8.4.
    V84(DrbdHandle),
    /// Family version 2: DRBD 9.
    V9(Drbd9Handle),
}

impl AnyHandle {
    /// Opens a socket, resolves family `drbd` and picks the API from `CTRL_ATTR_VERSION`
    /// (1 = 8.4, 2 = 9); any other version is [`DrbdError::UnsupportedApi`].
    ///
    /// # Errors
    /// [`DrbdError::FamilyNotFound`] without the module (or outside the initial netns);
    /// [`DrbdError::UnsupportedApi`] for another API version; [`DrbdError::Io`] /
    /// [`DrbdError::Netlink`] when the socket or nlctrl fails.
    pub async fn connect() -> Result<Self, DrbdError> {
        let conn = connection::open(None)?;
        let family = connection::resolve_family(&conn.handle).await?;
        if family.version == DRBD_API_VERSION_9 {
            check_9(&family)?;
            return Ok(Self::V9(Drbd9Handle::from_parts(conn, family)));
        }
        family.check_84()?;
        Ok(Self::V84(DrbdHandle::from_parts(conn, family)))
    }

    /// What nlctrl said about the family.
    pub fn family(&self) -> &FamilyInfo {
        match self {
            Self::V84(h) => h.family(),
            Self::V9(h) => h.family(),
        }
    }
}

/// Accepts only the DRBD 9 API (version 2, 8-byte user header).
fn check_9(family: &FamilyInfo) -> Result<(), DrbdError> {
    if family.version != DRBD_API_VERSION_9 {
        return Err(DrbdError::UnsupportedApi {
            version: family.version,
        });
    }
    if family.hdrsize != crate::header::DRBD_GENL_HDRLEN as u32 {
        return Err(DrbdError::Protocol {
            context: "resolve family drbd".into(),
            reason: format!("user header size {} (expected 8)", family.hdrsize),
        });
    }
    Ok(())
}

/// Decodes one received generic-netlink payload as a DRBD 9 message.
///
/// # Errors
/// [`DrbdError::Decode`] for bytes that are not a DRBD 9 message.
pub fn decode_raw9(raw: &RawGenl) -> Result<Drbd9Message, DrbdError> {
    let header = GenlHeader::parse(&raw.payload)?;
    let body = raw.payload.get(4..).unwrap_or(&[]);
    Ok(Drbd9Message::parse_payload(header.cmd, body)?)
}

/// Turns a reply's `ret_code` into `Ok(reply)` or the typed error (as for 8.4; DRBD 9 keeps the
/// `drbd_ret_code` and `SS_*` numbers but −21, [`crate::StateRv::from_v9`]).
///
/// # Errors
/// [`DrbdError::Kernel`] for a `drbd_ret_code` other than `NO_ERROR`, [`DrbdError::StateChange`]
/// for a refused state change (`SS_*` < 1).
pub fn check_reply9(reply: Drbd9Message, context: &str) -> Result<Drbd9Message, DrbdError> {
    let code = crate::ReplyCode::from_raw_v9(reply.header.ret_code());
    reply_result(code, reply.info_text(), context).map(|()| reply)
}

/// The CFG_CONTEXT of a request naming `resource`, as drbdsetup 9 sends it.
pub fn resource_context(resource: &str) -> Drbd9Attr {
    Drbd9Attr::CfgContext(AttrSet::new(vec![CfgContext::CtxResourceName(
        resource.to_string(),
    )]))
}

/// The request of a per-object dump (`cmd` one of GET_RESOURCES, GET_DEVICES, GET_CONNECTIONS,
/// GET_PEER_DEVICES, GET_PATHS, GET_INITIAL_STATE), for one resource or all. drbdsetup 9
/// sends GET_RESOURCES without a context and filters itself; the kernel honours a name.
pub fn dump_request(cmd: Drbd9Cmd, resource: Option<&str>) -> Drbd9Message {
    Drbd9Message::new(
        cmd,
        MINOR_NONE,
        resource.map(resource_context).into_iter().collect(),
    )
}

impl Drbd9Handle {
    /// Opens a socket, resolves family `drbd` and refuses any API but DRBD 9's
    /// ([`DrbdError::UnsupportedApi`] on an 8.4 kernel; use [`AnyHandle::connect`] to take both).
    ///
    /// # Errors
    /// [`DrbdError::FamilyNotFound`] without the module (or outside the initial netns);
    /// [`DrbdError::UnsupportedApi`] for another API version; [`DrbdError::Io`] /
    /// [`DrbdError::Netlink`] when the socket or nlctrl fails.
    pub async fn connect() -> Result<Self, DrbdError> {
        let conn = connection::open(None)?;
        let family = connection::resolve_family(&conn.handle).await?;
        check_9(&family)?;
        Ok(Self::from_parts(conn, family))
    }

    fn from_parts(conn: connection::Conn, family: FamilyInfo) -> Self {
        Self {
            inner: Arc::new(Inner {
                conn: conn.handle,
                family,
                _task: conn.task,
                dumping: futures::lock::Mutex::new(()),
            }),
        }
    }

    /// What nlctrl said about the family (id, version, group, ops).
    pub fn family(&self) -> &FamilyInfo {
        &self.inner.family
    }

    /// Sends one message (as a dump with `NLM_F_DUMP` if `dump`) and returns every reply.
    ///
    /// # Errors
    /// [`DrbdError::Netlink`] / [`DrbdError::Io`] when the exchange fails; [`DrbdError::Decode`]
    /// for a reply that cannot be decoded.
    pub async fn send(
        &self,
        msg: &Drbd9Message,
        dump: bool,
        context: &str,
    ) -> Result<Vec<Drbd9Message>, DrbdError> {
        let raw = self.encode(msg);
        let flags = if dump {
            NLM_F_REQUEST | NLM_F_DUMP
        } else {
            NLM_F_REQUEST
        };
        let _one_dump = if dump {
            Some(self.inner.dumping.lock().await)
        } else {
            None
        };
        let replies = connection::request(&self.inner.conn, raw, flags, context).await?;
        replies.iter().map(decode_raw9).collect()
    }

    fn encode(&self, msg: &Drbd9Message) -> RawGenl {
        let mut genl = GenlMessage::from_payload(msg.clone());
        genl.set_resolved_family_id(self.inner.family.id);
        RawGenl::encode(self.inner.family.id, &genl)
    }

    /// Sends a doit request and checks its single reply ([`check_reply9`]).
    ///
    /// # Errors
    /// [`DrbdError::Netlink`] / [`DrbdError::Io`] when the exchange fails; [`DrbdError::Decode`]
    /// for a reply that cannot be decoded; [`DrbdError::Kernel`] / [`DrbdError::StateChange`] for a
    /// refusal (see [`check_reply9`]); [`DrbdError::Protocol`] without a reply.
    pub async fn execute_doit(
        &self,
        msg: &Drbd9Message,
        context: &str,
    ) -> Result<Drbd9Message, DrbdError> {
        let reply = self
            .send(msg, false, context)
            .await?
            .into_iter()
            .next()
            .ok_or_else(|| DrbdError::Protocol {
                context: context.to_string(),
                reason: "no DRBD reply".into(),
            })?;
        check_reply9(reply, context)
    }

    /// Whether resource `name` exists (an unfiltered GET_RESOURCES, as drbdsetup 9 does first).
    async fn resource_exists(&self, name: &str) -> Result<bool, DrbdError> {
        Ok(!self.resources(Some(name)).await?.is_empty())
    }

    /// A dump: every part checked, then typed by `read`. DRBD 9.3.3 answers a per-resource dump
    /// of an unknown resource with error parts forever (never NLMSG_DONE), so a named resource
    /// is looked up first and an unknown one gives an empty list.
    async fn dump<T>(
        &self,
        cmd: Drbd9Cmd,
        resource: Option<&str>,
        read: fn(&Drbd9Message) -> Result<T, DrbdError>,
    ) -> Result<Vec<T>, DrbdError> {
        if let Some(name) = resource {
            if !self.resource_exists(name).await? {
                return Ok(Vec::new());
            }
        }
        self.dump_parts(cmd, resource, read).await
    }

    /// The dump itself: every part checked, parts without CFG_CONTEXT skipped, the rest typed.
    async fn dump_parts<T>(
        &self,
        cmd: Drbd9Cmd,
        resource: Option<&str>,
        read: fn(&Drbd9Message) -> Result<T, DrbdError>,
    ) -> Result<Vec<T>, DrbdError> {
        let context = format!("{cmd:?} {}", resource.unwrap_or("all"));
        let parts = self
            .send(&dump_request(cmd, resource), true, &context)
            .await?;
        let mut out = Vec::new();
        for p in parts {
            let p = check_reply9(p, &context)?;
            // A dump of one resource ends with a part without CFG_CONTEXT (nothing more).
            if p.cfg_context().is_none() {
                continue;
            }
            let obj = read(&p)?;
            out.push(obj);
        }
        Ok(out)
    }

    /// Resources (one or all): the first line of `drbdsetup status`. The kernel dumps all
    /// resources whatever the context says; the filter is applied here.
    ///
    /// # Errors
    /// [`DrbdError::Netlink`] / [`DrbdError::Io`] when the exchange fails; [`DrbdError::Decode`]
    /// for a reply that cannot be decoded; [`DrbdError::Kernel`] for an error part.
    pub async fn resources(&self, resource: Option<&str>) -> Result<Vec<Resource>, DrbdError> {
        self.dump_parts(Drbd9Cmd::GetResources, None, Resource::from_message)
            .await
            .map(|v| {
                v.into_iter()
                    .filter(|r| resource.is_none_or(|n| r.name == n))
                    .collect()
            })
    }

    /// Devices (volumes) of one resource or all.
    ///
    /// # Errors
    /// [`DrbdError::Netlink`] / [`DrbdError::Io`] when the exchange fails; [`DrbdError::Decode`]
    /// for a reply that cannot be decoded; [`DrbdError::Kernel`] for an error part.
    pub async fn devices(&self, resource: Option<&str>) -> Result<Vec<Device>, DrbdError> {
        self.dump(Drbd9Cmd::GetDevices, resource, Device::from_message)
            .await
    }

    /// Connections (one per peer) of one resource or all.
    ///
    /// # Errors
    /// [`DrbdError::Netlink`] / [`DrbdError::Io`] when the exchange fails; [`DrbdError::Decode`]
    /// for a reply that cannot be decoded; [`DrbdError::Kernel`] for an error part.
    pub async fn connections(&self, resource: Option<&str>) -> Result<Vec<Connection>, DrbdError> {
        self.dump(Drbd9Cmd::GetConnections, resource, Connection::from_message)
            .await
    }

    /// Peer devices of one resource or all.
    ///
    /// # Errors
    /// [`DrbdError::Netlink`] / [`DrbdError::Io`] when the exchange fails; [`DrbdError::Decode`]
    /// for a reply that cannot be decoded; [`DrbdError::Kernel`] for an error part.
    pub async fn peer_devices(&self, resource: Option<&str>) -> Result<Vec<PeerDevice>, DrbdError> {
        self.dump(Drbd9Cmd::GetPeerDevices, resource, PeerDevice::from_message)
            .await
    }

    /// Paths of one resource or all.
    ///
    /// # Errors
    /// [`DrbdError::Netlink`] / [`DrbdError::Io`] when the exchange fails; [`DrbdError::Decode`]
    /// for a reply that cannot be decoded; [`DrbdError::Kernel`] for an error part.
    pub async fn paths(&self, resource: Option<&str>) -> Result<Vec<Path>, DrbdError> {
        self.dump(Drbd9Cmd::GetPaths, resource, Path::from_message)
            .await
    }

    /// The snapshot `drbdsetup events2 --now` prints: every object as an `exists` event, ending
    /// with [`super::Object::InitialStateDone`]. Subscribe ([`Drbd9Handle::events`]) first to
    /// miss nothing.
    ///
    /// The kernel sends this dump's parts without `NLM_F_MULTI`, so the transport ends the
    /// request after the first one: the request goes out on a socket of its own and the rest
    /// is read from that socket's unsolicited messages until INITIAL_STATE_DONE or NLMSG_DONE.
    ///
    /// # Errors
    /// [`DrbdError::Netlink`] / [`DrbdError::Io`] when the exchange fails; [`DrbdError::Decode`]
    /// for a reply that cannot be decoded; [`DrbdError::Kernel`] for an error part;
    /// [`DrbdError::ConnectionClosed`] if the socket closes before the end of the snapshot.
    pub async fn initial_state(&self, resource: Option<&str>) -> Result<Vec<Event>, DrbdError> {
        let context = "events2 --now";
        if let Some(name) = resource {
            if !self.resource_exists(name).await? {
                return Ok(Vec::new());
            }
        }
        let conn = connection::open(None)?;
        let mut rest = conn.unsolicited;
        let raw = self.encode(&dump_request(Drbd9Cmd::GetInitialState, resource));
        let first =
            connection::request(&conn.handle, raw, NLM_F_REQUEST | NLM_F_DUMP, context).await?;
        let mut events = Vec::new();
        let mut push = |raw: &RawGenl, seq: u32| -> Result<bool, DrbdError> {
            let e = Event::from_message(seq, check_reply9(decode_raw9(raw)?, context)?)?;
            let done = e.object == Object::InitialStateDone;
            events.push(e);
            Ok(done)
        };
        let mut done = false;
        for raw in &first {
            done |= push(raw, 0)?;
        }
        while !done {
            let Some((msg, _)) = rest.next().await else {
                return Err(DrbdError::ConnectionClosed);
            };
            match msg.payload {
                NetlinkPayload::InnerMessage(raw) => done = push(&raw, msg.header.sequence_number)?,
                NetlinkPayload::Done(_) => done = true,
                NetlinkPayload::Error(e) => {
                    return Err(DrbdError::Netlink {
                        context: context.into(),
                        source: std::io::Error::from_raw_os_error(e.code.map_or(0, |c| -c.get())),
                    })
                }
                _ => {}
            }
        }
        drop(conn.task);
        Ok(events)
    }

    /// Subscribes to the `events` multicast group on a new socket: the listening half of
    /// `drbdsetup events2`.
    ///
    /// # Errors
    /// [`DrbdError::GroupNotFound`] without an `events` group; [`DrbdError::Io`] when the socket
    /// cannot join it.
    pub async fn events(&self) -> Result<EventStream9, DrbdError> {
        let group = self.inner.family.events_group()?;
        let conn = connection::open(Some(group))?;
        Ok(EventStream9::new(conn, self.inner.family.id))
    }

    /// `drbdsetup primary RESOURCE` (DRBD 9 roles are per resource).
    pub fn primary(&self, resource: impl Into<String>) -> Primary9 {
        Primary9 {
            resource: resource.into(),
            force: false,
            handle: Some(self.clone()),
        }
    }

    /// `drbdsetup secondary RESOURCE`.
    pub fn secondary(&self, resource: impl Into<String>) -> Secondary9 {
        Secondary9 {
            resource: resource.into(),
            handle: Some(self.clone()),
        }
    }
}

fn unbound(context: &str) -> DrbdError {
    DrbdError::Protocol {
        context: context.to_string(),
        reason: "request not bound to a Drbd9Handle".into(),
    }
}

/// `drbdsetup primary RESOURCE [--force]`.
#[derive(Debug, Clone)]
pub struct Primary9 {
    resource: String,
    force: bool,
    handle: Option<Drbd9Handle>,
}

impl Primary9 {
    /// An unbound request (inspect it with [`Primary9::message`]).
    pub fn new(resource: impl Into<String>) -> Self {
        Self {
            resource: resource.into(),
            force: false,
            handle: None,
        }
    }

    /// `--force`: promote even without up-to-date data (SET_ROLE_PARMS `force`).
    pub fn force(mut self, force: bool) -> Self {
        self.force = force;
        self
    }

    /// The request as drbdsetup 9 sends it (SET_ROLE_PARMS only with `--force`).
    pub fn message(&self) -> Drbd9Message {
        let mut attrs = vec![resource_context(&self.resource)];
        if self.force {
            attrs.push(Drbd9Attr::SetRoleParms(AttrSet::new(vec![
                SetRoleParms::Force(true),
            ])));
        }
        Drbd9Message::new(Drbd9Cmd::Primary, MINOR_NONE, attrs)
    }

    /// Sends it. A peer that is Primary gives [`DrbdError::StateChange`] with
    /// `SS_TWO_PRIMARIES` (unless `allow-two-primaries`).
    ///
    /// # Errors
    /// [`DrbdError::Netlink`] / [`DrbdError::Io`] when the exchange fails; [`DrbdError::Decode`]
    /// for a reply that cannot be decoded; [`DrbdError::Kernel`] / [`DrbdError::StateChange`] for a
    /// refusal; [`DrbdError::Protocol`] for an unbound request.
    pub async fn execute(self) -> Result<(), DrbdError> {
        let context = format!("primary {}", self.resource);
        let h = self.handle.as_ref().ok_or_else(|| unbound(&context))?;
        h.execute_doit(&self.message(), &context).await.map(|_| ())
    }
}

/// `drbdsetup secondary RESOURCE`.
#[derive(Debug, Clone)]
pub struct Secondary9 {
    resource: String,
    handle: Option<Drbd9Handle>,
}

impl Secondary9 {
    /// An unbound request.
    pub fn new(resource: impl Into<String>) -> Self {
        Self {
            resource: resource.into(),
            handle: None,
        }
    }

    /// The request as drbdsetup 9 sends it.
    pub fn message(&self) -> Drbd9Message {
        Drbd9Message::new(
            Drbd9Cmd::Secondary,
            MINOR_NONE,
            vec![resource_context(&self.resource)],
        )
    }

    /// Sends it (refused with `SS_DEVICE_IN_USE` while the device is open).
    ///
    /// # Errors
    /// [`DrbdError::Netlink`] / [`DrbdError::Io`] when the exchange fails; [`DrbdError::Decode`]
    /// for a reply that cannot be decoded; [`DrbdError::Kernel`] / [`DrbdError::StateChange`] for a
    /// refusal; [`DrbdError::Protocol`] for an unbound request.
    pub async fn execute(self) -> Result<(), DrbdError> {
        let context = format!("secondary {}", self.resource);
        let h = self.handle.as_ref().ok_or_else(|| unbound(&context))?;
        h.execute_doit(&self.message(), &context).await.map(|_| ())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn family(version: u32) -> FamilyInfo {
        FamilyInfo {
            id: 0x20,
            version,
            hdrsize: 8,
            maxattr: 34,
            events_group: Some(9),
            ops: vec![5, 44],
        }
    }

    #[test]
    fn only_version_2_is_drbd_9() {
        assert!(check_9(&family(2)).is_ok());
        let e = check_9(&family(1)).unwrap_err();
        assert!(matches!(e, DrbdError::UnsupportedApi { version: 1 }));
        assert!(e.to_string().contains("DRBD 8.4"), "{e}");
        let mut f = family(2);
        f.hdrsize = 12;
        assert!(check_9(&f).is_err());
    }
}
