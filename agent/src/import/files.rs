//! The reading side of `iscsi-ha import`: files, `include` globs and directories, the command
//! line, and writing the result (the TOML, and secret files with mode 0600).

use std::collections::BTreeMap;
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use super::map::{build, Inputs};
use super::{drbd_conf, shell, tgt_conf, Imported, Loc, Note, ParseError};

/// iSCSI-HA's main configuration file.
pub const ISCSI_HA_CONF: &str = "/etc/iscsi-ha/iscsi-ha.conf";
/// iSCSI-HA's per-host overrides.
pub const ISCSI_HA_LOCAL_CONF: &str = "/etc/iscsi-ha/iscsi-ha_local.conf";
/// The tgt file iSCSI-HA writes its targets to, when present.
pub const HA_TARGETS_CONF: &str = "/etc/tgt/conf.d/ha-targets.conf";
/// tgt's main configuration file.
pub const TARGETS_CONF: &str = "/etc/tgt/targets.conf";

/// `iscsi-ha import` arguments.
#[derive(Debug, Clone, clap::Args)]
pub struct ImportArgs {
    /// iSCSI-HA's configuration (default /etc/iscsi-ha/iscsi-ha.conf when it exists).
    #[arg(long)]
    pub iscsi_ha: Option<PathBuf>,
    /// Per-host overrides read after it (default /etc/iscsi-ha/iscsi-ha_local.conf when it exists).
    #[arg(long)]
    pub local: Option<PathBuf>,
    /// tgt's configuration: a file or a conf.d directory (default
    /// /etc/tgt/conf.d/ha-targets.conf when it exists, else /etc/tgt/targets.conf).
    #[arg(long)]
    pub tgt: Option<PathBuf>,
    /// drbd.conf, to find the DRBD resource behind each target's devices.
    #[arg(long)]
    pub drbd: Option<PathBuf>,
    /// This node's name (default: the host name).
    #[arg(long)]
    pub node: Option<String>,
    /// Write the TOML here (refused if it exists) and secret files beside it, mode 0600;
    /// default: TOML on stdout, secrets not carried over.
    #[arg(short, long)]
    pub output: Option<PathBuf>,
}

/// Why an import failed.
#[derive(Debug, thiserror::Error)]
pub enum ImportError {
    /// An input file could not be read.
    #[error("{}: {source}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// Input the import refuses.
    #[error(transparent)]
    Parse(#[from] ParseError),
    /// The output could not be written.
    #[error("{}: {source}", path.display())]
    Write {
        /// The file.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
}

fn read(path: &Path) -> Result<String, ImportError> {
    std::fs::read_to_string(path).map_err(|source| ImportError::Read {
        path: path.to_path_buf(),
        source,
    })
}

fn default_if_exists(given: &Option<PathBuf>, default: &str) -> Option<PathBuf> {
    given
        .clone()
        .or_else(|| Path::new(default).exists().then(|| PathBuf::from(default)))
}

/// Does `name` match a shell glob of `*`, `?` and literal characters?
fn glob_match(pat: &[char], name: &[char]) -> bool {
    match (pat.first(), name.first()) {
        (None, None) => true,
        (Some('*'), _) => {
            glob_match(&pat[1..], name) || (!name.is_empty() && glob_match(pat, &name[1..]))
        }
        (Some('?'), Some(_)) => glob_match(&pat[1..], &name[1..]),
        (Some(p), Some(n)) if p == n => glob_match(&pat[1..], &name[1..]),
        _ => false,
    }
}

/// The files an include names: a glob in the last component (matches sorted, dot files only
/// when the pattern starts with a dot), a directory (its regular files, sorted) or a file. A
/// relative path is taken from the including file's directory.
pub(crate) fn include_files(pattern: &str, at: &Loc) -> Result<Vec<(String, String)>, ParseError> {
    let base = Path::new(&at.file).parent().unwrap_or(Path::new("/"));
    let path = base.join(pattern);
    let err = |p: &Path, e: std::io::Error| {
        ParseError::new(at.clone(), format!("cannot read {}: {e}", p.display()))
    };
    let file_name = path
        .file_name()
        .map(|f| f.to_string_lossy().into_owned())
        .unwrap_or_default();
    let dir = path.parent().unwrap_or(Path::new("/"));
    if dir.to_string_lossy().contains(['*', '?', '[']) || file_name.contains('[') {
        return Err(ParseError::new(
            at.clone(),
            "only * and ? in the last path component are supported in includes",
        ));
    }
    let mut files: Vec<PathBuf> = if file_name.contains(['*', '?']) {
        let pat: Vec<char> = file_name.chars().collect();
        std::fs::read_dir(dir)
            .map_err(|e| err(dir, e))?
            .filter_map(Result::ok)
            .map(|e| e.path())
            .filter(|p| {
                let n: Vec<char> = p
                    .file_name()
                    .map(|f| f.to_string_lossy().chars().collect())
                    .unwrap_or_default();
                (n.first() != Some(&'.') || pat.first() == Some(&'.'))
                    && glob_match(&pat, &n)
                    && p.is_file()
            })
            .collect()
    } else if path.is_dir() {
        std::fs::read_dir(&path)
            .map_err(|e| err(&path, e))?
            .filter_map(Result::ok)
            .map(|e| e.path())
            .filter(|p| p.is_file())
            .collect()
    } else {
        vec![path.clone()]
    };
    files.sort();
    files
        .into_iter()
        .map(|p| {
            let text = std::fs::read_to_string(&p).map_err(|e| err(&p, e))?;
            Ok((p.display().to_string(), text))
        })
        .collect()
}

fn host_name() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|s| s.trim().to_string())
        .unwrap_or_else(|_| "localhost".into())
}

/// Reads the inputs named by `args` and builds the configuration (writes nothing).
pub fn import(args: &ImportArgs) -> Result<Imported, ImportError> {
    let mut assignments = Vec::new();
    let mut known = BTreeMap::new();
    for p in [
        default_if_exists(&args.iscsi_ha, ISCSI_HA_CONF),
        default_if_exists(&args.local, ISCSI_HA_LOCAL_CONF),
    ]
    .into_iter()
    .flatten()
    {
        let text = read(&p)?;
        let file = p.display().to_string();
        for a in shell::parse(&text, &file, &known)? {
            known.insert(a.key.clone(), a.value.clone());
            assignments.push(a);
        }
    }
    let tgt_path = args.tgt.clone().unwrap_or_else(|| {
        if Path::new(HA_TARGETS_CONF).exists() {
            PathBuf::from(HA_TARGETS_CONF)
        } else {
            PathBuf::from(TARGETS_CONF)
        }
    });
    let tgt_file = tgt_path.display().to_string();
    let items = if tgt_path.is_dir() {
        // a conf.d directory: as `include DIR` (its files in name order)
        let at = Loc::new(&tgt_file, 0);
        let mut all = Vec::new();
        for (f, text) in include_files(&tgt_file, &at)? {
            all.extend(tgt_conf::parse(&text, &f, &mut include_files)?);
        }
        all
    } else {
        tgt_conf::parse(&read(&tgt_path)?, &tgt_file, &mut include_files)?
    };
    let tgt = tgt_conf::targets(&items)?;
    let drbd = match &args.drbd {
        Some(p) => {
            let file = p.display().to_string();
            let stmts = drbd_conf::parse(&read(p)?, &file, &mut include_files)?;
            Some(drbd_conf::resources(&stmts)?)
        }
        None => None,
    };
    let node = args.node.clone().unwrap_or_else(host_name);
    let secrets_dir = args
        .output
        .as_ref()
        .map(|o| std::path::absolute(o).unwrap_or_else(|_| o.clone()))
        .map(|o| {
            o.parent()
                .map(Path::to_path_buf)
                .unwrap_or_else(|| PathBuf::from("/"))
        });
    let mut imported = build(&Inputs {
        node: &node,
        iscsi_ha: &assignments,
        tgt: &tgt,
        drbd: drbd.as_deref(),
        secrets_dir: secrets_dir.as_deref(),
    })?;
    for t in &tgt.targets {
        for l in &t.luns {
            if !Path::new(&l.path).exists() {
                imported.notes.push(Note {
                    at: l.at.clone(),
                    setting: l.path.clone(),
                    reason: "does not exist on this host: tgt-admin skips such a LUN; the agent will fail to serve the target until it exists".into(),
                });
            }
        }
    }
    imported.notes.sort();
    Ok(imported)
}

fn create_new(path: &Path, mode: u32, contents: &str) -> Result<(), ImportError> {
    let write = |source| ImportError::Write {
        path: path.to_path_buf(),
        source,
    };
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(mode)
        .open(path)
        .map_err(write)?;
    f.write_all(contents.as_bytes()).map_err(write)
}

/// Writes the secret files (mode 0600) beside `out`, then the TOML to `out`; refuses to replace
/// any existing file.
pub fn write(imported: &Imported, out: &Path) -> Result<(), ImportError> {
    let dir = std::path::absolute(out)
        .ok()
        .and_then(|o| o.parent().map(Path::to_path_buf))
        .unwrap_or_else(|| PathBuf::from("/"));
    for s in &imported.secrets {
        create_new(&dir.join(&s.name), 0o600, &s.contents)?;
    }
    create_new(out, 0o644, &imported.toml)
}

/// `iscsi-ha import`: the TOML to `--output` (or stdout), secret files beside it (0600), the notes
/// to stderr. Returns the number of notes.
pub fn run(args: &ImportArgs) -> Result<usize, ImportError> {
    let imported = import(args)?;
    // Write errors are returned (a reader gone is EPIPE), never a print! panic; a closed
    // stderr only loses the notes' copy there.
    let mut err = std::io::stderr().lock();
    for n in &imported.notes {
        let _ = writeln!(err, "not imported: {n}");
    }
    match &args.output {
        Some(out) => {
            write(&imported, out)?;
            let _ = writeln!(
                err,
                "iscsi-ha import: wrote {} ({} note(s))",
                out.display(),
                imported.notes.len()
            );
        }
        None => {
            let mut stdout = std::io::stdout().lock();
            stdout
                .write_all(imported.toml.as_bytes())
                .and_then(|()| stdout.flush())
                .map_err(|source| ImportError::Write {
                    path: PathBuf::from("<standard output>"),
                    source,
                })?;
        }
    }
    Ok(imported.notes.len())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn globs() {
        let m = |p: &str, n: &str| {
            glob_match(
                &p.chars().collect::<Vec<_>>(),
                &n.chars().collect::<Vec<_>>(),
            )
        };
        assert!(m("*.conf", "a.conf"));
        assert!(m("*.res", ".res"));
        assert!(!m("*.conf", "a.conf~"));
        assert!(m("r?.res", "r0.res"));
    }
}
