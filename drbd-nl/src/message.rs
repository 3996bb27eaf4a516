//! The DRBD generic-netlink message: command, DRBD header, top-level attributes.

use netlink_packet_core::{
    DecodeError, Emitable, ErrorContext, NlaBuffer, NlasIterator, Parseable, ParseableParametrized,
};
use netlink_packet_generic::{GenlFamily, GenlHeader};

use crate::attr::{CfgContext, CfgReply, DrbdAttr, StateInfo};
use crate::header::{DrbdHeader, DRBD_GENL_HDRLEN};
use crate::AttrSet;

/// The family name registered by the DRBD module.
pub const DRBD_FAMILY_NAME: &str = "drbd";
/// The multicast group carrying DRBD's broadcasts.
pub const DRBD_EVENTS_GROUP: &str = "events";
/// `GENL_MAGIC_VERSION` of the DRBD 8.4 API (`CTRL_ATTR_VERSION` of the family).
pub const DRBD_API_VERSION_84: u32 = 1;

macro_rules! cmds {
    ($($(#[$doc:meta])* $var:ident = $num:literal, $c:ident;)*) => {
        $(const $c: u8 = $num;)*
        /// A DRBD 8.4 generic-netlink command (`drbd_genl.h`).
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        #[non_exhaustive]
        pub enum DrbdCmd {
            $($(#[$doc])* $var,)*
        }
        impl From<DrbdCmd> for u8 {
            fn from(cmd: DrbdCmd) -> u8 {
                match cmd { $(DrbdCmd::$var => $c,)* }
            }
        }
        impl TryFrom<u8> for DrbdCmd {
            type Error = DecodeError;
            fn try_from(value: u8) -> Result<Self, DecodeError> {
                Ok(match value {
                    $($c => DrbdCmd::$var,)*
                    other => return Err(DecodeError::from(format!("unknown DRBD command {other}"))),
                })
            }
        }
    };
}

cmds! {
    /// `DRBD_EVENT` (1): old-style state broadcast.
    Event = 1, DRBD_EVENT;
    /// `DRBD_ADM_GET_STATUS` (2): `drbdsetup status` / `events`.
    GetStatus = 2, DRBD_ADM_GET_STATUS;
    /// `DRBD_ADM_NEW_MINOR` (5): `drbdsetup new-minor`.
    NewMinor = 5, DRBD_ADM_NEW_MINOR;
    /// `DRBD_ADM_DEL_MINOR` (6): `drbdsetup del-minor`.
    DelMinor = 6, DRBD_ADM_DEL_MINOR;
    /// `DRBD_ADM_NEW_RESOURCE` (7): `drbdsetup new-resource`.
    NewResource = 7, DRBD_ADM_NEW_RESOURCE;
    /// `DRBD_ADM_DEL_RESOURCE` (8): `drbdsetup del-resource`.
    DelResource = 8, DRBD_ADM_DEL_RESOURCE;
    /// `DRBD_ADM_RESOURCE_OPTS` (9): `drbdsetup resource-options`.
    ResourceOpts = 9, DRBD_ADM_RESOURCE_OPTS;
    /// `DRBD_ADM_CONNECT` (10): `drbdsetup connect`.
    Connect = 10, DRBD_ADM_CONNECT;
    /// `DRBD_ADM_DISCONNECT` (11): `drbdsetup disconnect`.
    Disconnect = 11, DRBD_ADM_DISCONNECT;
    /// `DRBD_ADM_ATTACH` (12): `drbdsetup attach`.
    Attach = 12, DRBD_ADM_ATTACH;
    /// `DRBD_ADM_RESIZE` (13): `drbdsetup resize`.
    Resize = 13, DRBD_ADM_RESIZE;
    /// `DRBD_ADM_PRIMARY` (14): `drbdsetup primary`.
    Primary = 14, DRBD_ADM_PRIMARY;
    /// `DRBD_ADM_SECONDARY` (15): `drbdsetup secondary`.
    Secondary = 15, DRBD_ADM_SECONDARY;
    /// `DRBD_ADM_NEW_C_UUID` (16): `drbdsetup new-current-uuid`.
    NewCUuid = 16, DRBD_ADM_NEW_C_UUID;
    /// `DRBD_ADM_START_OV` (17): `drbdsetup verify`.
    StartOv = 17, DRBD_ADM_START_OV;
    /// `DRBD_ADM_DETACH` (18): `drbdsetup detach`.
    Detach = 18, DRBD_ADM_DETACH;
    /// `DRBD_ADM_INVALIDATE` (19): `drbdsetup invalidate`.
    Invalidate = 19, DRBD_ADM_INVALIDATE;
    /// `DRBD_ADM_INVAL_PEER` (20): `drbdsetup invalidate-remote`.
    InvalPeer = 20, DRBD_ADM_INVAL_PEER;
    /// `DRBD_ADM_PAUSE_SYNC` (21): `drbdsetup pause-sync`.
    PauseSync = 21, DRBD_ADM_PAUSE_SYNC;
    /// `DRBD_ADM_RESUME_SYNC` (22): `drbdsetup resume-sync`.
    ResumeSync = 22, DRBD_ADM_RESUME_SYNC;
    /// `DRBD_ADM_SUSPEND_IO` (23): `drbdsetup suspend-io`.
    SuspendIo = 23, DRBD_ADM_SUSPEND_IO;
    /// `DRBD_ADM_RESUME_IO` (24): `drbdsetup resume-io`.
    ResumeIo = 24, DRBD_ADM_RESUME_IO;
    /// `DRBD_ADM_OUTDATE` (25): `drbdsetup outdate`.
    Outdate = 25, DRBD_ADM_OUTDATE;
    /// `DRBD_ADM_GET_TIMEOUT_TYPE` (26): `drbdsetup wait-connect` helper.
    GetTimeoutType = 26, DRBD_ADM_GET_TIMEOUT_TYPE;
    /// `DRBD_ADM_DOWN` (27): `drbdsetup down`.
    Down = 27, DRBD_ADM_DOWN;
    /// `DRBD_ADM_CHG_DISK_OPTS` (28): `drbdsetup disk-options`.
    ChgDiskOpts = 28, DRBD_ADM_CHG_DISK_OPTS;
    /// `DRBD_ADM_CHG_NET_OPTS` (29): `drbdsetup net-options`.
    ChgNetOpts = 29, DRBD_ADM_CHG_NET_OPTS;
    /// `DRBD_ADM_GET_RESOURCES` (30): dump of resources.
    GetResources = 30, DRBD_ADM_GET_RESOURCES;
    /// `DRBD_ADM_GET_DEVICES` (31): dump of devices.
    GetDevices = 31, DRBD_ADM_GET_DEVICES;
    /// `DRBD_ADM_GET_CONNECTIONS` (32): dump of connections.
    GetConnections = 32, DRBD_ADM_GET_CONNECTIONS;
    /// `DRBD_ADM_GET_PEER_DEVICES` (33): dump of peer devices.
    GetPeerDevices = 33, DRBD_ADM_GET_PEER_DEVICES;
    /// `DRBD_RESOURCE_STATE` (34): events2 notification.
    ResourceState = 34, DRBD_RESOURCE_STATE;
    /// `DRBD_DEVICE_STATE` (35): events2 notification.
    DeviceState = 35, DRBD_DEVICE_STATE;
    /// `DRBD_CONNECTION_STATE` (36): events2 notification.
    ConnectionState = 36, DRBD_CONNECTION_STATE;
    /// `DRBD_PEER_DEVICE_STATE` (37): events2 notification.
    PeerDeviceState = 37, DRBD_PEER_DEVICE_STATE;
    /// `DRBD_ADM_GET_INITIAL_STATE` (38): `drbdsetup events2 --now`-style snapshot dump.
    GetInitialState = 38, DRBD_ADM_GET_INITIAL_STATE;
    /// `DRBD_HELPER` (40): events2 helper notification.
    Helper = 40, DRBD_HELPER;
    /// `DRBD_INITIAL_STATE_DONE` (41): end of the initial-state snapshot.
    InitialStateDone = 41, DRBD_INITIAL_STATE_DONE;
}

/// A DRBD generic-netlink message (the payload after `genlmsghdr`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DrbdMessage {
    /// The command.
    pub cmd: DrbdCmd,
    /// The DRBD user header (minor, flags / ret_code).
    pub header: DrbdHeader,
    /// Top-level attributes, in wire order.
    pub attrs: Vec<DrbdAttr>,
}

impl DrbdMessage {
    /// A request: `cmd` on `minor` (or [`crate::MINOR_NONE`]) with `attrs`.
    pub fn new(cmd: DrbdCmd, minor: u32, attrs: Vec<DrbdAttr>) -> Self {
        Self {
            cmd,
            header: DrbdHeader::new(minor),
            attrs,
        }
    }

    /// The last CFG_CONTEXT (the kernel's own when a reply carries two).
    pub fn cfg_context(&self) -> Option<&AttrSet<CfgContext>> {
        self.attrs.iter().rev().find_map(|a| match a {
            DrbdAttr::CfgContext(set) => Some(set),
            _ => None,
        })
    }

    /// The STATE_INFO set, if any.
    pub fn state_info(&self) -> Option<&AttrSet<StateInfo>> {
        self.attrs.iter().find_map(|a| match a {
            DrbdAttr::StateInfo(set) => Some(set),
            _ => None,
        })
    }

    /// The kernel's `info_text` (CFG_REPLY), if any.
    pub fn info_text(&self) -> Option<&str> {
        self.attrs.iter().find_map(|a| match a {
            DrbdAttr::CfgReply(set) => set.iter().find_map(|f| match f {
                CfgReply::InfoText(t) => Some(t.as_str()),
                _ => None,
            }),
            _ => None,
        })
    }

    /// The resource name from the CFG_CONTEXT, if any.
    pub fn resource_name(&self) -> Option<&str> {
        self.cfg_context()?.iter().find_map(|f| match f {
            CfgContext::CtxResourceName(n) => Some(n.as_str()),
            _ => None,
        })
    }

    /// The volume number from the CFG_CONTEXT, if any.
    pub fn volume(&self) -> Option<u32> {
        self.cfg_context()?.iter().find_map(|f| match f {
            CfgContext::CtxVolume(v) => Some(*v),
            _ => None,
        })
    }

    /// Parses the bytes after `genlmsghdr` for command `cmd`.
    ///
    /// # Errors
    /// [`DecodeError`] for a truncated header or attribute, or a nested set that does not parse.
    pub fn parse_payload(cmd: u8, buf: &[u8]) -> Result<Self, DecodeError> {
        let cmd = DrbdCmd::try_from(cmd)?;
        let header = DrbdHeader::parse(buf)?;
        let mut attrs = Vec::new();
        let rest = buf.get(DRBD_GENL_HDRLEN..).unwrap_or(&[]);
        for nla in NlasIterator::new(rest) {
            let nla: NlaBuffer<&[u8]> = nla.context("invalid DRBD top-level attribute")?;
            attrs.push(DrbdAttr::parse(&nla)?);
        }
        Ok(Self { cmd, header, attrs })
    }
}

impl GenlFamily for DrbdMessage {
    fn family_name() -> &'static str {
        DRBD_FAMILY_NAME
    }

    fn command(&self) -> u8 {
        self.cmd.into()
    }

    /// drbdsetup sends the family version; 8.4 ignores it, DRBD 9 checks it.
    fn version(&self) -> u8 {
        DRBD_API_VERSION_84 as u8
    }
}

impl Emitable for DrbdMessage {
    fn buffer_len(&self) -> usize {
        DRBD_GENL_HDRLEN + self.attrs.as_slice().buffer_len()
    }

    fn emit(&self, buffer: &mut [u8]) {
        // invariant: netlink-packet-core hands us buffer_len() bytes.
        if let Some(hdr) = buffer.get_mut(..DRBD_GENL_HDRLEN) {
            self.header.emit(hdr);
        }
        let tlas = buffer.get_mut(DRBD_GENL_HDRLEN..).unwrap_or_default();
        crate::nla::emit_tlas(tlas, &self.attrs);
    }
}

impl ParseableParametrized<[u8], GenlHeader> for DrbdMessage {
    fn parse_with_param(buf: &[u8], header: GenlHeader) -> Result<Self, DecodeError> {
        Self::parse_payload(header.cmd, buf)
    }
}
