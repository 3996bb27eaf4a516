//! 2 nodes. Proves that drbd-nl alone (guest driver `drbd-lab`, no drbdsetup on the product path)
//! brings up a replicated DRBD 8.4 pair, promotes and demotes it, reports role changes, peer loss
//! (the peer VM powered off) and reconnect as events, returns the right typed errors (promote while
//! the peer is Primary; attach of a missing device), and that its status agrees with the oracle
//! `drbdsetup-84 status` / `/proc/drbd`.

use std::time::Duration;

use anyhow::{Context, Result};
use lab::bringup::wait_until;
use lab::{bringup, Lab, Node};

use lab::drbd;

const RES: &str = "r0";
const MINOR: u32 = 1;

/// Starts `drbd-lab events` in the background on `node`, writing to `file`.
fn start_events(node: &Node, file: &str, secs: u32) -> Result<()> {
    node.run_ok(&format!(
        "({} events {secs} > {file} 2>&1 &) ; sleep 0.3; cat {file}",
        Node::guest_bin("drbd-lab")
    ))?;
    wait_until(
        node,
        &format!("grep -q 'OK subscribed' {file}"),
        "events subscribed",
        Duration::from_secs(10),
    )?;
    Ok(())
}

fn wait_event(node: &Node, file: &str, pattern: &str, what: &str) -> Result<()> {
    wait_until(
        node,
        &format!("grep -q -E '{pattern}' {file}"),
        what,
        Duration::from_secs(30),
    )
    .map(|_| ())
}

#[test]
fn drbd_pair_through_drbd_nl() -> Result<()> {
    if !lab::require_lab() {
        return Ok(());
    }
    let lab = Lab::shared()?;
    let (a, b) = (lab.node(0)?, lab.node(1)?);
    let res = scenario(a, b);
    if res.is_err() {
        eprintln!("{}", lab.logs_tail(30));
    }
    res
}

fn scenario(a: &Node, b: &Node) -> Result<()> {
    // Bring-up only through drbd-nl (drbdmeta create-md is not netlink; test-only tool).
    let r = bringup::Resource::default();
    std::thread::scope(|s| -> Result<()> {
        let hb = s.spawn(|| drbd::drbdnl_up(b, a, &r, "--create-md"));
        drbd::drbdnl_up(a, b, &r, "--create-md")?;
        hb.join()
            .map_err(|_| anyhow::anyhow!("thread panicked"))??;
        Ok(())
    })?;
    drbd::drbd_lab(a, &format!("wait {MINOR} Connected 60"))?;
    drbd::drbd_lab(a, &format!("new-uuid {MINOR}"))?;
    wait_until(
        a,
        &format!("grep -q '^ *{MINOR}: cs:Connected .*ds:UpToDate/UpToDate' /proc/drbd"),
        "UpToDate/UpToDate",
        Duration::from_secs(30),
    )?;

    // Events for role changes.
    start_events(a, "/tmp/ev-a.log", 300)?;
    drbd::drbd_lab(a, &format!("primary {MINOR}"))?;
    wait_event(
        a,
        "/tmp/ev-a.log",
        "EV [0-9]+ 1,r0\\[0\\] .*ro:Primary/Secondary",
        "Primary event",
    )?;

    // Status agrees with the oracles.
    let ours = drbd::drbd_lab(a, "status")?;
    let line = ours
        .lines()
        .find(|l| l.starts_with("ST 1,r0[0]"))
        .context("no status line")?;
    assert!(
        line.contains("cs:Connected ro:Primary/Secondary ds:UpToDate/UpToDate"),
        "drbd-nl status: {line}"
    );
    let blocking = drbd::drbd_lab(a, "status --blocking")?;
    assert_eq!(blocking, ours, "status through execute_blocking vs execute");
    let proc_drbd = a.run_ok("cat /proc/drbd")?.stdout;
    assert!(
        proc_drbd.contains("1: cs:Connected ro:Primary/Secondary ds:UpToDate/UpToDate"),
        "/proc/drbd: {proc_drbd}"
    );
    let oracle = a.run_ok("drbdsetup-84 status --color=never r0")?.stdout;
    assert!(
        oracle.contains("role:Primary"),
        "drbdsetup-84 status: {oracle}"
    );
    assert!(
        oracle.contains("disk:UpToDate"),
        "drbdsetup-84 status: {oracle}"
    );
    if lab_has_example(a, "drbd-nl-status") {
        let ex = a
            .run_ok(&format!("{} r0", Node::guest_example("drbd-nl-status")))?
            .stdout;
        assert_eq!(
            ex.trim(),
            oracle.trim(),
            "drbd-nl-status example vs drbdsetup-84 status"
        );
    }

    // Promote while the peer is Primary: SS_TWO_PRIMARIES, typed.
    let o = drbd::drbd_lab_run(b, &format!("primary {MINOR}"))?;
    assert_ne!(o.rc, 0);
    assert!(
        o.stdout.contains("ERROR StateChange SS_TWO_PRIMARIES"),
        "{}",
        o.stdout
    );

    // Demote, event.
    drbd::drbd_lab(a, &format!("secondary {MINOR}"))?;
    wait_event(
        a,
        "/tmp/ev-a.log",
        "EV [0-9]+ 1,r0\\[0\\] .*ro:Secondary/Secondary",
        "Secondary event",
    )?;
    drbd::drbd_lab(a, &format!("primary {MINOR}"))?;

    // Attach of a missing device: ERR_OPEN_DISK, typed.
    b.run_ok(&format!(
        "{bin} down rx >/dev/null 2>&1; true",
        bin = Node::guest_bin("drbd-lab")
    ))?;
    let o = drbd::drbd_lab_run(b, "up rx 9 /dev/nonexistent 127.0.0.1:7800 127.0.0.2:7800")?;
    assert_ne!(o.rc, 0);
    assert!(
        o.stdout.contains("ERROR Kernel ERR_OPEN_DISK"),
        "{}",
        o.stdout
    );
    drbd::drbd_lab(b, "down rx")?;

    // Peer loss: power off b; a sees the connection drop.
    b.kill()?;
    wait_event(
        a,
        "/tmp/ev-a.log",
        "EV [0-9]+ 1,r0\\[0\\] .*cs:(NetworkFailure|BrokenPipe|Timeout|WFConnection) ro:Primary/Unknown",
        "peer-loss event",
    )?;

    // Reconnect: b boots, comes back up through drbd-nl (meta-data kept on its disk).
    b.boot()?;
    drbd::drbdnl_up(b, a, &r, "--apply-al")?;
    wait_event(
        a,
        "/tmp/ev-a.log",
        "EV [0-9]+ 1,r0\\[0\\] .*cs:Connected ro:Primary/Secondary",
        "reconnect event",
    )?;

    // Leave the shared lab as we found it.
    drbd::drbd_lab(a, &format!("secondary {MINOR}"))?;
    drbd::drbd_lab(a, &format!("down {RES}"))?;
    drbd::drbd_lab(b, &format!("down {RES}"))?;
    Ok(())
}

fn lab_has_example(node: &Node, name: &str) -> bool {
    node.run(&format!("test -x {}", Node::guest_example(name)))
        .map(|o| o.rc == 0)
        .unwrap_or(false)
}
