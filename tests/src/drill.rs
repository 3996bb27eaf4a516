//! The failover drill (`lab drill`), the project's main job, with the `iscsi-ha` agent doing the
//! failover:
//!
//! 1. lab up (2 nodes + client) with DRBD 8.4 or 9, DRBD pair Connected (bring-up with that
//!    version's `drbdsetup`), a marker block written on A, both left Secondary;
//! 2. tgtd started on both (as a service manager would), an `iscsi-ha` agent on each following
//!    `/etc/xensource/pool.conf`: A `master`, B `slave:10.99.0.1` -> A's agent promotes (DRBD
//!    Primary, target + LUN + ACL, floating address + gratuitous ARP);
//! 3. the client answers `iscsi-inq`, `iscsi-readcapacity16` and reads the marker via the address;
//! 4. SIGKILL of A's QEMU (power loss); B's pool.conf becomes `master` (what the pool master
//!    election writes) and B's agent takes over;
//! 5. the client reads the same marker through the address again; B's `iscsi-ha status`, the
//!    agent's per-stage figures and the timings are printed and written to
//!    `target/lab-report/lab-boot.json` and `lab-drill.json`; lab down.
//!
//! [`takeover`] is the former by-hand takeover with the classic tools (kept for comparison).
//! [`switchovers`] flips pool.conf back and forth N times and measures each transition.

use anyhow::{bail, Context, Result};
use std::time::{Duration, Instant};

use crate::agent_lab as al;
use crate::bringup::{self, Resource};
use crate::drbd9::{bringup as drbd9, DrbdVersion};
use crate::{Lab, LabConfig, Node};

/// Copies each node's console log and, from the nodes still running, the agent's log to
/// `target/lab-report/drill/` (replacing the last run's); says where, or why not.
fn keep_logs(lab: &Lab) -> String {
    let dir = crate::assets::report_dir().join("drill");
    let _ = std::fs::remove_dir_all(&dir);
    if let Err(e) = std::fs::create_dir_all(&dir) {
        return format!("logs not kept: {}: {e}", dir.display());
    }
    for n in lab.nodes() {
        let console = format!("{}.console.log", n.name());
        let _ = std::fs::copy(lab.run_dir().join(&console), dir.join(&console));
        if n.pid().is_some() {
            // No agent log (the drill failed before an agent started): no file, not cat's error.
            if let Ok(o) = n.run(&format!("cat {}", al::AGENT_LOG)) {
                if o.rc == 0 {
                    let _ = std::fs::write(dir.join(format!("{}.agent.log", n.name())), o.stdout);
                }
            }
        }
    }
    format!(
        "look at: {}/ (each node's console log; the agent's log of each node still up)",
        dir.display()
    )
}

/// The target name the drill serves.
pub const IQN: &str = "iqn.2024-01.lab.iscsi-ha:r0";
/// The marker written through DRBD on the primary and read back by the client.
pub const MARKER: &str = "ISCSI-HA-LAB-MARKER written on node a";

/// Timings and sizes of one drill run (seconds are host wall time).
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct DrillReport {
    /// Launch of the QEMUs -> every guest's control loop answered.
    pub boot_ready_s: f64,
    /// Launch -> DRBD `Connected` on both nodes (the goal: < 10 s).
    pub launch_to_connected_s: f64,
    /// Launch -> A Primary, target served, address claimed, client answered.
    pub launch_to_serving_s: f64,
    /// Sum of the QEMU processes' peak RSS (VmHWM) in MiB.
    pub peak_rss_mib_total: f64,
    /// Per node peak RSS in MiB (a, b).
    pub peak_rss_mib: Vec<f64>,
    /// B's agent: check-resource + drbd-primary stages (agent's own figures).
    pub takeover_primary_s: f64,
    /// B's agent: target-serve stage (target, LUN, identity, ACL).
    pub takeover_target_s: f64,
    /// B's agent: probe-address + address-claim stages (probe, add, gratuitous ARPs).
    pub takeover_vip_s: f64,
    /// SIGKILL of A -> B's pool.conf rewritten to `master` (the host's write over the control
    /// channel: stands for the HA election, which the lab does not time).
    pub kill_to_signal_s: f64,
    /// SIGKILL of A -> B's agent reports serving (host polls `iscsi-ha status`, ~0.1-0.3 s grain).
    pub kill_to_agent_serving_s: f64,
    /// B's pool.conf renamed into place -> B's promote transition started (guest clock; the agent
    /// asks DRBD at once, DRBD's own wait for the dead peer is in the drbd-primary stage,
    /// docs/takeover.md).
    pub signal_to_promote_start_s: f64,
    /// B's promote transition, total, from the agent's own figures.
    pub agent_promote_total_s: f64,
    /// B's promote transition per stage (name, ms), from the agent's own figures.
    pub agent_promote_stages_ms: Vec<(String, f64)>,
    /// SIGKILL of A -> the client read the marker through the address from B.
    pub kill_to_client_read_s: f64,
    /// Whole drill, lab up to lab down.
    pub total_s: f64,
    /// Host load average at the start (other builds slow TCG guests down).
    pub loadavg_at_start: String,
    /// Which DRBD the guests ran (`8.4`, `9`).
    pub drbd: DrbdVersion,
}

fn secs(d: Duration) -> f64 {
    (d.as_secs_f64() * 1000.0).round() / 1000.0
}

/// Takeover on `node` after the primary died: DRBD primary, tgtd with the target and LUN, floating
/// address with a gratuitous ARP. Returns the duration of each of the three steps.
pub fn takeover(node: &Node, r: &Resource) -> Result<[Duration; 3]> {
    let t = Instant::now();
    bringup::drbd84_primary(node, r)?;
    let t1 = t.elapsed();
    bringup::tgt_serve(node, 1, IQN, &r.device())?;
    let t2 = t.elapsed();
    bringup::claim_vip(node, crate::FLOATING_IP)?;
    let t3 = t.elapsed();
    Ok([t1, t2 - t1, t3 - t2])
}

/// Reads the marker from the client through the floating address (libiscsi READ(10)).
pub fn client_read_marker(lab: &Lab) -> Result<String> {
    let url = bringup::iscsi_url(crate::FLOATING_IP, IQN, 1);
    let bin = crate::host_bin("iscsi-read");
    let bin = bin.to_string_lossy();
    let o = lab
        .client()
        .run_ok(&[&bin, &url, "0", &MARKER.len().to_string()])?;
    Ok(o.stdout)
}

/// One line for a transition: kind, result, total and every stage in ms.
pub fn describe(t: &al::Transition) -> String {
    let stages: Vec<String> = t
        .stages
        .iter()
        .map(|(n, ms)| format!("{n} {ms:.1}"))
        .collect();
    format!(
        "{} #{} {} in {:.1} ms [{}]",
        t.kind,
        t.id,
        t.result,
        t.total_ms,
        stages.join(", ")
    )
}

fn say(t0: Instant, msg: &str) {
    println!("[{:7.2}s] {msg}", t0.elapsed().as_secs_f64());
}

/// Runs the drill `runs` times on `drbd` (each a fresh lab), prints each report and the
/// median / p95 per stage, writes them as JSON. Err on the first failed expectation.
pub fn drill(runs: usize, drbd: DrbdVersion) -> Result<Vec<DrillReport>> {
    let mut reps = Vec::new();
    for i in 0..runs.max(1) {
        if runs > 1 {
            println!("\n===== drill run {}/{runs} =====", i + 1);
        }
        reps.push(drill_once(drbd)?);
    }
    write_reports(&reps, drbd)?;
    Ok(reps)
}

/// The drill's by-hand DRBD steps (before the agents start) with each version's `drbdsetup`.
fn pair_connect(v: DrbdVersion, a: &Node, b: &Node, r: &Resource) -> Result<()> {
    match v {
        DrbdVersion::V84 => bringup::drbd84_pair_connect(a, b, r),
        DrbdVersion::V9 => drbd9::pair_connect(a, b, r),
    }
}

/// Both `UpToDate` without an initial sync, `a` Primary.
fn skip_sync_and_promote(v: DrbdVersion, a: &Node, r: &Resource) -> Result<()> {
    match v {
        DrbdVersion::V84 => bringup::drbd84_skip_sync_and_promote(a, r),
        DrbdVersion::V9 => {
            drbd9::skip_sync(a, r)?;
            drbd9::primary(a, r)
        }
    }
}

fn secondary(v: DrbdVersion, node: &Node, r: &Resource) -> Result<()> {
    match v {
        DrbdVersion::V84 => node
            .run_ok(&format!("drbdsetup-84 secondary {}", r.minor))
            .map(drop),
        DrbdVersion::V9 => drbd9::secondary(node, r),
    }
}

/// One line of DRBD's state of `r` on `node` (8.4: `/proc/drbd`; 9: `drbdsetup status`).
fn state_line(v: DrbdVersion, node: &Node, r: &Resource) -> Result<String> {
    match v {
        DrbdVersion::V84 => bringup::proc_drbd_line(node, r),
        DrbdVersion::V9 => {
            let o = node.run_ok(&format!("drbdsetup status {}", r.name))?;
            Ok(o.stdout.split_whitespace().collect::<Vec<_>>().join(" "))
        }
    }
}

pub use test_support::stats::median_p95;

/// Runs the drill once on `drbd` and prints its report. Err on any failed expectation.
pub fn drill_once(drbd: DrbdVersion) -> Result<DrillReport> {
    let mut rep = DrillReport {
        loadavg_at_start: std::fs::read_to_string("/proc/loadavg")
            .unwrap_or_default()
            .trim()
            .to_string(),
        drbd,
        ..DrillReport::default()
    };
    if let Some(m) = crate::missing_prereqs() {
        bail!("prerequisites missing: {m}");
    }
    if !crate::host_bin("iscsi-read").exists() {
        bail!(
            "{} is missing: run `cargo build -p tests --bins` first",
            crate::host_bin("iscsi-read").display()
        );
    }
    if !crate::host_bin("iscsi-ha").exists() {
        bail!(
            "{} is missing: run `cargo build --workspace --bins --examples` first",
            crate::host_bin("iscsi-ha").display()
        );
    }
    if drbd == DrbdVersion::V9 {
        if let Some(m) = crate::drbd9::missing_prereqs() {
            bail!("DRBD 9 prerequisites missing: {m}");
        }
    }
    crate::assets::ensure()?; // first run: download before the clock starts
    let t0 = Instant::now();
    say(
        t0,
        &format!(
            "lab up: 2 nodes (QEMU TCG, Debian 6.1 kernel with DRBD {drbd}) + client namespace"
        ),
    );
    let lab = Lab::start_with(LabConfig {
        drbd: Some(drbd),
        ..LabConfig::default()
    })?;
    rep.boot_ready_s = secs(lab.boot_time);
    let launch = lab.launched;
    say(t0, &format!("nodes ready after {:.2}s", rep.boot_ready_s));
    let (a, b) = (lab.node(0)?, lab.node(1)?);
    let r = Resource::default();
    let res = (|| -> Result<()> {
        pair_connect(drbd, a, b, &r)?;
        rep.launch_to_connected_s = secs(launch.elapsed());
        say(
            t0,
            &format!(
                "DRBD Connected on both nodes: launch -> Connected {:.2}s (goal < 10 s)",
                rep.launch_to_connected_s
            ),
        );
        // A writes the marker (briefly DRBD Primary by hand), then both are left Secondary: the
        // agents adopt the resource and do everything else.
        skip_sync_and_promote(drbd, a, &r)?;
        bringup::write_marker(a, &r.device(), MARKER)?;
        secondary(drbd, a, &r)?;
        for n in [a, b] {
            al::start_tgtd(n)?;
            al::install_config(n, &r, al::Source::PoolConf)?;
        }
        al::set_pool_conf(a, Some(al::master()))?;
        al::set_pool_conf(b, Some(&al::slave_of(a)))?;
        al::start_agent(a)?;
        al::start_agent(b)?;
        say(
            t0,
            "agents started: pool.conf says a master, b slave:10.99.0.1",
        );
        let sa = al::wait_status(a, "a to serve", Duration::from_secs(30), al::is_serving)?;
        al::wait_status(
            b,
            "b converged Secondary",
            Duration::from_secs(30),
            al::is_secondary,
        )?;
        if let Some(p) = al::last_transition_with(&sa, "promote", "target-serve") {
            say(t0, &format!("a agent: {}", describe(&p)));
        }
        say(
            t0,
            &format!(
                "a serves {} LUN 1 = {} via {}",
                al::IQN,
                r.device(),
                crate::FLOATING_IP
            ),
        );
        let url = bringup::iscsi_url(crate::FLOATING_IP, al::IQN, 1);
        let c = lab.client();
        let inq = c.run_ok(&["iscsi-inq", &url])?;
        let cap = c.run_ok(&["iscsi-readcapacity16", &url])?;
        let size = bringup::parse_total_size(&cap.stdout)
            .with_context(|| format!("no Total size in {}", cap.stdout))?;
        al::client_read_until(&lab, MARKER, Duration::from_secs(20))?;
        rep.launch_to_serving_s = secs(launch.elapsed());
        for l in inq
            .stdout
            .lines()
            .filter(|l| l.contains("Vendor") || l.contains("Product"))
        {
            say(t0, &format!("client iscsi-inq: {}", l.trim()));
        }
        say(
            t0,
            &format!("client iscsi-readcapacity16: Total size {size} bytes"),
        );
        say(t0, &format!("client read via VIP: {MARKER:?}"));
        let hwm_a = a.peak_rss_kib().unwrap_or(0);
        // Power loss of the primary.
        let tk = Instant::now();
        a.kill()?;
        say(t0, "a: SIGKILL of its QEMU (power loss)");
        // HA elects b pool master: its pool.conf now says `master` (tmp + mv, as XAPI writes it).
        let sig = signal_pool_conf(b, al::master())?;
        rep.kill_to_signal_s = secs(tk.elapsed());
        say(
            t0,
            "b: pool.conf := master (what the pool master election writes)",
        );
        let sb = al::wait_status(b, "b to serve", Duration::from_secs(60), al::is_serving)?;
        rep.kill_to_agent_serving_s = secs(tk.elapsed());
        let p = al::last_transition_with(&sb, "promote", "target-serve")
            .ok_or_else(|| anyhow::anyhow!("b serves but lists no promote transition"))?;
        if p.result != "ok" {
            bail!("b's promote: {}", describe(&p));
        }
        let stage = |names: &[&str]| -> f64 {
            p.stages
                .iter()
                .filter(|(n, _)| names.contains(&n.as_str()))
                .map(|(_, ms)| ms / 1000.0)
                .sum()
        };
        rep.takeover_primary_s = stage(&["check-resource", "drbd-primary"]);
        rep.takeover_target_s = stage(&["target-serve"]);
        rep.takeover_vip_s = stage(&["probe-address", "address-claim"]);
        rep.agent_promote_total_s = p.total_ms / 1000.0;
        rep.agent_promote_stages_ms = p.stages.clone();
        rep.signal_to_promote_start_s = (p.started_unix_ms as f64 - sig as f64) / 1000.0;
        say(
            t0,
            &format!(
                "b agent: pool.conf -> promote start {:.3}s (DRBD arbitrates: inside drbd-primary, first the address probe's verdict (the lab's fencing is dont-care, which DRBD does not guard), then DRBD's ping-timeout for the dead peer), promote itself {:.3}s",
                rep.signal_to_promote_start_s, rep.agent_promote_total_s
            ),
        );
        say(t0, &format!("b agent: {}", describe(&p)));
        say(t0, &format!("b: {}", state_line(drbd, b, &r)?));
        let pause = al::client_read_until(&lab, MARKER, Duration::from_secs(30))?;
        rep.kill_to_client_read_s = secs(tk.elapsed());
        say(
            t0,
            &format!(
                "client read via VIP from b: {MARKER:?} (retried for {:.2}s)",
                pause.as_secs_f64()
            ),
        );
        println!("--- b: iscsi-ha status (what an operator looks at) ---");
        print!("{}", al::status_text(b)?);
        println!("---");
        let neigh = crate::net::ip(&[
            "-n",
            lab.client().netns(),
            "neigh",
            "show",
            &crate::FLOATING_IP.to_string(),
        ])?;
        say(
            t0,
            &format!(
                "client neighbour entry: {} (b is {})",
                neigh.trim(),
                b.mac()
            ),
        );
        let hwm_b = b.peak_rss_kib().unwrap_or(0);
        rep.peak_rss_mib = vec![hwm_a as f64 / 1024.0, hwm_b as f64 / 1024.0];
        rep.peak_rss_mib_total = (hwm_a + hwm_b) as f64 / 1024.0;
        Ok(())
    })();
    // Kept before the lab goes (its run directory goes with it unless LAB_KEEP=1).
    let kept = keep_logs(&lab);
    if let Err(e) = res {
        eprintln!("{}", lab.logs_tail(25));
        eprintln!("{kept}");
        return Err(e);
    }
    say(
        t0,
        &format!("{kept}; `lab up` + `lab status` for a lab that stays up"),
    );
    lab.down();
    rep.total_s = secs(t0.elapsed());
    say(t0, "lab down");
    println!();
    println!("== drill report ==");
    println!(
        "launch -> both nodes ready          {:6.2} s",
        rep.boot_ready_s
    );
    println!(
        "launch -> DRBD Connected (goal <10s) {:6.2} s",
        rep.launch_to_connected_s
    );
    println!(
        "launch -> served + client answered  {:6.2} s",
        rep.launch_to_serving_s
    );
    println!(
        "peak memory (QEMU VmHWM a+b)         {:6.0} MiB",
        rep.peak_rss_mib_total
    );
    println!(
        "SIGKILL a -> b's pool.conf = master {:6.2} s",
        rep.kill_to_signal_s
    );
    println!(
        "b's pool.conf -> promote start      {:6.2} s",
        rep.signal_to_promote_start_s
    );
    println!(
        "b's agent promote (its own figure)  {:6.3} s  (check + primary {:.3}, target {:.3}, probe + address {:.3}; stages overlap)",
        rep.agent_promote_total_s, rep.takeover_primary_s, rep.takeover_target_s, rep.takeover_vip_s
    );
    println!(
        "SIGKILL a -> b's agent serving      {:6.2} s",
        rep.kill_to_agent_serving_s
    );
    println!(
        "SIGKILL a -> client read from b     {:6.2} s",
        rep.kill_to_client_read_s
    );
    println!(
        "whole drill                         {:6.2} s  (load avg at start: {})",
        rep.total_s, rep.loadavg_at_start
    );
    if let Some(v) = crate::qemu::QemuProgram::resolve().version() {
        println!("guests run under                    {v}");
    }
    Ok(rep)
}

/// Picks one figure out of a report.
type Stage = fn(&DrillReport) -> f64;

/// Writes `lab-boot.json` and `lab-drill.json` (DRBD 9: `lab-boot-drbd9.json`,
/// `lab-drill-drbd9.json`).
fn write_reports(reps: &[DrillReport], drbd: DrbdVersion) -> Result<()> {
    let stage = |f: fn(&DrillReport) -> f64| -> serde_json::Value {
        let v: Vec<f64> = reps.iter().map(f).collect();
        let (med, p95) = median_p95(&v);
        serde_json::json!({ "median": med, "p95": p95, "runs": v })
    };
    let stages: Vec<(&str, Stage)> = vec![
        ("launch_to_both_ready_s", |r| r.boot_ready_s),
        ("launch_to_drbd_connected_s", |r| r.launch_to_connected_s),
        ("launch_to_serving_s", |r| r.launch_to_serving_s),
        ("takeover_primary_s", |r| r.takeover_primary_s),
        ("takeover_target_s", |r| r.takeover_target_s),
        ("takeover_vip_s", |r| r.takeover_vip_s),
        ("kill_to_signal_s", |r| r.kill_to_signal_s),
        ("signal_to_promote_start_s", |r| r.signal_to_promote_start_s),
        ("agent_promote_total_s", |r| r.agent_promote_total_s),
        ("kill_to_agent_serving_s", |r| r.kill_to_agent_serving_s),
        ("kill_to_client_read_s", |r| r.kill_to_client_read_s),
        ("total_s", |r| r.total_s),
        ("peak_rss_mib_total", |r| r.peak_rss_mib_total),
    ];
    if reps.len() > 1 {
        println!("\n== {} runs: median / p95 ==", reps.len());
        for (name, f) in &stages {
            let v: Vec<f64> = reps.iter().map(f).collect();
            let (m, p) = median_p95(&v);
            println!("{name:30} {m:8.2} {p:8.2}");
        }
    }
    let dir = crate::assets::report_dir();
    std::fs::create_dir_all(&dir)?;
    // Each is a process run (`qemu --version`, `git`): once for both files.
    let (qemu, commit) = (
        crate::qemu::QemuProgram::resolve().version(),
        crate::assets::source_commit(),
    );
    let boot = serde_json::json!({
        "launch_to_both_ready_s": stage(|r| r.boot_ready_s),
        "launch_to_drbd_connected_s": stage(|r| r.launch_to_connected_s),
        "goal_s": 10.0,
        "peak_rss_mib_total": stage(|r| r.peak_rss_mib_total),
        "loadavg_at_start": reps.iter().map(|r| r.loadavg_at_start.clone()).collect::<Vec<_>>(),
        "qemu": qemu,
        "commit": commit,
        "drbd": drbd,
        "reproduce": format!("cargo build --workspace --bins --examples && cargo run -p tests --bin lab -- drill --runs 5 --drbd {drbd}"),
    });
    let mut all = serde_json::Map::new();
    for (name, f) in &stages {
        all.insert((*name).to_string(), stage(*f));
    }
    all.insert("qemu".into(), serde_json::to_value(&qemu)?);
    all.insert("commit".into(), serde_json::to_value(&commit)?);
    all.insert("reports".into(), serde_json::to_value(reps)?);
    let suffix = if drbd == DrbdVersion::V9 {
        "-drbd9"
    } else {
        ""
    };
    let (boot_file, drill_file) = (
        format!("lab-boot{suffix}.json"),
        format!("lab-drill{suffix}.json"),
    );
    std::fs::write(dir.join(&boot_file), serde_json::to_string_pretty(&boot)?)?;
    std::fs::write(dir.join(&drill_file), serde_json::to_string_pretty(&all)?)?;
    println!("reports: {}/{boot_file}, {drill_file}", dir.display());
    Ok(())
}

/// One planned switchover: the old primary's pool.conf becomes `slave:<new>`, its agent demotes;
/// then the new primary's pool.conf becomes `master`, its agent promotes. Figures come from the
/// agents' own transition records (guest clocks; each figure uses one guest's clock only).
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct Switchover {
    /// Sequence number (1-based).
    pub n: usize,
    /// Node that demoted.
    pub from: String,
    /// Node that promoted.
    pub to: String,
    /// Old primary: pool.conf renamed into place -> its demote transition started (inotify + FSM), ms.
    pub demote_signal_to_start_ms: f64,
    /// Old primary: demote transition total (agent's figure), ms.
    pub demote_total_ms: f64,
    /// Old primary: demote stages (name, ms).
    pub demote_stages_ms: Vec<(String, f64)>,
    /// New primary: pool.conf renamed into place -> promote transition started, ms.
    pub promote_signal_to_start_ms: f64,
    /// New primary: promote transition total (agent's figure), ms.
    pub promote_total_ms: f64,
    /// New primary: signal -> serving (rename -> end of the promote transition, guest clock), ms.
    pub promote_signal_to_serving_ms: f64,
    /// New primary: promote stages (name, ms).
    pub promote_stages_ms: Vec<(String, f64)>,
    /// Host wall time from writing the old primary's pool.conf to seeing the new one serving
    /// (includes the control-channel round trips and status polling), ms.
    pub host_switchover_ms: f64,
    /// Longest gap between two iscsi-perf progress lines overlapping this switchover, ms (the
    /// client's I/O pause is between this minus 1000 and this: iscsi-perf prints at most once per
    /// second, and only when a read completes). `None` without iscsi-perf output.
    pub client_gap_ms: Option<f64>,
}

/// Renames `contents` into place as pool.conf on `node` (tmp + mv, as XAPI does) and returns the
/// guest's wall clock (Unix ms) just before the rename (busybox `date` has no `%N`; `adjtimex`
/// prints the clock in µs).
pub(crate) fn signal_pool_conf(node: &Node, contents: &str) -> Result<u64> {
    signal_pool_conf_then(node, contents, "true")
}

/// [`signal_pool_conf`], then `then` in the same guest command (e.g. wait in the guest for the
/// agent to act, without a control-channel round trip per poll); its output is discarded.
pub(crate) fn signal_pool_conf_then(node: &Node, contents: &str, then: &str) -> Result<u64> {
    let o = node.run_ok(&format!(
        "{} && {{ {then}\n}} >/dev/null",
        pool_conf_signal(contents)?
    ))?;
    signal_time(&o.stdout)
}

/// Guest shell that renames `contents` into place as pool.conf (tmp + mv) and prints the guest's
/// wall clock (Unix µs) read just before the rename; [`signal_time`] parses it.
pub(crate) fn pool_conf_signal(contents: &str) -> Result<String> {
    if contents.contains(['\'', '\n']) {
        bail!("unsupported pool.conf contents {contents:?}");
    }
    Ok(format!(
        "printf '%s' '{contents}' > {p}.tmp && t=$(adjtimex | awk '/tv_sec/{{s=$2}} /tv_usec/{{u=$2}} END{{printf \"%d%06d\", s, u}}') && mv -f {p}.tmp {p} && echo $t",
        p = al::POOL_CONF
    ))
}

/// The signal time (Unix ms) from the output of [`pool_conf_signal`].
pub(crate) fn signal_time(stdout: &str) -> Result<u64> {
    let us: u64 = stdout
        .trim()
        .parse()
        .with_context(|| format!("guest adjtimex clock: {stdout:?}"))?;
    Ok(us / 1000)
}

/// Timestamped lines of a running `iscsi-perf` (the client's view of the I/O).
struct Perf {
    child: std::process::Child,
    lines: std::sync::Arc<std::sync::Mutex<Vec<(Instant, String)>>>,
    reader: Option<std::thread::JoinHandle<()>>,
}

impl Perf {
    fn start(lab: &Lab) -> Result<Perf> {
        use std::io::Read;
        let url = bringup::iscsi_url(crate::FLOATING_IP, al::IQN, 1);
        let mut child = std::process::Command::new("ip")
            .args(["netns", "exec", lab.client().netns()])
            .args(["iscsi-perf", "-m", "4", "-b", "8", "-n", "-x", "1000", &url])
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .context("start iscsi-perf in the client namespace")?;
        let lines = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let mut out = child
            .stdout
            .take()
            .ok_or_else(|| anyhow::anyhow!("iscsi-perf stdout"))?;
        let l2 = lines.clone();
        let reader = std::thread::spawn(move || {
            let mut buf = [0u8; 4096];
            let mut cur = String::new();
            loop {
                let n = match out.read(&mut buf) {
                    Ok(0) | Err(_) => break,
                    Ok(n) => n,
                };
                let now = Instant::now();
                for ch in String::from_utf8_lossy(buf.get(..n).unwrap_or(&[])).chars() {
                    if ch == '\r' || ch == '\n' {
                        if !cur.trim().is_empty() {
                            if let Ok(mut v) = l2.lock() {
                                v.push((now, cur.trim().to_string()));
                            }
                        }
                        cur.clear();
                    } else {
                        cur.push(ch);
                    }
                }
            }
        });
        Ok(Perf {
            child,
            lines,
            reader: Some(reader),
        })
    }

    fn snapshot(&self) -> Vec<(Instant, String)> {
        self.lines.lock().map(|v| v.clone()).unwrap_or_default()
    }

    fn stop(mut self) -> (Vec<(Instant, String)>, String) {
        if let Ok(pid) = i32::try_from(self.child.id()) {
            // `ip netns exec` execs, so this is iscsi-perf itself: SIGINT prints its summary.
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(pid),
                nix::sys::signal::Signal::SIGINT,
            );
        }
        let t = Instant::now();
        while t.elapsed() < Duration::from_secs(5) {
            if let Ok(Some(_)) = self.child.try_wait() {
                break;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
        if let Some(r) = self.reader.take() {
            let _ = r.join();
        }
        let mut err = String::new();
        if let Some(mut e) = self.child.stderr.take() {
            use std::io::Read;
            let _ = e.read_to_string(&mut err);
        }
        (self.snapshot(), err)
    }
}

impl Drop for Perf {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Longest gap (ms) between consecutive `iops current` lines of iscsi-perf that overlaps
/// [`from`, `to`].
fn longest_gap(lines: &[(Instant, String)], from: Instant, to: Instant) -> Option<f64> {
    let prog: Vec<Instant> = lines
        .iter()
        .filter(|(_, l)| l.contains("iops current"))
        .map(|(t, _)| *t)
        .collect();
    prog.windows(2)
        .filter_map(|w| match w {
            [a, b] if *b >= from && *a <= to => Some(b.duration_since(*a).as_secs_f64() * 1000.0),
            _ => None,
        })
        .reduce(f64::max)
}

/// `lab switchovers --count N`: one lab, both agents on pool.conf, `iscsi-perf` reading through
/// the floating address from the client the whole time, N planned switchovers (pool.conf flipped
/// back and forth), then per-stage median / p95 printed and written to
/// `target/lab-report/agent-switchover.json`.
pub fn switchovers(count: usize) -> Result<Vec<Switchover>> {
    if let Some(m) = crate::missing_prereqs() {
        bail!("prerequisites missing: {m}");
    }
    crate::require_host_bins(&["iscsi-read", "iscsi-ha"])?;
    let loadavg = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    let t0 = Instant::now();
    let lab = Lab::start_with(LabConfig::default())?;
    say(
        t0,
        &format!("lab up in {:.2}s", lab.boot_time.as_secs_f64()),
    );
    let r = Resource::default();
    let res = (|| -> Result<Vec<Switchover>> {
        al::pool_conf_pair_up(&lab, &r, MARKER)?;
        say(t0, "agents up, a serves via the floating address");
        al::client_read_until(&lab, MARKER, Duration::from_secs(20))?;
        let perf = Perf::start(&lab)?;
        std::thread::sleep(Duration::from_secs(3));
        let mut out = Vec::new();
        let mut windows = Vec::new();
        let (mut p, mut s) = (lab.node(0)?, lab.node(1)?);
        for n in 1..=count {
            let prev_p = al::status(p)?;
            let prev_s = al::status(s)?;
            let last_id = |v: &serde_json::Value| al::transitions(v).last().map(|t| t.id);
            let (pid0, sid0) = (last_id(&prev_p), last_id(&prev_s));
            let th = Instant::now();
            let sig_d = signal_pool_conf(p, &al::slave_of(s))?;
            let vp = al::wait_status(p, "old primary to demote", Duration::from_secs(30), |v| {
                al::is_secondary(v) && last_id(v) != pid0
            })?;
            let sig_p = signal_pool_conf(s, al::master())?;
            let vs = al::wait_status(s, "new primary to serve", Duration::from_secs(30), |v| {
                al::is_serving(v) && last_id(v) != sid0
            })?;
            let host_ms = th.elapsed().as_secs_f64() * 1000.0;
            windows.push((th, Instant::now()));
            let d = al::last_transition_with(&vp, "demote", "drbd-secondary")
                .ok_or_else(|| anyhow::anyhow!("no demote recorded on {}", p.name()))?;
            let pr = al::last_transition_with(&vs, "promote", "target-serve")
                .ok_or_else(|| anyhow::anyhow!("no promote recorded on {}", s.name()))?;
            if d.result != "ok" || pr.result != "ok" {
                bail!("switchover {n}: {} / {}", describe(&d), describe(&pr));
            }
            let sw = Switchover {
                n,
                from: p.name().to_string(),
                to: s.name().to_string(),
                demote_signal_to_start_ms: d.started_unix_ms as f64 - sig_d as f64,
                demote_total_ms: d.total_ms,
                demote_stages_ms: d.stages.clone(),
                promote_signal_to_start_ms: pr.started_unix_ms as f64 - sig_p as f64,
                promote_total_ms: pr.total_ms,
                promote_signal_to_serving_ms: pr.started_unix_ms as f64 + pr.total_ms
                    - sig_p as f64,
                promote_stages_ms: pr.stages.clone(),
                host_switchover_ms: host_ms,
                client_gap_ms: None,
            };
            say(
                t0,
                &format!(
                    "#{n} {} -> {}: demote {:.1} ms, promote {:.1} ms, signal -> serving {:.1} ms (host {:.0} ms)",
                    sw.from, sw.to, sw.demote_total_ms, sw.promote_total_ms,
                    sw.promote_signal_to_serving_ms, host_ms
                ),
            );
            out.push(sw);
            std::mem::swap(&mut p, &mut s);
            std::thread::sleep(Duration::from_millis(1500));
        }
        std::thread::sleep(Duration::from_secs(2));
        let (lines, err) = perf.stop();
        for (sw, (a, b)) in out.iter_mut().zip(&windows) {
            sw.client_gap_ms = longest_gap(&lines, *a, *b);
        }
        let others: Vec<&String> = lines
            .iter()
            .map(|(_, l)| l)
            .filter(|l| !l.contains("iops current"))
            .collect();
        println!("iscsi-perf (non-progress lines):");
        for l in others.iter().take(40) {
            println!("  {l}");
        }
        if !err.trim().is_empty() {
            println!("iscsi-perf stderr: {}", err.trim());
        }
        al::client_read_until(&lab, MARKER, Duration::from_secs(20))?;
        write_switchover_report(&out, &loadavg, count, &lines)?;
        Ok(out)
    })();
    if res.is_err() {
        eprintln!("{}", al::logs(&lab, 40));
    }
    lab.down();
    res
}

fn write_switchover_report(
    sw: &[Switchover],
    loadavg: &str,
    count: usize,
    perf_lines: &[(Instant, String)],
) -> Result<()> {
    let mut stages: Vec<(String, Vec<f64>)> = Vec::new();
    let mut push = |name: String, v: f64| match stages.iter_mut().find(|(n, _)| *n == name) {
        Some((_, l)) => l.push(v),
        None => stages.push((name, vec![v])),
    };
    for s in sw {
        push(
            "promote: signal -> start".into(),
            s.promote_signal_to_start_ms,
        );
        for (n, ms) in &s.promote_stages_ms {
            push(format!("promote: {n}"), *ms);
        }
        push("promote: total".into(), s.promote_total_ms);
        push(
            "promote: signal -> serving".into(),
            s.promote_signal_to_serving_ms,
        );
        push(
            "demote: signal -> start".into(),
            s.demote_signal_to_start_ms,
        );
        for (n, ms) in &s.demote_stages_ms {
            push(format!("demote: {n}"), *ms);
        }
        push("demote: total".into(), s.demote_total_ms);
        push("host: switchover (polled)".into(), s.host_switchover_ms);
        if let Some(g) = s.client_gap_ms {
            push("client: iscsi-perf longest gap".into(), g);
        }
    }
    println!("\n== {} switchovers: median / p95 (ms) ==", sw.len());
    let mut summary = serde_json::Map::new();
    for (name, v) in &stages {
        let (m, p) = median_p95(v);
        println!("{name:36} {m:9.1} {p:9.1}   (n={})", v.len());
        summary.insert(
            name.clone(),
            serde_json::json!({"median_ms": m, "p95_ms": p, "n": v.len()}),
        );
    }
    let dir = crate::assets::report_dir();
    std::fs::create_dir_all(&dir)?;
    let start = perf_lines.first().map(|(t, _)| *t);
    let json = serde_json::json!({
        "reproduce": format!("cargo build --workspace --bins --examples && cargo run -p tests --bin lab -- switchovers --count {count}"),
        "loadavg_at_start": loadavg.trim(),
        "note": "agent figures from `iscsi-ha status --json` transitions (guest clocks, TCG guests); signal = rename of pool.conf into place; client gap = longest interval between iscsi-perf progress lines (1 s resolution)",
        "summary": summary,
        "switchovers": sw,
        "iscsi_perf_lines": perf_lines.iter().map(|(t, l)| serde_json::json!({
            "t_s": start.map(|s| t.duration_since(s).as_secs_f64()).unwrap_or(0.0),
            "line": l,
        })).collect::<Vec<_>>(),
    });
    let p = dir.join("agent-switchover.json");
    std::fs::write(&p, serde_json::to_string_pretty(&json)?)?;
    println!("report: {}", p.display());
    Ok(())
}
