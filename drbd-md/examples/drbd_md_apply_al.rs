//! `drbdmeta MINOR v08|v09 DISK internal apply-al` without drbdmeta: replays the activity log of
//! the internal metadata on DISK into its bitmap and prints what it did.
//!
//!     drbd-md-apply-al DISK [--superblock]
//!
//! `--superblock` prints the decoded superblock first (read-only: nothing else is done).
//! Exit status 0 on success, 1 with the error on stderr (`ERROR Busy: ...` when DRBD holds the
//! disk).

use std::path::Path;
use std::process::ExitCode;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let Some(disk) = args.first() else {
        eprintln!("usage: drbd-md-apply-al DISK [--superblock]");
        return ExitCode::from(2);
    };
    if args.get(1).map(String::as_str) == Some("--superblock") {
        return match show_superblock(Path::new(disk)) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("ERROR {e}");
                ExitCode::FAILURE
            }
        };
    }
    match drbd_md::apply_al(Path::new(disk)) {
        Ok(r) => {
            println!(
                "format={} was_clean={} primary_ind={} hot_extents={} corrupt_transactions={} \
                 applied={} additional_bits={} additional_kib={} extents_beyond_bitmap={} \
                 al_reinitialized={} superblock_written={} al_problem_ignored={}",
                r.format,
                r.was_clean,
                r.primary_ind,
                r.hot_extents.len(),
                r.corrupt_transactions,
                r.applied,
                r.additional_bits,
                r.additional_kib(),
                r.extents_beyond_bitmap,
                r.al_reinitialized,
                r.superblock_written,
                r.al_problem_ignored
                    .map_or_else(|| "none".to_string(), |p| p.to_string()),
            );
            println!("hot {:?}", r.hot_extents);
            ExitCode::SUCCESS
        }
        Err(e) => {
            let kind = match e {
                drbd_md::MdError::Busy { .. } => "Busy: ",
                _ => "",
            };
            eprintln!("ERROR {kind}{e}");
            ExitCode::FAILURE
        }
    }
}

/// Reads the last 4 KiB-aligned 4 KiB block of `disk` (buffered: for looking only) and prints it.
fn show_superblock(disk: &Path) -> Result<(), Box<dyn std::error::Error>> {
    use std::io::{Read, Seek, SeekFrom};
    let mut f = std::fs::File::open(disk)?;
    let size = f.seek(SeekFrom::End(0))?;
    let at = size.checked_sub(4096).ok_or("device smaller than 4 KiB")? & !4095;
    f.seek(SeekFrom::Start(at))?;
    let mut b = vec![0; 4096];
    f.read_exact(&mut b)?;
    let sb = drbd_md::Superblock::decode(&b)?;
    println!("{sb:#?}");
    println!("{:#?}", sb.internal_layout(size)?);
    Ok(())
}
