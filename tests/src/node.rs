//! One guest: its QEMU process, disk and control channel.

use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::process::Child;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Result};

use crate::{qemu, NodeState, Output, GUEST_TARGET};

pub(crate) struct Proc {
    pub(crate) pid: i32,
    pub(crate) child: Option<Child>,
    pub(crate) boot_offset: u64,
    pub(crate) launched: Option<Instant>,
}

/// One guest: a QEMU process with a DRBD-capable kernel, its own disk and a control channel.
pub struct Node {
    pub(crate) index: usize,
    pub(crate) name: String,
    pub(crate) ip: Ipv4Addr,
    pub(crate) mac: String,
    pub(crate) disk: PathBuf,
    pub(crate) spec: qemu::GuestSpec,
    pub(crate) detached: bool,
    pub(crate) timeout: Duration,
    pub(crate) proc_: Mutex<Proc>,
    pub(crate) ctl: Mutex<Option<qemu::Ctl>>,
}

pub(crate) fn tail(text: &str, lines: usize) -> String {
    let v: Vec<&str> = text.lines().collect();
    v.get(v.len().saturating_sub(lines)..)
        .unwrap_or_default()
        .join("\n")
}

impl Node {
    /// Node name: `a`, `b`, …
    pub fn name(&self) -> &str {
        &self.name
    }
    /// Index in the lab (0-based).
    pub fn index(&self) -> usize {
        self.index
    }
    /// Address on the lab bridge (`eth0` in the guest).
    pub fn ip(&self) -> Ipv4Addr {
        self.ip
    }
    /// MAC address of `eth0`.
    pub fn mac(&self) -> &str {
        &self.mac
    }
    /// Backing disk file (the guest's `/dev/vda`).
    pub fn disk(&self) -> &Path {
        &self.disk
    }
    /// QEMU's pid (None while powered off).
    pub fn pid(&self) -> Option<i32> {
        let p = self.proc_.lock().ok()?;
        (p.pid > 0 && qemu::alive(p.pid)).then_some(p.pid)
    }
    /// Guest path of workspace binary `name` (e.g. `iscsi-ha`), via the 9p share.
    pub fn guest_bin(name: &str) -> String {
        format!("{GUEST_TARGET}/{name}")
    }
    /// Guest path of example `name` (e.g. `drbd-nl-status` from drbd-nl's `examples/drbd_nl_status.rs`).
    pub fn guest_example(name: &str) -> String {
        format!("{GUEST_TARGET}/examples/{name}")
    }
    /// The console log (kernel messages and `/init` output) of all boots.
    pub fn log(&self) -> String {
        qemu::read_from(&self.spec.console, 0)
    }
    /// The last `n` lines of the console log.
    pub fn log_tail(&self, n: usize) -> String {
        tail(&self.log(), n)
    }
    /// Peak resident memory of the current QEMU process (`VmHWM`), in KiB.
    pub fn peak_rss_kib(&self) -> Option<u64> {
        self.pid().and_then(qemu::peak_rss_kib)
    }

    /// Powers the node on (same disk) and waits until its control loop runs. Equivalent to
    /// pressing the power button; Err if it is running.
    pub fn boot(&self) -> Result<()> {
        self.launch()?;
        self.wait_ready(Duration::from_secs(90))
    }

    /// Starts QEMU without waiting (see [`Node::wait_ready`]).
    pub fn launch(&self) -> Result<()> {
        let mut p = self
            .proc_
            .lock()
            .map_err(|_| anyhow!("node lock poisoned"))?;
        if p.pid > 0 && qemu::alive(p.pid) {
            bail!("node {} is already running (pid {})", self.name, p.pid);
        }
        if let Ok(mut c) = self.ctl.lock() {
            *c = None;
        }
        p.boot_offset = std::fs::metadata(&self.spec.console)
            .map(|m| m.len())
            .unwrap_or(0);
        let child = qemu::spawn(&self.spec, self.detached)?;
        p.pid = child.id() as i32;
        p.child = Some(child);
        p.launched = Some(Instant::now());
        Ok(())
    }

    /// Waits until the guest's `/init` reports ready, then connects the control channel.
    pub fn wait_ready(&self, timeout: Duration) -> Result<()> {
        let (pid, off) = {
            let p = self
                .proc_
                .lock()
                .map_err(|_| anyhow!("node lock poisoned"))?;
            (p.pid, p.boot_offset)
        };
        qemu::wait_log(&self.spec.console, off, "LAB-READY", pid, timeout).map_err(|e| {
            anyhow!(
                "node {}: {e}\n--- console tail ---\n{}\n--- qemu ---\n{}",
                self.name,
                self.log_tail(30),
                tail(&qemu::read_from(&self.spec.qemu_log, 0), 10)
            )
        })?;
        self.connect()
    }

    pub(crate) fn connect(&self) -> Result<()> {
        let mut c = qemu::Ctl::connect(&self.spec.ctl_sock, Duration::from_secs(10))?;
        // Handshake: a no-op must come back before real commands go out, so a command can never
        // be lost to a port that is still being opened (late replies are skipped by id).
        let t = Instant::now();
        while let Err(e) = c.run("true", Duration::from_secs(2)) {
            if t.elapsed() > Duration::from_secs(30) {
                bail!("node {}: control channel does not answer: {e}", self.name);
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let mut g = self.ctl.lock().map_err(|_| anyhow!("ctl lock poisoned"))?;
        *g = Some(c);
        Ok(())
    }

    /// Powers the node off abruptly: SIGKILL of its QEMU process by PID (a power loss).
    pub fn kill(&self) -> Result<()> {
        if let Ok(mut c) = self.ctl.lock() {
            *c = None;
        }
        let mut p = self
            .proc_
            .lock()
            .map_err(|_| anyhow!("node lock poisoned"))?;
        if p.pid > 0 {
            qemu::kill_pid(p.pid);
        }
        if let Some(mut ch) = p.child.take() {
            let _ = ch.wait();
        }
        p.pid = 0;
        Ok(())
    }

    /// Runs a shell script in the guest (`sh`, stdin /dev/null) with the default timeout.
    /// A non-zero exit status is not an error; a timeout or a dead guest is (with the console tail).
    pub fn run(&self, script: &str) -> Result<Output> {
        self.run_timeout(script, self.timeout)
    }

    /// [`Node::run`] with an explicit timeout. After a timeout the guest still finishes the
    /// command before it runs the next one.
    pub fn run_timeout(&self, script: &str, timeout: Duration) -> Result<Output> {
        let mut g = self.ctl.lock().map_err(|_| anyhow!("ctl lock poisoned"))?;
        if g.is_none() {
            drop(g);
            self.connect()?;
            g = self.ctl.lock().map_err(|_| anyhow!("ctl lock poisoned"))?;
        }
        let c = g
            .as_mut()
            .ok_or_else(|| anyhow!("node {}: no control channel", self.name))?;
        c.run(script, timeout).map_err(|e| {
            anyhow!(
                "node {}: `{}`: {e}\n--- console tail ({}) ---\n{}",
                self.name,
                script.trim(),
                self.spec.console.display(),
                self.log_tail(30)
            )
        })
    }

    /// [`Node::run`], and Err (with rc, stdout, stderr and the console tail) unless rc is 0.
    pub fn run_ok(&self, script: &str) -> Result<Output> {
        let o = self.run(script)?;
        if o.rc != 0 {
            bail!(
                "node {}: `{}` failed with rc={}\n--- stdout ---\n{}\n--- stderr ---\n{}\n--- console tail ({}) ---\n{}",
                self.name,
                script.trim(),
                o.rc,
                o.stdout,
                o.stderr,
                self.spec.console.display(),
                self.log_tail(30)
            );
        }
        Ok(o)
    }

    /// Writes `bytes` to `guest_path` (mode 0755, parent directories created), in chunks.
    pub fn put_file(&self, guest_path: &str, bytes: &[u8]) -> Result<()> {
        if guest_path.contains(['\'', '\n']) {
            bail!("unsupported guest path {guest_path:?}");
        }
        let mut first = true;
        let chunks: Vec<&[u8]> = if bytes.is_empty() {
            vec![&[][..]]
        } else {
            bytes.chunks(24 * 1024).collect()
        };
        for c in chunks {
            let redir = if first { ">" } else { ">>" };
            let script = format!(
                "mkdir -p \"$(dirname '{guest_path}')\" && base64 -d {redir} '{guest_path}' <<'LAB_EOF'\n{}\nLAB_EOF\nchmod 755 '{guest_path}'\n",
                qemu::b64_encode(c)
            );
            self.run_ok(&script)?;
            first = false;
        }
        Ok(())
    }

    pub(crate) fn state(&self) -> NodeState {
        NodeState {
            name: self.name.clone(),
            ip: self.ip,
            mac: self.mac.clone(),
            pid: self.pid().unwrap_or(0),
            disk: self.disk.clone(),
            spec: self.spec.clone(),
        }
    }
}
