//! The recovery advice of `status` (`degraded:`) and `split-brain` in each DRBD mode, through
//! the daemon on in-memory backends: manage mode has no drbd.conf, so `drbdadm connect` is no
//! advice there; its commands carry the configured endpoints, both nodes' (the peer's are this
//! node's the other way round).

use crate::common;

use std::sync::Arc;

use agent::backend::memory::Memory;
use agent::control::Request;
use agent::daemon::Daemon;
use agent::executor::Executor;
use agent::fsm::{Connection, Disk, Event, Role};

/// The daemon over `name`'s config with r0 StandAlone (disconnected by hand), observed.
async fn standalone(name: &str) -> Daemon<Memory, Memory, Memory> {
    let cfg = common::config(name, false);
    let mem = Memory::healthy_secondary(&cfg);
    for d in mem.world().drbd.values_mut() {
        d.peer_role = Role::Unknown;
        d.peer_disk = Disk::DUnknown;
        d.connection = Connection::StandAlone;
    }
    let mut d = Daemon::new(Executor::new(
        Arc::new(cfg),
        mem.clone(),
        mem.clone(),
        mem.clone(),
    ));
    d.observe().await;
    d
}

#[tokio::test]
async fn standalone_advice_in_manage_mode_names_the_endpoints() {
    let mut d = standalone("managed").await;
    let st = d.request(Request::Status).await.status.expect("status");
    let why = st.degraded.join("\n");
    assert!(
        why.contains("drbdadm connect r0 in adopt mode")
            && why.contains("in manage mode `iscsi-ha split-brain` prints the drbdsetup connect"),
        "{why}"
    );
    // Not a split brain: the reconnect commands of both nodes, with the configured endpoints
    // and the agent's net options.
    let r = d.request(Request::SplitBrain).await;
    let net = "--protocol=C --ping-int=2 --ping-timeout=5 --timeout=60 --ko-count=4";
    assert!(
        r.message.contains(&format!(
            "drbdsetup-84 connect r0 ipv4:10.1.0.1:7789 ipv4:10.1.0.2:7789 {net} here, and \
             drbdsetup-84 connect r0 ipv4:10.1.0.2:7789 ipv4:10.1.0.1:7789 {net} on the peer"
        )),
        "{}",
        r.message
    );
    assert!(!r.message.contains("drbdadm"), "{}", r.message);
    // A split brain: step 4 with the survivor's real endpoints, no placeholders.
    d.handle(Event::SplitBrain {
        resource: "r0".into(),
    })
    .await;
    let r = d.request(Request::SplitBrain).await;
    assert!(
        r.message.contains(&format!(
            "4. On the survivor, if it is StandAlone: drbdsetup-84 connect r0 \
             ipv4:10.1.0.2:7789 ipv4:10.1.0.1:7789 {net}   (its own endpoints: this node's, the \
             other way round)"
        )),
        "{}",
        r.message
    );
    assert!(!r.message.contains("PEER_LOCAL"), "{}", r.message);
}

#[tokio::test]
async fn standalone_advice_in_adopt_mode() {
    let mut d = standalone("one").await;
    let r = d.request(Request::SplitBrain).await;
    assert!(
        r.message
            .contains("Once the cause is known: drbdadm connect r0 on both nodes."),
        "{}",
        r.message
    );
    // Adopt mode with DRBD not reporting the endpoints: placeholders, and where to find them.
    d.handle(Event::SplitBrain {
        resource: "r0".into(),
    })
    .await;
    let r = d.request(Request::SplitBrain).await;
    assert!(
        r.message
            .contains("connect r0 PEER_LOCAL PEER_PEER --protocol=C")
            && r.message.contains("drbd.conf (drbdadm dump)"),
        "{}",
        r.message
    );
}
