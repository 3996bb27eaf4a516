//! `lab soak`: N failure cycles with the write ledger running the whole time, checked after every
//! cycle.
//!
//! Two `iscsi-ha` agents on pool.conf ([`DrbdMode`]: adopt, DRBD brought up by the harness, or
//! manage, by the agents), [`crate::ledger`] writing through the floating address from the client, and `lab-watch` in each guest sampling DRBD role, the address and
//! tgtd's target every 50 ms (changes logged with the guest clock). Cycle kinds, in rotation:
//! planned switchover (pool.conf swap), SIGKILL of an agent right after a random stage of a
//! promote or demote (then restarted), SIGKILL of tgtd on the primary (restarted as its service
//! manager would), power loss of the primary (the secondary's pool.conf becomes `master`; the
//! victim is booted, in adopt mode its DRBD attached and connected as the system tools would, its
//! pool.conf says slave, its agent starts and it resyncs to Secondary; in manage mode its agent
//! alone replays the crashed Primary's activity log, attaches and connects).
//!
//! After every cycle: the ledger re-reads every block (0 acknowledged writes lost, none torn);
//! the watch logs say never two DRBD Primaries (either node seeing `Primary/Primary`, or both
//! sure to be Primary at overlapping times once guest clocks are mapped to the host's) and never
//! the address held without a serving target (outside the window of an injected tgtd kill, which
//! is reported separately). Results: `target/lab-report/soak.json` and `soak.md`.

use anyhow::{anyhow, bail, Context, Result};
use serde::Serialize;
use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use crate::agent_lab::{self as al, Source};
use crate::bringup::{self, Resource};
use crate::ledger::{unix_ms, LedgerProc, Mode, Opts};
use crate::{Lab, Node};

const MARKER: &str = "SOAK-MARKER written on a";
const WATCH_LOG: &str = "/tmp/lab-watch.log";
const WATCH_PID: &str = "/tmp/lab-watch.pid";
const T: Duration = Duration::from_secs(60);

/// What a cycle does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Kind {
    /// Planned switchover: old primary's pool.conf := slave, new one's := master.
    Switchover,
    /// SIGKILL of the new primary's agent after a random promote stage, then restarted.
    AgentKillPromote,
    /// SIGKILL of the old primary's agent after a random demote stage, then restarted.
    AgentKillDemote,
    /// SIGKILL of tgtd on the primary, restarted as its service manager would.
    TgtdKill,
    /// SIGKILL of the primary's QEMU; the secondary takes over; the victim rejoins as Secondary.
    PowerLoss,
}

impl Kind {
    fn name(self) -> &'static str {
        match self {
            Kind::Switchover => "switchover",
            Kind::AgentKillPromote => "agent-kill-promote",
            Kind::AgentKillDemote => "agent-kill-demote",
            Kind::TgtdKill => "tgtd-kill",
            Kind::PowerLoss => "power-loss",
        }
    }
}

/// The rotation: every kind within the first five cycles; the sixth (another switchover) makes
/// the primary move an odd number of times per round, so the next round hits the other node
/// in every role.
pub const ROTATION: [Kind; 6] = [
    Kind::Switchover,
    Kind::AgentKillPromote,
    Kind::TgtdKill,
    Kind::AgentKillDemote,
    Kind::PowerLoss,
    Kind::Switchover,
];

/// Who brings DRBD up.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum DrbdMode {
    /// The harness with `drbdsetup-84` (and `drbdmeta apply-al` + attach + connect after a power
    /// loss); the agents run in `mode = "adopt"`.
    #[default]
    Adopt,
    /// The agents (`mode = "manage"`: attach, connect, fencing `resource-only`, the activity log
    /// replayed after a crash); the harness only skips the initial sync once.
    Manage,
}

impl std::str::FromStr for DrbdMode {
    type Err = String;
    fn from_str(s: &str) -> std::result::Result<DrbdMode, String> {
        match s {
            "adopt" => Ok(DrbdMode::Adopt),
            "manage" => Ok(DrbdMode::Manage),
            _ => Err(format!("DRBD mode {s:?}: expected adopt or manage")),
        }
    }
}

impl std::fmt::Display for DrbdMode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            DrbdMode::Adopt => "adopt",
            DrbdMode::Manage => "manage",
        })
    }
}

/// Soak options.
#[derive(Debug, Clone)]
pub struct SoakOpts {
    /// Number of cycles.
    pub cycles: usize,
    /// Seed of the stage choice for agent kills.
    pub seed: u64,
    /// Ledger write mode.
    pub mode: Mode,
    /// The agents' mode: who brings DRBD up.
    pub drbd_mode: DrbdMode,
    /// Report file stem under `target/lab-report/` (`soak` -> `soak.json`, `soak.md`).
    pub report: String,
}

impl Default for SoakOpts {
    fn default() -> Self {
        SoakOpts {
            cycles: 20,
            seed: unix_ms() as u64,
            mode: Mode::Plain,
            drbd_mode: DrbdMode::Adopt,
            report: "soak".into(),
        }
    }
}

/// One cycle's outcome.
#[derive(Debug, Clone, Serialize)]
pub struct Cycle {
    /// 1-based.
    pub n: usize,
    /// Kind.
    pub kind: Kind,
    /// Primary before the cycle.
    pub from: String,
    /// Primary after it.
    pub to: String,
    /// What exactly was done (e.g. the stage after which the agent was killed).
    pub detail: String,
    /// Host wall clock at the start, Unix ms.
    pub started_unix_ms: f64,
    /// Cycle length until writes flowed again and everything was verified, s.
    pub seconds: f64,
    /// Writes acknowledged during the cycle.
    pub acked: u64,
    /// Acknowledged writes since the ledger started.
    pub acked_total: u64,
    /// Lost acknowledged writes found by this cycle's verify (cumulative check of every block).
    pub lost: u64,
    /// Torn or misplaced blocks found.
    pub torn: u64,
    /// Unacknowledged writes that reached the disk (allowed).
    pub unacked_applied: u64,
    /// Longest gap between two acknowledged writes within the cycle, ms.
    pub max_pause_ms: f64,
    /// Every pause (>= the ledger's threshold) within the cycle, ms.
    pub pauses_ms: Vec<f64>,
    /// Address held while tgtd was down after the injected kill, ms (tgtd-kill cycles).
    pub address_without_target_injected_ms: Option<f64>,
    /// Longest time the address was held with the target offline (logins refused: a demote
    /// closing connections before it releases the address), ms; 0 if never seen.
    pub address_with_target_offline_ms: f64,
    /// Watch samples logged in the cycle's window per node (a, b): changes plus 1 s heartbeats.
    pub watch_lines: [usize; 2],
    /// Alarms the agents logged during the cycle (`node: line`): reported, not judged here.
    pub agent_alarms: Vec<String>,
    /// `/proc/drbd` state line of each running node at the end of the cycle.
    pub drbd: Vec<String>,
    /// Per node, every DRBD connection state / role pair lab-watch saw in the cycle, in order
    /// (`node: cs role/peer, …`): shows replication-link drops the invariants do not catch.
    pub drbd_seen: Vec<String>,
    /// Invariant violations seen (empty = good).
    pub violations: Vec<String>,
}

/// Per-kind summary.
#[derive(Debug, Clone, Default, Serialize)]
pub struct KindSummary {
    /// Cycles of this kind.
    pub cycles: usize,
    /// Acknowledged writes during them.
    pub acked: u64,
    /// Lost acknowledged writes found after them.
    pub lost: u64,
    /// Median of the per-cycle longest pause, ms.
    pub pause_p50_ms: f64,
    /// 95th percentile of the per-cycle longest pause, ms.
    pub pause_p95_ms: f64,
    /// Longest pause, ms.
    pub pause_max_ms: f64,
}

/// The soak's report (`target/lab-report/soak.json`).
#[derive(Debug, Clone, Serialize)]
pub struct SoakReport {
    /// Command that reproduces it.
    pub reproduce: String,
    /// Host load average at the start.
    pub loadavg_at_start: String,
    /// Ledger mode.
    pub mode: String,
    /// The agents' mode (`adopt`, `manage`).
    pub drbd_mode: String,
    /// Seed of the stage choices.
    pub seed: u64,
    /// Cycles run (complete).
    pub cycles_run: usize,
    /// Cycles asked for.
    pub cycles_asked: usize,
    /// Acknowledged writes in total.
    pub acked: u64,
    /// Lost acknowledged writes (must be 0).
    pub lost: u64,
    /// Torn or misplaced blocks (must be 0).
    pub torn: u64,
    /// Invariant violations (must be empty).
    pub violations: Vec<String>,
    /// Alarms the agents logged (`#cycle node: line`), for the reader to judge.
    pub agent_alarms: Vec<String>,
    /// Per kind.
    pub by_kind: BTreeMap<String, KindSummary>,
    /// Every cycle.
    pub cycles: Vec<Cycle>,
    /// The error that ended the soak early, if any.
    pub error: Option<String>,
    /// Wall time, s.
    pub seconds: f64,
}

impl SoakReport {
    /// Every cycle ran, nothing lost or torn, no violation.
    pub fn clean(&self) -> bool {
        self.error.is_none()
            && self.cycles_run == self.cycles_asked
            && self.lost == 0
            && self.torn == 0
            && self.violations.is_empty()
    }
}

/// xorshift64*: the stage choice only needs to be varied and reproducible from the seed.
struct Rng(u64);

impl Rng {
    fn pick<'a, T>(&mut self, v: &'a [T]) -> Option<&'a T> {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        // xorshift64*: the multiply spreads the state into the high bits used here.
        let x = self.0.wrapping_mul(0x2545_f491_4f6c_dd1d) >> 32;
        v.get((x % v.len().max(1) as u64) as usize)
    }
}

/// One sample line of `lab-watch`, clock mapped to the host's.
#[derive(Debug, Clone)]
struct Watch {
    /// Host time of the sample, ms.
    t: f64,
    /// Host time of the previous sample, ms.
    prev_t: f64,
    role: String,
    peer: String,
    /// DRBD connection state (`Connected`, `WFConnection`, `SyncSource`, …).
    cs: String,
    addr: bool,
    /// `ready`, `offline`, `absent`; None = tgtd did not answer.
    target: Option<String>,
}

/// A guest's clock relative to the host's: guest = host + offset (± err), ms.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Clock {
    /// Guest minus host, ms.
    pub(crate) offset: f64,
    /// Half the best round trip, ms.
    pub(crate) err: f64,
}

/// `node`'s clock against the host's: the best of three `adjtimex` round trips.
pub(crate) fn guest_clock(node: &Node) -> Result<Clock> {
    let mut best: Option<Clock> = None;
    for _ in 0..3 {
        let h0 = unix_ms();
        // busybox `date` has no %N; adjtimex prints the clock in µs.
        let o = node.run_ok(
            "adjtimex | awk '/tv_sec/{s=$2} /tv_usec/{u=$2} END{printf \"%d%06d\", s, u}'",
        )?;
        let h1 = unix_ms();
        let g: f64 = o
            .stdout
            .trim()
            .parse::<u64>()
            .with_context(|| format!("guest clock {:?}", o.stdout))? as f64
            / 1000.0;
        let c = Clock {
            offset: g - (h0 + h1) / 2.0,
            err: (h1 - h0) / 2.0,
        };
        if best.is_none_or(|b| c.err < b.err) {
            best = Some(c);
        }
    }
    best.ok_or_else(|| anyhow!("no clock sample"))
}

/// The per-node watcher: started in the guest, its log pulled incrementally.
struct Watcher {
    clock: Clock,
    offset: usize,
    lines: Vec<Watch>,
}

impl Watcher {
    fn start(node: &Node) -> Result<Watcher> {
        node.run_ok(&format!(
            "p=$(cat {WATCH_PID} 2>/dev/null) && kill $p 2>/dev/null; rm -f {WATCH_LOG}; \
             {bin} 1 {vip} {iqn} {WATCH_LOG} 50 >/dev/null 2>&1 </dev/null & echo $! > {WATCH_PID}",
            bin = Node::guest_bin("lab-watch"),
            vip = crate::FLOATING_IP,
            iqn = al::IQN
        ))?;
        Ok(Watcher {
            clock: guest_clock(node)?,
            offset: 0,
            lines: Vec::new(),
        })
    }

    /// Reads what the watcher logged since the last pull.
    fn pull(&mut self, node: &Node) -> Result<()> {
        let o = node.run_ok(&format!(
            "tail -c +{} {WATCH_LOG} 2>/dev/null; true",
            self.offset + 1
        ))?;
        // Only whole lines; a partial last line is read again next time.
        let text = &o.stdout;
        let upto = text.rfind('\n').map(|i| i + 1).unwrap_or(0);
        self.offset += upto;
        for l in text.get(..upto).unwrap_or("").lines() {
            let Ok(v) = serde_json::from_str::<serde_json::Value>(l) else {
                continue;
            };
            let g = |k: &str| v[k].as_f64().unwrap_or(0.0) - self.clock.offset;
            self.lines.push(Watch {
                t: g("t"),
                prev_t: g("prev_t"),
                role: v["role"].as_str().unwrap_or("-").to_string(),
                peer: v["peer"].as_str().unwrap_or("-").to_string(),
                cs: v["cs"].as_str().unwrap_or("-").to_string(),
                addr: v["addr"].as_bool().unwrap_or(false),
                target: v["target"].as_str().map(str::to_string),
            });
        }
        Ok(())
    }

    /// Runs of samples for which `pred` holds, as (first such sample, last such sample before
    /// one where it does not hold, still open at the last sample), host ms: the interval in which
    /// the node surely was in that state.
    fn runs(&self, pred: impl Fn(&Watch) -> bool) -> Vec<(f64, f64, bool)> {
        let mut out = Vec::new();
        let mut start: Option<f64> = None;
        let mut last_t = 0.0;
        for w in &self.lines {
            match (pred(w), start) {
                (true, None) => start = Some(w.t),
                (false, Some(s)) => {
                    out.push((s, w.prev_t.max(s), false));
                    start = None;
                }
                _ => {}
            }
            last_t = w.t;
        }
        if let Some(s) = start {
            out.push((s, last_t, true));
        }
        out
    }
}

/// What the watch logs say about one cycle.
#[derive(Debug, Default)]
struct WatchCheck {
    violations: Vec<String>,
    /// Longest run of "address held, target absent" inside an injected tgtd kill window, ms.
    injected_ms: f64,
    /// Longest run of "address held, target offline" (a demote closing connections before it
    /// releases the address), ms.
    offline_ms: f64,
}

/// Checks the watch logs over [from, to] (host ms): never Primary/Primary, never both nodes
/// surely Primary at once (beyond the clock uncertainty), never the address held with the target
/// absent outside `allowed` (injected tgtd kill) windows.
fn check_watch(ws: &[(&str, &Watcher)], from: f64, to: f64, allowed: &[(f64, f64)]) -> WatchCheck {
    let mut c = WatchCheck::default();
    let inside = |s: f64| allowed.iter().any(|(a, b)| s >= *a && s <= *b);
    for (name, w) in ws {
        for x in w.lines.iter().filter(|x| x.t >= from && x.t <= to) {
            if x.role == "Primary" && x.peer == "Primary" {
                c.violations.push(format!(
                    "node {name} saw DRBD Primary/Primary at {:.0}",
                    x.t
                ));
            }
        }
        let target_is = |x: &Watch, st: &str| x.addr && x.target.as_deref() == Some(st);
        for (s, e, open) in w.runs(|x| target_is(x, "absent")) {
            if e < from || s > to {
                continue;
            }
            if inside(s) {
                c.injected_ms = c.injected_ms.max(e - s);
            } else {
                c.violations.push(format!(
                    "node {name} held the address without a target from {s:.0} for >= {:.0} ms{}",
                    e - s,
                    if open {
                        " (still at the last sample)"
                    } else {
                        ""
                    }
                ));
            }
        }
        for (s, e, _) in w.runs(|x| target_is(x, "offline")) {
            if e >= from && s <= to {
                c.offline_ms = c.offline_ms.max(e - s);
            }
        }
    }
    if let [(na, a), (nb, b)] = ws {
        let margin = a.clock.err + b.clock.err + 1.0;
        let primary = |x: &Watch| x.role == "Primary";
        for (s1, e1, _) in a.runs(primary) {
            for (s2, e2, _) in b.runs(primary) {
                // a's interval shrunk by the clock uncertainty, intersected with b's.
                let (s, e) = ((s1 + margin).max(s2), (e1 - margin).min(e2));
                if s <= e && e >= from && s <= to {
                    c.violations.push(format!(
                        "nodes {na} and {nb} both DRBD Primary for >= {:.0} ms from {s:.0} (clock margin {margin:.0} ms)",
                        e - s
                    ));
                }
            }
        }
    }
    c
}

/// Stage names of the last `kind` transition on `node` (the agent's own order), if any.
fn stages_of(nodes: &[&Node], kind: &str) -> Vec<String> {
    for n in nodes {
        if let Ok(v) = al::status(n) {
            if let Some(t) = al::transitions(&v)
                .into_iter()
                .rev()
                .find(|t| t.kind == kind && t.result == "ok" && !t.stages.is_empty())
            {
                return t
                    .stages
                    .into_iter()
                    .map(|(s, _)| s)
                    .filter(|s| !s.starts_with("rollback:"))
                    .collect();
            }
        }
    }
    Vec::new()
}

/// Guest shell test that holds once `stage` of a promote or demote of `r` has taken effect on
/// the node (the agent logs its stage lines only when the transition ends); None for the stages
/// with nothing to see (`check-resource`, `probe-address`).
fn stage_seen(stage: &str, r: &Resource) -> Option<String> {
    let role = |ro: &str| format!("grep -q '^ *{}: cs:[A-Za-z]* ro:{ro}/' /proc/drbd", r.minor);
    let addr = format!("ip -o addr show | grep -q ' {}/'", crate::FLOATING_IP);
    // The target's own lines (a standby's staged target has no backing store path).
    let target = format!(
        "tgtadm --lld iscsi --mode target --op show 2>/dev/null | sed -n '/: {}$/,/^Target /p'",
        al::iqn_of(r)
    );
    Some(match stage {
        "drbd-primary" => role("Primary"),
        "drbd-secondary" => role("Secondary"),
        "address-claim" => addr,
        "address-release" => format!("! {addr}"),
        "target-serve" => format!("{target} | grep -q 'Backing store path: /'"),
        "target-offline" => format!("{target} | grep -q 'State: offline'"),
        "target-remove" => format!("! {target} | grep -q 'Backing store path: /'"),
        _ => return None,
    })
}

/// Writes pool.conf `contents` on `node` and SIGKILLs its agent as soon as `stage`'s effect shows
/// ([`stage_seen`]; at once for a stage with none) or the transition ended (its stage lines
/// logged), bounded. Returns the stages logged before the kill (none when it came mid-transition).
fn kill_agent_after_stage(
    node: &Node,
    r: &Resource,
    contents: &str,
    stage: &str,
) -> Result<String> {
    if !stage.chars().all(|c| c.is_ascii_lowercase() || c == '-') || contents.contains(['\'', '\n'])
    {
        bail!("bad stage {stage:?} or contents {contents:?}");
    }
    let seen = stage_seen(stage, r).unwrap_or_else(|| "true".into());
    node.run_ok(&format!(
        "n=$(wc -l < {log}); printf '%s' '{contents}' > {p}.tmp && mv -f {p}.tmp {p}; i=0; \
         while ! {{ {seen}; }} && ! tail -n +$((n+1)) {log} | grep -q '\"{stage}\"' && [ $i -lt 3000 ]; do i=$((i+1)); done; \
         kill -9 $(cat {pid}); rm -f {pid}; tail -n +$((n+1)) {log} > /tmp/killed-agent.log",
        p = al::POOL_CONF,
        pid = al::AGENT_PID,
        log = al::AGENT_LOG
    ))?;
    let o = node.run(
        "tr -d '\\033' < /tmp/killed-agent.log | sed 's/\\[[0-9;]*m//g' | grep -o 'stage=\"[a-z-]*\"' | sed 's/stage=//; s/\"//g' | tr '\\n' ' '",
    )?;
    let logged = o.stdout.trim();
    Ok(if logged.is_empty() {
        "none: killed mid-transition".into()
    } else {
        logged.to_string()
    })
}

fn restart_tgtd(node: &Node) -> Result<()> {
    node.run_ok(
        "kill -9 $(pidof tgtd); i=0; while pidof tgtd >/dev/null && [ $i -lt 100 ]; do sleep 0.05; i=$((i+1)); done; rm -f /var/run/tgtd/socket.*",
    )?;
    al::start_tgtd(node)
}

/// Brings a powered-off ex-primary back: boot, DRBD attach (activity log replayed) and connect to
/// `peer` as the system tools would in adopt mode, tgtd, and with `agent` its config, pool.conf
/// slave and agent; waits until it is resynced Secondary (under its agent with `agent`).
pub(crate) fn rejoin(lab: &Lab, node: &Node, peer: &Node, r: &Resource, agent: bool) -> Result<()> {
    node.boot()?;
    let _ = lab.save();
    bringup::drbd84_attach(node, r, false)?;
    bringup::drbd84_connect(node, peer, r)?;
    al::start_tgtd(node)?;
    if agent {
        al::install_config(node, r, Source::PoolConf)?;
        al::set_pool_conf(node, Some(&al::slave_of(peer)))?;
        al::start_agent(node)?;
    }
    al::wait_rejoined(node, r, agent)
}

fn summary(cycles: &[Cycle]) -> BTreeMap<String, KindSummary> {
    let mut m: BTreeMap<String, (KindSummary, Vec<f64>)> = BTreeMap::new();
    for c in cycles {
        let e = m.entry(c.kind.name().to_string()).or_default();
        e.0.cycles += 1;
        e.0.acked += c.acked;
        e.0.lost = e.0.lost.max(c.lost);
        e.1.push(c.max_pause_ms);
    }
    m.into_iter()
        .map(|(k, (mut s, p))| {
            let (p50, p95) = crate::drill::median_p95(&p);
            s.pause_p50_ms = p50;
            s.pause_p95_ms = p95;
            s.pause_max_ms = p.iter().copied().fold(0.0, f64::max);
            (k, s)
        })
        .collect()
}

/// State carried from cycle to cycle.
struct Run<'a> {
    lab: &'a Lab,
    r: Resource,
    drbd_mode: DrbdMode,
    primary: usize,
    ledger: LedgerProc,
    watch: [Watcher; 2],
    rng: Rng,
    kill_windows: Vec<(f64, f64)>,
    alarms_seen: [usize; 2],
}

impl Run<'_> {
    fn nodes(&self) -> Result<(&Node, &Node)> {
        Ok((
            self.lab.node(self.primary)?,
            self.lab.node(1 - self.primary)?,
        ))
    }

    /// Alarm lines the agents logged since the last call (the log restarts after a power loss).
    fn new_alarms(&mut self) -> Result<Vec<String>> {
        let mut out = Vec::new();
        for i in 0..2 {
            let n = self.lab.node(i)?;
            if n.pid().is_none() {
                continue;
            }
            let o = n.run(&format!(
                "grep -a 'alarm' {} 2>/dev/null | tr -d '\\033' | sed 's/\\[[0-9;]*m//g'",
                al::AGENT_LOG
            ))?;
            let lines: Vec<&str> = o.stdout.lines().collect();
            for l in lines.iter().skip(self.alarms_seen[i]) {
                out.push(format!("{}: {}", n.name(), l.trim()));
            }
            self.alarms_seen[i] = lines.len();
        }
        Ok(out)
    }

    fn pull_all(&mut self) -> Result<()> {
        for i in 0..2 {
            let n = self.lab.node(i)?;
            if n.pid().is_some() {
                self.watch[i].pull(n)?;
            }
        }
        Ok(())
    }

    /// Runs one cycle of `kind`; returns a description.
    fn act(&mut self, kind: Kind) -> Result<String> {
        let lab = self.lab;
        let (p, s) = (lab.node(self.primary)?, lab.node(1 - self.primary)?);
        let detail = match kind {
            Kind::Switchover => {
                al::set_pool_conf(p, Some(&al::slave_of(s)))?;
                al::wait_status(p, "old primary to demote", T, al::is_secondary)?;
                al::set_pool_conf(s, Some(al::master()))?;
                al::wait_status(s, "new primary to serve", T, al::is_serving)?;
                self.primary = 1 - self.primary;
                format!("{} -> {}", p.name(), s.name())
            }
            Kind::AgentKillPromote => {
                let stages = stages_of(&[p, s], "promote");
                let stage = self
                    .rng
                    .pick(&stages)
                    .cloned()
                    .unwrap_or_else(|| "drbd-primary".into());
                al::set_pool_conf(p, Some(&al::slave_of(s)))?;
                al::wait_status(p, "old primary to demote", T, al::is_secondary)?;
                let logged = kill_agent_after_stage(s, &self.r, al::master(), &stage)?;
                al::start_agent(s)?;
                al::wait_status(s, "restarted agent to serve", T, al::is_serving)?;
                self.primary = 1 - self.primary;
                format!(
                    "{}'s agent killed after promote stage {stage} (logged: {logged}); restarted, serves",
                    s.name()
                )
            }
            Kind::AgentKillDemote => {
                let stages = stages_of(&[p, s], "demote");
                let stage = self
                    .rng
                    .pick(&stages)
                    .cloned()
                    .unwrap_or_else(|| "address-release".into());
                let logged = kill_agent_after_stage(p, &self.r, &al::slave_of(s), &stage)?;
                al::start_agent(p)?;
                al::wait_status(
                    p,
                    "restarted agent to finish the demote",
                    T,
                    al::is_secondary,
                )?;
                al::set_pool_conf(s, Some(al::master()))?;
                al::wait_status(s, "new primary to serve", T, al::is_serving)?;
                self.primary = 1 - self.primary;
                format!(
                    "{}'s agent killed after demote stage {stage} (logged: {logged}); restarted, demoted; {} serves",
                    p.name(),
                    s.name()
                )
            }
            Kind::TgtdKill => {
                let before = self.ledger.progress()?.acked;
                let t0 = unix_ms();
                restart_tgtd(p)?;
                // Writes flowing again means the target is back; then the agent says so too.
                self.ledger.wait_acked(before + 50, T)?;
                al::wait_status(p, "target back after tgtd restart", T, al::is_serving)?;
                self.kill_windows.push((t0, unix_ms()));
                format!("tgtd on {} SIGKILLed and restarted", p.name())
            }
            Kind::PowerLoss => {
                // The victim's watch log up to now; its last samples die with it.
                self.watch[self.primary].pull(p)?;
                p.kill()?;
                let _ = self.lab.save();
                al::set_pool_conf(s, Some(al::master()))?;
                al::wait_status(s, "survivor to serve", T, al::is_serving)?;
                let served = unix_ms();
                let replayed = match self.drbd_mode {
                    DrbdMode::Adopt => {
                        rejoin(self.lab, p, s, &self.r, true)?;
                        String::new()
                    }
                    DrbdMode::Manage => match al::managed_rejoin(self.lab, p, s, &self.r)? {
                        Some(l) => format!(" through its agent; {l}"),
                        None => " through its agent; NO activity log replayed".into(),
                    },
                };
                self.watch[self.primary] = Watcher::start(p)?;
                self.alarms_seen[self.primary] = 0;
                self.primary = 1 - self.primary;
                format!(
                    "{} powered off, {} serves; {} rejoined as Secondary {:.1} s later{replayed}",
                    p.name(),
                    s.name(),
                    p.name(),
                    (unix_ms() - served) / 1000.0
                )
            }
        };
        Ok(detail)
    }
}

/// Prints `msg` with the seconds since `t0`.
pub(crate) fn say(t0: Instant, msg: &str) {
    println!("[{:7.2}s] {msg}", t0.elapsed().as_secs_f64());
}

/// Runs the soak on `lab` (reset first): agents up, watchers, ledger, `opts.cycles` cycles.
/// Returns the report (also written under `target/lab-report/`); Err only when the report cannot
/// be produced at all. A cycle that fails ends the soak with `error` set.
pub fn soak_on(lab: &Lab, opts: &SoakOpts) -> Result<SoakReport> {
    crate::require_host_bins(&["iscsi-ha", "iscsi-ledger", "lab-watch"])?;
    let t0 = Instant::now();
    let loadavg = std::fs::read_to_string("/proc/loadavg")
        .unwrap_or_default()
        .trim()
        .to_string();
    let r = Resource::default();
    al::reset(lab)?;
    match opts.drbd_mode {
        DrbdMode::Adopt => al::pool_conf_pair_up(lab, &r, MARKER)?,
        DrbdMode::Manage => al::managed_pair_up(lab, &r, MARKER)?,
    }
    say(
        t0,
        &format!(
            "agents up ({} mode), a serves via the floating address",
            opts.drbd_mode
        ),
    );
    let watch = [Watcher::start(lab.node(0)?)?, Watcher::start(lab.node(1)?)?];
    let ledger = LedgerProc::start(
        lab,
        &Opts {
            mode: opts.mode,
            ..Opts::default()
        },
        100,
    )?;
    let mut run = Run {
        lab,
        r,
        drbd_mode: opts.drbd_mode,
        primary: 0,
        ledger,
        watch,
        rng: Rng(opts.seed | 1),
        kill_windows: Vec::new(),
        alarms_seen: [0, 0],
    };
    let mut cycles: Vec<Cycle> = Vec::new();
    let mut error = None;
    for n in 1..=opts.cycles {
        let kind = ROTATION[(n - 1) % ROTATION.len()];
        match one_cycle(&mut run, n, kind) {
            Ok(c) => {
                if !c.violations.is_empty() {
                    eprintln!(
                        "DRBD at the end: {:?}\nDRBD states seen: {:?}\n{}",
                        c.drbd,
                        c.drbd_seen,
                        al::logs(lab, 60)
                    );
                }
                say(
                    t0,
                    &format!(
                        "#{n} {}: {} | {} acked ({} total), lost {}, torn {}, longest pause {:.0} ms, watch samples a/b {}/{}{}{}",
                        kind.name(),
                        c.detail,
                        c.acked,
                        c.acked_total,
                        c.lost,
                        c.torn,
                        c.max_pause_ms,
                        c.watch_lines[0],
                        c.watch_lines[1],
                        c.address_without_target_injected_ms
                            .map(|ms| format!(", address held while tgtd down {ms:.0} ms"))
                            .unwrap_or_default()
                            + &if c.address_with_target_offline_ms > 0.0 {
                                format!(
                                    ", address held with the target offline {:.0} ms",
                                    c.address_with_target_offline_ms
                                )
                            } else {
                                String::new()
                            }
                            + &if c.agent_alarms.is_empty() {
                                String::new()
                            } else {
                                format!(", agent alarms {:?}", c.agent_alarms)
                            },
                        if c.violations.is_empty() {
                            String::new()
                        } else {
                            format!(", VIOLATIONS: {:?}", c.violations)
                        }
                    ),
                );
                cycles.push(c);
            }
            Err(e) => {
                say(t0, &format!("#{n} {}: FAILED: {e:#}", kind.name()));
                eprintln!("{}", al::logs(lab, 40));
                error = Some(format!("cycle {n} ({}): {e:#}", kind.name()));
                break;
            }
        }
    }
    let fin = run.ledger.stop(Duration::from_secs(120));
    if let Err(e) = &fin {
        error.get_or_insert_with(|| format!("ledger: {e:#}"));
    }
    let last_verify = fin.as_ref().ok().and_then(|f| f.verify.clone());
    let acked = fin
        .as_ref()
        .map(|f| f.acked)
        .unwrap_or_else(|_| cycles.last().map(|c| c.acked_total).unwrap_or(0));
    let lost = last_verify
        .as_ref()
        .map(|v| v.lost)
        .unwrap_or(0)
        .max(cycles.iter().map(|c| c.lost).max().unwrap_or(0));
    let torn = last_verify
        .as_ref()
        .map(|v| v.torn + v.misplaced)
        .unwrap_or(0)
        .max(cycles.iter().map(|c| c.torn).max().unwrap_or(0));
    let rep = SoakReport {
        reproduce: crate::paths::reproduce_lab(&format!(
            "soak --cycles {} --seed {} --mode {} --drbd-mode {} --report {}",
            opts.cycles, opts.seed, opts.mode, opts.drbd_mode, opts.report
        )),
        loadavg_at_start: loadavg,
        mode: opts.mode.to_string(),
        drbd_mode: opts.drbd_mode.to_string(),
        seed: opts.seed,
        cycles_run: cycles.len(),
        cycles_asked: opts.cycles,
        acked,
        lost,
        torn,
        violations: cycles
            .iter()
            .flat_map(|c| c.violations.iter().map(move |v| format!("#{}: {v}", c.n)))
            .collect(),
        agent_alarms: cycles
            .iter()
            .flat_map(|c| c.agent_alarms.iter().map(move |a| format!("#{} {a}", c.n)))
            .collect(),
        by_kind: summary(&cycles),
        cycles,
        error,
        seconds: t0.elapsed().as_secs_f64(),
    };
    write_report(&rep, &opts.report)?;
    Ok(rep)
}

fn one_cycle(run: &mut Run, n: usize, kind: Kind) -> Result<Cycle> {
    let from = run.nodes()?.0.name().to_string();
    let start = unix_ms();
    let t = Instant::now();
    let acked0 = run.ledger.progress()?.acked;
    let detail = run.act(kind)?;
    // Writes flow through the new primary before the cycle counts as done.
    let flowing = run.ledger.progress()?.acked;
    run.ledger.wait_acked(flowing + 50, T)?;
    let rep = run.ledger.verify(&format!("c{n}"), T)?;
    let v = rep
        .verify
        .clone()
        .ok_or_else(|| anyhow!("ledger verify report without a verify pass"))?;
    run.pull_all()?;
    let agent_alarms = run.new_alarms()?;
    let drbd_seen = (0..2)
        .map(|i| {
            let mut seen: Vec<String> = Vec::new();
            for w in run.watch[i].lines.iter().filter(|w| w.t >= start) {
                let x = format!("{} {}/{}", w.cs, w.role, w.peer);
                if seen.last() != Some(&x) {
                    seen.push(x);
                }
            }
            format!("{}: {}", if i == 0 { "a" } else { "b" }, seen.join(", "))
        })
        .collect();
    let mut drbd = Vec::new();
    for node in run.lab.nodes().iter().filter(|n| n.pid().is_some()) {
        drbd.push(format!(
            "{}: {}",
            node.name(),
            bringup::proc_drbd_line(node, &run.r)?
        ));
    }
    let end = unix_ms();
    let names = [run.lab.node(0)?.name(), run.lab.node(1)?.name()];
    let wc = check_watch(
        &[(names[0], &run.watch[0]), (names[1], &run.watch[1])],
        start,
        end,
        &run.kill_windows,
    );
    let mut violations = wc.violations;
    if v.lost > 0 || v.torn > 0 || v.misplaced > 0 {
        violations.push(format!(
            "ledger: {} lost, {} torn, {} misplaced; first: {:?}",
            v.lost, v.torn, v.misplaced, v.bad
        ));
    }
    let pauses: Vec<f64> = rep
        .pauses
        .iter()
        .filter(|p| p.from_unix_ms + p.ms >= start && p.from_unix_ms <= end)
        .map(|p| p.ms)
        .collect();
    Ok(Cycle {
        n,
        kind,
        from,
        to: run.nodes()?.0.name().to_string(),
        detail,
        started_unix_ms: start,
        seconds: t.elapsed().as_secs_f64(),
        acked: rep.acked.saturating_sub(acked0),
        acked_total: rep.acked,
        lost: v.lost,
        torn: v.torn + v.misplaced,
        unacked_applied: v.unacked_applied,
        max_pause_ms: pauses.iter().copied().fold(0.0, f64::max),
        pauses_ms: pauses,
        address_without_target_injected_ms: (kind == Kind::TgtdKill).then_some(wc.injected_ms),
        address_with_target_offline_ms: wc.offline_ms,
        watch_lines: [0, 1].map(|i| {
            run.watch[i]
                .lines
                .iter()
                .filter(|w| w.t >= start && w.t <= end)
                .count()
        }),
        agent_alarms,
        drbd,
        drbd_seen,
        violations,
    })
}

fn write_report(rep: &SoakReport, stem: &str) -> Result<()> {
    let dir = crate::assets::write_json_report(stem, rep)?;
    let mut md = String::new();
    md.push_str(&format!(
        "# lab soak\n\n`{}`\n\n{} of {} cycles, agents in {} mode, ledger mode {}, {:.0} s, load average at start {}.\n\n\
         **Acknowledged writes {}, lost {}, torn {}, invariant violations {}.**{}\n\n\
         | kind | cycles | acked writes | lost | pause p50 ms | pause p95 ms | pause max ms |\n|---|---|---|---|---|---|---|\n",
        rep.reproduce,
        rep.cycles_run,
        rep.cycles_asked,
        rep.drbd_mode,
        rep.mode,
        rep.seconds,
        rep.loadavg_at_start,
        rep.acked,
        rep.lost,
        rep.torn,
        rep.violations.len(),
        rep.error
            .as_ref()
            .map(|e| format!("\n\nStopped early: {e}"))
            .unwrap_or_default()
    ));
    for (k, s) in &rep.by_kind {
        md.push_str(&format!(
            "| {k} | {} | {} | {} | {:.0} | {:.0} | {:.0} |\n",
            s.cycles, s.acked, s.lost, s.pause_p50_ms, s.pause_p95_ms, s.pause_max_ms
        ));
    }
    md.push_str("\nPause = longest gap between two acknowledged ledger writes within the cycle (client clock).\n\n| # | kind | detail | s | acked | lost | longest pause ms |\n|---|---|---|---|---|---|---|\n");
    for c in &rep.cycles {
        md.push_str(&format!(
            "| {} | {} | {} | {:.1} | {} | {} | {:.0} |\n",
            c.n,
            c.kind.name(),
            c.detail.replace('|', "/"),
            c.seconds,
            c.acked,
            c.lost,
            c.max_pause_ms
        ));
    }
    for v in &rep.violations {
        md.push_str(&format!("\n- VIOLATION {v}"));
    }
    if !rep.agent_alarms.is_empty() {
        md.push_str("\n\nAlarms the agents logged:\n");
        for a in &rep.agent_alarms {
            md.push_str(&format!("\n- {a}"));
        }
    }
    std::fs::write(dir.join(format!("{stem}.md")), md)?;
    println!("reports: {}/{stem}.json, {stem}.md", dir.display());
    Ok(())
}

/// `lab soak`: a fresh lab, [`soak_on`], lab down. Err unless the soak is clean.
pub fn soak(opts: &SoakOpts) -> Result<SoakReport> {
    if let Some(m) = crate::missing_prereqs() {
        bail!("prerequisites missing: {m}");
    }
    let lab = Lab::start()?;
    let rep = soak_on(&lab, opts);
    if rep.as_ref().map(|r| !r.clean()).unwrap_or(true) {
        eprintln!("{}", lab.logs_tail(20));
    }
    lab.down();
    let rep = rep?;
    println!(
        "\n== soak ({} mode): {}/{} cycles, {} acknowledged writes, {} lost, {} torn, {} violations ==",
        rep.drbd_mode,
        rep.cycles_run,
        rep.cycles_asked,
        rep.acked,
        rep.lost,
        rep.torn,
        rep.violations.len()
    );
    for (k, s) in &rep.by_kind {
        println!(
            "{k:20} cycles {:3}  acked {:7}  lost {}  pause p50 {:6.0} / p95 {:6.0} / max {:6.0} ms",
            s.cycles, s.acked, s.lost, s.pause_p50_ms, s.pause_p95_ms, s.pause_max_ms
        );
    }
    if !rep.clean() {
        bail!(
            "soak not clean: error {:?}, violations {:?}",
            rep.error,
            rep.violations
        );
    }
    Ok(rep)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn w(t: f64, role: &str, peer: &str, addr: bool, target: Option<&str>) -> Watch {
        Watch {
            t,
            prev_t: t - 50.0,
            role: role.into(),
            peer: peer.into(),
            cs: "Connected".into(),
            addr,
            target: target.map(str::to_string),
        }
    }

    fn watcher(lines: Vec<Watch>) -> Watcher {
        Watcher {
            clock: Clock {
                offset: 0.0,
                err: 5.0,
            },
            offset: 0,
            lines,
        }
    }

    const READY: Option<&str> = Some("ready");
    const ABSENT: Option<&str> = Some("absent");

    #[test]
    fn watch_checks_find_overlap_dual_primary_and_bare_address() {
        let check = |x: &Watcher, y: &Watcher, allowed: &[(f64, f64)]| {
            check_watch(&[("a", x), ("b", y)], 0.0, 3000.0, allowed)
        };
        let a = watcher(vec![
            w(1000.0, "Primary", "Secondary", true, READY),
            w(2000.0, "Secondary", "Secondary", false, ABSENT),
        ]);
        let b = watcher(vec![
            w(1000.0, "Secondary", "Primary", false, ABSENT),
            w(2100.0, "Primary", "Secondary", true, READY),
        ]);
        let c = check(&a, &b, &[]);
        assert!(c.violations.is_empty(), "{c:?}");
        // b Primary while a still is (a's Secondary sample comes later).
        let b2 = watcher(vec![w(1500.0, "Primary", "Unknown", false, ABSENT)]);
        assert_eq!(check(&a, &b2, &[]).violations.len(), 1);
        let pp = watcher(vec![w(1500.0, "Primary", "Primary", false, ABSENT)]);
        let c = check(&pp, &b, &[]);
        assert!(
            c.violations.iter().any(|x| x.contains("Primary/Primary")),
            "{c:?}"
        );
        // Address without target: a violation, unless inside an injected tgtd kill window; an
        // offline target (a demote closing connections) is measured, not a violation.
        let bare = watcher(vec![
            w(1000.0, "Primary", "Secondary", true, READY),
            w(1100.0, "Primary", "Secondary", true, ABSENT),
            w(1400.0, "Primary", "Secondary", true, None),
            w(1600.0, "Primary", "Secondary", true, READY),
            w(1700.0, "Primary", "Secondary", true, Some("offline")),
            w(1900.0, "Primary", "Secondary", false, ABSENT),
        ]);
        let sec = watcher(vec![w(1000.0, "Secondary", "Primary", false, ABSENT)]);
        let c = check(&bare, &sec, &[]);
        assert_eq!(c.violations.len(), 1, "{c:?}");
        assert!((c.offline_ms - 150.0).abs() < 1e-9, "{c:?}");
        let c = check(&bare, &sec, &[(1050.0, 1650.0)]);
        assert!(c.violations.is_empty(), "{c:?}");
        assert!((c.injected_ms - 250.0).abs() < 1e-9, "{c:?}");
    }

    #[test]
    fn rotation_covers_every_kind_and_rng_picks_in_range() {
        let mut k: Vec<Kind> = ROTATION.to_vec();
        k.sort();
        k.dedup();
        assert_eq!(k.len(), 5);
        let moves = ROTATION.iter().filter(|k| **k != Kind::TgtdKill).count();
        assert_eq!(moves % 2, 1);
        let mut r = Rng(7);
        let v = [1, 2, 3];
        for _ in 0..100 {
            assert!(r.pick(&v).is_some());
        }
        assert!(r.pick::<u8>(&[]).is_none());
    }
}
