//! The floating address is never held without a serving target behind it: on the real daemon's
//! backends and watches (tgtd at its socket, the address over rtnetlink in a network namespace
//! this test makes; DRBD in memory, the host has none), a primary whose tgtd is killed releases
//! its address once the death is reported, and serves, probes and claims it again when a new
//! tgtd answers. Needs root, `ip` and `tgtd`: skipped without them, a failure with CI=true.

use crate::common;
use crate::reload_live::{address, held_on_v0, D};
use crate::reload_tgtd::resource;

use std::sync::Arc;
use std::time::{Duration, Instant};

use agent::backend::memory::Memory;
use agent::backend::target::TgtTarget;
use agent::backend::vip::NetlinkAddress;
use agent::config::Config;
use agent::control::Request;
use agent::daemon::Daemon;
use agent::executor::Executor;
use agent::fsm::{Event, Stage, TargetState, TargetView};
use common::{free_port, tgtd_config_head, wait_tgtd, Tgtd};
use test_support::netns::{self, Netns};
use test_support::prereq::Prereqs;
use tokio::sync::mpsc::UnboundedReceiver;

const CONTROL_PORT: u16 = 10;
const A0: &str = "10.99.0.10/24";

#[test]
fn a_dead_tgtd_takes_the_address_with_it_until_it_is_back() {
    if !Prereqs::new("tgtd and address test")
        .root_and_group()
        .tools(&["ip", "tgtd", "tgtadm"])
        .check()
    {
        return;
    }
    let ns = |p: &str| Netns::add(Netns::unique_name(p)).unwrap_or_else(|e| panic!("{e}"));
    let (srv, peer) = (ns("tas"), ns("tap"));
    let ok = |r: Result<(), String>| r.unwrap_or_else(|e| panic!("{e}"));
    ok(srv.ip(&["link", "set", "lo", "up"]));
    // The peer end up too: the address waits for its link's carrier.
    ok(srv.veth_to("v0", &peer, "v1"));
    netns::in_ns(srv.name(), run);
    drop((srv, peer));
}

async fn run() {
    let dir = tempfile::Builder::new()
        .prefix(&format!("agent-tgtd-address-{}-", std::process::id()))
        .tempdir()
        .expect("tempdir");
    let d0 = dir.path();
    let text = format!(
        "{}tgt_check_ms = 50\n{}{}",
        tgtd_config_head("tgtd-address", d0, CONTROL_PORT, Some(5000)),
        resource(d0, "r0", 1),
        address(A0, "r0")
    );
    let cfg = Arc::new(Config::parse(&text, d0).unwrap_or_else(|e| panic!("{e}")));
    let mut tgtd = Tgtd::start(d0, CONTROL_PORT, free_port());
    wait_tgtd(&cfg.sockets.tgtd).await;

    let mem = Memory::healthy_secondary(&cfg);
    let target = TgtTarget::new(&cfg.sockets.tgtd, Duration::from_secs(5));
    let addr = Arc::new(NetlinkAddress::new(&cfg).expect("address handles"));
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    {
        let (t, feed, to_t) = (
            target.clone(),
            agent::daemon::follow::Follow::new(cfg.clone(), None).feed(),
            tx.clone(),
        );
        tokio::spawn(async move { t.watch(feed, to_t).await });
        let a = addr.clone();
        tokio::spawn(async move { a.watch(tx).await });
    }
    let mut d: D = Daemon::new(Executor::new(cfg.clone(), mem, target, addr));
    d.observe().await;
    let r = d.request(Request::Promote).await;
    assert!(r.ok, "{}", r.message);
    assert!(held_on_v0(A0));

    let state = |d: &D| d.status().expect("status").resources[0].target.state;
    tgtd.kill();
    let t = Instant::now();
    let mut seen = Seen::default();
    seen.until(&mut d, &mut rx, "the address outlived tgtd", || {
        !held_on_v0(A0)
    })
    .await;
    eprintln!("tgtd killed -> address released: {:?}", t.elapsed());
    assert_eq!(state(&d), TargetState::Absent);
    let status = d.status().expect("status");
    assert!(!status.addresses[0].held && !status.converged, "{status:?}");
    assert_eq!(seen.count(Stage::AddressRelease), 1, "{:?}", seen.stages);
    // The primary serves nothing: `iscsi-ha status` exits non-zero and says why.
    let r = d.request(Request::Status).await;
    assert!(
        !r.ok && r.message.starts_with("blocked: ") && r.message.contains("tgtd"),
        "{}",
        r.message
    );

    let t = Instant::now();
    let _tgtd = Tgtd::start(d0, CONTROL_PORT, free_port());
    let mut seen = Seen::default();
    seen.until(&mut d, &mut rx, "not served and claimed again", || {
        held_on_v0(A0)
    })
    .await;
    eprintln!("new tgtd -> address claimed again: {:?}", t.elapsed());
    // Then quiet: the new tgtd's report of its (still empty) targets and the release's own
    // address event, both older than the claim, undo nothing.
    let quiet = Instant::now() + Duration::from_millis(1500);
    seen.until(&mut d, &mut rx, "", || Instant::now() >= quiet)
        .await;
    assert_eq!(state(&d), TargetState::Serving);
    let status = d.status().expect("status");
    assert!(status.addresses[0].held && status.converged, "{status:?}");
    let r = d.request(Request::Status).await;
    assert!(r.ok, "{}", r.message);
    assert_eq!(seen.count(Stage::AddressRelease), 0, "{:?}", seen.stages);
    assert_eq!(seen.count(Stage::AddressClaim), 1, "{:?}", seen.stages);
    assert_eq!(seen.count(Stage::ProbeAddress), 1, "{:?}", seen.stages);
    assert!(
        seen.notices
            .iter()
            .all(|n| !n.contains("changed outside the agent")),
        "{:?}",
        seen.notices
    );

    // A report older than our own work (queued while a repair re-created the target) undoes
    // nothing: the daemon reads the target again before taking it in.
    let stale = TargetView {
        state: TargetState::Partial,
        sessions: 0,
    };
    let h = d
        .handle(Event::Target {
            resource: "r0".into(),
            view: stale,
        })
        .await;
    assert!(h.transitions.is_empty() && h.notices.is_empty(), "{h:?}");
    // The same for an address report older than the claim (the address watch's first read at
    // start, queued behind the first promote): no second probe and claim.
    let h = d
        .handle(Event::Address {
            address: A0.into(),
            held: false,
        })
        .await;
    assert!(h.transitions.is_empty() && h.notices.is_empty(), "{h:?}");
    assert!(held_on_v0(A0));
}

/// The stages run (rollbacks apart) and the notices of the events handled.
#[derive(Default)]
struct Seen {
    stages: Vec<Stage>,
    notices: Vec<String>,
}

impl Seen {
    fn count(&self, stage: Stage) -> usize {
        self.stages.iter().filter(|s| **s == stage).count()
    }

    /// Handles the watches' events until `done` holds (at most 20 s, else panics with `what`).
    async fn until(
        &mut self,
        d: &mut D,
        rx: &mut UnboundedReceiver<Event>,
        what: &str,
        done: impl Fn() -> bool,
    ) {
        let deadline = Instant::now() + Duration::from_secs(20);
        while !done() {
            assert!(Instant::now() < deadline, "{what}");
            let ev = tokio::select! {
                Some(ev) = rx.recv() => ev,
                _ = tokio::time::sleep(Duration::from_millis(20)) => continue,
            };
            let h = d.handle(ev).await;
            self.notices
                .extend(h.notices.iter().map(|n| format!("{n:?}")));
            for t in &h.transitions {
                let run = t.stages.iter().filter(|s| !s.rollback && s.ok);
                self.stages.extend(run.map(|s| s.stage));
            }
        }
    }
}
