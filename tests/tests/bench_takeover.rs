//! A small run of `lab bench-takeover`: two planned switchovers and one power loss each by the
//! agent and by the classic tools, one agent restart, the idle probe, one power loss with the
//! agents in manage mode (the victim rejoining through its agent) and the scaling phase with 1
//! and 2 resources. Checks only that the report is produced and sane (every sample has its
//! figures, nothing lost); never how fast anything was: the figures come from the CLI
//! (`cargo run -p tests --bin lab -- bench-takeover`).
//!
//! Build first: `cargo build --workspace --bins --examples`.

mod common;

use anyhow::ensure;
use lab::bench_takeover::{bench_on, BenchOpts, Case, Tool};
use std::time::Duration;

#[test]
fn bench_takeover_small_run_reports_every_figure() {
    common::agent_scenario("bench_takeover", |lab| {
        let opts = BenchOpts {
            switchovers: 2,
            power_losses: 1,
            manage_power_losses: 1,
            restarts: 1,
            scaling: vec![1, 2],
            scaling_runs: 1,
            scaling_tgtd_threads: Some(4),
            idle: Duration::from_secs(2),
            report: "bench-takeover-test".into(),
            ..BenchOpts::default()
        };
        let rep = bench_on(lab, &opts)?;
        ensure!(rep.error.is_none(), "bench stopped: {:?}", rep.error);
        ensure!(
            rep.ledger[0] > 0,
            "no acknowledged writes: {:?}",
            rep.ledger
        );
        ensure!(
            rep.ledger[1] == 0 && rep.ledger[2] == 0,
            "lost / torn writes: {:?}",
            rep.ledger
        );
        ensure!(
            rep.ledger_managed
                .is_some_and(|l| l[0] > 0 && l[1] == 0 && l[2] == 0),
            "manage-mode ledger: {:?}",
            rep.ledger_managed
        );
        // The victim's agent replays the crashed Primary's activity log at its rejoin.
        ensure!(
            rep.managed_rejoins_replayed == [1, 1],
            "rejoins that replayed the activity log: {:?}",
            rep.managed_rejoins_replayed
        );
        for (case, n, tools) in [
            (Case::Switchover, 2, &[Tool::Agent, Tool::Classic][..]),
            (Case::PowerLoss, 1, &[Tool::Agent, Tool::Classic]),
            (Case::PowerLossManaged, 1, &[Tool::Agent]),
        ] {
            for &tool in tools {
                let got: Vec<_> = rep
                    .samples
                    .iter()
                    .filter(|s| s.case == case && s.tool == tool)
                    .collect();
                ensure!(got.len() == n, "{case:?} {tool:?}: {} samples", got.len());
                for s in got {
                    ensure!(
                        s.signal_to_serving_ms.is_finite()
                            && s.signal_to_serving_ms > 0.0
                            && !s.promote_stages_ms.is_empty(),
                        "{s:?}"
                    );
                    ensure!(
                        s.client_pause_ms.is_some_and(|p| p > 0.0)
                            && s.start_to_first_ack_ms.is_some(),
                        "no client pause found around the takeover: {s:?}"
                    );
                }
            }
        }
        for r in &rep.summary {
            ensure!(
                r.stat.n > 0 && r.stat.median_ms <= r.stat.p95_ms,
                "summary row {r:?}"
            );
        }
        ensure!(
            rep.ratios.len() >= 4,
            "agent/classic ratios: {:?}",
            rep.ratios
        );
        // One with the guest idle, one under the client's writes; each timed by the agent.
        ensure!(
            rep.restarts.len() == 2
                && rep.restarts.iter().filter(|r| r.client_writing).count() == 1
                && rep
                    .restarts
                    .iter()
                    .all(|r| r.agent_exec_to_status_ms.is_some()
                        && r.agent_exec_to_serving_ms.is_some())
                && rep.idle.len() == 2,
            "restarts {:?}, idle {:?}",
            rep.restarts,
            rep.idle
        );
        ensure!(
            rep.idle.iter().all(|i| i.rss_kib > 0 && i.threads > 0),
            "idle {:?}",
            rep.idle
        );
        ensure!(
            rep.scaling.len() == 4
                && rep
                    .scaling
                    .iter()
                    .all(|s| s.promote.n == 1 && s.classic_promote.n == 1),
            "scaling {:?}",
            rep.scaling
        );
        ensure!(
            rep.scaling[2..].iter().all(|s| s.tgtd_threads == Some(4))
                && rep.scaling_ratio.is_some()
                && rep.scaling_ratio_tgtd_threads.is_some_and(|(t, _)| t == 4),
            "scaling with tgtd -t 4: {:?} {:?}",
            rep.scaling,
            rep.scaling_ratio_tgtd_threads
        );
        let dir = lab::assets::report_dir();
        for ext in ["json", "md", "svg"] {
            let p = dir.join(format!("bench-takeover-test.{ext}"));
            let len = std::fs::metadata(&p).map(|m| m.len()).unwrap_or(0);
            ensure!(len > 0, "{} missing or empty", p.display());
        }
        Ok(())
    });
}
