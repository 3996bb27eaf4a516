//! The `iscsi-ha` agent in the lab: one agent per guest, driven the way a XenServer / XCP-ng pool
//! drives it (`/etc/xensource/pool.conf`) or by an operator (`iscsi-ha promote|demote`).
//!
//! Each helper is one small step run over the control channel: write the agent's config
//! ([`install_config`]), write pool.conf the way XAPI does (temporary file + `mv`,
//! [`set_pool_conf`]), start `tgtd -f` as a service manager would ([`start_tgtd`]), start the agent
//! in the background with its log in [`AGENT_LOG`] ([`start_agent`]), ask `iscsi-ha status --json`
//! ([`status`]), and wait for a condition on that status with a description and a timeout
//! ([`wait_status`]; the error carries the last status and the agent's log tail).
//!
//! DRBD is brought up by `drbdsetup-84` ([`crate::bringup`]): the agent runs in `adopt` mode and
//! does promote/demote, tgtd serving and the floating address itself. [`managed_pair_up`] and
//! [`managed_rejoin`] run the agents in `manage` mode instead: they bring DRBD up themselves.

use anyhow::{anyhow, bail, Result};
use serde_json::Value;
use std::time::{Duration, Instant};

use crate::bringup::{self, Resource};
use crate::{Lab, Node};

/// The agent's configuration file in the guest.
pub const CONFIG: &str = "/etc/iscsi-ha/iscsi-ha.toml";
/// The agents' `[tickle] secret_file`: written by the guest's `/init` at every boot (the same
/// secret on every node, mode 600), so the lab's peer links are authenticated as documented.
pub const TICKLE_SECRET: &str = "/etc/iscsi-ha/tickle.secret";
/// The agents' tickle peer link port (UDP, `[tickle]`), on each node's address.
pub const TICKLE_PORT: u16 = 7790;
/// pool.conf in the guest (as on XenServer / XCP-ng).
pub const POOL_CONF: &str = "/etc/xensource/pool.conf";
/// The agent's log (stderr, tracing) in the guest.
pub const AGENT_LOG: &str = "/tmp/agent.log";
/// The agent's pid file in the guest (written by [`start_agent`]).
pub const AGENT_PID: &str = "/tmp/agent.pid";
/// The agent's control socket in the guest.
pub const CONTROL_SOCKET: &str = "/run/iscsi-ha/control.sock";
/// The target the agents serve.
pub const IQN: &str = "iqn.2024-01.lab.iscsi-ha:r0";
/// SCSI vendor the agent sets on the LUN (so the client can tell the agent's target apart).
pub const VENDOR: &str = "ISCSIHA";
/// SCSI product the agent sets on the LUN.
pub const PRODUCT: &str = "LAB-DRBD";

/// The packaged systemd unit: the lab starts the agent with its scheduling (a guest has no
/// systemd), and runs the classic tools' scripts with the same, for a fair comparison.
const UNIT: &str = include_str!("../../packaging/iscsi-ha.service");

/// The unit's `Nice=` (0 when it sets none).
pub fn unit_nice() -> i32 {
    UNIT.lines()
        .find_map(|l| l.trim().strip_prefix("Nice=")?.trim().parse().ok())
        .unwrap_or(0)
}

/// Where a node's agent takes its role from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    /// `/etc/xensource/pool.conf` ([`POOL_CONF`]).
    PoolConf,
    /// `iscsi-ha promote|demote` over the control socket.
    Command,
}

/// The agent configuration for `node`: one adopted resource `r` served as [`IQN`] tid 1, LUN 1 on
/// its DRBD device with a fixed identity, open to all initiators (written out), and the lab's
/// floating address on `eth0` with probe and 3 gratuitous ARPs.
pub fn config_toml(node: &Node, r: &Resource, source: Source) -> String {
    config_toml_for(node, std::slice::from_ref(r), source)
}

/// The target name of resource `r` in [`config_toml_for`]: [`IQN`] for `r0`, else
/// `iqn.2024-01.lab.iscsi-ha:<name>`.
pub fn iqn_of(r: &Resource) -> String {
    match r.name.as_str() {
        "r0" => IQN.to_string(),
        n => format!("iqn.2024-01.lab.iscsi-ha:{n}"),
    }
}

/// [`config_toml`] for several adopted resources: resource `i` is served as [`iqn_of`] with tid
/// `i + 1`, LUN 1 on its DRBD device; one floating address follows all of them.
pub fn config_toml_for(node: &Node, rs: &[Resource], source: Source) -> String {
    let role = match source {
        Source::PoolConf => format!("source = \"pool-conf\"\npath = \"{POOL_CONF}\""),
        Source::Command => "source = \"command\"".to_string(),
    };
    let mut out = format!(
        r#"# written by lab::agent_lab for node {node}
node = "lab-{node}"

[role]
{role}

[sockets]
control = "{CONTROL_SOCKET}"
tgtd = "/var/run/tgtd/socket.0"

# TCG guests on a loaded 2-core host: a netlink answer once took > 5 s at agent start, and the
# agent then waits for its 60 s safety net to observe again; an address read (rtnetlink) took
# more than 2 s in a fresh OCF process under Pacemaker.
[timeouts]
drbd_ms = 15000
tgtd_ms = 10000
address_ms = 10000
safety_net_s = 60
"#,
        node = node.name(),
    );
    for (i, r) in rs.iter().enumerate() {
        out.push_str(&format!(
            r#"
[[resource]]
name = "{name}"
minor = {minor}
mode = "adopt"

[resource.target]
iqn = "{iqn}"
tid = {tid}
initiators = "all"

[[resource.lun]]
lun = 1
device = "{dev}"
scsi_id = "lab-{name}-lun1"
scsi_sn = "LAB{minor}LUN1"
vendor = "{VENDOR}"
product = "{PRODUCT}"
"#,
            name = r.name,
            minor = r.minor,
            iqn = iqn_of(r),
            tid = i + 1,
            dev = r.device(),
        ));
    }
    let names: Vec<String> = rs.iter().map(|r| format!("\"{}\"", r.name)).collect();
    out.push_str(&format!(
        r#"
[[address]]
address = "{vip}/{prefix}"
interface = "eth0"
resources = [{names}]

[address.announce]
count = 3
interval_ms = 100

[address.probe]
enabled = true
timeout_ms = 200

# The holder tells its peer the portal's client connections; a survivor's claim tickles them.
[tickle]
listen = "{ip}:{TICKLE_PORT}"
peer = "{peer}:{TICKLE_PORT}"
secret_file = "{TICKLE_SECRET}"
{handover}"#,
        // `LAB_HANDOVER_MS`: the agents' `tickle.handover_ms` (e.g. 0 for a run without the
        // planned demote's handover); unset, the agent's default.
        handover = std::env::var("LAB_HANDOVER_MS")
            .ok()
            .and_then(|v| v.parse::<u64>().ok())
            .map_or(String::new(), |ms| format!("handover_ms = {ms}\n")),
        vip = crate::FLOATING_IP,
        prefix = crate::PREFIX,
        names = names.join(", "),
        ip = node.ip(),
        peer = crate::net::node_ip(node.index() ^ 1),
    ));
    out
}

/// Writes [`config_toml`] to [`CONFIG`] on `node` and checks it with `iscsi-ha check-config`.
pub fn install_config(node: &Node, r: &Resource, source: Source) -> Result<()> {
    install_config_for(node, std::slice::from_ref(r), source)
}

/// Writes [`config_toml_for`] to [`CONFIG`] on `node` and checks it with `iscsi-ha check-config`.
pub fn install_config_for(node: &Node, rs: &[Resource], source: Source) -> Result<()> {
    node.put_file(CONFIG, config_toml_for(node, rs, source).as_bytes())?;
    node.run_ok(&format!("{} check-config {CONFIG}", agent_bin()))?;
    Ok(())
}

/// [`config_toml`] with `r` in `mode = "manage"` from `node`'s and `peer`'s replication endpoints
/// (with `node_ids`, DRBD 9's `node_id` and `peer_node_id`: their indexes), pool.conf as the role
/// source; written to [`CONFIG`] and checked with `iscsi-ha check-config`.
pub fn install_managed_config(
    node: &Node,
    peer: &Node,
    r: &Resource,
    node_ids: bool,
) -> Result<()> {
    let adopt = config_toml(node, r, Source::PoolConf);
    let mut manage = format!(
        "mode = \"manage\"\n\n[resource.manage]\ndisk = \"{d}\"\nlocal = \"{mip}:{p}\"\n\
         peer = \"{pip}:{p}\"\n",
        d = r.disk,
        mip = node.ip(),
        pip = peer.ip(),
        p = r.port,
    );
    if node_ids {
        manage.push_str(&format!(
            "node_id = {}\npeer_node_id = {}\n",
            node.index(),
            peer.index()
        ));
    }
    let managed = adopt.replace("mode = \"adopt\"\n", &manage);
    anyhow::ensure!(managed != adopt, "config template changed: {adopt}");
    node.put_file(CONFIG, managed.as_bytes())?;
    node.run_ok(&format!("{} check-config {CONFIG}", agent_bin()))?;
    Ok(())
}

/// The agent binary in the guest (9p share of the cargo profile dir).
pub fn agent_bin() -> String {
    Node::guest_bin("iscsi-ha")
}

/// Replaces pool.conf the way XAPI does: write a temporary file in the same directory, then
/// rename it over the old one. `None` deletes the file. Any bytes may be written (garbage tests).
pub fn set_pool_conf(node: &Node, contents: Option<&str>) -> Result<()> {
    match contents {
        None => {
            node.run_ok(&format!("mkdir -p /etc/xensource && rm -f {POOL_CONF}"))?;
        }
        Some(c) => {
            let tmp = format!("{POOL_CONF}.tmp.{}", std::process::id());
            node.put_file(&tmp, c.as_bytes())?;
            node.run_ok(&format!("chmod 644 {tmp} && mv -f {tmp} {POOL_CONF}"))?;
        }
    }
    Ok(())
}

/// pool.conf contents for the master.
pub fn master() -> &'static str {
    "master"
}

/// pool.conf contents for a slave of `master_node`.
pub fn slave_of(master_node: &Node) -> String {
    format!("slave:{}", master_node.ip())
}

/// Starts `tgtd -f` in the background if it is not running, as its service manager would, and
/// waits until its management socket answers.
pub fn start_tgtd(node: &Node) -> Result<()> {
    bringup::tgtd_start(node)
}

/// [`start_tgtd`] with `threads` I/O threads per LU (`tgtd -t N`; None: tgtd's default).
pub fn start_tgtd_with(node: &Node, threads: Option<u32>) -> Result<()> {
    bringup::tgtd_start_with(node, threads)
}

/// Shell that starts `iscsi-ha daemon` in the background as the unit would: forked already at
/// the unit's `Nice=` ([`unit_nice`]; busybox in the guest has `renice`, no `nice`) and exec'd
/// at once, as systemd does, so the agent's own start-up clock (its start time in
/// `/proc/self/stat` is the fork's) counts no wrapper process waiting for the CPU at nice 0;
/// with the unit's environment (no `RUST_LOG`). The guest's shell goes back to nice 0 after
/// the fork. A `=== agent start` marker and the agent's log are appended to [`AGENT_LOG`],
/// its pid written to [`AGENT_PID`].
pub fn launch_agent() -> String {
    format!(
        "mkdir -p /run/iscsi-ha; echo \"=== agent start $(date +%T) ===\" >>{AGENT_LOG}; \
         renice {nice} -p $$ >/dev/null; \
         {bin} -c {CONFIG} daemon >>{AGENT_LOG} 2>&1 </dev/null & echo $! >{AGENT_PID}; \
         renice 0 -p $$ >/dev/null",
        nice = unit_nice(),
        bin = agent_bin()
    )
}

/// Starts `iscsi-ha daemon` in the background (log appended to [`AGENT_LOG`], pid in
/// [`AGENT_PID`]) and waits until it answers `status`. Err if it is already running.
pub fn start_agent(node: &Node) -> Result<()> {
    if agent_pid(node)?.is_some() {
        bail!("node {}: the agent is already running", node.name());
    }
    node.run_ok(&launch_agent())?;
    let t = Instant::now();
    loop {
        if status(node).is_ok() {
            return Ok(());
        }
        if agent_pid(node)?.is_none() {
            bail!(
                "node {}: the agent exited at start\n--- {AGENT_LOG} ---\n{}",
                node.name(),
                agent_log(node, 40)
            );
        }
        if t.elapsed() > Duration::from_secs(30) {
            bail!(
                "node {}: the agent did not answer status within 30 s\n--- {AGENT_LOG} ---\n{}",
                node.name(),
                agent_log(node, 40)
            );
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// The agent's pid if it is alive.
pub fn agent_pid(node: &Node) -> Result<Option<u32>> {
    let o = node.run(&format!(
        "p=$(cat {AGENT_PID} 2>/dev/null) && [ -n \"$p\" ] && kill -0 $p 2>/dev/null && echo $p"
    ))?;
    Ok(o.stdout.trim().parse().ok())
}

/// Sends `signal` (e.g. `KILL`, `TERM`) to the agent and waits until it is gone.
pub fn stop_agent(node: &Node, signal: &str) -> Result<()> {
    if !signal.chars().all(|c| c.is_ascii_alphanumeric()) {
        bail!("bad signal name {signal:?}");
    }
    if let Some(p) = agent_pid(node)? {
        node.run_ok(&format!(
            "kill -{signal} {p}; i=0; while kill -0 {p} 2>/dev/null && [ $i -lt 100 ]; do sleep 0.05; i=$((i+1)); done; \
             kill -0 {p} 2>/dev/null && exit 1; rm -f {AGENT_PID}; true"
        ))?;
    }
    Ok(())
}

/// `iscsi-ha status --json` on `node`, parsed. Exit status 1 with a status is an answer (a
/// split brain, an address conflict, a failed plan waiting for its retry); no status is an
/// error.
pub fn status(node: &Node) -> Result<Value> {
    let o = node.run(&format!("{} -c {CONFIG} status --json", agent_bin()))?;
    match serde_json::from_str(&o.stdout) {
        Ok(v) if o.rc == 0 || o.rc == 1 => Ok(v),
        _ => bail!(
            "node {}: iscsi-ha status rc={}: {}{}",
            node.name(),
            o.rc,
            o.stdout,
            o.stderr
        ),
    }
}

/// `iscsi-ha status` (human form) on `node`.
pub fn status_text(node: &Node) -> Result<String> {
    Ok(node
        .run(&format!("{} -c {CONFIG} status 2>&1", agent_bin()))?
        .stdout)
}

/// Runs an `iscsi-ha` verb (`promote`, `demote`, `maintenance on`, …) on `node`; returns
/// (exit code, printed message).
pub fn command(node: &Node, verb: &str) -> Result<(i32, String)> {
    if !verb
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || c == ' ' || c == '-')
    {
        bail!("bad verb {verb:?}");
    }
    let o = node.run(&format!("{} -c {CONFIG} {verb} 2>&1", agent_bin()))?;
    Ok((o.rc, o.stdout.trim().to_string()))
}

/// The last `n` lines of the agent's log on `node` (or why it could not be read).
pub fn agent_log(node: &Node, n: usize) -> String {
    match node.run(&format!("tail -n {n} {AGENT_LOG} 2>&1")) {
        Ok(o) => o.stdout,
        Err(e) => format!("(log unavailable: {e})"),
    }
}

/// Every running node's agent log tail and status, for failure reports.
pub fn logs(lab: &Lab, n: usize) -> String {
    let mut s = String::new();
    for node in lab.nodes() {
        if node.pid().is_none() {
            s.push_str(&format!("--- node {}: powered off ---\n", node.name()));
            continue;
        }
        s.push_str(&format!(
            "--- node {} {AGENT_LOG} (last {n}) ---\n{}",
            node.name(),
            agent_log(node, n)
        ));
        s.push_str(&format!(
            "--- node {} iscsi-ha status ---\n{}\n",
            node.name(),
            status_text(node).unwrap_or_else(|e| format!("{e:#}"))
        ));
    }
    s
}

/// Polls `iscsi-ha status --json` on `node` every 100 ms until `cond` holds; Err after `timeout`
/// naming `what`, with the last status and the agent's log tail.
pub fn wait_status(
    node: &Node,
    what: &str,
    timeout: Duration,
    cond: impl Fn(&Value) -> bool,
) -> Result<Value> {
    let t = Instant::now();
    loop {
        let last = match status(node) {
            Ok(v) if cond(&v) => return Ok(v),
            Ok(v) => serde_json::to_string_pretty(&v).unwrap_or_default(),
            Err(e) => format!("{e:#}"),
        };
        if t.elapsed() > timeout {
            bail!(
                "node {}: timeout ({timeout:?}) waiting for {what}\n--- last status ---\n{last}\n--- {AGENT_LOG} ---\n{}",
                node.name(),
                agent_log(node, 40)
            );
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// The status says: node role Primary, converged, target serving, address held.
pub fn is_serving(v: &Value) -> bool {
    v["node_role"] == "Primary"
        && v["converged"] == true
        && v["addresses"]
            .as_array()
            .is_some_and(|a| !a.is_empty() && a.iter().all(|x| x["held"] == true))
        && v["resources"]
            .as_array()
            .is_some_and(|r| r.iter().all(|x| x["target"]["state"] == "serving"))
}

/// The status says: node role Secondary, converged, no target, no address.
pub fn is_secondary(v: &Value) -> bool {
    v["converged"] == true && holds_secondary(v)
}

/// The status says: node role Secondary, no target, no address (converged or holding the state
/// while the authority is unknown).
pub fn holds_secondary(v: &Value) -> bool {
    v["node_role"] == "Secondary"
        && v["addresses"]
            .as_array()
            .is_some_and(|a| a.iter().all(|x| x["held"] == false))
        && v["resources"]
            .as_array()
            .is_some_and(|r| r.iter().all(|x| x["target"]["state"] == "absent"))
}

/// The authority as the agent sees it: `primary`, `secondary` or `unknown`.
pub fn authority(v: &Value) -> String {
    v["authority"]["role"].as_str().unwrap_or("?").to_string()
}

/// One transition from `status --json`: kind, result, total and per-stage durations (ms).
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Transition {
    /// Sequence number in that agent.
    pub id: u64,
    /// `promote`, `demote` or `repair`.
    pub kind: String,
    /// `ok`, `refused: …`, …
    pub result: String,
    /// Start, ms since the Unix epoch (guest clock).
    pub started_unix_ms: u64,
    /// Total, ms.
    pub total_ms: f64,
    /// (stage, ms) in order (rollback stages prefixed `rollback:`).
    pub stages: Vec<(String, f64)>,
}

/// The transitions listed in a status, oldest first.
pub fn transitions(v: &Value) -> Vec<Transition> {
    let Some(list) = v["transitions"].as_array() else {
        return Vec::new();
    };
    list.iter()
        .map(|t| Transition {
            id: t["id"].as_u64().unwrap_or(0),
            kind: t["kind"].as_str().unwrap_or("").to_string(),
            result: t["result"].as_str().unwrap_or("").to_string(),
            started_unix_ms: t["started_unix_ms"].as_u64().unwrap_or(0),
            total_ms: t["total_micros"].as_u64().unwrap_or(0) as f64 / 1000.0,
            stages: t["stages"]
                .as_array()
                .map(|s| {
                    s.iter()
                        .map(|x| {
                            let name = x["stage"].as_str().unwrap_or("?");
                            let name = if x["rollback"] == true {
                                format!("rollback:{name}")
                            } else {
                                name.to_string()
                            };
                            (name, x["micros"].as_u64().unwrap_or(0) as f64 / 1000.0)
                        })
                        .collect()
                })
                .unwrap_or_default(),
        })
        .collect()
}

/// The last transition of `kind` that ran `stage` (e.g. the promote that served the target, not a
/// later idempotent re-check), if any.
pub fn last_transition_with(v: &Value, kind: &str, stage: &str) -> Option<Transition> {
    transitions(v)
        .into_iter()
        .rev()
        .find(|t| t.kind == kind && t.stages.iter().any(|(n, _)| n == stage))
}

/// The last transition of `kind` in a status, if any.
pub fn last_transition(v: &Value, kind: &str) -> Option<Transition> {
    transitions(v).into_iter().rev().find(|t| t.kind == kind)
}

/// Brings DRBD up on both nodes with `drbdsetup-84` (fresh metadata, initial sync skipped), writes
/// `marker` on `a` (briefly Primary) and leaves both Secondary and `UpToDate/UpToDate`: the state
/// in which the agents adopt the resource.
pub fn drbd_pair_secondary_with_marker(
    a: &Node,
    b: &Node,
    r: &Resource,
    marker: &str,
) -> Result<()> {
    bringup::drbd84_pair_up(a, b, r)?;
    bringup::write_marker(a, &r.device(), marker)?;
    a.run_ok(&format!("drbdsetup-84 secondary {}", r.minor))?;
    Ok(())
}

/// Full setup of a pool.conf lab: DRBD pair Secondary with `marker`, tgtd on both, configs,
/// pool.conf (`a` master, `b` slave), both agents started; returns when `a` serves and `b` is
/// converged Secondary.
pub fn pool_conf_pair_up(lab: &Lab, r: &Resource, marker: &str) -> Result<()> {
    pool_conf_pair_up_with(lab, r, marker, |_| Ok(()))
}

/// [`pool_conf_pair_up`] with `tweak` run on each node after its config is installed (e.g. a
/// different LUN `cache` mode) and before its agent starts.
pub fn pool_conf_pair_up_with(
    lab: &Lab,
    r: &Resource,
    marker: &str,
    tweak: impl Fn(&Node) -> Result<()>,
) -> Result<()> {
    let (a, b) = (lab.node(0)?, lab.node(1)?);
    drbd_pair_secondary_with_marker(a, b, r, marker)?;
    for n in [a, b] {
        start_tgtd(n)?;
        install_config(n, r, Source::PoolConf)?;
        tweak(n)?;
    }
    set_pool_conf(a, Some(master()))?;
    set_pool_conf(b, Some(&slave_of(a)))?;
    start_agent(a)?;
    start_agent(b)?;
    wait_status(a, "a to serve", Duration::from_secs(30), is_serving)?;
    wait_status(
        b,
        "b to be converged Secondary",
        Duration::from_secs(30),
        is_secondary,
    )?;
    Ok(())
}

/// Fresh metadata on both nodes, both agents in manage mode (a master), the initial sync skipped
/// once the agents connected DRBD (`new-current-uuid --clear-bitmap` on a); returns when a serves
/// `marker` and b is converged Secondary with the fencing its agent set (`resource-only`).
pub fn managed_pair_up(lab: &Lab, r: &Resource, marker: &str) -> Result<()> {
    let t = Duration::from_secs(60);
    let (a, b) = (lab.node(0)?, lab.node(1)?);
    for (n, peer) in [(a, b), (b, a)] {
        n.run_ok(&format!(
            "drbdmeta --force {} v08 {} internal create-md >/dev/null 2>&1",
            r.minor, r.disk
        ))?;
        start_tgtd(n)?;
        install_managed_config(n, peer, r, false)?;
    }
    set_pool_conf(a, Some(master()))?;
    set_pool_conf(b, Some(&slave_of(a)))?;
    start_agent(a)?;
    start_agent(b)?;
    bringup::wait_until(
        a,
        &format!("grep -q '^ *{}: cs:Connected' /proc/drbd", r.minor),
        "the agents to connect DRBD",
        t,
    )?;
    a.run_ok(&format!(
        "drbdsetup-84 new-current-uuid --clear-bitmap {}",
        r.minor
    ))?;
    wait_status(a, "a to serve", t, is_serving)?;
    bringup::write_marker(a, &r.device(), marker)?;
    let sb = wait_status(b, "b converged Secondary", t, is_secondary)?;
    anyhow::ensure!(
        sb["resources"][0]["drbd"]["fencing"] == "resource-only",
        "fencing not set by the agent: {sb}"
    );
    Ok(())
}

/// A powered-off manage-mode node rejoins through its agent alone: boot, tgtd, the managed config,
/// pool.conf `slave:` of `peer` (the Primary), agent; no drbdmeta or drbdsetup (the agent replays
/// a crashed Primary's activity log itself). Waits until it is resynced (`Connected`
/// `Secondary/Primary` `UpToDate/UpToDate`) and its agent converged Secondary. Returns the
/// agent's `activity log replayed` log message with its fields, if it logged one.
pub fn managed_rejoin(lab: &Lab, node: &Node, peer: &Node, r: &Resource) -> Result<Option<String>> {
    node.boot()?;
    let _ = lab.save();
    start_tgtd(node)?;
    install_managed_config(node, peer, r, false)?;
    set_pool_conf(node, Some(&slave_of(peer)))?;
    start_agent(node)?;
    wait_rejoined(node, r, true)?;
    // The log is the guest's tmpfs: this boot's only.
    let o = node.run(&format!(
        "grep -a -m1 'activity log replayed' {AGENT_LOG} | tr -d '\\033' | sed 's/\\[[0-9;]*m//g'"
    ))?;
    let line = o.stdout.trim();
    Ok(line
        .find("activity log replayed")
        .map(|i| line[i..].to_string()))
}

/// Waits until a rejoining `node` is Connected, Secondary and UpToDate/UpToDate in /proc/drbd
/// (up to 180 s: it may resync), then, with `agent`, until its agent converged Secondary.
pub fn wait_rejoined(node: &Node, r: &Resource, agent: bool) -> Result<()> {
    bringup::wait_until(
        node,
        &format!(
            "grep -q '^ *{}: cs:Connected ro:Secondary/Primary ds:UpToDate/UpToDate' /proc/drbd",
            r.minor
        ),
        "rejoined: Connected, Secondary, UpToDate/UpToDate",
        Duration::from_secs(180),
    )?;
    if agent {
        wait_status(
            node,
            "rejoined node converged Secondary",
            Duration::from_secs(60),
            is_secondary,
        )?;
    }
    Ok(())
}

/// Stops both agents (SIGTERM, then SIGKILL) and returns the lab to its boot state
/// ([`bringup::reset_lab`]) plus pool.conf, config and agent log removed.
pub fn reset(lab: &Lab) -> Result<()> {
    for n in lab.nodes() {
        if n.pid().is_none() {
            n.boot()?;
        }
        if stop_agent(n, "TERM").is_err() {
            stop_agent(n, "KILL")?;
        }
        n.run_ok(&format!(
            "rm -f {POOL_CONF} {CONFIG} {AGENT_PID} {CONTROL_SOCKET}"
        ))?;
    }
    bringup::reset_lab(lab)
}

/// Reads `len` bytes at LBA 0 through the floating address from the client (libiscsi READ(10)).
pub fn client_read(lab: &Lab, len: usize) -> Result<String> {
    let url = bringup::iscsi_url(crate::FLOATING_IP, IQN, 1);
    let bin = crate::host_bin("iscsi-read");
    let bin = bin.to_string_lossy();
    let o = lab.client().run(&[&bin, &url, "0", &len.to_string()])?;
    if o.rc != 0 {
        return Err(anyhow!(
            "client iscsi-read {url} rc={}: {}{}",
            o.rc,
            o.stdout,
            o.stderr
        ));
    }
    Ok(o.stdout)
}

/// Retries [`client_read`] until it returns `marker` (the initiator may first hit the old owner's
/// closed connection or a stale neighbour entry); Err after `timeout` with the last error.
pub fn client_read_until(lab: &Lab, marker: &str, timeout: Duration) -> Result<Duration> {
    let t = Instant::now();
    loop {
        let last = match client_read(lab, marker.len()) {
            Ok(s) if s == marker => return Ok(t.elapsed()),
            Ok(s) => format!("read {s:?}"),
            Err(e) => format!("{e:#}"),
        };
        if t.elapsed() > timeout {
            bail!(
                "client could not read {marker:?} through the address within {timeout:?}: {last}"
            );
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// `iscsi-inq` through the floating address from the client.
pub fn client_inq(lab: &Lab) -> Result<String> {
    let url = bringup::iscsi_url(crate::FLOATING_IP, IQN, 1);
    Ok(lab.client().run_ok(&["iscsi-inq", &url])?.stdout)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_lab_starts_the_agent_as_the_unit_does() {
        assert_eq!(unit_nice(), -10);
        let launch = launch_agent();
        assert!(launch.contains("renice -10 -p $$"), "{launch}");
        assert!(!launch.contains("RUST_LOG"), "{launch}");
    }

    fn sample() -> Value {
        serde_json::json!({
            "node_role": "Primary", "converged": true,
            "authority": {"role": "primary"},
            "addresses": [{"address": "10.99.0.50/24", "held": true}],
            "resources": [{"target": {"state": "serving", "sessions": 1}}],
            "transitions": [
                {"id": 1, "kind": "promote", "result": "ok", "started_unix_ms": 1000,
                 "total_micros": 2500, "stages": [
                    {"stage": "drbd-primary", "micros": 1000, "rollback": false},
                    {"stage": "target-serve", "micros": 1500, "rollback": false}]},
                {"id": 2, "kind": "promote", "result": "ok", "started_unix_ms": 2000,
                 "total_micros": 100, "stages": [
                    {"stage": "drbd-primary", "micros": 100, "rollback": false}]}
            ]
        })
    }

    #[test]
    fn status_predicates_and_transitions() {
        let v = sample();
        assert!(is_serving(&v));
        assert!(!is_secondary(&v) && !holds_secondary(&v));
        assert_eq!(authority(&v), "primary");
        let t = transitions(&v);
        assert_eq!(t.len(), 2);
        assert_eq!(
            t[0].stages,
            vec![
                ("drbd-primary".to_string(), 1.0),
                ("target-serve".to_string(), 1.5)
            ]
        );
        assert_eq!(last_transition(&v, "promote").map(|t| t.id), Some(2));
        assert_eq!(
            last_transition_with(&v, "promote", "target-serve").map(|t| t.id),
            Some(1)
        );
        assert!(transitions(&serde_json::json!({})).is_empty());
    }

    #[test]
    fn secondary_holding_while_authority_unknown() {
        let v = serde_json::json!({
            "node_role": "Secondary", "converged": false,
            "authority": {"role": "unknown", "reason": "pool.conf is empty"},
            "addresses": [{"held": false}],
            "resources": [{"target": {"state": "absent"}}]
        });
        assert!(holds_secondary(&v) && !is_secondary(&v) && !is_serving(&v));
        assert_eq!(authority(&v), "unknown");
    }
}
