//! List the TCP connections to ADDR:PORT (like `ss -tn state established src ADDR:PORT`),
//! and with `--send [N]` send N (default 3) tickle ACKs to each, so that the clients reset them
//! at once (CTDB's `ctdb tickle`). The address must be on this host for `--send`.
//!
//! `cargo run -p vip --example tickle -- 192.0.2.10:3260 [--send [N]]`
//! (listing needs no privilege; `--send` needs CAP_NET_RAW)
use std::net::SocketAddr;
use std::time::Instant;

use vip::tickle;

fn usage() -> ! {
    eprintln!("usage: cargo run -p vip --example tickle -- ADDR:PORT [--send [N]]");
    std::process::exit(2)
}

fn main() {
    if let Err(e) = run() {
        eprintln!("error: {e}");
        std::process::exit(1);
    }
}

fn run() -> Result<(), tickle::TickleError> {
    let mut args = std::env::args().skip(1);
    let Some(Ok(at)) = args.next().map(|a| a.parse::<SocketAddr>()) else {
        usage()
    };
    let repeat = match (args.next().as_deref(), args.next()) {
        (None, _) => None,
        (Some("--send"), None) => Some(3),
        (Some("--send"), Some(n)) => Some(n.parse::<u32>().unwrap_or_else(|_| usage())),
        _ => usage(),
    };
    let start = Instant::now();
    let conns = tickle::connections(at.ip(), at.port())?;
    let listed = start.elapsed();
    for c in &conns {
        println!("{} -> {}", c.local, c.remote);
    }
    println!(
        "{} connection(s) to {at} (sock_diag dump {listed:?})",
        conns.len()
    );
    if let Some(repeat) = repeat {
        let start = Instant::now();
        let sent = tickle::send(&conns, repeat)?;
        println!(
            "sent {} tickle ACK(s) in {:?}",
            sent.packets,
            start.elapsed()
        );
        for (c, why) in &sent.failed {
            println!("failed {} -> {}: {why}", c.local, c.remote);
        }
    }
    Ok(())
}
