//! Running one OCF action: observe, step the daemon's state machine, execute its plans.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use tracing::{info, warn};

use super::{meta, OcfAction, OcfCode, OcfEnv, Reply, DEFAULT_TIMEOUT, USAGE};
use crate::backend::drbd9::AnyDrbd;
use crate::backend::target::TgtTarget;
use crate::backend::vip::NetlinkAddress;
use crate::backend::{Address, Drbd, Target};
use crate::config::Config;
use crate::executor::Executor;
use crate::fsm::{
    step, Action, Authority, Command, Connection, Disk, Event, Refusal, Role, Snapshot, State,
    TargetState, DEGRADED_HINT,
};

/// Plans per action at most (bring-up, then the promote or demote, then a repair).
const MAX_ROUNDS: usize = 4;

/// The instance's file in `HA_RSCTMP`: whether it is started, and what the state machine must
/// remember between actions.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Saved {
    /// Started (a start or promote ran, no stop since). A stop keeps the file with `false`: a
    /// stop leaves DRBD attached, so the peer history stays true. Absent in files of earlier
    /// versions, which were only written while started.
    #[serde(default = "yes")]
    pub started: bool,
    /// When the stop ran (`CLOCK_BOOTTIME`, ms): the history is trusted for
    /// [`HISTORY_AFTER_STOP`] after it, long enough for Pacemaker's recovery (stop, start,
    /// promote), not for a resource left stopped while someone may take DRBD down and up.
    /// Cleared by a start or promote that succeeded.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stopped_ms: Option<u64>,
    /// The boot it was written in (`/proc/sys/kernel/random/boot_id`): a file of an earlier
    /// boot (an `HA_RSCTMP` that is not a tmpfs) is read as absent, as a tmpfs would have it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub boot_id: Option<String>,
    /// Per resource: DRBD has been handshaken with its peer since attach
    /// ([`crate::fsm::ResourceState::peer_seen`]).
    pub peer_seen: BTreeMap<String, bool>,
}

/// How long after a stop the peer history is still trusted.
pub const HISTORY_AFTER_STOP: Duration = Duration::from_secs(120);

fn yes() -> bool {
    true
}

impl Default for Saved {
    /// What an unreadable file says: started, no peer history (the safe side).
    fn default() -> Self {
        Saved {
            started: true,
            stopped_ms: None,
            boot_id: None,
            peer_seen: BTreeMap::new(),
        }
    }
}

/// `text` on standard output: 0, or 1 (OCF_ERR_GENERIC) when it cannot be written (a reader
/// gone included), never a `print!` panic.
fn stdout(text: &str) -> u8 {
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    match out.write_all(text.as_bytes()).and_then(|()| out.flush()) {
        Ok(()) => 0,
        Err(e) => {
            warn!("writing to standard output: {e}");
            1
        }
    }
}

/// Entry point of `iscsi-ha ocf ACTION [ARG]...`: returns the process exit code. `cli_config`:
/// `-c FILE`, used when `OCF_RESKEY_config` is unset. `args` follow the action: only the
/// operator's `allow-degraded` (never run by Pacemaker) takes any.
pub fn main(action: Option<&str>, args: &[String], cli_config: Option<&Path>) -> u8 {
    if action == Some("allow-degraded") {
        crate::logs::init();
        let env = OcfEnv::from_env(cli_config);
        let reply = super::degraded::main(args, &env);
        return match reply.code {
            OcfCode::Success => stdout(&format!("{}\n", reply.message)),
            code => {
                eprintln!("{}: {}", super::degraded::COMMAND, reply.message);
                code as u8
            }
        };
    }
    if let Some(extra) = args.first() {
        let text = format!("unexpected argument {extra:?}; {USAGE}");
        eprintln!("iscsi-ha ocf {}: {}", action.unwrap_or(""), text);
        return OcfCode::ErrArgs as u8;
    }
    let reply = match action.map(str::parse::<OcfAction>) {
        None => Reply::new(OcfCode::ErrArgs, USAGE),
        Some(Err(r)) => r,
        Some(Ok(OcfAction::MetaData)) => return stdout(&meta::xml()),
        Some(Ok(OcfAction::Usage)) => return stdout(&format!("{USAGE}\n")),
        Some(Ok(a)) => {
            crate::logs::init();
            let env = OcfEnv::from_env(cli_config);
            for n in &env.notes {
                warn!("{n}");
            }
            real(a, &env)
        }
    };
    if reply.code != OcfCode::Success || !reply.message.is_empty() {
        eprintln!("iscsi-ha ocf {}: {reply}", action.unwrap_or(""));
    }
    reply.code as u8
}

/// One action over the real backends.
pub(super) fn real(action: OcfAction, env: &OcfEnv) -> Reply {
    // Notify must not fail (Pacemaker Administration, agent actions); it has nothing to do.
    if action == OcfAction::Notify {
        let mut r = act_without_backends(action, env);
        if let Err(e) = env.load_config() {
            let sep = if r.message.is_empty() { "" } else { "; " };
            r.message = format!("{}{sep}configuration not read: {}", r.message, e.message);
        }
        return r;
    }
    // A stop with no config cannot show that nothing of ours is served: it fails (5 or 6).
    let cfg = match env.load_config() {
        Ok(c) => c,
        Err(r) => return r,
    };
    if matches!(action, OcfAction::ValidateAll | OcfAction::ReloadAgent) {
        return act_without_backends(action, env);
    }
    let rt = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => return Reply::new(OcfCode::ErrGeneric, format!("tokio runtime: {e}")),
    };
    rt.block_on(async {
        let timeout = std::time::Duration::from_millis(cfg.timeouts.tgtd_ms);
        let target = TgtTarget::new(&cfg.sockets.tgtd, timeout);
        let address = match NetlinkAddress::new(&cfg) {
            Ok(a) => a,
            Err(e) => return Reply::new(OcfCode::ErrConfigured, e.to_string()),
        };
        let drbd = match AnyDrbd::connect().await {
            Ok(d) => d,
            Err(e) => {
                let why = format!("DRBD generic netlink family (drbd module loaded?): {e}");
                if action == OcfAction::Stop {
                    let r = stop_without_drbd(&cfg, &target, &address, &why).await;
                    return if r.code == OcfCode::Success {
                        remove_mark(env).unwrap_or(r)
                    } else {
                        r
                    };
                }
                return Reply::new(OcfCode::ErrInstalled, why);
            }
        };
        if let Err(e) = drbd.check_config(&cfg) {
            // Refused where it would start something; stop, demote and monitor go on: a
            // refusal can follow a change after start (DRBD 9's usermode_helper), and a
            // failed stop gets the node fenced.
            if matches!(action, OcfAction::Start | OcfAction::Promote) {
                return Reply::new(OcfCode::ErrConfigured, e.to_string());
            }
            warn!("{e}");
        }
        let exec = Executor::new(Arc::new(cfg), drbd, target, address);
        act(action, env, &exec).await
    })
}

fn act_without_backends(action: OcfAction, env: &OcfEnv) -> Reply {
    match (action, &env.notify) {
        (OcfAction::Notify, Some((kind, op))) => Reply::new(
            OcfCode::Success,
            format!("notify {kind}-{op}: nothing to do"),
        ),
        _ => Reply::new(OcfCode::Success, ""),
    }
}

/// Run one action (the config already loaded into `exec`). Meta-data and usage are handled
/// by [`main`].
pub async fn act<D: Drbd, T: Target, A: Address>(
    action: OcfAction,
    env: &OcfEnv,
    exec: &Executor<D, T, A>,
) -> Reply {
    let saved = read_saved(env);
    let started = saved.as_ref().is_some_and(|s| s.started);
    let mut state = State::new(exec.config());
    // Pacemaker is the authority: Authority events are followed whatever `role` says.
    state.command_source = false;
    for (name, r) in state.resources.iter_mut() {
        r.peer_seen = saved
            .as_ref()
            .and_then(|s| s.peer_seen.get(name).copied())
            .unwrap_or(false);
    }
    let deadline = Budget::new(env, exec.config());
    let stopped_ms = saved.as_ref().and_then(|s| s.stopped_ms);
    let result = match action {
        OcfAction::Monitor => match observe(exec, deadline).await {
            Err(e) => Err(Reply::new(OcfCode::ErrGeneric, format!("observe: {e}"))),
            Ok(snap) => {
                let reply = judge(exec.config(), &snap, started, env.check_level >= 10);
                state = step(state, Event::Observed(snap)).0;
                if saved.is_some() {
                    let _ = save(env, &state, started, stopped_ms);
                }
                return reply;
            }
        },
        OcfAction::Demote => converge(exec, &mut state, Authority::Secondary, deadline, None).await,
        OcfAction::Start => {
            match converge(exec, &mut state, Authority::Secondary, deadline, None).await {
                // Adopt mode leaves bringing DRBD up to the system's tools: say so at start.
                Ok(()) => match observe(exec, deadline).await {
                    Ok(snap) => match judge(exec.config(), &snap, true, false) {
                        r if r.code == OcfCode::Success => Ok(()),
                        r => Err(Reply::new(OcfCode::ErrGeneric, r.message)),
                    },
                    Err(e) => Err(Reply::new(OcfCode::ErrGeneric, format!("observe: {e}"))),
                },
                e => e,
            }
        }
        OcfAction::Promote => {
            let leave = Some(env.state_dir.as_path());
            let r = converge(exec, &mut state, Authority::Primary, deadline, leave).await;
            if r.is_ok() {
                super::degraded::use_up(&env.state_dir, state.resources.keys().map(String::as_str));
            }
            r
        }
        OcfAction::Stop => {
            let r = converge(exec, &mut state, Authority::Secondary, deadline, None).await;
            if r.is_ok() {
                // Pacemaker's recovery after a failed promote is stop, start, promote: a
                // survivor whose peer is gone would otherwise forget it saw the peer, and
                // refuse every promote after the first failure.
                // A stop of a stopped instance (a probe's, a cleanup's), or after a failed
                // start, keeps the first stop's time: stops alone never refresh the history.
                let at = match saved.as_ref() {
                    Some(s) if !s.started || stopped_ms.is_some() => stopped_ms,
                    _ => crate::peer_link::remember::boottime_ms().ok(),
                };
                return match save(env, &state, false, at) {
                    Ok(()) => Reply::new(OcfCode::Success, ""),
                    Err(e) => remove_mark(env).unwrap_or_else(|| {
                        Reply::new(OcfCode::Success, format!("peer history not kept: {e}"))
                    }),
                };
            }
            r
        }
        other => return act_without_backends(other, env),
    };
    // Demote and a failed stop keep the file as it was; a start or promote, done or not, sets
    // it started (a failed start is stopped by Pacemaker).
    let now_started = started || matches!(action, OcfAction::Start | OcfAction::Promote);
    if saved.is_some() || now_started {
        // Only a start or promote that succeeded ends the stop's window: a failed one (then
        // stopped again) must not carry the history on without it.
        let stopped_ms = match (&result, action) {
            (Ok(()), OcfAction::Start | OcfAction::Promote) => None,
            _ => stopped_ms,
        };
        let _ = save(env, &state, now_started, stopped_ms);
    }
    match result {
        Ok(()) => Reply::new(OcfCode::Success, ""),
        Err(r) => r,
    }
}

/// Drop the instance's file: `None` when done (or already gone), else the failure.
fn remove_mark(env: &OcfEnv) -> Option<Reply> {
    match std::fs::remove_file(env.state_file()) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => Some(Reply::new(
            OcfCode::ErrGeneric,
            format!("{}: {e}", env.state_file().display()),
        )),
        _ => None,
    }
}

/// Stop on a node without DRBD's generic netlink family (`why`): no DRBD device exists, so
/// nothing of ours can be served from DRBD, and stop succeeds as Pacemaker requires of a
/// resource that cannot be running, unless one of our targets is still in tgtd or one of our
/// addresses still held (or either cannot be read): then it fails with what it found.
pub async fn stop_without_drbd<T: Target, A: Address>(
    cfg: &Config,
    target: &T,
    address: &A,
    why: &str,
) -> Reply {
    let mut found = Vec::new();
    for r in &cfg.resources {
        match target.status(r).await {
            Ok(v) if matches!(v.state, TargetState::Absent | TargetState::Foreign) => {}
            Ok(v) => found.push(format!("{}: target {:?}", r.name, v.state)),
            Err(e) => found.push(format!("{}: target unknown: {}", r.name, e)),
        }
    }
    for a in &cfg.addresses {
        match address.held(a).await {
            Ok(false) => {}
            Ok(true) => found.push(format!("address {} held", a.address)),
            Err(e) => found.push(format!("address {} unknown: {}", a.address, e)),
        }
    }
    if found.is_empty() {
        Reply::new(
            OcfCode::Success,
            format!("{why}: no DRBD, no target, no address: nothing can be running"),
        )
    } else {
        Reply::new(
            OcfCode::ErrGeneric,
            format!("{why}; yet still there: {}", found.join("; ")),
        )
    }
}

/// What an action keeps of its timeout for its last attempt and the answer: a third, at
/// least this (a promote: DRBD's fence-peer helper, the targets, the address probe and claim).
const RESERVE_MIN: Duration = Duration::from_secs(10);
/// How often a promote waiting for a refusal to clear looks again.
const WAIT_POLL: Duration = Duration::from_millis(200);
/// Pause between a failed attempt (rolled back) and the next.
const RETRY_PAUSE: Duration = Duration::from_secs(1);

/// Kept of the timeout for the answer itself (the process's exit, Pacemaker's reading).
const ANSWER_MARGIN: Duration = Duration::from_secs(2);

/// How long an action may keep trying: its `timeout` ([`DEFAULT_TIMEOUT`] when Pacemaker gives
/// none) less what is kept for the last attempt, counted from the process's exec.
pub fn retry_budget(timeout: Option<Duration>) -> Duration {
    let t = timeout.unwrap_or(DEFAULT_TIMEOUT);
    t.saturating_sub(RESERVE_MIN.max(t / 3))
}

/// When an action may start another try: before `soft` (the [`retry_budget`]), and only if
/// the try can end before `hard` (the timeout less [`ANSWER_MARGIN`]) even when its reads take
/// their full timeouts.
#[derive(Debug, Clone, Copy)]
struct Budget {
    soft: Instant,
    hard: Instant,
    /// The longest one observation may take: the slowest of DRBD's and tgtd's read timeouts
    /// and two address reads (the address, then whether it is on another interface).
    read: Duration,
}

impl Budget {
    fn new(env: &OcfEnv, cfg: &Config) -> Budget {
        let t = &cfg.timeouts;
        let timeout = env.timeout.unwrap_or(DEFAULT_TIMEOUT);
        Budget {
            soft: env.began + retry_budget(env.timeout),
            hard: env.began + timeout.saturating_sub(ANSWER_MARGIN),
            read: Duration::from_millis(t.drbd_ms.max(t.tgtd_ms).max(2 * t.address_ms)),
        }
    }

    /// Another try after `pause`, expected to take `took` besides one observation.
    fn allows(&self, pause: Duration, took: Duration) -> bool {
        let now = Instant::now();
        now + pause < self.soft && now + pause + took + self.read <= self.hard
    }
}

/// A full observation; a failed one (a netlink or tgtd answer later than its timeout on a
/// loaded host) is tried again after [`RETRY_PAUSE`] while `deadline` allows: a monitor or
/// stop failed on a slow read gets a healthy node recovered or fenced.
async fn observe<D: Drbd, T: Target, A: Address>(
    exec: &Executor<D, T, A>,
    deadline: Budget,
) -> Result<Snapshot, crate::AgentError> {
    let mut attempt = 1;
    loop {
        match exec.observe().await {
            Ok(snap) => return Ok(snap),
            Err(e) if deadline.allows(RETRY_PAUSE, Duration::ZERO) => {
                warn!(error = %e, attempt, "ocf: observation failed, trying again");
                tokio::time::sleep(RETRY_PAUSE).await;
                attempt += 1;
            }
            Err(e) => return Err(e),
        }
    }
}

/// Every refusal of `s`'s promote may clear on its own (and there is one): a Primary peer
/// DRBD has not yet seen lost, a peer yet to connect, a resync under way. A resource that is
/// not up (adopt mode) waits for someone.
fn refusal_may_clear(s: &State) -> bool {
    if s.resources.values().any(|r| !r.view.drbd.up) {
        return false;
    }
    let mut refusals = s
        .resources
        .values()
        .filter(|r| r.view.drbd.role != Role::Primary)
        .filter_map(|r| r.promotion().err())
        .peekable();
    refusals.peek().is_some() && refusals.all(|r| r.may_clear())
}

/// Every resource of `s` waiting for its peer (not handshaken since attach) has the
/// operator's leave in `dir`, and there is one such resource.
fn leave_applies(s: &State, dir: &Path) -> bool {
    let mut waiting = s
        .resources
        .iter()
        .filter(|(_, r)| r.degraded.is_none() && r.view.drbd.role != Role::Primary)
        .filter(|(_, r)| matches!(r.promotion(), Err(Refusal::WaitingForPeer { .. })))
        .peekable();
    waiting.peek().is_some() && waiting.all(|(n, _)| super::degraded::allowed(dir, n))
}

/// Observe, give the machine the wish, run its plans until it has none left, until `deadline`
/// as LINBIT's `drbd` agent keeps trying until Pacemaker's timeout (docs/ocf.md):
/// - a plan that failed (rolled back) is tried again from a new observation after
///   [`RETRY_PAUSE`] (a step's timeout on a loaded host; DRBD refusing Primary while it still
///   sees a peer it is about to lose);
/// - a promote refused for a reason that may clear on its own looks again every
///   [`WAIT_POLL`] (Pacemaker can fence a powered-off primary and promote the survivor before
///   DRBD there has missed its peer's ping). A refusal is never overridden: the state machine
///   and DRBD decide on each new observation.
/// - `leave`: where a promote reads the operator's leave to go without the peer
///   (`iscsi-ha ocf allow-degraded`, [`super::degraded`]); it is given to the machine as the
///   daemon's `promote --degraded` once every resource waiting for its peer has one.
async fn converge<D: Drbd, T: Target, A: Address>(
    exec: &Executor<D, T, A>,
    state: &mut State,
    wish: Authority,
    deadline: Budget,
    leave: Option<&Path>,
) -> Result<(), Reply> {
    let generic = |m: String| Reply::new(OcfCode::ErrGeneric, m);
    let snap = observe(exec, deadline)
        .await
        .map_err(|e| generic(format!("observe: {e}")))?;
    let s = step(state.clone(), Event::Observed(snap)).0;
    let promote = wish == Authority::Primary;
    let (mut s, mut actions) = step(s, Event::Authority(wish));
    let (mut rounds, mut attempt) = (0, 1);
    let mut waiting: Option<String> = None;
    let began = Instant::now();
    loop {
        let mut plan = None;
        let mut refused = None;
        for a in actions {
            match a {
                Action::Run(p) => plan = Some(p),
                Action::Refuse(r) => refused = Some(r),
                Action::Alarm(r) => {
                    *state = s;
                    return Err(generic(r));
                }
            }
        }
        if let Some(r) = refused {
            if let Some(dir) = leave.filter(|d| leave_applies(&s, d)) {
                info!(file = %dir.display(), "ocf promote: the operator allowed it without the peer");
                (s, actions) = step(s, Event::Command(Command::PromoteDegraded));
                continue;
            }
            if !promote || !refusal_may_clear(&s) || !deadline.allows(WAIT_POLL, Duration::ZERO) {
                *state = s;
                let waited = match waiting {
                    Some(_) => format!(" (still after {:.1} s)", began.elapsed().as_secs_f64()),
                    None => String::new(),
                };
                // The daemon's `promote --degraded` has no daemon to go to here.
                let r = r.replace(DEGRADED_HINT, super::degraded::COMMAND);
                return Err(generic(format!("refused: {r}{waited}")));
            }
            if waiting.as_ref() != Some(&r) {
                let left_s = deadline
                    .soft
                    .saturating_duration_since(Instant::now())
                    .as_secs();
                info!(refusal = %r, left_s, "ocf promote waits: this may clear on its own");
                waiting = Some(r);
            }
            tokio::time::sleep(WAIT_POLL).await;
        } else {
            let Some(plan) = plan else {
                *state = s;
                return Ok(());
            };
            if rounds == MAX_ROUNDS {
                *state = s;
                return Err(generic(format!("not converged after {MAX_ROUNDS} plans")));
            }
            rounds += 1;
            let tried = Instant::now();
            let (out, record) = exec.run(plan).await;
            info!(kind = %record.kind, result = %record.result, attempt, "ocf transition");
            let (failed, lasting) = (out.failed.is_some(), out.lasting);
            s = step(s, Event::Executed(out)).0;
            if failed {
                if lasting || !deadline.allows(RETRY_PAUSE, tried.elapsed()) {
                    *state = s;
                    let tries = if attempt > 1 {
                        format!(" (attempt {attempt})")
                    } else {
                        String::new()
                    };
                    return Err(generic(format!("{}{tries}", record.result)));
                }
                warn!(result = %record.result, attempt, "ocf action: trying again");
                tokio::time::sleep(RETRY_PAUSE).await;
                (rounds, attempt) = (0, attempt + 1);
            }
        }
        let snap = observe(exec, deadline)
            .await
            .map_err(|e| generic(format!("observe: {e}")))?;
        // The daemon's machine says a refusal once until something changes; an action must
        // hear it again, or a refusal repeated would read as "nothing left to do".
        s.last_notice = None;
        (s, actions) = step(s, Event::Observed(snap));
    }
}

/// The monitor's verdict on one observation. `started`: the instance holds the started mark;
/// `deep`: depth 10 (local disk and replication link health too).
pub fn judge(cfg: &Config, snap: &Snapshot, started: bool, deep: bool) -> Reply {
    let mut primary = Vec::new();
    let mut missing = Vec::new();
    let mut served = Vec::new();
    let mut unhealthy = Vec::new();
    let mut down = Vec::new();
    for r in &cfg.resources {
        let Some(v) = snap.resources.get(&r.name) else {
            down.push(format!("{}: not observed", r.name));
            continue;
        };
        let d = &v.drbd;
        if !d.up {
            down.push(format!("{}: DRBD resource is not up", r.name));
        }
        if d.role == Role::Primary {
            primary.push(r.name.as_str());
        }
        if v.target.state == TargetState::Serving {
            served.push(format!("{}: target serving", r.name));
        } else {
            missing.push(format!("{}: target {:?}", r.name, v.target.state));
            if v.target.state != TargetState::Absent {
                served.push(format!("{}: target {:?}", r.name, v.target.state));
            }
        }
        if deep && d.up {
            if !matches!(
                d.disk,
                Disk::UpToDate | Disk::Inconsistent | Disk::Consistent | Disk::Outdated
            ) {
                unhealthy.push(format!("{}: local disk {}", r.name, d.disk));
            }
            if d.connection == Connection::StandAlone {
                unhealthy.push(format!(
                    "{}: replication link StandAlone (split brain or disconnected by hand)",
                    r.name
                ));
            }
        }
    }
    for a in &cfg.addresses {
        if snap
            .addresses
            .get(&a.address.to_string())
            .copied()
            .unwrap_or(false)
        {
            served.push(format!("address {} held", a.address));
        } else {
            missing.push(format!("address {} not held", a.address));
        }
    }
    if !primary.is_empty() {
        let mut why = missing;
        if primary.len() < cfg.resources.len() {
            why.push(format!("only {} DRBD Primary", primary.join(", ")));
        }
        why.extend(unhealthy);
        return if why.is_empty() {
            Reply::new(OcfCode::RunningPromoted, "")
        } else {
            Reply::new(OcfCode::FailedPromoted, why.join("; "))
        };
    }
    if !served.is_empty() {
        return Reply::new(
            OcfCode::ErrGeneric,
            format!("not DRBD Primary but serving: {}", served.join("; ")),
        );
    }
    if !started {
        return Reply::new(OcfCode::NotRunning, "");
    }
    let why: Vec<String> = down.into_iter().chain(unhealthy).collect();
    if why.is_empty() {
        Reply::new(OcfCode::Success, "")
    } else {
        Reply::new(OcfCode::ErrGeneric, why.join("; "))
    }
}

fn read_saved(env: &OcfEnv) -> Option<Saved> {
    let text = match std::fs::read_to_string(env.state_file()) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return None,
        // Unreadable: still "started" (a stop must run), no peer history (the safe side).
        Err(e) => {
            warn!(file = %env.state_file().display(), error = %e, "instance's file unreadable");
            return Some(Saved::default());
        }
    };
    let mut saved: Saved = serde_json::from_str(&text).unwrap_or_default();
    let boot = crate::peer_link::remember::boot_id().ok();
    if saved.boot_id.is_some() && boot.is_some() && saved.boot_id != boot {
        info!(file = %env.state_file().display(), "instance's file of an earlier boot: ignored");
        return None;
    }
    if saved.stopped_ms.is_some() || !saved.started {
        let now = crate::peer_link::remember::boottime_ms().ok();
        // A time ahead of the clock is of another boot: not recent.
        let age = now
            .zip(saved.stopped_ms)
            .and_then(|(n, t)| n.checked_sub(t));
        let recent = age.is_some_and(|a| a <= HISTORY_AFTER_STOP.as_millis() as u64);
        if !recent && saved.peer_seen.values().any(|&v| v) {
            info!(
                stopped_ms_ago = age,
                "peer history of a stop longer ago than {} s forgotten",
                HISTORY_AFTER_STOP.as_secs()
            );
            saved.peer_seen.clear();
        }
    }
    Some(saved)
}

/// Writes the instance's file (atomically: a new file renamed over). A failure is logged and
/// returned.
fn save(
    env: &OcfEnv,
    state: &State,
    started: bool,
    stopped_ms: Option<u64>,
) -> std::io::Result<()> {
    let saved = Saved {
        started,
        stopped_ms,
        boot_id: crate::peer_link::remember::boot_id().ok(),
        peer_seen: state
            .resources
            .iter()
            .map(|(n, r)| (n.clone(), r.peer_seen))
            .collect(),
    };
    let path = env.state_file();
    let tmp = path.with_extension("tmp");
    let written = std::fs::create_dir_all(&env.state_dir)
        .and_then(|()| std::fs::write(&tmp, serde_json::to_vec(&saved).unwrap_or_default()))
        .and_then(|()| std::fs::rename(&tmp, &path));
    if let Err(e) = &written {
        warn!(file = %path.display(), error = %e, "cannot write the instance's file");
    }
    written
}
