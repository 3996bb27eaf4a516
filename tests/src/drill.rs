//! The failover drill (`lab drill`), the project's main job for now:
//!
//! 1. lab up (2 nodes + client), DRBD pair Connected (bring-up with `drbdsetup-84`), A Primary;
//! 2. A writes a marker block, serves `/dev/drbd1` with tgtd, claims the floating address;
//! 3. the client answers `iscsi-inq`, `iscsi-readcapacity16` and reads the marker via the address;
//! 4. SIGKILL of A's QEMU (power loss);
//! 5. takeover on B ([`takeover`]: DRBD primary, tgtd + target + LUN, address + gratuitous ARP);
//! 6. the client reads the same marker through the address again; timings are printed and written
//!    to `target/lab-report/lab-boot.json` and `lab-drill.json`; lab down.
//!
//! [`takeover`] is the step the `iscsi-ha` agent replaces later.

use anyhow::{bail, Context, Result};
use std::time::{Duration, Instant};

use crate::bringup::{self, Resource};
use crate::{Lab, LabConfig, Node};

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
    /// Takeover steps on B (host wall time of each control-channel step).
    pub takeover_primary_s: f64,
    /// tgtd start + target + LUN + bind on B.
    pub takeover_target_s: f64,
    /// Floating address + gratuitous ARP on B.
    pub takeover_vip_s: f64,
    /// SIGKILL of A -> the client read the marker through the address from B.
    pub kill_to_client_read_s: f64,
    /// Whole drill, lab up to lab down.
    pub total_s: f64,
    /// Host load average at the start (other builds slow TCG guests down).
    pub loadavg_at_start: String,
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

fn say(t0: Instant, msg: &str) {
    println!("[{:7.2}s] {msg}", t0.elapsed().as_secs_f64());
}

/// Runs the drill `runs` times (each a fresh lab), prints each report and the median / p95 per
/// stage, writes them as JSON. Err on the first failed expectation.
pub fn drill(runs: usize) -> Result<Vec<DrillReport>> {
    let mut reps = Vec::new();
    for i in 0..runs.max(1) {
        if runs > 1 {
            println!("\n===== drill run {}/{runs} =====", i + 1);
        }
        reps.push(drill_once()?);
    }
    write_reports(&reps)?;
    Ok(reps)
}

/// Median and p95 (nearest rank) of `v`.
pub fn median_p95(v: &[f64]) -> (f64, f64) {
    let mut s: Vec<f64> = v.to_vec();
    s.sort_by(|a, b| a.total_cmp(b));
    if s.is_empty() {
        return (0.0, 0.0);
    }
    let med = s.get(s.len() / 2).copied().unwrap_or(0.0);
    let rank = ((0.95 * s.len() as f64).ceil() as usize).clamp(1, s.len());
    (med, s.get(rank - 1).copied().unwrap_or(0.0))
}

/// Runs the drill once and prints its report. Err on any failed expectation.
pub fn drill_once() -> Result<DrillReport> {
    let mut rep = DrillReport {
        loadavg_at_start: std::fs::read_to_string("/proc/loadavg")
            .unwrap_or_default()
            .trim()
            .to_string(),
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
    crate::assets::ensure()?; // first run: download before the clock starts
    let t0 = Instant::now();
    say(
        t0,
        "lab up: 2 nodes (QEMU TCG, Debian 6.1 kernel with DRBD 8.4) + client namespace",
    );
    let lab = Lab::start_with(LabConfig::default())?;
    rep.boot_ready_s = secs(lab.boot_time);
    let launch = lab.launched;
    say(t0, &format!("nodes ready after {:.2}s", rep.boot_ready_s));
    let (a, b) = (lab.node(0)?, lab.node(1)?);
    let r = Resource::default();
    let res = (|| -> Result<()> {
        bringup::drbd84_pair_connect(a, b, &r)?;
        rep.launch_to_connected_s = secs(launch.elapsed());
        say(
            t0,
            &format!(
                "DRBD Connected on both nodes: launch -> Connected {:.2}s (goal < 10 s)",
                rep.launch_to_connected_s
            ),
        );
        bringup::drbd84_skip_sync_and_promote(a, &r)?;
        say(t0, &format!("a: {}", bringup::proc_drbd_line(a, &r)?));
        bringup::write_marker(a, &r.device(), MARKER)?;
        bringup::tgt_serve(a, 1, IQN, &r.device())?;
        bringup::claim_vip(a, crate::FLOATING_IP)?;
        say(
            t0,
            &format!(
                "a serves {IQN} LUN 1 = {} via {}",
                r.device(),
                crate::FLOATING_IP
            ),
        );
        let url = bringup::iscsi_url(crate::FLOATING_IP, IQN, 1);
        let c = lab.client();
        let inq = c.run_ok(&["iscsi-inq", &url])?;
        let cap = c.run_ok(&["iscsi-readcapacity16", &url])?;
        let size = bringup::parse_total_size(&cap.stdout)
            .with_context(|| format!("no Total size in {}", cap.stdout))?;
        let got = client_read_marker(&lab)?;
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
        say(t0, &format!("client read via VIP: {got:?}"));
        if got != MARKER {
            bail!("client read {got:?}, expected {MARKER:?}");
        }
        let hwm_a = a.peak_rss_kib().unwrap_or(0);
        // Power loss of the primary.
        let tk = Instant::now();
        a.kill()?;
        say(t0, "a: SIGKILL of its QEMU (power loss)");
        let steps = takeover(b, &r)?;
        rep.takeover_primary_s = secs(steps[0]);
        rep.takeover_target_s = secs(steps[1]);
        rep.takeover_vip_s = secs(steps[2]);
        say(
            t0,
            &format!(
                "b took over: primary {:.2}s, tgtd+target {:.2}s, VIP+ARP {:.2}s",
                rep.takeover_primary_s, rep.takeover_target_s, rep.takeover_vip_s
            ),
        );
        say(t0, &format!("b: {}", bringup::proc_drbd_line(b, &r)?));
        let got = client_read_marker(&lab)?;
        rep.kill_to_client_read_s = secs(tk.elapsed());
        say(t0, &format!("client read via VIP from b: {got:?}"));
        if got != MARKER {
            bail!("after failover the client read {got:?}, expected {MARKER:?}");
        }
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
    if let Err(e) = res {
        eprintln!("{}", lab.logs_tail(25));
        eprintln!(
            "console logs and disks: {} (kept only with LAB_KEEP=1)",
            lab.run_dir().display()
        );
        return Err(e);
    }
    say(
        t0,
        &format!(
            "look at: console logs {}/{{a,b}}.console.log (LAB_KEEP=1 keeps them), \
             `lab up` + `lab status` for a lab that stays up",
            lab.run_dir().display()
        ),
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
        "SIGKILL a -> client read from b     {:6.2} s",
        rep.kill_to_client_read_s
    );
    println!(
        "whole drill                         {:6.2} s  (load avg at start: {})",
        rep.total_s, rep.loadavg_at_start
    );
    Ok(rep)
}

/// Picks one figure out of a report.
type Stage = fn(&DrillReport) -> f64;

fn write_reports(reps: &[DrillReport]) -> Result<()> {
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
    let boot = serde_json::json!({
        "launch_to_both_ready_s": stage(|r| r.boot_ready_s),
        "launch_to_drbd_connected_s": stage(|r| r.launch_to_connected_s),
        "goal_s": 10.0,
        "peak_rss_mib_total": stage(|r| r.peak_rss_mib_total),
        "loadavg_at_start": reps.iter().map(|r| r.loadavg_at_start.clone()).collect::<Vec<_>>(),
        "reproduce": "cargo build -p tests --bins && cargo run -p tests --bin lab -- drill --runs 5",
    });
    let mut all = serde_json::Map::new();
    for (name, f) in &stages {
        all.insert((*name).to_string(), stage(*f));
    }
    all.insert("reports".into(), serde_json::to_value(reps)?);
    std::fs::write(
        dir.join("lab-boot.json"),
        serde_json::to_string_pretty(&boot)?,
    )?;
    std::fs::write(
        dir.join("lab-drill.json"),
        serde_json::to_string_pretty(&all)?,
    )?;
    println!("reports: {}/lab-boot.json, lab-drill.json", dir.display());
    Ok(())
}
