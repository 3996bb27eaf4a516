//! Runs the steps planned by [`crate::fsm::step`] over the backends, times each stage, and rolls
//! back what a forward transition did when one of its steps fails.
//!
//! Resources run concurrently, each through the plan's order on its own: a step waits only for
//! the earlier steps on related objects ([`order::prerequisites`]: the same resource, or an
//! address and the resources of its group). So an address is claimed only after every
//! resource of its group serves, and released before any of them is removed. After a failure
//! nothing new starts and the steps already running finish; in a forward transition the steps
//! this run completed, and a failed claim or primary request (a timeout may hide that it took
//! effect), are undone (see [`Stage::undo`]) in the demote order, which leaves a node that
//! started Secondary Secondary again; a failure while moving away from serving, in a demote or
//! a rollback, stops the run and is reported (undoing a demote would mean serving again; going
//! on could remove a target behind an address still held). Every failed step's error is kept
//! in its stage's timing.

use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::future::{join_all, Either};
use futures::stream::{FuturesUnordered, StreamExt};
use tracing::{info, info_span, warn, Instrument};

use crate::backend::{Address, Drbd, Target};
use crate::config::Config;
use crate::error::ReadOf;
use crate::error::{AgentError, BackendError};
use crate::fsm::order::{self, Object, Precondition, StageDef};
use crate::fsm::{safety, Disk, DrbdView, Outcome, Plan, PlanKind, Role, Snapshot, Stage, Step};

pub use crate::record::{StageTiming, TransitionRecord, TransitionResult};

/// Runs steps over one backend per subsystem.
#[derive(Debug)]
pub struct Executor<D, T, A> {
    config: Arc<Config>,
    /// `config`'s [`Config::fingerprint`], hashed once per config (status carries it after
    /// every event).
    fingerprint: String,
    drbd: D,
    target: T,
    address: A,
    next_id: AtomicU64,
}

/// How often one `drbd-primary` step asks DRBD while each refusal is followed by a change of
/// DRBD's state (docs/takeover.md).
pub const PRIMARY_ATTEMPTS: u32 = 3;

/// Added to DRBD's own wait for the peer's answer to its ping ([`DrbdView::refusal_wait`])
/// when the executor follows that verdict as an event: the event of a connection DRBD dropped
/// at the end of its wait still arrives (a TCG guest's timers run late).
pub const VERDICT_SLACK: Duration = Duration::from_millis(200);

async fn within<F, O>(ms: u64, f: F) -> Result<O, BackendError>
where
    F: Future<Output = Result<O, BackendError>>,
{
    match tokio::time::timeout(Duration::from_millis(ms), f).await {
        Ok(r) => r,
        Err(_) => Err(BackendError::Timeout(ms)),
    }
}

impl<D: Drbd, T: Target, A: Address> Executor<D, T, A> {
    /// An executor for this config and these backends.
    pub fn new(config: Arc<Config>, drbd: D, target: T, address: A) -> Self {
        Self {
            fingerprint: config.fingerprint(),
            config,
            drbd,
            target,
            address,
            next_id: AtomicU64::new(1),
        }
    }

    /// The config it runs with.
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// Runs with `config` from now on (a live reload, [`crate::config::reload`]: the daemon
    /// has demoted what the new config removes before swapping it in).
    pub fn set_config(&mut self, config: Arc<Config>) {
        self.fingerprint = config.fingerprint();
        self.config = config;
    }

    /// [`Config::fingerprint`] of the config it runs with.
    pub fn fingerprint(&self) -> &str {
        &self.fingerprint
    }

    /// Refuses a config the DRBD backend cannot serve safely ([`crate::backend::Drbd::check_config`]).
    pub fn check_config(&self, config: &Config) -> Result<(), BackendError> {
        self.drbd.check_config(config)
    }

    /// Which DRBD the backend drives (`8.4`, `9`), if a kernel one.
    pub fn drbd_version(&self) -> Option<&'static str> {
        self.drbd.version()
    }

    /// The local data generations of one resource (for `iscsi-ha split-brain`).
    pub async fn generations(
        &self,
        r: &crate::config::Resource,
    ) -> Result<crate::backend::Generations, BackendError> {
        within(self.config.timeouts.drbd_ms, self.drbd.generations(r)).await
    }

    /// The target of `resource` as tgtd shows it now; `None` when it is not configured or
    /// cannot be read.
    pub async fn target_view(&self, resource: &str) -> Option<crate::fsm::TargetView> {
        let r = self.config.resource(resource)?;
        within(self.config.timeouts.tgtd_ms, self.target.status(r))
            .await
            .ok()
    }

    /// Tells the target backend whether this node stands by ([`Target::stand_by`]).
    pub async fn target_stand_by(&self, standby: bool) {
        self.target.stand_by(standby).await;
    }

    /// Whether the last read of `resource`'s target found it staged ahead of a promote
    /// ([`Target::staged`]); false when it is not configured.
    pub fn target_staged(&self, resource: &str) -> bool {
        self.config
            .resource(resource)
            .is_some_and(|r| self.target.staged(r))
    }

    /// Tells the target backend whether it may stage targets ahead of a promote
    /// ([`Target::stage_ahead`]).
    pub async fn target_stage_ahead(&self, on: bool) {
        self.target.stage_ahead(on).await;
    }

    /// Whether `address` (canonical spelling) is held on its interface now; `None` when it is
    /// not configured or cannot be read.
    pub async fn address_held(&self, address: &str) -> Option<bool> {
        let a = self.config.address(address)?;
        within(self.config.timeouts.address_ms, self.address.held(a))
            .await
            .ok()
    }

    /// Read the actual state of every configured object.
    pub async fn observe(&self) -> Result<Snapshot, AgentError> {
        let t = &self.config.timeouts;
        // All reads at once (they only read): the slowest decides, not the sum of every
        // resource's DRBD and tgtd round trips and every address's. The error reported is the
        // one a read in config order would have met first.
        let resources = join_all(self.config.resources.iter().map(|r| async move {
            // Reads, not steps: no stage is named (a failed read is not a failed claim).
            let read = |what, source| AgentError::Read {
                what,
                object: r.name.clone(),
                source,
            };
            let (drbd, target) = futures::join!(
                within(t.drbd_ms, self.drbd.status(r)),
                within(t.tgtd_ms, self.target.status(r))
            );
            let drbd = drbd.map_err(|e| read(ReadOf::Drbd, e))?;
            let target = target.map_err(|e| read(ReadOf::Target, e))?;
            Ok::<_, AgentError>((r.name.clone(), crate::fsm::ResourceView { drbd, target }))
        }));
        let addresses = join_all(self.config.addresses.iter().map(|a| async move {
            let name = a.address.to_string();
            let (held, link_up) = futures::join!(
                within(t.address_ms, self.address.held(a)),
                within(t.address_ms, self.address.link_up(a))
            );
            let held = held.map_err(|source| AgentError::Read {
                what: ReadOf::Address,
                object: name.clone(),
                source,
            })?;
            // Not held where configured: on another interface of this host? (Unreadable: not
            // known, the claim's own check refuses then.)
            let other = if held {
                None
            } else {
                within(t.address_ms, self.address.held_on_other_interface(a))
                    .await
                    .ok()
                    .flatten()
            };
            // A link that cannot be read counts as up: the claim then says why it fails.
            Ok::<_, AgentError>((name, held, link_up.unwrap_or(true), other))
        }));
        let (resources, addresses) = futures::join!(resources, addresses);
        let mut snap = Snapshot::default();
        for r in resources {
            let (name, view) = r?;
            snap.resources.insert(name, view);
        }
        for a in addresses {
            let (name, held, link_up, other) = a?;
            snap.addresses.insert(name.clone(), held);
            if let Some(iface) = other {
                snap.on_other_interface.insert(name.clone(), iface);
            }
            if !link_up {
                snap.links_down.insert(name);
            }
        }
        Ok(snap)
    }

    /// Run one step, with what it decided ([`StageTiming::notes`]). A check stage that cannot
    /// complete (a timeout, a read error) refuses: it could not show the promote safe. With
    /// `handover` (a demote, not a rollback), `target-offline` first hands the connections over
    /// ([`Executor::hand_over`]; without `[tickle]` it only notes that they are closed).
    async fn run_step(
        &self,
        s: &Step,
        handover: bool,
        made_primary: bool,
    ) -> (Result<(), BackendError>, Option<String>) {
        let handed = match s.stage {
            Stage::TargetOffline if handover => Some(self.hand_over(&s.object).await),
            _ => None,
        };
        let keep = matches!(handed, Some(Ok(_)));
        let r = match self.act(s, keep, made_primary).await {
            Err(e) if s.stage.def().check_only && !e.is_refusal() => {
                Err(BackendError::Unchecked(Box::new(e)))
            }
            r => r,
        };
        // A planned demote's release: the peer, about to promote, may start its probe now
        // (docs/takeover.md, "One address probe per promote"). Not a rollback's: nobody takes
        // over then.
        if handover && r.is_ok() && s.stage == Stage::AddressRelease {
            if let Some(a) = self.config.address(&s.object) {
                self.address.tell_released(a).await;
            }
        }
        (r, handed.map(|n| n.unwrap_or_else(|e| e)))
    }

    /// A planned demote's handover of the client connections on the addresses in front of
    /// `resource` (docs/takeover.md, "Demote order"): `Ok` when the peer acknowledged their
    /// fresh list, so its claim will tickle them and `target-offline` may leave them open (they
    /// close with `target-remove`, after the address is gone: no FIN reaches an initiator);
    /// `Err` when they must be closed while the address is still here. Either way the note
    /// says why.
    async fn hand_over(&self, resource: &str) -> Result<String, String> {
        let Some(tickle) = &self.config.tickle else {
            return Err("closed while the address is here (no [tickle])".into());
        };
        let ips: Vec<std::net::IpAddr> = self
            .config
            .addresses
            .iter()
            .filter(|a| a.serves(resource))
            .map(|a| a.address.addr())
            .collect();
        let r = if ips.is_empty() {
            Err("no floating address in front of it".to_string())
        } else if tickle.handover_ms == 0 {
            // Named here, so every backend (the in-memory one too) gives the same reason.
            Err("tickle.handover_ms = 0".to_string())
        } else {
            self.address.hand_over(ips).await
        };
        match r {
            Ok(n) => {
                info!(%resource, connections = n,
                    "connections handed over to the peer (it acknowledged their list): kept open \
                     until target-remove, after address-release; the peer's claim resets them");
                Ok(format!(
                    "handed over: the peer acknowledged {n} connection(s); closed after the \
                     address is gone"
                ))
            }
            Err(why) => {
                info!(%resource, reason = %why,
                    "connections not handed over: closed while the address is still here");
                Err(format!(
                    "closed while the address is here (not handed over: {why})"
                ))
            }
        }
    }

    /// One step's live preconditions ([`StageDef::preconditions`]), then its action;
    /// `keep_connections`: `target-offline` refuses logins only ([`Target::refuse_logins`]);
    /// `made_primary`: an earlier step of this plan made the resource DRBD Primary.
    async fn act(
        &self,
        s: &Step,
        keep_connections: bool,
        made_primary: bool,
    ) -> Result<(), BackendError> {
        let t = &self.config.timeouts;
        let def = s.stage.def();
        let unknown = || BackendError::Failed(format!("{} is not in the config", s.object));
        if def.object == Object::Address {
            let a = self.config.address(&s.object).ok_or_else(unknown)?;
            return match s.stage {
                // Runs on while DRBD and the target come up; judged before DRBD promotes
                // without a connected Secondary peer, and at the claim.
                Stage::ProbeAddress if !a.probe.enabled => Ok(()),
                Stage::ProbeAddress => within(t.address_ms, self.address.start_probe(a)).await,
                Stage::AddressClaim => within(t.address_ms, self.address.claim(a)).await,
                Stage::AddressRelease => within(t.address_ms, self.address.release(a)).await,
                _ => Err(unknown()),
            };
        }
        let r = self.config.resource(&s.object).ok_or_else(unknown)?;
        let Some(live) = self.preconditions(def, r, made_primary).await? else {
            return Ok(()); // already Primary
        };
        match s.stage {
            Stage::CheckResource => Ok(()),
            Stage::DrbdUp => within(t.drbd_ms, self.drbd.up(r)).await,
            Stage::DrbdPrimary => match live {
                Some(live) => self.primary(r, live).await,
                None => Err(unknown()),
            },
            Stage::DrbdPrimaryForce => within(t.drbd_ms, self.drbd.primary(r, true)).await,
            Stage::DrbdSecondary => within(t.drbd_ms, self.drbd.secondary(r)).await,
            Stage::TargetServe => within(t.tgtd_ms, self.target.serve(r)).await,
            Stage::TargetOffline if keep_connections => {
                within(t.tgtd_ms, self.target.refuse_logins(r)).await
            }
            Stage::TargetOffline => within(t.tgtd_ms, self.target.offline(r)).await,
            Stage::TargetRemove => within(t.tgtd_ms, self.target.remove(r)).await,
            _ => Err(unknown()),
        }
    }

    /// Checks a stage's preconditions on DRBD's live state: `None` when a promoting stage
    /// finds the resource already Primary (nothing to do), else the live view read for them
    /// (`Some(None)` when none was read). A failed precondition is a refusal.
    async fn preconditions(
        &self,
        def: &StageDef,
        r: &crate::config::Resource,
        made_primary: bool,
    ) -> Result<Option<Option<DrbdView>>, BackendError> {
        if def.preconditions.is_empty()
            || (made_primary && def.preconditions == [Precondition::DrbdPrimary])
        {
            return Ok(Some(None));
        }
        let live = within(self.config.timeouts.drbd_ms, self.drbd.status(r)).await?;
        let promotes = def.stage == Stage::CheckResource
            || matches!(def.effect, crate::fsm::order::Effect::Role(Role::Primary));
        if promotes && live.role == Role::Primary {
            return Ok(None);
        }
        for p in def.preconditions {
            match *p {
                Precondition::DrbdPrimary => {
                    if live.role != Role::Primary {
                        // The step (`target-serve r0`) names the resource.
                        return Err(BackendError::Refused(format!(
                            "DRBD is {} here, not Primary: the target is not served from a \
                             Secondary",
                            live.role
                        )));
                    }
                }
                Precondition::MayPromote(kind) => safety::allows(&live, kind)?,
                Precondition::AddressesUnanswered {
                    unless_drbd_arbitrates,
                } => {
                    if !(unless_drbd_arbitrates && live.guards_unforced_promote(r.manage.is_some()))
                    {
                        self.probes_clear(r).await?;
                    }
                }
                Precondition::TargetOwned => {
                    within(self.config.timeouts.tgtd_ms, self.target.check_owner(r)).await?
                }
            }
        }
        Ok(Some(Some(live)))
    }

    /// DRBD Primary (after its preconditions passed on `before`, DRBD's live state) with DRBD's
    /// own arbitration as the guard against a second Primary: DRBD pings the peer when asked
    /// and refuses while a live peer is Primary (`SS_TWO_PRIMARIES`). Against a Primary peer
    /// the request returns at once ([`Drbd::primary_at_once`]) and DRBD's verdict on its ping
    /// is awaited as a change of state, up to DRBD's own wait plus [`VERDICT_SLACK`]. A
    /// refusal after which DRBD's standing moved (the peer was declared lost meanwhile, or
    /// demoted) is asked again, at most [`PRIMARY_ATTEMPTS`] times; an unchanged standing
    /// keeps the refusal.
    async fn primary(
        &self,
        r: &crate::config::Resource,
        mut before: DrbdView,
    ) -> Result<(), BackendError> {
        let t = &self.config.timeouts;
        let mut attempt = 1;
        loop {
            // Manage mode sets fencing resource-only and there is no fence-peer handler, so
            // DRBD refuses Primary without its peer (-7) unless forced; the planner allowed
            // this promote because the UpToDate disk lost its peer while connected, so force
            // exactly that case.
            let force = r.manage.is_some()
                && !before.connection.handshaken()
                && before.disk == Disk::UpToDate;
            if force || !before.guards_unforced_promote(r.manage.is_some()) {
                // A forced request overrides DRBD's fence, and a retry may find DRBD no longer
                // guarding (the peer lost meanwhile): never before the probes' verdict, which
                // the first, guarded request did not wait for (its ping wait overlapped it).
                self.probes_clear(r).await?;
            }
            // Against a Primary peer DRBD pings it and refuses at once; its verdict on the
            // ping (the peer declared lost, or demoting) is followed as an event below rather
            // than slept out inside the request.
            // The last try sleeps in DRBD as it always did: quick changes of standing (one
            // volume of several demoting) never end the step sooner than DRBD's own wait.
            let at_once = !force && attempt < PRIMARY_ATTEMPTS && before.refuses_for_primary_peer();
            let asked = if at_once {
                Either::Left(self.drbd.primary_at_once(r))
            } else {
                Either::Right(self.drbd.primary(r, force))
            };
            let err = match within(t.drbd_ms, asked).await {
                Err(e @ BackendError::Timeout(_)) => return Err(e),
                Err(e) => e,
                ok => return ok,
            };
            if attempt >= PRIMARY_ATTEMPTS {
                return Err(err);
            }
            let now = if at_once && matches!(err, BackendError::PeerPrimary(_)) {
                self.verdict(r, &before).await?
            } else {
                within(t.drbd_ms, self.drbd.status(r)).await?
            };
            if now.role == Role::Primary {
                return Ok(());
            }
            if before.same_standing(&now) || !now.up {
                return Err(err);
            }
            info!(resource = %r.name, error = %err, connection = %now.connection,
                peer = %now.peer_role, "DRBD refused Primary and its state moved; asking again");
            before = now;
            attempt += 1;
        }
    }

    /// DRBD's verdict on the ping its refused `primary` sent (`before`: the standing it was
    /// refused on): the state once DRBD no longer refuses for a Primary peer (the connection
    /// dropped, or every volume's peer demoted), or at the end of DRBD's own wait plus
    /// [`VERDICT_SLACK`]. A failed wait (no event stream) reads the state once instead.
    async fn verdict(
        &self,
        r: &crate::config::Resource,
        before: &DrbdView,
    ) -> Result<DrbdView, BackendError> {
        let t = &self.config.timeouts;
        let end = tokio::time::Instant::now() + before.refusal_wait() + VERDICT_SLACK;
        let mut now = before.clone();
        loop {
            let left = end.saturating_duration_since(tokio::time::Instant::now());
            let ms = t.drbd_ms + u64::try_from(left.as_millis()).unwrap_or(u64::MAX);
            let last = now;
            now = match within(ms, self.drbd.changed(r, &last, left)).await {
                Ok(v) => v,
                Err(e) => {
                    warn!(resource = %r.name, error = %e, "following DRBD's state; reading it once");
                    return within(t.drbd_ms, self.drbd.status(r)).await;
                }
            };
            // Unmoved: the wait ran out (or the backend does not wait, DRBD 9).
            if !now.refuses_for_primary_peer() || left.is_zero() || now.same_standing(&last) {
                return Ok(now);
            }
        }
    }

    /// Nobody answered for the addresses in front of `r` since their probes started (waits
    /// for the probe windows); refuses otherwise.
    async fn probes_clear(&self, r: &crate::config::Resource) -> Result<(), BackendError> {
        let t = &self.config.timeouts;
        for a in &self.config.addresses {
            if !a.probe.enabled || !a.serves(&r.name) {
                continue;
            }
            if within(t.address_ms, self.address.probe_conflict(a)).await? {
                return Err(BackendError::Refused(format!(
                    "another host answers for {}",
                    a.address
                )));
            }
        }
        Ok(())
    }

    /// Runs `steps` as [`order::prerequisites`] allows: each step starts once the earlier steps
    /// on related objects succeeded, so resources proceed concurrently, each in the plan's order.
    /// After the first failure nothing new starts; the steps already running finish. Returns
    /// one timing per stage (first start to last end of its steps) and each step's result
    /// (`None`: not started), with the order in which they finished. `handover`: see
    /// [`Executor::run_step`].
    async fn run_steps(&self, steps: &[Step], rollback: bool, handover: bool) -> Ran {
        let names: Vec<String> = self
            .config
            .addresses
            .iter()
            .map(|a| a.address.to_string())
            .collect();
        let groups: Vec<(&str, &[String])> = names
            .iter()
            .zip(&self.config.addresses)
            .map(|(n, a)| (n.as_str(), a.resources.as_slice()))
            .collect();
        let deps = order::prerequisites(steps, &groups);
        let mut waiting: Vec<usize> = deps.iter().map(Vec::len).collect();
        let mut dependents = vec![Vec::new(); steps.len()];
        for (i, d) in deps.iter().enumerate() {
            for &j in d {
                dependents[j].push(i);
            }
        }
        let mut results: Vec<Option<Result<(), BackendError>>> =
            steps.iter().map(|_| None).collect();
        let mut spans: Vec<Option<(Instant, Instant)>> = vec![None; steps.len()];
        let mut notes: Vec<Option<String>> = vec![None; steps.len()];
        let mut finished = Vec::new();
        let mut running = FuturesUnordered::new();
        // Each address's target-serve steps not started yet: when the last one starts, the
        // address's claim is near (`Address::claim_near`): a kept probe's last probe is then
        // judged while that target comes up, not at the claim.
        let mut serves_left: Vec<usize> = self
            .config
            .addresses
            .iter()
            .map(|a| {
                steps
                    .iter()
                    .filter(|s| s.stage == Stage::TargetServe && a.serves(&s.object))
                    .count()
            })
            .collect();
        let mut last_serve = |i: usize| {
            let s = &steps[i];
            if s.stage != Stage::TargetServe {
                return Vec::new();
            }
            self.config
                .addresses
                .iter()
                .zip(serves_left.iter_mut())
                .filter(|(a, _)| a.serves(&s.object))
                .filter_map(|(a, left)| {
                    *left = left.saturating_sub(1);
                    (*left == 0 && a.probe.enabled).then_some(a)
                })
                .collect()
        };
        let start = |i: usize, claims_near: Vec<_>| {
            let s = &steps[i];
            // A step runs only after the earlier steps on its resource succeeded.
            let made_primary = steps[..i].iter().any(|p| {
                p.object == s.object
                    && matches!(p.stage, Stage::DrbdPrimary | Stage::DrbdPrimaryForce)
            });
            async move {
                for a in claims_near {
                    self.address.claim_near(a).await;
                }
                let t0 = Instant::now();
                let (r, note) = self.run_step(s, handover, made_primary).await;
                (i, t0, Instant::now(), r, note)
            }
        };
        for (i, _) in waiting.iter().enumerate().filter(|(_, w)| **w == 0) {
            running.push(start(i, last_serve(i)));
        }
        let mut stopped = false;
        while let Some((i, t0, t1, r, note)) = running.next().await {
            spans[i] = Some((t0, t1));
            notes[i] = note;
            finished.push(i);
            match &r {
                Ok(()) if !stopped => {
                    for &k in &dependents[i] {
                        waiting[k] -= 1;
                        if waiting[k] == 0 {
                            running.push(start(k, last_serve(k)));
                        }
                    }
                }
                Ok(()) => {}
                Err(e) => {
                    let what = if rollback {
                        "rollback step failed"
                    } else {
                        "step failed"
                    };
                    warn!(step = %steps[i], error = %e, "{what}");
                    stopped = true;
                }
            }
            results[i] = Some(r);
        }
        let stages = stage_timings(steps, &results, &spans, &notes, rollback);
        Ran {
            stages,
            results,
            finished,
        }
    }

    /// Run a plan; returns what happened for the state machine and the record for status.
    pub async fn run(&self, plan: Plan) -> (Outcome, TransitionRecord) {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let kind = plan.kind.as_str();
        let span = info_span!("transition", id, kind);
        self.run_inner(id, plan.kind, plan.steps)
            .instrument(span)
            .await
    }

    async fn run_inner(
        &self,
        id: u64,
        kind: PlanKind,
        steps: Vec<Step>,
    ) -> (Outcome, TransitionRecord) {
        let started_unix_ms = crate::events::now_ms();
        let start = Instant::now();
        let mut out = Outcome::default();
        // A planned demote hands the connections over; a rollback never does: the peer is
        // not taking over a promote this node failed, so its clients get the FIN.
        let mut ran = self
            .run_steps(&steps, false, kind == PlanKind::Demote)
            .await;
        let mut stages = std::mem::take(&mut ran.stages);
        let mut done_forward: Vec<Step> = Vec::new();
        let mut failures = Vec::new();
        for &i in &ran.finished {
            let s = &steps[i];
            match ran.results[i].take() {
                Some(Ok(())) => {
                    if s.stage.is_forward() {
                        done_forward.push(s.clone());
                    }
                    out.applied.push(s.clone());
                }
                Some(Err(e)) => {
                    if s.stage.def().undo_if_failed {
                        done_forward.push(s.clone());
                    }
                    failures.push((s.clone(), e));
                }
                None => {}
            }
        }
        // Reported: the first failure that is not a refusal, else the first refusal; every
        // failed step is in the log and in its stage's `errors`.
        if let Some(k) = failures
            .iter()
            .position(|(_, e)| !e.is_refusal())
            .or((!failures.is_empty()).then_some(0))
        {
            out.refused = failures.iter().all(|(_, e)| e.is_refusal());
            let (s, e) = &failures[k];
            out.lasting = e.is_lasting();
            out.failed = Some((s.clone(), e.to_string()));
            if failures.iter().any(|(s, _)| s.stage.is_forward()) {
                self.rollback(&done_forward, &mut out, &mut stages).await;
            }
            out.snapshot = self.observe().await.ok();
        }
        let total_micros = u64::try_from(start.elapsed().as_micros()).unwrap_or(u64::MAX);
        // A refusal undone by the rollback (a claim-time conflict) still reads "refused"; a
        // forward step that failed with nothing before it to undo (a repair's serve while
        // tgtd is down) reads "failed".
        let result = match out.failed.clone() {
            None => TransitionResult::Ok,
            Some((step, reason)) if out.refused => TransitionResult::Refused { step, reason },
            Some((step, reason)) if stages.iter().any(|s| s.rollback) => {
                TransitionResult::RolledBack { step, reason }
            }
            Some((step, reason)) => TransitionResult::Failed { step, reason },
        };
        // One line per transition, with every stage's time (`!` marks a failed stage).
        let times: Vec<String> = stages
            .iter()
            .map(|s| {
                let rb = if s.rollback { "rollback:" } else { "" };
                let failed = if s.ok { "" } else { "!" };
                let ms = s.micros as f64 / 1000.0;
                format!("{rb}{}={ms:.2}ms{failed}", s.stage.name())
            })
            .collect();
        let stage_times = times.join(" ");
        let text = result.to_string();
        info!(ms = total_micros as f64 / 1000.0, result = text.as_str(), stages = %stage_times, "transition");
        let record = TransitionRecord {
            id,
            kind,
            started_unix_ms,
            total_micros,
            stages,
            result,
            repeated: 0,
        };
        (out, record)
    }

    /// Undo `done` in the demote order ([`order::rollback`]), related objects in that order,
    /// others concurrently, starting nothing new after a failure: later steps rely on it (a
    /// target is not removed while an address whose release failed may still be held).
    async fn rollback(&self, done: &[Step], out: &mut Outcome, stages: &mut Vec<StageTiming>) {
        let undo = order::rollback(done);
        let ran = self.run_steps(&undo, true, false).await;
        stages.extend(ran.stages);
        for &i in &ran.finished {
            if matches!(ran.results[i], Some(Ok(()))) {
                out.applied.push(undo[i].clone());
            }
        }
    }
}

/// What [`Executor::run_steps`] did.
struct Ran {
    /// One per stage, in the order of the steps.
    stages: Vec<StageTiming>,
    /// Per step, in the order of the steps; `None`: not started.
    results: Vec<Option<Result<(), BackendError>>>,
    /// Indexes of the steps in the order they finished.
    finished: Vec<usize>,
}

/// One timing per stage of `steps` that started, in the order of the steps: its objects, the
/// time from its first step's start to its last one's end, and each failed object's error.
fn stage_timings(
    steps: &[Step],
    results: &[Option<Result<(), BackendError>>],
    spans: &[Option<(Instant, Instant)>],
    notes: &[Option<String>],
    rollback: bool,
) -> Vec<StageTiming> {
    let mut out: Vec<(StageTiming, Instant, Instant)> = Vec::new();
    for (((s, r), span), note) in steps.iter().zip(results).zip(spans).zip(notes) {
        let (Some(r), Some((t0, t1))) = (r, *span) else {
            continue;
        };
        let k = match out.iter().position(|(t, _, _)| t.stage == s.stage) {
            Some(k) => k,
            None => {
                let t = StageTiming {
                    stage: s.stage,
                    objects: Vec::new(),
                    micros: 0,
                    ok: true,
                    rollback,
                    errors: Vec::new(),
                    notes: Vec::new(),
                };
                out.push((t, t0, t1));
                out.len() - 1
            }
        };
        let (t, first, last) = &mut out[k];
        t.objects.push(s.object.clone());
        *first = (*first).min(t0);
        *last = (*last).max(t1);
        if let Err(e) = r {
            t.ok = false;
            t.errors.push(format!("{}: {e}", s.object));
        }
        if let Some(n) = note {
            t.notes.push(format!("{}: {n}", s.object));
        }
    }
    out.into_iter()
        .map(|(mut t, first, last)| {
            t.micros = u64::try_from(last.duration_since(first).as_micros()).unwrap_or(u64::MAX);
            info!(
                stage = t.stage.name(),
                objects = t.objects.join(","),
                ms = t.micros as f64 / 1000.0,
                ok = t.ok,
                rollback,
                "stage"
            );
            t
        })
        .collect()
}
