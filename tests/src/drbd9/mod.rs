//! DRBD 9 in the lab: the kernel modules built once from the DRBD 9.3.3 source tarball (LINBIT,
//! GPL-2.0; path from `LAB_DRBD9_SOURCE`) against Debian's headers of the lab kernel, and the
//! per-run initramfs overlay that boots them instead of the in-tree 8.4.
//!
//! Cache (`<workspace>/target/lab-cache/`): `headers-<kver>/` keeps the three Debian header
//! packages (`apt-get download`, never installed: the host may run another kernel),
//! `drbd9-<kver>-<key>/` the stripped modules, keyed by a hash of the tarball and the build recipe,
//! so a new kernel or a new source rebuilds. The build (`make ... SPAAS=false`, about a minute on 2
//! cores) uses a cached kernel-compat patch (`cocci-cache-*.tar.xz` beside the tarball) when it
//! matches the headers, else needs coccinelle's `spatch` (Debian `coccinelle`).
//!
//! In the guest: `/mods/drbd.ko` is replaced by DRBD 9's (same dependencies, `lru_cache` and
//! `libcrc32c`, loaded at the same point with the same `usermode_helper`), and `/mods/load-late`
//! loads `handshake` (a compat module on 6.1) and `drbd_transport_tcp` after it: `insmod` resolves
//! no dependencies and DRBD 9 would ask `/sbin/modprobe` for its transport. Debian's DRBD 9
//! `drbdsetup` (drbd-utils, needs only libc) goes in as `/usr/sbin/drbdsetup`, a test oracle.

pub mod bringup;

use crate::assets::{self, Assets};
use crate::initramfs::fnv;
use anyhow::{anyhow, bail, Context, Result};
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

/// Environment variable naming the DRBD 9 source tarball (`drbd-9.3.3.tar.xz`).
pub const SOURCE_ENV: &str = "LAB_DRBD9_SOURCE";
/// Environment variable choosing the DRBD of a lab whose [`crate::LabConfig::drbd`] is `None`.
pub const VERSION_ENV: &str = "LAB_DRBD";
/// File name of the source tarball.
pub const TARBALL: &str = "drbd-9.3.3.tar.xz";
/// Bump when the build recipe changes (part of the module cache key).
const RECIPE: &str = "drbd9-v1";
/// Debian's DRBD 9 `drbdsetup` on the host, and its path in the guest.
pub const DRBDSETUP9: &str = "/usr/sbin/drbdsetup";
/// The modules in load order after `drbd`: (file in the cache, path relative to the build's `drbd/`).
const MODULES: &[(&str, &str)] = &[
    ("drbd.ko", "drbd.ko"),
    ("handshake.ko", "drbd-kernel-compat/handshake/handshake.ko"),
    ("drbd_transport_tcp.ko", "drbd_transport_tcp.ko"),
];

/// Which DRBD the lab's guests run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
pub enum DrbdVersion {
    /// The kernel's in-tree DRBD 8.4 (netlink API 1), loaded at boot.
    #[default]
    V84,
    /// DRBD 9.3.3 built from source (netlink API 2).
    V9,
}

impl std::str::FromStr for DrbdVersion {
    type Err = anyhow::Error;
    fn from_str(s: &str) -> Result<Self> {
        match s.trim() {
            "8.4" | "84" | "8" => Ok(Self::V84),
            "9" | "9.3" | "9.3.3" => Ok(Self::V9),
            other => bail!("DRBD version \"{other}\": expected 8.4 or 9"),
        }
    }
}

impl std::fmt::Display for DrbdVersion {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::V84 => "8.4",
            Self::V9 => "9",
        })
    }
}

impl DrbdVersion {
    /// From `LAB_DRBD` (`8.4` or `9`); 8.4 when unset, an error when unreadable.
    pub fn from_env() -> Result<Self> {
        match std::env::var(VERSION_ENV) {
            Ok(v) if !v.trim().is_empty() => v.parse().context(VERSION_ENV),
            _ => Ok(Self::V84),
        }
    }
}

/// The source tarball: `LAB_DRBD9_SOURCE`, else the copy kept in the repository at
/// `tests/assets/drbd9/` (unmodified, GPL-2.0, checksums in `SHA256SUMS`; see docs/drbd9-lab.md).
pub fn source_tarball() -> PathBuf {
    match std::env::var_os(SOURCE_ENV) {
        Some(p) if !p.is_empty() => PathBuf::from(p),
        _ => assets::workspace_root()
            .join("tests/assets/drbd9")
            .join(TARBALL),
    }
}

/// What a DRBD 9 lab needs beyond the 8.4 lab's prerequisites, if anything is missing.
pub fn missing_prereqs() -> Option<String> {
    let mut miss = Vec::new();
    let src = source_tarball();
    if !src.is_file() {
        miss.push(format!(
            "DRBD 9 source tarball {} (set {SOURCE_ENV} to the path of {TARBALL})",
            src.display()
        ));
    }
    for f in [
        DRBDSETUP9,
        "/usr/bin/make",
        "/usr/bin/gcc-12",
        "/usr/bin/strip",
    ] {
        if !Path::new(f).exists() {
            miss.push(format!("missing {f}"));
        }
    }
    (!miss.is_empty()).then(|| {
        format!(
            "DRBD 9 lab: {} (run `bash scripts/deps.sh` as root)",
            miss.join(", ")
        )
    })
}

/// Like [`crate::require_lab`], plus the DRBD 9 build's prerequisites: true if all are there;
/// panics with the reason under `CI=true`, else prints `SKIP: <reason>` and returns false.
pub fn require_lab9() -> bool {
    if !crate::require_lab() {
        return false;
    }
    match missing_prereqs() {
        None => true,
        Some(reason) => test_support::prereq::skip(format!("lab prerequisites missing: {reason}")),
    }
}

/// The DRBD 9 modules for one kernel, built and cached.
#[derive(Debug, Clone)]
pub struct Modules {
    /// Cache directory holding the stripped `.ko` files and `load-late`.
    pub dir: PathBuf,
}

impl Modules {
    /// Initramfs overlay entries (guest path, host path) that boot DRBD 9 instead of 8.4.
    pub fn overlay(&self) -> Vec<(String, PathBuf)> {
        let mut v: Vec<(String, PathBuf)> = MODULES
            .iter()
            .map(|(f, _)| (format!("/mods/{f}"), self.dir.join(f)))
            .collect();
        v.push(("/mods/load-late".into(), self.dir.join("load-late")));
        v.push((DRBDSETUP9.into(), PathBuf::from(DRBDSETUP9)));
        v
    }
}

/// Makes sure the DRBD 9 modules for the lab kernel are in the cache (builds them on first use,
/// about a minute) and returns them.
pub fn ensure(assets: &Assets) -> Result<Modules> {
    let src = source_tarball();
    let tarball = fs::read(&src).with_context(|| {
        format!(
            "read the DRBD 9 source tarball {} (set {SOURCE_ENV})",
            src.display()
        )
    })?;
    let cache = assets::cache_dir();
    let key = fnv(&[RECIPE.as_bytes(), assets.kver.as_bytes(), &tarball]);
    let dir = cache.join(format!("drbd9-{}-{key:016x}", assets.kver));
    let modules = Modules { dir: dir.clone() };
    if dir.join("load-late").exists() {
        return Ok(modules);
    }
    let _lock = assets::lock(&cache)?;
    if dir.join("load-late").exists() {
        return Ok(modules); // built by a parallel test binary while we waited
    }
    let kdir = ensure_headers(&cache, &assets.kver)?;
    let build = cache.join("drbd9-build.tmp");
    let _ = fs::remove_dir_all(&build);
    fs::create_dir_all(&build)?;
    let r = build_modules(&src, &kdir.headers(&build)?, &build, &assets.kver, &dir);
    let _ = fs::remove_dir_all(&build);
    r.map(|()| modules)
}

/// The cached Debian header packages of one kernel release.
struct HeaderDebs(Vec<PathBuf>);

impl HeaderDebs {
    /// Unpacks the packages under `build/headers` and returns the `KDIR` for an external module
    /// build. The arch package's Makefile includes the common tree by absolute path: pointed here.
    fn headers(&self, build: &Path) -> Result<PathBuf> {
        let root = build.join("headers");
        for deb in &self.0 {
            assets::run(Command::new("dpkg-deb").arg("-x").arg(deb).arg(&root))?;
        }
        let src = root.join("usr/src");
        let kdir = fs::read_dir(&src)?
            .filter_map(|e| e.ok())
            .map(|e| e.path())
            .find(|p| {
                p.file_name().is_some_and(|n| {
                    let n = n.to_string_lossy();
                    n.starts_with("linux-headers-") && !n.ends_with("-common")
                })
            })
            .ok_or_else(|| anyhow!("no linux-headers-<kver> tree in {}", src.display()))?;
        let mk = kdir.join("Makefile");
        let text = fs::read_to_string(&mk)?;
        let abs = src.to_string_lossy().to_string() + "/";
        fs::write(
            &mk,
            text.replace("include /usr/src/", &format!("include {abs}")),
        )?;
        Ok(kdir)
    }
}

/// `apt-get download` of `linux-headers-<kver>` and the two packages it needs (`-common` of the
/// same version, `linux-kbuild-*`), kept in `<cache>/headers-<kver>/`.
fn ensure_headers(cache: &Path, kver: &str) -> Result<HeaderDebs> {
    let dir = cache.join(format!("headers-{kver}"));
    if !dir.is_dir() {
        let tmp = cache.join(format!("headers-{kver}.tmp"));
        let _ = fs::remove_dir_all(&tmp);
        fs::create_dir_all(&tmp)?;
        eprintln!("lab: downloading linux-headers-{kver} (apt-get download)");
        let main = format!("linux-headers-{kver}");
        assets::run(
            Command::new("apt-get")
                .args(["download", &main])
                .current_dir(&tmp),
        )?;
        let deb = debs(&tmp)?
            .into_iter()
            .next()
            .ok_or_else(|| anyhow!("apt-get download left no .deb in {}", tmp.display()))?;
        let out = Command::new("dpkg-deb")
            .args(["-f"])
            .arg(&deb)
            .args(["Depends", "Version"])
            .output()
            .context("dpkg-deb -f")?;
        let fields = String::from_utf8_lossy(&out.stdout).to_string();
        let version = fields
            .lines()
            .find_map(|l| l.strip_prefix("Version:"))
            .map(str::trim)
            .ok_or_else(|| anyhow!("{} has no Version", deb.display()))?;
        // e.g. "linux-headers-6.1.0-57-common (= 6.1.192-3), linux-kbuild-6.1 (>= 6.1.192-3), ..."
        let wanted: Vec<String> = fields
            .split([',', '\n'])
            .filter_map(|d| {
                d.trim()
                    .trim_start_matches("Depends:")
                    .split_whitespace()
                    .next()
            })
            .filter(|n| n.starts_with("linux-headers-") || n.starts_with("linux-kbuild-"))
            .map(|n| format!("{n}={version}"))
            .collect();
        if wanted.len() < 2 {
            bail!(
                "{} depends on no common headers / kbuild: {fields}",
                deb.display()
            );
        }
        let mut cmd = Command::new("apt-get");
        cmd.arg("download").args(&wanted).current_dir(&tmp);
        assets::run(&mut cmd)?;
        fs::rename(&tmp, &dir)?;
    }
    Ok(HeaderDebs(debs(&dir)?))
}

fn debs(dir: &Path) -> Result<Vec<PathBuf>> {
    let mut v: Vec<PathBuf> = fs::read_dir(dir)?
        .filter_map(|e| e.ok())
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "deb"))
        .collect();
    v.sort();
    Ok(v)
}

/// Unpacks the tarball (and any cached compat patch beside it) in `build`, runs the module build
/// against `kdir`, strips the modules into `out` (temporary name, then renamed).
fn build_modules(src: &Path, kdir: &Path, build: &Path, kver: &str, out: &Path) -> Result<()> {
    assets::run(
        Command::new("tar")
            .arg("-xJf")
            .arg(src)
            .arg("-C")
            .arg(build),
    )?;
    let top = fs::read_dir(build)?
        .filter_map(|e| e.ok())
        .map(|e| e.path())
        .find(|p| p.join("drbd/Makefile").exists())
        .ok_or_else(|| anyhow!("{} holds no drbd/Makefile", src.display()))?;
    let drbd = top.join("drbd");
    let compat = drbd.join("drbd-kernel-compat");
    if let Some(dir) = src.parent() {
        for e in fs::read_dir(dir)?.filter_map(|e| e.ok()) {
            let n = e.file_name().to_string_lossy().to_string();
            if n.starts_with("cocci-cache-") && n.ends_with(".tar.xz") {
                assets::run(
                    Command::new("tar")
                        .arg("-xJf")
                        .arg(e.path())
                        .arg("-C")
                        .arg(&compat),
                )?;
            }
        }
    }
    eprintln!("lab: building DRBD 9 modules for {kver} (about a minute)");
    let jobs = std::thread::available_parallelism().map_or(2, |n| n.get());
    // SPAAS=false: the default sends the compat generation to LINBIT's online service.
    let log = fs::File::create(build.join("make.log"))?;
    let status = Command::new("make")
        .arg("-C")
        .arg(&drbd)
        .arg(format!("-j{jobs}"))
        .arg(format!("KDIR={}", kdir.display()))
        .arg("SPAAS=false")
        .stdout(log.try_clone()?)
        .stderr(log)
        .status()
        .context("start make")?;
    if !status.success() {
        let err = fs::read_to_string(build.join("make.log")).unwrap_or_default();
        let tail: Vec<&str> = err.lines().rev().take(25).collect();
        let tail: Vec<&str> = tail.into_iter().rev().collect();
        let spatch = std::env::var_os("PATH")
            .is_some_and(|p| std::env::split_paths(&p).any(|d| d.join("spatch").exists()));
        let hint = if spatch || !err.contains("No local spatch") {
            String::new()
        } else {
            format!(
                "\nno cached compat patch matches the {kver} headers and coccinelle's spatch is \
                 missing: apt-get install coccinelle"
            )
        };
        bail!(
            "DRBD 9 module build failed ({status}):\n{}{hint}",
            tail.join("\n")
        );
    }
    let tmp = out.with_extension("tmp");
    let _ = fs::remove_dir_all(&tmp);
    fs::create_dir_all(&tmp)?;
    let built = drbd.join(format!("build-{kver}"));
    for (name, rel) in MODULES {
        let from = [built.join(rel), drbd.join(rel)]
            .into_iter()
            .find(|p| p.exists())
            .ok_or_else(|| anyhow!("the build produced no {rel}"))?;
        // Debug info takes drbd.ko from ~14 MB to ~1.6 MB: the initramfs stays small.
        assets::run(
            Command::new("strip")
                .arg("--strip-debug")
                .arg("-o")
                .arg(tmp.join(name))
                .arg(&from),
        )?;
    }
    let late: String = MODULES
        .iter()
        .skip(1)
        .map(|(f, _)| format!("{} \n", f.trim_end_matches(".ko")))
        .collect();
    fs::write(tmp.join("load-late"), late)?;
    let _ = fs::remove_dir_all(out);
    fs::rename(&tmp, out)?;
    Ok(())
}

/// The DRBD 9 lab shared by the tests of one test binary (like [`crate::Lab::shared`], which
/// runs 8.4): started on first use, cleaned up at process exit.
pub fn shared_lab() -> Result<&'static crate::Lab> {
    static SHARED: std::sync::OnceLock<std::result::Result<crate::Lab, String>> =
        std::sync::OnceLock::new();
    SHARED
        .get_or_init(|| {
            crate::Lab::start_with(crate::LabConfig {
                drbd: Some(DrbdVersion::V9),
                ..crate::LabConfig::default()
            })
            .map_err(|e| format!("{e:#}"))
        })
        .as_ref()
        .map_err(|e| anyhow!("shared DRBD 9 lab failed to start: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn version_parses_and_prints() {
        assert_eq!("9".parse::<DrbdVersion>().unwrap(), DrbdVersion::V9);
        assert_eq!("8.4".parse::<DrbdVersion>().unwrap(), DrbdVersion::V84);
        assert!("10".parse::<DrbdVersion>().is_err());
        assert_eq!(DrbdVersion::V9.to_string(), "9");
    }
}
