//! The Prometheus endpoint of `iscsi-ha daemon --simulate` (`[metrics] listen`), scraped over
//! HTTP after a promote: the series for transitions, stage times, DRBD, target, address and
//! authority are there; `promtool check metrics` (Debian `prometheus`) finds nothing but the
//! OpenMetrics counter naming it does not know; and a real Prometheus scrapes and stores them.

use crate::common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_iscsi-ha");

/// One HTTP/1.1 request; the status line and headers, and the body.
fn get(port: u16, method: &str, path: &str) -> (String, String) {
    let mut s = TcpStream::connect(("127.0.0.1", port)).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(30)))
        .expect("timeout");
    write!(
        s,
        "{method} {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n"
    )
    .expect("request");
    let mut text = String::new();
    s.read_to_string(&mut text).expect("response");
    let (head, body) = text.split_once("\r\n\r\n").expect("header end");
    (head.to_string(), body.to_string())
}

fn iscsi_ha(cfg: &Path, args: &[&str]) {
    let o = Command::new(BIN)
        .arg("-c")
        .arg(cfg)
        .args(args)
        .output()
        .expect("iscsi-ha");
    assert!(o.status.success(), "{args:?}: {o:?}");
}

#[test]
fn scrape_after_promote() {
    let dir = tempfile::tempdir().expect("tempdir");
    let port = common::free_port();
    let mut cfg = common::config("one", true);
    cfg.sockets.control = dir.path().join("control.sock");
    cfg.metrics.listen = Some(([127, 0, 0, 1], port).into());
    let (_daemon, path) = common::simulated_daemon(BIN, dir.path(), &cfg);
    iscsi_ha(&path, &["promote"]);

    let (head, body) = get(port, "GET", "/metrics");
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    assert!(
        head.to_ascii_lowercase()
            .contains("content-type: application/openmetrics-text; version=1.0.0"),
        "{head}"
    );
    for series in [
        "iscsi_ha_transitions_total{kind=\"promote\",result=\"ok\"} 1\n",
        "iscsi_ha_transition_seconds_count{kind=\"promote\"} 1\n",
        "iscsi_ha_stage_seconds_count{kind=\"promote\",stage=\"drbd-primary\"} 1\n",
        "iscsi_ha_stage_seconds_count{kind=\"promote\",stage=\"address-claim\"} 1\n",
        "iscsi_ha_drbd_role{resource=\"r0\",role=\"Primary\"} 1\n",
        "iscsi_ha_drbd_role{resource=\"r0\",role=\"Secondary\"} 0\n",
        "iscsi_ha_drbd_disk{resource=\"r0\",state=\"UpToDate\"} 1\n",
        "iscsi_ha_drbd_connection{resource=\"r0\",state=\"Connected\"} 1\n",
        "iscsi_ha_target_state{resource=\"r0\",state=\"Serving\"} 1\n",
        "iscsi_ha_target_sessions{resource=\"r0\"} 0\n",
        "iscsi_ha_address_held{address=\"10.0.0.10/24\"} 1\n",
        "iscsi_ha_authority{authority=\"primary\"} 1\n",
        "iscsi_ha_converged 1\n",
        "iscsi_ha_alarms_active 0\n",
        "# TYPE iscsi_ha_authority_last_change_timestamp_seconds gauge\n",
        "# EOF\n",
    ] {
        assert!(body.contains(series), "{series:?} missing:\n{body}");
    }
    // the fingerprint to compare with the peer's, as status shows it
    let info = format!(
        "iscsi_ha_config_info{{fingerprint=\"{}\"}} 1\n",
        cfg.fingerprint()
    );
    assert!(body.contains(&info), "{info:?} missing:\n{body}");
    let (head, _) = get(port, "GET", "/other");
    assert!(head.starts_with("HTTP/1.1 404"), "{head}");
    let (head, _) = get(port, "POST", "/metrics");
    assert!(head.starts_with("HTTP/1.1 405"), "{head}");

    let Some(promtool) = common::which("promtool") else {
        test_support::prereq::skip("promtool check: promtool not installed (Debian `prometheus`)");
        return;
    };
    let mut check = Command::new(promtool)
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("promtool");
    check
        .stdin
        .take()
        .expect("stdin")
        .write_all(body.as_bytes())
        .expect("feed promtool");
    let o = check.wait_with_output().expect("promtool runs");
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    // promtool parses the older Prometheus text format, in which a counter's HELP names the
    // series (`x_total`); OpenMetrics names the family (`x`). That one complaint is expected
    // for each counter family; anything else is a defect.
    let counters: Vec<&str> = body
        .lines()
        .filter_map(|l| l.strip_prefix("# TYPE ")?.strip_suffix(" counter"))
        .collect();
    let unexpected: Vec<&str> = said
        .lines()
        .filter(|l| {
            !l.strip_suffix("_total no help text")
                .is_some_and(|name| counters.contains(&name))
        })
        .collect();
    assert!(unexpected.is_empty(), "promtool: {said}\n{body}");

    scraped_by_prometheus(dir.path(), port);
}

/// A real Prometheus (`prometheus` from Debian's package, private storage, loopback only)
/// scrapes the endpoint every second; its query API then returns the promote counted and the
/// target `up`.
fn scraped_by_prometheus(dir: &Path, port: u16) {
    let Some(prometheus) = common::which("prometheus") else {
        test_support::prereq::skip("real scrape: prometheus not installed (Debian `prometheus`)");
        return;
    };
    let conf = dir.join("prometheus.yml");
    std::fs::write(
        &conf,
        format!(
            "global:\n  scrape_interval: 1s\nscrape_configs:\n  - job_name: iscsi-ha\n    \
             static_configs:\n      - targets: ['127.0.0.1:{port}']\n"
        ),
    )
    .expect("prometheus.yml");
    let web = common::free_port();
    let _prom = common::Kill(
        Command::new(prometheus)
            .arg(format!("--config.file={}", conf.display()))
            .arg(format!(
                "--storage.tsdb.path={}",
                dir.join("tsdb").display()
            ))
            .arg(format!("--web.listen-address=127.0.0.1:{web}"))
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(dir.join("prometheus.log")).expect("log"))
            .spawn()
            .expect("prometheus"),
    );
    let query = |q: &str| -> Option<String> {
        TcpStream::connect(("127.0.0.1", web)).ok()?;
        let (head, body) = get(web, "GET", &format!("/api/v1/query?query={q}"));
        if !head.starts_with("HTTP/1.1 200") {
            return None;
        }
        let v: serde_json::Value = serde_json::from_str(&body).ok()?;
        v["data"]["result"][0]["value"][1]
            .as_str()
            .map(String::from)
    };
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let promotes = query("iscsi_ha_transitions_total%7Bkind%3D%22promote%22%7D");
        let up = query("up%7Bjob%3D%22iscsi-ha%22%7D");
        if promotes.as_deref() == Some("1") && up.as_deref() == Some("1") {
            break;
        }
        if Instant::now() > deadline {
            let log = std::fs::read_to_string(dir.join("prometheus.log")).unwrap_or_default();
            panic!("prometheus never stored the promote (got {promotes:?}, up {up:?}):\n{log}");
        }
        std::thread::sleep(Duration::from_millis(500));
    }
}
