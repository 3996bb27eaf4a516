//! The maintenance switch kept for a restart and a reboot: `maintenance on` writes
//! `maintenance` in `state_dir` ([`crate::runfile`]), `maintenance off` removes it, and a daemon
//! that starts with it there starts in maintenance. An agent restarted by an upgrade, the
//! watchdog, a crash or a reboot while an operator works on DRBD or tgtd by hand must not start
//! acting in the middle of that work: maintenance lasts until `maintenance off`, as Pacemaker's
//! `maintenance-mode` does. Not the runtime directory: systemd 219 (XCP-ng 8.x dom0) removes
//! that at every restart.

use std::os::unix::fs::DirBuilderExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

/// The file's name in the control socket's directory.
pub const FILE: &str = "maintenance";
const TEMP_PREFIX: &str = ".maintenance.";
/// Longer than any file [`store`] writes.
const LIMIT: u64 = 4096;

#[derive(Serialize, Deserialize)]
struct Kept {
    /// When `maintenance on` was asked, ms since the Unix epoch.
    since_unix_ms: u64,
}

/// What the kept file says at start.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Found {
    /// No file: maintenance off.
    Off,
    /// Maintenance was on, switched on this long ago (`None` if the clock went back).
    On(Option<Duration>),
    /// A file is there but cannot be read (the text says why): maintenance stays on, since
    /// someone switched it on.
    Unreadable(String),
}

/// Where the switch is kept in `state_dir`.
pub fn path_in(state_dir: &Path) -> PathBuf {
    state_dir.join(FILE)
}

/// Reads the kept switch at `path`, removing leftovers of an interrupted [`store`].
pub fn load(path: &Path) -> Found {
    crate::runfile::remove_leftovers(path, TEMP_PREFIX);
    match crate::runfile::read(path, LIMIT) {
        Ok(None) => Found::Off,
        Ok(Some(bytes)) => match serde_json::from_slice::<Kept>(&bytes) {
            Ok(k) => {
                let since = UNIX_EPOCH + Duration::from_millis(k.since_unix_ms);
                Found::On(SystemTime::now().duration_since(since).ok())
            }
            Err(e) => Found::Unreadable(format!("{}: {e}", path.display())),
        },
        Err(why) => Found::Unreadable(why),
    }
}

/// Keeps `on` at `path`: writes the file (switched on now), making its directory (mode 0700)
/// if needed, or removes it.
///
/// # Errors
/// The directory's, the write's, the rename's or the removal's (a missing file is not an
/// error).
pub fn store(path: &Path, on: bool) -> std::io::Result<()> {
    if !on {
        return match std::fs::remove_file(path) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(e),
            _ => Ok(()),
        };
    }
    let since_unix_ms = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX));
    if let Some(dir) = path.parent() {
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)?;
    }
    let bytes = serde_json::to_vec(&Kept { since_unix_ms }).map_err(std::io::Error::other)?;
    crate::runfile::write(path, TEMP_PREFIX, &bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kept_on_off_and_unreadable() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = path_in(&dir.path().join("made"));
        assert_eq!(load(&path), Found::Off);
        store(&path, true).expect("on, its directory made");
        store(&path, false).expect("off");
        let path = path_in(dir.path());
        assert_eq!(load(&path), Found::Off);
        store(&path, true).expect("on");
        assert!(matches!(load(&path), Found::On(Some(d)) if d < Duration::from_secs(60)));
        store(&path, false).expect("off");
        assert_eq!(load(&path), Found::Off);
        store(&path, false).expect("off twice");
        // Something that is not ours: maintenance stays on, saying why.
        std::fs::write(&path, b"garbage").expect("write");
        assert!(matches!(load(&path), Found::Unreadable(w) if w.contains("maintenance")));
        std::fs::remove_file(&path).expect("rm");
        std::os::unix::fs::symlink("/etc/passwd", &path).expect("symlink");
        assert!(matches!(load(&path), Found::Unreadable(_)));
        store(&path, false).expect("the link removed");
        assert!(std::fs::symlink_metadata("/etc/passwd").is_ok());
        // Leftovers of a killed write go at the next load.
        std::fs::write(dir.path().join(".maintenance.abc"), b"{").expect("write");
        assert_eq!(load(&path), Found::Off);
        assert!(!dir.path().join(".maintenance.abc").exists());
    }
}
