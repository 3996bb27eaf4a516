//! Typed views of DRBD 9's objects, read from a dump reply (GET_RESOURCES, GET_DEVICES,
//! GET_CONNECTIONS, GET_PEER_DEVICES, GET_PATHS) or an events2 notification: one object per
//! message, named by its CFG_CONTEXT (resource, volume, peer node id).

use super::message::Drbd9Message;
use super::sets::{
    CfgContext, ConnectionInfo, ConnectionStatistics, DeviceInfo, DeviceStatistics, Drbd9Attr,
    NetConf, PathInfo, PathParms, PeerDeviceInfo, PeerDeviceStatistics, ResourceInfo,
};
use super::state::{from_u32, ConnectionState, DiskState, ReplState};
use crate::error::DrbdError;
use crate::header::MINOR_NONE;
use crate::sockaddr::SockAddr;
use crate::state::Role;

/// Which object a message is about (its CFG_CONTEXT).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Context {
    /// Resource name.
    pub resource: String,
    /// Volume number (devices, peer devices).
    pub volume: Option<u32>,
    /// The peer's node id (connections, peer devices, paths).
    pub peer_node_id: Option<u32>,
    /// The connection's name (`new-peer --_name`, usually the peer's host name).
    pub conn_name: Option<String>,
    /// Local address of a path.
    pub my_addr: Option<SockAddr>,
    /// Peer address of a path.
    pub peer_addr: Option<SockAddr>,
}

impl Context {
    /// Reads the CFG_CONTEXT of `msg`; a message without a resource name is a protocol error.
    ///
    /// # Errors
    /// [`DrbdError::Protocol`] for a message without a resource name in its CFG_CONTEXT.
    pub fn from_message(msg: &Drbd9Message) -> Result<Self, DrbdError> {
        let mut c = Context::default();
        let mut named = false;
        for f in msg.cfg_context().into_iter().flatten() {
            match f {
                CfgContext::CtxResourceName(n) => {
                    c.resource = n.clone();
                    named = true;
                }
                CfgContext::CtxVolume(v) => c.volume = Some(*v),
                CfgContext::CtxPeerNodeId(v) => c.peer_node_id = Some(*v),
                CfgContext::CtxConnName(n) => c.conn_name = Some(n.clone()),
                CfgContext::CtxMyAddr(b) => c.my_addr = SockAddr::from_bytes(b).ok(),
                CfgContext::CtxPeerAddr(b) => c.peer_addr = SockAddr::from_bytes(b).ok(),
                _ => {}
            }
        }
        if !named {
            return Err(DrbdError::Protocol {
                context: format!("{:?}", msg.cmd),
                reason: "no resource name in CFG_CONTEXT".into(),
            });
        }
        Ok(c)
    }
}

/// The fields of the first set of kind `pick` in `msg`, if any.
fn set<'a, T: 'a>(
    msg: &'a Drbd9Message,
    pick: impl Fn(&'a Drbd9Attr) -> Option<&'a crate::AttrSet<T>>,
) -> impl Iterator<Item = &'a T> {
    msg.attrs.iter().find_map(pick).into_iter().flatten()
}

/// A resource: `drbdsetup status` first line, `events2` `resource` lines.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Resource {
    /// Name.
    pub name: String,
    /// Role of this node (`res_role`): Primary if any volume is.
    pub role: Role,
    /// I/O suspended by the user (`res_susp`).
    pub susp_user: bool,
    /// I/O suspended for lack of data (`res_susp_nod`).
    pub susp_no_data: bool,
    /// I/O suspended for fencing (`res_susp_fen`).
    pub susp_fencing: bool,
    /// I/O suspended for lack of quorum (`res_susp_quorum`).
    pub susp_quorum: bool,
    /// Failing I/O (`res_fail_io`, `on-no-quorum io-error`).
    pub fail_io: bool,
}

impl Resource {
    /// Reads a GET_RESOURCES part or a RESOURCE_STATE notification.
    ///
    /// # Errors
    /// [`DrbdError::Protocol`] for a message without a resource name in its CFG_CONTEXT.
    pub fn from_message(msg: &Drbd9Message) -> Result<Self, DrbdError> {
        let ctx = Context::from_message(msg)?;
        let mut r = Resource {
            name: ctx.resource,
            role: Role::Unknown,
            susp_user: false,
            susp_no_data: false,
            susp_fencing: false,
            susp_quorum: false,
            fail_io: false,
        };
        for f in set(msg, |a| match a {
            Drbd9Attr::ResourceInfo(s) => Some(s),
            _ => None,
        }) {
            match f {
                ResourceInfo::ResRole(v) => r.role = from_u32(*v),
                ResourceInfo::ResSusp(v) => r.susp_user = *v,
                ResourceInfo::ResSuspNod(v) => r.susp_no_data = *v,
                ResourceInfo::ResSuspFen(v) => r.susp_fencing = *v,
                ResourceInfo::ResSuspQuorum(v) => r.susp_quorum = *v,
                ResourceInfo::ResFailIo(v) => r.fail_io = *v,
                _ => {}
            }
        }
        Ok(r)
    }

    /// Whether any kind of I/O suspension is on.
    pub fn suspended(&self) -> bool {
        self.susp_user || self.susp_no_data || self.susp_fencing || self.susp_quorum
    }
}

/// A device (volume) of a resource.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Device {
    /// Resource name.
    pub resource: String,
    /// Volume number.
    pub volume: u32,
    /// Minor (`/dev/drbd<minor>`), from the DRBD header; `None` if the message has none.
    pub minor: Option<u32>,
    /// Local disk state.
    pub disk: DiskState,
    /// Whether the device has quorum (`dev_has_quorum`).
    pub quorum: bool,
    /// Whether the device is open (mounted, or held by a target).
    pub open: bool,
    /// Diskless on purpose (`--diskless` client).
    pub intentional_diskless: bool,
    /// Backing device path (`backing_dev_path`), if attached.
    pub backing_dev: Option<String>,
    /// Size in sectors (`dev_size`), if reported.
    pub size_sectors: Option<u64>,
    /// Current data generation UUID (`dev_current_uuid`), if reported.
    pub current_uuid: Option<u64>,
    /// Meta-data flags (`dev_disk_flags`, `MDF_*`), if reported.
    pub disk_flags: Option<u32>,
    /// Older data generations (`history_uuids`), newest first, unused (zero) slots dropped.
    pub history_uuids: Vec<u64>,
}

impl Device {
    /// Reads a GET_DEVICES part or a DEVICE_STATE notification.
    ///
    /// # Errors
    /// [`DrbdError::Protocol`] for a message without a resource name in its CFG_CONTEXT.
    pub fn from_message(msg: &Drbd9Message) -> Result<Self, DrbdError> {
        let ctx = Context::from_message(msg)?;
        let mut d = Device {
            resource: ctx.resource,
            volume: ctx.volume.unwrap_or(0),
            minor: (msg.header.minor != MINOR_NONE).then_some(msg.header.minor),
            disk: DiskState::Diskless,
            quorum: false,
            open: false,
            intentional_diskless: false,
            backing_dev: None,
            size_sectors: None,
            current_uuid: None,
            disk_flags: None,
            history_uuids: Vec::new(),
        };
        for f in set(msg, |a| match a {
            Drbd9Attr::DeviceInfo(s) => Some(s),
            _ => None,
        }) {
            match f {
                DeviceInfo::DevDiskState(v) => d.disk = from_u32(*v),
                DeviceInfo::DevHasQuorum(v) => d.quorum = *v,
                DeviceInfo::DevIsOpen(v) => d.open = *v,
                DeviceInfo::IsIntentionalDiskless(v) => d.intentional_diskless = *v,
                DeviceInfo::BackingDevPath(p) if !p.is_empty() => d.backing_dev = Some(p.clone()),
                _ => {}
            }
        }
        for f in set(msg, |a| match a {
            Drbd9Attr::DeviceStatistics(s) => Some(s),
            _ => None,
        }) {
            match f {
                DeviceStatistics::DevSize(v) => d.size_sectors = Some(*v),
                DeviceStatistics::DevCurrentUuid(v) => d.current_uuid = Some(*v),
                DeviceStatistics::DevDiskFlags(v) => d.disk_flags = Some(*v),
                DeviceStatistics::HistoryUuids(b) => d.history_uuids = history_uuids(b),
                _ => {}
            }
        }
        Ok(d)
    }
}

/// The `history_uuids` array (host-order u64s, one slot per possible peer): the non-zero slots
/// in order; a trailing partial slot is ignored.
fn history_uuids(bytes: &[u8]) -> Vec<u64> {
    bytes
        .chunks_exact(8)
        .filter_map(|c| <[u8; 8]>::try_from(c).ok().map(u64::from_ne_bytes))
        .filter(|u| *u != 0)
        .collect()
}

/// A connection to one peer node.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Connection {
    /// Resource name.
    pub resource: String,
    /// The peer's node id.
    pub peer_node_id: u32,
    /// The connection's name.
    pub name: Option<String>,
    /// Connection state.
    pub state: ConnectionState,
    /// The peer's role as seen on this connection.
    pub peer_role: Role,
    /// Send buffer congested (`conn_congested`).
    pub congested: bool,
    /// The connection's options (NET_CONF), present in GET_CONNECTIONS parts, not in events.
    pub net: Option<NetOptions>,
}

/// The `net_conf` options a failover decision depends on (DRBD 9 keeps fencing here, not in
/// `disk_conf`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct NetOptions {
    /// `ping-int`, seconds.
    pub ping_int_s: u32,
    /// `ping-timeout`, tenths of a second.
    pub ping_timeout_ds: u32,
    /// `timeout`, tenths of a second.
    pub timeout_ds: u32,
    /// `ko-count` (0 = off).
    pub ko_count: u32,
    /// `allow-two-primaries`.
    pub two_primaries: bool,
    /// `fencing` (`fencing_policy`): 0 dont-care, 1 resource-only, 2 resource-and-stonith.
    pub fencing: u32,
}

impl Connection {
    /// Reads a GET_CONNECTIONS part or a CONNECTION_STATE notification.
    ///
    /// # Errors
    /// [`DrbdError::Protocol`] for a message without a resource name in its CFG_CONTEXT.
    pub fn from_message(msg: &Drbd9Message) -> Result<Self, DrbdError> {
        let ctx = Context::from_message(msg)?;
        let mut c = Connection {
            resource: ctx.resource,
            peer_node_id: ctx.peer_node_id.unwrap_or(u32::MAX),
            name: ctx.conn_name,
            state: ConnectionState::StandAlone,
            peer_role: Role::Unknown,
            congested: false,
            net: None,
        };
        if let Some(set) = msg.attrs.iter().find_map(|a| match a {
            Drbd9Attr::NetConf(s) => Some(s),
            _ => None,
        }) {
            let mut n = NetOptions::default();
            for f in set {
                match f {
                    NetConf::PingInt(v) => n.ping_int_s = *v,
                    NetConf::PingTimeo(v) => n.ping_timeout_ds = *v,
                    NetConf::Timeout(v) => n.timeout_ds = *v,
                    NetConf::KoCount(v) => n.ko_count = *v,
                    NetConf::TwoPrimaries(v) => n.two_primaries = *v,
                    NetConf::FencingPolicy(v) => n.fencing = *v,
                    _ => {}
                }
            }
            c.net = Some(n);
        }
        for f in set(msg, |a| match a {
            Drbd9Attr::ConnectionInfo(s) => Some(s),
            _ => None,
        }) {
            match f {
                ConnectionInfo::ConnConnectionState(v) => c.state = from_u32(*v),
                ConnectionInfo::ConnRole(v) => c.peer_role = from_u32(*v),
                _ => {}
            }
        }
        for f in set(msg, |a| match a {
            Drbd9Attr::ConnectionStatistics(s) => Some(s),
            _ => None,
        }) {
            if let ConnectionStatistics::ConnCongested(v) = f {
                c.congested = *v;
            }
        }
        Ok(c)
    }
}

/// A volume as seen through one connection.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct PeerDevice {
    /// Resource name.
    pub resource: String,
    /// The peer's node id.
    pub peer_node_id: u32,
    /// The connection's name.
    pub conn_name: Option<String>,
    /// Volume number.
    pub volume: u32,
    /// Replication state.
    pub replication: ReplState,
    /// The peer's disk state.
    pub peer_disk: DiskState,
    /// Resync suspended by the user, the peer or a dependency.
    pub resync_suspended: bool,
    /// Sectors out of sync (`peer_dev_out_of_sync`), if reported.
    pub out_of_sync_sectors: Option<u64>,
    /// The bitmap UUID kept for this peer (`peer_dev_bitmap_uuid`): the data generation current
    /// when tracking of changes for it began, 0 while in sync; if reported.
    pub bitmap_uuid: Option<u64>,
    /// The peer's UUID flags (`peer_dev_uuid_flags`, `UUID_FLAG_*`), if reported.
    pub uuid_flags: Option<u64>,
}

impl PeerDevice {
    /// Reads a GET_PEER_DEVICES part or a PEER_DEVICE_STATE notification.
    ///
    /// # Errors
    /// [`DrbdError::Protocol`] for a message without a resource name in its CFG_CONTEXT.
    pub fn from_message(msg: &Drbd9Message) -> Result<Self, DrbdError> {
        let ctx = Context::from_message(msg)?;
        let mut p = PeerDevice {
            resource: ctx.resource,
            peer_node_id: ctx.peer_node_id.unwrap_or(u32::MAX),
            conn_name: ctx.conn_name,
            volume: ctx.volume.unwrap_or(0),
            replication: ReplState::Off,
            peer_disk: DiskState::DUnknown,
            resync_suspended: false,
            out_of_sync_sectors: None,
            bitmap_uuid: None,
            uuid_flags: None,
        };
        for f in set(msg, |a| match a {
            Drbd9Attr::PeerDeviceInfo(s) => Some(s),
            _ => None,
        }) {
            match f {
                PeerDeviceInfo::PeerReplState(v) => p.replication = from_u32(*v),
                PeerDeviceInfo::PeerDiskState(v) => p.peer_disk = from_u32(*v),
                PeerDeviceInfo::PeerResyncSuspUser(v)
                | PeerDeviceInfo::PeerResyncSuspPeer(v)
                | PeerDeviceInfo::PeerResyncSuspDependency(v) => {
                    p.resync_suspended |= *v != 0;
                }
                _ => {}
            }
        }
        for f in set(msg, |a| match a {
            Drbd9Attr::PeerDeviceStatistics(s) => Some(s),
            _ => None,
        }) {
            match f {
                PeerDeviceStatistics::PeerDevOutOfSync(v) => p.out_of_sync_sectors = Some(*v),
                PeerDeviceStatistics::PeerDevBitmapUuid(v) => p.bitmap_uuid = Some(*v),
                PeerDeviceStatistics::PeerDevUuidFlags(v) => p.uuid_flags = Some(*v),
                _ => {}
            }
        }
        Ok(p)
    }
}

/// A network path of a connection (DRBD 9 can have several per peer).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Path {
    /// Resource name.
    pub resource: String,
    /// The peer's node id.
    pub peer_node_id: u32,
    /// Local address.
    pub local: Option<SockAddr>,
    /// Peer address.
    pub peer: Option<SockAddr>,
    /// Whether this path carries the connection now (`path_established`).
    pub established: bool,
}

impl Path {
    /// Reads a GET_PATHS part or a PATH_STATE notification (addresses from CFG_CONTEXT or
    /// PATH_PARMS, whichever the message has).
    ///
    /// # Errors
    /// [`DrbdError::Protocol`] for a message without a resource name in its CFG_CONTEXT.
    pub fn from_message(msg: &Drbd9Message) -> Result<Self, DrbdError> {
        let ctx = Context::from_message(msg)?;
        let mut p = Path {
            resource: ctx.resource,
            peer_node_id: ctx.peer_node_id.unwrap_or(u32::MAX),
            local: ctx.my_addr,
            peer: ctx.peer_addr,
            established: false,
        };
        for f in set(msg, |a| match a {
            Drbd9Attr::PathParms(s) => Some(s),
            _ => None,
        }) {
            match f {
                PathParms::MyAddr(b) => p.local = SockAddr::from_bytes(b).ok().or(p.local.take()),
                PathParms::PeerAddr(b) => p.peer = SockAddr::from_bytes(b).ok().or(p.peer.take()),
                _ => {}
            }
        }
        for f in set(msg, |a| match a {
            Drbd9Attr::PathInfo(s) => Some(s),
            _ => None,
        }) {
            if let PathInfo::PathEstablished(v) = f {
                p.established = *v;
            }
        }
        Ok(p)
    }
}
