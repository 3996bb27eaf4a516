//! Against a real tgtd (Debian 12 tgt 1.0.85) that each test starts itself, checked by a real initiator
//! (libiscsi-bin: iscsi-inq, iscsi-readcapacity16, iscsi-perf) on 127.0.0.1. Needs root.

mod common;

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::{prereqs, run, which, Tgtd};
use tgt_ipc::{
    AccountDirection, AccountScope, Acl, BsOFlags, BsType, CacheMode, LunBacking, ServeLun,
    ServeOutcome, ServeSpec, Served, SetState, StopOutcome, TargetParam, TgtErrno, TgtError,
};

const SIZE: u64 = 64 * 1024 * 1024;
const IQN: &str = "iqn.2026-11.test.iscsi-ha:r0";

fn spec(t: &Tgtd, file: &str) -> ServeSpec {
    ServeSpec {
        tid: 1,
        name: IQN.into(),
        luns: vec![ServeLun {
            lun: 1,
            backing: LunBacking::new(t.backing_file(file, SIZE))
                .bstype(BsType::Rdwr)
                .bsoflags(BsOFlags::Direct),
            identity: common::r0_identity(),
            cache: CacheMode::WriteThrough,
        }],
        accounts: Vec::new(),
        acls: vec![
            Acl::address("127.0.0.1").unwrap(),
            Acl::name("iqn.2026-11.test:client").unwrap(),
        ],
    }
}

fn inq(t: &Tgtd, args: &[&str]) -> String {
    let url = t.url(IQN, 1);
    let mut a: Vec<&str> = vec!["-i", "iqn.2026-11.test:client"];
    a.extend_from_slice(args);
    a.push(&url);
    let (ok, out) = run("iscsi-inq", &a);
    assert!(ok, "iscsi-inq {args:?} failed: {out}");
    out
}

#[tokio::test]
async fn serve_then_initiator_sees_identity_and_size() {
    if !prereqs(
        "serve_then_initiator_sees_identity_and_size",
        &["tgtd", "iscsi-inq", "iscsi-readcapacity16"],
    ) {
        return;
    }
    let t = Tgtd::start().await;
    let s = spec(&t, "r0.img");
    assert_eq!(t.client.serve(&s).await.unwrap(), ServeOutcome::Created);
    assert_eq!(t.client.served(&s).await.unwrap(), Served::Serving);

    let std_page = inq(&t, &[]);
    assert!(std_page.contains("Vendor:ISCSIHA \n"), "{std_page}");
    assert!(
        std_page.contains("Product:R0-VOLUME       \n"),
        "{std_page}"
    );
    assert!(std_page.contains("Revision:0042\n"), "{std_page}");
    let serial = inq(&t, &["-e", "1", "-c", "128"]);
    assert!(
        serial.contains(&format!("Unit Serial Number:[{:>36}]", "HA0R0SN0001")),
        "{serial}"
    );
    let ids = inq(&t, &["-e", "1", "-c", "131"]);
    assert!(
        ids.contains(
            "Designator Type:(1) T10_VENDORT_ID\nDesignator:[60014052e3c1a9b8d7f6e5d4c3b2a190]"
        ),
        "{ids}"
    );

    let url = t.url(IQN, 1);
    let (ok, cap) = run(
        "iscsi-readcapacity16",
        &["-i", "iqn.2026-11.test:client", &url],
    );
    assert!(ok, "{cap}");
    assert!(cap.contains(&format!("Total size:{SIZE}")), "{cap}");

    // idempotent: the identical target is accepted, a different one reported
    assert_eq!(
        t.client.serve(&s).await.unwrap(),
        ServeOutcome::AlreadyServing
    );
    let mut other = s.clone();
    other.luns[0].identity.scsi_sn = "OTHER".into();
    match t.client.serve(&other).await {
        Err(TgtError::TargetConflict {
            tid: 1,
            differences,
        }) => {
            assert!(
                differences.iter().any(|d| d.contains("scsi_sn")),
                "{differences:?}"
            )
        }
        r => panic!("expected TargetConflict, got {r:?}"),
    }
    // the same IQN at another tid is someone else's: refused, named, untouched
    let mut moved = s.clone();
    moved.tid = 2;
    match t.client.serve(&moved).await {
        Err(
            e @ TgtError::TargetForeign {
                tid: 1,
                want_tid: 2,
                ..
            },
        ) => {
            assert!(
                e.to_string().starts_with(&format!("tid 1 holds {IQN}")),
                "{e}"
            )
        }
        r => panic!("expected TargetForeign, got {r:?}"),
    }
    assert!(matches!(
        t.client.served(&moved).await,
        Ok(Served::Foreign { tid: 1, .. })
    ));
    // an initiator not in the ACL (name or address) cannot log in: 127.0.0.1 is, so only check via show
    let target = t.client.target(1).await.unwrap().unwrap();
    assert_eq!(target.acls, vec!["127.0.0.1", "iqn.2026-11.test:client"]);
}

#[tokio::test]
async fn same_identity_on_two_tgtds() {
    if !prereqs("same_identity_on_two_tgtds", &["tgtd", "iscsi-inq"]) {
        return;
    }
    let a = Tgtd::start().await;
    let b = Tgtd::start().await;
    assert_eq!(
        a.client.serve(&spec(&a, "a.img")).await.unwrap(),
        ServeOutcome::Created
    );
    assert_eq!(
        b.client.serve(&spec(&b, "b.img")).await.unwrap(),
        ServeOutcome::Created
    );
    for page in [
        &[][..],
        &["-e", "1", "-c", "128"][..],
        &["-e", "1", "-c", "131"][..],
    ] {
        let (pa, pb) = (inq(&a, page), inq(&b, page));
        assert_eq!(
            pa, pb,
            "page {page:?} differs between the two tgtd instances"
        );
    }
}

#[tokio::test]
async fn stop_serving_drops_logged_in_initiator() {
    if !prereqs(
        "stop_serving_drops_logged_in_initiator",
        &["tgtd", "iscsi-perf"],
    ) {
        return;
    }
    let t = Tgtd::start().await;
    let s = spec(&t, "r0.img");
    t.client.serve(&s).await.unwrap();
    let mut perf = Command::new(which("iscsi-perf").unwrap())
        // No reconnects, and a 5 s command timeout: one CI run saw iscsi-perf still running 15 s
        // after stop_serving (a read left unanswered rather than its connection reset), so a
        // command that never completes must count as a failed one too.
        .args([
            "-x",
            "0",
            "-t",
            "5",
            "-i",
            "iqn.2026-11.test:client",
            &t.url(IQN, 1),
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    let nexus = loop {
        let n = t.client.sessions(1).await.unwrap();
        if let Some(n) = n.into_iter().next() {
            break n;
        }
        assert!(Instant::now() < deadline, "iscsi-perf never logged in");
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert_eq!(nexus.initiator, "iqn.2026-11.test:client");
    assert_eq!(nexus.connections[0].address, "127.0.0.1");
    let conns = t.client.show_connections(1).await.unwrap();
    assert_eq!(conns.len(), 1);
    assert_eq!(conns[0].sid, nexus.sid);
    // offline alone does not stop the session
    t.client
        .set_target_state(1, SetState::Offline)
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(
        perf.try_wait().unwrap().is_none(),
        "offline must not stop an established session"
    );
    assert_eq!(t.client.sessions(1).await.unwrap().len(), 1);

    match t.client.stop_serving(1, IQN).await.unwrap() {
        StopOutcome::Stopped {
            acls_unbound,
            connections_closed,
            ..
        } => {
            assert_eq!(acls_unbound, 2);
            assert!(connections_closed >= 1);
        }
        o => panic!("{o:?}"),
    }
    let deadline = Instant::now() + Duration::from_secs(15);
    let status = loop {
        if let Some(st) = perf.try_wait().unwrap() {
            break Some(st);
        }
        if Instant::now() > deadline {
            let _ = perf.kill();
            // Dropped is what tgtd did: iscsi-perf sometimes misses its closed socket (seen in
            // about 1 run in 10 on a loaded host), but no connection to the portal may be left.
            let left = established_to(t.port);
            assert!(
                left.is_empty(),
                "initiator still running 15 s after stop_serving, connected: {left:?}"
            );
            eprintln!("iscsi-perf still running 15 s after stop_serving; its connection is gone");
            break None;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    if let Some(status) = status {
        assert!(!status.success(), "the initiator's next command must fail");
    }
    assert!(!t.client.has_target(1).await.unwrap());
    assert_eq!(t.client.served(&s).await.unwrap(), Served::Missing);
    assert_eq!(
        t.client.stop_serving(1, IQN).await.unwrap(),
        StopOutcome::NotServing
    );
}

/// tgt's own service hands out tids from 1 to whatever `/etc/tgt` names: such a target at our tid
/// is reported, never unbound, closed or deleted (stop_serving used to delete whatever the tid held).
#[tokio::test]
async fn foreign_target_at_our_tid_is_never_touched() {
    if !prereqs("foreign_target_at_our_tid_is_never_touched", &["tgtd"]) {
        return;
    }
    let t = Tgtd::start().await;
    let foreign = "iqn.2026-11.test.tgt-admin:legacy";
    t.client.new_target(1, foreign).await.unwrap();
    t.client.bind_acl(1, &Acl::all()).await.unwrap();
    let before = t.client.target(1).await.unwrap().unwrap();
    let s = spec(&t, "r0.img");
    assert_eq!(
        t.client.served(&s).await.unwrap(),
        Served::Foreign {
            tid: 1,
            name: foreign.into()
        }
    );
    for e in [
        t.client.stop_serving(1, IQN).await.unwrap_err(),
        t.client.serve(&s).await.unwrap_err(),
    ] {
        assert!(matches!(e, TgtError::TargetForeign { tid: 1, .. }), "{e:?}");
        assert!(
            e.to_string().starts_with(&format!("tid 1 holds {foreign}")),
            "{e}"
        );
    }
    assert_eq!(t.client.target(1).await.unwrap().unwrap(), before);
}

#[tokio::test]
async fn typed_errors_from_tgtd() {
    if !prereqs("typed_errors_from_tgtd", &["tgtd"]) {
        return;
    }
    let mut t = Tgtd::start().await;
    let c = t.client.clone();
    c.new_target(1, IQN).await.unwrap();
    let e = c.new_target(1, "iqn.2026-11.test:other").await.unwrap_err();
    assert_eq!(e.errno(), Some(TgtErrno::TargetExist), "duplicate tid: {e}");
    assert_eq!(
        e.to_string(),
        "tgtd: this target already exists (TGTADM_TARGET_EXIST = 9)"
    );
    let e = c.new_target(2, IQN).await.unwrap_err();
    assert_eq!(
        e.errno(),
        Some(TgtErrno::TargetExist),
        "duplicate name: {e}"
    );
    let missing = t.path().join("does-not-exist.img");
    let e = c
        .new_lun(1, 1, &LunBacking::new(&missing))
        .await
        .unwrap_err();
    assert_eq!(
        e.errno(),
        Some(TgtErrno::InvalidRequest),
        "missing backing file: {e}"
    );
    let e = c.set_target_state(42, SetState::Ready).await.unwrap_err();
    assert_eq!(e.errno(), Some(TgtErrno::NoTarget), "unknown target: {e}");
    let e = c.delete_target(42, true).await.unwrap_err();
    assert_eq!(e.errno(), Some(TgtErrno::NoTarget));
    let e = c.delete_connection(1, 77, 0).await.unwrap_err();
    assert_eq!(e.errno(), Some(TgtErrno::NoSession));
    c.bind_acl(1, &Acl::all()).await.unwrap();
    let e = c.bind_acl(1, &Acl::all()).await.unwrap_err();
    assert_eq!(e.errno(), Some(TgtErrno::AclExist));
    let e = c
        .unbind_acl(1, &Acl::name("iqn.x:nobody").unwrap())
        .await
        .unwrap_err();
    assert_eq!(e.errno(), Some(TgtErrno::AclNoExist));
    let e = c.shutdown().await.unwrap_err();
    assert_eq!(
        e.errno(),
        Some(TgtErrno::InvalidRequest),
        "system delete with targets"
    );
    let e = c.stop_serving(-3, IQN).await.unwrap_err();
    assert!(matches!(e, TgtError::InvalidRequest { .. }));
    assert!(t.alive());
    c.delete_target(1, false).await.unwrap();
    // the only clean stop: no targets, then system delete
    c.shutdown().await.unwrap();
    let deadline = Instant::now() + Duration::from_secs(5);
    while t.alive() {
        assert!(
            Instant::now() < deadline,
            "tgtd did not exit after system delete"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let e = t.client.show_system().await.unwrap_err();
    assert!(matches!(e, TgtError::Connect { .. }), "{e}");
}

#[tokio::test]
async fn restarted_tgtd_is_detected_empty() {
    if !prereqs("restarted_tgtd_is_detected_empty", &["tgtd"]) {
        return;
    }
    let t = Tgtd::start().await;
    let s = spec(&t, "r0.img");
    t.client.serve(&s).await.unwrap();
    let path = t.client.path().to_path_buf();
    let dir = t.kill();
    // the dead tgtd's socket file is left: ECONNREFUSED, at once without a retry ...
    let e = tgt_ipc::TgtClient::at_path(&path)
        .show_system()
        .await
        .unwrap_err();
    assert!(matches!(e, TgtError::Connect { .. }), "{e:?}");
    // ... and ridden out with one while tgtd starts
    let retrying = tgt_ipc::TgtClient::at_path(&path).connect_retry_for(Duration::from_secs(30));
    let waiting = tokio::spawn(async move { retrying.show_system().await });
    let t = Tgtd::start_in(dir).await;
    waiting
        .await
        .unwrap()
        .expect("connected once the new tgtd listened");
    assert_eq!(t.client.served(&s).await.unwrap(), Served::Missing);
    assert!(matches!(
        t.client.check_served(&s).await,
        Err(TgtError::TargetMissing { tid: 1, .. })
    ));
    assert_eq!(t.client.serve(&s).await.unwrap(), ServeOutcome::Created);
    assert_eq!(t.client.check_served(&s).await.unwrap(), Served::Serving);
}

#[tokio::test]
async fn staged_target_opens_nothing_and_serves_like_a_created_one() {
    if !prereqs(
        "staged_target_opens_nothing_and_serves_like_a_created_one",
        &["tgtd", "iscsi-inq", "iscsi-readcapacity16"],
    ) {
        return;
    }
    let t = Tgtd::start().await;
    let s = spec(&t, "r0.img");
    // staged over a path that does not exist yet: nothing is opened
    let backing = s.luns[0].backing.path.clone();
    std::fs::remove_file(&backing).unwrap();
    t.client.stage(&s).await.unwrap();
    assert_eq!(t.client.served(&s).await.unwrap(), Served::Staged);
    t.client
        .stage(&s)
        .await
        .expect("an identical staged target is accepted");
    let staged = t.client.target(1).await.unwrap().unwrap();
    assert!(staged.acls.is_empty(), "{staged:?}");
    let lu = staged.lun(1).unwrap();
    assert_eq!(lu.backing_store_path, None);
    assert_eq!(lu.backing_store_flags, "sync:direct");
    assert_eq!(lu.scsi_sn, "HA0R0SN0001");
    // nobody can log in to a staged target
    let url = t.url(IQN, 1);
    let (ok, out) = run("iscsi-inq", &["-i", "iqn.2026-11.test:client", &url]);
    assert!(!ok, "logged in to a staged target: {out}");

    // the spec served at another tid, the ordinary way, is the reference
    std::fs::File::create(&backing)
        .unwrap()
        .set_len(SIZE)
        .unwrap();
    let mut plain = s.clone();
    plain.tid = 2;
    plain.name = format!("{IQN}-plain");
    assert_eq!(t.client.serve(&plain).await.unwrap(), ServeOutcome::Created);
    // serve completes the staged target
    assert_eq!(t.client.serve(&s).await.unwrap(), ServeOutcome::Created);
    assert_eq!(t.client.served(&s).await.unwrap(), Served::Serving);
    let (a, b) = (
        t.client.target(1).await.unwrap().unwrap(),
        t.client.target(2).await.unwrap().unwrap(),
    );
    assert_eq!(a.lun(1), b.lun(1));
    assert_eq!(a.acls, b.acls);
    let (ok, cap) = run(
        "iscsi-readcapacity16",
        &["-i", "iqn.2026-11.test:client", &url],
    );
    assert!(ok && cap.contains(&format!("Total size:{SIZE}")), "{cap}");
    let plain_url = t.url(&plain.name, 1);
    for page in [
        &[][..],
        &["-e", "1", "-c", "128"][..],
        &["-e", "1", "-c", "176"][..],
    ] {
        let mut args = vec!["-i", "iqn.2026-11.test:client"];
        args.extend_from_slice(page);
        let ask = |u: &str| {
            let mut a = args.clone();
            a.push(u);
            run("iscsi-inq", &a)
        };
        assert_eq!(ask(&url), ask(&plain_url), "INQUIRY {page:?}");
    }

    // serve_staged on what is not staged: tgtd's error, nothing deleted
    let mut other = s.clone();
    other.tid = 3;
    other.name = format!("{IQN}-none");
    assert_eq!(
        t.client.serve_staged(&other).await.unwrap_err().errno(),
        Some(TgtErrno::NoTarget)
    );
    assert!(
        matches!(
            t.client.serve_staged(&s).await.unwrap_err().errno(),
            Some(TgtErrno::InvalidRequest)
        ),
        "an attached LU is not attached again"
    );
    assert_eq!(
        t.client.served(&s).await.unwrap(),
        Served::Serving,
        "a completion refused at its first LU changes nothing"
    );
}

#[tokio::test]
async fn failed_serve_leaves_nothing_behind() {
    if !prereqs("failed_serve_leaves_nothing_behind", &["tgtd"]) {
        return;
    }
    let t = Tgtd::start().await;
    let mut s = spec(&t, "r0.img");
    s.luns[0].backing = LunBacking::new(t.path().join("missing.img"));
    let e = t.client.serve(&s).await.unwrap_err();
    assert_eq!(e.errno(), Some(TgtErrno::InvalidRequest));
    assert!(t.client.show_targets().await.unwrap().is_empty());
}

#[tokio::test]
async fn accounts_portals_params_system() {
    if !prereqs("accounts_portals_params_system", &["tgtd"]) {
        return;
    }
    let mut t = Tgtd::start().await;
    let c = t.client.clone();
    c.new_target(1, IQN).await.unwrap();
    c.new_account("alice", "secretpass12").await.unwrap();
    c.new_account("bob", "secretpass34").await.unwrap();
    c.new_account("mutual", "secretpass56").await.unwrap();
    assert_eq!(
        c.show_accounts().await.unwrap(),
        vec!["mutual", "bob", "alice"]
    );
    let e = c.new_account("alice", "x23456789012").await.unwrap_err();
    assert_eq!(e.errno(), Some(TgtErrno::UserExist));
    let tg = AccountScope::Target(1);
    c.bind_account(tg, "alice", AccountDirection::Incoming)
        .await
        .unwrap();
    c.bind_account(tg, "bob", AccountDirection::Incoming)
        .await
        .unwrap();
    c.bind_account(tg, "mutual", AccountDirection::Outgoing)
        .await
        .unwrap();
    let e = c
        .bind_account(tg, "alice", AccountDirection::Outgoing)
        .await
        .unwrap_err();
    assert_eq!(e.errno(), Some(TgtErrno::OutAccountExist));
    let target = c.target(1).await.unwrap().unwrap();
    let accts: Vec<(&str, bool)> = target
        .accounts
        .iter()
        .map(|a| (a.user.as_str(), a.outgoing))
        .collect();
    assert_eq!(
        accts,
        vec![("alice", false), ("bob", false), ("mutual", true)]
    );
    // unbinding alice (not the last incoming slot) would crash tgtd 1.0.85 on the next show: refused
    let e = c
        .unbind_account(tg, "alice", AccountDirection::Incoming)
        .await
        .unwrap_err();
    assert!(
        matches!(e, TgtError::InvalidRequest { what: "user", .. }),
        "{e}"
    );
    let e = c.delete_account("alice").await.unwrap_err();
    assert!(
        matches!(e, TgtError::InvalidRequest { what: "user", .. }),
        "{e}"
    );
    c.unbind_account(tg, "bob", AccountDirection::Incoming)
        .await
        .unwrap();
    c.unbind_account(tg, "alice", AccountDirection::Incoming)
        .await
        .unwrap();
    c.unbind_account(tg, "mutual", AccountDirection::Outgoing)
        .await
        .unwrap();
    assert!(c.target(1).await.unwrap().unwrap().accounts.is_empty());
    // global (discovery) account shows up in system show
    c.bind_account(AccountScope::Global, "alice", AccountDirection::Incoming)
        .await
        .unwrap();
    assert_eq!(c.show_system().await.unwrap().accounts, vec!["alice"]);
    c.unbind_account(AccountScope::Global, "alice", AccountDirection::Incoming)
        .await
        .unwrap();
    c.delete_account("alice").await.unwrap();
    let e = c.delete_account("alice").await.unwrap_err();
    assert_eq!(e.errno(), Some(TgtErrno::NoUser));

    let extra: std::net::SocketAddr = format!("127.0.0.1:{}", common::free_port())
        .parse()
        .unwrap();
    c.new_portal(extra).await.unwrap();
    let portals = c.show_portals().await.unwrap();
    assert!(portals
        .iter()
        .any(|p| p.port == extra.port() && p.address == "127.0.0.1" && p.tpgt == 1));
    assert!(portals.iter().any(|p| p.port == t.port));
    c.delete_portal(extra).await.unwrap();
    let e = c.delete_portal(extra).await.unwrap_err();
    assert_eq!(e.errno(), Some(TgtErrno::InvalidRequest));

    c.set_target_param(1, TargetParam::MaxQueueCmd(64))
        .await
        .unwrap();
    c.set_target_param(1, TargetParam::NopInterval(5))
        .await
        .unwrap();
    let params = c.show_target_params(1).await.unwrap();
    assert!(
        params.contains(&("MaxQueueCmd".into(), "64".into())),
        "{params:?}"
    );
    assert!(
        params.contains(&("nop_interval".into(), "5".into())),
        "{params:?}"
    );
    assert_eq!(c.target(1).await.unwrap().unwrap().nop_interval, Some(5));

    let sys = c.show_system().await.unwrap();
    assert_eq!(sys.state, "ready");
    assert!(sys.llds.contains(&("iscsi".into(), "ready".into())));
    assert!(sys.backing_stores.iter().any(|b| b == "rdwr"));
    c.set_system_state(SetState::Offline).await.unwrap();
    assert_eq!(c.show_system().await.unwrap().state, "offline");
    c.set_system_state(SetState::Ready).await.unwrap();
    assert!(t.alive());
}

/// ESTABLISHED TCP sockets (`/proc/net/tcp`, `/proc/net/tcp6`: state `01`) with `port` at
/// either end, as their `local -> remote` hex fields.
fn established_to(port: u16) -> Vec<String> {
    let hex = format!(":{port:04X}");
    ["/proc/net/tcp", "/proc/net/tcp6"]
        .iter()
        .filter_map(|f| std::fs::read_to_string(f).ok())
        .flat_map(|text| {
            text.lines()
                .skip(1)
                .filter_map(|l| {
                    let f: Vec<&str> = l.split_whitespace().collect();
                    let (local, remote, state) = (f.get(1)?, f.get(2)?, f.get(3)?);
                    (*state == "01" && (local.ends_with(&hex) || remote.ends_with(&hex)))
                        .then(|| format!("{local} -> {remote}"))
                })
                .collect::<Vec<_>>()
        })
        .collect()
}
