//! Two nodes with `iscsi-ha` agents on pool.conf and the client's write ledger (one shared lab):
//! power loss of the primary while the ledger writes with plain WRITE(10) commands, then with
//! FUA: after the takeover every acknowledged block reads back (0 lost, 0 torn); and the Caching
//! mode page read through the floating address says write-through (WCE=0) on both nodes, and
//! WCE=1 for a LUN configured `cache = "write-back"`.
//!
//! Build first: `cargo build --workspace --bins --examples` (the guests run `iscsi-ha` over 9p,
//! the client runs `iscsi-ledger`).

mod common;

use anyhow::{ensure, Result};
use lab::agent_lab as al;
use lab::bringup::Resource;
use lab::ledger::{LedgerProc, Mode, Opts};
use lab::Lab;
use std::time::Duration;

const MARKER: &str = "LEDGER-TEST-MARKER written on a";
const T: Duration = Duration::from_secs(30);

/// Power loss of the serving node `a` while the ledger writes in `mode`; `b` takes over (its
/// pool.conf says master); the ledger keeps writing through the address, then verifies.
fn power_loss_loses_nothing(lab: &Lab, mode: Mode) -> Result<()> {
    let (a, b) = (lab.node(0)?, lab.node(1)?);
    let r = Resource::default();
    al::pool_conf_pair_up(lab, &r, MARKER)?;
    let opts = Opts {
        mode,
        ..Opts::default()
    };
    let mut led = LedgerProc::start(lab, &opts, 200)?;
    let before = led.wait_acked(400, T)?;
    a.kill()?;
    al::set_pool_conf(b, Some(al::master()))?;
    al::wait_status(b, "b to serve", Duration::from_secs(60), al::is_serving)?;
    led.wait_acked(before.acked + 300, Duration::from_secs(60))?;
    let rep = led.stop(Duration::from_secs(60))?;
    let v = rep
        .verify
        .clone()
        .ok_or_else(|| anyhow::anyhow!("no verify pass: {:?}", rep.fatal))?;
    eprintln!(
        "{mode}: {} acknowledged ({} before the power loss), {} failed attempts, {} reconnects, \
         {:.0} writes/s; verify: {} checked, {} ok, {} lost, {} torn, {} misplaced, {} unacked-applied; \
         gaps p50 {:.1} / p95 {:.1} / max {:.0} ms; pauses >= {} ms: {:?}",
        rep.acked,
        before.acked,
        rep.failed,
        rep.reconnects,
        rep.writes_per_s,
        v.checked,
        v.ok,
        v.lost,
        v.torn,
        v.misplaced,
        v.unacked_applied,
        rep.gaps.p50_ms,
        rep.gaps.p95_ms,
        rep.gaps.max_ms,
        rep.pause_threshold_ms,
        rep.pauses
            .iter()
            .map(|p| format!("{:.0}", p.ms))
            .collect::<Vec<_>>()
    );
    ensure!(rep.fatal.is_none(), "ledger gave up: {:?}", rep.fatal);
    ensure!(
        v.clean(),
        "{mode}: acknowledged writes did not survive the power loss: {} lost, {} torn, {} misplaced of {} checked; first: {:?}",
        v.lost,
        v.torn,
        v.misplaced,
        v.checked,
        v.bad
    );
    ensure!(v.ok > 0 && v.checked >= v.ok, "nothing verified: {v:?}");
    Ok(())
}

#[test]
fn power_loss_plain_writes_every_acknowledged_block_reads_back() {
    common::agent_scenario("power loss, plain writes", |lab| {
        power_loss_loses_nothing(lab, Mode::Plain)
    });
}

#[test]
fn power_loss_fua_writes_every_acknowledged_block_reads_back() {
    common::agent_scenario("power loss, FUA writes", |lab| {
        power_loss_loses_nothing(lab, Mode::Fua)
    });
}

#[test]
fn caching_mode_page_matches_the_configured_cache_mode_on_both_nodes() {
    common::agent_scenario("caching mode page", |lab| {
        let (a, b) = (lab.node(0)?, lab.node(1)?);
        let r = Resource::default();
        al::pool_conf_pair_up(lab, &r, MARKER)?;
        let url = lab::bringup::iscsi_url(lab::FLOATING_IP, al::IQN, 1);
        let check = |who: &str| -> Result<()> {
            let (six, ten) = lab::ledger::client_caching_page(lab, &url)?;
            eprintln!("{who} serving: MODE SENSE(6) {six:?}, MODE SENSE(10) {ten:?}");
            ensure!(
                !six.wce && !ten.wce,
                "{who}: the caching page says write cache enabled (WCE=1) for a write-through LUN: {six:?} {ten:?}"
            );
            Ok(())
        };
        check("a")?;
        al::set_pool_conf(a, Some(&al::slave_of(b)))?;
        al::wait_status(a, "a to demote", T, al::is_secondary)?;
        al::set_pool_conf(b, Some(al::master()))?;
        al::wait_status(b, "b to serve", T, al::is_serving)?;
        al::client_read_until(lab, MARKER, T)?;
        check("b")?;
        // A LUN configured write-back says so (WCE=1).
        al::reset(lab)?;
        al::pool_conf_pair_up_with(lab, &r, MARKER, |n| {
            lab::write_cache::set_cache(n, "write-back")
        })?;
        let (six, ten) = lab::ledger::client_caching_page(lab, &url)?;
        eprintln!("a serving write-back: MODE SENSE(6) {six:?}, MODE SENSE(10) {ten:?}");
        ensure!(
            six.wce && ten.wce,
            "write-back LUN: the caching page says WCE=0: {six:?} {ten:?}"
        );
        Ok(())
    });
}
