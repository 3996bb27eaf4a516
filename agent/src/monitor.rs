//! Followers of the daemon's loop (systemd notification, metrics, event streams): they are told
//! what each input led to and, while the loop is free, are called periodically so a stuck loop
//! shows (the systemd watchdog stops being fed).

use std::fmt::Debug;
use std::time::Duration;

use crate::daemon::Handled;
use crate::fsm::State;
use crate::status::Status;

/// One follower of the daemon's loop. Calls are made from the loop itself, so they must be quick
/// and never block (send on a channel, set an atomic, write one datagram).
pub trait Monitor: Send + Sync + Debug {
    /// After each input the loop handled (observations included): the machine's state, the
    /// status built from it, and the transitions and notices the input led to.
    fn handled(&mut self, state: &State, status: &Status, handled: &Handled);

    /// How often the loop calls [`Monitor::alive`] while it is free; `None` (the default): never.
    fn alive_every(&self) -> Option<Duration> {
        None
    }

    /// The loop is free (not stuck in an input): called every [`Monitor::alive_every`].
    fn alive(&mut self) {}
}
