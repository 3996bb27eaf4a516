//! `iscsi-ha events` against `iscsi-ha daemon --simulate`: the CLI follows the control socket
//! and prints each transition, refusal and health change as one JSON line as it happens.

use crate::common;

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

const BIN: &str = env!("CARGO_BIN_EXE_iscsi-ha");

fn iscsi_ha(cfg: &Path, args: &[&str]) -> bool {
    Command::new(BIN)
        .arg("-c")
        .arg(cfg)
        .args(args)
        .output()
        .expect("iscsi-ha")
        .status
        .success()
}

/// Lines from `rx` until one satisfies `want` (all of them, that one last).
fn until(
    rx: &mpsc::Receiver<serde_json::Value>,
    want: impl Fn(&serde_json::Value) -> bool,
) -> Vec<serde_json::Value> {
    let mut got = Vec::new();
    loop {
        match rx.recv_timeout(Duration::from_secs(60)) {
            Ok(v) => {
                let done = want(&v);
                got.push(v);
                if done {
                    return got;
                }
            }
            Err(e) => panic!("{e}; got {got:?}"),
        }
    }
}

#[test]
fn events_follow_transitions_refusals_and_health() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut cfg = common::config("one", true);
    cfg.sockets.control = dir.path().join("control.sock");
    let (_daemon, path) = common::simulated_daemon(BIN, dir.path(), &cfg);

    let mut follower = common::Kill(
        Command::new(BIN)
            .arg("-c")
            .arg(&path)
            .arg("events")
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("events"),
    );
    let mut err = BufReader::new(follower.0.stderr.take().expect("stderr"));
    let mut line = String::new();
    err.read_line(&mut line).expect("stderr line");
    assert!(line.contains("following events"), "{line}");
    let out = BufReader::new(follower.0.stdout.take().expect("stdout"));
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for l in out.lines().map_while(Result::ok) {
            let v: serde_json::Value =
                serde_json::from_str(&l).unwrap_or_else(|e| panic!("{e}: {l}"));
            if tx.send(v).is_err() {
                return;
            }
        }
    });

    assert!(iscsi_ha(&path, &["promote"]));
    let got = until(&rx, |v| v["event"] == "transition");
    let t = got.last().expect("transition");
    assert_eq!(t["node"], "test");
    assert_eq!(t["record"]["kind"], "promote");
    assert_eq!(t["record"]["result"], "ok");
    assert!(t["record"]["stages"]
        .as_array()
        .is_some_and(|s| !s.is_empty()));
    until(&rx, |v| {
        v["event"] == "health" && v["status"] == "Primary (authority primary): converged"
    });

    assert!(iscsi_ha(&path, &["maintenance", "on"]));
    assert!(!iscsi_ha(&path, &["promote"]), "refused in maintenance");
    let got = until(&rx, |v| v["event"] == "refusal");
    let r = got.last().expect("refusal");
    assert!(
        r["reason"]
            .as_str()
            .is_some_and(|s| s.contains("maintenance")),
        "{r}"
    );
    assert!(r["unix_ms"].as_u64().is_some_and(|ms| ms > 0));
}
