//! A status that never lies (issue 11 case 8), over the in-memory backends: session counts read
//! when status is asked, replication health part of status and of "converged", and a history
//! that keeps what happened.

use crate::common;

use std::sync::Arc;

use agent::backend::memory::Memory;
use agent::control::Request;
use agent::daemon::{Daemon, KEEP_TRANSITIONS};
use agent::executor::Executor;
use agent::fsm::{Authority, Connection, Disk, Event, Role, SyncView};
use agent::status::Status;

type D = Daemon<Memory, Memory, Memory>;

async fn primary(name: &str) -> (D, Memory) {
    let cfg = Arc::new(common::config(name, false));
    let mem = Memory::healthy_secondary(&cfg);
    let exec = Executor::new(cfg, mem.clone(), mem.clone(), mem.clone());
    let mut d = Daemon::new(exec);
    d.observe().await;
    let h = d.handle(Event::Authority(Authority::Primary)).await;
    assert_eq!(h.transitions.len(), 1, "{h:?}");
    (d, mem)
}

async fn status(d: &mut D) -> Status {
    let resp = d.request(Request::Status).await;
    *resp.status.expect("status")
}

/// Seen in the lab: "0 session(s)" while a client was logged in (tgtd sends no event for a
/// login; the count was the one read at the last full observation).
#[tokio::test]
async fn session_count_is_read_when_status_is_asked() {
    let (mut d, mem) = primary("one").await;
    assert_eq!(status(&mut d).await.resources[0].target.sessions, 0);
    if let Some(t) = mem.world().targets.get_mut("r0") {
        t.sessions = 2; // an initiator logged in twice, no event
    }
    let st = status(&mut d).await;
    assert_eq!(st.resources[0].target.sessions, 2, "{}", st.render());
    assert!(st.render().contains("2 session(s)"), "{}", st.render());
}

/// Seen in the lab: "converged" while DRBD was StandAlone after a disconnect during a promote;
/// nothing said the data was no longer replicated.
#[tokio::test]
async fn standalone_after_promote_is_a_warning_with_its_reason() {
    let (mut d, mem) = primary("one").await;
    let st = status(&mut d).await;
    assert!(st.converged && st.degraded.is_empty(), "{}", st.render());
    let view = {
        let mut w = mem.world();
        let v = w.drbd.get_mut("r0").expect("r0");
        v.connection = Connection::StandAlone;
        v.peer_role = Role::Unknown;
        v.peer_disk = Disk::DUnknown;
        v.sync = Some(SyncView {
            out_of_sync_kib: 4096,
            done_permille: None,
        });
        v.clone()
    };
    let h = d
        .handle(Event::Drbd {
            resource: "r0".into(),
            view,
        })
        .await;
    assert!(h.transitions.is_empty(), "still Primary and serving: {h:?}");
    let st = status(&mut d).await;
    assert!(st.converged, "roles still as wished");
    assert_eq!(st.degraded.len(), 1, "{:?}", st.degraded);
    let why = &st.degraded[0];
    assert!(
        why.contains("r0: not replicating: connection StandAlone")
            && why.contains("drbdadm connect r0")
            && why.contains("4096 KiB out of sync"),
        "{why}"
    );
    let text = st.render();
    assert!(text.contains("converged, DEGRADED"), "{text}");
    assert!(text.contains("degraded: r0: not replicating"), "{text}");
    let json = serde_json::to_value(&st).expect("json");
    assert_eq!(json["degraded"][0], why.as_str());
    assert_eq!(
        json["resources"][0]["drbd"]["sync"]["out_of_sync_kib"],
        4096
    );
    // The status line (systemd STATUS=, health events) says it too.
    let line = agent::notify::status_line(&st, &Default::default());
    assert!(
        line.contains("converged, degraded: r0: not replicating"),
        "{line}"
    );
}

/// A resync in progress is shown with its progress; a healthy pair has no warning.
#[tokio::test]
async fn resync_progress_is_shown_until_done() {
    let (mut d, mem) = primary("one").await;
    let set = |peer_disk, sync| {
        let mut w = mem.world();
        let v = w.drbd.get_mut("r0").expect("r0");
        v.connection = Connection::Other("SyncSource".into());
        v.peer_disk = peer_disk;
        v.sync = sync;
    };
    set(
        Disk::Inconsistent,
        Some(SyncView {
            out_of_sync_kib: 1024,
            done_permille: Some(425),
        }),
    );
    let st = status(&mut d).await;
    // The connection and the peer disk come from DRBD's events; the amounts are read now.
    assert_eq!(
        st.degraded,
        vec!["r0: data differs from the peer, 1024 KiB out of sync, resync 42.5 %".to_string()]
    );
    let view = mem.world().drbd.get("r0").cloned().expect("r0");
    d.handle(Event::Drbd {
        resource: "r0".into(),
        view,
    })
    .await;
    let st = status(&mut d).await;
    assert_eq!(
        st.degraded,
        vec!["r0: peer disk Inconsistent, 1024 KiB out of sync, resync 42.5 %".to_string()]
    );
    set(
        Disk::UpToDate,
        Some(SyncView {
            out_of_sync_kib: 0,
            done_permille: Some(1000),
        }),
    );
    let view = mem.world().drbd.get("r0").cloned().expect("r0");
    let mut done = view.clone();
    done.connection = Connection::Connected;
    d.handle(Event::Drbd {
        resource: "r0".into(),
        view: done,
    })
    .await;
    let st = status(&mut d).await;
    assert!(st.degraded.is_empty(), "{:?}", st.degraded);
}

/// Seen in the lab: repairs that repeat (an address removed again and again) pushed the promote
/// out of the 16 kept transitions.
#[tokio::test]
async fn repeated_transitions_do_not_push_real_ones_out() {
    let (mut d, mem) = primary("one").await;
    let addr = mem
        .world()
        .addresses
        .keys()
        .next()
        .cloned()
        .expect("an address");
    for _ in 0..2 * KEEP_TRANSITIONS {
        mem.world().addresses.insert(addr.clone(), false);
        let h = d
            .handle(Event::Address {
                address: addr.clone(),
                held: false,
            })
            .await;
        assert_eq!(h.transitions.len(), 1, "a repair: {h:?}");
    }
    let st = status(&mut d).await;
    let kinds: Vec<String> = st.transitions.iter().map(|t| t.kind.to_string()).collect();
    assert_eq!(kinds, ["promote", "repair"], "{}", st.render());
    let repair = &st.transitions[1];
    assert_eq!(
        repair.repeated,
        2 * KEEP_TRANSITIONS as u32 - 1,
        "{repair:?}"
    );
    assert!(
        st.render()
            .contains(&format!("({} in a row", 2 * KEEP_TRANSITIONS)),
        "{}",
        st.render()
    );
}
