//! Two nodes with `iscsi-ha` agents on pool.conf, the write ledger writing through the floating
//! address the whole time, and one cycle of every kind `lab soak` mixes (planned switchover, agent
//! SIGKILLed after a random promote stage, tgtd SIGKILLed and restarted, agent SIGKILLed after a
//! random demote stage, power loss of the primary and its rejoin as Secondary, a switchover back):
//! after every cycle 0 acknowledged writes lost, never two DRBD Primaries, never the address held
//! without a serving target (watched from both guests). The 20-cycle run is `lab soak`.
//!
//! - `soak_one_cycle_of_each_kind_loses_nothing`: agents in adopt mode (DRBD brought up by the
//!   harness), the six cycles of the rotation.
//! - `soak_manage_mode_loses_nothing`: agents in manage mode (they bring DRBD up), the first five
//!   cycles (every kind); the power-loss victim rejoins through its agent alone, which replays
//!   the crashed Primary's activity log.
//!
//! Build first: `cargo build --workspace --bins --examples`.

mod common;

use anyhow::ensure;
use lab::soak::{soak_on, DrbdMode, Kind, SoakOpts, ROTATION};

/// Runs the soak with `opts` on the shared lab; fails unless it is clean and `check` passes.
fn clean_soak(
    name: &str,
    opts: SoakOpts,
    check: impl FnOnce(&lab::soak::SoakReport) -> anyhow::Result<()>,
) {
    common::agent_scenario(name, |lab| {
        let rep = soak_on(lab, &opts)?;
        eprintln!(
            "soak ({} mode): {}/{} cycles, {} acknowledged, {} lost, {} torn, violations {:?}, by kind {:#?}",
            rep.drbd_mode,
            rep.cycles_run,
            rep.cycles_asked,
            rep.acked,
            rep.lost,
            rep.torn,
            rep.violations,
            rep.by_kind
        );
        ensure!(
            rep.clean(),
            "soak not clean (seed {}): error {:?}, lost {}, torn {}, violations {:?}",
            rep.seed,
            rep.error,
            rep.lost,
            rep.torn,
            rep.violations
        );
        check(&rep)
    });
}

#[test]
fn soak_one_cycle_of_each_kind_loses_nothing() {
    let opts = SoakOpts {
        cycles: ROTATION.len(),
        report: "soak-test".into(),
        ..SoakOpts::default()
    };
    clean_soak("soak", opts, |_| Ok(()));
}

#[test]
fn soak_manage_mode_loses_nothing() {
    let opts = SoakOpts {
        cycles: 5,
        drbd_mode: DrbdMode::Manage,
        report: "soak-test-manage".into(),
        ..SoakOpts::default()
    };
    clean_soak("soak, manage mode", opts, |rep| {
        let power = rep
            .cycles
            .iter()
            .find(|c| c.kind == Kind::PowerLoss)
            .ok_or_else(|| anyhow::anyhow!("no power-loss cycle in {:?}", rep.cycles))?;
        eprintln!("power loss: {}", power.detail);
        ensure!(
            power.detail.contains("activity log replayed"),
            "the victim's agent did not replay its activity log: {}",
            power.detail
        );
        Ok(())
    });
}
