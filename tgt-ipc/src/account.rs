//! CHAP accounts: new, delete, bind, unbind, show — with the guard against tgtd 1.0.85's unbind crash.

use crate::client::TgtClient;
use crate::error::TgtError;
use crate::request::{check_plain_value, Mode, Op, Params, Request};
use crate::show::parse_accounts;
use crate::target::check_tid;

/// Account direction (`ac_dir`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AccountDirection {
    /// The initiator authenticates to the target (`ACCOUNT_TYPE_INCOMING`).
    Incoming,
    /// The target authenticates to the initiator, mutual CHAP (`--outgoing`).
    Outgoing,
}

/// Where an account is bound.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AccountScope {
    /// One target.
    Target(i32),
    /// Global: discovery sessions (tid -1 on the wire).
    Global,
}

pub(crate) fn check_user(user: &str) -> Result<(), TgtError> {
    check_plain_value("user", user)?;
    if user.len() > 255
        || !user
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b".-_@:".contains(&b))
    {
        return Err(TgtError::invalid(
            "user",
            "must be 1..=255 characters from [A-Za-z0-9.-_@:]",
        ));
    }
    Ok(())
}

fn user_params(user: &str) -> Result<Params, TgtError> {
    check_user(user)?;
    let mut p = Params::new();
    p.push("user", user)?;
    Ok(p)
}

fn bind_request(
    scope: AccountScope,
    user: &str,
    dir: AccountDirection,
    bind: bool,
) -> Result<Request, TgtError> {
    let tid = match scope {
        AccountScope::Target(tid) => {
            check_tid(tid)?;
            tid
        }
        AccountScope::Global => -1,
    };
    let mut r = Request::new(Mode::Account, if bind { Op::Bind } else { Op::Unbind })
        .tid(tid)
        .params(user_params(user)?);
    r.ac_dir = match dir {
        AccountDirection::Incoming => 0,
        AccountDirection::Outgoing => 1,
    };
    Ok(r)
}

/// tgtd 1.0.85 crashes on the next show if an incoming account that is not in the last filled slot is removed
/// (docs/tgtd-ipc.md §7.2). `incoming` lists the bound incoming users in slot order, as show
/// prints them.
fn check_unbind_safe(incoming: &[String], user: &str) -> Result<(), TgtError> {
    match incoming.iter().position(|u| u == user) {
        Some(pos) if pos + 1 != incoming.len() => Err(TgtError::invalid(
            "user",
            format!(
                "{user} is not the last bound incoming account; removing it would make tgtd crash on its next \
                 show (unbind the later ones first, or delete and recreate the target)"
            ),
        )),
        _ => Ok(()),
    }
}

/// The checks [`TgtClient::new_account`] makes on a password.
pub(crate) fn check_password(password: &str) -> Result<(), TgtError> {
    if password.is_empty()
        || password.len() > 255
        || !password.bytes().all(|b| b.is_ascii_graphic())
    {
        return Err(TgtError::invalid(
            "password",
            "must be 1..=255 printable ASCII characters",
        ));
    }
    Ok(())
}

impl TgtClient {
    /// Creates a CHAP account.
    ///
    /// Equivalent to `tgtadm --lld iscsi --mode account --op new --user USER --password PASS`.
    ///
    /// # Errors
    /// As [`TgtClient::execute`]: refused before sending, a socket failure, or tgtd's code
    /// ([`TgtError::Daemon`]).
    pub async fn new_account(&self, user: &str, password: &str) -> Result<(), TgtError> {
        let mut p = user_params(user)?;
        check_password(password)?;
        p.push("password", password)?;
        self.execute(&Request::new(Mode::Account, Op::New).params(p))
            .await
            .map(drop)
    }

    /// Deletes an account (and unbinds it everywhere). Refused when that would leave a hole tgtd 1.0.85
    /// crashes on (the user bound incoming, but not last, on some target or globally).
    ///
    /// Equivalent to `tgtadm --lld iscsi --mode account --op delete --user USER`.
    ///
    /// # Errors
    /// As [`TgtClient::execute`]: refused before sending, a socket failure, or tgtd's code
    /// ([`TgtError::Daemon`]).
    pub async fn delete_account(&self, user: &str) -> Result<(), TgtError> {
        let p = user_params(user)?;
        for t in self.show_targets().await? {
            let incoming: Vec<String> = t
                .accounts
                .iter()
                .filter(|a| !a.outgoing)
                .map(|a| a.user.clone())
                .collect();
            check_unbind_safe(&incoming, user)?;
        }
        check_unbind_safe(&self.show_system().await?.accounts, user)?;
        self.execute(&Request::new(Mode::Account, Op::Delete).params(p))
            .await
            .map(drop)
    }

    /// Binds an account to a target, or globally for discovery.
    ///
    /// Equivalent to `tgtadm --lld iscsi --mode account --op bind --tid TID --user USER [--outgoing]`.
    ///
    /// # Errors
    /// As [`TgtClient::execute`]: refused before sending, a socket failure, or tgtd's code
    /// ([`TgtError::Daemon`]).
    pub async fn bind_account(
        &self,
        scope: AccountScope,
        user: &str,
        dir: AccountDirection,
    ) -> Result<(), TgtError> {
        self.execute(&bind_request(scope, user, dir, true)?)
            .await
            .map(drop)
    }

    /// Unbinds an account. For an incoming account, first checks (via show) that it is the last bound one,
    /// since removing another would crash tgtd 1.0.85 on its next show.
    ///
    /// Equivalent to `tgtadm --lld iscsi --mode account --op unbind --tid TID --user USER [--outgoing]`.
    ///
    /// # Errors
    /// As [`TgtClient::execute`]: refused before sending, a socket failure, or tgtd's code
    /// ([`TgtError::Daemon`]).
    pub async fn unbind_account(
        &self,
        scope: AccountScope,
        user: &str,
        dir: AccountDirection,
    ) -> Result<(), TgtError> {
        let req = bind_request(scope, user, dir, false)?;
        if dir == AccountDirection::Incoming {
            let incoming = match scope {
                AccountScope::Target(tid) => self
                    .target(tid)
                    .await?
                    .map(|t| {
                        t.accounts
                            .into_iter()
                            .filter(|a| !a.outgoing)
                            .map(|a| a.user)
                            .collect::<Vec<_>>()
                    })
                    .unwrap_or_default(),
                AccountScope::Global => self.show_system().await?.accounts,
            };
            check_unbind_safe(&incoming, user)?;
        }
        self.execute(&req).await.map(drop)
    }

    /// Lists all accounts (newest first).
    ///
    /// Equivalent to `tgtadm --lld iscsi --mode account --op show`.
    ///
    /// # Errors
    /// As [`TgtClient::execute`]: refused before sending, a socket failure, or tgtd's code
    /// ([`TgtError::Daemon`]), or [`TgtError::Parse`] for output that cannot be parsed.
    pub async fn show_accounts(&self) -> Result<Vec<String>, TgtError> {
        let text = self
            .execute(&Request::new(Mode::Account, Op::Show))
            .await?
            .unwrap_or_default();
        parse_accounts(&text)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unbind_guard() {
        let v = vec!["a".to_string(), "b".to_string()];
        assert!(check_unbind_safe(&v, "a").is_err());
        assert!(check_unbind_safe(&v, "b").is_ok());
        assert!(check_unbind_safe(&v, "zz").is_ok());
    }

    #[test]
    fn requests() {
        let r = bind_request(AccountScope::Global, "u1", AccountDirection::Outgoing, true).unwrap();
        assert_eq!(r.tid, -1);
        assert_eq!(r.ac_dir, 1);
        assert_eq!(r.params_str(), "user=u1");
        assert!(bind_request(
            AccountScope::Target(1),
            "u,1",
            AccountDirection::Incoming,
            true
        )
        .is_err());
        assert!(bind_request(
            AccountScope::Target(-5),
            "u",
            AccountDirection::Incoming,
            true
        )
        .is_err());
    }
}
