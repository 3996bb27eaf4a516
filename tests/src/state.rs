//! A running lab's description on disk, so other processes (`lab status`, `lab down`) find it.

use std::net::Ipv4Addr;
use std::path::PathBuf;

use anyhow::{Context, Result};

use crate::{guard, qemu};

/// Persisted description of a running lab (`target/lab-run/<name>.json`), so `lab status` and
/// `lab down` work from other processes.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct LabState {
    /// Lab name (= its network namespace).
    pub name: String,
    /// Run directory (disks, logs, sockets).
    pub run_dir: PathBuf,
    /// The nodes.
    pub nodes: Vec<NodeState>,
}

/// Persisted description of one node.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct NodeState {
    /// Node name (`a`, `b`, …).
    pub name: String,
    /// Address on the lab bridge.
    pub ip: Ipv4Addr,
    /// MAC address.
    pub mac: String,
    /// QEMU pid (0: not running).
    pub pid: i32,
    /// Backing disk file.
    pub disk: PathBuf,
    /// How to start it.
    pub spec: qemu::GuestSpec,
}

impl LabState {
    /// Loads the state file of lab `name`.
    pub fn load(name: &str) -> Result<LabState> {
        let p = guard::state_file(name);
        let text = std::fs::read_to_string(&p).with_context(|| format!("read {}", p.display()))?;
        serde_json::from_str(&text).with_context(|| format!("parse {}", p.display()))
    }
    /// Names of labs with a state file.
    pub fn list() -> Vec<String> {
        let mut v: Vec<String> = std::fs::read_dir(guard::state_dir())
            .map(|rd| {
                rd.filter_map(|e| e.ok())
                    .filter_map(|e| {
                        let n = e.file_name().to_string_lossy().to_string();
                        n.strip_suffix(".json").map(str::to_string)
                    })
                    .collect()
            })
            .unwrap_or_default();
        v.sort();
        v
    }
}
