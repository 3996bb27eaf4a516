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
