//! The daemon core (fsm + executor) over the in-memory backends: ordering of the real calls,
//! rollback at every step, idempotence, restart convergence from every mixed state, refusals,
//! and reactions to backend events.

use crate::common;

use std::sync::Arc;

use agent::backend::memory::Memory;
use agent::control::Request;
use agent::daemon::Daemon;
use agent::executor::{Executor, TransitionResult};
use agent::fsm::{
    Authority, Connection, Disk, DrbdNet, DrbdView, Event, Fencing, Role, Stage, TargetState,
    TargetView, VolumeView,
};
use agent::record::TransitionRecord;

type D = Daemon<Memory, Memory, Memory>;

fn setup(name: &str, command: bool) -> (D, Memory) {
    let cfg = Arc::new(common::config(name, command));
    let mem = Memory::healthy_secondary(&cfg);
    let exec = Executor::new(cfg, mem.clone(), mem.clone(), mem.clone());
    (Daemon::new(exec), mem)
}

fn assert_secondary(mem: &Memory) {
    let w = mem.world();
    for (n, d) in &w.drbd {
        assert_ne!(d.role, Role::Primary, "{n} left Primary: {:?}", w.log);
    }
    for (n, t) in &w.targets {
        assert_eq!(t.state, TargetState::Absent, "{n} target left: {:?}", w.log);
    }
    for (a, h) in &w.addresses {
        assert!(!h, "{a} left held: {:?}", w.log);
    }
}

fn assert_primary(mem: &Memory) {
    let w = mem.world();
    for (n, d) in &w.drbd {
        assert_eq!(d.role, Role::Primary, "{n} not Primary: {:?}", w.log);
    }
    for (n, t) in &w.targets {
        assert_eq!(
            t.state,
            TargetState::Serving,
            "{n} not serving: {:?}",
            w.log
        );
    }
    for (a, h) in &w.addresses {
        assert!(h, "{a} not held: {:?}", w.log);
    }
}

#[tokio::test]
async fn promote_then_demote_in_order() {
    let (mut d, mem) = setup("two", false);
    assert!(d.observe().await.transitions.is_empty());
    let h = d.handle(Event::Authority(Authority::Primary)).await;
    assert_eq!(h.transitions.len(), 1);
    let rec = &h.transitions[0];
    assert_eq!(rec.kind, "promote");
    assert!(rec.result.is_ok(), "{}", rec.result);
    // One stage per kind; the two resources share each stage (run concurrently).
    let stages: Vec<(Stage, usize)> = rec
        .stages
        .iter()
        .map(|s| (s.stage, s.objects.len()))
        .collect();
    assert_eq!(
        stages,
        vec![
            (Stage::CheckResource, 2),
            (Stage::ProbeAddress, 1),
            (Stage::DrbdPrimary, 2),
            (Stage::TargetServe, 2),
            (Stage::AddressClaim, 1),
        ]
    );
    assert_primary(&mem);
    let log = std::mem::take(&mut mem.world().log);
    assert_eq!(
        log,
        [
            "probe-address 10.0.0.10/24",
            "drbd-primary r0",
            "drbd-primary r1",
            "target-serve r0",
            "target-serve r1",
            "address-claim 10.0.0.10/24"
        ]
    );
    let h = d.handle(Event::Authority(Authority::Secondary)).await;
    assert_eq!(h.transitions[0].kind, "demote");
    assert!(
        h.transitions[0].result.is_ok(),
        "{}",
        h.transitions[0].result
    );
    assert_secondary(&mem);
    let log = std::mem::take(&mut mem.world().log);
    assert_eq!(
        log,
        [
            "target-offline r0",
            "target-offline r1",
            "address-release 10.0.0.10/24",
            "target-remove r0",
            "target-remove r1",
            "drbd-secondary r0",
            "drbd-secondary r1"
        ]
    );
}

#[tokio::test]
async fn idempotent_signals_and_safety_net() {
    let (mut d, mem) = setup("two-addr", false);
    d.observe().await;
    d.handle(Event::Authority(Authority::Primary)).await;
    assert_primary(&mem);
    let calls = mem.world().calls;
    for _ in 0..3 {
        assert!(d
            .handle(Event::Authority(Authority::Primary))
            .await
            .transitions
            .is_empty());
        assert!(d.handle(Event::Tick).await.transitions.is_empty());
        assert!(d.observe().await.transitions.is_empty());
    }
    assert_eq!(mem.world().calls, calls, "no backend call once converged");
    assert!(d.state().is_some_and(|s| s.converged()));
}

/// Count the mutating calls of a clean promote, then fail each one in turn.
#[tokio::test]
async fn rollback_at_every_step_leaves_node_secondary() {
    let (mut d, mem) = setup("two-addr", false);
    d.observe().await;
    d.handle(Event::Authority(Authority::Primary)).await;
    let total = mem.world().calls;
    assert_eq!(total, 8, "2 probes, 2 primary, 2 serve, 2 claim");
    for n in 1..=total {
        let (mut d, mem) = setup("two-addr", false);
        mem.world().fail_at_call = Some(n);
        d.observe().await;
        let h = d.handle(Event::Authority(Authority::Primary)).await;
        assert_eq!(
            h.transitions.len(),
            1,
            "call {n}: one transition, no retry storm"
        );
        let rec = &h.transitions[0];
        assert!(
            matches!(
                rec.result,
                TransitionResult::RolledBack { .. } | TransitionResult::Refused { .. }
            ),
            "call {n}: {}",
            rec.result
        );
        assert!(!h.notices.is_empty(), "call {n}: failure reported");
        assert_secondary(&mem);
        let st = d.state().expect("state");
        assert!(st.blocked.is_some(), "call {n}: blocked until a new signal");
        // Status shows the rollback stages.
        let status = d.status().expect("status");
        assert!(status.transitions.iter().any(|t| t.result == rec.result));
        // The safety net retries and, with the fault gone, promotes.
        mem.world().fail_at_call = None;
        let h = d.handle(Event::Tick).await;
        assert_eq!(
            h.transitions.last().map(|t| &t.result),
            Some(&TransitionResult::Ok),
            "call {n}"
        );
        assert_primary(&mem);
    }
}

#[tokio::test]
async fn demote_failure_is_reported_not_reversed() {
    let (mut d, mem) = setup("one", false);
    d.observe().await;
    d.handle(Event::Authority(Authority::Primary)).await;
    mem.world().fail_stage = Some((Stage::TargetRemove, "r0".into()));
    let h = d.handle(Event::Authority(Authority::Secondary)).await;
    common::first_transition(&h, "failed: target-remove r0");
    {
        let w = mem.world();
        assert_eq!(
            w.addresses.get("10.0.0.10/24"),
            Some(&false),
            "address stays released"
        );
        assert_eq!(
            w.targets.get("r0").map(|t| t.state),
            Some(TargetState::Offline)
        );
        assert_eq!(w.drbd.get("r0").map(|v| v.role), Some(Role::Primary));
    }
    mem.world().fail_stage = None;
    let h = d.handle(Event::Tick).await;
    assert!(
        h.transitions[0].result.is_ok(),
        "{}",
        h.transitions[0].result
    );
    assert_secondary(&mem);
}

/// Every mix of DRBD role x target state x address for two resources, restarted with either
/// wish: the node converges; a node already in the wished state sees no call at all.
#[tokio::test]
async fn restart_converges_from_every_mixed_state() {
    let roles = [Role::Secondary, Role::Primary];
    let targets = [
        TargetState::Absent,
        TargetState::Partial,
        TargetState::Serving,
        TargetState::Offline,
    ];
    let mut cases = 0;
    for wish in [Authority::Primary, Authority::Secondary] {
        for r0 in roles {
            for t0 in targets {
                for r1 in roles {
                    for t1 in targets {
                        for held in [false, true] {
                            let (mut d, mem) = setup("two", false);
                            {
                                let mut w = mem.world();
                                for (n, r, t) in [("r0", r0, t0), ("r1", r1, t1)] {
                                    if let Some(v) = w.drbd.get_mut(n) {
                                        v.role = r;
                                    }
                                    w.targets.insert(
                                        n.into(),
                                        TargetView {
                                            state: t,
                                            sessions: 1,
                                        },
                                    );
                                }
                                w.addresses.insert("10.0.0.10/24".into(), held);
                            }
                            let already = match wish {
                                Authority::Primary => {
                                    r0 == Role::Primary
                                        && r1 == Role::Primary
                                        && t0 == TargetState::Serving
                                        && t1 == TargetState::Serving
                                        && held
                                }
                                _ => {
                                    r0 == Role::Secondary
                                        && r1 == Role::Secondary
                                        && t0 == TargetState::Absent
                                        && t1 == TargetState::Absent
                                        && !held
                                }
                            };
                            d.handle(Event::Authority(wish.clone())).await;
                            let h = d.observe().await;
                            let ctx = format!("{wish} {r0:?}/{t0:?} {r1:?}/{t1:?} held={held}");
                            if wish == Authority::Primary {
                                assert_primary(&mem);
                            } else {
                                assert_secondary(&mem);
                            }
                            assert!(h.transitions.iter().all(|t| t.result.is_ok()), "{ctx}");
                            if already && wish == Authority::Primary {
                                // Only the held address is claimed again (adopted and
                                // announced: a killed agent may not have announced it).
                                assert_eq!(h.transitions.len(), 1, "{ctx}: flapped");
                                let log = &mem.world().log;
                                assert_eq!(log, &["address-claim 10.0.0.10/24"], "{ctx}");
                            } else if already {
                                assert!(h.transitions.is_empty(), "{ctx}: flapped");
                                assert_eq!(mem.world().calls, 0, "{ctx}");
                            }
                            // Nothing that already held was undone while primary, but an
                            // address no serving target is behind is released before anything
                            // else (and claimed again, probed, last).
                            if wish == Authority::Primary {
                                let log = &mem.world().log;
                                let orphaned = held
                                    && t0 != TargetState::Serving
                                    && t1 != TargetState::Serving;
                                if orphaned {
                                    // In the demote order: a partial target's connections
                                    // closed while the address is still here.
                                    let at = log
                                        .iter()
                                        .position(|l| l == "address-release 10.0.0.10/24");
                                    let at = at.unwrap_or_else(|| panic!("{ctx}: {log:?}"));
                                    assert!(
                                        log[..at].iter().all(|l| l.starts_with("target-offline")),
                                        "{ctx}: {log:?}"
                                    );
                                    assert_eq!(log[at + 1], "probe-address 10.0.0.10/24", "{ctx}");
                                }
                                assert!(
                                    log.iter()
                                        .all(|l| (orphaned || !l.starts_with("address-release"))
                                            && !l.starts_with("drbd-secondary")
                                            && !l.starts_with("target-remove")),
                                    "{ctx}: {log:?}"
                                );
                            }
                            assert!(d.state().is_some_and(|s| s.converged()), "{ctx}");
                            cases += 1;
                        }
                    }
                }
            }
        }
    }
    assert_eq!(cases, 256);
}

#[tokio::test]
async fn refusals_change_nothing() {
    // Command source: peer Primary.
    let (mut d, mem) = setup("one", true);
    d.observe().await;
    mem.peer_primary("r0", true);
    d.observe().await;
    let r = d.request(Request::Promote).await;
    assert!(!r.ok);
    assert!(r.message.contains("peer is DRBD Primary"), "{}", r.message);
    assert_eq!(mem.world().calls, 0);
    // Peer became Primary between observation and promote: the live check refuses.
    let (mut d, mem) = setup("one", true);
    d.observe().await;
    mem.world().drbd.get_mut("r0").expect("r0").peer_role = Role::Primary;
    let r = d.request(Request::Promote).await;
    assert!(
        !r.ok && r.message.contains("check-resource r0"),
        "{}",
        r.message
    );
    assert_secondary(&mem);
    // Another host answers for the address.
    let (mut d, mem) = setup("one", true);
    d.observe().await;
    mem.world().answered_elsewhere.insert("10.0.0.10/24".into());
    let r = d.request(Request::Promote).await;
    assert!(
        !r.ok && r.message.contains("another host answers"),
        "{}",
        r.message
    );
    assert_secondary(&mem);
    let s = r.status.expect("status");
    assert_eq!(s.authority, Authority::Secondary);
    // Local disk not UpToDate.
    let (mut d, mem) = setup("one", true);
    mem.set_disk("r0", Disk::Outdated);
    d.observe().await;
    let r = d.request(Request::Promote).await;
    assert!(!r.ok && r.message.contains("Outdated"), "{}", r.message);
    // Maintenance.
    let (mut d, mem) = setup("one", true);
    d.observe().await;
    assert!(d.request(Request::Maintenance { on: true }).await.ok);
    let r = d.request(Request::Promote).await;
    assert!(!r.ok && r.message.contains("maintenance"), "{}", r.message);
    assert_eq!(mem.world().calls, 0);
    // pool-conf source: commands refused.
    let (mut d, _) = setup("one", false);
    d.observe().await;
    let r = d.request(Request::Promote).await;
    assert!(!r.ok && r.message.contains("pool-conf"), "{}", r.message);
}

#[tokio::test]
async fn command_promote_and_demote() {
    let (mut d, mem) = setup("two", true);
    d.observe().await;
    let r = d.request(Request::Promote).await;
    assert!(r.ok, "{}", r.message);
    assert!(r.message.starts_with("promote done in"), "{}", r.message);
    assert_primary(&mem);
    let r = d.request(Request::Promote).await;
    assert!(r.ok && r.message == "nothing to do", "{}", r.message);
    let r = d.request(Request::Demote).await;
    assert!(r.ok, "{}", r.message);
    assert_secondary(&mem);
    let s = d.request(Request::Status).await.status.expect("status");
    assert_eq!(s.transitions.len(), 2);
    assert!(s.render().contains("drbd-primary r0,r1"));
}

/// Events from the backends, through the daemon's channel as in production.
#[tokio::test]
async fn backend_events_repair() {
    let cfg = Arc::new(common::config("two", false));
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    let mem = Memory::healthy_secondary(&cfg).with_events(tx);
    let exec = Executor::new(cfg, mem.clone(), mem.clone(), mem.clone());
    let mut d = Daemon::new(exec);
    d.observe().await;
    d.handle(Event::Authority(Authority::Primary)).await;
    assert_primary(&mem);

    // tgtd restarted empty: the targets come back, the address is not touched.
    mem.world().log.clear();
    mem.tgtd_restarted();
    while let Ok(ev) = rx.try_recv() {
        d.handle(ev).await;
    }
    assert_primary(&mem);
    assert_eq!(mem.world().log, ["target-serve r0", "target-serve r1"]);

    // Address removed by hand: probed and claimed back.
    mem.world().log.clear();
    mem.address_removed("10.0.0.10/24");
    while let Ok(ev) = rx.try_recv() {
        d.handle(ev).await;
    }
    assert_primary(&mem);
    assert_eq!(
        mem.world().log,
        ["probe-address 10.0.0.10/24", "address-claim 10.0.0.10/24"]
    );

    // Peer lost: nothing to do.
    mem.world().log.clear();
    mem.peer_lost("r0");
    while let Ok(ev) = rx.try_recv() {
        assert!(d.handle(ev).await.transitions.is_empty());
    }
    // Local disk failed while primary: an alarm, no demote.
    mem.set_disk("r1", Disk::Failed);
    let mut alarms = 0;
    while let Ok(ev) = rx.try_recv() {
        let h = d.handle(ev).await;
        assert!(h.transitions.is_empty());
        alarms += h.notices.len();
    }
    assert_eq!(alarms, 1);
    assert!(mem.world().log.is_empty());

    // Role changed by someone else (demoted by hand while the target holds it: DRBD would
    // refuse, but suppose it happened): promoted back.
    mem.set_role("r0", Role::Secondary);
    while let Ok(ev) = rx.try_recv() {
        d.handle(ev).await;
    }
    assert_eq!(
        mem.world().drbd.get("r0").map(|v| v.role),
        Some(Role::Primary)
    );
}

#[tokio::test]
async fn managed_resource_is_brought_up() {
    let (mut d, mem) = setup("managed", false);
    mem.world().drbd.clear();
    d.observe().await;
    let h = d.handle(Event::Authority(Authority::Primary)).await;
    // Bring-up, then (the memory backend reports UpToDate on the next observation) promote.
    assert_eq!(h.transitions[0].stages[0].stage, Stage::DrbdUp);
    let h = d.observe().await;
    assert_eq!(h.transitions.len(), 1);
    assert_primary(&mem);
}

/// What a bring-up that failed at its attach leaves: the minor made, Diskless, StandAlone.
fn half_up() -> DrbdView {
    DrbdView {
        up: true,
        role: Role::Secondary,
        connection: Connection::StandAlone,
        disk: Disk::Diskless,
        peer_disk: Disk::DUnknown,
        ..DrbdView::default()
    }
}

/// A bring-up that failed at its attach (the disk busy or wrong) left the minor Diskless and
/// StandAlone: the next observation (the retry, the safety net, a restart) brings it up again.
#[tokio::test]
async fn a_half_up_managed_resource_is_brought_up_again() {
    let (mut d, mem) = setup("managed", false);
    mem.world().drbd.insert("r0".into(), half_up());
    d.observe().await;
    let h = d.handle(Event::Authority(Authority::Secondary)).await;
    assert_eq!(h.transitions.len(), 1, "{:?}", h.transitions);
    assert_eq!(h.transitions[0].stages[0].stage, Stage::DrbdUp);
    let v = mem.world().drbd["r0"].clone();
    assert!(
        v.disk == Disk::UpToDate && v.connection == Connection::Connected,
        "{v:?}"
    );
    // Attached and connected: nothing more to bring up.
    assert!(d.observe().await.transitions.is_empty());
}

/// A bring-up whose attach fails is not started again by the DRBD events of its own failure
/// (Attaching, then Diskless): once, then at the next full observation.
#[tokio::test]
async fn a_failing_bring_up_is_not_retried_on_its_own_events() {
    let (mut d, mem) = setup("managed", false);
    let half = half_up();
    mem.world().drbd.insert("r0".into(), half.clone());
    mem.world().fail_stage = Some((Stage::DrbdUp, "r0".into()));
    d.observe().await;
    let mut tried = d
        .handle(Event::Authority(Authority::Secondary))
        .await
        .transitions
        .len();
    for _ in 0..5 {
        for disk in [Disk::Attaching, Disk::Diskless] {
            let view = DrbdView {
                disk,
                ..half.clone()
            };
            let ev = Event::Drbd {
                resource: "r0".into(),
                view,
            };
            tried += d.handle(ev).await.transitions.len();
        }
    }
    assert_eq!(tried, 1, "{:?}", mem.world().log);
    // The safety net's full observation tries again.
    assert_eq!(d.observe().await.transitions.len(), 1);
}

/// Authority Primary on `d`: the promote it starts, which must be rolled back at the address
/// claim.
async fn promote_rolled_back_at_claim(d: &mut D) -> TransitionRecord {
    let h = d.handle(Event::Authority(Authority::Primary)).await;
    common::first_transition(&h, "rolled back: address-claim")
}

#[tokio::test]
async fn claim_failure_rolls_back_in_demote_order() {
    let (mut d, mem) = setup("one", false);
    d.observe().await;
    mem.world().fail_stage = Some((Stage::AddressClaim, "10.0.0.10/24".into()));
    let rec = &promote_rolled_back_at_claim(&mut d).await;
    assert!(rec
        .stages
        .iter()
        .any(|s| s.rollback && s.stage == Stage::DrbdSecondary));
    // The failed claim is released too: a claim that timed out may have added the address.
    assert!(rec
        .stages
        .iter()
        .any(|s| s.rollback && s.stage == Stage::AddressRelease));
    assert_secondary(&mem);
}

/// A rollback whose address release fails stops there, as a demote does: the targets behind the
/// address that may still be held are not removed (never the address without a target).
#[tokio::test]
async fn rollback_stops_where_a_release_failed() {
    let (mut d, mem) = setup("two-addr", false);
    d.observe().await;
    {
        let mut w = mem.world();
        // 2 probes, 2 primary, 2 serve, then the claims: 10.0.0.10 ok, 10.0.0.11 fails.
        w.fail_at_call = Some(8);
        w.fail_stage = Some((Stage::AddressRelease, "10.0.0.10/24".into()));
    }
    promote_rolled_back_at_claim(&mut d).await;
    {
        let w = mem.world();
        assert_eq!(w.addresses.get("10.0.0.10/24"), Some(&true), "{:?}", w.log);
        assert_ne!(
            w.targets.get("r0").map(|t| t.state),
            Some(TargetState::Absent),
            "address held without its target: {:?}",
            w.log
        );
        // r1's own address went first, so its target may go (resources run concurrently).
        assert!(
            !w.log.iter().any(|l| l == "target-remove r0"),
            "{:?}",
            w.log
        );
    }
    // The fault gone, the safety net makes the node whole for the wish (primary).
    {
        let mut w = mem.world();
        w.fail_at_call = None;
        w.fail_stage = None;
    }
    d.handle(Event::Tick).await;
    assert_primary(&mem);
}

/// The DRBD Primary requests made so far (`drbd-primary` and `drbd-primary-force` calls).
fn drbd_asks(mem: &Memory) -> Vec<String> {
    let w = mem.world();
    w.log
        .iter()
        .filter(|l| l.starts_with("drbd-primary"))
        .cloned()
        .collect()
}

/// A promote refused with `why` in its message, after exactly the DRBD Primary requests
/// `asked`; the node left Secondary.
async fn refused(d: &mut D, mem: &Memory, why: &str, asked: &[&str]) {
    let r = d.request(Request::Promote).await;
    assert!(!r.ok && r.message.contains(why), "{}", r.message);
    assert_eq!(drbd_asks(mem), asked, "{:?}", mem.world().log);
    assert_secondary(mem);
}

/// A promote that succeeds after exactly the DRBD Primary requests `asked`; the node left
/// Primary.
async fn promoted(d: &mut D, mem: &Memory, asked: &[&str]) {
    let r = d.request(Request::Promote).await;
    assert!(r.ok, "{}", r.message);
    assert_eq!(drbd_asks(mem), asked, "{:?}", mem.world().log);
    assert_primary(mem);
}

/// A promote refused because another host answers for the address, DRBD never asked.
async fn refused_unasked(d: &mut D, mem: &Memory) {
    refused(d, mem, "another host answers", &[]).await;
}

/// r0's next `drbd-primary` takes DRBD's ping wait (600 ms of paused time), and `change` is
/// applied to the world halfway through it; the handle ends once it is.
fn midway_through_drbd_primary(mem: &Memory, change: fn(&Memory)) -> tokio::task::JoinHandle<()> {
    let ping = std::time::Duration::from_millis(600);
    mem.world().delays.insert("drbd-primary r0".into(), ping);
    let mem = mem.clone();
    tokio::spawn(async move {
        tokio::time::sleep(ping / 2).await;
        change(&mem);
    })
}

/// r0 as a power loss first shows it: still Connected, the peer Primary, DRBD refusing a second
/// Primary (no `allow-two-primaries`), with `fencing`; another host answers for the address
/// when `answered`.
fn peer_primary_world(name: &str, fencing: Fencing, answered: bool) -> (D, Memory) {
    let (d, mem) = setup(name, true);
    {
        let mut w = mem.world();
        let v = w.drbd.get_mut("r0").expect("r0");
        v.peer_role = Role::Primary;
        v.fencing = fencing;
        v.net = Some(DrbdNet::default());
        if answered {
            w.answered_elsewhere.insert("10.0.0.10/24".into());
        }
    }
    (d, mem)
}

/// Under fencing DRBD is asked for Primary before the probe's verdict (its ping wait overlaps
/// the probe window); without fencing, or for a forced request, never while another host
/// answers for the address.
#[tokio::test]
async fn only_drbds_fencing_lets_primary_be_asked_before_the_probe_verdict() {
    // resource-only, the peer still Primary: DRBD asked (and refuses), nothing else changed.
    let (mut d, mem) = peer_primary_world("managed", Fencing::ResourceOnly, true);
    d.observe().await;
    refused(&mut d, &mem, "peer is DRBD Primary", &["drbd-primary r0"]).await;
    // The peer is then lost: manage mode forces, but not while another host answers.
    mem.world().log.clear();
    mem.peer_lost("r0");
    d.observe().await;
    refused_unasked(&mut d, &mem).await;
    // Nobody answers: forced once the verdict is in.
    mem.world().answered_elsewhere.clear();
    let r = d.request(Request::Promote).await;
    assert!(r.ok, "{}", r.message);
    assert_eq!(drbd_asks(&mem), ["drbd-primary-force r0"]);
    assert_primary(&mem);

    // DRBD now records the peer Outdated (the forced promote's "split brain situation"): it
    // would promote unforced without its peer, so the verdict comes first again.
    assert_eq!(mem.world().drbd["r0"].peer_disk, Disk::Outdated);
    assert!(d.request(Request::Demote).await.ok);
    mem.world().log.clear();
    mem.world().answered_elsewhere.insert("10.0.0.10/24".into());
    refused_unasked(&mut d, &mem).await;

    // Adopt mode: the administrator's fence-peer handler (a STONITH one, say) runs only after
    // the verdict; without one DRBD's own refusal (-7) stands.
    let (mut d, mem) = peer_primary_world("one", Fencing::ResourceOnly, true);
    d.observe().await;
    refused_unasked(&mut d, &mem).await;
    let (mut d, mem) = peer_primary_world("one", Fencing::ResourceOnly, false);
    mem.peer_lost("r0");
    d.observe().await;
    refused(&mut d, &mem, "SS_PRIMARY_NOP", &["drbd-primary r0"]).await;

    // dont-care: DRBD would promote without its peer, so the verdict comes first.
    for fencing in [Fencing::DontCare, Fencing::Unknown] {
        let (mut d, mem) = peer_primary_world("managed", fencing, true);
        d.observe().await;
        refused_unasked(&mut d, &mem).await;
    }
}

/// A power loss as DRBD runs it in manage mode: the unforced request waits out DRBD's ping (a
/// delay here), during which the peer is declared lost, and is refused (-7); the forced retry
/// goes out only after the probe's verdict: refused, nothing forced, while another host answers.
#[tokio::test(start_paused = true)]
async fn power_loss_retry_is_forced_only_after_the_probe_verdict() {
    for answered in [true, false] {
        let (mut d, mem) = peer_primary_world("managed", Fencing::ResourceOnly, answered);
        d.observe().await;
        let lost = midway_through_drbd_primary(&mem, |m| m.peer_lost("r0"));
        if answered {
            refused(&mut d, &mem, "another host answers", &["drbd-primary r0"]).await;
        } else {
            promoted(&mut d, &mem, &["drbd-primary r0", "drbd-primary-force r0"]).await;
        }
        lost.await.expect("peer lost");
    }
}

/// A power loss where DRBD refuses at once (the peer still shows Primary; the real backend
/// ends DRBD's sleep inside the request): DRBD's verdict on its ping comes later as a change of
/// state, and the same promote follows it. Manage mode forces once the peer is declared lost;
/// with `dont-care` fencing the verdict of the probe comes before any request and the second,
/// unforced request promotes.
#[tokio::test(start_paused = true)]
async fn a_refusal_for_a_primary_peer_waits_for_drbds_verdict_on_its_ping() {
    for (name, fencing, asks) in [
        (
            "managed",
            Fencing::ResourceOnly,
            ["drbd-primary r0", "drbd-primary-force r0"],
        ),
        (
            "one",
            Fencing::DontCare,
            ["drbd-primary r0", "drbd-primary r0"],
        ),
    ] {
        let (mut d, mem) = peer_primary_world(name, fencing, false);
        d.observe().await;
        let wait = mem.world().drbd["r0"].refusal_wait();
        let lost = {
            let mem = mem.clone();
            tokio::spawn(async move {
                tokio::time::sleep(wait / 2).await;
                mem.peer_lost("r0");
            })
        };
        let t0 = tokio::time::Instant::now();
        promoted(&mut d, &mem, &asks).await;
        // Virtual time: the promote followed the change, not DRBD's whole wait.
        assert!(t0.elapsed() < wait, "{name}: {:?}", t0.elapsed());
        lost.await.expect("peer lost");
    }
}

/// A move that leaves DRBD refusing for a Primary peer (here its disk state; in the field one
/// volume of several demoting) is waited through: DRBD is asked again only once the peer is
/// lost, so the step takes two requests, not one per move.
#[tokio::test(start_paused = true)]
async fn a_move_that_leaves_the_peer_primary_is_waited_through() {
    let (mut d, mem) = peer_primary_world("managed", Fencing::ResourceOnly, false);
    d.observe().await;
    let wait = mem.world().drbd["r0"].refusal_wait();
    let moves = {
        let mem = mem.clone();
        tokio::spawn(async move {
            tokio::time::sleep(wait / 4).await;
            mem.world().drbd.get_mut("r0").expect("r0").peer_disk = Disk::Consistent;
            tokio::time::sleep(wait / 4).await;
            mem.peer_lost("r0");
        })
    };
    promoted(&mut d, &mem, &["drbd-primary r0", "drbd-primary-force r0"]).await;
    moves.await.expect("moves");
}

/// A live Primary peer answers DRBD's ping: the standing never moves, and the refusal stands
/// after DRBD's own wait and the slack, with one request.
#[tokio::test(start_paused = true)]
async fn a_primary_peer_that_stays_keeps_the_refusal_after_drbds_wait() {
    let (mut d, mem) = peer_primary_world("managed", Fencing::ResourceOnly, false);
    d.observe().await;
    let wait = mem.world().drbd["r0"].refusal_wait() + agent::executor::VERDICT_SLACK;
    let t0 = tokio::time::Instant::now();
    refused(&mut d, &mem, "peer is DRBD Primary", &["drbd-primary r0"]).await;
    assert!(t0.elapsed() >= wait, "{:?}", t0.elapsed());
}

/// What moves DRBD's standing (roles, connection, disks, of the resource and each volume) and
/// what does not (resync progress, settings); when DRBD refuses for a Primary peer, and how
/// long it would wait for its ping's answer.
#[test]
fn standing_moves_with_roles_connection_and_disks_only() {
    let v = DrbdView {
        up: true,
        role: Role::Secondary,
        peer_role: Role::Primary,
        connection: Connection::Connected,
        disk: Disk::UpToDate,
        peer_disk: Disk::UpToDate,
        net: Some(DrbdNet {
            ping_timeout_ds: 5,
            ..DrbdNet::default()
        }),
        ..DrbdView::default()
    };
    assert!(v.refuses_for_primary_peer());
    assert_eq!(v.refusal_wait(), std::time::Duration::from_millis(600));
    let same = DrbdView {
        sync: Some(agent::fsm::SyncView {
            out_of_sync_kib: 4,
            ..Default::default()
        }),
        net: Some(DrbdNet {
            ping_int_s: 9,
            ..DrbdNet::default()
        }),
        ..v.clone()
    };
    assert!(v.same_standing(&same));
    let moved = [
        DrbdView {
            connection: Connection::Other("NetworkFailure".into()),
            ..v.clone()
        },
        DrbdView {
            peer_role: Role::Secondary,
            ..v.clone()
        },
        DrbdView {
            peer_disk: Disk::DUnknown,
            ..v.clone()
        },
        DrbdView {
            role: Role::Primary,
            ..v.clone()
        },
    ];
    for m in &moved {
        assert!(!v.same_standing(m), "{m:?}");
    }
    assert!(!moved[0].refuses_for_primary_peer());
    assert!(!moved[1].refuses_for_primary_peer());
    let two = DrbdView {
        net: Some(DrbdNet {
            allow_two_primaries: true,
            ..DrbdNet::default()
        }),
        ..v.clone()
    };
    assert!(!two.refuses_for_primary_peer(), "DRBD would not refuse");
    let unread = DrbdView { net: None, ..v };
    assert!(!unread.refuses_for_primary_peer(), "settings not read");
    assert_eq!(unread.refusal_wait(), std::time::Duration::from_millis(600));
}

/// When DRBD's fencing is the guard, and when it is not.
#[test]
fn fencing_arbitrates_only_where_drbd_refuses_without_its_peer() {
    let view = |fencing, peer_disk, two_primaries| DrbdView {
        connection: Connection::WFConnection,
        disk: Disk::UpToDate,
        peer_disk,
        fencing,
        net: Some(DrbdNet {
            allow_two_primaries: two_primaries,
            ..DrbdNet::default()
        }),
        ..DrbdView::default()
    };
    for peer in [Disk::DUnknown, Disk::Consistent, Disk::UpToDate] {
        for f in [Fencing::ResourceOnly, Fencing::ResourceAndStonith] {
            let v = view(f, peer, false);
            assert!(v.fencing_arbitrates(), "{v:?}");
            assert!(v.guards_unforced_promote(true), "{v:?}");
            assert!(!v.guards_unforced_promote(false), "adopt mode: {v:?}");
        }
    }
    // DRBD promotes without its peer: it records it Outdated or Inconsistent, or does not fence.
    for peer in [Disk::Outdated, Disk::Inconsistent] {
        assert!(!view(Fencing::ResourceOnly, peer, false).fencing_arbitrates());
    }
    for f in [Fencing::DontCare, Fencing::Unknown] {
        assert!(!view(f, Disk::DUnknown, false).fencing_arbitrates());
    }
    assert!(!view(Fencing::ResourceOnly, Disk::DUnknown, true).fencing_arbitrates());
    let mut v = view(Fencing::ResourceOnly, Disk::DUnknown, false);
    v.net = None;
    assert!(!v.fencing_arbitrates(), "net settings not read");
    // One volume's peer disk Outdated is enough (the resource-wide worst may hide it).
    let vol = |volume, peer_disk| VolumeView {
        volume,
        minor: volume + 1,
        up: true,
        role: Role::Secondary,
        peer_role: Role::Unknown,
        disk: Disk::UpToDate,
        peer_disk,
    };
    let v = view(Fencing::ResourceOnly, Disk::DUnknown, false)
        .of_volumes(vec![vol(0, Disk::DUnknown), vol(1, Disk::Outdated)], None);
    assert!(!v.fencing_arbitrates(), "{v:?}");
    // Handshaken with a Secondary peer: guarded in any mode and fencing.
    let v = DrbdView {
        connection: Connection::Connected,
        peer_role: Role::Secondary,
        ..view(Fencing::DontCare, Disk::UpToDate, false)
    };
    assert!(v.guards_unforced_promote(false));
}

/// A retry that DRBD no longer guards waits for the verdict: asked while connected to a
/// Secondary peer (no wait), refused because the peer turned Primary meanwhile; the state moved,
/// but with `dont-care` fencing a second request is not sent while another host answers.
#[tokio::test(start_paused = true)]
async fn unguarded_retry_waits_for_the_probe_verdict() {
    let (mut d, mem) = setup("one", true);
    d.observe().await;
    mem.world().answered_elsewhere.insert("10.0.0.10/24".into());
    let peer = midway_through_drbd_primary(&mem, |m| m.peer_primary("r0", true));
    refused(&mut d, &mem, "another host answers", &["drbd-primary r0"]).await;
    peer.await.expect("peer Primary");
}

/// A target is never served from a Secondary: a plan that serves without promoting first (a
/// repair planned on a view that has changed since) is refused on DRBD's live role, and
/// nothing reaches tgtd; after a promote in the same plan no extra read is needed.
#[tokio::test]
async fn target_serve_is_refused_on_a_secondary() {
    use agent::fsm::{Plan, PlanKind, Step};
    let cfg = Arc::new(common::config("one", true));
    let mem = Memory::healthy_secondary(&cfg);
    let exec = Executor::new(cfg, mem.clone(), mem.clone(), mem.clone());
    let serve = Plan {
        kind: PlanKind::Repair,
        steps: vec![Step::new(Stage::TargetServe, "r0")],
    };
    let (out, _) = exec.run(serve.clone()).await;
    let (step, why) = out.failed.expect("refused");
    assert_eq!(step.stage, Stage::TargetServe);
    assert!(out.refused && why.contains("not Primary"), "{why}");
    assert_eq!(mem.world().targets["r0"].state, TargetState::Absent);

    mem.set_role("r0", Role::Primary);
    let (out, _) = exec.run(serve).await;
    assert!(out.failed.is_none(), "{:?}", out.failed);
    assert_eq!(mem.world().targets["r0"].state, TargetState::Serving);
}

/// A promote rolled back at the claim (another host answers for the address): DRBD's events
/// of the promote and of its rollback arrive after the outcome. The stale Primary one does not
/// plan a repair (which would try to serve from a Secondary), and the reason shown stays the
/// address.
#[tokio::test]
async fn events_of_a_rolled_back_promote_plan_nothing() {
    let (mut d, mem) = setup("one", false);
    d.observe().await;
    mem.world().answered_elsewhere.insert("10.0.0.10/24".into());
    let h = d.handle(Event::Authority(Authority::Primary)).await;
    assert_eq!(h.transitions.len(), 1);
    assert!(!h.transitions[0].result.is_ok());
    assert_secondary(&mem);
    let now = mem.world().drbd["r0"].clone();
    let stale = DrbdView {
        role: Role::Primary,
        ..now.clone()
    };
    for view in [stale, now] {
        let h = d
            .handle(Event::Drbd {
                resource: "r0".into(),
                view,
            })
            .await;
        assert!(h.transitions.is_empty(), "{:?}", h.transitions);
    }
    let s = d.status().expect("status");
    let blocked = s.blocked.unwrap_or_default();
    assert!(blocked.contains("10.0.0.10/24"), "{blocked}");
}
