//! Watching the floating address and its link through rtnetlink multicast groups
//! (`RTNLGRP_LINK`, `RTNLGRP_IPV4_IFADDR`, `RTNLGRP_IPV6_IFADDR`), like `ip monitor link address`.

use std::collections::VecDeque;
use std::net::IpAddr;
use std::pin::Pin;
use std::task::{Context, Poll};

use futures::channel::mpsc::UnboundedReceiver;
use futures::Stream;
use netlink_packet_core::{NetlinkMessage, NetlinkPayload};
use netlink_packet_route::RouteNetlinkMessage;
use rtnetlink::sys::SocketAddr;
use rtnetlink::MulticastGroup;

use crate::address::{link_by_index, message_address, LinkInfo};
use crate::error::VipError;

/// Something that happened to the floating address or its interface.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum VipEvent {
    /// The address disappeared from the interface (`RTM_DELADDR`), whoever removed it.
    Removed,
    /// The address appeared on the interface (`RTM_NEWADDR`), ours or someone else's doing.
    Added,
    /// The interface lost `IFF_UP` or carrier (`RTM_NEWLINK`), or was deleted (`RTM_DELLINK`).
    LinkDown,
    /// The interface is up with carrier again (`RTM_NEWLINK`).
    LinkUp,
}

/// Stream of [`VipEvent`]s for one address on one interface. Link events are reported on
/// transitions only. The stream ends if the netlink socket fails (e.g. the receive buffer
/// overran): create a new watch and check [`crate::Vip::is_held`] then.
#[derive(Debug)]
pub struct VipWatch {
    rx: UnboundedReceiver<(NetlinkMessage<RouteNetlinkMessage>, SocketAddr)>,
    conn: tokio::task::JoinHandle<()>,
    ifindex: u32,
    addr: IpAddr,
    link_up: bool,
    pending: VecDeque<VipEvent>,
}

impl Drop for VipWatch {
    fn drop(&mut self) {
        self.conn.abort();
    }
}

impl VipWatch {
    /// Joins the groups first, then reads the link state, so no transition is missed.
    pub(crate) async fn new(ifindex: u32, iface: &str, addr: IpAddr) -> Result<Self, VipError> {
        let groups = [
            MulticastGroup::Link,
            match addr {
                IpAddr::V4(_) => MulticastGroup::Ipv4Ifaddr,
                IpAddr::V6(_) => MulticastGroup::Ipv6Ifaddr,
            },
        ];
        let (conn, handle, rx) = rtnetlink::new_multicast_connection(&groups)
            .map_err(|e| VipError::io("ip monitor (netlink socket)", iface, e))?;
        let conn = tokio::spawn(conn);
        let mut w = VipWatch {
            rx,
            conn,
            ifindex,
            addr,
            link_up: false,
            pending: VecDeque::new(),
        };
        w.link_up = link_by_index(&handle, ifindex).await?.is_up();
        Ok(w)
    }

    fn handle(&mut self, msg: NetlinkMessage<RouteNetlinkMessage>) {
        let NetlinkPayload::InnerMessage(m) = msg.payload else {
            return;
        };
        match m {
            RouteNetlinkMessage::NewAddress(a)
                if a.header.index == self.ifindex && message_address(&a) == Some(self.addr) =>
            {
                self.pending.push_back(VipEvent::Added)
            }
            RouteNetlinkMessage::DelAddress(a)
                if a.header.index == self.ifindex && message_address(&a) == Some(self.addr) =>
            {
                self.pending.push_back(VipEvent::Removed)
            }
            RouteNetlinkMessage::NewLink(l) if l.header.index == self.ifindex => {
                let up = LinkInfo::from_message(&l).is_up();
                if up != self.link_up {
                    self.link_up = up;
                    self.pending.push_back(if up {
                        VipEvent::LinkUp
                    } else {
                        VipEvent::LinkDown
                    });
                }
            }
            RouteNetlinkMessage::DelLink(l) if l.header.index == self.ifindex && self.link_up => {
                self.link_up = false;
                self.pending.push_back(VipEvent::LinkDown);
            }
            _ => {}
        }
    }
}

impl Stream for VipWatch {
    type Item = VipEvent;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<VipEvent>> {
        loop {
            if let Some(e) = self.pending.pop_front() {
                return Poll::Ready(Some(e));
            }
            match Pin::new(&mut self.rx).poll_next(cx) {
                Poll::Ready(Some((msg, _))) => self.handle(msg),
                Poll::Ready(None) => return Poll::Ready(None),
                Poll::Pending => return Poll::Pending,
            }
        }
    }
}
