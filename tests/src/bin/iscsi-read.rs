//! `iscsi-read URL [LBA [BYTES]]`: reads BYTES (default 512) from block LBA (default 0) of an iSCSI
//! LUN with libiscsi (READ(10), 512-byte blocks, [`lab::iscsi`]) and writes them raw to stdout.
//! libiscsi-bin has no reader tool; this is the lab client's way to read data through the floating
//! address. URL: `iscsi://HOST[:PORT]/IQN/LUN`.

use lab::iscsi::{Session, BLOCK};
use std::io::Write;

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let Some(url) = args.get(1) else {
        eprintln!("usage: iscsi-read iscsi://HOST[:PORT]/IQN/LUN [LBA [BYTES]]");
        std::process::exit(2)
    };
    let lba: u32 = args.get(2).and_then(|v| v.parse().ok()).unwrap_or(0);
    let bytes: usize = args.get(3).and_then(|v| v.parse().ok()).unwrap_or(BLOCK);
    let len = bytes.div_ceil(BLOCK).max(1) * BLOCK;
    let mut buf = vec![0u8; len];
    let r = Session::connect(url, "iqn.2024-01.lab:client", 0, 5).and_then(|mut s| {
        s.read10(lba, &mut buf)?;
        let _ = s.logout(); // the data is read; a failed logout changes nothing
        Ok(())
    });
    if let Err(e) = r {
        eprintln!("iscsi-read: {e}");
        std::process::exit(1)
    }
    let out = buf.get(..bytes).unwrap_or(&buf);
    let _ = std::io::stdout().write_all(out);
}
