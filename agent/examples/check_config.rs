//! Validate a configuration file and print it back as the agent understood it, as
//! `iscsi-ha check-config FILE` does (errors as `file:line: key: reason`).
//!
//! Usage: `cargo run -p agent --example check_config -- FILE`
use std::path::PathBuf;
use std::process::ExitCode;

fn main() -> ExitCode {
    let Some(path) = std::env::args().nth(1).map(PathBuf::from) else {
        eprintln!("usage: check_config FILE");
        return ExitCode::FAILURE;
    };
    match agent::config::Config::load(&path) {
        Ok(c) => {
            println!("{}: ok", path.display());
            for r in &c.resources {
                println!(
                    "resource {} minor {} ({:?}): target tid {} {} with {} LUN(s)",
                    r.name,
                    r.minor,
                    r.mode,
                    r.target.tid,
                    r.target.iqn,
                    r.luns.len()
                );
            }
            for a in &c.addresses {
                println!(
                    "address {} on {} for {}",
                    a.address,
                    a.interface,
                    a.resources.join(", ")
                );
            }
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("{e}");
            ExitCode::FAILURE
        }
    }
}
