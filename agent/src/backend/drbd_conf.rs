//! What DRBD's own configuration would do to a resource the agent manages: `drbdadm up` (the
//! distribution's `drbd.service` at boot) brings up every resource its file defines, and DRBD's
//! `usermode_helper` (`drbdadm` unless changed) runs that file's handlers. `fence-peer` is a
//! per-resource helper: 8.4 and 9 both name the resource to it (`conn_khelper` in
//! `drbd_nl.c`), so only a resource of the same name has its `fence-peer` run; per-device
//! helpers (`split-brain`, `local-io-error`, ...) name `minor-N` on 8.4. drbdadm reads the
//! first file of [`DRBD_CONFS`] that exists (drbdadm 9 from the first, drbdadm-84 from the
//! second; drbd-utils `drbdadm_main.c`, `conf_file[]`). So a managed resource's name or minor
//! left there is reported.

use std::path::Path;

use crate::config::Config;
use crate::import::drbd_conf::{self, DrbdResource, Stmt};
use crate::import::files::include_files;

/// The files drbdadm reads, the first that exists: drbdadm 9 from the first, drbdadm-84 (DRBD
/// 8.4's) from the second. Debian's `drbd.conf` includes `drbd.d/*.res`.
pub const DRBD_CONFS: [&str; 6] = [
    "/etc/drbd-90.conf",
    "/etc/drbd-84.conf",
    "/etc/drbd-83.conf",
    "/etc/drbd-82.conf",
    "/etc/drbd-08.conf",
    "/etc/drbd.conf",
];

/// The files of `confs` ([`DRBD_CONFS`]) that drbdadm 9 or drbdadm-84 reads: the first that
/// exists from the first entry, and the first from the second (at most two).
pub fn drbdadm_files(confs: &[&str]) -> Vec<std::path::PathBuf> {
    let first = |from: usize| {
        confs
            .iter()
            .skip(from)
            .map(std::path::PathBuf::from)
            .find(|p| p.exists())
    };
    let mut out: Vec<_> = [first(0), first(1)].into_iter().flatten().collect();
    out.dedup();
    out
}

/// Warnings for each resource of `drbd_conf` (and its includes) that has the name or a minor of
/// a resource in `mode = "manage"`: drbdadm would bring it up with that file's options, and a
/// `fence-peer` handler there would run when this node promotes without its peer, before the
/// address probe's verdict (docs/takeover.md), able to let DRBD promote on its word alone. No
/// file: no warning; an unreadable or unparsable one, when a resource is managed, is a warning.
pub fn drbd_config_overlaps(config: &Config, drbd_conf: &Path) -> Vec<String> {
    let managed: Vec<_> = config
        .resources
        .iter()
        .filter(|r| r.manage.is_some())
        .collect();
    if managed.is_empty() || !drbd_conf.exists() {
        return Vec::new();
    }
    let file = drbd_conf.display().to_string();
    let parsed = std::fs::read_to_string(drbd_conf)
        .map_err(|e| format!("{file}: {e}"))
        .and_then(|text| {
            let stmts =
                drbd_conf::parse(&text, &file, &mut include_files).map_err(|e| e.to_string())?;
            let resources = drbd_conf::resources(&stmts).map_err(|e| e.to_string())?;
            Ok((stmts, resources))
        });
    let (stmts, resources) = match parsed {
        Ok(p) => p,
        Err(e) => return vec![format!("DRBD's own config not checked for overlaps: {e}")],
    };
    let mut out = Vec::new();
    for d in &resources {
        for r in &managed {
            let minors: Vec<u32> = std::iter::once(r.minor)
                .chain(r.volumes.iter().map(|v| v.minor))
                .collect();
            let same_name = d.name == r.name;
            let why = if same_name {
                format!("defines resource {}, which the agent manages", d.name)
            } else if let Some(m) = d
                .devices()
                .filter_map(|dev| dev.minor)
                .find(|m| minors.contains(m))
            {
                format!(
                    "gives its resource {} minor {m}, a minor of resource {}, which the agent \
                     manages",
                    d.name, r.name
                )
            } else {
                continue;
            };
            let handler = fence_peer(&stmts, d)
                .filter(|_| same_name)
                .map(|h| {
                    format!(
                        "; its fence-peer handler `{h}` runs when this node promotes without its \
                         peer, before the address probe's verdict, and can let DRBD promote on \
                         its word alone"
                    )
                })
                .unwrap_or_default();
            out.push(format!(
                "{}: DRBD's own config {why} (mode = \"manage\"): `drbdadm up` (drbd.service at \
                 boot) would bring it up with that file's options{handler} (remove it there, or \
                 use mode = \"adopt\")",
                d.at
            ));
        }
    }
    out
}

/// The `fence-peer` handler drbdadm would run for `res`: its own `handlers` section's, else
/// `common`'s.
fn fence_peer(stmts: &[Stmt], res: &DrbdResource) -> Option<String> {
    let section = |words: &[&str]| {
        stmts.iter().find_map(|s| {
            let b = s.block.as_ref()?;
            (s.words == words).then_some(b)
        })
    };
    let in_handlers = |block: &[Stmt]| {
        block
            .iter()
            .filter(|s| s.words.first().is_some_and(|w| w == "handlers"))
            .filter_map(|s| s.block.as_ref())
            .flatten()
            .find(|h| h.block.is_none() && h.words.first().is_some_and(|w| w == "fence-peer"))
            .map(|h| h.words[1..].join(" "))
    };
    section(&["resource", res.name.as_str()])
        .and_then(|b| in_handlers(b))
        .or_else(|| section(&["common"]).and_then(|b| in_handlers(b)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn managed(name: &str, minor: u32) -> String {
        format!(
            "{}\n[[resource]]\nname = \"{name}\"\nminor = {minor}\nmode = \"manage\"\n\
             target = {{ iqn = \"iqn.2026-11.org.example:{name}\", tid = {tid}, initiators = \"all\" }}\n\
             [resource.manage]\ndisk = \"/dev/vdb{minor}\"\nlocal = \"10.0.0.1:7789\"\n\
             peer = \"10.0.0.2:7789\"\n\
             [[resource.lun]]\nlun = 1\ndevice = \"/dev/drbd{minor}\"\nscsi_id = \"{name}\"\n\
             scsi_sn = \"S{minor}\"\nvendor = \"IET\"\nproduct = \"VIRTUAL-DISK\"\n",
            crate::config::TEST_MINIMAL,
            tid = minor + 10,
        )
    }

    #[test]
    fn a_managed_resource_left_in_drbd_conf_is_named_with_its_handler() {
        let dir = tempfile::tempdir().expect("tempdir");
        let d = dir.path().join("drbd.d");
        std::fs::create_dir(&d).expect("drbd.d");
        let main = dir.path().join("drbd.conf");
        std::fs::write(&main, "include \"drbd.d/*.res\";\ncommon { handlers { fence-peer \"/usr/lib/drbd/crm-fence-peer.sh\"; } }\n").expect("write");
        std::fs::write(
            d.join("r.res"),
            "resource m0 {\n  device /dev/drbd0;\n  disk /dev/vdb0;\n  meta-disk internal;\n}\n\
             resource old {\n  device minor 7;\n  handlers { fence-peer \"/bin/true\"; }\n}\n\
             resource other {\n  device /dev/drbd9;\n}\n",
        )
        .expect("write");
        let cfg = Config::parse(&managed("m0", 0), Path::new("<test>")).expect("config");
        let w = drbd_config_overlaps(&cfg, &main);
        assert_eq!(w.len(), 1, "{w:?}");
        assert!(
            w[0].contains("r.res:1") && w[0].contains("defines resource m0"),
            "{w:?}"
        );
        assert!(w[0].contains("crm-fence-peer.sh"), "{w:?}");

        let cfg = Config::parse(&managed("m7", 7), Path::new("<test>")).expect("config");
        let w = drbd_config_overlaps(&cfg, &main);
        assert_eq!(w.len(), 1, "{w:?}");
        assert!(
            // fence-peer runs for the resource of the name only (both DRBDs name the resource)
            w[0].contains("r.res:6")
                && w[0].contains("resource old minor 7")
                && !w[0].contains("/bin/true"),
            "{w:?}"
        );

        assert!(drbd_config_overlaps(&cfg, &dir.path().join("none.conf")).is_empty());
    }

    #[test]
    fn drbdadm_reads_the_first_file_that_exists_from_its_own_start() {
        let dir = tempfile::tempdir().expect("tempdir");
        let names = ["drbd-90.conf", "drbd-84.conf", "drbd-83.conf", "drbd.conf"];
        let paths: Vec<String> = names
            .iter()
            .map(|n| dir.path().join(n).display().to_string())
            .collect();
        let confs: Vec<&str> = paths.iter().map(String::as_str).collect();
        let touch = |i: usize| std::fs::write(&paths[i], "").expect("write");
        assert!(drbdadm_files(&confs).is_empty());
        touch(3);
        assert_eq!(drbdadm_files(&confs), [Path::new(&paths[3])]);
        touch(0);
        assert_eq!(
            drbdadm_files(&confs),
            [Path::new(&paths[0]), Path::new(&paths[3])]
        );
        touch(2);
        assert_eq!(
            drbdadm_files(&confs),
            [Path::new(&paths[0]), Path::new(&paths[2])]
        );
    }

    #[test]
    fn adopt_mode_and_unparsable_files() {
        let dir = tempfile::tempdir().expect("tempdir");
        let main = dir.path().join("drbd.conf");
        std::fs::write(&main, "resource r0 {\n").expect("write");
        let adopt =
            Config::parse(crate::config::TEST_MINIMAL, Path::new("<test>")).expect("config");
        assert!(drbd_config_overlaps(&adopt, &main).is_empty());
        let cfg = Config::parse(&managed("m0", 0), Path::new("<test>")).expect("config");
        let w = drbd_config_overlaps(&cfg, &main);
        assert_eq!(w.len(), 1, "{w:?}");
        assert!(w[0].starts_with("DRBD's own config not checked"), "{w:?}");
    }
}
