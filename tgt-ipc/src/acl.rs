//! ACLs: bind and unbind initiators by address or by name.

use std::net::{Ipv4Addr, Ipv6Addr};

use crate::client::TgtClient;
use crate::error::TgtError;
use crate::request::{check_plain_value, Mode, Op, Params, Request};
use crate::target::check_tid;

/// One ACL entry. A login is allowed when any address entry or any name entry matches.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Acl {
    /// `initiator-address=`: `ALL`, an IPv4 address (`/0..=31` prefix allowed), or `[IPv6]` (`/0..=127`).
    Address(String),
    /// `initiator-name=`: an initiator IQN/EUI.
    Name(String),
}

impl Acl {
    /// Any initiator (`--initiator-address ALL`).
    pub fn all() -> Self {
        Self::Address("ALL".into())
    }

    /// An address entry, validated (host names are refused: tgtd never resolves them at login).
    ///
    /// # Errors
    /// [`TgtError::InvalidRequest`] for anything but `ALL`, an IPv4/IPv6 address or a network with a prefix.
    pub fn address(addr: &str) -> Result<Self, TgtError> {
        check_address(addr)?;
        Ok(Self::Address(addr.to_string()))
    }

    /// A name entry, validated.
    ///
    /// # Errors
    /// [`TgtError::InvalidRequest`] for an empty name, one over 223 bytes, or anything but printable
    /// ASCII without spaces, `,` or `=`.
    pub fn name(name: &str) -> Result<Self, TgtError> {
        check_name(name)?;
        Ok(Self::Name(name.to_string()))
    }

    /// The text as tgtd shows it under `ACL information:`.
    pub fn as_str(&self) -> &str {
        match self {
            Self::Address(s) | Self::Name(s) => s,
        }
    }

    /// Classifies an entry printed by target show (address and name entries look alike there).
    pub fn from_shown(entry: &str) -> Self {
        if check_address(entry).is_ok() {
            Self::Address(entry.to_string())
        } else {
            Self::Name(entry.to_string())
        }
    }

    fn params(&self) -> Result<Params, TgtError> {
        let mut p = Params::new();
        match self {
            Self::Address(a) => {
                check_address(a)?;
                p.push("initiator-address", a)?;
            }
            Self::Name(n) => {
                check_name(n)?;
                p.push("initiator-name", n)?;
            }
        }
        Ok(p)
    }
}

fn check_address(addr: &str) -> Result<(), TgtError> {
    if addr == "ALL" {
        return Ok(());
    }
    let (host, prefix) = match addr.split_once('/') {
        Some((h, p)) => (h, Some(p)),
        None => (addr, None),
    };
    let max = if let Some(v6) = host.strip_prefix('[').and_then(|h| h.strip_suffix(']')) {
        v6.parse::<Ipv6Addr>()
            .map_err(|_| TgtError::invalid("initiator-address", "bad IPv6 address"))?;
        127
    } else {
        host.parse::<Ipv4Addr>().map_err(|_| {
            TgtError::invalid(
                "initiator-address",
                "expected ALL, IPv4[/prefix] or [IPv6][/prefix]",
            )
        })?;
        31
    };
    if let Some(p) = prefix {
        let p: u8 = p
            .parse()
            .map_err(|_| TgtError::invalid("initiator-address", "bad prefix length"))?;
        if p > max {
            return Err(TgtError::invalid(
                "initiator-address",
                format!("prefix /{p} never matches in tgtd (max /{max}; use the bare address)"),
            ));
        }
    }
    Ok(())
}

fn check_name(name: &str) -> Result<(), TgtError> {
    check_plain_value("initiator-name", name)?;
    if name.len() > 223 || !name.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(TgtError::invalid(
            "initiator-name",
            "must be 1..=223 printable ASCII characters without spaces",
        ));
    }
    Ok(())
}

pub(crate) fn acl_request(tid: i32, acl: &Acl, bind: bool) -> Result<Request, TgtError> {
    check_tid(tid)?;
    let op = if bind { Op::Bind } else { Op::Unbind };
    Ok(Request::new(Mode::Target, op)
        .tid(tid)
        .params(acl.params()?))
}

impl TgtClient {
    /// Adds an ACL entry. A duplicate gives `AclExist`.
    ///
    /// Equivalent to `tgtadm --lld iscsi --mode target --op bind --tid TID --initiator-address ADDR`
    /// (or `--initiator-name NAME`).
    ///
    /// # Errors
    /// As [`TgtClient::execute`]: refused before sending, a socket failure, or tgtd's code
    /// ([`TgtError::Daemon`]).
    pub async fn bind_acl(&self, tid: i32, acl: &Acl) -> Result<(), TgtError> {
        self.execute(&acl_request(tid, acl, true)?).await.map(drop)
    }

    /// Removes an ACL entry. A missing one gives `AclNoExist`.
    ///
    /// Equivalent to `tgtadm --lld iscsi --mode target --op unbind --tid TID --initiator-address ADDR`
    /// (or `--initiator-name NAME`).
    ///
    /// # Errors
    /// As [`TgtClient::execute`]: refused before sending, a socket failure, or tgtd's code
    /// ([`TgtError::Daemon`]).
    pub async fn unbind_acl(&self, tid: i32, acl: &Acl) -> Result<(), TgtError> {
        self.execute(&acl_request(tid, acl, false)?).await.map(drop)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses() {
        for ok in ["ALL", "10.0.0.1", "10.0.0.0/24", "[::1]", "[fd00::]/64"] {
            assert!(Acl::address(ok).is_ok(), "{ok}");
        }
        for bad in [
            "host.example",
            "10.0.0.1/32",
            "::1",
            "[::1]/128",
            "",
            "ALL,x",
            "1.2.3.4/x",
        ] {
            assert!(Acl::address(bad).is_err(), "{bad}");
        }
        assert_eq!(
            acl_request(1, &Acl::all(), true).unwrap().params_str(),
            "initiator-address=ALL"
        );
        assert_eq!(
            Acl::from_shown("10.0.0.0/24"),
            Acl::Address("10.0.0.0/24".into())
        );
        assert_eq!(Acl::from_shown("iqn.x:y"), Acl::Name("iqn.x:y".into()));
    }

    #[test]
    fn names() {
        assert!(Acl::name("iqn.1993-08.org.debian:01:abc").is_ok());
        assert!(Acl::name("a b").is_err());
        assert!(Acl::name("a,initiator-address=ALL").is_err());
    }
}
