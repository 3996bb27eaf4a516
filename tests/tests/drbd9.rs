//! DRBD 9 in the lab: a pair of guests running the DRBD 9.3.3 module built from source comes up
//! with node ids, a peer and a path each (Debian's DRBD 9 `drbdsetup` as the oracle), connects,
//! and replicates: a marker written on `a` while Primary is read on `b` after a switchover.
//! Own lab (the shared one runs 8.4). Needs root, QEMU and the DRBD 9 build prerequisites.

use lab::bringup::{read_marker, write_marker, Resource};
use lab::drbd9::{bringup, DrbdVersion};
use lab::{Lab, LabConfig};

#[test]
fn drbd9_pair_connects_and_replicates() {
    if !lab::drbd9::require_lab9() {
        return;
    }
    let lab = Lab::start_with(LabConfig {
        drbd: Some(DrbdVersion::V9),
        ..LabConfig::default()
    })
    .unwrap_or_else(|e| panic!("DRBD 9 lab: {e:#}"));
    let (a, b) = (lab.node(0).unwrap(), lab.node(1).unwrap());
    for n in [a, b] {
        let v = n.run_ok("head -1 /proc/drbd").unwrap().stdout;
        assert!(v.contains("version: 9.3.3"), "node {}: {v}", n.name());
    }
    let r = Resource::default();
    let run = || -> anyhow::Result<()> {
        bringup::pair_up(a, b, &r)?;
        bringup::primary(a, &r)?;
        let marker = "drbd9-replicated-from-a";
        write_marker(a, &r.device(), marker)?;
        bringup::secondary(a, &r)?;
        bringup::primary(b, &r)?;
        let got = read_marker(b, &r.device(), marker.len())?;
        anyhow::ensure!(got == marker, "b read {got:?}, a wrote {marker:?}");
        let ev = bringup::events_now(b, &r)?;
        anyhow::ensure!(
            ev.lines()
                .any(|l| l.starts_with("exists resource") && l.contains("role:Primary")),
            "b not Primary: {ev}"
        );
        bringup::secondary(b, &r)?;
        bringup::down(a, &r)?;
        bringup::down(b, &r)
    };
    if let Err(e) = run() {
        panic!("{e:#}\n{}", lab.logs_tail(30));
    }
}
