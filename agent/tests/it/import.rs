//! `iscsi-ha import` against tgt-admin itself: sample iSCSI-HA, tgt and drbd.conf files (comments,
//! C comments, continuation, quotes, `=` separators, an `include` glob, a target written in two
//! blocks, `controller_tid`, explicit LUN numbers) are imported; the result is served on one
//! private tgtd through the agent's target backend, and `tgt-admin -e -c FILE` (Debian's tgt)
//! builds the same file on another. Both tgtds' `show` (parsed by tgt-ipc: identity, ACL, CHAP
//! bindings) and each LUN's INQUIRY data (standard, VPD 0x80, VPD 0x83, read with libiscsi's
//! `iscsi-inq`) must agree; CHAP logins succeed with the imported secrets only (mutual too).
//! Needs root, `tgtd`, `tgt-admin` and `iscsi-inq`: skipped without them, a failure with CI=true.

use crate::common;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use agent::backend::target::TgtTarget;
use agent::backend::Target;
use agent::config::Config;
use agent::import::files::{import, write as write_import, ImportArgs};
use common::{free_port, wait_tgtd, which, Tgtd};
use test_support::prereq::Prereqs;

fn prereqs() -> bool {
    Prereqs::new("import test")
        .root()
        .tools(&["tgtd", "tgt-admin", "iscsi-inq"])
        .check()
}

const ISCSI_HA_CONF: &str = r#"#############################################
# iscsi-ha.conf as iSCSI-HA ships it (trimmed)
#############################################
DRBD_RESOURCES=r1:r2:r3
DRBD_VIRTUAL_IP=10.10.10.3
DRBD_VIRTUAL_MASK=255.255.255.0
DRBD_INTERFACE=xenbr1
ENABLE_LOGGING=1
ISCSI_TARGET_SERVICE=tgtd
MAIL_ON=1
MAIL_SUBJECT="noSAN ALERT - FROM HOST: $HOSTNAME"
MAIL_FROM="root@localhost"
MAIL_TO='ops@example.com'
MAIL_SCREEN_TIME=30
SMTP_SERVER=127.0.0.1
SMTP_PORT=25
SMTP_USER="alerts"
SMTP_PASS="not-in-the-toml"
MONITOR_DELAY=10
MANUAL_MODE=""
"#;

const LOCAL_CONF: &str = "# per-host overrides\nDRBD_INTERFACE=\"xenbr0\"   # this host's bridge\n";

fn targets_conf(d: &Path) -> String {
    format!(
        "# Debian's targets.conf, plus iSCSI-HA's include\ndefault-driver iscsi\n\ninclude {}/conf.d/*.conf\n",
        d.display()
    )
}

fn ha_targets(d: &Path) -> String {
    let d = d.display();
    format!(
        r#"/* iSCSI-HA's targets
   (a C comment, which Config::General allows) */
<target iqn.2026-11.test.import:r2>
    backing-store {d}/r2.img        # line form, LUN 1
    initiator-address 127.0.0.1
    initiator-address 10.0.0.0/24
    initiator-name = iqn.2026-11.test:client-b
    write-cache off
    vendor_id "ISCSIHA"
    product_id R2-DISK
    incominguser alice alice-secret-1
    incominguser carol carol-secret-4
    outgoinguser tgt-r2 target-secret-2   # mutual CHAP
</target>

<target iqn.2026-11.test.import:r1>
    <backing-store {d}/r1.img>
        lun 3
        scsi_id = "r1 id"
        scsi_sn R1\
                SN
        bsoflags sync
        write-cache off
    </backing-store>
    MaxConnections 1
    incominguser bob bob-secret-3
</target>
"#
    )
}

fn more_targets(d: &Path) -> String {
    let d = d.display();
    format!(
        r#"<target "iqn.2026-11.test.import:r3">
  backing-store {d}/r3.img
  # no initiator-address: tgt-admin binds ALL besides this name
  initiator-name iqn.2026-11.test:client-c
  controller_tid 7
  write-cache off
</target>
# the second block of r1: tgt-admin merges them
<target iqn.2026-11.test.import:r1>
  initiator-address 127.0.0.1
</target>
<target iqn.2026-11.test.import:plain>
  backing-store {d}/plain.img   # not on DRBD: not imported
  write-cache off
</target>
"#
    )
}

fn drbd_conf(d: &Path) -> String {
    let d = d.display();
    let res = |n: u32| {
        format!(
            "resource r{n} {{\n  device \"{d}/r{n}.img\" minor {n};\n  disk /dev/sdb{n};\n  meta-disk internal;\n  \
             on h1 {{ address 10.0.0.1:77{n:02}; }}\n  on h2 {{ address 10.0.0.2:77{n:02}; }}\n}}\n"
        )
    };
    format!(
        "global {{ usage-count no; }}\ncommon {{ net {{ protocol C; }} }}\n{}{}{}",
        res(1),
        res(2),
        res(3)
    )
}

fn write(p: &Path, s: &str) {
    std::fs::write(p, s).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
}

/// tid, IQN, LUNs (number, path, SCSI id, serial), ACL, CHAP bindings (user, outgoing).
type Identity = (
    i32,
    String,
    Vec<(u64, String, String, String)>,
    BTreeSet<String>,
    BTreeSet<(String, bool)>,
);

/// What must agree: tid, IQN, LUNs (number, path, SCSI id and serial) and the effective ACL
/// (a bound `ALL` lets everyone in, so other entries beside it change nothing).
fn identity(t: &tgt_ipc::Target) -> Identity {
    let luns = t
        .luns
        .iter()
        .filter(|l| l.lun != 0)
        .map(|l| {
            (
                l.lun,
                l.backing_store_path.clone().unwrap_or_default(),
                l.scsi_id.clone(),
                l.scsi_sn.clone(),
            )
        })
        .collect();
    let mut acls: BTreeSet<String> = t.acls.iter().cloned().collect();
    if acls.contains("ALL") {
        acls = BTreeSet::from(["ALL".to_string()]);
    }
    let accounts = t
        .accounts
        .iter()
        .map(|a| (a.user.clone(), a.outgoing))
        .collect();
    (t.tid, t.name.clone(), luns, acls, accounts)
}

/// The CHAP login of the samples' targets (`user%secret@` in a libiscsi URL).
fn login(iqn: &str) -> &'static str {
    match iqn.rsplit(':').next() {
        Some("r1") => "bob%bob-secret-3@",
        Some("r2") => "alice%alice-secret-1@",
        _ => "",
    }
}

fn iscsi_inq(url: &str, page: Option<&str>) -> std::process::Output {
    let mut c = Command::new(which("iscsi-inq").expect("iscsi-inq"));
    if let Some(p) = page {
        c.args(["-e", "1", "-c", p]);
    }
    c.arg(url).output().expect("iscsi-inq runs")
}

fn inquiry(port: u16, iqn: &str, lun: u64, page: Option<&str>) -> String {
    let url = format!("iscsi://{}127.0.0.1:{port}/{iqn}/{lun}", login(iqn));
    let out = iscsi_inq(&url, page);
    assert!(
        out.status.success(),
        "iscsi-inq {iqn}/{lun} {page:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// tgtd A (for the agent's backend) and tgtd B under `d/a` and `d/b`, each with its client and
/// iSCSI port, after tgt-admin built `d/targets.conf` on B (first: it refuses stores another
/// process has open).
async fn tgt_admin_on_b(
    d: &Path,
) -> (
    (Tgtd, tgt_ipc::TgtClient, u16),
    (Tgtd, tgt_ipc::TgtClient, u16),
) {
    for sub in ["a", "b"] {
        std::fs::create_dir(d.join(sub)).expect("dir");
    }
    let (port_a, port_b) = (free_port(), free_port());
    let tgtd_a = Tgtd::start(&d.join("a"), 7, port_a);
    let tgtd_b = Tgtd::start(&d.join("b"), 8, port_b);
    let client_a = wait_tgtd(&tgtd_a.socket()).await;
    let client_b = wait_tgtd(&tgtd_b.socket()).await;
    let out = Command::new("perl")
        .arg(which("tgt-admin").expect("tgt-admin"))
        .args(["-e", "-C", "8", "-c"])
        .arg(d.join("targets.conf"))
        .env("TGT_IPC_SOCKET", &tgtd_b.base)
        .env("PATH", "/usr/sbin:/usr/bin:/sbin:/bin")
        .output()
        .expect("tgt-admin runs");
    assert!(out.status.success(), "tgt-admin: {out:?}");
    ((tgtd_a, client_a, port_a), (tgtd_b, client_b, port_b))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn imported_targets_equal_tgt_admin() {
    if !prereqs() {
        return;
    }
    let dir = tempfile::Builder::new()
        .prefix(&format!("agent-import-{}-", std::process::id()))
        .tempdir()
        .expect("tempdir");
    let d = dir.path();
    std::fs::create_dir(d.join("conf.d")).expect("conf.d");
    for f in ["r1", "r2", "r3", "plain"] {
        std::fs::File::create(d.join(format!("{f}.img")))
            .and_then(|f| f.set_len(8 << 20))
            .expect("backing file");
    }
    write(&d.join("iscsi-ha.conf"), ISCSI_HA_CONF);
    write(&d.join("iscsi-ha_local.conf"), LOCAL_CONF);
    write(&d.join("targets.conf"), &targets_conf(d));
    write(&d.join("conf.d/ha-targets.conf"), &ha_targets(d));
    write(&d.join("conf.d/more.conf"), &more_targets(d));
    write(&d.join("drbd.conf"), &drbd_conf(d));

    let ((tgtd_a, client_a, port_a), (_tgtd_b, client_b, port_b)) = tgt_admin_on_b(d).await;

    // The import, served on tgtd A through the agent's backend.
    let out_toml = d.join("out/iscsi-ha.toml");
    std::fs::create_dir(d.join("out")).expect("out");
    let args = ImportArgs {
        local: Some(d.join("iscsi-ha_local.conf")),
        output: Some(out_toml.clone()),
        ..common::import_args(d, "h1")
    };
    let imported = import(&args).unwrap_or_else(|e| panic!("import: {e}"));
    let notes: Vec<String> = imported.notes.iter().map(ToString::to_string).collect();
    eprintln!("{}\n{}", imported.toml, notes.join("\n"));
    assert!(
        !imported.toml.contains("not-in-the-toml") && !notes.join("").contains("not-in-the-toml")
    );
    let has = |s: &str| notes.iter().any(|n| n.contains(s));
    assert!(has("MaxConnections 1: no equivalent"), "{notes:#?}");
    assert!(
        has("initiator-name iqn.2026-11.test:client-c: restricts nothing"),
        "{notes:#?}"
    );
    assert!(
        has("<target iqn.2026-11.test.import:plain>: no LUN is on a DRBD device"),
        "{notes:#?}"
    );
    assert!(
        has("iscsi-ha.conf:7: DRBD_INTERFACE: overridden by"),
        "{notes:#?}"
    );
    assert!(has("MONITOR_DELAY=10"), "{notes:#?}");
    assert!(imported.toml.contains("interface = \"xenbr0\""));
    assert!(imported.toml.contains("address = \"10.10.10.3/24\""));
    assert!(imported.toml.contains("suppress_s = 1800"));
    assert!(!imported.toml.contains("-secret-") && !notes.join("").contains("-secret-"));
    assert_eq!(imported.secrets.len(), 2);
    assert!(imported.secrets[0].contents.contains("not-in-the-toml"));
    assert!(imported.secrets[1].contents.contains("alice-secret-1"));
    let mut cfg =
        Config::parse(&imported.toml, Path::new("<imported>")).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(cfg.resources.len(), 3);
    // drbd.conf names each device {d}/rN.img: imported as the kernel's /dev/drbdN (what
    // check-config takes), served here from the file that name stands for
    for r in &mut cfg.resources {
        for l in &mut r.luns {
            assert_eq!(l.device, Path::new(&format!("/dev/drbd{}", r.minor)));
            l.device = d.join(format!("{}.img", r.name));
        }
    }

    write_import(&imported, &out_toml).expect("write the import");
    let backend = TgtTarget::new(&tgtd_a.socket(), Duration::from_secs(5));
    for r in &cfg.resources {
        backend
            .serve(r)
            .await
            .unwrap_or_else(|e| panic!("serve {}: {e}", r.name));
    }

    let ours = client_a.show_targets().await.expect("show A");
    let theirs = client_b.show_targets().await.expect("show B");
    assert_eq!(theirs.len(), 4, "tgt-admin made {theirs:#?}");
    assert_eq!(ours.len(), 3);
    for t in &ours {
        let b = theirs
            .iter()
            .find(|b| b.name == t.name)
            .unwrap_or_else(|| panic!("{} not made by tgt-admin", t.name));
        assert_eq!(identity(t), identity(b), "{}", t.name);
        for l in t.luns.iter().filter(|l| l.lun != 0) {
            assert_eq!(l.backing_store_flags, "sync", "write-through");
            // VPD 0x80 and 0x83: iscsi-inq reads the page code in decimal ("0x80" is page 0)
            for page in [None, Some("128"), Some("131")] {
                assert_eq!(
                    inquiry(port_a, &t.name, l.lun, page),
                    inquiry(port_b, &t.name, l.lun, page),
                    "{} LUN {} page {page:?}",
                    t.name,
                    l.lun
                );
            }
        }
    }
    // CHAP holds on the imported targets: the right secret in, a wrong one or none out.
    for (t, lun) in [("r1", 3), ("r2", 1)] {
        let iqn = format!("iqn.2026-11.test.import:{t}");
        for (cred, ok) in [
            (login(&iqn).to_string(), true),
            (login(&iqn).replace("-secret-", "-wrong-"), false),
            (String::new(), false),
        ] {
            let url = format!("iscsi://{cred}127.0.0.1:{port_a}/{iqn}/{lun}");
            assert_eq!(
                iscsi_inq(&url, None).status.success(),
                ok,
                "{t} with {cred:?}"
            );
        }
    }
    // Mutual CHAP on r2: the initiator accepts the target only with the outgoing secret.
    let iqn = "iqn.2026-11.test.import:r2";
    for (target_secret, ok) in [("target-secret-2", true), ("target-wrong-2", false)] {
        let url = format!(
            "iscsi://{}127.0.0.1:{port_a}/{iqn}/1?target_user=tgt-r2&target_password={target_secret}",
            login(iqn)
        );
        assert_eq!(
            iscsi_inq(&url, None).status.success(),
            ok,
            "mutual {target_secret}"
        );
    }
    let tids: BTreeSet<(i32, &str)> = ours.iter().map(|t| (t.tid, t.name.as_str())).collect();
    assert_eq!(
        tids,
        BTreeSet::from([
            (2, "iqn.2026-11.test.import:r1"),
            (3, "iqn.2026-11.test.import:r2"),
            (7, "iqn.2026-11.test.import:r3"),
        ])
    );
    let r1 = ours.iter().find(|t| t.name.ends_with(":r1")).expect("r1");
    assert_eq!(r1.luns.iter().map(|l| l.lun).max(), Some(3));
    assert_eq!(r1.lun(3).expect("LUN 3").scsi_sn, "R1SN");

    // The CLI (conf.d directory form) writes the TOML and the secret files (0600) beside it,
    // never on stdout or stderr; check-config accepts the result.
    let out_toml = d.join("out2/iscsi-ha.toml");
    std::fs::create_dir(d.join("out2")).expect("out2");
    let bin = PathBuf::from(env!("CARGO_BIN_EXE_iscsi-ha"));
    let mut cmd = Command::new(bin);
    cmd.arg("import")
        .arg("--iscsi-ha")
        .arg(d.join("iscsi-ha.conf"))
        .arg("--tgt")
        .arg(d.join("conf.d"))
        .arg("--drbd")
        .arg(d.join("drbd.conf"))
        .args(["--node", "h1", "--output"])
        .arg(&out_toml);
    let out = cmd.output().expect("iscsi-ha import");
    let all = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "{all}");
    assert!(
        !all.contains("not-in-the-toml") && !all.contains("-secret-"),
        "{all}"
    );
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(d.join("out2/smtp-credentials.toml"))
        .expect("secret file")
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600);
    let mode = std::fs::metadata(d.join("out2/chap-secrets.toml"))
        .expect("CHAP secrets file")
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600);
    let check = Command::new(env!("CARGO_BIN_EXE_iscsi-ha"))
        .arg("check-config")
        .arg(&out_toml)
        .output()
        .expect("check-config");
    assert!(check.status.success(), "{check:?}");
}

/// Input the import cannot carry over is refused with its file and line.
#[test]
fn refusals_name_file_and_line() {
    let dir = tempfile::tempdir().expect("tempdir");
    let d = dir.path();
    let cases = [
        ("iscsi-ha.conf", "DRBD_RESOURCES=r1\nif true; then X=1; fi\n", 2),
        ("targets.conf", "<target iqn.2026-11.x:a>\n  backing-store /dev/drbd1\n", 1),
        ("targets.conf", "<target iqn.2026-11.x:a>\n  backing-store /dev/drbd1\n  incominguser u pw-zz9\n</target>\n", 3),
        ("targets.conf", "include missing.conf\n", 1),
    ];
    for (name, text, line) in cases {
        let p = d.join(name);
        write(&p, text);
        let tgt = if name == "targets.conf" {
            p.clone()
        } else {
            d.join("ok.conf")
        };
        write(
            &d.join("ok.conf"),
            "<target iqn.2026-11.x:ok>\n backing-store /dev/drbd1\n</target>\n",
        );
        let args = ImportArgs {
            iscsi_ha: Some(if name == "iscsi-ha.conf" {
                p.clone()
            } else {
                d.join("empty.conf")
            }),
            local: Some(d.join("empty.conf")),
            tgt: Some(tgt),
            drbd: None,
            node: Some("h1".into()),
            output: None,
        };
        write(&d.join("empty.conf"), "DRBD_RESOURCES=r1\n");
        let e = import(&args).expect_err(text).to_string();
        assert!(
            e.starts_with(&format!("{}:{line}: ", p.display())),
            "{text}: {e}"
        );
        assert!(!e.contains("pw-zz9"), "{e}");
    }
}

/// One target with two backing-stores on the two volumes of one DRBD resource (drbd.conf
/// `volume` sections, one of them in an `on` section): imported as one resource with a
/// `[[resource.volume]]` and two LUNs, accepted by check-config, and served equal to what
/// tgt-admin builds from the same file (identity, VPD pages 0x80 and 0x83), both LUNs listed
/// by libiscsi's iscsi-ls.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn target_with_two_backing_stores_on_two_volumes() {
    if !prereqs() || which("iscsi-ls").is_none() {
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "iscsi-ls missing"
        );
        return;
    }
    let dir = tempfile::Builder::new()
        .prefix(&format!("agent-import-vol-{}-", std::process::id()))
        .tempdir()
        .expect("tempdir");
    let d = dir.path();
    for f in ["v0", "v1"] {
        std::fs::File::create(d.join(format!("{f}.img")))
            .and_then(|f| f.set_len(8 << 20))
            .expect("backing file");
    }
    let iqn = "iqn.2026-11.test.import:vol";
    let dd = d.display();
    write(&d.join("iscsi-ha.conf"), "DRBD_RESOURCES=r4\n");
    write(
        &d.join("targets.conf"),
        &format!(
            "<target {iqn}>\n  <backing-store {dd}/v0.img>\n  </backing-store>\n  \
             <backing-store {dd}/v1.img>\n    \
             scsi_sn VOL1SN\n  </backing-store>\n  write-cache off\n</target>\n"
        ),
    );
    write(
        &d.join("drbd.conf"),
        &format!(
            "resource r4 {{\n  volume 0 {{ device \"{dd}/v0.img\" minor 10; disk /dev/sdb1; \
             meta-disk internal; }}\n  on h1 {{ address 10.0.0.1:7790;\n    volume 1 {{ device \
             \"{dd}/v1.img\" minor 11; disk /dev/sdc1; meta-disk internal; }} }}\n  \
             on h2 {{ address 10.0.0.2:7790;\n    volume 1 {{ device \"{dd}/v1.img\" minor 11; \
             disk /dev/sdc1; meta-disk internal; }} }}\n}}\n"
        ),
    );
    let ((tgtd_a, client_a, port_a), (_tgtd_b, client_b, port_b)) = tgt_admin_on_b(d).await;

    let out_toml = d.join("out/iscsi-ha.toml");
    std::fs::create_dir(d.join("out")).expect("out");
    let args = ImportArgs {
        output: Some(out_toml.clone()),
        ..common::import_args(d, "h1")
    };
    let imported = import(&args).unwrap_or_else(|e| panic!("import: {e}"));
    let notes: Vec<String> = imported.notes.iter().map(ToString::to_string).collect();
    eprintln!("{}\n{}", imported.toml, notes.join("\n"));
    assert!(
        !notes.iter().any(|n| n.contains("not imported")),
        "{notes:#?}"
    );
    write_import(&imported, &out_toml).expect("write the import");
    let check = Command::new(env!("CARGO_BIN_EXE_iscsi-ha"))
        .arg("check-config")
        .arg(&out_toml)
        .output()
        .expect("check-config");
    assert!(check.status.success(), "{check:?}\n{}", imported.toml);
    let mut cfg =
        Config::parse(&imported.toml, Path::new("<imported>")).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(cfg.resources.len(), 1, "{}", imported.toml);
    let r = &mut cfg.resources[0];
    assert_eq!((r.name.as_str(), r.minor), ("r4", 10));
    assert_eq!(r.volume_minors().collect::<Vec<_>>(), [(0, 10), (1, 11)]);
    let devices: Vec<(u32, String)> = r
        .luns
        .iter()
        .map(|l| (l.lun, l.device.display().to_string()))
        .collect();
    assert_eq!(
        devices,
        [(1, "/dev/drbd10".into()), (2, "/dev/drbd11".into())]
    );
    // served here from the files those minors stand for
    for l in &mut r.luns {
        l.device = d.join(format!("v{}.img", l.lun - 1));
    }
    TgtTarget::new(&tgtd_a.socket(), Duration::from_secs(5))
        .serve(&cfg.resources[0])
        .await
        .expect("serve");

    let ours = client_a.show_targets().await.expect("show A");
    let theirs = client_b.show_targets().await.expect("show B");
    assert_eq!(ours.len(), 1);
    assert_eq!(identity(&ours[0]), identity(&theirs[0]));
    for lun in [1, 2] {
        for page in [None, Some("128"), Some("131")] {
            assert_eq!(
                inquiry(port_a, iqn, lun, page),
                inquiry(port_b, iqn, lun, page),
                "LUN {lun} page {page:?}"
            );
        }
    }
    assert!(inquiry(port_a, iqn, 2, Some("128")).contains("VOL1SN"));
    let ls = Command::new(which("iscsi-ls").expect("iscsi-ls"))
        .args(["-s", &format!("iscsi://127.0.0.1:{port_a}")])
        .output()
        .expect("iscsi-ls");
    let ls = String::from_utf8_lossy(&ls.stdout);
    assert!(ls.contains("Lun:1") && ls.contains("Lun:2"), "{ls}");
}
