//! Shared helpers for lab tests: one booted lab per test binary, tests serialised on it.
#![allow(dead_code)]

use std::sync::{Mutex, MutexGuard};

static SERIAL: Mutex<()> = Mutex::new(());

/// The shared lab plus a guard that serialises the tests using it, or `None` (after printing
/// `SKIP: …`) when prerequisites are missing outside CI. Under `CI=true` missing prerequisites panic.
pub fn lab() -> Option<(MutexGuard<'static, ()>, &'static lab::Lab)> {
    if !lab::require_lab() {
        return None;
    }
    let g = SERIAL.lock().unwrap_or_else(|p| p.into_inner());
    match lab::Lab::shared() {
        Ok(l) => Some((g, l)),
        Err(e) => panic!("{e:#}"),
    }
}

/// Runs `body` on the shared lab after [`lab::agent_lab::reset`] (agents stopped, DRBD down, tgtd
/// killed, powered-off nodes booted); on failure prints both agents' logs and status and the
/// consoles, resets, then panics with `name` and the error. Returns without running when the lab
/// is skipped (see [`lab`]).
pub fn agent_scenario(name: &str, body: impl FnOnce(&'static lab::Lab) -> anyhow::Result<()>) {
    use lab::agent_lab as al;
    let Some((_g, lab)) = lab() else {
        return;
    };
    for bin in ["iscsi-ha", "iscsi-read", "iscsi-ledger"] {
        if !lab::host_bin(bin).exists() {
            panic!("{bin} is not built: run `cargo build --workspace --bins --examples` first");
        }
    }
    let r = al::reset(lab).and_then(|_| body(lab));
    if let Err(e) = r {
        eprintln!("{}", al::logs(lab, 60));
        eprintln!("{}", lab.logs_tail(20));
        let _ = al::reset(lab);
        panic!("{name}: {e:#}");
    }
    al::reset(lab).expect("reset after test");
}
