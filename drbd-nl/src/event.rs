//! The `events` multicast group as a `Stream` of typed events.

use std::pin::Pin;
use std::task::{Context, Poll};

use futures::channel::mpsc::UnboundedReceiver;
use futures::Stream;
use netlink_packet_core::{NetlinkMessage, NetlinkPayload};
use netlink_proto::sys::SocketAddr;

use crate::codec::decode_raw;
use crate::connection::{Conn, RawGenl, TaskGuard};
use crate::error::DrbdError;
use crate::message::{DrbdCmd, DrbdMessage};
use crate::status::DeviceStatus;

/// One broadcast from the DRBD module.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum DrbdEvent {
    /// `DRBD_EVENT` (cmd 1) with STATE_INFO: a device's state changed, a helper
    /// ran, or resync progressed (see [`DeviceStatus::reason`]).
    Device {
        /// The kernel's broadcast sequence number (what drbdsetup prints first).
        seq: u32,
        /// The typed status carried by the event.
        status: Box<DeviceStatus>,
        /// The whole message (every attribute set).
        message: DrbdMessage,
    },
    /// `DRBD_EVENT` without STATE_INFO (a resource without volumes).
    Resource {
        /// Sequence number.
        seq: u32,
        /// Resource name.
        name: Option<String>,
        /// The whole message.
        message: DrbdMessage,
    },
    /// An events2 notification (cmd 34-41) on the same group: resource,
    /// device, connection, peer-device state, helper.
    Notification {
        /// Sequence number (the events2 counter).
        seq: u32,
        /// The message.
        message: DrbdMessage,
    },
}

/// Stream of [`DrbdEvent`]s; undecodable messages are `Err` items, a lost
/// burst (`ENOBUFS`/overrun) is an `Err` item too: take a new snapshot then.
pub struct EventStream {
    rx: UnboundedReceiver<(NetlinkMessage<RawGenl>, SocketAddr)>,
    family_id: u16,
    _task: TaskGuard,
    // The socket's handle must stay alive or the connection stops.
    _handle: netlink_proto::ConnectionHandle<RawGenl>,
}

impl std::fmt::Debug for EventStream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EventStream")
            .field("family_id", &self.family_id)
            .finish()
    }
}

impl EventStream {
    pub(crate) fn new(conn: Conn, family_id: u16) -> Self {
        Self {
            rx: conn.unsolicited,
            family_id,
            _task: conn.task,
            _handle: conn.handle,
        }
    }
}

impl DrbdEvent {
    /// The typed event of one decoded broadcast with sequence number `seq`.
    ///
    /// # Errors
    /// [`DrbdError::Protocol`] when a state broadcast cannot be read as a device status
    /// (see [`DeviceStatus::from_message`]).
    pub fn from_message(seq: u32, message: DrbdMessage) -> Result<Self, DrbdError> {
        Ok(match message.cmd {
            DrbdCmd::Event if message.state_info().is_some() => Self::Device {
                seq,
                status: Box::new(DeviceStatus::from_message(&message)?),
                message,
            },
            DrbdCmd::Event => Self::Resource {
                seq,
                name: message.resource_name().map(str::to_string),
                message,
            },
            _ => Self::Notification { seq, message },
        })
    }
}

impl Stream for EventStream {
    type Item = Result<DrbdEvent, DrbdError>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let family_id = self.family_id;
        poll_raw(&mut self.rx, family_id, cx).map(|item| {
            item.map(|r| {
                r.and_then(|(seq, raw)| {
                    decode_raw(&raw).and_then(|m| DrbdEvent::from_message(seq, m))
                })
            })
        })
    }
}

/// The next broadcast of family `family_id` on `rx` as (sequence number,
/// payload); other families' messages are skipped, an overrun is an error.
pub(crate) fn poll_raw(
    rx: &mut UnboundedReceiver<(NetlinkMessage<RawGenl>, SocketAddr)>,
    family_id: u16,
    cx: &mut Context<'_>,
) -> Poll<Option<Result<(u32, RawGenl), DrbdError>>> {
    loop {
        let (msg, _addr) = match Pin::new(&mut *rx).poll_next(cx) {
            Poll::Ready(Some(m)) => m,
            Poll::Ready(None) => return Poll::Ready(None),
            Poll::Pending => return Poll::Pending,
        };
        let seq = msg.header.sequence_number;
        match msg.payload {
            NetlinkPayload::InnerMessage(raw) if raw.message_type == family_id => {
                return Poll::Ready(Some(Ok((seq, raw))));
            }
            NetlinkPayload::Overrun(_) => {
                return Poll::Ready(Some(Err(DrbdError::Protocol {
                    context: "events".into(),
                    reason: "netlink overrun: events lost, take a new snapshot".into(),
                })))
            }
            _ => continue,
        }
    }
}
