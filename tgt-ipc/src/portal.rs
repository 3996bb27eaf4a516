//! iSCSI portals (listeners): show, new, delete.

use std::net::SocketAddr;

use crate::client::TgtClient;
use crate::error::TgtError;
use crate::request::{Mode, Op, Params, Request};
use crate::show::{parse_portals, Portal};

fn portal_params(addr: SocketAddr) -> Result<Params, TgtError> {
    // numeric only: a host name would make tgtd call getaddrinfo inside its single event loop
    let text = match addr {
        SocketAddr::V4(a) => format!("{}:{}", a.ip(), a.port()),
        SocketAddr::V6(a) => format!("[{}]:{}", a.ip(), a.port()),
    };
    let mut p = Params::new();
    p.push("portal", &text)?;
    Ok(p)
}

impl TgtClient {
    /// Lists the listening portals.
    ///
    /// Equivalent to `tgtadm --lld iscsi --mode portal --op show`.
    ///
    /// # Errors
    /// As [`TgtClient::execute`]: refused before sending, a socket failure, or tgtd's code
    /// ([`TgtError::Daemon`]), or [`TgtError::Parse`] for output that cannot be parsed.
    pub async fn show_portals(&self) -> Result<Vec<Portal>, TgtError> {
        let text = self
            .execute(&Request::new(Mode::Portal, Op::Show))
            .await?
            .unwrap_or_default();
        parse_portals(&text)
    }

    /// Starts a listener (TPGT 1). A bind failure (address in use, duplicate) gives `InvalidRequest`.
    ///
    /// Equivalent to `tgtadm --lld iscsi --mode portal --op new --param portal=ADDR:PORT`.
    ///
    /// # Errors
    /// As [`TgtClient::execute`]: refused before sending, a socket failure, or tgtd's code
    /// ([`TgtError::Daemon`]).
    pub async fn new_portal(&self, addr: SocketAddr) -> Result<(), TgtError> {
        self.execute(&Request::new(Mode::Portal, Op::New).params(portal_params(addr)?))
            .await
            .map(drop)
    }

    /// Closes a listener (existing connections stay).
    ///
    /// Equivalent to `tgtadm --lld iscsi --mode portal --op delete --param portal=ADDR:PORT`.
    ///
    /// # Errors
    /// As [`TgtClient::execute`]: refused before sending, a socket failure, or tgtd's code
    /// ([`TgtError::Daemon`]).
    pub async fn delete_portal(&self, addr: SocketAddr) -> Result<(), TgtError> {
        self.execute(&Request::new(Mode::Portal, Op::Delete).params(portal_params(addr)?))
            .await
            .map(drop)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn portal_text() {
        let p = portal_params("[::1]:3260".parse().unwrap()).unwrap();
        assert_eq!(p.as_str(), "portal=[::1]:3260");
        let p = portal_params("10.0.0.5:3260".parse().unwrap()).unwrap();
        assert_eq!(p.as_str(), "portal=10.0.0.5:3260");
    }
}
