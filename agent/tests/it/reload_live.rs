//! Live reload on the real daemon's backends and watches: tgtd (its socket), the floating
//! addresses (rtnetlink, in a network namespace this test makes, with a second one for the
//! initiator behind a veth pair) and the watches following the config through
//! `daemon::follow::Follow`; DRBD stays in memory (the host has none; the lab has it). With a
//! reader (the lab's libiscsi [`lab::iscsi::Reader`]: one block per READ(10), no reconnects,
//! 5 s command timeout) on `r0` through its address the whole time, a reload adds `r1` with its
//! own address: its target answers an inquiry through the new address, and both watches follow
//! it (the address deleted by hand and the target deleted by hand come back); a change of its
//! LUN (cache mode, product) replaces its target alone, DRBD untouched; a last reload removes
//! them again: target and address gone. An added address on an interface that does not exist is
//! refused. `r0` keeps its very session (same TSIH) and no read fails; its reads and longest
//! pause around each reload are printed next to its longest pause in a quiet second before
//! (figures only, never asserted on).
//! Needs root, `ip`, `tgtd`, `tgtadm` and `iscsi-inq`: skipped without them, a failure with
//! CI=true.

use crate::common;
use crate::reload_tgtd::resource;

use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

use agent::backend::memory::Memory;
use agent::backend::target::TgtTarget;
use agent::backend::vip::NetlinkAddress;
use agent::config::Config;
use agent::control::Request;
use agent::daemon::follow::Follow;
use agent::daemon::Daemon;
use agent::executor::Executor;
use agent::fsm::Event;
use common::{free_port, tgtd_config_head, wait_tgtd, which, Tgtd};
use lab::iscsi::Reader;
use test_support::netns::{self, Netns};
use test_support::prereq::Prereqs;
use tokio::sync::mpsc::UnboundedReceiver;

const CONTROL_PORT: u16 = 9;
/// The portal the initiator namespace reaches (tgtd listens on it in the test's namespace).
const PORTAL: u16 = 3260;
const A0: &str = "10.99.0.10/24";
const A1: &str = "10.99.0.11/24";

pub(crate) fn address(addr: &str, res: &str) -> String {
    format!(
        "[[address]]\naddress = \"{addr}\"\ninterface = \"v0\"\nresources = [\"{res}\"]\n\
         announce = {{ count = 1, interval_ms = 50 }}\nprobe = {{ enabled = true, timeout_ms = 100 }}\n"
    )
}

pub(crate) type D = Daemon<Memory, TgtTarget, Arc<NetlinkAddress>>;

/// Handles the watches' events until `done` holds (at most 20 s, else panics with `what`).
pub(crate) async fn until<F: std::future::Future<Output = bool>>(
    d: &mut D,
    rx: &mut UnboundedReceiver<Event>,
    what: &str,
    mut done: impl FnMut() -> F,
) {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        while let Ok(ev) = rx.try_recv() {
            d.handle(ev).await;
        }
        if done().await {
            return;
        }
        assert!(Instant::now() < deadline, "{what}");
        tokio::select! {
            Some(ev) = rx.recv() => { d.handle(ev).await; }
            _ = tokio::time::sleep(Duration::from_millis(20)) => {}
        }
    }
}

pub(crate) fn held_on_v0(addr: &str) -> bool {
    let out = Command::new("ip")
        .args(["-o", "addr", "show", "dev", "v0"])
        .output()
        .expect("ip runs");
    String::from_utf8_lossy(&out.stdout).contains(&format!(" {addr} "))
}

/// `iscsi-inq` from the initiator namespace; its standard inquiry text.
fn inquiry(cli: &str, url: &str) -> String {
    let out = Command::new("ip")
        .args(["netns", "exec", cli])
        .arg(which("iscsi-inq").expect("iscsi-inq"))
        .arg(url)
        .output()
        .expect("iscsi-inq runs");
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

#[test]
fn reload_adds_and_removes_a_served_target_and_its_address() {
    if !Prereqs::new("agent live reload test")
        .root_and_group()
        .tools(&["ip", "tgtd", "tgtadm", "iscsi-inq"])
        .check()
    {
        return;
    }
    let ns = |p: &str| Netns::add(Netns::unique_name(p)).unwrap_or_else(|e| panic!("{e}"));
    let (srv, cli) = (ns("rls"), ns("rlc"));
    let ok = |r: Result<(), String>| r.unwrap_or_else(|e| panic!("{e}"));
    ok(srv.ip(&["link", "set", "lo", "up"]));
    ok(srv.veth_to("v0", &cli, "v1"));
    ok(cli.ip(&["link", "set", "lo", "up"]));
    ok(cli.ip(&["addr", "add", "10.99.0.2/24", "dev", "v1"]));
    let cli = cli.name().to_string();
    netns::in_ns(srv.name(), move || run(cli));
    drop(srv);
}

async fn run(cli: String) {
    let dir = tempfile::Builder::new()
        .prefix(&format!("agent-reload-live-{}-", std::process::id()))
        .tempdir()
        .expect("tempdir");
    let d0 = dir.path();
    let path = d0.join("iscsi-ha.toml");
    let head = format!(
        "{}tgt_check_ms = 50\n",
        tgtd_config_head("reload-live", d0, CONTROL_PORT, Some(5000))
    );
    let (r0, r1) = (resource(d0, "r0", 1), resource(d0, "r1", 2));
    let (a0, a1) = (address(A0, "r0"), address(A1, "r1"));
    let write = |text: String| std::fs::write(&path, text).expect("write");
    write(format!("{head}{r0}{a0}"));
    let cfg = Arc::new(Config::load(&path).unwrap_or_else(|e| panic!("{e}")));

    // tgtd in this namespace: its own 127.0.0.1 portal, and the one the initiator reaches.
    let tgtd = Tgtd::start(d0, CONTROL_PORT, free_port());
    let client = wait_tgtd(&cfg.sockets.tgtd).await;
    let portal = format!("portal=0.0.0.0:{PORTAL}");
    let out = tgtd.tgtadm(&[
        "--lld", "iscsi", "--op", "new", "--mode", "portal", "--param", &portal,
    ]);
    assert!(out.status.success(), "portal: {out:?}");

    // The real daemon's pieces, DRBD in memory (r1's device is up, as before adding it).
    let mem = Memory::healthy_secondary(&cfg);
    let view = mem.world().drbd["r0"].clone();
    mem.world().drbd.insert("r1".into(), view);
    let target = TgtTarget::new(&cfg.sockets.tgtd, Duration::from_secs(5));
    let addr = Arc::new(NetlinkAddress::new(&cfg).expect("address handles"));
    let follow = Follow::new(cfg.clone(), Some(addr.clone()));
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    {
        let (t, feed, to_t) = (target.clone(), follow.feed(), tx.clone());
        tokio::spawn(async move { t.watch(feed, to_t).await });
        let a = addr.clone();
        tokio::spawn(async move { a.watch(tx).await });
    }
    let exec = Executor::new(cfg.clone(), mem.clone(), target, addr.clone());
    let mut d: D = Daemon::new(exec).following(follow);
    d.observe().await;
    let r = d.request(Request::Promote).await;
    assert!(r.ok, "{}", r.message);
    assert!(held_on_v0(A0));

    let iqn = |r: &str| format!("iqn.2026-11.test.reload:{r}-{}", std::process::id());
    let url = |a: &str, r: &str| {
        let ip = a.split('/').next().expect("ip");
        format!("iscsi://{ip}:{PORTAL}/{}/1", iqn(r))
    };
    let reader = Reader::start(&cli, &url(A0, "r0"), "iqn.2026-11.test:reader", 5)
        .unwrap_or_else(|e| panic!("the reader of r0: {e}"));
    let sid = client.sessions(1).await.expect("sessions")[0].sid;
    // A quiet second (no reload) for the reader's usual pause; each reload's window is timed.
    let quiet = Instant::now();
    tokio::time::sleep(Duration::from_secs(1)).await;
    let mut windows = vec![("quiet second, no reload", quiet, Instant::now())];

    // An added address on an interface that does not exist: refused, nothing changed.
    let nowhere = address("10.99.0.12/24", "r0").replace("\"v0\"", "\"v9\"");
    write(format!("{head}{r0}{a0}{nowhere}"));
    let r = reload(&mut d, &mut windows, "refused reload").await;
    assert!(!r.ok, "{}", r.message);
    assert!(
        r.message.contains("running configuration kept") && r.message.contains("v9"),
        "{}",
        r.message
    );
    let status = r.status.expect("status");
    assert_eq!(status.reload_refused.as_deref(), Some(r.message.as_str()));
    assert_eq!(status.config_fingerprint, cfg.fingerprint());
    assert!(held_on_v0(A0));

    // Added: r1 served and reached through its new address.
    write(format!("{head}{r0}{r1}{a0}{a1}"));
    let r = reload(&mut d, &mut windows, "reload adding r1").await;
    assert!(r.ok, "{}", r.message);
    for part in ["added resource r1", &format!("added address {A1}")] {
        assert!(r.message.contains(part), "{part}: {}", r.message);
    }
    assert!(client.has_target(2).await.expect("show"), "r1 not served");
    assert!(held_on_v0(A1), "{A1} not claimed");
    let text = inquiry(&cli, &url(A1, "r1"));
    assert!(text.contains("RELOAD-TEST"), "r1 not reached: {text}");

    // The watches follow what the reload added: a hand's deletions are repaired.
    ok_ip(&["addr", "del", A1, "dev", "v0"]);
    until(
        &mut d,
        &mut rx,
        "the added address was not restored",
        || async { held_on_v0(A1) },
    )
    .await;
    let out = tgtd.tgtadm(&[
        "--lld", "iscsi", "--op", "delete", "--force", "--mode", "target", "--tid", "2",
    ]);
    assert!(out.status.success(), "delete: {out:?}");
    until(
        &mut d,
        &mut rx,
        "the added target was not served again",
        || async { client.has_target(2).await.unwrap_or(false) },
    )
    .await;
    let text = inquiry(&cli, &url(A1, "r1"));
    assert!(text.contains("RELOAD-TEST"), "r1 not reached again: {text}");

    // Changed (r1's LUN in write-back, another product): r1 alone replaced, its DRBD device
    // untouched (no role change), its target served again in the new mode.
    let r1b = r1.replace(
        "product = \"RELOAD-TEST\"",
        "product = \"RELOAD-WB\"\ncache = \"write-back\"",
    );
    mem.world().log.clear();
    write(format!("{head}{r0}{r1b}{a0}{a1}"));
    let r = reload(&mut d, &mut windows, "reload replacing r1").await;
    assert!(r.ok, "{}", r.message);
    assert!(r.message.contains("replaced resource r1"), "{}", r.message);
    let log = mem.world().log.clone();
    assert!(log.iter().all(|l| !l.starts_with("drbd-")), "{log:?}");
    let t = client.target(2).await.expect("show").expect("r1 served");
    assert_eq!(
        t.lun(1).expect("LUN 1").backing_store_flags,
        "",
        "not write-back"
    );
    let text = inquiry(&cli, &url(A1, "r1"));
    assert!(text.contains("RELOAD-WB"), "r1 not replaced: {text}");

    // Removed: target and address gone, no longer followed.
    write(format!("{head}{r0}{a0}"));
    let r = reload(&mut d, &mut windows, "reload removing r1").await;
    assert!(r.ok, "{}", r.message);
    for part in ["removed resource r1", &format!("removed address {A1}")] {
        assert!(r.message.contains(part), "{part}: {}", r.message);
    }
    assert!(
        !client.has_target(2).await.expect("show"),
        "r1 still served"
    );
    assert!(!held_on_v0(A1), "{A1} still held");
    until(&mut d, &mut rx, "events after the removal", || async {
        true
    })
    .await;
    assert!(
        !client.has_target(2).await.expect("show"),
        "r1 served again"
    );
    assert!(!held_on_v0(A1), "{A1} claimed again");

    // r0's reader read through all of it over its very session.
    assert!(held_on_v0(A0));
    assert!(
        reader.reading(),
        "the reader of r0 failed across the reloads"
    );
    assert_eq!(
        common::session_ids(&client, 1).await,
        [sid],
        "r0's session changed"
    );
    let reads = reader.stop();
    assert_eq!(reads.failed, None, "a read of r0 failed");
    eprintln!("r0's {}", reads.summary(&windows));
}

type Windows = Vec<(&'static str, Instant, Instant)>;

/// A reload, its start and end noted in `windows` under `what`.
async fn reload(d: &mut D, windows: &mut Windows, what: &'static str) -> agent::control::Response {
    let from = Instant::now();
    let r = d.request(Request::Reload).await;
    windows.push((what, from, Instant::now()));
    r
}

fn ok_ip(args: &[&str]) {
    netns::ip(args).unwrap_or_else(|e| panic!("{e}"));
}
