//! Shared test support: built-in configs and a simulated daemon (also included by the benches via
//! `#[path]`); tool lookup and the private tgtd come from `test-support`.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Child, Command};

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

// Not every test binary including this module uses both.
#[allow(unused_imports)]
pub use test_support::{
    tgtd::{free_port, Tgtd},
    which,
};

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
