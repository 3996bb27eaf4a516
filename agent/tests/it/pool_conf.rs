//! pool.conf role source: the directory watch sees replacement by rename, delete + re-create,
//! in-place rewrites and garbage, and a directory removed and made again; a missing or garbled
//! file never promotes.

use crate::common;

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use agent::backend::memory::Memory;
use agent::daemon::Daemon;
use agent::executor::Executor;
use agent::fsm::{Authority, Event, Role};
use agent::role::pool_conf::PoolConfWatch;

const WAIT: Duration = Duration::from_secs(5);

async fn next(w: &mut PoolConfWatch) -> Authority {
    tokio::time::timeout(WAIT, w.changed())
        .await
        .expect("a change within 5 s")
        .expect("watch works")
}

fn replace(path: &Path, contents: &str) {
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, contents).expect("write tmp");
    std::fs::rename(&tmp, path).expect("rename");
}

#[tokio::test]
async fn rename_replace_is_seen() {
    let dir = tempfile::tempdir().expect("tempdir");
    let p = dir.path().join("pool.conf");
    std::fs::write(&p, "slave:192.0.2.1\n").expect("write");
    let mut w = PoolConfWatch::new(&p).expect("watch");
    assert_eq!(w.current(), Authority::Secondary);
    replace(&p, "master\n");
    assert_eq!(next(&mut w).await, Authority::Primary);
    replace(&p, "slave:192.0.2.7\n");
    assert_eq!(next(&mut w).await, Authority::Secondary);
}

#[tokio::test]
async fn delete_then_recreate() {
    let dir = tempfile::tempdir().expect("tempdir");
    let p = dir.path().join("pool.conf");
    std::fs::write(&p, "master").expect("write");
    let mut w = PoolConfWatch::new(&p).expect("watch");
    assert_eq!(w.current(), Authority::Primary);
    std::fs::remove_file(&p).expect("rm");
    match next(&mut w).await {
        Authority::Unknown(r) => assert!(r.contains("missing"), "{r}"),
        other => panic!("expected an alarm, got {other}"),
    }
    std::fs::write(&p, "master").expect("write");
    // The create may be seen before the data (empty file: another alarm); the close brings it.
    let mut seen = Vec::new();
    loop {
        let a = next(&mut w).await;
        seen.push(a.clone());
        if a == Authority::Primary {
            break;
        }
        assert!(matches!(a, Authority::Unknown(_)), "{seen:?}");
    }
}

/// The directory removed and made again (an operator's `rm -r`, a restore): an alarm, then the
/// watch takes the new directory in by itself and reads the file there.
#[tokio::test]
async fn directory_removed_then_back_is_watched_again() {
    let top = tempfile::tempdir().expect("tempdir");
    let dir = top.path().join("xensource");
    std::fs::create_dir(&dir).expect("mkdir");
    let p = dir.join("pool.conf");
    std::fs::write(&p, "master").expect("write");
    let mut w = PoolConfWatch::new(&p).expect("watch");
    assert_eq!(w.current(), Authority::Primary);
    std::fs::remove_dir_all(&dir).expect("rm -r");
    let mut seen = Vec::new();
    loop {
        let a = next(&mut w).await;
        seen.push(a.clone());
        match a {
            Authority::Unknown(r) if r.contains("removed") => break,
            Authority::Unknown(_) => {} // the file's removal first
            other => panic!("expected an alarm, got {other} ({seen:?})"),
        }
    }
    std::fs::create_dir(&dir).expect("mkdir again");
    replace(&p, "slave:192.0.2.1\n");
    assert_eq!(next(&mut w).await, Authority::Secondary);
    replace(&p, "master\n");
    assert_eq!(next(&mut w).await, Authority::Primary);
}

#[tokio::test]
async fn in_place_rewrite_and_garbage() {
    let dir = tempfile::tempdir().expect("tempdir");
    let p = dir.path().join("pool.conf");
    let mut w = PoolConfWatch::new(&p).expect("watch (file absent at start)");
    assert!(matches!(w.current(), Authority::Unknown(_)));
    std::fs::write(&p, "master").expect("write");
    let mut a = next(&mut w).await;
    while a != Authority::Primary {
        assert!(matches!(a, Authority::Unknown(_)), "{a}");
        a = next(&mut w).await;
    }
    std::fs::write(&p, "\u{0}\u{1}mastr").expect("write");
    match next(&mut w).await {
        Authority::Unknown(r) => assert!(r.contains("unrecognised"), "{r}"),
        other => panic!("garbage read as {other}"),
    }
    std::fs::write(&p, [0xff, 0xfe]).expect("write");
    match next(&mut w).await {
        Authority::Unknown(r) => assert!(r.contains("UTF-8"), "{r}"),
        other => panic!("non-UTF-8 read as {other}"),
    }
}

#[tokio::test]
async fn unrelated_files_are_ignored() {
    let dir = tempfile::tempdir().expect("tempdir");
    let p = dir.path().join("pool.conf");
    std::fs::write(&p, "master").expect("write");
    let mut w = PoolConfWatch::new(&p).expect("watch");
    w.current();
    std::fs::write(dir.path().join("other"), "slave:1.2.3.4").expect("write");
    std::fs::write(&p, "master").expect("same content");
    let r = tokio::time::timeout(Duration::from_millis(300), w.changed()).await;
    assert!(r.is_err(), "no change reported: {r:?}");
}

fn drain(rx: &mut tokio::sync::mpsc::UnboundedReceiver<Event>) -> Vec<Event> {
    let mut evs = Vec::new();
    while let Ok(ev) = rx.try_recv() {
        evs.push(ev);
    }
    evs
}

/// The watch feeding the daemon: garbage and absence never promote; `master` does.
#[tokio::test]
async fn garbage_or_missing_never_promotes() {
    let dir = tempfile::tempdir().expect("tempdir");
    let p = dir.path().join("pool.conf");
    std::fs::write(&p, "garbage").expect("write");
    let cfg = Arc::new(common::config("one", false));
    let mem = Memory::healthy_secondary(&cfg);
    let mut d = Daemon::new(Executor::new(cfg, mem.clone(), mem.clone(), mem.clone()));
    d.observe().await;
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    let watch = PoolConfWatch::new(&p).expect("watch");
    tokio::spawn(watch.run(tx));
    tokio::time::sleep(Duration::from_millis(100)).await;
    for ev in drain(&mut rx) {
        d.handle(ev).await;
    }
    std::fs::remove_file(&p).expect("rm");
    tokio::time::sleep(Duration::from_millis(100)).await;
    std::fs::write(&p, "slave:").expect("write");
    tokio::time::sleep(Duration::from_millis(100)).await;
    for ev in drain(&mut rx) {
        d.handle(ev).await;
    }
    assert_eq!(mem.world().calls, 0, "{:?}", mem.world().log);
    assert!(matches!(
        d.state().map(|s| s.authority.clone()),
        Some(Authority::Unknown(_))
    ));
    replace(&p, "master\n");
    tokio::time::sleep(Duration::from_millis(100)).await;
    for ev in drain(&mut rx) {
        d.handle(ev).await;
    }
    assert_eq!(
        mem.world().drbd.get("r0").map(|v| v.role),
        Some(Role::Primary)
    );
}
