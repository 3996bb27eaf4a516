//! The state machine: pure transitions, no I/O.
//!
//! [`step`] takes the [`State`] (what the agent believes: the authority's wish and what it last
//! observed of DRBD, the target daemon and the addresses) and one [`Event`], and returns the new
//! state and the [`Action`]s to run. The actions are the *difference* between the wish and the
//! observation, always emitted in the one order written in `State::plan`:
//!
//! * promote: safety checks (local disk UpToDate, peer not Primary, nobody answers for the
//!   address) → DRBD Primary → target, LUNs and ACLs serving → addresses claimed;
//!   while the peer is absent, only with data known to be current (`ResourceState::promotion`);
//! * demote: target offline with every connection closed (while the address is still here, so
//!   the initiators see the close) → addresses released → target removed → DRBD Secondary.
//!
//! Because only the difference is planned, every step is idempotent, a restart converges from
//! any mixed state without a flap, and a repair (an address removed by hand, tgtd restarted
//! empty) is just a short plan. Nothing is planned before the first full observation, in
//! maintenance, while the authority is unknown, or after a failure until a new signal arrives
//! (a role signal, a command, the safety net, or an observation that differs from what the
//! failed transition left).

use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Serialize};

use crate::config::{Config, Mode, RoleSource};

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

impl DrbdView {
    /// DRBD itself refuses a second Primary here (`SS_TWO_PRIMARIES`): a connection is
    /// configured without `allow-two-primaries`. Then a promote may be asked of DRBD while the
    /// last view still shows the peer Primary: DRBD pings the peer at once and either refuses
    /// (the peer is alive and Primary) or promotes once the peer is declared lost
    /// (docs/takeover.md).
    pub fn drbd_arbitrates(&self) -> bool {
        self.net.is_some_and(|n| !n.allow_two_primaries)
    }

    /// This view with the settings events do not carry taken from `previous`.
    fn merged(mut self, previous: &DrbdView) -> DrbdView {
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
}

/// A stage of a transition; the executor times each one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
#[non_exhaustive]
pub enum Stage {
    /// Live re-check before promoting a resource: local disk UpToDate, peer not Primary.
    CheckResource,
    /// Start the live check that no other host answers for an address (RFC 5227 probe); it
    /// runs on while DRBD and the target come up and is judged before DRBD promotes without
    /// a connected Secondary peer and at the claim (docs/takeover.md).
    ProbeAddress,
    /// Bring a managed resource up from the config (new-resource, new-minor, attach, connect).
    DrbdUp,
    /// DRBD Primary.
    DrbdPrimary,
    /// DRBD Primary with `--force` (`assume_uptodate`) while the peer is absent and this node
    /// has not been Connected since attach: only when an operator or the wait timeout allowed
    /// a degraded promote. Checks its own preconditions live.
    DrbdPrimaryForce,
    /// Target, LUNs, identity and ACLs in place and accepting logins.
    TargetServe,
    /// Address probed, added and announced.
    AddressClaim,
    /// Target refusing logins, every connection closed: while the address is still here, so
    /// the initiators get the FIN and reconnect at once instead of waiting for their own
    /// timeouts (docs/takeover.md).
    TargetOffline,
    /// Address removed.
    AddressRelease,
    /// Target deleted from tgtd.
    TargetRemove,
    /// DRBD Secondary.
    DrbdSecondary,
}

impl Stage {
    /// The kebab-case name used in logs, status and scenario files.
    pub fn name(self) -> &'static str {
        match self {
            Stage::CheckResource => "check-resource",
            Stage::ProbeAddress => "probe-address",
            Stage::DrbdUp => "drbd-up",
            Stage::DrbdPrimary => "drbd-primary",
            Stage::DrbdPrimaryForce => "drbd-primary-force",
            Stage::TargetServe => "target-serve",
            Stage::AddressClaim => "address-claim",
            Stage::AddressRelease => "address-release",
            Stage::TargetOffline => "target-offline",
            Stage::TargetRemove => "target-remove",
            Stage::DrbdSecondary => "drbd-secondary",
        }
    }

    /// All stages, in plan order.
    pub const ALL: [Stage; 11] = [
        Stage::CheckResource,
        Stage::ProbeAddress,
        Stage::DrbdUp,
        Stage::DrbdPrimary,
        Stage::DrbdPrimaryForce,
        Stage::TargetServe,
        Stage::AddressClaim,
        Stage::TargetOffline,
        Stage::AddressRelease,
        Stage::TargetRemove,
        Stage::DrbdSecondary,
    ];

    /// Stages that undo this one when a transition is rolled back, in order.
    /// Checks and bring-up need no undo (an up, Secondary resource is safe).
    pub fn undo(self) -> &'static [Stage] {
        match self {
            Stage::DrbdPrimary | Stage::DrbdPrimaryForce => &[Stage::DrbdSecondary],
            Stage::TargetServe => &[Stage::TargetOffline, Stage::TargetRemove],
            Stage::AddressClaim => &[Stage::AddressRelease],
            _ => &[],
        }
    }

    /// Does this stage move towards serving? A failure there is rolled back; a failure while
    /// moving away from serving is reported and left for the next signal (rolling a demote back
    /// would mean serving again).
    pub fn is_forward(self) -> bool {
        matches!(
            self,
            Stage::CheckResource
                | Stage::ProbeAddress
                | Stage::DrbdPrimary
                | Stage::DrbdPrimaryForce
                | Stage::TargetServe
                | Stage::AddressClaim
        )
    }
}

impl fmt::Display for Stage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl std::str::FromStr for Stage {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Stage::ALL
            .into_iter()
            .find(|st| st.name() == s)
            .ok_or_else(|| format!("unknown stage {s:?}"))
    }
}

/// One unit of work: a stage applied to one resource or address.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Step {
    /// What to do.
    pub stage: Stage,
    /// The resource name or the address (as written in the config).
    pub object: String,
}

impl Step {
    fn new(stage: Stage, object: &str) -> Self {
        Self {
            stage,
            object: object.to_string(),
        }
    }
}

impl fmt::Display for Step {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.stage, self.object)
    }
}

/// What [`step`] asks for.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub enum Action {
    /// Run this step (the executor runs consecutive steps of one stage concurrently).
    Run(Step),
    /// A request (command) or the authority's wish cannot be followed now; nothing changes.
    Refuse(String),
    /// Something needs an operator's attention; nothing changes.
    Alarm(String),
}

impl fmt::Display for Action {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Action::Run(s) => s.fmt(f),
            Action::Refuse(r) => write!(f, "refuse: {r}"),
            Action::Alarm(r) => write!(f, "alarm: {r}"),
        }
    }
}

/// A request arriving over the control socket.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
#[non_exhaustive]
pub enum Command {
    /// `iscsi-ha promote`.
    Promote,
    /// `iscsi-ha demote`.
    Demote,
    /// `iscsi-ha promote --degraded`: also allow promoting without the peer while this node
    /// has not been Connected since attach (with every role source; with `pool-conf` the
    /// authority must already say primary).
    PromoteDegraded,
}

/// The result of running a plan, fed back to the machine.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Outcome {
    /// Steps that completed and were not undone, in order (undo steps included).
    pub applied: Vec<Step>,
    /// The step that failed, with the reason.
    pub failed: Option<(Step, String)>,
    /// The failed step was a safety check: nothing was changed.
    pub refused: bool,
    /// A fresh observation taken after a failure, when the executor could read one.
    pub snapshot: Option<Snapshot>,
}

/// An input to the machine.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub enum Event {
    /// A full observation (start, safety net, after a failure).
    Observed(Snapshot),
    /// The role source changed its mind (or became unusable).
    Authority(Authority),
    /// An operator command (role source `command`).
    Command(Command),
    /// Maintenance on (observe and report, change nothing) or off.
    Maintenance(bool),
    /// DRBD reported a change of one resource (peer lost, disk failed, role changed…).
    Drbd {
        /// Resource name.
        resource: String,
        /// The new view.
        view: DrbdView,
    },
    /// The target daemon reported a change (tgtd gone or restarted empty is `Absent`).
    Target {
        /// Resource name.
        resource: String,
        /// The new view.
        view: TargetView,
    },
    /// The address watch reported an address added or removed on this node.
    Address {
        /// The address as written in the config.
        address: String,
        /// Held now.
        held: bool,
    },
    /// DRBD called its `split-brain` helper for this resource: the handshake found both data
    /// sets changed since they last agreed.
    SplitBrain {
        /// Resource name.
        resource: String,
    },
    /// The configured wait for the peer (`timeouts.wfc_s`) ran out for this resource.
    WaitTimeout {
        /// Resource name.
        resource: String,
    },
    /// The executor finished a plan.
    Executed(Outcome),
    /// The slow safety net: clear a failure block and re-plan.
    Tick,
}

/// What the machine believes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct State {
    /// The authority's wish.
    pub authority: Authority,
    /// Commands are the role source (else `promote`/`demote` are refused).
    pub command_source: bool,
    /// Maintenance: observe and report, change nothing.
    pub maintenance: bool,
    /// A full observation has been made; nothing is planned before.
    pub observed: bool,
    /// Set by a failed transition: nothing is planned until a new signal or the safety net.
    pub blocked: Option<String>,
    /// Resources: observation and static facts.
    pub resources: BTreeMap<String, ResourceState>,
    /// Addresses: observation and the resources behind each.
    pub addresses: BTreeMap<String, AddressState>,
    /// The last refusal/alarm emitted, to report each condition once.
    pub last_notice: Option<String>,
}

/// One resource in [`State`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ResourceState {
    /// The agent brings it up itself.
    pub managed: bool,
    /// Last observation.
    pub view: ResourceView,
    /// DRBD has been seen handshaken with the peer since its disk was attached.
    #[serde(default)]
    pub peer_seen: bool,
    /// A promote without the peer was allowed (`operator` or `timeout`); cleared once the
    /// peer is back or the wish changes.
    #[serde(default)]
    pub degraded: Option<String>,
    /// DRBD reported a split brain; cleared when a handshake succeeds again.
    #[serde(default)]
    pub split_brain: bool,
    /// The role one of our steps just set, until DRBD's event reports it: DRBD events still
    /// showing another role were queued before that step and are ignored (they would re-plan
    /// a transition that already happened). Cleared by that event or a full observation.
    #[serde(default)]
    pub echo: Option<Role>,
}

/// How a resource that is not Primary may be promoted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Promotion {
    /// `primary`: the peer is connected, or this node's data is known current.
    Normal,
    /// `primary --force`: degraded, allowed by an operator or the wait timeout.
    Force,
}

/// Refusal text of a node waiting for its peer (also what [`State::waiting`] reports).
pub const WAITING_FOR_PEER: &str = "waiting for the peer";

impl ResourceState {
    /// Follow a new DRBD view: what was seen since attach.
    fn observe(&mut self, view: DrbdView) {
        let view = view.merged(&self.view.drbd);
        let d = &view;
        if !d.up || matches!(d.disk, Disk::Diskless | Disk::Attaching | Disk::DUnknown) {
            self.peer_seen = false;
        }
        if d.connection.handshaken() {
            self.peer_seen = true;
            self.degraded = None;
            self.split_brain = false;
        }
        self.view.drbd = view;
    }

    /// How this (up, not Primary) resource may be promoted, or why not yet. A node whose DRBD
    /// has not been handshaken with its peer since attach does not trust its own UpToDate:
    /// with fencing `dont-care` a crashed ex-primary counts its Consistent disk as UpToDate at
    /// attach while the survivor may hold newer writes.
    fn promotion(&self, name: &str) -> Result<Promotion, Notice> {
        let d = &self.view.drbd;
        if self.split_brain {
            return Err(Notice::Refuse(format!(
                "{name}: DRBD split brain; resolve it first (iscsi-ha split-brain)"
            )));
        }
        if !matches!(d.disk, Disk::UpToDate | Disk::Consistent) {
            return Err(Notice::Refuse(format!(
                "{name}: local disk is {}, not UpToDate",
                d.disk
            )));
        }
        if let Some(why) = d.drbd9.as_ref().and_then(Drbd9Promotion::refusal) {
            return Err(Notice::Refuse(format!("{name}: {why}")));
        }
        if d.peer_role == Role::Primary && !d.drbd_arbitrates() {
            let ids = d.drbd9.as_ref().map(Drbd9Promotion::primary_peers_text);
            return Err(Notice::Refuse(format!(
                "{name}: peer is DRBD Primary{}",
                ids.unwrap_or_default()
            )));
        }
        // StandAlone: the link was torn down on purpose or by a failed handshake (a split brain
        // this agent may not have seen): the fencing evidence no longer says "newest".
        let fenced =
            d.fencing.keeps_stale_disk_consistent() && d.connection != Connection::StandAlone;
        let current = d.connection.handshaken() || self.peer_seen || fenced;
        if current && d.disk == Disk::UpToDate {
            return Ok(Promotion::Normal);
        }
        if d.connection.handshaken() {
            return Err(Notice::Refuse(format!(
                "{name}: local disk is {}, not UpToDate",
                d.disk
            )));
        }
        if self.degraded.is_some() {
            return Ok(Promotion::Force);
        }
        Err(Notice::Refuse(format!(
            "{name}: {WAITING_FOR_PEER}: DRBD has not been Connected since attach (local disk {}, \
             connection {}); promote without it: iscsi-ha promote --degraded",
            d.disk, d.connection
        )))
    }
}

/// One address in [`State`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AddressState {
    /// Held on this node.
    pub held: bool,
    /// Resources behind it.
    pub resources: Vec<String>,
}

impl State {
    /// The initial state for a config: nothing observed, authority unknown.
    pub fn new(config: &Config) -> State {
        State {
            authority: Authority::Unknown(NO_SIGNAL_YET.into()),
            command_source: matches!(config.role, RoleSource::Command),
            maintenance: false,
            observed: false,
            blocked: None,
            resources: config
                .resources
                .iter()
                .map(|r| {
                    (
                        r.name.clone(),
                        ResourceState {
                            managed: r.mode == Mode::Manage,
                            view: ResourceView::default(),
                            peer_seen: false,
                            degraded: None,
                            split_brain: false,
                            echo: None,
                        },
                    )
                })
                .collect(),
            addresses: config
                .addresses
                .iter()
                .map(|a| {
                    (
                        a.address.clone(),
                        AddressState {
                            held: false,
                            resources: a.resources.clone(),
                        },
                    )
                })
                .collect(),
            last_notice: None,
        }
    }

    /// Is everything in the authority's wished state?
    pub fn converged(&self) -> bool {
        !matches!(self.authority, Authority::Unknown(_))
            && self.diff().map(|p| p.is_empty()).unwrap_or(false)
    }

    /// The plan for the current wish, or why none can be made: THE order, written once.
    fn diff(&self) -> Result<Vec<Step>, Notice> {
        let mut steps = Vec::new();
        match &self.authority {
            Authority::Unknown(reason) if reason == NO_SIGNAL_YET => {}
            Authority::Unknown(reason) => {
                return Err(Notice::Alarm(format!(
                    "role source: {reason}; holding current state"
                )))
            }
            Authority::Primary => {
                // A managed resource that is down is brought up first; its DRBD events then
                // report the disk state the safety checks need.
                for (n, r) in &self.resources {
                    if !r.view.drbd.up && r.managed {
                        steps.push(Step::new(Stage::DrbdUp, n));
                    }
                }
                if !steps.is_empty() {
                    return Ok(steps);
                }
                for (name, r) in &self.resources {
                    let d = &r.view.drbd;
                    if !d.up && !r.managed {
                        return Err(Notice::Refuse(format!(
                            "{name}: DRBD resource is not up and mode is adopt"
                        )));
                    }
                    if d.role == Role::Primary {
                        if d.peer_role == Role::Primary {
                            return Err(Notice::Alarm(format!(
                                "{name}: both nodes are DRBD Primary"
                            )));
                        }
                        continue;
                    }
                }
                let mut to_primary: Vec<&String> = Vec::new();
                let mut to_force: Vec<&String> = Vec::new();
                for (name, r) in &self.resources {
                    if r.view.drbd.role == Role::Primary {
                        continue;
                    }
                    match r.promotion(name)? {
                        Promotion::Normal => to_primary.push(name),
                        Promotion::Force => to_force.push(name),
                    }
                }
                let to_claim: Vec<&String> = self
                    .addresses
                    .iter()
                    .filter(|(_, a)| !a.held)
                    .map(|(n, _)| n)
                    .collect();
                for n in &to_primary {
                    steps.push(Step::new(Stage::CheckResource, n));
                }
                for a in &to_claim {
                    steps.push(Step::new(Stage::ProbeAddress, a));
                }
                for n in &to_primary {
                    steps.push(Step::new(Stage::DrbdPrimary, n));
                }
                for n in &to_force {
                    steps.push(Step::new(Stage::DrbdPrimaryForce, n));
                }
                for (n, r) in &self.resources {
                    if r.view.target.state != TargetState::Serving {
                        steps.push(Step::new(Stage::TargetServe, n));
                    }
                }
                // Every resource is serving once the steps above ran, so every address may be
                // claimed; the executor stops before this stage if any serve failed.
                for a in &to_claim {
                    steps.push(Step::new(Stage::AddressClaim, a));
                }
            }
            Authority::Secondary => {
                for (n, r) in &self.resources {
                    if matches!(
                        r.view.target.state,
                        TargetState::Serving | TargetState::Partial
                    ) {
                        steps.push(Step::new(Stage::TargetOffline, n));
                    }
                }
                for (a, st) in &self.addresses {
                    if st.held {
                        steps.push(Step::new(Stage::AddressRelease, a));
                    }
                }
                for (n, r) in &self.resources {
                    if r.view.target.state != TargetState::Absent {
                        steps.push(Step::new(Stage::TargetRemove, n));
                    }
                }
                for (n, r) in &self.resources {
                    if !r.view.drbd.up && r.managed {
                        steps.push(Step::new(Stage::DrbdUp, n));
                    }
                }
                for (n, r) in &self.resources {
                    if r.view.drbd.role == Role::Primary {
                        steps.push(Step::new(Stage::DrbdSecondary, n));
                    }
                }
            }
        }
        Ok(steps)
    }

    /// The actions for the current state (empty while nothing may change).
    fn plan(&mut self) -> Vec<Action> {
        if !self.observed || self.maintenance || self.blocked.is_some() {
            return Vec::new();
        }
        match self.diff() {
            Ok(steps) => {
                self.last_notice = None;
                steps.into_iter().map(Action::Run).collect()
            }
            Err(n) => {
                let text = n.text().to_string();
                if self.last_notice.as_deref() == Some(text.as_str()) {
                    return Vec::new();
                }
                self.last_notice = Some(text);
                vec![n.into_action()]
            }
        }
    }

    /// Resources that would promote but wait for their peer (authority primary, not Primary,
    /// not handshaken since attach, no degraded allowance): name and the refusal text.
    pub fn waiting(&self) -> Vec<(String, String)> {
        if self.authority != Authority::Primary {
            return Vec::new();
        }
        self.resources
            .iter()
            .filter(|(_, r)| r.view.drbd.up && r.view.drbd.role != Role::Primary)
            .filter_map(|(n, r)| match r.promotion(n) {
                Err(Notice::Refuse(t)) if t.contains(WAITING_FOR_PEER) => Some((n.clone(), t)),
                _ => None,
            })
            .collect()
    }

    /// Resources with a split brain reported by DRBD.
    pub fn split_brains(&self) -> Vec<String> {
        self.resources
            .iter()
            .filter(|(_, r)| r.split_brain)
            .map(|(n, _)| n.clone())
            .collect()
    }

    fn allow_degraded(&mut self, by: &str) {
        for r in self.resources.values_mut() {
            if !r.view.drbd.connection.handshaken() {
                r.degraded = Some(by.to_string());
            }
        }
        self.blocked = None;
        self.last_notice = None;
    }

    fn apply_snapshot(&mut self, snap: &Snapshot) {
        for (name, r) in self.resources.iter_mut() {
            if let Some(v) = snap.resources.get(name) {
                r.observe(v.drbd.clone());
                r.view.target = v.target;
                r.echo = None;
            }
        }
        for (addr, a) in self.addresses.iter_mut() {
            if let Some(h) = snap.addresses.get(addr) {
                a.held = *h;
            }
        }
    }

    /// The effect of a completed step on the observation.
    fn apply_step(&mut self, s: &Step) {
        if let Some(r) = self.resources.get_mut(&s.object) {
            let role = match s.stage {
                Stage::DrbdPrimary | Stage::DrbdPrimaryForce => Some(Role::Primary),
                Stage::DrbdSecondary => Some(Role::Secondary),
                _ => None,
            };
            if let Some(role) = role.filter(|role| *role != r.view.drbd.role) {
                r.echo = Some(role);
            }
            let v = &mut r.view;
            match s.stage {
                Stage::DrbdUp => v.drbd.up = true,
                Stage::DrbdPrimary | Stage::DrbdPrimaryForce => {
                    v.drbd.role = Role::Primary;
                    // DRBD granted Primary without allow-two-primaries: the peer is not Primary
                    // (it was declared lost), whatever the last event said; else a power-loss
                    // takeover would raise "both nodes are DRBD Primary" until the next event.
                    if v.drbd.drbd_arbitrates() && v.drbd.peer_role == Role::Primary {
                        v.drbd.peer_role = Role::Unknown;
                    }
                }
                Stage::DrbdSecondary => v.drbd.role = Role::Secondary,
                Stage::TargetServe => v.target.state = TargetState::Serving,
                Stage::TargetOffline => {
                    v.target.state = TargetState::Offline;
                    v.target.sessions = 0;
                }
                Stage::TargetRemove => v.target = TargetView::default(),
                _ => {}
            }
        }
        if let Some(a) = self.addresses.get_mut(&s.object) {
            match s.stage {
                Stage::AddressClaim => a.held = true,
                Stage::AddressRelease => a.held = false,
                _ => {}
            }
        }
    }
}

enum Notice {
    Refuse(String),
    Alarm(String),
}

impl Notice {
    fn text(&self) -> &str {
        match self {
            Notice::Refuse(s) | Notice::Alarm(s) => s,
        }
    }
    fn into_action(self) -> Action {
        match self {
            Notice::Refuse(s) => Action::Refuse(s),
            Notice::Alarm(s) => Action::Alarm(s),
        }
    }
}

/// The one transition function.
pub fn step(mut state: State, event: Event) -> (State, Vec<Action>) {
    let mut pre = Vec::new();
    match event {
        Event::Observed(snap) => {
            state.apply_snapshot(&snap);
            state.observed = true;
            state.blocked = None;
        }
        Event::Authority(a) => {
            if state.command_source {
                pre.push(Action::Refuse(
                    "role source is command; the authority signal is ignored".into(),
                ));
                return (state, pre);
            }
            if a != state.authority {
                state.blocked = None;
                state.last_notice = None;
                for r in state.resources.values_mut() {
                    r.degraded = None;
                }
            }
            state.authority = a;
        }
        Event::Command(Command::PromoteDegraded) if !state.command_source => {
            if state.authority != Authority::Primary {
                let text = format!(
                    "the authority says {}; promote --degraded only lifts the wait for the peer",
                    state.authority
                );
                return (state, vec![Action::Refuse(text)]);
            }
            state.allow_degraded("operator");
        }
        Event::Command(c) => {
            if !state.command_source {
                return (
                    state,
                    vec![Action::Refuse(
                        "role source is pool-conf: change the pool master instead".into(),
                    )],
                );
            }
            let previous = std::mem::replace(
                &mut state.authority,
                match c {
                    Command::Demote => Authority::Secondary,
                    _ => Authority::Primary,
                },
            );
            let before = state.resources.clone();
            if c == Command::PromoteDegraded {
                state.allow_degraded("operator");
            }
            if c != Command::Demote {
                // Refuse on what is known now (the executor re-checks live before acting); a
                // refused command leaves no pending wish behind.
                let refusal = if state.maintenance {
                    Some("maintenance is on".to_string())
                } else if !state.observed {
                    Some("the agent has not observed the node yet".to_string())
                } else {
                    match state.diff() {
                        Err(Notice::Refuse(r)) => Some(r),
                        _ => None,
                    }
                };
                if let Some(r) = refusal {
                    state.authority = previous;
                    state.resources = before;
                    return (state, vec![Action::Refuse(r)]);
                }
            }
            state.blocked = None;
            state.last_notice = None;
        }
        Event::Maintenance(on) => {
            state.maintenance = on;
            if !on {
                state.blocked = None;
                state.last_notice = None;
            }
        }
        Event::Drbd { resource, view } => match state.resources.get_mut(&resource) {
            Some(r) => {
                if let Some(role) = r.echo {
                    if view.up && view.role != role {
                        // Older than the step that set the role: already superseded.
                        return (state, pre);
                    }
                    r.echo = None;
                }
                if r.view.drbd.role == Role::Primary
                    && matches!(view.disk, Disk::Failed | Disk::Diskless)
                    && view.up
                {
                    pre.push(Action::Alarm(format!(
                        "{resource}: local disk {} while Primary (I/O goes to the peer)",
                        view.disk
                    )));
                }
                let view = view.merged(&r.view.drbd);
                if r.view.drbd != view {
                    // New information: a failed transition may be retried.
                    state.blocked = None;
                }
                r.observe(view);
            }
            None => return (state, pre),
        },
        Event::SplitBrain { resource } => match state.resources.get_mut(&resource) {
            Some(r) => {
                r.split_brain = true;
                pre.push(Action::Alarm(format!(
                    "{resource}: DRBD split brain: both nodes changed the data since they last \
                     agreed; nothing is resolved automatically (iscsi-ha split-brain)"
                )));
            }
            None => return (state, pre),
        },
        Event::WaitTimeout { resource } => {
            if !state.waiting().iter().any(|(n, _)| *n == resource) {
                return (state, pre);
            }
            if let Some(r) = state.resources.get_mut(&resource) {
                r.degraded = Some("timeout".into());
            }
            state.blocked = None;
            state.last_notice = None;
        }
        Event::Target { resource, view } => match state.resources.get_mut(&resource) {
            Some(r) => {
                if r.view.target != view {
                    state.blocked = None;
                }
                r.view.target = view;
            }
            None => return (state, pre),
        },
        Event::Address { address, held } => match state.addresses.get_mut(&address) {
            Some(a) => {
                if a.held != held {
                    state.blocked = None;
                }
                a.held = held;
            }
            None => return (state, pre),
        },
        Event::Executed(out) => {
            let before: Vec<DrbdView> = state
                .resources
                .values()
                .map(|r| r.view.drbd.clone())
                .collect();
            match &out.snapshot {
                Some(s) => state.apply_snapshot(s),
                None => {
                    for s in &out.applied {
                        state.apply_step(s);
                    }
                }
            }
            if let Some((failed, reason)) = &out.failed {
                let text = format!("{failed} failed: {reason}");
                if out.refused && state.command_source {
                    // A refused command leaves the node where it was.
                    state.authority = Authority::Secondary;
                    pre.push(Action::Refuse(text.clone()));
                } else {
                    pre.push(Action::Alarm(text.clone()));
                }
                // DRBD refused a promote and its state has moved since (the peer was declared
                // lost while the request waited): that is the next event; plan again at once.
                let moved = failed.stage == Stage::DrbdPrimary
                    && out.snapshot.is_some()
                    && state
                        .resources
                        .values()
                        .map(|r| &r.view.drbd)
                        .ne(before.iter());
                if !moved {
                    state.blocked = Some(text);
                    return (state, pre);
                }
            }
        }
        Event::Tick => {
            state.blocked = None;
        }
    }
    let mut actions = pre;
    actions.extend(state.plan());
    (state, actions)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stage_names_round_trip() {
        for s in Stage::ALL {
            assert_eq!(s.name().parse::<Stage>(), Ok(s));
        }
    }
}
