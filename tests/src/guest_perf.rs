//! A developer's CPU profile of a guest: the host's `perf` run inside a TCG guest, system wide,
//! around a span a bench measures (`LAB_PERF=1`; today bench-takeover's scaling runs).
//!
//! The guest image has no `perf`: copy the host's binary, its libraries and its loader into
//! `perf/` of the directory shared at [`crate::GUEST_TARGET`] (flat; the loader is called with
//! `--library-path`), e.g. for `LAB_TARGET_DIR=target/lab-bins`:
//!
//! ```text
//! mkdir -p target/lab-bins/perf && cp -L /usr/bin/perf $(ldd /usr/bin/perf | awk '/=>/ {print $3}') \
//!     /lib64/ld-linux-x86-64.so.2 target/lab-bins/perf/
//! ```
//!
//! TCG has no PMU, so the event is `cpu-clock` (a timer); the profile is flat (`comm,dso,sym`)
//! unless `LAB_PERF=g` asks for call graphs, which need an agent built with frame pointers (the
//! release agent has none; the report's inclusive section is empty without them). Samples carry the guest's wall clock (`-k realtime`)
//! so that a report covers exactly a span the agent recorded. Reports go to `target/lab-report/perf-*.txt`.

use crate::Node;
use anyhow::Result;
use std::fs;

/// The guest's command prefix that runs the shared `perf`.
fn perf() -> String {
    let d = format!("{}/perf", crate::GUEST_TARGET);
    format!("{d}/ld-linux-x86-64.so.2 --library-path {d} {d}/perf")
}

/// Whether `LAB_PERF` asks for profiles and the guest sees a `perf` (a clear error if it asks
/// and there is none).
pub fn wanted(node: &Node) -> Result<bool> {
    if std::env::var_os("LAB_PERF").is_none() {
        return Ok(false);
    }
    let o = node.run(&format!("[ -x {}/perf/perf ]", crate::GUEST_TARGET))?;
    if o.rc != 0 {
        anyhow::bail!(
            "LAB_PERF is set but the guest has no {}/perf/perf (see tests/src/guest_perf.rs)",
            crate::GUEST_TARGET
        );
    }
    Ok(true)
}

/// Starts a system-wide record into `/tmp/perf-<tag>.data` and waits until it writes.
pub fn start(node: &Node, tag: &str) -> Result<()> {
    node.run_ok(&format!(
        "rm -f /tmp/perf-{tag}.data; {p} record -e cpu-clock -F 1000 -k realtime -a {g} -o /tmp/perf-{tag}.data \
         >/tmp/perf-{tag}.log 2>&1 </dev/null & echo $! >/tmp/perf.pid; \
         i=0; while [ ! -s /tmp/perf-{tag}.data ] && [ $i -lt 300 ]; do sleep 0.1; i=$((i+1)); done; sleep 1",
        p = perf(),
        g = if call_graphs() { "-g" } else { "" },
    ))?;
    Ok(())
}

/// `LAB_PERF=g`: call graphs from frame pointers (`perf record -g`); useful with an agent built
/// with `RUSTFLAGS="-C force-frame-pointers=yes"`.
fn call_graphs() -> bool {
    std::env::var("LAB_PERF").is_ok_and(|v| v.contains('g'))
}

/// Stops the record [`start`] began.
pub fn stop(node: &Node) -> Result<()> {
    node.run_ok(
        "kill -INT $(cat /tmp/perf.pid); while kill -0 $(cat /tmp/perf.pid) 2>/dev/null; do sleep 0.2; done",
    )?;
    Ok(())
}

/// Writes `perf report` of the samples between `from` and `to` (guest wall clock, Unix ms, as the
/// agent's transition records give it) to `target/lab-report/perf-<tag>.txt`.
pub fn report(node: &Node, tag: &str, from_unix_ms: f64, to_unix_ms: f64) -> Result<()> {
    let o = node.run_ok(&format!(
        "r='{p} report -i /tmp/perf-{tag}.data --stdio -n --time {t0:.3},{t1:.3}'; \
         echo '=== by command and object'; $r -g none --sort comm,dso 2>&1 | grep -v '^#' | head -60; \
         echo '=== the agent, by symbol'; $r -g none --comms iscsi-ha,tokio-rt-worker --sort dso,sym 2>&1 | grep -v '^#' | head -150; \
         echo '=== the agent, inclusive (call graphs: LAB_PERF=g and frame pointers)'; \
         $r --comms iscsi-ha,tokio-rt-worker --children --sort sym -g none --percent-limit 1.5 2>&1 | grep -v '^#' | head -200; \
         echo '=== tgtd, by symbol'; $r -g none --comms tgtd --sort dso,sym 2>&1 | grep -v '^#' | head -40; \
         echo '=== everything, by symbol'; $r -g none --sort comm,dso,sym 2>&1 | grep -v '^#' | head -150; \
         cat /tmp/perf-{tag}.log",
        p = perf(),
        t0 = from_unix_ms / 1000.0,
        t1 = to_unix_ms / 1000.0,
    ))?;
    let dir = crate::assets::report_dir();
    fs::create_dir_all(&dir)?;
    let path = dir.join(format!("perf-{tag}.txt"));
    fs::write(&path, &o.stdout)?;
    eprintln!("lab: perf profile in {}", path.display());
    Ok(())
}
