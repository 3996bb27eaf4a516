//! Benchmark: promote and demote through the agent (fsm + executor) against a real tgtd, with
//! DRBD and the address in memory (the host has no DRBD; the address claim is dominated by the
//! configured probe window, measured separately in `tests/address.rs`), for 1, 8 and 32
//! resources behind one address (the ratio 32 : 1 is issue 10's scaling figure), versus spawning
//! `tgtadm` for the same target work, in the same run. Prints median and p95 per resource count
//! and stage and writes `target/lab-report/agent-promote.json`.
//!
//! Reproduce (root, tgtd and tgtadm installed):
//! `CARGO_TARGET_DIR=target/agent cargo bench -p agent --bench promote`

#[path = "../tests/it/common/mod.rs"]
mod common;

use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use agent::backend::memory::Memory;
use agent::backend::target::TgtTarget;
use agent::config::Config;
use agent::control::Request;
use agent::daemon::Daemon;
use agent::executor::Executor;
use common::{free_port, tgtd_config_head, wait_tgtd, which, Tgtd};

const RUNS: usize = 30;
const PORT: u16 = 9;
/// Resource counts (the address fronts all of them).
const SCALE: [usize; 3] = [1, 8, 32];

fn stats(v: Vec<f64>) -> (f64, f64) {
    test_support::stats::median_p95(&v)
}

fn tgtadm(base: &Path, args: &str) {
    let st = Command::new("tgtadm")
        .args(["-C", &PORT.to_string()])
        .args(args.split_whitespace())
        .env("TGT_IPC_SOCKET", base)
        .stdout(Stdio::null())
        .status()
        .expect("tgtadm");
    assert!(st.success(), "tgtadm {args}");
}

/// A config of `k` adopt-mode resources `r1`..`rk` (tids 1..k, one 8 MiB file each in `dir`)
/// behind one address.
fn config(head: &str, dir: &Path, k: usize) -> String {
    let mut text = head.to_string();
    for i in 1..=k {
        let backing = dir.join(format!("r{i}.img"));
        std::fs::File::create(&backing)
            .and_then(|f| f.set_len(8 << 20))
            .expect("backing");
        text.push_str(&format!(
            r#"
[[resource]]
name = "r{i}"
minor = {i}
mode = "adopt"
target = {{ iqn = "iqn.2026-11.bench:r{i}", tid = {i}, initiators = "all" }}
[[resource.lun]]
lun = 1
device = "{b}"
scsi_id = "bench-r{i}-1"
scsi_sn = "BENCHR{i}1"
vendor = "ISCSIHA"
product = "BENCH"
"#,
            b = backing.display()
        ));
    }
    let names: Vec<String> = (1..=k).map(|i| format!("\"r{i}\"")).collect();
    text.push_str(&format!(
        "[[address]]\naddress = \"192.0.2.10/24\"\ninterface = \"eth0\"\nresources = [{}]\n",
        names.join(", ")
    ));
    text
}

fn main() {
    if !nix::unistd::Uid::effective().is_root()
        || which("tgtd").is_none()
        || which("tgtadm").is_none()
    {
        test_support::prereq::skip("promote bench: needs root, tgtd and tgtadm");
        return;
    }
    let dir = tempfile::Builder::new()
        .prefix(&format!("agent-bench-{}-", std::process::id()))
        .tempdir()
        .expect("tempdir");
    let tgtd = Tgtd::start(dir.path(), PORT, free_port());
    let base = tgtd.base.clone();
    let head = tgtd_config_head("bench", dir.path(), PORT, None);
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("rt");
    // Per resource count: promote and demote totals, and each stage.
    let mut figures: Vec<(String, Vec<f64>)> = Vec::new();
    let mut put = |name: String, ms: f64| match figures.iter_mut().find(|(n, _)| *n == name) {
        Some((_, v)) => v.push(ms),
        None => figures.push((name, vec![ms])),
    };
    for k in SCALE {
        let cfg = Arc::new(
            Config::parse(&config(&head, dir.path(), k), Path::new("<bench>")).expect("config"),
        );
        rt.block_on(async {
            wait_tgtd(&cfg.sockets.tgtd).await;
            let target = TgtTarget::new(&cfg.sockets.tgtd, Duration::from_secs(5));
            let mem = Memory::healthy_secondary(&cfg);
            let mut d = Daemon::new(Executor::new(cfg.clone(), mem.clone(), target, mem));
            d.observe().await;
            for _ in 0..RUNS {
                for (req, kind) in [(Request::Promote, "promote"), (Request::Demote, "demote")] {
                    let r = d.request(req).await;
                    assert!(r.ok, "{}", r.message);
                    let rec = r
                        .status
                        .and_then(|s| s.transitions.last().cloned())
                        .expect("record");
                    put(
                        format!("{k} resources: {kind} total"),
                        rec.total_micros as f64 / 1000.0,
                    );
                    for s in rec.stages {
                        put(
                            format!("{k} resources: stage {}", s.stage.name()),
                            s.micros as f64 / 1000.0,
                        );
                    }
                }
            }
        });
    }
    let backing = dir.path().join("r1.img");
    // Classic tools, same tgtd, same work.
    let (mut serve_cli, mut stop_cli) = (Vec::new(), Vec::new());
    for _ in 0..RUNS {
        let t = Instant::now();
        tgtadm(
            &base,
            "--lld iscsi --mode target --op new --tid 100 -T iqn.2026-11.bench:cli",
        );
        tgtadm(
            &base,
            "--lld iscsi --mode target --op update --tid 100 --name state --value offline",
        );
        tgtadm(
            &base,
            &format!(
                "--lld iscsi --mode logicalunit --op new --tid 100 --lun 1 -b {}",
                backing.display()
            ),
        );
        tgtadm(&base, "--lld iscsi --mode logicalunit --op update --tid 100 --lun 1 --params scsi_id=bench-cli,scsi_sn=BENCHCLI,vendor_id=ISCSIHA,product_id=BENCH");
        tgtadm(
            &base,
            "--lld iscsi --mode target --op bind --tid 100 -I ALL",
        );
        tgtadm(
            &base,
            "--lld iscsi --mode target --op update --tid 100 --name state --value ready",
        );
        serve_cli.push(t.elapsed().as_secs_f64() * 1000.0);
        let t = Instant::now();
        tgtadm(
            &base,
            "--lld iscsi --mode target --op unbind --tid 100 -I ALL",
        );
        tgtadm(
            &base,
            "--lld iscsi --mode target --op update --tid 100 --name state --value offline",
        );
        tgtadm(&base, "--lld iscsi --mode conn --op show --tid 100");
        tgtadm(
            &base,
            "--lld iscsi --mode target --op delete --force --tid 100",
        );
        stop_cli.push(t.elapsed().as_secs_f64() * 1000.0);
    }
    let mut json = serde_json::Map::new();
    let mut medians = std::collections::BTreeMap::new();
    let mut put = |name: &str, v: Vec<f64>| {
        let (m, p) = stats(v);
        println!("{name:<40} median {m:8.3} ms   p95 {p:8.3} ms");
        medians.insert(name.to_string(), m);
        json.insert(
            name.into(),
            serde_json::json!({ "median_ms": m, "p95_ms": p, "runs": RUNS }),
        );
    };
    println!("agent (fsm + executor; tgtd real, DRBD and address in memory), {RUNS} runs:");
    for (name, v) in figures {
        put(&name, v);
    }
    println!("classic tools, spawned one by one:");
    put("tgtadm serve (6 calls)", serve_cli);
    put("tgtadm stop (4 calls)", stop_cli);
    let last = SCALE[SCALE.len() - 1];
    for kind in ["promote", "demote"] {
        let one = medians[&format!("1 resources: {kind} total")];
        let many = medians[&format!("{last} resources: {kind} total")];
        let ratio = many / one;
        println!("{kind}: {last} resources / 1 resource = {ratio:.2} (medians)");
        json.insert(format!("{kind} ratio {last} : 1"), serde_json::json!(ratio));
    }
    let out = Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/lab-report");
    std::fs::create_dir_all(&out).expect("report dir");
    let file = out.join("agent-promote.json");
    std::fs::write(&file, serde_json::to_string_pretty(&json).expect("json")).expect("write");
    println!("wrote {}", file.display());
}
