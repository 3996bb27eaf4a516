//! Where the workspace's binaries are on the host (the cargo profile directory the guests share).

use std::path::{Path, PathBuf};

/// The cargo profile directory (`…/target/debug`) holding the current executable: the executable
/// itself (`lab`), or its parent when it runs from `deps/` (tests) or `examples/`.
/// `LAB_TARGET_DIR` overrides.
pub fn profile_dir() -> Option<PathBuf> {
    if let Some(d) = std::env::var_os("LAB_TARGET_DIR") {
        return Some(PathBuf::from(d));
    }
    let exe = std::env::current_exe().ok()?;
    let dir = exe.parent()?;
    let name = dir.file_name()?.to_string_lossy();
    if name == "deps" || name == "examples" {
        dir.parent().map(Path::to_path_buf)
    } else {
        Some(dir.to_path_buf())
    }
}

/// The command line that runs `lab ARGS` again: with the binaries copied to `LAB_TARGET_DIR`
/// (README "Performance") when it is set, else through cargo.
pub fn reproduce_lab(args: &str) -> String {
    // The lab's environment knobs that change what is measured go into the command too.
    let env: String = ["LAB_HANDOVER_MS", "LAB_TGTD_THREADS"]
        .iter()
        .filter_map(|k| std::env::var(k).ok().map(|v| format!("{k}={v} ")))
        .collect();
    match std::env::var("LAB_TARGET_DIR") {
        Ok(d) if !d.is_empty() => format!("{env}LAB_TARGET_DIR={d} {d}/lab {args}"),
        _ => format!(
            "cargo build --workspace --bins --examples && {env}cargo run -p tests --bin lab -- {args}"
        ),
    }
}

/// Host path of a binary of this workspace (`<profile dir>/<name>`, e.g. `iscsi-read`), for
/// [`crate::Client::run`].
pub fn host_bin(name: &str) -> PathBuf {
    profile_dir()
        .map(|d| d.join(name))
        .unwrap_or_else(|| PathBuf::from(name))
}

/// Err naming the first of `names` missing from the profile directory, with the build command
/// that makes it.
pub fn require_host_bins(names: &[&str]) -> anyhow::Result<()> {
    for bin in names {
        let path = host_bin(bin);
        if !path.exists() {
            anyhow::bail!(
                "{} is missing: run `cargo build --workspace --bins --examples` first",
                path.display()
            );
        }
    }
    Ok(())
}
