//! Test fixtures shared by the workspace's tests and benchmarks (a dev-dependency only; never
//! linked into product code, so starting processes here is allowed):
//! - [`prereq`]: the rule for missing prerequisites: fail under `CI=true`, else print `SKIP`;
//! - [`tgtd`]: a private `tgtd -f` on its own socket and portal;
//! - [`netns`]: network namespaces made by the test, deleted on drop;
//! - [`stats`]: median and p95 of a benchmark's samples;
//! - [`frozen`]: a filesystem whose writes wait (`fsfreeze`), for commands held in flight.

pub mod frozen;
pub mod netns;
pub mod prereq;
pub mod stats;
pub mod tgtd;

pub use prereq::{ci, which};

/// A child process killed (SIGKILL) and reaped when dropped, also when the test fails.
#[derive(Debug)]
pub struct Kill(pub std::process::Child);

impl Drop for Kill {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}
