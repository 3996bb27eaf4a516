//! How to build a lab: node count, guest memory, kernel, shares.

use std::path::PathBuf;
use std::time::Duration;

use crate::{drbd9, DEFAULT_TIMEOUT};

/// How to build a lab.
#[derive(Debug, Clone)]
pub struct LabConfig {
    /// Number of nodes (default 2).
    pub nodes: usize,
    /// Guest memory in MiB (default 384).
    pub mem_mib: u32,
    /// Size of each node's backing disk (`/dev/vda`) in MiB (default 16).
    pub disk_mib: u64,
    /// Directory shared at [`crate::GUEST_TARGET`]; default: the profile dir of the current executable.
    pub share: Option<PathBuf>,
    /// Extra files put into the per-run initramfs overlay: (guest path, host path).
    pub extra_files: Vec<(String, PathBuf)>,
    /// Default command timeout.
    pub timeout: Duration,
    /// Start QEMU in its own process group so the lab outlives this process (`lab up`).
    pub detached: bool,
    /// Which DRBD the guests run; `None`: from `LAB_DRBD` (`8.4` or `9`, default 8.4).
    pub drbd: Option<drbd9::DrbdVersion>,
    /// More host directories shared read-only over virtio-9p: (mount tag, host dir); the guest
    /// mounts them itself (`mount -t 9p -o trans=virtio,ro TAG DIR`), e.g. the host's `/usr` for
    /// Pacemaker (`crate::pacemaker`).
    pub ro_shares: Vec<(String, PathBuf)>,
}

impl Default for LabConfig {
    fn default() -> Self {
        LabConfig {
            nodes: 2,
            mem_mib: 384,
            disk_mib: 16,
            share: None,
            extra_files: Vec::new(),
            timeout: DEFAULT_TIMEOUT,
            detached: false,
            drbd: None,
            ro_shares: Vec::new(),
        }
    }
}
