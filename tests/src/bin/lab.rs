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
//! lab soak [--cycles N] [--seed S] [--mode plain|fua|sync:N]
//!                           N mixed failure cycles (default 20) with the write ledger running;
//!                           0 lost writes, one Primary, no address without a target, per cycle
//! lab bench-takeover [--runs N] [--power-runs N] [--restarts N] [--scaling 1,8,32|none]
//!                   [--scaling-runs N] [--idle-s S] [--client-timeout S] [--settle-ms MS]
//!                   [--report STEM]
//!                           agent vs classic tools, planned switchover and power loss (N = 30
//!                           each by default), agent restart, idle RSS and wake-ups, 1/8/32
//!                           resources; target/lab-report/bench-takeover.{json,md,svg}
//! lab pacemaker [--runs N]  per OCF action, the iscsi-ha agent vs the classic resource agents
//!                           (linbit drbd + iSCSITarget + iSCSILogicalUnit + IPaddr2) in one guest
//!                           with Pacemaker running; target/lab-report/pacemaker-ra-bench.json
//! lab write-cache [--seconds N]  writes/s write-through vs write-back (plain, FUA, sync:16) and a
//!                           power loss in each mode (lost writes); default N = 15
//! ```

use anyhow::{anyhow, bail, Context, Result};
use lab::{Lab, LabConfig, LabState};

fn usage() -> ! {
    eprintln!(
        "usage: lab up [--nodes N] [--drbd 8.4|9] | status [NAME] | run NAME NODE SCRIPT | kill NAME NODE | boot NAME NODE | down [NAME|--all] | drill [--runs N] [--drbd 8.4|9] | switchovers [--count N] | soak [--cycles N] [--seed S] [--mode M] | write-cache [--seconds N] | pacemaker [--runs N] | bench-takeover [--runs N] [--power-runs N] [--restarts N] [--scaling 1,8,32|none] [--scaling-runs N] [--idle-s S] [--client-timeout S] [--settle-ms MS] [--report STEM]"
    );
    std::process::exit(2)
}

fn main() {
    if let Err(e) = lab::guard::install_signal_cleanup() {
        eprintln!("lab: cannot install signal handler: {e}");
    }
    let args: Vec<String> = std::env::args().skip(1).collect();
    let r = match args.first().map(String::as_str) {
        Some("up") => up(&args[1..]),
        Some("status") => status(args.get(1).map(String::as_str)),
        Some("run") => run(&args[1..]),
        Some("kill") => power(&args[1..], false),
        Some("boot") => power(&args[1..], true),
        Some("down") => down(args.get(1).map(String::as_str)),
        Some("drill") => drill(&args[1..]),
        Some("switchovers") => switchovers(&args[1..]),
        Some("soak") => soak(&args[1..]),
        Some("write-cache") => write_cache(&args[1..]),
        Some("bench-takeover") => bench_takeover(&args[1..]),
        Some("pacemaker") => prereqs().and_then(|()| lab::pacemaker_bench::run(&args[1..])),
        _ => usage(),
    };
    if let Err(e) = r {
        eprintln!("lab: error: {e:#}");
        lab::guard::cleanup_registered();
        std::process::exit(1);
    }
}

fn drill(args: &[String]) -> Result<()> {
    let runs = match args.iter().position(|a| a == "--runs") {
        Some(i) => args
            .get(i + 1)
            .and_then(|v| v.parse().ok())
            .filter(|n| (1..=100).contains(n))
            .ok_or_else(|| anyhow!("--runs takes 1..100"))?,
        None => 1,
    };
    let drbd = match args.iter().position(|a| a == "--drbd") {
        Some(i) => {
            let v = args.get(i + 1).map(String::as_str).unwrap_or_default();
            v.parse().context("--drbd takes 8.4 or 9")?
        }
        None => lab::drbd9::DrbdVersion::from_env()?,
    };
    lab::drill::drill(runs, drbd).map(|_| ())
}

fn switchovers(args: &[String]) -> Result<()> {
    let count = match args.iter().position(|a| a == "--count") {
        Some(i) => args
            .get(i + 1)
            .and_then(|v| v.parse().ok())
            .filter(|n| (1..=1000).contains(n))
            .ok_or_else(|| anyhow!("--count takes 1..1000"))?,
        None => 10,
    };
    lab::drill::switchovers(count).map(|_| ())
}

fn soak(args: &[String]) -> Result<()> {
    let val = |flag: &str| {
        args.iter()
            .position(|a| a == flag)
            .map(|i| {
                args.get(i + 1)
                    .ok_or_else(|| anyhow!("{flag} takes a value"))
            })
            .transpose()
    };
    let mut o = lab::soak::SoakOpts::default();
    if let Some(v) = val("--cycles")? {
        o.cycles = v
            .parse()
            .ok()
            .filter(|n| (1..=1000).contains(n))
            .ok_or_else(|| anyhow!("--cycles takes 1..1000"))?;
    }
    if let Some(v) = val("--seed")? {
        o.seed = v.parse().map_err(|_| anyhow!("--seed takes a number"))?;
    }
    if let Some(v) = val("--mode")? {
        o.mode = v.parse().map_err(|e: String| anyhow!(e))?;
    }
    lab::soak::soak(&o).map(|_| ())
}

fn write_cache(args: &[String]) -> Result<()> {
    let seconds = match args.iter().position(|a| a == "--seconds") {
        Some(i) => args
            .get(i + 1)
            .and_then(|v| v.parse().ok())
            .filter(|n| (1..=600).contains(n))
            .ok_or_else(|| anyhow!("--seconds takes 1..600"))?,
        None => 15,
    };
    lab::write_cache::write_cache(seconds).map(|_| ())
}

fn bench_takeover(args: &[String]) -> Result<()> {
    let val = |flag: &str| args.iter().position(|a| a == flag).map(|i| args.get(i + 1));
    let num = |flag: &str, max: usize| -> Result<Option<usize>> {
        val(flag)
            .map(|v| {
                v.and_then(|v| v.parse().ok())
                    .filter(|n| (1..=max).contains(n))
                    .ok_or_else(|| anyhow!("{flag} takes 1..{max}"))
            })
            .transpose()
    };
    let mut o = lab::bench_takeover::BenchOpts::default();
    if let Some(n) = num("--runs", 1000)? {
        o.switchovers = n;
        o.power_losses = n;
    }
    if let Some(n) = num("--power-runs", 1000)? {
        o.power_losses = n;
    }
    if let Some(n) = num("--restarts", 1000)? {
        o.restarts = n;
    }
    if let Some(n) = num("--scaling-runs", 1000)? {
        o.scaling_runs = n;
    }
    if let Some(n) = num("--client-timeout", 60)? {
        o.client_timeout_s = n as u32;
    }
    if let Some(v) = val("--settle-ms") {
        o.settle_ms = Some(
            v.and_then(|v| v.parse().ok())
                .filter(|ms| *ms <= 60_000)
                .ok_or_else(|| anyhow!("--settle-ms takes 0..60000"))?,
        );
    }
    if let Some(v) = val("--report") {
        o.report = v
            .filter(|v| !v.is_empty() && v.chars().all(|c| c.is_ascii_alphanumeric() || c == '-'))
            .ok_or_else(|| anyhow!("--report takes a file stem (letters, digits, -)"))?
            .clone();
    }
    if let Some(n) = num("--idle-s", 600)? {
        o.idle = std::time::Duration::from_secs(n as u64);
    }
    if let Some(v) = val("--scaling") {
        let v = v.ok_or_else(|| anyhow!("--scaling takes counts like 1,8,32 or none"))?;
        o.scaling = if v == "none" {
            Vec::new()
        } else {
            v.split(',')
                .map(|k| k.parse().ok().filter(|k| (1..=32).contains(k)))
                .collect::<Option<Vec<usize>>>()
                .ok_or_else(|| anyhow!("--scaling takes counts 1..32 like 1,8,32, or none"))?
        };
    }
    lab::bench_takeover::bench(&o).map(|_| ())
}

fn prereqs() -> Result<()> {
    if let Some(m) = lab::missing_prereqs() {
        bail!("prerequisites missing: {m}");
    }
    Ok(())
}

fn up(args: &[String]) -> Result<()> {
    prereqs()?;
    let mut cfg = LabConfig {
        detached: true,
        ..LabConfig::default()
    };
    if let Some(i) = args.iter().position(|a| a == "--nodes") {
        cfg.nodes = args
            .get(i + 1)
            .and_then(|v| v.parse().ok())
            .filter(|n| (1..=8).contains(n))
            .ok_or_else(|| anyhow!("--nodes takes 1..8"))?;
    }
    if let Some(i) = args.iter().position(|a| a == "--drbd") {
        let v = args.get(i + 1).map(String::as_str).unwrap_or_default();
        cfg.drbd = Some(v.parse().context("--drbd takes 8.4 or 9")?);
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
                "head -n 3 /proc/drbd; ip -4 -o addr show eth0 | awk '{print \"eth0\", $4}'",
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

fn run(args: &[String]) -> Result<()> {
    let (Some(name), Some(node), Some(script)) = (args.first(), args.get(1), args.get(2)) else {
        usage()
    };
    let lab = Lab::attach(name)?;
    let n = lab
        .nodes()
        .iter()
        .find(|x| x.name() == node)
        .with_context(|| format!("no node {node} in lab {name}"))?;
    let o = n.run(script)?;
    print!("{}", o.stdout);
    eprint!("{}", o.stderr);
    std::process::exit(o.rc);
}

fn power(args: &[String], on: bool) -> Result<()> {
    let (Some(name), Some(node)) = (args.first(), args.get(1)) else {
        usage()
    };
    let lab = Lab::attach(name)?;
    let n = lab
        .nodes()
        .iter()
        .find(|x| x.name() == node)
        .with_context(|| format!("no node {node} in lab {name}"))?;
    if on {
        n.boot()?;
    } else {
        n.kill()?;
    }
    lab.save()?;
    println!(
        "node {node}: {}",
        if on { "booted" } else { "killed (SIGKILL)" }
    );
    Ok(())
}

fn down(name: Option<&str>) -> Result<()> {
    let names = match name {
        Some("--all") | None => LabState::list(),
        Some(n) => vec![n.to_string()],
    };
    if name.is_none() && names.len() > 1 {
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
