//! Cleanup of everything a lab creates: QEMU processes (SIGKILL by PID, then every process left in
//! the lab's namespaces), both network namespaces (which removes the bridge, taps and veths), the
//! run directory and the state file.
//!
//! Cleanup runs on [`crate::Lab`]'s `Drop`, at process exit for labs still registered (the shared
//! lab of a test binary lives in a `static`, which Rust never drops: an `atexit` hook covers it), on
//! SIGINT/SIGTERM in the CLI ([`install_signal_cleanup`]), and at the start of every lab as a sweep
//! of labs whose owner process is dead and that no live detached state file claims.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, Once};

use crate::{net, qemu};

/// What cleanup needs to know about one lab.
#[derive(Debug, Clone)]
pub struct Registered {
    /// QEMU pids known to the owner.
    pub pids: Vec<i32>,
    /// Run directory (disks, logs, sockets).
    pub run_dir: PathBuf,
}

static LABS: Mutex<BTreeMap<String, Registered>> = Mutex::new(BTreeMap::new());
static HOOK: Once = Once::new();

extern "C" fn at_exit() {
    cleanup_registered();
}

/// Cleans up every lab still registered in this process.
pub fn cleanup_registered() {
    let labs: Vec<(String, Registered)> = match LABS.lock() {
        Ok(mut m) => std::mem::take(&mut *m).into_iter().collect(),
        Err(_) => return,
    };
    for (name, r) in labs {
        cleanup(&name, &r.pids, Some(&r.run_dir));
    }
}

/// Registers (or updates) lab `name` for cleanup at exit.
pub fn register(name: &str, r: Registered) {
    HOOK.call_once(|| {
        // SAFETY: `at_exit` is an `extern "C" fn()` with no preconditions.
        unsafe {
            libc::atexit(at_exit);
        }
    });
    if let Ok(mut m) = LABS.lock() {
        m.insert(name.to_string(), r);
    }
}

/// Forgets lab `name` (it was cleaned up, or detached on purpose).
pub fn unregister(name: &str) {
    if let Ok(mut m) = LABS.lock() {
        m.remove(name);
    }
}

/// `<workspace>/target/lab-run`: state files of detached labs.
pub fn state_dir() -> PathBuf {
    crate::assets::workspace_root()
        .join("target")
        .join("lab-run")
}

/// State file of lab `name`.
pub fn state_file(name: &str) -> PathBuf {
    state_dir().join(format!("{name}.json"))
}

/// Kills `pids` and every process in the lab's namespaces, deletes the namespaces, the run
/// directory (if given) and the state file. Idempotent; never fails.
pub fn cleanup(name: &str, pids: &[i32], run_dir: Option<&Path>) {
    for &p in pids {
        if p > 0 {
            qemu::kill_pid(p);
        }
    }
    let client = net::client_ns(name);
    for ns in [name, client.as_str()] {
        for p in net::pids_in(ns) {
            qemu::kill_pid(p);
        }
        net::delete(ns);
    }
    // The run dir is `<temp>/<name>` unless a state file said otherwise.
    let fallback = std::env::temp_dir().join(name);
    let d = run_dir.unwrap_or(&fallback);
    if std::env::var_os("LAB_KEEP").is_none() {
        let _ = std::fs::remove_dir_all(d);
    }
    let _ = std::fs::remove_file(state_file(name));
}

/// File in a detached lab's run directory (`<temp>/<name>`), naming its state file.
pub const DETACHED_MARK: &str = "detached";

/// Removes labs left behind by dead processes: a `lab<pid>x<n>` namespace whose pid is gone and
/// whose state file (if any) names no live QEMU. A detached lab (`lab up`) of another checkout,
/// whose state file lives in that checkout's `target/lab-run`, is known by the mark in its run
/// directory and is left alone while processes run in its namespace. Returns the names swept.
pub fn sweep_stale() -> Vec<String> {
    let mut swept = Vec::new();
    for (name, owner) in net::list_labs() {
        if owner == std::process::id() as i32 || qemu::alive(owner) {
            continue;
        }
        let marked = std::env::temp_dir()
            .join(&name)
            .join(DETACHED_MARK)
            .exists();
        if marked && !net::pids_in(&name).is_empty() {
            continue;
        }
        if let Ok(st) = crate::LabState::load(&name) {
            if st.nodes.iter().any(|n| n.pid > 0 && qemu::alive(n.pid)) {
                continue; // a detached lab (`lab up`) still running
            }
            cleanup(&name, &[], Some(&st.run_dir));
        } else {
            cleanup(&name, &[], None);
        }
        swept.push(name);
    }
    // Client namespaces whose lab namespace is already gone.
    let text = net::ip(&["netns", "list"]).unwrap_or_default();
    for l in text.lines() {
        let n = l.split_whitespace().next().unwrap_or("");
        if let Some(lab) = n.strip_suffix('c') {
            if let Some(rest) = lab.strip_prefix("lab") {
                if let Some((pid, _)) = rest.split_once('x') {
                    if let Ok(pid) = pid.parse::<i32>() {
                        let lab_exists = text
                            .lines()
                            .any(|x| x.split_whitespace().next() == Some(lab));
                        if !qemu::alive(pid) && !lab_exists {
                            net::delete(n);
                        }
                    }
                }
            }
        }
    }
    swept
}

/// CLI only: blocks SIGINT/SIGTERM/SIGHUP in this thread (call first in `main`, before other
/// threads exist, so they inherit the mask) and starts a thread that, on one of them, cleans up every
/// registered lab and exits with 128+signal. Child processes get a clean mask from `std`.
pub fn install_signal_cleanup() -> anyhow::Result<()> {
    use nix::sys::signal::{SigSet, Signal};
    let mut set = SigSet::empty();
    set.add(Signal::SIGINT);
    set.add(Signal::SIGTERM);
    set.add(Signal::SIGHUP);
    set.thread_block()?;
    std::thread::Builder::new()
        .name("lab-signals".into())
        .spawn(move || {
            if let Ok(sig) = set.wait() {
                eprintln!("lab: {sig:?} received, cleaning up");
                cleanup_registered();
                std::process::exit(128 + sig as i32);
            }
        })?;
    Ok(())
}
