//! The demote's target-offline stage against a real tgtd with a libiscsi client whose WRITE is in
//! flight (held by a frozen backing store, released once `offline` has begun): when `offline`
//! returns, tgtd lists no connection of the target any more, so the address released next never
//! strands a connection (its response and FIN went out first).
//! Needs root, `tgtd`, `iscsi-test-cu` and `fsfreeze`/`losetup`/`mkfs.ext4` with loop devices and
//! ext4: skipped without them, a failure with CI=true. `refuse_logins` (a planned demote's
//! handover) leaves the connection for `remove`.

use crate::common;

use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use agent::backend::target::TgtTarget;
use agent::backend::Target;
use agent::config::Config;
use common::{free_port, which, Kill, Tgtd};
use test_support::frozen::{self, FrozenFs, Thaw};
use test_support::prereq::Prereqs;

const CONTROL_PORT: u16 = 8;

fn config(dir: &Path, backing: &Path) -> Config {
    common::tgtd_r0_config("offline", dir, CONTROL_PORT, backing, "write-through")
}

/// A private tgtd serving `r0` from a frozen store, with a libiscsi client (iscsi-test-cu's
/// WRITE(10) test) logged in whose WRITE waits in tgtd's backing-store thread: a command in
/// flight on the connection. Fields drop in order: client, thaw, tgtd, filesystem, directory.
struct Stuck {
    _writer: Kill,
    _thaw: Thaw,
    _tgtd: Tgtd,
    client: tgt_ipc::TgtClient,
    target: TgtTarget,
    cfg: Config,
    fs: Arc<FrozenFs>,
    _dir: tempfile::TempDir,
}

/// `None`: prerequisites missing (skipped; a failure with CI=true).
async fn stuck(test: &str) -> Option<Stuck> {
    let mut tools = vec!["tgtd", "iscsi-test-cu"];
    tools.extend(frozen::TOOLS);
    if !Prereqs::new(test).root_and_group().tools(&tools).check() {
        return None;
    }
    let dir = tempfile::Builder::new()
        .prefix(&format!("agent-offline-{}-", std::process::id()))
        .tempdir()
        .expect("tempdir");
    let fs = Arc::new(FrozenFs::new(dir.path()));
    let lun = fs.file();
    let port = free_port();
    let tgtd = Tgtd::start(dir.path(), CONTROL_PORT, port);
    let thaw = Thaw(fs.clone());
    let cfg = config(dir.path(), &lun);
    let client = tgt_ipc::TgtClient::at_path(cfg.sockets.tgtd.clone());
    let deadline = Instant::now() + Duration::from_secs(10);
    while client.show_system().await.is_err() {
        assert!(Instant::now() < deadline, "tgtd did not answer");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let target = TgtTarget::new(&cfg.sockets.tgtd, Duration::from_secs(5));
    target.serve(&cfg.resources[0]).await.expect("serve");
    fs.freeze();
    let writer = Kill(
        Command::new(which("iscsi-test-cu").expect("iscsi-test-cu"))
            .args(["--dataloss", "--test=ALL.Write10.Simple"])
            .arg(format!(
                "iscsi://127.0.0.1:{port}/{}/1",
                cfg.resources[0].target.iqn
            ))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("iscsi-test-cu runs"),
    );
    let deadline = Instant::now() + Duration::from_secs(15);
    while client
        .show_connections(1)
        .await
        .expect("conn show")
        .is_empty()
    {
        assert!(Instant::now() < deadline, "iscsi-test-cu never logged in");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    Some(Stuck {
        _writer: writer,
        _thaw: thaw,
        _tgtd: tgtd,
        client,
        target,
        cfg,
        fs,
        _dir: dir,
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn offline_returns_after_tgtd_dropped_the_connections() {
    let Some(s) = stuck("offline_returns_after_tgtd_dropped_the_connections").await else {
        return;
    };
    let (client, target, fs, r0) = (&s.client, &s.target, &s.fs, &s.cfg.resources[0]);
    // The write completes once `offline` has begun (the target reads offline): tgtd drops the
    // connection only then, and `offline` must not return before.
    let thaw = {
        let (client, fs) = (client.clone(), fs.clone());
        tokio::spawn(async move {
            loop {
                let t = client.target(1).await.expect("show").expect("target");
                if t.state == tgt_ipc::TargetState::Offline {
                    fs.thaw();
                    return;
                }
                tokio::time::sleep(Duration::from_millis(2)).await;
            }
        })
    };
    target.offline(r0).await.expect("offline");
    let left = client.show_connections(1).await.expect("conn show");
    assert!(
        left.is_empty(),
        "connections still listed after offline: {left:?}"
    );
    thaw.await.expect("thaw task");
    target.remove(r0).await.expect("remove");
}

/// A command that never completes does not hold the demote: `offline` returns (after its bound,
/// with a warning naming the tid and the connection) and the connection is still there.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn offline_gives_up_on_a_connection_that_stays() {
    let Some(s) = stuck("offline_gives_up_on_a_connection_that_stays").await else {
        return;
    };
    s.target
        .offline(&s.cfg.resources[0])
        .await
        .expect("offline");
    let left = s.client.show_connections(1).await.expect("conn show");
    assert_eq!(left.len(), 1, "{left:?}");
    s.fs.thaw();
    let deadline = Instant::now() + Duration::from_secs(30);
    while !s
        .client
        .show_connections(1)
        .await
        .expect("conn show")
        .is_empty()
    {
        assert!(
            Instant::now() < deadline,
            "connection not gone 30 s after the thaw"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    s.target.remove(&s.cfg.resources[0]).await.expect("remove");
}

/// A planned demote's handover (`refuse_logins`): the target reads offline (new logins
/// refused) and the connection with its command in flight is still there, for `remove` to close
/// once the address is gone.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refuse_logins_keeps_the_connections() {
    let Some(s) = stuck("refuse_logins_keeps_the_connections").await else {
        return;
    };
    let r0 = &s.cfg.resources[0];
    s.target.refuse_logins(r0).await.expect("refuse logins");
    let t = s.client.target(1).await.expect("show").expect("target");
    assert_eq!(t.state, tgt_ipc::TargetState::Offline);
    let left = s.client.show_connections(1).await.expect("conn show");
    assert_eq!(left.len(), 1, "{left:?}");
    s.fs.thaw();
    s.target.remove(r0).await.expect("remove");
    assert!(s.client.target(1).await.expect("show").is_none());
}
