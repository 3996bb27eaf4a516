//! Test harness: a private `tgtd -f` per test (own socket dir, own control port, iSCSI portal on
//! 127.0.0.1:<free port>), killed in Drop; prerequisite checks that fail under `CI=true`.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use test_support::prereq::Prereqs;
pub use test_support::tgtd::free_port;
pub use test_support::which;
use tgt_ipc::{LunIdentity, TgtClient};

/// True when the prerequisites are there. Under `CI=true` a missing one panics; otherwise prints SKIP.
pub fn prereqs(test: &str, tools: &[&str]) -> bool {
    Prereqs::new(test).root_and_group().tools(tools).check()
}

/// Like [`prereqs`] without requiring root (tools only).
pub fn prereq_tools(test: &str, tools: &[&str]) -> bool {
    Prereqs::new(test).tools(tools).check()
}

/// The identity of the test/bench volume r0 (tests check these values on the wire and through an initiator).
pub fn r0_identity() -> LunIdentity {
    LunIdentity {
        scsi_id: "60014052e3c1a9b8d7f6e5d4c3b2a190".into(),
        scsi_sn: "HA0R0SN0001".into(),
        vendor_id: Some("ISCSIHA".into()),
        product_id: Some("R0-VOLUME".into()),
        product_rev: Some("0042".into()),
    }
}

/// A private tgtd (test_support's fixture) in its own directory, with a client on its socket.
pub struct Tgtd {
    process: test_support::tgtd::Tgtd,
    dir: Option<tempfile::TempDir>,
    pub base: PathBuf,
    pub control_port: u16,
    pub port: u16,
    pub client: TgtClient,
}

impl Tgtd {
    /// Starts `tgtd -f -C N --iscsi portal=127.0.0.1:PORT` with `TGT_IPC_SOCKET=<tmpdir>/socket`, and waits
    /// until its socket answers.
    pub async fn start() -> Tgtd {
        let dir = tempfile::Builder::new()
            .prefix(&format!("tgt-ipc-{}-", std::process::id()))
            .tempdir()
            .expect("tempdir");
        Self::start_in(dir).await
    }

    /// Starts a tgtd in an existing directory (to restart one on the same socket).
    pub async fn start_in(mut dir: tempfile::TempDir) -> Tgtd {
        let control_port = 7;
        for _attempt in 0..5 {
            let port = free_port();
            let process = test_support::tgtd::Tgtd::start(dir.path(), control_port, port);
            let client = TgtClient::with_base(&process.base, control_port)
                .expect("client")
                .reply_timeout(Duration::from_secs(10));
            let mut t = Tgtd {
                base: process.base.clone(),
                process,
                dir: Some(dir),
                control_port,
                port,
                client,
            };
            if t.wait_ready().await {
                return t;
            }
            // port collision or slow start: kill and try another port
            dir = t.kill();
        }
        panic!("tgtd did not come up");
    }

    async fn wait_ready(&mut self) -> bool {
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if !self.process.alive() {
                return false;
            }
            if self.client.show_system().await.is_ok()
                && self
                    .client
                    .show_portals()
                    .await
                    .map(|p| p.iter().any(|p| p.port == self.port))
                    .unwrap_or(false)
            {
                return true;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        false
    }

    /// Kills tgtd (SIGKILL) and returns the directory, to restart on the same socket.
    pub fn kill(mut self) -> tempfile::TempDir {
        self.process.kill();
        self.dir.take().expect("dir present until kill")
    }

    /// True while the tgtd process runs.
    pub fn alive(&mut self) -> bool {
        self.process.alive()
    }

    /// A sparse file of `size` bytes in the tgtd's directory.
    pub fn backing_file(&self, name: &str, size: u64) -> PathBuf {
        let p = self.path().join(name);
        let f = std::fs::File::create(&p).expect("create backing file");
        f.set_len(size).expect("set_len");
        p
    }

    /// `iscsi://127.0.0.1:PORT/IQN/LUN`.
    pub fn url(&self, iqn: &str, lun: u64) -> String {
        format!("iscsi://127.0.0.1:{}/{iqn}/{lun}", self.port)
    }

    /// Spawns `tgtadm -C N ARGS` against this tgtd (oracle/baseline only).
    pub fn tgtadm(&self, args: &[&str]) -> std::process::Output {
        self.process.tgtadm(args)
    }

    pub fn path(&self) -> &Path {
        self.dir.as_ref().expect("dir present until kill").path()
    }
}

/// Runs an initiator tool and returns (success, stdout+stderr).
pub fn run(tool: &str, args: &[&str]) -> (bool, String) {
    let out = Command::new(which(tool).unwrap_or_else(|| tool.into()))
        .args(args)
        .output()
        .expect("spawn initiator tool");
    let mut s = String::from_utf8_lossy(&out.stdout).into_owned();
    s.push_str(&String::from_utf8_lossy(&out.stderr));
    (out.status.success(), s)
}
