//! Staged targets: a node that stands by keeps each resource's target made ahead of a promote
//! (target, LUs without a backing store, identity, cache mode page; no ACL), so the promote's
//! `target-serve` only attaches the DRBD device and binds the ACL (`tgt_ipc::TgtClient::stage`,
//! docs/tgtd-ipc.md §7.9). The LUs' I/O threads, most of a serve's time, start while nothing
//! waits for them.
//!
//! Safety: a staged target opens nothing (the device of a DRBD Secondary is not touched) and has
//! no ACL entry, so nobody can log in or discover it; status reports it absent. Only the
//! promote's serve, after DRBD Primary, attaches the device. Staging runs only while the node
//! stands by out of maintenance ([`Target::stage_ahead`](crate::backend::Target::stage_ahead))
//! and never for a target this agent serves; a serve and a staging never overlap (one
//! lock). What cannot be staged is left alone: the serve then builds the target as before.

use std::collections::BTreeMap;
use std::sync::atomic::Ordering;

use tgt_ipc::{ServeSpec, Served};
use tracing::{debug, info, warn};

use super::{spec, TgtTarget};
use crate::backend::ConfigFeed;
use crate::config::{Config, Resource};

/// The spec a resource's target is staged with: its serve spec without CHAP accounts (their
/// secrets are read only to serve) and without ACL (bound only by the serve).
pub(super) fn stage_spec(res: &Resource) -> Option<ServeSpec> {
    let mut s = spec(res).ok()?;
    s.accounts.clear();
    s.acls.clear();
    Some(s)
}

/// Whether `targets` hold `spec`'s IQN at its tid with no ACL entry, no account and no LU with
/// a backing store: nobody can log in and nothing is open (a target staged, or being staged).
pub(super) fn opens_nothing(spec: &ServeSpec, targets: &[tgt_ipc::Target]) -> bool {
    targets
        .iter()
        .find(|t| t.tid == spec.tid && t.name == spec.name)
        .is_some_and(|t| {
            t.acls.is_empty()
                && t.accounts.is_empty()
                && t.luns.iter().all(|l| l.backing_store_path.is_none())
        })
}

/// Whether the target staged as `staged` is the one `serve` serves (same tid, IQN and LUs).
pub(super) fn stages(staged: &ServeSpec, serve: &ServeSpec) -> bool {
    staged.tid == serve.tid && staged.name == serve.name && staged.luns == serve.luns
}

impl TgtTarget {
    /// The resources whose target is staged now (a promote's serve then only attaches the
    /// device and binds the ACL), by name.
    pub fn staged_resources(&self) -> Vec<String> {
        self.staged().keys().cloned().collect()
    }

    /// Deletes every target this agent staged and stages no more (a clean stop: tgtd is left
    /// with the targets the agent serves and nothing else). Bounded by the per-request timeout
    /// of each request; a failure is logged.
    pub async fn unstage(&self) {
        self.stage_on.store(false, Ordering::SeqCst);
        let _one = self.staging.lock().await;
        let staged = std::mem::take(&mut *self.staged());
        if staged.is_empty() {
            return;
        }
        let _changing = self.changes.begin();
        let targets = match self.client.show_targets().await {
            Ok(t) => t,
            Err(e) => return warn!(error = %e, "staged targets left in tgtd"),
        };
        for (name, s) in staged {
            self.delete_if_staged(&targets, &name, &s).await;
        }
    }

    /// Deletes `name`'s target when `targets` show it staged as `s` (never one served since).
    async fn delete_if_staged(&self, targets: &[tgt_ipc::Target], name: &str, s: &ServeSpec) {
        if s.served_in(targets) != Served::Staged {
            return;
        }
        match self.acting.stop_serving_in(targets, s.tid, &s.name).await {
            Ok(_) => info!(resource = %name, "staged target deleted"),
            Err(e) => warn!(resource = %name, error = %e, "staged target left in tgtd"),
        }
    }

    /// Completes the target staged for `res` ([`TgtClient::serve_staged`](tgt_ipc::TgtClient::serve_staged))
    /// once a show says it is still there, ours and as staged (check-resource's, or one shared
    /// by the transition's serves). False when it is not, or the completion failed: then a target of ours that opens
    /// nothing is deleted (a failed attach may have left the LU changed), and the caller builds
    /// the target the ordinary way.
    ///
    /// `checked`: the promote's check-resource found it so
    /// ([`TgtTarget::staged_checked`]): that show, read a stage earlier in the same transition,
    /// is as fresh as the ownership check of a target built the ordinary way.
    pub(super) async fn complete_staged(
        &self,
        res: &Resource,
        spec: &ServeSpec,
        checked: bool,
    ) -> bool {
        if !checked {
            let Ok(targets) = self.shows.get(&self.acting).await else {
                return false;
            };
            if spec.served_in(&targets) != Served::Staged {
                debug!(resource = %res.name, "staged target gone or changed; building the target");
                return false;
            }
        }
        let Err(e) = self.acting.serve_staged(spec).await else {
            return true;
        };
        warn!(resource = %res.name, error = %e,
            "staged target not completed; building the target afresh");
        if let Ok(now) = self.acting.show_targets().await {
            if opens_nothing(spec, &now) {
                if let Err(e) = self
                    .acting
                    .stop_serving_in(&now, spec.tid, &spec.name)
                    .await
                {
                    warn!(resource = %res.name, error = %e, "cannot delete the staged target");
                }
            }
        }
        false
    }

    /// Notes that check-resource's show found `res`'s target staged as this agent staged it.
    pub(super) fn staged_checked(&self, res: &Resource, spec: &ServeSpec) {
        if self
            .staged()
            .get(&res.name)
            .is_some_and(|s| stages(s, spec))
        {
            self.checked().insert(res.name.clone());
        }
    }

    pub(super) fn checked(&self) -> std::sync::MutexGuard<'_, std::collections::BTreeSet<String>> {
        self.checked.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The resources whose target this agent staged, with the spec staged.
    pub(super) fn staged(&self) -> std::sync::MutexGuard<'_, BTreeMap<String, ServeSpec>> {
        self.staged.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Stages on request (staging allowed, a restarted tgtd) and on every config change, while
    /// staging is allowed. Runs beside the watch.
    pub(super) async fn stager(self, mut config: ConfigFeed) {
        // a fixed config (no daemon reloading it) has no sender
        let mut reloads = true;
        loop {
            tokio::select! {
                _ = self.stage_wanted.notified() => {}
                changed = config.changed(), if reloads => if changed.is_err() {
                    reloads = false;
                    continue;
                },
            }
            let cfg = config.borrow_and_update().clone();
            self.stage_all(&cfg).await;
        }
    }

    fn standing_by(&self) -> bool {
        self.stage_on.load(Ordering::SeqCst) && !self.down.load(Ordering::SeqCst)
    }

    /// One pass: deletes staged targets a reload removed or changed, then stages each configured
    /// resource's target that tgtd does not have, one at a time, while the node stands by.
    async fn stage_all(&self, config: &Config) {
        if !self.standing_by() {
            return;
        }
        let gen = self.staged_gen.load(Ordering::SeqCst);
        // under the lock: staging allowed, and no new tgtd since the pass began (its own pass
        // is due)
        let current = || self.standing_by() && self.staged_gen.load(Ordering::SeqCst) == gen;
        let wanted: BTreeMap<String, ServeSpec> = config
            .resources
            .iter()
            .filter_map(|r| Some((r.name.clone(), stage_spec(r)?)))
            .collect();
        let Ok(mut targets) = self.shows.get(&self.client).await else {
            return;
        };
        let stale: Vec<(String, ServeSpec)> = self
            .staged()
            .iter()
            .filter(|(n, s)| wanted.get(*n) != Some(s))
            .map(|(n, s)| (n.clone(), s.clone()))
            .collect();
        let deleting = !stale.is_empty();
        for (name, old) in stale {
            let _one = self.staging.lock().await;
            // a serve may have taken it meanwhile (it stops staging first)
            if !current() {
                return;
            }
            if self.staged().get(&name) != Some(&old) {
                continue;
            }
            let _changing = self.changes.begin();
            self.staged().remove(&name);
            self.delete_if_staged(&targets, &name, &old).await;
        }
        if deleting {
            let Ok(now) = self.shows.get(&self.client).await else {
                return;
            };
            targets = now;
        }
        for (name, want) in &wanted {
            let _one = self.staging.lock().await;
            if !current() {
                return;
            }
            if self.served().contains(name) || self.staged().get(name) == Some(want) {
                continue;
            }
            let _changing = self.changes.begin();
            let half = match want.served_in(&targets) {
                // staged before (by an agent before a restart of this one)
                Served::Staged => None,
                Served::Missing => Some(false),
                // ours, opening nothing, not as staged: a staging cut short, or the config's LUs
                // changed while the agent was down; made again
                Served::Different(_) if opens_nothing(want, &targets) => Some(true),
                // served, offline, half-built or someone else's: the machine's business
                _ => continue,
            };
            if let Some(again) = half {
                if again {
                    if let Err(e) = self
                        .acting
                        .stop_serving_in(&targets, want.tid, &want.name)
                        .await
                    {
                        debug!(resource = %name, error = %e, "half-staged target not deleted");
                        continue;
                    }
                }
                if let Err(e) = self.acting.stage(want).await {
                    debug!(resource = %name, error = %e, "not staged; a promote builds it");
                    continue;
                }
                debug!(resource = %name, "target staged");
            }
            let mut staged = self.staged();
            if self.staged_gen.load(Ordering::SeqCst) != gen {
                return;
            }
            staged.insert(name.clone(), want.clone());
        }
    }
}
