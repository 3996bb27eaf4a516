//! `iscsi-ha ocf allow-degraded`: an operator's leave for Pacemaker's next promote of this node
//! to go ahead without the peer, the OCF counterpart of the daemon's `promote --degraded`.
//!
//! A node whose DRBD has not been handshaken with its peer since attach waits for the peer
//! (`docs/stale-data-and-split-brain.md`): its data may be older than what the peer served.
//! Under Pacemaker there is no daemon to tell, so the leave is a file in `HA_RSCTMP`
//! (a tmpfs: a reboot forgets it, as DRBD's attach does), per DRBD resource, read by every
//! promote and by a promote that is waiting, and valid for [`LEAVE_FOR`] in the boot that wrote
//! it. A promote that succeeds uses it up. The state machine still refuses a Primary peer, a
//! disk that is neither UpToDate nor Consistent and a peer that is connected.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use tracing::{info, warn};

use super::{OcfCode, OcfEnv, Reply};
use crate::peer_link::remember::{boot_id, boottime_ms};

/// How long a leave stays valid: long enough for Pacemaker's next promote, a cleanup and its
/// recovery, not for a cluster that changes meanwhile.
pub const LEAVE_FOR: Duration = Duration::from_secs(600);

/// The command that gives the leave, as refusals name it.
pub const COMMAND: &str = "iscsi-ha ocf allow-degraded";

/// The file's content: per DRBD resource, when the leave was given (`CLOCK_BOOTTIME`, ms).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
struct Leaves {
    boot_id: Option<String>,
    given_ms: BTreeMap<String, u64>,
}

fn file(dir: &Path) -> PathBuf {
    dir.join("iscsi-ha-allow-degraded.json")
}

/// The leaves of the current boot, or none (no file, another boot, unreadable).
fn read(dir: &Path) -> Leaves {
    let Ok(text) = std::fs::read_to_string(file(dir)) else {
        return Leaves::default();
    };
    let leaves: Leaves = match serde_json::from_str(&text) {
        Ok(l) => l,
        Err(e) => {
            warn!(file = %file(dir).display(), error = %e, "degraded leave unreadable: none");
            return Leaves::default();
        }
    };
    if leaves.boot_id.is_none() || leaves.boot_id != boot_id().ok() {
        return Leaves::default();
    }
    leaves
}

fn write(dir: &Path, leaves: &Leaves) -> std::io::Result<()> {
    let path = file(dir);
    if leaves.given_ms.is_empty() {
        return match std::fs::remove_file(&path) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(e),
            _ => Ok(()),
        };
    }
    let tmp = path.with_extension("tmp");
    std::fs::create_dir_all(dir)
        .and_then(|()| std::fs::write(&tmp, serde_json::to_vec(leaves).unwrap_or_default()))
        .and_then(|()| std::fs::rename(&tmp, &path))
}

/// Whether `resource` has a leave given less than [`LEAVE_FOR`] ago in this boot (a time
/// ahead of the clock is not valid).
pub fn allowed(dir: &Path, resource: &str) -> bool {
    let (leaves, now) = (read(dir), boottime_ms().ok());
    let given = leaves.given_ms.get(resource).copied();
    let age = now.zip(given).and_then(|(n, g)| n.checked_sub(g));
    age.is_some_and(|a| a <= LEAVE_FOR.as_millis() as u64)
}

/// Drop the leaves of `resources` (a promote that succeeded used them). A failure is logged.
pub fn use_up<'a>(dir: &Path, resources: impl IntoIterator<Item = &'a str>) {
    let mut leaves = read(dir);
    let before = leaves.given_ms.len();
    for r in resources {
        leaves.given_ms.remove(r);
    }
    if leaves.given_ms.len() != before {
        if let Err(e) = write(dir, &leaves) {
            warn!(file = %file(dir).display(), error = %e, "degraded leave not removed");
        }
    }
}

/// `iscsi-ha ocf allow-degraded [--revoke] [RESOURCE]...`: every resource of the configuration
/// (narrowed by `OCF_RESKEY_resource` when set) when none is named; a name the configuration
/// lacks is refused (2).
pub fn main(args: &[String], env: &OcfEnv) -> Reply {
    let revoke = args.iter().any(|a| a == "--revoke");
    let named: Vec<&str> = args
        .iter()
        .filter(|a| *a != "--revoke")
        .map(String::as_str)
        .collect();
    if let Some(bad) = named.iter().find(|a| a.starts_with('-')) {
        return Reply::new(
            OcfCode::ErrArgs,
            format!("unknown option {bad}; usage: {COMMAND} [--revoke] [RESOURCE]..."),
        );
    }
    let cfg = match env.load_config() {
        Ok(c) => c,
        Err(r) => return r,
    };
    let known: Vec<&str> = cfg.resources.iter().map(|r| r.name.as_str()).collect();
    if let Some(bad) = named.iter().find(|n| !known.contains(n)) {
        return Reply::new(
            OcfCode::ErrArgs,
            format!(
                "resource {bad:?} is not in {} (it has: {})",
                env.config.display(),
                known.join(", ")
            ),
        );
    }
    let chosen = if named.is_empty() { known } else { named };
    let dir = &env.state_dir;
    let mut leaves = read(dir);
    if revoke {
        for r in &chosen {
            leaves.given_ms.remove(*r);
        }
    } else {
        let now = match boottime_ms() {
            Ok(n) => n,
            Err(e) => return Reply::new(OcfCode::ErrGeneric, format!("CLOCK_BOOTTIME: {e}")),
        };
        leaves.boot_id = boot_id().ok();
        for r in &chosen {
            leaves.given_ms.insert(r.to_string(), now);
        }
    }
    if let Err(e) = write(dir, &leaves) {
        let what = format!("{}: {e}", file(dir).display());
        return Reply::new(OcfCode::ErrGeneric, what);
    }
    let list = chosen.join(", ");
    if revoke {
        info!(resources = %list, "degraded leave revoked");
        return Reply::new(
            OcfCode::Success,
            format!("no promote without the peer: {list}"),
        );
    }
    info!(resources = %list, "degraded leave given");
    Reply::new(
        OcfCode::Success,
        format!(
            "for {} min, Pacemaker's next promote of this node may make {list} DRBD Primary \
             without the peer (primary --force) while DRBD has not been Connected since attach.\n\
             Writes the peer acknowledged after this node last saw it are lost: be sure the peer \
             is down and was not serving newer data.\n\
             Pacemaker stops trying after migration-threshold failures: \
             crm_resource --cleanup --resource <clone> makes it try again.\n\
             Undo: {COMMAND} --revoke",
            LEAVE_FOR.as_secs() / 60
        ),
    )
}
