//! Prints what `tgtadm --mode sys --op show` prints.
//!
//! Usage (as root, tgtd running): `cargo run -p tgt-ipc --example system -- [-C N | --socket PATH]`.

#[path = "support/args.rs"]
mod common;

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args: Vec<String> = std::env::args().skip(1).collect();
    let client = common::client(&mut args)?;
    print!("{}", client.show_system_text().await?);
    Ok(())
}
