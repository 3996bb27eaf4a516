//! The lab: real DRBD 8.4 kernels under QEMU (TCG), real tgtd in the guests, real iSCSI clients in a
//! network namespace — the project's own test bed. See `tests/README.md` for how it works.
//!
//! ```no_run
//! let lab = lab::Lab::start()?;                       // 2 nodes + client, all in private netns
//! let a = lab.node(0)?;
//! println!("{}", a.run_ok("cat /proc/drbd")?.stdout); // control channel (ttyS1, framed)
//! a.kill()?;                                           // SIGKILL of its QEMU: power loss
//! a.boot()?;                                           // same disk again
//! let out = lab.client().run(&["iscsi-inq", "iscsi://10.99.0.50/iqn.x:r0/1"])?;
//! # Ok::<(), anyhow::Error>(())
//! ```
//!
//! Project binaries in the guest: the cargo profile directory of the running executable
//! (`target/debug` for `cargo test`/`cargo run`, whatever `CARGO_TARGET_DIR` is) is shared read-only
//! over virtio-9p at [`GUEST_TARGET`]; use [`Node::guest_bin`] / [`Node::guest_example`] for paths.
//! Build what you run first (`cargo build --workspace --bins --examples`).

#![deny(missing_docs)]
#![cfg_attr(not(test), deny(clippy::unwrap_used))]

pub mod agent_lab;
pub mod assets;
pub mod bench_takeover;
pub mod bringup;
pub mod drbd;
pub mod drbd9;
pub mod drill;
pub mod guard;
pub mod guest_perf;
pub mod initramfs;
pub mod iscsi;
pub mod ledger;
pub mod net;
pub mod pacemaker;
pub mod pacemaker_bench;
pub mod qemu;
pub mod soak;
pub mod write_cache;

use std::time::Duration;

pub use net::{CLIENT_IP, FLOATING_IP, PREFIX};

mod client;
mod config;
mod node;
mod paths;
mod prereq;
mod state;
mod testbed;

pub use client::Client;
pub use config::LabConfig;
pub use node::Node;
pub use paths::{host_bin, profile_dir, require_host_bins};
pub use prereq::{missing_prereqs, require_lab};
pub use state::{LabState, NodeState};
pub use testbed::Lab;

/// Where the host's cargo profile directory appears in every guest (read-only, virtio-9p).
pub const GUEST_TARGET: &str = "/lab/target";
/// Default timeout of [`Node::run`].
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(60);

/// Result of a command in a guest (or in the client namespace).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Output {
    /// Exit status (`-1` if killed by a signal).
    pub rc: i32,
    /// Standard output.
    pub stdout: String,
    /// Standard error.
    pub stderr: String,
}
