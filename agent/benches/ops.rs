//! Benchmark: what running the agent costs an operator's host, on `iscsi-ha daemon --simulate`
//! with the metrics endpoint on and the systemd watchdog at the unit's `WatchdogSec=30s`:
//! start → READY latency on a real `NOTIFY_SOCKET` (simulated backends: no netlink or tgtd
//! round trips), idle CPU and RSS (`/proc/PID/stat`, `/proc/PID/status`) without scrapes and
//! with a scrape per second, and the time of one `GET /metrics`. Prints median and p95 and
//! writes `target/lab-report/agent-ops.json`.
//!
//! Reproduce: `cargo bench -p agent --bench ops` (release build; `-- --quick` for a short run).

#[path = "../tests/it/common/mod.rs"]
mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::os::unix::net::UnixDatagram;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use common::Kill;

const BIN: &str = env!("CARGO_BIN_EXE_iscsi-ha");

fn stats(v: Vec<f64>) -> (f64, f64) {
    test_support::stats::median_p95(&v)
}

/// Start the daemon; returns it and the time until READY arrived.
fn start(dir: &Path, port: u16) -> (Kill, Duration) {
    let notify = dir.join("notify.sock");
    let _ = std::fs::remove_file(&notify);
    let sock = UnixDatagram::bind(&notify).expect("bind NOTIFY_SOCKET");
    sock.set_read_timeout(Some(Duration::from_secs(60)))
        .expect("timeout");
    let mut cfg = common::config("one", true);
    cfg.sockets.control = dir.join("control.sock");
    cfg.metrics.listen = Some(([127, 0, 0, 1], port).into());
    let path = dir.join("iscsi-ha.toml");
    std::fs::write(&path, toml::to_string(&cfg).expect("toml")).expect("config");
    let t0 = Instant::now();
    let child = Kill(
        Command::new(BIN)
            .arg("-c")
            .arg(&path)
            .args(["daemon", "--simulate"])
            .env("NOTIFY_SOCKET", &notify)
            .env("WATCHDOG_USEC", "30000000")
            .env_remove("WATCHDOG_PID")
            .env("RUST_LOG", "warn")
            .spawn()
            .expect("daemon"),
    );
    let mut buf = [0u8; 4096];
    loop {
        let n = sock.recv(&mut buf).expect("READY within 60 s");
        if buf[..n].starts_with(b"READY=1") {
            return (child, t0.elapsed());
        }
    }
}

fn scrape(port: u16) -> (Duration, usize) {
    let t0 = Instant::now();
    let mut s = TcpStream::connect(("127.0.0.1", port)).expect("connect");
    s.write_all(b"GET /metrics HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
        .expect("request");
    let mut body = Vec::new();
    s.read_to_end(&mut body).expect("response");
    assert!(body.starts_with(b"HTTP/1.1 200"), "scrape failed");
    (t0.elapsed(), body.len())
}

/// User + system CPU seconds of `pid` so far.
fn cpu_seconds(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).expect("stat");
    let after = stat.rsplit_once(')').expect("comm").1;
    let f: Vec<&str> = after.split_whitespace().collect();
    let ticks: f64 = f[11].parse::<f64>().expect("utime") + f[12].parse::<f64>().expect("stime");
    ticks / tick_hz()
}

fn tick_hz() -> f64 {
    nix::unistd::sysconf(nix::unistd::SysconfVar::CLK_TCK)
        .ok()
        .flatten()
        .unwrap_or(100) as f64
}

fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("status");
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

fn main() {
    let quick = std::env::args().any(|a| a == "--quick");
    let (starts, scrapes, idle_s) = if quick { (5, 50, 5) } else { (20, 500, 60) };
    let dir = tempfile::tempdir().expect("tempdir");

    let mut ready = Vec::new();
    for _ in 0..starts {
        let port = common::free_port();
        let (d, t) = start(dir.path(), port);
        ready.push(t.as_secs_f64() * 1000.0);
        drop(d);
    }
    let (ready_med, ready_p95) = stats(ready);

    let port = common::free_port();
    let (daemon, _) = start(dir.path(), port);
    let pid = daemon.0.id();
    std::thread::sleep(Duration::from_secs(1));
    let c0 = cpu_seconds(pid);
    std::thread::sleep(Duration::from_secs(idle_s));
    let idle_cpu = (cpu_seconds(pid) - c0) / idle_s as f64 * 100.0;
    let rss_idle = rss_kib(pid);

    let c0 = cpu_seconds(pid);
    let t0 = Instant::now();
    for _ in 0..idle_s {
        scrape(port);
        std::thread::sleep(Duration::from_secs(1));
    }
    let scraped_cpu = (cpu_seconds(pid) - c0) / t0.elapsed().as_secs_f64() * 100.0;

    let mut times = Vec::new();
    let mut size = 0;
    for _ in 0..scrapes {
        let (t, n) = scrape(port);
        times.push(t.as_secs_f64() * 1000.0);
        size = n;
    }
    let (scrape_med, scrape_p95) = stats(times);
    let rss_after = rss_kib(pid);

    println!(
        "start -> READY (simulate, {starts} runs): median {ready_med:.2} ms, p95 {ready_p95:.2} ms"
    );
    // /proc counts CPU time in clock ticks (10 ms at USER_HZ 100): 0 means below one tick.
    let tick = 100.0 / tick_hz() / idle_s as f64;
    println!(
        "idle CPU ({idle_s} s, metrics on, no scrapes): {idle_cpu:.4} % (one tick = {tick:.4} %)"
    );
    println!("CPU with one scrape per second ({idle_s} s): {scraped_cpu:.4} %");
    println!("RSS: {rss_idle} KiB idle, {rss_after} KiB after {scrapes} scrapes");
    println!("GET /metrics ({scrapes} sequential, {size} bytes): median {scrape_med:.3} ms, p95 {scrape_p95:.3} ms");

    let json = serde_json::json!({
        "bench": "agent-ops",
        "mode": "daemon --simulate, one resource and address, metrics on, WATCHDOG_USEC=30 s",
        "start_to_ready_ms": { "runs": starts, "median": ready_med, "p95": ready_p95 },
        "idle_cpu_percent": idle_cpu,
        "cpu_percent_resolution": tick,
        "cpu_percent_one_scrape_per_s": scraped_cpu,
        "idle_seconds": idle_s,
        "rss_kib_idle": rss_idle,
        "rss_kib_after_scrapes": rss_after,
        "scrape_ms": { "runs": scrapes, "median": scrape_med, "p95": scrape_p95, "bytes": size },
    });
    let out = Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/lab-report");
    std::fs::create_dir_all(&out).expect("report dir");
    let file = out.join("agent-ops.json");
    std::fs::write(&file, serde_json::to_string_pretty(&json).expect("json")).expect("write");
    println!("wrote {}", file.display());
}
