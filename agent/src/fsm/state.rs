//! What the machine believes, and the plan: the difference between the authority's wish and
//! the last observation, in the orders of [`super::order`].

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::order::{Effect, Object, Plan, PlanKind, Stage, Step, BRING_UP, DEMOTE, PROMOTE};
use super::safety::{self, History, Promotion, Refusal};
use super::transition::Action;
use super::view::{
    Authority, Disk, DrbdView, ResourceView, Role, Snapshot, TargetState, TargetView,
};
use super::NO_SIGNAL_YET;

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
    /// An operator's `promote` (role source `command`) whose plans are running (a bring-up
    /// first, in manage mode), with the authority it found: one that fails, or is refused once
    /// its bring-up is done, does not stay a wish retried behind the operator's back. Cleared
    /// when its plans end.
    #[serde(default)]
    pub commanded: Option<Authority>,
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
    /// A bring-up of this resource failed: a half-up one ([`DrbdView::half_up`]) is not brought
    /// up again before the next full observation (the safety net, a restart), since the failed
    /// attach's own DRBD events would start it again at once, in a loop.
    #[serde(default)]
    pub bringup_failed: bool,
}

impl ResourceState {
    /// Follow a new DRBD view: what was seen since attach.
    pub(crate) fn observe(&mut self, view: DrbdView) {
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

    /// What the agent knows beyond DRBD's view, for the safety check.
    pub fn history(&self) -> History {
        History {
            peer_seen: self.peer_seen,
            degraded: self.degraded.is_some(),
            split_brain: self.split_brain,
        }
    }

    /// How this (up, not Primary) resource may be promoted, or why not yet
    /// ([`safety::promotion`] on the last observation).
    pub fn promotion(&self) -> Result<Promotion, Refusal> {
        safety::promotion(&self.view.drbd, &self.history())
    }
}

/// One address in [`State`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AddressState {
    /// Held on this node.
    pub held: bool,
    /// Its interface is down or without carrier: a claim waits for the link (DRBD and the
    /// targets promote without it), a held address stays.
    #[serde(default)]
    pub link_down: bool,
    /// Claimed (added or adopted, and announced) by this run of the agent and held since: an
    /// address found held at start (left by a killed agent, perhaps before its announcements)
    /// is claimed again while primary, which announces it without adding or probing.
    #[serde(default)]
    pub announced: bool,
    /// Not held on its interface but on this other one of this host (a typo in `interface`,
    /// or added by hand): the agent neither claims nor releases it there.
    #[serde(default)]
    pub on_other_interface: Option<String>,
    /// Resources behind it.
    pub resources: Vec<String>,
    /// What the address watch will report of our own steps that added or removed it, in
    /// order: those reports are older than the state (a release's removal comes after the
    /// claim that followed it) and change nothing. A report that is not the next one expected
    /// is someone else's doing: it is taken in and the rest forgotten, so a step the kernel
    /// did not report (the address was there already) never hides a change. Cleared by a
    /// full observation.
    #[serde(default)]
    pub echoes: Vec<bool>,
}

impl AddressState {
    /// Follow an observation of the address: one gone is no longer ours to announce.
    pub(crate) fn set_held(&mut self, held: bool) {
        self.held = held;
        self.announced &= held;
    }
}

impl State {
    /// Is everything in the authority's wished state?
    pub fn converged(&self) -> bool {
        !matches!(self.authority, Authority::Unknown(_))
            && self.diff().map(|p| p.steps.is_empty()).unwrap_or(false)
            && self.waiting_for_link().is_empty()
    }

    /// Addresses the wish says to hold that wait for their interface's link.
    pub fn waiting_for_link(&self) -> Vec<String> {
        if self.authority != Authority::Primary {
            return Vec::new();
        }
        let waiting = self
            .addresses
            .iter()
            .filter(|(_, a)| !a.held && a.link_down);
        waiting.map(|(n, _)| n.clone()).collect()
    }

    /// The plan for the current wish, or why none can be made: only the difference between the
    /// wish and the observation, in the orders of [`super::order`]. An address held without a
    /// serving target is released first (`release_orphaned`).
    pub fn diff(&self) -> Result<Plan, Notice> {
        match self.release_orphaned() {
            Some(plan) => Ok(plan),
            None => self.plan_for_wish(),
        }
    }

    /// Whatever the wish, an address is never held without a serving target behind it (tgtd
    /// died or restarted empty, targets deleted by hand): released first, in the demote order
    /// (a target left partial has its connections closed while the address is still here),
    /// claimed again once one serves. A demote releases it in its own order.
    fn release_orphaned(&self) -> Option<Plan> {
        if self.authority == Authority::Secondary {
            return None;
        }
        let orphaned: Vec<&String> = (self.addresses.iter())
            .filter(|(_, a)| a.held && !self.any_serving(a))
            .map(|(n, _)| n)
            .collect();
        let mut behind: Vec<&String> = (orphaned.iter())
            .flat_map(|n| &self.addresses[*n].resources)
            .collect();
        behind.sort();
        behind.dedup();
        // The demote order up to the address's release.
        let upto = DEMOTE.iter().position(|s| *s == Stage::AddressRelease);
        let steps: Vec<Step> = (DEMOTE[..=upto.unwrap_or(0)].iter())
            .flat_map(|&stage| {
                let objects = match stage.def().object {
                    Object::Address => &orphaned,
                    Object::Resource => &behind,
                };
                (objects.iter())
                    .filter(move |o| self.needs(stage, o, &BTreeMap::new()))
                    .map(move |o| Step::new(stage, o))
            })
            .collect();
        (!steps.is_empty()).then_some(Plan {
            kind: PlanKind::Repair,
            steps,
        })
    }

    /// The plan for the authority's wish alone, or why none can be made (what a command or a
    /// reload is checked against: a release of an orphaned address first does not answer it).
    pub fn plan_for_wish(&self) -> Result<Plan, Notice> {
        let (kind, steps) = match &self.authority {
            // `pool.conf` is read right after the first observation: its first signal's plan
            // brings the resources up.
            Authority::Unknown(reason) if reason == NO_SIGNAL_YET && !self.command_source => {
                (PlanKind::Repair, vec![])
            }
            // Whatever the authority will say, a managed resource is brought up (attached and
            // connected, Secondary, nothing served; safe in any role): a rebooted node rejoins
            // its peer and resyncs before an operator's command names it, and nothing else
            // changes.
            Authority::Unknown(reason) => {
                let up = self.steps(BRING_UP, &BTreeMap::new());
                if up.is_empty() && reason != NO_SIGNAL_YET {
                    return Err(Notice::Alarm(format!(
                        "role source: {reason}; holding current state"
                    )));
                }
                (PlanKind::Repair, up)
            }
            Authority::Primary => {
                let up = self.steps(BRING_UP, &BTreeMap::new());
                if !up.is_empty() {
                    return Ok(Plan {
                        kind: PlanKind::Repair,
                        steps: up,
                    });
                }
                for (name, r) in &self.resources {
                    let d = &r.view.drbd;
                    if !d.up && !r.managed {
                        return Err(Notice::Refuse(format!(
                            "{name}: DRBD resource is not up and mode is adopt"
                        )));
                    }
                    if d.role == Role::Primary && d.peer_role == Role::Primary {
                        return Err(Notice::Alarm(format!(
                            "{name}: both nodes are DRBD Primary"
                        )));
                    }
                }
                let mut promotions = BTreeMap::new();
                for (name, r) in &self.resources {
                    if r.view.drbd.role != Role::Primary {
                        let p = r
                            .promotion()
                            .map_err(|why| Notice::Refuse(format!("{name}: {why}")))?;
                        promotions.insert(name.as_str(), p);
                    }
                }
                let steps = self.steps(PROMOTE, &promotions);
                let promotes = steps
                    .iter()
                    .any(|s| s.stage.def().effect == Effect::Role(Role::Primary));
                let kind = if promotes {
                    PlanKind::Promote
                } else {
                    PlanKind::Repair
                };
                (kind, steps)
            }
            Authority::Secondary => {
                let steps = self.steps(DEMOTE, &BTreeMap::new());
                // Bring-up, or an address released alone (added by hand), changes no role.
                let kind = if (steps.iter())
                    .any(|s| !matches!(s.stage.def().effect, Effect::DrbdUp | Effect::Held(false)))
                {
                    PlanKind::Demote
                } else {
                    PlanKind::Repair
                };
                (kind, steps)
            }
        };
        Ok(Plan { kind, steps })
    }

    /// Does a target behind `a` serve?
    fn any_serving(&self, a: &AddressState) -> bool {
        a.resources.iter().any(|r| {
            self.resources
                .get(r)
                .is_some_and(|r| r.view.target.state == TargetState::Serving)
        })
    }

    /// The steps of `order` this state needs, stage by stage.
    fn steps(&self, order: &[Stage], promotions: &BTreeMap<&str, Promotion>) -> Vec<Step> {
        let mut steps = Vec::new();
        for &stage in order {
            let objects: Vec<&String> = match stage.def().object {
                Object::Resource => self.resources.keys().collect(),
                Object::Address => self.addresses.keys().collect(),
            };
            for o in objects {
                if self.needs(stage, o, promotions) {
                    steps.push(Step::new(stage, o));
                }
            }
        }
        steps
    }

    /// Does `object` need `stage` (its effect does not hold yet, or it guards one that runs)?
    fn needs(&self, stage: Stage, object: &str, promotions: &BTreeMap<&str, Promotion>) -> bool {
        let promotion = promotions.get(object).copied();
        if let Some(a) = self.addresses.get(object) {
            return match stage {
                // The probe guards the claim of an address not held yet.
                Stage::ProbeAddress => !a.held && !a.link_down,
                Stage::AddressClaim => !(a.link_down || (a.held && a.announced)),
                Stage::AddressRelease => a.held,
                _ => false,
            };
        }
        let Some(r) = self.resources.get(object) else {
            return false;
        };
        let v = &r.view;
        match stage {
            // The check guards the normal promote.
            Stage::CheckResource | Stage::DrbdPrimary => promotion == Some(Promotion::Normal),
            Stage::DrbdPrimaryForce => promotion == Some(Promotion::Force),
            // Not up, or left half up by a failed bring-up (the minor made, the disk not
            // attached, never connected): brought up again, at start and on each retry. A disk
            // detached by an I/O error keeps its connection and is not re-attached.
            Stage::DrbdUp => r.managed && (!v.drbd.up || (v.drbd.half_up() && !r.bringup_failed)),
            Stage::DrbdSecondary => v.drbd.any_primary(),
            Stage::TargetServe => v.target.state != TargetState::Serving,
            Stage::TargetOffline => {
                matches!(v.target.state, TargetState::Serving | TargetState::Partial)
            }
            Stage::TargetRemove => {
                !matches!(v.target.state, TargetState::Absent | TargetState::Foreign)
            }
            _ => false,
        }
    }

    /// The actions for the current state (empty while nothing may change).
    pub(crate) fn plan(&mut self) -> Vec<Action> {
        if !self.observed || self.maintenance || self.blocked.is_some() {
            return Vec::new();
        }
        match self.diff() {
            Ok(plan) if plan.steps.is_empty() => {
                self.last_notice = None;
                Vec::new()
            }
            Ok(plan) => {
                self.last_notice = None;
                vec![Action::Run(plan)]
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
            .filter_map(|(n, r)| match r.promotion() {
                Err(why @ Refusal::WaitingForPeer { .. }) => {
                    Some((n.clone(), format!("{n}: {why}")))
                }
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

    /// Marks these resources split-brained again, as kept before a restart (DRBD reports a
    /// split brain once, at the failed handshake): the next handshake clears them, as it does
    /// a reported one. Names not configured are ignored; returns those marked.
    pub fn restore_split_brains(&mut self, names: &[String]) -> Vec<String> {
        let mut marked = Vec::new();
        for (n, r) in self.resources.iter_mut() {
            if names.contains(n) {
                r.split_brain = true;
                marked.push(n.clone());
            }
        }
        marked
    }

    /// An operator's `promote` that failed on the way leaves the node where it was (not
    /// retried behind the operator's back): wished secondary, so what its rollback could not
    /// undo is demoted, with no degraded allowance left for a later plain promote. Nothing for
    /// a plan no command started (a repair of a serving node).
    pub(crate) fn command_not_carried_out(&mut self) {
        if self.commanded.take().is_some() {
            self.authority = Authority::Secondary;
            for r in self.resources.values_mut() {
                r.degraded = None;
            }
        }
    }

    /// An operator's `promote` refused by the planner once its bring-up was done (no role
    /// changed): the authority it found is put back, as for a promote refused at once, with no
    /// degraded allowance left. Nothing for a plan no command started.
    pub(crate) fn command_refused(&mut self) {
        if let Some(before) = self.commanded.take() {
            self.authority = before;
            for r in self.resources.values_mut() {
                r.degraded = None;
            }
        }
    }

    pub(crate) fn allow_degraded(&mut self, by: &str) {
        for r in self.resources.values_mut() {
            if !r.view.drbd.connection.handshaken() {
                r.degraded = Some(by.to_string());
            }
        }
        self.blocked = None;
        self.last_notice = None;
    }

    /// Takes an observation in; alarms for what it shows first (an address found on another
    /// interface of this host).
    pub(crate) fn apply_snapshot(&mut self, snap: &Snapshot) -> Vec<Action> {
        let mut alarms = Vec::new();
        for (name, r) in self.resources.iter_mut() {
            if let Some(v) = snap.resources.get(name) {
                r.observe(v.drbd.clone());
                r.view.target = v.target;
                r.echo = None;
            }
        }
        for (addr, a) in self.addresses.iter_mut() {
            if let Some(h) = snap.addresses.get(addr) {
                a.set_held(*h);
                a.echoes.clear();
                a.link_down = snap.links_down.contains(addr);
                let other = snap.on_other_interface.get(addr);
                if let Some(iface) = other.filter(|i| a.on_other_interface.as_ref() != Some(*i)) {
                    alarms.push(Action::Alarm(format!(
                        "{addr} is on interface {iface} of this host, not on the configured one: \
                         the agent neither claims nor releases it there (remove it, or correct \
                         the address's interface)"
                    )));
                }
                a.on_other_interface = other.cloned();
            }
        }
        alarms
    }

    /// The effect of a completed step on the observation.
    pub(crate) fn apply_step(&mut self, s: &Step) {
        let effect = s.stage.def().effect;
        if let Some(r) = self.resources.get_mut(&s.object) {
            if let Effect::Role(role) = effect {
                if role != r.view.drbd.role {
                    r.echo = Some(role);
                }
            }
            let v = &mut r.view;
            match effect {
                Effect::DrbdUp => {
                    v.drbd.up = true;
                    // Until DRBD's events say what it is now: not planned again meanwhile.
                    if v.drbd.half_up() {
                        v.drbd.connection = super::view::Connection::Unknown;
                    }
                }
                Effect::Role(role) => {
                    v.drbd.role = role;
                    // DRBD granted Primary without allow-two-primaries: the peer is not Primary
                    // (it was declared lost), whatever the last event said; else a power-loss
                    // takeover would raise "both nodes are DRBD Primary" until the next event.
                    if role == Role::Primary
                        && v.drbd.drbd_arbitrates()
                        && v.drbd.peer_role == Role::Primary
                    {
                        v.drbd.peer_role = Role::Unknown;
                    }
                }
                Effect::Target(TargetState::Absent) => v.target = TargetView::default(),
                Effect::Target(state) => {
                    v.target.state = state;
                    if state == TargetState::Offline {
                        v.target.sessions = 0;
                    }
                }
                Effect::Held(_) | Effect::Nothing => {}
            }
        }
        if let (Some(a), Effect::Held(held)) = (self.addresses.get_mut(&s.object), effect) {
            if held != a.held {
                a.echoes.push(held);
            }
            a.set_held(held);
            a.announced = held;
        }
    }
}

/// Why no plan can be made now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Notice {
    /// The wish cannot be followed now; nothing changes.
    Refuse(String),
    /// Something needs an operator's attention; nothing changes.
    Alarm(String),
}

impl Notice {
    /// The text.
    pub fn text(&self) -> &str {
        match self {
            Notice::Refuse(s) | Notice::Alarm(s) => s,
        }
    }
    pub(crate) fn into_action(self) -> Action {
        match self {
            Notice::Refuse(s) => Action::Refuse(s),
            Notice::Alarm(s) => Action::Alarm(s),
        }
    }
}
