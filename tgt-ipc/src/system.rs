//! System mode: show, state, shutdown.

use crate::client::TgtClient;
use crate::error::TgtError;
use crate::request::{Mode, Op, Params, Request};
use crate::show::{parse_system, SystemInfo};
use crate::target::SetState;

impl TgtClient {
    /// The raw text of system show.
    ///
    /// Equivalent to `tgtadm --mode sys --op show`.
    ///
    /// # Errors
    /// As [`TgtClient::execute`]: refused before sending, a socket failure, or tgtd's code
    /// ([`TgtError::Daemon`]).
    pub async fn show_system_text(&self) -> Result<String, TgtError> {
        Ok(self
            .execute(&Request::new(Mode::System, Op::Show))
            .await?
            .unwrap_or_default())
    }

    /// System show, parsed.
    ///
    /// Equivalent to `tgtadm --mode sys --op show`, parsed.
    ///
    /// # Errors
    /// As [`TgtClient::execute`]: refused before sending, a socket failure, or tgtd's code
    /// ([`TgtError::Daemon`]), or [`TgtError::Parse`] for output that cannot be parsed.
    pub async fn show_system(&self) -> Result<SystemInfo, TgtError> {
        parse_system(&self.show_system_text().await?)
    }

    /// Sets the daemon state: `offline` makes tgtd close new TCP connections at accept.
    ///
    /// Equivalent to `tgtadm --mode sys --op update --name State --value ready|offline`.
    ///
    /// # Errors
    /// As [`TgtClient::execute`]: refused before sending, a socket failure, or tgtd's code
    /// ([`TgtError::Daemon`]).
    pub async fn set_system_state(&self, state: SetState) -> Result<(), TgtError> {
        let mut p = Params::new();
        p.push(
            "State",
            match state {
                SetState::Ready => "ready",
                SetState::Offline => "offline",
            },
        )?;
        self.execute(&Request::new(Mode::System, Op::Update).params(p))
            .await
            .map(drop)
    }

    /// Asks tgtd to exit; succeeds only when no target exists (else `InvalidRequest`).
    ///
    /// Equivalent to `tgtadm --mode sys --op delete`.
    ///
    /// # Errors
    /// As [`TgtClient::execute`]: refused before sending, a socket failure, or tgtd's code
    /// ([`TgtError::Daemon`]).
    pub async fn shutdown(&self) -> Result<(), TgtError> {
        self.execute(&Request::new(Mode::System, Op::Delete))
            .await
            .map(drop)
    }
}
