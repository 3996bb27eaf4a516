//! The tickle peer link and the tickle on claim, end to end in namespaces made by the test: A
//! (the primary, holding 10.99.0.10), B (its peer) and C (an initiator's host, whose bridge joins
//! A and B on one link). A client in C connects to the address; A's sender learns the
//! connection (sock_diag) and sends it to B over the peer link; A then goes silent (its link
//! down: a power loss as the network sees it); B claims the address through the agent's address
//! backend, which tickles the connection, and the client's read fails with ECONNRESET at once
//! instead of after its own timeout. Needs root (namespaces, raw sockets) and `ip`: skipped
//! without them, a failure with CI=true.

use crate::common;

use std::collections::BTreeSet;
use std::io::Read;
use std::net::{IpAddr, SocketAddr, TcpListener, TcpStream};
use std::sync::Arc;
use std::time::{Duration, Instant};

use agent::backend::vip::NetlinkAddress;
use agent::backend::Address;
use agent::config::Config;
use agent::peer_link::{Learnt, PeerLink, TickleReport};
use test_support::netns::{in_ns, spawn_in_ns, Netns};
use vip::tickle::Connection;

const VIP: &str = "10.99.0.10";
const PORTAL: u16 = 3260;
const A_LINK: &str = "10.99.0.1:7790";
const B_LINK: &str = "10.99.0.2:7790";
/// How long a step may take on a loaded machine before the test gives up (not a timing
/// assertion: every wait ends as soon as its condition holds).
const PATIENCE: Duration = Duration::from_secs(20);

fn prereqs(test: &str) -> bool {
    test_support::prereq::Prereqs::new(test)
        .root()
        .tools(&["ip"])
        .check()
}

/// `node`'s config: the address tests' one with `[tickle]` from `listen` to `peer`.
fn config(node: &str, listen: &str, peer: &str) -> Config {
    let base = common::address_config(node, 1);
    let mut cfg = base.clone();
    let text = format!("listen = \"{listen}\"\npeer = \"{peer}\"\n");
    cfg.tickle = Some(toml::from_str(&text).unwrap_or_else(|e| panic!("{e}")));
    cfg.validate()
        .unwrap_or_else(|(key, reason)| panic!("{key}: {reason}"));
    cfg
}

/// C's bridge joins A's and B's `v0`: one link, as a switch would.
struct Lab {
    a: Netns,
    b: Netns,
    c: Netns,
}

/// The lab with A's address already gone (as after A's demote) and the address, or `None`
/// without the prerequisites.
fn lab_released(what: &str) -> Option<(Lab, IpAddr)> {
    if !prereqs(what) {
        return None;
    }
    let lab = lab();
    lab.a
        .ip(&["addr", "del", &format!("{VIP}/24"), "dev", "v0"])
        .unwrap_or_else(|e| panic!("{e}"));
    Some((lab, VIP.parse().expect("ip")))
}

fn lab() -> Lab {
    let ns = |p: &str| Netns::add(Netns::unique_name(p)).unwrap_or_else(|e| panic!("{e}"));
    let (a, b, c) = (ns("tickA"), ns("tickB"), ns("tickC"));
    let ip = |n: &Netns, args: &[&str]| n.ip(args).unwrap_or_else(|e| panic!("{e}"));
    ip(&c, &["link", "add", "br0", "type", "bridge"]);
    ip(&c, &["link", "set", "br0", "up"]);
    for (n, port) in [(&a, "pa"), (&b, "pb")] {
        c.veth_to(port, n, "v0").unwrap_or_else(|e| panic!("{e}"));
        ip(&c, &["link", "set", port, "master", "br0"]);
        ip(n, &["link", "set", "lo", "up"]);
    }
    ip(&a, &["addr", "add", "10.99.0.1/24", "dev", "v0"]);
    ip(&b, &["addr", "add", "10.99.0.2/24", "dev", "v0"]);
    ip(&c, &["addr", "add", "10.99.0.100/24", "dev", "br0"]);
    ip(&a, &["addr", "add", &format!("{VIP}/24"), "dev", "v0"]);
    Lab { a, b, c }
}

/// B claims the configured address (which tickles) and returns the tickle its status reports.
async fn claim_and_report(
    address: &NetlinkAddress,
    link: &PeerLink,
    cfg: &Config,
) -> Option<TickleReport> {
    address.claim(&cfg.addresses[0]).await.expect("claim");
    let report = link
        .status(&[agent::status::AddressStatus {
            address: cfg.addresses[0].address.to_string(),
            interface: "v0".into(),
            held: true,
            waiting_for_link: false,
            on_other_interface: None,
            resources: vec![],
            conflict: None,
        }])
        .addresses
        .first()
        .and_then(|a| a.last_tickle.clone());
    // Let vip's announcer finish before the runtime ends.
    tokio::time::sleep(Duration::from_millis(100)).await;
    report
}

/// A serves a "portal" on the floating address and C's client connects through it: A's
/// listener, C's client socket and A's accepted socket.
fn connected(lab: &Lab) -> (TcpListener, TcpStream, TcpStream) {
    let listener = in_ns(lab.a.name(), || async {
        TcpListener::bind((VIP, PORTAL)).expect("listen on the floating address")
    });
    let client = in_ns(lab.c.name(), || async {
        TcpStream::connect((VIP, PORTAL)).expect("client connects")
    });
    let (served, _) = listener.accept().expect("A accepts");
    (listener, client, served)
}

/// [`spawn_in_ns`] for one of the lab's namespaces.
fn spawn_in<F, Fut, T>(ns: &Netns, f: F) -> std::thread::JoinHandle<T>
where
    F: FnOnce() -> Fut + Send + 'static,
    Fut: std::future::Future<Output = T>,
    T: Send + 'static,
{
    spawn_in_ns(ns.name(), f)
}

/// `node`'s end of the peer link of `cfg`, bound (a failed bind panics with its address).
async fn bound(cfg: &Config, node: &str) -> Arc<PeerLink> {
    let t = cfg.tickle.as_ref().expect("tickle");
    let link = PeerLink::bind(t, node).await;
    Arc::new(link.unwrap_or_else(|e| panic!("bind {}: {e}", t.listen)))
}

/// B's config for the release-notice tests: a probe window long enough that a loaded
/// machine's test still sees (and takes) an early probe within it.
fn long_window_b() -> Config {
    let mut cfg = config("b", B_LINK, A_LINK);
    cfg.addresses[0].probe.timeout_ms = 2000;
    cfg
}

/// B's side of the release-notice tests: `cfg`'s addresses with a receiving link, watched (the
/// watch starts the early probes on the link's notices).
async fn watched_with_link(cfg: &Config) -> Arc<NetlinkAddress> {
    let link = receiving(cfg, "b").await;
    let address = Arc::new(NetlinkAddress::new(cfg).expect("handles").with_tickle(link));
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
    let watching = address.clone();
    // The receiver lives with the watch: a watch whose events nobody takes ends.
    tokio::spawn(async move {
        let _rx = rx;
        watching.watch(tx).await
    });
    address
}

/// A's planned demote from `ns`: one release notice per address of `ips`, in order, from its
/// link's own endpoint (B reads only the peer's); `told` once they are sent.
fn tell_released(ns: &Netns, ips: Vec<IpAddr>, told: tokio::sync::mpsc::UnboundedSender<()>) {
    spawn_in(ns, move || async move {
        let cfg = config("a", A_LINK, B_LINK);
        let link = bound(&cfg, "a").await;
        for ip in ips {
            link.tell_released(&[ip]).await;
        }
        let _ = told.send(());
    })
    .join()
    .expect("A's thread");
}

/// [`bound`], receiving the peer's datagrams in the background.
async fn receiving(cfg: &Config, node: &str) -> Arc<PeerLink> {
    let link = bound(cfg, node).await;
    let rx = link.clone();
    tokio::spawn(async move { rx.receive().await });
    link
}

/// The client's next read ends with a reset (the tickle's), not a FIN, data or its own timeout.
fn read_is_reset(client: &mut TcpStream) {
    client
        .set_read_timeout(Some(PATIENCE))
        .expect("read timeout");
    let mut buf = [0u8; 16];
    match client.read(&mut buf) {
        Err(e) => assert_eq!(e.kind(), std::io::ErrorKind::ConnectionReset, "{e}"),
        Ok(n) => panic!("the client read {n} bytes (0: a FIN got out) instead of a reset"),
    }
}

/// Waits until `link` learnt a list with `want` connections (or [`PATIENCE`] passed).
async fn learnt(link: &PeerLink, want: usize) -> Option<Learnt> {
    let deadline = Instant::now() + PATIENCE;
    loop {
        let l = link.learnt();
        if l.as_ref().is_some_and(|l| l.conns.len() == want) || Instant::now() > deadline {
            return l;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[test]
fn a_list_sent_by_one_end_arrives_at_the_other() {
    if !prereqs("agent tickle peer-link test") {
        return;
    }
    let lab = lab();
    let conns: Vec<Connection> = (1..=3)
        .map(|i| Connection {
            local: format!("{VIP}:{PORTAL}").parse().expect("local"),
            remote: format!("10.99.0.100:{}", 40000 + i)
                .parse()
                .expect("remote"),
        })
        .collect();
    let b = spawn_in(&lab.b, || async {
        let cfg = config("b", B_LINK, A_LINK);
        let link = receiving(&cfg, "b").await;
        learnt(&link, 3).await
    });
    let sent = conns.clone();
    let done = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let stop = done.clone();
    let a = spawn_in(&lab.a, move || async move {
        let cfg = config("a", A_LINK, B_LINK);
        let link = bound(&cfg, "a").await;
        // B may not listen yet: send until it has the list (UDP is not acknowledged).
        let deadline = Instant::now() + PATIENCE;
        while Instant::now() < deadline && !stop.load(std::sync::atomic::Ordering::Relaxed) {
            link.send(&sent).await.expect("send");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    });
    let got = b.join().expect("B's thread");
    done.store(true, std::sync::atomic::Ordering::Relaxed);
    a.join().expect("A's thread");
    let got = got.expect("B learnt a list");
    assert_eq!(got.node, "a");
    assert_eq!(got.conns, conns);
}

#[test]
fn a_claim_resets_the_connections_the_peer_reported() {
    if !prereqs("agent tickle on claim test") {
        return;
    }
    let lab = lab();
    let vip: IpAddr = VIP.parse().expect("ip");
    let (_listener, mut client, served) = connected(&lab);
    let want = Connection {
        local: SocketAddr::new(vip, PORTAL),
        remote: client.local_addr().expect("client address"),
    };

    // B listens on the peer link.
    let (claim_tx, claim_rx) = tokio::sync::oneshot::channel::<()>();
    let (learnt_tx, learnt_rx) = std::sync::mpsc::channel::<Option<Learnt>>();
    let b = spawn_in(&lab.b, move || async move {
        let cfg = config("b", B_LINK, A_LINK);
        let link = receiving(&cfg, "b").await;
        let address = NetlinkAddress::new(&cfg).expect("address handles");
        let address = address.with_tickle(link.clone());
        let _ = learnt_tx.send(learnt(&link, 1).await);
        // A is gone: claim, which tickles.
        claim_rx.await.expect("told to claim");
        claim_and_report(&address, &link, &cfg).await
    });

    // A's sender: while it holds the address it reads and sends the connections.
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let a = spawn_in(&lab.a, move || async move {
        let cfg = config("a", A_LINK, B_LINK);
        let link = bound(&cfg, "a").await;
        let listed = vip::tickle::connections(vip, PORTAL).expect("sock_diag");
        link.set_held(BTreeSet::from([vip]));
        tokio::select! {
            () = link.sync() => {}
            _ = stop_rx => {}
        }
        listed
    });

    // B heard A's list; then A loses its power (as the network sees it: its link goes down,
    // its sockets stay as they were, nobody closes anything).
    let got = learnt_rx.recv().expect("B's thread");
    let _ = stop_tx.send(());
    let listed = a.join().expect("A's thread");
    assert_eq!(listed, vec![want], "A's sock_diag listing");
    lab.a
        .ip(&["link", "set", "v0", "down"])
        .unwrap_or_else(|e| panic!("{e}"));
    let _ = claim_tx.send(());
    let report = b.join().expect("B's thread");
    let got = got.expect("B learnt A's list");
    assert_eq!(got.conns, vec![want], "the list B learnt");
    let report = report.expect("the claim tickled");
    assert_eq!(report.connections, 1, "{report:?}");
    assert_eq!(report.packets, 3, "{report:?}");
    assert!(report.errors.is_empty(), "{report:?}");

    read_is_reset(&mut client);
    drop(served);
}

/// A planned demote's handover (docs/takeover.md, "Demote order"): A holds the address with a
/// client connected; `hand_over` is refused while nobody answers at B's end and accepted once B
/// listens; A then releases the address and only then closes its socket (`target-remove`), so
/// no FIN reaches the client (the route from a source address no longer local fails); A's
/// sender, told it holds nothing, does not erase the handed-over list at B; B's claim tickles
/// the connection and the client's read ends with ECONNRESET, not EOF.
#[test]
fn a_handed_over_connection_is_closed_silently_and_reset_by_the_claim() {
    if !prereqs("agent tickle handover test") {
        return;
    }
    let lab = lab();
    let vip: IpAddr = VIP.parse().expect("ip");
    let (listener, mut client, served) = connected(&lab);

    let (b_go_tx, b_go_rx) = tokio::sync::oneshot::channel::<()>();
    let (b_ready_tx, b_ready_rx) = tokio::sync::oneshot::channel::<()>();
    let (claim_tx, claim_rx) = tokio::sync::oneshot::channel::<()>();
    let b = spawn_in(&lab.b, move || async move {
        b_go_rx.await.expect("told to listen");
        let cfg = config("b", B_LINK, A_LINK);
        let link = receiving(&cfg, "b").await;
        let address = NetlinkAddress::new(&cfg).expect("address handles");
        let address = address.with_tickle(link.clone());
        let _ = b_ready_tx.send(());
        claim_rx.await.expect("told to claim");
        claim_and_report(&address, &link, &cfg).await
    });

    let (handed_tx, handed_rx) = std::sync::mpsc::channel();
    let (released_tx, released_rx) = tokio::sync::oneshot::channel::<()>();
    let a = spawn_in(&lab.a, move || async move {
        let mut cfg = config("a", A_LINK, B_LINK);
        // Patience for a loaded machine; the silent case waits it out once.
        cfg.tickle.as_mut().expect("tickle").handover_ms = 2000;
        let link = receiving(&cfg, "a").await;
        link.set_held(BTreeSet::from([vip]));
        let sender = link.clone();
        tokio::spawn(async move { sender.sync().await });
        let silent = link.hand_over(&[vip]).await;
        let _ = b_go_tx.send(());
        b_ready_rx.await.expect("B listens");
        let acked = link.hand_over(&[vip]).await;
        let _ = handed_tx.send((silent, acked));
        // The address is gone: the daemon tells the link it holds nothing.
        released_rx.await.expect("told the address went");
        link.set_held(BTreeSet::new());
        tokio::time::sleep(Duration::from_millis(200)).await;
    });

    let (silent, acked) = handed_rx.recv().expect("A's handovers");
    let e = silent.expect_err("nobody listens at B's end yet");
    assert!(e.contains("did not acknowledge"), "{e}");
    assert_eq!(acked, Ok(1), "B acknowledged A's list");
    // address-release, then target-remove closes the connection: no FIN can leave.
    lab.a
        .ip(&["addr", "del", &format!("{VIP}/24"), "dev", "v0"])
        .unwrap_or_else(|e| panic!("{e}"));
    let _ = released_tx.send(());
    a.join().expect("A's thread");
    drop(served);
    drop(listener);
    let _ = claim_tx.send(());
    let report = b.join().expect("B's thread").expect("the claim tickled");
    assert_eq!(report.connections, 1, "{report:?}");
    assert!(report.errors.is_empty(), "{report:?}");
    read_is_reset(&mut client);
}

/// A planned demote's release notice starts the peer's probe at once (docs/takeover.md, "One
/// address probe per promote"); the peer's promote takes that probe, which still refuses the
/// claim when another host answers for the address, as a probe started at the promote would.
#[test]
fn a_release_notice_starts_the_peers_probe_and_the_promote_takes_it() {
    if !prereqs("agent tickle release-notice test") {
        return;
    }
    let lab = lab();
    let vip: IpAddr = VIP.parse().expect("ip");
    let (b_ready_tx, b_ready_rx) = std::sync::mpsc::channel::<()>();
    let (told_tx, told_rx) = tokio::sync::mpsc::unbounded_channel::<()>();
    let b = spawn_in(&lab.b, move || async move {
        let mut told = told_rx;
        let cfg = long_window_b();
        let address = watched_with_link(&cfg).await;
        let a = &cfg.addresses[0];
        let _ = b_ready_tx.send(());
        let mut verdicts = Vec::new();
        for _ in 0..2 {
            told.recv().await.expect("A told");
            let deadline = Instant::now() + PATIENCE;
            while !address.early_probe_waiting(a).await && Instant::now() < deadline {
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
            let early = address.early_probe_waiting(a).await;
            address.start_probe(a).await.expect("start probe");
            let taken = !address.early_probe_waiting(a).await;
            let conflict = address.probe_conflict(a).await.expect("verdict");
            // The claim takes the probe's verdict (and the probe with it).
            let claimed = address.claim(a).await.is_ok();
            verdicts.push((early, taken, conflict, claimed));
            let _ = b_ready_tx.send(());
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
        verdicts
    });
    b_ready_rx.recv().expect("B ready");
    // A's notice, from its link's own endpoint (B reads only the peer's).
    let tell = || {
        let told = told_tx.clone();
        tell_released(&lab.a, vec![vip], told);
    };
    // A still holds the address (a notice sent too early, or forged): B's probe hears A.
    tell();
    b_ready_rx.recv().expect("B's first promote done");
    // A released it: nobody answers, and the claim that follows is allowed.
    lab.a
        .ip(&["addr", "del", &format!("{VIP}/24"), "dev", "v0"])
        .unwrap_or_else(|e| panic!("{e}"));
    tell();
    let verdicts = b.join().expect("B's thread");
    assert_eq!(
        verdicts,
        vec![(true, true, true, false), (true, true, false, true)],
        "(probe started on the notice, taken by the promote, conflict, claimed)"
    );
}

/// A promote refused after it started its probe leaves that probe behind; once its window has
/// run out it does not keep the peer's release notice from starting the early probe (it held it
/// off for `PROBE_MAX_AGE`, 10 s, and the next promote then probed afresh).
#[test]
fn a_refused_promotes_probe_does_not_hold_off_the_early_probe() {
    let Some((lab, vip)) = lab_released("agent tickle leftover-probe test") else {
        return;
    };
    let (b_ready_tx, b_ready_rx) = std::sync::mpsc::channel::<()>();
    let (told_tx, told_rx) = tokio::sync::mpsc::unbounded_channel::<()>();
    let b = spawn_in(&lab.b, move || async move {
        let mut told = told_rx;
        let cfg = long_window_b();
        let address = watched_with_link(&cfg).await;
        let a = &cfg.addresses[0];
        // A promote's probe, then no claim (the promote refused at DRBD), its window run out.
        address.start_probe(a).await.expect("start probe");
        let window = Duration::from_millis(a.probe.timeout_ms);
        tokio::time::sleep(window + Duration::from_millis(50)).await;
        let _ = b_ready_tx.send(());
        told.recv().await.expect("A told");
        let deadline = Instant::now() + PATIENCE;
        while !address.early_probe_waiting(a).await && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
        address.early_probe_waiting(a).await
    });
    b_ready_rx.recv().expect("B ready");
    let told = told_tx.clone();
    tell_released(&lab.a, vec![vip], told);
    assert!(
        b.join().expect("B's thread"),
        "the notice started no early probe while the refused promote's old probe was left"
    );
}

/// The early probe keeps probing after its window (`EARLY_PROBE_KEPT`): a promote signalled
/// later than one window after the peer's release notice still takes it, instead of probing
/// afresh, and its claim is made on that probe's verdict.
#[test]
fn a_promote_after_the_early_probes_window_still_takes_it() {
    let Some((lab, vip)) = lab_released("agent tickle late-promote test") else {
        return;
    };
    let (b_ready_tx, b_ready_rx) = std::sync::mpsc::channel::<()>();
    let (told_tx, told_rx) = tokio::sync::mpsc::unbounded_channel::<()>();
    let b = spawn_in(&lab.b, move || async move {
        let mut told = told_rx;
        let cfg = config("b", B_LINK, A_LINK);
        let address = watched_with_link(&cfg).await;
        let a = &cfg.addresses[0];
        let _ = b_ready_tx.send(());
        told.recv().await.expect("A told");
        let deadline = Instant::now() + PATIENCE;
        while !address.early_probe_waiting(a).await && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
        // Two windows after the notice: the promote comes late.
        let window = Duration::from_millis(a.probe.timeout_ms);
        tokio::time::sleep(window * 2).await;
        let early = address.early_probe_waiting(a).await;
        address.start_probe(a).await.expect("start probe");
        let taken = !address.early_probe_waiting(a).await;
        let conflict = address.probe_conflict(a).await.expect("verdict");
        let claimed = address.claim(a).await.is_ok();
        (early, taken, conflict, claimed)
    });
    b_ready_rx.recv().expect("B ready");
    tell_released(&lab.a, vec![vip], told_tx);
    assert_eq!(
        b.join().expect("B's thread"),
        (true, true, false, true),
        "(early probe still probing two windows on, taken by the promote, conflict, claimed)"
    );
}

/// A demote of two addresses sends a release notice for each at once: each starts its own early
/// probe (a latest-value channel kept only the last, and the other was probed at the promote).
#[test]
fn release_notices_of_two_addresses_at_once_start_both_probes() {
    if !prereqs("agent tickle two-notices test") {
        return;
    }
    let lab = lab();
    let vip: IpAddr = VIP.parse().expect("ip");
    let vip2: IpAddr = "10.99.0.11".parse().expect("ip");
    let (b_ready_tx, b_ready_rx) = std::sync::mpsc::channel::<()>();
    let (told_tx, told_rx) = tokio::sync::mpsc::unbounded_channel::<()>();
    let b = spawn_in(&lab.b, move || async move {
        let mut told = told_rx;
        let mut cfg = long_window_b();
        let mut second = cfg.addresses[0].clone();
        second.address = format!("{vip2}/24").parse().expect("net");
        cfg.addresses.push(second);
        let address = watched_with_link(&cfg).await;
        let _ = b_ready_tx.send(());
        told.recv().await.expect("A told");
        let deadline = Instant::now() + PATIENCE;
        let mut waiting = [false, false];
        while waiting != [true, true] && Instant::now() < deadline {
            for (i, a) in cfg.addresses.iter().enumerate() {
                waiting[i] |= address.early_probe_waiting(a).await;
            }
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
        waiting
    });
    b_ready_rx.recv().expect("B ready");
    let told = told_tx.clone();
    tell_released(&lab.a, vec![vip, vip2], told);
    assert_eq!(
        b.join().expect("B's thread"),
        [true, true],
        "an early probe started for each released address"
    );
}
