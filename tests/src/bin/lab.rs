//! `lab`: the lab from a command line.
//!
//! ```text
//! lab up [--nodes N] [--drbd 8.4|9]  boot a lab and leave it running (state in target/lab-run/);
//!                           DRBD from --drbd, else LAB_DRBD, else 8.4
//! lab status [NAME]         addresses, pids, DRBD state of running labs
//! lab run NAME NODE SCRIPT  run a shell script in a guest (node a, b, …) and print its output
//! lab kill NAME NODE       SIGKILL the node's QEMU (power loss)
//! lab boot NAME NODE       power the node on again (same disk)
//! lab down [NAME|--all]     stop a lab (all labs with --all)
//! lab drill [--runs N] [--drbd 8.4|9]  up, replicated disk over iSCSI via a floating IP, SIGKILL
//!                           of the primary, iscsi-ha agents take over (pool.conf), read again,
//!                           report timings, down; DRBD from --drbd, else LAB_DRBD, else 8.4
//! lab switchovers [--count N]  N planned switchovers by pool.conf with both agents and iscsi-perf
//!                           running on the client; per-stage median / p95 (default N = 10)
//! lab soak [--cycles N] [--seed S] [--mode plain|fua|sync:N] [--drbd-mode adopt|manage]
//!          [--report STEM]  N mixed failure cycles (default 20) with the write ledger running;
//!                           0 lost writes, one Primary, no address without a target, per cycle;
//!                           DRBD brought up by the harness (adopt) or by the agents (manage);
//!                           target/lab-report/STEM.{json,md} (default soak)
//! lab bench-takeover [--runs N] [--power-runs N] [--manage-power-runs N] [--restarts N]
//!                   [--scaling 1,8,32|none] [--scaling-runs N] [--idle-s S] [--client-timeout S]
//!                   [--settle-ms MS] [--scaling-tgtd-threads N] [--report STEM]
//!                           agent vs classic tools, planned switchover and power loss (N = 30
//!                           each by default), agent restart, idle RSS and wake-ups, the agents'
//!                           power loss in manage mode (default: as many as --power-runs, 0
//!                           skips), 1/8/32 resources (again with `tgtd -t N` when
//!                           --scaling-tgtd-threads is given); target/lab-report/bench-takeover.{json,md,svg}
//! lab pacemaker [--runs N]  per OCF action, the iscsi-ha agent vs the classic resource agents
//!                           (linbit drbd + iSCSITarget + iSCSILogicalUnit + IPaddr2) in one guest
//!                           with Pacemaker running; target/lab-report/pacemaker-ra-bench.json
//! lab write-cache [--seconds N]  writes/s write-through vs write-back (plain, FUA, sync:16) and a
//!                           power loss in each mode (lost writes); default N = 15
//! ```

use anyhow::{anyhow, bail, Context, Result};
use clap::{Parser, Subcommand};
use lab::drbd9::DrbdVersion;
use lab::{Lab, LabConfig, LabState};

/// The lab from a command line (see the module documentation for each command).
#[derive(Parser)]
#[command(name = "lab")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Boot a lab and leave it running (state in target/lab-run/).
    Up {
        /// Number of nodes, 1..8.
        #[arg(long, value_name = "N", value_parser = range::<1, 8>)]
        nodes: Option<usize>,
        /// DRBD version (8.4 or 9); else LAB_DRBD, else 8.4.
        #[arg(long, value_name = "8.4|9", value_parser = drbd_version)]
        drbd: Option<DrbdVersion>,
    },
    /// Addresses, pids, DRBD state of running labs.
    Status {
        /// Lab name (default: every running lab).
        name: Option<String>,
    },
    /// Run a shell script in a guest (node a, b, ...) and print its output.
    Run {
        /// Lab name.
        name: String,
        /// Node name (a, b, ...).
        node: String,
        /// Shell script.
        script: String,
    },
    /// SIGKILL the node's QEMU (power loss).
    Kill {
        /// Lab name.
        name: String,
        /// Node name.
        node: String,
    },
    /// Power the node on again (same disk).
    Boot {
        /// Lab name.
        name: String,
        /// Node name.
        node: String,
    },
    /// Stop a lab (all labs with --all).
    Down {
        /// Lab name (default: the one running lab).
        name: Option<String>,
        /// Every running lab.
        #[arg(long, conflicts_with = "name")]
        all: bool,
    },
    /// Up, SIGKILL of the primary, the agents take over, read again, report timings, down.
    Drill {
        /// Rounds, 1..100.
        #[arg(long, value_name = "N", default_value = "1", value_parser = range::<1, 100>)]
        runs: usize,
        /// DRBD version (8.4 or 9); else LAB_DRBD, else 8.4.
        #[arg(long, value_name = "8.4|9", value_parser = drbd_version)]
        drbd: Option<DrbdVersion>,
    },
    /// N planned switchovers with both agents and iscsi-perf running; median / p95 per stage.
    Switchovers {
        /// Switchovers, 1..1000.
        #[arg(long, value_name = "N", default_value = "10", value_parser = range::<1, 1000>)]
        count: usize,
    },
    /// Mixed failure cycles with the write ledger running.
    Soak {
        /// Cycles, 1..1000 (default 20).
        #[arg(long, value_name = "N", value_parser = range::<1, 1000>)]
        cycles: Option<usize>,
        /// Seed of the cycle order.
        #[arg(long, value_name = "S")]
        seed: Option<u64>,
        /// Write mode: plain, fua or sync:N.
        #[arg(long, value_name = "M")]
        mode: Option<String>,
        /// Who brings DRBD up: adopt (the harness, default) or manage (the agents).
        #[arg(long, value_name = "MODE")]
        drbd_mode: Option<String>,
        /// Report file stem under target/lab-report/ (default soak).
        #[arg(long, value_name = "STEM", value_parser = report_stem)]
        report: Option<String>,
    },
    /// Writes/s write-through vs write-back and a power loss in each mode.
    WriteCache {
        /// Seconds per mode, 1..600.
        #[arg(long, value_name = "N", default_value = "15", value_parser = range::<1, 600>)]
        seconds: usize,
    },
    /// Agent vs classic tools: switchover, power loss, restart, idle cost, scaling.
    BenchTakeover(TakeoverArgs),
    /// Per OCF action, the iscsi-ha agent vs the classic resource agents under Pacemaker.
    Pacemaker {
        /// Rounds (default 20).
        #[arg(long, value_name = "N")]
        runs: Option<usize>,
    },
}

#[derive(clap::Args)]
struct TakeoverArgs {
    /// Switchovers and power losses each, 1..1000.
    #[arg(long, value_name = "N", value_parser = range::<1, 1000>)]
    runs: Option<usize>,
    /// Power losses, 1..1000.
    #[arg(long, value_name = "N", value_parser = range::<1, 1000>)]
    power_runs: Option<usize>,
    /// Power losses with the agents in manage mode, 0..1000 (0 skips them; default: the power
    /// losses' count).
    #[arg(long, value_name = "N", value_parser = range::<0, 1000>)]
    manage_power_runs: Option<usize>,
    /// Agent restarts, 1..1000.
    #[arg(long, value_name = "N", value_parser = range::<1, 1000>)]
    restarts: Option<usize>,
    /// Resource counts 1..32 like 1,8,32, or none.
    #[arg(long, value_name = "1,8,32|none", value_parser = scaling)]
    scaling: Option<Scaling>,
    /// Runs per scaling step, 1..1000.
    #[arg(long, value_name = "N", value_parser = range::<1, 1000>)]
    scaling_runs: Option<usize>,
    /// Idle measurement, seconds 1..600.
    #[arg(long, value_name = "S", value_parser = range::<1, 600>)]
    idle_s: Option<usize>,
    /// Client timeout, seconds 1..60.
    #[arg(long, value_name = "S", value_parser = range::<1, 60>)]
    client_timeout: Option<usize>,
    /// The agents' authority settle time, 0..60000 ms.
    #[arg(long, value_name = "MS", value_parser = range::<0, 60_000>)]
    settle_ms: Option<usize>,
    /// The scaling phase again with tgtd started with N I/O threads per LU (`tgtd -t N`), 1..64.
    #[arg(long, value_name = "N", value_parser = range::<1, 64>)]
    scaling_tgtd_threads: Option<usize>,
    /// Report file stem (letters, digits, -).
    #[arg(long, value_name = "STEM", value_parser = report_stem)]
    report: Option<String>,
}

/// `--scaling`'s counts (empty for `none`).
#[derive(Clone)]
struct Scaling(Vec<usize>);

/// A whole number in `LO..HI`.
fn range<const LO: usize, const HI: usize>(v: &str) -> Result<usize, String> {
    v.parse()
        .ok()
        .filter(|n| (LO..=HI).contains(n))
        .ok_or_else(|| format!("takes {LO}..{HI}"))
}

fn drbd_version(v: &str) -> Result<DrbdVersion, String> {
    v.parse().map_err(|_| "takes 8.4 or 9".to_string())
}

fn scaling(v: &str) -> Result<Scaling, String> {
    if v == "none" {
        return Ok(Scaling(Vec::new()));
    }
    v.split(',')
        .map(|k| k.parse().ok().filter(|k| (1..=32).contains(k)))
        .collect::<Option<Vec<usize>>>()
        .map(Scaling)
        .ok_or_else(|| "takes counts 1..32 like 1,8,32, or none".to_string())
}

fn report_stem(v: &str) -> Result<String, String> {
    if !v.is_empty() && v.chars().all(|c| c.is_ascii_alphanumeric() || c == '-') {
        Ok(v.to_string())
    } else {
        Err("takes a file stem (letters, digits, -)".to_string())
    }
}

fn main() {
    if let Err(e) = lab::guard::install_signal_cleanup() {
        eprintln!("lab: cannot install signal handler: {e}");
    }
    let r = match Cli::parse().command {
        Command::Up { nodes, drbd } => up(nodes, drbd),
        Command::Status { name } => status(name.as_deref()),
        Command::Run { name, node, script } => run(&name, &node, &script),
        Command::Kill { name, node } => power(&name, &node, false),
        Command::Boot { name, node } => power(&name, &node, true),
        Command::Down { name, all } => down(name.as_deref(), all),
        Command::Drill { runs, drbd } => drbd
            .map_or_else(DrbdVersion::from_env, Ok)
            .and_then(|drbd| lab::drill::drill(runs, drbd).map(|_| ())),
        Command::Switchovers { count } => lab::drill::switchovers(count).map(|_| ()),
        Command::Soak {
            cycles,
            seed,
            mode,
            drbd_mode,
            report,
        } => soak(cycles, seed, mode, drbd_mode, report),
        Command::WriteCache { seconds } => {
            lab::write_cache::write_cache(seconds as u64).map(|_| ())
        }
        Command::BenchTakeover(a) => bench_takeover(a),
        Command::Pacemaker { runs } => prereqs().and_then(|()| {
            let args: Vec<String> = runs
                .map(|n| vec!["--runs".to_string(), n.to_string()])
                .unwrap_or_default();
            lab::pacemaker_bench::run(&args)
        }),
    };
    if let Err(e) = r {
        eprintln!("lab: error: {e:#}");
        lab::guard::cleanup_registered();
        std::process::exit(1);
    }
}

fn soak(
    cycles: Option<usize>,
    seed: Option<u64>,
    mode: Option<String>,
    drbd_mode: Option<String>,
    report: Option<String>,
) -> Result<()> {
    let mut o = lab::soak::SoakOpts::default();
    if let Some(n) = cycles {
        o.cycles = n;
    }
    if let Some(s) = seed {
        o.seed = s;
    }
    if let Some(m) = mode {
        o.mode = m.parse().map_err(|e: String| anyhow!(e))?;
    }
    if let Some(m) = drbd_mode {
        o.drbd_mode = m.parse().map_err(|e: String| anyhow!(e))?;
    }
    if let Some(r) = report {
        o.report = r;
    }
    lab::soak::soak(&o).map(|_| ())
}

fn bench_takeover(a: TakeoverArgs) -> Result<()> {
    let mut o = lab::bench_takeover::BenchOpts::default();
    if let Some(n) = a.runs {
        o.switchovers = n;
        o.power_losses = n;
    }
    if let Some(n) = a.power_runs {
        o.power_losses = n;
    }
    o.manage_power_losses = a.manage_power_runs.unwrap_or(o.power_losses);
    if let Some(n) = a.restarts {
        o.restarts = n;
    }
    if let Some(n) = a.scaling_runs {
        o.scaling_runs = n;
    }
    if let Some(n) = a.client_timeout {
        o.client_timeout_s = n as u32;
    }
    if let Some(ms) = a.settle_ms {
        o.settle_ms = Some(ms as _);
    }
    if let Some(stem) = a.report {
        o.report = stem;
    }
    if let Some(n) = a.idle_s {
        o.idle = std::time::Duration::from_secs(n as u64);
    }
    o.scaling_tgtd_threads = a.scaling_tgtd_threads.map(|n| n as u32);
    if let Some(Scaling(v)) = a.scaling {
        o.scaling = v;
    }
    lab::bench_takeover::bench(&o).map(|_| ())
}

fn prereqs() -> Result<()> {
    if let Some(m) = lab::missing_prereqs() {
        bail!("prerequisites missing: {m}");
    }
    Ok(())
}

fn up(nodes: Option<usize>, drbd: Option<DrbdVersion>) -> Result<()> {
    prereqs()?;
    let mut cfg = LabConfig {
        detached: true,
        ..LabConfig::default()
    };
    if let Some(n) = nodes {
        cfg.nodes = n;
    }
    if drbd.is_some() {
        cfg.drbd = drbd;
    }
    let lab = Lab::start_with(cfg)?;
    println!(
        "lab {} up in {:.2}s",
        lab.name(),
        lab.boot_time.as_secs_f64()
    );
    print_lab(&lab);
    let st = lab.detach()?;
    println!("state: {}", st.display());
    Ok(())
}

fn print_lab(lab: &Lab) {
    println!("  run dir: {}", lab.run_dir().display());
    println!(
        "  client : netns {} ip {} (try: ip netns exec {} ping {})",
        lab.client().netns(),
        lab.client().ip(),
        lab.client().netns(),
        lab::net::node_ip(0)
    );
    println!("  vip    : {} (spare floating address)", lab.floating_ip());
    let qemu = lab::qemu::QemuProgram::resolve();
    let version = qemu.version().unwrap_or_else(|| "version unknown".into());
    println!("  qemu   : {} ({version})", qemu.path.display());
    for n in lab.nodes() {
        println!(
            "  node {} : ip {} mac {} pid {} console {}",
            n.name(),
            n.ip(),
            n.mac(),
            n.pid().map(|p| p.to_string()).unwrap_or_else(|| "-".into()),
            lab.run_dir()
                .join(format!("{}.console.log", n.name()))
                .display()
        );
    }
}

fn status(name: Option<&str>) -> Result<()> {
    let names = match name {
        Some(n) => vec![n.to_string()],
        None => LabState::list(),
    };
    if names.is_empty() {
        println!(
            "no labs running (state dir {})",
            lab::guard::state_dir().display()
        );
    }
    for n in names {
        let lab = Lab::attach(&n)?;
        println!("lab {n}");
        print_lab(&lab);
        for node in lab.nodes() {
            if node.pid().is_none() {
                println!("  node {}: powered off", node.name());
                continue;
            }
            match node.run_timeout(
                "cat /proc/drbd; ip -4 -o addr show eth0 | awk '{print \"eth0\", $4}'",
                std::time::Duration::from_secs(10),
            ) {
                Ok(o) => {
                    for l in o.stdout.lines() {
                        println!("  node {}: {l}", node.name());
                    }
                }
                Err(e) => println!("  node {}: control channel: {e}", node.name()),
            }
        }
    }
    Ok(())
}

/// Node `node` of the running lab `name`.
fn node<'a>(lab: &'a Lab, name: &str, node: &str) -> Result<&'a lab::Node> {
    lab.nodes()
        .iter()
        .find(|x| x.name() == node)
        .with_context(|| format!("no node {node} in lab {name}"))
}

fn run(name: &str, node_name: &str, script: &str) -> Result<()> {
    let lab = Lab::attach(name)?;
    let o = node(&lab, name, node_name)?.run(script)?;
    print!("{}", o.stdout);
    eprint!("{}", o.stderr);
    std::process::exit(o.rc);
}

fn power(name: &str, node_name: &str, on: bool) -> Result<()> {
    let lab = Lab::attach(name)?;
    let n = node(&lab, name, node_name)?;
    if on {
        n.boot()?;
    } else {
        n.kill()?;
    }
    lab.save()?;
    println!(
        "node {node_name}: {}",
        if on { "booted" } else { "killed (SIGKILL)" }
    );
    Ok(())
}

fn down(name: Option<&str>, all: bool) -> Result<()> {
    let names = match name {
        None => LabState::list(),
        Some(n) => vec![n.to_string()],
    };
    if !all && name.is_none() && names.len() > 1 {
        bail!("several labs run ({names:?}): name one or pass --all");
    }
    for n in &names {
        match LabState::load(n) {
            Ok(st) => {
                let pids: Vec<i32> = st.nodes.iter().map(|x| x.pid).collect();
                lab::guard::cleanup(n, &pids, Some(&st.run_dir));
            }
            Err(_) => lab::guard::cleanup(n, &[], None),
        }
        println!("lab {n} down");
    }
    let swept = lab::guard::sweep_stale();
    if !swept.is_empty() {
        println!("swept stale labs: {swept:?}");
    }
    Ok(())
}
