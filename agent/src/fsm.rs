//! The state machine: pure transitions, no I/O.
//!
//! [`step`] takes the [`State`] (what the agent believes: the authority's wish and what it last
//! observed of DRBD, the target daemon and the addresses) and one [`Event`], and returns the new
//! state and the [`Action`]s to run. The actions are the *difference* between the wish and the
//! observation, always emitted in the one order written in [`State::plan`]:
//!
//! * promote: safety checks (local disk UpToDate, peer not Primary, nobody answers for the
//!   address) → DRBD Primary → target, LUNs and ACLs serving → addresses claimed;
//! * demote: addresses released → target offline with every connection closed → target removed
//!   → DRBD Secondary.
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
    /// Live check that no other host answers for an address before claiming it.
    ProbeAddress,
    /// Bring a managed resource up from the config (new-resource, new-minor, attach, connect).
    DrbdUp,
    /// DRBD Primary.
    DrbdPrimary,
    /// Target, LUNs, identity and ACLs in place and accepting logins.
    TargetServe,
    /// Address probed, added and announced.
    AddressClaim,
    /// Address removed.
    AddressRelease,
    /// Target refusing logins, every connection closed.
    TargetOffline,
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
            Stage::TargetServe => "target-serve",
            Stage::AddressClaim => "address-claim",
            Stage::AddressRelease => "address-release",
            Stage::TargetOffline => "target-offline",
            Stage::TargetRemove => "target-remove",
            Stage::DrbdSecondary => "drbd-secondary",
        }
    }

    /// All stages, in plan order.
    pub const ALL: [Stage; 10] = [
        Stage::CheckResource,
        Stage::ProbeAddress,
        Stage::DrbdUp,
        Stage::DrbdPrimary,
        Stage::TargetServe,
        Stage::AddressClaim,
        Stage::AddressRelease,
        Stage::TargetOffline,
        Stage::TargetRemove,
        Stage::DrbdSecondary,
    ];

    /// Stages that undo this one when a transition is rolled back, in order.
    /// Checks and bring-up need no undo (an up, Secondary resource is safe).
    pub fn undo(self) -> &'static [Stage] {
        match self {
            Stage::DrbdPrimary => &[Stage::DrbdSecondary],
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
                    if d.up && d.disk != Disk::UpToDate {
                        return Err(Notice::Refuse(format!(
                            "{name}: local disk is {}, not UpToDate",
                            d.disk
                        )));
                    }
                    if d.peer_role == Role::Primary {
                        return Err(Notice::Refuse(format!("{name}: peer is DRBD Primary")));
                    }
                }
                let to_primary: Vec<&String> = self
                    .resources
                    .iter()
                    .filter(|(_, r)| r.view.drbd.role != Role::Primary)
                    .map(|(n, _)| n)
                    .collect();
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
                for (a, st) in &self.addresses {
                    if st.held {
                        steps.push(Step::new(Stage::AddressRelease, a));
                    }
                }
                for (n, r) in &self.resources {
                    if matches!(
                        r.view.target.state,
                        TargetState::Serving | TargetState::Partial
                    ) {
                        steps.push(Step::new(Stage::TargetOffline, n));
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

    fn apply_snapshot(&mut self, snap: &Snapshot) {
        for (name, r) in self.resources.iter_mut() {
            if let Some(v) = snap.resources.get(name) {
                r.view = v.clone();
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
            let v = &mut r.view;
            match s.stage {
                Stage::DrbdUp => v.drbd.up = true,
                Stage::DrbdPrimary => v.drbd.role = Role::Primary,
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
            }
            state.authority = a;
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
                    Command::Promote => Authority::Primary,
                    Command::Demote => Authority::Secondary,
                },
            );
            if c == Command::Promote {
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
                if r.view.drbd.role == Role::Primary
                    && matches!(view.disk, Disk::Failed | Disk::Diskless)
                    && view.up
                {
                    pre.push(Action::Alarm(format!(
                        "{resource}: local disk {} while Primary (I/O goes to the peer)",
                        view.disk
                    )));
                }
                if r.view.drbd != view {
                    // New information: a failed transition may be retried.
                    state.blocked = None;
                }
                r.view.drbd = view;
            }
            None => return (state, pre),
        },
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
                state.blocked = Some(text);
                return (state, pre);
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
