//! An agent killed after adding its address but before announcing it, then restarted: the new
//! run finds the address held while primary, adopts it (no add, no probe) and sends the full
//! announcement burst, so a neighbour still holding the old primary's MAC learns ours. Two
//! namespaces made by the test (this node and a neighbour, joined by a veth pair); DRBD and the
//! target in memory, already Primary and serving. Needs root and `ip`: skipped without them, a
//! failure with CI=true.

use crate::common;

use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

use agent::backend::memory::Memory;
use agent::backend::vip::NetlinkAddress;
use agent::backend::Address;
use agent::config::Config;
use agent::control::Request;
use agent::daemon::Daemon;
use agent::executor::Executor;
use agent::fsm::{Role, TargetState};
use test_support::netns::{in_ns, Netns};

const VIP: &str = "10.99.0.10";
const STALE_MAC: &str = "02:de:ad:00:00:01";

fn config() -> Config {
    common::address_config("adopt-test", 3)
}

/// `ip ARGS` in `ns`, its stdout.
fn ip_out(ns: &Netns, args: &[&str]) -> String {
    let out = Command::new("ip")
        .args(["-n", ns.name()])
        .args(args)
        .output()
        .expect("ip runs");
    assert!(out.status.success(), "ip {args:?}: {out:?}");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The MAC address of `dev` in `ns`.
fn mac_of(ns: &Netns, dev: &str) -> String {
    let text = ip_out(ns, &["-o", "link", "show", "dev", dev]);
    let mut words = text.split_whitespace();
    words.find(|w| *w == "link/ether").expect("ethernet");
    words.next().expect("MAC").to_string()
}

/// The neighbour's entry for the address, as `ip neigh` prints it.
fn neighbour_entry(c: &Netns) -> String {
    ip_out(c, &["neigh", "show", VIP, "dev", "v1"])
}

#[test]
fn restart_with_held_address_announces_it() {
    let ok = test_support::prereq::Prereqs::new("agent adopt-announce test")
        .root()
        .tools(&["ip"])
        .check();
    if !ok {
        return;
    }
    let a = Netns::add(Netns::unique_name("adoptA")).unwrap_or_else(|e| panic!("{e}"));
    let c = Netns::add(Netns::unique_name("adoptC")).unwrap_or_else(|e| panic!("{e}"));
    let setup = |ns: &Netns, args: &[&str]| ns.ip(args).unwrap_or_else(|e| panic!("{e}"));
    a.veth_to("v0", &c, "v1").unwrap_or_else(|e| panic!("{e}"));
    setup(&c, &["addr", "add", "10.99.0.20/24", "dev", "v1"]);
    // What the killed agent left: the address added, not (fully) announced.
    setup(&a, &["addr", "add", "10.99.0.10/24", "dev", "v0"]);
    // The neighbour still knows the old primary's MAC.
    setup(
        &c,
        &[
            "neigh", "replace", VIP, "lladdr", STALE_MAC, "nud", "stale", "dev", "v1",
        ],
    );
    let r: std::io::Result<()> = in_ns(c.name(), || async {
        std::fs::write("/proc/sys/net/ipv4/conf/v1/arp_accept", "1")
    });
    r.expect("arp_accept in the neighbour");
    let ours = mac_of(&a, "v0");
    assert!(neighbour_entry(&c).contains(STALE_MAC));

    let plan = in_ns(a.name(), || async {
        let cfg = Arc::new(config());
        let addr = Arc::new(NetlinkAddress::new(&cfg).expect("vip handles"));
        let mem = Memory::healthy_secondary(&cfg);
        {
            let mut w = mem.world();
            w.drbd.get_mut("r0").expect("r0").role = Role::Primary;
            w.targets.get_mut("r0").expect("r0").state = TargetState::Serving;
        }
        let mut d = Daemon::new(Executor::new(cfg.clone(), mem.clone(), mem, addr.clone()));
        d.observe().await;
        // The role source says primary again (here the `command` source's promote).
        let r = d.request(Request::Promote).await;
        assert!(r.ok, "{}", r.message);
        assert!(addr.held(&cfg.addresses[0]).await.expect("held"));
        let rec = r.status.and_then(|s| s.transitions.last().cloned());
        // Let the rest of the schedule go out before the runtime (and vip's task) ends.
        tokio::time::sleep(Duration::from_millis(300)).await;
        rec.map(|r| r.stages.iter().map(|s| s.stage).collect::<Vec<_>>())
    });
    // Generous bound for a loaded machine; not a timing assertion.
    let deadline = Instant::now() + Duration::from_secs(5);
    let mut entry = neighbour_entry(&c);
    while !entry.contains(&ours) && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
        entry = neighbour_entry(&c);
    }
    assert!(
        entry.contains(&ours),
        "neighbour still has {entry:?}, want our MAC {ours}"
    );
    let stages = plan.expect("a transition ran after the restart");
    assert_eq!(
        stages,
        vec![agent::fsm::Stage::AddressClaim],
        "adopt only: no probe"
    );
}
