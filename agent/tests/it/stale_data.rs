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
