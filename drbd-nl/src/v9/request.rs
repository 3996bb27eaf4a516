//! DRBD 9 requests as values ([`Request`]`<Drbd9Message>`): the role changes ([`Primary9`], [`Secondary9`]) and the
//! configuration requests ([`Request9`]: what `drbdadm up` sends — new-resource with the node
//! id, new-minor, new-peer, new-path, attach, connect — plus new-current-uuid and down). Each
//! emits what drbd-utils 9.22's `drbdsetup` sends (captured: `tests/data/cap9_*_request.bin`)
//! and is sent with [`Drbd9Handle::execute`](super::Drbd9Handle::execute), the only sender.

use std::net::SocketAddr;

use super::message::{Drbd9Cmd, Drbd9Message};
use super::sets::{
    CfgContext, DiskConf, Drbd9Attr, NetConf, NewCUuidParms, PathParms, ResourceOpts, SetRoleParms,
};
use crate::header::MINOR_NONE;
use crate::request::private::Sealed;
use crate::request::Request;
use crate::sockaddr::SockAddr;
use crate::AttrSet;

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

/// `drbdsetup primary RESOURCE [--force]` (DRBD 9 roles are per resource). A peer that is
/// Primary makes the kernel refuse it with `SS_TWO_PRIMARIES` (unless `allow-two-primaries`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Primary9 {
    resource: String,
    force: bool,
}

impl Primary9 {
    /// `primary RESOURCE`.
    pub fn new(resource: impl Into<String>) -> Self {
        Self {
            resource: resource.into(),
            force: false,
        }
    }

    /// `--force`: promote even without up-to-date data (SET_ROLE_PARMS `force`).
    pub fn force(mut self, force: bool) -> Self {
        self.force = force;
        self
    }
}

impl Sealed for Primary9 {}

impl Request<Drbd9Message> for Primary9 {
    type Output = ();

    /// SET_ROLE_PARMS only with `--force`, as drbdsetup 9 sends it.
    fn message(&self) -> Drbd9Message {
        let mut attrs = vec![resource_context(&self.resource)];
        if self.force {
            attrs.push(Drbd9Attr::SetRoleParms(AttrSet::new(vec![
                SetRoleParms::Force(true),
            ])));
        }
        Drbd9Message::new(Drbd9Cmd::Primary, MINOR_NONE, attrs)
    }

    fn command_line(&self) -> String {
        let force = if self.force { " --force" } else { "" };
        format!("primary {}{force}", self.resource)
    }
}

/// `drbdsetup secondary RESOURCE` (refused with `SS_DEVICE_IN_USE` while the device is open).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Secondary9 {
    resource: String,
}

impl Secondary9 {
    /// `secondary RESOURCE`.
    pub fn new(resource: impl Into<String>) -> Self {
        Self {
            resource: resource.into(),
        }
    }
}

impl Sealed for Secondary9 {}

impl Request<Drbd9Message> for Secondary9 {
    type Output = ();

    fn message(&self) -> Drbd9Message {
        Drbd9Message::new(
            Drbd9Cmd::Secondary,
            MINOR_NONE,
            vec![resource_context(&self.resource)],
        )
    }

    fn command_line(&self) -> String {
        format!("secondary {}", self.resource)
    }
}

/// `wire_protocol` 3: protocol C (a write completes when both disks have it).
const PROTOCOL_C: u32 = 3;

/// The `wire_protocol` number of protocol `A` (1), `B` (2) or `C` (3, also for anything else).
pub fn wire_protocol(p: char) -> u32 {
    match p.to_ascii_uppercase() {
        'A' => 1,
        'B' => 2,
        _ => PROTOCOL_C,
    }
}
/// `meta_dev_idx` of `internal` meta-data.
const META_DEV_IDX_INTERNAL: i32 = -3;

fn peer_context(resource: &str, peer_node_id: u32) -> Drbd9Attr {
    Drbd9Attr::CfgContext(AttrSet::new(vec![
        CfgContext::CtxResourceName(resource.to_string()),
        CfgContext::CtxPeerNodeId(peer_node_id),
    ]))
}

/// One configuration request: the message and the drbdsetup command line it stands for (read
/// both through [`Request`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request9 {
    message: Drbd9Message,
    context: String,
}

impl Sealed for Request9 {}

impl Request<Drbd9Message> for Request9 {
    type Output = ();

    fn message(&self) -> Drbd9Message {
        self.message.clone()
    }

    fn command_line(&self) -> String {
        self.context.clone()
    }
}

impl Request9 {
    /// `drbdsetup new-resource RESOURCE NODE_ID`.
    pub fn new_resource(resource: &str, node_id: u32) -> Self {
        Self {
            message: Drbd9Message::new(
                Drbd9Cmd::NewResource,
                MINOR_NONE,
                vec![
                    resource_context(resource),
                    Drbd9Attr::ResourceOpts(AttrSet::new(vec![ResourceOpts::NodeId(node_id)])),
                ],
            ),
            context: format!("new-resource {resource} {node_id}"),
        }
    }

    /// `drbdsetup new-minor RESOURCE MINOR VOLUME`.
    pub fn new_minor(resource: &str, minor: u32, volume: u32) -> Self {
        Self {
            message: Drbd9Message::new(
                Drbd9Cmd::NewMinor,
                minor,
                vec![Drbd9Attr::CfgContext(AttrSet::new(vec![
                    CfgContext::CtxResourceName(resource.to_string()),
                    CfgContext::CtxVolume(volume),
                ]))],
            ),
            context: format!("new-minor {resource} {minor} {volume}"),
        }
    }

    /// `drbdsetup new-peer RESOURCE PEER_ID --_name=NAME --protocol=C [--connect-int=S]`.
    pub fn new_peer(
        resource: &str,
        peer_node_id: u32,
        name: &str,
        connect_int_s: Option<u32>,
    ) -> Self {
        Self::new_peer_with(
            resource,
            peer_node_id,
            name,
            PROTOCOL_C,
            connect_int_s.map(NetConf::ConnectInt),
        )
    }

    /// `drbdsetup new-peer RESOURCE PEER_ID --_name=NAME --protocol=P [net options]`: the
    /// connection's `net_conf` (in DRBD 9 also `fencing`), options sent in the order given, as
    /// drbdsetup sends them in command-line order. `wire_protocol` as [`wire_protocol`] gives it.
    pub fn new_peer_with(
        resource: &str,
        peer_node_id: u32,
        name: &str,
        wire_protocol: u32,
        options: impl IntoIterator<Item = NetConf>,
    ) -> Self {
        let mut net = vec![
            NetConf::Name(name.to_string()),
            NetConf::WireProtocol(wire_protocol),
        ];
        net.extend(options);
        Self {
            message: Drbd9Message::new(
                Drbd9Cmd::NewPeer,
                MINOR_NONE,
                vec![
                    peer_context(resource, peer_node_id),
                    Drbd9Attr::NetConf(AttrSet::new(net)),
                ],
            ),
            context: format!("new-peer {resource} {peer_node_id} --_name={name}"),
        }
    }

    /// `drbdsetup new-path RESOURCE PEER_ID ipv4:LOCAL ipv4:PEER`.
    pub fn new_path(
        resource: &str,
        peer_node_id: u32,
        local: SocketAddr,
        peer: SocketAddr,
    ) -> Self {
        Self {
            message: Drbd9Message::new(
                Drbd9Cmd::NewPath,
                MINOR_NONE,
                vec![
                    peer_context(resource, peer_node_id),
                    Drbd9Attr::PathParms(AttrSet::new(vec![
                        PathParms::MyAddr(SockAddr(local).to_bytes()),
                        PathParms::PeerAddr(SockAddr(peer).to_bytes()),
                    ])),
                ],
            ),
            context: format!("new-path {resource} {peer_node_id} {local} {peer}"),
        }
    }

    /// `drbdsetup attach MINOR DISK DISK internal`.
    pub fn attach(minor: u32, disk: &str) -> Self {
        Self {
            message: Drbd9Message::new(
                Drbd9Cmd::Attach,
                minor,
                vec![Drbd9Attr::DiskConf(AttrSet::new(vec![
                    DiskConf::BackingDev(disk.to_string()),
                    DiskConf::MetaDev(disk.to_string()),
                    DiskConf::MetaDevIdx(META_DEV_IDX_INTERNAL),
                ]))],
            ),
            context: format!("attach {minor} {disk} {disk} internal"),
        }
    }

    /// `drbdsetup connect RESOURCE PEER_ID`.
    pub fn connect(resource: &str, peer_node_id: u32) -> Self {
        Self {
            message: Drbd9Message::new(
                Drbd9Cmd::Connect,
                MINOR_NONE,
                vec![peer_context(resource, peer_node_id)],
            ),
            context: format!("connect {resource} {peer_node_id}"),
        }
    }

    /// `drbdsetup new-current-uuid [--clear-bitmap] MINOR` (`--clear-bitmap` on a fresh
    /// connected pair skips the initial sync).
    pub fn new_current_uuid(minor: u32, clear_bitmap: bool) -> Self {
        let attrs = if clear_bitmap {
            vec![Drbd9Attr::NewCUuidParms(AttrSet::new(vec![
                NewCUuidParms::ClearBm(true),
            ]))]
        } else {
            Vec::new()
        };
        Self {
            message: Drbd9Message::new(Drbd9Cmd::NewCUuid, minor, attrs),
            context: format!("new-current-uuid {minor}"),
        }
    }

    /// `drbdsetup down RESOURCE`: disconnect, detach, delete every minor and the resource.
    pub fn down(resource: &str) -> Self {
        Self {
            message: Drbd9Message::new(
                Drbd9Cmd::Down,
                MINOR_NONE,
                vec![resource_context(resource)],
            ),
            context: format!("down {resource}"),
        }
    }
}
