//! No promote of stale data and split-brain reporting, through the daemon on in-memory backends:
//! a node not Connected since attach waits for its peer (status says so, with how long), and
//! promotes only on `promote --degraded` or after `timeouts.wfc_s`; a split brain makes
//! `status` fail and `split-brain` explain the recovery.

use crate::common;

use std::sync::Arc;
use std::time::Duration;

use agent::backend::memory::Memory;
use agent::control::{Pending, Request, Response};
use agent::daemon::Daemon;
use agent::executor::Executor;
use agent::fsm::{Authority, Connection, Disk, Event, Role};

/// A memory world where r0's peer is gone and DRBD never connected since attach.
fn disconnected(cfg: &agent::config::Config) -> Memory {
    let mem = Memory::healthy_secondary(cfg);
    for d in mem.world().drbd.values_mut() {
        d.peer_role = Role::Unknown;
        d.peer_disk = Disk::DUnknown;
        d.connection = Connection::WFConnection;
    }
    mem
}

fn daemon(cfg: agent::config::Config, mem: &Memory) -> Daemon<Memory, Memory, Memory> {
    Daemon::new(Executor::new(
        Arc::new(cfg),
        mem.clone(),
        mem.clone(),
        mem.clone(),
    ))
}

fn role(mem: &Memory) -> Option<Role> {
    mem.world().drbd.get("r0").map(|v| v.role)
}

#[tokio::test]
async fn waits_for_peer_until_operator_forces() {
    let cfg = common::config("one", true);
    let mem = disconnected(&cfg);
    let mut d = daemon(cfg, &mem);
    d.observe().await;
    let r = d.request(Request::Promote).await;
    assert!(!r.ok, "{}", r.message);
    assert!(r.message.contains("waiting for the peer"), "{}", r.message);
    assert_eq!(role(&mem), Some(Role::Secondary));
    let r = d.request(Request::PromoteDegraded).await;
    assert!(r.ok, "{}", r.message);
    assert_eq!(role(&mem), Some(Role::Primary));
    assert!(
        mem.world().log.iter().any(|l| l == "drbd-primary-force r0"),
        "{:?}",
        mem.world().log
    );
}

#[tokio::test]
async fn pool_conf_node_waits_and_status_says_how_long() {
    let cfg = common::config("one", false);
    let mem = disconnected(&cfg);
    let mut d = daemon(cfg, &mem);
    d.observe().await;
    d.handle(Event::Authority(Authority::Primary)).await;
    tokio::time::sleep(Duration::from_millis(20)).await;
    let r = d.request(Request::Status).await;
    let s = r.status.expect("status");
    let w = s.waiting_for_peer.first().expect("waiting");
    assert_eq!(w.resource, "r0");
    assert!(w.waited_ms >= 20, "{w:?}");
    assert!(s.render().contains("WAITING for peer"), "{}", s.render());
    assert_eq!(role(&mem), Some(Role::Secondary));
    // Connected and UpToDate when the peer then vanishes: promotes at once.
    mem.world().drbd.get_mut("r0").expect("r0").connection = Connection::Connected;
    d.observe().await;
    assert_eq!(role(&mem), Some(Role::Primary));
}

#[tokio::test]
async fn connected_then_peer_lost_promotes_at_once() {
    let cfg = common::config("one", false);
    let mem = Memory::healthy_secondary(&cfg);
    mem.peer_primary("r0", true);
    let mut d = daemon(cfg, &mem);
    d.observe().await;
    d.handle(Event::Authority(Authority::Primary)).await;
    assert_eq!(role(&mem), Some(Role::Secondary), "refused: peer Primary");
    mem.peer_lost("r0");
    d.observe().await;
    assert_eq!(role(&mem), Some(Role::Primary));
    assert!(!mem.world().log.iter().any(|l| l.contains("force")));
}

async fn ask(tx: &tokio::sync::mpsc::Sender<Pending>, request: Request) -> Response {
    let (reply, rx) = tokio::sync::oneshot::channel();
    tx.send(Pending { request, reply }).await.expect("send");
    rx.await.expect("reply")
}

#[tokio::test(start_paused = true)]
async fn wfc_timeout_promotes_degraded() {
    let mut cfg = common::config("one", false);
    cfg.timeouts.wfc_s = 30;
    let mem = disconnected(&cfg);
    let d = daemon(cfg, &mem);
    let (ev_tx, ev_rx) = tokio::sync::mpsc::unbounded_channel();
    let (ctl_tx, ctl_rx) = tokio::sync::mpsc::channel(4);
    tokio::spawn(d.run(ev_rx, ctl_rx));
    ev_tx
        .send(Event::Authority(Authority::Primary))
        .expect("send");
    tokio::time::sleep(Duration::from_secs(10)).await;
    let s = ask(&ctl_tx, Request::Status).await.status.expect("status");
    assert_eq!(s.waiting_for_peer.len(), 1, "{s:?}");
    assert_eq!(role(&mem), Some(Role::Secondary));
    tokio::time::sleep(Duration::from_secs(25)).await;
    let s = ask(&ctl_tx, Request::Status).await.status.expect("status");
    assert!(s.waiting_for_peer.is_empty(), "{s:?}");
    assert_eq!(role(&mem), Some(Role::Primary));
}

#[tokio::test]
async fn split_brain_fails_status_and_explains_recovery() {
    let cfg = common::config("one", false);
    let mem = disconnected(&cfg);
    let mut d = daemon(cfg, &mem);
    d.observe().await;
    assert!(d.request(Request::Status).await.ok);
    let h = d
        .handle(Event::SplitBrain {
            resource: "r0".into(),
        })
        .await;
    assert!(format!("{:?}", h.notices).contains("split brain"));
    let r = d.request(Request::Status).await;
    assert!(!r.ok);
    assert_eq!(
        r.status.expect("status").split_brain,
        vec!["r0".to_string()]
    );
    let r = d.request(Request::SplitBrain).await;
    assert!(!r.ok);
    assert!(r.message.contains("SPLIT BRAIN"), "{}", r.message);
    assert!(r.message.contains("--discard-my-data"), "{}", r.message);
    // A successful handshake ends it.
    mem.world().drbd.get_mut("r0").expect("r0").connection = Connection::Connected;
    d.observe().await;
    assert!(d.request(Request::Status).await.ok);
}

#[test]
fn new_requests_parse_and_round_trip() {
    for (line, want) in [
        (r#"{"cmd":"promote-degraded"}"#, Request::PromoteDegraded),
        (r#"{"cmd":"split-brain"}"#, Request::SplitBrain),
    ] {
        assert_eq!(Request::parse(line), Ok(want));
        let text = serde_json::to_string(&want).expect("json");
        assert_eq!(Request::parse(&text), Ok(want));
    }
    assert!(Request::parse(r#"{"cmd":"split-brain","on":true}"#).is_err());
}

#[tokio::test]
async fn split_brain_recovery_names_managed_endpoints() {
    let cfg = common::config("managed", false);
    let mem = disconnected(&cfg);
    let mut d = daemon(cfg, &mem);
    d.observe().await;
    d.handle(Event::SplitBrain {
        resource: "r0".into(),
    })
    .await;
    let r = d.request(Request::SplitBrain).await;
    // With the agent's own net options: a hand-made connection keeps its fast detection.
    assert!(
        r.message.contains(
            "connect r0 ipv4:10.1.0.1:7789 ipv4:10.1.0.2:7789 --protocol=C --ping-int=2 \
             --ping-timeout=5 --timeout=60 --ko-count=4 --discard-my-data\n"
        ),
        "{}",
        r.message
    );
}

/// DRBD's generations of r0 with these metadata flags (`0x40`: crashed while Primary).
fn with_flags(mem: &Memory, disk_flags: u32) {
    let g = agent::backend::Generations {
        disk_flags,
        ..Default::default()
    };
    mem.world().generations.insert("r0".into(), g);
}

#[tokio::test]
async fn the_wait_says_what_a_degraded_promote_costs_and_how_this_node_went_down() {
    let cfg = common::config("one", false);
    let mem = disconnected(&cfg);
    with_flags(&mem, 0);
    let mut d = daemon(cfg, &mem);
    d.observe().await;
    // Nothing waits: no generations read, on the observation path or for status.
    let s = d.request(Request::Status).await.status.expect("status");
    assert!(s.waiting_for_peer.is_empty());
    assert_eq!(mem.world().generation_reads, 0);
    d.handle(Event::Authority(Authority::Primary)).await;
    assert_eq!(mem.world().generation_reads, 0, "not while observing");
    let s = d.request(Request::Status).await.status.expect("status");
    let w = s.waiting_for_peer.first().expect("waiting");
    assert!(
        w.reason.contains("LOSES every write the peer acknowledged"),
        "{}",
        w.reason
    );
    assert_eq!(w.went_down_as_primary, Some(false));
    let text = s.render();
    assert!(
        text.contains("WAITING for peer")
            && text.contains("r0: this node did not go down as Primary")
            && text.contains("likely STALE"),
        "{text}"
    );
    let json = serde_json::to_value(&s).expect("json");
    assert_eq!(json["waiting_for_peer"][0]["went_down_as_primary"], false);
    // The crashed Primary that served alone last says so.
    with_flags(&mem, 0x40);
    let s = d.request(Request::Status).await.status.expect("status");
    let w = s.waiting_for_peer.first().expect("waiting");
    assert_eq!(w.went_down_as_primary, Some(true));
    assert!(
        w.last_down
            .as_deref()
            .is_some_and(|l| l.contains("went down as Primary")),
        "{w:?}"
    );
    // The operator's promote --degraded answer carries the evidence read before it.
    with_flags(&mem, 0);
    let r = d.request(Request::PromoteDegraded).await;
    assert!(r.ok, "{}", r.message);
    assert_eq!(role(&mem), Some(Role::Primary));
    assert!(
        r.message
            .contains("r0: this node did not go down as Primary")
            && r.message.contains("likely STALE")
            && r.message.contains("LOSES every write"),
        "{}",
        r.message
    );
}

#[tokio::test]
async fn unreadable_generations_say_the_node_may_be_stale() {
    let cfg = common::config("one", true);
    let mem = disconnected(&cfg);
    let mut d = daemon(cfg, &mem);
    d.observe().await;
    // Role source command: `promote --degraded` is the promote.
    let r = d.request(Request::PromoteDegraded).await;
    assert!(r.ok, "{}", r.message);
    assert!(
        r.message.contains("r0: how this node went down is unknown")
            && r.message.contains("may be STALE"),
        "{}",
        r.message
    );
}

fn keeping(
    cfg: agent::config::Config,
    mem: &Memory,
    dir: &std::path::Path,
) -> Daemon<Memory, Memory, Memory> {
    daemon(cfg, mem).keeping_maintenance(dir.join("maintenance"))
}

#[tokio::test]
async fn a_restart_keeps_an_unresolved_split_brain_until_a_handshake() {
    let dir = tempfile::tempdir().expect("tempdir");
    let cfg = common::config("one", false);
    let mem = disconnected(&cfg);
    let mut d = keeping(cfg.clone(), &mem, dir.path());
    d.observe().await;
    d.handle(Event::SplitBrain {
        resource: "r0".into(),
    })
    .await;
    mem.world().drbd.get_mut("r0").expect("r0").connection = Connection::StandAlone;
    assert!(dir.path().join("split-brain").exists());
    drop(d);
    // Restarted (systemd, an upgrade): still StandAlone, the alarm stays.
    let mut d = keeping(cfg.clone(), &mem, dir.path());
    d.observe().await;
    let r = d.request(Request::Status).await;
    assert!(!r.ok, "{}", r.message);
    let s = r.status.expect("status");
    assert_eq!(s.split_brain, vec!["r0".to_string()]);
    assert!(s.render().contains("SPLIT BRAIN on r0"), "{}", s.render());
    let r = d.request(Request::SplitBrain).await;
    assert!(!r.ok && r.message.contains("SPLIT BRAIN"), "{}", r.message);
    // A promote is still refused.
    d.handle(Event::Authority(Authority::Primary)).await;
    assert_eq!(role(&mem), Some(Role::Secondary));
    // The recovery's handshake clears it, and the kept file with it.
    mem.world().drbd.get_mut("r0").expect("r0").connection = Connection::Connected;
    d.observe().await;
    assert!(d.request(Request::Status).await.ok);
    assert!(!dir.path().join("split-brain").exists());
    drop(d);
    let mut d = keeping(cfg, &mem, dir.path());
    d.observe().await;
    assert!(d.request(Request::Status).await.ok);
}
