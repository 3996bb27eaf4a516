//! Networks: a private network namespace per lab with a bridge and one tap per node, and a client
//! namespace joined to the bridge by a veth pair. Nothing is created in the host's own namespace,
//! so lab addresses exist nowhere else. Names carry the owner's pid (and a counter), so parallel
//! runs cannot collide and stale labs of dead processes can be recognised and swept.

use anyhow::{bail, Context, Result};
use std::net::Ipv4Addr;
use std::process::Command;
use std::sync::atomic::{AtomicU32, Ordering};

/// The lab subnet (a /24, used only inside the lab's namespaces).
pub const SUBNET: [u8; 3] = [10, 99, 0];
/// Bridge name inside the lab namespace.
pub const BRIDGE: &str = "labbr";

/// Address of node `i` (0-based): `10.99.0.(i+1)`.
pub fn node_ip(i: usize) -> Ipv4Addr {
    Ipv4Addr::new(SUBNET[0], SUBNET[1], SUBNET[2], (i as u8).wrapping_add(1))
}
/// The spare floating address for tests and the drill: `10.99.0.50`.
pub const FLOATING_IP: Ipv4Addr = Ipv4Addr::new(10, 99, 0, 50);
/// The client namespace's address: `10.99.0.100`.
pub const CLIENT_IP: Ipv4Addr = Ipv4Addr::new(10, 99, 0, 100);
/// Prefix length of the lab subnet.
pub const PREFIX: u8 = 24;

/// MAC address of node `i`: `52:54:00:99:00:(i+1)`.
pub fn node_mac(i: usize) -> String {
    format!("52:54:00:99:00:{:02x}", i + 1)
}
/// Tap name of node `i` inside the lab namespace.
pub fn tap(i: usize) -> String {
    format!("labtap{i}")
}

static COUNTER: AtomicU32 = AtomicU32::new(0);

/// A fresh lab name: `lab<pid>x<counter>`; the namespaces are `<name>` and `<name>c`.
pub fn unique_name() -> String {
    format!(
        "lab{}x{}",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::SeqCst)
    )
}

/// Client namespace name of lab `name`.
pub fn client_ns(name: &str) -> String {
    format!("{name}c")
}

/// Runs `ip ARGS`, error with its output on failure.
pub fn ip(args: &[&str]) -> Result<String> {
    let out = Command::new("ip")
        .args(args)
        .output()
        .context("cannot start `ip` (iproute2)")?;
    if !out.status.success() {
        bail!(
            "ip {} failed: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// Creates both namespaces, the bridge, `nodes` taps and the client veth.
pub fn create(name: &str, nodes: usize) -> Result<()> {
    let c = client_ns(name);
    ip(&["netns", "add", name])?;
    ip(&["netns", "add", &c])?;
    let n = |args: &[&str]| -> Result<String> {
        let mut v = vec!["-n", name];
        v.extend_from_slice(args);
        ip(&v)
    };
    n(&["link", "set", "lo", "up"])?;
    n(&["link", "add", BRIDGE, "type", "bridge"])?;
    // Forward at once: no STP listening delay on the bridge ports.
    n(&[
        "link",
        "set",
        BRIDGE,
        "type",
        "bridge",
        "forward_delay",
        "0",
    ])?;
    n(&["link", "set", BRIDGE, "up"])?;
    for i in 0..nodes {
        let t = tap(i);
        n(&["tuntap", "add", &t, "mode", "tap"])?;
        n(&["link", "set", &t, "master", BRIDGE])?;
        n(&["link", "set", &t, "up"])?;
    }
    n(&[
        "link", "add", "vcli", "type", "veth", "peer", "name", "eth0", "netns", &c,
    ])?;
    n(&["link", "set", "vcli", "master", BRIDGE])?;
    n(&["link", "set", "vcli", "up"])?;
    let cidr = format!("{CLIENT_IP}/{PREFIX}");
    ip(&["-n", &c, "link", "set", "lo", "up"])?;
    ip(&["-n", &c, "addr", "add", &cidr, "dev", "eth0"])?;
    ip(&["-n", &c, "link", "set", "eth0", "up"])?;
    Ok(())
}

/// Pids of processes inside namespace `ns` (`ip netns pids`).
pub fn pids_in(ns: &str) -> Vec<i32> {
    ip(&["netns", "pids", ns])
        .map(|s| {
            s.split_whitespace()
                .filter_map(|p| p.parse().ok())
                .collect()
        })
        .unwrap_or_default()
}

/// Deletes namespace `ns` (ignores a missing one).
pub fn delete(ns: &str) {
    let _ = ip(&["netns", "del", ns]);
}

/// Lab namespaces on this machine: `(name, owner pid)` for every `lab<pid>x<n>` namespace.
pub fn list_labs() -> Vec<(String, i32)> {
    let text = ip(&["netns", "list"]).unwrap_or_default();
    let mut out = Vec::new();
    for l in text.lines() {
        let n = l.split_whitespace().next().unwrap_or("");
        let Some(rest) = n.strip_prefix("lab") else {
            continue;
        };
        let Some((pid, ctr)) = rest.split_once('x') else {
            continue;
        };
        if ctr.chars().all(|c| c.is_ascii_digit()) && !ctr.is_empty() {
            if let Ok(pid) = pid.parse() {
                out.push((n.to_string(), pid));
            }
        }
    }
    out
}
