//! `[[resource.volume]]`: a resource's DRBD volumes beyond volume 0, and which device names
//! are one of a resource's volumes.

use std::collections::{BTreeMap, BTreeSet};
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
        let vol = match by_res(device)? {
            (name, Some(v)) if name == self.name => v,
            (name, None) if name == self.name && self.volumes.is_empty() => 0,
            _ => return None,
        };
        self.volume_minors().find(|(v, _)| *v == vol)
    }

    /// `Some(minor)` when `device` names one of this resource's volumes ([`Resource::volume_of`]).
    pub fn own_minor(&self, device: &Path) -> Option<u32> {
        self.volume_of(device).map(|(_, m)| m)
    }
}

/// The resource name and volume number of udev's `/dev/drbd/by-res/<name>[/<volume>]`, exactly
/// as udev names it: the volume in decimal without sign or leading zero, no trailing `/`
/// (`.../r0/01` or `.../r0/1/` name no device).
pub(crate) fn by_res(device: &Path) -> Option<(&str, Option<u32>)> {
    let rest = device.to_str()?.strip_prefix("/dev/drbd/by-res/")?;
    let Some((name, v)) = rest.split_once('/') else {
        return (!rest.is_empty()).then_some((rest, None));
    };
    let n = v.parse::<u32>().ok().filter(|n| n.to_string() == v)?;
    (!name.is_empty()).then_some((name, Some(n)))
}

/// Records `disk` as the backing disk of `key`; the reason when another key has it already
/// (DRBD opens a backing disk exclusively: the second attach would fail).
pub(super) fn claim_disk(
    disks: &mut BTreeMap<PathBuf, String>,
    disk: &Path,
    key: String,
) -> Result<(), String> {
    match disks.insert(disk.to_path_buf(), key) {
        Some(other) => Err(format!(
            "{} is the backing disk of {other} too: one disk, one DRBD volume",
            disk.display()
        )),
        None => Ok(()),
    }
}

/// `[[resource.volume]]`: numbers 1-65535 and unique, minors unique on the node (`minors`
/// holds every minor seen so far), a disk exactly in manage mode and no other volume's
/// (`disks`). `key` makes a key relative to the resource absolute; the key and the reason.
pub(super) fn validate(
    r: &Resource,
    minors: &mut BTreeSet<u32>,
    disks: &mut BTreeMap<PathBuf, String>,
    key: &dyn Fn(&str) -> String,
) -> Result<(), (String, String)> {
    let mut numbers = BTreeSet::new();
    for (j, v) in r.volumes.iter().enumerate() {
        let k = |f: &str| key(&format!("volume[{j}].{f}"));
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
            (Mode::Manage, Some(d)) => {
                claim_disk(disks, d, k("disk")).map_err(|why| (k("disk"), why))?
            }
            _ => {}
        }
    }
    Ok(())
}
