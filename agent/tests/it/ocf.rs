//! The OCF meta-data against Debian's `ra-api-1.dtd`, exactly as `ocf-tester` checks it
//! (`xmllint --noout --valid -` in /usr/share/resource-agents).

use std::path::Path;

use agent::ocf::OcfAction;

#[test]
fn meta_data_is_valid_for_ra_api_1_dtd_and_lists_every_action() {
    let xml = agent::ocf::meta::xml();
    for a in [
        "start",
        "stop",
        "monitor",
        "promote",
        "demote",
        "notify",
        "validate-all",
        "reload-agent",
        "meta-data",
    ] {
        assert!(xml.contains(&format!("<action name=\"{a}\"")), "{a}");
        if a != "meta-data" {
            assert!(a.parse::<OcfAction>().is_ok(), "{a}");
        }
    }
    for p in ["config", "resource"] {
        assert!(xml.contains(&format!("<parameter name=\"{p}\"")), "{p}");
    }
    let dtd_dir = Path::new("/usr/share/resource-agents");
    let xmllint = Path::new("/usr/bin/xmllint");
    if !dtd_dir.join("ra-api-1.dtd").exists() || !xmllint.exists() {
        let why = "needs /usr/share/resource-agents/ra-api-1.dtd (resource-agents) and xmllint \
                   (libxml2-utils): bash scripts/deps.sh";
        test_support::prereq::skip(why);
        return;
    }
    // exactly what ocf-tester runs
    let mut child = std::process::Command::new(xmllint)
        .args(["--noout", "--valid", "-"])
        .current_dir(dtd_dir)
        .stdin(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("xmllint");
    use std::io::Write;
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(xml.as_bytes())
        .expect("write");
    let out = child.wait_with_output().expect("xmllint");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success() && err.is_empty(), "xmllint: {err}");
}

/// The meta-data's default timeouts are the README's Pacemaker advice (the lab's `op` lines).
#[test]
fn meta_data_timeouts_are_the_readmes() {
    let readme =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("../README.md"))
            .expect("README.md");
    let line = readme
        .lines()
        .find(|l| l.contains("primitive p_iscsi ocf:iscsi-ha:iscsi-ha"))
        .expect("README's primitive line");
    let xml = agent::ocf::meta::xml();
    for a in ["start", "stop", "promote", "demote", "monitor"] {
        let op = line
            .split(" op ")
            .skip(1)
            .find(|o| o.starts_with(&format!("{a} ")))
            .unwrap_or_else(|| panic!("README has no op {a}"));
        let timeout = op
            .split_whitespace()
            .find_map(|w| w.strip_prefix("timeout="))
            .unwrap_or_else(|| panic!("op {a} has no timeout"));
        assert!(
            xml.contains(&format!("<action name=\"{a}\" timeout=\"{timeout}\"")),
            "meta-data {a} timeout differs from README's {timeout}"
        );
    }
}

/// `iscsi-ha ocf -c FILE` and `iscsi-ha -c FILE ocf` read FILE; `OCF_RESKEY_config` wins.
#[test]
fn dash_c_names_the_config_unless_ocf_reskey_config_is_set() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (c, e) = (dir.path().join("c.toml"), dir.path().join("e.toml"));
    let run = |args: &[&str], env: Option<&Path>| {
        let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_iscsi-ha"));
        cmd.args(args).env_remove("OCF_RESKEY_config");
        if let Some(e) = env {
            cmd.env("OCF_RESKEY_config", e);
        }
        let out = cmd.output().expect("iscsi-ha");
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    let cs = c.to_str().expect("utf-8");
    for args in [
        ["ocf", "-c", cs, "validate-all"],
        ["-c", cs, "ocf", "validate-all"],
    ] {
        let (code, err) = run(&args, None);
        assert_eq!(code, Some(5), "{err}");
        assert!(err.contains(cs), "{err}");
        let (code, err) = run(&args, Some(&e));
        assert_eq!(code, Some(5), "{err}");
        assert!(
            err.contains(e.to_str().expect("utf-8")) && err.contains("ignored"),
            "{err}"
        );
    }
}
