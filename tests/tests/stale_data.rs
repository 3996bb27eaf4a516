//! No promote of stale data, and split brain detected, reported and recovered by hand, with two
//! `iscsi-ha` agents in two guests (one shared lab for the file; see
//! `docs/stale-data-and-split-brain.md`).
//!
//! - `rebooted_stale_master_never_promotes`: a serves and is killed (power loss), b takes over and
//!   takes writes, a boots with its replication link cut and `master` still in its pool.conf:
//!   DRBD (fencing `dont-care`) calls a's disk UpToDate, a's agent waits for its peer and says
//!   so; once the link is back a resyncs from b, never becomes Primary, and b keeps every write.
//! - `split_brain_detected_reported_and_recovered` (agents in `manage` mode: they bring DRBD up
//!   with fencing `resource-only` and after-sb `disconnect`): the replication link is cut while a
//!   serves, b is made master too and promotes (forced past the missing fence-peer handler, as
//!   it was Connected and UpToDate when the link went), both write; reconnected, DRBD finds the
//!   split brain, both agents report it (`status` exits non-zero, `split-brain` prints the
//!   recovery), and the documented steps (a is the victim) bring the pair back with b's writes
//!   and without a's.
//! - `managed_power_loss_takes_over_and_the_victim_rejoins` (manage mode): a loses power, b is
//!   elected at once and takes over: DRBD's ping wait runs while b's address probe listens, the
//!   unforced request is refused by DRBD's fencing (−7), the forced one follows the probe. a
//!   boots; its agent replays a's activity log (DRBD refuses unclean metadata, 165), attaches
//!   and resyncs from b.
//! - `managed_power_loss_never_forces_while_another_host_answers`: the same with the floating
//!   address answered by another host (the client's namespace): b is refused, never forced.
//! - `two_volumes_of_one_resource_promote_and_demote_together` (manage mode): one target with two
//!   LUNs on the two volumes of one resource; both minors created, promoted and demoted together.
//!
//! The partition takes a node's tap off the lab bridge inside the lab's own namespace. Build
//! first: `cargo build --workspace --bins --examples`.

mod common;

use anyhow::{bail, ensure, Context, Result};
use lab::agent_lab::{self as al, Source};
use lab::bringup::{self, Resource};
use lab::{net, Lab, Node};
use serde_json::Value;
use std::time::{Duration, Instant};

const MARKER: &str = "STALE-DATA-MARKER written on a";
const T: Duration = Duration::from_secs(60);

use common::agent_scenario as scenario;

/// Node `i`'s tap taken off the lab bridge until dropped (or [`Partition::heal`]).
struct Partition<'a> {
    lab: &'a Lab,
    i: usize,
    healed: bool,
}

impl<'a> Partition<'a> {
    fn cut(lab: &'a Lab, i: usize) -> Result<Self> {
        net::ip(&["-n", lab.name(), "link", "set", &net::tap(i), "nomaster"])?;
        Ok(Partition {
            lab,
            i,
            healed: false,
        })
    }

    fn heal(mut self) -> Result<()> {
        self.healed = true;
        let t = net::tap(self.i);
        net::ip(&[
            "-n",
            self.lab.name(),
            "link",
            "set",
            &t,
            "master",
            net::BRIDGE,
        ])?;
        Ok(())
    }
}

impl Drop for Partition<'_> {
    fn drop(&mut self) {
        if !self.healed {
            let t = net::tap(self.i);
            let _ = net::ip(&[
                "-n",
                self.lab.name(),
                "link",
                "set",
                &t,
                "master",
                net::BRIDGE,
            ]);
        }
    }
}

/// Writes `text` into 512-byte block `lba` of `dev` (synchronously).
fn write_block(node: &Node, dev: &str, lba: u32, text: &str) -> Result<()> {
    ensure!(!text.contains(['\'', '\n']) && text.len() <= 512);
    node.run_ok(&format!(
        "printf '%s' '{text}' | dd of={dev} bs=512 seek={lba} count=1 conv=sync,fsync 2>/dev/null"
    ))?;
    Ok(())
}

/// The first `len` bytes of 512-byte block `lba` of `dev`.
fn read_block(node: &Node, dev: &str, lba: u32, len: usize) -> Result<String> {
    Ok(node
        .run_ok(&format!(
            "dd if={dev} bs=512 skip={lba} count=1 iflag=direct 2>/dev/null | head -c {len}"
        ))?
        .stdout)
}

fn b_write(i: u32) -> String {
    format!("block {i} written on b after the takeover")
}

/// `iscsi-ha status --json` with its exit code (non-zero while a split brain is reported).
fn status_rc(node: &Node) -> Result<(i32, Value)> {
    let o = node.run(&format!(
        "{} -c {} status --json",
        al::agent_bin(),
        al::CONFIG
    ))?;
    let v = serde_json::from_str(&o.stdout)
        .with_context(|| format!("node {}: status is not JSON: {}", node.name(), o.stdout))?;
    Ok((o.rc, v))
}

fn wait_rc(node: &Node, what: &str, cond: impl Fn(i32, &Value) -> bool) -> Result<Value> {
    let t = Instant::now();
    loop {
        let last = match status_rc(node) {
            Ok((rc, v)) if cond(rc, &v) => return Ok(v),
            Ok((rc, v)) => format!("rc={rc} {v}"),
            Err(e) => format!("{e:#}"),
        };
        if t.elapsed() > T {
            bail!(
                "node {}: timeout waiting for {what}; last: {last}",
                node.name()
            );
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

fn cs_line(node: &Node, r: &Resource) -> String {
    bringup::proc_drbd_line(node, r).unwrap_or_default()
}

#[test]
fn rebooted_stale_master_never_promotes() {
    scenario("rebooted stale master", |lab| {
        let (a, b) = (lab.node(0)?, lab.node(1)?);
        let r = Resource::default();
        let dev = r.device();
        al::pool_conf_pair_up(lab, &r, MARKER)?;

        // Power loss of a; the pool elects b, b takes over and takes writes.
        a.kill()?;
        al::set_pool_conf(b, Some(al::master()))?;
        al::wait_status(b, "b to serve", T, al::is_serving)?;
        for i in 1..=8 {
            write_block(b, &dev, 100 + i, &b_write(i))?;
        }

        // a boots with its replication link cut and its stale pool.conf (`master`).
        a.boot()?;
        let cut = Partition::cut(lab, 0)?;
        bringup::drbd84_attach(a, &r, false)?;
        bringup::drbd84_connect(a, b, &r)?;
        eprintln!("a after attach, link cut: {}", cs_line(a, &r));
        al::start_tgtd(a)?;
        al::install_config(a, &r, Source::PoolConf)?;
        al::set_pool_conf(a, Some(al::master()))?;
        al::start_agent(a)?;
        let sa = al::wait_status(a, "a to wait for its peer", T, |v| {
            v["waiting_for_peer"]
                .as_array()
                .is_some_and(|w| !w.is_empty())
        })?;
        ensure!(al::holds_secondary(&sa), "a changed: {sa}");
        eprintln!("a: {}", al::status_text(a)?);

        // The link comes back: a resyncs from b (newer data) and stays Secondary.
        cut.heal()?;
        bringup::wait_until(
            a,
            &format!(
                "grep -q '^ *{}: cs:Connected ro:Secondary/Primary ds:UpToDate/UpToDate' /proc/drbd",
                r.minor
            ),
            "a resynced from b",
            T,
        )?;
        let sa = al::wait_status(a, "a to see b Primary", T, |v| {
            v["resources"][0]["drbd"]["peer_role"] == "Primary"
        })?;
        ensure!(al::holds_secondary(&sa), "a changed: {sa}");
        let log = a.run_ok(&format!("cat {}", al::AGENT_LOG))?.stdout;
        // (DRBD may be asked and refuse while b is Primary; it must never have said yes.)
        ensure!(
            !log.lines()
                .any(|l| l.contains("stage=\"drbd-primary") && l.contains("ok=true")),
            "a's agent became DRBD Primary:\n{log}"
        );
        ensure!(
            log.contains("waiting for the peer"),
            "a's agent never said it waited:\n{log}"
        );

        // b kept every write; a's disk now holds them too (read from a's backing disk).
        for i in 1..=8 {
            let want = b_write(i);
            ensure!(
                read_block(b, &dev, 100 + i, want.len())? == want,
                "b lost block {i}"
            );
            ensure!(
                read_block(a, &r.disk, 100 + i, want.len())? == want,
                "a did not resync block {i}"
            );
        }
        al::client_read_until(lab, MARKER, T)?;
        Ok(())
    });
}

#[test]
fn split_brain_detected_reported_and_recovered() {
    scenario("split brain", |lab| {
        let (a, b) = (lab.node(0)?, lab.node(1)?);
        let r = Resource::default();
        let dev = r.device();
        al::managed_pair_up(lab, &r, MARKER)?;

        // The replication link breaks; b is made master too and promotes (it was Connected and
        // UpToDate when its peer vanished), a keeps serving: two Primaries.
        let cut = Partition::cut(lab, 0)?;
        al::set_pool_conf(b, Some(al::master()))?;
        al::wait_status(b, "b to serve", T, al::is_serving)?;
        let on_a = "written on a during the split";
        let on_b = "written on b during the split";
        write_block(a, &dev, 200, on_a)?;
        write_block(b, &dev, 201, on_b)?;

        // Reconnected: DRBD finds the split brain; both agents report it.
        cut.heal()?;
        for n in [a, b] {
            let v = wait_rc(n, "split brain reported", |rc, v| {
                rc != 0 && v["split_brain"][0] == "r0"
            })?;
            eprintln!("{}: split_brain {}", n.name(), v["split_brain"]);
            let (rc, text) = al::command(n, "split-brain")?;
            eprintln!(
                "--- {} iscsi-ha split-brain (rc {rc}) ---\n{text}",
                n.name()
            );
            ensure!(rc != 0 && text.contains("--discard-my-data"), "{text}");
        }
        ensure!(cs_line(a, &r).contains("ro:Primary"), "{}", cs_line(a, &r));
        ensure!(cs_line(b, &r).contains("ro:Primary"), "{}", cs_line(b, &r));

        // The documented recovery, a is the victim: stop serving on a, reconnect a discarding
        // its data, reconnect b; a resyncs from b.
        al::set_pool_conf(a, Some(&al::slave_of(b)))?;
        wait_rc(a, "a to demote", |_, v| al::holds_secondary(v))?;
        let ends = format!("ipv4:{}:{p} ipv4:{}:{p}", a.ip(), b.ip(), p = r.port);
        if !cs_line(a, &r).contains("cs:StandAlone") {
            a.run_ok(&format!("drbdsetup-84 disconnect {ends}"))?;
        }
        a.run_ok(&format!(
            "drbdsetup-84 connect {} {ends} --protocol=C --connect-int=1 --discard-my-data",
            r.name
        ))?;
        if cs_line(b, &r).contains("cs:StandAlone") {
            bringup::drbd84_connect(b, a, &r)?;
        }
        bringup::wait_until(
            a,
            &format!(
                "grep -q '^ *{}: cs:Connected ro:Secondary/Primary ds:UpToDate/UpToDate' /proc/drbd",
                r.minor
            ),
            "a resynced from b",
            T,
        )?;
        for n in [a, b] {
            wait_rc(n, "split brain over", |rc, v| {
                rc == 0 && v["split_brain"].as_array().is_some_and(|s| s.is_empty())
            })?;
        }
        ensure!(
            read_block(b, &dev, 201, on_b.len())? == on_b,
            "b lost its write"
        );
        ensure!(
            read_block(a, &r.disk, 201, on_b.len())? == on_b,
            "a lacks b's write"
        );
        ensure!(
            read_block(a, &r.disk, 200, on_a.len())? != on_a,
            "a's discarded write survived"
        );
        al::wait_status(b, "b serving", T, al::is_serving)?;
        al::client_read_until(lab, MARKER, T)?;
        Ok(())
    });
}

/// Manage mode (fencing `resource-only`, no `fence-peer` handler): a serves and loses power, the
/// pool elects b at once. b asks DRBD for Primary while its address probe listens; DRBD refuses
/// the unforced request (−7) once its ping wait declared a lost, and the forced one follows,
/// the probe's verdict already in. b serves, the client reads the marker through b. Prints b's
/// promote stages and SIGKILL -> serving (no timed assertion).
/// Then a boots on its crashed metadata (DRBD refuses to attach it: 165 `ERR_MD_UNCLEAN`) and
/// its agent, with no boot script and no drbdmeta, replays the activity log itself, attaches,
/// connects and resyncs from b: Secondary, UpToDate, with b's newer write on its disk.
#[test]
fn managed_power_loss_takes_over_and_the_victim_rejoins() {
    scenario("managed power loss", |lab| {
        let (a, b) = (lab.node(0)?, lab.node(1)?);
        let r = Resource::default();
        al::managed_pair_up(lab, &r, MARKER)?;
        let t0 = Instant::now();
        a.kill()?;
        al::set_pool_conf(b, Some(al::master()))?;
        let sb = al::wait_status(b, "b to serve", T, al::is_serving)?;
        let serving = t0.elapsed();
        al::client_read_until(lab, MARKER, T)?;
        let p = al::last_transition_with(&sb, "promote", "target-serve")
            .context("b's promote transition")?;
        let log = b.run_ok(&format!("cat {}", al::AGENT_LOG))?.stdout;
        let retried = log
            .lines()
            .rfind(|l| l.contains("DRBD refused Primary and its state moved"))
            .unwrap_or("(DRBD had declared a lost before b asked: forced at once)");
        eprintln!(
            "managed power loss: SIGKILL -> b serving seen {} ms (lab channel included); b's promote {:.0} ms {:?}\n  {retried}",
            serving.as_millis(),
            p.total_ms,
            p.stages
        );
        ensure!(p.result == "ok", "b's promote: {p:?}");
        ensure!(
            cs_line(b, &r).contains("ro:Primary/Unknown"),
            "{}",
            cs_line(b, &r)
        );

        let newer = "written on b after the takeover";
        write_block(b, &r.device(), 300, newer)?;
        let replayed = al::managed_rejoin(lab, a, b, &r)?.with_context(|| {
            format!(
                "a's agent did not replay the activity log:\n{}",
                al::agent_log(a, 60)
            )
        })?;
        eprintln!("managed power loss, a rejoins: {replayed}");
        ensure!(
            read_block(a, &r.disk, 300, newer.len())? == newer,
            "a's disk lacks b's write after the resync"
        );
        Ok(())
    });
}

/// Manage mode, power loss while another host (an address added in the client's namespace)
/// answers for the floating address: b asks DRBD unforced (refused, −7), and never forces: it
/// stays Secondary, DRBD never logs "Forced into split brain situation!", nothing is claimed.
#[test]
fn managed_power_loss_never_forces_while_another_host_answers() {
    scenario("managed power loss, address answered", |lab| {
        let (a, b) = (lab.node(0)?, lab.node(1)?);
        let r = Resource::default();
        al::managed_pair_up(lab, &r, MARKER)?;
        let ns = lab.client().netns().to_string();
        let vip = format!("{}/{}", net::FLOATING_IP, net::PREFIX);
        let impostor = |op: &str| net::ip(&["-n", &ns, "addr", op, &vip, "dev", "eth0"]);
        impostor("add")?;
        let refused = (|| -> Result<()> {
            a.kill()?;
            al::set_pool_conf(b, Some(al::master()))?;
            let sb = al::wait_status(b, "b to refuse: another host answers", T, |v| {
                al::last_transition(v, "promote")
                    .is_some_and(|t| t.result.contains("another host answers"))
            })?;
            let p = al::last_transition(&sb, "promote").context("b's promote")?;
            eprintln!("managed power loss, address answered: b's promote {p:?}");
            ensure!(al::holds_secondary(&sb), "b changed: {sb}");
            ensure!(
                cs_line(b, &r).contains("ro:Secondary/"),
                "{}",
                cs_line(b, &r)
            );
            let forced = b.run_ok("dmesg | grep -c 'Forced into split brain' || true")?;
            ensure!(
                forced.stdout.trim() == "0",
                "b forced DRBD:\n{}",
                b.run_ok("dmesg | grep -i drbd | tail -20")?.stdout
            );
            Ok(())
        })();
        impostor("del")?;
        refused
    });
}

/// One target, two LUNs, each on a volume of one managed DRBD resource (volume 0 on minor 1,
/// volume 1 on minor 2): the agents create both minors (`new-minor r0 2 1`) and attach both
/// disks; the primary promotes both minors and serves both LUNs (the client lists them through
/// the address), status shows each volume; a switchover demotes both minors on a and promotes
/// both on b. (Here rather than in its own test binary: it reuses this file's managed pair.)
#[test]
fn two_volumes_of_one_resource_promote_and_demote_together() {
    scenario("two volumes", |lab| {
        let (a, b) = (lab.node(0)?, lab.node(1)?);
        let r = Resource::default();
        let (minor2, disk2) = (2, "/dev/ram0");
        for (n, peer) in [(a, b), (b, a)] {
            n.run_ok(&format!(
                "drbdmeta --force {} v08 {} internal create-md >/dev/null 2>&1 && \
                 drbdmeta --force {minor2} v08 {disk2} internal create-md >/dev/null 2>&1",
                r.minor, r.disk
            ))?;
            al::start_tgtd(n)?;
            al::install_managed_config(n, peer, &r, false)?;
            let cfg = n.run_ok(&format!("cat {}", al::CONFIG))?.stdout;
            let volume = format!(
                "[[resource.volume]]\nvolume = 1\nminor = {minor2}\ndisk = \"{disk2}\"\n\n\
                 [[resource.lun]]\nlun = 2\ndevice = \"/dev/drbd{minor2}\"\n\
                 scsi_id = \"lab-{name}-lun2\"\nscsi_sn = \"LAB1LUN2\"\nvendor = \"{v}\"\n\
                 product = \"{p}\"\n\n[[address]]",
                name = r.name,
                v = al::VENDOR,
                p = al::PRODUCT
            );
            let with = cfg.replacen("[[address]]", &volume, 1);
            ensure!(with != cfg, "config template changed: {cfg}");
            n.put_file(al::CONFIG, with.as_bytes())?;
            n.run_ok(&format!("{} check-config {}", al::agent_bin(), al::CONFIG))?;
        }
        al::set_pool_conf(a, Some(al::master()))?;
        al::set_pool_conf(b, Some(&al::slave_of(a)))?;
        al::start_agent(a)?;
        al::start_agent(b)?;
        for m in [r.minor, minor2] {
            bringup::wait_until(
                a,
                &format!("grep -q '^ *{m}: cs:Connected' /proc/drbd"),
                "the agents to connect both volumes",
                T,
            )?;
            a.run_ok(&format!("drbdsetup-84 new-current-uuid --clear-bitmap {m}"))?;
        }
        let sa = al::wait_status(a, "a to serve", T, al::is_serving)?;
        let vols = &sa["resources"][0]["drbd"]["volumes"];
        ensure!(
            vols.as_array().is_some_and(|v| v.len() == 2
                && v.iter()
                    .all(|x| x["role"] == "Primary" && x["disk"] == "UpToDate")),
            "volumes in status: {sa}"
        );
        let text = al::status_text(a)?;
        ensure!(
            text.contains("volume 1 (minor 2): Primary/Secondary UpToDate/UpToDate"),
            "{text}"
        );
        let roles = |n: &Node| -> Result<String> { Ok(n.run_ok("cat /proc/drbd")?.stdout) };
        let on_a = roles(a)?;
        ensure!(
            on_a.matches("ro:Primary/Secondary").count() == 2,
            "both minors Primary on a: {on_a}"
        );
        let ls = lab
            .client()
            .run(&["iscsi-ls", "-s", &format!("iscsi://{}", lab::FLOATING_IP)])?;
        ensure!(
            ls.stdout.contains("Lun:1") && ls.stdout.contains("Lun:2"),
            "client sees both LUNs: {}{}",
            ls.stdout,
            ls.stderr
        );

        al::set_pool_conf(a, Some(&al::slave_of(b)))?;
        al::wait_status(a, "a to demote", T, al::is_secondary)?;
        let on_a = roles(a)?;
        ensure!(
            on_a.matches("ro:Secondary/").count() == 2,
            "both minors demoted on a: {on_a}"
        );
        al::set_pool_conf(b, Some(al::master()))?;
        al::wait_status(b, "b to serve", T, al::is_serving)?;
        let on_b = roles(b)?;
        ensure!(
            on_b.matches("ro:Primary/Secondary").count() == 2,
            "both minors Primary on b: {on_b}"
        );

        // A reload naming a LUN on a minor that is none of r0's volumes is refused by the
        // running daemon (check-config alone is not the guard), and b keeps serving.
        let good = b.run_ok(&format!("cat {}", al::CONFIG))?.stdout;
        let bad = good.replace("device = \"/dev/drbd2\"", "device = \"/dev/drbd9\"");
        ensure!(bad != good, "no LUN on /dev/drbd2: {good}");
        b.put_file(al::CONFIG, bad.as_bytes())?;
        let (rc, msg) = al::command(b, "reload")?;
        b.put_file(al::CONFIG, good.as_bytes())?;
        ensure!(
            rc != 0 && msg.contains("not a volume of resource r0"),
            "reload: rc {rc} {msg}"
        );
        ensure!(al::is_serving(&al::status(b)?), "b still serves");
        Ok(())
    });
}
