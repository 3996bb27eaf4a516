//! The agent against a real tgtd (the host has no DRBD: DRBD and the address stay in memory).
//! Proves: a promote creates the configured target, LUN, identity and ACL in tgtd, an iSCSI
//! client sees it; tgtd killed and restarted empty (as its service manager would) is noticed
//! through the socket directory watch and the target is re-created at once; a demote removes it.
//! Needs root, `tgtd` and `iscsi-inq`: skipped without them, a failure with CI=true.

use crate::common;

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use agent::backend::target::TgtTarget;
use agent::backend::Target;
use agent::config::Config;
use agent::fsm::{Authority, TargetState};
use common::{free_port, wait_tgtd, Tgtd};
use test_support::prereq::Prereqs;

const CONTROL_PORT: u16 = 7;

fn prereqs() -> bool {
    Prereqs::new("agent tgtd test")
        .root_and_group()
        .tools(&["tgtd", "iscsi-inq"])
        .check()
}

fn config(dir: &Path, backing: &Path, cache: &str) -> Config {
    common::tgtd_r0_config("agent", dir, CONTROL_PORT, backing, cache)
}

fn inquiry(port: u16, iqn: &str) -> String {
    common::output("iscsi-inq", &[format!("iscsi://127.0.0.1:{port}/{iqn}/1")])
}

/// A fresh directory named from `prefix` holding the 8 MiB backing file `lun1.img`.
fn dir_with_backing(prefix: &str) -> (tempfile::TempDir, std::path::PathBuf) {
    let dir = tempfile::Builder::new()
        .prefix(&format!("{prefix}-{}-", std::process::id()))
        .tempdir()
        .expect("tempdir");
    let backing = dir.path().join("lun1.img");
    std::fs::File::create(&backing)
        .and_then(|f| f.set_len(8 << 20))
        .expect("backing file");
    (dir, backing)
}

/// A private tgtd serving nothing yet, the config over it (write-through), the target backend
/// and its watch's events.
struct Bed {
    dir: tempfile::TempDir,
    tgtd: Tgtd,
    port: u16,
    cfg: Arc<Config>,
    target: TgtTarget,
    rx: tokio::sync::mpsc::UnboundedReceiver<agent::fsm::Event>,
    /// The watch's config feed (a reload sends the new config).
    feed: tokio::sync::watch::Sender<Arc<Config>>,
}

async fn bed(prefix: &str) -> Bed {
    bed_tuned(prefix, |_| {}).await
}

/// [`bed`] with its config changed by `tune` before anything reads it.
async fn bed_tuned(prefix: &str, tune: impl FnOnce(&mut Config)) -> Bed {
    let (dir, backing) = dir_with_backing(prefix);
    let port = free_port();
    let tgtd = Tgtd::start(dir.path(), CONTROL_PORT, port);
    let mut cfg = config(dir.path(), &backing, "write-through");
    tune(&mut cfg);
    let cfg = Arc::new(cfg);
    assert_eq!(tgtd.socket(), cfg.sockets.tgtd);
    let target = TgtTarget::new(&cfg.sockets.tgtd, Duration::from_secs(5));
    wait_tgtd(&cfg.sockets.tgtd).await;
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
    let (feed, watched) = tokio::sync::watch::channel(cfg.clone());
    {
        let t = target.clone();
        tokio::spawn(async move { t.watch(watched, tx).await });
    }
    Bed {
        dir,
        tgtd,
        port,
        cfg,
        target,
        rx,
        feed,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_restart_and_stop_on_real_tgtd() {
    if !prereqs() {
        return;
    }
    let b = bed("agent-tgtd").await;
    let (dir, mut tgtd, port, cfg, target, mut rx) = (b.dir, b.tgtd, b.port, b.cfg, b.target, b.rx);
    let mut d = common::promoted(&cfg, &target).await;
    let r0 = &cfg.resources[0];
    let iqn = &r0.target.iqn;
    let inq = inquiry(port, iqn);
    assert!(
        inq.contains("ISCSIHA") && inq.contains("AGENT-TEST"),
        "{inq}"
    );
    // A repeated promote touches nothing.
    let h = d.request(agent::control::Request::Promote).await;
    assert!(h.ok && h.message == "nothing to do", "{}", h.message);

    // tgtd killed and restarted empty, as its service manager would.
    tgtd.kill();
    let _tgtd2 = Tgtd::start(dir.path(), CONTROL_PORT, port);
    let restarted = Instant::now();
    let deadline = restarted + Duration::from_secs(15);
    loop {
        let ev = tokio::time::timeout_at(deadline.into(), rx.recv())
            .await
            .expect("tgtd restart noticed within 15 s")
            .expect("watch alive");
        let h = d.handle(ev).await;
        if h.transitions.iter().any(|t| t.result.is_ok()) {
            break;
        }
    }
    let back = restarted.elapsed();
    assert_eq!(
        target.status(r0).await.expect("status").state,
        TargetState::Serving
    );
    let inq = inquiry(port, iqn);
    assert!(inq.contains("AGENT-TEST"), "after restart: {inq}");
    eprintln!("tgtd restart -> target serving again: {back:?} (includes tgtd start-up)");

    // Demote: offline, connections closed, removed.
    let h = d.request(agent::control::Request::Demote).await;
    assert!(h.ok, "{}", h.message);
    assert_eq!(
        target.status(r0).await.expect("status").state,
        TargetState::Absent
    );
    let s = d.status().expect("status");
    assert_eq!(s.authority, Authority::Secondary);
}

/// A target served after the watch's last look, then tgtd restarted: the watch never saw it
/// served (`tgt_check_ms = 0`: no periodic look), yet the new tgtd is held offline for it, so an
/// initiator is not told "target not found" meanwhile; the repair's serve sets tgtd ready before
/// it returns, so the target answers as soon as the daemon says it serves.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_target_served_just_before_a_restart_is_held_offline_for() {
    if !prereqs() {
        return;
    }
    let b = bed_tuned("agent-tgtd-unseen", |c| c.timeouts.tgt_check_ms = 0).await;
    let (dir, mut tgtd, port, cfg, target, mut rx) = (b.dir, b.tgtd, b.port, b.cfg, b.target, b.rx);
    let mut d = common::promoted(&cfg, &target).await;
    let iqn = cfg.resources[0].target.iqn.clone();

    tgtd.kill();
    let _tgtd2 = Tgtd::start(dir.path(), CONTROL_PORT, port);
    let client = tgt_ipc::TgtClient::at_path(&cfg.sockets.tgtd);
    let deadline = Instant::now() + Duration::from_secs(15);
    // The watch's first report after the restart comes once it has taken the new tgtd in.
    let ev = loop {
        let ev = tokio::time::timeout_at(deadline.into(), rx.recv())
            .await
            .expect("tgtd restart noticed within 15 s")
            .expect("watch alive");
        if matches!(&ev, agent::fsm::Event::Target { view, .. } if view.state == TargetState::Absent)
        {
            break ev;
        }
        d.handle(ev).await;
    };
    let state = client.show_system().await.expect("system show").state;
    assert_eq!(state, "offline", "tgtd's system state before the repair");
    let inq = inquiry(port, &iqn);
    assert!(
        !inq.to_lowercase().contains("not found"),
        "a login before the repair: {inq}"
    );

    let mut h = d.handle(ev).await;
    while !h.transitions.iter().any(|t| t.result.is_ok()) {
        let ev = tokio::time::timeout_at(deadline.into(), rx.recv())
            .await
            .expect("repaired within 15 s")
            .expect("watch alive");
        h = d.handle(ev).await;
    }
    let state = client.show_system().await.expect("system show").state;
    assert_eq!(
        state, "ready",
        "tgtd's system state once the repair returned"
    );
    let inq = inquiry(port, &iqn);
    assert!(inq.contains("AGENT-TEST"), "after the repair: {inq}");
}

/// tgtd killed and not restarted: the primary reports its target absent from the watch (not at
/// the safety net) and its repair fails while nothing answers; a new tgtd lifts that failure and
/// the target is served again at once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dead_tgtd_is_reported_and_served_again_once_back() {
    if !prereqs() {
        return;
    }
    let b = bed("agent-tgtd-dead").await;
    let (dir, mut tgtd, port, cfg, target, mut rx) = (b.dir, b.tgtd, b.port, b.cfg, b.target, b.rx);
    let mut d = common::promoted(&cfg, &target).await;
    let state =
        |d: &agent::daemon::Daemon<_, _, _>| d.status().expect("status").resources[0].target.state;
    assert_eq!(state(&d), TargetState::Serving);

    tgtd.kill();
    let deadline = Instant::now() + Duration::from_secs(15);
    let mut failed = false;
    while !(state(&d) == TargetState::Absent && failed) {
        let ev = tokio::time::timeout_at(deadline.into(), rx.recv())
            .await
            .expect("tgtd's death reported within 15 s")
            .expect("watch alive");
        let h = d.handle(ev).await;
        for t in h.transitions.iter().filter(|t| !t.result.is_ok()) {
            // A serve with nothing before it to undo: no rollback ran.
            assert_eq!(t.result.label(), "failed", "{}", t.result);
            failed = true;
        }
    }

    let _tgtd2 = Tgtd::start(dir.path(), CONTROL_PORT, port);
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let ev = tokio::time::timeout_at(deadline.into(), rx.recv())
            .await
            .expect("the new tgtd noticed within 15 s")
            .expect("watch alive");
        let h = d.handle(ev).await;
        if h.transitions.iter().any(|t| t.result.is_ok()) {
            break;
        }
    }
    assert_eq!(state(&d), TargetState::Serving);
    let inq = inquiry(port, &cfg.resources[0].target.iqn);
    assert!(inq.contains("AGENT-TEST"), "after tgtd came back: {inq}");
}

/// The configured cache mode reaches tgtd (the `sync` backing-store flag of write-through, and
/// the caching mode page's WCE bit read with MODE SENSE through the portal: serve sets it in the
/// same LU update as the identity), and a target served in the other mode is reported Partial and
/// re-created in the configured one.
#[tokio::test]
async fn cache_mode_reaches_tgtd() {
    if !prereqs() {
        return;
    }
    let (dir, backing) = dir_with_backing("agent-cache");
    let port = free_port();
    let _tgtd = Tgtd::start(dir.path(), CONTROL_PORT, port);
    let back = config(dir.path(), &backing, "write-back");
    let through = config(dir.path(), &backing, "write-through");
    wait_tgtd(&back.sockets.tgtd).await;
    let target = TgtTarget::new(&back.sockets.tgtd, Duration::from_secs(5));
    let client = tgt_ipc::TgtClient::at_path(back.sockets.tgtd.clone());
    let flags = || async {
        let t = client.target(1).await.expect("show").expect("target");
        t.lun(1).expect("LUN 1").backing_store_flags.clone()
    };

    let url = format!(
        "iscsi://127.0.0.1:{port}/{}/1",
        back.resources[0].target.iqn
    );
    let wce = || {
        let url = url.clone();
        async move {
            tokio::task::spawn_blocking(move || {
                let mut s = lab::iscsi::Session::connect(&url, "iqn.2026-11.test:wce", 5, 2)
                    .unwrap_or_else(|e| panic!("login {url}: {e}"));
                let page = s.caching_page(false).expect("MODE SENSE(6)");
                let _ = s.logout();
                page.wce
            })
            .await
            .expect("MODE SENSE thread")
        }
    };

    target.serve(&back.resources[0]).await.expect("serve");
    assert_eq!(flags().await, "");
    assert!(wce().await, "write-back: tgtd's default page, WCE=1");
    let state = |c: &Config| {
        let r = c.resources[0].clone();
        let t = target.clone();
        async move { t.status(&r).await.expect("status").state }
    };
    assert_eq!(state(&back).await, TargetState::Serving);
    assert_eq!(state(&through).await, TargetState::Partial);
    target.serve(&through.resources[0]).await.expect("re-serve");
    assert_eq!(flags().await, "sync");
    assert!(!wce().await, "write-through: WCE=0");
    assert_eq!(state(&through).await, TargetState::Serving);
    target.remove(&through.resources[0]).await.expect("remove");
}

/// A successor that bound tgtd's socket and died at once (what a crash-looping tgtd leaves) is
/// reported as down too: the target absent, not Serving until the safety net.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_successor_that_died_at_once_is_reported_down() {
    if !prereqs() {
        return;
    }
    let Bed {
        dir: _dir,
        mut tgtd,
        cfg,
        target,
        mut rx,
        ..
    } = bed("agent-tgtd-crashloop").await;
    let mut d = common::promoted(&cfg, &target).await;
    tgtd.kill();
    let _ = std::fs::remove_file(&cfg.sockets.tgtd);
    drop(std::os::unix::net::UnixListener::bind(&cfg.sockets.tgtd).expect("bind"));
    let deadline = Instant::now() + Duration::from_secs(15);
    while d.status().expect("status").resources[0].target.state != TargetState::Absent {
        let ev = tokio::time::timeout_at(deadline.into(), rx.recv())
            .await
            .expect("reported absent within 15 s")
            .expect("watch alive");
        d.handle(ev).await;
    }
}

/// Hands the watch's events to the daemon until `done` holds of its status (15 s at most).
async fn follow_until(
    d: &mut agent::daemon::Daemon<
        agent::backend::memory::Memory,
        TgtTarget,
        agent::backend::memory::Memory,
    >,
    rx: &mut tokio::sync::mpsc::UnboundedReceiver<agent::fsm::Event>,
    what: &str,
    done: impl Fn(&agent::status::Status) -> bool,
) {
    let deadline = Instant::now() + Duration::from_secs(15);
    while !done(&d.status().expect("status")) {
        let ev = tokio::time::timeout_at(deadline.into(), rx.recv())
            .await
            .unwrap_or_else(|_| panic!("{what} within 15 s"))
            .expect("watch alive");
        d.handle(ev).await;
    }
}

/// tgtd's system state once the watch has taken a restarted tgtd in: its first report after
/// the restart (a look may report before the restart path has run), then half a second (a
/// hold would be set by then, and last 30 s).
async fn state_after_restart(
    rx: &mut tokio::sync::mpsc::UnboundedReceiver<agent::fsm::Event>,
    cfg: &Config,
) -> String {
    tokio::time::timeout(Duration::from_secs(15), rx.recv())
        .await
        .expect("the new tgtd reported within 15 s")
        .expect("watch alive");
    tokio::time::sleep(Duration::from_millis(500)).await;
    let client = tgt_ipc::TgtClient::at_path(&cfg.sockets.tgtd);
    client.show_system().await.expect("system show").state
}

/// A node demoted while its tgtd was down (the target absent: the demote removes nothing)
/// stands by: the next tgtd is not held offline for the target it served before (that held
/// every target on that tgtd offline for `READY_WAIT_MAX`, 30 s).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_standing_by_holds_no_restarted_tgtd_offline() {
    if !prereqs() {
        return;
    }
    let b = bed("agent-tgtd-standby").await;
    let (dir, mut tgtd, port, cfg, target, mut rx) = (b.dir, b.tgtd, b.port, b.cfg, b.target, b.rx);
    let mut d = common::promoted(&cfg, &target).await;
    tgtd.kill();
    follow_until(&mut d, &mut rx, "tgtd's death reported", |s| {
        s.resources[0].target.state == TargetState::Absent
    })
    .await;
    let h = d.request(agent::control::Request::Demote).await;
    assert!(h.ok, "{}", h.message);
    assert!(d.status().expect("status").converged, "converged Secondary");
    while rx.try_recv().is_ok() {}
    let _tgtd2 = Tgtd::start(dir.path(), CONTROL_PORT, port);
    assert_eq!(state_after_restart(&mut rx, &cfg).await, "ready");
}

/// A target of a primary deleted behind its back that cannot be served again (its backing file
/// gone) is, once a look saw it absent, not awaited by a later restart: the other targets of
/// that tgtd are not held offline for it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_target_seen_absent_is_not_awaited_by_a_restart() {
    if !prereqs() {
        return;
    }
    let b = bed("agent-tgtd-gone").await;
    let (dir, mut tgtd, port, cfg, target, mut rx) = (b.dir, b.tgtd, b.port, b.cfg, b.target, b.rx);
    let mut d = common::promoted(&cfg, &target).await;
    let r0 = &cfg.resources[0];
    std::fs::rename(dir.path().join("lun1.img"), dir.path().join("lun1.gone")).expect("rename");
    let tid = i32::try_from(r0.target.tid).expect("tid");
    tgt_ipc::TgtClient::at_path(&cfg.sockets.tgtd)
        .stop_serving(tid, &r0.target.iqn)
        .await
        .expect("deleted by hand");
    // The watch's next look (tgt_check_ms, 1 s) reports it absent; its repair fails.
    follow_until(&mut d, &mut rx, "the deletion reported", |s| {
        s.resources[0].target.state == TargetState::Absent
    })
    .await;
    tgtd.kill();
    let _tgtd2 = Tgtd::start(dir.path(), CONTROL_PORT, port);
    while rx.try_recv().is_ok() {}
    assert_eq!(state_after_restart(&mut rx, &cfg).await, "ready");
}

/// Polls (10 ms, up to 10 s) until `what` holds of r0's target as tgtd shows it.
async fn tgtd_says(cfg: &Config, what: &str, want: tgt_ipc::Served) {
    let spec = agent::backend::target::spec(&cfg.resources[0]).expect("spec");
    let client = tgt_ipc::TgtClient::at_path(&cfg.sockets.tgtd);
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let now = client.served(&spec).await;
        if now.as_ref().ok() == Some(&want) {
            return;
        }
        assert!(Instant::now() < deadline, "{what}: tgtd says {now:?}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// `req` answered ok by `d`.
async fn asked<D, T, A>(d: &mut agent::daemon::Daemon<D, T, A>, req: agent::control::Request)
where
    D: agent::backend::Drbd,
    T: agent::backend::Target,
    A: agent::backend::Address,
{
    let h = d.request(req).await;
    assert!(h.ok, "{req:?}: {}", h.message);
}

/// A node that stands by stages its target (LU without a device, no ACL: nobody logs in,
/// status says absent); the promote completes it; a demote removes it and stages it again, and
/// a restarted tgtd gets it staged too.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_standby_stages_its_target_and_a_promote_completes_it() {
    if !prereqs() {
        return;
    }
    let b = bed("agent-tgtd-staged").await;
    let (dir, mut tgtd, port, cfg, target) = (b.dir, b.tgtd, b.port, b.cfg, b.target);
    let r0 = &cfg.resources[0];
    let mem = agent::backend::memory::Memory::healthy_secondary(&cfg);
    let exec = agent::executor::Executor::new(cfg.clone(), mem.clone(), target.clone(), mem);
    let mut d = agent::daemon::Daemon::new(exec);
    d.observe().await;
    asked(&mut d, agent::control::Request::Demote).await;
    tgtd_says(&cfg, "staged on standing by", tgt_ipc::Served::Staged).await;
    assert_eq!(target.staged_resources(), vec!["r0".to_string()]);
    assert_eq!(
        target.status(r0).await.expect("status").state,
        TargetState::Absent
    );
    // status says it: absent, staged
    let st = d.status_now().await.expect("status");
    assert!(st.resources[0].staged, "{st:?}");
    assert_eq!(st.resources[0].target.state, TargetState::Absent);
    assert!(
        st.render().contains("Absent (staged ahead of a promote"),
        "{}",
        st.render()
    );
    let url = format!("iscsi://127.0.0.1:{port}/{}/1", r0.target.iqn);
    let refused = std::process::Command::new("iscsi-inq")
        .arg(&url)
        .output()
        .expect("iscsi-inq");
    assert!(!refused.status.success(), "logged in to a staged target");

    asked(&mut d, agent::control::Request::Promote).await;
    assert_eq!(
        target.status(r0).await.expect("status").state,
        TargetState::Serving
    );
    assert!(target.staged_resources().is_empty());
    let st = d.status_now().await.expect("status");
    assert!(!st.resources[0].staged, "{st:?}");
    let inq = inquiry(port, &r0.target.iqn);
    assert!(
        inq.contains("ISCSIHA") && inq.contains("AGENT-TEST"),
        "{inq}"
    );

    asked(&mut d, agent::control::Request::Demote).await;
    tgtd_says(
        &cfg,
        "staged again after the demote",
        tgt_ipc::Served::Staged,
    )
    .await;

    tgtd.kill();
    let tgtd2 = Tgtd::start(dir.path(), CONTROL_PORT, port);
    tgtd_says(
        &cfg,
        "staged on the restarted tgtd",
        tgt_ipc::Served::Staged,
    )
    .await;
    assert_eq!(target.staged_resources(), vec!["r0".to_string()]);

    // in maintenance nothing is staged, not even on a restarted tgtd
    asked(&mut d, agent::control::Request::Maintenance { on: true }).await;
    drop(tgtd2);
    let _tgtd3 = Tgtd::start(dir.path(), CONTROL_PORT, port);
    wait_tgtd(&cfg.sockets.tgtd).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    tgtd_says(&cfg, "not staged in maintenance", tgt_ipc::Served::Missing).await;
    asked(&mut d, agent::control::Request::Maintenance { on: false }).await;
    tgtd_says(
        &cfg,
        "staged once maintenance is off",
        tgt_ipc::Served::Staged,
    )
    .await;

    // a clean stop deletes it
    target.unstage().await;
    tgtd_says(&cfg, "unstaged at the stop", tgt_ipc::Served::Missing).await;
    assert!(target.staged_resources().is_empty());
}

/// A reload that changes a staged resource's LU (its serial) replaces the staged target with
/// one of the new spec; one that removes the resource deletes it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reload_restages_a_changed_target_and_deletes_a_removed_one() {
    if !prereqs() {
        return;
    }
    let b = bed("agent-tgtd-restage").await;
    let (cfg, target, feed_tx) = (b.cfg, b.target, b.feed);
    target.stand_by(true).await;
    target.stage_ahead(true).await;
    tgtd_says(&cfg, "staged", tgt_ipc::Served::Staged).await;

    let mut changed = (*cfg).clone();
    changed.resources[0].luns[0].scsi_sn = "CHANGED1".into();
    let changed = Arc::new(changed);
    feed_tx.send(changed.clone()).expect("feed");
    tgtd_says(
        &changed,
        "staged with the new serial",
        tgt_ipc::Served::Staged,
    )
    .await;

    let mut removed = (*changed).clone();
    removed.resources.clear();
    removed.addresses.clear();
    feed_tx.send(Arc::new(removed)).expect("feed");
    tgtd_says(
        &changed,
        "deleted with its resource",
        tgt_ipc::Served::Missing,
    )
    .await;
    assert!(target.staged_resources().is_empty());
}
