//! DRBD bring-up through drbd-nl: the guest driver `drbd-lab` (built from
//! `tests/src/bin/drbd-lab.rs`, visible in the guests over the 9p share) does every netlink step;
//! `drbdmeta` (create-md, apply-al) is the only drbd-utils tool used, because meta-data is not
//! netlink. Drop-in replacements of `bringup::drbd84_pair_up` and `bringup::drbd84_primary`.

use std::time::Duration;

use anyhow::{bail, Result};

use crate::bringup::{wait_until, Resource};
use crate::{Node, Output};

/// Runs `drbd-lab ARGS` on `node` and returns its exit status and output, whatever they are.
pub fn drbd_lab_run(node: &Node, args: &str) -> Result<Output> {
    node.run(&format!("{} {args}", Node::guest_bin("drbd-lab")))
}

/// Runs `drbd-lab ARGS` on `node`; Err with its output unless it exits 0. Typed DRBD errors
/// print as `ERROR Kernel <ERR_*>` / `ERROR StateChange <SS_*>`.
pub fn drbd_lab(node: &Node, args: &str) -> Result<String> {
    let o = drbd_lab_run(node, args)?;
    if o.rc != 0 {
        bail!(
            "node {}: drbd-lab {args}: rc {}\n{}{}",
            node.name(),
            o.rc,
            o.stdout,
            o.stderr
        );
    }
    Ok(o.stdout)
}

/// `new-resource`, `new-minor`, `attach` (internal meta-data) and `connect` (protocol C) on
/// `node` towards `peer`, all through drbd-nl. `md` is `--create-md` (fresh disk),
/// `--apply-al` (after a power loss) or empty.
pub fn drbdnl_up(node: &Node, peer: &Node, r: &Resource, md: &str) -> Result<()> {
    drbd_lab(
        node,
        &format!(
            "up {n} {m} {d} {me}:{p} {peer}:{p} {md}",
            n = r.name,
            m = r.minor,
            d = r.disk,
            me = node.ip(),
            peer = peer.ip(),
            p = r.port
        ),
    )?;
    Ok(())
}

/// Brings a fresh pair to `Connected`, `UpToDate/UpToDate` (initial sync skipped with
/// `new-current-uuid --clear-bitmap`), `a` Primary, through drbd-nl only.
pub fn drbdnl_pair_up(a: &Node, b: &Node, r: &Resource) -> Result<()> {
    std::thread::scope(|s| -> Result<()> {
        let hb = s.spawn(|| drbdnl_up(b, a, r, "--create-md"));
        drbdnl_up(a, b, r, "--create-md")?;
        hb.join()
            .map_err(|_| anyhow::anyhow!("bring-up thread panicked"))??;
        Ok(())
    })?;
    let m = r.minor;
    drbd_lab(a, &format!("wait {m} Connected 60"))?;
    drbd_lab(a, &format!("new-uuid {m}"))?;
    wait_until(
        a,
        &format!("grep -q '^ *{m}: cs:Connected .*ds:UpToDate/UpToDate' /proc/drbd"),
        "UpToDate/UpToDate",
        Duration::from_secs(30),
    )?;
    drbdnl_primary(a, r)
}

/// `primary <minor>` through drbd-nl, retried for up to 5 s while a dead peer still looks
/// connected (the kernel then refuses with a state-change error).
pub fn drbdnl_primary(node: &Node, r: &Resource) -> Result<()> {
    let t = std::time::Instant::now();
    loop {
        match drbd_lab(node, &format!("primary {}", r.minor)) {
            Ok(_) => return Ok(()),
            Err(e) if t.elapsed() < Duration::from_secs(5) => {
                let _ = e;
                std::thread::sleep(Duration::from_millis(100));
            }
            Err(e) => return Err(e),
        }
    }
}

/// Latencies in ms summarised for the benchmarks' JSON: `n`, `median_ms`, `p95_ms`, `min_ms`,
/// `max_ms` (nearest rank).
pub fn stats(v: Vec<f64>) -> serde_json::Value {
    test_support::stats::summary_ms(&v)
}
