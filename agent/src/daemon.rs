//! The daemon: one owner of the [`State`], one loop over its inputs, no polling.
//!
//! Inputs are [`Event`]s (role source, DRBD, target and address watches) and control requests.
//! Each input goes through [`step`]; the steps it plans are run by the [`Executor`] and the
//! outcome is fed back as [`Event::Executed`], until nothing is left to do. Inputs that arrive
//! meanwhile wait in their channels, so transitions never overlap. The timers are the optional
//! slow safety net (`timeouts.safety_net_s`), which re-observes everything, and, only while the
//! last observation failed, a retry of it with exponential backoff ([`RETRY_FIRST`] doubling up
//! to [`RETRY_MAX`]), so a failed first look (a netlink call timing out on a loaded host) does not
//! leave the agent blind until the safety net. A transition that did not complete (refused by a
//! live check, such as an address another host answers for; rolled back; or failed moving away
//! from serving, such as a LU with I/O in flight) is retried the same way
//! ([`FAILED_RETRY_FIRST`] doubling up to [`FAILED_RETRY_MAX`]) until it completes: some causes
//! end without an event (the other host lets the address go). While a resource waits for its peer (DRBD not
//! Connected since attach) and `timeouts.wfc_s` is set, one more timer ends that wait.
//!
//! Authority changes away from primary settle first ([`Daemon::authority`]): each change
//! arms a timer of `timeouts.authority_settle_ms`, the machine sees the change only when it
//! fires, and a burst that ends where it began is dropped, so a flap causes no transition and a
//! burst at most one per direction. A change to primary is acted on at once by default
//! (`timeouts.authority_settle_primary_ms` 0): DRBD refuses it while the peer is Primary. `pool.conf`'s `broken` is held (no promote, no demote) and
//! alarms only after `timeouts.broken_alarm_s`. Operator commands are not delayed. `status` is
//! answered while the first observation runs (marked `observing`).

pub mod follow;
pub mod maintenance;
pub mod split_brain_kept;
pub mod wiring;

use std::collections::{BTreeMap, VecDeque};
use std::time::Duration;

use tokio::sync::mpsc;
use tokio::time::Instant;
use tracing::{info, warn};

use crate::backend::vip::ConflictReport;
use crate::backend::{Address, Drbd, Target};
use crate::config::{Config, Mode, RoleSource};
use crate::control::{Pending, Request, Response};
use crate::executor::{Executor, TransitionRecord};
use crate::fsm::{step, Action, AddressState, Event, Plan, ResourceState, ResourceView, State};
use crate::fsm::{Authority, NO_SIGNAL_YET};
use crate::monitor::Monitor;
use crate::role::pool_conf;
use crate::status::{PendingAuthority, Status};
use crate::BackendError;

/// The machine's state is built here, from the config, so that the machine itself imports
/// nothing of the agent.
impl State {
    /// The initial state for a config: nothing observed, authority unknown.
    pub fn new(config: &Config) -> State {
        State {
            authority: Authority::Unknown(NO_SIGNAL_YET.into()),
            command_source: matches!(config.role, RoleSource::Command),
            maintenance: false,
            observed: false,
            blocked: None,
            resources: config
                .resources
                .iter()
                .map(|r| {
                    (
                        r.name.clone(),
                        ResourceState {
                            managed: r.mode == Mode::Manage,
                            view: ResourceView::default(),
                            peer_seen: false,
                            degraded: None,
                            split_brain: false,
                            echo: None,
                            bringup_failed: false,
                        },
                    )
                })
                .collect(),
            addresses: config
                .addresses
                .iter()
                .map(|a| {
                    (
                        a.address.to_string(),
                        AddressState {
                            held: false,
                            link_down: false,
                            announced: false,
                            on_other_interface: None,
                            resources: a.resources.clone(),
                            echoes: Vec::new(),
                        },
                    )
                })
                .collect(),
            last_notice: None,
            commanded: None,
        }
    }
}

/// How many transitions `status` keeps.
pub const KEEP_TRANSITIONS: usize = 16;
/// Plans run for one input at most (a safety bound; a settled machine needs one or two).
const MAX_ROUNDS: usize = 8;
/// First retry delay after a failed observation.
pub const RETRY_FIRST: Duration = Duration::from_millis(500);
/// Longest retry delay after repeated failed observations.
pub const RETRY_MAX: Duration = Duration::from_secs(5);
/// First retry of a plan that did not complete (refused by a live check, rolled back, or failed
/// moving away from serving); the delay doubles up to [`FAILED_RETRY_MAX`]. Each retry checks
/// everything live again, as the first attempt did.
pub const FAILED_RETRY_FIRST: Duration = Duration::from_secs(1);
/// Longest delay between retries of a plan that did not complete.
pub const FAILED_RETRY_MAX: Duration = Duration::from_secs(30);

/// An authority change held until its timer fires.
#[derive(Debug, Clone)]
struct Held {
    authority: Authority,
    /// When it was first held. It takes effect (`broken`: raises the alarm) its settle time
    /// later, read from the running config each time, so a reload that shortens the settle
    /// time also shortens the wait of a change already held ([`Daemon::settle_deadline`]).
    since: Instant,
}

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
    /// Whether the last observation failed (the run loop then retries it).
    observe_failed: bool,
    /// Since when each resource waits for its peer.
    waiting: BTreeMap<String, Instant>,
    /// Followers told about each handled input (see [`Daemon::with_monitor`]).
    monitors: Vec<Box<dyn Monitor>>,
    /// An authority change not acted on yet (see [`Daemon::authority`]).
    held: Option<Held>,
    /// The last transition did not complete (the run loop retries it).
    failed: bool,
    /// What the target backend was last told of standing by ([`Target::stand_by`]).
    standby: Option<bool>,
    /// What the target backend was last told of staging ([`Target::stage_ahead`]).
    staging: Option<bool>,
    /// Why the last reload was refused (cleared by one that succeeds).
    reload_refused: Option<String>,
    /// The real daemon's watches and address handles, kept in step with a reload.
    follow: Option<follow::Follow>,
    /// Where the maintenance switch is kept for a restart ([`maintenance`]).
    maintenance_file: Option<std::path::PathBuf>,
    /// Where unresolved split brains are kept for a restart ([`split_brain_kept`]), and the
    /// resources the file holds now.
    split_brain_file: Option<(std::path::PathBuf, Vec<String>)>,
}

impl<D: Drbd, T: Target, A: Address> Daemon<D, T, A> {
    /// A daemon over this executor; nothing is observed yet.
    pub fn new(exec: Executor<D, T, A>) -> Self {
        let state = State::new(exec.config());
        Self {
            exec,
            state: Some(state),
            records: VecDeque::new(),
            observe_failed: false,
            waiting: BTreeMap::new(),
            monitors: Vec::new(),
            held: None,
            failed: false,
            standby: None,
            staging: None,
            reload_refused: None,
            follow: None,
            maintenance_file: None,
            split_brain_file: None,
        }
    }

    /// Keep the watches and address handles built from the config in step with each reload
    /// (the real daemon's; in-memory backends follow the config by themselves).
    pub fn following(mut self, follow: follow::Follow) -> Self {
        self.follow = Some(follow);
        self
    }

    /// Keeps the maintenance switch in `path` ([`maintenance`]), and starts in maintenance when
    /// the file is there (also when it cannot be read: someone switched it on).
    pub fn keeping_maintenance(mut self, path: std::path::PathBuf) -> Self {
        let on = match maintenance::load(&path) {
            maintenance::Found::Off => false,
            maintenance::Found::On(ago) => {
                warn!(
                    path = %path.display(),
                    switched_on_s_ago = ago.map(|d| d.as_secs()),
                    "maintenance is on, as before this start: observing and reporting, changing \
                     nothing until `iscsi-ha maintenance off`"
                );
                true
            }
            maintenance::Found::Unreadable(why) => {
                warn!(
                    "maintenance is on: the kept switch is there but cannot be read ({why}); \
                     changing nothing until `iscsi-ha maintenance off`"
                );
                true
            }
        };
        if let Some(s) = self.state.as_mut() {
            s.maintenance = on;
        }
        self = self.keeping_split_brain(split_brain_kept::path_beside(&path));
        self.maintenance_file = Some(path);
        self
    }

    /// Add a follower, told about every handled input and called while the loop is free.
    pub fn with_monitor(mut self, monitor: impl Monitor + 'static) -> Self {
        self.monitors.push(Box::new(monitor));
        self
    }

    /// Tell the monitors what an input led to.
    fn tell(&mut self, handled: &Handled) {
        if self.monitors.is_empty() {
            return;
        }
        let (Some(state), Some(status)) = (self.state.as_ref(), self.status()) else {
            return;
        };
        for m in &mut self.monitors {
            m.handled(state, &status, handled);
        }
    }

    /// The machine's state.
    pub fn state(&self) -> Option<&State> {
        self.state.as_ref()
    }

    /// The current status.
    pub fn status(&self) -> Option<Status> {
        let mut st = Status::new(
            self.exec.config(),
            self.exec.fingerprint(),
            self.state.as_ref()?,
            self.records.iter(),
        );
        st.drbd_version = self.exec.drbd_version().map(Into::into);
        st.reload_refused = self.reload_refused.clone();
        if let Some(link) = self.follow.as_ref().and_then(follow::Follow::peer_link) {
            st.tickle = link.status(&st.addresses);
        }
        if let Some(backend) = self.follow.as_ref().and_then(follow::Follow::address) {
            for a in &mut st.addresses {
                a.conflict = backend.conflict(&a.address, &a.interface);
            }
        }
        let due = self.settle_deadline();
        st.pending_authority = self
            .held
            .as_ref()
            .zip(due)
            .map(|(h, due)| PendingAuthority {
                authority: h.authority.clone(),
                in_ms: u64::try_from(due.saturating_duration_since(Instant::now()).as_millis())
                    .unwrap_or(u64::MAX),
                reason: if pool_conf::is_broken(&h.authority) {
                    "broken alarm"
                } else {
                    "takes effect"
                }
                .into(),
            });
        for w in &mut st.waiting_for_peer {
            if let Some(since) = self.waiting.get(&w.resource) {
                w.waited_ms = u64::try_from(since.elapsed().as_millis()).unwrap_or(u64::MAX);
            }
        }
        Some(st)
    }

    /// The status with what is read at the moment of asking (sessions, out-of-sync data, resync
    /// progress: no event reports them); the last known values if the read fails.
    pub async fn status_now(&self) -> Option<Status> {
        let mut st = self.status()?;
        match self.exec.observe().await {
            // Judged again only once the machine has observed (before, nothing is known).
            Ok(fresh) if self.state.as_ref().is_some_and(|s| s.observed) => st.refresh(&fresh),
            Ok(_) => {}
            Err(e) => warn!(error = %e, "status: fresh read failed; showing the last known"),
        }
        for r in &mut st.resources {
            r.staged = self.exec.target_staged(&r.name);
        }
        self.show_last_down(&mut st).await;
        Some(st)
    }

    /// Follow which resources wait for their peer (start or stop their clocks).
    fn track_waiting(&mut self) {
        let now: Vec<String> = self
            .state
            .as_ref()
            .map(|s| s.waiting().into_iter().map(|(n, _)| n).collect())
            .unwrap_or_default();
        self.waiting.retain(|n, _| now.contains(n));
        for n in now {
            self.waiting.entry(n).or_insert_with(Instant::now);
        }
    }

    /// When the first wait for the peer runs out (`timeouts.wfc_s`; never when 0).
    fn wait_deadline(&self) -> Option<(String, Instant)> {
        let wfc = self.exec.config().timeouts.wfc_s;
        if wfc == 0 {
            return None;
        }
        self.waiting
            .iter()
            .map(|(n, t)| (n.clone(), *t + Duration::from_secs(wfc)))
            .min_by_key(|(_, t)| *t)
    }

    /// The `iscsi-ha split-brain` report.
    pub async fn split_brain_report(&self) -> String {
        let cfg = self.exec.config();
        let mut gens = Vec::new();
        for r in &cfg.resources {
            gens.push(
                self.exec
                    .generations(r)
                    .await
                    .map_err(|e: BackendError| e.to_string()),
            );
        }
        match &self.state {
            Some(s) => crate::split_brain::report(cfg, s, &gens),
            None => String::new(),
        }
    }

    /// Read the actual state of everything and converge (start, safety net).
    pub async fn observe(&mut self) -> Handled {
        match self.exec.observe().await {
            Ok(snap) => {
                self.observe_failed = false;
                self.handle(Event::Observed(snap)).await
            }
            Err(e) => {
                self.observe_failed = true;
                warn!(error = %e, "observation failed");
                let handled = Handled {
                    notices: vec![Action::Alarm(format!("observation failed: {e}"))],
                    transitions: Vec::new(),
                };
                self.tell(&handled);
                handled
            }
        }
    }

    /// Feed one event and run what it leads to.
    pub async fn handle(&mut self, event: Event) -> Handled {
        // A watch's report waits in the queue while a transition runs, and may be older than
        // its change (a repair's re-create, a claim after the address watch's first read at
        // start): the target or address is read again, so a stale report never undoes our
        // own work.
        let event = match event {
            Event::Target { resource, view } => {
                let now = self.exec.target_view(&resource).await;
                Event::Target {
                    view: now.unwrap_or(view),
                    resource,
                }
            }
            Event::Address { address, held } => {
                let now = self.exec.address_held(&address).await;
                Event::Address {
                    held: now.unwrap_or(held),
                    address,
                }
            }
            ev => ev,
        };
        // A command (role source `command`) sets the authority as a role source's change does.
        let recheck = matches!(
            event,
            Event::Authority(_) | Event::Command(_) | Event::Maintenance(_) | Event::Tick
        );
        let mut handled = Handled::default();
        let mut next = Some(event);
        let mut rounds = 0;
        while let Some(ev) = next.take() {
            let Some(state) = self.state.take() else {
                break;
            };
            let (state, actions) = step(state, ev);
            self.state = Some(state);
            let mut plan: Option<Plan> = None;
            for a in actions {
                match a {
                    Action::Run(p) => plan = Some(p),
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
            let Some(plan) = plan else {
                break;
            };
            rounds += 1;
            if rounds > MAX_ROUNDS {
                warn!("plan did not settle after {MAX_ROUNDS} rounds");
                break;
            }
            let (outcome, record) = self.exec.run(plan).await;
            crate::record::keep(&mut self.records, record.clone(), KEEP_TRANSITIONS);
            self.failed = !record.result.is_ok();
            handled.transitions.push(record);
            next = Some(Event::Executed(outcome));
        }
        self.track_waiting();
        self.keep_split_brains();
        self.tell_standby(recheck || !handled.transitions.is_empty())
            .await;
        self.tell(&handled);
        handled
    }

    /// Tells the target backend when the node starts or stops standing by: authority secondary
    /// and converged there (a demote still running, or failing, is not standing by).
    /// `recheck`: something that can make a secondary converge or stop converging was handled
    /// (a transition, the authority, a tick); `converged` plans every resource, so it is not
    /// run for each watch report (a 32-resource switchover hands the secondary hundreds).
    async fn tell_standby(&mut self, recheck: bool) {
        let Some(s) = &self.state else {
            return;
        };
        let secondary = s.authority == Authority::Secondary;
        if secondary && !recheck && self.standby.is_some() {
            return;
        }
        let standby = secondary && s.converged();
        let staging = standby && !s.maintenance;
        if self.standby != Some(standby) {
            self.standby = Some(standby);
            self.exec.target_stand_by(standby).await;
        }
        if self.staging != Some(staging) {
            self.staging = Some(staging);
            self.exec.target_stage_ahead(staging).await;
        }
    }

    /// An authority change from the role source: hold it until it settles (see the module
    /// docs). The first signal after start is acted on at once; a change back to what the
    /// machine already follows drops the held one. [`Daemon::settled`] acts when the timer fires.
    pub async fn authority(&mut self, a: Authority) -> Handled {
        let settle = self.settle_time(&a);
        let current = self.state.as_ref().map(|s| s.authority.clone());
        let first = matches!(&current, Some(Authority::Unknown(r)) if r == NO_SIGNAL_YET);
        if pool_conf::is_broken(&a) {
            // Keep the clock of a `broken` already held.
            if !self.held.as_ref().is_some_and(|h| h.authority == a) {
                self.held = Some(Held {
                    authority: a,
                    since: Instant::now(),
                });
            }
            return Handled::default();
        }
        if current.as_ref() == Some(&a) {
            // Back where the machine is: a transition that did not complete waited for the
            // held change (no retry meanwhile) and is retried now.
            if self.held.take().is_some() && self.failed {
                self.failed = false;
                return self.handle(Event::Tick).await;
            }
            return Handled::default();
        }
        if first || settle.is_zero() {
            self.held = None;
            return self.handle(Event::Authority(a)).await;
        }
        self.held = Some(Held {
            authority: a,
            since: Instant::now(),
        });
        Handled::default()
    }

    /// When the held authority change is due, if one is held: its settle time (for `broken`,
    /// `broken_alarm_s`) after it was first held, under the running config.
    pub fn settle_deadline(&self) -> Option<Instant> {
        self.held
            .as_ref()
            .map(|h| h.since + self.settle_time(&h.authority))
    }

    /// How long a change to `a` is held under the running config: `broken_alarm_s` for
    /// `broken`, `authority_settle_primary_ms` for primary, else `authority_settle_ms`.
    fn settle_time(&self, a: &Authority) -> Duration {
        let t = &self.exec.config().timeouts;
        if pool_conf::is_broken(a) {
            Duration::from_secs(t.broken_alarm_s)
        } else if *a == Authority::Primary {
            Duration::from_millis(t.authority_settle_primary_ms)
        } else {
            Duration::from_millis(t.authority_settle_ms)
        }
    }

    /// The held authority change's timer fired: act on it (`broken` becomes an alarm that
    /// holds the current state).
    pub async fn settled(&mut self) -> Handled {
        let Some(h) = self.held.take() else {
            return Handled::default();
        };
        let a = if pool_conf::is_broken(&h.authority) {
            Authority::Unknown(format!(
                "pool.conf has said broken for {} s: the pool master designation did not finish",
                self.exec.config().timeouts.broken_alarm_s
            ))
        } else {
            h.authority
        };
        self.handle(Event::Authority(a)).await
    }

    /// Answer one control request.
    pub async fn request(&mut self, req: Request) -> Response {
        // Status reads what no event reports (sessions, out-of-sync data) when asked.
        let asked = matches!(req, Request::Status);
        let evidence = self.degraded_evidence(req).await;
        let split = self.state.as_ref().map(State::split_brains);
        let split = split.unwrap_or_default();
        match req {
            Request::Status if !split.is_empty() => {
                return Response {
                    ok: false,
                    message: format!("split brain on {}", split.join(", ")),
                    status: self.status_now().await.map(Box::new),
                };
            }
            Request::SplitBrain => {
                return Response {
                    ok: split.is_empty(),
                    message: self.split_brain_report().await,
                    status: self.status().map(Box::new),
                };
            }
            Request::Reload => return self.reload().await,
            _ => {}
        }
        let was_maintenance = self.state.as_ref().map(|s| s.maintenance);
        let was_authority = self.state.as_ref().map(|s| s.authority.clone());
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
            .find(|t| !t.result.is_ok())
            .map(|t| t.result.to_string());
        // The switch as asked, kept for a restart; a failure to keep it fails the request (the
        // switch itself is set), so `maintenance on && systemctl restart` stops there.
        let (mut kept, mut not_kept) = (String::new(), None);
        if let (Request::Maintenance { on }, Some(path)) = (req, &self.maintenance_file) {
            // Already on and kept: the file keeps when it was switched on.
            let unchanged = on && was_maintenance == Some(true) && path.exists();
            let stored = if unchanged {
                Ok(())
            } else {
                maintenance::store(path, on)
            };
            match stored {
                Ok(()) if on && !unchanged => {
                    kept = " (kept across restarts until maintenance off)".into();
                }
                Ok(()) => {}
                Err(e) => {
                    warn!(path = %path.display(), error = %e, "maintenance switch not kept");
                    not_kept = Some(format!(
                        "maintenance {}, but not kept for a restart: {}: {e}",
                        if on { "on" } else { "off" },
                        path.display()
                    ));
                }
            }
        }
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
                None => (true, quiet_message(req, was_maintenance, was_authority)),
            },
        };
        // A maintenance request answers for the switch: set and kept, or not kept; what `off`
        // then ran (or refused) follows in the message.
        let (ok, message) = match req {
            Request::Maintenance { on } => {
                info!(on, "maintenance switched by an operator");
                let message = if message.starts_with("maintenance") {
                    message + &kept
                } else {
                    format!(
                        "maintenance {}; then {message}",
                        if on { "on" } else { "off" }
                    )
                };
                match not_kept {
                    Some(why) => (false, format!("{why}; {message}")),
                    None => (true, message),
                }
            }
            _ => (ok, message),
        };
        let status = if asked {
            self.status_now().await
        } else {
            self.status()
        };
        // Another host on a held address: `status` exits non-zero, as for a split brain.
        let conflicts: Vec<String> = (status.iter())
            .flat_map(|s| &s.addresses)
            .filter_map(|a| {
                let c = a.conflict.as_ref()?;
                let macs = if c.macs.is_empty() {
                    vec![c.mac.clone()]
                } else {
                    c.macs.clone()
                };
                Some(format!("{} ({})", a.address, macs.join(", ")))
            })
            .collect();
        // A failed plan the agent is waiting to retry (tgtd dead: the primary serves nothing)
        // exits non-zero too; settling, a takeover under way or a wait for the peer do not.
        let blocked = status.as_ref().and_then(|s| s.blocked.clone());
        let (ok, message) = match (asked, conflicts.is_empty(), blocked) {
            (true, false, _) => (
                false,
                format!("address conflict on {}", conflicts.join(", ")),
            ),
            (true, true, Some(b)) => (false, format!("blocked: {b}")),
            _ => (ok, message),
        };
        let message = match evidence {
            Some(e) => format!("{message}; {e}"),
            None => message,
        };
        Response {
            ok,
            message,
            status: status.map(Box::new),
        }
    }

    /// Read the config file again and apply it as a difference ([`crate::config::reload`]):
    /// removed resources and addresses are demoted and released, added ones brought in,
    /// unchanged ones left alone; a refused reload keeps the running config and shows why in
    /// status.
    async fn reload(&mut self) -> Response {
        use crate::config::reload::{compare, Reload};
        let loaded = match &self.exec.config().source {
            Some(path) => Config::load(path)
                .map_err(|e| e.to_string())
                .and_then(|new| match self.exec.check_config(&new) {
                    Ok(()) => Ok(new),
                    Err(e) => Err(e.to_string()),
                })
                // A secrets file that would not serve (mode, format, a user without a secret) is
                // refused now, not met when the target is served again.
                .and_then(|new| match crate::chap::check_config(&new) {
                    Ok(()) => Ok(new),
                    Err((key, reason)) => Err(format!("{key}: {reason}")),
                }),
            None => Err("the running configuration was not read from a file".into()),
        };
        let kept = "reload refused, running configuration kept";
        let (ok, refused, message) = match loaded {
            Err(e) => (false, true, format!("{kept}: {e}")),
            Ok(new) => match compare(self.exec.config(), &new) {
                Reload::Apply { changed, delta } => {
                    let message = Reload::Apply {
                        changed,
                        delta: delta.clone(),
                    }
                    .message();
                    match self.apply_delta(new, &delta).await {
                        Err(e) => (false, true, format!("{kept}: {e}")),
                        Ok(None) => (true, false, message),
                        Ok(Some(failed)) => (false, false, format!("{message}; {failed}")),
                    }
                }
                verdict => {
                    let ok = verdict == Reload::Unchanged;
                    (ok, !ok, verdict.message())
                }
            },
        };
        // The message names the reload already; one line even when it quotes a TOML error.
        let line = crate::one_line(&message);
        if ok {
            info!("{line}");
        } else {
            warn!("{line}");
        }
        self.reload_refused = refused.then(|| message.clone());
        Response {
            ok,
            message,
            status: self.status().map(Box::new),
        }
    }

    /// Swap in `new`: refuse a replaced resource's new DRBD device under an up one, get the
    /// watches and address handles ready for the additions ([`follow::Follow::prepare`]), demote
    /// and release what `delta` removes (with the running config, in the one demote order; a
    /// replaced resource keeps its DRBD role), then rebuild the state keeping every unchanged
    /// resource's and address's, let the watches follow, and observe so the machine brings in
    /// what is added. `Err`: refused, nothing changed (or a failed demote undone by
    /// re-converging); `Ok(Some)`: applied, but bringing in failed or was refused (the machine
    /// retries as usual).
    async fn apply_delta(
        &mut self,
        new: Config,
        delta: &crate::config::reload::Delta,
    ) -> Result<Option<String>, String> {
        let Some(state) = self.state.clone() else {
            return Err("the state is busy".into());
        };
        if !delta.is_empty() && (state.maintenance || !state.observed) {
            return Err(
                "resources and addresses change only while the agent acts (maintenance \
                        is on or nothing is observed yet)"
                    .into(),
            );
        }
        let running = std::sync::Arc::new(self.exec.config().clone());
        let replaced: Vec<&String> = delta
            .removed_resources
            .iter()
            .filter(|n| delta.added_resources.contains(n))
            .collect();
        refuse_drbd_changes(&running, &new, &state, &replaced)?;
        if let Some(f) = &self.follow {
            if let Err(e) = f.prepare(&new).await {
                f.commit(running);
                return Err(e.to_string());
            }
        }
        if let Err(e) = self.trial(&new, &state, delta).await {
            if let Some(f) = &self.follow {
                f.commit(running);
            }
            return Err(e);
        }
        // The removed part alone, wished secondary: its demote plan touches nothing else. A
        // kept address whose every resource goes (or is replaced) goes with them: it is never
        // held without a serving target.
        let going = |r: &String| delta.removed_resources.contains(r);
        let released: Vec<String> = running
            .addresses
            .iter()
            .filter(|a| !a.resources.is_empty() && a.resources.iter().all(going))
            .map(|a| a.address.to_string())
            .collect();
        let mut gone = state.clone();
        gone.authority = Authority::Secondary;
        gone.resources.retain(|n, _| going(n));
        gone.addresses
            .retain(|n, _| delta.removed_addresses.contains(n) || released.contains(n));
        let mut removal = Handled::default();
        if let Ok(mut plan) = gone.diff() {
            // A replaced resource's DRBD device is the same (refused above otherwise): it stays
            // Primary and only its target is served again.
            plan.steps.retain(|s| {
                s.stage != crate::fsm::Stage::DrbdUp
                    && !(s.stage == crate::fsm::Stage::DrbdSecondary
                        && replaced.contains(&&s.object))
            });
            if !plan.steps.is_empty() {
                let (outcome, record) = self.exec.run(plan).await;
                crate::record::keep(&mut self.records, record.clone(), KEEP_TRANSITIONS);
                removal.transitions.push(record);
                if let Some((step, reason)) = outcome.failed {
                    if let Some(f) = &self.follow {
                        f.commit(running);
                    }
                    // Serve what the running config says again.
                    self.observe().await;
                    return Err(format!("{step} failed: {reason}"));
                }
            }
        }
        let new = std::sync::Arc::new(new);
        self.exec.set_config(new.clone());
        if let Some(f) = &self.follow {
            f.commit(new.clone());
        }
        let mut fresh = State::new(&new);
        for (name, r) in fresh.resources.iter_mut() {
            if let (Some(old), false) = (
                state.resources.get(name),
                delta.added_resources.contains(name),
            ) {
                *r = old.clone();
            }
        }
        for (name, a) in fresh.addresses.iter_mut() {
            if let (Some(old), false) = (
                state.addresses.get(name),
                delta.added_addresses.contains(name) || released.contains(name),
            ) {
                a.held = old.held;
                a.link_down = old.link_down;
                a.announced = old.announced;
            }
        }
        fresh.authority = state.authority;
        fresh.maintenance = state.maintenance;
        fresh.observed = state.observed;
        fresh.blocked = state.blocked;
        // A notice about what the new config no longer has would stay until the next change.
        let removed = [&delta.removed_resources[..], &delta.removed_addresses[..]].concat();
        fresh.last_notice = state
            .last_notice
            .filter(|n| !removed.iter().any(|name| names(n, name)));
        self.state = Some(fresh);
        self.track_waiting();
        if !removal.transitions.is_empty() {
            // Events, alerts and metrics see the demote of what was removed.
            self.tell(&removal);
        }
        if !delta.adds() && released.is_empty() {
            return Ok(None);
        }
        let handled = self.observe().await;
        let failed = handled.transitions.iter().find(|t| !t.result.is_ok());
        let notice = handled.notices.first().map(ToString::to_string);
        Ok(failed.map(|t| t.result.to_string()).or(notice))
    }

    /// Before a reload brings resources in: what the machine says of `new` with what is
    /// observed now (one observation, nothing changed). A refusal naming an added resource (its
    /// DRBD device not up, a promote the safety check refuses) refuses the reload: the machine
    /// plans for every resource at once, so it would hold every later repair of the running
    /// ones too.
    async fn trial(
        &mut self,
        new: &Config,
        state: &State,
        delta: &crate::config::reload::Delta,
    ) -> Result<(), String> {
        if delta.added_resources.is_empty() {
            return Ok(());
        }
        let running = std::sync::Arc::new(self.exec.config().clone());
        self.exec.set_config(std::sync::Arc::new(new.clone()));
        let snap = self.exec.observe().await;
        self.exec.set_config(running);
        let snap = snap.map_err(|e| format!("the added resources cannot be read: {e}"))?;
        let mut trial = State::new(new);
        trial.authority = state.authority.clone();
        let (trial, actions) = step(trial, Event::Observed(snap));
        // The wish's own refusal, also when a release of an orphaned address comes first.
        let wish = trial
            .plan_for_wish()
            .err()
            .map(crate::fsm::Notice::into_action);
        for a in actions.into_iter().chain(wish) {
            if let Action::Refuse(why) = a {
                if let Some(n) = delta.added_resources.iter().find(|n| names(&why, n)) {
                    return Err(format!(
                        "adding {n} would hold every promote and repair: {why}"
                    ));
                }
            }
        }
        Ok(())
    }

    /// Whether the last observation failed (nothing observed since).
    pub fn observation_failed(&self) -> bool {
        self.observe_failed
    }

    /// Run until both input channels close: observe, then follow events and requests. A failed
    /// observation is retried after [`RETRY_FIRST`], doubling up to [`RETRY_MAX`], until one
    /// succeeds; a healthy daemon has no timer but the safety net.
    pub async fn run(
        mut self,
        mut events: mpsc::UnboundedReceiver<Event>,
        mut control: mpsc::Receiver<Pending>,
    ) {
        let mut backoff = RETRY_FIRST;
        let mut retry_at: Option<Instant> = None;
        let mut control_open = true;
        let early = self.first_observe(&mut control, &mut control_open).await;
        self.schedule_retry(&mut retry_at, &mut backoff);
        for p in early {
            let resp = self.request(p.request).await;
            let _ = p.reply.send(resp);
        }
        let period = self.exec.config().timeouts.safety_net_s;
        let mut tick = tokio::time::interval(Duration::from_secs(period.max(1)));
        tick.tick().await;
        let alive_every = self.monitors.iter().filter_map(|m| m.alive_every()).min();
        let mut alive = tokio::time::interval(alive_every.unwrap_or(Duration::from_secs(3600)));
        alive.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut events_open = true;
        let mut conflicts = (self.follow.as_ref().and_then(follow::Follow::address))
            .and_then(|a| a.take_conflict_reports());
        let (mut failed_at, mut failed_backoff) = (None, FAILED_RETRY_FIRST);
        while events_open || control_open {
            let wait = self.wait_deadline();
            let settle = self.settle_deadline();
            match (self.failed, failed_at) {
                (true, None) => {
                    if self.held.is_none() {
                        info!(
                            in_ms = failed_backoff.as_millis() as u64,
                            "the transition did not complete: retried then"
                        );
                    }
                    failed_at = Some(Instant::now() + failed_backoff);
                    failed_backoff = (failed_backoff * 2).min(FAILED_RETRY_MAX);
                }
                (false, _) => (failed_at, failed_backoff) = (None, FAILED_RETRY_FIRST),
                _ => {}
            }
            tokio::select! {
                ev = events.recv(), if events_open => match ev {
                    Some(Event::Authority(a)) => { self.authority(a).await; }
                    Some(ev) => { self.handle(ev).await; }
                    None => events_open = false,
                },
                // Another host uses a held address: an alarm, no transition (the backend has
                // logged and defends it; the authority decides who holds it). Its clearing and
                // its watch ending or opening again are told too: the followers (STATUS=,
                // metrics) show the status of now.
                Some(report) = crate::backend::vip::next_conflict_report(&mut conflicts) => {
                    let notices = match report {
                        ConflictReport::Alarm(reason) => {
                            warn!(reason = %reason, "alarm");
                            vec![Action::Alarm(reason)]
                        }
                        ConflictReport::Unwatched
                        | ConflictReport::Watched
                        | ConflictReport::Cleared => Vec::new(),
                    };
                    self.tell(&Handled { notices, transitions: Vec::new() });
                }
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
                    self.schedule_retry(&mut retry_at, &mut backoff);
                }
                _ = tokio::time::sleep_until(
                        wait.as_ref().map(|(_, t)| *t).unwrap_or_else(Instant::now)),
                    if wait.is_some() => {
                    if let Some((resource, _)) = wait {
                        warn!(%resource, "waited timeouts.wfc_s for the peer; promoting degraded");
                        self.waiting.remove(&resource);
                        self.handle(Event::WaitTimeout { resource }).await;
                    }
                }
                _ = tokio::time::sleep_until(settle.unwrap_or_else(Instant::now)),
                    if settle.is_some() => {
                    self.settled().await;
                }
                _ = tokio::time::sleep_until(retry_at.unwrap_or_else(Instant::now)),
                    if retry_at.is_some() => {
                    info!("retrying the failed observation");
                    self.observe().await;
                    self.schedule_retry(&mut retry_at, &mut backoff);
                }
                _ = tokio::time::sleep_until(failed_at.unwrap_or_else(Instant::now)),
                    if failed_at.is_some() => {
                    // Refused, rolled back or failed (an address in use, I/O in flight): again,
                    // without an operator, until it completes. Not while an authority change
                    // is held (settling, or `broken`): that decides next; re-armed meanwhile.
                    failed_at = None;
                    if self.held.is_none() {
                        // A full observation: nothing stale decides the retry (it also lifts
                        // the block and retries a failed bring-up).
                        self.failed = false;
                        info!("retrying the failed transition");
                        self.observe().await;
                        self.schedule_retry(&mut retry_at, &mut backoff);
                    }
                }
                // Only reached while no input is being handled: a stuck input stops these calls.
                _ = alive.tick(), if alive_every.is_some() => {
                    self.monitors.iter_mut().for_each(|m| m.alive());
                }
            }
        }
    }

    /// The first observation. `status` is answered meanwhile from the state before it (nothing
    /// observed yet, marked `observing`), so a client is not kept waiting for DRBD, tgtd and the
    /// addresses (and a transition they lead to); other requests wait and are returned.
    async fn first_observe(
        &mut self,
        control: &mut mpsc::Receiver<Pending>,
        open: &mut bool,
    ) -> Vec<Pending> {
        let mut early = Vec::new();
        let before = self.status().map(|mut s| {
            s.observing = true;
            Box::new(s)
        });
        let observe = self.observe();
        tokio::pin!(observe);
        loop {
            tokio::select! {
                _ = &mut observe => return early,
                p = control.recv(), if *open => match p {
                    Some(Pending { request: Request::Status, reply }) => {
                        let _ = reply.send(Response {
                            ok: true,
                            message: "observing".into(),
                            status: before.clone(),
                        });
                    }
                    Some(p) => early.push(p),
                    None => *open = false,
                },
            }
        }
    }

    /// After an observation: arm the next retry (and double the delay) if it failed, or
    /// disarm and reset the delay if it succeeded.
    fn schedule_retry(&self, retry_at: &mut Option<Instant>, backoff: &mut Duration) {
        if self.observe_failed {
            info!(
                in_ms = backoff.as_millis() as u64,
                "observation will be retried"
            );
            *retry_at = Some(Instant::now() + *backoff);
            *backoff = (*backoff * 2).min(RETRY_MAX);
        } else {
            *retry_at = None;
            *backoff = RETRY_FIRST;
        }
    }
}

/// What DRBD keeps that helps an operator decide on a degraded promote, and the split brains
/// kept for a restart.
impl<D: Drbd, T: Target, A: Address> Daemon<D, T, A> {
    /// Keeps unresolved split brains in `path` ([`split_brain_kept`]), and marks those kept
    /// there before this start again (every resource when the file cannot be read).
    pub fn keeping_split_brain(mut self, path: std::path::PathBuf) -> Self {
        let names = match split_brain_kept::load(&path) {
            split_brain_kept::Found::Resources(names) => names,
            split_brain_kept::Found::Unreadable(why) => {
                warn!(
                    "the kept split brains cannot be read ({why}): every resource counts as \
                     split-brained until its next handshake"
                );
                self.exec
                    .config()
                    .resources
                    .iter()
                    .map(|r| r.name.clone())
                    .collect()
            }
        };
        let marked = match self.state.as_mut() {
            Some(s) => s.restore_split_brains(&names),
            None => Vec::new(),
        };
        if !marked.is_empty() {
            warn!(
                resources = %marked.join(", "),
                path = %path.display(),
                "DRBD split brain, kept from before this start and not cleared by a handshake \
                 since: nothing is resolved automatically (iscsi-ha split-brain)"
            );
        }
        self.split_brain_file = Some((path, names));
        self
    }

    /// Writes the split brains no handshake has cleared to the kept file when they changed (a
    /// failed write is logged and tried again after the next input).
    fn keep_split_brains(&mut self) {
        let (Some((path, kept)), Some(state)) = (self.split_brain_file.as_mut(), &self.state)
        else {
            return;
        };
        let now = state.split_brains();
        if *kept == now {
            return;
        }
        match split_brain_kept::store(path, &now) {
            Ok(()) => *kept = now,
            Err(e) => warn!(
                path = %path.display(),
                error = %e,
                "split brain not kept for a restart"
            ),
        }
    }

    /// Whether DRBD's metadata says this node went down as Primary, for each of `names`: read
    /// only for resources that wait for their peer, never on the observation path.
    async fn last_down(&self, names: &[String]) -> Vec<(String, Result<bool, String>)> {
        let cfg = self.exec.config();
        let mut out = Vec::new();
        for r in cfg.resources.iter().filter(|r| names.contains(&r.name)) {
            let g = self.exec.generations(r).await;
            let read = g.map(|g| g.crashed_primary()).map_err(|e| e.to_string());
            out.push((r.name.clone(), read));
        }
        out
    }

    /// The waiting resources' evidence of how this node went down, in `status`.
    async fn show_last_down(&self, st: &mut Status) {
        if st.waiting_for_peer.is_empty() {
            return;
        }
        let names: Vec<String> = (st.waiting_for_peer.iter())
            .map(|w| w.resource.clone())
            .collect();
        for (name, read) in self.last_down(&names).await {
            if let Some(w) = st.waiting_for_peer.iter_mut().find(|w| w.resource == name) {
                w.went_down_as_primary = read.as_ref().ok().copied();
                w.last_down = Some(last_down_text(&read));
            }
        }
    }

    /// For `promote --degraded`: each resource it would force (up, not Primary, waiting for its
    /// peer whatever the wish) with DRBD's evidence, read before the promote changes it.
    async fn degraded_evidence(&self, req: Request) -> Option<String> {
        if req != Request::PromoteDegraded {
            return None;
        }
        let names: Vec<String> = (self.state.as_ref()?.resources.iter())
            .filter(|(_, r)| r.view.drbd.up && r.view.drbd.role != crate::fsm::Role::Primary)
            .filter(|(_, r)| {
                matches!(
                    r.promotion(),
                    Err(crate::fsm::Refusal::WaitingForPeer { .. })
                )
            })
            .map(|(n, _)| n.clone())
            .collect();
        if names.is_empty() {
            return None;
        }
        let lines: Vec<String> = (self.last_down(&names).await.iter())
            .map(|(n, read)| format!("{n}: {}", last_down_text(read)))
            .collect();
        Some(format!(
            "{} ({})",
            lines.join("; "),
            crate::fsm::safety::DEGRADED_COST
        ))
    }
}

/// What [`Daemon::last_down`] read means for a degraded promote.
fn last_down_text(read: &Result<bool, String>) -> String {
    match read {
        Ok(primary) => crate::fsm::safety::last_down_reading(*primary).to_string(),
        Err(e) => format!(
            "how this node went down is unknown (data generations not readable: {e}); it may \
             be STALE"
        ),
    }
}

/// Refuses replacing a resource whose DRBD device is up with another device
/// ([`crate::config::reload::drbd_changes`]), naming the resource and the keys.
fn refuse_drbd_changes(
    running: &Config,
    new: &Config,
    state: &State,
    replaced: &[&String],
) -> Result<(), String> {
    for name in replaced {
        let (Some(old), Some(now)) = (running.resource(name), new.resource(name)) else {
            continue;
        };
        let keys = crate::config::reload::drbd_changes(old, now);
        let up = state.resources.get(*name).is_some_and(|r| r.view.drbd.up);
        if up && !keys.is_empty() {
            return Err(format!(
                "{name}: {} would change its DRBD device, which is up: remove {name} in one \
                 reload, change its device with DRBD's tools, then add it in another",
                keys.join(", ")
            ));
        }
    }
    Ok(())
}

/// The answer to a request that started no transition: what a maintenance switch changed, or
/// the promote a demote cancelled before it was carried out (a repair of an operator's promote
/// refused or waiting), so the operator knows it will not happen later.
fn quiet_message(req: Request, was_on: Option<bool>, was: Option<Authority>) -> String {
    // In maintenance the demote waits: nothing is known undone.
    if let (Request::Demote, Some(false), Some(Authority::Primary)) = (req, was_on, was) {
        return "pending promote cancelled: the wish was primary, not carried out; secondary \
                now, nothing to undo"
            .into();
    }
    match (req, was_on) {
        (Request::Maintenance { on }, Some(was)) if on == was => {
            format!("maintenance already {}", if on { "on" } else { "off" })
        }
        (Request::Maintenance { on: true }, _) => {
            "maintenance on: observing and reporting, changing nothing".into()
        }
        (Request::Maintenance { on: false }, _) => "maintenance off: acting again".into(),
        _ => "nothing to do".into(),
    }
}

/// Whether `text` names `name` as a whole word (`r1` is not named by `r10`).
fn names(text: &str, name: &str) -> bool {
    let word = |c: char| c.is_alphanumeric() || c == '_' || c == '-' || c == '.' || c == '/';
    text.match_indices(name).any(|(i, _)| {
        let before = text[..i].chars().next_back().is_none_or(|c| !word(c));
        let after = text[i + name.len()..]
            .chars()
            .next()
            .is_none_or(|c| !word(c));
        before && after
    })
}
