//! Request builders, one per drbdsetup verb. Each can be built unbound
//! (`Primary::new(1)`) to inspect its [`DrbdMessage`], or obtained from a
//! [`DrbdHandle`] (`handle.primary(1).force(true).execute()`).

use std::net::SocketAddr;

use netlink_packet_core::NLM_F_EXCL;

use crate::attr::{
    CfgContext, DetachParms, DisconnectParms, DiskConf, DrbdAttr, NetConf, NewCUuidParms,
    ResizeParms, ResourceOpts, SetRoleParms,
};
use crate::error::DrbdError;
use crate::handle::DrbdHandle;
use crate::header::MINOR_NONE;
use crate::message::{DrbdCmd, DrbdMessage};
use crate::sockaddr::SockAddr;
use crate::status::DeviceStatus;
use crate::AttrSet;

/// Meta-data index of `internal` (flexible internal meta-data).
pub const META_DEV_IDX_INTERNAL: i32 = -3;

fn unbound(context: &str) -> DrbdError {
    DrbdError::Protocol {
        context: context.to_string(),
        reason: "request not bound to a DrbdHandle".into(),
    }
}

/// Sends `msg` as a doit on `handle` (with `flags` added) and discards the
/// reply: the body of every `execute` that answers `()`.
async fn doit(
    handle: Option<&DrbdHandle>,
    msg: &DrbdMessage,
    flags: u16,
    context: &str,
) -> Result<(), DrbdError> {
    let h = handle.ok_or_else(|| unbound(context))?;
    h.execute_doit(msg, flags, context).await.map(|_| ())
}

fn check_name(name: &str) -> Result<(), DrbdError> {
    if name.is_empty() || name.len() > 127 || name.contains('/') || name.contains('\0') {
        return Err(DrbdError::InvalidArgument(format!(
            "resource name {name:?}: 1..127 bytes, no '/' or NUL"
        )));
    }
    Ok(())
}

fn ctx(fields: Vec<CfgContext>) -> DrbdAttr {
    DrbdAttr::CfgContext(AttrSet::new(fields))
}

macro_rules! bound {
    ($t:ident) => {
        impl $t {
            pub(crate) fn bind(mut self, handle: DrbdHandle) -> Self {
                self.handle = Some(handle);
                self
            }
        }
    };
}

/// GET_STATUS (2): equivalent to `drbdsetup-84 status [RESOURCE]`. A dump,
/// one reply per volume; with [`Status::minor`] a doit for one device.
#[derive(Debug, Clone, Default)]
pub struct Status {
    handle: Option<DrbdHandle>,
    resource: Option<String>,
    minor: Option<u32>,
}
bound!(Status);

impl Status {
    /// A status request for everything.
    pub fn new() -> Self {
        Self::default()
    }
    /// Only this resource (`drbdsetup-84 status RESOURCE`).
    pub fn resource(mut self, name: impl Into<String>) -> Self {
        self.resource = Some(name.into());
        self
    }
    /// Only this minor (a doit; `drbdsetup-84 events MINOR` asks this way).
    pub fn minor(mut self, minor: u32) -> Self {
        self.minor = Some(minor);
        self
    }
    /// The request message.
    pub fn message(&self) -> DrbdMessage {
        let attrs = match &self.resource {
            Some(r) => vec![ctx(vec![CfgContext::CtxResourceName(r.clone())])],
            None => vec![],
        };
        DrbdMessage::new(DrbdCmd::GetStatus, self.minor.unwrap_or(MINOR_NONE), attrs)
    }
    /// Runs it: one [`DeviceStatus`] per volume (and per resource without volumes).
    ///
    /// # Errors
    /// [`DrbdError::Kernel`] / [`DrbdError::StateChange`] when the kernel refuses (its `drbd_ret_code`
    /// or `SS_*` code and info text, as drbdsetup prints them); [`DrbdError::InvalidArgument`] for a
    /// bad name or value (nothing is sent); [`DrbdError::Netlink`], [`DrbdError::Io`] or
    /// [`DrbdError::Decode`] when the exchange itself fails.
    pub async fn execute(self) -> Result<Vec<DeviceStatus>, DrbdError> {
        let context = "status";
        let h = self.handle.as_ref().ok_or_else(|| unbound(context))?;
        let msg = self.message();
        let replies = if self.minor.is_some() {
            vec![h.execute_doit(&msg, 0, context).await?]
        } else {
            h.send(&msg, true, 0, context).await?
        };
        let mut out = Vec::with_capacity(replies.len());
        for r in replies {
            let r = crate::handle::check_reply(r, context)?;
            out.push(DeviceStatus::from_message(&r)?);
        }
        Ok(out)
    }
}

/// NEW_RESOURCE (7): equivalent to `drbdsetup-84 new-resource NAME [--cpu-mask ..] [--on-no-data-accessible ..]`.
#[derive(Debug, Clone)]
pub struct NewResource {
    handle: Option<DrbdHandle>,
    name: String,
    opts: Vec<ResourceOpts>,
    exclusive: bool,
}
bound!(NewResource);

impl NewResource {
    /// Creates resource `name`.
    pub fn new(name: impl Into<String>) -> Self {
        Self {
            handle: None,
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
    /// Fail with 162 if the resource exists (`NLM_F_EXCL`), instead of succeeding.
    pub fn exclusive(mut self, yes: bool) -> Self {
        self.exclusive = yes;
        self
    }
    /// The request message.
    pub fn message(&self) -> DrbdMessage {
        let mut attrs = vec![ctx(vec![CfgContext::CtxResourceName(self.name.clone())])];
        if !self.opts.is_empty() {
            attrs.push(DrbdAttr::ResourceOpts(AttrSet::new(self.opts.clone())));
        }
        DrbdMessage::new(DrbdCmd::NewResource, MINOR_NONE, attrs)
    }
    /// Runs it.
    ///
    /// # Errors
    /// [`DrbdError::Kernel`] / [`DrbdError::StateChange`] when the kernel refuses (its `drbd_ret_code`
    /// or `SS_*` code and info text, as drbdsetup prints them); [`DrbdError::InvalidArgument`] for a
    /// bad name or value (nothing is sent); [`DrbdError::Netlink`], [`DrbdError::Io`] or
    /// [`DrbdError::Decode`] when the exchange itself fails.
    pub async fn execute(self) -> Result<(), DrbdError> {
        check_name(&self.name)?;
        let context = format!("new-resource {}", self.name);
        let flags = if self.exclusive { NLM_F_EXCL } else { 0 };
        doit(self.handle.as_ref(), &self.message(), flags, &context).await
    }
}

/// DEL_RESOURCE (8): equivalent to `drbdsetup-84 del-resource NAME`.
#[derive(Debug, Clone)]
pub struct DelResource {
    handle: Option<DrbdHandle>,
    name: String,
}
bound!(DelResource);

impl DelResource {
    /// Deletes resource `name` (it must have no volumes and be StandAlone).
    pub fn new(name: impl Into<String>) -> Self {
        Self {
            handle: None,
            name: name.into(),
        }
    }
    /// The request message.
    pub fn message(&self) -> DrbdMessage {
        DrbdMessage::new(
            DrbdCmd::DelResource,
            MINOR_NONE,
            vec![ctx(vec![CfgContext::CtxResourceName(self.name.clone())])],
        )
    }
    /// Runs it.
    ///
    /// # Errors
    /// [`DrbdError::Kernel`] / [`DrbdError::StateChange`] when the kernel refuses (its `drbd_ret_code`
    /// or `SS_*` code and info text, as drbdsetup prints them); [`DrbdError::InvalidArgument`] for a
    /// bad name or value (nothing is sent); [`DrbdError::Netlink`], [`DrbdError::Io`] or
    /// [`DrbdError::Decode`] when the exchange itself fails.
    pub async fn execute(self) -> Result<(), DrbdError> {
        let context = format!("del-resource {}", self.name);
        doit(self.handle.as_ref(), &self.message(), 0, &context).await
    }
}

/// NEW_MINOR (5): equivalent to `drbdsetup-84 new-minor RESOURCE MINOR VOLUME`.
#[derive(Debug, Clone)]
pub struct NewMinor {
    handle: Option<DrbdHandle>,
    resource: String,
    minor: u32,
    volume: u32,
}
bound!(NewMinor);

impl NewMinor {
    /// Creates `/dev/drbdMINOR` as `volume` of `resource`.
    pub fn new(resource: impl Into<String>, minor: u32, volume: u32) -> Self {
        Self {
            handle: None,
            resource: resource.into(),
            minor,
            volume,
        }
    }
    /// The request message (the minor goes in the header).
    pub fn message(&self) -> DrbdMessage {
        DrbdMessage::new(
            DrbdCmd::NewMinor,
            self.minor,
            vec![ctx(vec![
                CfgContext::CtxResourceName(self.resource.clone()),
                CfgContext::CtxVolume(self.volume),
            ])],
        )
    }
    /// Runs it.
    ///
    /// # Errors
    /// [`DrbdError::Kernel`] / [`DrbdError::StateChange`] when the kernel refuses (its `drbd_ret_code`
    /// or `SS_*` code and info text, as drbdsetup prints them); [`DrbdError::InvalidArgument`] for a
    /// bad name or value (nothing is sent); [`DrbdError::Netlink`], [`DrbdError::Io`] or
    /// [`DrbdError::Decode`] when the exchange itself fails.
    pub async fn execute(self) -> Result<(), DrbdError> {
        let context = format!("new-minor {} {} {}", self.resource, self.minor, self.volume);
        doit(self.handle.as_ref(), &self.message(), 0, &context).await
    }
}

macro_rules! minor_only {
    ($(#[$doc:meta])* $t:ident, $cmd:ident, $verb:literal) => {
        $(#[$doc])*
        #[derive(Debug, Clone)]
        pub struct $t {
            handle: Option<DrbdHandle>,
            minor: u32,
        }
        bound!($t);
        impl $t {
            /// The request for `minor`.
            pub fn new(minor: u32) -> Self {
                Self { handle: None, minor }
            }
            /// The request message.
            pub fn message(&self) -> DrbdMessage {
                DrbdMessage::new(DrbdCmd::$cmd, self.minor, vec![])
            }
            /// Runs it.
            ///
            /// # Errors
            /// [`DrbdError::Kernel`] / [`DrbdError::StateChange`] when the kernel refuses (its `drbd_ret_code`
            /// or `SS_*` code and info text, as drbdsetup prints them); [`DrbdError::InvalidArgument`] for a
            /// bad name or value (nothing is sent); [`DrbdError::Netlink`], [`DrbdError::Io`] or
            /// [`DrbdError::Decode`] when the exchange itself fails.
            pub async fn execute(self) -> Result<(), DrbdError> {
                let context = format!(concat!($verb, " {}"), self.minor);
                doit(self.handle.as_ref(), &self.message(), 0, &context).await
            }
        }
    };
}

minor_only!(
    /// DEL_MINOR (6): equivalent to `drbdsetup-84 del-minor MINOR` (device must be Diskless and Secondary).
    DelMinor, DelMinor, "del-minor"
);
minor_only!(
    /// SECONDARY (15): equivalent to `drbdsetup-84 secondary MINOR`. Fails with
    /// `SS_DEVICE_IN_USE` (-12) while the device is open.
    Secondary, Secondary, "secondary"
);

/// ATTACH (12): equivalent to `drbdsetup-84 attach MINOR DEV DEV internal [disk options]`.
#[derive(Debug, Clone)]
pub struct Attach {
    handle: Option<DrbdHandle>,
    minor: u32,
    backing_dev: String,
    meta_dev: Option<String>,
    meta_dev_idx: i32,
    opts: Vec<DiskConf>,
}
bound!(Attach);

impl Attach {
    /// Attaches `backing_dev` to `minor` with internal meta-data.
    pub fn new(minor: u32, backing_dev: impl Into<String>) -> Self {
        Self {
            handle: None,
            minor,
            backing_dev: backing_dev.into(),
            meta_dev: None,
            meta_dev_idx: META_DEV_IDX_INTERNAL,
            opts: vec![],
        }
    }
    /// External meta-data on `dev` at `index` (-2 = flexible).
    pub fn meta(mut self, dev: impl Into<String>, index: i32) -> Self {
        self.meta_dev = Some(dev.into());
        self.meta_dev_idx = index;
        self
    }
    /// Adds a disk option (e.g. `DiskConf::ResyncRate(..)`).
    pub fn option(mut self, opt: DiskConf) -> Self {
        self.opts.push(opt);
        self
    }
    /// `--fencing=POLICY`.
    pub fn fencing(self, p: crate::FencingPolicy) -> Self {
        self.option(DiskConf::Fencing(p as u32))
    }
    /// The request message.
    pub fn message(&self) -> DrbdMessage {
        let mut fields = vec![
            DiskConf::BackingDev(self.backing_dev.clone()),
            DiskConf::MetaDev(
                self.meta_dev
                    .clone()
                    .unwrap_or_else(|| self.backing_dev.clone()),
            ),
            DiskConf::MetaDevIdx(self.meta_dev_idx),
        ];
        fields.extend(self.opts.iter().cloned());
        DrbdMessage::new(
            DrbdCmd::Attach,
            self.minor,
            vec![DrbdAttr::DiskConf(AttrSet::new(fields))],
        )
    }
    /// Runs it. A missing device gives [`crate::RetCode::OpenDisk`] (104).
    ///
    /// # Errors
    /// [`DrbdError::Kernel`] / [`DrbdError::StateChange`] when the kernel refuses (its `drbd_ret_code`
    /// or `SS_*` code and info text, as drbdsetup prints them); [`DrbdError::InvalidArgument`] for a
    /// bad name or value (nothing is sent); [`DrbdError::Netlink`], [`DrbdError::Io`] or
    /// [`DrbdError::Decode`] when the exchange itself fails.
    pub async fn execute(self) -> Result<(), DrbdError> {
        let context = format!("attach {} {}", self.minor, self.backing_dev);
        doit(self.handle.as_ref(), &self.message(), 0, &context).await
    }
}

/// DETACH (18): equivalent to `drbdsetup-84 detach MINOR [--force]`.
#[derive(Debug, Clone)]
pub struct Detach {
    handle: Option<DrbdHandle>,
    minor: u32,
    force: bool,
}
bound!(Detach);

impl Detach {
    /// Detaches the disk of `minor`.
    pub fn new(minor: u32) -> Self {
        Self {
            handle: None,
            minor,
            force: false,
        }
    }
    /// `--force`: mark the disk Failed at once.
    pub fn force(mut self, yes: bool) -> Self {
        self.force = yes;
        self
    }
    /// The request message.
    pub fn message(&self) -> DrbdMessage {
        let attrs = if self.force {
            vec![DrbdAttr::DetachParms(AttrSet::new(vec![
                DetachParms::ForceDetach(true),
            ]))]
        } else {
            vec![]
        };
        DrbdMessage::new(DrbdCmd::Detach, self.minor, attrs)
    }
    /// Runs it.
    ///
    /// # Errors
    /// [`DrbdError::Kernel`] / [`DrbdError::StateChange`] when the kernel refuses (its `drbd_ret_code`
    /// or `SS_*` code and info text, as drbdsetup prints them); [`DrbdError::InvalidArgument`] for a
    /// bad name or value (nothing is sent); [`DrbdError::Netlink`], [`DrbdError::Io`] or
    /// [`DrbdError::Decode`] when the exchange itself fails.
    pub async fn execute(self) -> Result<(), DrbdError> {
        let context = format!("detach {}", self.minor);
        doit(self.handle.as_ref(), &self.message(), 0, &context).await
    }
}

/// CONNECT (10): equivalent to `drbdsetup-84 connect RESOURCE ipv4:LOCAL ipv4:PEER --protocol=C [net options]`.
#[derive(Debug, Clone)]
pub struct Connect {
    handle: Option<DrbdHandle>,
    resource: String,
    local: SockAddr,
    peer: SockAddr,
    protocol: Option<u32>,
    opts: Vec<NetConf>,
}
bound!(Connect);

impl Connect {
    /// Connects `resource` from `local` to `peer`.
    pub fn new(resource: impl Into<String>, local: SocketAddr, peer: SocketAddr) -> Self {
        Self {
            handle: None,
            resource: resource.into(),
            local: SockAddr(local),
            peer: SockAddr(peer),
            protocol: Some(3),
            opts: vec![],
        }
    }
    /// Replication protocol: 'A', 'B' or 'C' (default C).
    pub fn protocol(mut self, p: char) -> Self {
        self.protocol = match p {
            'A' | 'a' => Some(1),
            'B' | 'b' => Some(2),
            _ => Some(3),
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
        p0: crate::AfterSbPolicy,
        p1: crate::AfterSbPolicy,
        p2: crate::AfterSbPolicy,
    ) -> Self {
        self.option(NetConf::AfterSb0p(p0 as u32))
            .option(NetConf::AfterSb1p(p1 as u32))
            .option(NetConf::AfterSb2p(p2 as u32))
    }
    /// The request message.
    pub fn message(&self) -> DrbdMessage {
        let mut net = vec![];
        if let Some(p) = self.protocol {
            net.push(NetConf::WireProtocol(p));
        }
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
    /// Runs it. The state goes StandAlone → Unconnected → WFConnection.
    ///
    /// # Errors
    /// [`DrbdError::Kernel`] / [`DrbdError::StateChange`] when the kernel refuses (its `drbd_ret_code`
    /// or `SS_*` code and info text, as drbdsetup prints them); [`DrbdError::InvalidArgument`] for a
    /// bad name or value (nothing is sent); [`DrbdError::Netlink`], [`DrbdError::Io`] or
    /// [`DrbdError::Decode`] when the exchange itself fails.
    pub async fn execute(self) -> Result<(), DrbdError> {
        let context = format!("connect {} {} {}", self.resource, self.local, self.peer);
        doit(self.handle.as_ref(), &self.message(), 0, &context).await
    }
}

/// DISCONNECT (11): equivalent to `drbdsetup-84 disconnect LOCAL PEER [--force]`.
#[derive(Debug, Clone)]
pub struct Disconnect {
    handle: Option<DrbdHandle>,
    local: SockAddr,
    peer: SockAddr,
    force: bool,
}
bound!(Disconnect);

impl Disconnect {
    /// Disconnects the connection `local` ↔ `peer` (as given to connect).
    pub fn new(local: SocketAddr, peer: SocketAddr) -> Self {
        Self {
            handle: None,
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
    /// The request message.
    pub fn message(&self) -> DrbdMessage {
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
    /// Runs it.
    ///
    /// # Errors
    /// [`DrbdError::Kernel`] / [`DrbdError::StateChange`] when the kernel refuses (its `drbd_ret_code`
    /// or `SS_*` code and info text, as drbdsetup prints them); [`DrbdError::InvalidArgument`] for a
    /// bad name or value (nothing is sent); [`DrbdError::Netlink`], [`DrbdError::Io`] or
    /// [`DrbdError::Decode`] when the exchange itself fails.
    pub async fn execute(self) -> Result<(), DrbdError> {
        let context = format!("disconnect {} {}", self.local, self.peer);
        doit(self.handle.as_ref(), &self.message(), 0, &context).await
    }
}

/// PRIMARY (14): equivalent to `drbdsetup-84 primary MINOR [--force]`.
#[derive(Debug, Clone)]
pub struct Primary {
    handle: Option<DrbdHandle>,
    minor: u32,
    force: bool,
}
bound!(Primary);

impl Primary {
    /// Promotes `minor`.
    pub fn new(minor: u32) -> Self {
        Self {
            handle: None,
            minor,
            force: false,
        }
    }
    /// `--force` (`assume_uptodate`): promote even without UpToDate data.
    pub fn force(mut self, yes: bool) -> Self {
        self.force = yes;
        self
    }
    /// The request message (no SET_ROLE_PARMS without force, as drbdsetup).
    pub fn message(&self) -> DrbdMessage {
        let attrs = if self.force {
            vec![DrbdAttr::SetRoleParms(AttrSet::new(vec![
                SetRoleParms::AssumeUptodate(true),
            ]))]
        } else {
            vec![]
        };
        DrbdMessage::new(DrbdCmd::Primary, self.minor, attrs)
    }
    /// Runs it. The peer being Primary gives `SS_TWO_PRIMARIES` (-1); no
    /// good data `SS_NO_UP_TO_DATE_DISK` (-2), as [`DrbdError::StateChange`].
    ///
    /// # Errors
    /// [`DrbdError::Kernel`] / [`DrbdError::StateChange`] when the kernel refuses (its `drbd_ret_code`
    /// or `SS_*` code and info text, as drbdsetup prints them); [`DrbdError::InvalidArgument`] for a
    /// bad name or value (nothing is sent); [`DrbdError::Netlink`], [`DrbdError::Io`] or
    /// [`DrbdError::Decode`] when the exchange itself fails.
    pub async fn execute(self) -> Result<(), DrbdError> {
        let context = format!(
            "primary {}{}",
            self.minor,
            if self.force { " --force" } else { "" }
        );
        doit(self.handle.as_ref(), &self.message(), 0, &context).await
    }
}

/// NEW_C_UUID (16): equivalent to `drbdsetup-84 new-current-uuid MINOR [--clear-bitmap]`.
#[derive(Debug, Clone)]
pub struct NewCurrentUuid {
    handle: Option<DrbdHandle>,
    minor: u32,
    clear_bitmap: bool,
}
bound!(NewCurrentUuid);

impl NewCurrentUuid {
    /// A new current UUID for `minor`.
    pub fn new(minor: u32) -> Self {
        Self {
            handle: None,
            minor,
            clear_bitmap: false,
        }
    }
    /// `--clear-bitmap`: on a fresh Connected pair, skip the initial sync.
    pub fn clear_bitmap(mut self, yes: bool) -> Self {
        self.clear_bitmap = yes;
        self
    }
    /// The request message.
    pub fn message(&self) -> DrbdMessage {
        let attrs = if self.clear_bitmap {
            vec![DrbdAttr::NewCUuidParms(AttrSet::new(vec![
                NewCUuidParms::ClearBm(true),
            ]))]
        } else {
            vec![]
        };
        DrbdMessage::new(DrbdCmd::NewCUuid, self.minor, attrs)
    }
    /// Runs it.
    ///
    /// # Errors
    /// [`DrbdError::Kernel`] / [`DrbdError::StateChange`] when the kernel refuses (its `drbd_ret_code`
    /// or `SS_*` code and info text, as drbdsetup prints them); [`DrbdError::InvalidArgument`] for a
    /// bad name or value (nothing is sent); [`DrbdError::Netlink`], [`DrbdError::Io`] or
    /// [`DrbdError::Decode`] when the exchange itself fails.
    pub async fn execute(self) -> Result<(), DrbdError> {
        let context = format!("new-current-uuid {}", self.minor);
        doit(self.handle.as_ref(), &self.message(), 0, &context).await
    }
}

/// RESIZE (13): equivalent to `drbdsetup-84 resize MINOR [--size S] [--assume-clean]`.
#[derive(Debug, Clone)]
pub struct Resize {
    handle: Option<DrbdHandle>,
    minor: u32,
    size_sectors: Option<u64>,
    assume_clean: bool,
}
bound!(Resize);

impl Resize {
    /// Resizes `minor` to the backing device size.
    pub fn new(minor: u32) -> Self {
        Self {
            handle: None,
            minor,
            size_sectors: None,
            assume_clean: false,
        }
    }
    /// `--size` in 512-byte sectors.
    pub fn size_sectors(mut self, s: u64) -> Self {
        self.size_sectors = Some(s);
        self
    }
    /// `--assume-clean`: no resync of the new area.
    pub fn assume_clean(mut self, yes: bool) -> Self {
        self.assume_clean = yes;
        self
    }
    /// The request message.
    pub fn message(&self) -> DrbdMessage {
        let mut f = vec![];
        if let Some(s) = self.size_sectors {
            f.push(ResizeParms::ResizeSize(s));
        }
        if self.assume_clean {
            f.push(ResizeParms::NoResync(true));
        }
        let attrs = if f.is_empty() {
            vec![]
        } else {
            vec![DrbdAttr::ResizeParms(AttrSet::new(f))]
        };
        DrbdMessage::new(DrbdCmd::Resize, self.minor, attrs)
    }
    /// Runs it.
    ///
    /// # Errors
    /// [`DrbdError::Kernel`] / [`DrbdError::StateChange`] when the kernel refuses (its `drbd_ret_code`
    /// or `SS_*` code and info text, as drbdsetup prints them); [`DrbdError::InvalidArgument`] for a
    /// bad name or value (nothing is sent); [`DrbdError::Netlink`], [`DrbdError::Io`] or
    /// [`DrbdError::Decode`] when the exchange itself fails.
    pub async fn execute(self) -> Result<(), DrbdError> {
        let context = format!("resize {}", self.minor);
        doit(self.handle.as_ref(), &self.message(), 0, &context).await
    }
}

/// DOWN (27): equivalent to `drbdsetup-84 down RESOURCE`: demote, disconnect,
/// detach, delete minors and the resource in one call. An unknown resource
/// gives [`crate::RetCode::ResNotKnown`] (drbdsetup treats that as success).
#[derive(Debug, Clone)]
pub struct Down {
    handle: Option<DrbdHandle>,
    resource: String,
}
bound!(Down);

impl Down {
    /// Takes `resource` down.
    pub fn new(resource: impl Into<String>) -> Self {
        Self {
            handle: None,
            resource: resource.into(),
        }
    }
    /// The request message.
    pub fn message(&self) -> DrbdMessage {
        DrbdMessage::new(
            DrbdCmd::Down,
            MINOR_NONE,
            vec![ctx(vec![CfgContext::CtxResourceName(
                self.resource.clone(),
            )])],
        )
    }
    /// Runs it.
    ///
    /// # Errors
    /// [`DrbdError::Kernel`] / [`DrbdError::StateChange`] when the kernel refuses (its `drbd_ret_code`
    /// or `SS_*` code and info text, as drbdsetup prints them); [`DrbdError::InvalidArgument`] for a
    /// bad name or value (nothing is sent); [`DrbdError::Netlink`], [`DrbdError::Io`] or
    /// [`DrbdError::Decode`] when the exchange itself fails.
    pub async fn execute(self) -> Result<(), DrbdError> {
        let context = format!("down {}", self.resource);
        doit(self.handle.as_ref(), &self.message(), 0, &context).await
    }
}
