//! DRBD reply codes: `enum drbd_ret_code` (>= 100) and `enum drbd_state_rv`
//! (<= 4), with the kernel's names and drbdsetup's texts (`drbd.h`,
//! drbd-utils `user/v84/drbdsetup.c` `error_messages[]`, `drbd_strings.c`).

use std::fmt;

macro_rules! code_enum {
    ($(#[$meta:meta])* $name:ident { $($var:ident = $num:literal, $cname:literal, $text:literal;)* }) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        #[non_exhaustive]
        pub enum $name {
            $(#[doc = concat!("`", $cname, "` (", stringify!($num), "): ", $text)] $var,)*
            /// A value this crate does not know.
            Other(i32),
        }
        impl From<i32> for $name {
            // A number listed twice (one per API) decodes to its first entry.
            #[allow(unreachable_patterns)]
            fn from(v: i32) -> Self {
                match v { $($num => Self::$var,)* other => Self::Other(other) }
            }
        }
        impl From<$name> for i32 {
            fn from(v: $name) -> i32 {
                match v { $($name::$var => $num,)* $name::Other(o) => o }
            }
        }
        impl $name {
            /// The kernel's constant name, e.g. `ERR_MINOR_INVALID`.
            pub fn name(&self) -> &'static str {
                match self { $(Self::$var => $cname,)* Self::Other(_) => "UNKNOWN" }
            }
            /// The text drbdsetup prints for this code.
            pub fn text(&self) -> &'static str {
                match self { $(Self::$var => $text,)* Self::Other(_) => "unknown code" }
            }
        }
        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "({}) {} [{}]", i32::from(*self), self.text(), self.name())
            }
        }
    };
}

code_enum! {
    /// `enum drbd_ret_code`: the result of configuration commands.
    RetCode {
        NoError = 101, "NO_ERROR", "No further Information available.";
        LocalAddr = 102, "ERR_LOCAL_ADDR", "Local address(port) already in use.";
        PeerAddr = 103, "ERR_PEER_ADDR", "Remote address(port) already in use.";
        OpenDisk = 104, "ERR_OPEN_DISK", "Can not open backing device.";
        OpenMdDisk = 105, "ERR_OPEN_MD_DISK", "Can not open meta device.";
        DiskNotBdev = 107, "ERR_DISK_NOT_BDEV", "Lower device is not a block device.";
        MdNotBdev = 108, "ERR_MD_NOT_BDEV", "Meta device is not a block device.";
        DiskTooSmall = 111, "ERR_DISK_TOO_SMALL", "Low.dev. smaller than requested DRBD-dev. size.";
        MdDiskTooSmall = 112, "ERR_MD_DISK_TOO_SMALL", "Meta device too small.";
        BdclaimDisk = 114, "ERR_BDCLAIM_DISK", "Lower device is already claimed. This usually means it is mounted.";
        BdclaimMdDisk = 115, "ERR_BDCLAIM_MD_DISK", "Meta device is already claimed. This usually means it is mounted.";
        MdIdxInvalid = 116, "ERR_MD_IDX_INVALID", "Lower device / meta device / index combination invalid.";
        IoMdDisk = 118, "ERR_IO_MD_DISK", "IO error(s) occurred during initial access to meta-data.";
        MdInvalid = 119, "ERR_MD_INVALID", "No valid meta-data signature found.";
        AuthAlg = 120, "ERR_AUTH_ALG", "The 'cram-hmac-alg' you specified is not known in the kernel.";
        AuthAlgNd = 121, "ERR_AUTH_ALG_ND", "The 'cram-hmac-alg' you specified is not a digest.";
        Nomem = 122, "ERR_NOMEM", "kmalloc() failed. Out of memory?";
        DiscardImpossible = 123, "ERR_DISCARD_IMPOSSIBLE", "--discard-my-data not allowed when primary.";
        DiskConfigured = 124, "ERR_DISK_CONFIGURED", "Device is attached to a disk (use detach first)";
        NetConfigured = 125, "ERR_NET_CONFIGURED", "Device has a net-config (use disconnect first)";
        MandatoryTag = 126, "ERR_MANDATORY_TAG", "UnknownMandatoryTag";
        MinorInvalid = 127, "ERR_MINOR_INVALID", "Device minor not allocated";
        Intr = 129, "ERR_INTR", "Interrupted by Signal";
        ResizeResync = 130, "ERR_RESIZE_RESYNC", "Resize not allowed during resync.";
        NoPrimary = 131, "ERR_NO_PRIMARY", "Need one Primary node to resize.";
        ResyncAfter = 132, "ERR_RESYNC_AFTER", "The resync-after minor number is invalid";
        ResyncAfterCycle = 133, "ERR_RESYNC_AFTER_CYCLE", "This would cause a resync-after dependency cycle";
        PauseIsSet = 134, "ERR_PAUSE_IS_SET", "Sync-pause flag is already set";
        PauseIsClear = 135, "ERR_PAUSE_IS_CLEAR", "Sync-pause flag is already cleared";
        PacketNr = 137, "ERR_PACKET_NR", "Kernel does not know how to handle your request. Maybe API_VERSION mismatch?";
        NoDisk = 138, "ERR_NO_DISK", "Device does not have a disk-config";
        NotProtoC = 139, "ERR_NOT_PROTO_C", "Protocol C required";
        NomemBitmap = 140, "ERR_NOMEM_BITMAP", "vmalloc() failed. Out of memory?";
        IntegrityAlg = 141, "ERR_INTEGRITY_ALG", "The 'data-integrity-alg' you specified is not known in the kernel.";
        IntegrityAlgNd = 142, "ERR_INTEGRITY_ALG_ND", "The 'data-integrity-alg' you specified is not a digest.";
        CpuMaskParse = 143, "ERR_CPU_MASK_PARSE", "Invalid cpu-mask.";
        CsumsAlg = 144, "ERR_CSUMS_ALG", "CSUMSAlgNotAvail";
        CsumsAlgNd = 145, "ERR_CSUMS_ALG_ND", "CSUMSAlgNotDigest";
        VerifyAlg = 146, "ERR_VERIFY_ALG", "VERIFYAlgNotAvail";
        VerifyAlgNd = 147, "ERR_VERIFY_ALG_ND", "VERIFYAlgNotDigest";
        CsumsResyncRunning = 148, "ERR_CSUMS_RESYNC_RUNNING", "Can not change csums-alg while resync is in progress";
        VerifyRunning = 149, "ERR_VERIFY_RUNNING", "Can not change verify-alg while online verify runs";
        DataNotCurrent = 150, "ERR_DATA_NOT_CURRENT", "Can only attach to the data we lost last (see kernel log).";
        Connected = 151, "ERR_CONNECTED", "Need to be StandAlone";
        Perm = 152, "ERR_PERM", "Permission denied. CAP_SYS_ADMIN necessary";
        NeedApv93 = 153, "ERR_NEED_APV_93", "Protocol version 93 required to use --assume-clean";
        StonithAndProtA = 154, "ERR_STONITH_AND_PROT_A", "Fencing policy resource-and-stonith only with prot B or C allowed";
        CongNotProtoA = 155, "ERR_CONG_NOT_PROTO_A", "on-congestion policy pull-ahead only with prot A allowed";
        PicAfterDep = 156, "ERR_PIC_AFTER_DEP", "Sync-pause flag is already cleared. Note: Resync pause caused by a local resync-after dependency.";
        PicPeerDep = 157, "ERR_PIC_PEER_DEP", "Sync-pause flag is already cleared. Note: Resync pause caused by the peer node.";
        ResNotKnown = 158, "ERR_RES_NOT_KNOWN", "Unknown resource";
        ResInUse = 159, "ERR_RES_IN_USE", "Resource still in use (delete all minors first)";
        MinorConfigured = 160, "ERR_MINOR_CONFIGURED", "Minor still configured (down it first)";
        MinorOrVolumeExists = 161, "ERR_MINOR_OR_VOLUME_EXISTS", "Minor or volume exists already (delete it first)";
        InvalidRequest = 162, "ERR_INVALID_REQUEST", "Invalid configuration request";
        NeedApv100 = 163, "ERR_NEED_APV_100", "Prot version 100 required in order to change these network options while connected";
        NeedAllowTwoPri = 164, "ERR_NEED_ALLOW_TWO_PRI", "Can not clear allow_two_primaries as long as there a primaries on both sides";
        MdUnclean = 165, "ERR_MD_UNCLEAN", "Unclean meta-data found. You need to 'drbdadm apply-al res'";
        MdLayoutConnected = 166, "ERR_MD_LAYOUT_CONNECTED", "DRBD need to be connected for online MD layout change";
        MdLayoutTooBig = 167, "ERR_MD_LAYOUT_TOO_BIG", "Resulting AL area too big";
        MdLayoutTooSmall = 168, "ERR_MD_LAYOUT_TOO_SMALL", "Resulting AL are too small";
        MdLayoutNoFit = 169, "ERR_MD_LAYOUT_NO_FIT", "Resulting AL does not fit into available meta data space";
        ImplicitShrink = 170, "ERR_IMPLICIT_SHRINK", "Implicit device shrinking not allowed. See kernel log.";
    }
}

code_enum! {
    /// `enum drbd_state_rv`: the result of state-changing commands. −22..−28 exist in DRBD 9
    /// only (drbd-headers 32c2e607 `linux/drbd.h`), where −21 is `SS_INTERRUPTED`, not 8.4's
    /// `SS_OUTDATE_WO_CONN`: `From<i32>` reads 8.4's numbering, [`StateRv::from_v9`] DRBD 9's.
    StateRv {
        CwNoNeed = 4, "SS_CW_NO_NEED", "(success)";
        CwSuccess = 3, "SS_CW_SUCCESS", "(success)";
        NothingToDo = 2, "SS_NOTHING_TO_DO", "(success)";
        Success = 1, "SS_SUCCESS", "(success)";
        UnknownError = 0, "SS_UNKNOWN_ERROR", "unknown error";
        TwoPrimaries = -1, "SS_TWO_PRIMARIES", "Multiple primaries not allowed by config";
        NoUpToDateDisk = -2, "SS_NO_UP_TO_DATE_DISK", "Need access to UpToDate data";
        NoLocalDisk = -4, "SS_NO_LOCAL_DISK", "Can not resync without local disk";
        NoRemoteDisk = -5, "SS_NO_REMOTE_DISK", "Can not resync without remote disk";
        ConnectedOutdates = -6, "SS_CONNECTED_OUTDATES", "Refusing to be Outdated while Connected";
        PrimaryNop = -7, "SS_PRIMARY_NOP", "Refusing to be Primary while peer is not outdated";
        ResyncRunning = -8, "SS_RESYNC_RUNNING", "Can not start OV/resync since it is already active";
        AlreadyStandalone = -9, "SS_ALREADY_STANDALONE", "Can not disconnect a StandAlone device";
        CwFailedByPeer = -10, "SS_CW_FAILED_BY_PEER", "State change was refused by peer node";
        IsDiskless = -11, "SS_IS_DISKLESS", "Device is diskless, the requested operation requires a disk";
        DeviceInUse = -12, "SS_DEVICE_IN_USE", "Device is held open by someone";
        NoNetConfig = -13, "SS_NO_NET_CONFIG", "Have no net/connection configuration";
        NoVerifyAlg = -14, "SS_NO_VERIFY_ALG", "Need a verify algorithm to start online verify";
        NeedConnection = -15, "SS_NEED_CONNECTION", "Need a connection to start verify or resync";
        LowerThanOutdated = -16, "SS_LOWER_THAN_OUTDATED", "Disk state is lower than outdated";
        NotSupported = -17, "SS_NOT_SUPPORTED", "Peer does not support protocol";
        InTransientState = -18, "SS_IN_TRANSIENT_STATE", "In transient state, retry after next state change";
        ConcurrentStChg = -19, "SS_CONCURRENT_ST_CHG", "Concurrent state changes detected and aborted";
        OVolPeerPri = -20, "SS_O_VOL_PEER_PRI", "Other vol primary on peer not allowed by config";
        OutdateWoConn = -21, "SS_OUTDATE_WO_CONN", "Need a connection for a graceful disconnect/outdate peer";
        Interrupted = -21, "SS_INTERRUPTED", "Interrupted state change";
        PrimaryReader = -22, "SS_PRIMARY_READER", "Peer may not become primary while device is opened read-only";
        Timeout = -23, "SS_TIMEOUT", "Timeout in operation";
        WeaklyConnected = -24, "SS_WEAKLY_CONNECTED", "Primary nodes must be strongly connected among each other";
        NoQuorum = -25, "SS_NO_QUORUM", "No quorum";
        AttachNoBitmap = -26, "SS_ATTACH_NO_BITMAP", "Intentional diskless peer may not attach a disk";
        HandshakeDisconnect = -27, "SS_HANDSHAKE_DISCONNECT", "Disconnect chosen in handshake";
        HandshakeRetry = -28, "SS_HANDSHAKE_RETRY", "Retry chosen in handshake";
    }
}

impl StateRv {
    /// `SS_SUCCESS` .. `SS_CW_NO_NEED` (1..=4).
    pub fn is_success(&self) -> bool {
        (1..=4).contains(&i32::from(*self))
    }

    /// A code in DRBD 9's numbering: as `From<i32>` (8.4's) except −21, `SS_INTERRUPTED`.
    pub fn from_v9(v: i32) -> Self {
        match v {
            -21 => Self::Interrupted,
            other => Self::from(other),
        }
    }
}

/// The `ret_code` of a DRBD reply, classified.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum ReplyCode {
    /// A `drbd_ret_code` (>= 100).
    Ret(RetCode),
    /// A `drbd_state_rv` (< 100).
    State(StateRv),
}

impl ReplyCode {
    /// Classifies a raw `ret_code` of the 8.4 API.
    pub fn from_raw(v: i32) -> Self {
        if v >= 100 {
            Self::Ret(RetCode::from(v))
        } else {
            Self::State(StateRv::from(v))
        }
    }

    /// Classifies a raw `ret_code` of the DRBD 9 API (see [`StateRv::from_v9`]).
    pub fn from_raw_v9(v: i32) -> Self {
        match Self::from_raw(v) {
            Self::State(_) => Self::State(StateRv::from_v9(v)),
            ret => ret,
        }
    }

    /// 101 (`NO_ERROR`) or 1..=4 (`SS_SUCCESS` and friends).
    pub fn is_success(&self) -> bool {
        match self {
            Self::Ret(r) => *r == RetCode::NoError,
            Self::State(s) => s.is_success(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classify() {
        assert!(ReplyCode::from_raw(101).is_success());
        assert!(ReplyCode::from_raw(2).is_success());
        assert_eq!(
            ReplyCode::from_raw(-1),
            ReplyCode::State(StateRv::TwoPrimaries)
        );
        assert_eq!(
            ReplyCode::from_raw(127),
            ReplyCode::Ret(RetCode::MinorInvalid)
        );
        assert_eq!(RetCode::MinorInvalid.name(), "ERR_MINOR_INVALID");
        assert_eq!(i32::from(RetCode::from(999)), 999);
        assert!(!ReplyCode::from_raw(0).is_success());
    }

    #[test]
    fn minus_21_is_named_per_api() {
        let v84 = ReplyCode::from_raw(-21);
        assert_eq!(v84, ReplyCode::State(StateRv::OutdateWoConn));
        let v9 = ReplyCode::from_raw_v9(-21);
        assert_eq!(v9, ReplyCode::State(StateRv::Interrupted));
        assert_eq!(StateRv::Interrupted.name(), "SS_INTERRUPTED");
        assert_eq!(StateRv::Interrupted.text(), "Interrupted state change");
        assert_eq!(i32::from(StateRv::Interrupted), -21);
        // Every other code reads the same in both APIs.
        for v in (-28..=4).chain([101, 127, 158]).filter(|v| *v != -21) {
            assert_eq!(ReplyCode::from_raw_v9(v), ReplyCode::from_raw(v), "{v}");
        }
        assert_eq!(StateRv::from_v9(-25), StateRv::NoQuorum);
    }
}
