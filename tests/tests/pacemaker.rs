//! The OCF agent under real Pacemaker tooling in the lab: `ocf-tester` against real DRBD 8.4,
//! tgtd and the floating address in a guest; a two-node Pacemaker 2.1 + corosync 3 cluster
//! running the agent as a promotable clone (see `lab::pacemaker`).

use std::sync::{Mutex, MutexGuard, OnceLock};
use std::time::Duration;

use anyhow::Result;
use lab::agent_lab::{self as al, Source};
use lab::bringup::{self, Resource};
use lab::pacemaker::{self as pm, ROOT};
use lab::Lab;

static SERIAL: Mutex<()> = Mutex::new(());

fn lab() -> Option<(MutexGuard<'static, ()>, &'static Lab)> {
    if !lab::require_lab() {
        return None;
    }
    if let Some(m) = pm::missing() {
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "Pacemaker lab: missing {m}"
        );
        eprintln!("SKIP: Pacemaker lab: missing {m}");
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

#[test]
fn cluster_moves_promoted_instance_and_recovers_damage() {
    scenario("cluster", |lab| {
        pm::reset(lab)?;
        let _fencer = pm::Fencer::start(lab);
        let r = Resource::default();
        let marker = "pacemaker-cluster";
        let first = pm::cluster_up(lab, &r, marker)?;
        println!("promoted on {first}");
        Ok(())
    });
}
