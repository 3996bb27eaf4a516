//! OCF mode over the in-memory backends: exit codes of every action and state. The meta-data's
//! validity is checked in `agent/tests/it/ocf.rs` (it runs xmllint).

use std::path::Path;
use std::sync::Arc;

use super::run::real;
use super::*;
use crate::backend::memory::Memory;
use crate::config::TEST_MINIMAL;
use crate::executor::Executor;
use crate::fsm::{Disk, Role, TargetState};

const ADDR: &str = "10.99.0.50/24";

fn config() -> Config {
    Config::parse(&config_text(), Path::new("t.toml")).expect("test config parses")
}

struct Node {
    mem: Memory,
    exec: Executor<Memory, Memory, Memory>,
    env: OcfEnv,
    _dir: tempfile::TempDir,
}

/// A node whose actions run with Pacemaker's timeout `timeout_ms` (10 s or less: a promote
/// refused answers at once).
fn node() -> Node {
    node_with_timeout(10_000)
}

fn config_text() -> String {
    format!(
        "{TEST_MINIMAL}[[address]]\naddress = \"{ADDR}\"\ninterface = \"eth0\"\nresources = [\"r0\"]\n"
    )
}

fn node_with_timeout(timeout_ms: u64) -> Node {
    let cfg = config();
    let mem = Memory::healthy_secondary(&cfg);
    let exec = Executor::new(Arc::new(cfg), mem.clone(), mem.clone(), mem.clone());
    let dir = tempfile::tempdir().expect("tempdir");
    let state_dir = dir.path().to_path_buf();
    // The same configuration as a file, for what reads it (`allow-degraded`).
    let file = state_dir.join("iscsi-ha.toml");
    std::fs::write(&file, config_text()).expect("write config");
    let env = OcfEnv::from_vars(|k| match k {
        "OCF_RESOURCE_INSTANCE" => Some("p_iscsi:1".into()),
        "OCF_RESKEY_config" => Some(file.display().to_string()),
        "HA_RSCTMP" => Some(state_dir.display().to_string()),
        "OCF_RESKEY_CRM_meta_timeout" => Some(timeout_ms.to_string()),
        _ => None,
    });
    Node {
        mem,
        exec,
        env,
        _dir: dir,
    }
}

impl Node {
    async fn code(&self, a: OcfAction) -> OcfCode {
        act(a, &self.env, &self.exec).await.code
    }
}

#[test]
fn exit_codes_are_the_ocf_numbers() {
    let codes = [
        (OcfCode::Success, 0),
        (OcfCode::ErrGeneric, 1),
        (OcfCode::ErrArgs, 2),
        (OcfCode::ErrUnimplemented, 3),
        (OcfCode::ErrPerm, 4),
        (OcfCode::ErrInstalled, 5),
        (OcfCode::ErrConfigured, 6),
        (OcfCode::NotRunning, 7),
        (OcfCode::RunningPromoted, 8),
        (OcfCode::FailedPromoted, 9),
    ];
    for (c, n) in codes {
        assert_eq!(c as u8, n, "{}", c.name());
    }
    assert_eq!(main(None, &[], None), 2, "no action: OCF_ERR_ARGS");
    assert_eq!(
        main(Some("migrate_to"), &[], None),
        3,
        "unknown: OCF_ERR_UNIMPLEMENTED"
    );
    assert_eq!(main(Some("meta-data"), &[], None), 0);
}

#[tokio::test]
async fn lifecycle_codes() {
    let n = node();
    assert_eq!(n.code(OcfAction::Monitor).await, OcfCode::NotRunning);
    assert_eq!(
        n.code(OcfAction::Stop).await,
        OcfCode::Success,
        "stop stopped"
    );
    assert_eq!(n.code(OcfAction::Start).await, OcfCode::Success);
    assert!(n.env.state_file().exists(), "started mark");
    assert!(n.env.state_file().ends_with("iscsi-ha-p_iscsi.json"));
    assert_eq!(n.code(OcfAction::Monitor).await, OcfCode::Success);
    assert_eq!(n.code(OcfAction::Demote).await, OcfCode::Success);
    assert_eq!(n.code(OcfAction::Promote).await, OcfCode::Success);
    {
        let w = n.mem.world();
        assert_eq!(w.drbd["r0"].role, Role::Primary);
        assert_eq!(w.targets["r0"].state, TargetState::Serving);
        assert!(w.addresses[ADDR]);
    }
    assert_eq!(n.code(OcfAction::Monitor).await, OcfCode::RunningPromoted);
    assert_eq!(n.code(OcfAction::Promote).await, OcfCode::Success, "again");
    // the daemon's order: serve before claim
    let log = n.mem.world().log.join(", ");
    let (serve, claim) = (log.find("target-serve"), log.find("address-claim"));
    assert!(serve < claim && serve.is_some(), "{log}");
    assert_eq!(n.code(OcfAction::Demote).await, OcfCode::Success);
    {
        let w = n.mem.world();
        assert_eq!(w.drbd["r0"].role, Role::Secondary);
        assert_eq!(w.targets["r0"].state, TargetState::Absent);
        assert!(!w.addresses[ADDR]);
    }
    assert_eq!(n.code(OcfAction::Monitor).await, OcfCode::Success);
    assert_eq!(n.code(OcfAction::Demote).await, OcfCode::Success, "again");
    assert_eq!(n.code(OcfAction::Promote).await, OcfCode::Success);
    assert_eq!(
        n.code(OcfAction::Stop).await,
        OcfCode::Success,
        "stop promoted"
    );
    assert_eq!(n.mem.world().drbd["r0"].role, Role::Secondary);
    let kept = std::fs::read_to_string(n.env.state_file()).expect("kept for the peer history");
    assert!(kept.contains("\"started\":false"), "{kept}");
    assert_eq!(n.code(OcfAction::Monitor).await, OcfCode::NotRunning);
}

/// Pacemaker recovers a failed promote with stop, start, promote: the survivor of a lost peer
/// must still know it saw the peer (DRBD stayed attached), or every later promote is refused.
#[tokio::test]
async fn peer_history_survives_stop_and_start() {
    let n = node();
    assert_eq!(n.code(OcfAction::Start).await, OcfCode::Success);
    n.mem.peer_lost("r0");
    assert_eq!(n.code(OcfAction::Stop).await, OcfCode::Success);
    assert_eq!(n.code(OcfAction::Monitor).await, OcfCode::NotRunning);
    assert_eq!(n.code(OcfAction::Start).await, OcfCode::Success);
    assert_eq!(n.code(OcfAction::Promote).await, OcfCode::Success);
    assert_eq!(n.mem.world().drbd["r0"].role, Role::Primary);
    // A file of an earlier version (no `started`) was only written while started.
    assert_eq!(n.code(OcfAction::Demote).await, OcfCode::Success);
    std::fs::write(n.env.state_file(), r#"{"peer_seen":{"r0":true}}"#).expect("write");
    assert_eq!(n.code(OcfAction::Monitor).await, OcfCode::Success);
}

/// The history of a stop long ago is not trusted: DRBD may have been taken down and up by
/// hand meanwhile (with fencing `dont-care` a re-attached disk reads UpToDate).
#[tokio::test]
async fn peer_history_of_an_old_stop_is_forgotten() {
    let n = node();
    n.mem.peer_lost("r0");
    let now = crate::peer_link::remember::boottime_ms().expect("CLOCK_BOOTTIME");
    // A host up for less than the window has no such stop time: one of another boot (ahead
    // of the clock) is as old.
    let old = now
        .checked_sub(super::run::HISTORY_AFTER_STOP.as_millis() as u64 + 1000)
        .unwrap_or(now + 3_600_000);
    let file = format!(r#"{{"started":false,"stopped_ms":{old},"peer_seen":{{"r0":true}}}}"#);
    std::fs::write(n.env.state_file(), &file).expect("write");
    assert_eq!(n.code(OcfAction::Monitor).await, OcfCode::NotRunning);
    assert_eq!(n.code(OcfAction::Start).await, OcfCode::Success);
    let r = act(OcfAction::Promote, &n.env, &n.exec).await;
    assert_eq!(r.code, OcfCode::ErrGeneric, "{r}");
    assert!(r.message.contains(crate::fsm::WAITING_FOR_PEER), "{r}");
    // A recent one is.
    let file = format!(r#"{{"started":false,"stopped_ms":{now},"peer_seen":{{"r0":true}}}}"#);
    std::fs::write(n.env.state_file(), &file).expect("write");
    assert_eq!(n.code(OcfAction::Start).await, OcfCode::Success);
    assert_eq!(n.code(OcfAction::Promote).await, OcfCode::Success);
}

/// The next mutating call of `n`'s backends fails (once).
fn fail_next_call(n: &Node) {
    let mut w = n.mem.world();
    w.calls = 0;
    w.fail_at_call = Some(1);
}

/// A plan that failed (a step's timeout on a loaded host, say) is rolled back and tried again
/// while the action's time lasts, as LINBIT's agent keeps trying until Pacemaker's timeout.
#[tokio::test]
async fn a_failed_attempt_is_tried_again_within_the_timeout() {
    let n = node_with_timeout(30_000); // 20 s of retries
    assert_eq!(n.code(OcfAction::Start).await, OcfCode::Success);
    fail_next_call(&n);
    let r = act(OcfAction::Promote, &n.env, &n.exec).await;
    assert_eq!(r.code, OcfCode::Success, "{r}");
    assert_eq!(n.mem.world().drbd["r0"].role, Role::Primary);
    // No time left for another attempt: the failure is the answer.
    let m = node();
    assert_eq!(m.code(OcfAction::Start).await, OcfCode::Success);
    fail_next_call(&m);
    let r = act(OcfAction::Promote, &m.env, &m.exec).await;
    assert_eq!(r.code, OcfCode::ErrGeneric, "{r}");
    assert_eq!(m.mem.world().drbd["r0"].role, Role::Secondary);
}

#[tokio::test]
async fn monitor_sees_hand_made_damage_and_promote_repairs_it() {
    let n = node();
    assert_eq!(n.code(OcfAction::Start).await, OcfCode::Success);
    assert_eq!(n.code(OcfAction::Promote).await, OcfCode::Success);
    n.mem.tgtd_restarted();
    let r = act(OcfAction::Monitor, &n.env, &n.exec).await;
    assert_eq!(r.code, OcfCode::FailedPromoted, "{r}");
    assert!(r.message.contains("target"), "{r}");
    assert_eq!(n.code(OcfAction::Promote).await, OcfCode::Success);
    n.mem.address_removed(ADDR);
    assert_eq!(n.code(OcfAction::Monitor).await, OcfCode::FailedPromoted);
    assert_eq!(n.code(OcfAction::Promote).await, OcfCode::Success);
    assert_eq!(n.code(OcfAction::Monitor).await, OcfCode::RunningPromoted);
    // depth 10: a failed local disk under a Primary
    n.mem.set_disk("r0", Disk::Failed);
    assert_eq!(n.code(OcfAction::Monitor).await, OcfCode::RunningPromoted);
    let mut deep = n.env.clone();
    deep.check_level = 10;
    let r = act(OcfAction::Monitor, &deep, &n.exec).await;
    assert_eq!(r.code, OcfCode::FailedPromoted, "{r}");
}

#[tokio::test]
async fn unpromoted_serving_is_an_error_and_promote_is_refused_while_peer_primary() {
    let n = node();
    assert_eq!(n.code(OcfAction::Start).await, OcfCode::Success);
    n.mem.world().addresses.insert(ADDR.into(), true);
    let r = act(OcfAction::Monitor, &n.env, &n.exec).await;
    assert_eq!(r.code, OcfCode::ErrGeneric, "{r}");
    assert_eq!(n.code(OcfAction::Demote).await, OcfCode::Success);
    assert_eq!(n.code(OcfAction::Monitor).await, OcfCode::Success);
    n.mem.peer_primary("r0", true);
    let r = act(OcfAction::Promote, &n.env, &n.exec).await;
    assert_eq!(r.code, OcfCode::ErrGeneric);
    assert!(r.message.contains("peer is DRBD Primary"), "{r}");
    assert_eq!(n.mem.world().drbd["r0"].role, Role::Secondary);
}

/// Pacemaker fences a powered-off primary and promotes the survivor, whose DRBD has not yet
/// missed its peer's ping: the promote waits for DRBD instead of failing at once.
#[tokio::test]
async fn promote_waits_while_drbd_still_sees_the_lost_primary() {
    let n = node_with_timeout(14_000); // 4 s of waiting
    assert_eq!(n.code(OcfAction::Start).await, OcfCode::Success);
    n.mem.peer_primary("r0", true);
    let mem = n.mem.clone();
    let lost = tokio::spawn(async move {
        tokio::time::sleep(std::time::Duration::from_millis(600)).await;
        mem.peer_lost("r0");
    });
    let r = act(OcfAction::Promote, &n.env, &n.exec).await;
    lost.await.expect("peer lost");
    assert_eq!(r.code, OcfCode::Success, "{r}");
    assert_eq!(n.mem.world().drbd["r0"].role, Role::Primary);
    assert_eq!(n.code(OcfAction::Monitor).await, OcfCode::RunningPromoted);
}

/// A peer that stays Primary is refused when the wait is over, never overridden; a refusal
/// that cannot clear on its own (a failed disk) is answered without waiting.
#[tokio::test]
async fn promote_refusal_outlasting_the_wait_or_needing_an_operator_fails() {
    let n = node_with_timeout(14_000); // 4 s of waiting
    assert_eq!(n.code(OcfAction::Start).await, OcfCode::Success);
    n.mem.peer_primary("r0", true);
    let r = act(OcfAction::Promote, &n.env, &n.exec).await;
    assert_eq!(r.code, OcfCode::ErrGeneric);
    assert!(r.message.contains("peer is DRBD Primary"), "{r}");
    assert!(r.message.contains("still after"), "{r}");
    assert_eq!(n.mem.world().drbd["r0"].role, Role::Secondary);
    // 10 minutes of timeout: a wait here would hold the test for 400 s.
    let m = node_with_timeout(600_000);
    assert_eq!(m.code(OcfAction::Start).await, OcfCode::Success);
    m.mem.set_disk("r0", Disk::Failed);
    let r = tokio::time::timeout(
        std::time::Duration::from_secs(30),
        act(OcfAction::Promote, &m.env, &m.exec),
    )
    .await
    .expect("answered without waiting");
    assert_eq!(r.code, OcfCode::ErrGeneric);
    assert!(!r.message.contains("still after"), "{r}");
}

/// A failure that trying again will not change (another host answers for the address) is
/// the answer at once, not tried again until the timeout.
#[tokio::test]
async fn a_lasting_failure_is_not_tried_again() {
    let n = node_with_timeout(600_000);
    assert_eq!(n.code(OcfAction::Start).await, OcfCode::Success);
    n.mem.world().answered_elsewhere.insert(ADDR.into());
    let r = tokio::time::timeout(
        std::time::Duration::from_secs(30),
        act(OcfAction::Promote, &n.env, &n.exec),
    )
    .await
    .expect("answered without trying again");
    assert_eq!(r.code, OcfCode::ErrGeneric, "{r}");
    assert!(r.message.contains("another host answers"), "{r}");
    assert!(!r.message.contains("attempt"), "{r}");
    assert_eq!(n.mem.world().drbd["r0"].role, Role::Secondary);
}

/// A file of an earlier boot (an `HA_RSCTMP` that is not a tmpfs) is read as absent.
#[tokio::test]
async fn a_file_of_an_earlier_boot_is_absent() {
    let n = node();
    let file = r#"{"started":true,"boot_id":"another-boot","peer_seen":{"r0":true}}"#;
    std::fs::write(n.env.state_file(), file).expect("write");
    assert_eq!(n.code(OcfAction::Monitor).await, OcfCode::NotRunning);
}

/// A slow read fails an observation: a monitor (or a stop) reads again while its time lasts
/// instead of failing, which would get a healthy node recovered (or fenced).
#[tokio::test]
async fn a_failed_observation_is_read_again_within_the_timeout() {
    let n = node_with_timeout(30_000);
    assert_eq!(n.code(OcfAction::Start).await, OcfCode::Success);
    n.mem.world().fail_reads = 2;
    assert_eq!(n.code(OcfAction::Monitor).await, OcfCode::Success);
    assert_eq!(n.code(OcfAction::Stop).await, OcfCode::Success);
    let m = node();
    assert_eq!(m.code(OcfAction::Start).await, OcfCode::Success);
    m.mem.world().fail_reads = 1;
    let r = act(OcfAction::Monitor, &m.env, &m.exec).await;
    assert_eq!(r.code, OcfCode::ErrGeneric, "{r}");
    assert!(r.message.contains("observe"), "{r}");
}

#[test]
fn retry_budget_keeps_a_third_of_the_timeout_and_at_least_10_s() {
    use std::time::Duration;
    let s = Duration::from_secs;
    assert_eq!(super::run::retry_budget(None), s(10));
    assert_eq!(super::run::retry_budget(Some(s(90))), s(60));
    assert_eq!(super::run::retry_budget(Some(s(5))), s(0));
    let e = env_of(&[("OCF_RESKEY_CRM_meta_timeout", "90000")], None);
    assert_eq!(e.timeout, Some(s(90)));
    let e = env_of(&[("OCF_RESKEY_CRM_meta_timeout", "90s")], None);
    assert_eq!(e.timeout, None);
    assert!(e.notes[0].contains("not a number"), "{:?}", e.notes);
}

#[tokio::test]
async fn peer_seen_is_remembered_between_actions() {
    // Connected at start, then the peer is lost: the survivor promotes (its data was current
    // when the link broke), as the daemon does.
    let n = node();
    assert_eq!(n.code(OcfAction::Start).await, OcfCode::Success);
    n.mem.peer_lost("r0");
    assert_eq!(n.code(OcfAction::Promote).await, OcfCode::Success);
    // A node that never saw its peer since it started waits for it.
    let m = node();
    m.mem.peer_lost("r0");
    assert_eq!(m.code(OcfAction::Start).await, OcfCode::Success);
    let r = act(OcfAction::Promote, &m.env, &m.exec).await;
    assert_eq!(r.code, OcfCode::ErrGeneric);
    assert!(r.message.contains(crate::fsm::WAITING_FOR_PEER), "{r}");
}

/// A node that never saw its peer since attach waits for it; the operator's
/// `iscsi-ha ocf allow-degraded` (named by the refusal) lets the next promote force DRBD
/// Primary, once: the promote uses the leave up.
#[tokio::test]
async fn operator_leave_lets_one_promote_go_without_the_peer() {
    let n = node();
    n.mem.peer_lost("r0");
    assert_eq!(n.code(OcfAction::Start).await, OcfCode::Success);
    let r = act(OcfAction::Promote, &n.env, &n.exec).await;
    assert_eq!(r.code, OcfCode::ErrGeneric);
    assert!(r.message.contains(degraded::COMMAND), "{r}");
    assert!(!r.message.contains(crate::fsm::DEGRADED_HINT), "{r}");
    // Bad names and options are refused; the leave is per resource and can be revoked.
    let arg = |a: &[&str]| a.iter().map(|s| s.to_string()).collect::<Vec<_>>();
    let bad = degraded::main(&arg(&["r9"]), &n.env);
    assert_eq!(bad.code, OcfCode::ErrArgs, "{bad}");
    assert!(bad.message.contains("r0"), "{bad}");
    assert_eq!(
        degraded::main(&arg(&["--force"]), &n.env).code,
        OcfCode::ErrArgs
    );
    assert_eq!(degraded::main(&arg(&["r0"]), &n.env).code, OcfCode::Success);
    assert!(degraded::allowed(&n.env.state_dir, "r0"));
    assert_eq!(
        degraded::main(&arg(&["--revoke"]), &n.env).code,
        OcfCode::Success
    );
    assert!(!degraded::allowed(&n.env.state_dir, "r0"));
    assert_eq!(
        n.code(OcfAction::Promote).await,
        OcfCode::ErrGeneric,
        "revoked"
    );
    let given = degraded::main(&[], &n.env);
    assert_eq!(given.code, OcfCode::Success, "{given}");
    assert!(
        given.message.contains("r0") && given.message.contains("--revoke"),
        "{given}"
    );
    assert_eq!(n.code(OcfAction::Promote).await, OcfCode::Success);
    let log = n.mem.world().log.join(", ");
    assert!(log.contains("drbd-primary-force"), "{log}");
    assert!(!degraded::allowed(&n.env.state_dir, "r0"), "used up");
    // Used up: after a demote the node waits for its peer again.
    assert_eq!(n.code(OcfAction::Demote).await, OcfCode::Success);
    assert_eq!(n.code(OcfAction::Promote).await, OcfCode::ErrGeneric);
}

/// A leave given while a promote waits for the peer is taken by that promote.
#[tokio::test]
async fn a_waiting_promote_takes_a_leave_given_meanwhile() {
    let n = node_with_timeout(14_000); // 4 s of waiting
    n.mem.peer_lost("r0");
    assert_eq!(n.code(OcfAction::Start).await, OcfCode::Success);
    let env = n.env.clone();
    let give = async move {
        tokio::time::sleep(std::time::Duration::from_millis(600)).await;
        degraded::main(&[], &env)
    };
    let (r, given) = tokio::join!(act(OcfAction::Promote, &n.env, &n.exec), give);
    assert_eq!(given.code, OcfCode::Success, "{given}");
    assert_eq!(r.code, OcfCode::Success, "{r}");
    assert_eq!(n.mem.world().drbd["r0"].role, Role::Primary);
}

/// A leave older than its 10 min, or of another boot, is not one.
#[tokio::test]
async fn an_old_leave_is_none() {
    let n = node();
    n.mem.peer_lost("r0");
    assert_eq!(n.code(OcfAction::Start).await, OcfCode::Success);
    let now = crate::peer_link::remember::boottime_ms().expect("CLOCK_BOOTTIME");
    let boot = crate::peer_link::remember::boot_id().expect("boot id");
    let file = n.env.state_dir.join("iscsi-ha-allow-degraded.json");
    let old = now.saturating_sub(degraded::LEAVE_FOR.as_millis() as u64 + 1000);
    for (boot, at) in [
        (boot.as_str(), old),
        ("another-boot", now),
        (boot.as_str(), now + 60_000),
    ] {
        let text = format!(r#"{{"boot_id":"{boot}","given_ms":{{"r0":{at}}}}}"#);
        std::fs::write(&file, text).expect("write");
        assert!(!degraded::allowed(&n.env.state_dir, "r0"), "{boot} {at}");
        assert_eq!(n.code(OcfAction::Promote).await, OcfCode::ErrGeneric);
    }
    let text = format!(r#"{{"boot_id":"{boot}","given_ms":{{"r0":{now}}}}}"#);
    std::fs::write(&file, text).expect("write");
    assert_eq!(n.code(OcfAction::Promote).await, OcfCode::Success);
}

#[test]
fn config_errors_map_to_installed_and_configured() {
    let dir = tempfile::tempdir().expect("tempdir");
    let env = |file: &Path, res: Option<&str>| {
        let (file, res) = (file.display().to_string(), res.map(String::from));
        OcfEnv::from_vars(move |k| match k {
            "OCF_RESKEY_config" => Some(file.clone()),
            "OCF_RESKEY_resource" => res.clone(),
            _ => None,
        })
    };
    let missing = dir.path().join("missing.toml");
    let r = env(&missing, None).load_config().expect_err("missing");
    assert_eq!(r.code, OcfCode::ErrInstalled, "{r}");
    let bad = dir.path().join("bad.toml");
    std::fs::write(&bad, "node = \n").expect("write");
    assert_eq!(
        env(&bad, None).load_config().expect_err("bad").code,
        OcfCode::ErrConfigured
    );
    let good = dir.path().join("good.toml");
    let text = format!(
        "{TEST_MINIMAL}[[address]]\naddress = \"{ADDR}\"\ninterface = \"eth0\"\nresources = [\"r0\"]\n"
    );
    std::fs::write(&good, text).expect("write");
    let cfg = env(&good, Some("r0")).load_config().expect("r0");
    assert_eq!((cfg.resources.len(), cfg.addresses.len()), (1, 1));
    let r = env(&good, Some("r9")).load_config().expect_err("r9");
    assert_eq!(r.code, OcfCode::ErrConfigured, "{r}");
}

#[test]
fn clone_instances_share_one_mark_and_depth_is_read() {
    let e = OcfEnv::from_vars(|k| match k {
        "OCF_RESOURCE_INSTANCE" => Some("p/x:0".into()),
        "OCF_CHECK_LEVEL" => Some("10".into()),
        _ => None,
    });
    assert_eq!(e.instance, "p/x");
    assert_eq!(e.check_level, 10);
    assert!(e.state_file().ends_with("iscsi-ha-p_x.json"));
    assert!(e.state_file().starts_with(DEFAULT_STATE_DIR));
}

fn env_of(vars: &[(&str, &str)], cli: Option<&Path>) -> OcfEnv {
    let vars: Vec<(String, String)> = vars
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    OcfEnv::from_vars_with(
        move |k| vars.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone()),
        cli,
    )
}

#[tokio::test]
async fn stop_without_drbd_succeeds_only_when_nothing_is_served() {
    let cfg = config();
    let mem = Memory::healthy_secondary(&cfg);
    let r = stop_without_drbd(&cfg, &mem, &mem, "no DRBD").await;
    assert_eq!(r.code, OcfCode::Success, "{r}");
    mem.world().addresses.insert(ADDR.into(), true);
    let r = stop_without_drbd(&cfg, &mem, &mem, "no DRBD").await;
    assert_eq!(r.code, OcfCode::ErrGeneric, "{r}");
    assert!(r.message.contains("address"), "{r}");
    mem.world().addresses.insert(ADDR.into(), false);
    mem.world().targets.get_mut("r0").expect("r0").state = TargetState::Serving;
    let r = stop_without_drbd(&cfg, &mem, &mem, "no DRBD").await;
    assert_eq!(r.code, OcfCode::ErrGeneric, "{r}");
    assert!(r.message.contains("target"), "{r}");
}

/// The real backends on a host without the DRBD module (this test host unless DRBD is
/// loaded), tgtd's socket absent: stop succeeds and drops the mark; monitor still says 5.
#[test]
fn stop_succeeds_without_drbd_module_and_tgtd() {
    if Path::new("/sys/module/drbd").exists() {
        eprintln!("skipped: the DRBD module is loaded on this host");
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("c.toml");
    let sock = dir.path().join("no-tgtd.sock");
    let text = format!("{TEST_MINIMAL}[sockets]\ntgtd = \"{}\"\n", sock.display());
    std::fs::write(&file, text).expect("write");
    let (f, d) = (file.display().to_string(), dir.path().display().to_string());
    let env = env_of(&[("OCF_RESKEY_config", &f), ("HA_RSCTMP", &d)], None);
    std::fs::write(env.state_file(), "{}").expect("mark");
    let r = real(OcfAction::Stop, &env);
    assert_eq!(r.code, OcfCode::Success, "{r}");
    assert!(!env.state_file().exists());
    assert_eq!(real(OcfAction::Monitor, &env).code, OcfCode::ErrInstalled);
}

#[test]
fn notify_never_fails() {
    let dir = tempfile::tempdir().expect("tempdir");
    let missing = dir.path().join("missing.toml").display().to_string();
    for vars in [
        vec![("OCF_RESKEY_config", missing.as_str())],
        vec![
            ("OCF_RESKEY_config", missing.as_str()),
            ("OCF_RESKEY_CRM_meta_notify_type", "pre"),
            ("OCF_RESKEY_CRM_meta_notify_operation", "promote"),
        ],
    ] {
        let r = real(OcfAction::Notify, &env_of(&vars, None));
        assert_eq!(r.code, OcfCode::Success, "{r}");
        assert!(r.message.contains("configuration not read"), "{r}");
    }
}

#[test]
fn config_from_env_then_dash_c_then_default_and_bad_values_are_noted() {
    let cli = Path::new("/etc/x.toml");
    let e = env_of(&[], Some(cli));
    assert_eq!((e.config.as_path(), e.notes.len()), (cli, 0));
    let e = env_of(&[("OCF_RESKEY_config", "/e.toml")], Some(cli));
    assert_eq!(e.config, Path::new("/e.toml"));
    assert!(
        e.notes[0].contains("-c /etc/x.toml ignored"),
        "{:?}",
        e.notes
    );
    let e = env_of(&[("OCF_RESKEY_config", "")], None);
    assert_eq!(e.config, Path::new(crate::config::DEFAULT_CONFIG));
    assert!(e.notes[0].contains("empty"), "{:?}", e.notes);
    let e = env_of(&[("OCF_RESKEY_config", " ")], Some(cli));
    assert_eq!(e.config, cli);
    let e = env_of(&[("OCF_CHECK_LEVEL", "abc")], None);
    assert_eq!(e.check_level, 0);
    assert!(
        e.notes[0].contains("\"abc\" is not a number"),
        "{:?}",
        e.notes
    );
}
