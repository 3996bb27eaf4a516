//! The guest image: a newc cpio written in Rust (no `cpio` process), a cached base archive and a
//! small per-run overlay.
//!
//! Base archive (cached, uncompressed so the TCG guest spends no time inflating it): static busybox,
//! the kernel modules the lab loads (dependency order resolved on the host from `modules.dep`),
//! tgtd + tgtadm, drbd-utils' 8.4 tools (`drbdsetup-84`, `drbdadm-84`, `drbdmeta`: test oracles
//! only), every library `ldd` names for them, glibc's `libc`/`libm`/`libgcc_s`/`ld-linux` for the
//! project's own (dynamically linked) Rust binaries, `/init`, the control loop and the DRBD
//! user-mode helper. The project's binaries themselves are not copied: the host's cargo profile
//! directory is shared read-only over virtio-9p (see `crate::GUEST_TARGET`). The overlay carries
//! per-run extra files (`crate::LabConfig::extra_files`); Linux unpacks concatenated archives in order.

use anyhow::{anyhow, bail, Context, Result};
use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::path::Path;
use std::process::Command;

/// Bump when the content recipe changes (the cache key also hashes the scripts below).
const RECIPE: &str = "base-v2";

/// Modules loaded at boot, in this order after their dependencies; `insmod` parameters beside them.
/// An overlay may add `/mods/load-late` (same format), loaded after these (DRBD 9's transport).
const LOAD: &[(&str, &str)] = &[
    ("crc32c_generic", ""),
    ("virtio_pci", ""),
    ("virtio_net", ""),
    ("virtio_blk", ""),
    ("9pnet_virtio", ""),
    ("9p", ""),
    ("drbd", "usermode_helper=/bin/lab-helper"),
    ("brd", "rd_nr=2 rd_size=8192"),
    // the agent's [tickle] lists the portal's connections with a sock_diag dump (Debian builds
    // both as modules; nothing in the guest autoloads them)
    ("inet_diag", ""),
    ("tcp_diag", ""),
];
/// Modules shipped in `/mods` but not loaded (tests `insmod` them when needed).
const SHIP_ONLY: &[&str] = &[
    "nlmon",
    "vsock",
    "vmw_vsock_virtio_transport",
    "dummy",
    "veth",
];

/// Host programs copied with their libraries (same paths in the guest).
const PROGRAMS: &[&str] = &[
    "/usr/sbin/tgtd",
    "/usr/sbin/tgtadm",
    "/usr/lib/drbd/drbdsetup-84",
    "/usr/lib/drbd/drbdadm-84",
    "/usr/sbin/drbdmeta",
];
/// Libraries for the project's Rust binaries (glibc build), copied even if no program above needs them.
const RUST_LIBS: &[&str] = &["libc.so.6", "libm.so.6", "libgcc_s.so.1"];

/// The guest's `/init`: mounts, module loading, network from the kernel command line
/// (`lab_node=`, `lab_ip=`), the 9p share, then the control loop on ttyS1.
pub const INIT: &str = r#"#!/bin/busybox sh
/bin/busybox --install -s /bin
export PATH=/bin:/sbin:/usr/bin:/usr/sbin:/usr/lib/drbd
mount -t proc proc /proc; mount -t sysfs sysfs /sys; mount -t devtmpfs devtmpfs /dev; mount -t tmpfs tmpfs /tmp
mkdir -p /var/lock /run/lock /var/lib/drbd /var/run/tgtd /lab/target /tmp/.lab
# the agents' [tickle] secret_file (agent_lab::TICKLE_SECRET): the same on every node, mode 600
mkdir -p /etc/iscsi-ha && (umask 077 && echo lab-tickle-secret-not-for-real-use > /etc/iscsi-ha/tickle.secret)
for kv in $(cat /proc/cmdline); do case "$kv" in lab_*=*) export "$kv";; esac; done
echo "lab: init started node=$lab_node uptime=$(cut -d' ' -f1 /proc/uptime)"
for l in /mods/load /mods/load-late; do
  [ -f $l ] && while read -r m args; do insmod /mods/$m.ko $args || echo "lab: insmod $m FAILED"; done < $l
done
hostname "$lab_node"
ip link set lo up
ip addr add "$lab_ip/24" dev eth0 && ip link set eth0 up
if [ -n "$lab_9p" ]; then
  # cache=loose keeps file pages in the guest: without it every exec reads the ~64 MB debug binary
  # over 9p again (2-20 s per start under TCG). A lab sees the binaries of its own boot: restart it
  # after a rebuild.
  mount -t 9p -o trans=virtio,version=9p2000.L,ro,msize=262144,cache=loose "$lab_9p" /lab/target || echo "lab: 9p mount FAILED"
fi
export lab_node
exec setsid /bin/lab-ctl </dev/ttyS1 >/dev/ttyS1 2>/dev/null
"#;

/// The control loop on ttyS1. Request: `CMD <id> <base64 script>`; reply: `BEGIN <id>`, `O <base64>`
/// lines (stdout), `E <base64>` lines (stderr), `END <id> rc=<n>`. The script runs with `sh`, stdin
/// from /dev/null, its output in files (so background daemons never hold the channel).
pub const CTL: &str = r#"#!/bin/sh
# Configure the port and say ready only while this loop holds ttyS1 open: bytes that reach a
# closed 8250 port are flushed when it is opened, so the host must not send before this.
stty raw -echo
cd /tmp/.lab
echo "lab: LAB-READY node=$lab_node uptime=$(cut -d' ' -f1 /proc/uptime)" > /dev/console
while IFS= read -r line; do
  set -- $line
  [ "$1" = CMD ] || continue
  id=$2
  echo "$3" | base64 -d > "$id.sh"
  sh "$id.sh" </dev/null >"$id.o" 2>"$id.e"; rc=$?
  echo "BEGIN $id"
  base64 "$id.o" | sed 's/^/O /'
  base64 "$id.e" | sed 's/^/E /'
  echo "END $id rc=$rc"
  rm -f "$id.sh" "$id.o" "$id.e"
done
"#;

/// DRBD's user-mode helper: logs its argv to `/tmp/lab-helper.log` and the console, exits 0.
pub const HELPER: &str = r#"#!/bin/sh
echo "$(cut -d' ' -f1 /proc/uptime) $*" >> /tmp/lab-helper.log
echo "lab-helper: $*" > /dev/console
exit 0
"#;

/// A newc ("070701") cpio archive built in memory.
#[derive(Default)]
pub struct Cpio {
    buf: Vec<u8>,
    ino: u32,
    dirs: BTreeSet<String>,
}

impl Cpio {
    fn header(&mut self, name: &str, mode: u32, size: usize) {
        self.ino += 1;
        let namesize = name.len() + 1;
        let fields = [
            self.ino,
            mode,
            0,
            0,
            1,
            0,
            size as u32,
            0,
            0,
            0,
            0,
            namesize as u32,
            0,
        ];
        self.buf.extend_from_slice(b"070701");
        for f in fields {
            self.buf.extend_from_slice(format!("{f:08X}").as_bytes());
        }
        self.buf.extend_from_slice(name.as_bytes());
        self.buf.push(0);
        self.pad();
    }
    fn pad(&mut self) {
        while self.buf.len() % 4 != 0 {
            self.buf.push(0);
        }
    }
    fn parents(&mut self, path: &str) {
        let mut acc = String::new();
        let parts: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
        for p in parts.iter().take(parts.len().saturating_sub(1)) {
            if !acc.is_empty() {
                acc.push('/');
            }
            acc.push_str(p);
            if self.dirs.insert(acc.clone()) {
                let name = acc.clone();
                self.header(&name, 0o040755, 0);
            }
        }
    }
    /// Adds a directory (and its parents).
    pub fn dir(&mut self, path: &str) {
        let p = path.trim_matches('/').to_string();
        self.parents(&format!("{p}/x"));
    }
    /// Adds a regular file with `mode` permission bits (parents are created).
    pub fn file(&mut self, path: &str, mode: u32, data: &[u8]) {
        let p = path.trim_start_matches('/');
        self.parents(p);
        self.header(p, 0o100000 | (mode & 0o7777), data.len());
        self.buf.extend_from_slice(data);
        self.pad();
    }
    /// Adds a symbolic link.
    pub fn symlink(&mut self, path: &str, target: &str) {
        let p = path.trim_start_matches('/');
        self.parents(p);
        self.header(p, 0o120777, target.len());
        self.buf.extend_from_slice(target.as_bytes());
        self.pad();
    }
    /// Appends the trailer and returns the bytes.
    pub fn finish(mut self) -> Vec<u8> {
        self.header("TRAILER!!!", 0, 0);
        while self.buf.len() % 512 != 0 {
            self.buf.push(0);
        }
        self.buf
    }
}

/// FNV-1a (64 bit) over `parts`, each followed by a 0 byte: the cache keys' content hash.
pub(crate) fn fnv<T: AsRef<[u8]>>(parts: &[T]) -> u64 {
    let mut h: u64 = 0xcbf29ce484222325;
    for p in parts {
        for b in p.as_ref().iter().copied().chain([0u8]) {
            h ^= u64::from(b);
            h = h.wrapping_mul(0x100000001b3);
        }
    }
    h
}

/// Paths of the libraries `ldd` names for `prog` (resolved, absolute).
fn ldd(prog: &str) -> Result<Vec<String>> {
    let out = Command::new("ldd").arg(prog).output().context("run ldd")?;
    let text = String::from_utf8_lossy(&out.stdout);
    Ok(text
        .split_whitespace()
        .filter(|w| w.starts_with('/'))
        .map(str::to_string)
        .collect())
}

/// Module name -> (path relative to the modules dir, dependency names), from `modules.dep`.
fn modules_dep(moddir: &Path) -> Result<BTreeMap<String, (String, Vec<String>)>> {
    let text = fs::read_to_string(moddir.join("modules.dep")).context("read modules.dep")?;
    let name = |p: &str| -> String {
        let f = p.rsplit('/').next().unwrap_or(p);
        f.trim_end_matches(".ko").replace('-', "_")
    };
    let mut map = BTreeMap::new();
    for line in text.lines() {
        let Some((m, deps)) = line.split_once(':') else {
            continue;
        };
        if !m.ends_with(".ko") {
            bail!("compressed or unexpected module {m}: only plain .ko is supported");
        }
        map.insert(
            name(m),
            (
                m.to_string(),
                deps.split_whitespace().map(name).collect::<Vec<_>>(),
            ),
        );
    }
    Ok(map)
}

fn closure(
    m: &str,
    dep: &BTreeMap<String, (String, Vec<String>)>,
    seen: &mut BTreeSet<String>,
    order: &mut Vec<String>,
) -> Result<()> {
    if seen.contains(m) {
        return Ok(());
    }
    let (_, deps) = dep
        .get(m)
        .ok_or_else(|| anyhow!("module {m} not in modules.dep"))?;
    seen.insert(m.to_string());
    for d in deps.iter().rev() {
        closure(d, dep, seen, order)?;
    }
    order.push(m.to_string());
    Ok(())
}

/// Builds (once) the cached base archive for kernel `kver`; returns its path.
pub fn ensure_base(cache: &Path, kver: &str, kernel_root: &Path) -> Result<std::path::PathBuf> {
    let key = fnv(&[RECIPE, kver, INIT, CTL, HELPER]);
    let path = cache.join(format!("initrd-{kver}-{key:016x}.cpio"));
    if path.exists() {
        return Ok(path);
    }
    eprintln!("lab: building base initramfs {}", path.display());
    let moddir = kernel_root.join("lib/modules").join(kver);
    let dep = modules_dep(&moddir)?;
    let builtin = fs::read_to_string(moddir.join("modules.builtin")).unwrap_or_default();
    let mut cpio = Cpio::default();
    for d in [
        "bin",
        "sbin",
        "usr/bin",
        "usr/sbin",
        "proc",
        "sys",
        "dev",
        "tmp",
        "etc",
        "run",
        "var",
        "mods",
        "lab/target",
    ] {
        cpio.dir(d);
    }
    cpio.file("init", 0o755, INIT.as_bytes());
    cpio.file("bin/lab-ctl", 0o755, CTL.as_bytes());
    cpio.file("bin/lab-helper", 0o755, HELPER.as_bytes());
    cpio.file(
        "bin/busybox",
        0o755,
        &fs::read("/bin/busybox").context("read /bin/busybox (busybox-static)")?,
    );
    cpio.file("etc/passwd", 0o644, b"root:x:0:0:root:/:/bin/sh\n");
    cpio.file("etc/group", 0o644, b"root:x:0:\n");
    // Modules: load list in dependency order.
    let mut seen = BTreeSet::new();
    let mut order = Vec::new();
    let mut load = String::new();
    for (m, _) in LOAD {
        if dep.contains_key(*m) {
            closure(m, &dep, &mut seen, &mut order)?;
        } else if !builtin.contains(&format!("/{m}.ko")) {
            bail!("module {m} is neither in modules.dep nor built in");
        }
    }
    for m in &order {
        let args = LOAD
            .iter()
            .find(|(n, _)| n == m)
            .map(|(_, a)| *a)
            .unwrap_or("");
        load.push_str(&format!("{m} {args}\n"));
    }
    let mut ship = order.clone();
    for m in SHIP_ONLY {
        if dep.contains_key(*m) {
            let mut o = Vec::new();
            closure(m, &dep, &mut seen, &mut o)?;
            ship.extend(o);
        }
    }
    for m in &ship {
        let (rel, _) = dep.get(m).ok_or_else(|| anyhow!("module {m} vanished"))?;
        let data = fs::read(moddir.join(rel)).with_context(|| format!("read module {rel}"))?;
        cpio.file(&format!("mods/{m}.ko"), 0o644, &data);
    }
    cpio.file("mods/load", 0o644, load.as_bytes());
    // Programs and libraries.
    let mut files: BTreeSet<String> = BTreeSet::new();
    for p in PROGRAMS {
        files.insert((*p).to_string());
        files.extend(ldd(p)?);
    }
    let me = ldd("/bin/sh")?; // glibc's own paths on this host
    let libdir = me
        .iter()
        .find(|l| l.ends_with("/libc.so.6"))
        .and_then(|l| l.rsplit_once('/').map(|(d, _)| d.to_string()))
        .ok_or_else(|| anyhow!("cannot find libc.so.6 via ldd /bin/sh"))?;
    files.extend(me);
    for l in RUST_LIBS {
        files.insert(format!("{libdir}/{l}"));
    }
    for f in &files {
        let data = fs::read(f).with_context(|| format!("read {f}"))?;
        cpio.file(f, 0o755, &data);
    }
    // Debian is merged-/usr: make /usr/lib/x86_64-linux-gnu resolve too.
    if libdir.starts_with("/lib/")
        && !files
            .iter()
            .any(|f| f.starts_with(&format!("/usr{libdir}/")))
    {
        cpio.symlink(&format!("/usr{libdir}"), &libdir);
    }
    let tmp = path.with_extension("cpio.tmp");
    fs::write(&tmp, cpio.finish())?;
    fs::rename(&tmp, &path)?;
    Ok(path)
}

/// Writes the per-run image: the base archive followed by an overlay with `extra` files
/// (`guest path`, `host path`).
pub fn build_run_image(
    base: &Path,
    extra: &[(String, std::path::PathBuf)],
    out: &Path,
) -> Result<()> {
    let mut bytes = fs::read(base).with_context(|| format!("read {}", base.display()))?;
    if !extra.is_empty() {
        let mut cpio = Cpio::default();
        for (g, h) in extra {
            let data = fs::read(h).with_context(|| format!("read {}", h.display()))?;
            cpio.file(g, 0o755, &data);
        }
        bytes.extend(cpio.finish());
    }
    fs::write(out, bytes).with_context(|| format!("write {}", out.display()))?;
    Ok(())
}
