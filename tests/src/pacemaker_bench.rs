//! `lab pacemaker`: per OCF action, the `iscsi-ha` agent against the classic resource agents
//! for the same step, on the same guest, each run by hand the way Pacemaker's executor runs
//! them (one process per action, parameters in `OCF_RESKEY_*`), with Pacemaker running on both
//! nodes.
//!
//! Classic promote = DRBD Primary + `iSCSITarget` start + `iSCSILogicalUnit` start + `IPaddr2`
//! start (what the four-agent stack runs on a promotion, in its constraint order); demote = the
//! reverse stops + DRBD Secondary; monitor = the four checks. The DRBD step is
//! `drbdsetup-84 primary|secondary|role`, the command `ocf:linbit:drbd` ends in: the linbit agent
//! itself could not be run outside a cluster-managed resource here (its `drbdadm` reconfigured
//! the running connection from `/etc/drbd.conf` and the round hung), so the classic figures
//! leave out its bash and `drbdadm` overhead (they flatter the classic stack). Start and stop
//! have no counterpart of the same meaning and are reported for the agent only. Times are wall
//! clock in the guest (`date +%s%N` around each command, the same overhead for both),
//! medians and p95 over `--runs` rounds (default 20). Writes
//! `target/lab-report/pacemaker-ra-bench.json`.

use anyhow::{bail, Context, Result};
use std::collections::BTreeMap;
use std::time::Duration;

use crate::agent_lab as al;
use crate::bringup::Resource;
use crate::pacemaker::{self as pm, ROOT};
use crate::Lab;

/// The guest-side round: each line printed is `label micros rc`.
fn round_script(iqn: &str) -> String {
    format!(
        r#"export OCF_ROOT=/usr/lib/ocf
T() {{ l=$1; shift; s=$(date +%s%N); "$@" >/dev/null 2>&1; rc=$?; e=$(date +%s%N); echo "$l $(( (e-s)/1000 )) $rc"; }}
ours() {{ OCF_RESOURCE_INSTANCE=p_iscsi OCF_RESKEY_config={cfg} timeout 60 {agent} "$@"; }}
drbd() {{ case $1 in promote) /usr/lib/drbd/drbdsetup-84 primary 1;; demote) /usr/lib/drbd/drbdsetup-84 secondary 1;; monitor) r=$(/usr/lib/drbd/drbdsetup-84 role 1) || return 1; case $r in Primary/*) return 8;; *) return 0;; esac;; esac; }}
tgt() {{ OCF_RESOURCE_INSTANCE=p_target OCF_RESKEY_implementation=tgt OCF_RESKEY_iqn={iqn} OCF_RESKEY_tid=1 timeout 60 /usr/lib/ocf/resource.d/heartbeat/iSCSITarget "$@"; }}
lu() {{ OCF_RESOURCE_INSTANCE=p_lu OCF_RESKEY_implementation=tgt OCF_RESKEY_target_iqn={iqn} OCF_RESKEY_lun=1 OCF_RESKEY_path=/dev/drbd1 timeout 60 /usr/lib/ocf/resource.d/heartbeat/iSCSILogicalUnit "$@"; }}
ip2() {{ OCF_RESOURCE_INSTANCE=p_vip OCF_RESKEY_ip=10.99.0.50 OCF_RESKEY_cidr_netmask=24 OCF_RESKEY_nic=eth0 timeout 60 /usr/lib/ocf/resource.d/heartbeat/IPaddr2 "$@"; }}
classic_promote() {{ drbd promote && tgt start && lu start && ip2 start; }}
classic_monitor() {{ drbd monitor; r=$?; tgt monitor && lu monitor && ip2 monitor && return $r; }}
classic_demote() {{ ip2 stop && lu stop && tgt stop && drbd demote; }}
T ours-start ours start
T ours-promote ours promote
T ours-monitor-promoted ours monitor
T ours-demote ours demote
T ours-monitor-unpromoted ours monitor
T ours-stop ours stop
T classic-promote classic_promote
T classic-monitor-promoted classic_monitor
T classic-demote classic_demote
T classic-monitor-unpromoted drbd monitor
T classic-drbd-promote drbd promote
T classic-drbd-demote drbd demote
"#,
        cfg = pm::AGENT_CONFIG,
        agent = pm::OCF_AGENT,
    )
}

/// Median and p95 (nearest rank) of `v`, microseconds.
fn stats(v: &mut [u64]) -> (u64, u64) {
    let f: Vec<f64> = v.iter().map(|&us| us as f64).collect();
    let (median, p95) = test_support::stats::median_p95(&f);
    (median as u64, p95 as u64)
}

/// Runs the benchmark; prints a table and writes the JSON report.
pub fn run(args: &[String]) -> Result<()> {
    let runs: usize = match args.iter().position(|a| a == "--runs") {
        Some(i) => args
            .get(i + 1)
            .and_then(|v| v.parse().ok())
            .filter(|n| *n >= 1)
            .context("--runs takes a count")?,
        None => 20,
    };
    if let Some(m) = pm::missing() {
        bail!("missing {m}");
    }
    let lab = Lab::start_with(pm::lab_config())?;
    let (a, b) = (lab.node(0)?, lab.node(1)?);
    let r = Resource::default();
    al::drbd_pair_secondary_with_marker(a, b, &r, "pacemaker-bench")?;
    let conf = pm::corosync_conf(&[a, b]);
    for n in [a, b] {
        al::start_tgtd(n)?;
        pm::prepare_root(n)?;
        let text = al::config_toml(n, &r, al::Source::Command);
        n.put_file(&format!("{ROOT}{}", pm::AGENT_CONFIG), text.as_bytes())?;
        pm::start_node(n, &conf)?;
    }
    pm::wait_mon(a, "both nodes online", Duration::from_secs(300), |o| {
        o.contains("Online: [ a b ]")
    })?;
    // No resources, no fencing: the agents are run by hand here.
    pm::run_in_ok(a, "crm_attribute -t crm_config -n stonith-enabled -v false")?;
    let script = round_script(al::IQN);
    let mut times: BTreeMap<String, Vec<u64>> = BTreeMap::new();
    let mut failures: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for i in 0..runs {
        let o = pm::run_in_timeout(a, &script, Duration::from_secs(600))?;
        for line in o.stdout.lines() {
            let mut w = line.split_whitespace();
            let (Some(l), Some(us), Some(rc)) = (w.next(), w.next(), w.next()) else {
                continue;
            };
            let ok = match l {
                "ours-monitor-promoted" => rc == "8",
                "classic-monitor-promoted" => rc == "8",
                _ => rc == "0",
            };
            if !ok {
                failures
                    .entry(l.to_string())
                    .or_default()
                    .push(format!("round {i}: rc={rc}"));
            }
            if let Ok(us) = us.parse() {
                times.entry(l.to_string()).or_default().push(us);
            }
        }
        eprintln!("round {}/{runs} done", i + 1);
    }
    let mut summary = serde_json::Map::new();
    println!(
        "{:<28} {:>10} {:>10} {:>5}",
        "action", "median ms", "p95 ms", "n"
    );
    for (l, v) in times.iter_mut() {
        let n = v.len();
        let (p50, p95) = stats(v);
        println!(
            "{l:<28} {:>10.1} {:>10.1} {n:>5}",
            p50 as f64 / 1000.0,
            p95 as f64 / 1000.0
        );
        summary.insert(
            l.clone(),
            serde_json::json!({"median_ms": p50 as f64 / 1000.0, "p95_ms": p95 as f64 / 1000.0, "n": n}),
        );
    }
    let ratio = |ours: &str, classic: &str| {
        let m = |k: &str| summary.get(k).and_then(|v| v["median_ms"].as_f64());
        m(classic).zip(m(ours)).map(|(c, o)| c / o)
    };
    let ratios = serde_json::json!({
        "promote": ratio("ours-promote", "classic-promote"),
        "demote": ratio("ours-demote", "classic-demote"),
        "monitor_promoted": ratio("ours-monitor-promoted", "classic-monitor-promoted"),
        "monitor_unpromoted": ratio("ours-monitor-unpromoted", "classic-monitor-unpromoted"),
    });
    println!("classic / ours (medians): {ratios}");
    if !failures.is_empty() {
        println!("unexpected exit codes: {failures:?}");
    }
    let load = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    let report = serde_json::json!({
        "runs": runs,
        "actions": summary,
        "classic_over_ours": ratios,
        "unexpected_exit_codes": failures,
        "host_loadavg": load.trim(),
        "note": "debug build of iscsi-ha over 9p; TCG guest; classic = drbdsetup-84 (the DRBD step of ocf:linbit:drbd) + iSCSITarget + iSCSILogicalUnit + IPaddr2 (resource-agents 4.12)",
    });
    let dir = crate::assets::report_dir();
    std::fs::create_dir_all(&dir)?;
    let path = dir.join("pacemaker-ra-bench.json");
    std::fs::write(&path, serde_json::to_string_pretty(&report)?)?;
    println!("report: {}", path.display());
    lab.down();
    Ok(())
}
