//! The prerequisite rule: a test needing root or a tool fails with a clear message under
//! `CI=true` (CI installs everything, so a missing one is a broken machine), and otherwise
//! prints `SKIP <what>` and returns without testing.

use std::fmt::Display;
use std::io::Write;
use std::path::PathBuf;

/// The suffix of a prerequisite failure under `CI=true`.
pub const CI_SUFFIX: &str = "(CI=true: failing instead of skipping; run scripts/deps.sh as root)";

/// True when the environment has `CI=true`.
pub fn ci() -> bool {
    std::env::var("CI").as_deref() == Ok("true")
}

/// Reports a missing prerequisite `what` and returns false: under `CI=true` panics with
/// `what` and [`CI_SUFFIX`]; otherwise prints `SKIP what` straight to stderr (not through
/// libtest's capture, so the skip shows in a passing run).
#[track_caller]
pub fn skip(what: impl Display) -> bool {
    if ci() {
        panic!("{what} {CI_SUFFIX}");
    }
    let _ = writeln!(std::io::stderr(), "SKIP {what}");
    false
}

/// `tool` in `PATH`, or in `/usr/sbin` or `/sbin` (tgtd and ip live there).
pub fn which(tool: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain(["/usr/sbin".into(), "/sbin".into()])
        .map(|d| d.join(tool))
        .find(|p| p.is_file())
}

/// True when the effective user is root.
pub fn is_root() -> bool {
    nix::unistd::geteuid().is_root()
}

/// The prerequisites of one test, collected then checked once by [`Prereqs::check`].
#[derive(Debug)]
pub struct Prereqs {
    test: String,
    missing: Vec<String>,
}

impl Prereqs {
    /// The prerequisites of `test` (named in the message).
    pub fn new(test: impl Into<String>) -> Prereqs {
        Prereqs {
            test: test.into(),
            missing: Vec::new(),
        }
    }

    /// Needs euid 0.
    pub fn root(mut self) -> Prereqs {
        if !is_root() {
            self.missing.push("root".into());
        }
        self
    }

    /// Needs euid 0 and egid 0 (tgtd checks both).
    pub fn root_and_group(mut self) -> Prereqs {
        if !is_root() || nix::unistd::getegid().as_raw() != 0 {
            self.missing
                .push("root (euid 0 and egid 0, as tgtd checks)".into());
        }
        self
    }

    /// Needs each of `tools` (see [`which`]).
    pub fn tools(mut self, tools: &[&str]) -> Prereqs {
        for t in tools {
            if which(t).is_none() {
                self.missing.push(format!("`{t}` in PATH"));
            }
        }
        self
    }

    /// Needs `what`, present when `ok`.
    pub fn needs(mut self, ok: bool, what: impl Into<String>) -> Prereqs {
        if !ok {
            self.missing.push(what.into());
        }
        self
    }

    /// True when nothing is missing; else [`skip`] with `TEST: missing prerequisites: ...`.
    #[track_caller]
    pub fn check(self) -> bool {
        self.missing.is_empty()
            || skip(format!(
                "{}: missing prerequisites: {}",
                self.test,
                self.missing.join(", ")
            ))
    }
}
