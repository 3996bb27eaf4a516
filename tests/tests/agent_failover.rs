//! Two `iscsi-ha` agents in two guests and a client (one shared lab for the file): the agent
//! follows pool.conf (as XenServer / XCP-ng HA sets it) and moves the primary — DRBD role, tgtd
//! target and the floating address — and the client reads the same data through the address;
//! `promote` on the secondary while the primary is healthy is refused with the reason; a garbage
//! or missing pool.conf never promotes; tgtd killed and restarted gets its target back; an address
//! deleted by hand comes back; an agent killed and restarted converges; a resource taken down by
//! hand shows down; a reload adds and removes a second floating address while a client reads.
//!
//! DRBD is brought up with `drbdsetup-84` (the agents adopt it). Build first:
//! `cargo build --workspace --bins --examples` (the guests run `iscsi-ha` over 9p).

mod common;

use anyhow::ensure;
use lab::agent_lab::{self as al, Source};
use lab::bringup::Resource;
use std::time::{Duration, Instant};

const MARKER: &str = "AGENT-FAILOVER-MARKER written on a";
const T: Duration = Duration::from_secs(30);

use common::agent_scenario as scenario;

#[test]
fn pool_conf_flip_moves_primary_and_client_reads_same_marker() {
    scenario("pool.conf flip", |lab| {
        let (a, b) = (lab.node(0)?, lab.node(1)?);
        let r = Resource::default();
        al::pool_conf_pair_up(lab, &r, MARKER)?;
        let inq = al::client_inq(lab)?;
        ensure!(inq.contains(&format!("Vendor:{}", al::VENDOR)), "{inq}");
        ensure!(inq.contains(&format!("Product:{}", al::PRODUCT)), "{inq}");
        al::client_read_until(lab, MARKER, T)?;
        let sa = al::status(a)?;
        let p = al::last_transition_with(&sa, "promote", "target-serve")
            .ok_or_else(|| anyhow::anyhow!("no promote on a"))?;
        ensure!(p.result == "ok", "{p:?}");
        eprintln!("a promote: {p:?}");

        // The pool master moves to b: a becomes slave, then b master (as XAPI rewrites them).
        al::set_pool_conf(a, Some(&al::slave_of(b)))?;
        al::wait_status(a, "a to demote", T, al::is_secondary)?;
        al::set_pool_conf(b, Some(al::master()))?;
        let sb = al::wait_status(b, "b to serve", T, al::is_serving)?;
        let p = al::last_transition_with(&sb, "promote", "target-serve")
            .ok_or_else(|| anyhow::anyhow!("no promote on b"))?;
        ensure!(p.result == "ok", "{p:?}");
        eprintln!("b promote: {p:?}");
        al::client_read_until(lab, MARKER, T)?;
        let o = b.run_ok("cat /proc/drbd; ip -4 -o addr show eth0")?;
        ensure!(o.stdout.contains("ro:Primary/Secondary"), "{}", o.stdout);
        ensure!(
            o.stdout.contains(&lab::FLOATING_IP.to_string()),
            "{}",
            o.stdout
        );
        let o = a.run_ok("ip -4 -o addr show eth0")?;
        ensure!(
            !o.stdout.contains(&lab::FLOATING_IP.to_string()),
            "{}",
            o.stdout
        );

        // And back to a, in the other order: a's pool.conf says master while b still serves (a's
        // agent refuses while b is DRBD Primary), then b's says slave; a follows once b demoted.
        al::set_pool_conf(a, Some(al::master()))?;
        std::thread::sleep(Duration::from_millis(500));
        let sa = al::status(a)?;
        ensure!(
            al::holds_secondary(&sa),
            "a promoted while b was Primary: {sa}"
        );
        eprintln!("a while b still Primary: notice {}", sa["notice"]);
        al::set_pool_conf(b, Some(&al::slave_of(a)))?;
        al::wait_status(b, "b to demote", T, al::is_secondary)?;
        al::wait_status(a, "a to serve again", T, al::is_serving)?;
        al::client_read_until(lab, MARKER, T)?;
        Ok(())
    });
}

#[test]
fn promote_on_secondary_refused_while_primary_healthy() {
    scenario("promote refused", |lab| {
        let (a, b) = (lab.node(0)?, lab.node(1)?);
        let r = Resource::default();
        al::drbd_pair_secondary_with_marker(a, b, &r, MARKER)?;
        for n in [a, b] {
            al::start_tgtd(n)?;
            al::install_config(n, &r, Source::Command)?;
            al::start_agent(n)?;
        }
        let (rc, msg) = al::command(a, "promote")?;
        ensure!(rc == 0, "promote on a: rc={rc} {msg}");
        al::wait_status(a, "a to serve", T, al::is_serving)?;
        al::wait_status(b, "b to see a Primary", T, |v| {
            v["resources"][0]["drbd"]["peer_role"] == "Primary"
        })?;
        let (rc, msg) = al::command(b, "promote")?;
        eprintln!("b promote: rc={rc} {msg}");
        ensure!(rc != 0, "promote on b while a is Primary must fail: {msg}");
        ensure!(msg.contains("refused"), "no refusal reason: {msg}");
        // The live checks refuse: the address probe hears a answer for the address, or DRBD
        // itself refuses a second Primary (docs/takeover.md).
        ensure!(
            msg.contains("Primary") || msg.contains("another host answers"),
            "reason names neither the Primary peer nor the address: {msg}"
        );
        let sb = al::status(b)?;
        ensure!(al::holds_secondary(&sb), "b changed: {sb}");
        let sa = al::status(a)?;
        ensure!(al::is_serving(&sa), "a changed: {sa}");
        al::client_read_until(lab, MARKER, T)?;

        // Once a demotes, b may promote.
        let (rc, msg) = al::command(a, "demote")?;
        ensure!(rc == 0, "demote on a: {msg}");
        al::wait_status(a, "a secondary", T, al::is_secondary)?;
        al::wait_status(b, "b to see a Secondary", T, |v| {
            v["resources"][0]["drbd"]["peer_role"] == "Secondary"
        })?;
        let (rc, msg) = al::command(b, "promote")?;
        ensure!(rc == 0, "promote on b after a demoted: {msg}");
        al::wait_status(b, "b to serve", T, al::is_serving)?;
        al::client_read_until(lab, MARKER, T)?;
        Ok(())
    });
}

#[test]
fn garbage_or_missing_pool_conf_never_promotes() {
    scenario("garbage pool.conf", |lab| {
        let (a, b) = (lab.node(0)?, lab.node(1)?);
        let r = Resource::default();
        al::pool_conf_pair_up(lab, &r, MARKER)?;
        // a gives up the master role; nobody is master now.
        al::set_pool_conf(a, Some(&al::slave_of(b)))?;
        al::wait_status(a, "a to demote", T, al::is_secondary)?;
        let bad: [(&str, Option<&str>); 5] = [
            ("garbage", Some("\u{1}\u{2}garbage master")),
            ("empty", Some("")),
            ("slave without address", Some("slave:")),
            ("masterX", Some("masterX\n")),
            ("missing", None),
        ];
        for (what, contents) in bad {
            al::set_pool_conf(b, contents)?;
            let v = al::wait_status(b, &format!("b to see the {what} pool.conf"), T, |v| {
                al::authority(v) == "unknown"
            })?;
            ensure!(al::holds_secondary(&v), "{what}: b is not secondary: {v}");
            ensure!(v["converged"] == false,);
            // Give it time to (wrongly) act, then check again, DRBD included.
            std::thread::sleep(Duration::from_millis(1500));
            let v = al::status(b)?;
            ensure!(al::holds_secondary(&v), "{what}: b moved: {v}");
            let o = b.run_ok("cat /proc/drbd")?;
            ensure!(
                o.stdout.contains("ro:Secondary/Secondary"),
                "{what}: {}",
                o.stdout
            );
            eprintln!("{what}: authority {}, b stays Secondary", v["authority"]);
        }
        // The agent still follows a valid signal afterwards.
        al::set_pool_conf(b, Some(al::master()))?;
        al::wait_status(b, "b to serve", T, al::is_serving)?;
        al::client_read_until(lab, MARKER, T)?;
        Ok(())
    });
}

#[test]
fn tgtd_restart_address_delete_and_agent_restart_converge() {
    scenario("repairs", |lab| {
        let a = lab.node(0)?;
        let r = Resource::default();
        al::pool_conf_pair_up(lab, &r, MARKER)?;
        al::client_read_until(lab, MARKER, T)?;

        // tgtd killed: no target serves any more, so the address goes (never held without a
        // serving target); tgtd restarted (as its service manager would): the target comes
        // back, then the address, probed again.
        a.run_ok("kill -9 $(pidof tgtd); i=0; while pidof tgtd >/dev/null && [ $i -lt 100 ]; do sleep 0.05; i=$((i+1)); done; rm -f /var/run/tgtd/socket.*")?;
        let t = Instant::now();
        al::wait_status(a, "address released while tgtd is dead", T, |v| {
            v["addresses"][0]["held"] == false && v["resources"][0]["target"]["state"] == "absent"
        })?;
        eprintln!("tgtd killed -> address released: {:?}", t.elapsed());
        let o = a.run_ok("ip -4 -o addr show eth0")?;
        ensure!(
            !o.stdout.contains(&lab::FLOATING_IP.to_string()),
            "address still on eth0 while tgtd is dead: {}",
            o.stdout
        );
        let t = Instant::now();
        al::start_tgtd(a)?;
        al::wait_status(
            a,
            "target and address back after tgtd restart",
            T,
            al::is_serving,
        )?;
        eprintln!(
            "tgtd started -> serving with the address: {:?}",
            t.elapsed()
        );
        al::client_read_until(lab, MARKER, T)?;

        // Address deleted by hand: the agent restores it.
        a.run_ok(&format!(
            "ip addr del {}/{} dev eth0",
            lab::FLOATING_IP,
            lab::PREFIX
        ))?;
        al::wait_status(a, "address restored", T, al::is_serving)?;
        let o = a.run_ok("ip -4 -o addr show eth0")?;
        ensure!(
            o.stdout.contains(&lab::FLOATING_IP.to_string()),
            "{}",
            o.stdout
        );
        al::client_read_until(lab, MARKER, T)?;

        // Agent SIGKILLed and restarted while serving: it adopts without a flap.
        al::stop_agent(a, "KILL")?;
        al::start_agent(a)?;
        let v = al::wait_status(a, "a converged after restart", T, al::is_serving)?;
        let demotes = al::transitions(&v)
            .iter()
            .filter(|t| t.kind == "demote")
            .count();
        ensure!(demotes == 0, "restart flapped: {v}");
        al::client_read_until(lab, MARKER, T)?;

        // Agent SIGKILLed mid-promotion (as soon as its log shows the drbd-primary stage done, so
        // target and address are still to come), restarted: converges to serving.
        let b = lab.node(1)?;
        al::set_pool_conf(a, Some(&al::slave_of(b)))?;
        al::wait_status(a, "a to demote", T, al::is_secondary)?;
        b.run_ok(&format!(
            "n=$(wc -l < {log}); printf master > {p}.tmp && mv -f {p}.tmp {p}; i=0; \
             while ! tail -n +$((n+1)) {log} | grep -q '\"drbd-primary\"' && [ $i -lt 3000 ]; do i=$((i+1)); done; \
             kill -9 $(cat {pid}); tail -n +$((n+1)) {log} > /tmp/killed-promote.log",
            p = al::POOL_CONF,
            pid = al::AGENT_PID,
            log = al::AGENT_LOG
        ))?;
        let o = b.run(
            "tr -d '\\033' < /tmp/killed-promote.log | sed 's/\\[[0-9;]*m//g' > /tmp/kp.txt; \
             echo \"stages logged: $(grep -o 'stage=\"[a-z-]*\"' /tmp/kp.txt | tr '\\n' ' ')\"; \
             echo \"finished transitions: $(grep -c 'result=' /tmp/kp.txt)\"; grep cs: /proc/drbd; \
             tgtadm --lld iscsi --op show --mode target | head -1; ip -4 -o addr show eth0",
        )?;
        eprintln!(
            "b after SIGKILL mid-promotion (stages logged, finished transitions, DRBD, tgtd, address):\n{}",
            o.stdout
        );
        b.run_ok(&format!("rm -f {}", al::AGENT_PID))?;
        al::start_agent(b)?;
        al::wait_status(
            b,
            "b converged after restart mid-promotion",
            T,
            al::is_serving,
        )?;
        al::client_read_until(lab, MARKER, T)?;

        // `drbdsetup down` by hand on the secondary: 8.4 sends no event for the minor it
        // deletes; a's status says down without waiting for its 60 s safety net (a restarted
        // agent: its first safety net is 60 s away, twice the wait below).
        al::stop_agent(a, "KILL")?;
        al::start_agent(a)?;
        al::wait_status(a, "a converged after restart", T, al::is_secondary)?;
        let t = Instant::now();
        a.run_ok(&format!("drbdsetup-84 down {}", r.name))?;
        al::wait_status(a, "a's status to show r0 down", T, |v| {
            v["resources"][0]["drbd"]["up"] == false
        })?;
        eprintln!("drbdsetup down -> a's status says down: {:?}", t.elapsed());
        Ok(())
    });
}

/// Live reload with a client reading through the floating address the whole time: a second
/// address for the same resource (a multipath portal), added to both nodes' files and reloaded
/// (secondary first), is claimed on the primary only and reaches the target; removed and reloaded
/// again, it is released. The reader's session (tgtd's session id) never changes and no read
/// fails; its reads and longest pause around each reload are printed next to its longest pause
/// in quiet seconds before (figures only, never asserted on).
#[test]
fn reload_adds_and_removes_an_address_while_a_client_reads() {
    const EXTRA: std::net::Ipv4Addr = std::net::Ipv4Addr::new(10, 99, 0, 51);
    scenario("reload with a client reading", |lab| {
        let (a, b) = (lab.node(0)?, lab.node(1)?);
        let r = Resource::default();
        al::pool_conf_pair_up(lab, &r, MARKER)?;
        let url = lab::bringup::iscsi_url(lab::FLOATING_IP, al::IQN, 1);
        let reader =
            lab::iscsi::Reader::start(lab.client().netns(), &url, "iqn.2026-11.lab:reader", 30)
                .map_err(|e| anyhow::anyhow!("the reader: {e}"))?;
        let sessions = || -> anyhow::Result<String> {
            let o = a.run_ok("tgtadm --lld iscsi --mode conn --op show --tid 1 | grep Session")?;
            Ok(o.stdout)
        };
        let t = std::time::Instant::now();
        let before = loop {
            match sessions() {
                Ok(s) if !s.trim().is_empty() => break s,
                _ if t.elapsed() > T => anyhow::bail!("the reader never logged in"),
                _ => std::thread::sleep(Duration::from_millis(100)),
            }
        };
        let extra = format!(
            "\n[[address]]\naddress = \"{EXTRA}/{}\"\ninterface = \"eth0\"\nresources = [\"{}\"]\n",
            lab::PREFIX,
            r.name
        );
        // Quiet seconds (no reload) for the reader's usual pause; each reload's window is timed.
        let quiet = Instant::now();
        std::thread::sleep(Duration::from_secs(3));
        let mut windows = vec![("quiet 3 s, no reload".to_string(), quiet, Instant::now())];
        let mut reload = |n: &lab::Node, what: &str| -> anyhow::Result<(i32, String)> {
            let from = Instant::now();
            let r = al::command(n, "reload")?;
            windows.push((format!("{what} on {}", n.name()), from, Instant::now()));
            Ok(r)
        };
        let holds = |n: &lab::Node| -> anyhow::Result<bool> {
            let o = n.run_ok("ip -4 -o addr show eth0")?;
            Ok(o.stdout.contains(&format!(" {EXTRA}/")))
        };
        for n in [b, a] {
            let text = al::config_toml(n, &r, Source::PoolConf) + &extra;
            n.put_file(al::CONFIG, text.as_bytes())?;
            let (rc, msg) = reload(n, "reload adding the address")?;
            eprintln!("{}: {msg}", n.name());
            ensure!(
                rc == 0 && msg.contains(&format!("added address {EXTRA}/")),
                "{msg}"
            );
        }
        ensure!(
            holds(a)? && !holds(b)?,
            "{EXTRA} not claimed on the primary only"
        );
        let inq = lab
            .client()
            .run_ok(&["iscsi-inq", &lab::bringup::iscsi_url(EXTRA, al::IQN, 1)])?;
        ensure!(inq.stdout.contains(al::VENDOR), "{}", inq.stdout);
        for n in [b, a] {
            al::install_config(n, &r, Source::PoolConf)?;
            let (rc, msg) = reload(n, "reload removing the address")?;
            eprintln!("{}: {msg}", n.name());
            ensure!(
                rc == 0 && msg.contains(&format!("removed address {EXTRA}/")),
                "{msg}"
            );
        }
        ensure!(!holds(a)?, "{EXTRA} still held");
        ensure!(reader.reading(), "the reader failed across the reloads");
        let after = sessions()?;
        ensure!(
            before.lines().all(|l| after.lines().any(|m| m == l)),
            "the reader's session changed: {before} -> {after}"
        );
        let reads = reader.stop();
        ensure!(reads.failed.is_none(), "a read failed: {:?}", reads.failed);
        eprintln!("the {}", reads.summary(&windows));
        Ok(())
    });
}
