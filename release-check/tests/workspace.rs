//! Workspace-wide checks from `cargo metadata`: the MSRV the published crates declare holds for
//! every crate they pull in, and no two binaries or examples share an output file name.

use std::collections::{BTreeMap, BTreeSet};
use std::process::Command;

use serde_json::Value;

const PUBLISHED: [&str; 4] = ["drbd-nl", "drbd-md", "vip", "tgt-ipc"];

fn metadata(extra: &[&str]) -> Value {
    let out = Command::new(env!("CARGO"))
        .args(["metadata", "--format-version", "1", "--offline"])
        .args(extra)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .expect("cargo metadata");
    assert!(
        out.status.success(),
        "cargo metadata: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("cargo metadata JSON")
}

fn version(v: &str) -> Vec<u64> {
    v.split('.').map(|p| p.parse().unwrap_or(0)).collect()
}

/// Our own code is held to `rust-version` by clippy's `incompatible_msrv` lint (test-all runs
/// clippy with `-D warnings`); this holds the dependencies to it: each normal or build dependency
/// of a published crate, for this platform, declares a `rust-version` no newer than ours (or none).
#[test]
fn dependencies_build_with_the_declared_msrv() {
    let m = metadata(&["--filter-platform", "x86_64-unknown-linux-gnu"]);
    let packages: BTreeMap<&str, &Value> = m["packages"]
        .as_array()
        .expect("packages")
        .iter()
        .map(|p| (p["id"].as_str().expect("id"), p))
        .collect();
    let nodes: BTreeMap<&str, &Value> = m["resolve"]["nodes"]
        .as_array()
        .expect("nodes")
        .iter()
        .map(|n| (n["id"].as_str().expect("id"), n))
        .collect();
    let mut todo: Vec<&str> = packages
        .iter()
        .filter(|(_, p)| PUBLISHED.contains(&p["name"].as_str().unwrap_or("")))
        .map(|(id, _)| *id)
        .collect();
    assert_eq!(
        todo.len(),
        PUBLISHED.len(),
        "published crates in the workspace"
    );
    let msrv = packages[todo[0]]["rust_version"]
        .as_str()
        .expect("rust-version declared");
    let mut seen = BTreeSet::new();
    let mut too_new = Vec::new();
    while let Some(id) = todo.pop() {
        if !seen.insert(id) {
            continue;
        }
        let p = packages[id];
        if PUBLISHED.contains(&p["name"].as_str().unwrap_or("")) {
            assert_eq!(
                p["rust_version"].as_str(),
                Some(msrv),
                "{}: rust-version",
                p["name"]
            );
        } else if let Some(rv) = p["rust_version"].as_str() {
            if version(rv) > version(msrv) {
                too_new.push(format!("{} {} needs Rust {rv}", p["name"], p["version"]));
            }
        }
        for dep in nodes[id]["deps"].as_array().expect("deps") {
            let normal = dep["dep_kinds"]
                .as_array()
                .expect("dep_kinds")
                .iter()
                .any(|k| k["kind"].is_null() || k["kind"] == "build");
            if normal {
                todo.push(dep["pkg"].as_str().expect("pkg"));
            }
        }
    }
    assert!(
        seen.len() > 2 * PUBLISHED.len(),
        "the walk reached the dependencies"
    );
    assert!(
        too_new.is_empty(),
        "dependencies newer than the MSRV {msrv} in Cargo.lock: {too_new:?} (pin an older version \
         with `cargo update -p NAME --precise V`, or raise rust-version in a minor release)"
    );
}

/// Cargo writes every binary to `target/<profile>/` and every example to
/// `target/<profile>/examples/` whatever crate it comes from: two with one name overwrite each other
/// (the lab runs them by name). Their source files' names are kept unique as well.
#[test]
fn binaries_and_examples_have_unique_names() {
    let m = metadata(&["--no-deps"]);
    let mut by_name: BTreeMap<(String, String), Vec<String>> = BTreeMap::new();
    for p in m["packages"].as_array().expect("packages") {
        for t in p["targets"].as_array().expect("targets") {
            for kind in t["kind"].as_array().expect("kind") {
                let kind = kind.as_str().unwrap_or("");
                if kind == "bin" || kind == "example" {
                    let key = (
                        kind.to_string(),
                        t["name"].as_str().unwrap_or("").to_string(),
                    );
                    by_name
                        .entry(key)
                        .or_default()
                        .push(p["name"].as_str().unwrap_or("").into());
                    // The source file's name too: dropping an `[[example]] name = ...` line would
                    // bring the collision back.
                    let stem = std::path::Path::new(t["src_path"].as_str().unwrap_or(""))
                        .file_stem()
                        .and_then(|s| s.to_str())
                        .unwrap_or("")
                        .to_string();
                    if stem != "main" {
                        by_name
                            .entry((format!("{kind} file"), stem))
                            .or_default()
                            .push(p["name"].as_str().unwrap_or("").into());
                    }
                }
            }
        }
    }
    let clashes: Vec<_> = by_name
        .into_iter()
        .filter(|(_, pkgs)| pkgs.len() > 1)
        .collect();
    assert!(
        clashes.is_empty(),
        "targets sharing an output name: {clashes:?}"
    );
}
