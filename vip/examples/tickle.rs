//! List the TCP connections to ADDR:PORT (like `ss -tn state established src ADDR:PORT`),
//! and with `--send [N]` send N (1-10, default 3) tickle ACKs to each, so that the clients
//! reset them at once. Like CTDB's `ctdb tickle`, but only from the node that holds ADDR in its
//! own network namespace (`ctdb tickle` resets a given connection from any node): the raw
//! socket is bound to ADDR, so the kernel refuses to send from an address it does not hold.
//!
//! `cargo run -p vip --example tickle -- 192.0.2.10:3260 [--send [N]]`
//! (listing needs no privilege; `--send` needs CAP_NET_RAW). Exit status: 0, 1 when anything
//! failed (after printing what was sent), 2 for bad arguments.
use std::net::SocketAddr;
use std::time::Instant;

use vip::tickle;

const USAGE: &str = "usage: tickle ADDR:PORT [--send [N]]";

const HELP: &str = "\
Lists the TCP connections whose local end is ADDR:PORT (sock_diag, no privilege needed).
With --send, sends each of them N tickle ACKs (1-10, default 3; CAP_NET_RAW) from ADDR, so
that the client resets the connection at once. ADDR must be an address of this host, in this
network namespace. Sends that meet a full queue (ENOBUFS/EAGAIN) are retried after 5, 10, 20,
40 and 80 ms. Exit status: 0; 1 when listing or any send failed; 2 for bad arguments.";

/// `--send`'s N: the agent's `[tickle] repeat` range.
const REPEAT: std::ops::RangeInclusive<u32> = 1..=10;

fn usage(why: &str) -> ! {
    eprintln!("tickle: {why}\n{USAGE} (--help for more)");
    std::process::exit(2)
}

/// ADDR:PORT and the repeat count of `--send`, from the arguments after the program name.
fn parse(args: &[String]) -> (SocketAddr, Option<u32>) {
    if args.iter().any(|a| a == "--help" || a == "-h") {
        println!("{USAGE}\n\n{HELP}");
        std::process::exit(0);
    }
    let (at, rest) = match args.split_first() {
        Some((at, rest)) => (at, rest),
        None => usage("missing ADDR:PORT"),
    };
    let at = at
        .parse::<SocketAddr>()
        .unwrap_or_else(|e| usage(&format!("{at}: {e} (expected ADDR:PORT, [v6]:PORT)")));
    let repeat = match rest {
        [] => None,
        [s] if s == "--send" => Some(3),
        [s, n] if s == "--send" => match n.parse::<u32>() {
            Ok(n) if REPEAT.contains(&n) => Some(n),
            _ => usage(&format!("--send {n}: N must be 1 to 10")),
        },
        [s, ..] if s != "--send" => usage(&format!("unexpected argument {s}")),
        [_, _, extra, ..] => usage(&format!("unexpected argument {extra}")),
        [_, ..] => usage("bad arguments"),
    };
    (at, repeat)
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (at, repeat) = parse(&args);
    match run(at, repeat).await {
        Ok(true) => {}
        Ok(false) => std::process::exit(1),
        Err(e) => {
            eprintln!("error: {e}");
            std::process::exit(1);
        }
    }
}

/// Lists, sends if asked; false when a send failed.
async fn run(at: SocketAddr, repeat: Option<u32>) -> Result<bool, tickle::TickleError> {
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
    let Some(repeat) = repeat else {
        return Ok(true);
    };
    let start = Instant::now();
    let sent = tickle::send_retrying(&conns, repeat).await?;
    println!(
        "sent {} of {} tickle ACK(s) in {:?}",
        sent.packets,
        conns.len() * repeat as usize,
        start.elapsed()
    );
    for c in &sent.retry {
        println!(
            "not sent {} -> {}: queue still full after the retries",
            c.local, c.remote
        );
    }
    for (c, why) in &sent.failed {
        println!("failed {} -> {}: {why}", c.local, c.remote);
    }
    Ok(sent.retry.is_empty() && sent.failed.is_empty())
}
