//! What the lab needs on the host; the rule when it is missing (fail under `CI=true`, else SKIP).

use std::path::Path;

/// Prerequisites of lab tests: root, `/dev/net/tun`, QEMU, tgtd, drbd-utils, libiscsi tools,
/// busybox-static, iproute2, apt/dpkg (first run). Returns true if all are there. When something is
/// missing: panics with the reason if `CI=true`, else prints `SKIP lab prerequisites missing:
/// <reason>` and returns false (`test_support::prereq::skip`).
pub fn require_lab() -> bool {
    match missing_prereqs() {
        None => true,
        Some(reason) => test_support::prereq::skip(format!("lab prerequisites missing: {reason}")),
    }
}

/// The reason the lab cannot run here, if any.
pub fn missing_prereqs() -> Option<String> {
    let mut miss = Vec::new();
    if !nix::unistd::geteuid().is_root() {
        miss.push("not root".to_string());
    }
    if !Path::new("/dev/net/tun").exists() {
        miss.push("no /dev/net/tun".to_string());
    }
    let files = [
        "/bin/busybox",
        "/usr/sbin/tgtd",
        "/usr/sbin/tgtadm",
        "/usr/lib/drbd/drbdsetup-84",
        "/usr/sbin/drbdmeta",
    ];
    for f in files {
        if !Path::new(f).exists() {
            miss.push(format!("missing {f}"));
        }
    }
    let qemu = crate::qemu::QemuProgram::resolve().path;
    if qemu.is_absolute() && !qemu.exists() {
        miss.push(format!("missing {} (LAB_QEMU)", qemu.display()));
    }
    for prog in [
        "qemu-system-x86_64",
        "ip",
        "iscsi-inq",
        "iscsi-readcapacity16",
        "xz",
        "ldd",
    ] {
        let found = std::env::var_os("PATH")
            .map(|p| std::env::split_paths(&p).any(|d| d.join(prog).exists()))
            .unwrap_or(false);
        if !found {
            miss.push(format!("missing {prog}"));
        }
    }
    if miss.is_empty() {
        None
    } else {
        Some(format!(
            "{} (run `bash scripts/deps.sh` as root)",
            miss.join(", ")
        ))
    }
}
