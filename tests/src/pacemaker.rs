//! Pacemaker 2.1 + corosync 3 (Debian's packages) in the lab guests, driving `iscsi-ha` as an
//! OCF promotable clone on each node's real DRBD, tgtd and address.
//!
//! The guests boot from a small initramfs, so the cluster stack runs in a chroot, [`ROOT`],
//! built at run time in each guest: the host's `/usr` shared read-only over virtio-9p
//! ([`HOST_USR_TAG`]; Debian 12 is merged-usr, so `/bin`, `/lib`, `/sbin` are links into it), a
//! tmpfs `/etc` holding a few host files (users, PAM, `ld.so.cache`; from the initramfs overlay)
//! plus the cluster's own `corosync.conf`, and per node writable tmpfs state: `/var/lib/pacemaker`,
//! `/var/lib/corosync`, `/var/log`, `/run`, `/dev/shm` (libqb IPC), `/tmp`. `/dev`, `/proc`, `/sys`,
//! the project's binaries (`/lab/target`) and tgtd's socket directory are bound in. Two
//! directories of the read-only `/usr` are shadowed by tmpfs copies made of links, to add the
//! test's files: `/usr/lib/ocf/resource.d` (+ `iscsi-ha/iscsi-ha` -> the agent binary) and
//! `/usr/sbin` (+ [`FENCE_AGENT`], the harness fence agent).
//!
//! Fencing: [`FENCE_AGENT`] (test harness, not product) writes the victim's name into
//! [`FENCE_REQUEST`] in the fencing node and waits for [`FENCE_DONE`]; the host's
//! [`Fencer`] thread watches the nodes over the control channel, SIGKILLs the victim's QEMU
//! (power off) and writes the reply.

use anyhow::{bail, Context, Result};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::agent_lab::TICKLE_SECRET;
use crate::{Lab, LabConfig, Node, Output};

/// The chroot in each guest.
pub const ROOT: &str = "/pm";
/// 9p mount tag of the host's `/usr`.
pub const HOST_USR_TAG: &str = "hostusr";
/// Where the initramfs overlay puts the host's `/etc` files (copied into the chroot's `/etc`).
pub const HOST_ETC: &str = "/host-etc";
/// The agent as Pacemaker runs it (inside the chroot).
pub const OCF_AGENT: &str = "/usr/lib/ocf/resource.d/iscsi-ha/iscsi-ha";
/// The harness fence agent (inside the chroot).
pub const FENCE_AGENT: &str = "/usr/sbin/fence_lab";
/// Fence request file (inside the chroot): the victim's node name.
pub const FENCE_REQUEST: &str = "/run/fence_lab.request";
/// Fence reply file (inside the chroot), written by the host once the victim is off.
pub const FENCE_DONE: &str = "/run/fence_lab.done";
/// The clone's primitive id.
pub const RSC: &str = "p_iscsi";
/// The promotable clone's id.
pub const CLONE: &str = "ms_iscsi";
/// The agent's config file (inside the chroot).
pub const AGENT_CONFIG: &str = "/etc/iscsi-ha/iscsi-ha.toml";

/// Host `/etc` files the chroot needs: users and groups (hacluster, haclient, nobody), name
/// service switch, the dynamic linker cache, PAM for `su` (ocf-tester's permission check).
const ETC_FILES: &[&str] = &[
    "passwd",
    "group",
    "nsswitch.conf",
    "ld.so.cache",
    "login.defs",
    "pam.d/su",
    "pam.d/other",
    "pam.d/common-auth",
    "pam.d/common-account",
    "pam.d/common-session",
    "pam.d/common-session-noninteractive",
    "pam.d/common-password",
    "security/limits.conf",
    "security/pam_env.conf",
];

/// Debian packages whose files the guests run.
pub const PACKAGES: &[(&str, &str)] = &[
    ("/usr/sbin/pacemakerd", "pacemaker"),
    ("/usr/sbin/corosync", "corosync"),
    ("/usr/sbin/crm_resource", "pacemaker-cli-utils"),
    ("/usr/sbin/ocf-tester", "resource-agents"),
    ("/usr/bin/xmllint", "libxml2-utils"),
];

/// What is missing on the host for these labs, if anything.
pub fn missing() -> Option<String> {
    let gone: Vec<String> = PACKAGES
        .iter()
        .filter(|(f, _)| !std::path::Path::new(f).exists())
        .map(|(f, p)| format!("{f} (Debian {p})"))
        .collect();
    (!gone.is_empty()).then(|| format!("{}; run bash scripts/deps.sh", gone.join(", ")))
}

/// A lab whose guests can run the cluster stack: more memory, the host's `/usr` shared.
pub fn lab_config() -> LabConfig {
    let extra_files = ETC_FILES
        .iter()
        .filter(|f| std::path::Path::new("/etc").join(f).exists())
        .map(|f| (format!("{HOST_ETC}/{f}"), PathBuf::from("/etc").join(f)))
        .collect();
    LabConfig {
        mem_mib: 768,
        ro_shares: vec![(HOST_USR_TAG.to_string(), PathBuf::from("/usr"))],
        extra_files,
        timeout: Duration::from_secs(120),
        ..LabConfig::default()
    }
}

/// Builds [`ROOT`] on `node` (idempotent: done once per boot).
pub fn prepare_root(node: &Node) -> Result<()> {
    let script = format!(
        r#"set -e
R={ROOT}
[ -e /tmp/.pm-root-ready ] && exit 0
mkdir -p /host/usr $R
mountpoint -q /host/usr || mount -t 9p -o trans=virtio,version=9p2000.L,ro,msize=262144,cache=loose {HOST_USR_TAG} /host/usr
mount -t tmpfs -o mode=755 pmroot $R
mkdir -p $R/usr $R/etc $R/proc $R/sys $R/dev $R/run $R/tmp $R/var/lib $R/var/log $R/lab/target $R/.host-sbin $R/.host-ocf
mount --bind /host/usr $R/usr
for l in bin lib lib64 sbin; do ln -s usr/$l $R/$l; done
ln -s ../run $R/var/run
mkdir -p $R/var/lock $R/run/lock $R/var/lib/drbd  # drbdsetup-84's locks
mount -t proc proc $R/proc
mount -t sysfs sysfs $R/sys
mkdir -p /dev/shm /dev/pts
mount --bind /dev $R/dev
# libqb's IPC files: the daemons running as hacluster create them
mount -t tmpfs -o mode=1777 shm $R/dev/shm
mount -t devpts devpts $R/dev/pts
mount -t tmpfs -o mode=1777 tmp $R/tmp
mount --bind /lab/target $R/lab/target
mkdir -p $R/run/tgtd /var/run/tgtd
mount --bind /var/run/tgtd $R/run/tgtd
cp -a {HOST_ETC}/. $R/etc/
mkdir -p $R/etc/iscsi-ha && cp -p {TICKLE_SECRET} $R/etc/iscsi-ha/
awk -F: '{{print $1":*:19000:0:99999:7:::"}}' $R/etc/passwd > $R/etc/shadow
chmod 640 $R/etc/shadow
echo "127.0.0.1 localhost" > $R/etc/hosts
# /usr/sbin and resource.d: links to the host's files plus the harness's own
mount --bind /host/usr/sbin $R/.host-sbin
mount -t tmpfs sbin $R/usr/sbin
for f in /host/usr/sbin/*; do ln -s /.host-sbin/${{f##*/}} $R/usr/sbin/${{f##*/}}; done
mount --bind /host/usr/lib/ocf/resource.d $R/.host-ocf
mount -t tmpfs ocf $R/usr/lib/ocf/resource.d
for d in /host/usr/lib/ocf/resource.d/*; do ln -s /.host-ocf/${{d##*/}} $R/usr/lib/ocf/resource.d/${{d##*/}}; done
mkdir -p $R/usr/lib/ocf/resource.d/iscsi-ha
ln -s /lab/target/iscsi-ha $R{OCF_AGENT}
hu=$(awk -F: '$1=="hacluster"{{print $3}}' $R/etc/passwd); hg=$(awk -F: '$1=="haclient"{{print $3}}' $R/etc/group)
mkdir -p $R/var/lib/pacemaker/cib $R/var/lib/pacemaker/pengine $R/var/lib/pacemaker/blackbox $R/var/lib/pacemaker/cores $R/var/log/pacemaker $R/var/lib/corosync $R/var/log/corosync $R/var/log/crmsh $R/etc/corosync $R/run/crm
chown -R $hu:$hg $R/var/lib/pacemaker $R/var/log/pacemaker $R/run/crm
chmod 750 $R/var/lib/pacemaker/cib
touch /tmp/.pm-root-ready
"#
    );
    node.run_ok(&script)?;
    node.put_file(&format!("{ROOT}{FENCE_AGENT}"), FENCE_LAB.as_bytes())?;
    node.run_ok(&alternatives_script())?;
    Ok(())
}

/// Links `/etc/alternatives/*` in the chroot as on the host (`which`, `awk`, ... go through
/// them); manual pages left out.
fn alternatives_script() -> String {
    let mut out = format!("mkdir -p {ROOT}/etc/alternatives\n");
    let Ok(dir) = std::fs::read_dir("/etc/alternatives") else {
        return out;
    };
    for e in dir.flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        let Ok(target) = std::fs::read_link(e.path()) else {
            continue;
        };
        let target = target.to_string_lossy().into_owned();
        let safe = |t: &str| !t.contains(['\'', '\n']) && !t.is_empty();
        if name.ends_with(".gz") || target.contains("/man/") || !safe(&name) || !safe(&target) {
            continue;
        }
        out.push_str(&format!(
            "ln -sfn '{target}' '{ROOT}/etc/alternatives/{name}'\n"
        ));
    }
    out
}

/// Runs `script` with `sh` inside [`ROOT`] on `node` (Pacemaker's tools, ocf-tester).
pub fn run_in(node: &Node, script: &str) -> Result<Output> {
    run_in_timeout(node, script, Duration::from_secs(120))
}

/// [`run_in`] with a timeout.
pub fn run_in_timeout(node: &Node, script: &str, timeout: Duration) -> Result<Output> {
    let b64 = crate::qemu::b64_encode(script.as_bytes());
    node.run_timeout(
        &format!(
            "echo {b64} | base64 -d > {ROOT}/tmp/.lab-script && chroot {ROOT} /usr/bin/env -i \
             PATH=/usr/sbin:/usr/bin HOME=/root /bin/sh /tmp/.lab-script"
        ),
        timeout,
    )
}

/// [`run_in`], Err unless rc == 0.
pub fn run_in_ok(node: &Node, script: &str) -> Result<Output> {
    let o = run_in(node, script)?;
    if o.rc != 0 {
        bail!(
            "node {} (chroot) rc={}: {script}\n--- stdout ---\n{}\n--- stderr ---\n{}",
            node.name(),
            o.rc,
            o.stdout,
            o.stderr
        );
    }
    Ok(o)
}

/// The harness fence agent (RHCS style: options on stdin, `-o ACTION` or `action=`).
const FENCE_LAB: &str = r#"#!/bin/sh
# fence_lab: test harness. Asks the host (which watches this file over the lab's control channel)
# to power the victim's QEMU off, and waits for its answer.
action=""; plug=""
while [ $# -gt 0 ]; do case "$1" in -o) action=$2; shift;; -n|--plug) plug=$2; shift;; --action=*) action=${1#*=};; esac; shift; done
if [ -z "$action" ] || [ ! -t 0 ]; then
  while read -r l; do case "$l" in action=*|option=*) action=${l#*=};; port=*|plug=*|nodename=*) [ -z "$plug" ] && plug=${l#*=};; esac; done
fi
case "$action" in
metadata)
cat <<'EOF'
<?xml version="1.0"?>
<resource-agent name="fence_lab" shortdesc="lab fence agent (test harness): the host powers the node's QEMU off">
<longdesc>Writes the victim into /run/fence_lab.request; the lab host SIGKILLs that guest's QEMU and answers in /run/fence_lab.done.</longdesc>
<parameters>
<parameter name="action" unique="0" required="0"><getopt mixed="-o, --action=[action]"/><content type="string" default="off"/><shortdesc lang="en">Fencing action</shortdesc></parameter>
<parameter name="plug" unique="0" required="0"><getopt mixed="-n, --plug=[name]"/><content type="string"/><shortdesc lang="en">Node to fence</shortdesc></parameter>
<parameter name="port" unique="0" required="0"><getopt mixed="-n, --plug=[name]"/><content type="string"/><shortdesc lang="en">Node to fence</shortdesc></parameter>
</parameters>
<actions><action name="on"/><action name="off"/><action name="reboot"/><action name="status"/><action name="monitor"/><action name="list"/><action name="metadata"/></actions>
</resource-agent>
EOF
exit 0;;
monitor|status|list) [ "$action" = list ] && echo "a" && echo "b"; exit 0;;
on) exit 0;;
off|reboot)
  rm -f /run/fence_lab.done
  echo "$plug" > /run/fence_lab.request.tmp && mv /run/fence_lab.request.tmp /run/fence_lab.request
  i=0; while [ ! -e /run/fence_lab.done ] && [ $i -lt 600 ]; do sleep 0.1; i=$((i+1)); done
  [ -e /run/fence_lab.done ] || exit 1
  rm -f /run/fence_lab.done /run/fence_lab.request; exit 0;;
*) exit 1;;
esac
"#;

/// The corosync configuration of a lab cluster of `nodes` (names and ring addresses).
/// `token` 5000 ms: TCG guests on a loaded host stall for seconds; a shorter token makes
/// corosync see a healthy peer lost, and Pacemaker fence it.
pub fn corosync_conf(nodes: &[&Node]) -> String {
    let mut list = String::new();
    for (i, n) in nodes.iter().enumerate() {
        list.push_str(&format!(
            "  node {{\n    name: {}\n    nodeid: {}\n    ring0_addr: {}\n  }}\n",
            n.name(),
            i + 1,
            n.ip()
        ));
    }
    format!(
        "totem {{\n  version: 2\n  cluster_name: lab\n  transport: knet\n  crypto_cipher: none\n  \
         crypto_hash: none\n  token: 5000\n}}\nnodelist {{\n{list}}}\nquorum {{\n  provider: \
         corosync_votequorum\n  two_node: 1\n}}\nlogging {{\n  to_stderr: no\n  to_logfile: yes\n  \
         logfile: /var/log/corosync/corosync.log\n  to_syslog: no\n  timestamp: on\n}}\n"
    )
}

/// Starts corosync and pacemakerd on `node` (chroot, background), unless running.
pub fn start_node(node: &Node, conf: &str) -> Result<()> {
    node.put_file(
        &format!("{ROOT}/etc/corosync/corosync.conf"),
        conf.as_bytes(),
    )?;
    run_in_ok(
        node,
        "pidof corosync >/dev/null || corosync >/var/log/corosync/stdout.log 2>&1 \
         ; pidof pacemakerd >/dev/null || { PCMK_logfile=/var/log/pacemaker/pacemaker.log \
         PCMK_logfacility=none PCMK_debug=no nohup pacemakerd >/var/log/pacemaker/stdout.log \
         2>&1 </dev/null & } ; true",
    )?;
    Ok(())
}

/// Polls `crm_mon -1` on `node` until `cond` holds on its output; Err with the last output.
pub fn wait_mon(
    node: &Node,
    what: &str,
    timeout: Duration,
    cond: impl Fn(&str) -> bool,
) -> Result<String> {
    let t = Instant::now();
    loop {
        let o = run_in(node, "crm_mon -1 -r -A 2>&1")?;
        if cond(&o.stdout) {
            return Ok(o.stdout);
        }
        if t.elapsed() > timeout {
            bail!(
                "node {}: {what} not seen within {timeout:?}; crm_mon:\n{}",
                node.name(),
                o.stdout
            );
        }
        std::thread::sleep(Duration::from_millis(500));
    }
}

/// Which node runs the promoted instance, per `crm_resource --locate` on `node`.
pub fn promoted_on(node: &Node) -> Result<Option<String>> {
    let o = run_in(node, &format!("crm_resource --locate -r {CLONE} 2>&1"))?;
    Ok(o.stdout
        .lines()
        .find(|l| l.contains("Promoted") || l.contains("Master"))
        .and_then(|l| {
            l.split_whitespace()
                .rev()
                .find(|w| *w != "Promoted" && *w != "Master")
        })
        .map(|w| w.trim_end_matches(':').to_string()))
}

/// The CIB the tests load (crm shell syntax; the README's "Pacemaker" section shows the same).
pub fn crm_config(nodes: &[&Node]) -> String {
    let names: Vec<&str> = nodes.iter().map(|n| n.name()).collect();
    let host_list = names.join(",");
    format!(
        "property stonith-enabled=true no-quorum-policy=ignore stonith-timeout=60s \
         cluster-recheck-interval=1min\n\
         rsc_defaults resource-stickiness=100 migration-threshold=3\n\
         primitive fence_lab stonith:fence_lab params pcmk_host_list=\"{host_list}\" \
         pcmk_host_check=static-list op monitor interval=60s\n\
         primitive {RSC} ocf:iscsi-ha:iscsi-ha params config={AGENT_CONFIG} \
         op start timeout=60s interval=0 op stop timeout=90s interval=0 \
         op promote timeout=90s interval=0 op demote timeout=90s interval=0 \
         op monitor role=Promoted interval=9s timeout=30s \
         op monitor role=Unpromoted interval=11s timeout=30s\n\
         clone {CLONE} {RSC} meta promotable=true promoted-max=1 promoted-node-max=1 \
         clone-max=2 clone-node-max=1 notify=false\n\
         location l_{CLONE}_promotable {CLONE} rule role=Promoted 10: defined #uname\n"
    )
}

/// Loads [`crm_config`] on `node` (`crm configure load update`).
pub fn configure(node: &Node, nodes: &[&Node]) -> Result<()> {
    let path = format!("{ROOT}/tmp/cib.crm");
    node.put_file(&path, crm_config(nodes).as_bytes())?;
    run_in_ok(node, "crm configure load update /tmp/cib.crm")?;
    Ok(())
}

/// The host's side of [`FENCE_AGENT`]: a thread that polls each node's request file and
/// SIGKILLs the named guest's QEMU, then answers. Stops when dropped.
pub struct Fencer {
    stop: Arc<AtomicBool>,
    handle: Option<std::thread::JoinHandle<()>>,
    /// Fencing requests served: (victim, time the request was seen).
    pub log: Arc<std::sync::Mutex<Vec<(String, Instant)>>>,
}

impl Fencer {
    /// Starts watching `lab` (which must outlive the fencer: the shared lab does).
    pub fn start(lab: &'static Lab) -> Fencer {
        let stop = Arc::new(AtomicBool::new(false));
        let log = Arc::new(std::sync::Mutex::new(Vec::new()));
        let (s, l) = (stop.clone(), log.clone());
        let handle = std::thread::spawn(move || {
            while !s.load(Ordering::Relaxed) {
                for n in lab.nodes() {
                    if n.pid().is_none() {
                        continue;
                    }
                    let req = format!("{ROOT}{FENCE_REQUEST}");
                    let Ok(o) = n.run_timeout(
                        &format!("cat {req} 2>/dev/null; true"),
                        Duration::from_secs(10),
                    ) else {
                        continue;
                    };
                    let victim = o.stdout.trim().to_string();
                    if victim.is_empty() {
                        continue;
                    }
                    let seen = Instant::now();
                    if let Some(v) = lab.nodes().iter().find(|x| x.name() == victim) {
                        if v.pid().is_some() {
                            // Its own log goes with it: keep what explains the fencing.
                            eprintln!(
                                "fencer: {} asks to fence {victim}; {victim}'s last words:\n{}",
                                n.name(),
                                victim_log(v)
                            );
                            let _ = v.kill();
                        }
                    }
                    let _ = n.run(&format!("rm -f {req}; touch {ROOT}{FENCE_DONE}"));
                    if let Ok(mut g) = l.lock() {
                        g.push((victim, seen));
                    }
                }
                std::thread::sleep(Duration::from_millis(200));
            }
        });
        Fencer {
            stop,
            handle: Some(handle),
            log,
        }
    }
}

impl Drop for Fencer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(h) = self.handle.take() {
            let _ = h.join();
        }
    }
}

/// Tails of the cluster logs of every live node, for failure reports.
pub fn logs(lab: &Lab, n: usize) -> String {
    let mut out = String::new();
    for node in lab.nodes() {
        if node.pid().is_none() {
            continue;
        }
        // The agent's own words (its stderr, which execd logs) first: the tails are mostly
        // the scheduler's periodic rechecks by the time a failure is reported.
        let o = node.run(&format!(
            "echo '--- agent actions ---'; {}; \
             tail -n {n} {ROOT}/var/log/pacemaker/pacemaker.log {ROOT}/var/log/corosync/corosync.log \
             {ROOT}/var/log/pacemaker/stdout.log 2>&1",
            agent_lines_script(n)
        ));
        out.push_str(&format!(
            "=== node {} ===\n{}\n",
            node.name(),
            o.map(|o| o.stdout).unwrap_or_else(|e| format!("{e:#}"))
        ));
    }
    out
}

/// What a node about to be fenced logged last: the agent's lines and Pacemaker's failures.
fn victim_log(v: &Node) -> String {
    let script = format!(
        "{}; echo '--- failures ---'; grep -E 'error|warning|fail|Timed Out|timed out' \
         {ROOT}/var/log/pacemaker/pacemaker.log | grep -v throttle | tail -n 40",
        agent_lines_script(40)
    );
    match v.run_timeout(&script, Duration::from_secs(10)) {
        Ok(o) => o.stdout,
        Err(e) => format!("{e:#}"),
    }
}

fn agent_lines_script(n: usize) -> String {
    format!(
        "grep -E 'iscsi-ha|p_iscsi_(start|stop|promote|demote)' \
         {ROOT}/var/log/pacemaker/pacemaker.log | tail -n {n}"
    )
}

/// The last `n` lines of Pacemaker's log on `node` that carry the agent's own messages (its
/// standard error, which pacemaker-execd logs) or its start, stop, promote and demote.
pub fn agent_lines(node: &Node, n: usize) -> Result<String> {
    Ok(node.run(&agent_lines_script(n))?.stdout)
}

/// Polls `f` every 300 ms until it returns true; Err after `timeout` (or with `f`'s error).
pub fn wait_until(
    what: &str,
    timeout: Duration,
    mut f: impl FnMut() -> Result<bool>,
) -> Result<()> {
    let t = Instant::now();
    loop {
        if f().with_context(|| what.to_string())? {
            return Ok(());
        }
        if t.elapsed() > timeout {
            bail!("{what}: not within {timeout:?}");
        }
        std::thread::sleep(Duration::from_millis(300));
    }
}

/// Full setup of a two-node cluster on `lab`: DRBD pair Secondary holding `marker`, tgtd, the
/// agent's config and the chroot on both nodes, corosync + Pacemaker started, the CIB of
/// [`crm_config`] loaded; returns the node the promoted instance runs on once the client can
/// read `marker` through the address.
pub fn cluster_up(lab: &Lab, r: &crate::bringup::Resource, marker: &str) -> Result<String> {
    use crate::agent_lab as al;
    let (a, b) = (lab.node(0)?, lab.node(1)?);
    al::drbd_pair_secondary_with_marker(a, b, r, marker)?;
    let conf = corosync_conf(&[a, b]);
    for n in [a, b] {
        al::start_tgtd(n)?;
        prepare_root(n)?;
        let text = al::config_toml(n, r, al::Source::Command);
        n.put_file(&format!("{ROOT}{AGENT_CONFIG}"), text.as_bytes())?;
        start_node(n, &conf)?;
    }
    wait_mon(a, "both nodes online", Duration::from_secs(300), |o| {
        o.contains("Online: [ a b ]")
    })?;
    configure(a, &[a, b])?;
    let out = wait_mon(a, "an instance promoted", Duration::from_secs(300), |o| {
        o.contains("Promoted: [ a ]") || o.contains("Promoted: [ b ]")
    })?;
    let node = if out.contains("Promoted: [ a ]") {
        "a"
    } else {
        "b"
    };
    al::client_read_until(lab, marker, Duration::from_secs(60))?;
    Ok(node.to_string())
}

/// Stops Pacemaker and corosync on every live node (SIGKILL by pid: the cluster is thrown
/// away), clears their state, then [`crate::agent_lab::reset`].
pub fn reset(lab: &Lab) -> Result<()> {
    for n in lab.nodes() {
        if n.pid().is_none() {
            continue;
        }
        n.run(&format!(
            "for p in $(pidof pacemakerd pacemaker-based pacemaker-fenced pacemaker-execd \
             pacemaker-attrd pacemaker-schedulerd pacemaker-controld corosync); do kill -9 $p; done; \
             [ -d {ROOT}/var/lib/pacemaker/cib ] && rm -rf {ROOT}/var/lib/pacemaker/cib/* \
             {ROOT}/var/lib/pacemaker/pengine/* {ROOT}/var/lib/corosync/* {ROOT}/run/resource-agents \
             {ROOT}{FENCE_REQUEST} {ROOT}{FENCE_DONE}; true"
        ))?;
    }
    crate::agent_lab::reset(lab)
}

/// The other node of a two-node lab.
pub fn other<'a>(lab: &'a Lab, name: &str) -> Result<&'a Node> {
    lab.nodes()
        .iter()
        .find(|n| n.name() != name)
        .context("a lab of two nodes")
}

/// The node called `name`.
pub fn by_name<'a>(lab: &'a Lab, name: &str) -> Result<&'a Node> {
    lab.nodes()
        .iter()
        .find(|n| n.name() == name)
        .with_context(|| format!("no node {name}"))
}

/// Waits until `obs`'s `crm_mon` shows the promoted instance on `name`.
pub fn wait_promoted(obs: &Node, name: &str, timeout: Duration) -> Result<()> {
    let want = format!("Promoted: [ {name} ]");
    wait_mon(obs, &format!("promoted on {name}"), timeout, |o| {
        o.contains(&want)
    })?;
    Ok(())
}

/// Pacemaker lists a failed action of the agent on `name` (a monitor, or a probe: a failed
/// probe is listed but not counted in the fail count).
pub fn failed_on(obs: &Node, name: &str) -> Result<bool> {
    let o = run_in(obs, "crm_mon -1 2>&1")?;
    let failed = o
        .stdout
        .split("Failed Resource Actions:")
        .nth(1)
        .unwrap_or("");
    Ok(failed
        .lines()
        .any(|l| l.contains(RSC) && l.contains(&format!(" on {name} "))))
}

/// Clears the agent's failures and waits until the cluster has settled (re-probes done).
pub fn cleanup(obs: &Node) -> Result<()> {
    run_in_ok(obs, &format!("crm_resource --cleanup -r {CLONE}"))?;
    run_in_ok(obs, "crm_resource --wait -T 120s")?;
    Ok(())
}
