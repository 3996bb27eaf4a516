//! `drbd9-bench [N] [--pair]`: promote + demote on DRBD 9.3.3 in the lab, drbd-nl (`drbd_nl::v9`)
//! against DRBD 9's `drbdsetup` spawned, N cycles each (default 50). Default layout as
//! `drbd-bench` (8.4): one guest, two resources `ba`/`bb` connected over loopback (brought up with
//! drbd-nl), protocol C. `--pair`: node a of a two-guest pair instead (DRBD 9's role change then
//! includes a round trip to the other guest). Guest time; prints median / p95 and the cycle ratio,
//! writes `target/lab-report/drbd9-bench.json` (`drbd9-bench-pair.json`). Build first:
//! `cargo build -p tests --bins` (or `--release` with `CARGO_TARGET_DIR=target/drbd` for figures).

use anyhow::{bail, Context, Result};
use lab::bringup::{wait_until, Resource};
use lab::drbd9::{bringup, DrbdVersion};
use lab::{Lab, LabConfig, Node};
use std::time::Duration;

fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let pair = args.iter().any(|a| a == "--pair");
    let n: usize = args
        .iter()
        .find(|a| !a.starts_with("--"))
        .map(|s| s.parse())
        .transpose()?
        .unwrap_or(50);
    if !lab::drbd9::require_lab9() {
        return Ok(());
    }
    let lab = Lab::start_with(LabConfig {
        drbd: Some(DrbdVersion::V9),
        nodes: if pair { 2 } else { 1 },
        ..LabConfig::default()
    })?;
    let a = lab.node(0)?;
    let res = if pair {
        let r = Resource::default();
        bringup::pair_up(a, lab.node(1)?, &r)?;
        r.name
    } else {
        loopback_up(a)?;
        "ba".to_string()
    };
    let o = a.run_timeout(
        &format!("{} bench {res} {n}", Node::guest_bin("drbd9-lab")),
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
    let layout = if pair {
        "node a of a two-guest pair"
    } else {
        "one guest, loopback pair ba/bb"
    };
    v["where"] = serde_json::json!(format!(
        "QEMU TCG lab, {layout}, {}, protocol C, peer connected and UpToDate",
        a.run_ok("head -1 /proc/drbd")?.stdout.trim()
    ));
    v["command"] = serde_json::json!(
        "CARGO_TARGET_DIR=target/drbd cargo build --release -p tests --bins && target/drbd/release/drbd9-bench"
    );
    println!("DRBD 9 promote+demote, {layout}, N={n} (guest time, ms)");
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
    let path = dir.join(if pair {
        "drbd9-bench-pair.json"
    } else {
        "drbd9-bench.json"
    });
    std::fs::write(&path, serde_json::to_string_pretty(&v)?)?;
    println!("wrote {}", path.display());
    Ok(())
}

/// `ba` (node id 0, /dev/ram0, minor 1) and `bb` (node id 1, /dev/ram1, minor 2) connected to
/// each other over 127.0.0.1 through drbd-nl, initial sync skipped, both UpToDate.
fn loopback_up(g: &Node) -> Result<()> {
    let bin = Node::guest_bin("drbd9-lab");
    g.run_ok(&format!(
        "{bin} up ba 0 1 /dev/ram0 1 bb 127.0.0.1:7789 127.0.0.1:7790 --create-md && \
         {bin} up bb 1 2 /dev/ram1 0 ba 127.0.0.1:7790 127.0.0.1:7789 --create-md"
    ))?;
    wait_until(
        g,
        "drbdsetup events2 --now ba | grep -q '^exists connection .*connection:Connected'",
        "ba Connected",
        Duration::from_secs(60),
    )?;
    g.run_ok(&format!("{bin} new-uuid 1"))?;
    wait_until(
        g,
        "drbdsetup events2 --now ba | grep -q '^exists peer-device .*peer-disk:UpToDate'",
        "ba peer UpToDate",
        Duration::from_secs(60),
    )?;
    Ok(())
}
