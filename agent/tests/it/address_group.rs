//! Several floating addresses for one group of resources (multipath portals: an IPv4 and an
//! IPv6 address, or two subnets): written as several `[[address]]` tables naming the same
//! resources, all claimed in the one promote transition after every target serves, and all
//! released in the one demote before the targets go; there is no second order.

use crate::common;

use std::sync::Arc;

use agent::backend::memory::Memory;
use agent::config::Config;
use agent::control::Request;
use agent::daemon::Daemon;
use agent::executor::Executor;

/// `one` with two more addresses for r0: IPv6 and a second IPv4 subnet on another interface.
fn group() -> Config {
    let mut cfg = common::config("one", true);
    let v4 = cfg.addresses[0].clone();
    let mut v6 = v4.clone();
    v6.address = "fd00::10/64".parse().unwrap();
    let mut other = v4.clone();
    other.address = "10.0.1.10/24".parse().unwrap();
    other.interface = "eth1".into();
    cfg.addresses.extend([v6, other]);
    cfg.validate().expect("a group of three addresses is valid");
    cfg
}

/// Where `what` stands in the backend call `log`.
fn at(log: &[String], what: &str) -> usize {
    log.iter()
        .position(|l| l == what)
        .unwrap_or_else(|| panic!("{what} not in {log:?}"))
}

#[tokio::test]
async fn addresses_of_a_group_claimed_and_released_together() {
    let cfg = group();
    let mem = Memory::healthy_secondary(&cfg);
    let mut d = Daemon::new(Executor::new(
        Arc::new(cfg.clone()),
        mem.clone(),
        mem.clone(),
        mem.clone(),
    ));
    d.observe().await;
    mem.world().log.clear();
    let addrs: Vec<String> = cfg
        .addresses
        .iter()
        .map(|a| a.address.to_string())
        .collect();

    let r = d.request(Request::Promote).await;
    assert!(r.ok, "{}", r.message);
    let log = mem.world().log.clone();
    let serve = at(&log, "target-serve r0");
    for a in &addrs {
        assert!(at(&log, &format!("address-claim {a}")) > serve, "{log:?}");
    }
    assert!(mem.world().addresses.values().all(|held| *held));
    let status = r.status.expect("status");
    assert_eq!(status.transitions.len(), 1, "one promote: {log:?}");
    assert!(status.addresses.iter().all(|a| a.held));

    mem.world().log.clear();
    let r = d.request(Request::Demote).await;
    assert!(r.ok, "{}", r.message);
    let log = mem.world().log.clone();
    let remove = at(&log, "target-remove r0");
    for a in &addrs {
        assert!(
            at(&log, &format!("address-release {a}")) < remove,
            "{log:?}"
        );
    }
    assert!(mem.world().addresses.values().all(|held| !*held));
}

/// The same address twice is refused, whatever prefix it is written with.
#[test]
fn one_address_in_two_groups_refused() {
    let mut cfg = group();
    cfg.addresses[2].address = "10.0.0.10/16".parse().unwrap();
    let (key, reason) = cfg.validate().expect_err("duplicate");
    assert_eq!(key, "address[2].address");
    assert!(reason.contains("duplicate"), "{reason}");
}
