//! What `iscsi-ha status` shows: the authority's view, the node's role, per-resource DRBD and
//! target state, addresses, maintenance, and the last transitions with per-stage durations.

use std::fmt::Write as _;

use serde::{Deserialize, Serialize};

use crate::config::Config;
use crate::executor::TransitionRecord;
use crate::fsm::{Authority, Connection, Disk, DrbdView, Role, Snapshot, State, TargetView};

/// One resource in the status.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ResourceStatus {
    /// DRBD resource name.
    pub name: String,
    /// DRBD minor.
    pub minor: u32,
    /// DRBD state: role, peer role, connection, disk, peer disk.
    pub drbd: DrbdView,
    /// Target IQN.
    pub iqn: String,
    /// Target id.
    pub tid: u32,
    /// Target state and sessions.
    pub target: TargetView,
    /// The target is staged ahead of a promote on this standby (made without its devices and
    /// ACL: nothing opened, nobody let in; `target.state` reads absent). As of the last fresh
    /// read (`status`).
    #[serde(default)]
    pub staged: bool,
    /// Each LUN's configured write caching (tgtd's `show` cannot print the mode page).
    #[serde(default)]
    pub luns: Vec<LunStatus>,
}

/// One LUN in the status.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LunStatus {
    /// LUN number.
    pub lun: u32,
    /// `write-through` or `write-back`.
    pub cache: String,
    /// Its backing device, as configured.
    #[serde(default)]
    pub device: std::path::PathBuf,
    /// The resource's volume that device is (`None` for a device that is none of them, as in
    /// the agent's tests on plain files).
    #[serde(default)]
    pub volume: Option<u32>,
}

/// One address in the status.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AddressStatus {
    /// `address/prefix`.
    pub address: String,
    /// Interface.
    pub interface: String,
    /// Held on this node.
    pub held: bool,
    /// To be held, but its interface is down or without carrier: claimed when the link
    /// comes back (DRBD and the targets are up meanwhile).
    #[serde(default)]
    pub waiting_for_link: bool,
    /// Not held on `interface` but on this other interface of this host (at the last full
    /// observation): neither claimed nor released there.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub on_other_interface: Option<String>,
    /// Resources behind it.
    pub resources: Vec<String>,
    /// Another host uses it while it is held here (RFC 5227 §2.4 address conflict), until no
    /// conflicting frame came for a minute. Set by the daemon from the address backend.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub conflict: Option<AddressConflict>,
}

/// Another host using a floating address held here (its ARP or neighbour advertisements name
/// the address with another MAC). The address is kept: the authority decides who holds it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AddressConflict {
    /// The other host's MAC address, `aa:bb:cc:dd:ee:ff` (the first seen, if several).
    pub mac: String,
    /// Every other MAC seen in this conflict, `mac` first.
    #[serde(default)]
    pub macs: Vec<String>,
    /// Milliseconds since its first conflicting frame (of this conflict).
    pub first_seen_ms_ago: u64,
    /// Milliseconds since its last conflicting frame.
    pub last_seen_ms_ago: u64,
    /// Conflicting frames seen.
    pub frames: u64,
    /// Its conflict watch ended with this error and is not open again: nothing vouches for
    /// the conflict since (no frame is seen, no probe sent). Shown so until the watch is open
    /// again, for the clear period after its last frame at most.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unwatched: Option<String>,
}

/// The whole status, as sent over the control socket and printed by `iscsi-ha status --json`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Status {
    /// Node name.
    pub node: String,
    /// `pool-conf` or `command`.
    pub role_source: String,
    /// Which DRBD the node's kernel runs, `8.4` or `9` (every resource uses it); `None` without
    /// a kernel DRBD (`--simulate`). Set by the daemon.
    #[serde(default)]
    pub drbd_version: Option<String>,
    /// The authority's wish.
    pub authority: Authority,
    /// `Primary` when every resource is DRBD Primary and serving, `Secondary` when none is,
    /// `Mixed` otherwise.
    pub node_role: String,
    /// Everything the agent drives matches the authority's wish (roles, targets, addresses).
    /// With [`Status::degraded`] non-empty the node is in the warning state "converged,
    /// degraded": it serves (or not) as wished but the data is not replicated as it should be.
    pub converged: bool,
    /// Why replication is degraded, one line per cause (empty: healthy): DRBD not connected
    /// (StandAlone does not reconnect by itself), the peer's or the local disk not UpToDate,
    /// data out of sync, with the resync's progress. Read with the rest of the status.
    #[serde(default)]
    pub degraded: Vec<String>,
    /// Maintenance: observe and report, change nothing.
    pub maintenance: bool,
    /// In maintenance: the steps the agent would run now (why it is not converged).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub held_back: Vec<String>,
    /// Why nothing is being changed after a failure, if so.
    pub blocked: Option<String>,
    /// The last refusal or alarm.
    pub notice: Option<String>,
    /// Resources.
    pub resources: Vec<ResourceStatus>,
    /// Addresses.
    pub addresses: Vec<AddressStatus>,
    /// The last transitions, oldest first.
    pub transitions: Vec<TransitionRecord>,
    /// Resources that would promote but wait for their peer (DRBD not Connected since attach).
    #[serde(default)]
    pub waiting_for_peer: Vec<PeerWait>,
    /// Resources with a split brain reported by DRBD (`status` then exits non-zero).
    #[serde(default)]
    pub split_brain: Vec<String>,
    /// DRBD settings of adopted resources that slow down noticing a dead peer or a takeover
    /// (docs/takeover.md); manage mode sets them itself.
    #[serde(default)]
    pub detection_warnings: Vec<String>,
    /// An authority change the daemon holds until it settles (`timeouts.authority_settle_ms`),
    /// or `pool.conf`'s `broken`, held until it changes or `timeouts.broken_alarm_s` runs out.
    /// Set by the daemon.
    #[serde(default)]
    pub pending_authority: Option<PendingAuthority>,
    /// The daemon's first observation is still running: the rest shows nothing observed yet.
    #[serde(default)]
    pub observing: bool,
    /// [`Config::fingerprint`] of the running config: the same on both nodes when they agree
    /// on what initiators see.
    #[serde(default)]
    pub config_fingerprint: String,
    /// Why the last reload was refused (the running config was kept). Set by the daemon.
    #[serde(default)]
    pub reload_refused: Option<String>,
    /// The tickle ACK peer link (`[tickle]`): off and why, or per address what is sent to or
    /// learnt from the peer. Set by the daemon when the link runs.
    #[serde(default)]
    pub tickle: crate::peer_link::TickleStatus,
}

/// An authority change not acted on yet.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PendingAuthority {
    /// What the role source says now.
    pub authority: Authority,
    /// In how many milliseconds it takes effect (for `broken`: raises the alarm).
    pub in_ms: u64,
    /// What happens then: `takes effect` or `broken alarm`.
    pub reason: String,
}

/// Why DRBD's net settings of an adopted resource make failure handling slow or unguarded, as
/// read from DRBD (managed ones: [`crate::config::check::slow_detection`], as configured).
fn detection_warnings(config: &Config, state: &State) -> Vec<String> {
    let mut out = Vec::new();
    for r in config
        .resources
        .iter()
        .filter(|r| r.mode == crate::config::Mode::Adopt)
    {
        let Some(n) = state.resources.get(&r.name).and_then(|s| s.view.drbd.net) else {
            continue;
        };
        out.extend(
            n.slow_detection()
                .into_iter()
                .map(|w| format!("{}: {w}", r.name)),
        );
    }
    out
}

/// Why the replication of these resources is degraded (see [`Status::degraded`]).
pub fn replication_warnings(resources: &[ResourceStatus]) -> Vec<String> {
    let mut out = Vec::new();
    for r in resources.iter().filter(|r| !r.drbd.up) {
        out.push(format!(
            "{}: DRBD resource is down: this node holds no replica and cannot take over",
            r.name
        ));
    }
    for r in resources.iter().filter(|r| r.drbd.up) {
        let (name, d) = (&r.name, &r.drbd);
        let progress = sync_text(d);
        if !d.connection.handshaken() {
            let why = match d.connection {
                // Neither DRBD nor the agent connects it again; manage mode has no drbd.conf
                // for drbdadm, so its command (endpoints, options) comes from the config.
                Connection::StandAlone => format!(
                    "connection StandAlone: neither DRBD nor the agent reconnects it (once the \
                     cause is known, on both nodes: drbdadm connect {name} in adopt mode; in \
                     manage mode `iscsi-ha split-brain` prints the drbdsetup connect command \
                     with the configured endpoints)"
                ),
                // DRBD retries the peer every connect-int by itself.
                Connection::WFConnection => format!(
                    "connection {}: the peer does not answer (down, or the replication link); \
                     DRBD connects again by itself once it does, and resyncs what changed",
                    d.connection_name()
                ),
                _ => format!("connection {}", d.connection_name()),
            };
            out.push(format!("{name}: not replicating: {why}{progress}"));
        } else if d.peer_disk != Disk::UpToDate {
            out.push(format!("{name}: peer disk {}{progress}", d.peer_disk));
        } else if d.disk != Disk::UpToDate {
            out.push(format!("{name}: local disk {}{progress}", d.disk));
        } else if d.sync.is_some_and(|s| s.out_of_sync_kib > 0) {
            out.push(format!("{name}: data differs from the peer{progress}"));
        }
    }
    out
}

/// `, 1234 KiB out of sync, resync 42.0 %` as far as DRBD reported them.
fn sync_text(d: &DrbdView) -> String {
    let Some(s) = d.sync.filter(|s| s.out_of_sync_kib > 0) else {
        return String::new();
    };
    let mut t = format!(", {} KiB out of sync", s.out_of_sync_kib);
    if let Some(p) = s.done_permille {
        t.push_str(&format!(", resync {:.1} %", f64::from(p) / 10.0));
    }
    t
}

/// A resource waiting for its peer before it may promote.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PeerWait {
    /// Resource name.
    pub resource: String,
    /// How long it has waited, milliseconds (set by the daemon).
    pub waited_ms: u64,
    /// Why, and how to promote without the peer.
    pub reason: String,
    /// Whether DRBD's metadata says this node went down as Primary (`MDF_CRASHED_PRIMARY`),
    /// read when `status` is asked; `None` if not read.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub went_down_as_primary: Option<bool>,
    /// What that means for a degraded promote, or why it could not be read (set by the daemon).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_down: Option<String>,
}

impl Status {
    /// Build the status from the config (and its [`Config::fingerprint`]), the machine's state
    /// and the kept records.
    pub fn new<'a>(
        config: &Config,
        fingerprint: &str,
        state: &State,
        transitions: impl IntoIterator<Item = &'a TransitionRecord>,
    ) -> Status {
        let resources: Vec<ResourceStatus> = config
            .resources
            .iter()
            .map(|r| {
                let view = state.resources.get(&r.name).map(|s| s.view.clone());
                let view = view.unwrap_or_default();
                ResourceStatus {
                    name: r.name.clone(),
                    minor: r.minor,
                    drbd: view.drbd,
                    iqn: r.target.iqn.clone(),
                    tid: r.target.tid,
                    target: view.target,
                    staged: false,
                    luns: r
                        .luns
                        .iter()
                        .map(|l| LunStatus {
                            lun: l.lun,
                            cache: l.cache.to_string(),
                            device: l.device.clone(),
                            volume: r.volume_of(&l.device).map(|(v, _)| v),
                        })
                        .collect(),
                }
            })
            .collect();
        let primaries = resources
            .iter()
            .filter(|r| r.drbd.role == Role::Primary)
            .count();
        let node_role = if primaries == 0 {
            "Secondary"
        } else if primaries == resources.len() {
            "Primary"
        } else {
            "Mixed"
        };
        Status {
            node: config.node.clone(),
            role_source: if state.command_source {
                "command"
            } else {
                "pool-conf"
            }
            .into(),
            drbd_version: None,
            authority: state.authority.clone(),
            node_role: node_role.into(),
            converged: state.converged(),
            // Nothing is known before the first observation (every resource reads down).
            degraded: if state.observed {
                replication_warnings(&resources)
            } else {
                Vec::new()
            },
            maintenance: state.maintenance,
            held_back: match state.diff() {
                Ok(plan) if state.maintenance && state.observed => {
                    plan.steps.iter().map(|s| s.to_string()).collect()
                }
                _ => Vec::new(),
            },
            blocked: state.blocked.clone(),
            notice: state.last_notice.clone(),
            resources,
            addresses: config
                .addresses
                .iter()
                .map(|a| {
                    let address = a.address.to_string();
                    AddressStatus {
                        interface: a.interface.clone(),
                        held: state.addresses.get(&address).is_some_and(|s| s.held),
                        waiting_for_link: state.waiting_for_link().contains(&address),
                        on_other_interface: state
                            .addresses
                            .get(&address)
                            .and_then(|s| s.on_other_interface.clone()),
                        resources: a.resources.clone(),
                        conflict: None,
                        address,
                    }
                })
                .collect(),
            transitions: transitions.into_iter().cloned().collect(),
            waiting_for_peer: state
                .waiting()
                .into_iter()
                .map(|(resource, reason)| PeerWait {
                    resource,
                    waited_ms: 0,
                    reason,
                    went_down_as_primary: None,
                    last_down: None,
                })
                .collect(),
            split_brain: state.split_brains(),
            detection_warnings: detection_warnings(config, state)
                .into_iter()
                .chain(crate::config::check::lossy_protocols(config))
                .chain(crate::config::check::slow_detection(config))
                .collect(),
            pending_authority: None,
            observing: false,
            config_fingerprint: fingerprint.to_string(),
            reload_refused: None,
            tickle: crate::peer_link::TickleStatus::without_link(config.tickle.is_some()),
        }
    }

    /// Takes what is read at the moment of asking from `fresh` (sessions, out-of-sync data and
    /// resync progress, which no event reports) and judges the replication again.
    pub fn refresh(&mut self, fresh: &Snapshot) {
        for r in &mut self.resources {
            if let Some(v) = fresh.resources.get(&r.name) {
                r.target.sessions = v.target.sessions;
                r.drbd.sync = v.drbd.sync;
            }
        }
        self.degraded = replication_warnings(&self.resources);
    }

    /// The human-readable form.
    pub fn render(&self) -> String {
        let mut o = String::new();
        let _ = writeln!(
            o,
            "node {}  role {}  authority {} ({})  {}{}",
            self.node,
            self.node_role,
            self.authority,
            self.role_source,
            match (self.converged, self.degraded.is_empty()) {
                (true, true) => "converged",
                (true, false) => "converged, DEGRADED",
                (false, _) => "NOT converged",
            },
            if self.maintenance {
                "  MAINTENANCE"
            } else {
                ""
            }
        );
        let _ = writeln!(o, "config fingerprint {}", self.config_fingerprint);
        if !self.held_back.is_empty() {
            let _ = writeln!(
                o,
                "maintenance holds back: {} (maintenance off runs them)",
                self.held_back.join(", ")
            );
        }
        if let Some(r) = &self.reload_refused {
            let _ = writeln!(o, "{r}");
        }
        if self.observing {
            let _ = writeln!(
                o,
                "observing: the first look at DRBD, tgtd and the addresses runs"
            );
        }
        if let Some(p) = &self.pending_authority {
            let _ = writeln!(
                o,
                "pending: authority {} ({} in {:.1} s)",
                p.authority,
                p.reason,
                p.in_ms as f64 / 1000.0
            );
        }
        if let Some(b) = &self.blocked {
            let _ = writeln!(o, "blocked: {b}");
        }
        if let Some(n) = &self.notice {
            let _ = writeln!(o, "notice: {n}");
        }
        for w in &self.waiting_for_peer {
            let _ = writeln!(
                o,
                "WAITING for peer {:.1} s: {}",
                w.waited_ms as f64 / 1000.0,
                w.reason
            );
            if let Some(l) = &w.last_down {
                let _ = writeln!(o, "  {}: {l}", w.resource);
            }
        }
        for r in &self.split_brain {
            let _ = writeln!(o, "SPLIT BRAIN on {r}: see `iscsi-ha split-brain`");
        }
        for w in &self.degraded {
            let _ = writeln!(o, "degraded: {w}");
        }
        for w in &self.detection_warnings {
            let _ = writeln!(o, "warning: {w}");
        }
        let version = self
            .drbd_version
            .as_ref()
            .map(|v| format!(", DRBD {v}"))
            .unwrap_or_default();
        for r in &self.resources {
            let d = &r.drbd;
            let _ = writeln!(
                o,
                "resource {} (minor {}{version}): {}/{} {} {}/{}{}{}",
                r.name,
                r.minor,
                d.role,
                d.peer_role,
                d.connection_name(),
                d.disk,
                d.peer_disk,
                if d.up { "" } else { " (down)" },
                sync_text(d)
            );
            for v in &d.volumes {
                let _ = writeln!(
                    o,
                    "  volume {} (minor {}): {}/{} {}/{}{}",
                    v.volume,
                    v.minor,
                    v.role,
                    v.peer_role,
                    v.disk,
                    v.peer_disk,
                    if v.up { "" } else { " (down)" }
                );
            }
            if let Some(p) = &d.drbd9 {
                let yes = |b: bool| if b { "yes" } else { "no" };
                let _ = writeln!(
                    o,
                    "  may_promote {} promotion_score {} quorum {}{}",
                    yes(p.may_promote),
                    p.promotion_score,
                    yes(p.quorum),
                    p.primary_peers_text()
                );
            }
            let staged = if r.staged {
                " (staged ahead of a promote: no device, no ACL)"
            } else {
                ""
            };
            let _ = writeln!(
                o,
                "  target tid {} {}: {:?}{staged}, {} session(s)",
                r.tid, r.iqn, r.target.state, r.target.sessions
            );
            for l in &r.luns {
                let volume = l
                    .volume
                    .map(|v| format!(" (volume {v})"))
                    .unwrap_or_default();
                let _ = writeln!(
                    o,
                    "  lun {}: cache {}, on {}{volume}",
                    l.lun,
                    l.cache,
                    l.device.display()
                );
            }
        }
        for a in &self.addresses {
            let _ = writeln!(
                o,
                "address {} on {}: {} (for {}){}{}",
                a.address,
                a.interface,
                match (a.held, a.waiting_for_link) {
                    (true, _) => "held",
                    (false, true) => "waiting for link",
                    (false, false) => "not held",
                },
                a.resources.join(", "),
                match &a.on_other_interface {
                    Some(i) => format!("; ON {i} INSTEAD: neither claimed nor released there"),
                    None => String::new(),
                },
                match &a.conflict {
                    Some(c) => format!(
                        "; CONFLICT: {} also answer{} for it ({} s ago{})",
                        if c.macs.len() > 1 {
                            c.macs.join(", ")
                        } else {
                            c.mac.clone()
                        },
                        if c.macs.len() > 1 { "" } else { "s" },
                        c.last_seen_ms_ago / 1000,
                        match &c.unwatched {
                            Some(e) => format!("; NOT WATCHED since its watch ended: {e}"),
                            None => String::new(),
                        }
                    ),
                    None => String::new(),
                }
            );
        }
        for line in self.tickle.lines() {
            let _ = writeln!(o, "{line}");
        }
        for t in &self.transitions {
            let _ = writeln!(
                o,
                "transition #{} {} {:.1} ms: {}{}",
                t.id,
                t.kind,
                t.total_micros as f64 / 1000.0,
                t.result,
                if t.repeated > 0 {
                    format!(" ({} in a row, times of the last)", t.repeated + 1)
                } else {
                    String::new()
                }
            );
            for s in &t.stages {
                let _ = writeln!(
                    o,
                    "  {}{} {} {:.2} ms{}",
                    if s.rollback { "rollback " } else { "" },
                    s.stage,
                    s.objects.join(","),
                    s.micros as f64 / 1000.0,
                    if s.ok { "" } else { " FAILED" }
                );
                for n in &s.notes {
                    let _ = writeln!(o, "    {n}");
                }
            }
        }
        o
    }
}

#[cfg(test)]
impl AddressStatus {
    /// A held address in front of `r0`, no conflict (unit tests of the followers).
    pub(crate) fn held_for_test(address: &str, interface: &str) -> AddressStatus {
        AddressStatus {
            address: address.into(),
            interface: interface.into(),
            held: true,
            waiting_for_link: false,
            on_other_interface: None,
            resources: vec!["r0".into()],
            conflict: None,
        }
    }
}

#[cfg(test)]
impl AddressConflict {
    /// A watched conflict with `macs` (the first is `mac`), one frame just seen (unit tests of
    /// the followers).
    pub(crate) fn seen_for_test(macs: &[&str]) -> AddressConflict {
        AddressConflict {
            mac: macs[0].into(),
            macs: macs.iter().map(|m| m.to_string()).collect(),
            first_seen_ms_ago: 0,
            last_seen_ms_ago: 0,
            frames: 1,
            unwatched: None,
        }
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;

    const CONFIG: &str = crate::config::TEST_MINIMAL;

    #[test]
    fn a_resource_down_is_degraded_once_observed() {
        let config = Config::parse(CONFIG, Path::new("x")).expect("parses");
        let mut state = State::new(&config);
        let st = Status::new(&config, &config.fingerprint(), &state, []);
        assert!(
            st.degraded.is_empty(),
            "nothing known yet: {:?}",
            st.degraded
        );
        state.observed = true;
        let st = Status::new(&config, &config.fingerprint(), &state, []);
        assert!(
            st.degraded
                .iter()
                .any(|w| w.contains("r0: DRBD resource is down")),
            "{:?}",
            st.degraded
        );
    }

    #[test]
    fn maintenance_says_what_it_holds_back() {
        use crate::fsm::{Authority, DrbdView};
        let config = Config::parse(CONFIG, Path::new("x")).expect("parses");
        let mut state = State::new(&config);
        state.observed = true;
        state.maintenance = true;
        state.authority = Authority::Primary;
        if let Some(r) = state.resources.get_mut("r0") {
            r.observe(DrbdView::healthy_secondary());
        }
        let st = Status::new(&config, &config.fingerprint(), &state, []);
        let text = st.render();
        assert!(
            text.contains("maintenance holds back: check-resource r0, drbd-primary r0"),
            "{text}"
        );
        state.maintenance = false;
        let st = Status::new(&config, &config.fingerprint(), &state, []);
        assert!(st.held_back.is_empty());
    }

    #[test]
    fn shows_the_drbd_version_per_resource_and_in_json() {
        let config = Config::parse(CONFIG, Path::new("x")).expect("parses");
        let mut st = Status::new(&config, &config.fingerprint(), &State::new(&config), []);
        assert!(
            st.render().contains("resource r0 (minor 1): "),
            "{}",
            st.render()
        );
        st.drbd_version = Some("9".into());
        assert!(
            st.render().contains("resource r0 (minor 1, DRBD 9): "),
            "{}",
            st.render()
        );
        st.resources[0].drbd.drbd9 = Some(crate::fsm::Drbd9Promotion {
            may_promote: false,
            promotion_score: 10_101,
            quorum: true,
            primary_peers: vec![1],
        });
        let text = st.render();
        assert!(
            text.contains("  may_promote no promotion_score 10101 quorum yes (DRBD 9 node id 1)"),
            "{text}"
        );
        // DRBD 9's name for the wait for the peer, in the text; the model's in the JSON.
        st.resources[0].drbd.up = true;
        st.resources[0].drbd.connection = Connection::WFConnection;
        st.degraded = replication_warnings(&st.resources);
        let text = st.render();
        assert!(
            text.contains(" Connecting ") && text.contains("connection Connecting"),
            "{text}"
        );
        assert!(!text.contains("WFConnection"), "{text}");
        let json = serde_json::to_value(&st).expect("serializes");
        assert_eq!(json["resources"][0]["drbd"]["connection"], "WFConnection");
        assert_eq!(json["drbd_version"], "9");
        let back: Status = serde_json::from_value(json).expect("round-trips");
        assert_eq!(back, st);
    }
}
