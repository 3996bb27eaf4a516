//! Watch a floating address and its link (like `ip monitor link address`, filtered): prints
//! whether it is held now, then one line per event with the time since the watch started.
//!
//! `cargo run -p vip --example watch -- eth0 192.0.2.10/24`
#[path = "common/mod.rs"]
mod common;

use futures::StreamExt;
use vip::Vip;

#[tokio::main(flavor = "current_thread")]
async fn main() {
    common::exit_on_error(run().await);
}

async fn run() -> Result<(), vip::VipError> {
    let (iface, addr, prefix, _) = common::args("watch", "");
    let vip = Vip::new(iface.clone(), addr, prefix)?;
    let t = tokio::time::Instant::now();
    let mut w = vip.watch().await?;
    println!(
        "watching {addr}/{prefix} on {iface}: {} (setup {:?})",
        if vip.is_held().await? {
            "held"
        } else {
            "not held"
        },
        t.elapsed()
    );
    while let Some(ev) = w.next().await {
        println!("+{:?} {ev:?}", t.elapsed());
    }
    println!("netlink socket closed");
    Ok(())
}
