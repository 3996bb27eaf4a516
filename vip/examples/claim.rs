//! Claim a floating address: probe, add, announce (like `arping -D` + `ip addr add` +
//! `arping -U`, or IPaddr2 start).
//!
//! `cargo run -p vip --example claim -- eth0 192.0.2.10/24 [--no-probe] [--reply|--both] [--once]`
//!
//! Prints each step with its duration, then one line per announcement frame until the
//! schedule (5 at 200 ms, 5 more after 5 s; `--once`: the first announcement only) is done.
#[path = "common/mod.rs"]
mod common;

use vip::{AnnounceMode, ClaimOptions, Vip};

#[tokio::main(flavor = "current_thread")]
async fn main() {
    common::exit_on_error(run().await);
}

async fn run() -> Result<(), vip::VipError> {
    let usage = "[--no-probe] [--reply|--both] [--once]";
    let (iface, addr, prefix, flags) = common::args("claim", usage);
    let mut opts = ClaimOptions::default();
    for f in &flags {
        match f.as_str() {
            "--no-probe" => opts.probe = None,
            "--reply" => opts.announce.mode = AnnounceMode::Reply,
            "--both" => opts.announce.mode = AnnounceMode::Both,
            "--once" => {
                opts.announce.count = 1;
                opts.announce.second_burst_after = None;
            }
            _ => common::usage("claim", usage),
        }
    }
    let mut vip = Vip::new(iface.clone(), addr, prefix)?;
    let mut r = vip.claim(&opts).await?;
    println!(
        "claimed {addr}/{prefix} on {iface} (ifindex {}, {})",
        r.ifindex, r.mac
    );
    println!("  checks          {:?}", r.check);
    match r.probe {
        Some(p) => println!("  probe           {p:?} (no conflict)"),
        None if r.already_held => println!("  probe           skipped (already held)"),
        None => println!("  probe           off"),
    }
    if r.already_held {
        println!("  add             skipped (already held)");
    } else {
        println!("  add             {:?}", r.add);
    }
    println!("  first announce  {:?}", r.first_announce);
    println!("  total           {:?}", r.total);
    // The stream stays open while the address is held (it follows the link): stop after the
    // claim's own schedule (no refresh by default).
    let p = &opts.announce;
    let per_round = if p.mode == AnnounceMode::Both { 2 } else { 1 };
    let bursts = if p.second_burst_after.is_some() { 2 } else { 1 };
    let mut left = p.count.max(1) * bursts * per_round;
    while let Some(a) = r.announcements.next().await {
        left -= 1;
        let status = match &a.result {
            Ok(()) => "sent".to_string(),
            Err(e) => format!("FAILED: {e}"),
        };
        println!(
            "  announce {:?} burst {} #{} {:?} from {} at +{:?}: {status}",
            a.cause, a.burst, a.index, a.kind, a.mac, a.at
        );
        if left == 0 {
            break;
        }
    }
    Ok(())
}
