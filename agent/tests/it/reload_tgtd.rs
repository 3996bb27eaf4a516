//! Live reload against a real tgtd (the host has no DRBD: DRBD stays in memory): with an
//! initiator (libiscsi's `iscsi-perf`, no reconnects, 5 s command timeout) reading `r0` the whole
//! time, a reload removes `r1` and adds `r2`: `r1`'s target is gone, `r2`'s answers an inquiry,
//! and `r0` keeps its very session (same TSIH) and the reader never fails.
//! Needs root, `tgtd`, `iscsi-perf` and `iscsi-inq`: skipped without them, a failure with CI=true.

use crate::common;

use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use agent::backend::memory::Memory;
use agent::backend::target::TgtTarget;
use agent::config::Config;
use agent::control::Request;
use agent::daemon::Daemon;
use agent::executor::Executor;
use common::{free_port, tgtd_config_head, wait_tgtd, which, Kill, Tgtd};
use test_support::prereq::Prereqs;

const CONTROL_PORT: u16 = 8;

pub(crate) fn resource(dir: &Path, name: &str, tid: u32) -> String {
    let backing = dir.join(format!("{name}.img"));
    std::fs::File::create(&backing)
        .and_then(|f| f.set_len(8 << 20))
        .expect("backing file");
    format!(
        r#"
[[resource]]
name = "{name}"
minor = {tid}
mode = "adopt"
target = {{ iqn = "iqn.2026-11.test.reload:{name}-{pid}", tid = {tid}, initiators = "all" }}
[[resource.lun]]
lun = 1
device = "{backing}"
scsi_id = "reload-{name}"
scsi_sn = "RELOAD{tid}"
vendor = "ISCSIHA"
product = "RELOAD-TEST"
"#,
        backing = backing.display(),
        pid = std::process::id(),
    )
}

fn head(dir: &Path) -> String {
    tgtd_config_head("reload-test", dir, CONTROL_PORT, Some(5000))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reload_keeps_a_reading_client_on_real_tgtd() {
    if !Prereqs::new("agent reload tgtd test")
        .root_and_group()
        .tools(&["tgtd", "iscsi-perf", "iscsi-inq"])
        .check()
    {
        return;
    }
    let dir = tempfile::Builder::new()
        .prefix(&format!("agent-reload-{}-", std::process::id()))
        .tempdir()
        .expect("tempdir");
    let d0 = dir.path();
    let path = d0.join("iscsi-ha.toml");
    let (r0, r1, r2) = (
        resource(d0, "r0", 1),
        resource(d0, "r1", 2),
        resource(d0, "r2", 3),
    );
    std::fs::write(&path, format!("{}{r0}{r1}", head(d0))).expect("write");
    let cfg = Config::load(&path).unwrap_or_else(|e| panic!("{e}"));
    let port = free_port();
    let _tgtd = Tgtd::start(d0, CONTROL_PORT, port);
    let client = wait_tgtd(&cfg.sockets.tgtd).await;
    let target = TgtTarget::new(&cfg.sockets.tgtd, Duration::from_secs(5));
    let mem = Memory::healthy_secondary(&cfg);
    // r2's DRBD is up (as the operator sets it up before adding it).
    let view = mem.world().drbd["r1"].clone();
    mem.world().drbd.insert("r2".into(), view);
    let iqn = |r: &str| format!("iqn.2026-11.test.reload:{r}-{}", std::process::id());
    let mut d = Daemon::new(Executor::new(Arc::new(cfg), mem.clone(), target, mem));
    d.observe().await;
    let h = d.request(Request::Promote).await;
    assert!(h.ok, "{}", h.message);

    let mut perf = Kill(
        Command::new(which("iscsi-perf").expect("iscsi-perf"))
            .args(["-x", "0", "-t", "5", "-i", "iqn.2026-11.test:reader"])
            .arg(format!("iscsi://127.0.0.1:{port}/{}/1", iqn("r0")))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("iscsi-perf runs"),
    );
    let deadline = Instant::now() + Duration::from_secs(15);
    let sid = loop {
        if let Some(n) = client.sessions(1).await.expect("sessions").first() {
            break n.sid;
        }
        assert!(Instant::now() < deadline, "iscsi-perf never logged in");
        tokio::time::sleep(Duration::from_millis(20)).await;
    };

    std::fs::write(&path, format!("{}{r0}{r2}", head(d0))).expect("write");
    let h = d.request(Request::Reload).await;
    assert!(h.ok, "{}", h.message);
    assert!(
        h.message.contains("removed resource r1") && h.message.contains("added resource r2"),
        "{}",
        h.message
    );
    assert!(
        !client.has_target(2).await.expect("show"),
        "r1 still served"
    );
    let inq = Command::new(which("iscsi-inq").expect("iscsi-inq"))
        .arg(format!("iscsi://127.0.0.1:{port}/{}/1", iqn("r2")))
        .output()
        .expect("iscsi-inq runs");
    let text = String::from_utf8_lossy(&inq.stdout);
    assert!(text.contains("RELOAD-TEST"), "r2 not served: {text}");
    // The reader keeps reading over the same session (a failed read ends it: no reconnects).
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert!(
        perf.0.try_wait().expect("wait").is_none(),
        "the reader of r0 failed across the reload"
    );
    assert_eq!(
        common::session_ids(&client, 1).await,
        [sid],
        "r0's session changed"
    );
}
