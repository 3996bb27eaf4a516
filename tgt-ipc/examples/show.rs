//! Prints what `tgtadm --lld iscsi --mode target --op show` prints; with `--parsed`, also the parsed structs.
//!
//! Usage (as root, tgtd running): `cargo run -p tgt-ipc --example show -- [-C N | --socket PATH] [--parsed]`
//! (`TGT_IPC_SOCKET` is honoured as by tgtadm).

#[path = "support/args.rs"]
mod common;

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args: Vec<String> = std::env::args().skip(1).collect();
    let client = common::client(&mut args)?;
    let parsed = args.iter().any(|a| a == "--parsed");
    let text = client.show_targets_text().await?;
    print!("{text}");
    if parsed {
        println!("{:#?}", tgt_ipc::parse_targets(&text)?);
    }
    Ok(())
}
