//! Shared test support: built-in configs and a simulated daemon (also included by the benches via
//! `#[path]`); tool lookup and the private tgtd come from `test-support`.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::Command;

use agent::config::{
    Address, Config, Initiators, Lun, Manage, MetaDisk, Mode, Protocol, Resource, RoleSource,
    Target, Timeouts, DEFAULT_KO_COUNT, DEFAULT_PING_INT_S, DEFAULT_PING_TIMEOUT_DS,
    DEFAULT_TIMEOUT_DS,
};
use tgt_ipc::CacheMode;

/// Adopted resource `name` on DRBD minor `minor`: target `iqn.2026-11.test:<name>` with tid
/// `tid`, one LUN 1 on `/dev/drbd<minor>`.
fn resource(name: &str, minor: u32, tid: u32, initiators: Initiators) -> Resource {
    Resource {
        name: name.into(),
        minor,
        mode: Mode::Adopt,
        manage: None,
        target: Target {
            iqn: format!("iqn.2026-11.test:{name}"),
            tid,
            initiators,
            chap: None,
        },
        luns: vec![Lun {
            lun: 1,
            device: format!("/dev/drbd{minor}").into(),
            scsi_id: format!("{name}-1"),
            scsi_sn: format!("{}SN1", name.to_uppercase()),
            vendor: "TEST".into(),
            product: "DISK".into(),
            rev: None,
            cache: CacheMode::default(),
        }],
        volumes: Vec::new(),
    }
}

/// `r0` brought up by the agent on `/dev/ram0`, replicating 10.1.0.1 <-> 10.1.0.2.
fn managed_r0() -> Resource {
    let mut r = resource("r0", 0, 1, Initiators::All);
    r.mode = Mode::Manage;
    r.manage = Some(Manage {
        disk: "/dev/ram0".into(),
        meta_disk: MetaDisk::Internal,
        local: "10.1.0.1:7789".parse().expect("local"),
        peer: "10.1.0.2:7789".parse().expect("peer"),
        protocol: Protocol::C,
        ping_int_s: DEFAULT_PING_INT_S,
        ping_timeout_ds: DEFAULT_PING_TIMEOUT_DS,
        timeout_ds: DEFAULT_TIMEOUT_DS,
        ko_count: DEFAULT_KO_COUNT,
        node_id: None,
        peer_node_id: None,
        disk_options: Default::default(),
        net_options: Default::default(),
        handlers: None,
    });
    r
}

/// Floating address `net` on eth0 for `resources`.
fn addr(net: &str, resources: &[&str]) -> Address {
    Address {
        address: net.parse().expect("address"),
        interface: "eth0".into(),
        resources: resources.iter().map(|r| r.to_string()).collect(),
        announce: Default::default(),
        probe: Default::default(),
    }
}

/// A built-in config by name: `one`, `two`, `two-addr`, `managed`; `command` selects the
/// command role source.
pub fn config(name: &str, command: bool) -> Config {
    let role = if command {
        RoleSource::Command
    } else {
        RoleSource::PoolConf {
            path: "/tmp/none/pool.conf".into(),
        }
    };
    let client = Initiators::List(vec!["iqn.2026-11.test:client".into()]);
    let r0 = || resource("r0", 0, 1, client.clone());
    let r1 = || resource("r1", 1, 2, Initiators::All);
    let (resources, addresses) = match name {
        "one" => (vec![r0()], vec![addr("10.0.0.10/24", &["r0"])]),
        "two" => (vec![r0(), r1()], vec![addr("10.0.0.10/24", &["r0", "r1"])]),
        "two-addr" => (
            vec![r0(), r1()],
            vec![addr("10.0.0.10/24", &["r0"]), addr("10.0.0.11/24", &["r1"])],
        ),
        "managed" => (vec![managed_r0()], vec![addr("10.0.0.10/24", &["r0"])]),
        other => panic!("no built-in config {other}"),
    };
    let cfg = Config {
        node: "test".into(),
        state_dir: agent::config::DEFAULT_STATE_DIR.into(),
        role,
        sockets: Default::default(),
        timeouts: Timeouts {
            safety_net_s: 0,
            ..Default::default()
        },
        resources,
        addresses,
        metrics: Default::default(),
        alerts: Default::default(),
        tickle: None,
        source: None,
    };
    cfg.validate()
        .unwrap_or_else(|(key, reason)| panic!("{key}: {reason}"));
    cfg
}

// Not every test binary including this module uses both.
#[allow(unused_imports)]
pub use test_support::{
    tgtd::{free_port, Tgtd},
    which, Kill,
};

/// Writes `cfg` to `dir/iscsi-ha.toml`, starts `iscsi-ha daemon --simulate` on it (stderr to
/// `dir/daemon.log`, no systemd notification) and waits up to 60 s for its control socket.
/// Returns the daemon and the config path.
pub fn simulated_daemon(bin: &str, dir: &Path, cfg: &Config) -> (Kill, PathBuf) {
    let path = dir.join("iscsi-ha.toml");
    let cfg = &in_dir(cfg, dir);
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

/// `cfg` with its `state_dir` in `dir`: a test's daemon never keeps a maintenance switch where
/// another test's (or the host's agent) would find it.
pub fn in_dir(cfg: &Config, dir: &Path) -> Config {
    Config {
        state_dir: dir.join("state"),
        ..cfg.clone()
    }
}

/// `up`, `primary` and `secondary` of a test's [`agent::backend::Drbd`] passed through to the
/// `Memory` in its field `$mem`; the impl writes only its own `status` beside this.
// Not every binary including this module (the benches do) uses it.
#[allow(unused_macros)]
macro_rules! memory_drbd_writes {
    ($mem:ident) => {
        async fn up(&self, res: &agent::config::Resource) -> Result<(), agent::BackendError> {
            self.$mem.up(res).await
        }
        async fn primary(
            &self,
            res: &agent::config::Resource,
            force: bool,
        ) -> Result<(), agent::BackendError> {
            self.$mem.primary(res, force).await
        }
        async fn secondary(
            &self,
            res: &agent::config::Resource,
        ) -> Result<(), agent::BackendError> {
            self.$mem.secondary(res).await
        }
    };
}
#[allow(unused_imports)]
pub(crate) use memory_drbd_writes;

/// An import of the legacy files under `d` (`iscsi-ha.conf`, `targets.conf`, `drbd.conf`) for
/// `node`, without a local override and printing instead of writing.
pub fn import_args(d: &Path, node: &str) -> agent::import::files::ImportArgs {
    agent::import::files::ImportArgs {
        iscsi_ha: Some(d.join("iscsi-ha.conf")),
        local: None,
        tgt: Some(d.join("targets.conf")),
        drbd: Some(d.join("drbd.conf")),
        node: Some(node.into()),
        output: None,
    }
}

/// Resource r0 (minor 1) with volume 1 on minor 2 in `mode`, LUN 1 on `dev1`, LUN 2 on `dev2`;
/// `extra` goes into the volume table. LUN 2 caches write-back.
pub fn two_volumes(mode: &str, extra: &str, dev1: &str, dev2: &str) -> String {
    let manage = if mode == "manage" {
        "[resource.manage]\ndisk = \"/dev/sdb1\"\nlocal = \"10.0.0.1:7789\"\npeer = \"10.0.0.2:7789\"\n"
    } else {
        ""
    };
    format!(
        r#"node = "a"
role = {{ source = "command" }}
[[resource]]
name = "r0"
minor = 1
mode = "{mode}"
{manage}
[resource.target]
iqn = "iqn.2026-11.test:r0"
tid = 1
initiators = "all"

[[resource.volume]]
volume = 1
minor = 2
{extra}

[[resource.lun]]
lun = 1
device = "{dev1}"
scsi_id = "r0-1"
scsi_sn = "R0SN1"
vendor = "ISCSIHA"
product = "DRBD-LUN"

[[resource.lun]]
lun = 2
device = "{dev2}"
scsi_id = "r0-2"
scsi_sn = "R0SN2"
vendor = "ISCSIHA"
product = "DRBD-LUN"
cache = "write-back"
"#
    )
}

/// A daemon on `cfg` with DRBD and the address in memory and `target` (a private tgtd's),
/// observed and promoted; panics unless the promote succeeded and the first resource serves.
pub async fn promoted(
    cfg: &std::sync::Arc<Config>,
    target: &agent::backend::target::TgtTarget,
) -> agent::daemon::Daemon<
    agent::backend::memory::Memory,
    agent::backend::target::TgtTarget,
    agent::backend::memory::Memory,
> {
    use agent::backend::Target;
    let mem = agent::backend::memory::Memory::healthy_secondary(cfg);
    let exec = agent::executor::Executor::new(cfg.clone(), mem.clone(), target.clone(), mem);
    let mut d = agent::daemon::Daemon::new(exec);
    d.observe().await;
    let h = d.request(agent::control::Request::Promote).await;
    assert!(h.ok, "{}", h.message);
    let state = target
        .status(&cfg.resources[0])
        .await
        .expect("status")
        .state;
    assert_eq!(state, agent::fsm::TargetState::Serving);
    d
}

/// A config's first lines for a test against a private [`Tgtd`] under `dir` started with
/// `control_port`: node `node`, command role source, control socket `dir/control.sock`, no
/// safety net, `tgtd_ms` (None: the default). Resources and addresses are appended.
pub fn tgtd_config_head(node: &str, dir: &Path, control_port: u16, tgtd_ms: Option<u32>) -> String {
    let mut text = format!(
        "node = \"{node}\"\nrole = {{ source = \"command\" }}\n[sockets]\n\
         control = \"{d}/control.sock\"\ntgtd = \"{d}/socket.{control_port}\"\n\
         [timeouts]\nsafety_net_s = 0\n",
        d = dir.display()
    );
    if let Some(ms) = tgtd_ms {
        text.push_str(&format!("tgtd_ms = {ms}\n"));
    }
    text
}

/// `cmd` (found on PATH, else panics) run with `args` to its end: its stdout then its stderr.
pub fn output(cmd: &str, args: &[String]) -> String {
    let out = Command::new(which(cmd).unwrap_or_else(|| panic!("{cmd} not found")))
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("{cmd}: {e}"));
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// The session ids (TSIH) tgtd lists for target `tid` now: a reload that leaves a resource alone
/// keeps its reader on the same one.
pub async fn session_ids(client: &tgt_ipc::TgtClient, tid: i32) -> Vec<u64> {
    let sessions = client.sessions(tid).await.expect("sessions");
    sessions.iter().map(|n| n.sid).collect()
}

/// Waits (up to 15 s, else panics) until the tgtd at `socket` answers `show system`; a client
/// to it.
pub async fn wait_tgtd(socket: &Path) -> tgt_ipc::TgtClient {
    let client = tgt_ipc::TgtClient::at_path(socket.to_path_buf());
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(15);
    while client.show_system().await.is_err() {
        assert!(
            std::time::Instant::now() < deadline,
            "tgtd at {} did not answer",
            socket.display()
        );
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    client
}

/// One adopt-mode resource `r0` (minor 0) whose target `iqn` serves LUN 1 from `device`, its
/// identity from `test` (`test-r0-1`, vendor ISCSIHA, product `TEST-TEST`); `lun_extra` lines
/// end the LUN's table.
fn adopt_r0(iqn: &str, device: &str, test: &str, lun_extra: &str) -> String {
    let upper = test.to_uppercase();
    format!(
        r#"[[resource]]
name = "r0"
minor = 0
mode = "adopt"
target = {{ iqn = "{iqn}", tid = 1, initiators = "all" }}
[[resource.lun]]
lun = 1
device = "{device}"
scsi_id = "{test}-r0-1"
scsi_sn = "{upper}R01"
vendor = "ISCSIHA"
product = "{upper}-TEST"
{lun_extra}"#
    )
}

/// The config of a test named `test` against a private [`Tgtd`] under `dir` started with
/// `control_port` (see [`tgtd_config_head`], tgtd_ms 5000): [`adopt_r0`] with target
/// `iqn.2026-11.test.{test}:r0-PID` serving `backing` with `cache`.
pub fn tgtd_r0_config(
    test: &str,
    dir: &Path,
    control_port: u16,
    backing: &Path,
    cache: &str,
) -> Config {
    let iqn = format!("iqn.2026-11.test.{test}:r0-{}", std::process::id());
    let text = tgtd_config_head(&format!("{test}-test"), dir, control_port, Some(5000))
        + &adopt_r0(
            &iqn,
            &backing.display().to_string(),
            test,
            &format!("rev = \"0001\"\ncache = \"{cache}\"\n"),
        );
    Config::parse(&text, Path::new("<tgtd test>")).unwrap_or_else(|e| panic!("{e}"))
}

/// One adopt-mode resource `r0` (DRBD and target in memory in the tests that use it) behind the
/// address 10.99.0.10/24 on `v0`, probed for 100 ms and announced `announce_count` times 50 ms
/// apart: the address tests' config, built through the parser as an operator's file would be.
pub fn address_config(node: &str, announce_count: u32) -> Config {
    let text = format!(
        r#"
node = "{node}"
role = {{ source = "command" }}
[timeouts]
safety_net_s = 0
{r0}[[address]]
address = "10.99.0.10/24"
interface = "v0"
resources = ["r0"]
announce = {{ count = {announce_count}, interval_ms = 50 }}
probe = {{ enabled = true, timeout_ms = 100 }}
"#,
        r0 = adopt_r0("iqn.2026-11.test:r0", "/dev/drbd0", "address", ""),
    );
    Config::parse(&text, Path::new("<address test>")).unwrap_or_else(|e| panic!("{e}"))
}

/// The first transition of `h`, whose result must begin with `result` (e.g. `"failed:
/// target-remove r0"`); panics with the result it had otherwise.
pub fn first_transition(
    h: &agent::daemon::Handled,
    result: &str,
) -> agent::record::TransitionRecord {
    let rec = h.transitions.first().expect("a transition ran").clone();
    assert!(rec.result.to_string().starts_with(result), "{}", rec.result);
    rec
}
