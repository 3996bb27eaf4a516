//! Runs the steps planned by [`crate::fsm::step`] over the backends, times each stage, and rolls
//! back what a forward transition did when one of its steps fails.
//!
//! Consecutive steps of one stage (the same stage on several resources or addresses) run
//! concurrently; stages run one after the other in the plan's order, so an address is claimed
//! only after every target's serve stage succeeded. On a failure in a forward stage the steps
//! this run completed, and a failed claim or primary request (a timeout may hide that it took
//! effect), are undone (see [`Stage::undo`]) in the demote order, which leaves a node
//! that started Secondary Secondary again; a failure while moving away from serving, in a
//! demote or a rollback, stops the run and is reported (undoing a demote would mean serving
//! again; going on could remove a target behind an address still held).

use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use futures::future::join_all;
use tracing::{info, info_span, warn, Instrument};

use crate::backend::{Address, Drbd, Target};
use crate::config::Config;
use crate::error::{AgentError, BackendError};
use crate::fsm::order::{self, Object, Precondition, StageDef};
use crate::fsm::{safety, Disk, DrbdView, Outcome, Plan, PlanKind, Role, Snapshot, Stage, Step};

pub use crate::record::{StageTiming, TransitionRecord, TransitionResult};

/// Runs steps over one backend per subsystem.
#[derive(Debug)]
pub struct Executor<D, T, A> {
    config: Arc<Config>,
    drbd: D,
    target: T,
    address: A,
    next_id: AtomicU64,
}

/// How often one `drbd-primary` step asks DRBD while each refusal is followed by a change of
/// DRBD's state (docs/takeover.md).
pub const PRIMARY_ATTEMPTS: u32 = 3;

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
        self.config = config;
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

    /// Read the actual state of every configured object.
    pub async fn observe(&self) -> Result<Snapshot, AgentError> {
        let t = &self.config.timeouts;
        let mut snap = Snapshot::default();
        for r in &self.config.resources {
            let stage = |stage, source| AgentError::Stage {
                stage,
                object: r.name.clone(),
                source,
            };
            let drbd = within(t.drbd_ms, self.drbd.status(r))
                .await
                .map_err(|e| stage(Stage::CheckResource, e))?;
            let target = within(t.tgtd_ms, self.target.status(r))
                .await
                .map_err(|e| stage(Stage::TargetServe, e))?;
            snap.resources
                .insert(r.name.clone(), crate::fsm::ResourceView { drbd, target });
        }
        for a in &self.config.addresses {
            let name = a.address.to_string();
            let held = within(t.address_ms, self.address.held(a))
                .await
                .map_err(|source| AgentError::Stage {
                    stage: Stage::AddressClaim,
                    object: name.clone(),
                    source,
                })?;
            snap.addresses.insert(name.clone(), held);
            // A link that cannot be read counts as up: the claim then says why it fails.
            if !within(t.address_ms, self.address.link_up(a))
                .await
                .unwrap_or(true)
            {
                snap.links_down.insert(name);
            }
        }
        Ok(snap)
    }

    /// Run one step. A check stage that cannot complete (a timeout, a read error) refuses: it
    /// could not show the promote safe.
    async fn run_step(&self, s: &Step) -> Result<(), BackendError> {
        match self.act(s).await {
            Err(e) if s.stage.def().check_only && !e.is_refusal() => {
                Err(BackendError::Unchecked(Box::new(e)))
            }
            r => r,
        }
    }

    /// One step's live preconditions ([`StageDef::preconditions`]), then its action.
    async fn act(&self, s: &Step) -> Result<(), BackendError> {
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
        let Some(live) = self.preconditions(def, r).await? else {
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
            Stage::TargetOffline => within(t.tgtd_ms, self.target.offline(r)).await,
            Stage::TargetRemove => within(t.tgtd_ms, self.target.remove(r)).await,
            _ => Err(unknown()),
        }
    }

    /// Checks a stage's preconditions on DRBD's live state: `None` when the resource is
    /// already Primary (nothing to do), else the live view read for them (`Some(None)` when the
    /// stage has none). A failed precondition is a refusal.
    async fn preconditions(
        &self,
        def: &StageDef,
        r: &crate::config::Resource,
    ) -> Result<Option<Option<DrbdView>>, BackendError> {
        if def.preconditions.is_empty() {
            return Ok(Some(None));
        }
        let live = within(self.config.timeouts.drbd_ms, self.drbd.status(r)).await?;
        if live.role == Role::Primary {
            return Ok(None);
        }
        for p in def.preconditions {
            match *p {
                Precondition::MayPromote(kind) => safety::allows(&live, kind)?,
                Precondition::AddressesUnanswered {
                    unless_peer_secondary,
                } => {
                    let safe_peer =
                        live.connection.handshaken() && live.peer_role == Role::Secondary;
                    if !(unless_peer_secondary && safe_peer) {
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
    /// own arbitration as the guard against a second Primary: DRBD
    /// pings the peer when asked and refuses while a live peer is Primary (`SS_TWO_PRIMARIES`,
    /// after one retry of its own `ping-timeout` later). A refusal after which DRBD's state
    /// moved (the peer was declared lost meanwhile) is asked again, at most
    /// [`PRIMARY_ATTEMPTS`] times; an unchanged state keeps the refusal.
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
            let err = match within(t.drbd_ms, self.drbd.primary(r, force)).await {
                Err(e @ BackendError::Timeout(_)) => return Err(e),
                Err(e) => e,
                ok => return ok,
            };
            if attempt >= PRIMARY_ATTEMPTS {
                return Err(err);
            }
            let now = within(t.drbd_ms, self.drbd.status(r)).await?;
            if now.role == Role::Primary {
                return Ok(());
            }
            if before == now || !now.up {
                return Err(err);
            }
            info!(resource = %r.name, error = %err, connection = %now.connection,
                peer = %now.peer_role, "DRBD refused Primary and its state moved; asking again");
            before = now;
            attempt += 1;
        }
    }

    /// Nobody answered for the addresses in front of `r` since their probes started (waits
    /// for the probe windows); refuses otherwise.
    async fn probes_clear(&self, r: &crate::config::Resource) -> Result<(), BackendError> {
        let t = &self.config.timeouts;
        for a in &self.config.addresses {
            if !a.probe.enabled || !a.resources.contains(&r.name) {
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

    /// Run a group of steps of one stage concurrently; returns the timing and per-step results.
    async fn run_group(
        &self,
        group: &[Step],
        rollback: bool,
    ) -> (StageTiming, Vec<Result<(), BackendError>>) {
        let stage = group
            .first()
            .map(|s| s.stage)
            .unwrap_or(Stage::CheckResource);
        let start = Instant::now();
        let results = join_all(group.iter().map(|s| self.run_step(s))).await;
        let micros = u64::try_from(start.elapsed().as_micros()).unwrap_or(u64::MAX);
        let ok = results.iter().all(Result::is_ok);
        let objects: Vec<String> = group.iter().map(|s| s.object.clone()).collect();
        info!(
            stage = stage.name(),
            objects = objects.join(","),
            ms = micros as f64 / 1000.0,
            ok,
            rollback,
            "stage"
        );
        (
            StageTiming {
                stage,
                objects,
                micros,
                ok,
                rollback,
            },
            results,
        )
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
        let started_unix_ms = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
            .unwrap_or(0);
        let start = Instant::now();
        let mut out = Outcome::default();
        let mut stages = Vec::new();
        let mut done_forward: Vec<Step> = Vec::new();
        for group in order::groups(&steps) {
            let (timing, results) = self.run_group(group, false).await;
            stages.push(timing);
            let mut failure = None;
            for (s, r) in group.iter().zip(results) {
                match r {
                    Ok(()) => {
                        if s.stage.is_forward() {
                            done_forward.push(s.clone());
                        }
                        out.applied.push(s.clone());
                    }
                    Err(e) => {
                        warn!(step = %s, error = %e, "step failed");
                        if failure.is_none() {
                            failure = Some((s.clone(), e));
                        }
                    }
                }
            }
            if let Some((s, e)) = failure {
                out.refused = e.is_refusal();
                let def = s.stage.def();
                if def.undo_if_failed {
                    done_forward.push(s.clone());
                }
                out.failed = Some((s, e.to_string()));
                if def.forward {
                    self.rollback(&done_forward, &mut out, &mut stages).await;
                }
                out.snapshot = self.observe().await.ok();
                break;
            }
        }
        let total_micros = u64::try_from(start.elapsed().as_micros()).unwrap_or(u64::MAX);
        // A refusal undone by the rollback (a claim-time conflict) still reads "refused".
        let result = match out.failed.clone() {
            None => TransitionResult::Ok,
            Some((step, reason)) if out.refused => TransitionResult::Refused { step, reason },
            Some((step, reason)) if step.stage.is_forward() => {
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

    /// Undo `done` in the demote order ([`order::rollback`]), up to the first stage that fails:
    /// later stages rely on it (a target is not removed while an address whose release failed
    /// may still be held).
    async fn rollback(&self, done: &[Step], out: &mut Outcome, stages: &mut Vec<StageTiming>) {
        let undo = order::rollback(done);
        for group in order::groups(&undo) {
            let (timing, results) = self.run_group(group, true).await;
            stages.push(timing);
            let mut failed = false;
            for (s, r) in group.iter().zip(results) {
                match r {
                    Ok(()) => out.applied.push(s.clone()),
                    Err(e) => {
                        failed = true;
                        warn!(step = %s, error = %e, "rollback step failed");
                    }
                }
            }
            if failed {
                break;
            }
        }
    }
}
