//! Requests that address a resource or its connection: new-resource, del-resource, connect,
//! disconnect, down.

use std::net::SocketAddr;

use super::private::{Exchange, Sealed};
use super::{check_name, ctx, optional_set, Request};
use crate::attr::{CfgContext, DisconnectParms, DrbdAttr, NetConf, ResourceOpts};
use crate::error::DrbdError;
use crate::header::MINOR_NONE;
use crate::message::{DrbdCmd, DrbdMessage};
use crate::nla::AttrSet;
use crate::policy::AfterSbPolicy;
use crate::sockaddr::SockAddr;

/// `wire_protocol` of `--protocol=C` (A = 1, B = 2).
const PROTOCOL_C: u32 = 3;

/// NEW_RESOURCE (7): equivalent to `drbdsetup-84 new-resource NAME [--cpu-mask ..]
/// [--on-no-data-accessible ..]`. An existing resource is success unless [`exclusive`](Self::exclusive).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewResource {
    name: String,
    opts: Vec<ResourceOpts>,
    exclusive: bool,
}

impl NewResource {
    /// Creates resource `name` (1..127 bytes, no `/`; checked before sending:
    /// [`DrbdError::InvalidArgument`]).
    pub fn new(name: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            opts: vec![],
            exclusive: false,
        }
    }
    /// Adds a resource option (sent as RESOURCE_OPTS).
    pub fn option(mut self, opt: ResourceOpts) -> Self {
        self.opts.push(opt);
        self
    }
    /// Fail with `ERR_INVALID_REQUEST` (162) if the resource exists (`NLM_F_EXCL`), instead of
    /// succeeding.
    pub fn exclusive(mut self, yes: bool) -> Self {
        self.exclusive = yes;
        self
    }
}

impl Sealed for NewResource {
    fn exchange(&self) -> Exchange {
        if self.exclusive {
            Exchange::DoitExclusive
        } else {
            Exchange::Doit
        }
    }
    fn validate(&self) -> Result<(), DrbdError> {
        check_name(&self.name)
    }
}

impl Request for NewResource {
    type Output = ();
    fn message(&self) -> DrbdMessage {
        let mut attrs = vec![ctx(vec![CfgContext::CtxResourceName(self.name.clone())])];
        attrs.extend(optional_set(self.opts.clone(), DrbdAttr::ResourceOpts));
        DrbdMessage::new(DrbdCmd::NewResource, MINOR_NONE, attrs)
    }
    fn command_line(&self) -> String {
        format!("new-resource {}", self.name)
    }
}

/// DEL_RESOURCE (8): equivalent to `drbdsetup-84 del-resource NAME` (the resource must have no
/// volumes and be StandAlone).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DelResource {
    name: String,
}

impl DelResource {
    /// Deletes resource `name`.
    pub fn new(name: impl Into<String>) -> Self {
        Self { name: name.into() }
    }
}

impl Sealed for DelResource {}

impl Request for DelResource {
    type Output = ();
    fn message(&self) -> DrbdMessage {
        DrbdMessage::new(
            DrbdCmd::DelResource,
            MINOR_NONE,
            vec![ctx(vec![CfgContext::CtxResourceName(self.name.clone())])],
        )
    }
    fn command_line(&self) -> String {
        format!("del-resource {}", self.name)
    }
}

/// CONNECT (10): equivalent to `drbdsetup-84 connect RESOURCE ipv4:LOCAL ipv4:PEER --protocol=C
/// [net options]`. The connection state goes StandAlone → Unconnected → WFConnection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Connect {
    resource: String,
    local: SockAddr,
    peer: SockAddr,
    protocol: u32,
    opts: Vec<NetConf>,
}

impl Connect {
    /// Connects `resource` from `local` to `peer`, protocol C.
    pub fn new(resource: impl Into<String>, local: SocketAddr, peer: SocketAddr) -> Self {
        Self {
            resource: resource.into(),
            local: SockAddr(local),
            peer: SockAddr(peer),
            protocol: PROTOCOL_C,
            opts: vec![],
        }
    }
    /// Replication protocol: 'A', 'B' or 'C' (default C; any other letter is C).
    pub fn protocol(mut self, p: char) -> Self {
        self.protocol = match p {
            'A' | 'a' => 1,
            'B' | 'b' => 2,
            _ => PROTOCOL_C,
        };
        self
    }
    /// Adds a net option (e.g. `NetConf::PingTimeo(5)`, `NetConf::Timeout(60)`).
    pub fn option(mut self, opt: NetConf) -> Self {
        self.opts.push(opt);
        self
    }
    /// `--after-sb-0pri=P0 --after-sb-1pri=P1 --after-sb-2pri=P2`.
    pub fn after_split_brain(
        self,
        p0: AfterSbPolicy,
        p1: AfterSbPolicy,
        p2: AfterSbPolicy,
    ) -> Self {
        self.option(NetConf::AfterSb0p(p0 as u32))
            .option(NetConf::AfterSb1p(p1 as u32))
            .option(NetConf::AfterSb2p(p2 as u32))
    }
}

impl Sealed for Connect {}

impl Request for Connect {
    type Output = ();
    fn message(&self) -> DrbdMessage {
        let mut net = vec![NetConf::WireProtocol(self.protocol)];
        net.extend(self.opts.iter().cloned());
        DrbdMessage::new(
            DrbdCmd::Connect,
            MINOR_NONE,
            vec![
                ctx(vec![
                    CfgContext::CtxResourceName(self.resource.clone()),
                    CfgContext::CtxMyAddr(self.local.to_bytes()),
                    CfgContext::CtxPeerAddr(self.peer.to_bytes()),
                ]),
                DrbdAttr::NetConf(AttrSet::new(net)),
            ],
        )
    }
    fn command_line(&self) -> String {
        format!("connect {} {} {}", self.resource, self.local, self.peer)
    }
}

/// DISCONNECT (11): equivalent to `drbdsetup-84 disconnect LOCAL PEER [--force]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Disconnect {
    local: SockAddr,
    peer: SockAddr,
    force: bool,
}

impl Disconnect {
    /// Disconnects the connection `local` ↔ `peer` (as given to connect).
    pub fn new(local: SocketAddr, peer: SocketAddr) -> Self {
        Self {
            local: SockAddr(local),
            peer: SockAddr(peer),
            force: false,
        }
    }
    /// `--force`: a hard state change.
    pub fn force(mut self, yes: bool) -> Self {
        self.force = yes;
        self
    }
}

impl Sealed for Disconnect {}

impl Request for Disconnect {
    type Output = ();
    fn message(&self) -> DrbdMessage {
        let mut attrs = vec![ctx(vec![
            CfgContext::CtxMyAddr(self.local.to_bytes()),
            CfgContext::CtxPeerAddr(self.peer.to_bytes()),
        ])];
        if self.force {
            attrs.push(DrbdAttr::DisconnectParms(AttrSet::new(vec![
                DisconnectParms::ForceDisconnect(true),
            ])));
        }
        DrbdMessage::new(DrbdCmd::Disconnect, MINOR_NONE, attrs)
    }
    fn command_line(&self) -> String {
        format!("disconnect {} {}", self.local, self.peer)
    }
}

/// DOWN (27): equivalent to `drbdsetup-84 down RESOURCE`: demote, disconnect, detach, delete
/// minors and the resource in one call. An unknown resource gives
/// [`RetCode::ResNotKnown`](crate::RetCode::ResNotKnown) (drbdsetup treats that as success).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Down {
    resource: String,
}

impl Down {
    /// Takes `resource` down.
    pub fn new(resource: impl Into<String>) -> Self {
        Self {
            resource: resource.into(),
        }
    }
}

impl Sealed for Down {}

impl Request for Down {
    type Output = ();
    fn message(&self) -> DrbdMessage {
        DrbdMessage::new(
            DrbdCmd::Down,
            MINOR_NONE,
            vec![ctx(vec![CfgContext::CtxResourceName(
                self.resource.clone(),
            )])],
        )
    }
    fn command_line(&self) -> String {
        format!("down {}", self.resource)
    }
}
