//! Test lab: three network namespaces (A, B, C) on a bridge that lives in a fourth one, all
//! named after the test process id and a counter so parallel runs never collide, all removed
//! by `Drop` (also when the test fails). Spawning `ip` here is allowed: this is a harness.
//!
//! Code under test runs inside a namespace on a dedicated thread that `setns(2)`s into it and
//! then builds its own current-thread tokio runtime; sockets keep the namespace they were
//! created in.

#![allow(dead_code)]

use std::net::IpAddr;
use std::time::{Duration, Instant};

use futures::TryStreamExt;
use rtnetlink::packet_route::neighbour::{NeighbourAddress, NeighbourAttribute, NeighbourState};
use rtnetlink::packet_route::AddressFamily;
pub use test_support::netns::in_ns;
use test_support::netns::{ip, Netns};
use vip::MacAddr;

/// Subnets used only inside the lab bridge.
pub const NET4: &str = "10.77.0";
pub const NET6: &str = "fd77::";

/// One node of the lab.
#[derive(Debug, Clone)]
pub struct Node {
    /// Namespace name.
    pub ns: String,
    /// MAC of its `eth0`.
    pub mac: MacAddr,
}

/// The namespaces and the bridge; dropped = deleted.
#[derive(Debug)]
pub struct Lab {
    /// Namespace of the bridge and the nodes' ports (`pa`, `pb`, `pc`).
    pub br: String,
    pub a: Node,
    pub b: Node,
    pub c: Node,
}

/// Root and namespaces are needed; without them: fail under `CI=true`, else print SKIP.
pub fn lab(test: &str) -> Option<Lab> {
    let why = if !nix::unistd::geteuid().is_root() {
        Some("not root".to_string())
    } else {
        match Lab::new() {
            Ok(l) => return Some(l),
            Err(e) => Some(e),
        }
    };
    let why = why.unwrap_or_default();
    test_support::prereq::skip(format!("{test}: needs root and network namespaces: {why}"));
    None
}

impl Lab {
    fn new() -> Result<Lab, String> {
        let base = Netns::unique_name("vipt");
        // The counter part of the name keeps MACs unique between this process's labs.
        let n: u32 = base
            .rsplit('x')
            .next()
            .and_then(|n| n.parse().ok())
            .unwrap_or(0);
        let br = format!("{base}br");
        ip(&["netns", "add", &br])?;
        let mut lab = Lab {
            br: br.clone(),
            a: Node {
                ns: String::new(),
                mac: MacAddr::ZERO,
            },
            b: Node {
                ns: String::new(),
                mac: MacAddr::ZERO,
            },
            c: Node {
                ns: String::new(),
                mac: MacAddr::ZERO,
            },
        };
        ip(&[
            "-n",
            &br,
            "link",
            "add",
            "br0",
            "type",
            "bridge",
            "mcast_snooping",
            "0",
        ])?;
        ip(&["-n", &br, "link", "set", "br0", "up"])?;
        for (i, name) in ["a", "b", "c"].iter().enumerate() {
            let ns = format!("{base}{name}");
            ip(&["netns", "add", &ns])?;
            let node = Node {
                ns: ns.clone(),
                mac: MacAddr([0x02, 0x77, 0, 0, n as u8, i as u8 + 1]),
            };
            match *name {
                "a" => lab.a = node.clone(),
                "b" => lab.b = node.clone(),
                _ => lab.c = node.clone(),
            }
            let port = format!("p{name}");
            ip(&[
                "-n", &br, "link", "add", &port, "type", "veth", "peer", "name", "eth0", "netns",
                &ns,
            ])?;
            ip(&["-n", &br, "link", "set", &port, "master", "br0", "up"])?;
            ip(&[
                "-n",
                &ns,
                "link",
                "set",
                "eth0",
                "address",
                &node.mac.to_string(),
            ])?;
            ip(&["-n", &ns, "link", "set", "lo", "up"])?;
            ip(&["-n", &ns, "link", "set", "eth0", "up"])?;
            let a4 = format!("{NET4}.{}/24", i + 1);
            ip(&["-n", &ns, "addr", "add", &a4, "dev", "eth0"])?;
            let a6 = format!("{NET6}{}/64", i + 1);
            ip(&["-n", &ns, "addr", "add", &a6, "dev", "eth0", "nodad"])?;
        }
        Ok(lab)
    }

    /// Lets C learn neighbours from unsolicited frames alone (C never sends anything):
    /// - IPv4: Linux only updates existing entries from gratuitous ARP unless `arp_accept=1`
    ///   (`net/ipv4/arp.c` `arp_accept()`), so set it for all and eth0.
    /// - IPv6: an unsolicited NA for an address absent from the cache creates a STALE entry
    ///   only with `accept_untracked_na=1` on a forwarding interface (RFC 9131,
    ///   `ndisc_recv_na()`); `drop_unsolicited_na` stays 0 (default).
    pub fn c_learns_unsolicited(&self) {
        let r: Result<(), String> = in_ns(&self.c.ns, || async {
            for (p, v) in [
                ("/proc/sys/net/ipv4/conf/all/arp_accept", "1"),
                ("/proc/sys/net/ipv4/conf/eth0/arp_accept", "1"),
                ("/proc/sys/net/ipv6/conf/eth0/forwarding", "1"),
                ("/proc/sys/net/ipv6/conf/eth0/accept_untracked_na", "1"),
                ("/proc/sys/net/ipv6/conf/eth0/drop_unsolicited_na", "0"),
            ] {
                std::fs::write(p, v).map_err(|e| format!("{p}: {e}"))?;
            }
            Ok(())
        });
        r.expect("sysctls in C");
    }

    /// Runs `ip -n NS ARGS...` (test-side changes "from outside").
    pub fn ip_in(&self, ns: &str, args: &[&str]) {
        let mut v = vec!["-n", ns];
        v.extend_from_slice(args);
        ip(&v).expect("ip command");
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        for ns in [&self.a.ns, &self.b.ns, &self.c.ns, &self.br] {
            if !ns.is_empty() {
                let _ = ip(&["netns", "del", ns]);
            }
        }
    }
}

/// C's neighbour entry for `addr` on eth0, read through rtnetlink (`ip neigh show`).
pub async fn neighbour(addr: IpAddr) -> Option<(MacAddr, NeighbourState)> {
    let (conn, handle, _) = rtnetlink::new_connection().expect("netlink");
    let task = tokio::spawn(conn);
    let family = if addr.is_ipv4() {
        AddressFamily::Inet
    } else {
        AddressFamily::Inet6
    };
    let mut s = handle
        .neighbours()
        .get()
        .set_address_family(family)
        .execute();
    let mut found = None;
    while let Some(m) = s.try_next().await.expect("neighbour dump") {
        let mut dst = None;
        let mut ll = None;
        for a in &m.attributes {
            match a {
                NeighbourAttribute::Destination(NeighbourAddress::Inet(v)) => {
                    dst = Some(IpAddr::V4(*v))
                }
                NeighbourAttribute::Destination(NeighbourAddress::Inet6(v)) => {
                    dst = Some(IpAddr::V6(*v))
                }
                NeighbourAttribute::LinkLayerAddress(b) => ll = MacAddr::from_slice(b),
                _ => {}
            }
        }
        if dst == Some(addr) {
            if let Some(mac) = ll {
                found = Some((mac, m.header.state));
            }
        }
    }
    task.abort();
    found
}

/// Polls C's neighbour table until `addr` maps to `mac` (up to 3 s); returns the entry seen
/// last and how long it took.
pub fn wait_neighbour(
    c: &Node,
    addr: IpAddr,
    mac: MacAddr,
) -> (Option<(MacAddr, NeighbourState)>, Duration) {
    in_ns(&c.ns, move || async move {
        let start = Instant::now();
        loop {
            let e = neighbour(addr).await;
            if e.as_ref().map(|(m, _)| *m) == Some(mac) || start.elapsed() > Duration::from_secs(3)
            {
                return (e, start.elapsed());
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    })
}
