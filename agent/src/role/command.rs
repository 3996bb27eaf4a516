//! Command role source: `iscsi-ha promote|demote` over the control socket.
//!
//! With `role = { source = "command" }` the operator (or another cluster manager) is the
//! authority: `promote` and `demote` set the wish, and `promote` is refused with the reason while
//! the peer is DRBD Primary or another host answers for an address (checked live before any
//! change). `maintenance on|off` works with every role source. With `pool-conf` as the source,
//! `promote`/`demote` are refused: the pool master decides.

use crate::control::Request;
use crate::fsm::{Command, Event};

/// The machine event for a control request (`None` for `status`, which changes nothing).
pub fn to_event(req: Request) -> Option<Event> {
    match req {
        Request::Status | Request::SplitBrain | Request::Events | Request::Reload => None,
        Request::PromoteDegraded => Some(Event::Command(Command::PromoteDegraded)),
        Request::Promote => Some(Event::Command(Command::Promote)),
        Request::Demote => Some(Event::Command(Command::Demote)),
        Request::Maintenance { on } => Some(Event::Maintenance(on)),
    }
}
