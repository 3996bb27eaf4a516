//! Authority debounce through the daemon's run loop on in-memory backends, in tokio's paused
//! time: a flap on the primary causes no transition, a burst at most one per direction, a
//! change to primary is acted on at once unless `authority_settle_primary_ms` is set, `pool.conf`'s `broken` is held and
//! alarms only after `timeouts.broken_alarm_s`, operator commands are not delayed, and `status`
//! shows the pending change. A promote that did not complete is retried without an event.

use crate::common;

use std::sync::Arc;
use std::time::Duration;

use agent::backend::memory::Memory;
use agent::control::{Pending, Request, Response};
use agent::daemon::Daemon;
use agent::executor::Executor;
use agent::fsm::{Authority, Event, Role};
use agent::role::pool_conf;
use agent::status::Status;
use tokio::sync::mpsc;

struct Running {
    mem: Memory,
    events: mpsc::UnboundedSender<Event>,
    control: mpsc::Sender<Pending>,
}

impl Running {
    fn start(command: bool) -> Running {
        Running::start_with(command, 0)
    }

    /// `settle_primary_ms`: `timeouts.authority_settle_primary_ms`.
    fn start_with(command: bool, settle_primary_ms: u64) -> Running {
        let mut cfg = common::config("one", command);
        assert_eq!(cfg.timeouts.authority_settle_ms, 500);
        assert_eq!(cfg.timeouts.authority_settle_primary_ms, 0);
        assert_eq!(cfg.timeouts.broken_alarm_s, 30);
        cfg.timeouts.authority_settle_primary_ms = settle_primary_ms;
        let mem = Memory::healthy_secondary(&cfg);
        Running::over(cfg, mem)
    }

    /// The daemon's run loop over `mem`.
    fn over(cfg: agent::config::Config, mem: Memory) -> Running {
        let d = Daemon::new(Executor::new(
            Arc::new(cfg),
            mem.clone(),
            mem.clone(),
            mem.clone(),
        ));
        let (events, ev_rx) = mpsc::unbounded_channel();
        let (control, ctl_rx) = mpsc::channel(4);
        tokio::spawn(d.run(ev_rx, ctl_rx));
        Running {
            mem,
            events,
            control,
        }
    }

    async fn ask(&self, request: Request) -> Response {
        let (reply, rx) = tokio::sync::oneshot::channel();
        self.control
            .send(Pending { request, reply })
            .await
            .expect("send");
        rx.await.expect("reply")
    }

    async fn status(&self) -> Status {
        *self.ask(Request::Status).await.status.expect("status")
    }

    async fn says(&self, a: Authority, then: Duration) {
        self.events.send(Event::Authority(a)).expect("send");
        tokio::time::sleep(then).await;
    }

    fn role(&self) -> Option<Role> {
        self.mem.world().drbd.get("r0").map(|v| v.role)
    }

    async fn kinds(&self) -> Vec<String> {
        let s = self.status().await;
        s.transitions
            .into_iter()
            .map(|t| t.kind.to_string())
            .collect()
    }
}

const MS: Duration = Duration::from_millis(1);

#[tokio::test(start_paused = true)]
async fn flap_of_200_ms_on_the_primary_causes_no_transition() {
    let n = Running::start(false);
    // The first signal after start is acted on at once.
    n.says(Authority::Primary, MS * 10).await;
    assert_eq!(n.role(), Some(Role::Primary));
    assert_eq!(n.kinds().await, ["promote"]);
    n.says(Authority::Secondary, MS * 200).await;
    let s = n.status().await;
    let p = s.pending_authority.clone().expect("pending");
    assert_eq!(p.authority, Authority::Secondary);
    assert_eq!(p.in_ms, 300);
    assert!(
        s.render().contains("pending: authority secondary"),
        "{}",
        s.render()
    );
    n.says(Authority::Primary, MS * 2000).await;
    assert_eq!(n.role(), Some(Role::Primary));
    assert_eq!(n.kinds().await, ["promote"]);
    assert!(n.status().await.pending_authority.is_none());
}

#[tokio::test(start_paused = true)]
async fn burst_settles_into_at_most_one_transition_per_direction() {
    let n = Running::start(false);
    n.says(Authority::Secondary, MS * 10).await;
    // A change to primary is acted on at once; the changes away from it in the burst never
    // hold for the settle time.
    n.says(Authority::Primary, MS * 10).await;
    assert_eq!(n.role(), Some(Role::Primary), "a promote does not wait");
    for a in [
        Authority::Secondary,
        Authority::Primary,
        Authority::Unknown("pool.conf is empty".into()),
        Authority::Primary,
    ] {
        n.says(a, MS * 100).await;
    }
    tokio::time::sleep(MS * 2000).await;
    assert_eq!(n.role(), Some(Role::Primary));
    assert_eq!(n.kinds().await, ["promote"]);
    // A burst ending away from primary: one demote, once it held 500 ms.
    for a in [
        Authority::Secondary,
        Authority::Primary,
        Authority::Secondary,
    ] {
        n.says(a, MS * 100).await;
    }
    n.says(Authority::Unknown("pool.conf is empty".into()), MS * 100)
        .await;
    n.says(Authority::Secondary, MS * 499).await;
    assert_eq!(
        n.role(),
        Some(Role::Primary),
        "the timer re-arms on each change"
    );
    tokio::time::sleep(MS * 10).await;
    assert_eq!(n.role(), Some(Role::Secondary));
    assert_eq!(n.kinds().await, ["promote", "demote"]);
}

#[tokio::test(start_paused = true)]
async fn settle_primary_ms_holds_a_promote_too() {
    let n = Running::start_with(false, 500);
    n.says(Authority::Secondary, MS * 10).await;
    for a in [Authority::Primary, Authority::Secondary, Authority::Primary] {
        n.says(a, MS * 100).await;
    }
    assert_eq!(n.role(), Some(Role::Secondary), "still settling");
    let p = n.status().await.pending_authority.expect("pending");
    assert_eq!(p.authority, Authority::Primary);
    n.says(Authority::Unknown("pool.conf is empty".into()), MS * 100)
        .await;
    n.says(Authority::Primary, MS * 499).await;
    assert_eq!(n.role(), Some(Role::Secondary), "re-armed");
    tokio::time::sleep(MS * 10).await;
    assert_eq!(n.role(), Some(Role::Primary));
    assert_eq!(n.kinds().await, ["promote"]);
}

#[tokio::test(start_paused = true)]
async fn broken_then_master_promotes_once_without_an_alarm() {
    let n = Running::start(false);
    n.says(Authority::Secondary, MS * 10).await;
    n.says(pool_conf::parse("broken"), Duration::from_secs(5))
        .await;
    let s = n.status().await;
    assert_eq!(s.authority, Authority::Secondary);
    let p = s.pending_authority.expect("pending");
    assert_eq!(p.reason, "broken alarm");
    assert_eq!(p.in_ms, 25_000);
    assert_eq!(s.notice, None);
    n.says(pool_conf::parse("master\n"), MS * 600).await;
    assert_eq!(n.role(), Some(Role::Primary));
    assert_eq!(n.kinds().await, ["promote"]);
    assert_eq!(n.status().await.notice, None);
}

#[tokio::test(start_paused = true)]
async fn broken_on_the_primary_holds_and_alarms_after_broken_alarm_s() {
    let n = Running::start(false);
    n.says(Authority::Primary, MS * 10).await;
    n.says(pool_conf::parse("broken"), Duration::from_secs(29))
        .await;
    assert_eq!(n.status().await.notice, None);
    tokio::time::sleep(Duration::from_secs(2)).await;
    let s = n.status().await;
    let notice = s.notice.expect("alarm");
    assert!(notice.contains("broken for 30 s"), "{notice}");
    assert!(s.pending_authority.is_none());
    assert_eq!(n.role(), Some(Role::Primary), "held, not demoted");
    assert_eq!(n.kinds().await, ["promote"]);
    // The designation finishes elsewhere: this node is told it is a slave.
    n.says(pool_conf::parse("slave:10.0.0.2"), MS * 600).await;
    assert_eq!(n.role(), Some(Role::Secondary));
    assert_eq!(n.kinds().await, ["promote", "demote"]);
}

#[tokio::test(start_paused = true)]
async fn operator_commands_are_not_delayed() {
    let n = Running::start(true);
    let r = n.ask(Request::Promote).await;
    assert!(r.ok, "{}", r.message);
    assert_eq!(n.role(), Some(Role::Primary));
    let r = n.ask(Request::Demote).await;
    assert!(r.ok, "{}", r.message);
    assert_eq!(n.role(), Some(Role::Secondary));
}

/// A promote that did not complete is retried by the run loop (1 s, doubling up to 30 s), with
/// no event needed: another host answering for the address sends none when it lets go.
#[tokio::test(start_paused = true)]
async fn a_promote_that_did_not_complete_is_retried_without_an_event() {
    let n = Running::start(false);
    n.mem
        .world()
        .answered_elsewhere
        .insert("10.0.0.10/24".into());
    n.says(Authority::Primary, MS * 10).await;
    assert_eq!(n.role(), Some(Role::Secondary), "rolled back");
    // (result, times): a repeated transition is counted in the last record.
    let results = |s: Status| -> Vec<(String, u32)> {
        s.transitions
            .iter()
            .map(|t| (t.result.label().to_string(), t.repeated + 1))
            .collect()
    };
    let refused = |times| ("refused".to_string(), times);
    assert_eq!(results(n.status().await), [refused(1)]);
    // Retried after 1 s and 2 s, still refused.
    tokio::time::sleep(MS * 3100).await;
    assert_eq!(results(n.status().await), [refused(3)]);
    // The other host lets the address go: the next retry (4 s later) promotes.
    n.mem.world().answered_elsewhere.clear();
    tokio::time::sleep(MS * 4100).await;
    assert_eq!(n.role(), Some(Role::Primary));
    let s = n.status().await;
    assert_eq!(results(s.clone()), [refused(3), ("ok".into(), 1)]);
    assert_eq!(
        s.transitions.last().map(|t| t.kind.to_string()).as_deref(),
        Some("promote")
    );
    // Nothing more once it completed.
    tokio::time::sleep(Duration::from_secs(120)).await;
    assert_eq!(results(n.status().await).len(), 2);
}

/// A refused operator command is not retried: it leaves the node where it was.
#[tokio::test(start_paused = true)]
async fn a_refused_operator_promote_is_not_retried() {
    let n = Running::start(true);
    n.mem
        .world()
        .answered_elsewhere
        .insert("10.0.0.10/24".into());
    let r = n.ask(Request::Promote).await;
    assert!(!r.ok, "{}", r.message);
    n.mem.world().answered_elsewhere.clear();
    tokio::time::sleep(Duration::from_secs(120)).await;
    assert_eq!(n.role(), Some(Role::Secondary));
    assert_eq!(n.status().await.transitions.len(), 1);
}

const A: &str = "10.0.0.10/24";

/// Role source `command`: a repair of a serving node that is refused (its address answered by
/// another host) does not undo the operator's promote; it is retried until it completes.
#[tokio::test(start_paused = true)]
async fn a_refused_repair_does_not_undo_an_operator_promote() {
    let n = Running::start(true);
    tokio::time::sleep(MS * 10).await;
    let r = n.ask(Request::Promote).await;
    assert!(r.ok, "{}", r.message);
    {
        let mut w = n.mem.world();
        w.addresses.remove(A);
        w.answered_elsewhere.insert(A.into());
    }
    n.events
        .send(Event::Address {
            address: A.into(),
            held: false,
        })
        .expect("send");
    tokio::time::sleep(Duration::from_secs(10)).await;
    assert_eq!(n.role(), Some(Role::Primary), "the repair demoted it");
    n.mem.world().answered_elsewhere.clear();
    tokio::time::sleep(Duration::from_secs(40)).await;
    let s = n.status().await;
    assert_eq!(n.role(), Some(Role::Primary));
    assert!(s.addresses[0].held, "claimed again by a retry");
    assert_eq!(n.kinds().await, ["promote", "repair", "repair"]);
}

/// A retry waits while an authority change is held: `broken` holds the node as it is.
#[tokio::test(start_paused = true)]
async fn no_retry_while_broken_is_held() {
    let n = Running::start(false);
    n.mem.world().answered_elsewhere.insert(A.into());
    n.says(Authority::Primary, MS * 10).await;
    assert_eq!(n.role(), Some(Role::Secondary));
    n.says(pool_conf::parse("broken"), MS * 10).await;
    n.mem.world().answered_elsewhere.clear();
    tokio::time::sleep(Duration::from_secs(20)).await;
    assert_eq!(
        n.role(),
        Some(Role::Secondary),
        "promoted while broken was held"
    );
    n.says(pool_conf::parse("master\n"), MS * 100).await;
    assert_eq!(n.role(), Some(Role::Primary));
}

/// A refused `promote --degraded` leaves no allowance behind for a later plain promote.
#[tokio::test(start_paused = true)]
async fn a_refused_degraded_promote_leaves_no_allowance() {
    let cfg = common::config("one", true);
    let mem = Memory::healthy_secondary(&cfg);
    for d in mem.world().drbd.values_mut() {
        d.peer_role = Role::Unknown;
        d.peer_disk = agent::fsm::Disk::DUnknown;
        d.connection = agent::fsm::Connection::WFConnection;
    }
    let n = Running::over(cfg, mem);
    tokio::time::sleep(MS * 10).await;
    n.mem.world().answered_elsewhere.insert(A.into());
    let r = n.ask(Request::PromoteDegraded).await;
    assert!(!r.ok, "{}", r.message);
    n.mem.world().answered_elsewhere.clear();
    tokio::time::sleep(Duration::from_secs(60)).await;
    assert_eq!(n.role(), Some(Role::Secondary), "not retried");
    n.mem.world().log.clear();
    let r = n.ask(Request::Promote).await;
    assert!(!r.ok, "a plain promote waits for the peer: {}", r.message);
    let log = n.mem.world().log.clone();
    assert!(
        !log.iter().any(|c| c.starts_with("drbd-primary-force")),
        "{log:?}"
    );
}

/// A managed resource that is down: an operator's `promote` starts with its bring-up.
fn managed_down(fail_bring_up: bool) -> (agent::config::Config, Memory) {
    let cfg = common::config("managed", true);
    let mem = Memory::healthy_secondary(&cfg);
    mem.world()
        .drbd
        .insert("r0".into(), agent::fsm::DrbdView::default());
    if fail_bring_up {
        mem.world().fail_stage = Some((agent::fsm::Stage::DrbdUp, "r0".into()));
    }
    (cfg, mem)
}

/// An operator's `promote` whose bring-up failed is not carried out later behind the
/// operator's back, with `--degraded` or without, once the resource comes up.
#[tokio::test(start_paused = true)]
async fn a_promote_command_whose_bring_up_failed_is_not_carried_out_later() {
    for request in [Request::Promote, Request::PromoteDegraded] {
        let (cfg, mem) = managed_down(true);
        let n = Running::over(cfg, mem);
        tokio::time::sleep(MS * 10).await;
        let r = n.ask(request).await;
        assert!(!r.ok, "{}", r.message);
        n.mem.world().fail_stage = None;
        tokio::time::sleep(Duration::from_secs(5)).await;
        // Up by hand (or by a retry's bring-up), the peer unreachable.
        let view = agent::fsm::DrbdView {
            up: true,
            role: Role::Secondary,
            peer_role: Role::Unknown,
            connection: agent::fsm::Connection::WFConnection,
            disk: agent::fsm::Disk::UpToDate,
            peer_disk: agent::fsm::Disk::DUnknown,
            ..agent::fsm::DrbdView::default()
        };
        n.mem.world().drbd.insert("r0".into(), view.clone());
        n.mem.world().log.clear();
        n.events
            .send(Event::Drbd {
                resource: "r0".into(),
                view,
            })
            .expect("send");
        tokio::time::sleep(Duration::from_secs(60)).await;
        let log = n.mem.world().log.clone();
        assert!(
            !log.iter().any(|c| c.starts_with("drbd-primary")),
            "{request:?}: promoted with no command: {log:?}"
        );
        assert_eq!(n.status().await.authority, Authority::Secondary);
    }
}

/// Role source `command`, manage mode, DRBD down at start (a reboot): the agent brings it up
/// as Secondary by itself, with no command; a promote refused on what DRBD has not reported yet
/// leaves no wish, so nothing promotes when DRBD reports; a promote then does.
#[tokio::test(start_paused = true)]
async fn a_command_node_rejoins_by_itself_and_a_refused_promote_leaves_no_wish() {
    let (cfg, mem) = managed_down(false);
    let n = Running::over(cfg, mem);
    tokio::time::sleep(MS * 10).await;
    assert_eq!(n.mem.world().log, ["drbd-up r0"]);
    assert_eq!(n.role(), Some(Role::Secondary));
    let r = n.ask(Request::Promote).await;
    assert!(!r.ok && r.message.starts_with("refused: "), "{}", r.message);
    let none = Authority::Unknown(agent::fsm::NO_SIGNAL_YET.into());
    assert_eq!(n.status().await.authority, none);
    let view = agent::fsm::DrbdView::healthy_secondary();
    n.events
        .send(Event::Drbd {
            resource: "r0".into(),
            view,
        })
        .expect("send");
    tokio::time::sleep(Duration::from_secs(60)).await;
    assert_eq!(n.mem.world().log, ["drbd-up r0"]);
    let r = n.ask(Request::Promote).await;
    assert!(r.ok, "{}", r.message);
    assert_eq!(n.role(), Some(Role::Primary));
}

/// Role source `command`: a promote whose bring-up is done but which is then refused (DRBD has
/// not reported its disk yet) says so and is not kept: the authority is what it was, and
/// nothing promotes later when the resource turns out UpToDate with its peer gone.
#[tokio::test(start_paused = true)]
async fn a_promote_refused_after_its_bring_up_is_not_carried_out_later() {
    let (cfg, mem) = managed_down(true);
    let n = Running::over(cfg, mem);
    tokio::time::sleep(MS * 10).await;
    n.mem.world().fail_stage = None;
    let r = n.ask(Request::Promote).await;
    assert!(!r.ok, "{}", r.message);
    assert!(
        r.message.starts_with("refused: r0: local disk is")
            && r.message.contains("DRBD was brought up just now"),
        "{}",
        r.message
    );
    let none = Authority::Unknown(agent::fsm::NO_SIGNAL_YET.into());
    assert_eq!(n.status().await.authority, none);
    // Up to date, then the peer gone: a kept wish would promote now.
    let view = agent::fsm::DrbdView::healthy_secondary();
    n.events
        .send(Event::Drbd {
            resource: "r0".into(),
            view: view.clone(),
        })
        .expect("send");
    let gone = agent::fsm::DrbdView {
        peer_role: Role::Unknown,
        connection: agent::fsm::Connection::WFConnection,
        peer_disk: agent::fsm::Disk::DUnknown,
        ..view
    };
    n.mem.world().drbd.insert("r0".into(), gone.clone());
    n.events
        .send(Event::Drbd {
            resource: "r0".into(),
            view: gone,
        })
        .expect("send");
    tokio::time::sleep(Duration::from_secs(60)).await;
    let log = n.mem.world().log.clone();
    assert!(
        !log.iter().any(|c| c.starts_with("drbd-primary")),
        "promoted with no command: {log:?}"
    );
    assert_eq!(n.status().await.authority, none);
}

/// Role source `command`: a demote that cancels a promote wish not carried out (its repair
/// refused: the peer took over after DRBD was demoted by hand) says so instead of "nothing to
/// do".
#[tokio::test(start_paused = true)]
async fn a_demote_that_cancels_a_pending_promote_says_so() {
    let n = Running::start(true);
    tokio::time::sleep(MS * 10).await;
    let r = n.ask(Request::Promote).await;
    assert!(r.ok, "{}", r.message);
    // Everything undone behind the agent's back, and the peer Primary: the repair is refused.
    let view = agent::fsm::DrbdView {
        role: Role::Secondary,
        peer_role: Role::Primary,
        ..agent::fsm::DrbdView::healthy_secondary()
    };
    {
        let mut w = n.mem.world();
        w.drbd.insert("r0".into(), view.clone());
        w.targets.clear();
        w.addresses.clear();
    }
    let events = [
        Event::Drbd {
            resource: "r0".into(),
            view,
        },
        Event::Target {
            resource: "r0".into(),
            view: agent::fsm::TargetView::default(),
        },
        Event::Address {
            address: "10.0.0.10/24".into(),
            held: false,
        },
    ];
    for ev in events {
        n.events.send(ev).expect("send");
    }
    tokio::time::sleep(MS * 10).await;
    let s = n.status().await;
    assert_eq!(s.authority, Authority::Primary);
    let r = n.ask(Request::Demote).await;
    assert!(r.ok, "{}", r.message);
    assert!(
        r.message.starts_with("pending promote cancelled"),
        "{}",
        r.message
    );
    assert_eq!(n.status().await.authority, Authority::Secondary);
    // A second demote has nothing to cancel.
    let r = n.ask(Request::Demote).await;
    assert_eq!(r.message, "nothing to do");
}

/// Role source `command`, two resources served: r1 falls to Secondary and its re-promote fails
/// (not a refusal). The repair is retried; r0, serving, is not demoted.
#[tokio::test(start_paused = true)]
async fn a_failed_repromote_of_one_resource_leaves_the_other_serving() {
    let cfg = common::config("two", true);
    let mem = Memory::healthy_secondary(&cfg);
    let n = Running::over(cfg, mem);
    tokio::time::sleep(MS * 10).await;
    let r = n.ask(Request::Promote).await;
    assert!(r.ok, "{}", r.message);
    let view = {
        let mut w = n.mem.world();
        w.fail_stage = Some((agent::fsm::Stage::DrbdPrimary, "r1".into()));
        let d = w.drbd.get_mut("r1").expect("r1");
        d.role = Role::Secondary;
        d.clone()
    };
    n.events
        .send(Event::Drbd {
            resource: "r1".into(),
            view,
        })
        .expect("send");
    tokio::time::sleep(Duration::from_secs(10)).await;
    let w = n.mem.world().clone();
    assert_eq!(w.drbd["r0"].role, Role::Primary, "r0 demoted: {:?}", w.log);
    assert_eq!(n.status().await.authority, Authority::Primary);
}

/// A reload that shortens the settle time shortens the wait of a change already held (a typo
/// of 600000 no longer needs a restart to be undone).
#[tokio::test(start_paused = true)]
async fn a_reload_shortening_the_settle_time_shortens_a_held_change() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("iscsi-ha.toml");
    let mut cfg = common::config("one", false);
    cfg.timeouts.authority_settle_ms = 600_000;
    std::fs::write(&path, cfg.effective_toml().expect("toml")).expect("write");
    cfg.source = Some(path.clone());
    let mem = Memory::healthy_secondary(&cfg);
    let n = Running::over(cfg.clone(), mem);
    n.says(Authority::Primary, MS * 10).await;
    assert_eq!(n.kinds().await, ["promote"]);
    n.says(Authority::Secondary, MS * 100).await;
    let p = n.status().await.pending_authority.expect("pending");
    assert_eq!(p.in_ms, 599_900);
    cfg.timeouts.authority_settle_ms = 1000;
    std::fs::write(&path, cfg.effective_toml().expect("toml")).expect("write");
    let r = n.ask(Request::Reload).await;
    assert!(r.ok, "{}", r.message);
    let p = n.status().await.pending_authority.expect("still pending");
    assert_eq!(p.in_ms, 900, "counted from when the change was first held");
    tokio::time::sleep(MS * 950).await;
    assert_eq!(n.role(), Some(Role::Secondary));
    assert_eq!(n.kinds().await, ["promote", "demote"]);
    // Shortened below what has already passed: acted on at once.
    n.says(Authority::Primary, MS * 10).await;
    n.says(Authority::Secondary, MS * 300).await;
    assert!(n.status().await.pending_authority.is_some());
    cfg.timeouts.authority_settle_ms = 100;
    std::fs::write(&path, cfg.effective_toml().expect("toml")).expect("write");
    assert!(n.ask(Request::Reload).await.ok);
    tokio::time::sleep(MS * 10).await;
    assert!(n.status().await.pending_authority.is_none());
    assert_eq!(n.kinds().await, ["promote", "demote", "promote", "demote"]);
}
