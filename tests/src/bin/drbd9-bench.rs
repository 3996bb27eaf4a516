//! `drbd9-bench [N]`: promote + demote on DRBD 9.3.3 in the lab, drbd-nl (`drbd_nl::v9`) against
//! DRBD 9's `drbdsetup` spawned, N cycles each (default 50), on node a of a fresh two-node DRBD 9
//! pair (protocol C, peer b connected and UpToDate). Guest time; prints median / p95 and the
//! cycle ratio, writes `target/lab-report/drbd9-bench.json`. Build first:
//! `cargo build -p tests --bins` (or `--release` with `CARGO_TARGET_DIR=target/drbd` for figures).

use anyhow::{bail, Context, Result};
use lab::bringup::Resource;
use lab::drbd9::{bringup, DrbdVersion};
use lab::{Lab, LabConfig, Node};
use std::time::Duration;

fn main() -> Result<()> {
    let n: usize = std::env::args()
        .nth(1)
        .map(|s| s.parse())
        .transpose()?
        .unwrap_or(50);
    if !lab::drbd9::require_lab9() {
        return Ok(());
    }
    let lab = Lab::start_with(LabConfig {
        drbd: Some(DrbdVersion::V9),
        ..LabConfig::default()
    })?;
    let (a, b) = (lab.node(0)?, lab.node(1)?);
    let r = Resource::default();
    bringup::pair_up(a, b, &r)?;
    let o = a.run_timeout(
        &format!("{} bench {} {n}", Node::guest_bin("drbd9-lab"), r.name),
        Duration::from_secs(900),
    )?;
    let line = o
        .stdout
        .lines()
        .find_map(|l| l.strip_prefix("BENCH-JSON "))
        .with_context(|| format!("no BENCH-JSON in output: {}{}", o.stdout, o.stderr))?;
    let mut v: serde_json::Value = serde_json::from_str(line)?;
    if v.get("drbd_nl").is_none() {
        bail!("bad bench output {line}");
    }
    v["where"] = serde_json::json!(format!(
        "node a of a two-node QEMU TCG lab, {}, protocol C, peer connected",
        a.run_ok("head -1 /proc/drbd")?.stdout.trim()
    ));
    v["command"] = serde_json::json!(
        "CARGO_TARGET_DIR=target/drbd cargo build --release -p tests --bins && target/drbd/release/drbd9-bench"
    );
    println!("DRBD 9 promote+demote, N={n} (guest time, ms)");
    println!("{:<34} {:>9} {:>9}", "stage", "median", "p95");
    for (label, who, what) in [
        ("drbd-nl primary", "drbd_nl", "primary"),
        ("drbd-nl secondary", "drbd_nl", "secondary"),
        ("drbd-nl cycle", "drbd_nl", "cycle"),
        (
            "drbdsetup primary (spawned)",
            "drbdsetup_9_spawned",
            "primary",
        ),
        (
            "drbdsetup secondary (spawned)",
            "drbdsetup_9_spawned",
            "secondary",
        ),
        ("drbdsetup cycle (spawned)", "drbdsetup_9_spawned", "cycle"),
    ] {
        let s = &v[who][what];
        println!(
            "{label:<34} {:>9.3} {:>9.3}",
            s["median_ms"].as_f64().unwrap_or(f64::NAN),
            s["p95_ms"].as_f64().unwrap_or(f64::NAN)
        );
    }
    println!(
        "ratio (cycle medians, spawned / drbd-nl): {:.1}x",
        v["ratio_cycle_median"].as_f64().unwrap_or(f64::NAN)
    );
    let dir = lab::assets::report_dir();
    std::fs::create_dir_all(&dir)?;
    let path = dir.join("drbd9-bench.json");
    std::fs::write(&path, serde_json::to_string_pretty(&v)?)?;
    println!("wrote {}", path.display());
    Ok(())
}
