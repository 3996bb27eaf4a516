//! The iSCSI client: a network namespace on the lab bridge.

use std::net::Ipv4Addr;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};

use crate::{Output, CLIENT_IP, DEFAULT_TIMEOUT};

/// The iSCSI client: a network namespace on the lab bridge, address [`CLIENT_IP`].
pub struct Client {
    pub(crate) netns: String,
}

impl Client {
    /// The client's address.
    pub fn ip(&self) -> Ipv4Addr {
        CLIENT_IP
    }
    /// The client's network namespace name.
    pub fn netns(&self) -> &str {
        &self.netns
    }
    /// Runs `argv` (no shell) inside the client namespace, 60 s timeout.
    pub fn run(&self, argv: &[&str]) -> Result<Output> {
        self.run_timeout(argv, DEFAULT_TIMEOUT)
    }
    /// [`Client::run`] with an explicit timeout (the process is killed when it expires).
    pub fn run_timeout(&self, argv: &[&str], timeout: Duration) -> Result<Output> {
        let dir = std::env::temp_dir();
        static RUNS: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
        let tag = format!(
            "{}-{}-{}",
            self.netns,
            std::process::id(),
            RUNS.fetch_add(1, std::sync::atomic::Ordering::SeqCst)
        );
        let (po, pe) = (
            dir.join(format!("{tag}.out")),
            dir.join(format!("{tag}.err")),
        );
        let mut child = std::process::Command::new("ip")
            .args(["netns", "exec", &self.netns])
            .args(argv)
            .stdin(std::process::Stdio::null())
            .stdout(std::fs::File::create(&po)?)
            .stderr(std::fs::File::create(&pe)?)
            .spawn()
            .context("start ip netns exec")?;
        let t = Instant::now();
        let status = loop {
            if let Some(s) = child.try_wait()? {
                break Some(s);
            }
            if t.elapsed() > timeout {
                let _ = child.kill();
                let _ = child.wait();
                break None;
            }
            std::thread::sleep(Duration::from_millis(5));
        };
        let out = Output {
            rc: status.and_then(|s| s.code()).unwrap_or(-1),
            stdout: std::fs::read_to_string(&po).unwrap_or_default(),
            stderr: std::fs::read_to_string(&pe).unwrap_or_default(),
        };
        let _ = std::fs::remove_file(&po);
        let _ = std::fs::remove_file(&pe);
        if status.is_none() {
            bail!(
                "client: {argv:?} timed out after {timeout:?}\n{}{}",
                out.stdout,
                out.stderr
            );
        }
        Ok(out)
    }
    /// [`Client::run`], Err with the output unless it exits 0.
    pub fn run_ok(&self, argv: &[&str]) -> Result<Output> {
        let o = self.run(argv)?;
        if o.rc != 0 {
            bail!(
                "client: {argv:?} failed with rc={}\n{}{}",
                o.rc,
                o.stdout,
                o.stderr
            );
        }
        Ok(o)
    }
}
