//! What the agent observes: the authority's wish and the views of DRBD, the target daemon and
//! the addresses, spelled as those subsystems spell them.

use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Serialize};

/// The reason of the initial [`Authority::Unknown`]: nothing heard yet (held silently, no alarm).
pub const NO_SIGNAL_YET: &str = "no signal yet";

/// What the external authority says this node should be.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", tag = "role", content = "reason")]
#[non_exhaustive]
pub enum Authority {
    /// This node should serve.
    Primary,
    /// The other node should serve.
    Secondary,
    /// No usable signal (file missing, unreadable, garbage): an alarm, never a promote.
    Unknown(String),
}

impl fmt::Display for Authority {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Authority::Primary => f.write_str("primary"),
            Authority::Secondary => f.write_str("secondary"),
            Authority::Unknown(r) => write!(f, "unknown ({r})"),
        }
    }
}

/// A DRBD role, spelled as DRBD spells it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[non_exhaustive]
pub enum Role {
    /// Primary.
    Primary,
    /// Secondary.
    Secondary,
    /// Not known (peer unreachable, resource down).
    #[default]
    Unknown,
}

/// A DRBD disk state, spelled as DRBD spells it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[non_exhaustive]
pub enum Disk {
    /// No disk.
    Diskless,
    /// Being attached.
    Attaching,
    /// I/O error, detached.
    Failed,
    /// Negotiating with the peer.
    Negotiating,
    /// Not usable (sync target).
    Inconsistent,
    /// Known stale.
    Outdated,
    /// Not known (peer disk when disconnected).
    #[default]
    DUnknown,
    /// Consistent, freshness unknown.
    Consistent,
    /// Up to date.
    UpToDate,
}

/// A DRBD connection state (8.4 spelling), reduced to what the agent needs.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[non_exhaustive]
pub enum Connection {
    /// Not trying to connect.
    StandAlone,
    /// Waiting for the peer.
    WFConnection,
    /// Connected (including resync states).
    Connected,
    /// Anything else, with DRBD's name.
    Other(String),
    /// Not known yet.
    #[default]
    Unknown,
}

macro_rules! display_debug {
    ($($t:ty),*) => {$(
        impl fmt::Display for $t {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                fmt::Debug::fmt(self, f)
            }
        }
    )*};
}
display_debug!(Role, Disk);

impl Connection {
    /// DRBD's handshake with the peer is done (`C_CONNECTED` or beyond: resync, verify,
    /// Ahead/Behind): both sides compared their data generations.
    pub fn handshaken(&self) -> bool {
        match self {
            Connection::Connected => true,
            Connection::Other(s) => matches!(
                s.as_str(),
                "StartingSyncS"
                    | "StartingSyncT"
                    | "WFBitMapS"
                    | "WFBitMapT"
                    | "WFSyncUUID"
                    | "SyncSource"
                    | "SyncTarget"
                    | "VerifyS"
                    | "VerifyT"
                    | "PausedSyncS"
                    | "PausedSyncT"
                    | "Ahead"
                    | "Behind"
            ),
            _ => false,
        }
    }
}

/// A disk's fencing policy (`disk_conf.fencing`), as DRBD spells it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
#[non_exhaustive]
pub enum Fencing {
    /// Not reported (no disk attached, or not read).
    #[default]
    Unknown,
    /// `dont-care` (DRBD's default): a Consistent disk counts as UpToDate at attach.
    DontCare,
    /// `resource-only`.
    ResourceOnly,
    /// `resource-and-stonith`.
    ResourceAndStonith,
}

impl Fencing {
    /// The policy from its netlink value.
    pub fn from_nl(v: u32) -> Fencing {
        match v {
            0 => Fencing::DontCare,
            1 => Fencing::ResourceOnly,
            2 => Fencing::ResourceAndStonith,
            _ => Fencing::Unknown,
        }
    }

    /// Under this policy an unconnected disk is UpToDate only if it was UpToDate when the
    /// connection was lost or the peer is known Outdated: at attach DRBD leaves a Consistent
    /// disk Consistent unless the peer was marked Outdated (`drbd_adm_attach`).
    pub fn keeps_stale_disk_consistent(self) -> bool {
        matches!(self, Fencing::ResourceOnly | Fencing::ResourceAndStonith)
    }
}

impl fmt::Display for Connection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Connection::Other(s) => f.write_str(s),
            other => fmt::Debug::fmt(other, f),
        }
    }
}

/// What was last observed of one DRBD resource.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct DrbdView {
    /// The resource exists in the kernel (configured and attached or not).
    pub up: bool,
    /// Local role.
    pub role: Role,
    /// Peer role.
    pub peer_role: Role,
    /// Connection state.
    pub connection: Connection,
    /// Local disk.
    pub disk: Disk,
    /// Peer disk.
    pub peer_disk: Disk,
    /// The local disk's fencing policy.
    #[serde(default)]
    pub fencing: Fencing,
    /// The connection's peer-failure detection settings; `None` until read (DRBD's events do
    /// not carry them, the status does).
    #[serde(default)]
    pub net: Option<DrbdNet>,
    /// DRBD 9's own promotion facts; `None` on 8.4.
    #[serde(default)]
    pub drbd9: Option<Drbd9Promotion>,
    /// How far the local and peer data differ; `None` when DRBD did not report it.
    #[serde(default)]
    pub sync: Option<SyncView>,
    /// Each volume of a resource with several ([`DrbdView::of_volumes`]); empty with one.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub volumes: Vec<VolumeView>,
}

/// One volume of a resource with several: its own minor, role and disks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct VolumeView {
    /// Volume number in the resource.
    pub volume: u32,
    /// Its DRBD minor.
    pub minor: u32,
    /// The minor exists in the kernel.
    pub up: bool,
    /// Local role of this minor (DRBD 8.4 keeps one per volume).
    pub role: Role,
    /// Peer role of this minor.
    pub peer_role: Role,
    /// Local disk.
    pub disk: Disk,
    /// Peer disk.
    pub peer_disk: Disk,
}

/// How usable a disk state's data is, worst first: the resource-wide disk is its volumes' worst.
fn disk_rank(d: Disk) -> u8 {
    match d {
        Disk::Diskless => 0,
        Disk::Failed => 1,
        Disk::DUnknown => 2,
        Disk::Attaching => 3,
        Disk::Negotiating => 4,
        Disk::Inconsistent => 5,
        Disk::Outdated => 6,
        Disk::Consistent => 7,
        Disk::UpToDate => 8,
    }
}

/// The common role of all, else `Unknown` (`any_primary`: Primary as soon as one is).
fn common_role(roles: impl Iterator<Item = Role>, any_primary: bool) -> Role {
    let roles: Vec<Role> = roles.collect();
    if any_primary && roles.contains(&Role::Primary) {
        return Role::Primary;
    }
    match roles.split_first() {
        Some((first, rest)) if rest.iter().all(|r| r == first) => *first,
        _ => Role::Unknown,
    }
}

/// What DRBD reports of the data still to copy between the nodes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct SyncView {
    /// Data known to differ from the peer's (DRBD's out-of-sync bitmap), KiB.
    pub out_of_sync_kib: u64,
    /// Progress of the running resync, per mille (as `drbdsetup events` computes it); `None`
    /// when no resync runs or DRBD did not report it.
    pub done_permille: Option<u32>,
}

/// What DRBD 9 says about promoting this node: `may_promote` and `promotion_score` as
/// `drbdsetup events2` derives them from the resource's states (DRBD 9 sends no such field,
/// docs/drbd-genl.md), quorum, and the peers whose connection reports them Primary.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Drbd9Promotion {
    /// Every volume has quorum, is UpToDate here, has an UpToDate replica, and no node of the
    /// resource (this one included) is Primary.
    pub may_promote: bool,
    /// 10000 if every volume has a disk here (UpToDate, Consistent or Inconsistent), plus 100 x
    /// the UpToDate volumes, plus the fewest UpToDate replicas of a volume (each at most 99);
    /// 0 without quorum or without an UpToDate replica. Higher is a better place to promote.
    pub promotion_score: u32,
    /// Every volume has quorum (`dev_has_quorum`; always true when `quorum` is off).
    pub quorum: bool,
    /// Node ids of the peers whose connection reports role Primary.
    pub primary_peers: Vec<u32>,
}

impl Drbd9Promotion {
    /// Why DRBD 9's states forbid promoting whatever the agent's other rules say: the
    /// resource lost quorum (DRBD would refuse with `SS_NO_QUORUM`; promoting a partition
    /// without quorum could fork the data).
    pub fn refusal(&self) -> Option<String> {
        (!self.quorum).then(|| {
            "DRBD 9 reports no quorum (device quorum:no): this partition may not hold the \
             newest data; restore the connections or change the resource's quorum setting"
                .to_string()
        })
    }

    /// ` (node id 1, 2)` naming the Primary peers, empty if none are known.
    pub fn primary_peers_text(&self) -> String {
        if self.primary_peers.is_empty() {
            return String::new();
        }
        let ids: Vec<String> = self.primary_peers.iter().map(u32::to_string).collect();
        format!(" (DRBD 9 node id {})", ids.join(", "))
    }
}

/// How DRBD notices a dead or stuck peer (`net_conf`), as read from DRBD.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct DrbdNet {
    /// `ping-int`, seconds.
    pub ping_int_s: u32,
    /// `ping-timeout`, tenths of a second.
    pub ping_timeout_ds: u32,
    /// `timeout`, tenths of a second.
    pub timeout_ds: u32,
    /// `ko-count` (0 = off).
    pub ko_count: u32,
    /// `allow-two-primaries`.
    pub allow_two_primaries: bool,
}

impl DrbdNet {
    /// Why these settings make failure handling slow or unguarded, one phrase each (without
    /// the resource's name): `allow-two-primaries` on, `ping-int` above twice the recommended
    /// 2 s, `ping-timeout` above 1 s, `ko-count` off or `ko-count` x `timeout` of 30 s or more
    /// (docs/takeover.md, "DRBD settings"). Shown by `status` for adopted resources (read
    /// from DRBD) and by `check-config` for managed ones (as configured).
    pub fn slow_detection(&self) -> Vec<String> {
        use crate::config::{DEFAULT_KO_COUNT, DEFAULT_PING_INT_S, DEFAULT_TIMEOUT_DS};
        let mut out = Vec::new();
        if self.allow_two_primaries {
            out.push(
                "allow-two-primaries is on, so DRBD does not refuse a second Primary; the \
                 agent then waits until DRBD declares a Primary peer lost"
                    .to_string(),
            );
        }
        if self.ping_int_s > 2 * DEFAULT_PING_INT_S {
            out.push(format!(
                "ping-int {} s: a dead peer is noticed only after up to {:.1} s (a Primary's \
                 writes stall that long); recommended {DEFAULT_PING_INT_S}",
                self.ping_int_s,
                f64::from(self.ping_int_s) + f64::from(self.ping_timeout_ds) / 10.0
            ));
        }
        if self.ping_timeout_ds > 10 {
            out.push(format!(
                "ping-timeout {:.1} s: every takeover after a power loss waits it; \
                 recommended 0.5",
                f64::from(self.ping_timeout_ds) / 10.0
            ));
        }
        let ko_s = f64::from(self.ko_count) * f64::from(self.timeout_ds) / 10.0;
        if self.ko_count == 0 || ko_s >= 30.0 {
            out.push(format!(
                "ko-count {} x timeout {:.1} s: writes to a stuck peer may stall past an \
                 initiator's 30 s command timeout; recommended ko-count {DEFAULT_KO_COUNT} \
                 with timeout {:.1} s",
                self.ko_count,
                f64::from(self.timeout_ds) / 10.0,
                f64::from(DEFAULT_TIMEOUT_DS) / 10.0
            ));
        }
        out
    }
}

impl DrbdView {
    /// A healthy replica not serving: up, Secondary/Secondary, Connected, UpToDate/UpToDate
    /// (the in-memory backends' start, and the tests').
    pub fn healthy_secondary() -> DrbdView {
        DrbdView {
            up: true,
            role: Role::Secondary,
            peer_role: Role::Secondary,
            connection: Connection::Connected,
            disk: Disk::UpToDate,
            peer_disk: Disk::UpToDate,
            ..DrbdView::default()
        }
    }

    /// The connection state as this resource's DRBD spells it: DRBD 9 calls the wait for the
    /// peer `Connecting`, 8.4 (and this model) `WFConnection`.
    pub fn connection_name(&self) -> String {
        match self.connection {
            Connection::WFConnection if self.drbd9.is_some() => "Connecting".into(),
            ref c => c.to_string(),
        }
    }

    /// Up but neither attached nor ever connected: what a bring-up that failed at its attach
    /// leaves (the minor exists, Diskless, StandAlone).
    pub fn half_up(&self) -> bool {
        self.up && self.disk == Disk::Diskless && self.connection == Connection::StandAlone
    }

    /// DRBD itself refuses a second Primary here (`SS_TWO_PRIMARIES`): a connection is
    /// configured without `allow-two-primaries`. Then a promote may be asked of DRBD while the
    /// last view still shows the peer Primary: DRBD pings the peer at once and either refuses
    /// (the peer is alive and Primary) or, once the peer is declared lost, promotes (fencing
    /// `dont-care`) or refuses with −7 (its fencing: [`DrbdView::fencing_arbitrates`])
    /// (docs/takeover.md).
    pub fn drbd_arbitrates(&self) -> bool {
        self.net.is_some_and(|n| !n.allow_two_primaries)
    }

    /// DRBD will refuse an unforced `primary` at its first try because the peer is Primary
    /// (`SS_TWO_PRIMARIES`): connected to a Primary peer, `allow-two-primaries` off. DRBD 8.4
    /// has pinged the peer by then and would sleep `ping-timeout` + 0.1 s inside the request
    /// before its one retry ([`DrbdView::refusal_wait`]; docs/takeover.md).
    pub fn refuses_for_primary_peer(&self) -> bool {
        self.drbd_arbitrates()
            && self.connection == Connection::Connected
            && self.peer_role == Role::Primary
    }

    /// How long DRBD 8.4 waits for the peer's answer to the ping a `primary` sends: its own
    /// sleep before the retry, `ping-timeout` + 0.1 s (`drbd_set_role()`), 0.6 s when the
    /// settings were not read (DRBD's default `ping-timeout` of 0.5 s).
    pub fn refusal_wait(&self) -> std::time::Duration {
        let ds = self.net.map_or(5, |n| n.ping_timeout_ds);
        std::time::Duration::from_millis(u64::from(ds + 1) * 100)
    }

    /// The facts DRBD's arbitration of a role change reads are the same in both views:
    /// existence, roles, connection and disks, of the resource and of each volume; not resync
    /// progress or settings.
    pub fn same_standing(&self, other: &DrbdView) -> bool {
        let vols = |v: &DrbdView| {
            v.volumes
                .iter()
                .map(|x| (x.up, x.role, x.peer_role, x.disk, x.peer_disk))
                .collect::<Vec<_>>()
        };
        self.up == other.up
            && self.role == other.role
            && self.peer_role == other.peer_role
            && self.connection == other.connection
            && self.disk == other.disk
            && self.peer_disk == other.peer_disk
            && vols(self) == vols(other)
    }

    /// An unforced `primary` cannot fork the data, in manage mode (the agent's fencing, no
    /// `fence-peer` handler; docs/takeover.md): DRBD refuses a second Primary
    /// ([`DrbdView::drbd_arbitrates`]), and its fencing policy (`resource-only`,
    /// `resource-and-stonith`) refuses Primary without the peer (`SS_PRIMARY_NOP`, −7) unless
    /// the `fence-peer` handler outdates or fences the peer. DRBD skips that refusal when it
    /// already records the peer's disk Outdated or Inconsistent (`is_valid_state`: only a peer
    /// disk of `DUnknown` or better refuses), as it does after this node's own forced promote
    /// until the next handshake (kept in the metadata, `MDF_PEER_OUT_DATED`): then this is
    /// false, for any volume. Only a forced `primary` overrides the fence (docs/takeover.md).
    pub fn fencing_arbitrates(&self) -> bool {
        // DRBD's order (`enum drbd_disk_state`): DUnknown < Consistent < UpToDate.
        let peer_unknown_or_better =
            |d: Disk| matches!(d, Disk::DUnknown | Disk::Consistent | Disk::UpToDate);
        self.drbd_arbitrates()
            && self.fencing.keeps_stale_disk_consistent()
            && peer_unknown_or_better(self.peer_disk)
            && self
                .volumes
                .iter()
                .all(|v| peer_unknown_or_better(v.peer_disk))
    }

    /// DRBD itself refuses an unforced `primary` here that could fork the data: it is
    /// handshaken with a Secondary peer (the promote creates no new data generation), or, with
    /// `fencing_arbitrates` (manage mode only: `managed`), its fencing refuses Primary without
    /// the peer. Elsewhere a `primary` waits for the address probe's verdict.
    pub fn guards_unforced_promote(&self, managed: bool) -> bool {
        let safe_peer = self.connection.handshaken() && self.peer_role == Role::Secondary;
        safe_peer || (managed && self.fencing_arbitrates())
    }

    /// The view of a resource with several volumes, from volume 0's view (`self`: connection,
    /// fencing, net settings, which the volumes share) and every volume's: up when every minor
    /// is; Primary or Secondary when every volume is, else `Unknown` (a promote or demote is
    /// then still needed); the peer Primary when any of its volumes is; each disk the worst of
    /// the volumes', so nothing is promoted or counted healthy on the strength of one volume.
    pub fn of_volumes(mut self, volumes: Vec<VolumeView>, sync: Option<SyncView>) -> DrbdView {
        self.up = volumes.iter().all(|v| v.up);
        self.role = common_role(volumes.iter().map(|v| v.role), false);
        self.peer_role = common_role(volumes.iter().map(|v| v.peer_role), true);
        let worst = |f: fn(&VolumeView) -> Disk| {
            volumes
                .iter()
                .map(f)
                .min_by_key(|d| disk_rank(*d))
                .unwrap_or_default()
        };
        self.disk = worst(|v| v.disk);
        self.peer_disk = worst(|v| v.peer_disk);
        self.sync = sync;
        self.volumes = volumes;
        self
    }

    /// Some volume (or the resource) is Primary here: a demote has something to do.
    pub fn any_primary(&self) -> bool {
        self.role == Role::Primary || self.volumes.iter().any(|v| v.role == Role::Primary)
    }

    /// This view with the settings events do not carry taken from `previous`.
    pub(crate) fn merged(mut self, previous: &DrbdView) -> DrbdView {
        if self.net.is_none() && self.up {
            self.net = previous.net;
        }
        self
    }
}

/// What was last observed of one resource's iSCSI target.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
#[non_exhaustive]
pub enum TargetState {
    /// No such target in tgtd (or tgtd down / restarted empty).
    #[default]
    Absent,
    /// Present but not complete (LUN, identity or ACL missing): left by an interrupted serve.
    Partial,
    /// Complete and accepting logins.
    Serving,
    /// Present, refusing logins, connections closed.
    Offline,
    /// The configured tid holds a target with another IQN: someone else's, never touched.
    Foreign,
}

/// What was last observed of one resource's target.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct TargetView {
    /// State of the target.
    pub state: TargetState,
    /// Number of logged-in sessions.
    pub sessions: u32,
}

/// One resource as observed.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct ResourceView {
    /// DRBD side.
    pub drbd: DrbdView,
    /// Target side.
    pub target: TargetView,
}

/// A full observation of every configured object (at start, after a failure, on the safety net).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Snapshot {
    /// Per resource name.
    pub resources: BTreeMap<String, ResourceView>,
    /// Per address (as written in the config): held on this node.
    pub addresses: BTreeMap<String, bool>,
    /// Addresses whose interface is down or without carrier.
    #[serde(default)]
    pub links_down: std::collections::BTreeSet<String>,
    /// Addresses not held on their interface but on another of this host: that interface.
    #[serde(default)]
    pub on_other_interface: BTreeMap<String, String>,
}
