//! A DRBD 9 pair brought up with Debian's DRBD 9 `drbdsetup` (the test oracle), one step per
//! function like [`crate::bringup`]'s 8.4 steps. Node ids are the node indexes (`a` = 0, `b` = 1).

use anyhow::{anyhow, Result};
use std::time::Duration;

use crate::bringup::{wait_until, Resource};
use crate::Node;

/// The `exists`/`change` lines of `drbdsetup events2 --now RESOURCE` (one object per line).
pub fn events_now(node: &Node, r: &Resource) -> Result<String> {
    Ok(node
        .run_ok(&format!("drbdsetup events2 --now {}", r.name))?
        .stdout)
}

/// Fresh metadata (`drbdmeta create-md`, one peer slot), `new-resource` with the node id,
/// `new-minor`, `new-peer` + `new-path` to `peer`, `attach`: `drbdadm up` before `connect`.
/// `--connect-int=1`: a simultaneous connect that loses the race retries after 1 s, not 10 s.
pub fn attach(node: &Node, peer: &Node, r: &Resource) -> Result<()> {
    create_md(node, r)?;
    node.run_ok(&format!(
        "drbdsetup new-resource {n} {me} && drbdsetup new-minor {n} {m} 0 && \
         drbdsetup new-peer {n} {pid} --_name={pname} --protocol=C --connect-int=1 && \
         drbdsetup new-path {n} {pid} ipv4:{mip}:{p} ipv4:{pip}:{p} && \
         drbdsetup attach {m} {d} {d} internal",
        m = r.minor,
        d = r.disk,
        n = r.name,
        me = node.index(),
        pid = peer.index(),
        pname = peer.name(),
        mip = node.ip(),
        pip = peer.ip(),
        p = r.port
    ))?;
    Ok(())
}

/// `drbdsetup connect RESOURCE PEER_ID`.
pub fn connect(node: &Node, peer: &Node, r: &Resource) -> Result<()> {
    node.run_ok(&format!("drbdsetup connect {} {}", r.name, peer.index()))?;
    Ok(())
}

/// Both nodes attached and connecting in parallel; returns when `a` sees the connection
/// `Connected`.
pub fn pair_connect(a: &Node, b: &Node, r: &Resource) -> Result<()> {
    std::thread::scope(|s| -> Result<()> {
        let hb = s.spawn(|| -> Result<()> {
            attach(b, a, r)?;
            connect(b, a, r)
        });
        attach(a, b, r)?;
        connect(a, b, r)?;
        hb.join().map_err(|_| anyhow!("bring-up thread panicked"))?
    })?;
    wait_until(
        a,
        &format!(
            "drbdsetup events2 --now {} | grep -q '^exists connection .*connection:Connected'",
            r.name
        ),
        "DRBD 9 connection Connected",
        Duration::from_secs(60),
    )?;
    Ok(())
}

/// On a fresh connected pair: `new-current-uuid --clear-bitmap` on `a` (both `UpToDate` without
/// an initial sync), waits for `a`'s disk and its peer's disk `UpToDate`.
pub fn skip_sync(a: &Node, r: &Resource) -> Result<()> {
    a.run_ok(&format!(
        "drbdsetup new-current-uuid --clear-bitmap {}",
        r.minor
    ))?;
    wait_until(
        a,
        &format!(
            "e=$(drbdsetup events2 --now {n}); echo \"$e\" | grep -q '^exists device .*disk:UpToDate' && \
             echo \"$e\" | grep -q '^exists peer-device .*replication:Established peer-disk:UpToDate'",
            n = r.name
        ),
        "DRBD 9 UpToDate on both",
        Duration::from_secs(60),
    )?;
    Ok(())
}

/// A fresh pair up to `UpToDate`/`UpToDate`, both Secondary.
pub fn pair_up(a: &Node, b: &Node, r: &Resource) -> Result<()> {
    pair_connect(a, b, r)?;
    skip_sync(a, r)
}

/// `drbdsetup primary RESOURCE` (DRBD 9 roles are per resource).
pub fn primary(node: &Node, r: &Resource) -> Result<()> {
    node.run_ok(&format!("drbdsetup primary {}", r.name))?;
    Ok(())
}

/// `drbdsetup secondary RESOURCE`.
pub fn secondary(node: &Node, r: &Resource) -> Result<()> {
    node.run_ok(&format!("drbdsetup secondary {}", r.name))?;
    Ok(())
}

/// `drbdsetup down RESOURCE` if it exists.
pub fn down(node: &Node, r: &Resource) -> Result<()> {
    node.run_ok(&format!(
        "drbdsetup status {n} >/dev/null 2>&1 || exit 0; drbdsetup down {n}",
        n = r.name
    ))?;
    Ok(())
}

/// Runs the guest driver `drbd9-lab ARGS` (drbd-nl's DRBD 9 API) on `node`, whatever its result.
pub fn nl_run(node: &Node, args: &str) -> Result<crate::Output> {
    node.run(&format!("{} {args}", Node::guest_bin("drbd9-lab")))
}

/// Runs `drbd9-lab ARGS` on `node`; Err with its output unless it exits 0. Typed DRBD errors
/// print as `ERROR Kernel <ERR_*>` / `ERROR StateChange <SS_*>`.
pub fn nl(node: &Node, args: &str) -> Result<String> {
    let o = nl_run(node, args)?;
    if o.rc != 0 {
        anyhow::bail!(
            "node {}: drbd9-lab {args}: rc {}\n{}{}",
            node.name(),
            o.rc,
            o.stdout,
            o.stderr
        );
    }
    Ok(o.stdout)
}

/// Powers `node` on if it is off and takes resource `r` down: a clean node for the next test.
pub fn reset(node: &Node, r: &Resource) -> Result<()> {
    if node.pid().is_none() {
        node.boot()?;
    }
    down(node, r)
}

/// Fresh DRBD 9 metadata for one peer (`drbdmeta create-md`), nothing brought up.
pub fn create_md(node: &Node, r: &Resource) -> Result<()> {
    node.run_ok(&format!(
        "drbdmeta --force {m} v09 {d} internal create-md 1 >/tmp/create-md.log 2>&1 || \
         {{ cat /tmp/create-md.log; exit 1; }}",
        m = r.minor,
        d = r.disk
    ))?;
    Ok(())
}

/// Milliseconds (guest clock; busybox `date` has no `%N`, `adjtimex` gives microseconds) of what `drbdadm up` runs for the agent's managed resource, six
/// `drbdsetup` processes with the same options (`node` new-resource .. connect towards `peer`,
/// which need not answer); the resource is taken down afterwards. The baseline of the agent's
/// `drbd-up` stage.
pub fn drbdsetup_up_ms(node: &Node, peer: &Node, r: &Resource) -> Result<f64> {
    create_md(node, r)?;
    let out = node.run_ok(&format!(
        "us() {{ adjtimex | awk '/tv_sec/{{s=$2}} /tv_usec/{{u=$2}} END{{printf \"%d%06d\", s, u}}'; }}
         s=$(us); drbdsetup new-resource {n} {me} && drbdsetup new-minor {n} {m} 0 && \
         drbdsetup new-peer {n} {pid} --_name=node-{pid} --protocol=C --fencing=resource-only \
         --after-sb-0pri=disconnect --after-sb-1pri=disconnect --after-sb-2pri=disconnect \
         --ping-int=2 --ping-timeout=5 --timeout=60 --ko-count=4 && \
         drbdsetup new-path {n} {pid} ipv4:{mip}:{p} ipv4:{pip}:{p} && \
         drbdsetup attach {m} {d} {d} internal && drbdsetup connect {n} {pid} && \
         e=$(us) && echo $((e - s))",
        n = r.name,
        me = node.index(),
        m = r.minor,
        pid = peer.index(),
        mip = node.ip(),
        pip = peer.ip(),
        p = r.port,
        d = r.disk,
    ))?;
    down(node, r)?;
    let micros: f64 = out.stdout.trim().parse().map_err(|_| {
        anyhow!(
            "node {}: no duration from drbdsetup up: {}",
            node.name(),
            out.stdout
        )
    })?;
    Ok(micros / 1000.0)
}
