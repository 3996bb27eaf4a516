//! `iscsi-ha events`: what the agent does, as it happens, for any tool to follow without
//! polling. The [`EventsMonitor`] publishes each transition, alarm, refusal and change of the
//! node's health line on an [`EventBus`]; the control socket streams them to each client that
//! sent `{"cmd":"events"}`, one JSON object per line, after one [`crate::control::Response`].
//!
//! A client that reads too slowly to keep [`BACKLOG`] events buffered gets a `lost` event with
//! the count instead of the ones it missed; nothing waits for a slow client.

use std::time::{SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};
use tokio::sync::broadcast;

use crate::daemon::Handled;
use crate::executor::TransitionRecord;
use crate::fsm::{Action, State};
use crate::monitor::Monitor;
use crate::status::Status;

/// Events kept per client before it counts as lagging.
pub const BACKLOG: usize = 256;

/// One line of `iscsi-ha events`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "event", rename_all = "kebab-case")]
#[non_exhaustive]
pub enum AgentEvent {
    /// A transition finished (its record, as `iscsi-ha status` shows it).
    Transition {
        /// Node name.
        node: String,
        /// What ran, with per-stage times.
        record: TransitionRecord,
    },
    /// Something needs an operator.
    Alarm {
        /// Node name.
        node: String,
        /// When, milliseconds since the Unix epoch.
        unix_ms: u64,
        /// Why.
        reason: String,
    },
    /// A request or plan was refused.
    Refusal {
        /// Node name.
        node: String,
        /// When, milliseconds since the Unix epoch.
        unix_ms: u64,
        /// Why.
        reason: String,
    },
    /// The node's role or health changed (the line systemd shows as the service's status).
    Health {
        /// Node name.
        node: String,
        /// When, milliseconds since the Unix epoch.
        unix_ms: u64,
        /// E.g. `Primary (authority primary): converged`.
        status: String,
    },
    /// This client missed events (it read too slowly).
    Lost {
        /// How many.
        count: u64,
    },
}

/// The channel events are published on; each subscriber gets every event from then on.
#[derive(Debug, Clone)]
pub struct EventBus(broadcast::Sender<AgentEvent>);

impl Default for EventBus {
    fn default() -> Self {
        EventBus(broadcast::channel(BACKLOG).0)
    }
}

impl EventBus {
    /// Follow the events from now on.
    pub fn subscribe(&self) -> broadcast::Receiver<AgentEvent> {
        self.0.subscribe()
    }

    /// Publish one event (dropped when nobody follows).
    pub fn publish(&self, ev: AgentEvent) {
        let _ = self.0.send(ev);
    }
}

/// The next event for a subscriber: a [`AgentEvent::Lost`] after lagging, `None` once the bus
/// is gone.
pub async fn next(rx: &mut broadcast::Receiver<AgentEvent>) -> Option<AgentEvent> {
    match rx.recv().await {
        Ok(ev) => Some(ev),
        Err(broadcast::error::RecvError::Lagged(count)) => Some(AgentEvent::Lost { count }),
        Err(broadcast::error::RecvError::Closed) => None,
    }
}

/// Milliseconds since the Unix epoch (0 before it, saturated far after).
pub(crate) fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
        .unwrap_or(0)
}

/// Publishes what the daemon's loop did on an [`EventBus`].
#[derive(Debug)]
pub struct EventsMonitor {
    bus: EventBus,
    last_health: String,
}

impl EventsMonitor {
    /// A monitor publishing on `bus`.
    pub fn new(bus: EventBus) -> EventsMonitor {
        EventsMonitor {
            bus,
            last_health: String::new(),
        }
    }
}

impl Monitor for EventsMonitor {
    fn handled(&mut self, _state: &State, status: &Status, handled: &Handled) {
        let node = &status.node;
        for t in &handled.transitions {
            self.bus.publish(AgentEvent::Transition {
                node: node.clone(),
                record: t.clone(),
            });
        }
        for n in &handled.notices {
            let (node, unix_ms) = (node.clone(), now_ms());
            match n {
                Action::Alarm(reason) => self.bus.publish(AgentEvent::Alarm {
                    node,
                    unix_ms,
                    reason: reason.clone(),
                }),
                Action::Refuse(reason) => self.bus.publish(AgentEvent::Refusal {
                    node,
                    unix_ms,
                    reason: reason.clone(),
                }),
                Action::Run(_) => {}
            }
        }
        let health = crate::notify::status_line(status, handled);
        if health != self.last_health {
            // Into the journal too: after a power loss the log should say that replication
            // is lost, not only that a promote ran. Routine converging stays out of it, and so
            // does a change of figures only (a resync's progress).
            let calm = |h: &str| h.ends_with(": converged") || h.ends_with(": converging");
            let shape = |h: &str| h.replace(|c: char| c.is_ascii_digit(), "");
            if shape(&health) != shape(&self.last_health) {
                if !calm(&health) {
                    tracing::warn!(health = %health, "health changed");
                } else if !self.last_health.is_empty() && !calm(&self.last_health) {
                    tracing::info!(health = %health, "health changed");
                }
            }
            self.last_health = health.clone();
            self.bus.publish(AgentEvent::Health {
                node: node.clone(),
                unix_ms: now_ms(),
                status: health,
            });
        }
    }
}

/// Follow the agent's events at the control socket `path` (the CLI side of `iscsi-ha events`):
/// calls `started` once the agent has accepted (events from then on are delivered), then
/// `each` with every event line, as received, until the agent closes the connection.
pub async fn follow(
    path: &std::path::Path,
    started: impl FnOnce(),
    mut each: impl FnMut(&str),
) -> Result<(), crate::AgentError> {
    use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
    let err = |source| crate::AgentError::Control {
        path: path.to_path_buf(),
        source,
    };
    let stream = tokio::net::UnixStream::connect(path)
        .await
        .map_err(|e| crate::AgentError::connecting(path, e))?;
    let (rd, mut wr) = stream.into_split();
    let mut req = serde_json::to_string(&crate::control::Request::Events)
        .map_err(|e| crate::AgentError::Protocol(e.to_string()))?;
    req.push('\n');
    wr.write_all(req.as_bytes()).await.map_err(err)?;
    let mut lines = BufReader::new(rd).lines();
    let first = lines.next_line().await.map_err(err)?;
    let first = first.ok_or_else(|| crate::AgentError::Protocol("agent closed".into()))?;
    let resp: crate::control::Response =
        serde_json::from_str(&first).map_err(|e| crate::AgentError::Protocol(e.to_string()))?;
    if !resp.ok {
        return Err(crate::AgentError::Protocol(resp.message));
    }
    started();
    while let Some(line) = lines.next_line().await.map_err(err)? {
        each(&line);
    }
    Ok(())
}
