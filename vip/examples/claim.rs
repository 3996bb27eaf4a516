//! Claim a floating address: probe, add, announce (like `arping -D` + `ip addr add` +
//! `arping -U`, or IPaddr2 start).
//!
//! `cargo run -p vip --example claim -- eth0 192.0.2.10/24 [--no-probe] [--reply|--both]`
//!
//! Prints each step with its duration, then one line per announcement frame until the
//! schedule (5 at 200 ms, 5 more after 5 s) is done.
#[path = "common/mod.rs"]
mod common;

use vip::{AnnounceMode, ClaimOptions, Vip};

#[tokio::main(flavor = "current_thread")]
async fn main() {
    common::exit_on_error(run().await);
}

async fn run() -> Result<(), vip::VipError> {
    let (iface, addr, prefix, flags) = common::args("claim", "[--no-probe] [--reply|--both]");
    let mut opts = ClaimOptions::default();
    for f in &flags {
        match f.as_str() {
            "--no-probe" => opts.probe = None,
            "--reply" => opts.announce.mode = AnnounceMode::Reply,
            "--both" => opts.announce.mode = AnnounceMode::Both,
            _ => common::usage("claim", "[--no-probe] [--reply|--both]"),
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
    // The stream stays open while the address is held (it follows the link); stop once the
    // claim's schedule has been quiet for longer than its gaps.
    let quiet = std::time::Duration::from_secs(6);
    while let Ok(Some(a)) = tokio::time::timeout(quiet, r.announcements.next()).await {
        let status = match &a.result {
            Ok(()) => "sent".to_string(),
            Err(e) => format!("FAILED: {e}"),
        };
        println!(
            "  announce {:?} burst {} #{} {:?} from {} at +{:?}: {status}",
            a.cause, a.burst, a.index, a.kind, a.mac, a.at
        );
    }
    Ok(())
}
