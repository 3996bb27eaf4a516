//! A planned demote's silent handover (docs/takeover.md, "Demote order") over the in-memory
//! backends: with `[tickle]` and a peer that acknowledges the connections' list,
//! `target-offline` refuses logins but keeps the sessions (closed by `target-remove`, after the
//! address is gone); a silent peer, no `[tickle]` or a rollback keep the close while the address
//! is here. The order of the calls is the same either way (one demote order).

use crate::common;

use std::sync::Arc;

use agent::backend::memory::Memory;
use agent::config::Config;
use agent::daemon::Daemon;
use agent::executor::Executor;
use agent::fsm::{Authority, Event, Stage, TargetState};
use agent::record::TransitionRecord;

type D = Daemon<Memory, Memory, Memory>;

fn with_tickle(mut cfg: Config) -> Config {
    let text = "listen = \"10.1.0.1:7790\"\npeer = \"10.1.0.2:7790\"\n";
    cfg.tickle = Some(toml::from_str(text).unwrap_or_else(|e| panic!("{e}")));
    cfg
}

/// A daemon of `cfg` on in-memory backends, promoted by its authority.
async fn promoted(cfg: agent::config::Config) -> (D, Memory) {
    let cfg = Arc::new(cfg);
    let mem = Memory::healthy_secondary(&cfg);
    let mut d = Daemon::new(Executor::new(cfg, mem.clone(), mem.clone(), mem.clone()));
    d.observe().await;
    let h = d.handle(Event::Authority(Authority::Primary)).await;
    assert!(
        h.transitions[0].result.is_ok(),
        "{}",
        h.transitions[0].result
    );
    (d, mem)
}

/// A primary node of config `name` whose targets have two sessions each; `peer_ack`: what the
/// peer answers a handover (`None`: silent).
async fn primary(name: &str, tickle: bool, peer_ack: Option<usize>) -> (D, Memory) {
    let mut cfg = common::config(name, false);
    if tickle {
        cfg = with_tickle(cfg);
    }
    let (d, mem) = promoted(cfg).await;
    let mut w = mem.world();
    for t in w.targets.values_mut() {
        t.sessions = 2;
    }
    w.handover = peer_ack;
    w.log.clear();
    drop(w);
    (d, mem)
}

/// The demote, stopped by a failed release of 10.0.0.10 right after `target-offline`, so the
/// targets' sessions show what that stage did.
async fn demote_stopped_after_offline(d: &mut D, mem: &Memory) -> TransitionRecord {
    mem.world().fail_stage = Some((Stage::AddressRelease, "10.0.0.10/24".into()));
    let h = d.handle(Event::Authority(Authority::Secondary)).await;
    let rec = common::first_transition(&h, "failed: address-release");
    assert_eq!(rec.kind, "demote");
    rec
}

fn offline_notes(rec: &TransitionRecord) -> Vec<String> {
    rec.stages
        .iter()
        .filter(|s| s.stage == Stage::TargetOffline)
        .flat_map(|s| s.notes.clone())
        .collect()
}

fn sessions(mem: &Memory) -> Vec<(TargetState, u32)> {
    mem.world()
        .targets
        .values()
        .map(|t| (t.state, t.sessions))
        .collect()
}

#[tokio::test]
async fn an_acknowledged_handover_keeps_the_sessions_until_target_remove() {
    let (mut d, mem) = primary("two", true, Some(3)).await;
    let rec = demote_stopped_after_offline(&mut d, &mem).await;
    assert_eq!(sessions(&mem), vec![(TargetState::Offline, 2); 2]);
    let notes = offline_notes(&rec);
    assert_eq!(notes.len(), 2, "{notes:?}");
    for n in &notes {
        assert!(n.contains("handed over: the peer acknowledged 3"), "{n}");
    }
    // `status` shows the decision under the stage.
    let text = d.status().expect("status").render();
    assert!(
        text.contains("    r0: handed over: the peer acknowledged 3 connection(s)"),
        "{text}"
    );
    // Both resources are behind the one address: each asked for it.
    let ip: std::net::IpAddr = "10.0.0.10".parse().expect("ip");
    assert_eq!(mem.world().handovers, vec![vec![ip]; 2]);
    // The whole demote: the same order as without a handover; remove closes the sessions.
    mem.world().fail_stage = None;
    mem.world().log.clear();
    d.handle(Event::Tick).await;
    let log = std::mem::take(&mut mem.world().log);
    assert_eq!(
        log,
        [
            "address-release 10.0.0.10/24",
            "target-remove r0",
            "target-remove r1",
            "drbd-secondary r0",
            "drbd-secondary r1"
        ]
    );
    assert_eq!(sessions(&mem), vec![(TargetState::Absent, 0); 2]);
    // Once it is gone, the peer is told (its probe starts then, not at its promote).
    assert_eq!(mem.world().released, ["10.0.0.10/24"]);
}

#[tokio::test]
async fn a_silent_peer_closes_the_sessions_while_the_address_is_here() {
    let (mut d, mem) = primary("two-addr", true, None).await;
    let rec = demote_stopped_after_offline(&mut d, &mem).await;
    // r0 is behind the failed 10.0.0.10; r1's address went, and its target with it.
    let t = mem.world().targets.get("r0").copied().expect("r0");
    assert_eq!((t.state, t.sessions), (TargetState::Offline, 0));
    let notes = offline_notes(&rec);
    assert_eq!(notes.len(), 2, "{notes:?}");
    assert!(
        notes.iter().all(|n| n.contains(
            "closed while the address is here (not handed over: the peer did not acknowledge)"
        )),
        "{notes:?}"
    );
    // Each resource asked for its own address only.
    let mut asked = mem.world().handovers.clone();
    asked.sort();
    let ip = |s: &str| s.parse::<std::net::IpAddr>().expect("ip");
    assert_eq!(asked, vec![vec![ip("10.0.0.10")], vec![ip("10.0.0.11")]]);
}

#[tokio::test]
async fn without_tickle_nothing_is_handed_over() {
    let (mut d, mem) = primary("two", false, Some(3)).await;
    let rec = demote_stopped_after_offline(&mut d, &mem).await;
    assert_eq!(sessions(&mem), vec![(TargetState::Offline, 0); 2]);
    assert_eq!(
        offline_notes(&rec),
        vec![
            "r0: closed while the address is here (no [tickle])",
            "r1: closed while the address is here (no [tickle])"
        ]
    );
    assert!(mem.world().handovers.is_empty());
}

#[tokio::test]
async fn handover_ms_0_is_the_reason_given() {
    let cfg = common::config("one", false);
    let mut cfg = with_tickle(cfg);
    if let Some(t) = &mut cfg.tickle {
        t.handover_ms = 0;
    }
    let (mut d, mem) = promoted(cfg).await;
    mem.world().handover = Some(1);
    let rec = demote_stopped_after_offline(&mut d, &mem).await;
    assert_eq!(
        offline_notes(&rec),
        vec!["r0: closed while the address is here (not handed over: tickle.handover_ms = 0)"]
    );
    assert!(mem.world().handovers.is_empty(), "the peer is not asked");
}

/// A failed promote's rollback runs the demote order without a handover: the peer is not
/// taking over, so clients that logged in meanwhile get the FIN.
#[tokio::test]
async fn a_rollback_never_hands_over() {
    let cfg = Arc::new(with_tickle(common::config("one", false)));
    let mem = Memory::healthy_secondary(&cfg);
    mem.world().handover = Some(1);
    let mut d = Daemon::new(Executor::new(cfg, mem.clone(), mem.clone(), mem.clone()));
    d.observe().await;
    mem.world().fail_stage = Some((Stage::AddressClaim, "10.0.0.10/24".into()));
    let h = d.handle(Event::Authority(Authority::Primary)).await;
    let rec = &common::first_transition(&h, "rolled back: address-claim");
    assert!(rec
        .stages
        .iter()
        .any(|s| s.rollback && s.stage == Stage::TargetOffline && s.notes.is_empty()));
    assert!(mem.world().handovers.is_empty());
    assert!(mem.world().released.is_empty(), "nobody takes over");
}
