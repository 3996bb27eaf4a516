//! Typed DRBD 8.4 state: roles, connection and disk states, the 32-bit state
//! word (`union drbd_state`, `include/linux/drbd.h`). Names are DRBD's own, as
//! `drbdsetup` prints them (`drbd_strings.c`).

use std::fmt;
use std::str::FromStr;

use crate::error::DrbdError;

macro_rules! kernel_enum {
    ($(#[$meta:meta])* $name:ident { $($(#[$d:meta])* $var:ident = $num:literal => $text:literal,)* }) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        #[non_exhaustive]
        pub enum $name {
            $($(#[$d])* $var,)*
            /// A value this crate does not know.
            Other(u8),
        }
        impl From<u8> for $name {
            fn from(v: u8) -> Self {
                match v { $($num => Self::$var,)* other => Self::Other(other) }
            }
        }
        impl From<$name> for u8 {
            fn from(v: $name) -> u8 {
                match v { $($name::$var => $num,)* $name::Other(other) => other }
            }
        }
        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                match self { $(Self::$var => f.write_str($text),)* Self::Other(_) => f.write_str("TOO_LARGE") }
            }
        }
        impl FromStr for $name {
            type Err = DrbdError;
            fn from_str(s: &str) -> Result<Self, DrbdError> {
                match s {
                    $($text => Ok(Self::$var),)*
                    other => Err(DrbdError::InvalidName { kind: stringify!($name), name: other.to_string() }),
                }
            }
        }
    };
}
pub(crate) use kernel_enum;

kernel_enum! {
    /// `enum drbd_role`.
    Role {
        /// `R_UNKNOWN` (0).
        Unknown = 0 => "Unknown",
        /// `R_PRIMARY` (1).
        Primary = 1 => "Primary",
        /// `R_SECONDARY` (2).
        Secondary = 2 => "Secondary",
    }
}

kernel_enum! {
    /// `enum drbd_conns` (8.4 connection state).
    ConnState {
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
        /// `C_WF_CONNECTION` (8).
        WFConnection = 8 => "WFConnection",
        /// `C_WF_REPORT_PARAMS` (9).
        WFReportParams = 9 => "WFReportParams",
        /// `C_CONNECTED` (10).
        Connected = 10 => "Connected",
        /// `C_STARTING_SYNC_S` (11).
        StartingSyncS = 11 => "StartingSyncS",
        /// `C_STARTING_SYNC_T` (12).
        StartingSyncT = 12 => "StartingSyncT",
        /// `C_WF_BITMAP_S` (13).
        WFBitMapS = 13 => "WFBitMapS",
        /// `C_WF_BITMAP_T` (14).
        WFBitMapT = 14 => "WFBitMapT",
        /// `C_WF_SYNC_UUID` (15).
        WFSyncUUID = 15 => "WFSyncUUID",
        /// `C_SYNC_SOURCE` (16).
        SyncSource = 16 => "SyncSource",
        /// `C_SYNC_TARGET` (17).
        SyncTarget = 17 => "SyncTarget",
        /// `C_VERIFY_S` (18).
        VerifyS = 18 => "VerifyS",
        /// `C_VERIFY_T` (19).
        VerifyT = 19 => "VerifyT",
        /// `C_PAUSED_SYNC_S` (20).
        PausedSyncS = 20 => "PausedSyncS",
        /// `C_PAUSED_SYNC_T` (21).
        PausedSyncT = 21 => "PausedSyncT",
        /// `C_AHEAD` (22).
        Ahead = 22 => "Ahead",
        /// `C_BEHIND` (23).
        Behind = 23 => "Behind",
    }
}

kernel_enum! {
    /// `enum drbd_disk_state` (8.4 numbering; DRBD 9 renumbers).
    DiskState {
        /// `D_DISKLESS` (0).
        Diskless = 0 => "Diskless",
        /// `D_ATTACHING` (1).
        Attaching = 1 => "Attaching",
        /// `D_FAILED` (2).
        Failed = 2 => "Failed",
        /// `D_NEGOTIATING` (3).
        Negotiating = 3 => "Negotiating",
        /// `D_INCONSISTENT` (4).
        Inconsistent = 4 => "Inconsistent",
        /// `D_OUTDATED` (5).
        Outdated = 5 => "Outdated",
        /// `D_UNKNOWN` (6).
        DUnknown = 6 => "DUnknown",
        /// `D_CONSISTENT` (7).
        Consistent = 7 => "Consistent",
        /// `D_UP_TO_DATE` (8).
        UpToDate = 8 => "UpToDate",
    }
}

impl ConnState {
    /// Whether a replication link is up (the kernel's `conn >= C_CONNECTED`).
    pub fn is_connected(self) -> bool {
        u8::from(self) >= 10
    }
}

bitflags::bitflags! {
    /// Suspend and sync-pause bits of the state word (bits 17-22).
    #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
    pub struct SuspendFlags: u32 {
        /// `susp`: I/O suspended by the user.
        const SUSP = 1 << 17;
        /// `aftr_isp`: sync paused by a resync-after dependency.
        const AFTR_ISP = 1 << 18;
        /// `peer_isp`: sync paused by the peer.
        const PEER_ISP = 1 << 19;
        /// `user_isp`: sync paused by the user.
        const USER_ISP = 1 << 20;
        /// `susp_nod`: I/O suspended, no data reachable.
        const SUSP_NOD = 1 << 21;
        /// `susp_fen`: I/O suspended while fencing.
        const SUSP_FEN = 1 << 22;
        const _ = !0;
    }
}

/// A decoded `union drbd_state` word.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub struct State {
    /// Local role (bits 0-1).
    pub role: Role,
    /// Peer role (bits 2-3).
    pub peer: Role,
    /// Connection state (bits 4-8).
    pub conn: ConnState,
    /// Local disk state (bits 9-12).
    pub disk: DiskState,
    /// Peer disk state (bits 13-16).
    pub pdsk: DiskState,
    /// Suspend / sync-pause bits (17-22), and any unknown high bits.
    pub flags: SuspendFlags,
}

impl State {
    /// Decodes a state word.
    pub fn from_word(word: u32) -> Self {
        Self {
            role: Role::from((word & 0x3) as u8),
            peer: Role::from(((word >> 2) & 0x3) as u8),
            conn: ConnState::from(((word >> 4) & 0x1f) as u8),
            disk: DiskState::from(((word >> 9) & 0xf) as u8),
            pdsk: DiskState::from(((word >> 13) & 0xf) as u8),
            flags: SuspendFlags::from_bits_retain(word & !0x1_ffff),
        }
    }

    /// Encodes the state word (the inverse of [`State::from_word`]).
    pub fn to_word(&self) -> u32 {
        (u32::from(u8::from(self.role)) & 0x3)
            | ((u32::from(u8::from(self.peer)) & 0x3) << 2)
            | ((u32::from(u8::from(self.conn)) & 0x1f) << 4)
            | ((u32::from(u8::from(self.disk)) & 0xf) << 9)
            | ((u32::from(u8::from(self.pdsk)) & 0xf) << 13)
            | (self.flags.bits() & !0x1_ffff)
    }

    /// Whether I/O is suspended for any reason (`susp`, `susp_nod`, `susp_fen`).
    pub fn io_suspended(&self) -> bool {
        self.flags
            .intersects(SuspendFlags::SUSP | SuspendFlags::SUSP_NOD | SuspendFlags::SUSP_FEN)
    }

    /// The four flag letters of `drbdsetup events`: `s|r`, `a|-`, `p|-`, `u|-`.
    pub fn flag_letters(&self) -> String {
        let mut s = String::with_capacity(4);
        s.push(if self.io_suspended() { 's' } else { 'r' });
        s.push(if self.flags.contains(SuspendFlags::AFTR_ISP) {
            'a'
        } else {
            '-'
        });
        s.push(if self.flags.contains(SuspendFlags::PEER_ISP) {
            'p'
        } else {
            '-'
        });
        s.push(if self.flags.contains(SuspendFlags::USER_ISP) {
            'u'
        } else {
            '-'
        });
        s
    }
}

impl From<u32> for State {
    fn from(word: u32) -> Self {
        Self::from_word(word)
    }
}

/// `drbdsetup events` form: `cs:<conn> ro:<role>/<peer> ds:<disk>/<pdsk> <flags>`.
impl fmt::Display for State {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "cs:{} ro:{}/{} ds:{}/{} {}",
            self.conn,
            self.role,
            self.peer,
            self.disk,
            self.pdsk,
            self.flag_letters()
        )
    }
}

kernel_enum! {
    /// `enum state_info_reason` (`sib_reason` of STATE_INFO).
    SibReason {
        /// `SIB_GET_STATUS_REPLY` (1).
        GetStatusReply = 1 => "GetStatusReply",
        /// `SIB_STATE_CHANGE` (2).
        StateChange = 2 => "StateChange",
        /// `SIB_HELPER_PRE` (3).
        HelperPre = 3 => "HelperPre",
        /// `SIB_HELPER_POST` (4).
        HelperPost = 4 => "HelperPost",
        /// `SIB_SYNC_PROGRESS` (5).
        SyncProgress = 5 => "SyncProgress",
    }
}

impl SibReason {
    /// From the u32 on the wire (values above 255 become `Other(255)`).
    pub fn from_u32(v: u32) -> Self {
        u8::try_from(v)
            .map(Self::from)
            .unwrap_or(Self::Other(u8::MAX))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn observed_words() {
        let s = State::from_word(0x0000_d081);
        assert_eq!(s.conn, ConnState::WFConnection);
        assert_eq!(s.role, Role::Primary);
        assert_eq!(s.peer, Role::Unknown);
        assert_eq!(s.disk, DiskState::UpToDate);
        assert_eq!(s.pdsk, DiskState::DUnknown);
        assert_eq!(s.to_word(), 0x0000_d081);
        let s = State::from_word(0x0000_88aa);
        assert_eq!(
            s.to_string(),
            "cs:Connected ro:Secondary/Secondary ds:Inconsistent/Inconsistent r---"
        );
        let s = State::from_word(0x0000_c002);
        assert_eq!(
            s.to_string(),
            "cs:StandAlone ro:Secondary/Unknown ds:Diskless/DUnknown r---"
        );
        assert_eq!(State::from_word(0x0000_c202).disk, DiskState::Attaching);
    }

    #[test]
    fn every_word_round_trips() {
        for w in [0u32, 0xffff_ffff, 0x0012_3456, 0x7f_ffff] {
            assert_eq!(State::from_word(w).to_word(), w);
        }
    }

    #[test]
    fn names_round_trip() {
        for v in 0..=23u8 {
            let c = ConnState::from(v);
            assert_eq!(c.to_string().parse::<ConnState>().ok(), Some(c));
        }
        for v in 0..=8u8 {
            let d = DiskState::from(v);
            assert_eq!(d.to_string().parse::<DiskState>().ok(), Some(d));
        }
        assert!("Bogus".parse::<Role>().is_err());
    }
}
