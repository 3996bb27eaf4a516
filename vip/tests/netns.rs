//! Root tests on the host kernel: three namespaces (A, B, C) on a bridge, built and removed by
//! `lab::Lab`. A and B run the code under test; C only listens (it sends nothing, its
//! neighbour table is read through rtnetlink). Without root or namespaces: SKIP, or FAIL under
//! `CI=true`.

mod lab;

use std::net::IpAddr;
use std::time::{Duration, Instant};

use futures::{StreamExt, TryStreamExt};
use lab::{in_ns, lab, wait_neighbour};
use rtnetlink::packet_route::neighbour::NeighbourState;
use rtnetlink::{AddressMessageBuilder, LinkUnspec};
use vip::{AnnouncePolicy, ClaimOptions, FrameKind, MacAddr, ProbePolicy, Vip, VipError, VipEvent};

fn addr(s: &str) -> IpAddr {
    s.parse().expect("literal address")
}

fn quiet() -> AnnouncePolicy {
    // One announcement: tests check what the first one (sent inside claim) achieves.
    let mut p = AnnouncePolicy::default();
    p.count = 1;
    p.second_burst_after = None;
    p
}

/// Claims `vip/prefix` on eth0 of `ns`; returns Ok(ClaimReport fields) or the error.
fn claim_in(
    ns: &str,
    vip: IpAddr,
    prefix: u8,
    opts: ClaimOptions,
) -> Result<(bool, Option<Duration>, MacAddr), VipError> {
    let name = ns.to_string();
    in_ns(ns, move || async move {
        let ns = name;
        let mut v = Vip::new("eth0", vip, prefix)?;
        let mut r = v.claim(&opts).await?;
        let first = r
            .announcements
            .try_next()
            .expect("first announcement result");
        assert!(
            first.result.is_ok(),
            "first announcement: {:?}",
            first.result
        );
        eprintln!(
            "claim {vip} in {ns}: held={} check={:?} probe={:?} add={:?} first_announce={:?} total={:?}",
            r.already_held, r.check, r.probe, r.add, r.first_announce, r.total
        );
        Ok((r.already_held, r.probe, r.mac))
    })
}

fn release_in(ns: &str, vip: IpAddr, prefix: u8) -> bool {
    in_ns(ns, move || async move {
        let mut v = Vip::new("eth0", vip, prefix).expect("handle");
        v.release().await.expect("release").removed
    })
}

fn assert_learned(c: &lab::Node, vip: IpAddr, mac: MacAddr, who: &str) {
    let (entry, took) = wait_neighbour(c, vip, mac);
    let (seen, state) = entry.unwrap_or_else(|| panic!("C has no neighbour entry for {vip}"));
    assert_eq!(seen, mac, "C maps {vip} to {seen}, expected {who}'s {mac}");
    // STALE/REACHABLE: learned from our frame; C never resolved it itself (no INCOMPLETE/PROBE).
    assert!(
        matches!(state, NeighbourState::Stale | NeighbourState::Reachable),
        "state {state:?}"
    );
    eprintln!("C learned {vip} -> {who} {mac} ({state:?}) after {took:?}");
}

fn move_between_nodes(vip: IpAddr, prefix: u8, test: &str) {
    let Some(lab) = lab(test) else { return };
    lab.c_learns_unsolicited();
    let opts = ClaimOptions::without_probe().announce(quiet());
    let (held, _, mac) = claim_in(&lab.a.ns, vip, prefix, opts.clone()).expect("claim in A");
    assert!(!held);
    assert_eq!(mac, lab.a.mac);
    assert_learned(&lab.c, vip, lab.a.mac, "A");

    assert!(release_in(&lab.a.ns, vip, prefix));
    let (_, _, mac) = claim_in(&lab.b.ns, vip, prefix, opts).expect("claim in B");
    assert_eq!(mac, lab.b.mac);
    assert_learned(&lab.c, vip, lab.b.mac, "B");
}

#[test]
fn ipv4_claim_then_move_updates_c_by_gratuitous_arp() {
    move_between_nodes(addr("10.77.0.100"), 24, "ipv4_claim_then_move");
}

#[test]
fn ipv6_claim_then_move_updates_c_by_unsolicited_na() {
    move_between_nodes(addr("fd77::100"), 64, "ipv6_claim_then_move");
}

#[test]
fn ipv4_reply_mode_moves_c_too() {
    let Some(lab) = lab("ipv4_reply_mode") else {
        return;
    };
    lab.c_learns_unsolicited();
    let vip = addr("10.77.0.101");
    let mut p = quiet();
    p.mode = vip::AnnounceMode::Reply;
    let opts = ClaimOptions::without_probe().announce(p);
    claim_in(&lab.a.ns, vip, 24, opts.clone()).expect("claim in A");
    assert_learned(&lab.c, vip, lab.a.mac, "A");
    release_in(&lab.a.ns, vip, 24);
    claim_in(&lab.b.ns, vip, 24, opts).expect("claim in B");
    assert_learned(&lab.c, vip, lab.b.mac, "B");
}

fn probe_conflict_and_free(vip: IpAddr, prefix: u8, test: &str) {
    let Some(lab) = lab(test) else { return };
    let probe = ClaimOptions::default()
        .probe(Some(ProbePolicy::default()))
        .announce(quiet());
    // A holds the address (its kernel answers probes for it).
    claim_in(
        &lab.a.ns,
        vip,
        prefix,
        ClaimOptions::without_probe().announce(quiet()),
    )
    .expect("claim in A");
    match claim_in(&lab.b.ns, vip, prefix, probe.clone()) {
        Err(VipError::Conflict { addr, mac }) => {
            assert_eq!(addr, vip);
            assert_eq!(mac, lab.a.mac, "conflict must name A's MAC");
        }
        other => panic!("expected a conflict, got {other:?}"),
    }
    // The failed claim left nothing behind in B.
    let held = in_ns(&lab.b.ns, move || async move {
        Vip::new("eth0", vip, prefix)
            .expect("handle")
            .is_held()
            .await
            .expect("is_held")
    });
    assert!(!held);

    assert!(release_in(&lab.a.ns, vip, prefix));
    let (held, probe_time, _) = claim_in(&lab.b.ns, vip, prefix, probe).expect("free address");
    assert!(!held);
    let t = probe_time.expect("probe ran");
    assert!(t >= ProbePolicy::default().window, "probe window {t:?}");
}

#[test]
fn ipv4_probe_reports_conflict_then_free() {
    probe_conflict_and_free(addr("10.77.0.102"), 24, "ipv4_probe");
}

#[test]
fn ipv6_probe_reports_conflict_then_free() {
    probe_conflict_and_free(addr("fd77::102"), 64, "ipv6_probe");
}

/// Probe-only (`Vip::probe`, like `arping -D`) from B: a conflict naming A's MAC while A holds
/// the address, nothing once A released it; B never gains the address either way.
fn probe_only_conflict_and_free(vip: IpAddr, prefix: u8, test: &str) {
    let Some(lab) = lab(test) else { return };
    let probe_b = |ns: &str| {
        in_ns(ns, move || async move {
            let mut v = Vip::new("eth0", vip, prefix).expect("handle");
            let r = v.probe(&ProbePolicy::default()).await.expect("probe");
            let held = v.is_held().await.expect("is_held");
            eprintln!("probe {vip}: conflict={:?} total={:?}", r.conflict, r.total);
            (r, held)
        })
    };
    claim_in(
        &lab.a.ns,
        vip,
        prefix,
        ClaimOptions::without_probe().announce(quiet()),
    )
    .expect("claim in A");
    let (r, held) = probe_b(&lab.b.ns);
    assert_eq!(r.conflict, Some(lab.a.mac), "conflict must name A's MAC");
    assert_eq!(r.mac, lab.b.mac);
    assert!(!held, "a probe must not add the address");

    assert!(release_in(&lab.a.ns, vip, prefix));
    let (r, held) = probe_b(&lab.b.ns);
    assert_eq!(r.conflict, None);
    assert!(
        r.total >= ProbePolicy::default().window,
        "silence means the whole window: {:?}",
        r.total
    );
    assert!(!held, "a probe must not add the address");
}

#[test]
fn ipv4_probe_only_reports_conflict_then_free() {
    probe_only_conflict_and_free(addr("10.77.0.104"), 24, "ipv4_probe_only");
}

#[test]
fn ipv6_probe_only_reports_conflict_then_free() {
    probe_only_conflict_and_free(addr("fd77::104"), 64, "ipv6_probe_only");
}

#[test]
fn probe_sees_a_host_that_only_probes() {
    // A and B probe the same address at once: RFC 5227 probes (sender IP 0.0.0.0) from the
    // other host are a conflict too.
    let Some(lab) = lab("probe_sees_probe") else {
        return;
    };
    let vip = addr("10.77.0.103");
    let mut long = ProbePolicy::default();
    long.window = Duration::from_millis(600);
    long.count = 6;
    let opts = ClaimOptions::default().probe(Some(long)).announce(quiet());
    let (a_ns, b_ns) = (lab.a.ns.clone(), lab.b.ns.clone());
    let o2 = opts.clone();
    let ta = std::thread::spawn(move || claim_in(&a_ns, vip, 24, o2));
    let rb = claim_in(&b_ns, vip, 24, opts);
    let ra = ta.join().expect("thread");
    // Whoever sees the other's probe first backs off (RFC 5227 §2.1.1); the other may then
    // finish its window undisturbed. At least one conflict, each naming the other's MAC.
    let conflicts = [(&ra, lab.b.mac), (&rb, lab.a.mac)]
        .iter()
        .filter_map(|(r, other)| match r {
            Err(VipError::Conflict { mac, .. }) => {
                assert_eq!(mac, other, "conflict must name the other host");
                Some(())
            }
            Ok(_) => None,
            Err(e) => panic!("unexpected error {e}"),
        })
        .count();
    assert!(
        conflicts >= 1,
        "nobody saw the other's probe: {ra:?} {rb:?}"
    );
}

#[test]
fn watch_reports_outside_removal_and_link_changes() {
    let Some(lab) = lab("watch") else { return };
    let vip = addr("10.77.0.104");
    in_ns(&lab.a.ns, move || async move {
        let mut v = Vip::new("eth0", vip, 24).expect("handle");
        v.claim(&ClaimOptions::without_probe().announce(quiet()))
            .await
            .expect("claim");
        let mut w = v.watch().await.expect("watch");

        // Someone else removes the address, through rtnetlink.
        let (conn, h, _) = rtnetlink::new_connection().expect("netlink");
        tokio::spawn(conn);
        let link = h
            .link()
            .get()
            .match_name("eth0".to_string())
            .execute()
            .try_next()
            .await
            .expect("link")
            .expect("eth0");
        let idx = link.header.index;
        let msg = AddressMessageBuilder::<std::net::Ipv4Addr>::new()
            .index(idx)
            .address("10.77.0.104".parse().expect("literal"), 24)
            .build();
        let t = Instant::now();
        h.address()
            .del(msg)
            .execute()
            .await
            .expect("outside delete");
        let ev = tokio::time::timeout(Duration::from_secs(2), w.next())
            .await
            .expect("watch event in time");
        let took = t.elapsed();
        assert_eq!(ev, Some(VipEvent::Removed));
        eprintln!("watch: Removed reported {took:?} after the delete request was issued");
        assert!(!v.is_held().await.expect("is_held"));

        // Claim again: Added.
        v.claim(&ClaimOptions::without_probe().announce(quiet()))
            .await
            .expect("claim again");
        let ev = tokio::time::timeout(Duration::from_secs(2), w.next()).await;
        assert_eq!(ev.expect("in time"), Some(VipEvent::Added));

        // Link down: LinkDown (the kernel also drops the IPv4 address? No: it stays.)
        h.link()
            .set(LinkUnspec::new_with_index(idx).down().build())
            .execute()
            .await
            .expect("link down");
        let ev = tokio::time::timeout(Duration::from_secs(2), w.next()).await;
        assert_eq!(ev.expect("in time"), Some(VipEvent::LinkDown));
        match v.claim(&ClaimOptions::without_probe()).await {
            Err(VipError::InterfaceDown { iface }) => assert_eq!(iface, "eth0"),
            other => panic!("expected InterfaceDown, got {other:?}"),
        }
        h.link()
            .set(LinkUnspec::new_with_index(idx).up().build())
            .execute()
            .await
            .expect("link up");
        let ev = tokio::time::timeout(Duration::from_secs(2), async {
            loop {
                match w.next().await {
                    Some(VipEvent::LinkUp) | None => return,
                    Some(_) => continue,
                }
            }
        })
        .await;
        assert!(ev.is_ok(), "LinkUp in time");
    });
}

#[test]
fn claim_and_release_are_idempotent_and_reclaim_reannounces() {
    let Some(lab) = lab("idempotent") else {
        return;
    };
    lab.c_learns_unsolicited();
    let vip = addr("10.77.0.105");
    let opts = ClaimOptions::without_probe().announce(quiet());
    let (held, _, _) = claim_in(&lab.a.ns, vip, 24, opts.clone()).expect("first claim");
    assert!(!held);
    assert_learned(&lab.c, vip, lab.a.mac, "A");
    // Poison C's entry (a change made in C's table, C sends nothing), then claim again:
    // the second claim must find the address held and announce it again.
    lab.ip_in(
        &lab.c.ns,
        &[
            "neigh",
            "replace",
            "10.77.0.105",
            "lladdr",
            "02:de:ad:00:00:01",
            "nud",
            "stale",
            "dev",
            "eth0",
        ],
    );
    let (held, probe, _) = claim_in(
        &lab.a.ns,
        vip,
        24,
        ClaimOptions::default().announce(quiet()),
    )
    .expect("second claim");
    assert!(held, "second claim must see the address held");
    assert!(probe.is_none(), "a held address is not probed");
    assert_learned(&lab.c, vip, lab.a.mac, "A (re-announced)");

    assert!(release_in(&lab.a.ns, vip, 24), "first release removes");
    assert!(!release_in(&lab.a.ns, vip, 24), "second release is a no-op");
}

#[test]
fn announcement_schedule_reports_every_frame() {
    let Some(lab) = lab("schedule") else { return };
    let vip = addr("10.77.0.106");
    in_ns(&lab.a.ns, move || async move {
        let mut v = Vip::new("eth0", vip, 24).expect("handle");
        let mut p = AnnouncePolicy::default();
        p.count = 3;
        p.interval = Duration::from_millis(20);
        p.mode = vip::AnnounceMode::Both;
        p.second_burst_after = Some(Duration::from_millis(100));
        p.refresh = Some(Duration::from_millis(50));
        let mut r = v
            .claim(&ClaimOptions::without_probe().announce(p))
            .await
            .expect("claim");
        let mut got = Vec::new();
        // 3 + 3 announcements of 2 frames, then 2 refreshes of 2 frames.
        while got.len() < 16 {
            let a = tokio::time::timeout(Duration::from_secs(2), r.announcements.next())
                .await
                .expect("in time")
                .expect("schedule still running");
            assert!(a.result.is_ok(), "{a:?}");
            got.push((a.burst, a.index, a.kind, a.at));
        }
        let kinds: Vec<_> = got.iter().map(|g| g.2).take(2).collect();
        assert_eq!(kinds, [FrameKind::GarpRequest, FrameKind::GarpReply]);
        let bursts: Vec<_> = got.iter().map(|g| (g.0, g.1)).step_by(2).collect();
        assert_eq!(
            bursts,
            [
                (0, 0),
                (0, 1),
                (0, 2),
                (1, 0),
                (1, 1),
                (1, 2),
                (2, 0),
                (3, 0)
            ]
        );
        // Release stops the schedule: the stream ends.
        v.release().await.expect("release");
        let end = tokio::time::timeout(Duration::from_secs(1), async {
            while r.announcements.next().await.is_some() {}
        })
        .await;
        assert!(end.is_ok(), "schedule must stop on release");
    });
}

#[test]
fn typed_errors() {
    let Some(lab) = lab("typed_errors") else {
        return;
    };
    let vip = addr("10.77.0.107");
    lab.ip_in(&lab.a.ns, &["addr", "add", "10.77.0.107/32", "dev", "lo"]);
    in_ns(&lab.a.ns, move || async move {
        let opts = ClaimOptions::without_probe();
        let mut v = Vip::new("nosuch0", vip, 24).expect("handle");
        assert!(matches!(
            v.claim(&opts).await,
            Err(VipError::UnknownInterface { .. })
        ));
        assert!(!v.release().await.expect("release of unknown iface").removed);
        let mut v = Vip::new("eth0", vip, 24).expect("handle");
        match v.claim(&opts).await {
            Err(VipError::AddressOnOtherInterface { iface, .. }) => assert_eq!(iface, "lo"),
            other => panic!("expected AddressOnOtherInterface, got {other:?}"),
        }
        assert_eq!(
            v.held_on_other_interface().await.expect("dump").as_deref(),
            Some("lo")
        );
        assert!(!v.is_held().await.expect("dump"));
        let on_lo = Vip::new("lo", vip, 32).expect("handle");
        assert_eq!(on_lo.held_on_other_interface().await.expect("dump"), None);
        let missing = Vip::new("nosuch0", vip, 24).expect("handle");
        assert_eq!(
            missing
                .held_on_other_interface()
                .await
                .expect("dump")
                .as_deref(),
            Some("lo")
        );
        assert!(matches!(
            Vip::new("eth0", vip, 33),
            Err(VipError::InvalidAddress { .. })
        ));
        let mut lo = Vip::new("lo", addr("10.77.0.108"), 32).expect("handle");
        assert!(matches!(
            lo.claim(&opts).await,
            Err(VipError::NotEthernet { .. })
        ));
    });
}

/// Drops every capability of the calling thread only (`capset(2)` acts per thread).
fn drop_thread_capabilities() {
    #[repr(C)]
    struct Header {
        version: u32,
        pid: i32,
    }
    #[repr(C)]
    #[derive(Clone, Copy)]
    struct Data {
        effective: u32,
        permitted: u32,
        inheritable: u32,
    }
    let hdr = Header {
        version: 0x2008_0522, // _LINUX_CAPABILITY_VERSION_3
        pid: 0,
    };
    let data = [Data {
        effective: 0,
        permitted: 0,
        inheritable: 0,
    }; 2];
    // SAFETY: header and two data structs laid out as <linux/capability.h> v3 expects.
    let r = unsafe { libc::syscall(libc::SYS_capset, &hdr, data.as_ptr()) };
    assert_eq!(r, 0, "capset: {}", std::io::Error::last_os_error());
}

#[test]
fn without_capabilities_errors_are_permission_denied() {
    let Some(lab) = lab("permission_denied") else {
        return;
    };
    let vip = addr("10.77.0.109");
    lab.ip_in(&lab.a.ns, &["addr", "add", "10.77.0.109/24", "dev", "eth0"]);
    in_ns(&lab.a.ns, move || async move {
        drop_thread_capabilities();
        let mut v = Vip::new("eth0", vip, 24).expect("a netlink socket needs no privilege");
        match v.claim(&ClaimOptions::without_probe()).await {
            Err(VipError::PermissionDenied { .. }) => {}
            other => panic!("claim: expected PermissionDenied, got {other:?}"),
        }
        match v.release().await {
            Err(VipError::PermissionDenied { op }) => assert_eq!(op, "ip addr del"),
            other => panic!("release: expected PermissionDenied, got {other:?}"),
        }
        let mut v = Vip::new("eth0", addr("10.77.0.110"), 24).expect("handle");
        match v.claim(&ClaimOptions::without_probe()).await {
            Err(VipError::PermissionDenied { .. }) => {}
            other => panic!("claim of a new address: expected PermissionDenied, got {other:?}"),
        }
    });
}

/// One probe for a whole promote (`Vip::start_probe` then `Vip::claim_probed`): the probe's
/// socket keeps listening after its window, so a host that starts answering for the address
/// between the window and the claim (here A claims it then) still refuses B's claim; with the
/// address free, the claim does not probe a second time.
fn probe_session_covers_the_gap(vip: IpAddr, prefix: u8, test: &str) {
    let Some(lab) = lab(test) else { return };
    let window = ProbePolicy::default().window;
    let b_ns = lab.b.ns.clone();
    let b = std::thread::spawn(move || {
        in_ns(&b_ns, move || async move {
            let mut v = Vip::new("eth0", vip, prefix).expect("handle");
            let session = v.start_probe(&ProbePolicy::default()).await.expect("start");
            // The window ends, then A claims (below) before B gets to its claim.
            tokio::time::sleep(window * 3).await;
            let r = v
                .claim_probed(session, &ClaimOptions::default().announce(quiet()))
                .await;
            let held = v.is_held().await.expect("is_held");
            (r.map(|r| r.probe).map_err(|e| e.to_string()), held)
        })
    });
    std::thread::sleep(window + window / 2);
    claim_in(
        &lab.a.ns,
        vip,
        prefix,
        ClaimOptions::without_probe().announce(quiet()),
    )
    .expect("claim in A");
    let (r, held) = b.join().expect("b thread");
    let err = r.expect_err("B claimed an address A answered for after B's probe window");
    assert!(err.contains(&lab.a.mac.to_string()), "{err}");
    assert!(!held, "B must not hold the address");

    assert!(release_in(&lab.a.ns, vip, prefix));
    let (r, held) = in_ns(&lab.b.ns, move || async move {
        let mut v = Vip::new("eth0", vip, prefix).expect("handle");
        let session = v.start_probe(&ProbePolicy::default()).await.expect("start");
        let t = Instant::now();
        let r = v
            .claim_probed(session, &ClaimOptions::default().announce(quiet()))
            .await
            .expect("claim after a silent probe");
        eprintln!(
            "claim_probed {vip}: probe {:?}, claim {:?}",
            r.probe,
            t.elapsed()
        );
        (r.probe, v.is_held().await.expect("is_held"))
    });
    assert!(held, "B holds the address after a silent probe");
    assert!(
        r.is_some_and(|p| p >= window),
        "the claim waited for the whole window: {r:?}"
    );
    assert!(release_in(&lab.b.ns, vip, prefix));
}

#[test]
fn ipv4_probe_session_covers_the_gap_until_claim() {
    probe_session_covers_the_gap(addr("10.77.0.107"), 24, "ipv4_probe_session");
}

#[test]
fn ipv6_probe_session_covers_the_gap_until_claim() {
    probe_session_covers_the_gap(addr("fd77::107"), 64, "ipv6_probe_session");
}

/// Once `added` says A took the address, `wait`, then B's claim on `session`: whether it still
/// probed before the claim, the claim's probe time or error, and whether B holds the address.
async fn claim_after_added(
    v: &mut Vip,
    session: vip::ProbeSession,
    added: std::sync::mpsc::Receiver<()>,
    wait: Duration,
) -> (bool, Result<Option<Duration>, String>, bool) {
    tokio::task::spawn_blocking(move || added.recv().expect("A added"))
        .await
        .expect("join");
    tokio::time::sleep(wait).await;
    let probing = session.probing();
    let r = v
        .claim_probed(session, &ClaimOptions::default().announce(quiet()))
        .await;
    let held = v.is_held().await.expect("is_held");
    (probing, r.map(|r| r.probe).map_err(|e| e.to_string()), held)
}

/// A kept probe (`Vip::start_kept_probe`, as the agent starts on the peer's release notice)
/// goes on asking after its window: a host that takes the address after the window without a
/// word (`ip addr add ... nodad` sends nothing; it answers only when asked) is asked, and the
/// later claim is refused. With the address free, a claim that takes a kept probe long after
/// its window is made, and the probe stops once judged.
fn kept_probe_asks_a_silent_taker(vip: IpAddr, prefix: u8, test: &str) {
    let Some(lab) = lab(test) else { return };
    let policy = ProbePolicy::default();
    let window = policy.window;
    let keep = Duration::from_secs(3);
    let cidr = format!("{vip}/{prefix}");
    let (added_tx, added) = std::sync::mpsc::channel::<()>();
    let b_ns = lab.b.ns.clone();
    let p = policy.clone();
    let b = std::thread::spawn(move || {
        in_ns(&b_ns, move || async move {
            let mut v = Vip::new("eth0", vip, prefix).expect("handle");
            let session = v.start_kept_probe(&p, keep).await.expect("start");
            // Kept probes go out after the add (several at 40-80 ms).
            claim_after_added(&mut v, session, added, window).await
        })
    });
    std::thread::sleep(window * 2);
    lab.ip_in(&lab.a.ns, &["addr", "add", &cidr, "dev", "eth0", "nodad"]);
    added_tx.send(()).expect("B waits");
    let (probing, r, held) = b.join().expect("b thread");
    let err = r.expect_err("B claimed an address A took silently after B's window");
    assert!(err.contains(&lab.a.mac.to_string()), "{err}");
    assert!(!held, "B must not hold the address");
    assert!(probing, "the kept probe stopped before its keep");
    lab.ip_in(&lab.a.ns, &["addr", "del", &cidr, "dev", "eth0"]);

    let (probing, r, held) = in_ns(&lab.b.ns, move || async move {
        let mut v = Vip::new("eth0", vip, prefix).expect("handle");
        let mut session = v.start_kept_probe(&policy, keep).await.expect("start");
        tokio::time::sleep(window * 3).await;
        let probing = session.probing();
        let t = Instant::now();
        let free = session.conflict().await.expect("verdict");
        let judged = session.probing();
        eprintln!(
            "kept probe {vip}: verdict {free:?} {:?} after asked",
            t.elapsed()
        );
        let r = v
            .claim_probed(session, &ClaimOptions::default().announce(quiet()))
            .await
            .expect("claim after a silent kept probe");
        (
            (probing, judged),
            r.probe,
            v.is_held().await.expect("is_held"),
        )
    });
    assert_eq!(
        probing,
        (true, false),
        "(probing before, after its verdict)"
    );
    assert!(held, "B holds the address after a silent kept probe");
    assert!(r.is_some_and(|p| p >= window * 3), "{r:?}");
    assert!(release_in(&lab.b.ns, vip, prefix));
}

#[test]
fn ipv4_kept_probe_asks_a_silent_taker() {
    kept_probe_asks_a_silent_taker(addr("10.77.0.117"), 24, "ipv4_kept_probe");
}

#[test]
fn ipv6_kept_probe_asks_a_silent_taker() {
    kept_probe_asks_a_silent_taker(addr("fd77::117"), 64, "ipv6_kept_probe");
}

/// `ProbeSession::claim_near` (the agent's, when the last target in front of the address
/// starts serving) only spaces the kept probes out to a fresh probe's age: probing goes on, so
/// a host that takes the address silently after it is still asked, and a claim made later is
/// refused.
fn kept_probe_near_its_claim_still_asks(vip: IpAddr, prefix: u8, test: &str) {
    let Some(lab) = lab(test) else { return };
    let policy = ProbePolicy::default();
    let window = policy.window;
    let cidr = format!("{vip}/{prefix}");
    let (near_tx, near) = std::sync::mpsc::channel::<()>();
    let (added_tx, added) = std::sync::mpsc::channel::<()>();
    let b_ns = lab.b.ns.clone();
    let b = std::thread::spawn(move || {
        in_ns(&b_ns, move || async move {
            let mut v = Vip::new("eth0", vip, prefix).expect("handle");
            let mut session = v
                .start_kept_probe(&policy, Duration::from_secs(3))
                .await
                .expect("start");
            tokio::time::sleep(window * 2).await;
            session.claim_near();
            near_tx.send(()).expect("test waits");
            // Longer than a fresh probe's age, one spacing and the answer time.
            claim_after_added(&mut v, session, added, window * 2).await
        })
    });
    near.recv().expect("B told its claim is near");
    lab.ip_in(&lab.a.ns, &["addr", "add", &cidr, "dev", "eth0", "nodad"]);
    added_tx.send(()).expect("B waits");
    let (probing, r, held) = b.join().expect("b thread");
    assert!(
        probing,
        "a kept probe stopped probing when told its claim is near"
    );
    let err = r.expect_err("B claimed an address A took silently after B's claim was near");
    assert!(err.contains(&lab.a.mac.to_string()), "{err}");
    assert!(!held, "B must not hold the address");
    lab.ip_in(&lab.a.ns, &["addr", "del", &cidr, "dev", "eth0"]);
}

#[test]
fn ipv4_kept_probe_near_its_claim_still_asks() {
    kept_probe_near_its_claim_still_asks(addr("10.77.0.118"), 24, "ipv4_claim_near");
}

#[test]
fn ipv6_kept_probe_near_its_claim_still_asks() {
    kept_probe_near_its_claim_still_asks(addr("fd77::118"), 64, "ipv6_claim_near");
}

/// What one announcement result says: cause, burst, MAC, sent.
type Seen = (vip::AnnounceCause, u32, MacAddr, bool);

/// Claims in `ns` with `policy`, signals `claimed`, then collects every announcement result
/// until `stop` is signalled; releases.
fn hold_and_collect(
    ns: &str,
    vip: IpAddr,
    prefix: u8,
    policy: AnnouncePolicy,
    claimed: std::sync::mpsc::Sender<()>,
    stop: std::sync::mpsc::Receiver<()>,
) -> std::thread::JoinHandle<Vec<Seen>> {
    let ns = ns.to_string();
    std::thread::spawn(move || {
        in_ns(&ns, move || async move {
            let mut v = Vip::new("eth0", vip, prefix).expect("handle");
            let mut r = v
                .claim(&ClaimOptions::without_probe().announce(policy))
                .await
                .expect("claim");
            claimed.send(()).expect("test waits");
            let mut got = Vec::new();
            while stop.try_recv().is_err() {
                let next = tokio::time::timeout(Duration::from_millis(20), r.announcements.next());
                if let Ok(Some(a)) = next.await {
                    got.push((a.cause, a.burst, a.mac, a.result.is_ok()));
                }
            }
            v.release().await.expect("release");
            got
        })
    })
}

/// Issue 11 case 6: the MAC of the interface changes while the address is held (a bond's
/// active slave with `fail_over_mac`; here the veth's address, the bonding module being absent
/// on the test kernel). Before the fix the frames were built once at claim: the rest of the
/// burst still announced the old MAC and C kept it.
fn mac_change_reannounces(vip: IpAddr, prefix: u8, test: &str) {
    let Some(lab) = lab(test) else { return };
    lab.c_learns_unsolicited();
    let mut policy = AnnouncePolicy::default();
    policy.count = 5;
    policy.interval = Duration::from_millis(200);
    policy.second_burst_after = None;
    let (claimed_tx, claimed) = std::sync::mpsc::channel();
    let (stop, stop_rx) = std::sync::mpsc::channel();
    let a = hold_and_collect(&lab.a.ns, vip, prefix, policy, claimed_tx, stop_rx);
    claimed.recv().expect("claimed");
    assert_learned(&lab.c, vip, lab.a.mac, "A");
    let new = MacAddr([0x02, 0x77, 0xee, 0, 0, 1]);
    // Mid-burst: later frames of the claim's burst are due.
    std::thread::sleep(Duration::from_millis(250));
    let t = Instant::now();
    lab.ip_in(
        &lab.a.ns,
        &["link", "set", "eth0", "address", &new.to_string()],
    );
    let (entry, _) = wait_neighbour(&lab.c, vip, new);
    let took = t.elapsed();
    // Let the rest of the old schedule's slots pass.
    std::thread::sleep(Duration::from_millis(1200));
    stop.send(()).expect("collector runs");
    let got = a.join().expect("collector");
    let seen = entry.map(|(m, _)| m);
    assert_eq!(
        seen,
        Some(new),
        "C still maps {vip} to {seen:?} after the MAC change"
    );
    eprintln!("{test}: MAC change -> C's neighbour entry updated: {took:?} (from the `ip link set address` call)");
    let first_new = got
        .iter()
        .position(|g| g.0 == vip::AnnounceCause::MacChanged)
        .unwrap_or_else(|| panic!("no announcement for the MAC change: {got:?}"));
    let (before, after) = got.split_at(first_new);
    assert!(before.iter().all(|g| g.2 == lab.a.mac), "{got:?}");
    assert!(
        after.iter().all(|g| g.2 == new && g.3),
        "old MAC after the change: {got:?}"
    );
    assert!(after.len() >= 5, "a full burst on the change: {got:?}");
}

#[test]
fn ipv4_mac_change_while_held_reannounces_with_the_new_mac() {
    mac_change_reannounces(addr("10.77.0.110"), 24, "mac_change_v4");
}

#[test]
fn ipv6_mac_change_while_held_reannounces_with_the_new_mac() {
    mac_change_reannounces(addr("fd77::110"), 64, "mac_change_v6");
}

/// Issue 11 case 5, second half: a link that flaps while the address is held gets a fresh
/// burst when it comes back (carrier lost: the bridge port of A goes down), and nothing is
/// sent while it is down. Before the fix the schedule ran out and the link's return was silent.
#[test]
fn link_flap_while_held_gets_a_fresh_burst() {
    let Some(lab) = lab("link_flap") else { return };
    lab.c_learns_unsolicited();
    let vip = addr("10.77.0.111");
    let mut policy = AnnouncePolicy::default();
    policy.count = 3;
    policy.interval = Duration::from_millis(50);
    policy.second_burst_after = None;
    let (claimed_tx, claimed) = std::sync::mpsc::channel();
    let (stop, stop_rx) = std::sync::mpsc::channel();
    let a = hold_and_collect(&lab.a.ns, vip, 24, policy, claimed_tx, stop_rx);
    claimed.recv().expect("claimed");
    assert_learned(&lab.c, vip, lab.a.mac, "A");
    std::thread::sleep(Duration::from_millis(300)); // the claim's schedule is over
    lab.ip_in(&lab.br, &["link", "set", "pa", "down"]);
    std::thread::sleep(Duration::from_millis(300));
    // C forgets (a switch or neighbour that aged the entry out while the link was down).
    lab.ip_in(
        &lab.c.ns,
        &[
            "neigh",
            "replace",
            "10.77.0.111",
            "lladdr",
            "02:de:ad:00:00:02",
            "nud",
            "stale",
            "dev",
            "eth0",
        ],
    );
    let t = Instant::now();
    lab.ip_in(&lab.br, &["link", "set", "pa", "up"]);
    let (entry, _) = wait_neighbour(&lab.c, vip, lab.a.mac);
    let took = t.elapsed();
    std::thread::sleep(Duration::from_millis(300));
    stop.send(()).expect("collector runs");
    let got = a.join().expect("collector");
    assert_eq!(
        entry.map(|(m, _)| m),
        Some(lab.a.mac),
        "C not told after the link came back"
    );
    eprintln!("link_flap: link up -> C's neighbour entry updated: {took:?} (from the `ip link set up` call)");
    // The claim's burst (3, fewer if a loaded machine sent its last one late, after the link
    // went down: it then waits), then a whole new burst for the link's return.
    use vip::AnnounceCause::{Claim, LinkUp};
    let claim = got.iter().take_while(|g| g.0 == Claim).count();
    let causes: Vec<_> = got.iter().skip(claim).map(|g| (g.0, g.1)).collect();
    assert!((1..=3).contains(&claim), "{got:?}");
    assert_eq!(causes, [(LinkUp, 0), (LinkUp, 0), (LinkUp, 0)], "{got:?}");
    assert!(got.iter().all(|g| g.3), "a frame failed: {got:?}");
}

/// An Ethernet frame and its EtherType.
type Frame = (u16, Vec<u8>);

/// Sends complete Ethernet frames (built with vip's own encoders) out of `eth0` of the
/// namespace the calling thread is in, through an `AF_PACKET` socket: the "other host" of the
/// conflict tests, without `arping`.
fn send_frames(frames: &[Frame]) {
    send_frames_on(c"eth0", frames);
}

/// [`send_frames`] out of another interface of the namespace.
fn send_frames_on(iface: &std::ffi::CStr, frames: &[Frame]) {
    // SAFETY: plain syscalls on a descriptor owned here; pointers and lengths describe live
    // values.
    unsafe {
        let fd = libc::socket(libc::AF_PACKET, libc::SOCK_RAW, 0);
        assert!(
            fd >= 0,
            "packet socket: {}",
            std::io::Error::last_os_error()
        );
        let index = libc::if_nametoindex(iface.as_ptr());
        assert!(index > 0, "{iface:?}: {}", std::io::Error::last_os_error());
        for (ethertype, f) in frames {
            let mut sll: libc::sockaddr_ll = std::mem::zeroed();
            sll.sll_family = libc::AF_PACKET as u16;
            sll.sll_protocol = ethertype.to_be();
            sll.sll_ifindex = index as i32;
            sll.sll_halen = 6;
            sll.sll_addr[..6].copy_from_slice(&f[..6]);
            let n = libc::sendto(
                fd,
                f.as_ptr().cast(),
                f.len(),
                0,
                (&sll as *const libc::sockaddr_ll).cast(),
                std::mem::size_of::<libc::sockaddr_ll>() as libc::socklen_t,
            );
            assert_eq!(
                n,
                f.len() as isize,
                "send: {}",
                std::io::Error::last_os_error()
            );
        }
        libc::close(fd);
    }
}

/// An Ethernet frame from `src` to `dst` around `payload`.
fn ether(dst: MacAddr, src: MacAddr, ethertype: u16, payload: &[u8]) -> Frame {
    let mut f = Vec::new();
    vip::packet::EthernetFrame {
        dst,
        src,
        ethertype,
        payload,
    }
    .encode(&mut f);
    (ethertype, f)
}

fn arp_frame(src: MacAddr, p: vip::packet::ArpPacket) -> Frame {
    let mut payload = Vec::new();
    p.encode(&mut payload);
    ether(
        MacAddr::BROADCAST,
        src,
        vip::packet::ETHERTYPE_ARP,
        &payload,
    )
}

fn ndisc_frame(src: MacAddr, p: vip::packet::NdiscPacket) -> Frame {
    let mut payload = Vec::new();
    p.encode(&mut payload);
    let dst = MacAddr::ipv6_multicast(&p.header.dst);
    ether(dst, src, vip::packet::ETHERTYPE_IPV6, &payload)
}

/// What B sends: frames that are no conflict for `vip` (a query for it from B's own address,
/// which A's kernel answers; an RFC 5227 probe / a DAD solicitation for it; an announcement of
/// another address), then two conflicting ones from B's MAC.
fn other_host_frames(vip: IpAddr, b: MacAddr) -> (Vec<Frame>, Vec<Frame>) {
    use vip::packet::{ArpOp, ArpPacket, NdiscPacket};
    match vip {
        IpAddr::V4(ip) => {
            let query = ArpPacket {
                op: ArpOp::Request,
                sender_mac: b,
                sender_ip: "10.77.0.2".parse().expect("literal"),
                target_mac: MacAddr::ZERO,
                target_ip: ip,
            };
            let quiet = vec![
                arp_frame(b, query),
                arp_frame(b, ArpPacket::probe(b, ip)),
                arp_frame(
                    b,
                    ArpPacket::gratuitous_request(b, "10.77.0.99".parse().expect("literal")),
                ),
            ];
            let conflicting = vec![
                arp_frame(b, ArpPacket::gratuitous_reply(b, ip)),
                arp_frame(b, ArpPacket::gratuitous_request(b, ip)),
            ];
            (quiet, conflicting)
        }
        IpAddr::V6(ip) => {
            let quiet = vec![
                ndisc_frame(b, NdiscPacket::dad_solicit(ip)),
                ndisc_frame(
                    b,
                    NdiscPacket::unsolicited_advert(b, "fd77::99".parse().expect("literal")),
                ),
            ];
            let na = ndisc_frame(b, NdiscPacket::unsolicited_advert(b, ip));
            (quiet, vec![na.clone(), na])
        }
    }
}

/// RFC 5227 §2.4 while held: A holds the address and watches it (`Vip::conflict_watch`); its
/// own announcements (a burst sent while the watch runs), its kernel's answers, a probe for it
/// and traffic for other addresses are not reported (and, kernel-filtered, never wake it: the
/// watch checks only the two conflicting frames); B's two conflicting frames are, naming B's
/// MAC. A then defends once (`Vip::defend`); after release, defending is refused.
fn conflicts_while_held(vip: IpAddr, prefix: u8, test: &str) {
    let Some(lab) = lab(test) else { return };
    let (ready_tx, ready) = std::sync::mpsc::channel();
    let a_ns = lab.a.ns.clone();
    let a = std::thread::spawn(move || {
        in_ns(&a_ns, move || async move {
            let mut v = Vip::new("eth0", vip, prefix).expect("handle");
            let mut w = v.conflict_watch().await.expect("conflict watch");
            let mut burst = AnnouncePolicy::default();
            burst.count = 4;
            burst.interval = Duration::from_millis(100);
            burst.second_burst_after = None;
            v.claim(&ClaimOptions::without_probe().announce(burst))
                .await
                .expect("claim in A");
            ready_tx.send(()).expect("test waits");
            let mut seen = Vec::new();
            for _ in 0..2 {
                let c = tokio::time::timeout(Duration::from_secs(5), w.next())
                    .await
                    .expect("a conflict within 5 s")
                    .expect("watch");
                seen.push(c);
            }
            let more = tokio::time::timeout(Duration::from_millis(500), w.next()).await;
            let checked = w.frames_checked();
            let defended = v.defend(vip::AnnounceMode::Request).await.expect("defend");
            v.release().await.expect("release");
            let after = v.defend(vip::AnnounceMode::Request).await;
            (seen, more.is_ok(), checked, defended, after)
        })
    });
    ready.recv().expect("A claimed");
    let (quiet, conflicting) = other_host_frames(vip, lab.b.mac);
    in_ns(&lab.b.ns, move || async move {
        send_frames(&quiet);
        // The answers A's kernel sends go out before the conflicting frames.
        tokio::time::sleep(Duration::from_millis(200)).await;
        send_frames(&conflicting);
    });
    let (seen, more, checked, defended, after) = a.join().expect("A thread");
    eprintln!("{test}: {seen:?}, frames checked {checked}");
    assert_eq!(seen.len(), 2);
    assert!(
        seen.iter().all(|c| c.mac == lab.b.mac),
        "conflicts must name B's MAC {}: {seen:?}",
        lab.b.mac
    );
    if vip.is_ipv4() {
        use vip::{packet::ArpOp, ConflictKind::Arp};
        assert_eq!(seen[0].kind, Arp(ArpOp::Reply), "{seen:?}");
        assert_eq!(seen[1].kind, Arp(ArpOp::Request), "{seen:?}");
    } else {
        assert!(
            matches!(seen[0].kind, vip::ConflictKind::NeighborAdvert { .. }),
            "{seen:?}"
        );
    }
    assert!(!more, "a third conflict was reported");
    assert_eq!(
        checked, 2,
        "the kernel filter let through more than the two conflicting frames"
    );
    assert_eq!(defended.len(), 1);
    assert!(defended[0].result.is_ok(), "{defended:?}");
    assert_eq!(defended[0].cause, vip::AnnounceCause::Defend);
    assert_eq!(defended[0].mac, lab.a.mac);
    assert!(
        matches!(after, Err(VipError::NotHeld { .. })),
        "defend after release: {after:?}"
    );
}

#[test]
fn ipv4_conflict_watch_reports_the_other_mac_only() {
    conflicts_while_held(addr("10.77.0.112"), 24, "conflict_watch_v4");
}

#[test]
fn ipv6_conflict_watch_reports_the_other_mac_only() {
    conflicts_while_held(addr("fd77::112"), 64, "conflict_watch_v6");
}

/// A holds the address and watches it; A's watch gets `n` conflicts within `within` (fewer
/// when it times out), after `ready` was sent and `go` returned.
fn watch_in_a(
    lab: &lab::Lab,
    vip: IpAddr,
    prefix: u8,
    test: impl FnOnce(
            vip::ConflictWatch,
        ) -> std::pin::Pin<Box<dyn std::future::Future<Output = Vec<vip::Conflict>>>>
        + Send
        + 'static,
) -> std::thread::JoinHandle<Vec<vip::Conflict>> {
    let a_ns = lab.a.ns.clone();
    test_support::netns::spawn_in_ns(&a_ns, move || async move {
        let mut v = Vip::new("eth0", vip, prefix).expect("handle");
        let w = v.conflict_watch().await.expect("conflict watch");
        v.claim(&ClaimOptions::without_probe().announce(quiet()))
            .await
            .expect("claim in A");
        let seen = test(w).await;
        v.release().await.expect("release");
        seen
    })
}

/// The next conflict within `d`, if any.
async fn next_within(w: &mut vip::ConflictWatch, d: Duration) -> Option<vip::Conflict> {
    tokio::time::timeout(d, w.next())
        .await
        .ok()
        .map(|c| c.expect("watch"))
}

/// RFC 5227 §2.4 with a quiet holder: B holds the address by hand (added after A's claim, so
/// it announces nothing) and sends nothing by itself. A's watch sees nothing until it probes
/// (`ConflictWatch::probe`: an ARP probe from 0.0.0.0, a DAD NS from `::`); B's kernel answers
/// that probe (an ARP reply / an NA for the address), which is a conflict naming B's MAC.
/// Once B dropped the address, a probe draws no answer.
fn quiet_holder_answers_probes(vip: IpAddr, prefix: u8, test: &str) {
    let Some(lab) = lab(test) else { return };
    let (added_tx, added) = std::sync::mpsc::channel::<()>();
    let (removed_tx, removed) = std::sync::mpsc::channel::<()>();
    let (claimed_tx, claimed) = std::sync::mpsc::channel::<()>();
    let a = watch_in_a(&lab, vip, prefix, move |mut w| {
        Box::pin(async move {
            claimed_tx.send(()).expect("test waits");
            tokio::task::spawn_blocking(move || added.recv().expect("B added"))
                .await
                .expect("join");
            let mut seen = Vec::new();
            // B sends nothing by itself.
            if let Some(c) = next_within(&mut w, Duration::from_millis(500)).await {
                panic!("a conflict before any probe: {c:?}");
            }
            w.probe().await.expect("probe");
            seen.extend(next_within(&mut w, Duration::from_secs(3)).await);
            tokio::task::spawn_blocking(move || removed.recv().expect("B removed"))
                .await
                .expect("join");
            w.probe().await.expect("probe");
            seen.extend(next_within(&mut w, Duration::from_millis(500)).await);
            seen
        })
    });
    claimed.recv().expect("A claimed");
    let cidr = format!("{vip}/{prefix}");
    lab.ip_in(&lab.b.ns, &["addr", "add", &cidr, "dev", "eth0", "nodad"]);
    added_tx.send(()).expect("A waits");
    std::thread::sleep(Duration::from_millis(1200));
    lab.ip_in(&lab.b.ns, &["addr", "del", &cidr, "dev", "eth0"]);
    removed_tx.send(()).expect("A waits");
    let seen = a.join().expect("A thread");
    eprintln!("{test}: {seen:?}");
    assert_eq!(
        seen.len(),
        1,
        "one answer to the first probe only: {seen:?}"
    );
    assert_eq!(seen[0].mac, lab.b.mac, "{seen:?}");
    if vip.is_ipv4() {
        assert_eq!(
            seen[0].kind,
            vip::ConflictKind::Arp(vip::packet::ArpOp::Reply),
            "{seen:?}"
        );
    }
}

#[test]
fn ipv4_conflict_probe_draws_the_quiet_holders_answer() {
    quiet_holder_answers_probes(addr("10.77.0.114"), 24, "conflict_probe_v4");
}

#[test]
fn ipv6_conflict_probe_draws_the_quiet_holders_answer() {
    quiet_holder_answers_probes(addr("fd77::114"), 64, "conflict_probe_v6");
}

/// What the kernel's ARP input would not take is no conflict: B's gratuitous ARP for the
/// address tagged with VLAN 42 (A has no device for it: `PACKET_OTHERHOST`) is not reported
/// (nor let through by the kernel filter); the same frame untagged is.
#[test]
fn conflict_watch_ignores_other_vlans() {
    let Some(lab) = lab("conflict_vlan") else {
        return;
    };
    let vip = addr("10.77.0.115");
    let (ready_tx, ready) = std::sync::mpsc::channel::<()>();
    let a = watch_in_a(&lab, vip, 24, move |mut w| {
        Box::pin(async move {
            ready_tx.send(()).expect("test waits");
            let seen: Vec<_> = next_within(&mut w, Duration::from_secs(3))
                .await
                .into_iter()
                .collect();
            assert_eq!(w.frames_checked(), 1, "the tagged frame passed the filter");
            seen
        })
    });
    ready.recv().expect("A claimed");
    let IpAddr::V4(ip) = vip else { unreachable!() };
    let b = lab.b.mac;
    // The tagged frame is a request, the untagged one a reply: the report tells which it was.
    let (_, request) = arp_frame(b, vip::packet::ArpPacket::gratuitous_request(b, ip));
    let (_, untagged) = arp_frame(b, vip::packet::ArpPacket::gratuitous_reply(b, ip));
    // 802.1Q: TPID 0x8100 and TCI (VLAN 42) between the source MAC and the EtherType.
    let mut tagged = request[..12].to_vec();
    tagged.extend_from_slice(&[0x81, 0x00, 0x00, 42]);
    tagged.extend_from_slice(&request[12..]);
    in_ns(&lab.b.ns, move || async move {
        send_frames(&[(0x8100, tagged)]);
        tokio::time::sleep(Duration::from_millis(300)).await;
        send_frames(&[(vip::packet::ETHERTYPE_ARP, untagged)]);
    });
    let seen = a.join().expect("A thread");
    assert_eq!(seen.len(), 1, "{seen:?}");
    assert_eq!(
        (seen[0].mac, seen[0].kind),
        (b, vip::ConflictKind::Arp(vip::packet::ArpOp::Reply)),
        "the untagged frame must be reported, not the tagged one"
    );
}

/// ARP flux is no conflict: A has a second interface on the same bridge (`eth1`), and an ARP
/// from it with the address as sender IP (what Linux sends with `arp_announce=0` when
/// traffic from the address leaves through eth1) reaches A's eth0: not reported, since eth1's
/// MAC is this host's. B's frame after it is.
#[test]
fn conflict_watch_ignores_this_hosts_other_interfaces() {
    let Some(lab) = lab("conflict_flux") else {
        return;
    };
    let vip = addr("10.77.0.116");
    let eth1 = MacAddr([0x02, 0x77, 0xf1, 0x00, 0x00, 0x01]);
    lab.ip_in(
        &lab.br,
        &[
            "link", "add", "pa1", "type", "veth", "peer", "name", "eth1", "netns", &lab.a.ns,
        ],
    );
    lab.ip_in(&lab.br, &["link", "set", "pa1", "master", "br0", "up"]);
    lab.ip_in(
        &lab.a.ns,
        &["link", "set", "eth1", "address", &eth1.to_string()],
    );
    lab.ip_in(&lab.a.ns, &["link", "set", "eth1", "up"]);
    let (ready_tx, ready) = std::sync::mpsc::channel::<()>();
    let a = watch_in_a(&lab, vip, 24, move |mut w| {
        Box::pin(async move {
            ready_tx.send(()).expect("test waits");
            let seen: Vec<_> = next_within(&mut w, Duration::from_secs(3))
                .await
                .into_iter()
                .collect();
            assert!(w.local_macs().contains(&eth1), "{:?}", w.local_macs());
            seen
        })
    });
    ready.recv().expect("A claimed");
    let IpAddr::V4(ip) = vip else { unreachable!() };
    let flux = arp_frame(eth1, vip::packet::ArpPacket::gratuitous_request(eth1, ip));
    in_ns(&lab.a.ns, move || async move {
        send_frames_on(c"eth1", &[flux]);
    });
    std::thread::sleep(Duration::from_millis(300));
    let b = lab.b.mac;
    let theirs = arp_frame(b, vip::packet::ArpPacket::gratuitous_request(b, ip));
    in_ns(&lab.b.ns, move || async move { send_frames(&[theirs]) });
    let seen = a.join().expect("A thread");
    assert_eq!(seen.len(), 1, "{seen:?}");
    assert_eq!(seen[0].mac, b, "eth1's own ARP was reported: {seen:?}");
}
