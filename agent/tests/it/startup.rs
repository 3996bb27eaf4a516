//! The daemon's start-up: its log gives the time from exec to each step (`since_exec_ms`), so
//! a start can be timed from the log alone; the mail transport (with STARTTLS the system's root
//! certificates) is not built before the first alert. Times and the idle RSS are printed, never
//! asserted (figures: `lab bench-takeover`).

use crate::common;

use std::sync::Arc;

use agent::alerts::{EmailConfig, Mailer};
use agent::backend::memory::Memory;
use agent::backend::Drbd;
use agent::config::Resource;
use agent::executor::Executor;
use agent::fsm::DrbdView;
use agent::BackendError;
use tokio::sync::Barrier;

const BIN: &str = env!("CARGO_BIN_EXE_iscsi-ha");

/// Memory's DRBD whose status reads each wait until every resource's read has begun: only an
/// observation that reads all resources at once completes (read one after the other, the first
/// waits for a read that never starts, until `timeouts.drbd_ms`).
#[derive(Clone)]
struct AllAtOnce {
    mem: Memory,
    all: Arc<Barrier>,
}

impl Drbd for AllAtOnce {
    async fn status(&self, res: &Resource) -> Result<DrbdView, BackendError> {
        self.all.wait().await;
        self.mem.status(res).await
    }
    common::memory_drbd_writes!(mem);
}

#[tokio::test]
async fn observation_reads_every_resource_at_once() {
    let cfg = Arc::new(common::config("two", true));
    let mem = Memory::healthy_secondary(&cfg);
    let drbd = AllAtOnce {
        mem: mem.clone(),
        all: Arc::new(Barrier::new(cfg.resources.len())),
    };
    let exec = Executor::new(cfg.clone(), drbd, mem.clone(), mem);
    let snap = exec.observe().await.expect("observation");
    assert_eq!(snap.resources.len(), 2, "{snap:?}");
    assert_eq!(snap.addresses.len(), 1, "{snap:?}");
}

#[test]
fn since_exec_is_read_from_proc() {
    let first = agent::logs::since_exec().expect("/proc/self/stat and CLOCK_BOOTTIME");
    let again = agent::logs::since_exec().expect("again");
    assert!(again >= first, "{again:?} < {first:?}");
}

#[test]
fn mail_transport_is_built_at_the_first_alert_not_at_start() {
    let e: EmailConfig = toml::from_str(
        "server = \"mx.example\"\nfrom = \"ha@x.test\"\nto = [\"ops@x.test\"]\nstarttls = true\n",
    )
    .expect("email config");
    let mut m = Mailer::new(&e).expect("mailer");
    assert!(!m.transport_built(), "built at start");
    // Building it may fail on a machine without root certificates; it is then said at the alert.
    match m.transport() {
        Ok(_) => assert!(m.transport_built()),
        Err(err) => println!("transport not built here: {err}"),
    }
}

#[test]
fn daemon_logs_its_start_up_steps_since_exec() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut cfg = common::config("one", true);
    cfg.sockets.control = dir.path().join("control.sock");
    let (daemon, _) = common::simulated_daemon(BIN, dir.path(), &cfg);
    let log = dir.path().join("daemon.log");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    let text = loop {
        let text = std::fs::read_to_string(&log).unwrap_or_default();
        if text.contains("notify: ready") {
            break text;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no ready line: {text}"
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    };
    for step in [
        "configuration loaded",
        "control socket ready",
        "notify: ready",
    ] {
        let line = text
            .lines()
            .find(|l| l.contains(step))
            .unwrap_or_else(|| panic!("no {step:?} line: {text}"));
        let ms = line
            .split("since_exec_ms=")
            .nth(1)
            .and_then(|v| v.split(|c: char| !c.is_ascii_digit()).next())
            .and_then(|v| v.parse::<u64>().ok())
            .unwrap_or_else(|| panic!("no since_exec_ms: {line}"));
        println!("{step:?}: {ms} ms after exec");
    }
    let status =
        std::fs::read_to_string(format!("/proc/{}/status", daemon.0.id())).expect("daemon status");
    for l in status
        .lines()
        .filter(|l| l.starts_with("VmRSS") || l.starts_with("RssAnon"))
    {
        println!("idle simulated daemon (debug build): {l}");
    }
}
