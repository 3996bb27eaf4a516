//! systemd service notification (`Type=notify`, `sd_notify(3)`) through the `sd-notify` crate:
//! `READY=1` once the first full observation is in, a `STATUS=` line whenever the node's role or
//! health changes, `WATCHDOG=1` from the daemon's loop while it is free (half of `WatchdogSec=`,
//! so a stuck loop gets the service restarted), and `STOPPING=1` on the way out.
//!
//! Outside systemd (`NOTIFY_SOCKET` unset) every call does nothing. Send errors are logged once
//! at debug level and otherwise ignored: notification never stops the agent.

use std::time::Duration;

use sd_notify::NotifyState;
use tracing::{debug, info};

use crate::daemon::Handled;
use crate::fsm::{Action, Authority, State};
use crate::monitor::Monitor;
use crate::status::Status;

/// The systemd notifier, a [`Monitor`] of the daemon.
#[derive(Debug, Default)]
pub struct Notify {
    ready: bool,
    /// Converged once since start (logged with the time since exec).
    converged: bool,
    last_status: String,
    watchdog: Option<Duration>,
}

impl Notify {
    /// A notifier for this process: the watchdog period comes from `WATCHDOG_USEC` (when
    /// `WATCHDOG_PID` is unset or this process), pinged at half of it.
    pub fn from_env() -> Notify {
        Notify {
            watchdog: sd_notify::watchdog_enabled().map(|d| d / 2),
            ..Notify::default()
        }
    }

    fn send(states: &[NotifyState]) {
        if let Err(e) = sd_notify::notify(states) {
            debug!(error = %e, "sd_notify");
        }
    }
}

/// `STOPPING=1`: the daemon is shutting down (sent by whoever ends the loop).
pub fn stopping() {
    Notify::send(&[NotifyState::Stopping, NotifyState::Status("stopping")]);
}

/// One `STATUS=` line: the node's role and the authority, then its health (the most pressing
/// condition first).
pub fn status_line(status: &Status, handled: &Handled) -> String {
    let failed_observation = handled.notices.iter().find_map(|a| match a {
        Action::Alarm(r) if r.starts_with("observation failed") => Some(r.as_str()),
        _ => None,
    });
    let health = if let Some(r) = failed_observation {
        r.to_string()
    } else if !status.split_brain.is_empty() {
        format!("SPLIT BRAIN on {}", status.split_brain.join(", "))
    } else if status.addresses.iter().any(|a| a.conflict.is_some()) {
        let named: Vec<String> = (status.addresses.iter())
            .filter_map(|a| {
                let c = a.conflict.as_ref()?;
                let macs = if c.macs.is_empty() {
                    c.mac.clone()
                } else {
                    c.macs.join(", ")
                };
                // Its watch ended: shown, but nothing vouches for it now.
                let unwatched = if c.unwatched.is_some() {
                    "; not watched"
                } else {
                    ""
                };
                Some(format!("{} ({macs}{unwatched})", a.address))
            })
            .collect();
        format!("ADDRESS CONFLICT on {}", named.join(", "))
    } else if let Some(b) = &status.blocked {
        format!("blocked: {b}")
    } else if let Authority::Unknown(r) = &status.authority {
        format!("authority unknown: {r}")
    } else if !status.waiting_for_peer.is_empty() {
        let names: Vec<&str> = status
            .waiting_for_peer
            .iter()
            .map(|w| w.resource.as_str())
            .collect();
        format!("waiting for peer on {}", names.join(", "))
    } else if status.addresses.iter().any(|a| a.waiting_for_link) {
        let waiting = status.addresses.iter().filter(|a| a.waiting_for_link);
        let names: Vec<String> = waiting
            .map(|a| format!("{} on {}", a.address, a.interface))
            .collect();
        format!("address waiting for link: {}", names.join(", "))
    } else if status.converged && !status.degraded.is_empty() {
        format!("converged, degraded: {}", status.degraded.join("; "))
    } else if status.converged {
        "converged".into()
    } else {
        "converging".into()
    };
    format!(
        "{} (authority {}{}): {health}",
        status.node_role,
        match status.authority {
            Authority::Unknown(_) => "unknown",
            Authority::Primary => "primary",
            Authority::Secondary => "secondary",
        },
        if status.maintenance {
            ", maintenance"
        } else {
            ""
        },
    )
}

impl Monitor for Notify {
    fn handled(&mut self, state: &State, status: &Status, handled: &Handled) {
        let line = status_line(status, handled);
        let ready = !self.ready && state.observed;
        if ready {
            info!(
                since_exec_ms = crate::logs::since_exec_ms(),
                cpu_ms = crate::logs::cpu_ms(),
                status = %line,
                "ready"
            );
        }
        if !self.converged && status.converged {
            self.converged = true;
            info!(
                since_exec_ms = crate::logs::since_exec_ms(),
                cpu_ms = crate::logs::cpu_ms(),
                status = %line,
                "converged since start"
            );
        }
        if !ready && line == self.last_status {
            return;
        }
        if ready {
            self.ready = true;
            Notify::send(&[NotifyState::Ready, NotifyState::Status(&line)]);
        } else {
            Notify::send(&[NotifyState::Status(&line)]);
        }
        self.last_status = line;
    }

    fn alive_every(&self) -> Option<Duration> {
        self.watchdog
    }

    fn alive(&mut self) {
        Notify::send(&[NotifyState::Watchdog]);
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;
    use crate::config::Config;
    use crate::status::{AddressConflict, AddressStatus};

    /// A converged Primary holding 10.0.0.5/24.
    fn holding() -> Status {
        let config = Config::parse(crate::config::TEST_MINIMAL, Path::new("x")).expect("parses");
        let mut st = Status::new(&config, &config.fingerprint(), &State::new(&config), []);
        st.node_role = "Primary".into();
        st.authority = Authority::Primary;
        st.converged = true;
        st.degraded.clear();
        st.addresses = vec![AddressStatus::held_for_test("10.0.0.5/24", "eth1")];
        st
    }

    fn conflict(macs: &[&str]) -> Option<AddressConflict> {
        Some(AddressConflict {
            first_seen_ms_ago: 3000,
            last_seen_ms_ago: 1000,
            frames: 4,
            ..AddressConflict::seen_for_test(macs)
        })
    }

    #[test]
    fn an_address_conflict_is_shown_until_it_clears() {
        let mut st = holding();
        let none = Handled::default();
        assert_eq!(
            status_line(&st, &none),
            "Primary (authority primary): converged"
        );
        st.addresses[0].conflict = conflict(&["02:99:00:00:00:02"]);
        assert_eq!(
            status_line(&st, &none),
            "Primary (authority primary): ADDRESS CONFLICT on 10.0.0.5/24 (02:99:00:00:00:02)"
        );
        st.addresses[0].conflict = conflict(&["02:99:00:00:00:02", "02:99:00:00:00:03"]);
        assert!(status_line(&st, &none)
            .ends_with(": ADDRESS CONFLICT on 10.0.0.5/24 (02:99:00:00:00:02, 02:99:00:00:00:03)"));
        // Its watch ended: still shown, as not watched.
        if let Some(c) = st.addresses[0].conflict.as_mut() {
            c.unwatched = Some("interface eth1 is down".into());
        }
        assert!(status_line(&st, &none).ends_with(
            ": ADDRESS CONFLICT on 10.0.0.5/24 (02:99:00:00:00:02, 02:99:00:00:00:03; not watched)"
        ));
        // A split brain comes first.
        st.split_brain = vec!["r0".into()];
        assert!(status_line(&st, &none).ends_with(": SPLIT BRAIN on r0"));
        st.split_brain.clear();
        st.addresses[0].conflict = None;
        assert_eq!(
            status_line(&st, &none),
            "Primary (authority primary): converged"
        );
    }
}
