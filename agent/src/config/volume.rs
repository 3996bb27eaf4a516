//! `[[resource.volume]]`: a resource's DRBD volumes beyond volume 0, and which device names
//! are one of a resource's volumes.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::{Mode, Resource};

/// A DRBD volume of a resource beyond volume 0 (drbd.conf `volume N { device minor M; }`):
/// DRBD 8.4 gives each volume its own minor, `/dev/drbd<minor>`; all volumes of a resource
/// share its connection and are promoted and demoted together by the agent.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Volume {
    /// Volume number in the resource (1-65535; volume 0 is the resource's own `minor`).
    pub volume: u32,
    /// Its DRBD minor, unique on the node.
    pub minor: u32,
    /// Its backing disk: required with `mode = "manage"`, refused with `mode = "adopt"`.
    pub disk: Option<PathBuf>,
}

impl Resource {
    /// Every volume's number and minor, volume 0 (`minor`) first.
    pub fn volume_minors(&self) -> impl Iterator<Item = (u32, u32)> + '_ {
        std::iter::once((0, self.minor)).chain(self.volumes.iter().map(|v| (v.volume, v.minor)))
    }

    /// `Some((volume, minor))` when `device` names one of this resource's volumes:
    /// `/dev/drbd<minor>`, udev's `/dev/drbd/by-res/<name>/<volume>` (drbdadm `sh-udev`), or
    /// `/dev/drbd/by-res/<name>` (volume 0 of a resource with one volume). Anything else
    /// (another resource's minor, a disk) is `None`: the agent checks only these minors' roles.
    pub fn volume_of(&self, device: &Path) -> Option<(u32, u32)> {
        let d = device.to_str()?;
        let minor = d
            .strip_prefix("/dev/drbd")
            .and_then(|m| m.parse::<u32>().ok());
        if let Some(m) = minor.filter(|m| d == format!("/dev/drbd{m}")) {
            return self.volume_minors().find(|(_, minor)| *minor == m);
        }
        let rest = d.strip_prefix("/dev/drbd/by-res/")?.trim_end_matches('/');
        let vol = match rest.split_once('/') {
            Some((name, v)) if name == self.name => v.parse::<u32>().ok()?,
            None if rest == self.name && self.volumes.is_empty() => 0,
            _ => return None,
        };
        self.volume_minors().find(|(v, _)| *v == vol)
    }

    /// `Some(minor)` when `device` names one of this resource's volumes ([`Resource::volume_of`]).
    pub fn own_minor(&self, device: &Path) -> Option<u32> {
        self.volume_of(device).map(|(_, m)| m)
    }
}

/// `[[resource.volume]]`: numbers 1-65535 and unique, minors unique on the node (`minors`
/// holds every minor seen so far), a disk exactly in manage mode. The key relative to the
/// resource and the reason.
pub(super) fn validate(r: &Resource, minors: &mut BTreeSet<u32>) -> Result<(), (String, String)> {
    let mut numbers = BTreeSet::new();
    for (j, v) in r.volumes.iter().enumerate() {
        let k = |f: &str| format!("volume[{j}].{f}");
        let why = if v.volume == 0 {
            "volume 0 is the resource's own `minor`; number the others from 1"
        } else if v.volume > 65_535 {
            "must be 1-65535 (DRBD's volume numbers)"
        } else if !numbers.insert(v.volume) {
            "duplicate volume number"
        } else {
            ""
        };
        if !why.is_empty() {
            return Err((k("volume"), why.to_string()));
        }
        if v.minor > 1_048_575 {
            return Err((k("minor"), "must be at most 1048575".into()));
        }
        if !minors.insert(v.minor) {
            return Err((k("minor"), "duplicate DRBD minor".into()));
        }
        match (r.mode, &v.disk) {
            (Mode::Manage, None) => {
                return Err((
                    k("disk"),
                    "mode = \"manage\" needs each volume's backing disk".into(),
                ))
            }
            (Mode::Adopt, Some(_)) => {
                return Err((
                    k("disk"),
                    "given but mode = \"adopt\": drbd.conf names the disk; remove it".into(),
                ))
            }
            (Mode::Manage, Some(d)) if !d.is_absolute() => {
                return Err((k("disk"), "must be an absolute device path".into()))
            }
            _ => {}
        }
    }
    Ok(())
}
