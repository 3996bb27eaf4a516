//! Inputs a new user gets wrong that check-config and import must refuse with the key and line
//! (or the input's line), never accept: device spellings udev never creates, two resources on
//! one backing disk or replication address, a CHAP secrets file with a wide mode, an import with
//! nothing importable. Host only, no root needed.

use crate::common;

use std::path::Path;

use agent::config::check;
use agent::import::files::import;
use agent::ConfigError;

/// Resource r0 (minor 1, volume 1 on minor 2) with LUN 1 on /dev/drbd1 and LUN 2 on `dev2`,
/// then `more` (another resource, a CHAP table).
fn config(mode: &str, dev2: &str, more: &str) -> String {
    let disk = if mode == "manage" {
        "disk = \"/dev/sdc1\""
    } else {
        ""
    };
    common::two_volumes(mode, disk, "/dev/drbd1", dev2) + more
}

/// A second managed resource r1 (minor 5) on `disk` replicating from `local`.
fn second(disk: &str, local: &str) -> String {
    format!(
        r#"
[[resource]]
name = "r1"
minor = 5
mode = "manage"
[resource.manage]
disk = "{disk}"
local = "{local}"
peer = "10.0.0.2:7790"
[resource.target]
iqn = "iqn.2026-11.test:r1"
tid = 2
initiators = "all"
[[resource.lun]]
lun = 1
device = "/dev/drbd5"
scsi_id = "r1-1"
scsi_sn = "R1SN1"
vendor = "ISCSIHA"
product = "DRBD-LUN"
"#
    )
}

/// check-config's verdict on `text` written to `dir`: Ok, or (key, line, reason) read from its
/// `file:line: key: reason` message.
fn check_in(dir: &Path, text: &str) -> Result<(), (String, Option<usize>, String)> {
    let p = dir.join("iscsi-ha.toml");
    std::fs::write(&p, text).expect("write");
    check::report(&p).map(|_| ()).map_err(|e| {
        if let Some(c) = e.downcast_ref::<ConfigError>() {
            return (c.key.clone(), c.line, c.reason.clone());
        }
        let msg = e.to_string();
        let rest = msg
            .strip_prefix(&format!("{}:", p.display()))
            .unwrap_or_else(|| panic!("no file: {msg}"));
        let (line, rest) = rest.split_once(": ").expect("line");
        let (key, reason) = rest.split_once(": ").expect("key");
        (key.to_string(), line.parse().ok(), reason.to_string())
    })
}

fn line_of(text: &str, needle: &str) -> usize {
    let at = text.find(needle).unwrap_or_else(|| panic!("{needle:?}"));
    text[..at].matches('\n').count() + 1
}

/// udev names volume 1 `/dev/drbd/by-res/r0/1`; a leading zero, a sign or a trailing `/`
/// names no device, so tgtd could not open it: refused at the LUN's device.
#[test]
fn by_res_device_only_as_udev_spells_it() {
    let dir = tempfile::tempdir().expect("tempdir");
    check_in(dir.path(), &config("adopt", "/dev/drbd/by-res/r0/1", ""))
        .unwrap_or_else(|e| panic!("{e:?}"));
    for bad in [
        "/dev/drbd/by-res/r0/01",
        "/dev/drbd/by-res/r0/+1",
        "/dev/drbd/by-res/r0/1/",
        "/dev/drbd/by-res/r0/",
    ] {
        let text = config("adopt", bad, "");
        let (key, line, why) = check_in(dir.path(), &text).expect_err(bad);
        assert_eq!(
            (key.as_str(), line),
            (
                "resource[0].lun[1].device",
                Some(line_of(&text, &format!("device = \"{bad}\"")))
            ),
            "{bad}: {why}"
        );
        assert!(why.contains("is not a volume of resource r0"), "{why}");
    }
}

/// Manage mode: DRBD opens a backing disk exclusively and binds the replication address, so a
/// disk or a local address given twice on the node cannot be brought up: refused at the second.
#[test]
fn managed_disk_and_replication_address_used_once() {
    let cases = [
        (
            config("manage", "/dev/drbd2", "").replace("/dev/sdc1", "/dev/sdb1"),
            "disk = \"/dev/sdb1\"\n\n[[resource.lun]]",
            "resource[0].volume[0].disk",
            "backing disk of resource[0].manage.disk",
        ),
        (
            config("manage", "/dev/drbd2", "") + &second("/dev/sdc1", "10.0.0.1:7790"),
            "disk = \"/dev/sdc1\"\nlocal = \"10.0.0.1:7790\"",
            "resource[1].manage.disk",
            "backing disk of resource[0].volume[0].disk",
        ),
        (
            config("manage", "/dev/drbd2", "") + &second("/dev/sdd1", "10.0.0.1:7789"),
            "local = \"10.0.0.1:7789\"\npeer = \"10.0.0.2:7790\"",
            "resource[1].manage.local",
            "is resource[0].manage.local too",
        ),
    ];
    let dir = tempfile::tempdir().expect("tempdir");
    check_in(
        dir.path(),
        &(config("manage", "/dev/drbd2", "") + &second("/dev/sdd1", "10.0.0.1:7790")),
    )
    .unwrap_or_else(|e| panic!("{e:?}"));
    for (text, at, key, why) in cases {
        let (k, line, reason) = check_in(dir.path(), &text).expect_err(key);
        assert_eq!(
            (k.as_str(), line),
            (key, Some(line_of(&text, at))),
            "{reason}"
        );
        assert!(reason.contains(why), "{reason}");
    }
}

/// A CHAP secrets file check-config cannot use is reported at the config's `secrets` key and
/// line, with the file and the reason (never the secret).
#[test]
fn chap_secrets_problem_names_the_config_key() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().expect("tempdir");
    let secrets = dir.path().join("chap.toml");
    std::fs::write(&secrets, "\"u1\" = \"secret-zz9-secret\"\n").expect("write");
    let chap = format!(
        "[resource.target.chap]\nsecrets = \"{}\"\nincoming = [\"u1\"]\n",
        secrets.display()
    );
    let text = config("adopt", "/dev/drbd2", &chap);
    for (mode, why) in [(0o644, "mode 0644"), (0o600, "")] {
        std::fs::set_permissions(&secrets, std::fs::Permissions::from_mode(mode)).expect("chmod");
        let got = check_in(dir.path(), &text);
        if why.is_empty() {
            got.unwrap_or_else(|e| panic!("{e:?}"));
            continue;
        }
        let (key, line, reason) = got.expect_err(why);
        assert_eq!(
            (key.as_str(), line),
            (
                "resource[0].target.chap.secrets",
                Some(line_of(&text, "secrets = "))
            )
        );
        assert!(reason.contains(why) && !reason.contains("zz9"), "{reason}");
    }
}

/// An import with no importable target says why in its error (the notes are not printed when
/// it fails), and a by-res name of a resource with several volumes (a directory) is not taken
/// for volume 0.
#[test]
fn import_with_nothing_importable_gives_the_reasons() {
    let dir = tempfile::tempdir().expect("tempdir");
    let d = dir.path();
    let w = |n: &str, s: &str| std::fs::write(d.join(n), s).expect("write");
    w("iscsi-ha.conf", "DRBD_RESOURCES=r4\n");
    w(
        "targets.conf",
        "<target iqn.2026-11.x:a>\n  backing-store /dev/drbd/by-res/r4\n</target>\n",
    );
    w(
        "drbd.conf",
        "resource r4 {\n  on h1 { address 10.0.0.1:7790; }\n  on h2 { address 10.0.0.2:7790; }\n  \
         volume 0 { device minor 10; disk /dev/sdb1; meta-disk internal; }\n  \
         volume 1 { device minor 11; disk /dev/sdc1; meta-disk internal; }\n}\n",
    );
    let args = common::import_args(d, "h1");
    let e = import(&args)
        .expect_err("by-res/r4 is a directory")
        .to_string();
    assert!(e.contains("no target could be imported: "), "{e}");
    assert!(
        e.contains("targets.conf:1: <target iqn.2026-11.x:a>: no LUN is on a DRBD device"),
        "{e}"
    );
    assert!(e.contains("DRBD_RESOURCES r4"), "{e}");
}

/// Two nodes whose files name the same volumes in another spelling (`/dev/drbd/by-res/r0/1` or
/// `/dev/drbd2`) or list the same LUNs, volumes and resources in another order serve the same:
/// their fingerprints are equal, while another volume for a LUN still differs.
#[test]
fn fingerprint_ignores_device_spelling_and_table_order() {
    let fp = |t: &str| {
        agent::config::Config::parse(t, Path::new("t.toml"))
            .unwrap_or_else(|e| panic!("{e}"))
            .fingerprint()
    };
    let base = config("adopt", "/dev/drbd2", "");
    let by_res = config("adopt", "/dev/drbd/by-res/r0/1", "");
    assert_eq!(fp(&base), fp(&by_res));
    let (head, luns) = base.split_at(base.find("[[resource.lun]]").expect("luns"));
    let (lun1, lun2) = luns.split_at(luns.rfind("[[resource.lun]]").expect("lun 2"));
    assert_eq!(fp(&base), fp(&format!("{head}{lun2}\n{lun1}")));
    let swapped = base
        .replace("device = \"/dev/drbd1\"", "device = \"/dev/drbdX\"")
        .replace("device = \"/dev/drbd2\"", "device = \"/dev/drbd1\"")
        .replace("device = \"/dev/drbdX\"", "device = \"/dev/drbd2\"");
    assert_ne!(fp(&base), fp(&swapped));
}

/// An address naming one resource twice is a typo (another resource was meant): refused at
/// the second name.
#[test]
fn address_naming_a_resource_twice_refused() {
    let dir = tempfile::tempdir().expect("tempdir");
    let text = config("adopt", "/dev/drbd2", "")
        + "\n[[address]]\naddress = \"192.168.50.10/24\"\ninterface = \"eth0\"\nresources = [\"r0\",\n  \"r0\"]\n";
    let (key, line, why) = check_in(dir.path(), &text).expect_err("twice");
    assert_eq!(
        (key.as_str(), line, why.as_str()),
        (
            "address[0].resources[1]",
            Some(line_of(&text, "  \"r0\"]")),
            "listed twice"
        )
    );
}

/// drbd.conf giving a volume another minor on each host (DRBD allows it) is refused with both
/// places: the agent names a volume by one minor on both nodes, and the import took the first
/// host's minor for every node (on the other node that minor is another device).
#[test]
fn import_refuses_a_volume_with_a_minor_per_host() {
    let dir = tempfile::tempdir().expect("tempdir");
    let d = dir.path();
    let w = |n: &str, s: &str| std::fs::write(d.join(n), s).expect("write");
    w("iscsi-ha.conf", "DRBD_RESOURCES=r4\n");
    w(
        "targets.conf",
        "<target iqn.2026-11.x:a>\n  backing-store /dev/drbd10\n  backing-store /dev/drbd11\n</target>\n",
    );
    w(
        "drbd.conf",
        "resource r4 {\n  volume 0 { device minor 10; disk /dev/sdb1; meta-disk internal; }\n  \
         on h1 { address 10.0.0.1:7790; volume 1 { device minor 11; disk /dev/sdc1; } }\n  \
         on h2 { address 10.0.0.2:7790; volume 1 { device minor 21; disk /dev/sdc1; } }\n}\n",
    );
    for node in ["h1", "h2"] {
        let args = common::import_args(d, node);
        let e = import(&args).expect_err(node).to_string();
        let conf = d.join("drbd.conf").display().to_string();
        assert!(
            e.starts_with(&format!(
                "{conf}:4: resource r4 volume 1 has minor 21 here and minor 11 at {conf}:3"
            )),
            "{e}"
        );
    }
}

/// An SMTP credentials file or CA file check-config cannot use is reported at its
/// `[alerts.email]` key and line, like every other config error (never the password).
#[test]
fn alert_files_problems_name_the_config_key() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().expect("tempdir");
    let cred = dir.path().join("smtp.toml");
    std::fs::write(&cred, "username = \"u\"\npassword = \"pw-zz9-pw\"\n").expect("write");
    std::fs::set_permissions(&cred, std::fs::Permissions::from_mode(0o644)).expect("chmod");
    let mail = |extra: &str| {
        config("adopt", "/dev/drbd2", "")
            + &format!(
                "\n[alerts.email]\nserver = \"127.0.0.1\"\nfrom = \"a@example.com\"\n\
                 to = [\"b@example.com\"]\n{extra}"
            )
    };
    let text = mail(&format!("credentials = \"{}\"\n", cred.display()));
    let (key, line, why) = check_in(dir.path(), &text).expect_err("mode 0644");
    assert_eq!(
        (key.as_str(), line),
        (
            "alerts.email.credentials",
            Some(line_of(&text, "credentials = "))
        )
    );
    assert!(why.contains("mode 0644") && !why.contains("zz9"), "{why}");
    let text = mail("ca_file = \"/nonexistent/ca.pem\"\n");
    let (key, line, why) = check_in(dir.path(), &text).expect_err("no CA file");
    assert_eq!(
        (key.as_str(), line),
        ("alerts.email.ca_file", Some(line_of(&text, "ca_file = ")))
    );
    assert!(why.contains("/nonexistent/ca.pem"), "{why}");
}
