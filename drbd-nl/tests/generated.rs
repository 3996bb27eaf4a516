//! The committed `src/attr/sets.rs` is exactly what `gen/attrs.py` prints, formatted by rustfmt:
//! edit the table in the generator, never the output.

use std::io::Write;
use std::path::Path;
use std::process::{Command, Stdio};

fn tool_missing(what: &str) {
    let msg = format!("generated_sets_match_generator: missing prerequisite: {what}");
    if std::env::var("CI").as_deref() == Ok("true") {
        panic!("{msg} (CI=true: failing instead of skipping)");
    }
    eprintln!("SKIP {msg}");
}

#[test]
fn generated_sets_match_generator() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"));
    let Ok(gen) = Command::new("python3")
        .arg(dir.join("gen/attrs.py"))
        .output()
    else {
        return tool_missing("python3");
    };
    assert!(
        gen.status.success(),
        "gen/attrs.py failed: {}",
        String::from_utf8_lossy(&gen.stderr)
    );
    let Ok(mut fmt) = Command::new("rustfmt")
        .args(["--edition", "2021", "--emit", "stdout", "--quiet"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
    else {
        return tool_missing("rustfmt");
    };
    fmt.stdin
        .take()
        .expect("stdin")
        .write_all(&gen.stdout)
        .expect("write to rustfmt");
    let out = fmt.wait_with_output().expect("rustfmt");
    assert!(
        out.status.success(),
        "rustfmt failed on the generator's output"
    );
    let committed =
        std::fs::read_to_string(dir.join("src/attr/sets.rs")).expect("src/attr/sets.rs");
    assert!(
        String::from_utf8_lossy(&out.stdout) == committed,
        "src/attr/sets.rs differs from `python3 drbd-nl/gen/attrs.py` + rustfmt: regenerate it \
         (python3 drbd-nl/gen/attrs.py > drbd-nl/src/attr/sets.rs && cargo fmt -p drbd-nl)"
    );
}
