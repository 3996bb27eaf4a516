//! CHAP accounts of a served target (`[resource.target.chap]`): user names in the configuration,
//! secrets in a separate TOML file of `"user" = "secret"` lines that group and others must not be
//! able to read (mode 0600, a wider mode is refused). The secrets are read when the target is
//! served, by `check-config` and by a reload (which refuses a file that would not serve), handed to tgtd, and never printed or logged: errors name the file
//! and the user, never the secret, and the parser's own message (which could quote it) is not
//! repeated.

use std::collections::BTreeMap;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use tgt_ipc::{AccountDirection, ServeAccount};

use crate::config::Chap;

/// Why the CHAP accounts of a target cannot be served.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ChapError {
    /// The secrets file could not be read.
    #[error("{}: {source}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// Group or others may read the secrets file.
    #[error("{}: mode {mode:04o} lets other users read CHAP secrets; chmod 600 it", path.display())]
    Mode {
        /// The file.
        path: PathBuf,
        /// Its permission bits.
        mode: u32,
    },
    /// The file is not `"user" = "secret"` lines.
    #[error("{}: expected \"user\" = \"secret\" lines", path.display())]
    Format {
        /// The file.
        path: PathBuf,
    },
    /// A configured user has no secret in the file, or an unusable one.
    #[error("{}: user {user}: {reason}", path.display())]
    Secret {
        /// The file.
        path: PathBuf,
        /// The user.
        user: String,
        /// What is wrong (never the secret).
        reason: String,
    },
}

/// The characters tgtd takes in a CHAP user name.
fn valid_user(u: &str) -> bool {
    !u.is_empty()
        && u.len() <= 255
        && u.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b".-_@:".contains(&b))
}

/// Checks a `[resource.target.chap]` table without reading the file: the key at fault (relative
/// to the table) and the reason.
pub fn validate(c: &Chap) -> Result<(), (String, String)> {
    if !c.secrets.is_absolute() {
        return Err(("secrets".into(), "must be an absolute path".into()));
    }
    if c.incoming.is_empty() {
        return Err((
            "incoming".into(),
            "at least one incoming user (without one, tgtd lets initiators in without CHAP)".into(),
        ));
    }
    let mut seen = std::collections::BTreeSet::new();
    for (j, u) in c.incoming.iter().enumerate() {
        if !valid_user(u) {
            return Err((
                format!("incoming[{j}]"),
                "must be 1-255 characters of [A-Za-z0-9.-_@:]".into(),
            ));
        }
        if !seen.insert(u) {
            return Err((format!("incoming[{j}]"), "listed twice".into()));
        }
    }
    if let Some(o) = &c.outgoing {
        if !valid_user(o) {
            return Err((
                "outgoing".into(),
                "must be 1-255 characters of [A-Za-z0-9.-_@:]".into(),
            ));
        }
    }
    Ok(())
}

fn read_secrets(path: &Path) -> Result<BTreeMap<String, String>, ChapError> {
    let read = |source| ChapError::Read {
        path: path.to_path_buf(),
        source,
    };
    let mode = std::fs::metadata(path).map_err(read)?.permissions().mode() & 0o7777;
    if mode & 0o077 != 0 {
        return Err(ChapError::Mode {
            path: path.to_path_buf(),
            mode,
        });
    }
    let text = std::fs::read_to_string(path).map_err(read)?;
    toml::from_str(&text).map_err(|_| ChapError::Format {
        path: path.to_path_buf(),
    })
}

/// Every resource's CHAP accounts read as serving them would (`check-config`, reload): `Err`
/// names the first resource whose secrets do not do, as (`resource[i].target.chap.secrets`,
/// reason).
pub fn check_config(cfg: &crate::config::Config) -> Result<(), (String, String)> {
    for (i, r) in cfg.resources.iter().enumerate() {
        if let Some(c) = &r.target.chap {
            accounts(c)
                .map_err(|e| (format!("resource[{i}].target.chap.secrets"), e.to_string()))?;
        }
    }
    Ok(())
}

/// The accounts to bind, secrets read from the file. Every configured user must have a secret
/// tgtd accepts (1-255 printable ASCII characters).
pub fn accounts(c: &Chap) -> Result<Vec<ServeAccount>, ChapError> {
    let secrets = read_secrets(&c.secrets)?;
    let users = c
        .incoming
        .iter()
        .map(|u| (u, AccountDirection::Incoming))
        .chain(c.outgoing.iter().map(|u| (u, AccountDirection::Outgoing)));
    users
        .map(|(user, direction)| {
            let bad = |reason: &str| ChapError::Secret {
                path: c.secrets.clone(),
                user: user.clone(),
                reason: reason.into(),
            };
            let password = secrets
                .get(user)
                .ok_or_else(|| bad("no secret in the file"))?;
            if password.is_empty()
                || password.len() > 255
                || !password.bytes().all(|b| b.is_ascii_graphic())
            {
                return Err(bad("the secret must be 1-255 printable ASCII characters"));
            }
            Ok(ServeAccount {
                user: user.clone(),
                password: password.clone(),
                direction,
            })
        })
        .collect()
}

/// The accounts without their secrets: what `show` can be compared with.
pub fn bindings(c: &Chap) -> Vec<ServeAccount> {
    c.incoming
        .iter()
        .map(|u| (u, AccountDirection::Incoming))
        .chain(c.outgoing.iter().map(|u| (u, AccountDirection::Outgoing)))
        .map(|(user, direction)| ServeAccount {
            user: user.clone(),
            password: String::new(),
            direction,
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn chap(path: &Path) -> Chap {
        Chap {
            secrets: path.to_path_buf(),
            incoming: vec!["u1".into()],
            outgoing: Some("t1".into()),
        }
    }

    fn file(mode: u32, text: &str) -> tempfile::NamedTempFile {
        let mut f = tempfile::NamedTempFile::new().unwrap();
        f.write_all(text.as_bytes()).unwrap();
        std::fs::set_permissions(f.path(), std::fs::Permissions::from_mode(mode)).unwrap();
        f
    }

    #[test]
    fn reads_and_refuses_without_printing_secrets() {
        let f = file(0o600, "u1 = \"secret-in-1\"\n\"t1\" = \"secret-out-1\"\n");
        let a = accounts(&chap(f.path())).unwrap();
        assert_eq!(a.len(), 2);
        assert_eq!(a[1].direction, AccountDirection::Outgoing);
        assert!(!format!("{a:?}").contains("secret-"));

        let f = file(0o640, "u1 = \"secret-in-1\"\nt1 = \"x\"\n");
        assert!(matches!(
            accounts(&chap(f.path())),
            Err(ChapError::Mode { .. })
        ));
        let f = file(0o600, "u1 = secret-in-1\n");
        let e = accounts(&chap(f.path())).unwrap_err().to_string();
        assert!(!e.contains("secret-in"), "{e}");
        let f = file(0o600, "u1 = \"has space\"\nt1 = \"x\"\n");
        let e = accounts(&chap(f.path())).unwrap_err().to_string();
        assert!(e.contains("user u1") && !e.contains("has space"), "{e}");
        let f = file(0o600, "u1 = \"a\"\n");
        assert!(accounts(&chap(f.path()))
            .unwrap_err()
            .to_string()
            .contains("user t1: no secret"));
    }

    #[test]
    fn validation() {
        let mut c = chap(Path::new("/etc/iscsi-ha/chap.toml"));
        assert!(validate(&c).is_ok());
        c.incoming.clear();
        assert_eq!(validate(&c).unwrap_err().0, "incoming");
        c.incoming = vec!["a,b".into()];
        assert_eq!(validate(&c).unwrap_err().0, "incoming[0]");
        c.incoming = vec!["a".into()];
        c.secrets = "rel".into();
        assert_eq!(validate(&c).unwrap_err().0, "secrets");
    }
}
