//! The DRBD 9 generic-netlink message: command, DRBD header, top-level attributes.

use netlink_packet_core::{
    DecodeError, Emitable, ErrorContext, NlaBuffer, NlasIterator, Parseable,
};
use netlink_packet_generic::GenlFamily;

use super::sets::{CfgContext, CfgReply, Drbd9Attr};
use crate::header::{DrbdHeader, DRBD_GENL_HDRLEN};
use crate::message::DRBD_FAMILY_NAME;
use crate::AttrSet;

/// `GENL_MAGIC_VERSION` of the DRBD 9 API (`CTRL_ATTR_VERSION` of the family); DRBD 9 checks
/// that requests carry it in the genl header.
pub const DRBD_API_VERSION_9: u32 = 2;

macro_rules! cmds {
    ($($(#[$doc:meta])* $var:ident = $num:literal;)*) => {
        /// A DRBD 9 generic-netlink command (`drbd_genl.h`, drbd-headers 32c2e607).
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        #[non_exhaustive]
        pub enum Drbd9Cmd {
            $($(#[$doc])* $var,)*
        }
        impl From<Drbd9Cmd> for u8 {
            fn from(cmd: Drbd9Cmd) -> u8 {
                match cmd { $(Drbd9Cmd::$var => $num,)* }
            }
        }
        impl TryFrom<u8> for Drbd9Cmd {
            type Error = DecodeError;
            fn try_from(value: u8) -> Result<Self, DecodeError> {
                Ok(match value {
                    $($num => Drbd9Cmd::$var,)*
                    other => return Err(DecodeError::from(format!("unknown DRBD 9 command {other}"))),
                })
            }
        }
    };
}

cmds! {
    /// `DRBD_ADM_NEW_MINOR` (5): `drbdsetup new-minor`.
    NewMinor = 5;
    /// `DRBD_ADM_DEL_MINOR` (6): `drbdsetup del-minor`.
    DelMinor = 6;
    /// `DRBD_ADM_NEW_RESOURCE` (7): `drbdsetup new-resource`.
    NewResource = 7;
    /// `DRBD_ADM_DEL_RESOURCE` (8): `drbdsetup del-resource`.
    DelResource = 8;
    /// `DRBD_ADM_RESOURCE_OPTS` (9): `drbdsetup resource-options`.
    ResourceOpts = 9;
    /// `DRBD_ADM_CONNECT` (10): `drbdsetup connect`.
    Connect = 10;
    /// `DRBD_ADM_DISCONNECT` (11): `drbdsetup disconnect`.
    Disconnect = 11;
    /// `DRBD_ADM_ATTACH` (12): `drbdsetup attach`.
    Attach = 12;
    /// `DRBD_ADM_RESIZE` (13): `drbdsetup resize`.
    Resize = 13;
    /// `DRBD_ADM_PRIMARY` (14): `drbdsetup primary` (per resource).
    Primary = 14;
    /// `DRBD_ADM_SECONDARY` (15): `drbdsetup secondary` (per resource).
    Secondary = 15;
    /// `DRBD_ADM_NEW_C_UUID` (16): `drbdsetup new-current-uuid`.
    NewCUuid = 16;
    /// `DRBD_ADM_START_OV` (17): `drbdsetup verify`.
    StartOv = 17;
    /// `DRBD_ADM_DETACH` (18): `drbdsetup detach`.
    Detach = 18;
    /// `DRBD_ADM_INVALIDATE` (19): `drbdsetup invalidate`.
    Invalidate = 19;
    /// `DRBD_ADM_INVAL_PEER` (20): `drbdsetup invalidate-remote`.
    InvalPeer = 20;
    /// `DRBD_ADM_PAUSE_SYNC` (21): `drbdsetup pause-sync`.
    PauseSync = 21;
    /// `DRBD_ADM_RESUME_SYNC` (22): `drbdsetup resume-sync`.
    ResumeSync = 22;
    /// `DRBD_ADM_SUSPEND_IO` (23): `drbdsetup suspend-io`.
    SuspendIo = 23;
    /// `DRBD_ADM_RESUME_IO` (24): `drbdsetup resume-io`.
    ResumeIo = 24;
    /// `DRBD_ADM_OUTDATE` (25): `drbdsetup outdate`.
    Outdate = 25;
    /// `DRBD_ADM_GET_TIMEOUT_TYPE` (26): `drbdsetup wait-connect` helper.
    GetTimeoutType = 26;
    /// `DRBD_ADM_DOWN` (27): `drbdsetup down`.
    Down = 27;
    /// `DRBD_ADM_CHG_DISK_OPTS` (28): `drbdsetup disk-options`.
    ChgDiskOpts = 28;
    /// `DRBD_ADM_CHG_NET_OPTS` (29): `drbdsetup net-options`.
    ChgNetOpts = 29;
    /// `DRBD_ADM_GET_RESOURCES` (30): dump of resources.
    GetResources = 30;
    /// `DRBD_ADM_GET_DEVICES` (31): dump of devices.
    GetDevices = 31;
    /// `DRBD_ADM_GET_CONNECTIONS` (32): dump of connections.
    GetConnections = 32;
    /// `DRBD_ADM_GET_PEER_DEVICES` (33): dump of peer devices.
    GetPeerDevices = 33;
    /// `DRBD_RESOURCE_STATE` (34): events2 notification.
    ResourceState = 34;
    /// `DRBD_DEVICE_STATE` (35): events2 notification.
    DeviceState = 35;
    /// `DRBD_CONNECTION_STATE` (36): events2 notification.
    ConnectionState = 36;
    /// `DRBD_PEER_DEVICE_STATE` (37): events2 notification.
    PeerDeviceState = 37;
    /// `DRBD_ADM_GET_INITIAL_STATE` (38): `drbdsetup events2 --now` snapshot dump.
    GetInitialState = 38;
    /// `DRBD_HELPER` (40): events2 helper notification.
    Helper = 40;
    /// `DRBD_INITIAL_STATE_DONE` (41): end of the initial-state snapshot.
    InitialStateDone = 41;
    /// `DRBD_ADM_FORGET_PEER` (42): `drbdsetup forget-peer`.
    ForgetPeer = 42;
    /// `DRBD_ADM_CHG_PEER_DEVICE_OPTS` (43): `drbdsetup peer-device-options`.
    ChgPeerDeviceOpts = 43;
    /// `DRBD_ADM_NEW_PEER` (44): `drbdsetup new-peer`.
    NewPeer = 44;
    /// `DRBD_ADM_NEW_PATH` (45): `drbdsetup new-path`.
    NewPath = 45;
    /// `DRBD_ADM_DEL_PEER` (46): `drbdsetup del-peer`.
    DelPeer = 46;
    /// `DRBD_ADM_DEL_PATH` (47): `drbdsetup del-path`.
    DelPath = 47;
    /// `DRBD_PATH_STATE` (48): events2 notification.
    PathState = 48;
    /// `DRBD_ADM_RENAME_RESOURCE` (49): `drbdsetup rename-resource`.
    RenameResource = 49;
    /// `DRBD_ADM_GET_PATHS` (50): dump of paths.
    GetPaths = 50;
}

/// A DRBD 9 generic-netlink message (the payload after `genlmsghdr`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Drbd9Message {
    /// The command.
    pub cmd: Drbd9Cmd,
    /// The DRBD user header (minor, flags / ret_code), the same 8 bytes as 8.4's.
    pub header: DrbdHeader,
    /// Top-level attributes, in wire order.
    pub attrs: Vec<Drbd9Attr>,
}

impl Drbd9Message {
    /// A request: `cmd` on `minor` (or [`crate::MINOR_NONE`]) with `attrs`.
    pub fn new(cmd: Drbd9Cmd, minor: u32, attrs: Vec<Drbd9Attr>) -> Self {
        Self {
            cmd,
            header: DrbdHeader::new(minor),
            attrs,
        }
    }

    /// The CFG_CONTEXT set, if any (the last one when a reply carries two).
    pub fn cfg_context(&self) -> Option<&AttrSet<CfgContext>> {
        self.attrs.iter().rev().find_map(|a| match a {
            Drbd9Attr::CfgContext(set) => Some(set),
            _ => None,
        })
    }

    /// The kernel's `info_text` (CFG_REPLY), if any.
    pub fn info_text(&self) -> Option<&str> {
        self.attrs.iter().find_map(|a| match a {
            Drbd9Attr::CfgReply(set) => set.iter().find_map(|f| match f {
                CfgReply::InfoText(t) => Some(t.as_str()),
                _ => None,
            }),
            _ => None,
        })
    }

    /// Parses the bytes after `genlmsghdr` for command `cmd`.
    ///
    /// # Errors
    /// A [`DecodeError`] for an unknown command, a short header or a malformed attribute.
    pub fn parse_payload(cmd: u8, buf: &[u8]) -> Result<Self, DecodeError> {
        let cmd = Drbd9Cmd::try_from(cmd)?;
        let header = DrbdHeader::parse(buf)?;
        let mut attrs = Vec::new();
        for nla in NlasIterator::new(buf.get(DRBD_GENL_HDRLEN..).unwrap_or(&[])) {
            let nla: NlaBuffer<&[u8]> = nla.context("invalid DRBD 9 top-level attribute")?;
            attrs.push(Drbd9Attr::parse(&nla)?);
        }
        Ok(Self { cmd, header, attrs })
    }
}

impl GenlFamily for Drbd9Message {
    fn family_name() -> &'static str {
        DRBD_FAMILY_NAME
    }

    fn command(&self) -> u8 {
        self.cmd.into()
    }

    fn version(&self) -> u8 {
        DRBD_API_VERSION_9 as u8
    }
}

impl Emitable for Drbd9Message {
    fn buffer_len(&self) -> usize {
        DRBD_GENL_HDRLEN + self.attrs.as_slice().buffer_len()
    }

    fn emit(&self, buffer: &mut [u8]) {
        // invariant: netlink-packet-core hands us buffer_len() bytes.
        if let Some(hdr) = buffer.get_mut(..DRBD_GENL_HDRLEN) {
            self.header.emit(hdr);
        }
        crate::nla::emit_tlas(
            buffer.get_mut(DRBD_GENL_HDRLEN..).unwrap_or_default(),
            &self.attrs,
        );
    }
}
