//! Live reload: settings read at each use are applied without a transition; resources and
//! addresses are applied as a difference (removed ones demoted and released in the demote order,
//! added ones promoted on the primary or observed on a secondary, a changed one replaced alone,
//! unchanged ones never touched by a backend call); a change needing a restart (here the tgtd
//! socket), or a file that does not validate, is refused with the reason (in the answer and in
//! status) and the running config kept. In process over in-memory backends, then `SIGHUP` and
//! `iscsi-ha reload` against `iscsi-ha daemon --simulate`.

use crate::common;

use std::path::Path;
use std::sync::Arc;

use agent::backend::memory::Memory;
use agent::config::Config;
use agent::control::{Request, Response};
use agent::daemon::Daemon;
use agent::executor::Executor;
use agent::fsm::{DrbdView, Role, TargetState};

fn write(path: &Path, cfg: &Config) {
    std::fs::write(path, cfg.effective_toml().expect("toml")).expect("write config");
}

fn refused(r: &Response) -> Option<String> {
    r.status.as_ref().and_then(|s| s.reload_refused.clone())
}

/// `cfg` written to `path` and loaded from there: a daemon over in-memory backends, promoted.
async fn promoted(path: &Path, cfg: &Config) -> (Daemon<Memory, Memory, Memory>, Memory) {
    write(path, cfg);
    let running = Config::load(path).expect("load");
    let mem = Memory::healthy_secondary(&running);
    let exec = Executor::new(Arc::new(running), mem.clone(), mem.clone(), mem.clone());
    let mut d = Daemon::new(exec);
    d.observe().await;
    let r = d.request(Request::Promote).await;
    assert!(r.ok, "{}", r.message);
    (d, mem)
}

/// `res`'s target serves and `addr` is held.
fn serving(mem: &Memory, res: &str, addr: &str) -> bool {
    let w = mem.world();
    w.targets.get(res).map(|t| t.state) == Some(TargetState::Serving)
        && w.addresses.get(addr) == Some(&true)
}

#[tokio::test]
async fn reload_applies_live_settings_and_refuses_what_is_served() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("iscsi-ha.toml");
    let mut cfg = common::config("one", true);
    let (mut d, mem) = promoted(&path, &cfg).await;
    let calls = mem.world().log.len();
    assert!(serving(&mem, "r0", "10.0.0.10/24"));

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

    // What needs a restart: refused, named, kept.
    let mut other = cfg.clone();
    other.sockets.tgtd = "/tmp/other-tgtd.sock".into();
    write(&path, &other);
    let r = d.request(Request::Reload).await;
    assert!(!r.ok);
    assert!(r.message.contains("sockets.tgtd"), "{}", r.message);
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
    assert!(serving(&mem, "r0", "10.0.0.10/24"));
}

/// `SIGHUP` and `iscsi-ha reload` reach the same reload in a running daemon.
#[test]
fn sighup_and_reload_command() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut cfg = common::in_dir(&common::config("one", true), dir.path());
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
    other.sockets.tgtd = "/tmp/other-tgtd.sock".into();
    write(&path, &other);
    let pid = nix::unistd::Pid::from_raw(i32::try_from(daemon.0.id()).expect("pid"));
    nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGHUP).expect("SIGHUP");
    // The daemon answers requests in order: the SIGHUP's reload is in before this status
    // once the status shows it.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    loop {
        let (_, text) = run(&["status"]);
        if text.contains("reload refused") {
            assert!(text.contains("sockets.tgtd"), "{text}");
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

/// `r2`: a copy of `r1` under another name, minor, IQN, tid and LU identity.
fn r2(cfg: &Config) -> agent::config::Resource {
    let mut r = cfg.resources[1].clone();
    r.name = "r2".into();
    r.minor = 2;
    r.target.iqn = "iqn.2026-11.test:r2".into();
    r.target.tid = 3;
    r.luns[0].device = "/dev/drbd2".into();
    r.luns[0].scsi_id = "r2-1".into();
    r.luns[0].scsi_sn = "R2SN1".into();
    r
}

/// What the in-memory world needs to know of `r2` (as if the operator set its DRBD up first).
fn r2_in_world(mem: &Memory, healthy: &Memory) {
    let view: DrbdView = healthy.world().drbd["r1"].clone();
    let mut w = mem.world();
    w.drbd.insert("r2".into(), view);
    w.targets.insert("r2".into(), Default::default());
    w.addresses.insert("10.0.0.12/24".into(), false);
}

fn touches(log: &[String], object: &str) -> Vec<String> {
    let hits = log.iter().filter(|l| l.split(' ').nth(1) == Some(object));
    hits.cloned().collect()
}

/// Primary: r1 (and its address) removed, r2 (with a new address) added, r0 unchanged; then r2
/// changed (its tid) is replaced alone. r0 and its address see no backend call throughout.
#[tokio::test]
async fn reload_applies_resources_as_a_difference() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("iscsi-ha.toml");
    let cfg = common::config("two-addr", true);
    let (mut d, mem) = promoted(&path, &cfg).await;
    let start = mem.world().log.len();
    assert!(serving(&mem, "r0", "10.0.0.10/24") && serving(&mem, "r1", "10.0.0.11/24"));

    let mut new = cfg.clone();
    new.resources[1] = r2(&cfg);
    new.addresses[1].address = "10.0.0.12/24".parse().expect("address");
    new.addresses[1].resources = vec!["r2".into()];
    r2_in_world(&mem, &Memory::healthy_secondary(&cfg));
    write(&path, &new);
    let r = d.request(Request::Reload).await;
    assert!(r.ok, "{}", r.message);
    for part in [
        "removed resource r1",
        "added resource r2",
        "removed address 10.0.0.11/24",
        "added address 10.0.0.12/24",
    ] {
        assert!(r.message.contains(part), "{part}: {}", r.message);
    }
    let log = mem.world().log[start..].to_vec();
    // Removed: demoted and released in the demote order.
    assert_eq!(
        [touches(&log, "r1"), touches(&log, "10.0.0.11/24")].concat(),
        [
            "target-offline r1",
            "target-remove r1",
            "drbd-secondary r1",
            "address-release 10.0.0.11/24"
        ]
    );
    let pos = |l: &str| log.iter().position(|x| x == l).expect(l);
    assert!(pos("target-offline r1") < pos("address-release 10.0.0.11/24"));
    assert!(pos("address-release 10.0.0.11/24") < pos("target-remove r1"));
    assert!(pos("target-remove r1") < pos("drbd-secondary r1"));
    {
        let w = mem.world();
        assert_eq!(w.targets["r1"].state, TargetState::Absent);
        assert_eq!(w.drbd["r1"].role, Role::Secondary);
        assert!(!w.addresses["10.0.0.11/24"]);
    }
    // Added: promoted in the promote order.
    assert!(serving(&mem, "r2", "10.0.0.12/24"), "{log:?}");
    assert!(pos("drbd-primary r2") < pos("target-serve r2"));
    assert!(pos("target-serve r2") < pos("address-claim 10.0.0.12/24"));
    // Unchanged: no call at all.
    assert!(touches(&log, "r0").is_empty(), "{log:?}");
    assert!(touches(&log, "10.0.0.10/24").is_empty(), "{log:?}");
    assert!(serving(&mem, "r0", "10.0.0.10/24"));
    let status = r.status.expect("status");
    assert_eq!(status.config_fingerprint, new.fingerprint());
    assert!(d.state().expect("state").converged());

    // Changed (r2's tid): replaced alone. Its DRBD device stays Primary; its address, which
    // covers it alone, is released before its target goes and claimed once it serves again.
    let start = mem.world().log.len();
    let mut changed = new.clone();
    changed.resources[1].target.tid = 9;
    write(&path, &changed);
    let r = d.request(Request::Reload).await;
    assert!(r.ok, "{}", r.message);
    assert!(r.message.contains("replaced resource r2"), "{}", r.message);
    let log = mem.world().log[start..].to_vec();
    assert_eq!(
        [touches(&log, "r2"), touches(&log, "10.0.0.12/24")].concat(),
        [
            "target-offline r2",
            "target-remove r2",
            "target-serve r2",
            "address-release 10.0.0.12/24",
            "probe-address 10.0.0.12/24",
            "address-claim 10.0.0.12/24"
        ]
    );
    let pos = |l: &str| log.iter().position(|x| x == l).expect(l);
    assert!(pos("address-release 10.0.0.12/24") < pos("target-remove r2"));
    assert!(pos("target-serve r2") < pos("address-claim 10.0.0.12/24"));
    assert!(touches(&log, "r0").is_empty(), "{log:?}");
    assert!(touches(&log, "10.0.0.10/24").is_empty(), "{log:?}");
    assert!(serving(&mem, "r0", "10.0.0.10/24") && serving(&mem, "r2", "10.0.0.12/24"));
    assert!(d.state().expect("state").converged());

    // Changed under its up DRBD device (r2's minor): refused, nothing touched.
    let start = mem.world().log.len();
    let mut moved = changed.clone();
    moved.resources[1].minor = 7;
    moved.resources[1].luns[0].device = "/dev/drbd7".into();
    write(&path, &moved);
    let r = d.request(Request::Reload).await;
    assert!(!r.ok, "{}", r.message);
    assert!(
        r.message
            .contains("r2: minor would change its DRBD device, which is up"),
        "{}",
        r.message
    );
    assert_eq!(refused(&r).as_deref(), Some(r.message.as_str()));
    assert_eq!(
        r.status.expect("status").config_fingerprint,
        changed.fingerprint()
    );
    assert_eq!(mem.world().log[start..], [] as [String; 0]);
}

/// Secondary: an added resource is observed, nothing is changed.
#[tokio::test]
async fn reload_adds_on_a_secondary() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("iscsi-ha.toml");
    let cfg = common::config("two-addr", true);
    write(&path, &cfg);
    let mut new = cfg.clone();
    new.resources.push(r2(&cfg));
    new.addresses[1].resources.push("r2".into());

    let running = Config::load(&path).expect("load");
    let mem = Memory::healthy_secondary(&running);
    r2_in_world(&mem, &mem.clone());
    let exec = Executor::new(Arc::new(running), mem.clone(), mem.clone(), mem.clone());
    let mut d = Daemon::new(exec);
    d.observe().await;
    let r = d.request(Request::Demote).await;
    assert!(r.ok, "{}", r.message);
    write(&path, &new);
    let r = d.request(Request::Reload).await;
    assert!(r.ok, "{}", r.message);
    let status = r.status.expect("status");
    let state = d.state().expect("state");
    assert!(r.message.contains("added resource r2"), "{}", r.message);
    assert_eq!(status.config_fingerprint, new.fingerprint());
    assert_eq!(state.resources["r2"].view.drbd.role, Role::Secondary);
    assert!(state.resources["r2"].view.drbd.up);
    assert_eq!(state.addresses["10.0.0.11/24"].resources, ["r1", "r2"]);
    assert!(mem.world().log.is_empty(), "{:?}", mem.world().log);
}

/// A notice about a resource that a reload removes goes with it (it would otherwise stay in
/// status until the next change).
#[tokio::test]
async fn reload_clears_the_notice_of_a_removed_resource() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("iscsi-ha.toml");
    let cfg = common::config("two-addr", true);
    let (mut d, mem) = promoted(&path, &cfg).await;
    // r1 loses its DRBD device behind the agent's back: a notice about r1.
    mem.world().drbd.get_mut("r1").expect("r1").up = false;
    d.observe().await;
    let notice = |r: &Response| r.status.as_ref().and_then(|s| s.notice.clone());
    let before = notice(&d.request(Request::Status).await);
    assert!(
        before.as_deref().is_some_and(|n| n.contains("r1")),
        "{before:?}"
    );

    let mut new = cfg.clone();
    new.resources.remove(1);
    new.addresses.remove(1);
    write(&path, &new);
    let r = d.request(Request::Reload).await;
    assert!(r.ok, "{}", r.message);
    assert_eq!(notice(&d.request(Request::Status).await), None);
}

/// Primary: adding a resource the machine could not promote now (its DRBD device not up, adopt
/// mode) is refused with the machine's reason and the running config kept (the machine plans
/// every resource at once: it would hold every repair of the others); once it is up, the same
/// reload brings it in.
#[tokio::test]
async fn reload_refuses_an_addition_that_would_hold_the_others() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("iscsi-ha.toml");
    let cfg = common::config("two-addr", true);
    let (mut d, mem) = promoted(&path, &cfg).await;
    r2_in_world(&mem, &Memory::healthy_secondary(&cfg));
    mem.world().drbd.get_mut("r2").expect("r2").up = false;
    let start = mem.world().log.len();
    let mut new = cfg.clone();
    new.resources.push(r2(&cfg));
    new.addresses[1].resources.push("r2".into());
    write(&path, &new);
    let r = d.request(Request::Reload).await;
    assert!(!r.ok, "{}", r.message);
    assert!(
        r.message
            .contains("adding r2 would hold every promote and repair")
            && r.message.contains("r2: DRBD resource is not up"),
        "{}",
        r.message
    );
    assert_eq!(refused(&r).as_deref(), Some(r.message.as_str()));
    assert_eq!(
        r.status.expect("status").config_fingerprint,
        cfg.fingerprint()
    );
    assert!(!d.state().expect("state").resources.contains_key("r2"));
    assert_eq!(mem.world().log[start..], [] as [String; 0]);

    mem.world().drbd.get_mut("r2").expect("r2").up = true;
    let r = d.request(Request::Reload).await;
    assert!(r.ok, "{}", r.message);
    assert!(serving(&mem, "r2", "10.0.0.11/24"));
    assert_eq!(refused(&r), None);
}

/// A CHAP secrets file that would not serve (here readable by others) refuses the reload, named
/// at its key, and the target keeps serving with the running config; once the mode is right the
/// same file is applied (the target replaced with its accounts).
#[tokio::test]
async fn reload_refuses_chap_secrets_that_would_not_serve() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("iscsi-ha.toml");
    let cfg = common::config("one", true);
    let (mut d, mem) = promoted(&path, &cfg).await;

    let secrets = dir.path().join("chap.toml");
    std::fs::write(&secrets, "\"alice\" = \"secret-of-alice\"\n").expect("secrets");
    std::fs::set_permissions(&secrets, std::fs::Permissions::from_mode(0o644)).expect("chmod");
    let mut chap = cfg.clone();
    chap.resources[0].target.chap = Some(agent::config::Chap {
        secrets: secrets.clone(),
        incoming: vec!["alice".into()],
        outgoing: None,
    });
    write(&path, &chap);
    let r = d.request(Request::Reload).await;
    assert!(!r.ok, "{}", r.message);
    let why = refused(&r).expect("reason in status");
    assert!(
        why.contains("resource[0].target.chap.secrets") && why.contains("chmod 600"),
        "{why}"
    );
    assert!(!why.contains("secret-of-alice"), "secret printed: {why}");
    assert!(serving(&mem, "r0", "10.0.0.10/24"));
    let status = r.status.expect("status");
    assert_eq!(status.config_fingerprint, cfg.fingerprint());

    std::fs::set_permissions(&secrets, std::fs::Permissions::from_mode(0o600)).expect("chmod");
    let r = d.request(Request::Reload).await;
    assert!(r.ok, "{}", r.message);
    assert_eq!(refused(&r), None);
    assert!(serving(&mem, "r0", "10.0.0.10/24"));
}
