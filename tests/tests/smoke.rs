//! Smoke test of the lab, 2 nodes + client (one shared lab for the whole file). Proves: both guests
//! boot the Debian kernel with DRBD 8.4 loaded and reach each other; the control channel returns
//! exit codes, stdout/stderr and copies files; a DRBD resource connects between them (drbdsetup-84);
//! tgtd on the primary serves /dev/drbd1 and the client namespace gets correct answers from
//! `iscsi-inq`, `iscsi-readcapacity16` and a READ through libiscsi; a node killed by SIGKILL boots
//! again with the same disk and rejoins.

mod common;

use lab::bringup::{self, Resource};
use std::time::Duration;

#[test]
fn guests_boot_with_drbd_84_and_reach_each_other() {
    let Some((_g, lab)) = common::lab() else {
        return;
    };
    for n in lab.nodes() {
        let o = n.run_ok("cat /proc/drbd").unwrap();
        assert!(
            o.stdout.starts_with("version: 8.4."),
            "node {}: /proc/drbd = {}",
            n.name(),
            o.stdout
        );
    }
    let (a, b) = (lab.node(0).unwrap(), lab.node(1).unwrap());
    a.run_ok(&format!("ping -c 1 -W 5 {}", b.ip())).unwrap();
    b.run_ok(&format!("ping -c 1 -W 5 {}", a.ip())).unwrap();
    let out = lab
        .client()
        .run(&["ping", "-c", "1", "-W", "5", &a.ip().to_string()])
        .unwrap();
    assert_eq!(out.rc, 0, "client cannot reach node a: {out:?}");
}

#[test]
fn control_channel_returns_rc_output_and_copies_files() {
    let Some((_g, lab)) = common::lab() else {
        return;
    };
    let a = lab.node(0).unwrap();
    let o = a.run("echo out; echo err >&2; exit 3").unwrap();
    assert_eq!(
        (o.rc, o.stdout.as_str(), o.stderr.as_str()),
        (3, "out\n", "err\n")
    );
    let err = a.run_ok("exit 7").unwrap_err().to_string();
    assert!(
        err.contains("rc=7") && err.contains("console tail"),
        "{err}"
    );
    // Binary content, several chunks.
    let data: Vec<u8> = (0..70_000u32).map(|i| (i * 31 % 251) as u8).collect();
    a.put_file("/tmp/x/blob", &data).unwrap();
    let o = a.run_ok("wc -c < /tmp/x/blob; md5sum /tmp/x/blob").unwrap();
    assert!(o.stdout.starts_with("70000\n"), "{}", o.stdout);
    let t = a.run_timeout("sleep 5", Duration::from_millis(300));
    assert!(t.is_err(), "timeout must be an error");
    // The channel recovers after a timeout (the late reply is skipped).
    assert_eq!(a.run_ok("echo again").unwrap().stdout, "again\n");
    // The workspace's target dir is shared into the guest.
    let o = a
        .run_ok(&format!("test -x {}", lab::Node::guest_bin("lab")))
        .unwrap();
    assert_eq!(o.rc, 0);
}

#[test]
fn replicated_disk_served_over_iscsi_and_power_cycle() {
    let Some((_g, lab)) = common::lab() else {
        return;
    };
    let (a, b) = (lab.node(0).unwrap(), lab.node(1).unwrap());
    let r = Resource::default();
    // Bring-up through drbd-nl (guest driver `drbd-lab`); drbdsetup-84 is not used.
    lab::drbd::drbdnl_pair_up(a, b, &r).unwrap();
    let line = bringup::proc_drbd_line(a, &r).unwrap();
    assert!(
        line.contains("cs:Connected ro:Primary/Secondary ds:UpToDate/UpToDate"),
        "{line}"
    );
    let iqn = "iqn.2024-01.lab.smoke:r0";
    bringup::write_marker(a, &r.device(), "smoke-marker").unwrap();
    bringup::tgt_serve(a, 1, iqn, &r.device()).unwrap();
    let url = bringup::iscsi_url(a.ip(), iqn, 1);
    let c = lab.client();
    let inq = c.run_ok(&["iscsi-inq", &url]).unwrap();
    assert!(inq.stdout.contains("Vendor:IET"), "{}", inq.stdout);
    assert!(
        inq.stdout.contains("Product:VIRTUAL-DISK"),
        "{}",
        inq.stdout
    );
    let cap = c.run_ok(&["iscsi-readcapacity16", &url]).unwrap();
    let size = bringup::parse_total_size(&cap.stdout).expect("Total size");
    let dev_size: u64 = a
        .run_ok(&format!("blockdev --getsize64 {}", r.device()))
        .unwrap()
        .stdout
        .trim()
        .parse()
        .unwrap();
    assert_eq!(size, dev_size, "readcapacity16 vs blockdev");
    assert!(size > 15 * 1024 * 1024 && size < 16 * 1024 * 1024, "{size}");
    let bin = lab::host_bin("iscsi-read");
    let got = c
        .run_ok(&[&bin.to_string_lossy(), &url, "0", "12"])
        .unwrap();
    assert_eq!(got.stdout, "smoke-marker");

    // Power loss of the secondary, boot again: its disk still carries the DRBD metadata and it
    // rejoins without a full sync.
    b.kill().unwrap();
    assert!(b.pid().is_none());
    b.boot().unwrap();
    lab::drbd::drbdnl_up(b, a, &r, "--apply-al").unwrap();
    bringup::wait_until(
        a,
        "grep -q '1: cs:Connected ro:Primary/Secondary ds:UpToDate/UpToDate' /proc/drbd",
        "b to rejoin UpToDate",
        Duration::from_secs(60),
    )
    .unwrap();
    let got = bringup::read_marker(a, &r.device(), 12).unwrap();
    assert_eq!(got, "smoke-marker");

    // Leave the shared lab clean for the next test.
    bringup::reset_lab(lab).unwrap();
    for n in lab.nodes() {
        let o = n.run_ok("cat /proc/drbd; pidof tgtd; true").unwrap();
        assert!(!o.stdout.contains("cs:"), "node {}: {}", n.name(), o.stdout);
    }
}
