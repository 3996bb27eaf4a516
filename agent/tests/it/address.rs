//! The agent's address backend (crate `vip`) in a private network namespace made by this test
//! (a thread that `unshare(CLONE_NEWNET)`s, with a veth pair; the namespace disappears with the
//! thread). DRBD and the target stay in memory. Proves: a promote claims the address (probe,
//! add, announce); an address deleted by hand comes back through the watch; a demote releases
//! it; an address held elsewhere (on another interface here, or answered by another host in a
//! second namespace made by the test) gets the promote refused, with the reason, before DRBD is
//! promoted (no rollback), and the same promote goes through once the other host is gone; one
//! held on another interface here is named by an alarm and in status.
//! Needs root and `ip`: skipped without them, a failure with CI=true.

use crate::common;

use std::future::Future;
use std::net::IpAddr;
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

use agent::backend::memory::Memory;
use agent::backend::vip::NetlinkAddress;
use agent::backend::Address;
use agent::config::Config;
use agent::control::{Pending, Request, Response};
use agent::daemon::Daemon;
use agent::executor::Executor;
use agent::fsm::{Connection, Disk, Event, Role};
use common::which;
use test_support::netns::{self, Netns};
use tokio::sync::mpsc::UnboundedReceiver;

fn prereqs() -> bool {
    test_support::prereq::Prereqs::new("agent address test")
        .root()
        .tools(&["ip"])
        .check()
}

/// A second namespace playing the other host on the segment: `v1` moved into it and up, with
/// its loopback. Deleted on drop (also on failure).
fn other_host(prefix: &str) -> Netns {
    let other = Netns::add(Netns::unique_name(prefix)).expect("netns add");
    ip(&format!("link set v1 netns {}", other.name()));
    ip_in(&other, "link set lo up");
    ip_in(&other, "link set v1 up");
    other
}

/// `ip ARGS` in `ns`; panics on failure.
fn ip_in(ns: &Netns, args: &str) {
    let args: Vec<&str> = args.split_whitespace().collect();
    ns.ip(&args).unwrap_or_else(|e| panic!("{e}"));
}

fn ip(args: &str) {
    let args: Vec<&str> = args.split_whitespace().collect();
    netns::ip(&args).unwrap_or_else(|e| panic!("{e}"));
}

/// Run `body` on a thread inside a fresh network namespace with veth pair v0/v1 up.
fn in_netns<F: FnOnce() + Send + 'static>(body: F) {
    // Children forked from that thread inherit its namespace.
    netns::in_new_ns(|| {
        ip("link add v0 type veth peer name v1");
        ip("link set v0 up");
        ip("link set v1 up");
        body();
    })
}

fn config() -> Config {
    common::address_config("addr-test", 2)
}

/// The daemon under test: DRBD and the target in memory, the address through `vip`.
type D = Daemon<Memory, Memory, Arc<NetlinkAddress>>;

/// Runs `test` (unless the prerequisites are missing) on a current-thread runtime inside
/// [`in_netns`], with the config, the address backend, its watch's events, the in-memory DRBD
/// and target, and the daemon over them, observed once.
fn with_rig<F, Fut>(test: F)
where
    F: FnOnce(Arc<Config>, Arc<NetlinkAddress>, UnboundedReceiver<Event>, Memory, D) -> Fut
        + Send
        + 'static,
    Fut: Future<Output = ()>,
{
    if !prereqs() {
        return;
    }
    in_netns(|| {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime");
        rt.block_on(async {
            let cfg = Arc::new(config());
            let addr = Arc::new(NetlinkAddress::new(&cfg).expect("vip handles"));
            let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
            {
                let a = addr.clone();
                tokio::spawn(async move { a.watch(tx).await });
            }
            let mem = Memory::healthy_secondary(&cfg);
            let mut d = Daemon::new(Executor::new(
                cfg.clone(),
                mem.clone(),
                mem.clone(),
                addr.clone(),
            ));
            d.observe().await;
            test(cfg, addr, rx, mem, d).await;
        })
    })
}

/// Handles the watch events already queued.
async fn handle_queued(d: &mut D, rx: &mut UnboundedReceiver<Event>) {
    while let Ok(ev) = rx.try_recv() {
        d.handle(ev).await;
    }
}

/// After the queued watch events, with the backend log cleared: a promote that must be refused
/// with every one of `parts` in its message; the message.
async fn refused_promote(
    d: &mut D,
    rx: &mut UnboundedReceiver<Event>,
    mem: &Memory,
    parts: &[&str],
) -> String {
    handle_queued(d, rx).await;
    mem.world().log.clear();
    let r = d.request(Request::Promote).await;
    assert!(!r.ok, "{}", r.message);
    assert!(parts.iter().all(|p| r.message.contains(p)), "{}", r.message);
    r.message
}

/// DRBD was never asked to become Primary since the log was last cleared, and is Secondary.
fn assert_never_promoted(mem: &Memory) {
    let w = mem.world();
    assert!(
        !w.log.iter().any(|c| c.starts_with("drbd-primary")),
        "DRBD promoted: {:?}",
        w.log
    );
    assert_eq!(w.drbd.get("r0").map(|v| v.role), Some(Role::Secondary));
}

/// Wait (up to 5 s) until `dev` reports carrier (veth: the peer is up again). `/sys` shows the
/// host's namespace, not this thread's, so ask `ip`.
async fn wait_carrier(dev: &str) {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let out = Command::new(which("ip").expect("ip"))
            .args(["-o", "link", "show", "dev", dev])
            .output()
            .expect("ip runs");
        let text = String::from_utf8_lossy(&out.stdout);
        if text.contains("LOWER_UP") {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{dev} has no carrier after 5 s: {text}"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[test]
fn claim_restore_conflict_release() {
    with_rig(|cfg, addr, mut rx, mem, mut d| async move {
        let a0 = &cfg.addresses[0];

        let r = d.request(Request::Promote).await;
        assert!(r.ok, "{}", r.message);
        assert!(addr.held(a0).await.expect("held"));
        let rec = r
            .status
            .and_then(|s| s.transitions.last().cloned())
            .expect("record");
        let claim = rec
            .stages
            .iter()
            .find(|s| s.stage == agent::fsm::Stage::AddressClaim)
            .expect("claim stage");
        eprintln!(
            "promote total {} us, address-claim {} us",
            rec.total_micros, claim.micros
        );

        // Deleted by hand: the watch reports it and the agent claims it back.
        ip("addr del 10.99.0.10/24 dev v0");
        let start = Instant::now();
        let deadline = start + Duration::from_secs(5);
        while !addr.held(a0).await.expect("held") {
            let ev = tokio::time::timeout_at(deadline.into(), rx.recv())
                .await
                .expect("removal noticed within 5 s")
                .expect("watch alive");
            d.handle(ev).await;
        }
        eprintln!("address deleted by hand -> back in {:?}", start.elapsed());
        handle_queued(&mut d, &mut rx).await;

        let r = d.request(Request::Demote).await;
        assert!(r.ok, "{}", r.message);
        assert!(!addr.held(a0).await.expect("held"));
        handle_queued(&mut d, &mut rx).await;

        // Held on another interface of this host: the promote is refused before DRBD is
        // touched, with the reason.
        ip("addr add 10.99.0.10/24 dev v1");
        tokio::time::sleep(Duration::from_millis(50)).await;
        // A full observation sees it there: an alarm once, and status says so.
        handle_queued(&mut d, &mut rx).await;
        let h = d.observe().await;
        let alarms: Vec<String> = h.notices.iter().map(|n| n.to_string()).collect();
        assert!(
            alarms
                .iter()
                .any(|a| a.contains("10.99.0.10/24 is on interface v1")),
            "{alarms:?}"
        );
        let text = d.status().expect("status").render();
        assert!(text.contains("ON v1 INSTEAD"), "{text}");
        let why = refused_promote(&mut d, &mut rx, &mem, &["refused", "probe-address"]).await;
        assert!(why.contains("v1"), "reason names the interface: {why}");
        assert_never_promoted(&mem);
        let h = d.observe().await;
        assert!(h.notices.is_empty(), "alarmed once: {:?}", h.notices);
        ip("addr del 10.99.0.10/24 dev v1");
        d.observe().await;
        let text = d.status().expect("status").render();
        assert!(!text.contains("INSTEAD"), "{text}");

        // Another host answers for it (v1 moved into a namespace of its own holding the
        // address; its kernel answers the RFC 5227 probe). DRBD is connected to a
        // Secondary peer, so the one probe runs while DRBD and the target come up
        // (docs/takeover.md): the claim refuses, the promote is rolled back, the node is
        // Secondary again and the address was never added here.
        // A second namespace playing the other host, deleted on drop (also on failure).
        let other = other_host("ihaaddr");
        let in_other = |args: &str| ip_in(&other, args);
        in_other("addr add 10.99.0.10/24 dev v1");
        wait_carrier("v0").await;
        handle_queued(&mut d, &mut rx).await;
        assert!(
            addr.answered_elsewhere(a0).await.expect("probe"),
            "the probe hears the other host"
        );
        let why = refused_promote(
            &mut d,
            &mut rx,
            &mem,
            &["refused: address-claim 10.99.0.10/24", "conflict"],
        )
        .await;
        eprintln!("promote with another host on the address: {why}");
        assert_eq!(
            mem.world().drbd.get("r0").map(|v| v.role),
            Some(Role::Secondary),
            "rolled back to Secondary"
        );
        assert!(!addr.held(a0).await.expect("held"));
        // The same with DRBD not connected to its peer (a promote that would fork the
        // data): the probe's verdict is awaited first, DRBD is never asked.
        mem.peer_lost("r0");
        refused_promote(
            &mut d,
            &mut rx,
            &mem,
            &["refused", "another host answers for 10.99.0.10/24"],
        )
        .await;
        assert_never_promoted(&mem);
        assert!(!addr.held(a0).await.expect("held"));
        {
            let mut w = mem.world();
            let v = w.drbd.get_mut("r0").expect("r0");
            v.peer_role = Role::Secondary;
            v.peer_disk = Disk::UpToDate;
            v.connection = Connection::Connected;
        }
        d.observe().await;

        // The other host gone: the same promote goes through.
        in_other("addr del 10.99.0.10/24 dev v1");
        assert!(!addr.answered_elsewhere(a0).await.expect("probe"));
        let r = d.request(Request::Promote).await;
        assert!(r.ok, "{}", r.message);
        assert!(addr.held(a0).await.expect("held"));
        // Held here: not "elsewhere" (no probe sent).
        assert!(!addr.answered_elsewhere(a0).await.expect("probe"));
    });
}

/// Handles every queued watch event until `done` holds (up to 5 s).
async fn settle_until<D, T, A, F>(
    d: &mut Daemon<D, T, A>,
    rx: &mut UnboundedReceiver<Event>,
    mut done: F,
) where
    D: agent::backend::Drbd,
    T: agent::backend::Target,
    A: agent::backend::Address,
    F: FnMut(&Daemon<D, T, A>) -> bool,
{
    let deadline = Instant::now() + Duration::from_secs(5);
    while !done(d) {
        let ev = tokio::time::timeout_at(deadline.into(), rx.recv())
            .await
            .expect("watch event within 5 s")
            .expect("watch alive");
        d.handle(ev).await;
    }
}

/// Issue 11 case 5: the address's link is down (no carrier: the peer end of the veth is down)
/// when the promote claims. Before the fix the claim failed with "interface down" and rolled
/// DRBD and the target back. Now DRBD Primary and the target stay up, status says "waiting for
/// link", and the link's return brings the probe, the claim and the burst.
#[test]
fn link_down_at_claim_waits_for_link_then_claims() {
    with_rig(|cfg, addr, mut rx, mem, mut d| async move {
        let a0 = &cfg.addresses[0];
        let waiting = |d: &Daemon<_, _, _>| {
            d.status()
                .and_then(|s| s.addresses.first().map(|a| a.waiting_for_link))
                .unwrap_or(false)
        };

        ip("link set v1 down");
        settle_until(&mut d, &mut rx, |d| {
            d.state()
                .is_some_and(|s| s.addresses.values().all(|a| a.link_down))
        })
        .await;
        let r = d.request(Request::Promote).await;
        assert!(r.ok, "promote with the link down: {}", r.message);
        let st = r.status.expect("status");
        assert_eq!(
            mem.world().drbd.get("r0").map(|v| v.role),
            Some(Role::Primary),
            "DRBD stays Primary"
        );
        let t0 = st.resources.first().map(|r| r.target.state);
        assert_eq!(
            t0,
            Some(agent::fsm::TargetState::Serving),
            "target stays up"
        );
        let a = st.addresses.first().expect("address");
        assert!(!a.held && a.waiting_for_link, "{a:?}");
        assert!(!st.converged, "not converged while the address waits");
        let text = st.render();
        assert!(text.contains("waiting for link"), "{text}");
        assert!(!addr.held(a0).await.expect("held"));

        let t = Instant::now();
        ip("link set v1 up");
        settle_until(&mut d, &mut rx, |d| !waiting(d)).await;
        let took = t.elapsed();
        assert!(addr.held(a0).await.expect("held"), "claimed on link up");
        let st = d.status().expect("status");
        assert!(st.converged, "converged once claimed");
        let stages: Vec<String> = st
            .transitions
            .last()
            .map(|t| t.stages.iter())
            .into_iter()
            .flatten()
            .map(|s| format!("{}={:.1}ms", s.stage.name(), s.micros as f64 / 1000.0))
            .collect();
        eprintln!(
            "link up -> address claimed: {took:?} (from the `ip link set up` call; the \
             claim waits for the 100 ms probe window: {})",
            stages.join(" ")
        );

        // A flap while held: the address stays, nothing is rolled back.
        ip("link set v1 down");
        settle_until(&mut d, &mut rx, |d| {
            d.state()
                .is_some_and(|s| s.addresses.values().all(|a| a.link_down))
        })
        .await;
        let st = d.status().expect("status");
        assert!(addr.held(a0).await.expect("held"), "{}", st.render());
        ip("link set v1 up");
        settle_until(&mut d, &mut rx, |d| {
            d.state()
                .is_some_and(|s| s.addresses.values().all(|a| !a.link_down))
        })
        .await;
        assert!(addr.held(a0).await.expect("held"));
        assert_eq!(
            mem.world().drbd.get("r0").map(|v| v.role),
            Some(Role::Primary)
        );

        // Without its peer, a promote needs the probe's "nobody answers" (a partition
        // must not fork the data): with the link down it cannot be asked, so the promote
        // is refused before DRBD is touched, and goes through once the link is back.
        let r = d.request(Request::Demote).await;
        assert!(r.ok, "{}", r.message);
        mem.peer_lost("r0");
        ip("link set v1 down");
        settle_until(&mut d, &mut rx, |d| {
            d.state()
                .is_some_and(|s| s.addresses.values().all(|a| a.link_down && !a.held))
        })
        .await;
        mem.world().log.clear();
        let r = d.request(Request::Promote).await;
        assert!(!r.ok && r.message.contains("v0 is down"), "{}", r.message);
        assert_never_promoted(&mem);
        ip("link set v1 up");
        settle_until(&mut d, &mut rx, |d| {
            d.state()
                .is_some_and(|s| s.addresses.values().all(|a| !a.link_down))
        })
        .await;
        let r = d.request(Request::Promote).await;
        assert!(r.ok, "{}", r.message);
        assert!(addr.held(a0).await.expect("held"));
    });
}

/// MAC of v0 (this node) in the conflict tests.
const OURS: &str = "02:99:00:00:00:01";
/// MAC of v1 (the other host) in the conflict tests.
const THEIRS: &str = "02:99:00:00:00:02";

/// This node's daemon running its own loop (`Daemon::run`, its address backend followed as in
/// the real daemon, conflicts cleared after 1 s), with its metrics and event bus observed.
struct Running {
    /// The first address of the config (10.99.0.10/24 on v0).
    a0: agent::config::Address,
    addr: Arc<NetlinkAddress>,
    mem: Memory,
    metrics: Arc<agent::metrics::Metrics>,
    /// Every event (alarms).
    events: tokio::sync::broadcast::Receiver<agent::events::AgentEvent>,
    /// The same events, for the health lines.
    health: tokio::sync::broadcast::Receiver<agent::events::AgentEvent>,
    ctl: tokio::sync::mpsc::Sender<Pending>,
}

/// Runs `test` (unless the prerequisites are missing) inside [`in_netns`], v0 with MAC [`OURS`]
/// and v1 with [`THEIRS`], with the daemon [`Running`] on [`config`], on a current-thread
/// runtime's `LocalSet` (the daemon's future is not `Send`).
fn with_running_daemon<F, Fut>(test: F)
where
    F: FnOnce(Running) -> Fut + Send + 'static,
    Fut: Future<Output = ()>,
{
    with_running_daemon_on(config(), test)
}

/// [`with_running_daemon`] on `cfg`.
fn with_running_daemon_on<F, Fut>(cfg: Config, test: F)
where
    F: FnOnce(Running) -> Fut + Send + 'static,
    Fut: Future<Output = ()>,
{
    use agent::daemon::follow::Follow;
    use agent::events::{EventBus, EventsMonitor};
    use agent::metrics::{Metrics, MetricsMonitor};

    if !prereqs() {
        return;
    }
    in_netns(|| {
        ip(&format!("link set v0 address {OURS}"));
        ip(&format!("link set v1 address {THEIRS}"));
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime");
        let local = tokio::task::LocalSet::new();
        local.block_on(&rt, async {
            let cfg = Arc::new(cfg);
            let addr = Arc::new(
                NetlinkAddress::new(&cfg)
                    .expect("vip handles")
                    .with_conflict_clear_after(Duration::from_secs(1)),
            );
            let (tx, ev_rx) = tokio::sync::mpsc::unbounded_channel();
            {
                let a = addr.clone();
                tokio::spawn(async move { a.watch(tx).await });
            }
            let mem = Memory::healthy_secondary(&cfg);
            let bus = EventBus::default();
            let events = bus.subscribe();
            let health = bus.subscribe();
            let metrics = Arc::new(Metrics::new());
            let d = Daemon::new(Executor::new(
                cfg.clone(),
                mem.clone(),
                mem.clone(),
                addr.clone(),
            ))
            .following(Follow::new(cfg.clone(), Some(addr.clone())))
            .with_monitor(MetricsMonitor(metrics.clone()))
            .with_monitor(EventsMonitor::new(bus));
            let (ctl, ctl_rx) = tokio::sync::mpsc::channel(4);
            tokio::task::spawn_local(d.run(ev_rx, ctl_rx));
            test(Running {
                a0: cfg.addresses[0].clone(),
                addr,
                mem,
                metrics,
                events,
                health,
                ctl,
            })
            .await;
        });
    });
}

impl Running {
    /// The daemon's answer to `request`, through its control channel.
    async fn ask(&self, request: Request) -> Response {
        let (reply, rx) = tokio::sync::oneshot::channel();
        let pending = Pending { request, reply };
        self.ctl.send(pending).await.expect("daemon");
        rx.await.expect("answer")
    }

    /// Whether 10.99.0.10/24 is on v0.
    async fn held(&self) -> bool {
        self.addr.held(&self.a0).await.expect("held")
    }

    /// The address's conflict gauge, as scraped.
    fn conflict_gauge(&self) -> String {
        let text = self.metrics.encode();
        let series = "iscsi_ha_address_conflict{address=\"10.99.0.10/24\"} ";
        let value = text.lines().find_map(|l| l.strip_prefix(series));
        value
            .map(String::from)
            .unwrap_or_else(|| panic!("{series} missing:\n{text}"))
    }

    /// Until the conflict gauge reads `value`, within 2 s (`why` otherwise).
    async fn gauge_becomes(&self, value: &str, why: &str) {
        let deadline = Instant::now() + Duration::from_secs(2);
        while self.conflict_gauge() != value {
            assert!(Instant::now() < deadline, "{why}");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Until status shows a conflict on the address (`shown`) or none, within 5 s: that
    /// answer and its status.
    async fn conflict_shown(&self, shown: bool) -> (Response, Box<agent::status::Status>) {
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            let mut r = self.ask(Request::Status).await;
            let st = r.status.take().expect("status");
            if st.addresses[0].conflict.is_some() == shown {
                break (r, st);
            }
            assert!(
                Instant::now() < deadline,
                "conflict shown is not {shown}: {}",
                st.render()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// The health lines (systemd's `STATUS=`) told since the last call.
    fn health_lines(&mut self) -> Vec<String> {
        let mut lines = Vec::new();
        while let Ok(ev) = self.health.try_recv() {
            if let agent::events::AgentEvent::Health { status, .. } = ev {
                lines.push(status);
            }
        }
        lines
    }
}

/// The other host's claim of the address, on a thread in its namespace.
struct TheirClaim {
    stop: std::sync::mpsc::Sender<()>,
    thread: std::thread::JoinHandle<Option<String>>,
}

/// The other host (v1 in `other`) claims `address` without a probe, announcing it `count` times
/// 200 ms apart, and holds it until [`TheirClaim::release`] (30 s at the most). With
/// `watch_defence`, it watches for this node's defence meanwhile.
fn their_claim(other: &Netns, address: IpAddr, count: u32, watch_defence: bool) -> TheirClaim {
    use vip::{ClaimOptions, Vip};

    let (stop, stopped) = std::sync::mpsc::channel::<()>();
    let thread = netns::spawn_in_ns(other.name(), move || async move {
        let mut v = Vip::new("v1", address, 24).expect("handle");
        let mut watch = None;
        if watch_defence {
            watch = Some(v.conflict_watch().await.expect("watch in the other host"));
        }
        let mut burst = vip::AnnouncePolicy::default();
        burst.count = count;
        burst.interval = Duration::from_millis(200);
        burst.second_burst_after = None;
        v.claim(&ClaimOptions::without_probe().announce(burst))
            .await
            .expect("the other host claims");
        // This node's defence: an ARP naming the address with v0's MAC, within 5 s.
        let mut defence = None;
        if let Some(w) = watch.as_mut() {
            let c = tokio::time::timeout(Duration::from_secs(5), w.next()).await;
            defence = c.ok().map(|c| c.expect("watch").mac.to_string());
        }
        // Waited for off this runtime's thread: its announcements go on meanwhile.
        let wait = move || stopped.recv_timeout(Duration::from_secs(30));
        let _ = tokio::task::spawn_blocking(wait).await;
        v.release().await.expect("release in the other host");
        defence
    });
    TheirClaim { stop, thread }
}

impl TheirClaim {
    /// The other host releases the address; the MAC of the defence it saw, if it watched.
    async fn release(self) -> Option<String> {
        let TheirClaim { stop, thread } = self;
        stop.send(()).expect("other host waits");
        tokio::task::spawn_blocking(move || thread.join())
            .await
            .expect("join")
            .expect("other host thread")
    }
}

/// RFC 5227 §2.4 while held (the field case: a partition healed and both nodes hold the
/// address). The daemon's own loop runs (`Daemon::run`, its address backend followed as in
/// the real daemon); this node promotes and holds 10.99.0.10 on v0; another host (v1, moved into
/// a namespace of its own) then claims it too. Expected: one alarm naming the other MAC, status
/// and its JSON show the conflict on the address line, a defensive gratuitous ARP from v0's MAC
/// reaches the other host, the address stays held here and DRBD Primary (no role change); the
/// metrics' `iscsi_ha_address_conflict` and the health line (systemd's `STATUS=`) show it; once
/// the other host lets it go, the conflict clears after the (shortened) quiet time, in status,
/// metrics and health line alike (the clearing is no event of the state machine).
#[test]
fn conflict_while_held_alarms_defends_shows_and_clears() {
    use agent::events::AgentEvent;

    const SECOND: &str = "02:99:00:00:00:03";
    with_running_daemon(|mut rig| async move {
        let vip_ip = rig.a0.address.addr();
        let r = rig.ask(Request::Promote).await;
        assert!(r.ok, "{}", r.message);
        assert!(rig.held().await);

        let other = other_host("ihaconf");
        let in_other = |args: &str| ip_in(&other, args);
        wait_carrier("v0").await;
        // The conflict watch starts from the watch's "added" event: let it open.
        tokio::time::sleep(Duration::from_millis(300)).await;
        let theirs = their_claim(&other, vip_ip, 3, true);

        let (r, st) = rig.conflict_shown(true).await;
        // `iscsi-ha status` exits non-zero, naming it.
        assert!(!r.ok && r.message.contains(THEIRS), "{}", r.message);
        let text = st.render();
        eprintln!("{text}");
        assert!(
            text.contains(&format!(
                "held (for r0); CONFLICT: {THEIRS} also answers for it ("
            )),
            "{text}"
        );
        let json = serde_json::to_value(&st).expect("json");
        assert_eq!(json["addresses"][0]["conflict"]["mac"], THEIRS, "{json}");
        let alarm = tokio::time::timeout(Duration::from_secs(5), async {
            loop {
                match agent::events::next(&mut rig.events).await {
                    Some(AgentEvent::Alarm { reason, .. }) => break reason,
                    Some(_) => continue,
                    None => panic!("event bus closed"),
                }
            }
        })
        .await
        .expect("an alarm within 5 s");
        assert!(
            alarm.contains(THEIRS) && alarm.contains("10.99.0.10/24"),
            "{alarm}"
        );
        // Told with the alarm: the gauge and the health line.
        assert_eq!(rig.conflict_gauge(), "1");
        // No release, no role change: the authority decides.
        assert!(rig.held().await);
        assert!(st.converged, "{text}");
        assert_eq!(
            rig.mem.world().drbd.get("r0").map(|v| v.role),
            Some(Role::Primary)
        );

        // The other host keeps the address and sends nothing by itself after its claim
        // burst: this node's probes draw its kernel's answers, so the conflict stays shown
        // for three clear periods.
        tokio::time::sleep(Duration::from_secs(3)).await;
        let r = rig.ask(Request::Status).await;
        let st = r.status.expect("status");
        let c = st.addresses[0].conflict.clone();
        assert!(
            c.as_ref()
                .is_some_and(|c| c.mac == THEIRS && c.last_seen_ms_ago < 1000),
            "the conflict cleared while the other host holds the address: {}",
            st.render()
        );
        assert!(!r.ok, "{}", r.message);

        // Two MACs alternating in one conflict (the other host's MAC changes and changes
        // back): one more alarm for the new MAC, none when the first comes back; both
        // listed, `mac` still the first.
        in_other(&format!("link set v1 address {SECOND}"));
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            let st = rig.ask(Request::Status).await.status.expect("status");
            let json = serde_json::to_value(&st).expect("json");
            if json["addresses"][0]["conflict"]["macs"] == serde_json::json!([THEIRS, SECOND]) {
                assert_eq!(json["addresses"][0]["conflict"]["mac"], THEIRS, "{json}");
                assert!(
                    st.render()
                        .contains(&format!("CONFLICT: {THEIRS}, {SECOND} also answer for it")),
                    "{}",
                    st.render()
                );
                break;
            }
            assert!(Instant::now() < deadline, "second MAC not listed: {json}");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        in_other(&format!("link set v1 address {THEIRS}"));
        tokio::time::sleep(Duration::from_millis(1500)).await;

        let defence = theirs.release().await;
        assert_eq!(
            defence.as_deref(),
            Some(OURS),
            "the other host saw no defence from {OURS}"
        );
        let (r, st) = rig.conflict_shown(false).await;
        assert!(!st.render().contains("CONFLICT"));
        assert!(r.ok, "{}", r.message);
        // The clearing reaches the daemon's followers by itself (no event of the state
        // machine; the safety net is off here).
        rig.gauge_becomes("0", "the gauge still shows the conflict")
            .await;
        let lines = rig.health_lines();
        let shown = format!("ADDRESS CONFLICT on 10.99.0.10/24 ({THEIRS}");
        assert!(
            lines.iter().any(|l| l.contains(&shown)),
            "no health line {shown:?}: {lines:?}"
        );
        assert!(
            lines
                .last()
                .is_some_and(|l| l.ends_with(": converged") && !l.contains("CONFLICT")),
            "{lines:?}"
        );
        // One conflict, one alarm (the other host's later frames did not raise more).
        let (mut more, mut second) = (0, 0);
        while let Ok(ev) = rig.events.try_recv() {
            if let AgentEvent::Alarm { ref reason, .. } = ev {
                more += usize::from(reason.contains(THEIRS));
                second += usize::from(reason.contains(SECOND));
            }
        }
        assert_eq!(more, 0, "more than one alarm for one conflict");
        assert_eq!(second, 1, "one alarm for the second MAC");
        assert!(rig.held().await);

        // An admin link down/up ends the watch's socket (ENETDOWN): the watch is opened
        // again, and a conflict after it is still noticed.
        ip("link set v0 down");
        tokio::time::sleep(Duration::from_millis(200)).await;
        ip("link set v0 up");
        wait_carrier("v0").await;
        let deadline = Instant::now() + Duration::from_secs(5);
        while !rig.held().await {
            assert!(
                Instant::now() < deadline,
                "address not held after the link came back"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
        // Announcing for 3 s: whenever the reopened watch listens, it hears one.
        let again = their_claim(&other, vip_ip, 15, false);
        rig.conflict_shown(true).await;
        rig.gauge_becomes("1", "the gauge misses the second conflict")
            .await;
        again.release().await;
    });
}

/// A conflict shown when its watch ends with an error (here: the link goes down and up, the
/// socket reports `ENETDOWN` at its next frame) is told as not watched (health line), and as
/// watched again once the watch is open again. With the link staying down (its probes cannot
/// be sent) it is no longer shown once the clear period after its last frame passed with
/// nothing to vouch for it, in status, metrics and health line alike (no event of the state
/// machine tells them). A conflict shown when the address is released (a demote) goes with
/// it, followers too.
#[test]
fn conflict_whose_watch_ends_is_shown_unwatched_then_not_at_all() {
    with_running_daemon(|mut rig| async move {
        let vip_ip = rig.a0.address.addr();
        let r = rig.ask(Request::Promote).await;
        assert!(r.ok, "{}", r.message);
        let other = other_host("ihaconfend");
        wait_carrier("v0").await;
        tokio::time::sleep(Duration::from_millis(300)).await;
        // The other host announces the address for 20 s.
        let theirs = their_claim(&other, vip_ip, 100, false);
        rig.conflict_shown(true).await;
        assert_eq!(rig.conflict_gauge(), "1");
        rig.health_lines();

        // The watch ends with an error: told as not watched, then as watched again.
        ip("link set v0 down");
        tokio::time::sleep(Duration::from_millis(200)).await;
        ip("link set v0 up");
        wait_carrier("v0").await;
        let unwatched = format!("ADDRESS CONFLICT on 10.99.0.10/24 ({THEIRS}; not watched)");
        let deadline = Instant::now() + Duration::from_secs(3);
        let mut told = Vec::new();
        loop {
            told.extend(rig.health_lines());
            if told.iter().any(|l| l.contains(&unwatched)) {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "no health line {unwatched:?}: {told:?}"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let deadline = Instant::now() + Duration::from_secs(3);
        loop {
            told.extend(rig.health_lines());
            let again = format!("ADDRESS CONFLICT on 10.99.0.10/24 ({THEIRS})");
            if told.last().is_some_and(|l| l.ends_with(&again)) {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "not told as watched again: {told:?}"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let (_, st) = rig.conflict_shown(true).await;
        let c = st.addresses[0].conflict.clone().expect("shown");
        assert!(c.unwatched.is_none(), "{}", st.render());

        // The link stays down (no probe can be sent): no longer shown.
        ip("link set v0 down");
        let down = Instant::now();
        let (_, st) = rig.conflict_shown(false).await;
        let gone = down.elapsed();
        rig.gauge_becomes(
            "0",
            "the gauge still shows a conflict its watch no longer vouches for",
        )
        .await;
        // Within the clear period after the last frame (1 s), the last probe's wait (1 s)
        // and some slack.
        assert!(gone < Duration::from_secs(4), "shown for {gone:?}");
        assert!(!st.render().contains("CONFLICT"), "{}", st.render());
        let told = rig.health_lines();
        assert!(
            told.last().is_some_and(|l| !l.contains("CONFLICT")),
            "{told:?}"
        );

        // The link back, the other host still there: shown again, then released with the
        // address by a demote.
        ip("link set v0 up");
        wait_carrier("v0").await;
        rig.conflict_shown(true).await;
        rig.gauge_becomes("1", "the gauge misses the conflict")
            .await;
        rig.health_lines();
        let r = rig.ask(Request::Demote).await;
        assert!(r.ok, "{}", r.message);
        assert!(!rig.held().await);
        let (_, st) = rig.conflict_shown(false).await;
        assert!(!st.addresses[0].held, "{}", st.render());
        let deadline = Instant::now() + Duration::from_secs(2);
        let mut told = Vec::new();
        loop {
            told.extend(rig.health_lines());
            let clear = told.last().is_some_and(|l| !l.contains("CONFLICT"));
            if rig.conflict_gauge() == "0" && clear {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "a released address's conflict still told: gauge {}, {told:?}",
                rig.conflict_gauge()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }

        theirs.release().await;
    });
}

/// The field case of issue "both Primary after a healed partition": another host holds the
/// address silently (a plain `ip address add`, no announcement, after this node holds it; each
/// kernel then only answers requests, by unicast), so the passive watch alone hears nothing:
/// shown with `[address.probe] while_held_s = 0`. With the probe while held (1 s here, set live
/// as a reload does), this node's ARP probe draws the other kernel's reply and the conflict is
/// raised within a period: alarm, status, gauge; the address stays held and DRBD Primary. Once
/// that host lets the address go the conflict clears, and a second silent holder is found
/// within a couple of periods again.
#[test]
fn silent_holder_is_found_by_the_probe_while_held() {
    use agent::events::AgentEvent;

    let with_period = |s: u64| {
        let mut cfg = config();
        cfg.addresses[0].probe.while_held_s = s;
        cfg
    };
    with_running_daemon_on(with_period(0), move |mut rig| async move {
        let r = rig.ask(Request::Promote).await;
        assert!(r.ok, "{}", r.message);
        assert!(rig.held().await);
        let other = other_host("ihasilent");
        let in_other = |args: &str| ip_in(&other, args);
        wait_carrier("v0").await;
        // The conflict watch starts from the watch's "added" event, the link's return
        // announces again: let both pass.
        tokio::time::sleep(Duration::from_millis(500)).await;

        in_other("addr add 10.99.0.10/24 dev v1");
        let out = Command::new(which("ip").expect("ip"))
            .args(["-n", other.name(), "-o", "addr", "show", "dev", "v1"])
            .output()
            .expect("ip runs");
        let shown = String::from_utf8_lossy(&out.stdout);
        assert!(
            shown.contains("10.99.0.10/24"),
            "the other host holds it: {shown}"
        );
        // Without the probe while held nothing names the address as sender: not noticed.
        tokio::time::sleep(Duration::from_millis(2500)).await;
        let st = rig.ask(Request::Status).await.status.expect("status");
        assert!(
            st.addresses[0].conflict.is_none(),
            "a silent holder noticed without probes: {}",
            st.render()
        );

        // The period set live (what a reload's commit does): the next probe is due at once.
        let t = Instant::now();
        rig.addr.retain(&with_period(1));
        let (r, st) = rig.conflict_shown(true).await;
        let found = t.elapsed();
        eprintln!("silent holder found {found:?} after the probe while held was turned on");
        assert!(found < Duration::from_secs(2), "found after {found:?}");
        assert!(!r.ok && r.message.contains(THEIRS), "{}", r.message);
        assert!(
            st.render()
                .contains(&format!("CONFLICT: {THEIRS} also answers for it")),
            "{}",
            st.render()
        );
        let alarm = tokio::time::timeout(Duration::from_secs(2), async {
            loop {
                match agent::events::next(&mut rig.events).await {
                    Some(AgentEvent::Alarm { reason, .. }) => break reason,
                    Some(_) => continue,
                    None => panic!("event bus closed"),
                }
            }
        })
        .await
        .expect("an alarm");
        assert!(
            alarm.contains(THEIRS) && alarm.contains("10.99.0.10/24"),
            "{alarm}"
        );
        rig.gauge_becomes("1", "the gauge misses the conflict")
            .await;
        assert!(rig.held().await);
        assert_eq!(
            rig.mem.world().drbd.get("r0").map(|v| v.role),
            Some(Role::Primary)
        );

        // The other host lets it go: cleared (1 s quiet, a probe unanswered).
        in_other("addr del 10.99.0.10/24 dev v1");
        rig.conflict_shown(false).await;
        rig.gauge_becomes("0", "the gauge still shows the conflict")
            .await;

        // Held silently again: found within a couple of periods, by the probe alone.
        tokio::time::sleep(Duration::from_millis(300)).await;
        let t = Instant::now();
        in_other("addr add 10.99.0.10/24 dev v1");
        rig.conflict_shown(true).await;
        let found = t.elapsed();
        eprintln!("silent holder found {found:?} after its address add (period 1 s)");
        assert!(found < Duration::from_millis(2500), "found after {found:?}");
        rig.gauge_becomes("1", "the gauge misses the second conflict")
            .await;
        assert!(rig.held().await);
    });
}
