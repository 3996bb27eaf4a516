//! DRBD 9 configuration requests, one builder per drbdsetup verb: what `drbdadm up` sends
//! (new-resource with the node id, new-minor, new-peer, new-path, attach, connect), plus
//! new-current-uuid and down. Each emits what drbd-utils 9.22's `drbdsetup` sends (captured:
//! `tests/data/cap9_*_request.bin`) and is sent with [`Drbd9Handle::execute_doit`].

use std::net::SocketAddr;

use super::handle::{resource_context, Drbd9Handle};
use super::message::{Drbd9Cmd, Drbd9Message};
use super::sets::{
    CfgContext, DiskConf, Drbd9Attr, NetConf, NewCUuidParms, PathParms, ResourceOpts,
};
use crate::error::DrbdError;
use crate::header::MINOR_NONE;
use crate::sockaddr::SockAddr;
use crate::AttrSet;

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

/// One configuration request: the message and the drbdsetup command line it stands for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request9 {
    message: Drbd9Message,
    context: String,
}

impl Request9 {
    /// The message as drbdsetup 9 sends it.
    pub fn message(&self) -> &Drbd9Message {
        &self.message
    }

    /// The drbdsetup command line it is equivalent to (used in errors).
    pub fn context(&self) -> &str {
        &self.context
    }

    /// Sends it on `handle` and checks the reply.
    ///
    /// # Errors
    /// [`DrbdError::Netlink`] / [`DrbdError::Io`] when the exchange fails; [`DrbdError::Decode`]
    /// for a reply that cannot be decoded; [`DrbdError::Kernel`] / [`DrbdError::StateChange`] for a
    /// refusal (see [`super::check_reply9`]).
    pub async fn execute(&self, handle: &Drbd9Handle) -> Result<(), DrbdError> {
        handle
            .execute_doit(&self.message, &self.context)
            .await
            .map(|_| ())
    }

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
