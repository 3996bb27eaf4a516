//! Benchmark (not a test): claim (checks + `RTM_NEWADDR` + first gratuitous ARP on the wire)
//! and release through vip, against spawning the classic tools in the same run and the same
//! namespace: `ip addr add` + `arping -q -U -c 1 -w 0 -i IF -S VIP VIP`, and `ip addr del`.
//!
//! Run as root: `CARGO_TARGET_DIR=target/vip cargo bench -p vip --bench claim` (env `RUNS`,
//! default 50). Prints median and p95 per stage and the ratio; writes
//! `target/lab-report/vip-bench.json` (relative to the workspace root).
//!
//! Setup: one namespace made here (`vipb<pid>`) with a veth pair inside it, deleted at the end
//! (also on panic, by a Drop guard). Nothing leaves the machine.

use std::process::Command;
use std::time::{Duration, Instant};

use test_support::netns::{run, Netns};
use vip::{AnnouncePolicy, ClaimOptions, Vip};

#[derive(Default)]
struct Stage {
    name: &'static str,
    samples: Vec<Duration>,
}

impl Stage {
    fn new(name: &'static str) -> Stage {
        Stage {
            name,
            samples: Vec::new(),
        }
    }
    /// Median and p95, microseconds.
    fn median_p95(&self) -> (f64, f64) {
        let us: Vec<f64> = self.samples.iter().map(|d| d.as_secs_f64() * 1e6).collect();
        test_support::stats::median_p95(&us)
    }
    fn json(&self) -> serde_json::Value {
        let (median, p95) = self.median_p95();
        serde_json::json!({
            "stage": self.name,
            "runs": self.samples.len(),
            "median_us": median,
            "p95_us": p95,
        })
    }
    fn print(&self) {
        let (median, p95) = self.median_p95();
        println!(
            "  {:<34} median {:>10.1} us   p95 {:>10.1} us",
            self.name, median, p95
        );
    }
}

fn main() -> Result<(), String> {
    if std::env::args().any(|a| a == "--list") {
        return Ok(()); // `cargo test --benches` probes harness=false benches with --list
    }
    if !nix::unistd::geteuid().is_root() {
        test_support::prereq::skip("vip claim bench: needs root");
        return Ok(());
    }
    let runs: usize = std::env::var("RUNS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(50);
    let ns = Netns::add(format!("vipb{}", std::process::id()))?;
    ns.ip(&[
        "link", "add", "eth0", "type", "veth", "peer", "name", "peer0",
    ])?;
    for l in ["lo", "eth0", "peer0"] {
        ns.ip(&["link", "set", l, "up"])?;
    }
    // Enter the namespace on this thread; spawned tools inherit it (no `ip netns exec` cost).
    ns.enter()?;
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| e.to_string())?;

    let vip_s = "10.78.0.100";
    let vip_net = "10.78.0.100/24";
    let mut announce = AnnouncePolicy::default();
    announce.count = 1;
    announce.second_burst_after = None;
    let opts = ClaimOptions::without_probe().announce(announce);

    let mut claim = Stage::new("vip claim (total)");
    let mut c_check = Stage::new("vip claim: link+address checks");
    let mut c_add = Stage::new("vip claim: RTM_NEWADDR");
    let mut c_ann = Stage::new("vip claim: first GARP sent");
    let mut rel = Stage::new("vip release");
    let mut ip_add = Stage::new("spawn ip addr add");
    let mut arping = Stage::new("spawn arping -U -c 1");
    let mut classic = Stage::new("classic claim (ip add + arping)");
    let mut ip_del = Stage::new("spawn ip addr del");

    rt.block_on(async {
        let mut v = Vip::new("eth0", vip_s.parse().map_err(|e| format!("{e}"))?, 24)
            .map_err(|e| e.to_string())?;
        // Warm-up: opens the kept packet socket, faults in code paths.
        v.claim(&opts).await.map_err(|e| e.to_string())?;
        v.release().await.map_err(|e| e.to_string())?;
        for _ in 0..runs {
            let r = v.claim(&opts).await.map_err(|e| e.to_string())?;
            claim.samples.push(r.total);
            c_check.samples.push(r.check);
            c_add.samples.push(r.add);
            c_ann.samples.push(r.first_announce);
            let r = v.release().await.map_err(|e| e.to_string())?;
            if !r.removed {
                return Err("release removed nothing".to_string());
            }
            rel.samples.push(r.total);

            let t = Instant::now();
            run("ip", &["addr", "add", vip_net, "dev", "eth0"])?;
            let a = t.elapsed();
            let t2 = Instant::now();
            // arping exits 1 when nobody answers, which is normal for an unsolicited ARP.
            let st = Command::new("arping")
                .args([
                    "-q", "-U", "-c", "1", "-w", "0", "-i", "eth0", "-S", vip_s, vip_s,
                ])
                .status()
                .map_err(|e| format!("spawn arping: {e}"))?;
            if st.code().is_none_or(|c| c > 1) {
                return Err(format!("arping failed: {st}"));
            }
            arping.samples.push(t2.elapsed());
            ip_add.samples.push(a);
            classic.samples.push(t.elapsed());
            let t = Instant::now();
            run("ip", &["addr", "del", vip_net, "dev", "eth0"])?;
            ip_del.samples.push(t.elapsed());
        }
        Ok::<(), String>(())
    })?;

    println!("vip claim/release vs classic tools, {runs} runs each, same namespace");
    for s in [
        &claim, &c_check, &c_add, &c_ann, &rel, &ip_add, &arping, &classic, &ip_del,
    ] {
        s.print();
    }
    let ratio_claim = classic.median_p95().0 / claim.median_p95().0.max(f64::MIN_POSITIVE);
    let ratio_release = ip_del.median_p95().0 / rel.median_p95().0.max(f64::MIN_POSITIVE);
    println!("  ratio claim   (classic / vip, medians): {ratio_claim:.1}x");
    println!("  ratio release (classic / vip, medians): {ratio_release:.1}x");

    let manifest = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let root = manifest.parent().unwrap_or(manifest);
    let dir = root.join("target").join("lab-report");
    std::fs::create_dir_all(&dir).map_err(|e| e.to_string())?;
    let report = serde_json::json!({
        "bench": "vip-claim",
        "runs": runs,
        "command": "CARGO_TARGET_DIR=target/vip cargo bench -p vip --bench claim",
        "stages": [claim.json(), c_check.json(), c_add.json(), c_ann.json(), rel.json(),
                   ip_add.json(), arping.json(), classic.json(), ip_del.json()],
        "ratio_claim_median": ratio_claim,
        "ratio_release_median": ratio_release,
    });
    let path = dir.join("vip-bench.json");
    std::fs::write(
        &path,
        serde_json::to_string_pretty(&report).map_err(|e| e.to_string())?,
    )
    .map_err(|e| e.to_string())?;
    println!("  wrote {}", path.display());
    Ok(())
}
