//! Serves one target with one LUN, identity and ACLs in the safe order, then prints it as
//! `tgtadm --lld iscsi --mode target --op show` would. Idempotent: run twice, the second says "already".
//!
//! Usage (as root, tgtd running):
//! `cargo run -p tgt-ipc --example serve -- [-C N | --socket PATH] TID IQN BACKING_PATH SCSI_ID SCSI_SN [ACL...]`
//! where ACL is `ALL`, an address (`10.0.0.0/24`) or an initiator name (`iqn...`). Equivalent tgtadm steps:
//! target new; logicalunit new (bsoflags=sync); logicalunit update
//! scsi_id=..,scsi_sn=..,mode_page=8:0:18:0x10:... (mode_page: write-through); target bind ... (last:
//! a new target has an empty ACL, nobody logs in before it).

#[path = "support/args.rs"]
mod common;

use tgt_ipc::{Acl, CacheMode, LunBacking, LunIdentity, ServeLun, ServeSpec};

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args: Vec<String> = std::env::args().skip(1).collect();
    let client = common::client(&mut args)?;
    let [tid, iqn, path, scsi_id, scsi_sn, acls @ ..] = args.as_slice() else {
        eprintln!(
            "usage: serve [-C N | --socket PATH] TID IQN BACKING_PATH SCSI_ID SCSI_SN [ACL...]"
        );
        std::process::exit(2);
    };
    let acls = acls
        .iter()
        .map(|a| Acl::address(a).or_else(|_| Acl::name(a)))
        .collect::<Result<Vec<_>, _>>()?;
    let spec = ServeSpec {
        tid: tid.parse()?,
        name: iqn.clone(),
        luns: vec![ServeLun {
            lun: 1,
            backing: LunBacking::new(path),
            identity: LunIdentity {
                scsi_id: scsi_id.clone(),
                scsi_sn: scsi_sn.clone(),
                vendor_id: Some("ISCSIHA".into()),
                product_id: None,
                product_rev: None,
            },
            cache: CacheMode::WriteThrough,
        }],
        accounts: Vec::new(),
        acls,
    };
    let t0 = std::time::Instant::now();
    let outcome = client.serve(&spec).await?;
    eprintln!("{outcome:?} in {:?}", t0.elapsed());
    let text = client.show_targets_text().await?;
    // print only this target's block, as tgtadm's show would for it
    let header = format!("Target {}: ", spec.tid);
    let mut on = false;
    for line in text.lines() {
        if !line.starts_with(' ') {
            on = line.starts_with(&header);
        }
        if on {
            println!("{line}");
        }
    }
    Ok(())
}
