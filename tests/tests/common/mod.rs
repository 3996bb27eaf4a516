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
