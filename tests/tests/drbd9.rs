//! DRBD 9 in the lab, on one shared two-node lab running the DRBD 9.3.3 module built from source:
//! a pair brought up with node ids, a peer and a path each (Debian's DRBD 9 `drbdsetup` as the
//! oracle) connects and replicates; drbd-nl's DRBD 9 API (`drbd9-lab` in the guests) reads the
//! same status as drbdsetup, promotes and demotes, is refused a second Primary, reports role and
//! connection changes as events, and sees the peer's loss. Needs root, QEMU and the DRBD 9 build
//! prerequisites (`lab::drbd9::require_lab9`); build the guest binaries first
//! (`cargo build -p tests --bins`).

use std::sync::{Mutex, MutexGuard};
use std::time::Duration;

use lab::agent_lab::{self, master, set_pool_conf, slave_of, wait_status, Source};
use lab::bringup::{read_marker, wait_until, write_marker, Resource};
use lab::drbd9::bringup::{self, nl, nl_run};
use lab::{Lab, Node};

static SERIAL: Mutex<()> = Mutex::new(());

/// The shared DRBD 9 lab, agents stopped and `r0` down on both nodes, then (if `up`) a fresh,
/// connected, UpToDate pair (both Secondary) brought up with drbdsetup; `None` (SKIP) outside CI
/// when prerequisites are missing.
fn lab9(up: bool) -> Option<(MutexGuard<'static, ()>, &'static Lab, Resource)> {
    if !lab::drbd9::require_lab9() {
        return None;
    }
    let g = SERIAL.lock().unwrap_or_else(|p| p.into_inner());
    let lab = lab::drbd9::shared_lab().unwrap_or_else(|e| panic!("{e:#}"));
    let r = Resource::default();
    let (a, b) = nodes(lab);
    let up = || -> anyhow::Result<()> {
        agent_lab::reset(lab)?; // agents stopped, tgtd and the address gone
        bringup::reset(a, &r)?;
        bringup::reset(b, &r)?;
        if up {
            bringup::pair_up(a, b, &r)?;
        }
        Ok(())
    };
    if let Err(e) = up() {
        panic!("DRBD 9 pair up: {e:#}\n{}", lab.logs_tail(30));
    }
    Some((g, lab, r))
}

fn nodes(lab: &Lab) -> (&Node, &Node) {
    (lab.node(0).expect("node a"), lab.node(1).expect("node b"))
}

/// Runs `body` with the resource and nodes a, b on [`lab9`]`(up)` (nothing outside CI when its
/// prerequisites are missing); an error panics with the lab's log tail.
fn with_lab9(up: bool, body: impl FnOnce(&Resource, &Node, &Node) -> anyhow::Result<()>) {
    let Some((_g, lab, r)) = lab9(up) else {
        return;
    };
    let (a, b) = nodes(lab);
    if let Err(e) = body(&r, a, b) {
        panic!("{e:#}\n{}", lab.logs_tail(30));
    }
}

/// The `exists resource` line of drbdsetup's snapshot says `role:<role>`.
fn oracle_role(node: &Node, r: &Resource, role: &str) -> anyhow::Result<()> {
    let ev = bringup::events_now(node, r)?;
    anyhow::ensure!(
        ev.lines()
            .any(|l| l.starts_with("exists resource") && l.contains(&format!("role:{role} "))),
        "node {}: drbdsetup says not {role}:\n{ev}",
        node.name()
    );
    Ok(())
}

#[test]
fn drbdnl9_status_roles_and_two_primaries_refused() {
    with_lab9(true, |r, a, b| {
        let ours = nl(a, "status r0")?;
        let oracle = bringup::events_now(a, r)?;
        for (want, oracle_has) in [
            ("resource name:r0 role:Secondary suspended:no", "role:Secondary"),
            ("device name:r0 volume:0 minor:1 disk:UpToDate quorum:yes", "disk:UpToDate"),
            (
                "connection name:r0 peer-node-id:1 conn-name:b connection:Connected role:Secondary",
                "connection:Connected",
            ),
            (
                "peer-device name:r0 peer-node-id:1 volume:0 replication:Established peer-disk:UpToDate",
                "peer-disk:UpToDate",
            ),
            (
                "path name:r0 peer-node-id:1 local:ipv4:10.99.0.1:7789 peer:ipv4:10.99.0.2:7789 established:yes",
                "established:yes",
            ),
        ] {
            anyhow::ensure!(ours.contains(want), "drbd9-lab status lacks {want:?}:\n{ours}");
            anyhow::ensure!(oracle.contains(oracle_has), "drbdsetup lacks {oracle_has:?}:\n{oracle}");
        }
        // An unknown resource is an empty status, not an error (as drbdsetup's dumps).
        let none = nl(a, "status r7")?;
        anyhow::ensure!(none.trim().is_empty(), "status r7: {none}");
        // Promote, demote, and a second Primary refused.
        nl(a, "primary r0")?;
        oracle_role(a, r, "Primary")?;
        let o = nl_run(b, "primary r0")?;
        anyhow::ensure!(
            o.rc != 0 && o.stdout.contains("ERROR StateChange SS_TWO_PRIMARIES"),
            "b promoted while a is Primary: rc {} {}",
            o.rc,
            o.stdout
        );
        oracle_role(b, r, "Secondary")?;
        let o = nl_run(a, "primary r7")?;
        anyhow::ensure!(
            o.stdout.contains("ERROR Kernel ERR_RES_NOT_KNOWN"),
            "primary r7: {}",
            o.stdout
        );
        nl(a, "secondary r0")?;
        oracle_role(a, r, "Secondary")?;
        nl(b, "primary r0")?;
        oracle_role(b, r, "Primary")?;
        nl(b, "secondary r0")?;
        Ok(())
    });
}

#[test]
fn drbdnl9_events_report_role_changes() {
    with_lab9(true, |r, a, b| {
        a.run_ok(&format!(
            "{} events 30 --now > /tmp/ev9.txt 2>&1 & echo $! > /tmp/ev9.pid",
            Node::guest_bin("drbd9-lab")
        ))?;
        wait_until(
            a,
            "grep -q '^exists -' /tmp/ev9.txt",
            "event snapshot",
            Duration::from_secs(30),
        )?;
        nl(a, "primary r0")?;
        bringup::secondary(a, r)?;
        bringup::primary(b, r)?;
        wait_until(
            a,
            "grep -q '^change connection name:r0 peer-node-id:1 conn-name:b connection:Connected role:Primary' /tmp/ev9.txt || { cat /tmp/ev9.txt; exit 1; }",
            "peer Primary event",
            Duration::from_secs(20),
        )?;
        bringup::secondary(b, r)?;
        wait_until(
            a,
            "grep -q '^change connection .*role:Secondary' /tmp/ev9.txt",
            "peer Secondary event",
            Duration::from_secs(20),
        )?;
        let ev = a.run_ok("cat /tmp/ev9.txt")?.stdout;
        for want in [
            "exists resource name:r0 role:Secondary",
            "exists connection name:r0 peer-node-id:1 conn-name:b connection:Connected",
            "change resource name:r0 role:Primary",
            "change resource name:r0 role:Secondary",
        ] {
            anyhow::ensure!(ev.contains(want), "no {want:?} in events:\n{ev}");
        }
        anyhow::ensure!(!ev.contains("ERROR"), "undecodable events:\n{ev}");
        a.run("kill $(cat /tmp/ev9.pid)").map(|_| ())
    });
}

#[test]
fn drbdnl9_sees_peer_loss_and_stays_primary() {
    with_lab9(true, |r, a, b| {
        nl(a, "primary r0")?;
        b.kill()?;
        wait_until(
            a,
            &format!(
                "{} status r0 | grep -q 'connection:Connecting'",
                Node::guest_bin("drbd9-lab")
            ),
            "connection lost",
            Duration::from_secs(60),
        )?;
        let st = nl(a, "status r0")?;
        anyhow::ensure!(st.contains("resource name:r0 role:Primary"), "{st}");
        anyhow::ensure!(st.contains("peer-disk:DUnknown"), "{st}");
        write_marker(a, &r.device(), "written-after-peer-loss")?;
        nl(a, "secondary r0")?;
        b.boot()?;
        Ok(())
    });
}

/// The whole `drbdadm up` through drbd-nl (new-resource with node id, new-minor, new-peer,
/// new-path, attach, connect; then new-current-uuid), checked with drbdsetup; a marker written on
/// a is read on b after a switchover; `down` through drbd-nl.
#[test]
fn drbdnl9_brings_pair_up_replicates_and_down() {
    with_lab9(false, |r, a, b| {
        for n in [a, b] {
            let v = n.run_ok("head -1 /proc/drbd")?.stdout;
            anyhow::ensure!(v.contains("version: 9.3.3"), "node {}: {v}", n.name());
        }
        let up = |n: &Node, p: &Node| {
            nl(
                n,
                &format!(
                    "up {res} {me} {m} {d} {pid} {pname} {mip}:{port} {pip}:{port} --create-md",
                    res = r.name,
                    me = n.index(),
                    m = r.minor,
                    d = r.disk,
                    pid = p.index(),
                    pname = p.name(),
                    mip = n.ip(),
                    pip = p.ip(),
                    port = r.port
                ),
            )
        };
        std::thread::scope(|s| -> anyhow::Result<()> {
            let hb = s.spawn(|| up(b, a));
            up(a, b)?;
            hb.join().map_err(|_| anyhow::anyhow!("panicked"))??;
            Ok(())
        })?;
        wait_until(
            a,
            "drbdsetup events2 --now r0 | grep -q '^exists connection .*connection:Connected'",
            "Connected (drbdsetup)",
            Duration::from_secs(60),
        )?;
        nl(a, &format!("new-uuid {}", r.minor))?;
        wait_until(
            b,
            "drbdsetup events2 --now r0 | grep -q '^exists device .*disk:UpToDate'",
            "b UpToDate (drbdsetup)",
            Duration::from_secs(60),
        )?;
        let ev = bringup::events_now(a, r)?;
        for want in [
            "exists resource name:r0 role:Secondary",
            "exists path name:r0 peer-node-id:1 conn-name:b local:ipv4:10.99.0.1:7789 peer:ipv4:10.99.0.2:7789 established:yes",
            "peer-disk:UpToDate",
        ] {
            anyhow::ensure!(ev.contains(want), "drbdsetup lacks {want:?}:\n{ev}");
        }
        // Replication: written on a while Primary, read on b after a switchover.
        let marker = "drbd9-replicated-from-a";
        nl(a, "primary r0")?;
        write_marker(a, &r.device(), marker)?;
        nl(a, "secondary r0")?;
        nl(b, "primary r0")?;
        let got = read_marker(b, &r.device(), marker.len())?;
        anyhow::ensure!(got == marker, "b read {got:?}, a wrote {marker:?}");
        nl(b, "secondary r0")?;
        nl(a, "down r0")?;
        let st = a.run("drbdsetup status r0")?;
        anyhow::ensure!(st.rc != 0, "r0 still exists after down: {}", st.stdout);
        Ok(())
    });
}

/// Switchover through pool.conf (a slave, then b master): b serves, the client reads `marker`
/// through the address, drbdsetup says b is Primary. `t`: each wait's limit.
fn switch_over_to_b(lab: &Lab, r: &Resource, marker: &str, t: Duration) -> anyhow::Result<()> {
    let (a, b) = nodes(lab);
    set_pool_conf(a, Some(&slave_of(b)))?;
    wait_status(a, "a demoted", t, agent_lab::holds_secondary)?;
    set_pool_conf(b, Some(master()))?;
    wait_status(b, "b to serve", t, agent_lab::is_serving)?;
    agent_lab::client_read_until(lab, marker, t)?;
    oracle_role(b, r, "Primary")
}

/// Failover: power loss of b (the primary), then a's pool.conf says master (what the pool master
/// election writes); a's agent promotes once DRBD has declared b lost (up to 90 s), the client
/// reads `marker` (up to `t`), drbdsetup says a is Primary.
fn fail_over_to_a(lab: &Lab, r: &Resource, marker: &str, t: Duration) -> anyhow::Result<()> {
    let (a, b) = nodes(lab);
    b.kill()?;
    set_pool_conf(a, Some(master()))?;
    wait_status(
        a,
        "a to take over",
        Duration::from_secs(90),
        agent_lab::is_serving,
    )?;
    agent_lab::client_read_until(lab, marker, t)?;
    oracle_role(a, r, "Primary")
}

/// The iscsi-ha agent on DRBD 9 (adopt mode, pool.conf): a serves, the client reads the marker
/// through the floating address; pool.conf flips a to slave, b to master: b serves the same data;
/// b's QEMU is killed and a's pool.conf says master: a takes over, the client reads the same data.
#[test]
fn agent_switches_over_and_fails_over_on_drbd9() {
    let Some((_g, lab, r)) = lab9(true) else {
        return;
    };
    let (a, b) = nodes(lab);
    let marker = "drbd9-agent-marker";
    let run = || -> anyhow::Result<()> {
        bringup::primary(a, &r)?;
        write_marker(a, &r.device(), marker)?;
        bringup::secondary(a, &r)?;
        for n in [a, b] {
            agent_lab::start_tgtd(n)?;
            agent_lab::install_config(n, &r, Source::PoolConf)?;
        }
        set_pool_conf(a, Some(master()))?;
        set_pool_conf(b, Some(&slave_of(a)))?;
        agent_lab::start_agent(a)?;
        agent_lab::start_agent(b)?;
        let t = Duration::from_secs(60);
        wait_status(a, "a to serve", t, agent_lab::is_serving)?;
        wait_status(b, "b converged Secondary", t, agent_lab::is_secondary)?;
        agent_lab::client_read_until(lab, marker, t)?;
        oracle_role(a, &r, "Primary")?;
        let log = a.run_ok("cat /tmp/agent.log")?.stdout;
        anyhow::ensure!(
            log.contains("drbd=\"9\""),
            "agent log lacks the DRBD version:\n{log}"
        );
        let st = agent_lab::status_text(a)?;
        anyhow::ensure!(
            st.contains(", DRBD 9): ") && st.contains("quorum yes"),
            "iscsi-ha status lacks the DRBD version or DRBD 9's promotion facts:\n{st}"
        );
        switch_over_to_b(lab, &r, marker, t)?;
        oracle_role(a, &r, "Secondary")?;
        fail_over_to_a(lab, &r, marker, t)?;
        agent_lab::reset(lab)
    };
    if let Err(e) = run() {
        panic!("{e:#}\n{}", agent_lab::logs(lab, 40));
    }
}

/// The drbd-up stage's ms in the first transition of an agent's status that ran it.
fn drbd_up_ms(v: &serde_json::Value) -> Option<f64> {
    agent_lab::transitions(v)
        .iter()
        .flat_map(|t| t.stages.iter())
        .find(|(n, _)| n == "drbd-up")
        .map(|(_, ms)| *ms)
}

/// On `node` (r0 down, agents stopped): the agent alone brings r0 up in manage mode (pool.conf
/// slave), its drbd-up stage; then drbdadm up's six drbdsetup calls with the same options. Both
/// in the same guest, one after the other; r0 down afterwards. (agent ms, drbdsetup ms).
fn bring_up_figures(node: &Node, peer: &Node, r: &Resource) -> anyhow::Result<(f64, f64)> {
    bringup::create_md(node, r)?;
    agent_lab::start_tgtd(node)?;
    agent_lab::install_managed_config(node, peer, r, true)?;
    set_pool_conf(node, Some(&slave_of(peer)))?;
    agent_lab::start_agent(node)?;
    let v = wait_status(
        node,
        "the agent to bring r0 up",
        Duration::from_secs(60),
        |v| drbd_up_ms(v).is_some(),
    )?;
    agent_lab::stop_agent(node, "TERM")?;
    bringup::down(node, r)?;
    let agent = drbd_up_ms(&v).unwrap_or(f64::NAN);
    Ok((agent, bringup::drbdsetup_up_ms(node, peer, r)?))
}

/// After the failover (a Primary, b powered off): a writes newer data; b boots with its
/// replication link cut and `master` still in its pool.conf. b's agent replays b's activity log
/// (DRBD refuses the unclean metadata of a crashed Primary), brings DRBD up on it and waits for its peer (no promote of stale data); once the link is back b resyncs
/// from a, stays Secondary (a is Primary), never became Primary, and holds a's newer data.
fn stale_master_waits_then_resyncs(lab: &Lab, r: &Resource) -> anyhow::Result<()> {
    let (a, b) = nodes(lab);
    let t = Duration::from_secs(90);
    let newer = "drbd9-written-on-a-after-the-failover";
    write_marker(a, &r.device(), newer)?;
    b.boot()?;
    let tap = lab::net::tap(1);
    let link = |how: &[&str]| {
        let mut args = vec!["-n", lab.name(), "link", "set", tap.as_str()];
        args.extend(how);
        lab::net::ip(&args)
    };
    link(&["nomaster"])?;
    let cut = || -> anyhow::Result<()> {
        agent_lab::start_tgtd(b)?;
        agent_lab::install_managed_config(b, a, r, true)?;
        set_pool_conf(b, Some(master()))?;
        agent_lab::start_agent(b)?;
        let sb = wait_status(b, "b to wait for its peer", t, |v| {
            v["waiting_for_peer"]
                .as_array()
                .is_some_and(|w| !w.is_empty())
        })?;
        anyhow::ensure!(agent_lab::holds_secondary(&sb), "b changed: {sb}");
        Ok(())
    };
    let waited = cut();
    link(&["master", lab::net::BRIDGE])?;
    waited?;
    wait_until(
        b,
        "e=$(drbdsetup events2 --now r0); echo \"$e\" | grep -q '^exists device .*disk:UpToDate' && \
         echo \"$e\" | grep -q '^exists peer-device .*replication:Established peer-disk:UpToDate'",
        "b resynced from a",
        t,
    )?;
    let sb = wait_status(b, "b to see a Primary", t, |v| {
        v["resources"][0]["drbd"]["peer_role"] == "Primary"
    })?;
    anyhow::ensure!(agent_lab::holds_secondary(&sb), "b changed: {sb}");
    let log = b.run_ok(&format!("cat {}", agent_lab::AGENT_LOG))?.stdout;
    // b lost power as Primary: DRBD refused its unclean metadata (165) and the agent, with no
    // boot script's drbdmeta, replayed the activity log itself.
    anyhow::ensure!(
        log.contains("activity log replayed"),
        "b's agent did not replay the activity log:\n{log}"
    );
    anyhow::ensure!(
        !log.lines()
            .any(|l| l.contains("stage=\"drbd-primary") && l.contains("ok=true")),
        "b's agent became DRBD Primary:\n{log}"
    );
    let got = read_marker(b, &r.disk, newer.len())?;
    anyhow::ensure!(
        got == newer,
        "b's disk after resync: {got:?}, a wrote {newer:?}"
    );
    Ok(())
}

/// The iscsi-ha agent in `mode = "manage"` on DRBD 9 (node ids 0/1 in its config): both agents
/// bring `r0` up themselves from fresh metadata (new-resource .. connect with fencing
/// resource-only, after-sb disconnect and the fast-detection timeouts, checked with drbdsetup
/// show); the initial sync is skipped by hand; a serves and the client reads the marker;
/// `iscsi-ha split-brain` shows DRBD 9's generations equal to drbdsetup's show-gi; switchover to
/// b, then b's power loss and a takes over: the client reads the same marker each time; b, now
/// stale, boots cut off with `master` and waits, then resyncs ([`stale_master_waits_then_resyncs`]). Prints
/// the agents' drbd-up stage and `drbdadm up`'s six drbdsetup calls in the same guest.
#[test]
fn agent_manages_drbd9_brings_up_switches_over_and_fails_over() {
    let Some((_g, lab, r)) = lab9(false) else {
        return;
    };
    let (a, b) = nodes(lab);
    let marker = "drbd9-managed-marker";
    let run = || -> anyhow::Result<()> {
        for (n, p) in [(a, b), (b, a)] {
            bringup::create_md(n, &r)?;
            agent_lab::start_tgtd(n)?;
            agent_lab::install_managed_config(n, p, &r, true)?;
        }
        set_pool_conf(a, Some(master()))?;
        set_pool_conf(b, Some(&slave_of(a)))?;
        agent_lab::start_agent(a)?;
        agent_lab::start_agent(b)?;
        let t = Duration::from_secs(90);
        wait_until(
            a,
            "drbdsetup events2 --now r0 | grep -q '^exists connection .*connection:Connected'",
            "the agents to connect DRBD 9",
            t,
        )?;
        // Fresh metadata on both: Inconsistent, so a waits; skip the initial sync.
        a.run_ok(&format!(
            "drbdsetup new-current-uuid --clear-bitmap {}",
            r.minor
        ))?;
        wait_status(a, "a to serve", t, agent_lab::is_serving)?;
        write_marker(a, &r.device(), marker)?;
        let sb = wait_status(b, "b converged Secondary", t, agent_lab::is_secondary)?;
        anyhow::ensure!(
            sb["resources"][0]["drbd"]["fencing"] == "resource-only",
            "fencing not set by the agent: {sb}"
        );
        let show = a.run_ok("drbdsetup show r0")?.stdout;
        let show = show.split_whitespace().collect::<Vec<_>>().join(" ");
        for want in [
            "node-id 0;",
            "_peer_node_id 1;",
            "fencing resource-only;",
            "ping-int 2;",
            "ko-count 4;",
            "_name \"node-1\";",
        ] {
            anyhow::ensure!(
                show.contains(want),
                "drbdsetup show lacks {want:?}:\n{show}"
            );
        }
        agent_lab::client_read_until(lab, marker, t)?;
        oracle_role(a, &r, "Primary")?;
        // Data generations over netlink == drbdsetup show-gi's.
        let (_, sbr) = agent_lab::command(a, "split-brain")?;
        let gi = a.run_ok("drbdsetup show-gi r0 1 0 | grep -m1 '^[0-9A-F]\\{16\\}:'")?;
        let current = gi.stdout.split(':').next().unwrap_or("").trim().to_string();
        anyhow::ensure!(
            sbr.contains(&format!("current {current}"))
                && sbr.contains("DRBD 9 (node id 0): bitmap UUID per peer: node 1 "),
            "split-brain report vs show-gi {}:\n{sbr}",
            gi.stdout
        );
        let both = [a, b].map(|n| agent_lab::status(n).ok().as_ref().and_then(drbd_up_ms));
        switch_over_to_b(lab, &r, marker, t)?;
        fail_over_to_a(lab, &r, marker, t)?;
        stale_master_waits_then_resyncs(lab, &r)?;
        agent_lab::reset(lab)?;
        // Figures in b's guest (r0 down on both, so b only connects towards a): LAB_DRBD9_UP_ROUNDS rounds (default 2).
        bringup::down(a, &r)?;
        bringup::down(b, &r)?;
        eprintln!("DRBD 9 manage-mode bring-up (new-resource .. connect), ms: both agents at once {both:?}");
        let rounds: usize = std::env::var("LAB_DRBD9_UP_ROUNDS")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(2);
        let (mut agent, mut setup) = (Vec::new(), Vec::new());
        for round in 1..=rounds {
            let (ag, se) = bring_up_figures(b, a, &r)?;
            eprintln!("DRBD 9 bring-up round {round} in b's guest: agent drbd-up {ag:.1} ms, drbdsetup x6 {se:.1} ms");
            agent.push(ag);
            setup.push(se);
        }
        let median = |v: &mut Vec<f64>| {
            v.sort_by(f64::total_cmp);
            v.get(v.len() / 2).copied().unwrap_or(f64::NAN)
        };
        eprintln!(
            "DRBD 9 bring-up over {rounds} rounds, median: agent drbd-up {:.1} ms, drbdsetup x6 {:.1} ms",
            median(&mut agent),
            median(&mut setup)
        );
        agent_lab::reset(lab)
    };
    if let Err(e) = run() {
        panic!("{e:#}\n{}", agent_lab::logs(lab, 40));
    }
}
