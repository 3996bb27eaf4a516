//! Several LUNs per target, each on a DRBD volume of the target's resource: the config's
//! `[[resource.volume]]` (good and bad inputs, check-config, the daemon's own refusal at start,
//! the fingerprint), and one target serving two LUNs on a real tgtd seen by a libiscsi client
//! (needs root, `tgtd`, `iscsi-ls` and `iscsi-inq`: skipped without them, a failure with CI=true).

use crate::common;

use std::path::Path;
use std::process::Command;
use std::sync::Arc;
use std::time::Duration;

use agent::backend::target::TgtTarget;
use agent::backend::Target;
use agent::config::Config;
use agent::fsm::TargetState;
use agent::ConfigError;
use common::{free_port, output, tgtd_config_head, two_volumes, wait_tgtd, Tgtd};
use test_support::prereq::Prereqs;

fn adopt(dev1: &str, dev2: &str) -> String {
    two_volumes("adopt", "", dev1, dev2)
}

fn parse(text: &str) -> Result<Config, ConfigError> {
    Config::parse(text, Path::new("t.toml"))
}

/// check-config's verdict: the report's summary, or `key:line:reason`.
fn check_config(text: &str) -> Result<String, String> {
    let dir = tempfile::tempdir().expect("tempdir");
    let p = dir.path().join("iscsi-ha.toml");
    std::fs::write(&p, text).expect("write");
    match agent::config::check::report(&p) {
        Ok(r) => Ok(r.summary),
        Err(e) => {
            let c = e.downcast_ref::<ConfigError>().expect("a ConfigError");
            Err(format!("{}:{:?}:{}", c.key, c.line, c.reason))
        }
    }
}

/// The 1-based line where `needle` (possibly several lines) starts.
fn line_of(text: &str, needle: &str) -> usize {
    let at = text
        .find(needle)
        .unwrap_or_else(|| panic!("no {needle:?} in {text}"));
    text[..at].matches('\n').count() + 1
}

#[test]
fn luns_on_the_volumes_of_their_resource_accepted() {
    for (dev1, dev2) in [
        ("/dev/drbd1", "/dev/drbd2"),
        ("/dev/drbd/by-res/r0/0", "/dev/drbd/by-res/r0/1"),
    ] {
        let text = adopt(dev1, dev2);
        let c = parse(&text).unwrap_or_else(|e| panic!("{e}"));
        let r = &c.resources[0];
        assert_eq!(r.volume_minors().collect::<Vec<_>>(), [(0, 1), (1, 2)]);
        assert_eq!(r.volume_of(Path::new(dev2)), Some((1, 2)));
        let summary = check_config(&text).unwrap_or_else(|e| panic!("{dev2}: {e}"));
        assert!(
            summary.contains("resource r0 lun 1: cache write-through"),
            "{summary}"
        );
        assert!(
            summary.contains("resource r0 lun 2: cache write-back"),
            "{summary}"
        );
        // the effective config reads back the same
        let eff = c.effective_toml().expect("toml");
        assert!(eff.contains("[[resource.volume]]"), "{eff}");
        assert_eq!(parse(&eff).expect("reads back").resources, c.resources);
    }
    let managed = two_volumes("manage", "disk = \"/dev/sdc1\"", "/dev/drbd1", "/dev/drbd2");
    check_config(&managed).unwrap_or_else(|e| panic!("{e}"));
}

#[test]
fn bad_volumes_refused_at_their_key() {
    let cases: &[(String, &str, &str, &str)] = &[
        (
            adopt("/dev/drbd1", "/dev/drbd2").replace("volume = 1", "volume = 0"),
            "volume = 0",
            "resource[0].volume[0].volume",
            "volume 0 is the resource's own `minor`",
        ),
        (
            adopt("/dev/drbd1", "/dev/drbd2").replace("volume = 1", "volume = 70000"),
            "volume = 70000",
            "resource[0].volume[0].volume",
            "1-65535",
        ),
        (
            adopt("/dev/drbd1", "/dev/drbd2").replace("minor = 2", "minor = 1"),
            "minor = 1\n\n",
            "resource[0].volume[0].minor",
            "duplicate DRBD minor",
        ),
        (
            two_volumes("adopt", "disk = \"/dev/sdc1\"", "/dev/drbd1", "/dev/drbd2"),
            "disk = \"/dev/sdc1\"",
            "resource[0].volume[0].disk",
            "mode = \"adopt\"",
        ),
        (
            two_volumes("manage", "", "/dev/drbd1", "/dev/drbd2"),
            "[[resource.volume]]",
            "resource[0].volume[0].disk",
            "each volume's backing disk",
        ),
        (
            two_volumes("manage", "disk = \"sdc1\"", "/dev/drbd1", "/dev/drbd2"),
            "disk = \"sdc1\"",
            "resource[0].volume[0].disk",
            "absolute",
        ),
        (
            adopt("/dev/drbd1", "/dev/drbd/by-res/r0/0"),
            "device = \"/dev/drbd/by-res/r0/0\"",
            "resource[0].lun[1].device",
            "already served by resource[0].lun[0]",
        ),
    ];
    for (text, at, key, why) in cases {
        let e = parse(text).expect_err(key);
        let line = line_of(text, at);
        assert_eq!((e.key.as_str(), e.line), (*key, Some(line)), "{e}");
        assert!(e.reason.contains(why), "{e}");
    }
    // a second volume table with the same number
    let text = adopt("/dev/drbd1", "/dev/drbd2").replace(
        "[[resource.lun]]\nlun = 1",
        "[[resource.volume]]\nvolume = 1\nminor = 3\n\n[[resource.lun]]\nlun = 1",
    );
    let e = parse(&text).expect_err("duplicate volume");
    assert_eq!(e.key, "resource[0].volume[1].volume", "{e}");
    assert!(e.reason.contains("duplicate volume number"), "{e}");
}

/// A LUN on a device that is none of its resource's volumes: refused by check-config with the
/// volumes to write instead, and by the daemon at start (before DRBD or tgtd is touched).
#[test]
fn lun_off_the_volumes_refused_by_check_config_and_daemon() {
    for bad in [
        "/dev/drbd3",
        "/dev/sdb",
        "/dev/drbd/by-res/r0/2",
        "/dev/drbd/by-res/r0",
        "/dev/drbd/by-res/r1/1",
    ] {
        let text = adopt("/dev/drbd1", bad);
        parse(&text).unwrap_or_else(|e| panic!("{bad}: parse alone serves files: {e}"));
        let e = check_config(&text).expect_err(bad);
        let line = line_of(&text, &format!("device = \"{bad}\""));
        assert!(
            e.starts_with(&format!("resource[0].lun[1].device:Some({line}):")),
            "{bad}: {e}"
        );
        assert!(
            e.contains("\"/dev/drbd1\" (volume 0), \"/dev/drbd2\" (volume 1)"),
            "{e}"
        );
        assert!(e.contains("[[resource.volume]]"), "{e}");
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let cfg = dir.path().join("iscsi-ha.toml");
    let text = adopt("/dev/drbd1", "/dev/drbd3").replace(
        "role = { source = \"command\" }",
        &format!(
            "role = {{ source = \"command\" }}\nstate_dir = \"{0}/state\"\n[sockets]\n\
             control = \"{0}/control.sock\"",
            dir.path().display()
        ),
    );
    std::fs::write(&cfg, text).expect("write");
    let o = Command::new(env!("CARGO_BIN_EXE_iscsi-ha"))
        .arg("-c")
        .arg(&cfg)
        .arg("daemon")
        .output()
        .expect("iscsi-ha runs");
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success(), "{err}");
    assert!(
        err.contains("resource[0].lun[1].device") && err.contains("not a volume of resource r0"),
        "{err}"
    );
    assert!(
        !err.contains("netlink"),
        "refused before DRBD is asked: {err}"
    );
}

/// The fingerprint covers the volumes (numbers, minors) and every LUN's identity, not a managed
/// volume's backing disk (which differs between the nodes by design).
#[test]
fn fingerprint_covers_volumes_and_each_lun() {
    let fp = |t: &str| parse(t).unwrap_or_else(|e| panic!("{e}")).fingerprint();
    let base = adopt("/dev/drbd1", "/dev/drbd2");
    let f = fp(&base);
    for changed in [
        base.replace("minor = 2", "minor = 3")
            .replace("/dev/drbd2", "/dev/drbd3"),
        base.replace("R0SN2", "R0SN3"),
        base.replace("r0-2", "r0-3"),
        base.replace("lun = 2", "lun = 3"),
        base.replace("cache = \"write-back\"", "cache = \"write-through\""),
    ] {
        assert_ne!(fp(&changed), f, "{changed}");
    }
    let m = two_volumes("manage", "disk = \"/dev/sdc1\"", "/dev/drbd1", "/dev/drbd2");
    assert_eq!(fp(&m), fp(&m.replace("/dev/sdc1", "/dev/sdd1")));
}

fn prereqs() -> bool {
    Prereqs::new("agent several-LUN tgtd test")
        .root_and_group()
        .tools(&["tgtd", "iscsi-ls", "iscsi-inq"])
        .check()
}

/// One target with two LUNs (each its own identity and cache mode) on a real tgtd: a promote
/// serves both, libiscsi's iscsi-ls lists both and iscsi-inq reads each one's serial number; a
/// LUN deleted behind the agent's back makes the target Partial (not serving) until re-served.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_target_serves_two_luns_on_real_tgtd() {
    if !prereqs() {
        return;
    }
    const CONTROL_PORT: u16 = 8;
    let dir = tempfile::Builder::new()
        .prefix(&format!("agent-luns-{}-", std::process::id()))
        .tempdir()
        .expect("tempdir");
    let mut files = Vec::new();
    for n in 1..=2 {
        let f = dir.path().join(format!("vol{n}.img"));
        std::fs::File::create(&f)
            .and_then(|h| h.set_len(8 << 20))
            .expect("backing file");
        files.push(f.display().to_string());
    }
    let port = free_port();
    let _tgtd = Tgtd::start(dir.path(), CONTROL_PORT, port);
    // the host has no DRBD: the LUNs are files (check-config and the real daemon insist on
    // DRBD devices; the in-memory DRBD backend does not)
    let iqn = format!("iqn.2026-11.test.agent:luns-{}", std::process::id());
    let text = format!(
        "{}{}",
        tgtd_config_head("luns-test", dir.path(), CONTROL_PORT, Some(5000)),
        adopt(&files[0], &files[1]).replace("iqn.2026-11.test:r0", &iqn)
    )
    .replacen("node = \"a\"\nrole = { source = \"command\" }\n", "", 1);
    let cfg = Arc::new(parse(&text).unwrap_or_else(|e| panic!("{e}\n{text}")));
    wait_tgtd(&cfg.sockets.tgtd).await;
    let target = TgtTarget::new(&cfg.sockets.tgtd, Duration::from_secs(5));
    let mut d = common::promoted(&cfg, &target).await;
    let r0 = &cfg.resources[0];

    let list = || {
        output(
            "iscsi-ls",
            &["-s".into(), format!("iscsi://127.0.0.1:{port}")],
        )
    };
    let ls = list();
    assert!(ls.contains(&iqn), "{ls}");
    for lun in ["Lun:1", "Lun:2"] {
        assert!(ls.contains(lun), "{lun} listed: {ls}");
    }
    for (lun, sn) in [(1, "R0SN1"), (2, "R0SN2")] {
        let url = format!("iscsi://127.0.0.1:{port}/{iqn}/{lun}");
        let inq = output(
            "iscsi-inq",
            &["-e".into(), "1".into(), "-c".into(), "128".into(), url],
        );
        assert!(inq.contains(sn), "LUN {lun}: {inq}");
    }
    let client = tgt_ipc::TgtClient::at_path(cfg.sockets.tgtd.clone());
    let t = client.show_targets().await.expect("show");
    let ours = t.iter().find(|t| t.name == iqn).expect("our target");
    let flags: Vec<(u64, &str)> = ours
        .luns
        .iter()
        .filter(|l| l.lun != 0)
        .map(|l| (l.lun, l.backing_store_flags.as_str()))
        .collect();
    assert_eq!(flags, [(1, "sync"), (2, "")], "each LUN its cache mode");

    // LUN 2 gone behind the agent's back: the target no longer counts as serving.
    client.delete_lun(1, 2).await.expect("delete LUN 2");
    assert_eq!(
        target.status(r0).await.expect("status").state,
        TargetState::Partial
    );
    d.observe().await;
    let h = d.request(agent::control::Request::Promote).await;
    assert!(h.ok, "{}", h.message);
    assert_eq!(
        target.status(r0).await.expect("status").state,
        TargetState::Serving
    );
    let ls = list();
    assert!(ls.contains("Lun:2"), "re-served: {ls}");
}

/// A resource's view over its volumes: Primary only when every volume is (a half-promoted
/// resource is neither, and still has a demote to do), the peer Primary when any of its volumes
/// is, each disk the worst volume's, up only when every minor exists.
#[test]
fn resource_view_is_its_worst_volume() {
    use agent::fsm::{Disk, DrbdView, Role, VolumeView};
    let vol = |volume, role, disk| VolumeView {
        volume,
        minor: 10 + volume,
        up: true,
        role,
        peer_role: Role::Secondary,
        disk,
        peer_disk: Disk::UpToDate,
    };
    let both = |a, b| DrbdView::default().of_volumes(vec![a, b], None);
    let v = both(
        vol(0, Role::Primary, Disk::UpToDate),
        vol(1, Role::Primary, Disk::UpToDate),
    );
    assert_eq!(
        (v.up, v.role, v.disk),
        (true, Role::Primary, Disk::UpToDate)
    );
    let v = both(
        vol(0, Role::Primary, Disk::UpToDate),
        vol(1, Role::Secondary, Disk::Inconsistent),
    );
    assert_eq!((v.role, v.disk), (Role::Unknown, Disk::Inconsistent));
    assert!(
        v.any_primary(),
        "a half-promoted resource still needs its demote"
    );
    let mut peer = vol(1, Role::Secondary, Disk::UpToDate);
    peer.peer_role = Role::Primary;
    peer.up = false;
    let v = both(vol(0, Role::Secondary, Disk::Outdated), peer);
    assert_eq!(
        (v.up, v.peer_role, v.disk),
        (false, Role::Primary, Disk::Outdated)
    );
    assert!(!v.any_primary());
    assert_eq!(v.volumes.len(), 2);
}

/// The example config's commented several-LUN block, uncommented, passes check-config.
#[test]
fn example_several_luns_block_is_valid() {
    let example = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/iscsi-ha.toml"),
    )
    .expect("example");
    let start = example.find("# [[resource.volume]]").expect("the block");
    let len = example[start..].find("\n\n").expect("the block's end");
    let block: String = example[start..start + len]
        .lines()
        .map(|l| format!("{}\n", l.trim_start_matches('#').trim_start()))
        .collect();
    let text = format!("{}{block}{}", &example[..start], &example[start + len..]);
    let summary = check_config(&text).unwrap_or_else(|e| panic!("{e}\n{block}"));
    assert!(summary.contains("resource iscsi1 lun 2"), "{summary}");
}
