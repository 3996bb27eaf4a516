//! DRBD 9's events2 notifications as typed events, from the `events` multicast group or from
//! the GET_INITIAL_STATE snapshot dump (`drbdsetup events2 --now`).

use std::pin::Pin;
use std::task::{Context, Poll};

use futures::channel::mpsc::UnboundedReceiver;
use futures::Stream;
use netlink_packet_core::NetlinkMessage;
use netlink_proto::sys::SocketAddr;

use super::message::{Drbd9Cmd, Drbd9Message};
use super::sets::{Drbd9Attr, Helper, NotificationHeader};
use super::status::{Connection, Device, Path, PeerDevice, Resource};
use crate::codec::decode_raw9;
use crate::connection::{Conn, RawGenl, TaskGuard};
use crate::error::DrbdError;

/// `NOTIFY_CONTINUES`: more notifications of the same state change follow.
pub const NOTIFY_CONTINUES: u32 = 0x8000;

/// `enum drbd_notification_type` without the flag bits.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum NotifyType {
    /// `NOTIFY_EXISTS` (0): part of a snapshot (`exists` in events2).
    Exists,
    /// `NOTIFY_CREATE` (1).
    Create,
    /// `NOTIFY_CHANGE` (2).
    Change,
    /// `NOTIFY_DESTROY` (3).
    Destroy,
    /// `NOTIFY_CALL` (4): a user-mode helper is called.
    Call,
    /// `NOTIFY_RESPONSE` (5): a helper returned.
    Response,
    /// `NOTIFY_RENAME` (6).
    Rename,
    /// A value this crate does not know.
    Other(u32),
}

impl NotifyType {
    /// From `nh_type` (flag bits masked off).
    pub fn from_nh_type(v: u32) -> Self {
        match v & !NOTIFY_CONTINUES {
            0 => Self::Exists,
            1 => Self::Create,
            2 => Self::Change,
            3 => Self::Destroy,
            4 => Self::Call,
            5 => Self::Response,
            6 => Self::Rename,
            other => Self::Other(other),
        }
    }
}

/// The object an event is about, typed.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Object {
    /// `DRBD_RESOURCE_STATE` (34).
    Resource(Resource),
    /// `DRBD_DEVICE_STATE` (35).
    Device(Device),
    /// `DRBD_CONNECTION_STATE` (36).
    Connection(Connection),
    /// `DRBD_PEER_DEVICE_STATE` (37).
    PeerDevice(PeerDevice),
    /// `DRBD_PATH_STATE` (48).
    Path(Path),
    /// `DRBD_HELPER` (40): a user-mode helper call or its result.
    Helper {
        /// Helper name (e.g. `fence-peer`).
        name: String,
        /// Exit status (in a `Response`).
        status: u32,
    },
    /// `DRBD_INITIAL_STATE_DONE` (41): the end of a snapshot.
    InitialStateDone,
}

/// One events2 notification.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Event {
    /// The netlink sequence number (the kernel's notification counter for broadcasts).
    pub seq: u32,
    /// exists / create / change / destroy / call / response / rename.
    pub notify: NotifyType,
    /// `NOTIFY_CONTINUES`: more notifications of the same state change follow.
    pub continues: bool,
    /// The typed object.
    pub object: Object,
    /// The whole message.
    pub message: Drbd9Message,
}

impl Event {
    /// Classifies one notification message (`seq` from its netlink header).
    ///
    /// # Errors
    /// [`DrbdError::Protocol`] for a message without a notification header, a command that is not a
    /// notification, or an object without a resource name.
    pub fn from_message(seq: u32, message: Drbd9Message) -> Result<Self, DrbdError> {
        let nh = message
            .attrs
            .iter()
            .find_map(|a| match a {
                Drbd9Attr::NotificationHeader(s) => s.iter().find_map(|f| match f {
                    NotificationHeader::NhType(t) => Some(*t),
                    _ => None,
                }),
                _ => None,
            })
            .ok_or_else(|| DrbdError::Protocol {
                context: "events2".into(),
                reason: format!("{:?} without a notification header", message.cmd),
            })?;
        let object = match message.cmd {
            Drbd9Cmd::ResourceState => Object::Resource(Resource::from_message(&message)?),
            Drbd9Cmd::DeviceState => Object::Device(Device::from_message(&message)?),
            Drbd9Cmd::ConnectionState => Object::Connection(Connection::from_message(&message)?),
            Drbd9Cmd::PeerDeviceState => Object::PeerDevice(PeerDevice::from_message(&message)?),
            Drbd9Cmd::PathState => Object::Path(Path::from_message(&message)?),
            Drbd9Cmd::InitialStateDone => Object::InitialStateDone,
            Drbd9Cmd::Helper => {
                let mut name = String::new();
                let mut status = 0;
                for a in &message.attrs {
                    if let Drbd9Attr::Helper(set) = a {
                        for f in set {
                            match f {
                                Helper::HelperName(n) => name = n.clone(),
                                Helper::HelperStatus(s) => status = *s,
                                _ => {}
                            }
                        }
                    }
                }
                Object::Helper { name, status }
            }
            other => {
                return Err(DrbdError::Protocol {
                    context: "events2".into(),
                    reason: format!("{other:?} is not a notification"),
                })
            }
        };
        Ok(Event {
            seq,
            notify: NotifyType::from_nh_type(nh),
            continues: nh & NOTIFY_CONTINUES != 0,
            object,
            message,
        })
    }
}

/// Stream of DRBD 9 [`Event`]s; undecodable messages and lost bursts (overrun) are `Err`
/// items: take a new snapshot ([`super::Drbd9Handle::initial_state`]) then.
pub struct EventStream9 {
    rx: UnboundedReceiver<(NetlinkMessage<RawGenl>, SocketAddr)>,
    family_id: u16,
    _task: TaskGuard,
    // The socket's handle must stay alive or the connection stops.
    _handle: netlink_proto::ConnectionHandle<RawGenl>,
}

impl std::fmt::Debug for EventStream9 {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EventStream9")
            .field("family_id", &self.family_id)
            .finish()
    }
}

impl EventStream9 {
    pub(crate) fn new(conn: Conn, family_id: u16) -> Self {
        Self {
            rx: conn.unsolicited,
            family_id,
            _task: conn.task,
            _handle: conn.handle,
        }
    }
}

impl Stream for EventStream9 {
    type Item = Result<Event, DrbdError>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let family_id = self.family_id;
        crate::event::poll_raw(&mut self.rx, family_id, cx).map(|item| {
            item.map(|r| {
                r.and_then(|(seq, raw)| decode_raw9(&raw).and_then(|m| Event::from_message(seq, m)))
            })
        })
    }
}
