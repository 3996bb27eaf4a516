//! The split brains kept for a restart: DRBD reports a split brain once, when the handshake
//! fails (its `split-brain` helper), and nothing in its state says so later (a StandAlone
//! resource may be one an operator disconnected). So the daemon writes `split-brain` in
//! `state_dir` beside the maintenance switch ([`super::maintenance`]) while a resource has a
//! split brain no handshake has cleared, and a daemon that starts with it marks those resources
//! again: an upgrade or a `systemctl restart` does not clear the alarm. The first handshake
//! clears it, as for a reported one, and the file goes with the last mark.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

/// The file's name, in the maintenance switch's directory.
pub const FILE: &str = "split-brain";
const TEMP_PREFIX: &str = ".split-brain.";
/// Longer than any file [`store`] writes for a sane number of resources.
const LIMIT: u64 = 64 * 1024;

#[derive(Serialize, Deserialize, Default, Debug, PartialEq, Eq)]
struct Kept {
    /// Resource name → when its split brain was first kept, ms since the Unix epoch.
    resources: BTreeMap<String, u64>,
}

/// What the kept file says at start.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Found {
    /// These resources (possibly none) had a split brain no handshake had cleared.
    Resources(Vec<String>),
    /// A file is there but cannot be read (the text says why): every resource is taken as
    /// split-brained until its next handshake, since someone kept a split brain.
    Unreadable(String),
}

/// Where the marks are kept, beside the maintenance switch at `maintenance_file`.
pub fn path_beside(maintenance_file: &Path) -> PathBuf {
    maintenance_file.with_file_name(FILE)
}

/// Reads the kept marks at `path`, removing leftovers of an interrupted [`store`].
pub fn load(path: &Path) -> Found {
    crate::runfile::remove_leftovers(path, TEMP_PREFIX);
    match crate::runfile::read(path, LIMIT) {
        Ok(None) => Found::Resources(Vec::new()),
        Ok(Some(bytes)) => match serde_json::from_slice::<Kept>(&bytes) {
            Ok(k) => Found::Resources(k.resources.into_keys().collect()),
            Err(e) => Found::Unreadable(format!("{}: {e}", path.display())),
        },
        Err(why) => Found::Unreadable(why),
    }
}

/// Keeps `resources` at `path` (the times of marks already kept stay), or removes the file
/// when there are none.
///
/// # Errors
/// The directory's, the write's, the rename's or the removal's.
pub fn store(path: &Path, resources: &[String]) -> std::io::Result<()> {
    if resources.is_empty() {
        return crate::runfile::remove(path);
    }
    let before = match crate::runfile::read(path, LIMIT) {
        Ok(Some(bytes)) => serde_json::from_slice::<Kept>(&bytes).unwrap_or_default(),
        _ => Kept::default(),
    };
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX));
    let kept = Kept {
        resources: resources
            .iter()
            .map(|r| (r.clone(), before.resources.get(r).copied().unwrap_or(now)))
            .collect(),
    };
    if let Some(dir) = path.parent() {
        super::maintenance::make_dir(dir)?;
    }
    let bytes = serde_json::to_vec(&kept).map_err(std::io::Error::other)?;
    crate::runfile::write(path, TEMP_PREFIX, &bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kept_cleared_and_unreadable() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = path_beside(
            &dir.path()
                .join("made")
                .join(super::super::maintenance::FILE),
        );
        assert_eq!(load(&path), Found::Resources(vec![]));
        store(&path, &["r0".into()]).expect("kept, its directory made");
        assert_eq!(load(&path), Found::Resources(vec!["r0".into()]));
        let first = std::fs::read(&path).expect("read");
        store(&path, &["r0".into(), "r1".into()]).expect("kept");
        let k: Kept = serde_json::from_slice(&std::fs::read(&path).expect("read")).expect("json");
        let was: Kept = serde_json::from_slice(&first).expect("json");
        assert_eq!(k.resources["r0"], was.resources["r0"], "r0 keeps its time");
        store(&path, &[]).expect("cleared");
        assert!(!path.exists());
        store(&path, &[]).expect("cleared twice");
        std::fs::write(&path, b"garbage").expect("write");
        assert!(matches!(load(&path), Found::Unreadable(w) if w.contains("split-brain")));
        std::fs::write(path.with_file_name(".split-brain.x"), b"{").expect("write");
        store(&path, &[]).expect("removed");
        assert_eq!(load(&path), Found::Resources(vec![]));
        assert!(!path.with_file_name(".split-brain.x").exists());
    }
}
