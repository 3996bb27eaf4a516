//! `iscsi-ha import`: an iSCSI-HA setup (`iscsi-ha.conf` + `iscsi-ha_local.conf`, tgt's
//! `targets.conf` as tgt-admin reads it, optionally drbd.conf) turned into this agent's TOML.
//!
//! The parsers ([`shell`], [`tgt_conf`], [`drbd_conf`]) and the mapping ([`map`]) are pure:
//! text in, values or a [`ParseError`] naming file and line out. [`files`] does the reading
//! (includes, globs, directories). Every input setting either lands in the TOML, with a comment
//! naming where it came from, or is listed as a [`Note`] with the reason it has no equivalent.
//! Secrets (SMTP password, CHAP secrets) never appear in the TOML, the notes or errors: they go to
//! separate 0600 files. Facts and sources: `docs/import.md`.

pub mod accounts;
pub mod drbd_conf;
pub mod files;
mod iscsi_ha;
pub mod map;
pub mod shell;
pub mod tgt_conf;

use std::fmt;

/// A place in an input file.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Loc {
    /// The file, as given (or as an include named it).
    pub file: String,
    /// 1-based line.
    pub line: usize,
}

impl Loc {
    /// `file:line`.
    pub fn new(file: &str, line: usize) -> Loc {
        Loc {
            file: file.to_string(),
            line,
        }
    }
}

impl fmt::Display for Loc {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.file, self.line)
    }
}

/// Input the import refuses: where, and why.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{at}: {reason}")]
pub struct ParseError {
    /// The offending line.
    pub at: Loc,
    /// What is wrong, in words (never a secret).
    pub reason: String,
}

impl ParseError {
    /// An error at `at`.
    pub fn new(at: Loc, reason: impl Into<String>) -> ParseError {
        ParseError {
            at,
            reason: reason.into(),
        }
    }
}

/// A setting with no equivalent (or imported with a different behaviour), and why.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Note {
    /// Where it was written.
    pub at: Loc,
    /// The setting, as `KEY` or `key value` (secrets left out).
    pub setting: String,
    /// Why it was not carried over, or how it was changed.
    pub reason: String,
}

impl fmt::Display for Note {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}: {}", self.at, self.setting, self.reason)
    }
}

/// A file the imported configuration refers to that holds a secret (write it mode 0600).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SecretFile {
    /// File name, inside the secrets directory.
    pub name: String,
    /// Its contents (TOML).
    pub contents: String,
}

/// The result of an import.
#[derive(Debug, Clone)]
pub struct Imported {
    /// The configuration, commented, validated by [`crate::config::Config::parse`].
    pub toml: String,
    /// Settings not carried over, or changed, with the reason.
    pub notes: Vec<Note>,
    /// Secret files the TOML refers to.
    pub secrets: Vec<SecretFile>,
}
