//! The OCF agent under real Pacemaker tooling in the lab: `ocf-tester` against real DRBD 8.4,
//! tgtd and the floating address in a guest; a two-node Pacemaker 2.1 + corosync 3 cluster
//! running the agent as a promotable clone (see `lab::pacemaker`).

use std::sync::{Mutex, MutexGuard, OnceLock};
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use lab::agent_lab::{self as al, Source};
use lab::bringup::{self, Resource};
use lab::ledger::{LedgerProc, Mode, Opts};
use lab::pacemaker::{self as pm, ROOT};
use lab::Lab;

static SERIAL: Mutex<()> = Mutex::new(());

fn lab() -> Option<(MutexGuard<'static, ()>, &'static Lab)> {
    if !lab::require_lab() {
        return None;
    }
    if let Some(m) = pm::missing() {
        test_support::prereq::skip(format!("Pacemaker lab: missing {m}"));
        return None;
    }
    for bin in ["iscsi-ha", "iscsi-read"] {
        assert!(
            lab::host_bin(bin).exists(),
            "{bin} is not built: run `cargo build --workspace --bins --examples` first"
        );
    }
    let g = SERIAL.lock().unwrap_or_else(|p| p.into_inner());
    static LAB: OnceLock<Result<Lab, String>> = OnceLock::new();
    let l = LAB
        .get_or_init(|| Lab::start_with(pm::lab_config()).map_err(|e| format!("{e:#}")))
        .as_ref()
        .unwrap_or_else(|e| panic!("Pacemaker lab failed to start: {e}"));
    Some((g, l))
}

fn install_agent_config(node: &lab::Node, r: &Resource) -> Result<()> {
    let text = al::config_toml(node, r, Source::Command);
    node.put_file(&format!("{ROOT}{}", pm::AGENT_CONFIG), text.as_bytes())
}

fn scenario(name: &str, body: impl FnOnce(&'static Lab) -> Result<()>) {
    let Some((_g, lab)) = lab() else {
        return;
    };
    if let Err(e) = body(lab) {
        eprintln!("{}", pm::logs(lab, 60));
        eprintln!("{}", lab.logs_tail(20));
        panic!("{name}: {e:#}");
    }
}

#[test]
fn ocf_tester_passes_on_real_drbd_tgtd_and_address() {
    scenario("ocf-tester", |lab| {
        pm::reset(lab)?;
        let (a, b) = (lab.node(0)?, lab.node(1)?);
        let r = Resource::default();
        al::drbd_pair_secondary_with_marker(a, b, &r, "ocf-tester")?;
        al::start_tgtd(a)?;
        pm::prepare_root(a)?;
        install_agent_config(a, &r)?;
        let o = pm::run_in_timeout(
            a,
            &format!(
                "OCF_ROOT=/usr/lib/ocf ocf-tester -v -n {} -o config={} {} 2>&1",
                pm::RSC,
                pm::AGENT_CONFIG,
                pm::OCF_AGENT
            ),
            Duration::from_secs(600),
        )?;
        println!("{}", o.stdout);
        anyhow::ensure!(
            o.rc == 0 && o.stdout.contains("passed all tests"),
            "ocf-tester rc={}:\n{}\n{}",
            o.rc,
            o.stdout,
            o.stderr
        );
        // Left stopped: DRBD Secondary, nothing served.
        let line = bringup::proc_drbd_line(a, &r)?;
        anyhow::ensure!(line.contains("ro:Secondary/Secondary"), "{line}");
        Ok(())
    });
}

/// A node that has not been Connected to its peer since attach (the peer's DRBD gone, this
/// node's taken down and up again, as after a whole-site power loss where only it came back):
/// the agent's promote is refused naming `iscsi-ha ocf allow-degraded`; once the operator ran
/// it, one promote forces DRBD Primary on real DRBD 8.4 and serves the marker; the next one
/// waits for the peer again (docs/ocf.md, "Promoting without the peer").
#[test]
fn a_lone_node_promotes_only_with_the_operators_leave() {
    scenario("allow-degraded", |lab| {
        pm::reset(lab)?;
        let (a, b) = (lab.node(0)?, lab.node(1)?);
        let r = Resource::default();
        let marker = "allow-degraded";
        al::drbd_pair_secondary_with_marker(a, b, &r, marker)?;
        al::start_tgtd(a)?;
        pm::prepare_root(a)?;
        install_agent_config(a, &r)?;
        b.run_ok(&format!("drbdsetup-84 down {}", r.name))?;
        a.run_ok(&format!("drbdsetup-84 down {}", r.name))?;
        bringup::drbd84_attach(a, &r, false)?;
        bringup::drbd84_connect(a, b, &r)?;
        // 15 s: 5 s of it waiting for the peer (the retry budget keeps 10 s).
        let ocf = |action: &str| -> Result<lab::Output> {
            let o = pm::run_in(
                a,
                &format!(
                    "OCF_ROOT=/usr/lib/ocf OCF_RESOURCE_INSTANCE={} OCF_RESKEY_config={} \
                     OCF_RESKEY_CRM_meta_timeout=15000 {} {action}",
                    pm::RSC,
                    pm::AGENT_CONFIG,
                    pm::OCF_AGENT
                ),
            )?;
            println!("ocf {action}: rc={} {}", o.rc, o.stderr.trim());
            Ok(o)
        };
        let expect = |action: &str, rc: i32| -> Result<lab::Output> {
            let o = ocf(action)?;
            anyhow::ensure!(
                o.rc == rc,
                "{action}: rc {} (want {rc}): {}",
                o.rc,
                o.stderr
            );
            Ok(o)
        };
        expect("start", 0)?;
        let o = expect("promote", 1)?;
        anyhow::ensure!(
            o.stderr.contains("waiting for the peer") && o.stderr.contains("ocf allow-degraded"),
            "{}",
            o.stderr
        );
        let leave = format!(
            "/lab/target/iscsi-ha -c {} ocf allow-degraded",
            pm::AGENT_CONFIG
        );
        let o = pm::run_in_ok(a, &leave)?;
        println!("{}", o.stdout.trim());
        expect("promote", 0)?;
        let line = bringup::proc_drbd_line(a, &r)?;
        anyhow::ensure!(line.contains("ro:Primary/Unknown"), "{line}");
        expect("monitor", 8)?;
        al::client_read_until(lab, marker, T)?;
        expect("demote", 0)?;
        expect("promote", 1)?; // the leave was used up
        expect("stop", 0)?;
        Ok(())
    });
}

/// `crm_resource` / `crm_standby` on `obs`, then the promoted instance on `to` and the client
/// reading `marker` through the address; returns the time from the command to the client's read.
fn switch(lab: &Lab, obs: &lab::Node, cmd: &str, to: &str, marker: &str) -> Result<Duration> {
    let t = Instant::now();
    pm::run_in_ok(obs, cmd)?;
    pm::wait_promoted(obs, to, T)?;
    al::client_read_until(lab, marker, T)?;
    let took = t.elapsed();
    println!(
        "{cmd}: promoted on {to}, client read after {:.2} s",
        took.as_secs_f64()
    );
    Ok(took)
}

const T: Duration = Duration::from_secs(240);

/// One cluster bring-up for the whole scenario (it is the slow part): planned moves (move, ban,
/// standby), Pacemaker's own monitor repairing a target deleted and an address removed by hand
/// on the promoted node, then a power loss of the promoted node ([`power_loss`]).
#[test]
fn cluster_moves_recovers_and_survives_power_loss() {
    scenario("cluster", |lab| {
        pm::reset(lab)?;
        let fencer = pm::Fencer::start(lab);
        let r = Resource::default();
        let marker = "pacemaker-cluster";
        let p = pm::cluster_up(lab, &r, marker)?;
        let q = pm::other(lab, &p)?.name().to_string();
        let obs = lab.node(0)?;
        let rsc = pm::CLONE;
        switch(
            lab,
            obs,
            &format!("crm_resource --move --promoted -r {rsc} -N {q}"),
            &q,
            marker,
        )?;
        pm::run_in_ok(obs, &format!("crm_resource --clear -r {rsc}"))?;
        switch(
            lab,
            obs,
            &format!("crm_resource --ban --promoted -r {rsc} -N {q}"),
            &p,
            marker,
        )?;
        pm::run_in_ok(obs, &format!("crm_resource --clear -r {rsc}"))?;
        switch(lab, obs, &format!("crm_standby -N {p} -v on"), &q, marker)?;
        switch(lab, obs, &format!("crm_standby -N {p} -v off"), &q, marker)?;
        pm::wait_mon(obs, "both instances running", T, |o| {
            o.contains(&format!("Unpromoted: [ {p} ]"))
        })?;
        // Damage by hand on the promoted node: Pacemaker's monitor sees OCF_FAILED_PROMOTED.
        pm::run_in_ok(obs, "crm_resource --wait -T 120s")?;
        for (what, script) in [
            (
                "target deleted",
                "tgtadm --lld iscsi --op delete --force --mode target --tid 1",
            ),
            ("address removed", "ip addr del 10.99.0.50/24 dev eth0"),
        ] {
            // Pacemaker's recovery may leave the promoted instance on either node.
            let q = pm::promoted_on(obs)?.context("no promoted instance")?;
            let qn = pm::by_name(lab, &q)?;
            let t = Instant::now();
            qn.run_ok(script)?;
            pm::wait_until(&format!("{what}: failure recorded"), T, || {
                pm::failed_on(obs, &q)
            })?;
            pm::wait_mon(obs, "a promoted instance again", T, |o| {
                o.contains("Promoted: [ ")
            })?;
            al::client_read_until(lab, marker, T)?;
            println!(
                "{what} on {q}: monitor failure, recovery (promoted on {:?}), client read after {:.2} s",
                pm::promoted_on(obs)?,
                t.elapsed().as_secs_f64()
            );
            pm::cleanup(obs)?;
        }
        let now = pm::promoted_on(obs)?.context("no promoted instance")?;
        power_loss(lab, &fencer, &now)
    });
}

/// Power loss (SIGKILL of the promoted node's QEMU) while the client's ledger writes: corosync
/// loses the node, Pacemaker fences it through the harness agent, promotes the survivor, and
/// every acknowledged write reads back. Figures in `target/lab-report/pacemaker-power-loss.json`.
fn power_loss(lab: &Lab, fencer: &pm::Fencer, p: &str) -> Result<()> {
    let (victim, survivor) = (pm::by_name(lab, p)?, pm::other(lab, p)?);
    let opts = Opts {
        mode: Mode::Plain,
        ..Opts::default()
    };
    let mut led = LedgerProc::start(lab, &opts, 200)?;
    let before = led.wait_acked(300, T)?;
    let t0 = Instant::now();
    victim.kill()?;
    pm::wait_until("fence request", T, || {
        Ok(fencer.log.lock().map(|l| !l.is_empty()).unwrap_or(false))
    })?;
    let fenced = fencer
        .log
        .lock()
        .ok()
        .and_then(|l| l.first().map(|(v, at)| (v.clone(), at.duration_since(t0))))
        .context("fence log")?;
    let seen = pm::wait_promoted(survivor, survivor.name(), T);
    let promoted = t0.elapsed();
    // What the survivor's agent said (a retried or waiting promote shows here).
    println!(
        "{} after the power loss:\n{}",
        survivor.name(),
        pm::agent_lines(survivor, 60).unwrap_or_else(|e| format!("{e:#}"))
    );
    seen?;
    led.wait_acked(before.acked + 300, T)?;
    let rep = led.stop(T)?;
    let v = rep
        .verify
        .clone()
        .ok_or_else(|| anyhow::anyhow!("no verify pass: {:?}", rep.fatal))?;
    let fig = serde_json::json!({
        "victim": fenced.0,
        "sigkill_to_fence_request_s": fenced.1.as_secs_f64(),
        "sigkill_to_promoted_seen_s": promoted.as_secs_f64(),
        "client_longest_pause_ms": rep.gaps.max_ms,
        "acked": rep.acked,
        "acked_before_power_loss": before.acked,
        "lost": v.lost,
        "torn": v.torn,
        "pauses": rep.pauses,
    });
    println!("{}", serde_json::to_string_pretty(&fig)?);
    let dir = lab::assets::report_dir();
    std::fs::create_dir_all(&dir)?;
    std::fs::write(
        dir.join("pacemaker-power-loss.json"),
        serde_json::to_string_pretty(&fig)?,
    )?;
    anyhow::ensure!(fenced.0 == p, "fenced {} instead of {p}", fenced.0);
    anyhow::ensure!(v.clean() && v.lost == 0, "ledger verify: {v:?}");
    Ok(())
}
