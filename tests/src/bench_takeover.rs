//! `lab bench-takeover`: the `iscsi-ha` agent against the classic tools doing the same steps, in
//! the same guests and the same run, with the write ledger ([`crate::ledger`]) writing through
//! the floating address the whole time.
//!
//! Phases, in order, on one lab:
//! 1. agent, planned switchover (old primary's pool.conf := `slave:`, wait demoted, new one's :=
//!    `master`, wait serving), N times back and forth;
//! 2. agent restart on the primary (SIGKILL, start, until `status` answers and says serving);
//! 3. idle agents: RSS from `/proc/<pid>/status` and context switches of all its threads over a
//!    window (every wake-up of a thread is a context switch);
//! 4. agent, power loss (SIGKILL of the primary's QEMU, survivor's pool.conf := `master`; the
//!    victim boots and rejoins as Secondary under its agent), N times;
//! 5. the agents SIGKILLed (state left as is), classic planned switchover: one guest script per
//!    node, `tgtadm` target delete --force (connections closed while the address is up), `ip addr
//!    del`, `drbdsetup-84 secondary`; then `drbdsetup-84 primary`, `tgtadm` target + write-through
//!    LUN (`bsoflags=sync`, caching page WCE=0, as the agent serves it) + bind, `ip addr add` +
//!    `arping -U`; N times;
//! 6. classic power loss: SIGKILL, the survivor's script as above (`primary` retried while DRBD
//!    still sees the dead peer), the victim rejoins with no agent; N times;
//! 7. agent, power loss in manage mode: the lab reset, the agents bring DRBD up themselves (fresh
//!    metadata, fencing `resource-only`; `mode = "manage"`) and a new ledger writes; then as in 4,
//!    but the victim rejoins through its agent alone (it replays the crashed Primary's activity
//!    log); N times, compared with the classic power loss of 6;
//! 8. scaling: the agents with 1, 8, 32 resources (DRBD on `brd` RAM disks), M switchovers each
//!    after one not counted (a fresh agent's first promote also pays TCG's translation of its
//!    code), the promote's span from the agents' own records; then the classic tools promote the
//!    same resources, M + 1 times likewise. The new primary is signalled and waited for in one
//!    guest command (nothing crosses the serial control channel while it promotes).
//!
//! Times are mapped to the host's clock through `adjtimex` round trips (the error is in each
//! sample); classic steps are stamped from `/proc/uptime` (read by the shell, no fork: 10 ms
//! grain). The client's figures come from the ledger: the longest gap between two acknowledged
//! writes around each takeover, and what it logged during that gap. Nothing here is asserted on
//! time: results go to `target/lab-report/bench-takeover.{json,md,svg}`.

use anyhow::{anyhow, bail, Context, Result};
use serde::Serialize;
use std::time::{Duration, Instant};

use crate::agent_lab::{self as al, Source};
use crate::bringup::{self, Resource};
use crate::drill::{median_p95, signal_pool_conf_then};
use crate::ledger::{unix_ms, LedgerProc, Opts as LedgerOpts, Pause};
use crate::soak::{guest_clock, rejoin, say};
use crate::{Lab, Node};

const MARKER: &str = "BENCH-TAKEOVER-MARKER written on a";
const T: Duration = Duration::from_secs(60);
/// The caching page the agent's write-through LUNs carry (docs/write-cache.md): WCE=0.
const WCE_OFF: &str = "8:0:18:0x10:0:0xff:0xff:0:0:0xff:0xff:0xff:0xff:0x80:0x14:0:0:0:0:0:0";

/// What `lab bench-takeover` runs.
#[derive(Debug, Clone)]
pub struct BenchOpts {
    /// Planned switchovers per tool.
    pub switchovers: usize,
    /// Power losses per tool.
    pub power_losses: usize,
    /// Power losses of the agents in manage mode (0: the phase is skipped).
    pub manage_power_losses: usize,
    /// Agent restarts on the primary.
    pub restarts: usize,
    /// Resource counts of the scaling phase (empty: skipped).
    pub scaling: Vec<usize>,
    /// Switchovers per resource count.
    pub scaling_runs: usize,
    /// Window of the idle measurement.
    pub idle: Duration,
    /// The ledger client's command timeout, s (its default 3; after a power loss the client's
    /// pending command only fails at this timeout: nothing resets its connection).
    pub client_timeout_s: u32,
    /// The agents' `timeouts.authority_settle_ms` (None: the default), to see what the settle
    /// time adds to a takeover.
    pub settle_ms: Option<u64>,
    /// The scaling phase again with tgtd started with this many I/O threads per LU (`tgtd -t
    /// N`; tgtd's default is 16, each LU's `new` starts them).
    pub scaling_tgtd_threads: Option<u32>,
    /// Report file stem under `target/lab-report/`.
    pub report: String,
}

impl Default for BenchOpts {
    fn default() -> Self {
        BenchOpts {
            switchovers: 30,
            power_losses: 30,
            manage_power_losses: 30,
            restarts: 5,
            scaling: vec![1, 8, 32],
            scaling_runs: 5,
            idle: Duration::from_secs(10),
            client_timeout_s: LedgerOpts::default().timeout_s,
            settle_ms: None,
            scaling_tgtd_threads: None,
            report: "bench-takeover".into(),
        }
    }
}

/// Kind of takeover.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Case {
    /// Planned switchover.
    Switchover,
    /// SIGKILL of the primary's QEMU.
    PowerLoss,
    /// SIGKILL of the primary's QEMU, the agents in manage mode (DRBD fencing `resource-only`);
    /// the victim rejoins through its agent.
    PowerLossManaged,
}

/// The cases in report order.
const CASES: [Case; 3] = [Case::Switchover, Case::PowerLoss, Case::PowerLossManaged];

impl Case {
    /// The case whose classic figures this one is compared with: the classic tools have no
    /// manage mode, so a managed power loss faces their power loss of the same run.
    fn classic(self) -> Case {
        match self {
            Case::PowerLossManaged => Case::PowerLoss,
            c => c,
        }
    }
}

/// Who does the takeover.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Tool {
    /// The `iscsi-ha` agents on pool.conf.
    Agent,
    /// A shell script of `drbdsetup-84`, `tgtadm`, `ip`, `arping`.
    Classic,
}

/// One takeover. Times in ms on the host's clock; events relative to the start (switchover: the
/// old primary's signal; power loss: the SIGKILL).
#[derive(Debug, Clone, Serialize)]
pub struct Sample {
    /// Kind.
    pub case: Case,
    /// Who did it.
    pub tool: Tool,
    /// 1-based within (case, tool).
    pub n: usize,
    /// Old primary.
    pub from: String,
    /// New primary.
    pub to: String,
    /// (event, ms since the start), in time order.
    pub events: Vec<(String, f64)>,
    /// Promote steps on the new primary (agent: its transition record; classic: the script's).
    pub promote_stages_ms: Vec<(String, f64)>,
    /// Demote steps on the old primary (switchovers).
    pub demote_stages_ms: Vec<(String, f64)>,
    /// New primary: authority signal (pool.conf renamed / script started) -> serving (target
    /// and address up), one guest clock.
    pub signal_to_serving_ms: f64,
    /// New primary: signal -> its promote started (agent: the authority settle time).
    pub signal_to_promote_start_ms: f64,
    /// Serving -> the client's first acknowledged write after the takeover.
    pub serving_to_first_ack_ms: Option<f64>,
    /// New primary's signal -> the client's first acknowledged write.
    pub signal_to_first_ack_ms: Option<f64>,
    /// Start -> the client's first acknowledged write.
    pub start_to_first_ack_ms: Option<f64>,
    /// The client's I/O pause: the longest gap between two acknowledged writes in the window.
    pub client_pause_ms: Option<f64>,
    /// What the ledger logged during the pause, ms since the start.
    pub client_log: Vec<(f64, String)>,
    /// Clock mapping uncertainty (sum of both guests'), ms.
    pub clock_err_ms: f64,
    /// Managed power loss: the victim's agent's `activity log replayed` message at its rejoin
    /// (None: it logged none).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rejoin_replay: Option<String>,
    #[serde(skip)]
    window: (f64, f64),
    #[serde(skip)]
    start: f64,
    #[serde(skip)]
    serving: f64,
    #[serde(skip)]
    signal: f64,
}

/// One agent restart on the primary.
#[derive(Debug, Clone, Serialize)]
pub struct Restart {
    /// Node.
    pub node: String,
    /// The ledger client was writing through the node (else no client yet: the guest idle).
    pub client_writing: bool,
    /// Start command sent -> the agent logged its control socket ready (host, includes the
    /// control channel and the 100 ms poll of the log), ms.
    pub start_to_status_ms: f64,
    /// Start command sent -> the agent logged it converged, serving again (then checked with
    /// `status`), ms.
    pub start_to_serving_ms: f64,
    /// Longest gap of the client's writes during the restart, ms (None: below the threshold).
    pub client_pause_ms: Option<f64>,
    /// The agent's own log, in the guest: exec -> control socket bound (`status` is answered
    /// from there on, during the first observation too), ms.
    pub agent_exec_to_status_ms: Option<f64>,
    /// The agent's own log, in the guest: exec -> first observation in (`ready`), ms.
    pub agent_exec_to_ready_ms: Option<f64>,
    /// The agent's own log, in the guest: exec -> converged (serving again), ms. Without the
    /// harness's polling, where every `status` is a new `iscsi-ha` process in the TCG guest.
    pub agent_exec_to_serving_ms: Option<f64>,
    /// The agent's start-up steps from its log: (step, ms since exec).
    pub agent_steps: Vec<(String, f64)>,
}

/// The start-up steps of the agent's last start in `log`: each line with `since_exec_ms` (and
/// the `at_main` / `logging` fields of `configuration loaded`; `cpu_ms`, the CPU time the agent
/// had used, in the step's name), as (step, ms since exec).
fn start_steps(log: &str) -> Vec<(String, f64)> {
    let last = log.rfind("=== agent start").map_or(log, |i| &log[i..]);
    let mut steps = Vec::new();
    for line in last.lines() {
        let Some(ms) = field_ms(line, "since_exec_ms=") else {
            continue;
        };
        let msg = line.split(": ").nth(1).unwrap_or(line);
        for (key, name) in [("at_main=", "main"), ("logging=", "logging set up")] {
            if let Some(v) = field_ms(msg, key) {
                steps.push((name.to_string(), v));
            }
        }
        let words: Vec<&str> = msg
            .split_whitespace()
            .take_while(|w| !w.contains('='))
            .collect();
        let mut name = words.join(" ");
        if let Some(cpu) = field_ms(msg, "cpu_ms=") {
            name.push_str(&format!(" (CPU used {cpu:.0})"));
        }
        steps.push((name, ms));
    }
    steps
}

/// `since_exec_ms` of the last agent log line that contains `what`.
fn since_exec_of(log: &str, what: &str) -> Option<f64> {
    field_ms(
        log.lines().rev().find(|l| l.contains(what))?,
        "since_exec_ms=",
    )
}

/// The number after `key` (e.g. `since_exec_ms=`) in a log line.
fn field_ms(line: &str, key: &str) -> Option<f64> {
    let v = line.split(key).nth(1)?;
    v.split(|c: char| !c.is_ascii_digit()).next()?.parse().ok()
}

/// An idle agent.
#[derive(Debug, Clone, Serialize)]
pub struct Idle {
    /// Node.
    pub node: String,
    /// `primary` or `secondary`.
    pub role: String,
    /// VmRSS, KiB.
    pub rss_kib: u64,
    /// VmHWM (peak RSS), KiB.
    pub hwm_kib: u64,
    /// Threads.
    pub threads: u64,
    /// Context switches of all threads over the window (voluntary + involuntary).
    pub ctxt_switches: u64,
    /// Window, s.
    pub seconds: f64,
    /// Context switches per second: an upper bound of the wake-ups.
    pub wakeups_per_s: f64,
}

/// Promotes of the agent with `resources` resources.
#[derive(Debug, Clone, Serialize)]
pub struct Scale {
    /// Resources per node.
    pub resources: usize,
    /// tgtd's I/O threads per LU (`tgtd -t N`); None: tgtd's default (16).
    pub tgtd_threads: Option<u32>,
    /// Per switchover: the promote's span (first transition start -> last end), ms.
    pub promote_ms: Vec<f64>,
    /// Per switchover: signal -> serving, ms.
    pub signal_to_serving_ms: Vec<f64>,
    /// Median / p95 of `promote_ms`.
    pub promote: Stat,
    /// Median / p95 of `signal_to_serving_ms`.
    pub signal_to_serving: Stat,
    /// Per stage name: median / p95 over the switchovers of the stage's time summed over the
    /// promote's transitions (several transitions show in `promote_transitions`).
    pub promote_stages: std::collections::BTreeMap<String, Stat>,
    /// Per switchover: how many promote transitions its span holds.
    pub promote_transitions: Vec<usize>,
    /// Per switchover, from the signal to the promote's log line on the new primary: the
    /// agent's CPU time (user + system, `/proc/PID/stat`), ms. Near the promote's span: the
    /// promote waits for the agent's own work on the guest's one vCPU.
    pub agent_cpu_ms: Vec<f64>,
    /// Per switchover, same window: the guest's busy CPU time (`/proc/stat`: all but idle and
    /// iowait; the kernel's DRBD, tgtd and the agent), ms. Near the window: CPU-bound.
    pub guest_busy_ms: Vec<f64>,
    /// Per switchover, same window: tgtd's CPU time (`/proc/PID/stat`), ms.
    pub tgtd_cpu_ms: Vec<f64>,
    /// Per switchover, the window itself (signal -> promote logged, guest clock), ms.
    pub cpu_window_ms: Vec<f64>,
    /// The classic tools on the same resources after the agents stopped, per switchover: the
    /// promote script's start -> its last step done (`drbdsetup-84 primary` of each minor, each
    /// target made, the address added and announced), ms.
    pub classic_promote_ms: Vec<f64>,
    /// Median / p95 of `classic_promote_ms`.
    pub classic_promote: Stat,
    /// The classic promote's steps (each over every resource): median / p95, ms.
    pub classic_stages: std::collections::BTreeMap<String, Stat>,
}

/// Median and p95 (nearest rank) of `n` values, ms.
#[derive(Debug, Clone, Copy, Default, Serialize)]
pub struct Stat {
    /// Values.
    pub n: usize,
    /// Median, ms.
    pub median_ms: f64,
    /// 95th percentile, ms.
    pub p95_ms: f64,
}

impl Stat {
    fn of(v: &[f64]) -> Stat {
        let (m, p) = median_p95(v);
        Stat {
            n: v.len(),
            median_ms: m,
            p95_ms: p,
        }
    }
}

/// One figure of one (case, tool).
#[derive(Debug, Clone, Serialize)]
pub struct Row {
    /// Kind.
    pub case: Case,
    /// Who.
    pub tool: Tool,
    /// Figure name (`signal -> serving`, `stage: drbd-primary`, `event: new: serving`, …).
    pub metric: String,
    /// Its distribution.
    pub stat: Stat,
}

/// Agent median / classic median of one figure.
#[derive(Debug, Clone, Serialize)]
pub struct Ratio {
    /// Kind.
    pub case: Case,
    /// Figure.
    pub metric: String,
    /// Agent median, ms.
    pub agent_ms: f64,
    /// Classic median, ms.
    pub classic_ms: f64,
    /// agent / classic.
    pub ratio: f64,
}

/// A goal of the issue and the figure that answers it.
#[derive(Debug, Clone, Serialize)]
pub struct Goal {
    /// The goal.
    pub goal: String,
    /// The figure.
    pub figure: String,
    /// Met, not met, or not measured.
    pub met: Option<bool>,
}

/// `target/lab-report/bench-takeover.json`.
#[derive(Debug, Clone, Serialize)]
pub struct BenchReport {
    /// Command that reproduces it.
    pub reproduce: String,
    /// Host load average at the start and at the end.
    pub loadavg: [String; 2],
    /// The guests' emulator (`qemu-system-x86_64 --version`, first line): process starts in a
    /// guest depend on it (tests/README.md, "QEMU").
    pub qemu: Option<String>,
    /// The code measured ([`crate::assets::source_commit`]).
    pub commit: Option<String>,
    /// Every takeover.
    pub samples: Vec<Sample>,
    /// Distributions per (case, tool, figure).
    pub summary: Vec<Row>,
    /// Agent vs classic medians.
    pub ratios: Vec<Ratio>,
    /// Agent restarts.
    pub restarts: Vec<Restart>,
    /// Idle agents.
    pub idle: Vec<Idle>,
    /// Scaling with the number of resources.
    pub scaling: Vec<Scale>,
    /// Median promote span of the largest resource count / of one resource, the lab's tgtd
    /// (`LAB_TGTD_THREADS`, else tgtd's default threads).
    pub scaling_ratio: Option<f64>,
    /// The same with `--scaling-tgtd-threads N`: (N, ratio).
    pub scaling_ratio_tgtd_threads: Option<(u32, f64)>,
    /// Acknowledged client writes, lost ones (must be 0), torn ones (must be 0).
    pub ledger: [u64; 3],
    /// The same of the manage-mode phase's own ledger (None: the phase did not run).
    pub ledger_managed: Option<[u64; 3]>,
    /// Managed power losses whose victim's agent logged an activity log replay at its rejoin,
    /// and all managed power losses.
    pub managed_rejoins_replayed: [usize; 2],
    /// The goals against the figures.
    pub goals: Vec<Goal>,
    /// The error that ended the run early, if any.
    pub error: Option<String>,
    /// Wall time, s.
    pub seconds: f64,
}

/// The command line that runs `o` again: with the binaries copied to `LAB_TARGET_DIR` (the
/// release agent, README "Performance") when it is set, else through cargo (debug agent).
fn reproduce(o: &BenchOpts) -> String {
    let scaling = if o.scaling.is_empty() {
        "none".to_string()
    } else {
        o.scaling
            .iter()
            .map(|k| k.to_string())
            .collect::<Vec<_>>()
            .join(",")
    };
    let settle = o
        .settle_ms
        .map(|ms| format!(" --settle-ms {ms}"))
        .unwrap_or_default();
    let threads = o
        .scaling_tgtd_threads
        .map(|n| format!(" --scaling-tgtd-threads {n}"))
        .unwrap_or_default();
    let args = format!(
        "bench-takeover --runs {} --power-runs {} --manage-power-runs {} --restarts {} \
         --scaling {scaling} --scaling-runs {} --idle-s {} --client-timeout {}{settle}{threads} \
         --report {}",
        o.switchovers,
        o.power_losses,
        o.manage_power_losses,
        o.restarts,
        o.scaling_runs,
        o.idle.as_secs(),
        o.client_timeout_s,
        o.report
    );
    crate::paths::reproduce_lab(&args)
}

fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .unwrap_or_default()
        .trim()
        .to_string()
}

/// `lab bench-takeover`: a fresh lab, [`bench_on`], lab down.
pub fn bench(opts: &BenchOpts) -> Result<BenchReport> {
    if let Some(m) = crate::missing_prereqs() {
        bail!("prerequisites missing: {m}");
    }
    let lab = Lab::start()?;
    let rep = bench_on(&lab, opts);
    if rep.as_ref().map(|r| r.error.is_some()).unwrap_or(true) {
        eprintln!("{}", lab.logs_tail(20));
    }
    lab.down();
    let rep = rep?;
    if let Some(e) = &rep.error {
        bail!("bench-takeover stopped early (partial report written): {e}");
    }
    Ok(rep)
}

/// Runs every phase on `lab` (reset first) and writes the report. Err only when no report can be
/// written; a phase that fails ends the run with `error` set and the figures so far reported.
pub fn bench_on(lab: &Lab, opts: &BenchOpts) -> Result<BenchReport> {
    crate::require_host_bins(&["iscsi-ha", "iscsi-ledger"])?;
    let t0 = Instant::now();
    let load0 = loadavg();
    let mut b = Bench {
        lab,
        t0,
        r: Resource::default(),
        primary: 0,
        samples: Vec::new(),
        restarts: Vec::new(),
        idle: Vec::new(),
        scaling: Vec::new(),
        ledger: None,
        ledger_managed: false,
        acked_lost_torn: [0; 3],
        acked_lost_torn_managed: None,
        settle_ms: None,
    };
    let error = b.run(opts).err().map(|e| format!("{e:#}"));
    if let Some(e) = &error {
        say(t0, &format!("FAILED: {e}"));
        eprintln!("{}", al::logs(lab, 40));
    }
    if let Err(e) = b.stop_ledger() {
        eprintln!("ledger: {e:#}");
    }
    let rep = report(b, opts, load0, error, t0);
    write_report(&rep, &opts.report)?;
    Ok(rep)
}

struct Bench<'a> {
    lab: &'a Lab,
    t0: Instant,
    r: Resource,
    primary: usize,
    samples: Vec<Sample>,
    restarts: Vec<Restart>,
    idle: Vec<Idle>,
    scaling: Vec<Scale>,
    ledger: Option<LedgerProc>,
    /// The running ledger is the manage-mode phase's.
    ledger_managed: bool,
    acked_lost_torn: [u64; 3],
    acked_lost_torn_managed: Option<[u64; 3]>,
    settle_ms: Option<u64>,
}

impl<'a> Bench<'a> {
    fn nodes(&self) -> Result<(&'a Node, &'a Node)> {
        let lab: &'a Lab = self.lab;
        Ok((lab.node(self.primary)?, lab.node(1 - self.primary)?))
    }

    fn ledger(&mut self) -> Result<&mut LedgerProc> {
        self.ledger
            .as_mut()
            .ok_or_else(|| anyhow!("the ledger is not running"))
    }

    /// Writes flow again: 20 more acknowledged.
    fn writes_flow(&mut self) -> Result<()> {
        let l = self.ledger()?;
        let n = l.progress()?.acked;
        l.wait_acked(n + 20, T)?;
        Ok(())
    }

    /// Starts a ledger writing through the floating address.
    fn start_ledger(&mut self, o: &BenchOpts) -> Result<()> {
        let opts = LedgerOpts {
            pause_ms: 50,
            timeout_s: o.client_timeout_s,
            ..LedgerOpts::default()
        };
        self.ledger = Some(LedgerProc::start(self.lab, &opts, 100)?);
        Ok(())
    }

    /// Stops the ledger, if one runs: its final verify goes to its phase's figures, its pauses
    /// to the samples without client figures yet.
    fn stop_ledger(&mut self) -> Result<()> {
        let Some(l) = self.ledger.take() else {
            return Ok(());
        };
        let f = l.stop(Duration::from_secs(120))?;
        let v = f.verify.clone().unwrap_or_default();
        let figures = [f.acked, v.lost, v.torn + v.misplaced];
        if self.ledger_managed {
            self.acked_lost_torn_managed = Some(figures);
        } else {
            self.acked_lost_torn = figures;
        }
        fill_client(&mut self.samples, &f.pauses, &[]);
        Ok(())
    }

    /// Verifies every block now (0 lost so far) and fills the client figures of the samples
    /// taken so far.
    fn checkpoint(&mut self, tag: &str) -> Result<()> {
        let rep = self.ledger()?.verify(tag, T)?;
        let v = rep.verify.clone().unwrap_or_default();
        if v.lost + v.torn + v.misplaced > 0 {
            bail!(
                "ledger after {tag}: {} lost, {} torn, {} misplaced; first: {:?}",
                v.lost,
                v.torn,
                v.misplaced,
                v.bad
            );
        }
        let log =
            std::fs::read_to_string(self.ledger()?.dir().join("stderr.log")).unwrap_or_default();
        fill_client(&mut self.samples, &rep.pauses, &client_log(&log));
        Ok(())
    }

    fn run(&mut self, o: &BenchOpts) -> Result<()> {
        let lab = self.lab;
        al::reset(lab)?;
        self.settle_ms = o.settle_ms;
        al::pool_conf_pair_up_with(lab, &self.r, MARKER, |n| self.tweak(n))?;
        say(self.t0, "agents up, a serves via the floating address");
        // Restarts with the guest idle first (no client yet), the same count under writes later.
        for _ in 0..o.restarts {
            self.restart_once()?;
        }
        self.start_ledger(o)?;
        for n in 1..=o.switchovers {
            let s = self.agent_switchover(n)?;
            self.say_sample(&s);
            self.samples.push(s);
        }
        self.checkpoint("agent-switchover")?;
        for _ in 0..o.restarts {
            self.restart_once()?;
        }
        self.idle = self.idle_agents(o.idle)?;
        for i in &self.idle {
            say(
                self.t0,
                &format!(
                    "idle agent on {} ({}): RSS {} KiB, {} threads, {:.2} wake-ups/s",
                    i.node, i.role, i.rss_kib, i.threads, i.wakeups_per_s
                ),
            );
        }
        for n in 1..=o.power_losses {
            let s = self.power_loss(n, Case::PowerLoss, Tool::Agent)?;
            self.say_sample(&s);
            self.samples.push(s);
        }
        self.checkpoint("agent-power-loss")?;
        // Stopped as `systemctl stop` does: tgtd keeps what the agents serve, and a standby's
        // staged targets are deleted (the classic tools create their own at the same tids).
        for node in lab.nodes() {
            al::stop_agent(node, "TERM")?;
        }
        for n in 1..=o.switchovers {
            let s = self.classic_switchover(n)?;
            self.say_sample(&s);
            self.samples.push(s);
        }
        self.checkpoint("classic-switchover")?;
        for n in 1..=o.power_losses {
            let s = self.power_loss(n, Case::PowerLoss, Tool::Classic)?;
            self.say_sample(&s);
            self.samples.push(s);
        }
        self.checkpoint("classic-power-loss")?;
        self.stop_ledger()?;
        if o.manage_power_losses > 0 {
            self.managed_power_losses(o)?;
        }
        let threads = [crate::bringup::tgtd_threads()]
            .into_iter()
            .chain(o.scaling_tgtd_threads.map(Some));
        for (t, &k) in threads.flat_map(|t| o.scaling.iter().map(move |k| (t, k))) {
            let s = scale(lab, k, o.scaling_runs, t)?;
            let tgtd = t.map_or("tgtd default".to_string(), |n| format!("tgtd -t {n}"));
            say(
                self.t0,
                &format!(
                    "{k} resources ({tgtd}): promote median {:.0} ms, p95 {:.0} ms; signal -> serving median {:.0} ms (classic promote {:.0} ms); signal -> promote logged {:?} ms, agent CPU {:?} ms, tgtd CPU {:?} ms, guest CPU busy {:?} ms",
                    s.promote.median_ms, s.promote.p95_ms, s.signal_to_serving.median_ms, s.classic_promote.median_ms, s.cpu_window_ms, s.agent_cpu_ms, s.tgtd_cpu_ms, s.guest_busy_ms
                ),
            );
            self.scaling.push(s);
        }
        Ok(())
    }

    /// The agents in manage mode on a reset lab (fresh metadata, a new ledger): `o`'s managed
    /// power losses, each victim rejoining through its agent; the ledger verified and stopped.
    fn managed_power_losses(&mut self, o: &BenchOpts) -> Result<()> {
        let (lab, t) = (self.lab, Instant::now());
        al::reset(lab)?;
        self.primary = 0;
        al::managed_pair_up(lab, &self.r, MARKER)?;
        if self.settle_ms.is_some() {
            let (a, b) = self.nodes()?;
            self.retweak(a, "KILL", "a serving again", al::is_serving)?;
            self.retweak(b, "KILL", "b Secondary again", al::is_secondary)?;
        }
        say(
            self.t0,
            "agents up in manage mode (DRBD fencing resource-only), a serves via the floating address",
        );
        self.ledger_managed = true;
        self.start_ledger(o)?;
        for n in 1..=o.manage_power_losses {
            let s = self.power_loss(n, Case::PowerLossManaged, Tool::Agent)?;
            self.say_sample(&s);
            say(
                self.t0,
                &format!(
                    "  {} rejoined through its agent: {}",
                    s.from,
                    s.rejoin_replay
                        .as_deref()
                        .unwrap_or("NO activity log replay logged")
                ),
            );
            self.samples.push(s);
        }
        self.checkpoint("agent-power-loss-managed")?;
        self.stop_ledger()?;
        say(
            self.t0,
            &format!(
                "manage-mode phase: {:.0} s; client writes acknowledged, lost, torn: {:?}",
                t.elapsed().as_secs_f64(),
                self.acked_lost_torn_managed.unwrap_or_default()
            ),
        );
        Ok(())
    }

    /// Applies [`Bench::tweak`] to `node` and restarts its agent (`signal`) until `cond` holds.
    fn retweak(
        &self,
        node: &Node,
        signal: &str,
        what: &str,
        cond: fn(&serde_json::Value) -> bool,
    ) -> Result<()> {
        self.tweak(node)?;
        al::stop_agent(node, signal)?;
        al::start_agent(node)?;
        al::wait_status(node, what, T, cond)?;
        Ok(())
    }

    /// Sets `authority_settle_ms` in `node`'s agent config when asked to.
    fn tweak(&self, node: &Node) -> Result<()> {
        if let Some(ms) = self.settle_ms {
            node.run_ok(&format!(
                "sed -i 's/^safety_net_s = .*/&\\nauthority_settle_ms = {ms}/' {c} && grep -q '^authority_settle_ms = {ms}$' {c}",
                c = al::CONFIG
            ))?;
        }
        Ok(())
    }

    fn say_sample(&self, s: &Sample) {
        say(
            self.t0,
            &format!(
                "{:?} {:?} #{} {} -> {}: signal -> serving {:.0} ms [{}]",
                s.tool,
                s.case,
                s.n,
                s.from,
                s.to,
                s.signal_to_serving_ms,
                s.promote_stages_ms
                    .iter()
                    .map(|(n, ms)| format!("{n} {ms:.0}"))
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        );
    }

    fn agent_switchover(&mut self, n: usize) -> Result<Sample> {
        let (p, s) = self.nodes()?;
        let (cp, cs) = (guest_clock(p)?, guest_clock(s)?);
        let last_id = |v: &serde_json::Value| al::transitions(v).last().map(|t| t.id);
        let pid0 = last_id(&al::status(p)?);
        let sid0 = last_id(&al::status(s)?);
        let (pro0, dem0) = (log_mark(s)?, log_mark(p)?);
        let w0 = unix_ms();
        // The old primary's demote ends with DRBD Secondary: waited for in the guest (10 ms
        // polls of /proc/drbd by the shell's own `read`, no process per poll: a `grep` and a
        // `sleep` every 10 ms took the old primary's one vCPU from its demote), so the new
        // primary is signalled one round trip later, as the classic script is.
        let secondary = format!(
            "{pauses}; i=0; \
             until s=; while read -r m _ r _; do [ \"$m\" = {minor}: ] && case $r in ro:Secondary/*) s=1;; esac; done </proc/drbd; \
               [ -n \"$s\" ] || [ $i -ge 3000 ]; do {pause}; i=$((i+1)); done",
            pauses = pauses(),
            minor = self.r.minor,
            pause = pause("0.01"),
        );
        let sig_d = signal_pool_conf_then(p, &al::slave_of(s), &secondary)? as f64 - cp.offset;
        // Through the agents' logs; `status` is read once each transition is logged (the figures
        // are the transition records' own times).
        let sig_p_guest = signal_and_wait_logged(s, al::master(), PROMOTE_LOGGED, pro0, T)?;
        let vs = al::wait_status(s, "new primary to serve", T, |v| {
            al::is_serving(v) && last_id(v) != sid0
        })?;
        wait_logged(p, DEMOTE_LOGGED, dem0, T)?;
        let vp = al::wait_status(p, "old primary to demote", T, |v| {
            al::is_secondary(v) && last_id(v) != pid0
        })?;
        let d = al::last_transition_with(&vp, "demote", "drbd-secondary")
            .ok_or_else(|| anyhow!("no demote recorded on {}", p.name()))?;
        let (pr_start, pr_end, stages) = promote_span(&vs, sid0)?;
        let mut ev = Events::new(sig_d);
        ev.push("old: signal", sig_d);
        ev.stages("old", d.started_unix_ms as f64 - cp.offset, &d.stages);
        ev.push("new: signal", sig_p_guest - cs.offset);
        ev.stages("new", pr_start - cs.offset, &stages);
        let sample = Sample {
            case: Case::Switchover,
            tool: Tool::Agent,
            n,
            from: p.name().into(),
            to: s.name().into(),
            promote_stages_ms: stages,
            demote_stages_ms: d.stages.clone(),
            signal_to_serving_ms: pr_end - sig_p_guest,
            signal_to_promote_start_ms: pr_start - sig_p_guest,
            clock_err_ms: cp.err + cs.err,
            ..ev.sample(sig_p_guest - cs.offset, pr_end - cs.offset, w0)
        };
        self.writes_flow()?;
        self.primary = 1 - self.primary;
        Ok(sample.closed())
    }

    fn classic_switchover(&mut self, n: usize) -> Result<Sample> {
        let (p, s) = self.nodes()?;
        let (cp, cs) = (guest_clock(p)?, guest_clock(s)?);
        let w0 = unix_ms();
        let dem = timed_script(p, &classic_demote(std::slice::from_ref(&self.r)))?;
        let pro = timed_script(s, &classic_promote(std::slice::from_ref(&self.r), false))?;
        let start = dem.start - cp.offset;
        let mut ev = Events::new(start);
        ev.push("old: signal", start);
        ev.stages("old", start, &dem.stages);
        let sig = pro.start - cs.offset;
        ev.push("new: signal", sig);
        ev.stages("new", sig, &pro.stages);
        let sample = Sample {
            case: Case::Switchover,
            tool: Tool::Classic,
            n,
            from: p.name().into(),
            to: s.name().into(),
            promote_stages_ms: pro.stages.clone(),
            demote_stages_ms: dem.stages.clone(),
            signal_to_serving_ms: pro.end() - pro.start,
            signal_to_promote_start_ms: 0.0,
            clock_err_ms: cp.err + cs.err + dem.err + pro.err,
            ..ev.sample(sig, pro.end() - cs.offset, w0)
        };
        self.writes_flow()?;
        self.primary = 1 - self.primary;
        Ok(sample.closed())
    }

    /// A power loss of `case` (`PowerLoss` or `PowerLossManaged`: the agents' mode and how the
    /// victim rejoins) by `tool`.
    fn power_loss(&mut self, n: usize, case: Case, tool: Tool) -> Result<Sample> {
        let (p, s) = self.nodes()?;
        let cs = guest_clock(s)?;
        // Read before the kill: nothing runs the agent's binary on the survivor while it is timed.
        let (sid0, pro0) = match tool {
            Tool::Agent => (
                al::transitions(&al::status(s)?).last().map(|t| t.id),
                log_mark(s)?,
            ),
            Tool::Classic => (None, 0),
        };
        let kill = unix_ms();
        p.kill()?;
        let _ = self.lab.save();
        let mut ev = Events::new(kill);
        ev.push("old: SIGKILL", kill);
        let (sig_guest, start_guest, end_guest, stages) = match tool {
            Tool::Agent => {
                let sig = signal_and_wait_logged(s, al::master(), PROMOTE_LOGGED, pro0, T)?;
                let vs = al::wait_status(s, "survivor to serve", T, al::is_serving)?;
                let (a, e, st) = promote_span(&vs, sid0)?;
                (sig, a, e, st)
            }
            Tool::Classic => {
                let pro = timed_script(s, &classic_promote(std::slice::from_ref(&self.r), true))?;
                (pro.start, pro.start, pro.end(), pro.stages)
            }
        };
        ev.push("new: signal", sig_guest - cs.offset);
        ev.stages("new", start_guest - cs.offset, &stages);
        let sample = Sample {
            case,
            tool,
            n,
            from: p.name().into(),
            to: s.name().into(),
            promote_stages_ms: stages,
            demote_stages_ms: Vec::new(),
            signal_to_serving_ms: end_guest - sig_guest,
            signal_to_promote_start_ms: start_guest - sig_guest,
            clock_err_ms: cs.err,
            ..ev.sample(sig_guest - cs.offset, end_guest - cs.offset, kill - 20.0)
        };
        self.writes_flow()?;
        let mut sample = sample.closed();
        if case == Case::PowerLossManaged {
            sample.rejoin_replay = al::managed_rejoin(self.lab, p, s, &self.r)?;
        } else {
            rejoin(self.lab, p, s, &self.r, tool == Tool::Agent)?;
        }
        if tool == Tool::Agent && self.settle_ms.is_some() {
            self.retweak(p, "TERM", "rejoined agent Secondary", al::is_secondary)?;
        }
        self.primary = 1 - self.primary;
        Ok(sample)
    }

    /// One agent restart on the primary, said and kept.
    fn restart_once(&mut self) -> Result<()> {
        let r = self.agent_restart()?;
        say(
            self.t0,
            &format!(
                "agent restart on {} (client {}): status after {:.0} ms, serving after {:.0} ms \
                 (agent's log: exec -> ready {}, -> serving {} ms)",
                r.node,
                if r.client_writing { "writing" } else { "idle" },
                r.start_to_status_ms,
                r.start_to_serving_ms,
                f(r.agent_exec_to_ready_ms),
                f(r.agent_exec_to_serving_ms)
            ),
        );
        let steps: Vec<String> = r
            .agent_steps
            .iter()
            .map(|(n, ms)| format!("{n} {ms:.0}"))
            .collect();
        say(
            self.t0,
            &format!("  start-up steps, ms after exec: {}", steps.join(", ")),
        );
        self.restarts.push(r);
        Ok(())
    }

    fn agent_restart(&mut self) -> Result<Restart> {
        let (p, _) = self.nodes()?;
        al::stop_agent(p, "KILL")?;
        let w0 = unix_ms();
        let t = Instant::now();
        // Waited for through the agent's log (see `until_logged`).
        let wait = Duration::from_secs(45);
        let mark = log_mark(p)?;
        p.run_ok(&format!(
            "{}; {}",
            al::launch_agent(),
            until_logged("control socket ready", mark, wait)
        ))
        .with_context(|| al::agent_log(p, 40))?;
        let status = t.elapsed();
        wait_logged(p, "converged since start", mark, wait)?;
        let serving = t.elapsed();
        al::wait_status(p, "restarted agent serving", T, al::is_serving)?;
        let client_writing = self.ledger.is_some();
        let mut pause = None;
        if client_writing {
            self.writes_flow()?;
            let w1 = unix_ms();
            let rep = self
                .ledger()?
                .verify(&format!("restart-{}", w0 as u64), T)?;
            pause = rep
                .pauses
                .iter()
                .filter(|x| x.from_unix_ms + x.ms >= w0 && x.from_unix_ms <= w1)
                .map(|x| x.ms)
                .reduce(f64::max);
        }
        let log = al::agent_log(p, 40);
        Ok(Restart {
            node: p.name().into(),
            client_writing,
            agent_exec_to_status_ms: since_exec_of(&log, "control socket ready"),
            start_to_status_ms: status.as_secs_f64() * 1000.0,
            start_to_serving_ms: serving.as_secs_f64() * 1000.0,
            client_pause_ms: pause,
            agent_exec_to_ready_ms: since_exec_of(&log, "notify: ready"),
            agent_exec_to_serving_ms: since_exec_of(&log, "converged since start"),
            agent_steps: start_steps(&log),
        })
    }

    fn idle_agents(&self, window: Duration) -> Result<Vec<Idle>> {
        let secs = window.as_secs_f64();
        let (p, _) = self.nodes()?;
        std::thread::scope(|sc| {
            let hs: Vec<_> = self
                .lab
                .nodes()
                .iter()
                .map(|n| {
                    let role = if n.name() == p.name() {
                        "primary"
                    } else {
                        "secondary"
                    };
                    sc.spawn(move || idle_agent(n, role, secs))
                })
                .collect();
            hs.into_iter()
                .map(|h| h.join().map_err(|_| anyhow!("idle thread panicked"))?)
                .collect()
        })
    }
}

/// Event times relative to a start, host ms.
struct Events {
    start: f64,
    list: Vec<(String, f64)>,
}

impl Events {
    fn new(start: f64) -> Events {
        Events {
            start,
            list: Vec::new(),
        }
    }

    fn push(&mut self, name: &str, at: f64) {
        self.list.push((name.to_string(), at - self.start));
    }

    /// `side: start` at `begin` and `side: <stage> done` after each stage in order.
    fn stages(&mut self, side: &str, begin: f64, stages: &[(String, f64)]) {
        self.push(&format!("{side}: start"), begin);
        let mut t = begin;
        for (name, ms) in stages {
            t += ms;
            self.push(&format!("{side}: {name} done"), t);
        }
    }

    /// A sample with these events; `signal` and `serving` on the host clock; the client window
    /// starts at `w0`.
    fn sample(mut self, signal: f64, serving: f64, w0: f64) -> Sample {
        self.push("new: serving", serving);
        Sample {
            case: Case::Switchover,
            tool: Tool::Agent,
            n: 0,
            from: String::new(),
            to: String::new(),
            events: self.list,
            promote_stages_ms: Vec::new(),
            demote_stages_ms: Vec::new(),
            signal_to_serving_ms: 0.0,
            signal_to_promote_start_ms: 0.0,
            serving_to_first_ack_ms: None,
            signal_to_first_ack_ms: None,
            start_to_first_ack_ms: None,
            client_pause_ms: None,
            client_log: Vec::new(),
            clock_err_ms: 0.0,
            rejoin_replay: None,
            window: (w0, 0.0),
            start: self.start,
            serving,
            signal,
        }
    }
}

impl Sample {
    /// Closes the client window now (writes flow again).
    fn closed(mut self) -> Sample {
        self.window.1 = unix_ms();
        self
    }
}

/// (step name, ms) in order.
type Stages = Vec<(String, f64)>;

/// The promote transitions of `v` after id `after`: (first start, last end) in the guest's clock
/// (ms) and the stages of all of them in order (several resources may take several).
fn promote_span(v: &serde_json::Value, after: Option<u64>) -> Result<(f64, f64, Stages)> {
    let ts: Vec<al::Transition> = al::transitions(v)
        .into_iter()
        .filter(|t| t.kind == "promote" && Some(t.id) > after && !t.stages.is_empty())
        .collect();
    let first = ts
        .first()
        .ok_or_else(|| anyhow!("no promote transition recorded"))?;
    if let Some(bad) = ts.iter().find(|t| t.result != "ok") {
        bail!("promote: {}", crate::drill::describe(bad));
    }
    let start = first.started_unix_ms as f64;
    let end = ts
        .iter()
        .map(|t| t.started_unix_ms as f64 + t.total_ms)
        .fold(start, f64::max);
    let stages = ts.iter().flat_map(|t| t.stages.clone()).collect();
    Ok((start, end, stages))
}

/// Client figures of every sample whose window holds a pause: the longest such pause; its end is
/// the first acknowledged write after the takeover. `log` lines (host ms, text) in the pause are
/// kept.
fn fill_client(samples: &mut [Sample], pauses: &[Pause], log: &[(f64, String)]) {
    for s in samples.iter_mut().filter(|s| s.client_pause_ms.is_none()) {
        let (w0, w1) = s.window;
        let Some(p) = pauses
            .iter()
            .filter(|p| p.from_unix_ms + p.ms >= w0 && p.from_unix_ms <= w1)
            .max_by(|a, b| a.ms.total_cmp(&b.ms))
        else {
            continue;
        };
        let (from, to) = (p.from_unix_ms, p.from_unix_ms + p.ms);
        s.client_pause_ms = Some(p.ms);
        s.serving_to_first_ack_ms = Some(to - s.serving);
        s.signal_to_first_ack_ms = Some(to - s.signal);
        s.start_to_first_ack_ms = Some(to - s.start);
        s.events.push(("client: last ack".into(), from - s.start));
        s.events.push(("client: first ack".into(), to - s.start));
        s.events.sort_by(|a, b| a.1.total_cmp(&b.1));
        s.client_log = log
            .iter()
            .filter(|(t, _)| *t >= from && *t <= to)
            .map(|(t, l)| (t - s.start, l.clone()))
            .collect();
        if s.client_log.is_empty() {
            s.client_log = p.cause.iter().map(|c| (f64::NAN, c.clone())).collect();
        }
    }
}

/// The ledger's stderr lines `[<unix s>] text` as (host ms, text).
fn client_log(text: &str) -> Vec<(f64, String)> {
    text.lines()
        .filter_map(|l| {
            let (t, rest) = l.strip_prefix('[')?.split_once("] ")?;
            Some((t.parse::<f64>().ok()? * 1000.0, rest.to_string()))
        })
        .collect()
}

/// A guest script's steps stamped on the guest's wall clock, ms.
struct Timed {
    start: f64,
    stages: Vec<(String, f64)>,
    /// Uncertainty of the uptime -> wall clock anchor, ms.
    err: f64,
}

impl Timed {
    fn end(&self) -> f64 {
        self.start + self.stages.iter().map(|(_, ms)| ms).sum::<f64>()
    }
}

/// Runs `steps` (name, shell) on `node` as one script; each step's end is stamped from
/// `/proc/uptime` (the shell's `read`, no fork, 10 ms grain), anchored once to the wall clock
/// (`adjtimex` between two uptime reads) before the first step. Err if a step fails.
fn timed_script(node: &Node, steps: &[(&str, String)]) -> Result<Timed> {
    // The classic tools run at the agent's priority (see `al::launch_agent`).
    let mut sc = format!("renice -n {} -p $$ >/dev/null; ", al::unit_nice());
    sc.push_str(
        "read u0 _ </proc/uptime; w=$(adjtimex | awk '/tv_sec/{s=$2} /tv_usec/{u=$2} END{printf \"%d%06d\", s, u}'); \
         read u1 _ </proc/uptime; echo \"W $w $u0 $u1\"; read t _ </proc/uptime; echo \"T start $t\"\n",
    );
    for (name, cmd) in steps {
        sc.push_str(&format!(
            "{{ {cmd}\n}} || {{ echo \"step {name} failed\" >&2; exit 1; }}; read t _ </proc/uptime; echo \"T {name} $t\"\n"
        ));
    }
    let o = node.run_ok(&sc)?;
    parse_timed(&o.stdout)
        .with_context(|| format!("node {}: script output {:?}", node.name(), o.stdout))
}

fn parse_timed(out: &str) -> Result<Timed> {
    let mut anchor = None;
    let mut marks: Vec<(String, f64)> = Vec::new();
    for l in out.lines() {
        let f: Vec<&str> = l.split_whitespace().collect();
        match f.as_slice() {
            ["W", w, u0, u1] => {
                let (w, u0, u1): (f64, f64, f64) = (w.parse()?, u0.parse()?, u1.parse()?);
                anchor = Some((
                    w / 1000.0 - (u0 + u1) / 2.0 * 1000.0,
                    (u1 - u0) * 500.0 + 5.0,
                ));
            }
            ["T", name, t] => marks.push((name.to_string(), t.parse::<f64>()? * 1000.0)),
            _ => {}
        }
    }
    let (off, err) = anchor.ok_or_else(|| anyhow!("no clock anchor"))?;
    let (first, rest) = marks
        .split_first()
        .ok_or_else(|| anyhow!("no start mark"))?;
    let mut prev = first.1;
    let stages = rest
        .iter()
        .map(|(n, t)| {
            let d = t - prev;
            prev = *t;
            (n.clone(), d)
        })
        .collect();
    Ok(Timed {
        start: first.1 + off,
        stages,
        err,
    })
}

/// The classic demote of `rs` (resource `i` served at tid `i + 1`, as the agents' lab config
/// has it): each target offline and its connections closed, the address deleted, each target
/// deleted (retried while tgtd still has I/O in flight), each minor Secondary.
fn classic_demote(rs: &[Resource]) -> Vec<(&'static str, String)> {
    let tids = (1..=rs.len())
        .map(|t| t.to_string())
        .collect::<Vec<_>>()
        .join(" ");
    let minors: Vec<String> = rs.iter().map(|r| r.minor.to_string()).collect();
    vec![
        (
            "target-offline",
            format!(
                "for t in {tids}; do \
                 tgtadm --lld iscsi --op update --mode target --tid $t -n state -v offline && \
                 tgtadm --lld iscsi --op show --mode conn --tid $t | awk '/Session:/{{s=$2}} /Connection:/{{print s, $2}}' | \
                 while read s c; do tgtadm --lld iscsi --op delete --mode conn --tid $t --sid $s --cid $c; done || exit 1; done"
            ),
        ),
        (
            "address-release",
            format!(
                "ip addr del {}/{} dev eth0",
                crate::FLOATING_IP,
                crate::PREFIX
            ),
        ),
        (
            "target-remove",
            format!(
                "for t in {tids}; do i=0; until tgtadm --lld iscsi --op delete --force --mode target --tid $t 2>/dev/null; do \
                 i=$((i+1)); [ $i -ge 250 ] && exit 1; sleep 0.02; done; done"
            ),
        ),
        (
            "drbd-secondary",
            format!("for m in {}; do drbdsetup-84 secondary $m || exit 1; done", minors.join(" ")),
        ),
    ]
}

/// The classic promote of `rs` (tids as [`classic_demote`]): DRBD Primary of each minor
/// (retried while a dead peer still looks connected when `retry`), each target + write-through
/// LUN + ACL, the address + one gratuitous ARP. One resource is the script of the switchover
/// and power-loss runs; several, the scaling phase's comparison.
fn classic_promote(rs: &[Resource], retry: bool) -> Vec<(&'static str, String)> {
    let primary = |m: u32| {
        if retry {
            format!(
                "i=0; until drbdsetup-84 primary {m} 2>/dev/null; do i=$((i+1)); [ $i -ge 200 ] && exit 1; sleep 0.05; done"
            )
        } else {
            format!("drbdsetup-84 primary {m}")
        }
    };
    let primaries: Vec<String> = rs.iter().map(|r| primary(r.minor)).collect();
    let targets: Vec<String> = rs
        .iter()
        .enumerate()
        .map(|(i, r)| {
            format!(
                "tgtadm --lld iscsi --op new --mode target --tid {tid} -T {iqn} && \
                 tgtadm --lld iscsi --op new --mode logicalunit --tid {tid} --lun 1 -b {dev} --bsoflags sync && \
                 tgtadm --lld iscsi --op update --mode logicalunit --tid {tid} --lun 1 --params mode_page={WCE_OFF} && \
                 tgtadm --lld iscsi --op bind --mode target --tid {tid} -I ALL",
                tid = i + 1,
                iqn = al::iqn_of(r),
                dev = r.device()
            )
        })
        .collect();
    vec![
        ("drbd-primary", primaries.join(" && ")),
        ("target-serve", targets.join(" && ")),
        (
            "address-claim",
            format!(
                "ip addr add {vip}/{p} dev eth0 && arping -U -c 1 -I eth0 {vip} >/dev/null",
                vip = crate::FLOATING_IP,
                p = crate::PREFIX
            ),
        ),
    ]
}

fn idle_agent(node: &Node, role: &str, secs: f64) -> Result<Idle> {
    let o = node.run_timeout(
        &format!(
            "p=$(cat {pid}); c() {{ cat /proc/$p/task/*/status | awk '/^voluntary_ctxt_switches|^nonvoluntary_ctxt_switches/{{n+=$2}} END{{print n}}'; }}; \
             a=$(c); sleep {secs}; b=$(c); grep -E '^(VmRSS|VmHWM|Threads):' /proc/$p/status; echo \"CTXT $a $b\"",
            pid = al::AGENT_PID
        ),
        Duration::from_secs_f64(secs + 60.0),
    )?;
    let field = |k: &str| -> u64 {
        o.stdout
            .lines()
            .find_map(|l| l.strip_prefix(k))
            .and_then(|v| v.split_whitespace().next())
            .and_then(|v| v.parse().ok())
            .unwrap_or(0)
    };
    let ctxt = field("CTXT ");
    let ctxt2 = o
        .stdout
        .lines()
        .find_map(|l| l.strip_prefix("CTXT "))
        .and_then(|v| v.split_whitespace().nth(1))
        .and_then(|v| v.parse::<u64>().ok())
        .ok_or_else(|| anyhow!("node {}: idle probe: {:?}", node.name(), o.stdout))?;
    let n = ctxt2.saturating_sub(ctxt);
    Ok(Idle {
        node: node.name().into(),
        role: role.into(),
        rss_kib: field("VmRSS:"),
        hwm_kib: field("VmHWM:"),
        threads: field("Threads:"),
        ctxt_switches: n,
        seconds: secs,
        wakeups_per_s: n as f64 / secs,
    })
}

/// `k` resources on `brd` RAM disks (4 MiB each, DRBD minors 11.., ports 7801..), agents on
/// pool.conf, `runs` switchovers; the promote span from the new primary's records.
fn scale(lab: &Lab, k: usize, runs: usize, tgtd_threads: Option<u32>) -> Result<Scale> {
    al::reset(lab)?;
    let (a, b) = (lab.node(0)?, lab.node(1)?);
    let rs: Vec<Resource> = (0..k)
        .map(|i| Resource {
            name: format!("s{}", i + 1),
            minor: 11 + i as u32,
            port: 7801 + i as u16,
            disk: format!("/dev/ram{i}"),
        })
        .collect();
    for n in [a, b] {
        n.run_ok(&format!(
            "[ -b /dev/ram{last} ] || {{ rmmod brd && insmod /mods/brd.ko rd_nr={k} rd_size=4096; }}",
            last = k.saturating_sub(1)
        ))?;
    }
    for r in &rs {
        bringup::drbd84_pair_connect(a, b, r)?;
    }
    let uuids: Vec<String> = rs
        .iter()
        .map(|r| format!("drbdsetup-84 new-current-uuid --clear-bitmap {}", r.minor))
        .collect();
    a.run_ok(&uuids.join(" && "))?;
    bringup::wait_until(
        a,
        &format!(
            "[ $(grep -c 'cs:Connected ro:Secondary/Secondary ds:UpToDate/UpToDate' /proc/drbd) -ge {k} ]"
        ),
        "every resource UpToDate/UpToDate",
        Duration::from_secs(120),
    )?;
    for n in [a, b] {
        al::start_tgtd_with(n, tgtd_threads)?;
        al::install_config_for(n, &rs, Source::PoolConf)?;
    }
    al::set_pool_conf(a, Some(al::master()))?;
    al::set_pool_conf(b, Some(&al::slave_of(a)))?;
    al::start_agent(a)?;
    al::start_agent(b)?;
    let slow = Duration::from_secs(180);
    al::wait_status(a, "a to serve", slow, al::is_serving)?;
    al::wait_status(b, "b converged Secondary", slow, al::is_secondary)?;
    let (mut p, mut s) = (a, b);
    let (mut promote, mut serving) = (Vec::new(), Vec::new());
    let mut stage_ms: std::collections::BTreeMap<String, Vec<f64>> = Default::default();
    let mut transitions = Vec::new();
    let (mut agent_cpu, mut guest_busy, mut cpu_window) = (Vec::new(), Vec::new(), Vec::new());
    let mut tgtd_cpu = Vec::new();
    let last_id = |v: &serde_json::Value| al::transitions(v).last().map(|t| t.id);
    let profile = crate::guest_perf::wanted(a)?;
    // Switchover 0 warms up and is not counted: the first promote of a fresh agent also pays
    // TCG's translation of its code, once per boot (so does each classic tool's first run).
    for run in 0..=runs {
        let warm = run == 0;
        let profile = profile && !warm;
        let pid0 = last_id(&al::status(p)?);
        let sid0 = last_id(&al::status(s)?);
        al::set_pool_conf(p, Some(&al::slave_of(s)))?;
        al::wait_status(p, "old primary to demote", slow, |v| {
            al::is_secondary(v) && last_id(v) != pid0
        })?;
        let tag = format!("scale-{k}-{run}");
        if profile {
            crate::guest_perf::start(s, &tag)?;
        }
        let done0 = log_mark(s)?;
        let cpu0 = CpuSample::read(s)?;
        let sig = signal_and_wait_logged(s, al::master(), PROMOTE_LOGGED, done0, slow)?;
        let cpu1 = CpuSample::read(s)?;
        if profile {
            crate::guest_perf::stop(s)?;
        }
        let vs = al::wait_status(s, "new primary to serve", slow, |v| {
            al::is_serving(v) && last_id(v) != sid0
        })?;
        let (st, end, stages) = promote_span(&vs, sid0)?;
        if profile {
            crate::guest_perf::report(s, &tag, st, end)?;
        }
        std::mem::swap(&mut p, &mut s);
        if warm {
            continue;
        }
        agent_cpu.push(cpu1.agent_ms - cpu0.agent_ms);
        tgtd_cpu.push(cpu1.tgtd_ms - cpu0.tgtd_ms);
        guest_busy.push(cpu1.busy_ms - cpu0.busy_ms);
        cpu_window.push(cpu1.uptime_ms - cpu0.uptime_ms);
        promote.push(end - st);
        serving.push(end - sig);
        transitions.push(
            al::transitions(&vs)
                .iter()
                .filter(|t| t.kind == "promote" && Some(t.id) > sid0 && !t.stages.is_empty())
                .count(),
        );
        let mut sums: std::collections::BTreeMap<String, f64> = Default::default();
        for (name, ms) in stages {
            *sums.entry(name).or_default() += ms;
        }
        for (name, ms) in sums {
            stage_ms.entry(name).or_default().push(ms);
        }
    }
    // The classic tools on the same resources and nodes: the agents stopped (SIGTERM deletes
    // the standby's staged targets), then scripts take turns as in the switchover runs (the
    // first again not counted).
    for n in [a, b] {
        al::stop_agent(n, "TERM")?;
    }
    let mut classic = Vec::new();
    let mut classic_stages: std::collections::BTreeMap<String, Vec<f64>> = Default::default();
    for run in 0..=runs {
        timed_script(p, &classic_demote(&rs))?;
        let pro = timed_script(s, &classic_promote(&rs, false))?;
        std::mem::swap(&mut p, &mut s);
        if run == 0 {
            continue;
        }
        classic.push(pro.end() - pro.start);
        for (name, ms) in &pro.stages {
            classic_stages.entry(name.clone()).or_default().push(*ms);
        }
    }
    al::reset(lab)?;
    Ok(Scale {
        classic_promote: Stat::of(&classic),
        classic_promote_ms: classic,
        classic_stages: classic_stages
            .iter()
            .map(|(n, v)| (n.clone(), Stat::of(v)))
            .collect(),
        resources: k,
        tgtd_threads,
        promote: Stat::of(&promote),
        signal_to_serving: Stat::of(&serving),
        promote_ms: promote,
        signal_to_serving_ms: serving,
        promote_stages: stage_ms
            .iter()
            .map(|(n, v)| (n.clone(), Stat::of(v)))
            .collect(),
        promote_transitions: transitions,
        agent_cpu_ms: agent_cpu,
        tgtd_cpu_ms: tgtd_cpu,
        guest_busy_ms: guest_busy,
        cpu_window_ms: cpu_window,
    })
}

/// CPU counters of a guest at one moment: the agent's, tgtd's and the whole guest's, ms (clock
/// ticks of 10 ms, `USER_HZ` = 100).
struct CpuSample {
    agent_ms: f64,
    tgtd_ms: f64,
    busy_ms: f64,
    uptime_ms: f64,
}

impl CpuSample {
    /// One guest command: the agent's and tgtd's `/proc/PID/stat`, the `cpu` line of
    /// `/proc/stat`, uptime.
    fn read(node: &Node) -> Result<CpuSample> {
        let out = node.run_ok(&format!(
            "cat /proc/$(cat {pid})/stat /proc/$(pidof tgtd)/stat; head -1 /proc/stat; \
             cut -d' ' -f1 /proc/uptime",
            pid = al::AGENT_PID
        ))?;
        Self::parse(&out.stdout)
            .with_context(|| format!("CPU counters on {}: {:?}", node.name(), out.stdout))
    }

    fn parse(text: &str) -> Option<CpuSample> {
        let mut lines = text.lines();
        // After the command name's ")": state is field 3, utime 14 and stime 15.
        let ticks = |line: &str| -> Option<f64> {
            let f: Vec<f64> = line
                .rsplit_once(')')?
                .1
                .split_whitespace()
                .filter_map(|x| x.parse().ok())
                .collect();
            Some(f.get(10)? + f.get(11)?)
        };
        let agent = ticks(lines.next()?)?;
        let tgtd = ticks(lines.next()?)?;
        let cpu: Vec<f64> = lines
            .next()?
            .split_whitespace()
            .skip(1)
            .filter_map(|x| x.parse().ok())
            .collect();
        let busy = cpu.iter().sum::<f64>() - cpu.get(3)? - cpu.get(4)?;
        let uptime: f64 = lines.next()?.trim().parse().ok()?;
        Some(CpuSample {
            agent_ms: agent * 10.0,
            tgtd_ms: tgtd * 10.0,
            busy_ms: busy * 10.0,
            uptime_ms: uptime * 1000.0,
        })
    }
}

/// The agent's log line of a finished promote (the transition line, with its stage times), as a
/// shell pattern.
const PROMOTE_LOGGED: &str = "promote*stages=";
/// The agent's log line of a finished demote, as a shell pattern.
const DEMOTE_LOGGED: &str = "demote*stages=";

/// Where the agent's log on `node` ends now (its length, bytes): [`until_logged`] reads only
/// what comes after it.
fn log_mark(node: &Node) -> Result<u64> {
    let o = node.run_ok(&format!("wc -c <{}", al::AGENT_LOG))?;
    o.stdout
        .trim()
        .parse()
        .with_context(|| format!("agent log size on {}: {:?}", node.name(), o.stdout))
}

/// A FIFO in the guest that nobody writes to: `read -t` on it is a pause without a process.
const PAUSE_FIFO: &str = "/tmp/.lab-pause";

/// Shell for the guest that opens [`PAUSE_FIFO`] on fd 9 (`pause` then waits on it): busybox's
/// `sleep` is a process of its own, ~12 ms of the guest's one TCG vCPU each time.
fn pauses() -> String {
    format!("[ -p {PAUSE_FIFO} ] || mkfifo {PAUSE_FIFO}; exec 9<>{PAUSE_FIFO}")
}

/// Shell: a pause of `secs` on the FIFO [`pauses`] opened.
fn pause(secs: &str) -> String {
    format!("read -t {secs} _ <&9")
}

/// Shell loop for the guest: until a line of the agent's log after `mark` ([`log_mark`])
/// matches the shell pattern `pattern` (exit 3 when the agent is gone, 4 after `timeout`). It
/// starts no process per poll (the shell's own `read`, `case`, `kill` and [`pause`]; one `dd`
/// to skip to `mark`): the loop it replaced (a `grep`, `cat` and `sleep` every 100 ms) took a
/// third of the guest's one TCG vCPU from the promote it was timing. Not by polling
/// `iscsi-ha status` either: each poll is a new process of the agent's binary.
fn until_logged(pattern: &str, mark: u64, timeout: Duration) -> String {
    let (open, poll) = until_logged_parts(pattern, mark, timeout);
    format!("{open}; {poll}")
}

/// [`until_logged`] in two parts: opening the log at `mark` (and the pause FIFO), then the loop.
/// Between them a command may change what the agent sees ([`signal_and_wait_logged`]).
fn until_logged_parts(pattern: &str, mark: u64, timeout: Duration) -> (String, String) {
    assert!(
        !pattern.contains(['[', '?', '\'', '"']),
        "until_logged: plain pattern expected, got {pattern:?}"
    );
    let skip = if mark > 0 {
        format!("; dd bs={mark} skip=1 count=0 <&3 2>/dev/null")
    } else {
        String::new()
    };
    (
        format!(
            "{pauses}; read pid <{pid}; exec 3<{log}{skip}",
            pauses = pauses(),
            pid = al::AGENT_PID,
            log = al::AGENT_LOG,
        ),
        format!(
            "i=0; p=; \
             while :; do \
               while IFS= read -r l <&3; do case \"$p$l\" in *{pattern}*) exit 0;; esac; p=; done; \
               p=\"$p$l\"; \
               kill -0 $pid 2>/dev/null || exit 3; [ $i -lt {max} ] || exit 4; \
               {pause}; i=$((i+1)); \
             done",
            max = timeout.as_millis() / 50,
            pause = pause("0.05"),
            pattern = pattern.replace(' ', "\\ "),
        ),
    )
}

/// Signals `node` as the authority's master (pool.conf renamed into place) and waits, in the
/// same guest command, until the agent's log after `mark` matches `pattern` ([`until_logged`]);
/// returns the signal's guest time (Unix ms). One command: the host sends nothing over the
/// guest's serial control channel while the agent acts (a second command's bytes, a few KiB of
/// base64 at one interrupt per byte, and the control loop's processes for the first one's
/// reply took tens of ms of the one TCG vCPU from the promote being timed).
fn signal_and_wait_logged(
    node: &Node,
    contents: &str,
    pattern: &str,
    mark: u64,
    timeout: Duration,
) -> Result<f64> {
    let (open, poll) = until_logged_parts(pattern, mark, timeout);
    let o = node.run_timeout(
        &format!(
            "{open}\n{} || exit 9\n{{ {poll}\n}} >/dev/null",
            crate::drill::pool_conf_signal(contents)?
        ),
        timeout + Duration::from_secs(30),
    )?;
    if o.rc != 0 {
        bail!(
            "node {}: signalled, then waiting for {pattern:?} in the agent's log: exit {} ({})\n{}",
            node.name(),
            o.rc,
            match o.rc {
                3 => "the agent is gone",
                4 => "timeout",
                9 => "the signal failed",
                _ => "?",
            },
            al::agent_log(node, 40)
        );
    }
    Ok(crate::drill::signal_time(&o.stdout)? as f64)
}

fn wait_logged(node: &Node, pattern: &str, mark: u64, timeout: Duration) -> Result<()> {
    node.run_ok(&until_logged(pattern, mark, timeout))
        .with_context(|| al::agent_log(node, 40))?;
    Ok(())
}

/// The figures of a sample that are summarised, by name.
fn figures(s: &Sample) -> Vec<(String, Option<f64>)> {
    let mut v = vec![
        (
            "signal -> serving".to_string(),
            Some(s.signal_to_serving_ms),
        ),
        (
            "signal -> promote start".to_string(),
            Some(s.signal_to_promote_start_ms),
        ),
        ("signal -> first ack".to_string(), s.signal_to_first_ack_ms),
        (
            "serving -> first ack".to_string(),
            s.serving_to_first_ack_ms,
        ),
        ("start -> first ack".to_string(), s.start_to_first_ack_ms),
        ("client pause".to_string(), s.client_pause_ms),
    ];
    for (n, ms) in &s.promote_stages_ms {
        v.push((format!("promote stage: {n}"), Some(*ms)));
    }
    for (n, ms) in &s.demote_stages_ms {
        v.push((format!("demote stage: {n}"), Some(*ms)));
    }
    for (n, ms) in &s.events {
        v.push((format!("event: {n}"), Some(*ms)));
    }
    v
}

fn summarise(samples: &[Sample]) -> Vec<Row> {
    let mut rows: Vec<(Case, Tool, String, Vec<f64>)> = Vec::new();
    for s in samples {
        for (m, v) in figures(s) {
            let Some(v) = v.filter(|v| v.is_finite()) else {
                continue;
            };
            match rows
                .iter_mut()
                .find(|(c, t, n, _)| *c == s.case && *t == s.tool && *n == m)
            {
                Some(r) => r.3.push(v),
                None => rows.push((s.case, s.tool, m, vec![v])),
            }
        }
    }
    rows.into_iter()
        .map(|(case, tool, metric, v)| Row {
            case,
            tool,
            metric,
            stat: Stat::of(&v),
        })
        .collect()
}

fn median_of(rows: &[Row], case: Case, tool: Tool, metric: &str) -> Option<Stat> {
    rows.iter()
        .find(|r| r.case == case && r.tool == tool && r.metric == metric)
        .map(|r| r.stat)
}

const MAIN: [&str; 5] = [
    "signal -> serving",
    "signal -> first ack",
    "serving -> first ack",
    "start -> first ack",
    "client pause",
];

fn report(
    b: Bench,
    o: &BenchOpts,
    load0: String,
    error: Option<String>,
    t0: Instant,
) -> BenchReport {
    let summary = summarise(&b.samples);
    let mut ratios = Vec::new();
    for case in CASES {
        for m in MAIN {
            if let (Some(a), Some(c)) = (
                median_of(&summary, case, Tool::Agent, m),
                median_of(&summary, case.classic(), Tool::Classic, m),
            ) {
                ratios.push(Ratio {
                    case,
                    metric: m.into(),
                    agent_ms: a.median_ms,
                    classic_ms: c.median_ms,
                    ratio: if c.median_ms > 0.0 {
                        a.median_ms / c.median_ms
                    } else {
                        f64::NAN
                    },
                });
            }
        }
    }
    let lab_threads = b.scaling.first().and_then(|s| s.tgtd_threads);
    let scaling_ratio = ratio_of(&b.scaling, lab_threads, |s| &s.promote);
    let scaling_ratio_tgtd_threads = o
        .scaling_tgtd_threads
        .and_then(|t| Some((t, ratio_of(&b.scaling, Some(t), |s| &s.promote)?)));
    let goals = goals(&summary, &b, scaling_ratio, scaling_ratio_tgtd_threads);
    let managed: Vec<&Sample> = b
        .samples
        .iter()
        .filter(|s| s.case == Case::PowerLossManaged)
        .collect();
    let managed_rejoins_replayed = [
        managed.iter().filter(|s| s.rejoin_replay.is_some()).count(),
        managed.len(),
    ];
    BenchReport {
        reproduce: reproduce(o),
        loadavg: [load0, loadavg()],
        qemu: crate::qemu::QemuProgram::resolve().version(),
        commit: crate::assets::source_commit(),
        samples: b.samples,
        summary,
        ratios,
        restarts: b.restarts,
        idle: b.idle,
        scaling: b.scaling,
        scaling_ratio,
        scaling_ratio_tgtd_threads,
        ledger: b.acked_lost_torn,
        ledger_managed: b.acked_lost_torn_managed,
        managed_rejoins_replayed,
        goals,
        error,
        seconds: t0.elapsed().as_secs_f64(),
    }
}

/// `a / b` with two decimals, `-` without a classic figure.
fn ratio_text(a: f64, b: f64) -> String {
    if b > 0.0 {
        format!("{:.2}", a / b)
    } else {
        "-".into()
    }
}

/// `figure` (the agent's promote, or the classic tools') of the largest resource count / of the
/// smallest, among the scaling runs with tgtd's `threads`.
fn ratio_of(scaling: &[Scale], threads: Option<u32>, figure: fn(&Scale) -> &Stat) -> Option<f64> {
    let group: Vec<&Scale> = scaling
        .iter()
        .filter(|s| s.tgtd_threads == threads)
        .collect();
    let (one, big) = (group.first()?, group.last()?);
    let (one_ms, big_ms) = (figure(one).median_ms, figure(big).median_ms);
    (one_ms > 0.0 && big.resources > one.resources).then(|| big_ms / one_ms)
}

fn goals(
    rows: &[Row],
    b: &Bench,
    scaling_ratio: Option<f64>,
    with_threads: Option<(u32, f64)>,
) -> Vec<Goal> {
    let m = |case: Case, tool: Tool, metric: &str| median_of(rows, case, tool, metric);
    let mut g = Vec::new();
    // The agent's figure of `case` against the classic tools' of `case.classic()`.
    let mut vs = |goal: &str, case: Case, metric: &str, extra: Option<f64>| {
        let (a, c) = (
            m(case, Tool::Agent, metric),
            m(case.classic(), Tool::Classic, metric),
        );
        let met = match (a, c) {
            (Some(a), Some(c)) => {
                Some(a.median_ms < c.median_ms && extra.is_none_or(|x| a.median_ms < x))
            }
            _ => None,
        };
        g.push(Goal {
            goal: goal.into(),
            figure: format!(
                "agent median {} ms, classic median {} ms",
                a.map(|s| format!("{:.0}", s.median_ms))
                    .unwrap_or("-".into()),
                c.map(|s| format!("{:.0}", s.median_ms))
                    .unwrap_or("-".into())
            ),
            met,
        });
    };
    vs(
        "planned switchover: signal -> client answered below the classic tools",
        Case::Switchover,
        "signal -> first ack",
        None,
    );
    vs(
        "power loss: client I/O resumes < 2 s after the kill and below the classic drill",
        Case::PowerLoss,
        "start -> first ack",
        Some(2000.0),
    );
    // "No later than": the agent's DRBD Primary, counted from the SIGKILL like the classic's.
    vs(
        "power loss: the survivor is DRBD Primary no later than with the classic tools",
        Case::PowerLoss,
        "event: new: drbd-primary done",
        None,
    );
    vs(
        "power loss (manage mode, DRBD fencing resource-only): the survivor is DRBD Primary no \
         later than with the classic tools",
        Case::PowerLossManaged,
        "event: new: drbd-primary done",
        None,
    );
    // The probe starts at the old primary's release (its notice), so no fixed window can be
    // subtracted: the promote up to its last target served is the agent's own work, and the
    // claim (its own few ms and what is left of the window) is shown beside it.
    let span = |from: &str, to: &str| -> Vec<f64> {
        b.samples
            .iter()
            .filter(|x| x.case == Case::Switchover && x.tool == Tool::Agent)
            .filter_map(|x| {
                let at = |n: &str| x.events.iter().find(|e| e.0 == n).map(|e| e.1);
                Some(at(to)? - at(from)?)
            })
            .collect()
    };
    let own = span("new: start", "new: target-serve done");
    let claim = span("new: target-serve done", "new: address-claim done");
    let own = (!own.is_empty()).then(|| (Stat::of(&own), Stat::of(&claim)));
    g.push(Goal {
        goal:
            "agent's own promote excluding the configured probe window (200 ms in the lab) < 50 ms"
                .into(),
        figure: own
            .map(|(o, c)| {
                format!(
                    "promote start -> every target served: median {:.0} ms, p95 {:.0} ms; then \
                     the claim (with what is left of the probe window, which runs from the old \
                     primary's release): median {:.0} ms, p95 {:.0} ms",
                    o.median_ms, o.p95_ms, c.median_ms, c.p95_ms
                )
            })
            .unwrap_or("-".into()),
        met: own.map(|(o, _)| o.median_ms < 50.0),
    });
    let pause = m(Case::Switchover, Tool::Agent, "client pause");
    g.push(Goal {
        goal: "planned switchover: client I/O pause p95 < 500 ms".into(),
        figure: pause
            .map(|p| format!("p95 {:.0} ms (median {:.0} ms)", p.p95_ms, p.median_ms))
            .unwrap_or("-".into()),
        met: pause.map(|p| p.p95_ms < 500.0),
    });
    g.push(Goal {
        goal: "32 resources promote in < 3x the time of one".into(),
        figure: scaling_ratio
            .map(|r| {
                let also = with_threads
                    .map(|(t, r)| format!("; with tgtd -t {t}: {r:.2}x"))
                    .unwrap_or_default();
                let lab_threads = b.scaling.first().and_then(|s| s.tgtd_threads);
                let classic = ratio_of(&b.scaling, lab_threads, |s| &s.classic_promote)
                    .map(|c| format!("; the classic tools in the same run: {c:.2}x"))
                    .unwrap_or_default();
                format!("{r:.2}x (largest count vs 1, tgtd as the lab starts it){also}{classic}")
            })
            .unwrap_or("-".into()),
        met: scaling_ratio
            .filter(|_| {
                b.scaling.first().is_some_and(|f| {
                    b.scaling
                        .iter()
                        .any(|s| s.tgtd_threads == f.tgtd_threads && s.resources >= 32)
                })
            })
            .map(|r| r < 3.0),
    });
    // Judged on the restarts under the client's writes (the harder case); both are shown.
    let restart_goal = |goal: &str, limit: f64, of: fn(&Restart) -> Option<f64>| {
        let pick = |writing: bool| -> Vec<f64> {
            b.restarts
                .iter()
                .filter(|r| r.client_writing == writing)
                .filter_map(of)
                .collect()
        };
        let (busy, idle) = (pick(true), pick(false));
        let say = |v: &[f64]| {
            let st = Stat::of(v);
            format!(
                "median {:.0} ms, p95 {:.0} ms (n = {})",
                st.median_ms,
                st.p95_ms,
                v.len()
            )
        };
        Goal {
            goal: goal.into(),
            figure: format!(
                "agent's log, from exec: client writing {}; guest idle {}",
                say(&busy),
                say(&idle)
            ),
            met: (!busy.is_empty()).then(|| Stat::of(&busy).median_ms < limit),
        }
    };
    g.push(restart_goal(
        "restart -> serving again < 1 s",
        1000.0,
        |r| r.agent_exec_to_serving_ms,
    ));
    g.push(restart_goal(
        "restart -> `status` answered within 100 ms",
        100.0,
        |r| r.agent_exec_to_status_ms,
    ));
    let rss = b.idle.iter().map(|i| i.rss_kib).max();
    let wk = b
        .idle
        .iter()
        .map(|i| i.wakeups_per_s)
        .fold(f64::NAN, f64::max);
    g.push(Goal {
        goal: "idle RSS < 10 MiB, no periodic wake-ups beyond configured timers".into(),
        figure: format!(
            "max RSS {} KiB, max {wk:.2} context switches/s",
            rss.unwrap_or(0)
        ),
        met: rss.map(|r| r < 10 * 1024),
    });
    g
}

fn f(v: Option<f64>) -> String {
    v.map(|x| format!("{x:.0}")).unwrap_or_else(|| "-".into())
}

fn markdown(rep: &BenchReport) -> String {
    let mut md = format!(
        "# lab bench-takeover\n\n`{}`\n\n{}, commit {}. Load average at start / end: {} / {}. {:.0} s. Client writes acknowledged {}, lost {}, torn {}.{}\n\n",
        rep.reproduce,
        rep.qemu.as_deref().unwrap_or("QEMU version unknown"),
        rep.commit.as_deref().unwrap_or("unknown"),
        rep.loadavg[0],
        rep.loadavg[1],
        rep.seconds,
        rep.ledger[0],
        rep.ledger[1],
        rep.ledger[2],
        rep.error
            .as_ref()
            .map(|e| format!(
                "\n\n**Stopped early**: {}",
                e.lines().next().unwrap_or_default()
            ))
            .unwrap_or_default()
    );
    if let Some([acked, lost, torn]) = rep.ledger_managed {
        let [replayed, rejoins] = rep.managed_rejoins_replayed;
        md.push_str(&format!(
            "Manage-mode power losses (agents in `mode = \"manage\"`, DRBD fencing `resource-only`, fresh metadata, their own ledger): client writes acknowledged {acked}, lost {lost}, torn {torn}; {replayed} of {rejoins} rejoins replayed the activity log. Their classic column is the classic power loss of the same run.\n\n"
        ));
    }
    md.push_str("## Goals\n\n| goal | figure | met |\n|---|---|---|\n");
    for g in &rep.goals {
        md.push_str(&format!(
            "| {} | {} | {} |\n",
            g.goal,
            g.figure,
            match g.met {
                Some(true) => "yes",
                Some(false) => "**no**",
                None => "not measured",
            }
        ));
    }
    md.push_str("\n## Agent vs classic (median / p95 ms, ratio of medians)\n\n| case | figure | agent | classic | agent/classic |\n|---|---|---|---|---|\n");
    for case in CASES {
        for m in MAIN {
            let a = median_of(&rep.summary, case, Tool::Agent, m);
            let c = median_of(&rep.summary, case.classic(), Tool::Classic, m);
            let fs = |s: Option<Stat>| {
                s.map(|s| format!("{:.0} / {:.0} (n={})", s.median_ms, s.p95_ms, s.n))
                    .unwrap_or("-".into())
            };
            let r = rep
                .ratios
                .iter()
                .find(|r| r.case == case && r.metric == m)
                .map(|r| format!("{:.2}", r.ratio))
                .unwrap_or("-".into());
            md.push_str(&format!(
                "| {case:?} | {m} | {} | {} | {r} |\n",
                fs(a),
                fs(c)
            ));
        }
    }
    md.push_str("\nStart = the old primary's signal (switchover) or the SIGKILL (power loss); signal = the new primary's authority signal (agent: pool.conf renamed into place; classic: its script starts); serving = target and address up; first ack = the client's first acknowledged write after the takeover; client pause = longest gap between two acknowledged writes.\n\n## Stages and timeline (median ms)\n\n| case | tool | figure | median | p95 |\n|---|---|---|---|---|\n");
    for r in rep
        .summary
        .iter()
        .filter(|r| !MAIN.contains(&r.metric.as_str()))
    {
        md.push_str(&format!(
            "| {:?} | {:?} | {} | {:.0} | {:.0} |\n",
            r.case, r.tool, r.metric, r.stat.median_ms, r.stat.p95_ms
        ));
    }
    md.push_str("\n## Scaling (planned switchover)\n\n| resources | tgtd I/O threads per LU | agent promote median ms | p95 | agent signal -> serving median ms | p95 | classic promote median ms | p95 | agent / classic |\n|---|---|---|---|---|---|---|---|---|\n");
    for s in &rep.scaling {
        md.push_str(&format!(
            "| {} | {} | {:.0} | {:.0} | {:.0} | {:.0} | {:.0} | {:.0} | {} |\n",
            s.resources,
            tgtd_threads(s),
            s.promote.median_ms,
            s.promote.p95_ms,
            s.signal_to_serving.median_ms,
            s.signal_to_serving.p95_ms,
            s.classic_promote.median_ms,
            s.classic_promote.p95_ms,
            ratio_text(s.signal_to_serving.median_ms, s.classic_promote.median_ms),
        ));
    }
    md.push_str("\nClassic promote: one script on the new primary after the agents stopped, `drbdsetup-84 primary` of each minor, then each target (target, LU, mode page, ACL: four `tgtadm`), then `ip addr add` + `arping`; compared with the agent's signal -> serving.\n");
    // "name median / p95, ..." of a stage table
    let listed = |stages: &std::collections::BTreeMap<String, Stat>| {
        let v: Vec<String> = stages
            .iter()
            .map(|(n, st)| format!("{n} {:.0} / {:.0}", st.median_ms, st.p95_ms))
            .collect();
        v.join(", ")
    };
    for s in &rep.scaling {
        md.push_str(&format!(
            "\n{} resources ({} tgtd threads), promote stages (median / p95 ms; transitions per promote {:?}): {}\n",
            s.resources,
            tgtd_threads(s),
            s.promote_transitions,
            listed(&s.promote_stages)
        ));
        md.push_str(&format!(
            "\n{} resources, classic promote steps (median / p95 ms): {}\n",
            s.resources,
            listed(&s.classic_stages)
        ));
        md.push_str(&format!(
            "\n{} resources, new primary from the signal to the promote logged (median ms): window {:.0}, agent CPU {:.0}, tgtd CPU {:.0}, guest CPU busy {:.0}\n",
            s.resources,
            Stat::of(&s.cpu_window_ms).median_ms,
            Stat::of(&s.agent_cpu_ms).median_ms,
            Stat::of(&s.tgtd_cpu_ms).median_ms,
            Stat::of(&s.guest_busy_ms).median_ms
        ));
    }
    md.push_str("\n## Agent restart and idle\n\n| node | client | start -> status ms | start -> serving ms | agent's log: exec -> status ms | exec -> ready ms | exec -> serving ms | client pause ms |\n|---|---|---|---|---|---|---|---|\n");
    for r in &rep.restarts {
        md.push_str(&format!(
            "| {} | {} | {:.0} | {:.0} | {} | {} | {} | {} |\n",
            r.node,
            if r.client_writing { "writing" } else { "idle" },
            r.start_to_status_ms,
            r.start_to_serving_ms,
            f(r.agent_exec_to_status_ms),
            f(r.agent_exec_to_ready_ms),
            f(r.agent_exec_to_serving_ms),
            f(r.client_pause_ms)
        ));
    }
    md.push_str("\n| node | role | RSS KiB | peak RSS KiB | threads | context switches/s |\n|---|---|---|---|---|---|\n");
    for i in &rep.idle {
        md.push_str(&format!(
            "| {} | {} | {} | {} | {} | {:.2} |\n",
            i.node, i.role, i.rss_kib, i.hwm_kib, i.threads, i.wakeups_per_s
        ));
    }
    md.push_str("\n## Every takeover\n\n| case | tool | # | from -> to | signal -> serving | signal -> first ack | start -> first ack | client pause | what the client logged (ms since start) |\n|---|---|---|---|---|---|---|---|---|\n");
    for s in &rep.samples {
        md.push_str(&format!(
            "| {:?} | {:?} | {} | {} -> {} | {:.0} | {} | {} | {} | {} |\n",
            s.case,
            s.tool,
            s.n,
            s.from,
            s.to,
            s.signal_to_serving_ms,
            f(s.signal_to_first_ack_ms),
            f(s.start_to_first_ack_ms),
            f(s.client_pause_ms),
            s.client_log
                .iter()
                .take(4)
                .map(|(t, l)| format!("{t:.0}: {}", l.replace('|', "/")))
                .collect::<Vec<_>>()
                .join("; ")
        ));
    }
    md
}

/// tgtd's I/O threads per LU in a scaling run, for the report ("16 (default)" when not set).
fn tgtd_threads(s: &Scale) -> String {
    s.tgtd_threads
        .map_or("16 (default)".to_string(), |n| n.to_string())
}

/// A hand-written SVG: per case and figure, the agent's and the classic tools' medians as bars
/// with the p95 as a tick; then the scaling medians.
fn svg(rep: &BenchReport) -> String {
    let mut bars: Vec<(String, &str, Stat)> = Vec::new();
    for case in CASES {
        for m in ["signal -> serving", "signal -> first ack", "client pause"] {
            for (tool, colour) in [(Tool::Agent, "#2a6fb0"), (Tool::Classic, "#b0702a")] {
                if let Some(s) = median_of(&rep.summary, case, tool, m) {
                    bars.push((format!("{case:?} {m} ({tool:?})"), colour, s));
                }
            }
        }
    }
    for s in &rep.scaling {
        bars.push((
            format!(
                "agent promote, {} resources, tgtd {} threads",
                s.resources,
                tgtd_threads(s)
            ),
            "#3a9a5a",
            s.promote,
        ));
    }
    let max = bars.iter().map(|(_, _, s)| s.p95_ms).fold(1.0, f64::max);
    let (left, width, row) = (330.0, 520.0, 22.0);
    let h = 50.0 + row * bars.len() as f64;
    let mut out = format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{}\" height=\"{h}\" font-family=\"sans-serif\" font-size=\"12\">\n\
         <text x=\"10\" y=\"20\" font-size=\"14\">lab bench-takeover: median (bar) and p95 (tick), ms; load {}</text>\n",
        left + width + 90.0,
        xml(&rep.loadavg[0])
    );
    for (i, (label, colour, s)) in bars.iter().enumerate() {
        let y = 35.0 + row * i as f64;
        let wm = s.median_ms.max(0.0) / max * width;
        let wp = s.p95_ms.max(0.0) / max * width;
        out.push_str(&format!(
            "<text x=\"{}\" y=\"{}\" text-anchor=\"end\">{}</text>\
             <rect x=\"{left}\" y=\"{y}\" width=\"{wm:.1}\" height=\"16\" fill=\"{colour}\"/>\
             <line x1=\"{x:.1}\" x2=\"{x:.1}\" y1=\"{y}\" y2=\"{y2}\" stroke=\"black\"/>\
             <text x=\"{tx:.1}\" y=\"{ty}\">{:.0} / {:.0}</text>\n",
            left - 6.0,
            y + 12.0,
            xml(label),
            s.median_ms,
            s.p95_ms,
            x = left + wp,
            y2 = y + 16.0,
            tx = left + wp.max(wm) + 4.0,
            ty = y + 12.0,
        ));
    }
    out.push_str("</svg>\n");
    out
}

fn xml(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

fn write_report(rep: &BenchReport, stem: &str) -> Result<()> {
    let dir = crate::assets::write_json_report(stem, rep)?;
    std::fs::write(dir.join(format!("{stem}.md")), markdown(rep))?;
    std::fs::write(dir.join(format!("{stem}.svg")), svg(rep))?;
    println!(
        "reports: {}/{stem}.json, {stem}.md, {stem}.svg",
        dir.display()
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpu_counters_parse() {
        let text = "812 (iscsi-ha) S 1 812 812 0 -1 4194560 900 0 0 0 37 12 0 0 20 0 1 0 500\n\
                    301 (tgtd) S 1 301 301 0 -1 4194560 90 0 0 0 8 3 0 0 20 0 17 0 400\n\
                    cpu  100 5 60 9000 20 1 2 0 0 0\n123.45\n";
        let c = CpuSample::parse(text).expect("parses");
        assert_eq!(c.agent_ms, 490.0);
        assert_eq!(c.tgtd_ms, 110.0);
        assert_eq!(c.busy_ms, 1680.0);
        assert_eq!(c.uptime_ms, 123_450.0);
        assert!(CpuSample::parse("812 (iscsi-ha) S\n").is_none());
        assert!(CpuSample::parse("").is_none());
    }

    #[test]
    fn reproduce_names_every_option() {
        let o = BenchOpts {
            scaling: Vec::new(),
            settle_ms: Some(0),
            scaling_tgtd_threads: Some(4),
            ..BenchOpts::default()
        };
        let cmd = reproduce(&o);
        assert!(
            cmd.contains(
                "bench-takeover --runs 30 --power-runs 30 --manage-power-runs 30 --restarts 5 \
                 --scaling none --scaling-runs 5 --idle-s 10 --client-timeout 3 --settle-ms 0 \
                 --scaling-tgtd-threads 4 --report bench-takeover"
            ),
            "{cmd}"
        );
    }

    #[test]
    fn timed_script_output_parses() {
        let t = parse_timed(
            "W 1700000000123456 100.00 100.02\nT start 100.03\nT a 100.13\nT b 100.43\n",
        )
        .expect("parses");
        assert!(
            (t.start - (1_700_000_000_123.456 + 20.0)).abs() < 1e-3,
            "{}",
            t.start
        );
        assert_eq!(t.stages.len(), 2);
        assert!((t.stages[0].1 - 100.0).abs() < 1e-6 && (t.stages[1].1 - 300.0).abs() < 1e-6);
        assert!((t.end() - t.start - 400.0).abs() < 1e-6);
        assert!(parse_timed("T start 1\n").is_err());
        assert!(parse_timed("W x 1 2\n").is_err());
    }

    #[test]
    fn client_figures_take_the_longest_pause_in_the_window() {
        let mut s = Events::new(1000.0).sample(1200.0, 1500.0, 990.0);
        s.window.1 = 5000.0;
        let p = |from: f64, ms: f64| Pause {
            from_unix_ms: from,
            ms,
            cause: vec!["x".into()],
        };
        let mut v = vec![s];
        fill_client(
            &mut v,
            &[
                p(100.0, 60.0),
                p(1100.0, 900.0),
                p(2500.0, 80.0),
                p(9000.0, 5000.0),
            ],
            &[(1500.0, "login".into()), (3000.0, "late".into())],
        );
        let s = &v[0];
        assert_eq!(s.client_pause_ms, Some(900.0));
        assert_eq!(s.serving_to_first_ack_ms, Some(500.0));
        assert_eq!(s.signal_to_first_ack_ms, Some(800.0));
        assert_eq!(s.start_to_first_ack_ms, Some(1000.0));
        assert_eq!(s.client_log, vec![(500.0, "login".to_string())]);
        assert_eq!(
            client_log("[1.5] a b\njunk\n"),
            vec![(1500.0, "a b".into())]
        );
    }

    #[test]
    fn summary_ratios_and_svg() {
        let mk = |tool, ms: f64| {
            let mut s = Events::new(0.0).sample(0.0, ms, 0.0);
            s.tool = tool;
            s.signal_to_serving_ms = ms;
            s
        };
        let samples = vec![
            mk(Tool::Agent, 300.0),
            mk(Tool::Agent, 500.0),
            mk(Tool::Classic, 200.0),
        ];
        let rows = summarise(&samples);
        let a = median_of(&rows, Case::Switchover, Tool::Agent, "signal -> serving").expect("row");
        assert_eq!((a.n, a.median_ms, a.p95_ms), (2, 500.0, 500.0));
        let mut rep = BenchReport {
            reproduce: String::new(),
            loadavg: ["1 <2>".into(), String::new()],
            qemu: None,
            commit: None,
            samples: Vec::new(),
            summary: rows,
            ratios: Vec::new(),
            restarts: Vec::new(),
            idle: Vec::new(),
            scaling: Vec::new(),
            scaling_ratio: None,
            scaling_ratio_tgtd_threads: None,
            ledger: [0; 3],
            ledger_managed: None,
            managed_rejoins_replayed: [0; 2],
            goals: Vec::new(),
            error: None,
            seconds: 0.0,
        };
        let s = svg(&rep);
        assert!(
            s.starts_with("<svg") && s.contains("&lt;2&gt;") && s.matches("<rect").count() == 2
        );
        // The managed power loss faces the classic power loss of the same run.
        let mut lost = vec![mk(Tool::Classic, 200.0), mk(Tool::Agent, 400.0)];
        lost[0].case = Case::PowerLoss;
        lost[1].case = Case::PowerLossManaged;
        rep.summary = summarise(&lost);
        rep.ledger_managed = Some([10, 0, 0]);
        rep.managed_rejoins_replayed = [1, 1];
        let md = markdown(&rep);
        assert!(
            md.contains(
                "| PowerLossManaged | signal -> serving | 400 / 400 (n=1) | 200 / 200 (n=1) |"
            ) && md.contains("acknowledged 10, lost 0, torn 0; 1 of 1 rejoins"),
            "{md}"
        );
    }
}
