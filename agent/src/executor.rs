//! Runs the steps planned by [`crate::fsm::step`] over the backends, times each stage, and rolls
//! back what a forward transition did when one of its steps fails.
//!
//! Consecutive steps of one stage (the same stage on several resources or addresses) run
//! concurrently; stages run one after the other in the plan's order, so an address is claimed
//! only after every target's serve stage succeeded. On a failure in a forward stage the steps
//! this run completed, and a failed claim or primary request (a timeout may hide that it took
//! effect), are undone (see [`Stage::undo`]) in the demote order, best effort, which
//! leaves a node that started Secondary Secondary again; a failure while moving away from
//! serving stops the run and is reported (undoing a demote would mean serving again).

use std::collections::VecDeque;
use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use futures::future::join_all;
use serde::{Deserialize, Serialize};
use tracing::{info, info_span, warn, Instrument};

use crate::backend::{Address, Drbd, Target};
use crate::config::Config;
use crate::error::{AgentError, BackendError};
use crate::fsm::{Disk, Outcome, Role, Snapshot, Stage, Step};

/// Timing of one stage of a transition.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StageTiming {
    /// The stage.
    pub stage: Stage,
    /// The objects it acted on.
    pub objects: Vec<String>,
    /// Wall time of the stage (its steps ran concurrently), microseconds.
    pub micros: u64,
    /// All its steps succeeded.
    pub ok: bool,
    /// Part of a rollback.
    pub rollback: bool,
}

/// One transition as it happened, for `iscsi-ha status` and the logs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TransitionRecord {
    /// Sequence number since the agent started.
    pub id: u64,
    /// `promote`, `demote` or `repair`.
    pub kind: String,
    /// Start, milliseconds since the Unix epoch.
    pub started_unix_ms: u64,
    /// Total wall time, microseconds.
    pub total_micros: u64,
    /// Per-stage timings, in order.
    pub stages: Vec<StageTiming>,
    /// `ok`, `refused: …`, `rolled back: …` or `failed: …`.
    pub result: String,
}

/// Runs steps over one backend per subsystem.
#[derive(Debug)]
pub struct Executor<D, T, A> {
    config: Arc<Config>,
    drbd: D,
    target: T,
    address: A,
    next_id: AtomicU64,
}

fn kind_of(steps: &[Step]) -> &'static str {
    let fwd = steps.iter().any(|s| s.stage.is_forward());
    let back = steps
        .iter()
        .any(|s| !s.stage.is_forward() && s.stage != Stage::DrbdUp);
    let promote = steps
        .iter()
        .any(|s| matches!(s.stage, Stage::DrbdPrimary | Stage::DrbdPrimaryForce));
    let demote = steps.iter().any(|s| s.stage == Stage::DrbdSecondary);
    match (promote, demote, fwd, back) {
        (true, _, _, _) => "promote",
        (_, true, _, _) => "demote",
        (_, _, false, true) => "demote",
        _ => "repair",
    }
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
            let held = within(t.address_ms, self.address.held(a))
                .await
                .map_err(|source| AgentError::Stage {
                    stage: Stage::AddressClaim,
                    object: a.address.clone(),
                    source,
                })?;
            snap.addresses.insert(a.address.clone(), held);
        }
        Ok(snap)
    }

    /// Run one step.
    async fn run_step(&self, s: &Step) -> Result<(), BackendError> {
        let t = &self.config.timeouts;
        let unknown = || BackendError::Failed(format!("{} is not in the config", s.object));
        match s.stage {
            Stage::ProbeAddress | Stage::AddressClaim | Stage::AddressRelease => {
                let a = self.config.address(&s.object).ok_or_else(unknown)?;
                match s.stage {
                    Stage::ProbeAddress => {
                        if !a.probe.enabled {
                            return Ok(());
                        }
                        // Runs on while DRBD and the target come up; judged before DRBD
                        // promotes without a connected Secondary peer, and at the claim.
                        within(t.address_ms, self.address.start_probe(a)).await
                    }
                    Stage::AddressClaim => within(t.address_ms, self.address.claim(a)).await,
                    _ => within(t.address_ms, self.address.release(a)).await,
                }
            }
            stage => {
                let r = self.config.resource(&s.object).ok_or_else(unknown)?;
                match stage {
                    Stage::CheckResource => {
                        let v = within(t.drbd_ms, self.drbd.status(r)).await?;
                        if v.role == Role::Primary {
                            Ok(())
                        } else if !v.up {
                            Err(BackendError::Failed("DRBD resource is not up".into()))
                        } else if v.disk != Disk::UpToDate {
                            Err(BackendError::Failed(format!(
                                "local disk is {}, not UpToDate",
                                v.disk
                            )))
                        } else if v.peer_role == Role::Primary && !v.drbd_arbitrates() {
                            Err(BackendError::Failed("peer is DRBD Primary".into()))
                        } else {
                            Ok(())
                        }
                    }
                    Stage::DrbdUp => within(t.drbd_ms, self.drbd.up(r)).await,
                    Stage::DrbdPrimary => self.primary(r).await,
                    Stage::DrbdPrimaryForce => {
                        self.probes_clear(r).await?;
                        let v = within(t.drbd_ms, self.drbd.status(r)).await?;
                        let refuse = |m: String| Err(BackendError::Failed(m));
                        if v.role == Role::Primary {
                            return Ok(());
                        }
                        if v.connection.handshaken() {
                            return refuse("the peer is connected; no degraded promote".into());
                        }
                        if v.peer_role == Role::Primary {
                            return refuse("peer is DRBD Primary".into());
                        }
                        if !matches!(v.disk, Disk::UpToDate | Disk::Consistent) {
                            return refuse(format!("local disk is {}", v.disk));
                        }
                        within(t.drbd_ms, self.drbd.primary(r, true)).await
                    }
                    Stage::DrbdSecondary => within(t.drbd_ms, self.drbd.secondary(r)).await,
                    Stage::TargetServe => within(t.tgtd_ms, self.target.serve(r)).await,
                    Stage::TargetOffline => within(t.tgtd_ms, self.target.offline(r)).await,
                    Stage::TargetRemove => within(t.tgtd_ms, self.target.remove(r)).await,
                    _ => Err(unknown()),
                }
            }
        }
    }

    /// DRBD Primary with DRBD's own arbitration as the guard against a second Primary: DRBD
    /// pings the peer when asked and refuses while a live peer is Primary (`SS_TWO_PRIMARIES`,
    /// after one retry of its own `ping-timeout` later). A refusal after which DRBD's state
    /// moved (the peer was declared lost meanwhile) is asked again, at most
    /// [`PRIMARY_ATTEMPTS`] times; an unchanged state keeps the refusal.
    ///
    /// Unless DRBD is connected to a Secondary peer (a promote that cannot fork the data),
    /// the address probes this plan started are judged first, so nobody answering for the
    /// address stays a precondition of becoming Primary without the peer.
    async fn primary(&self, r: &crate::config::Resource) -> Result<(), BackendError> {
        let t = &self.config.timeouts;
        let mut before = within(t.drbd_ms, self.drbd.status(r)).await?;
        if before.role == Role::Primary {
            return Ok(());
        }
        if !(before.connection.handshaken() && before.peer_role == Role::Secondary) {
            self.probes_clear(r).await?;
        }
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
    pub async fn run(&self, steps: Vec<Step>) -> (Outcome, TransitionRecord) {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let kind = kind_of(&steps);
        let span = info_span!("transition", id, kind);
        self.run_inner(id, kind, steps).instrument(span).await
    }

    async fn run_inner(
        &self,
        id: u64,
        kind: &str,
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
        let mut queue: VecDeque<Step> = steps.into();
        while let Some(first) = queue.pop_front() {
            let mut group = vec![first];
            while queue
                .front()
                .is_some_and(|s| group.first().is_some_and(|g| g.stage == s.stage))
            {
                if let Some(s) = queue.pop_front() {
                    group.push(s);
                }
            }
            let (timing, results) = self.run_group(&group, false).await;
            stages.push(timing);
            let mut failure = None;
            for (s, r) in group.into_iter().zip(results) {
                match r {
                    Ok(()) => {
                        if s.stage.is_forward() {
                            done_forward.push(s.clone());
                        }
                        out.applied.push(s);
                    }
                    Err(e) => {
                        warn!(step = %s, error = %e, "step failed");
                        if failure.is_none() {
                            let refusal = matches!(
                                e,
                                BackendError::PeerPrimary(_) | BackendError::Refused(_)
                            );
                            failure = Some((s, e.to_string(), refusal));
                        }
                    }
                }
            }
            if let Some((s, e, refusal)) = failure {
                out.refused =
                    refusal || matches!(s.stage, Stage::CheckResource | Stage::ProbeAddress);
                let forward = s.stage.is_forward();
                // A claim or a primary request that failed late (a timeout) may still have taken
                // effect: undo it too (both undos are idempotent). A failed serve is not undone:
                // the target at that tid may not be ours.
                if matches!(
                    s.stage,
                    Stage::AddressClaim | Stage::DrbdPrimary | Stage::DrbdPrimaryForce
                ) {
                    done_forward.push(s.clone());
                }
                out.failed = Some((s, e));
                if forward {
                    self.rollback(&done_forward, &mut out, &mut stages).await;
                }
                out.snapshot = self.observe().await.ok();
                break;
            }
        }
        let total_micros = u64::try_from(start.elapsed().as_micros()).unwrap_or(u64::MAX);
        // A refusal undone by the rollback (a claim-time conflict) still reads "refused".
        let result = match &out.failed {
            None => "ok".to_string(),
            Some((s, e)) if out.refused => format!("refused: {s}: {e}"),
            Some((s, e)) if s.stage.is_forward() => format!("rolled back: {s}: {e}"),
            Some((s, e)) => format!("failed: {s}: {e}"),
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
        info!(ms = total_micros as f64 / 1000.0, result, stages = %stage_times, "transition");
        let record = TransitionRecord {
            id,
            kind: kind.to_string(),
            started_unix_ms,
            total_micros,
            stages,
            result,
        };
        (out, record)
    }

    async fn rollback(&self, done: &[Step], out: &mut Outcome, stages: &mut Vec<StageTiming>) {
        let mut undo: Vec<Step> = done
            .iter()
            .rev()
            .flat_map(|s| {
                s.stage.undo().iter().map(|st| Step {
                    stage: *st,
                    object: s.object.clone(),
                })
            })
            .collect();
        // The demote order, written once in `Stage::ALL`.
        undo.sort_by_key(|s| s.stage);
        let mut i = 0;
        while i < undo.len() {
            let stage = undo.get(i).map(|s| s.stage);
            let group: Vec<Step> = undo
                .iter()
                .skip(i)
                .take_while(|s| Some(s.stage) == stage)
                .cloned()
                .collect();
            i += group.len().max(1);
            let (timing, results) = self.run_group(&group, true).await;
            stages.push(timing);
            for (s, r) in group.into_iter().zip(results) {
                match r {
                    Ok(()) => out.applied.push(s),
                    Err(e) => warn!(step = %s, error = %e, "rollback step failed"),
                }
            }
        }
    }
}
