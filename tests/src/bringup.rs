//! Scenario steps shared by tests and the drill, with the classic tools for now: DRBD via
//! drbd-utils' `drbdsetup-84`/`drbdmeta` (the drbd-nl issue replaces [`drbd84_pair_up`] and
//! [`drbd84_primary`]), tgtd via `tgtadm`, the floating address via `ip addr` + busybox `arping`
//! inside the guest. Each function is one small step so later issues can swap it out.

use anyhow::{bail, Result};
use std::time::{Duration, Instant};

use crate::{Node, Output};

/// A DRBD 8.4 resource with one volume on each node's `/dev/vda`.
#[derive(Debug, Clone)]
pub struct Resource {
    /// Resource name.
    pub name: String,
    /// Minor number (`/dev/drbd<minor>`).
    pub minor: u32,
    /// Replication TCP port.
    pub port: u16,
    /// Backing disk in the guest.
    pub disk: String,
}

impl Default for Resource {
    fn default() -> Self {
        Resource {
            name: "r0".into(),
            minor: 1,
            port: 7789,
            disk: "/dev/vda".into(),
        }
    }
}

impl Resource {
    /// `/dev/drbd<minor>`.
    pub fn device(&self) -> String {
        format!("/dev/drbd{}", self.minor)
    }
}

/// Polls `script` on `node` every 100 ms until it exits 0; Err after `timeout` with the last output.
pub fn wait_until(node: &Node, script: &str, what: &str, timeout: Duration) -> Result<Output> {
    let t = Instant::now();
    loop {
        let o = node.run(script)?;
        if o.rc == 0 {
            return Ok(o);
        }
        if t.elapsed() > timeout {
            bail!(
                "node {}: timeout ({timeout:?}) waiting for {what}; last output:\n{}{}\n--- console ---\n{}",
                node.name(),
                o.stdout,
                o.stderr,
                node.log_tail(20)
            );
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Metadata + `new-resource`, `new-minor`, `attach` on one node (`drbdmeta create-md` only if
/// `create_md`). Equivalent of the `drbdadm up` steps before `connect`.
pub fn drbd84_attach(node: &Node, r: &Resource, create_md: bool) -> Result<()> {
    let m = r.minor;
    let md = if create_md {
        format!(
            "drbdmeta --force {m} v08 {d} internal create-md >/tmp/create-md.log 2>&1 || {{ cat /tmp/create-md.log; exit 1; }}\n",
            d = r.disk
        )
    } else {
        // After a power loss the activity log is unclean; attach refuses it (165) until replayed.
        format!(
            "drbdmeta --force {m} v08 {d} internal apply-al >/dev/null 2>&1\n",
            d = r.disk
        )
    };
    node.run_ok(&format!(
        "{md}drbdsetup-84 new-resource {n} && drbdsetup-84 new-minor {n} {m} 0 && drbdsetup-84 attach {m} {d} {d} internal",
        n = r.name,
        d = r.disk
    ))?;
    Ok(())
}

/// `drbdsetup-84 connect` from `node` to `peer` (protocol C). `--connect-int=1`: when both sides
/// connect at the same moment the handshake can lose the race and would wait the default 10 s.
/// The peer-failure detection settings are the agent's documented recommendation
/// ([`DRBD_NET_OPTIONS`], docs/takeover.md).
pub fn drbd84_connect(node: &Node, peer: &Node, r: &Resource) -> Result<()> {
    node.run_ok(&format!(
        "drbdsetup-84 connect {n} ipv4:{me}:{p} ipv4:{peer}:{p} --protocol=C --connect-int=1 {DRBD_NET_OPTIONS}",
        n = r.name,
        me = node.ip(),
        peer = peer.ip(),
        p = r.port
    ))?;
    Ok(())
}

/// DRBD's peer-failure detection options as docs/takeover.md recommends them (the agent's
/// manage-mode defaults): ping-int 2 s, ping-timeout 0.5 s, timeout 6 s, ko-count 4.
pub const DRBD_NET_OPTIONS: &str = "--ping-int=2 --ping-timeout=5 --timeout=60 --ko-count=4";

/// The `cs:` line of `/proc/drbd` for the resource's minor.
pub fn proc_drbd_line(node: &Node, r: &Resource) -> Result<String> {
    let o = node.run_ok("cat /proc/drbd")?;
    let key = format!("{}: cs:", r.minor);
    Ok(o.stdout
        .lines()
        .find(|l| l.trim_start().starts_with(&key))
        .unwrap_or("")
        .trim()
        .to_string())
}

/// Brings a fresh pair to `Connected`, `UpToDate/UpToDate` (initial sync skipped with
/// `new-current-uuid --clear-bitmap`), `a` Primary. Both nodes are configured in parallel.
pub fn drbd84_pair_up(a: &Node, b: &Node, r: &Resource) -> Result<()> {
    drbd84_pair_connect(a, b, r)?;
    drbd84_skip_sync_and_promote(a, r)
}

/// Fresh metadata, attach and connect on both nodes (in parallel); returns when `a` sees
/// `cs:Connected`.
pub fn drbd84_pair_connect(a: &Node, b: &Node, r: &Resource) -> Result<()> {
    std::thread::scope(|s| -> Result<()> {
        let hb = s.spawn(|| -> Result<()> {
            drbd84_attach(b, r, true)?;
            drbd84_connect(b, a, r)
        });
        drbd84_attach(a, r, true)?;
        drbd84_connect(a, b, r)?;
        hb.join()
            .map_err(|_| anyhow::anyhow!("bring-up thread panicked"))??;
        Ok(())
    })?;
    let m = r.minor;
    wait_until(
        a,
        &format!("grep -q '^ *{m}: cs:Connected' /proc/drbd"),
        "DRBD Connected",
        Duration::from_secs(30),
    )?;
    Ok(())
}

/// On a fresh `Connected` pair: `new-current-uuid --clear-bitmap` (both `UpToDate` without an
/// initial sync), then `primary` on `a`.
pub fn drbd84_skip_sync_and_promote(a: &Node, r: &Resource) -> Result<()> {
    let m = r.minor;
    a.run_ok(&format!("drbdsetup-84 new-current-uuid --clear-bitmap {m}"))?;
    wait_until(
        a,
        &format!("grep -q '^ *{m}: cs:Connected .*ds:UpToDate/UpToDate' /proc/drbd"),
        "UpToDate/UpToDate",
        Duration::from_secs(30),
    )?;
    drbd84_primary(a, r)?;
    Ok(())
}

/// `drbdsetup-84 primary <minor>` (retried for up to 5 s while a dead peer still looks connected).
pub fn drbd84_primary(node: &Node, r: &Resource) -> Result<()> {
    wait_until(
        node,
        &format!("drbdsetup-84 primary {}", r.minor),
        "drbdsetup-84 primary",
        Duration::from_secs(5),
    )?;
    Ok(())
}

/// Writes `marker` (at most 512 bytes) to sector 0 of `dev` with `O_DIRECT`-like `fsync`.
pub fn write_marker(node: &Node, dev: &str, marker: &str) -> Result<()> {
    if marker.contains(['\'', '\n']) || marker.len() > 512 {
        bail!("marker must be one line without quotes, at most 512 bytes");
    }
    node.run_ok(&format!(
        "printf '%s' '{marker}' | dd of={dev} bs=512 count=1 conv=sync,fsync 2>/dev/null"
    ))?;
    Ok(())
}

/// Reads `len` bytes from the start of `dev`.
pub fn read_marker(node: &Node, dev: &str, len: usize) -> Result<String> {
    Ok(node
        .run_ok(&format!(
            "dd if={dev} bs=512 count=1 iflag=direct 2>/dev/null | head -c {len}"
        ))?
        .stdout)
}

/// Starts `tgtd -f` in the background (if not running) and waits until `tgtadm` answers.
pub fn tgtd_start(node: &Node) -> Result<()> {
    tgtd_start_with(node, tgtd_threads())
}

/// [`tgtd_start`] with `threads` I/O threads per LU (`tgtd -t N`; None: tgtd's default, 16).
pub fn tgtd_start_with(node: &Node, threads: Option<u32>) -> Result<()> {
    node.run_ok(&format!(
        "pidof tgtd >/dev/null || {{ tgtd -f{threads} --iscsi portal=0.0.0.0:3260 >/tmp/tgtd.log 2>&1 & }}",
        threads = threads.map_or(String::new(), |n| format!(" -t {n}"))
    ))?;
    wait_until(
        node,
        "tgtadm --lld iscsi --op show --mode system >/dev/null 2>&1",
        "tgtd to answer",
        Duration::from_secs(10),
    )?;
    Ok(())
}

/// `LAB_TGTD_THREADS`: tgtd's I/O threads per logical unit (`tgtd -t N`, `--nr_iothreads`);
/// unset, tgtd's default (16, as Debian's unit starts it). Each LU's `new` starts that many
/// threads, which dominates a many-resource promote in a TCG guest (docs/takeover.md,
/// "Several resources").
pub fn tgtd_threads() -> Option<u32> {
    std::env::var("LAB_TGTD_THREADS")
        .ok()
        .and_then(|v| v.parse().ok())
        .filter(|&n| n > 0)
}

/// Target `tid` named `iqn` with LUN 1 on `dev`, open to all initiators. Equivalent of
/// `tgtadm --op new --mode target`, `--mode logicalunit`, `--op bind -I ALL`.
pub fn tgt_serve(node: &Node, tid: u32, iqn: &str, dev: &str) -> Result<()> {
    tgtd_start(node)?;
    node.run_ok(&format!(
        "tgtadm --lld iscsi --op new --mode target --tid {tid} -T {iqn} && \
         tgtadm --lld iscsi --op new --mode logicalunit --tid {tid} --lun 1 -b {dev} && \
         tgtadm --lld iscsi --op bind --mode target --tid {tid} -I ALL"
    ))?;
    Ok(())
}

/// Adds the floating address to `eth0` and sends one gratuitous ARP (busybox `arping -U`).
pub fn claim_vip(node: &Node, vip: std::net::Ipv4Addr) -> Result<()> {
    node.run_ok(&format!(
        "ip addr add {vip}/{p} dev eth0 && arping -U -c 1 -I eth0 {vip} >/dev/null",
        p = crate::PREFIX
    ))?;
    Ok(())
}

/// `iscsi://HOST/IQN/LUN`.
pub fn iscsi_url(host: std::net::Ipv4Addr, iqn: &str, lun: u32) -> String {
    format!("iscsi://{host}/{iqn}/{lun}")
}

/// Parses `Total size:<n>` from `iscsi-readcapacity16` output.
pub fn parse_total_size(out: &str) -> Option<u64> {
    out.lines()
        .find_map(|l| l.trim().strip_prefix("Total size:"))
        .and_then(|v| v.trim().parse().ok())
}

/// Returns `node` to its boot-time state so the next test in a shared lab starts clean: powers it
/// on if it is off, `drbdsetup-84 down` of every resource, tgtd killed (a restarted tgtd comes back
/// empty), the floating address removed.
pub fn reset_node(node: &Node) -> Result<()> {
    if node.pid().is_none() {
        node.boot()?;
    }
    node.run_ok(&format!(
        "p=$(pidof tgtd) && kill -9 $p; i=0; while pidof tgtd >/dev/null && [ $i -lt 100 ]; do sleep 0.05; i=$((i+1)); done; \
         rm -f /var/run/tgtd/socket.*; \
         for r in $(drbdsetup-84 show 2>/dev/null | sed -n 's/^resource \\([^ ]*\\) {{/\\1/p'); do drbdsetup-84 down $r || exit 1; done; \
         ip addr del {}/{} dev eth0 2>/dev/null; true",
        crate::FLOATING_IP,
        crate::PREFIX
    ))?;
    Ok(())
}

/// [`reset_node`] on every node of the lab.
pub fn reset_lab(lab: &crate::Lab) -> Result<()> {
    for n in lab.nodes() {
        reset_node(n)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    #[test]
    fn total_size_parses() {
        let s = "Block size:512\nTotal size:16740352\n";
        assert_eq!(super::parse_total_size(s), Some(16740352));
        assert_eq!(super::parse_total_size("junk"), None);
    }
}
