//! XenServer / XCP-ng role source: `/etc/xensource/pool.conf`.
//!
//! The file holds `master` on the pool master and `slave:<master address>` on the others; the
//! pool master is chosen by HA-Lizard or XenServer HA, and the agent follows it. The *directory*
//! is watched with inotify (not the file), so a replacement by rename, a delete followed by a
//! re-create, and a brief absence are all seen. A missing, unreadable, empty or unparsable file is
//! [`Authority::Unknown`]: an alarm that holds the current state, never a promote. `broken`
//! (XAPI during a master designation, see [`BROKEN`]) is held by the daemon as a transition.
//!
//! Event driven: the task sleeps in the kernel until the directory changes; no polling.

use std::ffi::OsString;
use std::path::{Path, PathBuf};

use tokio::sync::mpsc::UnboundedSender;
use tracing::{info, warn};

use crate::dirwatch::{DirWatch, EventMask, WatchMask};
use crate::error::AgentError;
use crate::fsm::{Authority, Event};

/// The reason of the [`Authority::Unknown`] that `broken` parses to. XAPI writes `broken` when a
/// pool master designation commits, before it tells the other hosts, and `master` once all of
/// them acknowledged; the file stays `broken` when one failed (xen-api
/// `ocaml/xapi/xapi_pool_transition.ml`, phase 2 of the two-phase commit). The daemon
/// holds it as a transition (see [`is_broken`]).
pub const BROKEN: &str = "pool.conf says broken (pool master designation in progress)";

/// Whether this authority is `pool.conf`'s `broken`: no promote, no demote, and an alarm only
/// when it lasts longer than `timeouts.broken_alarm_s`.
pub fn is_broken(a: &Authority) -> bool {
    matches!(a, Authority::Unknown(r) if r == BROKEN)
}

/// Parse the contents of pool.conf.
pub fn parse(contents: &str) -> Authority {
    let line = contents.trim();
    if line == "master" {
        return Authority::Primary;
    }
    if line == "broken" {
        return Authority::Unknown(BROKEN.into());
    }
    if let Some(addr) = line.strip_prefix("slave:") {
        let addr = addr.trim();
        if !addr.is_empty() && !addr.contains(char::is_whitespace) {
            return Authority::Secondary;
        }
        return Authority::Unknown("pool.conf: slave without a master address".into());
    }
    if line.is_empty() {
        return Authority::Unknown("pool.conf is empty".into());
    }
    let shown: String = line.chars().take(40).collect();
    Authority::Unknown(format!("pool.conf: unrecognised contents {shown:?}"))
}

/// Read and parse the file now.
pub fn read(path: &Path) -> Authority {
    match std::fs::read(path) {
        Ok(bytes) => match std::str::from_utf8(&bytes) {
            Ok(s) => parse(s),
            Err(_) => Authority::Unknown("pool.conf is not UTF-8".into()),
        },
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            Authority::Unknown(format!("{} is missing", path.display()))
        }
        Err(e) => Authority::Unknown(format!("{} unreadable: {e}", path.display())),
    }
}

/// How often a watch whose directory was removed looks for it again (only then: no timer runs
/// otherwise).
const REWATCH_EVERY: std::time::Duration = std::time::Duration::from_secs(1);

/// The events of pool.conf's directory the watch asks for.
fn mask() -> WatchMask {
    WatchMask::CLOSE_WRITE
        | WatchMask::MOVED_TO
        | WatchMask::MOVED_FROM
        | WatchMask::CREATE
        | WatchMask::DELETE
        | WatchMask::ATTRIB
        | WatchMask::DELETE_SELF
        | WatchMask::MOVE_SELF
}

/// A watch on pool.conf through its directory.
pub struct PoolConfWatch {
    path: PathBuf,
    dir: PathBuf,
    name: OsString,
    /// `None` once the directory was removed or moved, until it is back.
    watch: Option<DirWatch>,
    last: Option<Authority>,
}

impl PoolConfWatch {
    /// Start watching `path`'s directory. The directory must exist; the file need not.
    pub fn new(path: &Path) -> Result<PoolConfWatch, AgentError> {
        let dir = match path.parent() {
            Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
            _ => PathBuf::from("."),
        };
        let name = path
            .file_name()
            .map(|n| n.to_os_string())
            .ok_or_else(|| AgentError::Role(std::io::Error::other("path has no file name")))?;
        let watch = DirWatch::new(&dir, mask()).map_err(|e| {
            // Say which directory and why it matters: a bare ENOENT sends the operator guessing.
            AgentError::Role(std::io::Error::new(
                e.kind(),
                format!(
                    "cannot watch {} (the directory of pool.conf): {e}; on a host that is not a \
                     XenServer / XCP-ng pool member use [role] source = \"command\"",
                    dir.display()
                ),
            ))
        })?;
        Ok(PoolConfWatch {
            path: path.to_path_buf(),
            dir,
            name,
            watch: Some(watch),
            last: None,
        })
    }

    /// The authority now (reads the file) and remember it.
    pub fn current(&mut self) -> Authority {
        let a = read(&self.path);
        self.last = Some(a.clone());
        a
    }

    /// Wait until the file's meaning changes, and return the new authority. A removed (or
    /// moved) directory is an alarm; the directory is then looked for every
    /// second and watched again once it is back (the file read at once).
    pub async fn changed(&mut self) -> Result<Authority, AgentError> {
        loop {
            let Some(watch) = self.watch.as_mut() else {
                tokio::time::sleep(REWATCH_EVERY).await;
                if let Ok(w) = DirWatch::new(&self.dir, mask()) {
                    self.watch = Some(w);
                    info!(dir = %self.dir.display(), "pool.conf's directory is back: watched again");
                    if let Some(a) = self.reread() {
                        return Ok(a);
                    }
                }
                continue;
            };
            let events = watch.next().await.map_err(AgentError::Role)?;
            let dir_gone = events.iter().any(|e| {
                e.mask
                    .intersects(EventMask::DELETE_SELF | EventMask::MOVE_SELF)
            });
            if dir_gone {
                self.watch = None;
                let a = Authority::Unknown(format!(
                    "directory of {} removed; watched again once it is back",
                    self.path.display()
                ));
                self.last = Some(a.clone());
                return Ok(a);
            }
            let ours = events
                .iter()
                .any(|e| e.name.as_deref() == Some(self.name.as_os_str()));
            if !ours {
                continue;
            }
            if let Some(a) = self.reread() {
                return Ok(a);
            }
        }
    }

    /// Reads the file again: its authority when that differs from the last one (remembered).
    fn reread(&mut self) -> Option<Authority> {
        let a = read(&self.path);
        (self.last.as_ref() != Some(&a)).then(|| {
            self.last = Some(a.clone());
            a
        })
    }

    /// Send the current authority, then every change, as [`Event::Authority`] until the
    /// receiver is dropped.
    pub async fn run(mut self, tx: UnboundedSender<Event>) -> Result<(), AgentError> {
        let a = self.current();
        info!(authority = %a, "pool.conf");
        if tx.send(Event::Authority(a)).is_err() {
            return Ok(());
        }
        loop {
            let a = self.changed().await?;
            match &a {
                a if is_broken(a) => info!("pool.conf says broken: held as a transition"),
                Authority::Unknown(r) => warn!(reason = %r, "pool.conf alarm"),
                _ => info!(authority = %a, "pool.conf changed"),
            }
            if tx.send(Event::Authority(a)).is_err() {
                return Ok(());
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses() {
        assert_eq!(parse("master\n"), Authority::Primary);
        assert_eq!(parse("slave:10.0.0.1"), Authority::Secondary);
        assert!(matches!(parse("slave:"), Authority::Unknown(_)));
        assert!(matches!(parse(""), Authority::Unknown(_)));
        assert!(matches!(parse("masterX"), Authority::Unknown(_)));
        assert!(is_broken(&parse("broken\n")));
        assert!(!is_broken(&parse("")));
        assert!(matches!(parse("\u{0}\u{1}garbage"), Authority::Unknown(_)));
    }

    #[test]
    fn missing_directory_is_named_with_the_way_out() {
        let err = match PoolConfWatch::new(Path::new("/nonexistent-iscsi-ha/pool.conf")) {
            Err(e) => e.to_string(),
            Ok(_) => panic!("a watch on a missing directory"),
        };
        assert!(err.contains("/nonexistent-iscsi-ha"), "{err}");
        assert!(err.contains("source = \"command\""), "{err}");
    }
}
