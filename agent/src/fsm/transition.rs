//! The transition function: events in, actions out.

use std::fmt;

use serde::{Deserialize, Serialize};

use super::order::{Effect, Plan, Stage, Step};
use super::state::{Notice, State};
use super::view::{Authority, Disk, DrbdView, Role, Snapshot, TargetState, TargetView};

/// What [`step`] asks for.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub enum Action {
    /// Run this plan (the executor runs consecutive steps of one stage concurrently).
    Run(Plan),
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
    /// The reported failure will not change if tried again soon
    /// ([`crate::BackendError::is_lasting`]): an OCF action answers with it at once.
    #[serde(default)]
    pub lasting: bool,
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
    /// The address watch reported its interface's link going down (or losing carrier) or
    /// coming back.
    Link {
        /// The address as written in the config.
        address: String,
        /// Administratively up with carrier now.
        up: bool,
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
    /// The slow safety net, or a subsystem answering again (a new tgtd): clear a failure block
    /// and re-plan.
    Tick,
}

/// The one transition function.
pub fn step(mut state: State, event: Event) -> (State, Vec<Action>) {
    let mut pre = Vec::new();
    // This event ends a plan that brought DRBD up: the view it left is the step's, not yet
    // DRBD's own report.
    let mut brought_up = false;
    match event {
        Event::Observed(snap) => {
            pre.extend(state.apply_snapshot(&snap));
            state.observed = true;
            state.blocked = None;
            for r in state.resources.values_mut() {
                r.bringup_failed = false;
            }
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
                    match state.plan_for_wish() {
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
            state.commanded = (c != Command::Demote).then_some(previous);
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
                // Our own steps come back as Executed: this is tgt's tooling, a restart or a hand.
                let was = r.view.target.state;
                if state.authority == Authority::Primary
                    && was == TargetState::Serving
                    && view.state != was
                {
                    pre.push(Action::Alarm(format!(
                        "{resource}: target changed outside the agent: was serving, now {:?}; \
                         serving it again",
                        view.state
                    )));
                }
                r.view.target = view;
            }
            None => return (state, pre),
        },
        Event::Address { address, held } => match state.addresses.get_mut(&address) {
            Some(a) => {
                if a.echoes.first() == Some(&held) {
                    // One of our own steps, reported: the state already has it and what
                    // followed.
                    a.echoes.remove(0);
                    return (state, pre);
                }
                a.echoes.clear();
                if held && !a.held && state.authority == Authority::Secondary {
                    pre.push(Action::Alarm(format!(
                        "{address} appeared on this node, which the authority does not name \
                         primary: released"
                    )));
                }
                if a.held != held {
                    state.blocked = None;
                }
                a.set_held(held);
            }
            None => return (state, pre),
        },
        Event::Link { address, up } => match state.addresses.get_mut(&address) {
            Some(a) => {
                if a.link_down == up {
                    state.blocked = None;
                }
                a.link_down = !up;
            }
            None => return (state, pre),
        },
        Event::Executed(out) => {
            brought_up = (out.applied.iter()).any(|s| s.stage == Stage::DrbdUp);
            let before: Vec<DrbdView> = state
                .resources
                .values()
                .map(|r| r.view.drbd.clone())
                .collect();
            match &out.snapshot {
                Some(s) => {
                    // The events of the plan's role changes (a promote and its rollback), and
                    // of an earlier round's still awaited, are still to come, older than this
                    // snapshot: those with another role than the snapshot's are dropped until
                    // one agrees, as after a step. Not for a resource the snapshot shows down.
                    let awaited: Vec<String> = state
                        .resources
                        .iter()
                        .filter(|(_, r)| r.echo.is_some())
                        .map(|(n, _)| n.clone())
                        .chain(
                            out.applied
                                .iter()
                                .filter(|step| matches!(step.stage.def().effect, Effect::Role(_)))
                                .map(|step| step.object.clone()),
                        )
                        .collect();
                    // The reports of the addresses the plan added or removed are still to
                    // come too, after those of earlier steps still awaited.
                    let mut echoes: Vec<(String, Vec<bool>)> = (state.addresses.iter())
                        .map(|(n, a)| (n.clone(), a.echoes.clone()))
                        .collect();
                    for (name, awaited) in &mut echoes {
                        let mut held = state.addresses[name.as_str()].held;
                        for step in out.applied.iter().filter(|s| &s.object == name) {
                            if let Effect::Held(h) = step.stage.def().effect {
                                if h != held {
                                    awaited.push(h);
                                    held = h;
                                }
                            }
                        }
                    }
                    pre.extend(state.apply_snapshot(s));
                    for name in awaited {
                        if let Some(r) = state.resources.get_mut(&name) {
                            r.echo = r.view.drbd.up.then_some(r.view.drbd.role);
                        }
                    }
                    for (name, awaited) in echoes {
                        if let Some(a) = state.addresses.get_mut(&name) {
                            a.echoes = awaited;
                        }
                    }
                }
                None => {
                    for s in &out.applied {
                        state.apply_step(s);
                    }
                }
            }
            if let Some((failed, reason)) = &out.failed {
                if failed.stage == Stage::DrbdUp {
                    if let Some(r) = state.resources.get_mut(&failed.object) {
                        r.bringup_failed = true;
                    }
                }
                let text = format!("{failed} failed: {reason}");
                if out.refused && state.command_source {
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
                // A claim that found its link down (gone down since the plan): the observation
                // says so, and the next plan waits for the link instead of claiming.
                let link_down = failed.stage == Stage::AddressClaim
                    && out.snapshot.is_some()
                    && state
                        .addresses
                        .get(&failed.object)
                        .is_some_and(|a| a.link_down && !a.held);
                if !moved && !link_down {
                    state.blocked = Some(text);
                    state.command_not_carried_out();
                    return (state, pre);
                }
            }
        }
        Event::Tick => {
            state.blocked = None;
        }
    }
    let mut actions = pre;
    let mut planned = state.plan();
    // The command's plans end here: carried out, or refused once its bring-up is done. A
    // refused one is not kept as a wish (it would promote later, behind the operator's back,
    // once DRBD reports or the peer goes): the reply says refused and the state agrees.
    if !matches!(planned.first(), Some(Action::Run(_))) && state.commanded.is_some() {
        match state.diff() {
            Err(notice) => {
                state.command_refused();
                let mut text = notice.text().to_string();
                if brought_up {
                    text.push_str(
                        "; DRBD was brought up just now (Secondary) and has not reported its \
                         state yet: promote again once it has",
                    );
                }
                // The alarm, if any, still goes out; the reply is the refusal.
                planned.retain(|a| matches!(a, Action::Alarm(_)));
                planned.push(Action::Refuse(text));
                // The authority put back may have its own plan (a bring-up).
                planned.extend(state.plan());
            }
            Ok(_) => state.commanded = None,
        }
    }
    actions.extend(planned);
    (state, actions)
}
