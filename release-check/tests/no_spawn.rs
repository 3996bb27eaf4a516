//! Product code never starts a program (the project's rule, and the published crates' promise):
//! no `std::process::Command`, `exec*`, `fork`, `posix_spawn` or `system` in the library and
//! daemon sources. Tests, benchmarks and the lab may spawn; they live outside `src/`.

use std::path::Path;

const PRODUCT: [&str; 5] = ["drbd-nl", "drbd-md", "vip", "tgt-ipc", "agent"];
const FORBIDDEN: [&str; 8] = [
    "process::Command",
    "Command::new(",
    "libc::fork",
    "libc::exec",
    "libc::posix_spawn",
    "libc::system",
    "unistd::fork",
    "unistd::exec",
];

fn rs_files(dir: &Path, out: &mut Vec<std::path::PathBuf>) {
    for e in std::fs::read_dir(dir).expect("read_dir").flatten() {
        let p = e.path();
        if p.is_dir() {
            rs_files(&p, out);
        } else if p.extension().is_some_and(|x| x == "rs") {
            out.push(p);
        }
    }
}

#[test]
fn product_code_spawns_no_program() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let mut hits = Vec::new();
    for krate in PRODUCT {
        let mut files = Vec::new();
        rs_files(&root.join(krate).join("src"), &mut files);
        assert!(!files.is_empty(), "{krate}/src has no sources");
        for f in files {
            let text = std::fs::read_to_string(&f).expect("read source");
            for (n, line) in text.lines().enumerate() {
                let code = line.split("//").next().unwrap_or("");
                if let Some(w) = FORBIDDEN.iter().find(|w| code.contains(*w)) {
                    hits.push(format!("{}:{}: {w}", f.display(), n + 1));
                }
            }
        }
    }
    assert!(hits.is_empty(), "product code starts programs: {hits:#?}");
}
