//! DRBD 9 state enums (`drbd-headers/linux/drbd.h` at 32c2e607). The connection state and the
//! replication state are separate in DRBD 9 and the disk states are renumbered
//! (`D_DETACHING` = 2), so these differ from 8.4's [`crate::ConnState`] and [`crate::DiskState`].
//! Roles keep 8.4's numbers: [`crate::Role`].

use std::fmt;
use std::str::FromStr;

use crate::error::DrbdError;
use crate::state::kernel_enum;

kernel_enum! {
    /// `enum drbd_conn_state`: the state of one connection (per peer).
    ConnectionState {
        /// `C_STANDALONE` (0).
        StandAlone = 0 => "StandAlone",
        /// `C_DISCONNECTING` (1).
        Disconnecting = 1 => "Disconnecting",
        /// `C_UNCONNECTED` (2).
        Unconnected = 2 => "Unconnected",
        /// `C_TIMEOUT` (3).
        Timeout = 3 => "Timeout",
        /// `C_BROKEN_PIPE` (4).
        BrokenPipe = 4 => "BrokenPipe",
        /// `C_NETWORK_FAILURE` (5).
        NetworkFailure = 5 => "NetworkFailure",
        /// `C_PROTOCOL_ERROR` (6).
        ProtocolError = 6 => "ProtocolError",
        /// `C_TEAR_DOWN` (7).
        TearDown = 7 => "TearDown",
        /// `C_CONNECTING` (8).
        Connecting = 8 => "Connecting",
        /// `C_CONNECTED` (9): there is a socket.
        Connected = 9 => "Connected",
    }
}

kernel_enum! {
    /// `enum drbd_repl_state`: the replication state of one peer device.
    ReplState {
        /// `L_OFF` (9).
        Off = 9 => "Off",
        /// `L_ESTABLISHED` (10).
        Established = 10 => "Established",
        /// `L_STARTING_SYNC_S` (11).
        StartingSyncS = 11 => "StartingSyncS",
        /// `L_STARTING_SYNC_T` (12).
        StartingSyncT = 12 => "StartingSyncT",
        /// `L_WF_BITMAP_S` (13).
        WFBitMapS = 13 => "WFBitMapS",
        /// `L_WF_BITMAP_T` (14).
        WFBitMapT = 14 => "WFBitMapT",
        /// `L_WF_SYNC_UUID` (15).
        WFSyncUUID = 15 => "WFSyncUUID",
        /// `L_SYNC_SOURCE` (16).
        SyncSource = 16 => "SyncSource",
        /// `L_SYNC_TARGET` (17).
        SyncTarget = 17 => "SyncTarget",
        /// `L_VERIFY_S` (18).
        VerifyS = 18 => "VerifyS",
        /// `L_VERIFY_T` (19).
        VerifyT = 19 => "VerifyT",
        /// `L_PAUSED_SYNC_S` (20).
        PausedSyncS = 20 => "PausedSyncS",
        /// `L_PAUSED_SYNC_T` (21).
        PausedSyncT = 21 => "PausedSyncT",
        /// `L_AHEAD` (22).
        Ahead = 22 => "Ahead",
        /// `L_BEHIND` (23).
        Behind = 23 => "Behind",
    }
}

kernel_enum! {
    /// `enum drbd_disk_state` of DRBD 9.
    DiskState {
        /// `D_DISKLESS` (0).
        Diskless = 0 => "Diskless",
        /// `D_ATTACHING` (1).
        Attaching = 1 => "Attaching",
        /// `D_DETACHING` (2).
        Detaching = 2 => "Detaching",
        /// `D_FAILED` (3).
        Failed = 3 => "Failed",
        /// `D_NEGOTIATING` (4).
        Negotiating = 4 => "Negotiating",
        /// `D_INCONSISTENT` (5).
        Inconsistent = 5 => "Inconsistent",
        /// `D_OUTDATED` (6).
        Outdated = 6 => "Outdated",
        /// `D_UNKNOWN` (7): only for peers.
        DUnknown = 7 => "DUnknown",
        /// `D_CONSISTENT` (8).
        Consistent = 8 => "Consistent",
        /// `D_UP_TO_DATE` (9): the only state that allows application I/O.
        UpToDate = 9 => "UpToDate",
    }
}

/// `u32` attribute value to an enum: values above 255 become `Other(255)`.
pub(crate) fn from_u32<T: From<u8>>(v: u32) -> T {
    T::from(u8::try_from(v).unwrap_or(u8::MAX))
}
