//! Several resources promoted and demoted concurrently over the in-memory backends (tokio's
//! paused time; one slow call shows what runs meanwhile): each resource keeps the one order, an
//! address is claimed only once every resource of its group serves and released before any of
//! them is removed, a failure of one resource rolls every change back with each error kept, and
//! a failed demote leaves an address and its group as they were.

use crate::common;

use std::sync::Arc;
use std::time::Duration;

use agent::backend::memory::Memory;
use agent::daemon::Daemon;
use agent::executor::{Executor, TransitionResult};
use agent::fsm::{Authority, Event, Role, Stage, TargetState};

type D = Daemon<Memory, Memory, Memory>;

const A10: &str = "10.0.0.10/24";
const A11: &str = "10.0.0.11/24";

/// `r0` and `r1` behind 10.0.0.10, `r2` behind 10.0.0.11.
fn setup() -> (D, Memory) {
    let mut cfg = common::config("two", false);
    let mut r2 = cfg.resources[1].clone();
    r2.name = "r2".into();
    r2.minor = 2;
    r2.target.tid = 3;
    r2.target.iqn = "iqn.2026-11.test:r2".into();
    r2.luns[0].device = "/dev/drbd2".into();
    r2.luns[0].scsi_id = "r2-1".into();
    r2.luns[0].scsi_sn = "R2SN1".into();
    cfg.resources.push(r2);
    let mut a11 = cfg.addresses[0].clone();
    a11.address = A11.parse().expect("address");
    a11.resources = vec!["r2".into()];
    cfg.addresses.push(a11);
    cfg.validate()
        .unwrap_or_else(|(key, reason)| panic!("{key}: {reason}"));
    let cfg = Arc::new(cfg);
    let mem = Memory::healthy_secondary(&cfg);
    (
        Daemon::new(Executor::new(cfg, mem.clone(), mem.clone(), mem.clone())),
        mem,
    )
}

fn slow(mem: &Memory, call: &str) {
    mem.world()
        .delays
        .insert(call.into(), Duration::from_millis(100));
}

/// Where `call` is in `log`.
fn at(log: &[String], call: &str) -> usize {
    log.iter()
        .position(|l| l == call)
        .unwrap_or_else(|| panic!("no {call} in {log:?}"))
}

/// `calls` appear in `log` in this order.
fn in_order(log: &[String], calls: &[&str]) {
    let pos: Vec<usize> = calls.iter().map(|c| at(log, c)).collect();
    assert!(pos.windows(2).all(|w| w[0] < w[1]), "{calls:?} in {log:?}");
}

/// Replays `log` from a node that was Secondary: no address is ever held while a resource of
/// its group is not serving.
fn address_never_without_target(log: &[String]) {
    let group = |a: &str| {
        if a == A10 {
            vec!["r0", "r1"]
        } else {
            vec!["r2"]
        }
    };
    let mut serving = std::collections::BTreeSet::new();
    let mut held = std::collections::BTreeSet::new();
    for l in log {
        let (stage, object) = l.split_once(' ').expect("stage object");
        match stage {
            "target-serve" => {
                serving.insert(object.to_string());
            }
            "target-remove" => {
                serving.remove(object);
            }
            "address-claim" => {
                held.insert(object.to_string());
            }
            "address-release" => {
                held.remove(object);
            }
            _ => {}
        }
        for a in &held {
            for r in group(a) {
                assert!(
                    serving.contains(r),
                    "{a} held without {r} after {l}: {log:?}"
                );
            }
        }
    }
}

fn roles(mem: &Memory) -> Vec<Role> {
    mem.world().drbd.values().map(|d| d.role).collect()
}

#[tokio::test(start_paused = true)]
async fn resources_run_concurrently_each_in_the_order() {
    let (mut d, mem) = setup();
    d.observe().await;
    slow(&mem, "drbd-primary r0");
    let h = d.handle(Event::Authority(Authority::Primary)).await;
    let rec = &h.transitions[0];
    assert!(rec.result.is_ok(), "{}", rec.result);
    let log = std::mem::take(&mut mem.world().log);
    for r in ["r0", "r1", "r2"] {
        in_order(
            &log,
            &[&format!("drbd-primary {r}"), &format!("target-serve {r}")],
        );
    }
    // 10.0.0.10 waits for both of its resources, the slow one included.
    in_order(&log, &["target-serve r0", &format!("address-claim {A10}")]);
    in_order(&log, &["target-serve r1", &format!("address-claim {A10}")]);
    // The others did not wait for r0's DRBD: r1 served and r2's address claimed meanwhile.
    in_order(&log, &["target-serve r1", "drbd-primary r0"]);
    in_order(
        &log,
        &[
            "target-serve r2",
            &format!("address-claim {A11}"),
            "drbd-primary r0",
        ],
    );
    address_never_without_target(&log);
    assert_eq!(roles(&mem), [Role::Primary; 3]);
    // One timing per stage, naming every object.
    let serve = rec
        .stages
        .iter()
        .find(|s| s.stage == Stage::TargetServe)
        .expect("serve stage");
    assert_eq!(serve.objects.len(), 3, "{:?}", rec.stages);

    slow(&mem, "target-offline r0");
    let h = d.handle(Event::Authority(Authority::Secondary)).await;
    assert!(
        h.transitions[0].result.is_ok(),
        "{}",
        h.transitions[0].result
    );
    let log = std::mem::take(&mut mem.world().log);
    for r in ["r0", "r1", "r2"] {
        in_order(
            &log,
            &[
                &format!("target-offline {r}"),
                &format!("target-remove {r}"),
                &format!("drbd-secondary {r}"),
            ],
        );
    }
    // Connections closed while the address is here, the address gone before any removal.
    let release = format!("address-release {A10}");
    for r in ["r0", "r1"] {
        in_order(&log, &[&format!("target-offline {r}"), &release]);
        in_order(&log, &[&release, &format!("target-remove {r}")]);
    }
    // r2 demoted while r0's slow offline held its group.
    in_order(&log, &["drbd-secondary r2", "target-offline r0"]);
    address_never_without_target(&log);
    assert_eq!(roles(&mem), [Role::Secondary; 3]);
}

/// An address's claim is near (`Address::claim_near`: a kept probe's last probe is then judged
/// while the target comes up, not at the claim) when the last target in front of it starts
/// serving, and not before: 10.0.0.10's when r0's serve starts after r0's slow DRBD (r1 served
/// already), 10.0.0.11's when r2's does.
#[tokio::test(start_paused = true)]
async fn an_addresss_claim_is_near_when_its_last_target_starts_serving() {
    let (mut d, mem) = setup();
    d.observe().await;
    slow(&mem, "drbd-primary r0");
    let h = d.handle(Event::Authority(Authority::Primary)).await;
    assert!(
        h.transitions[0].result.is_ok(),
        "{}",
        h.transitions[0].result
    );
    let w = mem.world();
    let near_at = |address: &str| {
        let at: Vec<usize> = w
            .claims_near
            .iter()
            .filter(|(a, _)| a == address)
            .map(|(_, at)| *at)
            .collect();
        assert_eq!(at.len(), 1, "{address}: {:?}", w.claims_near);
        &w.log[..at[0]]
    };
    let has = |log: &[String], call: &str| log.iter().any(|l| l == call);
    let before = near_at(A10);
    assert!(has(before, "target-serve r1"), "{before:?}");
    assert!(has(before, "drbd-primary r0"), "{before:?}");
    assert!(!has(before, "target-serve r0"), "{before:?}");
    let before = near_at(A11);
    assert!(has(before, "drbd-primary r2"), "{before:?}");
    assert!(!has(before, "target-serve r2"), "{before:?}");
    assert_eq!(w.claims_near.len(), 2, "{:?}", w.claims_near);
}

/// r0's serve fails while r1 has been served and r2 has its address: everything is undone,
/// each resource in the reverse of the order, and 10.0.0.10 is never claimed.
#[tokio::test(start_paused = true)]
async fn one_failed_resource_rolls_back_every_change() {
    let (mut d, mem) = setup();
    d.observe().await;
    slow(&mem, "target-serve r0");
    mem.world().fail_stage = Some((Stage::TargetServe, "r0".into()));
    let h = d.handle(Event::Authority(Authority::Primary)).await;
    let rec = &h.transitions[0];
    assert!(
        matches!(&rec.result, TransitionResult::RolledBack { step, .. } if step.object == "r0"),
        "{}",
        rec.result
    );
    let log = std::mem::take(&mut mem.world().log);
    assert!(!log.contains(&format!("address-claim {A10}")), "{log:?}");
    // r2's address was claimed before r0 failed, and is released before r2's target goes.
    in_order(
        &log,
        &[
            &format!("address-claim {A11}"),
            "target-serve r0",
            "target-offline r2",
            &format!("address-release {A11}"),
            "target-remove r2",
            "drbd-secondary r2",
        ],
    );
    in_order(
        &log,
        &[
            "target-serve r0",
            "target-offline r1",
            "target-remove r1",
            "drbd-secondary r1",
        ],
    );
    // r0 got as far as Primary: made Secondary again; its target was never served.
    in_order(
        &log,
        &["drbd-primary r0", "target-serve r0", "drbd-secondary r0"],
    );
    assert!(!log.contains(&"target-remove r0".to_string()), "{log:?}");
    address_never_without_target(&log);
    {
        let w = mem.world();
        assert!(
            w.drbd.values().all(|v| v.role == Role::Secondary),
            "{log:?}"
        );
        assert!(
            w.targets.values().all(|t| t.state == TargetState::Absent),
            "{log:?}"
        );
        assert!(w.addresses.values().all(|h| !h), "{log:?}");
    }
    let failed = rec
        .stages
        .iter()
        .find(|s| s.stage == Stage::TargetServe && !s.rollback)
        .expect("serve stage");
    assert!(!failed.ok);
    assert_eq!(failed.errors.len(), 1, "{:?}", failed.errors);
    assert!(failed.errors[0].starts_with("r0: "), "{:?}", failed.errors);
}

/// Two resources fail at once: both errors are kept, each under its resource, and the node is
/// Secondary again.
#[tokio::test(start_paused = true)]
async fn concurrent_failures_are_each_reported() {
    // Which call r1's serve is, in a clean run with the same timing.
    let n = {
        let (mut d, mem) = setup();
        d.observe().await;
        slow(&mem, "target-serve r0");
        slow(&mem, "target-serve r1");
        d.handle(Event::Authority(Authority::Primary)).await;
        let log = &mem.world().log;
        at(log, "target-serve r1") + 1
    };
    let (mut d, mem) = setup();
    d.observe().await;
    slow(&mem, "target-serve r0");
    slow(&mem, "target-serve r1");
    {
        let mut w = mem.world();
        w.fail_stage = Some((Stage::TargetServe, "r0".into()));
        w.fail_at_call = Some(n);
    }
    let h = d.handle(Event::Authority(Authority::Primary)).await;
    let rec = &h.transitions[0];
    assert!(
        matches!(rec.result, TransitionResult::RolledBack { .. }),
        "{}",
        rec.result
    );
    let serve = rec
        .stages
        .iter()
        .find(|s| s.stage == Stage::TargetServe && !s.rollback)
        .expect("serve stage");
    let mut errors = serve.errors.clone();
    errors.sort();
    assert_eq!(errors.len(), 2, "{errors:?}");
    assert!(
        errors[0].starts_with("r0: ") && errors[1].starts_with("r1: "),
        "{errors:?}"
    );
    let log = mem.world().log.clone();
    address_never_without_target(&log);
    assert_eq!(roles(&mem), [Role::Secondary; 3], "{log:?}");
}

/// r0's target-offline fails in a demote: 10.0.0.10 stays held and neither of its resources is
/// removed (a demote is not reversed); r2, behind the other address, may finish.
#[tokio::test(start_paused = true)]
async fn failed_demote_keeps_the_group_behind_its_address() {
    let (mut d, mem) = setup();
    d.observe().await;
    d.handle(Event::Authority(Authority::Primary)).await;
    mem.world().log.clear();
    slow(&mem, "target-offline r0");
    mem.world().fail_stage = Some((Stage::TargetOffline, "r0".into()));
    let h = d.handle(Event::Authority(Authority::Secondary)).await;
    common::first_transition(&h, "failed: target-offline r0");
    let w = mem.world();
    assert_eq!(w.addresses.get(A10), Some(&true), "{:?}", w.log);
    for r in ["r0", "r1"] {
        assert_ne!(
            w.targets.get(r).map(|t| t.state),
            Some(TargetState::Absent),
            "{r} removed behind a held address: {:?}",
            w.log
        );
        assert_eq!(w.drbd.get(r).map(|v| v.role), Some(Role::Primary));
    }
    // r2's demote ran meanwhile, its address first.
    in_order(
        &w.log,
        &[
            "target-offline r2",
            &format!("address-release {A11}"),
            "target-remove r2",
            "drbd-secondary r2",
            "target-offline r0",
        ],
    );
}
