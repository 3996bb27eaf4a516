//! Ask the link whether another host answers for an address, without adding it (like iputils
//! `arping -D -I IFACE ADDR`: RFC 5227 ARP probes for IPv4, NS from `::` for IPv6). Exit status
//! as `arping -D`: 0 when nobody answered, 1 on a conflict.
//!
//! `cargo run -p vip --example probe -- eth0 192.0.2.10/24 [WINDOW_MS]`
#[path = "common/mod.rs"]
mod common;

use std::time::Duration;

use vip::{ProbePolicy, Vip};

#[tokio::main(flavor = "current_thread")]
async fn main() {
    match run().await {
        Ok(free) => std::process::exit(if free { 0 } else { 1 }),
        Err(e) => {
            eprintln!("error: {e}");
            std::process::exit(2);
        }
    }
}

async fn run() -> Result<bool, vip::VipError> {
    let (iface, addr, prefix, rest) = common::args("probe", "[WINDOW_MS]");
    let mut policy = ProbePolicy::default();
    if let Some(ms) = rest.first() {
        let Ok(ms) = ms.parse::<u64>() else {
            common::usage("probe", "[WINDOW_MS]")
        };
        policy.window = Duration::from_millis(ms);
    }
    let mut vip = Vip::new(iface.clone(), addr, prefix)?;
    let r = vip.probe(&policy).await?;
    match r.conflict {
        Some(mac) => {
            println!("Unicast reply from {addr} [{mac}] on {iface}: address in use");
            println!("Received 1 response(s) in {:?}", r.total);
            Ok(false)
        }
        None => {
            println!(
                "{addr} is free on {iface} ({} probe(s), no answer in {:?})",
                policy.count, r.total
            );
            Ok(true)
        }
    }
}
