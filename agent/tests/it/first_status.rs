//! `status` is answered at once after start, while the first observation still runs (marked
//! `observing`); other requests wait for it. The in-memory DRBD is wrapped so that its status
//! reads block until the test opens a gate.

use crate::common;

use std::sync::Arc;

use agent::backend::memory::Memory;
use agent::backend::Drbd;
use agent::config::Resource;
use agent::control::{Pending, Request, Response};
use agent::daemon::Daemon;
use agent::executor::Executor;
use agent::fsm::{DrbdView, Role};
use agent::BackendError;
use tokio::sync::{mpsc, oneshot, watch};

/// Memory's DRBD whose status reads wait until the gate opens.
#[derive(Clone)]
struct Gated {
    mem: Memory,
    gate: watch::Receiver<bool>,
}

impl Drbd for Gated {
    async fn status(&self, res: &Resource) -> Result<DrbdView, BackendError> {
        let mut gate = self.gate.clone();
        gate.wait_for(|open| *open)
            .await
            .map_err(|_| BackendError::Failed("gate dropped".into()))?;
        self.mem.status(res).await
    }
    common::memory_drbd_writes!(mem);
}

fn send(ctl: &mpsc::Sender<Pending>, request: Request) -> oneshot::Receiver<Response> {
    let (reply, rx) = oneshot::channel();
    ctl.try_send(Pending { request, reply })
        .expect("daemon alive");
    rx
}

#[tokio::test]
async fn status_is_answered_while_the_first_observation_runs() {
    let cfg = Arc::new(common::config("one", true));
    let mem = Memory::healthy_secondary(&cfg);
    let (open, gate) = watch::channel(false);
    let drbd = Gated {
        mem: mem.clone(),
        gate,
    };
    let d = Daemon::new(Executor::new(cfg, drbd, mem.clone(), mem.clone()));
    let (_ev_tx, ev_rx) = mpsc::unbounded_channel();
    let (ctl, ctl_rx) = mpsc::channel(4);
    tokio::spawn(d.run(ev_rx, ctl_rx));

    // The observation is blocked: status still answers, saying so.
    let r = send(&ctl, Request::Status).await.expect("answer");
    assert!(r.ok, "{}", r.message);
    let s = r.status.expect("status");
    assert!(s.observing, "{s:?}");
    assert!(s.render().contains("observing"), "{}", s.render());
    // A promote waits for the observation, then runs.
    let mut promote = send(&ctl, Request::Promote);
    let r = send(&ctl, Request::Status).await.expect("answer");
    assert!(r.status.expect("status").observing);
    assert!(promote.try_recv().is_err(), "answered before observing");
    assert_eq!(mem.world().drbd["r0"].role, Role::Secondary);

    open.send(true).expect("gate");
    let r = promote.await.expect("answer");
    assert!(r.ok, "{}", r.message);
    assert_eq!(mem.world().drbd["r0"].role, Role::Primary);
    let s = send(&ctl, Request::Status)
        .await
        .expect("answer")
        .status
        .expect("status");
    assert!(!s.observing, "{s:?}");
}
