//! The state machine: pure transitions, no I/O.
//!
//! [`step`] takes the [`State`] (what the agent believes: the authority's wish and what it last
//! observed of DRBD, the target daemon and the addresses) and one [`Event`], and returns the new
//! state and the [`Action`]s to run. A plan is the *difference* between the wish and the
//! observation, in the orders written once as data in [`order`] ([`PROMOTE`], [`DEMOTE`]):
//!
//! * promote: safety checks (local disk UpToDate, peer not Primary, nobody answers for the
//!   address) → DRBD Primary → target, LUNs and ACLs serving → addresses claimed;
//!   while the peer is absent, only with data known to be current ([`safety::promotion`], the
//!   one check the executor also runs live);
//! * demote: target offline with every connection closed (while the address is still here, so
//!   the initiators see the close) → addresses released → target removed → DRBD Secondary.
//!
//! Because only the difference is planned, every step is idempotent, a restart converges from
//! any mixed state without a flap, and a repair (an address removed by hand, tgtd restarted
//! empty) is just a short plan. Nothing is planned before the first full observation, in
//! maintenance, while the authority is unknown (except a managed resource's bring-up, as
//! Secondary, which any role allows), or after a failure until a new signal arrives (a role
//! signal, a command, the safety net, the daemon's retry timer, or an observation that differs
//! from what the failed transition left).
//!
//! Modules: [`view`] (what is observed), [`order`] (the orders and each stage as data),
//! [`safety`] (the promote check), `state` (what the machine believes and its plan),
//! `transition` (events, actions and [`step`]). The machine imports nothing else of the agent.

pub mod order;
pub mod safety;
mod state;
mod transition;
pub mod view;

pub use order::{Plan, PlanKind, Stage, Step, DEMOTE, PROMOTE};
pub use safety::{Promotion, Refusal, DEGRADED_HINT, WAITING_FOR_PEER};
pub use state::{AddressState, Notice, ResourceState, State};
pub use transition::{step, Action, Command, Event, Outcome};
pub use view::*;
