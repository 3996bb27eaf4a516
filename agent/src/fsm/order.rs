//! The promote and demote orders, written once as data.
//!
//! [`PROMOTE`], [`DEMOTE`] and [`BRING_UP`] are the orders; [`StageDef`] says of each stage what
//! it acts on, whether it moves towards serving, what it leaves behind, its undo and the live
//! preconditions the executor checks right before it. The planner (`State::plan`), the rollback
//! ([`rollback`]) and the executor read these and nothing else about the order.

use std::collections::HashMap;
use std::fmt;

use serde::{Deserialize, Serialize};

use super::safety::Promotion;
use super::view::{Role, TargetState};

/// A stage of a transition; the executor times each one. Its place in a transition comes from
/// [`PROMOTE`] / [`DEMOTE`], never from this declaration order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
#[non_exhaustive]
pub enum Stage {
    /// Live re-check before promoting a resource: local disk UpToDate, peer not Primary.
    CheckResource,
    /// Start the live check that no other host answers for an address (RFC 5227 probe); it
    /// runs on while DRBD and the target come up and is judged before DRBD promotes without
    /// a connected Secondary peer and at the claim; a probe that keeps probing is told its
    /// claim is near when the last target in front of the address starts serving
    /// (`Address::claim_near`, docs/takeover.md).
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
    /// Address probed, added and announced; one already held that this run has not claimed (a
    /// killed agent's) is adopted: announced only, no probe, no add.
    AddressClaim,
    /// Target refusing logins. In a demote with `[tickle]` whose peer acknowledged the fresh
    /// list of the connections on the resource's addresses, the connections stay open (the
    /// peer's claim resets them; `target-remove` closes them after the address is gone, so no
    /// FIN leaves); otherwise, and in a rollback, every connection is closed while the address
    /// is still here, so the initiators get the FIN instead of waiting for their own timeouts
    /// (docs/takeover.md, "Demote order").
    TargetOffline,
    /// Address removed.
    AddressRelease,
    /// Target deleted from tgtd.
    TargetRemove,
    /// DRBD Secondary.
    DrbdSecondary,
}

/// What a stage acts on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Object {
    /// A resource (DRBD and its target), by name.
    Resource,
    /// A floating address, as written in the config.
    Address,
}

/// What a completed stage leaves behind (the planner's view of its forward action).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Effect {
    /// Nothing observable (a check, a probe started).
    Nothing,
    /// The DRBD resource exists in the kernel.
    DrbdUp,
    /// DRBD's local role.
    Role(Role),
    /// The target's state.
    Target(TargetState),
    /// The address held (`true`) or not.
    Held(bool),
}

/// A live precondition the executor checks right before a stage's action; failing one is a
/// refusal (nothing changed by that stage).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Precondition {
    /// The one promote safety check (`fsm::safety::allows`) passes on DRBD's live state for
    /// this kind of promotion (a resource already Primary passes and skips the action).
    MayPromote(Promotion),
    /// Nobody answered for the addresses in front of the resource since their probes started;
    /// with `unless_drbd_arbitrates`, not needed before an unforced `primary` that DRBD itself
    /// keeps from forking the data
    /// ([`DrbdView::guards_unforced_promote`](super::DrbdView::guards_unforced_promote)); a
    /// forced request, or a retry DRBD no longer guards, still waits for the verdict (the
    /// executor's `primary`).
    AddressesUnanswered {
        /// Skip the check where DRBD itself refuses a promote that could fork the data.
        unless_drbd_arbitrates: bool,
    },
    /// No one else's target holds the resource's tid or IQN (a target of another IQN at our
    /// tid is never touched; the promote is refused before DRBD Primary).
    TargetOwned,
    /// DRBD is Primary here, read live unless an earlier step of the same plan made it so: a
    /// target is never served from a Secondary (a repair planned on a view a rollback or the
    /// peer has since changed).
    DrbdPrimary,
}

/// One stage as data.
#[derive(Debug, Clone, Copy)]
pub struct StageDef {
    /// The stage.
    pub stage: Stage,
    /// Kebab-case name used in logs, status and scenario files.
    pub name: &'static str,
    /// What it acts on.
    pub object: Object,
    /// Moves towards serving: a failure here (or later in the same plan) is rolled back; a
    /// failure while moving away from serving is reported and left for the next signal or the
    /// daemon's retry (rolling a demote back would mean serving again).
    pub forward: bool,
    /// Only checks or starts a check: a failure of any kind is a refusal.
    pub check_only: bool,
    /// What it leaves behind.
    pub effect: Effect,
    /// The stages that undo it on rollback, run in [`DEMOTE`] order. Checks and bring-up need
    /// none (an up, Secondary resource is safe).
    pub undo: &'static [Stage],
    /// Undone on rollback even when it failed: a late failure (a timeout) may hide that it took
    /// effect, and its undo is idempotent. Not a serve: the target at that tid may not be ours.
    pub undo_if_failed: bool,
    /// Checked live by the executor right before the action, in this order.
    pub preconditions: &'static [Precondition],
}

const fn def(stage: Stage, name: &'static str, object: Object, effect: Effect) -> StageDef {
    StageDef {
        stage,
        name,
        object,
        forward: false,
        check_only: false,
        effect,
        undo: &[],
        undo_if_failed: false,
        preconditions: &[],
    }
}

/// Every stage's definition, indexed by `Stage as usize` (checked by a unit test).
const STAGES: [StageDef; 11] = [
    StageDef {
        forward: true,
        check_only: true,
        preconditions: &[
            Precondition::MayPromote(Promotion::Normal),
            Precondition::TargetOwned,
        ],
        ..def(
            Stage::CheckResource,
            "check-resource",
            Object::Resource,
            Effect::Nothing,
        )
    },
    StageDef {
        forward: true,
        check_only: true,
        ..def(
            Stage::ProbeAddress,
            "probe-address",
            Object::Address,
            Effect::Nothing,
        )
    },
    def(Stage::DrbdUp, "drbd-up", Object::Resource, Effect::DrbdUp),
    StageDef {
        forward: true,
        undo: &[Stage::DrbdSecondary],
        undo_if_failed: true,
        preconditions: &[Precondition::AddressesUnanswered {
            unless_drbd_arbitrates: true,
        }],
        ..def(
            Stage::DrbdPrimary,
            "drbd-primary",
            Object::Resource,
            Effect::Role(Role::Primary),
        )
    },
    StageDef {
        forward: true,
        undo: &[Stage::DrbdSecondary],
        undo_if_failed: true,
        preconditions: &[
            Precondition::AddressesUnanswered {
                unless_drbd_arbitrates: false,
            },
            Precondition::MayPromote(Promotion::Force),
            Precondition::TargetOwned,
        ],
        ..def(
            Stage::DrbdPrimaryForce,
            "drbd-primary-force",
            Object::Resource,
            Effect::Role(Role::Primary),
        )
    },
    StageDef {
        forward: true,
        undo: &[Stage::TargetOffline, Stage::TargetRemove],
        preconditions: &[Precondition::DrbdPrimary],
        ..def(
            Stage::TargetServe,
            "target-serve",
            Object::Resource,
            Effect::Target(TargetState::Serving),
        )
    },
    StageDef {
        forward: true,
        undo: &[Stage::AddressRelease],
        undo_if_failed: true,
        ..def(
            Stage::AddressClaim,
            "address-claim",
            Object::Address,
            Effect::Held(true),
        )
    },
    def(
        Stage::TargetOffline,
        "target-offline",
        Object::Resource,
        Effect::Target(TargetState::Offline),
    ),
    def(
        Stage::AddressRelease,
        "address-release",
        Object::Address,
        Effect::Held(false),
    ),
    def(
        Stage::TargetRemove,
        "target-remove",
        Object::Resource,
        Effect::Target(TargetState::Absent),
    ),
    def(
        Stage::DrbdSecondary,
        "drbd-secondary",
        Object::Resource,
        Effect::Role(Role::Secondary),
    ),
];

/// THE promote order: checks (local disk, peer, nobody answering for the address) → DRBD
/// Primary (normal, then forced where only a degraded promote is allowed) → target serving →
/// address claimed. The address is claimed only after every serve succeeded.
pub const PROMOTE: &[Stage] = &[
    Stage::CheckResource,
    Stage::ProbeAddress,
    Stage::DrbdPrimary,
    Stage::DrbdPrimaryForce,
    Stage::TargetServe,
    Stage::AddressClaim,
];

/// THE demote order, also the order of every rollback: target offline, its connections either
/// handed over to the peer or closed while the address is still here (see
/// [`Stage::TargetOffline`]) → address released → target removed (closing what is left open,
/// silently once the address is gone) → a managed resource brought up → DRBD Secondary.
pub const DEMOTE: &[Stage] = &[
    Stage::TargetOffline,
    Stage::AddressRelease,
    Stage::TargetRemove,
    Stage::DrbdUp,
    Stage::DrbdSecondary,
];

/// Before a promote: managed resources that are down are brought up first; their DRBD events
/// then report the disk state the safety checks need.
pub const BRING_UP: &[Stage] = &[Stage::DrbdUp];

impl Stage {
    /// All stages.
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

    /// Its definition.
    pub fn def(self) -> &'static StageDef {
        &STAGES[self as usize]
    }

    /// The kebab-case name used in logs, status and scenario files.
    pub fn name(self) -> &'static str {
        self.def().name
    }

    /// Stages that undo this one when a transition is rolled back.
    pub fn undo(self) -> &'static [Stage] {
        self.def().undo
    }

    /// Does this stage move towards serving? See [`StageDef::forward`].
    pub fn is_forward(self) -> bool {
        self.def().forward
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
    /// `stage` on `object`.
    pub fn new(stage: Stage, object: &str) -> Self {
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

/// What a plan does, as shown in status, events and metrics.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
#[non_exhaustive]
pub enum PlanKind {
    /// Makes this node DRBD Primary (and serving).
    Promote,
    /// Moves this node away from serving.
    Demote,
    /// Puts back what is missing without a role change (an address removed by hand, tgtd
    /// restarted empty, a managed resource brought up).
    Repair,
}

impl PlanKind {
    /// `promote`, `demote` or `repair`.
    pub fn as_str(self) -> &'static str {
        match self {
            PlanKind::Promote => "promote",
            PlanKind::Demote => "demote",
            PlanKind::Repair => "repair",
        }
    }
}

impl fmt::Display for PlanKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl PartialEq<&str> for PlanKind {
    fn eq(&self, other: &&str) -> bool {
        self.as_str() == *other
    }
}

/// Steps in one of the orders above, and what they do together.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Plan {
    /// Promote, demote or repair.
    pub kind: PlanKind,
    /// The steps, in order; consecutive steps of one stage may run concurrently.
    pub steps: Vec<Step>,
}

impl fmt::Display for Plan {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, s) in self.steps.iter().enumerate() {
            if i > 0 {
                f.write_str("; ")?;
            }
            s.fmt(f)?;
        }
        Ok(())
    }
}

/// The steps that undo `done` (the forward steps a plan completed, in order), in [`DEMOTE`]
/// order: what a rollback runs.
pub fn rollback(done: &[Step]) -> Vec<Step> {
    let mut undo: Vec<Step> = done
        .iter()
        .rev()
        .flat_map(|s| s.stage.undo().iter().map(|u| Step::new(*u, &s.object)))
        .collect();
    undo.sort_by_key(|s| DEMOTE.iter().position(|d| *d == s.stage));
    undo
}

/// For each step of `steps` (a plan in one of the orders above), the earlier steps it waits
/// for: the last earlier step on its own object and on each related one, an address and the
/// resources of its group (`groups`: address, resource names). Related steps keep the plan's
/// order; steps of unrelated objects may run concurrently. So each resource runs [`PROMOTE`] /
/// [`DEMOTE`] on its own, while an address is claimed only after every resource of its group
/// served and released before any of them is removed.
pub fn prerequisites(steps: &[Step], groups: &[(&str, &[String])]) -> Vec<Vec<usize>> {
    let mut index: HashMap<&str, usize> = HashMap::new();
    let of: Vec<usize> = steps
        .iter()
        .map(|s| {
            let n = index.len();
            *index.entry(s.object.as_str()).or_insert(n)
        })
        .collect();
    let mut near: Vec<Vec<usize>> = (0..index.len()).map(|o| vec![o]).collect();
    for (address, resources) in groups {
        let Some(&a) = index.get(address) else {
            continue;
        };
        for r in resources.iter().filter_map(|r| index.get(r.as_str())) {
            near[a].push(*r);
            near[*r].push(a);
        }
    }
    let mut last: Vec<Option<usize>> = vec![None; index.len()];
    of.iter()
        .enumerate()
        .map(|(i, &o)| {
            let before = near[o].iter().filter_map(|&b| last[b]).collect();
            last[o] = Some(i);
            before
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_is_indexed_by_stage() {
        for (i, s) in Stage::ALL.into_iter().enumerate() {
            assert_eq!(STAGES[i].stage, s);
            assert_eq!(s as usize, i);
        }
    }

    #[test]
    fn stage_names_round_trip() {
        for s in Stage::ALL {
            assert_eq!(s.name().parse::<Stage>(), Ok(s));
        }
    }

    #[test]
    fn prerequisites_keep_the_order_per_resource_and_group() {
        let s = |stage, o| Step::new(stage, o);
        let steps = [
            s(Stage::DrbdPrimary, "r0"),
            s(Stage::DrbdPrimary, "r1"),
            s(Stage::DrbdPrimary, "r2"),
            s(Stage::TargetServe, "r0"),
            s(Stage::TargetServe, "r1"),
            s(Stage::TargetServe, "r2"),
            s(Stage::AddressClaim, "a"),
        ];
        // Address `a` fronts r0 and r1; r2 is on its own.
        let group = ["r0".to_string(), "r1".to_string()];
        let mut deps = prerequisites(&steps, &[("a", &group)]);
        deps.iter_mut().for_each(|d| d.sort());
        assert_eq!(
            deps,
            vec![
                vec![],
                vec![],
                vec![],
                vec![0],
                vec![1],
                vec![2],
                vec![3, 4]
            ]
        );
    }

    #[test]
    fn every_stage_is_in_one_order_and_undos_are_demote_stages() {
        for s in Stage::ALL {
            let n = PROMOTE.iter().chain(DEMOTE).filter(|x| **x == s).count();
            assert_eq!(n, 1, "{s}");
            assert_eq!(s.is_forward(), PROMOTE.contains(&s), "{s}");
            for u in s.undo() {
                assert!(DEMOTE.contains(u), "{s} undo {u}");
            }
        }
    }
}
