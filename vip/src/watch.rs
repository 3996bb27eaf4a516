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
use crate::packet::MacAddr;

/// Something that happened to the floating address or its interface.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum VipEvent {
    /// The address disappeared from the interface (`RTM_DELADDR`), whoever removed it.
    Removed,
    /// The address appeared on the interface, or its flags changed (`RTM_NEWADDR`), ours or
    /// someone else's doing.
    Added,
    /// The interface lost `IFF_UP` or carrier (`RTM_NEWLINK`), or was deleted (`RTM_DELLINK`).
    LinkDown,
    /// The interface is up with carrier again (`RTM_NEWLINK`).
    LinkUp,
    /// The interface's hardware address changed (`RTM_NEWLINK` with a new `IFLA_ADDRESS`: a
    /// bond's active slave changed with `fail_over_mac`, a bond re-enslaved, `ip link set dev
    /// IF address`): neighbours must be told the new one. Reported on changes only.
    MacChanged {
        /// The new hardware address.
        mac: MacAddr,
    },
    /// The netlink receive buffer overflowed (`ENOBUFS`): events were lost. Check the state
    /// again ([`crate::Vip::is_held`]); the watch itself goes on.
    Overrun,
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
    link: LinkSeen,
    pending: VecDeque<VipEvent>,
}

/// The last known state of the watched link, so link events come on transitions only.
#[derive(Debug, Clone, Copy, Default)]
struct LinkSeen {
    up: bool,
    mac: Option<MacAddr>,
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
            link: LinkSeen::default(),
            pending: VecDeque::new(),
        };
        let l = link_by_index(&handle, ifindex).await?;
        w.link = LinkSeen {
            up: l.is_up(),
            mac: l.mac,
        };
        Ok(w)
    }

    /// Whether the link was up (admin up and carrier) at the last event or at the start.
    pub fn link_up(&self) -> bool {
        self.link.up
    }

    /// The link's hardware address at the last event or at the start.
    pub fn mac(&self) -> Option<MacAddr> {
        self.link.mac
    }

    fn handle(&mut self, msg: NetlinkMessage<RouteNetlinkMessage>) {
        let events = events_for(msg.payload, self.ifindex, self.addr, &mut self.link);
        self.pending.extend(events);
    }
}

/// The events a multicast message means for `addr` on `ifindex`; `link` is the last known
/// link state, updated here, so link events come on transitions only.
fn events_for(
    payload: NetlinkPayload<RouteNetlinkMessage>,
    ifindex: u32,
    addr: IpAddr,
    link: &mut LinkSeen,
) -> Vec<VipEvent> {
    let m = match payload {
        NetlinkPayload::InnerMessage(m) => m,
        NetlinkPayload::Overrun(_) => return vec![VipEvent::Overrun],
        _ => return Vec::new(),
    };
    match m {
        RouteNetlinkMessage::NewAddress(a)
            if a.header.index == ifindex && message_address(&a) == Some(addr) =>
        {
            vec![VipEvent::Added]
        }
        RouteNetlinkMessage::DelAddress(a)
            if a.header.index == ifindex && message_address(&a) == Some(addr) =>
        {
            vec![VipEvent::Removed]
        }
        RouteNetlinkMessage::NewLink(l) if l.header.index == ifindex => {
            let info = LinkInfo::from_message(&l);
            let mut out = Vec::new();
            // A new MAC first: a LinkUp reader then announces with the right one either way.
            if let Some(mac) = info.mac.filter(|m| link.mac != Some(*m)) {
                link.mac = Some(mac);
                out.push(VipEvent::MacChanged { mac });
            }
            if info.is_up() != link.up {
                link.up = info.is_up();
                out.push(if link.up {
                    VipEvent::LinkUp
                } else {
                    VipEvent::LinkDown
                });
            }
            out
        }
        RouteNetlinkMessage::DelLink(l) if l.header.index == ifindex && link.up => {
            link.up = false;
            vec![VipEvent::LinkDown]
        }
        _ => Vec::new(),
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

#[cfg(test)]
mod tests {
    use super::*;
    use netlink_packet_route::link::{LinkFlags, LinkMessage};
    use rtnetlink::AddressMessageBuilder;
    use std::net::Ipv4Addr;

    fn addr_msg(index: u32, a: Ipv4Addr) -> netlink_packet_route::address::AddressMessage {
        AddressMessageBuilder::<Ipv4Addr>::new()
            .index(index)
            .address(a, 24)
            .build()
    }

    fn link_msg(index: u32, flags: LinkFlags) -> LinkMessage {
        let mut l = LinkMessage::default();
        l.header.index = index;
        l.header.flags = flags;
        l
    }

    #[test]
    fn events() {
        let vip = Ipv4Addr::new(10, 0, 0, 9);
        let ip = IpAddr::V4(vip);
        let mut up = LinkSeen {
            up: true,
            mac: None,
        };
        let inner = NetlinkPayload::InnerMessage;
        let ev = |p, up: &mut LinkSeen| events_for(p, 3, ip, up).first().copied();
        assert_eq!(
            ev(
                inner(RouteNetlinkMessage::DelAddress(addr_msg(3, vip))),
                &mut up
            ),
            Some(VipEvent::Removed)
        );
        assert_eq!(
            ev(
                inner(RouteNetlinkMessage::NewAddress(addr_msg(3, vip))),
                &mut up
            ),
            Some(VipEvent::Added)
        );
        // Other interface, other address: nothing.
        assert_eq!(
            ev(
                inner(RouteNetlinkMessage::DelAddress(addr_msg(4, vip))),
                &mut up
            ),
            None
        );
        let other = Ipv4Addr::new(10, 0, 0, 8);
        assert_eq!(
            ev(
                inner(RouteNetlinkMessage::DelAddress(addr_msg(3, other))),
                &mut up
            ),
            None
        );
        // Link: transitions only; no carrier counts as down.
        let full = LinkFlags::Up | LinkFlags::LowerUp;
        assert_eq!(
            ev(
                inner(RouteNetlinkMessage::NewLink(link_msg(3, full))),
                &mut up
            ),
            None
        );
        assert_eq!(
            ev(
                inner(RouteNetlinkMessage::NewLink(link_msg(3, LinkFlags::Up))),
                &mut up
            ),
            Some(VipEvent::LinkDown)
        );
        assert_eq!(
            ev(
                inner(RouteNetlinkMessage::NewLink(link_msg(3, LinkFlags::Up))),
                &mut up
            ),
            None
        );
        assert_eq!(
            ev(
                inner(RouteNetlinkMessage::NewLink(link_msg(3, full))),
                &mut up
            ),
            Some(VipEvent::LinkUp)
        );
        assert_eq!(
            ev(
                inner(RouteNetlinkMessage::DelLink(link_msg(3, full))),
                &mut up
            ),
            Some(VipEvent::LinkDown)
        );
        assert_eq!(
            ev(NetlinkPayload::Overrun(Vec::new()), &mut up),
            Some(VipEvent::Overrun)
        );
    }

    #[test]
    fn mac_changes() {
        use netlink_packet_route::link::{LinkAttribute, LinkLayerType};
        let ip = IpAddr::V4(Ipv4Addr::new(10, 0, 0, 9));
        let with_mac = |flags, last: u8| {
            let mut l = link_msg(3, flags);
            l.header.link_layer_type = LinkLayerType::Ether;
            l.attributes
                .push(LinkAttribute::Address(vec![2, 0, 0, 0, 0, last]));
            NetlinkPayload::InnerMessage(RouteNetlinkMessage::NewLink(l))
        };
        let full = LinkFlags::Up | LinkFlags::LowerUp;
        let mut seen = LinkSeen {
            up: true,
            mac: Some(MacAddr([2, 0, 0, 0, 0, 1])),
        };
        assert!(events_for(with_mac(full, 1), 3, ip, &mut seen).is_empty());
        let mac = MacAddr([2, 0, 0, 0, 0, 2]);
        assert_eq!(
            events_for(with_mac(full, 2), 3, ip, &mut seen),
            [VipEvent::MacChanged { mac }]
        );
        // Changed while down (a bond re-enslaved): the new MAC, then the link coming back.
        assert_eq!(
            events_for(with_mac(LinkFlags::Up, 2), 3, ip, &mut seen),
            [VipEvent::LinkDown]
        );
        let mac = MacAddr([2, 0, 0, 0, 0, 3]);
        assert_eq!(
            events_for(with_mac(full, 3), 3, ip, &mut seen),
            [VipEvent::MacChanged { mac }, VipEvent::LinkUp]
        );
    }
}
