//! The demote's target-offline stage against a real tgtd with a reading libiscsi client logged
//! in: when `offline` returns, tgtd lists no connection of the target any more, so the address
//! released next never strands a connection (its responses and FIN went out first).
//! Needs root, `tgtd` and `iscsi-perf`: skipped without them, a failure with CI=true.

mod common;

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use agent::backend::target::TgtTarget;
use agent::backend::Target;
use agent::config::Config;
use common::{free_port, which, Kill, Tgtd};
use test_support::prereq::Prereqs;

const CONTROL_PORT: u16 = 8;

fn config(dir: &Path, backing: &Path) -> Config {
    let text = format!(
        r#"
node = "tgtd-offline-test"
role = {{ source = "command" }}
[sockets]
control = "{dir}/control.sock"
tgtd = "{dir}/socket.{CONTROL_PORT}"
[timeouts]
tgtd_ms = 5000
safety_net_s = 0
[[resource]]
name = "r0"
minor = 0
mode = "adopt"
target = {{ iqn = "iqn.2026-11.test.offline:r0-{pid}", tid = 1, initiators = "all" }}
[[resource.lun]]
lun = 1
device = "{backing}"
scsi_id = "offline-r0-1"
scsi_sn = "OFFLR01"
vendor = "ISCSIHA"
product = "OFFLINE-TEST"
rev = "0001"
cache = "write-through"
"#,
        dir = dir.display(),
        backing = backing.display(),
        pid = std::process::id(),
    );
    Config::parse(&text, Path::new("<tgtd offline test>")).unwrap_or_else(|e| panic!("{e}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn offline_returns_after_tgtd_dropped_the_connections() {
    if !Prereqs::new("agent tgtd offline test")
        .root_and_group()
        .tools(&["tgtd", "iscsi-perf"])
        .check()
    {
        return;
    }
    let dir = tempfile::Builder::new()
        .prefix(&format!("agent-offline-{}-", std::process::id()))
        .tempdir()
        .expect("tempdir");
    let backing = dir.path().join("lun1.img");
    std::fs::File::create(&backing)
        .and_then(|f| f.set_len(8 << 20))
        .expect("backing file");
    let port = free_port();
    let _tgtd = Tgtd::start(dir.path(), CONTROL_PORT, port);
    let cfg = config(dir.path(), &backing);
    let client = tgt_ipc::TgtClient::at_path(cfg.sockets.tgtd.clone());
    let deadline = Instant::now() + Duration::from_secs(10);
    while client.show_system().await.is_err() {
        assert!(Instant::now() < deadline, "tgtd did not answer");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let target = TgtTarget::new(&cfg.sockets.tgtd, Duration::from_secs(5));
    let r0 = &cfg.resources[0];
    target.serve(r0).await.expect("serve");

    // A client reading without pause (commands in flight at any time), never reconnecting.
    let _perf = Kill(
        Command::new(which("iscsi-perf").expect("iscsi-perf"))
            .args([
                "-x",
                "0",
                "-t",
                "5",
                "-i",
                "iqn.2026-11.test:offline-reader",
            ])
            .arg(format!("iscsi://127.0.0.1:{port}/{}/1", r0.target.iqn))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("iscsi-perf runs"),
    );
    let deadline = Instant::now() + Duration::from_secs(15);
    while client
        .show_connections(1)
        .await
        .expect("conn show")
        .is_empty()
    {
        assert!(Instant::now() < deadline, "iscsi-perf never logged in");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // Let its reads run for a moment, so the close meets commands in flight.
    tokio::time::sleep(Duration::from_millis(200)).await;

    target.offline(r0).await.expect("offline");
    let left = client.show_connections(1).await.expect("conn show");
    assert!(
        left.is_empty(),
        "connections still listed after offline: {left:?}"
    );
    target.remove(r0).await.expect("remove");
}
