//! [`Target`] over tgtd's management socket (crate `tgt-ipc`): no `tgtadm` is run.
//!
//! tgtd sends no notifications, so the watch ([`TgtTarget::watch`]) uses inotify on the
//! socket's directory: tgtd re-creates `socket.N` when it starts, and the kernel closes its
//! `socket.N.lock` when it dies. Either way the targets are re-read and reported, and the
//! state machine re-creates what is missing as soon as tgtd answers again. After a restart of a
//! tgtd that served our targets (seen served by the watch, or served by this agent since its last
//! look), tgtd's system state is held `offline` (it then closes every new connection at accept)
//! until each of them is served again, as tgt's own start-up does, so no initiator is told
//! "target not found" meanwhile; the serve of the last one sets it `ready` before it returns.
//! A node that stands by ([`Target::stand_by`]) holds no restarted tgtd offline, and keeps each
//! target staged for the next promote (module `stage`: no device opened, no ACL). Changes made
//! behind the agent's back (`tgt-admin --update ALL`, tgt's stop, a hand) are found by one
//! `show` every `timeouts.tgt_check_ms` (1 s by default; 0: not at all).
//!
//! Ownership: the IQN at the configured tid is compared before anything is changed; someone
//! else's target ([`TargetState::Foreign`]) is never touched (docs/tgtd-ipc.md §7.7).

use std::collections::{BTreeMap, BTreeSet};
use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tgt_ipc::{ServeSpec, Served, SetState, TgtClient, TgtErrno, TgtError};
use tokio::sync::mpsc::UnboundedSender;
use tracing::{debug, info, warn};

use super::tgt_show::SharedShow;
use super::{ConfigFeed, Target};
use crate::config::{Config, Resource};
use crate::dirwatch::{DirWatch, WatchMask};
use crate::error::BackendError;
use crate::fsm::{Event, TargetState, TargetView};

mod stage;

/// While tgtd's system state is held offline after a restart: how often the watch looks whether
/// every target is served again.
const READY_POLL: Duration = Duration::from_millis(5);
/// How long a serve waits for the watch to take a restarted tgtd in ([`TgtTarget::watch`]).
const TAKE_IN_WAIT: Duration = Duration::from_secs(2);
/// How long nothing must answer at tgtd's socket before its targets are reported absent: a
/// restart is not reported as a death (the new tgtd is held offline first, then served).
const DOWN_REPORT_AFTER: Duration = Duration::from_millis(1500);
/// The longest tgtd's system state is held offline after a restart (the node may have been
/// demoted meanwhile): then it is set ready anyway, with an error in the log.
pub const READY_WAIT_MAX: Duration = Duration::from_secs(30);
/// The longest [`Target::offline`] waits for tgtd to drop the connections it was told to close:
/// tgtd keeps a connection (and its socket) until its commands in flight complete, and the
/// address released before then strands the initiator until its own command timeout. At most a
/// third of the per-request timeout, so the stage still ends before the executor's timeout.
pub const DRAIN_WAIT_MAX: Duration = Duration::from_secs(1);
/// How often [`Target::offline`] looks whether tgtd still lists a connection (one `conn show`).
const DRAIN_POLL: Duration = Duration::from_millis(5);

/// tgtd through its management socket.
#[derive(Debug, Clone)]
pub struct TgtTarget {
    /// Reads: tgtd not answering reads as nothing served, at once.
    client: TgtClient,
    /// Changes: connects retried through a starting tgtd's `ECONNREFUSED`, busy LUs retried.
    acting: TgtClient,
    /// Changes started and finished, so that a check overlapping one is not reported.
    changes: Arc<Changes>,
    /// The longest `offline` waits for closed connections to be gone ([`DRAIN_WAIT_MAX`]).
    drain_max: Duration,
    /// One `show` for the ownership checks of resources in the same transition.
    shows: Arc<SharedShow>,
    /// The tgtd (its socket's identity) the running watch has taken in, holding it offline
    /// after a restart; `None` while no watch runs. A serve waits for a new tgtd to be taken
    /// in: served before, a target would open a restarted tgtd to every initiator while the
    /// others' targets are still missing ("target not found"; docs/tgtd-ipc.md §7.8).
    watched: Arc<std::sync::Mutex<Option<Option<SocketId>>>>,
    /// The running watch reported tgtd down (nothing answered at its socket for
    /// [`DOWN_REPORT_AFTER`]) and no tgtd has answered since: a serve fails at once instead of
    /// retrying the connect for half the timeout, which would hold up the daemon (and its
    /// `status`) while the repair waits for a tgtd that is not coming.
    down: Arc<AtomicBool>,
    /// Resources whose target this agent served and has not taken offline or removed since. A
    /// restart is held offline for these too: one served after the watch's last look is not in
    /// what that look saw.
    served: Arc<std::sync::Mutex<BTreeSet<String>>>,
    /// After a restart, while tgtd's system state is held offline. Locked across the state
    /// change, so a serve that ends the hold and the watch that starts one cannot cross (a
    /// `ready` overtaken by an `offline` would keep tgtd offline).
    hold: Arc<tokio::sync::Mutex<Option<Hold>>>,
    /// The node stands by ([`Target::stand_by`]): a restart is held offline for none of ours.
    standby: Arc<AtomicBool>,
    /// Resources whose target this agent staged (module `stage`), with the spec staged.
    staged: Arc<std::sync::Mutex<BTreeMap<String, ServeSpec>>>,
    /// Held by a serve and by each staging of one target: they never overlap.
    staging: Arc<tokio::sync::Mutex<()>>,
    /// Asks the stager for a pass (the node started standing by, a new tgtd answered).
    stage_wanted: Arc<tokio::sync::Notify>,
    /// Bumped when a new tgtd answers: a pass begun before leaves `staged` alone.
    staged_gen: Arc<AtomicU64>,
    /// Staged targets a promote's check-resource found in tgtd as staged (its serve trusts
    /// that show instead of reading another).
    checked: Arc<std::sync::Mutex<BTreeSet<String>>>,
    /// Resources whose target the last [`Target::status`] read found staged (for `status`).
    seen_staged: Arc<std::sync::Mutex<BTreeSet<String>>>,
    /// Staging allowed ([`Target::stage_ahead`]).
    stage_on: Arc<AtomicBool>,
}

/// tgtd's system state held offline after a restart until every target of `want` is served
/// again (or [`READY_WAIT_MAX`] passed).
#[derive(Debug)]
struct Hold {
    since: Instant,
    want: Vec<String>,
}

/// A socket file's identity: inode and change time (a new tgtd binds a new file).
type SocketId = (u64, i64, i64);

/// Held by a running watch: when it ends, serves are no longer checked against its tgtd, nor
/// refused on its report that tgtd is down.
struct TakingIn(
    Arc<std::sync::Mutex<Option<Option<SocketId>>>>,
    Arc<AtomicBool>,
);

impl Drop for TakingIn {
    fn drop(&mut self) {
        *self.0.lock().unwrap_or_else(|e| e.into_inner()) = None;
        self.1.store(false, Ordering::SeqCst);
    }
}

#[derive(Debug, Default)]
struct Changes {
    started: AtomicU64,
    finished: AtomicU64,
}

/// Counts one change of tgtd's state by this agent while alive.
struct Changing(Arc<Changes>);

impl Drop for Changing {
    fn drop(&mut self) {
        self.0.finished.fetch_add(1, Ordering::SeqCst);
    }
}

impl Changes {
    fn begin(self: &Arc<Self>) -> Changing {
        self.started.fetch_add(1, Ordering::SeqCst);
        Changing(self.clone())
    }
    /// `Some(stamp)` when no change is running; equal stamps: none ran in between.
    fn quiet(&self) -> Option<u64> {
        let finished = self.finished.load(Ordering::SeqCst);
        (self.started.load(Ordering::SeqCst) == finished).then_some(finished)
    }
}

fn err(e: TgtError) -> BackendError {
    match e {
        TgtError::Connect { .. } | TgtError::ConnectTimeout { .. } => {
            BackendError::Unavailable(e.to_string())
        }
        other => BackendError::Tgt(other),
    }
}

/// Nothing listens at tgtd's socket, or there is none (`ECONNREFUSED`, `ENOENT`): tgtd is not
/// running, so nothing is served.
fn not_running(e: &TgtError) -> bool {
    matches!(e, TgtError::Connect { source, .. } if matches!(
        source.kind(),
        std::io::ErrorKind::ConnectionRefused | std::io::ErrorKind::NotFound
    ))
}

fn tid(res: &Resource) -> Result<i32, BackendError> {
    i32::try_from(res.target.tid)
        .map_err(|_| BackendError::Failed(format!("tid {} out of range", res.target.tid)))
}

/// The tgt-ipc spec of a configured resource's target (built and checked by
/// [`Resource::serve_spec`], the same code `check-config` runs).
pub fn spec(res: &Resource) -> Result<ServeSpec, BackendError> {
    let accounts = res
        .target
        .chap
        .as_ref()
        .map(crate::chap::bindings)
        .unwrap_or_default();
    res.serve_spec(accounts).map_err(|(_, e)| err(e))
}

impl TgtTarget {
    /// A client of the tgtd socket at `path`, with this per-request timeout. Changes retry a
    /// refused connect and a LU busy with I/O for up to half of it each (so a stage that gives up
    /// says why before the executor's own timeout of the same length).
    pub fn new(path: &Path, timeout: Duration) -> TgtTarget {
        let client = TgtClient::at_path(path)
            .connect_timeout(timeout)
            .reply_timeout(timeout);
        TgtTarget {
            acting: client
                .clone()
                .connect_retry_for(timeout / 2)
                .busy_retry_for(timeout / 2),
            client,
            changes: Arc::default(),
            drain_max: DRAIN_WAIT_MAX.min(timeout / 3),
            shows: Arc::default(),
            watched: Arc::default(),
            down: Arc::default(),
            served: Arc::default(),
            hold: Arc::default(),
            standby: Arc::default(),
            staged: Arc::default(),
            staging: Arc::default(),
            stage_wanted: Arc::default(),
            staged_gen: Arc::default(),
            checked: Arc::default(),
            seen_staged: Arc::default(),
            stage_on: Arc::default(),
        }
    }

    /// The resources this agent serves ([`TgtTarget::served`]'s field docs).
    fn served(&self) -> std::sync::MutexGuard<'_, BTreeSet<String>> {
        self.served.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Records what a read of `res`'s target found: staged or not ([`Target::staged`]).
    fn saw_staged(&self, res: &Resource, staged: bool) {
        let mut seen = self.seen_staged.lock().unwrap_or_else(|e| e.into_inner());
        if staged {
            seen.insert(res.name.clone());
        } else {
            seen.remove(&res.name);
        }
    }

    /// Records whether the agent serves `res`'s target; one no longer served is not waited for
    /// by a hold (the hold ends when nothing else is awaited).
    async fn record_served(&self, res: &Resource, serving: bool) {
        if serving {
            self.served().insert(res.name.clone());
        } else {
            self.served().remove(&res.name);
        }
        let mut hold = self.hold.lock().await;
        if hold.is_some() {
            self.end_hold_if_done(&mut hold, |n| n == res.name).await;
        }
    }

    /// Target state `offline` (new logins refused), then with `close` every connection closed
    /// and waited for ([`DRAIN_WAIT_MAX`]); without, they stay until [`Target::remove`].
    async fn set_offline(&self, res: &Resource, close: bool) -> Result<(), BackendError> {
        let spec = spec(res)?;
        self.record_served(res, false).await;
        let _changing = self.changes.begin();
        let targets = self.shows.get(&self.acting).await.map_err(err)?;
        match spec.served_in(&targets) {
            Served::Missing | Served::Staged => return Ok(()),
            Served::Foreign { tid, name } => {
                warn!(resource = %res.name, "tid {tid} holds {name}: not ours, left untouched");
                return Ok(());
            }
            _ => {}
        }
        let tid = spec.tid;
        match self.acting.set_target_state(tid, SetState::Offline).await {
            Err(e) if e.errno() == Some(TgtErrno::NoTarget) => return Ok(()),
            r => r.map_err(err)?,
        }
        // Only once tgtd dropped them may the address go: the initiator gets its responses and
        // a FIN first. None closed: none to wait for (new logins are refused from offline on).
        if close && self.acting.close_connections(tid).await.map_err(err)? > 0 {
            self.drained(tid).await;
        }
        Ok(())
    }

    /// Creates the target the ordinary way ([`TgtClient::serve`]); our IQN half-built by an
    /// interrupted serve (or edited by hand) is rebuilt.
    async fn build(&self, res: &Resource, spec: &ServeSpec) -> Result<(), BackendError> {
        match self.acting.serve(spec).await {
            Ok(_) => Ok(()),
            Err(TgtError::TargetConflict { differences, .. }) => {
                warn!(resource = %res.name, ?differences, "target differs; re-creating");
                self.acting
                    .stop_serving(spec.tid, &spec.name)
                    .await
                    .map_err(err)?;
                self.acting.serve(spec).await.map(drop).map_err(err)
            }
            Err(e) => Err(err(e)),
        }
    }

    /// Waits until tgtd lists no connection of `tid` (or it is gone), at most `drain_max`; then
    /// a warning names the connections still there. Never an error: the demote goes on.
    async fn drained(&self, tid: i32) {
        let deadline = Instant::now() + self.drain_max;
        loop {
            let left = match self.client.show_connections(tid).await {
                Ok(c) if c.is_empty() => return,
                Ok(c) => c,
                Err(e) if e.errno() == Some(TgtErrno::NoTarget) => return,
                Err(e) => {
                    warn!(tid, error = %e, "cannot tell whether tgtd closed the connections");
                    return;
                }
            };
            if Instant::now() >= deadline {
                let left: Vec<String> = left
                    .iter()
                    .map(|c| format!("sid {} cid {} from {}", c.sid, c.cid, c.address))
                    .collect();
                warn!(tid, waited = ?self.drain_max, connections = ?left,
                    "tgtd still holds connections after they were closed; going on");
                return;
            }
            tokio::time::sleep(DRAIN_POLL).await;
        }
    }

    /// The views of every configured target from one `show`, and whether nothing answers at
    /// the socket (tgtd down: every target absent); `None` when tgtd answers with an error.
    async fn views(
        &self,
        config: &Config,
    ) -> Option<(BTreeMap<String, (TargetView, Served)>, bool)> {
        let (targets, down) = match self.client.show_targets().await {
            Ok(t) => (t, false),
            // tgtd not running: nothing is served (as `status` reports it), so a primary whose
            // tgtd died says so at once instead of at the safety net.
            Err(e) if not_running(&e) => (Vec::new(), true),
            Err(_) => return None,
        };
        let mut out = BTreeMap::new();
        for r in &config.resources {
            match spec(r) {
                Ok(spec) => {
                    let served = spec.served_in(&targets);
                    out.insert(r.name.clone(), (view_of(&spec, &targets, &served), served));
                }
                Err(e) => warn!(resource = %r.name, error = %e, "tgtd status"),
            }
        }
        Some((out, down))
    }

    /// Report every target of the current config (`config` follows reloads) whenever tgtd
    /// starts or dies (see the module docs), and whatever changed since the last report every
    /// `timeouts.tgt_check_ms` of the startup config (never when 0).
    pub async fn watch(
        self,
        config: ConfigFeed,
        tx: UnboundedSender<Event>,
    ) -> Result<(), BackendError> {
        let path = self.client.path().to_path_buf();
        let dir = path
            .parent()
            .map(Path::to_path_buf)
            .unwrap_or_else(|| PathBuf::from("."));
        let name: OsString = path.file_name().map(OsString::from).unwrap_or_default();
        let mut lock = name.clone();
        lock.push(".lock");
        let mut watch = DirWatch::new(
            &dir,
            // ATTRIB: a chmod of the socket changes the identity serves are checked against.
            WatchMask::CREATE
                | WatchMask::ATTRIB
                | WatchMask::MOVED_TO
                | WatchMask::CLOSE_WRITE
                | WatchMask::CLOSE_NOWRITE
                | WatchMask::DELETE,
        )?;
        let mut last: BTreeMap<String, TargetView> = BTreeMap::new();
        // The first read only learns what is there: the daemon's own first observation reports
        // it (a report queued behind the first promote would read as a change behind its back).
        let mut primed = false;
        // The change count at the last look.
        let mut looked = None;
        // Served when tgtd stopped answering: held offline for by its successor.
        let mut lost: Vec<String> = Vec::new();
        // Since when nothing answers at the socket, and whether that was reported.
        let mut down_since: Option<Instant> = None;
        let mut reported_down = false;
        // A new tgtd answered: the daemon is told (Event::Tick) after this look's report.
        let mut tick_due = false;
        // The last new socket logged (a crash-looping tgtd is logged once per socket).
        let mut logged: Option<SocketId> = None;
        let mut socket = socket_identity(&path);
        self.take_in(socket);
        let _stager = AbortOnDrop(tokio::spawn(self.clone().stager(config.clone())));
        // Serves are checked against the watch's tgtd only while it runs.
        let _taking_in = TakingIn(self.watched.clone(), self.down.clone());
        let check = config.borrow().timeouts.tgt_check_ms;
        let mut tick = tokio::time::interval(Duration::from_millis(check.max(1)));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            let holding = self.hold.lock().await.is_some();
            tokio::select! {
                events = watch.next() => {
                    let events = events?;
                    let relevant = events.iter().any(|e| {
                        e.name.as_deref() == Some(name.as_os_str())
                            || e.name.as_deref() == Some(lock.as_os_str())
                    });
                    if !relevant {
                        continue;
                    }
                }
                // off: still the first tick, which learns what is there
                _ = tick.tick(), if !holding && (check > 0 || !primed) => {}
                _ = tokio::time::sleep(READY_POLL), if holding => {}
                // a dead tgtd is looked at again, also with `tgt_check_ms = 0`
                _ = tokio::time::sleep(DOWN_REPORT_AFTER), if down_since.is_some() => {}
            };
            // A new socket file is a new tgtd (it unlinks a stale one before bind), whichever
            // wake-up comes first; a dying tgtd leaves its file and is reported by its successor.
            let now = socket_identity(&path);
            let mut answers = false;
            if now.is_some() && now != socket {
                if now != logged {
                    info!(socket = %path.display(), "tgtd socket changed: re-reading targets");
                    logged = now;
                }
                // Only once tgtd answers. A freshly bound socket may not listen yet: the acting
                // client retries ECONNREFUSED; else the next wake-up tries again.
                match self.acting.show_system().await {
                    Ok(_) => answers = true,
                    // It died at once (a crash loop): the down logic below reports it.
                    Err(TgtError::Connect { .. }) => {}
                    Err(_) => continue,
                }
            }
            if answers {
                socket = now;
                self.down.store(false, Ordering::SeqCst);
                // Served before this restart (seen by a look, or served by us since), or still
                // awaited from an earlier one.
                let mut hold = self.hold.lock().await;
                let served = self.served().clone();
                // Standing by: none of ours is to be served, nothing to wait for.
                let standby = self.standby.load(Ordering::SeqCst);
                let serving: Vec<String> = last
                    .iter()
                    .filter(|(_, v)| v.state == TargetState::Serving)
                    .map(|(n, _)| n.clone())
                    .chain(hold.take().into_iter().flat_map(|h| h.want))
                    .chain(lost.drain(..))
                    .chain(served)
                    .filter(|_| !standby)
                    .collect();
                *hold = self.hold_offline(serving).await;
                drop(hold);
                // a new tgtd has none of the staged targets (a pass stages them if allowed)
                // (both under the map's lock: a pass inserts only for the generation it began in)
                {
                    let mut staged = self.staged();
                    self.staged_gen.fetch_add(1, Ordering::SeqCst);
                    staged.clear();
                }
                self.stage_wanted.notify_one();
                self.take_in(socket);
                last.clear();
                primed = true;
                // A repair that failed while tgtd was down waits for new information: this
                // is, told once this look has reported the new tgtd's targets (told first, the
                // repair would serve, then the older report of them absent would undo it).
                tick_due = true;
                // A new tgtd that dies at once is reported down in its own right.
                (down_since, reported_down) = (None, false);
            }
            'look: {
                let Some(before) = self.changes.quiet() else {
                    break 'look;
                };
                let config = config.borrow().clone();
                // A target a reload removed is neither reported nor awaited after a restart.
                let followed = |n: &String| config.resources.iter().any(|r| &r.name == n);
                last.retain(|n, _| followed(n));
                if let Some(h) = self.hold.lock().await.as_mut() {
                    h.want.retain(|n| followed(n));
                }
                let Some((views, down)) = self.views(&config).await else {
                    break 'look;
                };
                if self.changes.quiet() != Some(before) {
                    break 'look; // one of our own changes ran meanwhile: its result is known
                }
                if !primed {
                    last = views.into_iter().map(|(r, (v, _))| (r, v)).collect();
                    primed = true;
                    break 'look;
                }
                let external = looked == Some(before);
                looked = Some(before);
                let mut served = self.served();
                // Ours served since a look last saw them are compared as served: one deleted
                // right after our serve, before any look saw it, is reported (it looked
                // unchanged, absent before and after, until the safety net).
                for n in served.iter().filter(|n| followed(n)) {
                    last.entry(n.clone()).or_default().state = TargetState::Serving;
                }
                // What a live tgtd's look saw is what is served: a target of ours not served
                // now (deleted by hand, or demoted while absent, which removes nothing) is no
                // longer awaited by a later restart. Only with none of our changes since the
                // look began (a serve after this records itself again), and only from the tgtd
                // taken in (a successor may have bound its socket meanwhile).
                if !down && self.changes.quiet() == Some(before) && socket_identity(&path) == socket
                {
                    served.retain(|n| {
                        views
                            .get(n)
                            .is_some_and(|(v, _)| v.state == TargetState::Serving)
                    });
                }
                drop(served);
                if !down {
                    (down_since, reported_down) = (None, false);
                    self.down.store(false, Ordering::SeqCst);
                } else if down_since.get_or_insert_with(Instant::now).elapsed() < DOWN_REPORT_AFTER
                {
                    // A restart (the service manager's, or tgt's own) is over by then and takes
                    // the restart path above, which holds tgtd offline first.
                    break 'look;
                } else if !reported_down {
                    reported_down = true;
                    self.down.store(true, Ordering::SeqCst);
                    // Nothing answers: every target is reported absent, whatever was seen last (a
                    // tgtd that died right after our serve, before a look saw it served, would
                    // otherwise look unchanged); what was served is held offline for by the next.
                    for (n, v) in &last {
                        if v.state == TargetState::Serving && !lost.contains(n) {
                            lost.push(n.clone());
                        }
                    }
                    last.clear();
                }
                for (resource, (view, served)) in views {
                    if last.get(&resource) == Some(&view) {
                        continue;
                    }
                    match last.get(&resource) {
                        // none of our changes since the last look: someone else's (named in detail)
                        Some(was) if external && was.state != view.state => warn!(%resource,
                            was = ?was.state, now = ?view.state, ?served,
                            "target changed outside the agent"),
                        Some(was) if was.state != view.state => {
                            info!(%resource, was = ?was.state, now = ?view.state, "target")
                        }
                        // only the sessions: initiators logging in or out
                        Some(was) => debug!(%resource, was = was.sessions, now = view.sessions,
                            "target sessions"),
                        None => {}
                    }
                    last.insert(resource.clone(), view);
                    if tx.send(Event::Target { resource, view }).is_err() {
                        return Ok(());
                    }
                }
            }
            if std::mem::take(&mut tick_due) && tx.send(Event::Tick).is_err() {
                return Ok(());
            }
            let mut hold = self.hold.lock().await;
            if hold.is_some() {
                let seen = |n: &str| last.get(n).is_some_and(|v| v.state == TargetState::Serving);
                self.end_hold_if_done(&mut hold, seen).await;
            }
        }
    }

    /// Waits (up to [`TAKE_IN_WAIT`]) until the tgtd at the socket is the one the running watch
    /// has taken in, held offline after a restart; at once without a watch.
    ///
    /// # Errors
    /// [`BackendError::Failed`] when the watch has not taken it in by then.
    async fn taken_in(&self) -> Result<(), BackendError> {
        let deadline = Instant::now() + TAKE_IN_WAIT;
        loop {
            let known = *self.watched.lock().unwrap_or_else(|e| e.into_inner());
            let now = socket_identity(self.client.path());
            match known {
                Some(known) if now.is_some() && now != known => {}
                _ => return Ok(()),
            }
            if Instant::now() >= deadline {
                return Err(BackendError::Failed(
                    "tgtd restarted and the watch has not held it offline yet: its targets \
                     are served once it has"
                        .into(),
                ));
            }
            tokio::time::sleep(READY_POLL).await;
        }
    }

    /// Marks the tgtd of socket `id` taken in by the watch (serves may go to it).
    fn take_in(&self, id: Option<SocketId>) {
        *self.watched.lock().unwrap_or_else(|e| e.into_inner()) = Some(id);
    }

    /// After a restart: tgtd's system state `offline` while any of `serving` is not served again
    /// (docs/tgtd-ipc.md §7.8); the hold, `None` when nothing is awaited.
    async fn hold_offline(&self, mut serving: Vec<String>) -> Option<Hold> {
        serving.sort();
        serving.dedup();
        if serving.is_empty() {
            return None;
        }
        match self.acting.set_system_state(SetState::Offline).await {
            Ok(()) => {
                info!(targets = ?serving, "tgtd restarted: system state offline until they are served again")
            }
            // Still awaited: the targets are served as soon as tgtd takes changes.
            Err(e) => warn!(error = %e, "tgtd restarted: cannot set its system state offline"),
        }
        Some(Hold {
            since: Instant::now(),
            want: serving,
        })
    }

    /// Drops from the hold each target `served` says is served; once none is left (or
    /// [`READY_WAIT_MAX`] passed) sets tgtd's system state `ready` and ends the hold.
    async fn end_hold_if_done(&self, hold: &mut Option<Hold>, served: impl Fn(&str) -> bool) {
        let Some(h) = hold.as_mut() else {
            return;
        };
        h.want.retain(|n| !served(n));
        let late = h.since.elapsed() >= READY_WAIT_MAX;
        if !(h.want.is_empty() || late) {
            return;
        }
        match self.acting.set_system_state(SetState::Ready).await {
            Ok(()) if late => tracing::error!(
                waited = ?h.since.elapsed(), targets = ?h.want,
                "tgtd system state set ready before every target was served again"),
            Ok(()) => info!(
                ms = h.since.elapsed().as_secs_f64() * 1000.0,
                "tgtd restarted: every target served again; system state ready"
            ),
            Err(e) => warn!(error = %e, "cannot set tgtd's system state ready"),
        }
        *hold = None;
    }
}

/// Aborts the task when dropped (the stager ends with the watch).
struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// Inode and change time of the socket file.
fn socket_identity(path: &Path) -> Option<SocketId> {
    use std::os::unix::fs::MetadataExt;
    let m = std::fs::symlink_metadata(path).ok()?;
    Some((m.ino(), m.ctime(), m.ctime_nsec()))
}

/// The view of one target in a parsed `show`: foreign targets' sessions are not counted.
fn view_of(spec: &ServeSpec, targets: &[tgt_ipc::Target], served: &Served) -> TargetView {
    let state = match served {
        Served::Serving => TargetState::Serving,
        Served::Offline => TargetState::Offline,
        // staged: nothing opened, nobody let in (module `stage`)
        Served::Missing | Served::Staged => TargetState::Absent,
        // being staged: as unreachable and as closed as staged
        Served::Different(_) if stage::opens_nothing(spec, targets) => TargetState::Absent,
        Served::Foreign { .. } => TargetState::Foreign,
        _ => TargetState::Partial,
    };
    let sessions = match state {
        TargetState::Absent | TargetState::Foreign => 0,
        _ => targets
            .iter()
            .find(|t| t.tid == spec.tid)
            .map_or(0, |t| u32::try_from(t.nexuses.len()).unwrap_or(u32::MAX)),
    };
    TargetView { state, sessions }
}

impl Target for TgtTarget {
    async fn status(&self, res: &Resource) -> Result<TargetView, BackendError> {
        let spec = spec(res)?;
        // one show for every resource's read of the same observation
        let targets = match self.shows.get(&self.client).await {
            Ok(t) => t,
            // tgtd not running: nothing is served. Another connect error (a stalled tgtd's
            // full backlog) is no such answer: an absent target would release the address.
            Err(e) if not_running(&e) => {
                self.saw_staged(res, false);
                return Ok(TargetView::default());
            }
            Err(e) => return Err(err(e)),
        };
        let served = spec.served_in(&targets);
        self.saw_staged(res, served == Served::Staged);
        if let Served::Foreign { tid, name } = &served {
            warn!(resource = %res.name, "tid {tid} holds {name}: someone else's target, left untouched");
        }
        Ok(view_of(&spec, &targets, &served))
    }

    fn staged(&self, res: &Resource) -> bool {
        self.seen_staged
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .contains(&res.name)
    }

    async fn check_owner(&self, res: &Resource) -> Result<(), BackendError> {
        let spec = spec(res)?;
        // only this check's show may vouch for the staged target
        self.checked().remove(&res.name);
        match self.shows.get(&self.client).await {
            Ok(targets) => match spec.served_in(&targets) {
                // the promote's serve completes it without another show
                Served::Staged => {
                    self.staged_checked(res, &spec);
                    Ok(())
                }
                Served::Foreign { tid, name } => Err(BackendError::Refused(
                    TgtError::TargetForeign {
                        tid,
                        name,
                        want_tid: spec.tid,
                        want_name: spec.name,
                    }
                    .to_string(),
                )),
                _ => Ok(()),
            },
            // tgtd down: the serve stage will say so
            Err(TgtError::Connect { .. }) => Ok(()),
            Err(e) => Err(err(e)),
        }
    }

    async fn serve(&self, res: &Resource) -> Result<(), BackendError> {
        self.taken_in().await?;
        if self.down.load(Ordering::SeqCst) {
            return Err(BackendError::Unavailable(format!(
                "tgtd is not running (nothing answers at {}): served once it is back",
                self.client.path().display()
            )));
        }
        let mut spec = spec(res)?;
        if let Some(c) = &res.target.chap {
            // secrets read only to serve, never kept or logged
            spec.accounts =
                crate::chap::accounts(c).map_err(|e| BackendError::Failed(e.to_string()))?;
        }
        // Serving: staging stops (the daemon says so once the transition ends). Past the
        // barrier no staging step runs (each checks under the lock); serves run concurrently.
        self.stage_on.store(false, Ordering::SeqCst);
        drop(self.staging.lock().await);
        let changing = self.changes.begin();
        let checked = self.checked().remove(&res.name);
        let staged = self
            .staged()
            .remove(&res.name)
            .is_some_and(|s| stage::stages(&s, &spec));
        if !(staged && self.complete_staged(res, &spec, checked).await) {
            self.build(res, &spec).await?;
        }
        drop(changing);
        // The last target a restart's hold waits for sets tgtd ready now: served means open to
        // its initiators when this returns, not a poll later.
        self.record_served(res, true).await;
        Ok(())
    }

    async fn offline(&self, res: &Resource) -> Result<(), BackendError> {
        self.set_offline(res, true).await
    }

    async fn refuse_logins(&self, res: &Resource) -> Result<(), BackendError> {
        self.set_offline(res, false).await
    }

    async fn stand_by(&self, standby: bool) {
        self.standby.store(standby, Ordering::SeqCst);
        if !standby {
            return;
        }
        self.served().clear();
        let mut hold = self.hold.lock().await;
        if let Some(h) = hold.take() {
            // Not retried through a dead tgtd: the daemon waits for this (a new one starts ready).
            match self.client.set_system_state(SetState::Ready).await {
                Ok(()) => info!(targets = ?h.want,
                    "this node stands by: tgtd's system state ready, none of its targets awaited"),
                Err(e) => warn!(error = %e, "cannot set tgtd's system state ready"),
            }
        }
    }

    async fn stage_ahead(&self, on: bool) {
        self.stage_on.store(on, Ordering::SeqCst);
        if on {
            self.stage_wanted.notify_one();
        } else {
            // a staging step under way ends before this returns (maintenance changes nothing)
            drop(self.staging.lock().await);
        }
    }

    async fn remove(&self, res: &Resource) -> Result<(), BackendError> {
        self.record_served(res, false).await;
        self.staged().remove(&res.name);
        let _changing = self.changes.begin();
        let targets = self.shows.get(&self.acting).await.map_err(err)?;
        match self
            .acting
            .stop_serving_in(&targets, tid(res)?, &res.target.iqn)
            .await
        {
            Ok(_) => Ok(()),
            Err(TgtError::TargetForeign { tid, name, .. }) => {
                warn!(resource = %res.name, "tid {tid} holds {name}: not ours, left untouched");
                Ok(())
            }
            Err(e) => Err(err(e)),
        }
    }
}

/// tgt's own config: `tgt-admin`'s default file (Debian's includes `/etc/tgt/conf.d/*.conf`).
pub const TGT_CONF: &str = "/etc/tgt/targets.conf";

/// Warnings for each target that tgt's own service would create (`tgt-admin -e` at its start and
/// reload, from `targets_conf` and its includes) with one of the configured IQNs, or at one of the
/// configured tids on a freshly started tgtd: it would hold them before the agent (a promote is
/// then refused), and `tgt-admin --update ALL` (its reload) deletes the agent's targets that it
/// does not name (docs/tgtd-ipc.md §7.7). No file: no warning; an unreadable or unparsable one is
/// a warning too.
pub fn tgt_config_overlaps(config: &Config, targets_conf: &Path) -> Vec<String> {
    use crate::import::{files::include_files, tgt_conf};
    if !targets_conf.exists() {
        return Vec::new();
    }
    let file = targets_conf.display().to_string();
    let parsed = std::fs::read_to_string(targets_conf)
        .map_err(|e| format!("{file}: {e}"))
        .and_then(|text| {
            tgt_conf::parse(&text, &file, &mut include_files)
                .and_then(|items| tgt_conf::targets(&items))
                .map_err(|e| e.to_string())
        });
    let tgt = match parsed {
        Ok(t) => t,
        Err(e) => return vec![format!("tgt's own config not checked for overlaps: {e}")],
    };
    let mut out = Vec::new();
    for t in &tgt.targets {
        for r in &config.resources {
            if t.name == r.target.iqn {
                out.push(format!(
                    "{}: tgt's own config defines {}, the IQN of resource {}: tgt-admin creates it \
                     at tgt's start and reload (remove it there)",
                    t.at, t.name, r.name
                ));
            } else if t.tid == r.target.tid {
                out.push(format!(
                    "{}: tgt-admin gives {} tid {} on a freshly started tgtd, the tid of resource \
                     {}: a promote is refused while it holds it (remove it there or change the tid)",
                    t.at, t.name, t.tid, r.name
                ));
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tgt_config_overlaps_named() {
        let dir = tempfile::tempdir().expect("tempdir");
        let conf_d = dir.path().join("conf.d");
        std::fs::create_dir(&conf_d).expect("conf.d");
        let main = dir.path().join("targets.conf");
        std::fs::write(&main, "include conf.d/*.conf\n").expect("write");
        std::fs::write(
            conf_d.join("old.conf"),
            "<target iqn.2026-11.org.example:a-legacy>\n  backing-store /dev/x\n</target>\n\
             <target iqn.2026-11.org.example:r1>\n  backing-store /dev/y\n</target>\n",
        )
        .expect("write");
        let cfg = Config::parse(
            &format!(
                "{}\n[[resource]]\nname = \"r1\"\nminor = 2\nmode = \"adopt\"\n\
                 target = {{ iqn = \"iqn.2026-11.org.example:r1\", tid = 9, initiators = \"all\" }}\n\
                 [[resource.lun]]\nlun = 1\ndevice = \"/dev/drbd2\"\nscsi_id = \"r1\"\nscsi_sn = \"R1\"\n\
                 vendor = \"IET\"\nproduct = \"VIRTUAL-DISK\"\n",
                crate::config::TEST_MINIMAL
            ),
            Path::new("<test>"),
        )
        .expect("config");
        let w = tgt_config_overlaps(&cfg, &main);
        assert_eq!(w.len(), 2, "{w:?}");
        assert!(
            w[0].contains("old.conf:1") && w[0].contains("tid 1"),
            "{w:?}"
        );
        assert!(
            w[1].contains("old.conf:4") && w[1].contains("IQN of resource r1"),
            "{w:?}"
        );
        assert!(tgt_config_overlaps(&cfg, &dir.path().join("none.conf")).is_empty());
    }
}
