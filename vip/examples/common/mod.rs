// Shared argument parsing and exit handling for the examples (included with `#[path]`, not an
// example itself).
#![allow(dead_code)] // each example uses only some of these
use std::net::IpAddr;

pub fn usage(verb: &str, extra: &str) -> ! {
    eprintln!("usage: cargo run -p vip --example {verb} -- IFACE ADDR/PREFIX {extra}");
    eprintln!("(needs root: CAP_NET_ADMIN and CAP_NET_RAW)");
    std::process::exit(2)
}

/// `IFACE ADDR/PREFIX` from argv, plus the remaining flags.
pub fn args(verb: &str, extra: &str) -> (String, IpAddr, u8, Vec<String>) {
    let mut a = std::env::args().skip(1);
    let (Some(iface), Some(net)) = (a.next(), a.next()) else {
        usage(verb, extra)
    };
    let Some((addr, prefix)) = net.split_once('/') else {
        usage(verb, extra)
    };
    let (Ok(addr), Ok(prefix)) = (addr.parse::<IpAddr>(), prefix.parse::<u8>()) else {
        usage(verb, extra)
    };
    (iface, addr, prefix, a.collect())
}

/// Ends an example that printed its own output: an error is printed with Display, exit status 1.
pub fn exit_on_error(r: Result<(), vip::VipError>) {
    if let Err(e) = r {
        eprintln!("error: {e}");
        std::process::exit(1);
    }
}
