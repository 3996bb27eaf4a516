//! Root tests on the host kernel for `vip::tickle`: namespaces A (old holder), B (new holder)
//! and C (client) on a bridge (`lab::Lab`). A serves on X:3260, C connects and blocks in a
//! read; A lists the connection, X moves to B behind A's back (A's socket stays), B tickles,
//! and C's read must fail with ECONNRESET (and not before). A tickle burst into a full `tbf`
//! qdisc comes back as retryable. Without root, namespaces or `tc`: SKIP, or FAIL under
//! `CI=true`.

mod lab;

use std::io::{ErrorKind, Read};
use std::net::{IpAddr, SocketAddr, TcpListener, TcpStream};
use std::sync::mpsc;
use std::time::Duration;

use lab::{in_ns, lab, wait_neighbour};
use test_support::netns::enter;
use vip::tickle::{self, Connection};
use vip::{AnnouncePolicy, ClaimOptions, Vip};

const PORT: u16 = 3260;

/// Longer than any test step; the read ends by the reset long before.
const CLIENT_READ_TIMEOUT: Duration = Duration::from_secs(20);

fn addr(s: &str) -> IpAddr {
    s.parse().expect("literal address")
}

/// `listen`: the server's bind address (X itself, or `::` for a dual-stack listener).
fn move_resets_client(vip: IpAddr, prefix: u8, listen: IpAddr, test: &str) {
    let Some(lab) = lab(test) else { return };
    lab.c_learns_unsolicited();
    let cidr = format!("{vip}/{prefix}");
    let mut add = vec!["addr", "add", &cidr, "dev", "eth0"];
    if vip.is_ipv6() {
        add.push("nodad");
    }
    lab.ip_in(&lab.a.ns, &add);

    // A: serve one connection and keep it until the test ends.
    let (ready_tx, ready_rx) = mpsc::channel::<Result<SocketAddr, String>>();
    let (end_tx, end_rx) = mpsc::channel::<()>();
    let a_ns = lab.a.ns.clone();
    let server = std::thread::spawn(move || {
        let r = enter(&a_ns).and_then(|()| {
            let l = TcpListener::bind((listen, PORT)).map_err(|e| format!("bind: {e}"))?;
            ready_tx.send(Ok(l.local_addr().expect("local"))).ok();
            let (s, peer) = l.accept().map_err(|e| format!("accept: {e}"))?;
            Ok((s, peer))
        });
        match r {
            Ok((s, peer)) => {
                ready_tx.send(Ok(peer)).ok();
                let _ = end_rx.recv();
                drop(s);
            }
            Err(e) => {
                ready_tx.send(Err(e)).ok();
            }
        }
    });
    ready_rx.recv().expect("server").expect("server in A");

    // C: connect, report the client's address, then block in a read.
    let (client_tx, client_rx) = mpsc::channel::<Result<SocketAddr, String>>();
    let (read_tx, read_rx) = mpsc::channel::<std::io::Result<usize>>();
    let c_ns = lab.c.ns.clone();
    let client = std::thread::spawn(move || {
        let mut s = match enter(&c_ns)
            .and_then(|()| TcpStream::connect((vip, PORT)).map_err(|e| format!("connect: {e}")))
        {
            Ok(s) => s,
            Err(e) => {
                client_tx.send(Err(e)).ok();
                return;
            }
        };
        s.set_read_timeout(Some(CLIENT_READ_TIMEOUT))
            .expect("read timeout");
        client_tx.send(Ok(s.local_addr().expect("local"))).ok();
        let mut buf = [0u8; 16];
        read_tx.send(s.read(&mut buf)).ok();
    });
    let client_addr = client_rx.recv().expect("client").expect("client in C");
    let peer = ready_rx.recv().expect("accept").expect("accept in A");
    // A dual-stack listener sees an IPv4 client as ::ffff:a.b.c.d.
    let peer = SocketAddr::new(peer.ip().to_canonical(), peer.port());
    assert_eq!(peer, client_addr, "A accepted another client");

    // A lists exactly that connection.
    let conns = in_ns(
        &lab.a.ns,
        move || async move { tickle::connections(vip, PORT) },
    )
    .expect("connections in A");
    let want = Connection {
        local: SocketAddr::new(vip, PORT),
        remote: client_addr,
    };
    assert_eq!(conns, vec![want]);
    // Another port, another address (A's own): nothing.
    let own = if vip.is_ipv4() {
        addr("10.77.0.1")
    } else {
        addr("fd77::1")
    };
    let none = in_ns(&lab.a.ns, move || async move {
        (
            tickle::connections(vip, PORT + 1),
            tickle::connections(own, PORT),
        )
    });
    assert_eq!(none.0.expect("other port"), vec![]);
    assert_eq!(none.1.expect("other address"), vec![]);

    // The move: X leaves A silently (its socket stays), B claims X and announces it.
    lab.ip_in(&lab.a.ns, &["addr", "del", &cidr, "dev", "eth0"]);
    let refused =
        in_ns(&lab.a.ns, move || async move { tickle::send(&[want], 1) }).expect("send in A");
    assert_eq!(
        refused.packets, 0,
        "A sent from an address it no longer holds"
    );
    assert_eq!(refused.failed.len(), 1, "{refused:?}");
    eprintln!("send from A after the move: {:?}", refused.failed);

    in_ns(&lab.b.ns, move || async move {
        let mut p = AnnouncePolicy::default();
        p.count = 1;
        p.second_burst_after = None;
        let mut v = Vip::new("eth0", vip, prefix).expect("handle");
        v.claim(&ClaimOptions::without_probe().announce(p))
            .await
            .expect("claim in B");
    });
    let (seen, _) = wait_neighbour(&lab.c, vip, lab.b.mac);
    assert_eq!(
        seen.map(|(m, _)| m),
        Some(lab.b.mac),
        "C still maps {vip} elsewhere"
    );

    // Nothing has reached the client yet: its read is still blocked.
    assert!(
        matches!(read_rx.try_recv(), Err(mpsc::TryRecvError::Empty)),
        "the client's read ended before the tickle"
    );

    let sent =
        in_ns(&lab.b.ns, move || async move { tickle::send(&[want], 3) }).expect("send in B");
    assert_eq!(sent.packets, 3, "{sent:?}");
    assert!(sent.failed.is_empty(), "{sent:?}");

    let r = read_rx
        .recv_timeout(CLIENT_READ_TIMEOUT + Duration::from_secs(10))
        .expect("client thread");
    match r {
        Err(e) if e.kind() == ErrorKind::ConnectionReset => {}
        Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
            panic!("no reset: the client's read timed out after {CLIENT_READ_TIMEOUT:?}")
        }
        other => panic!("client read: {other:?}, expected ECONNRESET"),
    }
    end_tx.send(()).ok();
    server.join().expect("server thread");
    client.join().expect("client thread");
}

#[test]
fn ipv4_tickle_resets_the_moved_clients_connection() {
    move_resets_client(
        addr("10.77.0.100"),
        24,
        addr("10.77.0.100"),
        "ipv4_tickle_resets",
    );
}

#[test]
fn ipv6_tickle_resets_the_moved_clients_connection() {
    move_resets_client(
        addr("fd77::100"),
        64,
        addr("fd77::100"),
        "ipv6_tickle_resets",
    );
}

/// tgtd and other servers may listen on `[::]`: an IPv4 client is then held by an IPv6 socket
/// (`::ffff:a.b.c.d`), found by the AF_INET6 dump and listed as IPv4.
#[test]
fn ipv4_client_of_a_dual_stack_listener_is_listed_and_reset() {
    move_resets_client(
        addr("10.77.0.100"),
        24,
        addr("::"),
        "dual_stack_tickle_resets",
    );
}

/// Drops every effective capability of the calling thread (capabilities are per thread), so
/// root behaves like an unprivileged user in it; the permitted set stays (the thread ends soon).
fn drop_effective_capabilities() -> Result<(), String> {
    #[repr(C)]
    struct Header {
        version: u32,
        pid: i32,
    }
    #[repr(C)]
    #[derive(Clone, Copy, Default)]
    struct Data {
        effective: u32,
        permitted: u32,
        inheritable: u32,
    }
    const LINUX_CAPABILITY_VERSION_3: u32 = 0x2008_0522;
    let mut h = Header {
        version: LINUX_CAPABILITY_VERSION_3,
        pid: 0,
    };
    let mut d = [Data::default(); 2];
    // SAFETY: capget/capset(2) with a v3 header and the two data structs that version needs.
    if unsafe { libc::syscall(libc::SYS_capget, &mut h, d.as_mut_ptr()) } != 0 {
        return Err(format!("capget: {}", std::io::Error::last_os_error()));
    }
    for x in &mut d {
        x.effective = 0;
    }
    // SAFETY: as above.
    if unsafe { libc::syscall(libc::SYS_capset, &mut h, d.as_ptr()) } != 0 {
        return Err(format!("capset: {}", std::io::Error::last_os_error()));
    }
    Ok(())
}

/// Without CAP_NET_RAW `send` fails as a whole with PermissionDenied (nothing sent); listing
/// needs no privilege.
#[test]
fn without_cap_net_raw_send_is_refused_and_listing_works() {
    if !test_support::prereq::Prereqs::new("tickle_without_cap_net_raw")
        .root()
        .check()
    {
        return;
    }
    let (listed, sent) = test_support::netns::in_new_ns(|| {
        drop_effective_capabilities().expect("drop capabilities");
        let conn = Connection {
            local: "127.0.0.1:3260".parse().expect("literal"),
            remote: "127.0.0.1:40000".parse().expect("literal"),
        };
        (
            tickle::connections(addr("127.0.0.1"), PORT),
            tickle::send(&[conn], 1),
        )
    });
    assert_eq!(listed.expect("listing without privilege"), vec![]);
    match sent {
        Err(e @ tickle::TickleError::PermissionDenied { .. }) => {
            assert!(e.to_string().contains("CAP_NET_RAW"), "{e}")
        }
        other => panic!("send without CAP_NET_RAW: {other:?}"),
    }
}

/// A congested link: A's eth0 behind a `tbf` qdisc of 8 kbit/s with a queue of 1000 bytes (a
/// 54-byte segment leaves every 54 ms), so a burst of 401 connections × 3 fills it at once.
/// The sends that meet the full queue (`ENOBUFS`) come back in `retry`, never in `failed`, and
/// no repeat takes their place; once the link is faster (10 Mbit/s), sending `retry` again
/// after pauses ([`tickle::send_retrying`]) gets every connection its copies.
#[test]
fn burst_into_a_full_qdisc_is_retryable() {
    let test = "tickle_full_qdisc";
    if !test_support::prereq::Prereqs::new(test)
        .root()
        .tools(&["tc"])
        .check()
    {
        return;
    }
    let Some(lab) = lab(test) else { return };
    // A knows C's MAC, so the segments go straight to the qdisc (not to the ARP queue).
    let c_mac = lab.c.mac.to_string();
    lab.ip_in(
        &lab.a.ns,
        &[
            "neigh",
            "replace",
            "10.77.0.3",
            "lladdr",
            &c_mac,
            "dev",
            "eth0",
            "nud",
            "permanent",
        ],
    );
    let qdisc = |verb: &str, rate: &str| {
        // Harness only: the qdisc that makes the link congested.
        test_support::netns::run(
            "tc",
            &[
                "-n", &lab.a.ns, "qdisc", verb, "dev", "eth0", "root", "tbf", "rate", rate,
                "burst", "1600", "limit", "1000",
            ],
        )
    };
    if let Err(e) = qdisc("add", "8kbit") {
        test_support::prereq::skip(format!("{test}: a tbf qdisc is needed: {e}"));
        return;
    }
    let conns: Vec<Connection> = (0..401u16)
        .map(|i| Connection {
            local: SocketAddr::new(addr("10.77.0.1"), PORT),
            remote: SocketAddr::new(addr("10.77.0.3"), 40000 + i),
        })
        .collect();
    let all = conns.clone();
    let first = in_ns(&lab.a.ns, move || async move { tickle::send(&all, 3) }).expect("send in A");
    eprintln!(
        "8 kbit/s: {} packets sent, {} connections to retry, {} failed",
        first.packets,
        first.retry.len(),
        first.failed.len()
    );
    assert!(first.failed.is_empty(), "{:?}", first.failed);
    assert!(
        !first.retry.is_empty(),
        "the queue of 1000 bytes took 1203 segments"
    );
    // Rounds: the queue filled up in the first round, so no repeat was sent.
    assert_eq!(first.packets + first.retry.len(), conns.len(), "{first:?}");

    qdisc("change", "10mbit").expect("tc qdisc change");
    let (rounds, left) = in_ns(&lab.a.ns, move || async move {
        let mut left = first.retry;
        let mut rounds = 0;
        // Generous: 10 Mbit/s carries the whole burst in well under a second.
        while !left.is_empty() && rounds < 50 {
            let again = tickle::send_retrying(&left, 3).await.expect("send in A");
            assert!(again.failed.is_empty(), "{:?}", again.failed);
            left = again.retry;
            rounds += 1;
        }
        (rounds, left)
    });
    eprintln!("10 Mbit/s: the rest sent by {rounds} send_retrying call(s)");
    assert!(
        left.is_empty(),
        "{} connections still refused after {rounds} calls",
        left.len()
    );
}
