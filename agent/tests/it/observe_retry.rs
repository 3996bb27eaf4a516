//! A failed observation is retried soon with backoff (not only by the slow safety net), and a
//! healthy daemon does not poll. The in-memory backends have no observation fault, so a thin
//! wrapper fails the first DRBD status reads.

use crate::common;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::time::Instant;

use agent::backend::memory::Memory;
use agent::backend::Drbd;
use agent::config::Resource;
use agent::control::{Pending, Request, Response};
use agent::daemon::Daemon;
use agent::executor::Executor;
use agent::fsm::{DrbdView, Role};
use agent::BackendError;

/// Memory's DRBD whose first `fail` status reads of `r0` fail (like a netlink call timing out;
/// one per observation, which reads every resource at once).
#[derive(Clone)]
struct Flaky {
    mem: Memory,
    fail: Arc<AtomicUsize>,
    reads: Arc<AtomicUsize>,
}

impl Drbd for Flaky {
    async fn status(&self, res: &Resource) -> Result<DrbdView, BackendError> {
        self.reads.fetch_add(1, Ordering::SeqCst);
        let left = self.fail.load(Ordering::SeqCst);
        if left > 0 && res.name == "r0" {
            self.fail.store(left - 1, Ordering::SeqCst);
            return Err(BackendError::Failed("injected status failure".into()));
        }
        self.mem.status(res).await
    }
    common::memory_drbd_writes!(mem);
}

async fn ask(ctl: &tokio::sync::mpsc::Sender<Pending>, request: Request) -> Response {
    let (reply, rx) = tokio::sync::oneshot::channel();
    ctl.send(Pending { request, reply })
        .await
        .expect("daemon alive");
    rx.await.expect("answer")
}

// Paused clock: the times below are the backoff schedule on tokio's virtual clock, never a
// measure of how fast this machine is.
#[tokio::test(start_paused = true)]
async fn failed_first_observation_is_retried_with_backoff() {
    let cfg = Arc::new(common::config("two", true));
    let mem = Memory::healthy_secondary(&cfg);
    let (ev_tx, ev_rx) = tokio::sync::mpsc::unbounded_channel();
    let mem = mem.with_events(ev_tx);
    let flaky = Flaky {
        mem: mem.clone(),
        fail: Arc::new(AtomicUsize::new(2)),
        reads: Arc::new(AtomicUsize::new(0)),
    };
    let d = Daemon::new(Executor::new(cfg, flaky.clone(), mem.clone(), mem.clone()));
    let (ctl_tx, ctl_rx) = tokio::sync::mpsc::channel(4);
    let start = Instant::now();
    tokio::spawn(d.run(ev_rx, ctl_rx));

    // Failed at 0 s and (first retry) 0.5 s; the second retry at 1.5 s succeeds, long before
    // the 60 s safety net.
    let served = loop {
        let r = ask(&ctl_tx, Request::Promote).await;
        if r.ok {
            break start.elapsed();
        }
        assert!(
            r.message.contains("not observed"),
            "unexpected refusal: {}",
            r.message
        );
        assert!(start.elapsed() < Duration::from_secs(10), "never observed");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert!(
        served >= Duration::from_millis(1400),
        "too early: {served:?}"
    );
    assert!(served < Duration::from_secs(4), "too late: {served:?}");
    assert_eq!(
        mem.world().drbd.get("r0").map(|v| v.role),
        Some(Role::Primary)
    );

    // Healthy now: no retry timer, so no more reads while idle.
    let reads = flaky.reads.load(Ordering::SeqCst);
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(flaky.reads.load(Ordering::SeqCst), reads, "daemon polls");
}
