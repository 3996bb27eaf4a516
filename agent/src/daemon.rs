//! The daemon: one owner of the [`State`], one loop over its inputs, no polling.
//!
//! Inputs are [`Event`]s (role source, DRBD, target and address watches) and control requests.
//! Each input goes through [`step`]; the steps it plans are run by the [`Executor`] and the
//! outcome is fed back as [`Event::Executed`], until nothing is left to do. Inputs that arrive
//! meanwhile wait in their channels, so transitions never overlap. The only timer is the
//! optional slow safety net (`timeouts.safety_net_s`), which re-observes everything.

use std::collections::VecDeque;
use std::time::Duration;

use tokio::sync::mpsc;
use tracing::{info, warn};

use crate::backend::{Address, Drbd, Target};
use crate::control::{Pending, Request, Response};
use crate::executor::{Executor, TransitionRecord};
use crate::fsm::{step, Action, Event, State, Step};
use crate::status::Status;

/// How many transitions `status` keeps.
pub const KEEP_TRANSITIONS: usize = 16;
/// Plans run for one input at most (a safety bound; a settled machine needs one or two).
const MAX_ROUNDS: usize = 8;

/// What one input led to.
#[derive(Debug, Default, Clone)]
pub struct Handled {
    /// Refusals and alarms emitted.
    pub notices: Vec<Action>,
    /// Transitions run.
    pub transitions: Vec<TransitionRecord>,
}

/// The agent's core.
#[derive(Debug)]
pub struct Daemon<D, T, A> {
    exec: Executor<D, T, A>,
    state: Option<State>,
    records: VecDeque<TransitionRecord>,
}

impl<D: Drbd, T: Target, A: Address> Daemon<D, T, A> {
    /// A daemon over this executor; nothing is observed yet.
    pub fn new(exec: Executor<D, T, A>) -> Self {
        let state = State::new(exec.config());
        Self {
            exec,
            state: Some(state),
            records: VecDeque::new(),
        }
    }

    /// The machine's state.
    pub fn state(&self) -> Option<&State> {
        self.state.as_ref()
    }

    /// The current status.
    pub fn status(&self) -> Option<Status> {
        self.state
            .as_ref()
            .map(|s| Status::new(self.exec.config(), s, self.records.iter()))
    }

    /// Read the actual state of everything and converge (start, safety net).
    pub async fn observe(&mut self) -> Handled {
        match self.exec.observe().await {
            Ok(snap) => self.handle(Event::Observed(snap)).await,
            Err(e) => {
                warn!(error = %e, "observation failed");
                Handled {
                    notices: vec![Action::Alarm(format!("observation failed: {e}"))],
                    transitions: Vec::new(),
                }
            }
        }
    }

    /// Feed one event and run what it leads to.
    pub async fn handle(&mut self, event: Event) -> Handled {
        let mut handled = Handled::default();
        let mut next = Some(event);
        let mut rounds = 0;
        while let Some(ev) = next.take() {
            let Some(state) = self.state.take() else {
                break;
            };
            let (state, actions) = step(state, ev);
            self.state = Some(state);
            let mut steps: Vec<Step> = Vec::new();
            for a in actions {
                match a {
                    Action::Run(s) => steps.push(s),
                    Action::Refuse(ref r) => {
                        info!(reason = %r, "refused");
                        handled.notices.push(a);
                    }
                    Action::Alarm(ref r) => {
                        warn!(reason = %r, "alarm");
                        handled.notices.push(a);
                    }
                }
            }
            if steps.is_empty() {
                break;
            }
            rounds += 1;
            if rounds > MAX_ROUNDS {
                warn!("plan did not settle after {MAX_ROUNDS} rounds");
                break;
            }
            let (outcome, record) = self.exec.run(steps).await;
            self.records.push_back(record.clone());
            while self.records.len() > KEEP_TRANSITIONS {
                self.records.pop_front();
            }
            handled.transitions.push(record);
            next = Some(Event::Executed(outcome));
        }
        handled
    }

    /// Answer one control request.
    pub async fn request(&mut self, req: Request) -> Response {
        let handled = match crate::role::command::to_event(req) {
            None => Handled::default(),
            Some(ev) => self.handle(ev).await,
        };
        let refused = handled.notices.iter().find_map(|a| match a {
            Action::Refuse(r) => Some(r.clone()),
            _ => None,
        });
        let failed = handled
            .transitions
            .iter()
            .find(|t| t.result != "ok")
            .map(|t| t.result.clone());
        let (ok, message) = match (refused, failed) {
            (Some(r), _) => (false, format!("refused: {r}")),
            (None, Some(f)) => (false, f),
            (None, None) => match handled.transitions.last() {
                Some(t) => (
                    true,
                    format!(
                        "{} done in {:.1} ms",
                        t.kind,
                        t.total_micros as f64 / 1000.0
                    ),
                ),
                None => (true, "nothing to do".into()),
            },
        };
        Response {
            ok,
            message,
            status: self.status().map(Box::new),
        }
    }

    /// Run until both input channels close: observe, then follow events and requests.
    pub async fn run(
        mut self,
        mut events: mpsc::UnboundedReceiver<Event>,
        mut control: mpsc::Receiver<Pending>,
    ) {
        self.observe().await;
        let period = self.exec.config().timeouts.safety_net_s;
        let mut tick = tokio::time::interval(Duration::from_secs(period.max(1)));
        tick.tick().await;
        let mut events_open = true;
        let mut control_open = true;
        while events_open || control_open {
            tokio::select! {
                ev = events.recv(), if events_open => match ev {
                    Some(ev) => { self.handle(ev).await; }
                    None => events_open = false,
                },
                p = control.recv(), if control_open => match p {
                    Some(p) => {
                        let resp = self.request(p.request).await;
                        let _ = p.reply.send(resp);
                    }
                    None => control_open = false,
                },
                _ = tick.tick(), if period > 0 => {
                    // The safety net: re-read everything (which also lifts a failure block).
                    self.observe().await;
                }
            }
        }
    }
}
