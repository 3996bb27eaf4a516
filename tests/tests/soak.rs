//! Two nodes with `iscsi-ha` agents on pool.conf, the write ledger writing through the floating
//! address the whole time, and one cycle of every kind `lab soak` mixes (planned switchover, agent
//! SIGKILLed after a random promote stage, tgtd SIGKILLed and restarted, agent SIGKILLed after a
//! random demote stage, power loss of the primary and its rejoin as Secondary, a switchover back):
//! after every cycle 0 acknowledged writes lost, never two DRBD Primaries, never the address held
//! without a serving target (watched from both guests). The 20-cycle run is `lab soak`.
//!
//! Build first: `cargo build --workspace --bins --examples`.

mod common;

use anyhow::ensure;
use lab::soak::{soak_on, SoakOpts, ROTATION};

#[test]
fn soak_one_cycle_of_each_kind_loses_nothing() {
    common::agent_scenario("soak", |lab| {
        let opts = SoakOpts {
            cycles: ROTATION.len(),
            report: "soak-test".into(),
            ..SoakOpts::default()
        };
        let rep = soak_on(lab, &opts)?;
        eprintln!(
            "soak: {}/{} cycles, {} acknowledged, {} lost, {} torn, violations {:?}, by kind {:#?}",
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
        Ok(())
    });
}
