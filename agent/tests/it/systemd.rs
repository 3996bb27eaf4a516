//! systemd integration. Notification on a real `NOTIFY_SOCKET` (a Unix datagram socket bound by
//! the test): the `iscsi-ha daemon --simulate` binary sends READY, STATUS, WATCHDOG and STOPPING
//! in order, and the watchdog is fed from the daemon's loop, so a loop stuck in a transition
//! stops it. Logs: plain text without colour codes off a terminal, journald's native protocol
//! when stderr is the journal stream. The unit passes `systemd-analyze verify`.

use crate::common;

use std::collections::BTreeMap;
use std::os::unix::net::UnixDatagram;
use std::path::Path;
use std::process::Command;

use common::Kill;
use std::sync::Arc;
use std::time::{Duration, Instant};

use agent::backend::memory::Memory;
use agent::backend::Drbd;
use agent::config::Resource;
use agent::control::{Pending, Request};
use agent::daemon::Daemon;
use agent::executor::Executor;
use agent::fsm::DrbdView;
use agent::notify::Notify;
use agent::BackendError;

const BIN: &str = env!("CARGO_BIN_EXE_iscsi-ha");

/// The next datagram, or `None` after `wait`.
fn recv(sock: &UnixDatagram, wait: Duration) -> Option<String> {
    sock.set_read_timeout(Some(wait)).expect("timeout");
    let mut buf = [0u8; 4096];
    match sock.recv(&mut buf) {
        Ok(n) => Some(String::from_utf8_lossy(&buf[..n]).into_owned()),
        Err(e)
            if matches!(
                e.kind(),
                std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
            ) =>
        {
            None
        }
        Err(e) => panic!("recv: {e}"),
    }
}

/// Datagrams until one contains `want` (all of them, that one last).
fn until(sock: &UnixDatagram, want: &str) -> Vec<String> {
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut got = Vec::new();
    while Instant::now() < deadline {
        if let Some(d) = recv(sock, Duration::from_secs(1)) {
            let done = d.contains(want);
            got.push(d);
            if done {
                return got;
            }
        }
    }
    panic!("no {want:?} within 60 s; got {got:?}");
}

fn config_file(dir: &Path) -> std::path::PathBuf {
    let mut cfg = common::config("one", true);
    cfg.sockets.control = dir.join("control.sock");
    let path = dir.join("iscsi-ha.toml");
    std::fs::write(&path, toml::to_string(&cfg).expect("toml")).expect("write config");
    path
}

#[test]
fn notify_datagrams_in_order() {
    let dir = tempfile::tempdir().expect("tempdir");
    let notify = dir.path().join("notify.sock");
    let sock = UnixDatagram::bind(&notify).expect("bind NOTIFY_SOCKET");
    let cfg = config_file(dir.path());
    let mut daemon = Kill(
        Command::new(BIN)
            .arg("-c")
            .arg(&cfg)
            .args(["daemon", "--simulate"])
            .env("NOTIFY_SOCKET", &notify)
            .env("WATCHDOG_USEC", "200000")
            .env_remove("WATCHDOG_PID")
            .stderr(std::fs::File::create(dir.path().join("daemon.log")).expect("log"))
            .spawn()
            .expect("daemon"),
    );

    let first = until(&sock, "READY=1");
    assert_eq!(
        first,
        vec![
            "READY=1\nSTATUS=Secondary (authority unknown): authority unknown: no signal yet\n"
                .to_string()
        ],
        "READY (with the first STATUS) comes first"
    );
    // Fed from the loop every 100 ms while idle.
    until(&sock, "WATCHDOG=1");
    until(&sock, "WATCHDOG=1");

    let o = Command::new(BIN)
        .arg("-c")
        .arg(&cfg)
        .arg("promote")
        .output()
        .expect("promote");
    assert!(o.status.success(), "{o:?}");
    let got = until(&sock, "STATUS=Primary (authority primary): converged");
    assert!(
        got.iter().all(|d| !d.contains("READY")),
        "READY only once: {got:?}"
    );

    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(daemon.0.id() as i32),
        nix::sys::signal::Signal::SIGTERM,
    )
    .expect("SIGTERM");
    let got = until(&sock, "STOPPING=1");
    assert_eq!(
        got.last().map(String::as_str),
        Some("STOPPING=1\nSTATUS=stopping\n")
    );
    let status = daemon.0.wait().expect("exit");
    assert!(status.success(), "clean exit on SIGTERM: {status:?}");
    assert_eq!(
        recv(&sock, Duration::from_millis(300)),
        None,
        "nothing after STOPPING"
    );

    // Plain text off a terminal: no colour codes; one line per transition with its stage times.
    let log = std::fs::read_to_string(dir.path().join("daemon.log")).expect("log");
    assert!(!log.contains('\x1b'), "colour codes in a file: {log}");
    let line = log
        .lines()
        .find(|l| l.contains(" transition ") && l.contains("result=\"ok\""))
        .unwrap_or_else(|| panic!("no transition line: {log}"));
    assert!(
        line.contains("stages=check-resource=") && line.contains(" address-claim="),
        "{line}"
    );
}

/// Memory's DRBD whose `primary` waits until released (a stuck netlink call).
#[derive(Clone)]
struct Stuck {
    mem: Memory,
    entered: Arc<tokio::sync::Notify>,
    release: Arc<tokio::sync::Notify>,
}

impl Drbd for Stuck {
    async fn status(&self, res: &Resource) -> Result<DrbdView, BackendError> {
        self.mem.status(res).await
    }
    async fn up(&self, res: &Resource) -> Result<(), BackendError> {
        self.mem.up(res).await
    }
    async fn primary(&self, res: &Resource, force: bool) -> Result<(), BackendError> {
        self.entered.notify_one();
        self.release.notified().await;
        self.mem.primary(res, force).await
    }
    async fn secondary(&self, res: &Resource) -> Result<(), BackendError> {
        self.mem.secondary(res).await
    }
}

#[tokio::test]
async fn watchdog_stops_while_the_loop_is_stuck() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("notify.sock");
    let sock = UnixDatagram::bind(&path).expect("bind NOTIFY_SOCKET");
    // Only this test reads the environment in-process (the other one passes it to a child); the
    // guard takes it away again, since the other modules of this binary (and their children) would
    // otherwise notify a dead socket and believe in a watchdog.
    let _env = NotifyEnv::set(&path);

    let cfg = Arc::new(common::config("one", true));
    let (ev_tx, ev_rx) = tokio::sync::mpsc::unbounded_channel();
    let mem = Memory::healthy_secondary(&cfg).with_events(ev_tx);
    let stuck = Stuck {
        mem: mem.clone(),
        entered: Arc::default(),
        release: Arc::default(),
    };
    let d = Daemon::new(Executor::new(cfg, stuck.clone(), mem.clone(), mem))
        .with_monitor(Notify::from_env());
    let (ctl_tx, ctl_rx) = tokio::sync::mpsc::channel(4);
    tokio::spawn(d.run(ev_rx, ctl_rx));

    let sock = Arc::new(sock);
    let s = sock.clone();
    let got = tokio::task::spawn_blocking(move || {
        let mut got = until(&s, "READY=1");
        got.extend(until(&s, "WATCHDOG=1"));
        got
    })
    .await
    .expect("join");
    assert!(got[0].starts_with("READY=1"), "{got:?}");

    // Promote: the loop enters DRBD primary and stays there.
    let (reply, answer) = tokio::sync::oneshot::channel();
    ctl_tx
        .send(Pending {
            request: Request::Promote,
            reply,
        })
        .await
        .expect("daemon alive");
    stuck.entered.notified().await;
    let s = sock.clone();
    let quiet = tokio::task::spawn_blocking(move || {
        // Drop what was sent before the loop got stuck, then listen for ten periods.
        while recv(&s, Duration::from_millis(1)).is_some() {}
        let until = Instant::now() + Duration::from_secs(1);
        let mut got = Vec::new();
        while Instant::now() < until {
            got.extend(recv(&s, Duration::from_millis(100)));
        }
        got
    })
    .await
    .expect("join");
    assert!(
        quiet.iter().all(|d| !d.contains("WATCHDOG")),
        "watchdog fed while the loop is stuck: {quiet:?}"
    );

    // Released: the promote completes and the watchdog is fed again.
    stuck.release.notify_one();
    let resp = answer.await.expect("answer");
    assert!(resp.ok, "{resp:?}");
    let s = sock.clone();
    let after = tokio::task::spawn_blocking(move || until(&s, "WATCHDOG=1"))
        .await
        .expect("join");
    assert!(
        after.iter().any(|d| d.contains("STATUS=Primary")),
        "{after:?}"
    );
}

/// `systemd-analyze verify` accepts `packaging/iscsi-ha.service` without a single warning (it
/// exits 0 on unknown keys, so its output must be empty). ExecStart points at the test build.
#[test]
fn systemd_unit_verifies() {
    let Some(analyze) = common::which("systemd-analyze") else {
        test_support::prereq::skip(
            "systemd_unit_verifies: systemd-analyze not installed (Debian `systemd`)",
        );
        return;
    };
    let unit = Path::new(env!("CARGO_MANIFEST_DIR")).join("../packaging/iscsi-ha.service");
    let text = std::fs::read_to_string(&unit).expect("unit");
    for want in [
        "Type=notify\n",
        "WatchdogSec=",
        "Restart=on-failure\n",
        "ExecStart=/usr/sbin/iscsi-ha daemon\n",
    ] {
        assert!(text.contains(want), "unit lacks {want:?}");
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let copy = dir.path().join("iscsi-ha.service");
    std::fs::write(&copy, text.replace("/usr/sbin/iscsi-ha", BIN)).expect("write unit");
    let o = Command::new(&analyze)
        .arg("verify")
        .arg(&copy)
        .output()
        .expect("systemd-analyze runs");
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    assert!(o.status.success() && said.trim().is_empty(), "{said}");
}

/// Under systemd (stderr is the journal stream named by `JOURNAL_STREAM`) the log goes to
/// journald's native socket as fields. The test runs the daemon in a private mount namespace
/// (`unshare -m`) whose `/run/systemd/journal/socket` is a datagram socket the test bound.
#[test]
fn journald_native_fields_under_systemd() {
    let unshare = common::which("unshare").expect("unshare (util-linux)");
    if !nix::unistd::geteuid().is_root() {
        test_support::prereq::skip("journald test: needs root (a mount namespace)");
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let journal = dir.path().join("journal.sock");
    let sock = UnixDatagram::bind(&journal).expect("bind journal socket");
    let cfg = config_file(dir.path());
    let log_path = dir.path().join("stderr.log");
    let log = std::fs::File::create(&log_path).expect("log");
    let st = nix::sys::stat::fstat(&log).expect("fstat");
    let script = format!(
        "mount -t tmpfs tmpfs /run && mkdir -p /run/systemd/journal \
         && touch /run/systemd/journal/socket \
         && mount --bind '{}' /run/systemd/journal/socket \
         && exec '{BIN}' -c '{}' daemon --simulate",
        journal.display(),
        cfg.display()
    );
    let mut daemon = Kill(
        Command::new(unshare)
            .args(["-m", "--propagation", "private", "sh", "-c", &script])
            .env("JOURNAL_STREAM", format!("{}:{}", st.st_dev, st.st_ino))
            .env_remove("NOTIFY_SOCKET")
            .stderr(log)
            .spawn()
            .expect("daemon"),
    );
    let entry = journal_entry(&sock, "control socket ready");
    assert_eq!(
        entry.get("SYSLOG_IDENTIFIER").map(String::as_str),
        Some("iscsi-ha")
    );
    assert_eq!(entry.get("NODE").map(String::as_str), Some("test"));
    assert!(entry.contains_key("PRIORITY"), "{entry:?}");
    let o = Command::new(BIN)
        .arg("-c")
        .arg(&cfg)
        .arg("promote")
        .output()
        .expect("promote");
    assert!(o.status.success(), "{o:?}");
    let entry = journal_entry(&sock, "transition");
    assert_eq!(
        entry.get("RESULT").map(String::as_str),
        Some("ok"),
        "{entry:?}"
    );
    let stages = entry.get("STAGES").cloned().unwrap_or_default();
    assert!(stages.starts_with("check-resource="), "{entry:?}");
    let _ = daemon.0.kill();
    let _ = daemon.0.wait();
    let text = std::fs::read_to_string(&log_path).expect("stderr");
    assert!(!text.contains("transition"), "plain text too: {text}");
}

/// The next journal entry whose MESSAGE is `message`, decoded from journald's native protocol
/// (`KEY=value\n`, or `KEY\n` + little-endian u64 length + bytes + `\n`).
fn journal_entry(sock: &UnixDatagram, message: &str) -> BTreeMap<String, String> {
    let deadline = Instant::now() + Duration::from_secs(60);
    while Instant::now() < deadline {
        let Some(d) = recv(sock, Duration::from_secs(1)) else {
            continue;
        };
        let mut fields = BTreeMap::new();
        let mut rest = d.as_bytes();
        while let Some(nl) = rest.iter().position(|&b| b == b'\n') {
            let line = String::from_utf8_lossy(&rest[..nl]).into_owned();
            rest = &rest[nl + 1..];
            if let Some((k, v)) = line.split_once('=') {
                fields.insert(k.to_string(), v.to_string());
            } else if rest.len() >= 8 {
                let len = u64::from_le_bytes(rest[..8].try_into().expect("8 bytes")) as usize;
                let v = String::from_utf8_lossy(&rest[8..8 + len]).into_owned();
                fields.insert(line, v);
                rest = &rest[8 + len + 1..];
            }
        }
        if fields.get("MESSAGE").map(String::as_str) == Some(message) {
            return fields;
        }
    }
    panic!("no journal entry {message:?} within 60 s");
}

/// NOTIFY_SOCKET and WATCHDOG_USEC for this process, removed on drop (also when the test panics).
struct NotifyEnv;

impl NotifyEnv {
    fn set(path: &std::path::Path) -> NotifyEnv {
        std::env::set_var("NOTIFY_SOCKET", path);
        std::env::set_var("WATCHDOG_USEC", "100000");
        std::env::remove_var("WATCHDOG_PID");
        NotifyEnv
    }
}

impl Drop for NotifyEnv {
    fn drop(&mut self) {
        std::env::remove_var("NOTIFY_SOCKET");
        std::env::remove_var("WATCHDOG_USEC");
    }
}
