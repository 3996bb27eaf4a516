//! The maintenance switch kept for a restart and a reboot: `maintenance on` writes
//! `maintenance` in `state_dir` ([`crate::runfile`]), `maintenance off` removes it, and a daemon
//! that starts with it there starts in maintenance. An agent restarted by an upgrade, the
//! watchdog, a crash or a reboot while an operator works on DRBD or tgtd by hand must not start
//! acting in the middle of that work: maintenance lasts until `maintenance off`, as Pacemaker's
//! `maintenance-mode` does. Not the runtime directory: systemd 219 (XCP-ng 8.x dom0) removes
//! that at every restart. `daemon --simulate` keeps its switch beside its own control socket,
//! never in the `state_dir` a real agent on the same host reads.

use std::os::unix::fs::DirBuilderExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

/// The file's name in `state_dir` (beside the control socket for `daemon --simulate`).
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
        return crate::runfile::remove(path);
    }
    let since_unix_ms = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX));
    if let Some(dir) = path.parent() {
        make_dir(dir)?;
    }
    let bytes = serde_json::to_vec(&Kept { since_unix_ms }).map_err(std::io::Error::other)?;
    crate::runfile::write(path, TEMP_PREFIX, &bytes)
}

/// Makes `state_dir` (and its parents) if missing, mode 0700 as the unit's
/// `StateDirectoryMode=`; an existing directory keeps its mode.
///
/// # Errors
/// The directory's creation.
pub fn make_dir(state_dir: &Path) -> std::io::Result<()> {
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(state_dir)
}

/// What may keep the switch in `state_dir` from working (for `check-config`): not a directory,
/// writable by others (anyone could freeze the agent), or outside what the shipped unit lets
/// the daemon write (`StateDirectory=iscsi-ha`).
pub fn state_dir_warnings(state_dir: &Path) -> Vec<String> {
    use std::os::unix::fs::MetadataExt;
    let mut out = Vec::new();
    let dir = state_dir.display();
    match std::fs::metadata(state_dir) {
        Ok(m) if !m.is_dir() => out.push(format!(
            "{dir} is not a directory: maintenance cannot be kept, and a start reads it as on"
        )),
        Ok(m) if m.mode() & 0o022 != 0 => out.push(format!(
            "{dir} is writable by group or others (mode {:o}): they could switch maintenance; \
             chmod 700",
            m.mode() & 0o7777
        )),
        _ => {}
    }
    if !state_dir.starts_with(crate::config::DEFAULT_STATE_DIR) {
        out.push(format!(
            "the iscsi-ha unit lets the daemon write only {} (StateDirectory=): create {dir} \
             (mode 0700) and add ReadWritePaths={dir} in a drop-in, or maintenance is not kept \
             for a restart",
            crate::config::DEFAULT_STATE_DIR
        ));
    }
    out
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

    #[test]
    fn state_dir_warnings_name_what_would_not_work() {
        assert!(state_dir_warnings(Path::new("/var/lib/iscsi-ha/sub")).is_empty());
        let dir = tempfile::tempdir().expect("tempdir");
        let w = state_dir_warnings(dir.path());
        assert!(w.len() == 1 && w[0].contains("ReadWritePaths="), "{w:?}");
        let file = dir.path().join("f");
        std::fs::write(&file, b"").expect("write");
        assert!(state_dir_warnings(&file)[0].contains("not a directory"));
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o777))
            .expect("chmod");
        assert!(state_dir_warnings(dir.path())[0].contains("writable by group or others"));
    }
}
