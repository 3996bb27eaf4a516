//! The public API of each published crate equals its committed listing `<crate>/public-api.txt`.
//! After an intended change: `UPDATE_PUBLIC_API=1 cargo test -p release-check --test public_api`,
//! then review the listing's diff (a removed or changed line breaks users: a minor release in 0.x).

use std::path::Path;

fn check(dir: &str, krate: &str) {
    // RELEASE_CHECK_ROOT: list the sources of another checkout (e.g. `git archive HEAD` unpacked).
    let ws = std::env::var_os("RELEASE_CHECK_ROOT").map_or_else(
        || Path::new(env!("CARGO_MANIFEST_DIR")).join(".."),
        Into::into,
    );
    let root = ws.join(dir);
    let now = release_check::public_api(&root.join("src/lib.rs"), krate).expect("listing");
    let file = root.join("public-api.txt");
    if std::env::var_os("UPDATE_PUBLIC_API").is_some() {
        let file = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("..")
            .join(dir)
            .join("public-api.txt");
        std::fs::write(file, &now).expect("write public-api.txt");
        return;
    }
    let committed = std::fs::read_to_string(&file).unwrap_or_default();
    if committed != now {
        let old: std::collections::BTreeSet<&str> = committed.lines().collect();
        let new: std::collections::BTreeSet<&str> = now.lines().collect();
        let mut diff = String::new();
        for l in old.difference(&new) {
            diff += &format!("- {l}\n");
        }
        for l in new.difference(&old) {
            diff += &format!("+ {l}\n");
        }
        panic!(
            "{dir}: public API differs from {dir}/public-api.txt:\n{diff}\nIf intended: \
             UPDATE_PUBLIC_API=1 cargo test -p release-check --test public_api"
        );
    }
}

#[test]
fn drbd_nl_public_api() {
    check("drbd-nl", "drbd_nl");
}

#[test]
fn drbd_md_public_api() {
    check("drbd-md", "drbd_md");
}

#[test]
fn vip_public_api() {
    check("vip", "vip");
}

#[test]
fn tgt_ipc_public_api() {
    check("tgt-ipc", "tgt_ipc");
}
