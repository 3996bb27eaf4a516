//! Inputs prepared once and cached under `<workspace>/target/lab-cache/`: the Debian kernel package
//! (unpacked, `depmod`ed, pre-decompressed to an ELF `vmlinux` for PVH boot) and the base initramfs.
//!
//! Every step writes to a temporary name and renames when complete, so a half-finished previous run
//! (killed, out of disk) is redone instead of reused. A lock file serialises concurrent test binaries.

use crate::initramfs;
use anyhow::{anyhow, bail, Context, Result};
use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// The workspace root (`tests/..`), fixed at build time.
pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_else(|| PathBuf::from("."))
}

/// The workspace's git commit (`git rev-parse --short=12 HEAD`), `+dirty` when the work tree has
/// changes (`git status --porcelain`): which code a report measured. `None` outside a git checkout
/// or without `git`.
pub fn source_commit() -> Option<String> {
    let git = |args: &[&str]| {
        Command::new("git")
            .arg("-C")
            .arg(workspace_root())
            .args(args)
            .stderr(Stdio::null())
            .output()
            .ok()
            .filter(|o| o.status.success())
            .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
    };
    let head = git(&["rev-parse", "--short=12", "HEAD"])?;
    let dirty =
        git(&["status", "--porcelain", "--untracked-files=no"]).is_some_and(|s| !s.is_empty());
    Some(if dirty { format!("{head}+dirty") } else { head })
}

/// `<workspace>/target/lab-cache`: independent of `CARGO_TARGET_DIR`, shared by all runs.
pub fn cache_dir() -> PathBuf {
    workspace_root().join("target").join("lab-cache")
}

/// `<workspace>/target/lab-report`: where measurements are written as JSON.
pub fn report_dir() -> PathBuf {
    workspace_root().join("target").join("lab-report")
}

/// Writes `rep` as `<report_dir>/<stem>.json` (pretty) and returns the directory, for the stem's
/// other files. `stem`: ASCII letters, digits and `-` only.
pub fn write_json_report<T: serde::Serialize>(stem: &str, rep: &T) -> Result<PathBuf> {
    if !stem.chars().all(|c| c.is_ascii_alphanumeric() || c == '-') {
        bail!("bad report name {stem:?}");
    }
    let dir = report_dir();
    fs::create_dir_all(&dir)?;
    fs::write(
        dir.join(format!("{stem}.json")),
        serde_json::to_string_pretty(rep)?,
    )?;
    Ok(dir)
}

/// The cached inputs a lab boots from.
#[derive(Debug, Clone)]
pub struct Assets {
    /// Kernel release, e.g. `6.1.0-56-amd64`.
    pub kver: String,
    /// Uncompressed ELF kernel, booted by QEMU through PVH.
    pub vmlinux: PathBuf,
    /// Unpacked kernel package (contains `lib/modules/<kver>`).
    pub kernel_root: PathBuf,
    /// Base initramfs (uncompressed newc cpio): busybox, modules, tgtd, drbd-utils 8.4, glibc, `/init`.
    pub initrd: PathBuf,
}

pub(crate) fn run(cmd: &mut Command) -> Result<()> {
    let out = cmd
        .output()
        .with_context(|| format!("cannot start {cmd:?}"))?;
    if !out.status.success() {
        bail!(
            "{cmd:?} failed ({}): {}{}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok(())
}

/// The kernel release `linux-image-amd64` currently depends on, from `apt-cache depends`.
fn apt_kver() -> Option<String> {
    let out = Command::new("apt-cache")
        .args(["depends", "linux-image-amd64"])
        .stderr(Stdio::null())
        .output()
        .ok()?;
    let text = String::from_utf8_lossy(&out.stdout);
    text.lines().find_map(|l| {
        let l = l.trim();
        let v = l.strip_prefix("Depends: linux-image-")?;
        (v.starts_with("6.1.") && v.ends_with("-amd64")).then(|| v.to_string())
    })
}

/// Any kernel already complete in the cache (fallback when apt knows none, e.g. offline).
fn cached_kver(cache: &Path) -> Option<String> {
    let mut found: Vec<String> = fs::read_dir(cache)
        .ok()?
        .filter_map(|e| e.ok())
        .filter_map(|e| {
            let n = e.file_name().to_string_lossy().to_string();
            n.strip_prefix("vmlinux-").map(str::to_string)
        })
        .filter(|v| !v.ends_with(".tmp"))
        .filter(|v| cache.join(format!("kernel-{v}")).is_dir())
        .collect();
    found.sort();
    found.pop()
}

/// Takes an exclusive lock on `<cache>/.lock` for the duration of the returned guard.
pub(crate) fn lock(cache: &Path) -> Result<nix::fcntl::Flock<fs::File>> {
    let f = fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(cache.join(".lock"))
        .context("open cache lock")?;
    nix::fcntl::Flock::lock(f, nix::fcntl::FlockArg::LockExclusive)
        .map_err(|(_, e)| anyhow!("flock cache: {e}"))
}

/// Makes sure the kernel, the vmlinux and the base initramfs are in the cache; returns their paths.
/// Idempotent; the first call downloads about 70 MB and takes about 30 s.
pub fn ensure() -> Result<Assets> {
    let cache = cache_dir();
    fs::create_dir_all(&cache).with_context(|| format!("create {}", cache.display()))?;
    let _lock = lock(&cache)?;
    let kver = match apt_kver() {
        Some(v) if cache.join(format!("vmlinux-{v}")).exists() => v,
        Some(v) => match ensure_kernel(&cache, &v) {
            Ok(()) => v,
            Err(e) => cached_kver(&cache).ok_or(e)?,
        },
        None => cached_kver(&cache).ok_or_else(|| {
            anyhow!("apt-cache knows no linux-image-amd64 and no kernel is cached")
        })?,
    };
    ensure_kernel(&cache, &kver)?;
    let kernel_root = cache.join(format!("kernel-{kver}"));
    let vmlinux = cache.join(format!("vmlinux-{kver}"));
    let initrd = initramfs::ensure_base(&cache, &kver, &kernel_root)?;
    Ok(Assets {
        kver,
        vmlinux,
        kernel_root,
        initrd,
    })
}

fn ensure_kernel(cache: &Path, kver: &str) -> Result<()> {
    let root = cache.join(format!("kernel-{kver}"));
    if !root.is_dir() {
        let tmp = cache.join(format!("kernel-{kver}.tmp"));
        let dl = cache.join("download.tmp");
        let _ = fs::remove_dir_all(&tmp);
        let _ = fs::remove_dir_all(&dl);
        fs::create_dir_all(&dl)?;
        eprintln!("lab: downloading linux-image-{kver} (apt-get download)");
        run(Command::new("apt-get")
            .args(["download", &format!("linux-image-{kver}")])
            .current_dir(&dl))?;
        let deb = fs::read_dir(&dl)?
            .filter_map(|e| e.ok())
            .map(|e| e.path())
            .find(|p| p.extension().is_some_and(|x| x == "deb"))
            .ok_or_else(|| anyhow!("apt-get download left no .deb in {}", dl.display()))?;
        run(Command::new("dpkg-deb").arg("-x").arg(&deb).arg(&tmp))?;
        run(Command::new("depmod").arg("-b").arg(&tmp).arg(kver))?;
        fs::rename(&tmp, &root)?;
        let _ = fs::remove_dir_all(&dl);
    }
    let vmlinux = cache.join(format!("vmlinux-{kver}"));
    if !vmlinux.exists() {
        let vmlinuz = root.join("boot").join(format!("vmlinuz-{kver}"));
        let bytes = fs::read(&vmlinuz).with_context(|| format!("read {}", vmlinuz.display()))?;
        let magic = [0xFDu8, 0x37, 0x7A, 0x58, 0x5A, 0x00];
        let at = bytes
            .windows(magic.len())
            .position(|w| w == magic)
            .ok_or_else(|| anyhow!("no XZ stream in {}", vmlinuz.display()))?;
        let tmp = cache.join(format!("vmlinux-{kver}.tmp"));
        let out = fs::File::create(&tmp)?;
        let mut child = Command::new("xz")
            .args(["-dc", "--single-stream"])
            .stdin(Stdio::piped())
            .stdout(out)
            .spawn()
            .context("start xz")?;
        if let Some(mut stdin) = child.stdin.take() {
            // xz --single-stream stops reading at the end of the stream: trailing bytes get EPIPE.
            match stdin.write_all(bytes.get(at..).unwrap_or_default()) {
                Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => return Err(e.into()),
                _ => {}
            }
        }
        let st = child.wait()?;
        if !st.success() {
            bail!("xz -d of {} failed: {st}", vmlinuz.display());
        }
        let head = fs::read(&tmp)?;
        if !head.starts_with(b"\x7fELF") {
            bail!("decompressed kernel is not an ELF file");
        }
        fs::rename(&tmp, &vmlinux)?;
    }
    Ok(())
}
