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
pub mod initramfs;
pub mod iscsi;
pub mod ledger;
pub mod net;
pub mod pacemaker;
pub mod pacemaker_bench;
pub mod qemu;
pub mod soak;
pub mod write_cache;

use anyhow::{anyhow, bail, Context, Result};
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::process::Child;
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

pub use net::{CLIENT_IP, FLOATING_IP, PREFIX};

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

/// How to build a lab.
#[derive(Debug, Clone)]
pub struct LabConfig {
    /// Number of nodes (default 2).
    pub nodes: usize,
    /// Guest memory in MiB (default 384).
    pub mem_mib: u32,
    /// Size of each node's backing disk (`/dev/vda`) in MiB (default 16).
    pub disk_mib: u64,
    /// Directory shared at [`GUEST_TARGET`]; default: the profile dir of the current executable.
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

/// The cargo profile directory (`…/target/debug`) holding the current executable: the executable
/// itself (`lab`), or its parent when it runs from `deps/` (tests) or `examples/`.
/// `LAB_TARGET_DIR` overrides.
pub fn profile_dir() -> Option<PathBuf> {
    if let Some(d) = std::env::var_os("LAB_TARGET_DIR") {
        return Some(PathBuf::from(d));
    }
    let exe = std::env::current_exe().ok()?;
    let dir = exe.parent()?;
    let name = dir.file_name()?.to_string_lossy();
    if name == "deps" || name == "examples" {
        dir.parent().map(Path::to_path_buf)
    } else {
        Some(dir.to_path_buf())
    }
}

/// Host path of a binary of this workspace (`<profile dir>/<name>`, e.g. `iscsi-read`), for
/// [`Client::run`].
pub fn host_bin(name: &str) -> PathBuf {
    profile_dir()
        .map(|d| d.join(name))
        .unwrap_or_else(|| PathBuf::from(name))
}

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

struct Proc {
    pid: i32,
    child: Option<Child>,
    boot_offset: u64,
    launched: Option<Instant>,
}

/// One guest: a QEMU process with a DRBD-capable kernel, its own disk and a control channel.
pub struct Node {
    index: usize,
    name: String,
    ip: Ipv4Addr,
    mac: String,
    disk: PathBuf,
    spec: qemu::GuestSpec,
    detached: bool,
    timeout: Duration,
    proc_: Mutex<Proc>,
    ctl: Mutex<Option<qemu::Ctl>>,
}

fn tail(text: &str, lines: usize) -> String {
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

    fn connect(&self) -> Result<()> {
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

    fn state(&self) -> NodeState {
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

/// The iSCSI client: a network namespace on the lab bridge, address [`CLIENT_IP`].
pub struct Client {
    netns: String,
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

/// A lab: N nodes and a client on one bridge, inside network namespaces of its own.
pub struct Lab {
    name: String,
    run_dir: PathBuf,
    nodes: Vec<Node>,
    client: Client,
    owned: bool,
    /// Wall time from the first QEMU launch until every node's control loop answered.
    pub boot_time: Duration,
    /// When the first QEMU was launched (for launch -> X measurements).
    pub launched: Instant,
}

impl Lab {
    /// Starts a 2-node lab with defaults.
    pub fn start() -> Result<Lab> {
        Lab::start_with(LabConfig::default())
    }

    /// Prepares assets (cached), sweeps stale labs, creates networks and disks, boots all nodes in
    /// parallel and waits for them.
    pub fn start_with(cfg: LabConfig) -> Result<Lab> {
        let assets = assets::ensure()?;
        let mut extra = cfg.extra_files.clone();
        let drbd = match cfg.drbd {
            Some(v) => v,
            None => drbd9::DrbdVersion::from_env()?,
        };
        if drbd == drbd9::DrbdVersion::V9 {
            extra.extend(drbd9::ensure(&assets)?.overlay());
        }
        let swept = guard::sweep_stale();
        if !swept.is_empty() {
            eprintln!("lab: swept stale labs {swept:?}");
        }
        let name = net::unique_name();
        let run_dir = std::env::temp_dir().join(&name);
        std::fs::create_dir_all(&run_dir)?;
        guard::register(
            &name,
            guard::Registered {
                pids: Vec::new(),
                run_dir: run_dir.clone(),
            },
        );
        let mut lab = Lab {
            name: name.clone(),
            run_dir: run_dir.clone(),
            nodes: Vec::new(),
            client: Client {
                netns: net::client_ns(&name),
            },
            owned: true,
            boot_time: Duration::ZERO,
            launched: Instant::now(),
        };
        net::create(&name, cfg.nodes)?;
        let initrd = if extra.is_empty() {
            assets.initrd.clone()
        } else {
            let p = run_dir.join("initrd.cpio");
            initramfs::build_run_image(&assets.initrd, &extra, &p)?;
            p
        };
        let share = cfg.share.clone().or_else(profile_dir);
        for i in 0..cfg.nodes {
            let nname = char::from(b'a' + (i as u8 % 26)).to_string();
            let disk = run_dir.join(format!("{nname}.disk"));
            std::fs::File::create(&disk)?.set_len(cfg.disk_mib * 1024 * 1024)?;
            let console = run_dir.join(format!("{nname}.console.log"));
            let ctl_sock = run_dir.join(format!("{nname}.ctl"));
            let argv = qemu::qemu_argv(&qemu::ArgvInput {
                node: &nname,
                ip: net::node_ip(i),
                mac: &net::node_mac(i),
                tap: &net::tap(i),
                kernel: &assets.vmlinux,
                initrd: &initrd,
                disk: &disk,
                share: share.as_deref(),
                ro_shares: &cfg.ro_shares,
                mem_mib: cfg.mem_mib,
                console: &console,
                ctl_sock: &ctl_sock,
            });
            lab.nodes.push(Node {
                index: i,
                name: nname.clone(),
                ip: net::node_ip(i),
                mac: net::node_mac(i),
                disk,
                spec: qemu::GuestSpec {
                    netns: name.clone(),
                    argv,
                    console,
                    ctl_sock,
                    qemu_log: run_dir.join(format!("{nname}.qemu.log")),
                },
                detached: cfg.detached,
                timeout: cfg.timeout,
                proc_: Mutex::new(Proc {
                    pid: 0,
                    child: None,
                    boot_offset: 0,
                    launched: None,
                }),
                ctl: Mutex::new(None),
            });
        }
        let t = Instant::now();
        lab.launched = t;
        for n in &lab.nodes {
            n.launch()?;
        }
        lab.register();
        for n in &lab.nodes {
            n.wait_ready(Duration::from_secs(90))?;
        }
        lab.boot_time = t.elapsed();
        lab.save()?;
        Ok(lab)
    }

    /// The lab shared by all tests of one test binary: started on first use, cleaned up at process
    /// exit. Tests that kill a node must boot it again before they return.
    pub fn shared() -> Result<&'static Lab> {
        static SHARED: OnceLock<std::result::Result<Lab, String>> = OnceLock::new();
        SHARED
            .get_or_init(|| Lab::start().map_err(|e| format!("{e:#}")))
            .as_ref()
            .map_err(|e| anyhow!("shared lab failed to start: {e}"))
    }

    /// Re-attaches to a running lab from its state file (`lab status`, `lab down`); dropping the
    /// returned value does not stop the lab.
    pub fn attach(name: &str) -> Result<Lab> {
        let st = LabState::load(name)?;
        let nodes = st
            .nodes
            .iter()
            .enumerate()
            .map(|(i, n)| Node {
                index: i,
                name: n.name.clone(),
                ip: n.ip,
                mac: n.mac.clone(),
                disk: n.disk.clone(),
                spec: n.spec.clone(),
                detached: true,
                timeout: DEFAULT_TIMEOUT,
                proc_: Mutex::new(Proc {
                    pid: n.pid,
                    child: None,
                    boot_offset: 0,
                    launched: None,
                }),
                ctl: Mutex::new(None),
            })
            .collect();
        Ok(Lab {
            name: st.name.clone(),
            run_dir: st.run_dir.clone(),
            nodes,
            client: Client {
                netns: net::client_ns(&st.name),
            },
            owned: false,
            boot_time: Duration::ZERO,
            launched: Instant::now(),
        })
    }

    /// Leaves the lab running after this process exits (state file kept for `lab status`/`down`).
    pub fn detach(mut self) -> Result<PathBuf> {
        self.save()?;
        guard::unregister(&self.name);
        self.owned = false;
        for n in &self.nodes {
            if let Ok(mut c) = n.ctl.lock() {
                *c = None;
            }
        }
        Ok(guard::state_file(&self.name))
    }

    /// Stops everything now (also what `Drop` does for an owned lab).
    pub fn down(mut self) {
        self.cleanup();
        self.owned = false;
    }

    fn cleanup(&mut self) {
        for n in &self.nodes {
            let _ = n.kill();
        }
        let pids: Vec<i32> = Vec::new();
        guard::cleanup(&self.name, &pids, Some(&self.run_dir));
        guard::unregister(&self.name);
    }

    fn register(&self) {
        guard::register(
            &self.name,
            guard::Registered {
                pids: self.nodes.iter().filter_map(Node::pid).collect(),
                run_dir: self.run_dir.clone(),
            },
        );
    }

    /// Writes the state file (`target/lab-run/<name>.json`).
    pub fn save(&self) -> Result<()> {
        let st = LabState {
            name: self.name.clone(),
            run_dir: self.run_dir.clone(),
            nodes: self.nodes.iter().map(Node::state).collect(),
        };
        std::fs::create_dir_all(guard::state_dir())?;
        let p = guard::state_file(&self.name);
        let tmp = p.with_extension("json.tmp");
        std::fs::write(&tmp, serde_json::to_string_pretty(&st)?)?;
        std::fs::rename(&tmp, &p)?;
        Ok(())
    }

    /// Lab name (= its network namespace; the client's is `<name>c`).
    pub fn name(&self) -> &str {
        &self.name
    }
    /// Run directory: disks, console logs, control sockets.
    pub fn run_dir(&self) -> &Path {
        &self.run_dir
    }
    /// All nodes.
    pub fn nodes(&self) -> &[Node] {
        &self.nodes
    }
    /// Node `i` (0 = `a`, 1 = `b`).
    pub fn node(&self, i: usize) -> Result<&Node> {
        self.nodes
            .get(i)
            .ok_or_else(|| anyhow!("lab has {} nodes, no node {i}", self.nodes.len()))
    }
    /// The iSCSI client namespace.
    pub fn client(&self) -> &Client {
        &self.client
    }
    /// The spare floating address ([`FLOATING_IP`]).
    pub fn floating_ip(&self) -> Ipv4Addr {
        FLOATING_IP
    }
    /// Sum of the nodes' QEMU peak RSS (`VmHWM`) in KiB, for running nodes.
    pub fn peak_rss_kib(&self) -> u64 {
        self.nodes.iter().filter_map(Node::peak_rss_kib).sum()
    }
    /// Every node's console tail, for failure reports.
    pub fn logs_tail(&self, n: usize) -> String {
        self.nodes
            .iter()
            .map(|x| format!("--- node {} console ---\n{}\n", x.name, x.log_tail(n)))
            .collect()
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        if self.owned {
            self.cleanup();
        }
    }
}

/// Prerequisites of lab tests: root, `/dev/net/tun`, QEMU, tgtd, drbd-utils, libiscsi tools,
/// busybox-static, iproute2, apt/dpkg (first run). Returns true if all are there. When something is
/// missing: panics with the reason if `CI=true`, else prints `SKIP: <reason>` and returns false.
pub fn require_lab() -> bool {
    match missing_prereqs() {
        None => true,
        Some(reason) => {
            if std::env::var("CI").map(|v| v == "true").unwrap_or(false) {
                panic!("lab prerequisites missing under CI=true: {reason}");
            }
            eprintln!("SKIP: {reason}");
            false
        }
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
