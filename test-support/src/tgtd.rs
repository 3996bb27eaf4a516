//! A private `tgtd -f` per test: its own socket (`DIR/socket.CONTROL_PORT`, through
//! `TGT_IPC_SOCKET`), its own iSCSI portal on 127.0.0.1, killed and reaped on drop.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};

use crate::which;

/// A free TCP port on 127.0.0.1 (released before the caller binds it; callers retry on a
/// collision).
pub fn free_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
    l.local_addr().expect("local_addr").port()
}

/// A private tgtd process.
#[derive(Debug)]
pub struct Tgtd {
    child: Option<Child>,
    /// The `TGT_IPC_SOCKET` base (`DIR/socket`), as tgtadm wants it.
    pub base: PathBuf,
    /// tgtd's `-C` control port (the socket is `BASE.CONTROL_PORT`).
    pub control_port: u16,
    /// The iSCSI portal's TCP port on 127.0.0.1.
    pub port: u16,
}

impl Tgtd {
    /// Starts `tgtd -f -C CONTROL_PORT --iscsi portal=127.0.0.1:PORT` with its socket under `dir`
    /// and its output in `DIR/tgtd-PORT.log`; does not wait for it (see the callers' readiness
    /// checks).
    pub fn start(dir: &Path, control_port: u16, port: u16) -> Tgtd {
        let base = dir.join("socket");
        let log = std::fs::File::create(dir.join(format!("tgtd-{port}.log"))).expect("log");
        let child = Command::new(which("tgtd").expect("tgtd"))
            .args(["-f", "-C", &control_port.to_string(), "--iscsi"])
            .arg(format!("portal=127.0.0.1:{port}"))
            .env("TGT_IPC_SOCKET", &base)
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("log"))
            .stderr(log)
            .spawn()
            .expect("spawn tgtd");
        Tgtd {
            child: Some(child),
            base,
            control_port,
            port,
        }
    }

    /// The control socket path.
    pub fn socket(&self) -> PathBuf {
        PathBuf::from(format!("{}.{}", self.base.display(), self.control_port))
    }

    /// True while the tgtd process runs.
    pub fn alive(&mut self) -> bool {
        self.child
            .as_mut()
            .is_some_and(|c| matches!(c.try_wait(), Ok(None)))
    }

    /// Kills it (SIGKILL, as a crash would) and reaps it.
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Runs `tgtadm -C CONTROL_PORT ARGS` against this tgtd (oracle and baseline only).
    pub fn tgtadm(&self, args: &[&str]) -> Output {
        Command::new(which("tgtadm").expect("tgtadm"))
            .arg("-C")
            .arg(self.control_port.to_string())
            .args(args)
            .env("TGT_IPC_SOCKET", &self.base)
            .output()
            .expect("spawn tgtadm")
    }
}

impl Drop for Tgtd {
    fn drop(&mut self) {
        self.kill();
    }
}
