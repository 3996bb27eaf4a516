//! tgt-admin's `incominguser` / `outgoinguser USER PASSWORD` to `[resource.target.chap]` and one
//! secrets file for all targets. tgtd's accounts are global and tgt-admin creates each user once,
//! with the first password it meets (`scripts/tgt-admin`, `process_options`): a user given two
//! different passwords is refused rather than guessed. Passwords appear only in the secrets file.

use std::collections::BTreeMap;

use super::tgt_conf::{Directive, TgtTarget};
use super::{Loc, Note, ParseError, SecretFile};

/// Name of the secrets file written beside the TOML.
pub const CHAP_SECRETS: &str = "chap-secrets.toml";

/// The accounts of one target: incoming users, the outgoing user.
pub type TargetAccounts = (Vec<(String, Loc)>, Option<(String, Loc)>);

/// Every account met so far, with its password.
#[derive(Default)]
pub struct Accounts {
    secrets: BTreeMap<String, (String, Loc)>,
}

fn user_password(d: &Directive) -> Result<(String, String), ParseError> {
    let v = d.value.as_deref().unwrap_or("");
    let mut it = v.split_whitespace();
    match (it.next(), it.next(), it.next()) {
        (Some(u), Some(p), None) => Ok((u.to_string(), p.to_string())),
        _ => Err(ParseError::new(
            d.at.clone(),
            format!(
                "{} needs a user and a password (tgt-admin would send a broken account)",
                d.key
            ),
        )),
    }
}

impl Accounts {
    fn add(&mut self, d: &Directive) -> Result<(String, Loc), ParseError> {
        let (user, password) = user_password(d)?;
        let bad = |r: String| {
            Err(ParseError::new(
                d.at.clone(),
                format!("{} {user}: {r}", d.key),
            ))
        };
        if user.is_empty()
            || user.len() > 255
            || !user
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b".-_@:".contains(&b))
        {
            return bad("the user must be 1-255 characters of [A-Za-z0-9.-_@:]".into());
        }
        if password.len() > 255 || !password.bytes().all(|b| b.is_ascii_graphic()) {
            return bad("the password must be 1-255 printable ASCII characters".into());
        }
        match self.secrets.get(&user) {
            Some((p, at)) if *p != password => {
                return bad(format!(
                    "a different password was given at {at}; tgtd accounts are global and tgt-admin keeps the first silently"
                ))
            }
            Some(_) => {}
            None => {
                self.secrets.insert(user.clone(), (password, d.at.clone()));
            }
        }
        Ok((user, d.at.clone()))
    }

    /// The accounts of `t`; notes for what tgt-admin ignores.
    pub fn target(
        &mut self,
        t: &TgtTarget,
        notes: &mut Vec<Note>,
    ) -> Result<TargetAccounts, ParseError> {
        let incoming = t
            .incoming
            .iter()
            .map(|d| self.add(d))
            .collect::<Result<Vec<_>, _>>()?;
        let outgoing = match t.outgoing.first() {
            Some(d) => Some(self.add(d)?),
            None => None,
        };
        for d in t.outgoing.iter().skip(1) {
            notes.push(Note {
                at: d.at.clone(),
                setting: format!("outgoinguser {}", user_password(d)?.0),
                reason: "tgt-admin binds only the first outgoinguser of a target".into(),
            });
        }
        if incoming.is_empty() {
            if let Some((u, at)) = &outgoing {
                return Err(ParseError::new(
                    at.clone(),
                    format!("outgoinguser {u} without an incominguser: mutual CHAP needs the initiator's account too"),
                ));
            }
        }
        Ok((incoming, outgoing))
    }

    /// The secrets file, when any account was met.
    pub fn file(&self) -> Option<SecretFile> {
        if self.secrets.is_empty() {
            return None;
        }
        let mut contents =
            String::from("# CHAP secrets imported from tgt's configuration; keep mode 0600\n");
        for (u, (p, at)) in &self.secrets {
            contents.push_str(&format!(
                "{} = {}   # {at}\n",
                toml::Value::from(u.as_str()),
                toml::Value::from(p.as_str())
            ));
        }
        Some(SecretFile {
            name: CHAP_SECRETS.into(),
            contents,
        })
    }
}
