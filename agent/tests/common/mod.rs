//! Shared test support: built-in configs, tool lookup, a private tgtd (also included by
//! `benches/promote.rs` via `#[path]`).
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

use agent::config::Config;

const R0: &str = r#"
[[resource]]
name = "r0"
minor = 0
mode = "adopt"
target = { iqn = "iqn.2026-11.test:r0", tid = 1, initiators = ["iqn.2026-11.test:client"] }
[[resource.lun]]
lun = 1
device = "/dev/drbd0"
scsi_id = "r0-1"
scsi_sn = "R0SN1"
vendor = "TEST"
product = "DISK"
"#;

const R0_MANAGED: &str = r#"
[[resource]]
name = "r0"
minor = 0
mode = "manage"
manage = { disk = "/dev/ram0", local = "10.1.0.1:7789", peer = "10.1.0.2:7789" }
target = { iqn = "iqn.2026-11.test:r0", tid = 1, initiators = "all" }
[[resource.lun]]
lun = 1
device = "/dev/drbd0"
scsi_id = "r0-1"
scsi_sn = "R0SN1"
vendor = "TEST"
product = "DISK"
"#;

const R1: &str = r#"
[[resource]]
name = "r1"
minor = 1
mode = "adopt"
target = { iqn = "iqn.2026-11.test:r1", tid = 2, initiators = "all" }
[[resource.lun]]
lun = 1
device = "/dev/drbd1"
scsi_id = "r1-1"
scsi_sn = "R1SN1"
vendor = "TEST"
product = "DISK"
"#;

fn addr(a: &str, res: &str) -> String {
    format!("[[address]]\naddress = \"{a}\"\ninterface = \"eth0\"\nresources = [{res}]\n")
}

/// A built-in config by name: `one`, `two`, `two-addr`, `managed`; `command` selects the
/// command role source.
pub fn config(name: &str, command: bool) -> Config {
    let role = if command {
        "role = { source = \"command\" }\n"
    } else {
        "role = { source = \"pool-conf\", path = \"/tmp/none/pool.conf\" }\n"
    };
    let body = match name {
        "one" => format!("{R0}{}", addr("10.0.0.10/24", "\"r0\"")),
        "two" => format!("{R0}{R1}{}", addr("10.0.0.10/24", "\"r0\", \"r1\"")),
        "two-addr" => format!(
            "{R0}{R1}{}{}",
            addr("10.0.0.10/24", "\"r0\""),
            addr("10.0.0.11/24", "\"r1\"")
        ),
        "managed" => format!("{R0_MANAGED}{}", addr("10.0.0.10/24", "\"r0\"")),
        other => panic!("no built-in config {other}"),
    };
    let text = format!("node = \"test\"\n{role}[timeouts]\nsafety_net_s = 0\n{body}");
    Config::parse(&text, Path::new("<test>")).unwrap_or_else(|e| panic!("{e}"))
}

/// `tool` in PATH, or in /usr/sbin or /sbin.
pub fn which(tool: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain(["/usr/sbin".into(), "/sbin".into()])
        .map(|d| d.join(tool))
        .find(|p| p.is_file())
}

/// A free TCP port on 127.0.0.1.
pub fn free_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    l.local_addr().expect("addr").port()
}

/// A private `tgtd -f` on its own socket (`DIR/socket.CONTROL_PORT`) and portal; killed on drop.
pub struct Tgtd {
    child: Option<Child>,
    /// The `TGT_IPC_SOCKET` base (`DIR/socket`), as tgtadm wants it.
    pub base: PathBuf,
    control_port: u16,
}

impl Tgtd {
    /// Starts tgtd with control port `control_port` and an iSCSI portal on 127.0.0.1:`port`,
    /// its output going to `DIR/tgtd-PID.log`.
    pub fn start(dir: &Path, control_port: u16, port: u16) -> Tgtd {
        let base = dir.join("socket");
        let log = std::fs::File::create(dir.join(format!("tgtd-{}.log", std::process::id())))
            .expect("log");
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
        }
    }

    /// The control socket path.
    pub fn socket(&self) -> PathBuf {
        PathBuf::from(format!("{}.{}", self.base.display(), self.control_port))
    }

    /// Kills it (as a crash would) and waits for it.
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

impl Drop for Tgtd {
    fn drop(&mut self) {
        self.kill();
    }
}

/// A child process killed (and reaped) when dropped.
pub struct Kill(pub Child);
impl Drop for Kill {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Writes `cfg` to `dir/iscsi-ha.toml`, starts `iscsi-ha daemon --simulate` on it (stderr to
/// `dir/daemon.log`, no systemd notification) and waits up to 60 s for its control socket.
/// Returns the daemon and the config path.
pub fn simulated_daemon(bin: &str, dir: &Path, cfg: &Config) -> (Kill, PathBuf) {
    let path = dir.join("iscsi-ha.toml");
    std::fs::write(&path, toml::to_string(cfg).expect("toml")).expect("write config");
    let daemon = Kill(
        Command::new(bin)
            .arg("-c")
            .arg(&path)
            .args(["daemon", "--simulate"])
            .env_remove("NOTIFY_SOCKET")
            .stderr(std::fs::File::create(dir.join("daemon.log")).expect("log"))
            .spawn()
            .expect("daemon"),
    );
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    while !cfg.sockets.control.exists() {
        assert!(std::time::Instant::now() < deadline, "daemon did not start");
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    (daemon, path)
}
