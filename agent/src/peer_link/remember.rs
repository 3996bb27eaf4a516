//! The learnt list kept in the runtime directory, so that an agent restarted between a
//! handover and its claim (killed mid-promote, say) still tickles the connections its peer
//! handed over. Without it those initiators wait for their own command timeout: the old
//! holder no longer holds the address, so it sends no new list.
//!
//! One JSON file, written by this agent alone (mode 0600, in the unit's `RuntimeDirectory`,
//! through [`crate::runfile`]) on every list accepted and after every tickle. A restarted
//! agent takes it only when it was written on this boot (`/proc/sys/kernel/random/boot_id`)
//! less than [`REMEMBER_FOR`] ago on `CLOCK_BOOTTIME` (no wall-clock step moves it), when it
//! passes the checks a datagram's list passes, and, on a keyed link, when it was learnt over a
//! keyed link; anything else is ignored with a warning. Files of an interrupted write are
//! removed then. Tickling a connection that is gone is harmless (the client's kernel answers
//! with a reset, docs/tickle-ack.md).

use std::path::Path;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use vip::tickle::Connection;

use super::Learnt;

/// How old a remembered list may be and still be taken at start: the peer refreshes a held
/// address's list every [`super::REFRESH`], and a handover is trusted for
/// [`super::HANDED_FOR`]; an older list describes connections that may long be gone.
pub const REMEMBER_FOR: Duration = super::HANDED_FOR;

/// The kernel's random id of this boot (`proc(5)`).
const BOOT_ID: &str = "/proc/sys/kernel/random/boot_id";

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Remembered {
    /// The boot it was written on ([`BOOT_ID`]).
    boot_id: String,
    /// When the list arrived, ms of `CLOCK_BOOTTIME`.
    received_boottime_ms: u64,
    /// Learnt over a keyed link (`tickle.secret_file`).
    authenticated: bool,
    node: String,
    seq: u64,
    conns: Vec<Connection>,
}

/// This boot's id, read once.
pub(crate) fn boot_id() -> std::io::Result<String> {
    static ID: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    if let Some(id) = ID.get() {
        return Ok(id.clone());
    }
    let id = std::fs::read_to_string(BOOT_ID)?.trim().to_string();
    Ok(ID.get_or_init(|| id).clone())
}

/// The prefix of the files [`store`] writes before renaming them.
const TEMP_PREFIX: &str = ".tickle-learnt.";

/// Milliseconds of `CLOCK_BOOTTIME` (monotonic, suspend included).
pub(crate) fn boottime_ms() -> std::io::Result<u64> {
    let t = nix::time::clock_gettime(nix::time::ClockId::CLOCK_BOOTTIME)?;
    let ms = u64::try_from(t.tv_sec()).unwrap_or(0) * 1000 + t.tv_nsec() as u64 / 1_000_000;
    Ok(ms)
}

/// Writes `learnt` to `path`: a new file of a random name in its directory (created
/// exclusively, mode 0600, so nothing planted there is followed), then renamed over `path`.
///
/// # Errors
/// The write's or the rename's; the boot id or clock not readable.
pub fn store(path: &Path, learnt: &Learnt, authenticated: bool) -> std::io::Result<()> {
    let age = u64::try_from(learnt.at.elapsed().as_millis()).unwrap_or(u64::MAX);
    let r = Remembered {
        boot_id: boot_id()?,
        received_boottime_ms: boottime_ms()?.saturating_sub(age),
        authenticated,
        node: learnt.node.clone(),
        seq: learnt.seq,
        conns: learnt.conns.clone(),
    };
    let bytes = serde_json::to_vec(&r).map_err(std::io::Error::other)?;
    crate::runfile::write(path, TEMP_PREFIX, &bytes)
}

/// The list remembered in `path`, when there is one from this boot younger than
/// [`REMEMBER_FOR`]; with `keyed`, only one learnt over a keyed link. Removes what an
/// interrupted [`store`] left in the directory.
///
/// # Errors
/// Why a file that is there cannot be taken (not a regular file, a symbolic link, unreadable,
/// too long, not this format, another boot's, from the future, a list a datagram could not
/// carry, learnt unauthenticated for a keyed link); `Ok(None)` when there is none or it is too
/// old.
pub fn restore(path: &Path, keyed: bool) -> Result<Option<Learnt>, String> {
    crate::runfile::remove_leftovers(path, TEMP_PREFIX);
    let at = |why: String| format!("{}: {why}", path.display());
    let Some(bytes) = crate::runfile::read(path, super::MAX_DATAGRAM as u64 * 2)? else {
        return Ok(None);
    };
    let r: Remembered = serde_json::from_slice(&bytes).map_err(|e| at(e.to_string()))?;
    let boot = boot_id().map_err(|e| at(format!("this boot's id: {e}")))?;
    if r.boot_id != boot {
        return Err(at("written before the last boot".into()));
    }
    let now = boottime_ms().map_err(|e| at(e.to_string()))?;
    let age = Duration::from_millis(now.checked_sub(r.received_boottime_ms).ok_or_else(|| {
        at(format!(
            "received in the future ({} ms of CLOCK_BOOTTIME)",
            r.received_boottime_ms
        ))
    })?);
    if age > REMEMBER_FOR {
        return Ok(None);
    }
    super::acceptable(&r.node, r.seq).map_err(at)?;
    if keyed && !r.authenticated {
        return Err(at(
            "learnt over an unauthenticated link, and this one is keyed".into(),
        ));
    }
    let Some(at) = Instant::now().checked_sub(age) else {
        return Ok(None);
    };
    Ok(Some(Learnt {
        node: r.node,
        seq: r.seq,
        conns: r.conns,
        at,
    }))
}
