//! Link lookup and address add/del/list through rtnetlink (we call rtnetlink; we do not
//! re-encode it).

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use futures::TryStreamExt;
use netlink_packet_route::address::{AddressAttribute, AddressFlags, AddressMessage};
use netlink_packet_route::link::{LinkAttribute, LinkFlags, LinkLayerType, LinkMessage};
use netlink_packet_route::AddressFamily;
use rtnetlink::{AddressMessageBuilder, Handle};

use crate::error::{netlink_errno, VipError};
use crate::packet::MacAddr;

/// What vip needs to know about an interface.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LinkInfo {
    /// Interface index.
    pub index: u32,
    /// Interface name.
    pub name: String,
    /// Hardware address, when the link is Ethernet (`ARPHRD_ETHER`, which includes veth,
    /// bridges, bonds, VLANs, macvlan; not loopback, tun or InfiniBand).
    pub mac: Option<MacAddr>,
    /// `IFF_UP`: administratively up.
    pub admin_up: bool,
    /// `IFF_LOWER_UP`: carrier.
    pub carrier: bool,
}

impl LinkInfo {
    /// Up in the sense vip cares about: administratively up and with carrier.
    pub fn is_up(&self) -> bool {
        self.admin_up && self.carrier
    }

    pub(crate) fn from_message(msg: &LinkMessage) -> LinkInfo {
        let mut name = String::new();
        let mut mac = None;
        for a in &msg.attributes {
            match a {
                LinkAttribute::IfName(n) => name.clone_from(n),
                LinkAttribute::Address(b) if msg.header.link_layer_type == LinkLayerType::Ether => {
                    mac = MacAddr::from_slice(b)
                }
                _ => {}
            }
        }
        LinkInfo {
            index: msg.header.index,
            name,
            mac,
            admin_up: msg.header.flags.contains(LinkFlags::Up),
            carrier: msg.header.flags.contains(LinkFlags::LowerUp),
        }
    }
}

/// Looks an interface up by name (equivalent to `ip link show dev NAME`).
pub(crate) async fn link_by_name(handle: &Handle, name: &str) -> Result<LinkInfo, VipError> {
    let mut s = handle.link().get().match_name(name).execute();
    match s.try_next().await {
        Ok(Some(m)) => Ok(LinkInfo::from_message(&m)),
        Ok(None) => Err(VipError::UnknownInterface {
            iface: name.to_string(),
        }),
        Err(e) => Err(VipError::netlink("ip link show", name, e)),
    }
}

/// Looks an interface up by index (equivalent to `ip link show` filtered on the index).
pub(crate) async fn link_by_index(handle: &Handle, index: u32) -> Result<LinkInfo, VipError> {
    let iface = format!("#{index}");
    let mut s = handle.link().get().match_index(index).execute();
    match s.try_next().await {
        Ok(Some(m)) => Ok(LinkInfo::from_message(&m)),
        Ok(None) => Err(VipError::UnknownInterface { iface }),
        Err(e) => Err(VipError::netlink("ip link show", &iface, e)),
    }
}

/// The local address carried by an `RTM_NEWADDR`/`RTM_DELADDR` message (`IFA_LOCAL` for
/// IPv4, where `IFA_ADDRESS` is the peer on point-to-point links; `IFA_ADDRESS` for IPv6).
pub(crate) fn message_address(msg: &AddressMessage) -> Option<IpAddr> {
    let mut address = None;
    for a in &msg.attributes {
        match a {
            AddressAttribute::Local(ip) => return Some(*ip),
            AddressAttribute::Address(ip) => address = Some(*ip),
            _ => {}
        }
    }
    address
}

/// Interfaces holding `addr`, as (ifindex, prefix length) pairs (equivalent to
/// `ip -4|-6 addr show to ADDR`).
pub(crate) async fn find_address(
    handle: &Handle,
    addr: IpAddr,
) -> Result<Vec<(u32, u8)>, VipError> {
    let mut req = handle.address().get();
    req.message_mut().header.family = match addr {
        IpAddr::V4(_) => AddressFamily::Inet,
        IpAddr::V6(_) => AddressFamily::Inet6,
    };
    let mut s = req.execute();
    let mut found = Vec::new();
    loop {
        match s.try_next().await {
            Ok(Some(m)) => {
                if message_address(&m) == Some(addr) {
                    found.push((m.header.index, m.header.prefix_len));
                }
            }
            Ok(None) => return Ok(found),
            Err(e) => return Err(VipError::netlink("ip addr show", "", e)),
        }
    }
}

fn message(index: u32, addr: IpAddr, prefix: u8) -> AddressMessage {
    match addr {
        IpAddr::V4(a) => AddressMessageBuilder::<Ipv4Addr>::new()
            .index(index)
            .address(a, prefix)
            .build(),
        IpAddr::V6(a) => AddressMessageBuilder::<Ipv6Addr>::new()
            .index(index)
            .address(a, prefix)
            .build(),
    }
}

/// Adds the address (equivalent to `ip addr add ADDR/PREFIX dev IF [nodad]`); IPv6 addresses get
/// `IFA_F_NODAD` so they are usable at once (the probe, when enabled, did the DAD already).
/// Returns `false` if the kernel already had it (`EEXIST`).
pub(crate) async fn add_address(
    handle: &Handle,
    link: &LinkInfo,
    addr: IpAddr,
    prefix: u8,
) -> Result<bool, VipError> {
    let mut req = handle.address().add(link.index, addr, prefix);
    if addr.is_ipv6() {
        req.message_mut()
            .attributes
            .push(AddressAttribute::Flags(AddressFlags::Nodad));
    }
    match req.execute().await {
        Ok(()) => Ok(true),
        Err(e) if netlink_errno(&e) == Some(libc::EEXIST) => Ok(false),
        Err(e) => Err(VipError::netlink("ip addr add", &link.name, e)),
    }
}

/// Deletes the address (equivalent to `ip addr del ADDR/PREFIX dev IF`). Returns `false` if it
/// was not there (`EADDRNOTAVAIL`/`ENOENT`/`ENODEV`): release is idempotent.
pub(crate) async fn del_address(
    handle: &Handle,
    index: u32,
    iface: &str,
    addr: IpAddr,
    prefix: u8,
) -> Result<bool, VipError> {
    match handle
        .address()
        .del(message(index, addr, prefix))
        .execute()
        .await
    {
        Ok(()) => Ok(true),
        Err(e)
            if matches!(
                netlink_errno(&e),
                Some(libc::EADDRNOTAVAIL) | Some(libc::ENOENT) | Some(libc::ENODEV)
            ) =>
        {
            Ok(false)
        }
        Err(e) => Err(VipError::netlink("ip addr del", iface, e)),
    }
}
