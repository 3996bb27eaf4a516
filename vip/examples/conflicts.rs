//! Watch a held floating address for other hosts using it (RFC 5227 §2.4; IPv6: neighbour
//! advertisements for it): one line per conflicting frame, and one defensive announcement at
//! most every 10 s (RFC 5227 §2.4 (c), "defend indefinitely"). The address is not claimed or
//! released here.
//!
//! `cargo run -p vip --example conflicts -- eth0 192.0.2.10/24`
#[path = "common/mod.rs"]
mod common;

use vip::{AnnounceMode, Defender, Vip};

#[tokio::main(flavor = "current_thread")]
async fn main() {
    common::exit_on_error(run().await);
}

async fn run() -> Result<(), vip::VipError> {
    let (iface, addr, prefix, _) = common::args("conflicts", "");
    let mut vip = Vip::new(iface.clone(), addr, prefix)?;
    let t = tokio::time::Instant::now();
    let mut w = vip.conflict_watch().await?;
    println!(
        "watching {addr}/{prefix} on {iface} (ours: {}): {}",
        w.mac(),
        if vip.is_held().await? {
            "held"
        } else {
            "not held, nothing will be defended"
        }
    );
    let mut defender = Defender::default();
    loop {
        let c = w.next().await?;
        println!(
            "+{:?} CONFLICT {} also uses {addr} ({:?})",
            c.at.duration_since(t),
            c.mac,
            c.kind
        );
        if defender.should_defend(c.at) {
            match vip.defend(AnnounceMode::Request).await {
                Ok(sent) => println!("  defended ({} frame(s))", sent.len()),
                Err(e) => println!("  not defended: {e}"),
            }
        }
    }
}
