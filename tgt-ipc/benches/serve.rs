//! Benchmark (not a test): "serve" (target, LUN, identity and caching page, ACL last) and "stop serving" through tgt-ipc
//! versus the same steps with `tgtadm` spawned, against one private tgtd, same run, interleaved.
//!
//! Reproduce (as root, with tgt installed): `cargo bench -p tgt-ipc --bench serve` (env `BENCH_N`, default
//! 50). Prints median and p95 per stage and the ratio; writes `target/lab-report/tgt-bench.json` under the
//! workspace root.

#[path = "../tests/common/mod.rs"]
mod common;

use std::time::{Duration, Instant};

use tgt_ipc::{
    Acl, BsOFlags, CacheMode, LunBacking, ServeLun, ServeSpec, SetState, StopOutcome,
    WRITE_CACHE_OFF_PAGE,
};

const IQN: &str = "iqn.2026-11.bench.iscsi-ha:r0";

/// Median and p95, microseconds.
fn stats(v: &mut [Duration]) -> (f64, f64) {
    let us: Vec<f64> = v.iter().map(|d| d.as_secs_f64() * 1e6).collect();
    test_support::stats::median_p95(&us)
}

fn tgtadm(t: &common::Tgtd, args: &[&str]) {
    let out = t.tgtadm(args);
    assert!(
        out.status.success(),
        "tgtadm {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    if std::env::args().any(|a| a == "--list") {
        return; // `cargo test --benches` probing
    }
    if !common::prereqs("tgt-ipc bench", &["tgtd", "tgtadm"]) {
        return;
    }
    let n: usize = std::env::var("BENCH_N")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(50);
    let t = common::Tgtd::start().await;
    let file = t.backing_file("r0.img", 64 << 20);
    let path = file.to_str().unwrap().to_string();
    let spec = ServeSpec {
        tid: 1,
        name: IQN.into(),
        luns: vec![ServeLun {
            lun: 1,
            backing: LunBacking::new(&file).bsoflags(BsOFlags::Direct),
            identity: common::r0_identity(),
            cache: CacheMode::WriteThrough,
        }],
        accounts: Vec::new(),
        acls: vec![Acl::address("127.0.0.1").unwrap()],
    };
    let identity = "scsi_id=60014052e3c1a9b8d7f6e5d4c3b2a190,scsi_sn=HA0R0SN0001,vendor_id=ISCSIHA,product_id=R0-VOLUME,product_rev=0042";
    let identity_cache = format!("{identity},mode_page={WRITE_CACHE_OFF_PAGE}");
    let c = &t.client;
    // the steps of serve and of stop, each as a tgtadm command line
    let serve_steps: Vec<(&str, Vec<&str>)> = vec![
        (
            "target new",
            vec![
                "--mode",
                "target",
                "--op",
                "new",
                "--tid",
                "1",
                "--targetname",
                IQN,
            ],
        ),
        (
            "lu new",
            vec![
                "--mode",
                "logicalunit",
                "--op",
                "new",
                "--tid",
                "1",
                "--lun",
                "1",
                "--backing-store",
                &path,
                "--bsoflags",
                "sync:direct",
            ],
        ),
        (
            "lu identity + cache",
            vec![
                "--mode",
                "logicalunit",
                "--op",
                "update",
                "--tid",
                "1",
                "--lun",
                "1",
                "--params",
                &identity_cache,
            ],
        ),
        (
            "acl bind",
            vec![
                "--mode",
                "target",
                "--op",
                "bind",
                "--tid",
                "1",
                "--initiator-address",
                "127.0.0.1",
            ],
        ),
    ];
    let stop_steps: Vec<(&str, Vec<&str>)> = vec![
        ("target show", vec!["--mode", "target", "--op", "show"]),
        (
            "acl unbind",
            vec![
                "--mode",
                "target",
                "--op",
                "unbind",
                "--tid",
                "1",
                "--initiator-address",
                "127.0.0.1",
            ],
        ),
        (
            "state offline",
            vec![
                "--mode", "target", "--op", "update", "--tid", "1", "--name", "state", "--value",
                "offline",
            ],
        ),
        (
            "conn show",
            vec!["--mode", "conn", "--op", "show", "--tid", "1"],
        ),
        (
            "delete force",
            vec![
                "--mode", "target", "--op", "delete", "--force", "--tid", "1",
            ],
        ),
    ];
    let steps: Vec<(&str, Vec<&str>)> = serve_steps
        .iter()
        .chain(stop_steps.iter())
        .cloned()
        .collect();
    let (mut ipc_serve, mut ipc_stop, mut adm_serve, mut adm_stop) =
        (vec![], vec![], vec![], vec![]);
    let mut ipc_step: Vec<Vec<Duration>> = vec![vec![]; steps.len()];
    let mut adm_step: Vec<Vec<Duration>> = vec![vec![]; steps.len()];
    for _ in 0..n {
        // 1. the library calls, end to end
        let t0 = Instant::now();
        c.serve(&spec).await.unwrap();
        ipc_serve.push(t0.elapsed());
        let t0 = Instant::now();
        let o = c.stop_serving(1, IQN).await.unwrap();
        ipc_stop.push(t0.elapsed());
        assert!(matches!(o, StopOutcome::Stopped { .. }));

        // 2. the same steps one by one through tgt-ipc (per-step figures)
        let acl = Acl::address("127.0.0.1").unwrap();
        let lun = &spec.luns[0];
        for (i, times) in ipc_step.iter_mut().enumerate() {
            let t0 = Instant::now();
            match i {
                0 => c.new_target(1, IQN).await.unwrap(),
                1 => c.new_lun(1, 1, &lun.backing).await.unwrap(),
                2 => c
                    .set_lun_identity_and_cache(1, 1, &lun.identity, lun.cache)
                    .await
                    .unwrap(),
                3 => c.bind_acl(1, &acl).await.unwrap(),
                4 => drop(c.show_targets().await.unwrap()),
                5 => c.unbind_acl(1, &acl).await.unwrap(),
                6 => c.set_target_state(1, SetState::Offline).await.unwrap(),
                7 => drop(c.show_connections(1).await.unwrap()),
                _ => c.delete_target(1, true).await.unwrap(),
            }
            times.push(t0.elapsed());
        }

        // 3. the same steps, one tgtadm process each
        let mut serve_total = Duration::ZERO;
        let mut stop_total = Duration::ZERO;
        for (i, (_, args)) in steps.iter().enumerate() {
            let mut a = vec!["--lld", "iscsi"];
            a.extend_from_slice(args);
            let t0 = Instant::now();
            tgtadm(&t, &a);
            let d = t0.elapsed();
            adm_step[i].push(d);
            if i < serve_steps.len() {
                serve_total += d;
            } else {
                stop_total += d;
            }
        }
        adm_serve.push(serve_total);
        adm_stop.push(stop_total);
    }
    let mut json = String::from("{\n  \"bench\": \"tgt-bench\",\n");
    json.push_str(&format!(
        "  \"n\": {n},\n  \"unit\": \"microseconds\",\n  \"reproduce\": \"cargo bench -p tgt-ipc --bench serve\",\n  \"stages\": {{\n"
    ));
    println!("tgt-ipc vs tgtadm (spawned), same tgtd, interleaved, N={n}, microseconds");
    println!(
        "{:<22} {:>10} {:>10} {:>13} {:>12} {:>7}",
        "stage", "ipc med", "ipc p95", "tgtadm med", "tgtadm p95", "ratio"
    );
    let mut rows: Vec<(String, Vec<Duration>, Vec<Duration>)> = vec![
        ("serve (4 requests)".into(), ipc_serve, adm_serve),
        ("stop serving (5)".into(), ipc_stop, adm_stop),
    ];
    for (i, (name, _)) in steps.iter().enumerate() {
        let kind = if i < serve_steps.len() {
            "serve"
        } else {
            "stop"
        };
        rows.push((
            format!("{kind}: {name}"),
            ipc_step[i].clone(),
            adm_step[i].clone(),
        ));
    }
    let count = rows.len();
    for (i, (name, mut ipc, mut adm)) in rows.into_iter().enumerate() {
        let (im, ip) = stats(&mut ipc);
        let (am, ap) = stats(&mut adm);
        let ratio = am / im;
        println!("{name:<22} {im:>10.1} {ip:>10.1} {am:>13.1} {ap:>12.1} {ratio:>6.1}x");
        json.push_str(&format!(
            "    \"{name}\": {{\"ipc_median_us\": {im:.1}, \"ipc_p95_us\": {ip:.1}, \"tgtadm_median_us\": {am:.1}, \"tgtadm_p95_us\": {ap:.1}, \"ratio_median\": {ratio:.1}}}{}\n",
            if i + 1 < count { "," } else { "" }
        ));
    }
    json.push_str("  }\n}\n");
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/lab-report");
    std::fs::create_dir_all(&dir).unwrap();
    let out = dir.join("tgt-bench.json");
    std::fs::write(&out, json).unwrap();
    println!("wrote {}", out.display());
}
