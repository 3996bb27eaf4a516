//! `lab write-cache`: what the LUN's `cache` mode costs and what it risks, same lab, same client.
//!
//! For `write-through` (the agent's default) and then `write-back` (set per LUN in both agents'
//! config): the Caching mode page read through the floating address (WCE), the ledger's
//! acknowledged writes per second with plain WRITE(10), with FUA and with SYNCHRONIZE CACHE every
//! 16 writes (one client, one command in flight, `seconds` each), then a power loss of the
//! primary while the ledger writes plain and the survivor takes over: how many acknowledged
//! writes read back old. Writes `target/lab-report/write-cache.json`.

use anyhow::{bail, Result};
use serde::Serialize;
use std::time::Duration;

use crate::agent_lab as al;
use crate::bringup::Resource;
use crate::ledger::{client_caching_page, LedgerProc, Mode, Opts, Report};
use crate::Lab;

const MARKER: &str = "WRITE-CACHE-MARKER written on a";

/// One ledger run's throughput.
#[derive(Debug, Clone, Serialize)]
pub struct Throughput {
    /// Ledger mode.
    pub mode: String,
    /// Acknowledged writes.
    pub acked: u64,
    /// Acknowledged writes per second.
    pub writes_per_s: f64,
    /// Median / p95 time between acknowledgements, ms.
    pub gap_p50_ms: f64,
    /// 95th percentile gap, ms.
    pub gap_p95_ms: f64,
}

/// Figures of one cache mode.
#[derive(Debug, Clone, Serialize)]
pub struct CacheRun {
    /// `write-through` or `write-back`.
    pub cache: String,
    /// WCE from MODE SENSE(6) and (10) through the address.
    pub wce: (bool, bool),
    /// Plain, FUA, sync:16.
    pub throughput: Vec<Throughput>,
    /// Power loss with plain writes: acknowledged writes in the run.
    pub power_loss_acked: u64,
    /// Acknowledged writes that read back old after the takeover.
    pub power_loss_lost: u64,
    /// Longest I/O pause of that run, ms.
    pub power_loss_max_pause_ms: f64,
}

/// Sets the LUN's `cache` key (`write-through` or `write-back`) in the agent config installed on
/// `node` ([`al::install_config`]) and checks the result with `iscsi-ha check-config`.
pub fn set_cache(node: &crate::Node, cache: &str) -> Result<()> {
    if !cache.chars().all(|c| c.is_ascii_lowercase() || c == '-') {
        bail!("bad cache mode {cache:?}");
    }
    node.run_ok(&format!(
        "sed -i '/^product = /a cache = \"{cache}\"' {cfg} && grep -q '^cache = \"{cache}\"' {cfg} && {bin} check-config {cfg}",
        cfg = al::CONFIG,
        bin = al::agent_bin()
    ))?;
    Ok(())
}

fn throughput(r: &Report) -> Throughput {
    Throughput {
        mode: r.mode.clone(),
        acked: r.acked,
        writes_per_s: r.writes_per_s,
        gap_p50_ms: r.gaps.p50_ms,
        gap_p95_ms: r.gaps.p95_ms,
    }
}

/// Both cache modes on `lab` (reset before each), `seconds` of writing per ledger mode.
pub fn write_cache_on(lab: &Lab, seconds: u64) -> Result<Vec<CacheRun>> {
    let r = Resource::default();
    let url = crate::bringup::iscsi_url(crate::FLOATING_IP, al::IQN, 1);
    let mut out = Vec::new();
    for cache in ["write-through", "write-back"] {
        al::reset(lab)?;
        al::pool_conf_pair_up_with(lab, &r, MARKER, |n| set_cache(n, cache))?;
        let (six, ten) = client_caching_page(lab, &url)?;
        let mut tp = Vec::new();
        for mode in [Mode::Plain, Mode::Fua, Mode::Sync(16)] {
            let led = LedgerProc::start(
                lab,
                &Opts {
                    mode,
                    ..Opts::default()
                },
                20,
            )?;
            std::thread::sleep(Duration::from_secs(seconds));
            let rep = led.stop(Duration::from_secs(60))?;
            let t = throughput(&rep);
            println!(
                "{cache:13} {:8}: {:6.0} writes/s ({} acked, gap p50 {:.2} / p95 {:.2} ms)",
                t.mode, t.writes_per_s, t.acked, t.gap_p50_ms, t.gap_p95_ms
            );
            tp.push(t);
        }
        // Power loss of the primary while writing plain.
        let (a, b) = (lab.node(0)?, lab.node(1)?);
        let mut led = LedgerProc::start(lab, &Opts::default(), 300)?;
        let before = led.progress()?.acked;
        a.kill()?;
        al::set_pool_conf(b, Some(al::master()))?;
        al::wait_status(b, "b to serve", Duration::from_secs(60), al::is_serving)?;
        led.wait_acked(before + 200, Duration::from_secs(60))?;
        let rep = led.stop(Duration::from_secs(60))?;
        let lost = rep.verify.as_ref().map(|v| v.lost).unwrap_or(0);
        println!(
            "{cache:13} power loss, plain writes: {} acknowledged, {lost} read back old, longest pause {:.0} ms (WCE {}/{})",
            rep.acked, rep.gaps.max_ms, six.wce, ten.wce
        );
        out.push(CacheRun {
            cache: cache.to_string(),
            wce: (six.wce, ten.wce),
            throughput: tp,
            power_loss_acked: rep.acked,
            power_loss_lost: lost,
            power_loss_max_pause_ms: rep.gaps.max_ms,
        });
    }
    al::reset(lab)?;
    Ok(out)
}

/// `lab write-cache [--seconds N]`: a fresh lab, [`write_cache_on`], the report, lab down.
pub fn write_cache(seconds: u64) -> Result<Vec<CacheRun>> {
    if let Some(m) = crate::missing_prereqs() {
        bail!("prerequisites missing: {m}");
    }
    let loadavg = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    let lab = Lab::start()?;
    let runs = write_cache_on(&lab, seconds);
    if runs.is_err() {
        eprintln!("{}", al::logs(&lab, 40));
    }
    lab.down();
    let runs = runs?;
    let rate = |c: &str, m: &str| {
        runs.iter()
            .find(|r| r.cache == c)
            .and_then(|r| r.throughput.iter().find(|t| t.mode == m))
            .map(|t| t.writes_per_s)
            .unwrap_or(0.0)
    };
    let ratio = |m: &str| {
        let wb = rate("write-back", m);
        if wb > 0.0 {
            rate("write-through", m) / wb
        } else {
            0.0
        }
    };
    let dir = crate::assets::report_dir();
    std::fs::create_dir_all(&dir)?;
    let json = serde_json::json!({
        "reproduce": format!("cargo build --workspace --bins --examples && cargo run -p tests --bin lab -- write-cache --seconds {seconds}"),
        "loadavg_at_start": loadavg.trim(),
        "note": "one libiscsi client (iscsi-ledger), one 512-byte command in flight, through the floating address; TCG guests; DRBD protocol C",
        "write_through_over_write_back": {
            "plain": ratio("plain"), "fua": ratio("fua"), "sync:16": ratio("sync:16"),
        },
        "runs": runs,
    });
    let p = dir.join("write-cache.json");
    std::fs::write(&p, serde_json::to_string_pretty(&json)?)?;
    println!(
        "write-through / write-back writes/s: plain {:.2}, fua {:.2}, sync:16 {:.2}\nreport: {}",
        ratio("plain"),
        ratio("fua"),
        ratio("sync:16"),
        p.display()
    );
    Ok(runs)
}
