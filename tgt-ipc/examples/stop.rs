//! Stops serving a target: unbind its ACLs, set it offline, close every connection, delete each LU,
//! delete with force. Refused when TID holds another IQN. Prints what it did.
//!
//! Usage (as root, tgtd running): `cargo run -p tgt-ipc --example stop -- [-C N | --socket PATH] TID IQN`.
//! Equivalent tgtadm steps: target show; target unbind (each ACL); target update state=offline; conn
//! delete (each connection); target delete --force (logicalunit delete of each LU first only after
//! tgtd refused it for a busy LU).

#[path = "support/args.rs"]
mod common;

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args: Vec<String> = std::env::args().skip(1).collect();
    let client = common::client(&mut args)?;
    let [tid, iqn] = args.as_slice() else {
        eprintln!("usage: stop [-C N | --socket PATH] TID IQN");
        std::process::exit(2);
    };
    let t0 = std::time::Instant::now();
    let outcome = client.stop_serving(tid.parse()?, iqn).await?;
    println!("{outcome:?} in {:?}", t0.elapsed());
    Ok(())
}
