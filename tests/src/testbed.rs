//! The lab as a whole: start, attach, stop and clean up its guests and networks.

use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

use anyhow::{anyhow, Result};

use crate::node::Proc;
use crate::{
    assets, drbd9, guard, initramfs, net, profile_dir, qemu, Client, LabConfig, LabState, Node,
    DEFAULT_TIMEOUT, FLOATING_IP,
};

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
        // Seen by the sweep of a lab started from another checkout, whose `target/lab-run`
        // does not hold this state file ([`guard::sweep_stale`]).
        std::fs::write(
            self.run_dir.join(guard::DETACHED_MARK),
            guard::state_file(&self.name).display().to_string(),
        )?;
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
