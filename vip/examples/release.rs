//! Release a floating address (like `ip addr del ADDR/PREFIX dev IFACE`, or IPaddr2 stop).
//! Idempotent: releasing an address that is not there succeeds and says so.
//!
//! `cargo run -p vip --example release -- eth0 192.0.2.10/24`
#[path = "common/mod.rs"]
mod common;

use vip::Vip;

#[tokio::main(flavor = "current_thread")]
async fn main() {
    common::exit_on_error(run().await);
}

async fn run() -> Result<(), vip::VipError> {
    let (iface, addr, prefix, _) = common::args("release", "");
    let mut vip = Vip::new(iface.clone(), addr, prefix)?;
    let r = vip.release().await?;
    if r.removed {
        println!("released {addr}/{prefix} from {iface} in {:?}", r.total);
    } else {
        println!(
            "{addr}/{prefix} was not on {iface} (nothing to do, {:?})",
            r.total
        );
    }
    Ok(())
}
