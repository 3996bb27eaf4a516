//! Benchmark (not a test): in one lab guest, N promote+demote cycles through drbd-nl versus
//! `drbdsetup-84 primary/secondary` spawned, and the latency from a role change to its event.
//!
//! The guest holds both ends of a replicated pair over loopback (minor 1 on /dev/ram0, minor 2
//! on /dev/ram1, protocol C), so every role change is a real replicated state change.
//!
//! Reproduce: `CARGO_TARGET_DIR=target/drbd cargo build --release -p tests --bins &&
//! target/drbd/release/drbd-bench [N]` (root). Prints median/p95 per stage and writes
//! `target/lab-report/drbd-bench.json`.

use std::time::Duration;

use anyhow::{bail, Context, Result};
use lab::bringup::wait_until;
use lab::{Lab, LabConfig, Node};

fn main() -> Result<()> {
    let n: u32 = std::env::args()
        .nth(1)
        .map(|s| s.parse())
        .transpose()?
        .unwrap_or(50);
    if !lab::require_lab() {
        return Ok(());
    }
    let lab = Lab::start_with(LabConfig {
        nodes: 1,
        ..LabConfig::default()
    })?;
    let g = lab.node(0)?;
    let bin = Node::guest_bin("drbd-lab");
    g.run_ok(&format!(
        "{bin} up ba 1 /dev/ram0 127.0.0.1:7789 127.0.0.1:7790 --create-md && \
         {bin} up bb 2 /dev/ram1 127.0.0.1:7790 127.0.0.1:7789 --create-md"
    ))?;
    g.run_ok(&format!("{bin} wait 1 Connected 60 && {bin} new-uuid 1"))?;
    wait_until(
        g,
        "grep -q '^ *1: cs:Connected .*ds:UpToDate/UpToDate' /proc/drbd",
        "UpToDate/UpToDate",
        Duration::from_secs(30),
    )?;
    let o = g.run_timeout(&format!("{bin} bench 1 {n}"), Duration::from_secs(600))?;
    let line = o
        .stdout
        .lines()
        .find_map(|l| l.strip_prefix("BENCH-JSON "))
        .with_context(|| format!("no BENCH-JSON in output: {}{}", o.stdout, o.stderr))?;
    let mut v: serde_json::Value = serde_json::from_str(line)?;
    if v.get("drbd_nl").is_none() {
        bail!("bad bench output {line}");
    }
    v["where"] = serde_json::json!(
        "one QEMU TCG guest, Linux 6.1.0-56-amd64, drbd 8.4.11, loopback pair, protocol C"
    );
    v["command"] = serde_json::json!(
        "CARGO_TARGET_DIR=target/drbd cargo build --release -p tests --bins && target/drbd/release/drbd-bench"
    );
    println!("drbd promote+demote, N={n} (guest time, ms)");
    println!("{:<34} {:>9} {:>9}", "stage", "median", "p95");
    for (label, path) in [
        ("drbd-nl primary", ["drbd_nl", "primary"]),
        ("drbd-nl secondary", ["drbd_nl", "secondary"]),
        ("drbd-nl cycle", ["drbd_nl", "cycle"]),
        (
            "drbdsetup-84 primary (spawned)",
            ["drbdsetup_84_spawned", "primary"],
        ),
        (
            "drbdsetup-84 secondary (spawned)",
            ["drbdsetup_84_spawned", "secondary"],
        ),
        (
            "drbdsetup-84 cycle (spawned)",
            ["drbdsetup_84_spawned", "cycle"],
        ),
        ("event after reply", ["event_after_reply", ""]),
        ("event after request", ["event_after_request", ""]),
    ] {
        let s = if path[1].is_empty() {
            &v[path[0]]
        } else {
            &v[path[0]][path[1]]
        };
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
    let path = dir.join("drbd-bench.json");
    std::fs::write(&path, serde_json::to_string_pretty(&v)?)?;
    println!("wrote {}", path.display());
    g.run(&format!("{bin} down ba; {bin} down bb")).ok();
    Ok(())
}
