//! The packaged unit (`packaging/iscsi-ha.service`) under a real systemd: a container booted by
//! `systemd-nspawn --volatile=yes` from this host's `/usr` (read-only; root and `/etc` are a
//! tmpfs), with a private network and its own cgroup2 mount (in a mount namespace of the test),
//! so nothing of the host changes and no frame leaves the container.
//!
//! Checks, with the unit's own hardening (a drop-in only swaps the binary's path and runs
//! `daemon --simulate`, since this kernel has no DRBD):
//! - `systemctl start` returns once the agent sent READY (Type=notify), STATUS is shown, the
//!   watchdog is fed (WatchdogSec=2s in the test) and the control socket answers;
//! - a stopped process (SIGSTOP: the loop cannot feed the watchdog) is killed by systemd's
//!   watchdog and restarted (Restart=on-failure);
//! - a copy of the unit (same [Service] sandbox, `Type=oneshot`) runs the libraries' examples:
//!   generic netlink (the `drbd` family lookup: "not found" is the answer of an allowed socket),
//!   rtnetlink + packet sockets (the RFC 5227 probe, a claim with its gratuitous ARP and the
//!   release, on a veth in the container), and tgtd's management socket (`tgt.service` started
//!   in the container).
//!
//! Needs root, `systemd-nspawn` (Debian `systemd-container`), `unshare` / `nsenter`
//! (util-linux), tgtd (Debian `tgt`) and the workspace's examples (`cargo build --workspace
//! --examples`, done by `scripts/test-all`): skipped without them, a failure with CI=true.

use crate::common;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use common::which;

const BIN: &str = env!("CARGO_BIN_EXE_iscsi-ha");
const UNIT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../packaging/iscsi-ha.service");
/// The examples the sandbox check runs (built by `cargo build --workspace --examples`).
const EXAMPLES: [&str; 5] = ["drbd-nl-status", "probe", "claim", "release", "system"];

fn examples_dir() -> PathBuf {
    Path::new(BIN)
        .parent()
        .expect("target dir")
        .join("examples")
}

/// What is missing to run this test, if anything.
fn missing() -> Option<String> {
    if !nix::unistd::geteuid().is_root() {
        return Some("root".into());
    }
    for (tool, package) in [
        ("systemd-nspawn", "systemd-container"),
        ("unshare", "util-linux"),
        ("nsenter", "util-linux"),
        ("tgtd", "tgt"),
    ] {
        if which(tool).is_none() {
            return Some(format!("{tool} (Debian {package})"));
        }
    }
    if !Path::new("/usr/lib/systemd/systemd").exists() {
        return Some("/usr/lib/systemd/systemd (Debian systemd)".into());
    }
    let dir = examples_dir();
    EXAMPLES.iter().find(|e| !dir.join(e).exists()).map(|e| {
        format!(
            "{} (cargo build --workspace --examples)",
            dir.join(e).display()
        )
    })
}

fn prereqs() -> bool {
    let Some(what) = missing() else { return true };
    test_support::prereq::skip(format!("systemd unit test: needs {what}"))
}

/// The drop-in of the agent's unit: the test binary, the simulated backends, a short watchdog,
/// and SIGKILL as the watchdog's signal (a stopped process keeps SIGABRT pending).
const AGENT_DROP_IN: &str = "[Service]
ExecStartPre=
ExecStartPre=/opt/iscsi-ha/iscsi-ha check-config
ExecStart=
ExecStart=/opt/iscsi-ha/iscsi-ha daemon --simulate
WatchdogSec=2s
WatchdogSignal=SIGKILL
RestartSec=100ms
";

/// The drop-in of the sandbox check: the unit's [Service] sandbox running the examples.
const SOCKETS_DROP_IN: &str = "[Unit]
ConditionPathExists=
[Service]
Type=oneshot
Restart=no
WatchdogSec=0
ExecStartPre=
ExecStart=
ExecStart=/bin/sh -c 'out=$$(/opt/iscsi-ha/examples/drbd-nl-status 2>&1); echo \"$$out\"; echo \"$$out\" | grep -q \"family .drbd. not found\"'
ExecStart=/opt/iscsi-ha/examples/probe v0 192.0.2.10/24
ExecStart=/opt/iscsi-ha/examples/claim v0 192.0.2.10/24 --no-probe --once
ExecStart=/opt/iscsi-ha/examples/release v0 192.0.2.10/24
ExecStart=/bin/sh -c '/opt/iscsi-ha/examples/system | grep \"State: ready\"'
";

/// A booted container; halted and reaped on drop.
struct Container {
    nspawn: Child,
    pid1: u32,
    work: PathBuf,
}

impl Container {
    fn boot(work: &Path) -> Container {
        let units = work.join("units");
        let etc = work.join("etc");
        let tgt = work.join("tgt");
        for d in [&units, &etc, &tgt] {
            std::fs::create_dir_all(d).expect("work dirs");
        }
        for name in ["iscsi-ha", "iscsi-ha-sockets"] {
            std::fs::copy(UNIT, units.join(format!("{name}.service"))).expect("unit");
            let d = units.join(format!("{name}.service.d"));
            std::fs::create_dir_all(&d).expect("drop-in dir");
            let text = if name == "iscsi-ha" {
                AGENT_DROP_IN
            } else {
                SOCKETS_DROP_IN
            };
            std::fs::write(d.join("test.conf"), text).expect("drop-in");
        }
        let cfg = common::config("one", true);
        let text = toml::to_string(&cfg).expect("toml");
        std::fs::write(etc.join("iscsi-ha.toml"), text).expect("config");
        std::fs::write(tgt.join("targets.conf"), "").expect("targets.conf");
        let bins = Path::new(BIN).parent().expect("target dir");
        let machine = format!("ihatest{}", std::process::id());
        // The cgroup2 mount only exists in the test's mount namespace (this host runs the v1
        // hierarchies without systemd's); `exec` keeps nspawn's pid the child's.
        let script = format!(
            "mount --make-rprivate / && mount -t cgroup2 none /sys/fs/cgroup && \
             exec systemd-nspawn -q -D / --volatile=yes --private-network --register=no \
             --keep-unit --machine={machine} --boot --console=pipe \
             --bind-ro={units}:/etc/systemd/system --bind-ro={etc}:/etc/iscsi-ha \
             --bind-ro={tgt}:/etc/tgt --bind-ro={bins}:/opt/iscsi-ha \
             -- systemd.unit=multi-user.target",
            units = units.display(),
            etc = etc.display(),
            tgt = tgt.display(),
            bins = bins.display(),
        );
        let log = std::fs::File::create(work.join("console.log")).expect("log");
        let nspawn = Command::new(which("unshare").expect("unshare"))
            .args(["-m", "sh", "-c", &script])
            // The notify tests of this binary set it process-wide; nspawn would report there.
            .env_remove("NOTIFY_SOCKET")
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("log"))
            .stderr(log)
            .spawn()
            .expect("systemd-nspawn starts");
        let mut c = Container {
            pid1: 0,
            nspawn,
            work: work.to_path_buf(),
        };
        let deadline = Instant::now() + Duration::from_secs(60);
        while c.pid1 == 0 {
            if let Ok(Some(st)) = c.nspawn.try_wait() {
                panic!("systemd-nspawn exited ({st}): {}", c.console());
            }
            assert!(Instant::now() < deadline, "no container: {}", c.console());
            c.pid1 = child_systemd(c.nspawn.id()).unwrap_or(0);
            std::thread::sleep(Duration::from_millis(50));
        }
        c
    }

    fn console(&self) -> String {
        std::fs::read_to_string(self.work.join("console.log")).unwrap_or_default()
    }

    /// Runs `args` inside the container (all its namespaces).
    fn run(&self, args: &[&str]) -> Output {
        Command::new(which("nsenter").expect("nsenter"))
            .args([
                "-t",
                &self.pid1.to_string(),
                "-m",
                "-u",
                "-i",
                "-n",
                "-p",
                "-C",
            ])
            .args(args)
            .output()
            .expect("nsenter runs")
    }

    /// Runs `args` inside; panics with its output unless it succeeds.
    fn ok(&self, args: &[&str]) -> String {
        let out = self.run(args);
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(out.status.success(), "{}: {text}", args.join(" "));
        text
    }

    /// `systemctl show UNIT -p NAME` (the value).
    fn prop(&self, unit: &str, name: &str) -> String {
        let out = self.ok(&["systemctl", "show", unit, "-p", name, "--value"]);
        out.trim().to_string()
    }

    fn journal(&self, unit: &str) -> String {
        let out = self.run(&["journalctl", "-u", unit, "--no-pager", "-o", "cat"]);
        String::from_utf8_lossy(&out.stdout).into_owned()
    }
}

impl Drop for Container {
    fn drop(&mut self) {
        // SIGTERM halts the container (systemd's shutdown); a second one ends it at once.
        let pid = nix::unistd::Pid::from_raw(self.nspawn.id() as i32);
        let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM);
        let deadline = Instant::now() + Duration::from_secs(20);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.nspawn.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.nspawn.kill();
        let _ = self.nspawn.wait();
    }
}

/// The container's init: the child of `parent` named `systemd`.
fn child_systemd(parent: u32) -> Option<u32> {
    let children =
        std::fs::read_to_string(format!("/proc/{parent}/task/{parent}/children")).ok()?;
    children
        .split_whitespace()
        .filter_map(|p| p.parse::<u32>().ok())
        .find(|p| {
            std::fs::read_to_string(format!("/proc/{p}/comm")).is_ok_and(|c| c.trim() == "systemd")
        })
}

/// Polls `f` every 50 ms until it holds (up to `secs` seconds).
fn wait_for(secs: u64, what: &str, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(secs);
    while !f() {
        assert!(Instant::now() < deadline, "{what}: not within {secs} s");
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn unit_under_systemd_ready_watchdog_and_sandboxed_sockets() {
    if !prereqs() {
        return;
    }
    let work =
        Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("systemd-unit-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&work);
    let t = Instant::now();
    let c = Container::boot(&work);
    // `degraded` is expected: systemd-firstboot has no /etc to work on. Until its manager
    // listens, systemctl answers nothing.
    let mut state = String::new();
    wait_for(60, "the container's boot", || {
        let out = c.run(&["systemctl", "is-system-running", "--wait"]);
        state = String::from_utf8_lossy(&out.stdout).trim().to_string();
        matches!(state.as_str(), "running" | "degraded")
    });
    eprintln!("container booted in {:?} ({state})", t.elapsed());
    let version = c.ok(&["systemctl", "--version"]);
    eprintln!("{}", version.lines().next().unwrap_or_default());

    // READY: `systemctl start` of a Type=notify unit returns once READY=1 arrived.
    let t = Instant::now();
    let out = c.run(&["systemctl", "start", "iscsi-ha.service"]);
    let took = t.elapsed();
    assert!(
        out.status.success(),
        "start: {}",
        c.journal("iscsi-ha.service")
    );
    eprintln!(
        "systemctl start iscsi-ha (check-config, start, first observation) -> READY: {took:?}"
    );
    assert_eq!(c.prop("iscsi-ha.service", "SubState"), "running");
    // The unit's scheduling reached the agent (packaging/README.md, "Scheduling").
    let pid = c.prop("iscsi-ha.service", "MainPID");
    let stat = c.ok(&["cat", &format!("/proc/{pid}/stat")]);
    let nice = stat
        .rsplit(')')
        .next()
        .and_then(|f| f.split_whitespace().nth(16));
    assert_eq!(nice, Some("-10"), "{stat}");
    assert_eq!(c.prop("iscsi-ha.service", "CPUWeight"), "1000");
    let status = c.prop("iscsi-ha.service", "StatusText");
    assert!(
        status.starts_with("Secondary (authority "),
        "STATUS: {status}"
    );
    let fed = |c: &Container| c.prop("iscsi-ha.service", "WatchdogTimestampMonotonic");
    let first = fed(&c);
    assert_ne!(first, "0", "no WATCHDOG=1 yet");
    wait_for(10, "a second WATCHDOG=1", || fed(&c) != first);
    assert_eq!(c.prop("iscsi-ha.service", "NRestarts"), "0");
    // The control socket in the unit's RuntimeDirectory answers (ProtectSystem=strict).
    let st = c.ok(&["/opt/iscsi-ha/iscsi-ha", "status"]);
    assert!(st.contains("node test"), "{st}");

    // A stopped process feeds no watchdog: systemd kills and restarts it, keeping its
    // RuntimeDirectory (the kept tickle list lives there, and `--simulate`'s maintenance
    // switch); a stop removes it.
    c.ok(&["touch", "/run/iscsi-ha/kept-across-restart"]);
    let st = c.ok(&["/opt/iscsi-ha/iscsi-ha", "maintenance", "on"]);
    assert!(st.contains("kept across restarts"), "{st}");
    let main = c.prop("iscsi-ha.service", "MainPID");
    let t = Instant::now();
    c.ok(&["kill", "-STOP", &main]);
    wait_for(30, "restart after the watchdog fired", || {
        c.prop("iscsi-ha.service", "NRestarts") == "1"
            && c.prop("iscsi-ha.service", "SubState") == "running"
    });
    eprintln!(
        "stopped loop -> killed by the watchdog and running again: {:?}",
        t.elapsed()
    );
    let journal = c.journal("iscsi-ha.service");
    assert!(journal.contains("Watchdog timeout"), "{journal}");
    c.ok(&["test", "-e", "/run/iscsi-ha/kept-across-restart"]);
    let in_maintenance = |c: &Container| {
        let out = c.run(&["/opt/iscsi-ha/iscsi-ha", "status", "--json"]);
        let st: serde_json::Value = serde_json::from_slice(&out.stdout).expect("status --json");
        assert_eq!(st["maintenance"], true, "{st}");
    };
    in_maintenance(&c);
    c.ok(&["/opt/iscsi-ha/iscsi-ha", "maintenance", "off"]);
    c.ok(&["systemctl", "stop", "iscsi-ha.service"]);
    assert_eq!(c.prop("iscsi-ha.service", "ActiveState"), "inactive");
    assert!(!c.run(&["test", "-e", "/run/iscsi-ha"]).status.success());
    // The StateDirectory a real agent keeps its switch in (state_dir), made by systemd.
    let mode = c.ok(&["stat", "-c", "%a", "/var/lib/iscsi-ha"]);
    assert_eq!(mode.trim(), "700", "StateDirectoryMode");

    // The sandbox lets the libraries open what the agent opens.
    for cmd in [
        "link add v0 type veth peer name v1",
        "link set v0 up",
        "link set v1 up",
    ] {
        let mut args = vec!["ip"];
        args.extend(cmd.split_whitespace());
        c.ok(&args);
    }
    c.ok(&["systemctl", "start", "tgt.service"]);
    let out = c.run(&["systemctl", "start", "iscsi-ha-sockets.service"]);
    let journal = c.journal("iscsi-ha-sockets.service");
    eprintln!("{journal}");
    assert!(out.status.success(), "sandboxed sockets: {journal}");
    assert!(journal.contains("family \"drbd\" not found"), "{journal}");
    assert!(journal.contains("is free on v0"), "{journal}");
    assert!(journal.contains("released"), "{journal}");
    drop(c);
    let _ = std::fs::remove_dir_all(&work);
}
