//! The learnt list kept in the runtime directory, so that an agent restarted between a
//! handover and its claim (killed mid-promote, say) still tickles the connections its peer
//! handed over. Without it those initiators wait for their own command timeout: the old
//! holder no longer holds the address, so it sends no new list.
//!
//! One JSON file, written by this agent alone (root, mode 0600, in the unit's
//! `RuntimeDirectory`, so it goes with a reboot), replaced atomically on every list accepted
//! and after every tickle. A restarted agent takes it only when younger than
//! [`REMEMBER_FOR`]; anything unreadable is ignored with a warning. Tickling a connection that
//! is gone is harmless (the client's kernel answers with a reset, docs/tickle-ack.md).

use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use vip::tickle::Connection;

use super::Learnt;

/// How old a remembered list may be and still be taken at start: the peer refreshes a held
/// address's list every [`super::REFRESH`], and a handover is trusted for
/// [`super::HANDED_FOR`]; an older list describes connections that may long be gone.
pub const REMEMBER_FOR: Duration = super::HANDED_FOR;

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Remembered {
    /// When the list arrived, ms since the Unix epoch.
    received_unix_ms: u64,
    node: String,
    seq: u64,
    conns: Vec<Connection>,
}

/// Writes `learnt` to `path` (through `path.tmp` and a rename).
///
/// # Errors
/// The write's or the rename's.
pub fn store(path: &Path, learnt: &Learnt) -> std::io::Result<()> {
    let age = learnt.at.elapsed();
    let r = Remembered {
        received_unix_ms: crate::events::now_ms().saturating_sub(age.as_millis() as u64),
        node: learnt.node.clone(),
        seq: learnt.seq,
        conns: learnt.conns.clone(),
    };
    let tmp = path.with_extension("tmp");
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&tmp)?;
    f.write_all(&serde_json::to_vec(&r).map_err(std::io::Error::other)?)?;
    drop(f);
    std::fs::rename(&tmp, path)
}

/// The list remembered in `path`, when there is one younger than [`REMEMBER_FOR`].
///
/// # Errors
/// Why a file that is there cannot be taken (unreadable, not this format, from the future);
/// `Ok(None)` when there is none or it is too old.
pub fn restore(path: &Path) -> Result<Option<Learnt>, String> {
    let bytes = match std::fs::read(path) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(format!("{}: {e}", path.display())),
    };
    let r: Remembered =
        serde_json::from_slice(&bytes).map_err(|e| format!("{}: {e}", path.display()))?;
    let now = crate::events::now_ms();
    let age = Duration::from_millis(now.checked_sub(r.received_unix_ms).ok_or_else(|| {
        format!(
            "{}: received in the future ({} ms since the epoch)",
            path.display(),
            r.received_unix_ms
        )
    })?);
    if age > REMEMBER_FOR {
        return Ok(None);
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
