//! Live reload: settings read at each use are applied without a transition; a change to what is
//! served (here an IQN), or a file that does not validate, is refused with the reason (in the
//! answer and in status) and the running config kept; nothing served is touched either way.
//! In process over in-memory backends, then `SIGHUP` and `iscsi-ha reload` against
//! `iscsi-ha daemon --simulate`.

mod common;

use std::path::Path;
use std::sync::Arc;

use agent::backend::memory::Memory;
use agent::config::Config;
use agent::control::{Request, Response};
use agent::daemon::Daemon;
use agent::executor::Executor;
use agent::fsm::TargetState;

fn write(path: &Path, cfg: &Config) {
    std::fs::write(path, cfg.effective_toml().expect("toml")).expect("write config");
}

fn refused(r: &Response) -> Option<String> {
    r.status.as_ref().and_then(|s| s.reload_refused.clone())
}

#[tokio::test]
async fn reload_applies_live_settings_and_refuses_what_is_served() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("iscsi-ha.toml");
    let mut cfg = common::config("one", true);
    write(&path, &cfg);
    let running = Config::load(&path).expect("load");
    let mem = Memory::healthy_secondary(&running);
    let exec = Executor::new(Arc::new(running), mem.clone(), mem.clone(), mem.clone());
    let mut d = Daemon::new(exec);
    d.observe().await;
    let r = d.request(Request::Promote).await;
    assert!(r.ok, "{}", r.message);
    let calls = mem.world().log.len();
    let serving = |mem: &Memory| {
        let w = mem.world();
        w.targets.get("r0").map(|t| t.state) == Some(TargetState::Serving)
            && w.addresses.get("10.0.0.10/24") == Some(&true)
    };
    assert!(serving(&mem));

    // Live settings: applied, the status shows the new config's fingerprint.
    cfg.timeouts.authority_settle_ms = 900;
    cfg.addresses[0].announce.count = 2;
    write(&path, &cfg);
    let r = d.request(Request::Reload).await;
    assert!(r.ok, "{}", r.message);
    assert!(
        r.message.contains("timeouts.authority_settle_ms")
            && r.message.contains("address[0].announce.count"),
        "{}",
        r.message
    );
    let status = r.status.expect("status");
    assert_eq!(status.config_fingerprint, cfg.fingerprint());
    assert_eq!(status.reload_refused, None);

    // What is served: refused, named, kept.
    let mut other = cfg.clone();
    other.resources[0].target.iqn = "iqn.2026-11.test:other".into();
    write(&path, &other);
    let r = d.request(Request::Reload).await;
    assert!(!r.ok);
    assert!(
        r.message.contains("resource[0].target.iqn"),
        "{}",
        r.message
    );
    assert_eq!(refused(&r).as_deref(), Some(r.message.as_str()));
    assert_eq!(
        r.status.expect("status").config_fingerprint,
        cfg.fingerprint()
    );

    // A file that does not validate: refused with file, line and key.
    std::fs::write(&path, "node = 1\n").expect("write");
    let r = d.request(Request::Reload).await;
    assert!(!r.ok);
    assert!(r.message.contains("iscsi-ha.toml:1: node"), "{}", r.message);

    // Back to the running config: nothing to do, the refusal is cleared.
    write(&path, &cfg);
    let r = d.request(Request::Reload).await;
    assert!(r.ok && r.message.contains("unchanged"), "{}", r.message);
    assert_eq!(refused(&r), None);

    // Nothing served was touched by any of it.
    assert_eq!(mem.world().log.len(), calls, "{:?}", mem.world().log);
    assert!(serving(&mem));
}

/// `SIGHUP` and `iscsi-ha reload` reach the same reload in a running daemon.
#[test]
fn sighup_and_reload_command() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut cfg = common::config("one", true);
    cfg.sockets.control = dir.path().join("control.sock");
    let bin = env!("CARGO_BIN_EXE_iscsi-ha");
    let (daemon, path) = common::simulated_daemon(bin, dir.path(), &cfg);
    let run = |args: &[&str]| {
        let o = std::process::Command::new(bin)
            .arg("-c")
            .arg(&path)
            .args(args)
            .output()
            .expect("run");
        let text = String::from_utf8_lossy(&o.stdout).to_string();
        (o.status.success(), text)
    };

    let mut other = cfg.clone();
    other.resources[0].target.tid = 7;
    write(&path, &other);
    let pid = nix::unistd::Pid::from_raw(i32::try_from(daemon.0.id()).expect("pid"));
    nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGHUP).expect("SIGHUP");
    // The daemon answers requests in order: the SIGHUP's reload is in before this status
    // once the status shows it.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    loop {
        let (_, text) = run(&["status"]);
        if text.contains("reload refused") {
            assert!(text.contains("resource[0].target.tid"), "{text}");
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no reload seen:\n{text}"
        );
        std::thread::sleep(std::time::Duration::from_millis(50));
    }

    cfg.timeouts.wfc_s = 30;
    write(&path, &cfg);
    let (ok, text) = run(&["reload"]);
    assert!(ok, "{text}");
    assert!(text.contains("applied timeouts.wfc_s"), "{text}");
    let (_, text) = run(&["status"]);
    assert!(!text.contains("reload refused"), "{text}");
}
