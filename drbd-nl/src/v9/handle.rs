//! [`Drbd9Handle`]: the async client of the DRBD 9 API. It sends request values
//! ([`Request`]) and its status dumps through the executor the 8.4 handle uses
//! ([`crate::handle::drbd_execute`], whose `nlm_flags` alone picks the netlink flags).

use std::sync::Arc;

use futures::lock::MutexGuard;
use futures::StreamExt;
use netlink_packet_core::NetlinkPayload;
use netlink_proto::ConnectionHandle;

use super::event::{Event, EventStream9, Object};
use super::message::{Drbd9Cmd, Drbd9Message, DRBD_API_VERSION_9};
use super::request::dump_request;
#[cfg(doc)]
use super::request::Primary9;
use super::status::{Connection, Device, Path, PeerDevice, Resource};
use crate::codec::Reply;
use crate::connection::{self, FamilyInfo, RawGenl, TaskGuard};
use crate::error::DrbdError;
use crate::handle::{drbd_execute, execute_request, execute_request_blocking, DrbdHandle};
use crate::request::private::Exchange;
use crate::request::Request;

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

    /// Sends `request` and checks the kernel's answer: equivalent to running the DRBD 9
    /// `drbdsetup` command line it stands for ([`Request::command_line`]).
    ///
    /// ```no_run
    /// # async fn f(drbd: drbd_nl::v9::Drbd9Handle) -> Result<(), drbd_nl::DrbdError> {
    /// use drbd_nl::v9::{Primary9, Secondary9};
    /// drbd.execute(Primary9::new("r0").force(true)).await?; // primary r0 --force
    /// drbd.execute(Secondary9::new("r0")).await?; // secondary r0
    /// # Ok(()) }
    /// ```
    ///
    /// # Errors
    /// [`DrbdError::Kernel`] / [`DrbdError::StateChange`] when the kernel refuses (its
    /// `drbd_ret_code` or `SS_*` code and info text, with the command line as context; a
    /// [`Primary9`] while the peer is Primary gives `SS_TWO_PRIMARIES`); [`DrbdError::Netlink`],
    /// [`DrbdError::Io`], [`DrbdError::ConnectionClosed`], [`DrbdError::Decode`] or
    /// [`DrbdError::Protocol`] (no reply) when the exchange itself fails.
    pub async fn execute<R: Request<Drbd9Message>>(
        &self,
        request: R,
    ) -> Result<R::Output, DrbdError> {
        let _one_dump = self.one_dump(request.exchange()).await;
        execute_request(&self.inner.conn, self.inner.family.id, request).await
    }

    /// [`execute`](Self::execute) on a netlink socket of its own, blocking the calling thread
    /// until the kernel answers: for role changes, which wait in the kernel for the peers
    /// (see [`DrbdHandle::execute_blocking`]). Call it from a thread of its own, never on an
    /// async runtime's worker thread.
    ///
    /// # Errors
    /// As [`execute`](Self::execute), but never [`DrbdError::ConnectionClosed`]: opening,
    /// binding, sending or receiving on the socket fails as [`DrbdError::Io`].
    pub fn execute_blocking<R: Request<Drbd9Message>>(
        &self,
        request: R,
    ) -> Result<R::Output, DrbdError> {
        execute_request_blocking(self.inner.family.id, request)
    }

    /// For a dump, the turn on this handle's socket: a netlink socket runs one dump at a time
    /// (a second one gets `EBUSY`).
    async fn one_dump(&self, exchange: Exchange) -> Option<MutexGuard<'_, ()>> {
        if exchange == Exchange::Dump {
            Some(self.inner.dumping.lock().await)
        } else {
            None
        }
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

    /// The dump itself: every part checked (by the executor), parts without CFG_CONTEXT skipped, the rest typed.
    async fn dump_parts<T>(
        &self,
        cmd: Drbd9Cmd,
        resource: Option<&str>,
        read: fn(&Drbd9Message) -> Result<T, DrbdError>,
    ) -> Result<Vec<T>, DrbdError> {
        let context = format!("{cmd:?} {}", resource.unwrap_or("all"));
        let _one_dump = self.one_dump(Exchange::Dump).await;
        let parts = drbd_execute(
            &self.inner.conn,
            self.inner.family.id,
            &dump_request(cmd, resource),
            Exchange::Dump,
            &context,
        )
        .await?;
        let mut out = Vec::new();
        for p in parts {
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
        let first = drbd_execute(
            &conn.handle,
            self.inner.family.id,
            &dump_request(Drbd9Cmd::GetInitialState, resource),
            Exchange::Dump,
            context,
        )
        .await?;
        let mut events = Vec::new();
        let mut push = |m: Drbd9Message, seq: u32| -> Result<bool, DrbdError> {
            let e = Event::from_message(seq, m)?;
            let done = e.object == Object::InitialStateDone;
            events.push(e);
            Ok(done)
        };
        let mut done = false;
        for m in first {
            done |= push(m, 0)?;
        }
        while !done {
            let Some((msg, _)) = rest.next().await else {
                return Err(DrbdError::ConnectionClosed);
            };
            match msg.payload {
                NetlinkPayload::InnerMessage(raw) => {
                    let m = Drbd9Message::read_reply(&raw, context)?;
                    done = push(m, msg.header.sequence_number)?;
                }
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
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::codec::{check_reply9, decode_raw9};
    use crate::handle::nlm_flags;
    use crate::request::private::Sealed;
    use crate::ret_code::{RetCode, StateRv};
    use crate::v9::{Primary9, Request9, Secondary9};

    /// A captured `drbdsetup` 9 message (`tests/data/README.md`, `cap9_*`): its `nlmsg_flags`
    /// (host order, offset 6) and its payload as the executor decodes and checks it.
    fn captured(bytes: &[u8]) -> (u16, Drbd9Message) {
        let raw = RawGenl {
            message_type: 0x20,
            payload: bytes[16..].to_vec(),
        };
        (
            u16::from_ne_bytes([bytes[6], bytes[7]]),
            decode_raw9(&raw).unwrap(),
        )
    }

    /// The flags drbdsetup 9 sent are the ones the shared `nlm_flags` picks.
    #[test]
    fn flags_equal_drbdsetup_9() {
        let cases: [(Exchange, &[u8]); 4] = [
            (
                Primary9::new("r0").exchange(),
                include_bytes!("../../tests/data/cap9_primary_request.bin"),
            ),
            (
                Secondary9::new("r0").exchange(),
                include_bytes!("../../tests/data/cap9_secondary_request.bin"),
            ),
            (
                Request9::connect("r0", 1).exchange(),
                include_bytes!("../../tests/data/cap9_connect_request.bin"),
            ),
            (
                Exchange::Dump,
                include_bytes!("../../tests/data/cap9_get_resources_request.bin"),
            ),
        ];
        for (exchange, bytes) in cases {
            assert_eq!(nlm_flags(exchange), captured(bytes).0, "{exchange:?}");
        }
    }

    /// Replies captured from the kernel, checked as `execute` checks them.
    #[test]
    fn replies_give_typed_results() {
        let (_, m) = captured(include_bytes!("../../tests/data/cap9_primary_reply.bin"));
        assert!(check_reply9(m, "primary r0").is_ok());
        let (_, m) = captured(include_bytes!(
            "../../tests/data/cap9_primary_peer_primary_reply.bin"
        ));
        let e = check_reply9(m, "primary r0").unwrap_err();
        assert_eq!(e.state_rv(), Some(StateRv::TwoPrimaries));
        let (_, m) = captured(include_bytes!(
            "../../tests/data/cap9_primary_unknown_resource_reply.bin"
        ));
        let e = check_reply9(m, "primary r7").unwrap_err();
        assert_eq!(e.ret_code(), Some(RetCode::from(158)));
        assert!(
            matches!(&e, DrbdError::Kernel { info_text: Some(t), .. } if t == "unknown resource")
        );
    }

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
