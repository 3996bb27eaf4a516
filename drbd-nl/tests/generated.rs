//! The committed `src/attr/sets.rs` (DRBD 8.4) and `src/v9/sets.rs` (DRBD 9) are exactly what
//! `gen/attrs.py` / `gen/attrs9.py` print, formatted by rustfmt: edit the tables in the
//! generators, never the output.

use std::io::Write;
use std::path::Path;
use std::process::{Command, Stdio};

fn tool_missing(what: &str) {
    test_support::prereq::skip(format!(
        "generated_sets_match_generator: missing prerequisite: {what}"
    ));
}

#[test]
fn generated_sets_match_generator() {
    check("gen/attrs.py", "src/attr/sets.rs");
}

#[test]
fn generated_v9_sets_match_generator() {
    check("gen/attrs9.py", "src/v9/sets.rs");
}

fn check(script: &str, output: &str) {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"));
    let Ok(gen) = Command::new("python3").arg(dir.join(script)).output() else {
        return tool_missing("python3");
    };
    assert!(
        gen.status.success(),
        "{script} failed: {}",
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
    let committed = std::fs::read_to_string(dir.join(output)).expect(output);
    assert!(
        String::from_utf8_lossy(&out.stdout) == committed,
        "{output} differs from `python3 drbd-nl/{script}` + rustfmt: regenerate it \
         (python3 drbd-nl/{script} > drbd-nl/{output} && rustfmt --edition 2021 drbd-nl/{output})"
    );
}
